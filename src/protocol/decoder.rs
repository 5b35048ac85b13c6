//! The per-connection, server-side, stateful message decoder.
//!
//! Sans-IO: the caller hands in the bytes it has (masked client bytes, which
//! are unmasked in place), gets back how many were consumed and at most one
//! event, drops the consumed prefix and calls again.

use super::close::parse_close_payload;
use super::deflate::{DeflateConfig, Inflater};
use super::error::ProtocolError;
use super::frame::{parse_header, OpCode};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Reassembly buffers larger than this are freed after their message is delivered.
const KEEP_BUFFER_CAPACITY: usize = 64 * 1024;

/// Decoder limits and policy.
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    /// `package_max_length`: applies to a whole (reassembled, and inflated)
    /// message; beyond it -> `MessageTooLarge` (1009).
    pub max_message_size: usize,
    /// True on the server: an unmasked frame -> `UnmaskedFrame` (1002).
    pub require_mask: bool,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            max_message_size: 2 * 1024 * 1024,
            require_mask: true,
        }
    }
}

/// One decoded event; slices borrow the input or the decoder's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole data message (fragments reassembled, inflated if compressed,
    /// UTF-8 already validated for Text).
    Message {
        /// Text or Binary.
        opcode: OpCode,
        /// The payload.
        data: &'a [u8],
        /// Whether it arrived compressed (RSV1).
        compressed: bool,
    },
    /// Ping with its payload (<= 125 bytes).
    Ping(&'a [u8]),
    /// Pong with its payload (<= 125 bytes).
    Pong(&'a [u8]),
    /// Close frame, validated: code `None` when the payload was empty.
    Close {
        /// Close code.
        code: Option<u16>,
        /// Close reason (valid UTF-8, <= 123 bytes).
        reason: &'a str,
    },
}

/// State that exists only while a message (or a streamed frame) is in progress.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Partial {
    /// A data frame whose payload is being streamed.
    in_frame: bool,
    frame_fin: bool,
    frame_mask: Option<[u8; 4]>,
    /// Mask offset (payload bytes of this frame consumed so far, mod 4).
    frame_offset: usize,
    frame_remaining: u64,
    /// Opcode of the message in progress (Text/Binary).
    msg: Option<OpCode>,
    compressed: bool,
    /// Compressed bytes received for this message.
    compressed_len: u64,
    /// Reassembled (inflated) payload.
    #[serde(with = "serde_bytes")]
    buf: Vec<u8>,
    utf8: Utf8Validator,
    /// `buf` holds a message handed out by the previous call.
    #[serde(skip)]
    delivered: bool,
}

/// A decoder's state between two reads, to continue decoding in another process (a
/// connection handed to a new worker in a reload): the message or frame in progress and the
/// client's compression context.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DecoderSnapshot {
    max_message_size: usize,
    require_mask: bool,
    partial: Option<Box<Partial>>,
    inflate: Option<InflateSnapshot>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct InflateSnapshot {
    config: DeflateConfig,
    #[serde(with = "serde_bytes")]
    context: Vec<u8>,
}

/// Result of one step, without borrows (turned into an [`Event`] at the end).
enum Step {
    Nothing(usize),
    InputMessage {
        consumed: usize,
        start: usize,
        end: usize,
        opcode: OpCode,
    },
    InputPing {
        consumed: usize,
        start: usize,
        end: usize,
    },
    InputPong {
        consumed: usize,
        start: usize,
        end: usize,
    },
    InputClose {
        consumed: usize,
        code: Option<u16>,
        start: usize,
        end: usize,
    },
    BufMessage {
        consumed: usize,
        opcode: OpCode,
        compressed: bool,
    },
}

/// Per-connection decoder (RFC 6455 §5, RFC 7692). Idle size is a few words;
/// buffers live in a box allocated only while a message is in progress.
#[derive(Debug)]
pub struct MessageDecoder {
    config: DecoderConfig,
    partial: Option<Box<Partial>>,
    inflater: Option<Box<Inflater>>,
    error: Option<Box<ProtocolError>>,
    closed: bool,
}

impl MessageDecoder {
    /// A fresh decoder.
    pub fn new(config: DecoderConfig) -> Self {
        MessageDecoder {
            config,
            partial: None,
            inflater: None,
            error: None,
            closed: false,
        }
    }

    /// Enables permessage-deflate inflating (RSV1 allowed on the first frame
    /// of a data message).
    pub fn set_inflater(&mut self, inflater: Option<Inflater>) {
        self.inflater = inflater.map(Box::new);
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// True once a Close event was returned.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Decodes from `input` (masked client bytes; unmasked IN PLACE). Returns
    /// how many bytes were consumed and at most one event. `(0, None)` only if
    /// more bytes are needed. After an error the decoder is poisoned; after a
    /// Close event any further bytes are `DataAfterClose`.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), ProtocolError> {
        if let Some(e) = &self.error {
            return Err((**e).clone());
        }
        if self.closed {
            if input.is_empty() {
                return Ok((0, None));
            }
            return Err(self.poison(ProtocolError::DataAfterClose));
        }
        let step = match self.step(input) {
            Ok(s) => s,
            Err(e) => return Err(self.poison(e)),
        };
        let input: &'a [u8] = input;
        Ok(match step {
            Step::Nothing(n) => (n, None),
            Step::InputMessage {
                consumed,
                start,
                end,
                opcode,
            } => (
                consumed,
                Some(Event::Message {
                    opcode,
                    data: &input[start..end],
                    compressed: false,
                }),
            ),
            Step::InputPing {
                consumed,
                start,
                end,
            } => (consumed, Some(Event::Ping(&input[start..end]))),
            Step::InputPong {
                consumed,
                start,
                end,
            } => (consumed, Some(Event::Pong(&input[start..end]))),
            Step::InputClose {
                consumed,
                code,
                start,
                end,
            } => (
                consumed,
                Some(Event::Close {
                    code,
                    // validated in step()
                    reason: std::str::from_utf8(&input[start..end]).unwrap_or(""),
                }),
            ),
            Step::BufMessage {
                consumed,
                opcode,
                compressed,
            } => match self.partial.as_deref() {
                Some(p) => (
                    consumed,
                    Some(Event::Message {
                        opcode,
                        data: &p.buf,
                        compressed,
                    }),
                ),
                None => (consumed, None),
            },
        })
    }

    /// The state to continue in another process, or `None` when it cannot move now: after
    /// an error or a Close, or in the middle of a compressed message (zlib's state inside a
    /// block cannot be carried; the message's end is a moment it can).
    pub fn snapshot(&self) -> Option<DecoderSnapshot> {
        if !self.can_snapshot() {
            return None;
        }
        let partial = self
            .partial
            .as_deref()
            .filter(|p| p.in_frame || p.msg.is_some())
            .map(|p| Box::new(p.clone()));
        Some(DecoderSnapshot {
            max_message_size: self.config.max_message_size,
            require_mask: self.config.require_mask,
            partial,
            inflate: self.inflater.as_deref().map(|i| InflateSnapshot {
                config: *i.config(),
                context: i.context(),
            }),
        })
    }

    /// Whether [`snapshot`](MessageDecoder::snapshot) would give a state now.
    pub fn can_snapshot(&self) -> bool {
        let mid_compressed = self
            .partial
            .as_deref()
            .is_some_and(|p| p.compressed && (p.in_frame || p.msg.is_some()));
        self.error.is_none() && !self.closed && !mid_compressed
    }

    /// A decoder continuing from `snapshot`.
    pub fn restore(snapshot: DecoderSnapshot) -> Result<Self, ProtocolError> {
        let inflater = match snapshot.inflate {
            Some(s) => Some(Box::new(Inflater::with_context(&s.config, &s.context)?)),
            None => None,
        };
        Ok(MessageDecoder {
            config: DecoderConfig {
                max_message_size: snapshot.max_message_size,
                require_mask: snapshot.require_mask,
            },
            partial: snapshot.partial,
            inflater,
            error: None,
            closed: false,
        })
    }

    /// The negotiated permessage-deflate parameters, if any.
    pub fn deflate_config(&self) -> Option<DeflateConfig> {
        self.inflater.as_deref().map(|i| *i.config())
    }

    /// True while a fragmented message (or a partially received data frame) is in progress.
    pub fn is_mid_message(&self) -> bool {
        self.partial
            .as_deref()
            .is_some_and(|p| p.in_frame || p.msg.is_some())
    }

    /// Drops internal buffers when idle.
    pub fn shrink(&mut self) {
        if !self.is_mid_message() {
            self.partial = None;
        }
    }

    fn poison(&mut self, e: ProtocolError) -> ProtocolError {
        self.error = Some(Box::new(e.clone()));
        self.partial = None;
        e
    }

    fn step(&mut self, input: &mut [u8]) -> Result<Step, ProtocolError> {
        if let Some(p) = self.partial.as_deref_mut() {
            if p.delivered {
                p.delivered = false;
                if p.buf.capacity() > KEEP_BUFFER_CAPACITY {
                    self.partial = None;
                } else {
                    p.buf.clear();
                }
            }
        }
        if self.partial.as_deref().is_some_and(|p| p.in_frame) {
            return self.stream_payload(input, 0);
        }
        let h = match parse_header(input)? {
            Some(h) => h,
            None => return Ok(Step::Nothing(0)),
        };
        if h.rsv2 || h.rsv3 {
            return Err(ProtocolError::ReservedBits);
        }
        let op = OpCode::from_u8(h.opcode).ok_or(ProtocolError::ReservedOpcode(h.opcode))?;
        if self.config.require_mask && h.mask.is_none() {
            return Err(ProtocolError::UnmaskedFrame);
        }
        let hl = h.header_len;
        if op.is_control() {
            if h.rsv1 {
                return Err(ProtocolError::ReservedBits);
            }
            if !h.fin {
                return Err(ProtocolError::FragmentedControl);
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlTooLong(h.payload_len));
            }
            let end = hl + h.payload_len as usize;
            if input.len() < end {
                return Ok(Step::Nothing(0));
            }
            if let Some(m) = h.mask {
                apply_mask(&mut input[hl..end], m, 0);
            }
            return Ok(match op {
                OpCode::Ping => Step::InputPing {
                    consumed: end,
                    start: hl,
                    end,
                },
                OpCode::Pong => Step::InputPong {
                    consumed: end,
                    start: hl,
                    end,
                },
                _ => {
                    let (code, _) = parse_close_payload(&input[hl..end])?;
                    self.closed = true;
                    self.partial = None;
                    let start = if code.is_some() { hl + 2 } else { end };
                    Step::InputClose {
                        consumed: end,
                        code,
                        start,
                        end,
                    }
                }
            });
        }

        // data frame
        let max = self.config.max_message_size;
        let too_large = ProtocolError::MessageTooLarge { limit: max };
        let in_msg = self.partial.as_deref().is_some_and(|p| p.msg.is_some());
        match op {
            OpCode::Continuation if !in_msg => return Err(ProtocolError::UnexpectedContinuation),
            OpCode::Text | OpCode::Binary if in_msg => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            _ => {}
        }
        if h.rsv1 && (op == OpCode::Continuation || self.inflater.is_none()) {
            return Err(ProtocolError::ReservedBits);
        }
        let compressed = if in_msg {
            self.partial.as_deref().is_some_and(|p| p.compressed)
        } else {
            h.rsv1
        };
        if compressed {
            // Compressed bytes can exceed the inflated size only by a tiny
            // amount (stored blocks); bound them too.
            let limit = (max as u64)
                .saturating_add(max as u64 / 16)
                .saturating_add(1024);
            let so_far = self.partial.as_deref().map_or(0, |p| p.compressed_len);
            if so_far.saturating_add(h.payload_len) > limit {
                return Err(too_large);
            }
        } else {
            let so_far = self.partial.as_deref().map_or(0, |p| p.buf.len() as u64);
            if so_far.saturating_add(h.payload_len) > max as u64 {
                return Err(too_large);
            }
        }

        // Fast path: whole unfragmented uncompressed frame in the input.
        if !in_msg && h.fin && !h.rsv1 && (input.len() - hl) as u64 >= h.payload_len {
            let end = hl + h.payload_len as usize;
            if let Some(m) = h.mask {
                apply_mask(&mut input[hl..end], m, 0);
            }
            if op == OpCode::Text && std::str::from_utf8(&input[hl..end]).is_err() {
                return Err(ProtocolError::InvalidUtf8);
            }
            return Ok(Step::InputMessage {
                consumed: end,
                start: hl,
                end,
                opcode: op,
            });
        }

        let p = self.partial.get_or_insert_with(Box::default);
        if op != OpCode::Continuation {
            p.msg = Some(op);
            p.compressed = h.rsv1;
            p.compressed_len = 0;
            p.buf.clear();
            p.utf8.reset();
        }
        p.in_frame = true;
        p.frame_fin = h.fin;
        p.frame_mask = h.mask;
        p.frame_offset = 0;
        p.frame_remaining = h.payload_len;
        self.stream_payload(input, hl)
    }

    /// Consumes as much of the current data frame's payload as `input[start..]` holds.
    fn stream_payload(&mut self, input: &mut [u8], start: usize) -> Result<Step, ProtocolError> {
        let max = self.config.max_message_size;
        let p = match self.partial.as_deref_mut() {
            Some(p) => p,
            None => return Ok(Step::Nothing(start)),
        };
        let avail = input.len().saturating_sub(start);
        let take = usize::try_from(p.frame_remaining).map_or(avail, |r| r.min(avail));
        let chunk = &mut input[start..start + take];
        if let Some(m) = p.frame_mask {
            apply_mask(chunk, m, p.frame_offset);
        }
        p.frame_offset = (p.frame_offset + take) & 3;
        p.frame_remaining -= take as u64;
        let text = p.msg == Some(OpCode::Text);
        if p.compressed {
            p.compressed_len += take as u64;
            let inflater = self
                .inflater
                .as_deref_mut()
                .ok_or(ProtocolError::ReservedBits)?;
            let before = p.buf.len();
            inflater.decompress_chunk(chunk, &mut p.buf, max)?;
            if text {
                p.utf8.feed(&p.buf[before..])?;
            }
        } else {
            if text {
                p.utf8.feed(chunk)?;
            }
            if p.buf.len() + take > max {
                return Err(ProtocolError::MessageTooLarge { limit: max });
            }
            p.buf.extend_from_slice(chunk);
        }
        let consumed = start + take;
        if p.frame_remaining > 0 {
            return Ok(Step::Nothing(consumed));
        }
        p.in_frame = false;
        if !p.frame_fin {
            return Ok(Step::Nothing(consumed));
        }
        if p.compressed {
            let inflater = self
                .inflater
                .as_deref_mut()
                .ok_or(ProtocolError::ReservedBits)?;
            let before = p.buf.len();
            inflater.finish_message(&mut p.buf, max)?;
            if text {
                p.utf8.feed(&p.buf[before..])?;
            }
        }
        if text {
            p.utf8.finish()?;
        }
        let opcode = p.msg.take().unwrap_or(OpCode::Binary);
        p.delivered = true;
        Ok(Step::BufMessage {
            consumed,
            opcode,
            compressed: p.compressed,
        })
    }
}

#[cfg(test)]
mod tests;
