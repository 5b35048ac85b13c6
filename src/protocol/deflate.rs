//! permessage-deflate (RFC 7692): negotiation and the per-connection codec.
//!
//! Window sizes: zlib (and zlib-rs) cannot open a raw deflate stream with a
//! 256-byte window (windowBits 8). When a client asks for
//! `server_max_window_bits=8` we still accept (Autobahn 13.3.x / 13.5.x need it)
//! and compress with windowBits 9: zlib never emits a match distance larger
//! than `w_size - MIN_LOOKAHEAD` = 512 - 262 = 250 bytes for that window, so
//! the stream is decodable with a 256-byte window. A client window of 8 is
//! fine too: the inflater simply uses a larger window (9..=15).

use flate2::{Compress, Compression, FlushCompress};

use super::raw_inflate::RawInflate;

use super::error::ProtocolError;

/// The trailer removed from each compressed message (RFC 7692 §7.2.1).
const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Smallest output growth step while inflating.
const MIN_CHUNK: usize = 16 * 1024;

/// Agreed permessage-deflate parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeflateConfig {
    /// Server resets its compression context after every message.
    pub server_no_context_takeover: bool,
    /// Client resets its compression context after every message (so we reset our inflater).
    pub client_no_context_takeover: bool,
    /// Server's LZ77 window (8..=15; 8 is compressed with windowBits 9, whose
    /// match distances never exceed 250 bytes).
    pub server_max_window_bits: u8,
    /// Client's LZ77 window (8..=15; the inflater uses at least 9).
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// Splits `s` at `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Window bits value: 8..=15 without leading zeros, optionally quoted.
fn parse_bits(v: &str) -> Option<u8> {
    let v = v.trim();
    let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        &v[1..v.len() - 1]
    } else {
        v
    };
    if v.is_empty() || v.len() > 2 || !v.bytes().all(|b| b.is_ascii_digit()) || v.starts_with('0') {
        return None;
    }
    let n: u8 = v.parse().ok()?;
    (8..=15).contains(&n).then_some(n)
}

/// Evaluates one offer; `None` if unacceptable.
fn evaluate_offer(offer: &str) -> Option<(DeflateConfig, String)> {
    let mut parts = split_unquoted(offer, ';').into_iter();
    let name = parts.next()?.trim();
    if !name.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut cfg = DeflateConfig::default();
    let (mut snct, mut cnct) = (false, false);
    let mut smwb: Option<u8> = None;
    // None = not offered, Some(None) = offered without value
    let mut cmwb: Option<Option<u8>> = None;
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            return None;
        }
        let (key, value) = match p.find('=') {
            Some(i) => (p[..i].trim(), Some(p[i + 1..].trim())),
            None => (p, None),
        };
        if !is_token(key) {
            return None;
        }
        match key.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => {
                if snct || value.is_some() {
                    return None;
                }
                snct = true;
            }
            "client_no_context_takeover" => {
                if cnct || value.is_some() {
                    return None;
                }
                cnct = true;
            }
            "server_max_window_bits" => {
                if smwb.is_some() {
                    return None;
                }
                smwb = Some(parse_bits(value?)?);
            }
            "client_max_window_bits" => {
                if cmwb.is_some() {
                    return None;
                }
                cmwb = Some(match value {
                    None => None,
                    Some(v) => Some(parse_bits(v)?),
                });
            }
            _ => return None,
        }
    }
    cfg.server_no_context_takeover = snct;
    cfg.client_no_context_takeover = cnct;
    cfg.server_max_window_bits = smwb.unwrap_or(15);
    cfg.client_max_window_bits = cmwb.flatten().unwrap_or(15);
    let mut resp = String::from("permessage-deflate");
    if snct {
        resp.push_str("; server_no_context_takeover");
    }
    if cnct {
        resp.push_str("; client_no_context_takeover");
    }
    if let Some(b) = smwb {
        resp.push_str(&format!("; server_max_window_bits={b}"));
    }
    if let Some(Some(b)) = cmwb {
        resp.push_str(&format!("; client_max_window_bits={b}"));
    }
    Some((cfg, resp))
}

/// Parses the client's `Sec-WebSocket-Extensions` (several comma-separated
/// offers, each with `;` params) and returns the first acceptable
/// permessage-deflate offer as (config, response header value). Offers with
/// unknown, duplicate or malformed parameters are skipped.
/// `server_max_window_bits=8` is accepted (see the module docs).
pub fn negotiate(offer: &str) -> Option<(DeflateConfig, String)> {
    split_unquoted(offer, ',')
        .into_iter()
        .find_map(evaluate_offer)
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

fn inflate_error(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Inflate(e.to_string())
}

/// Server-side compressor.
pub struct Deflater {
    c: Compress,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Deflater {
    /// Compressor for the server side of `cfg` (default level 6).
    pub fn new(cfg: &DeflateConfig) -> Self {
        Self::with_level(cfg, 6)
    }

    /// Same with an explicit zlib level (0..=9).
    pub fn with_level(cfg: &DeflateConfig, level: u32) -> Self {
        Deflater {
            c: Compress::new_with_window_bits(
                Compression::new(level.min(9)),
                false,
                clamp_bits(cfg.server_max_window_bits),
            ),
            no_context_takeover: cfg.server_no_context_takeover,
        }
    }

    /// Compresses one whole message, appending to `out` without the trailing
    /// `00 00 ff ff`.
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        let start = out.len();
        let mut input = data;
        loop {
            out.reserve((input.len() / 2).max(64) + 16);
            let (in0, out0) = (self.c.total_in(), out.len());
            self.c
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(inflate_error)?;
            let used = usize::try_from(self.c.total_in() - in0).unwrap_or(input.len());
            input = input.get(used..).unwrap_or(&[]);
            let produced = out.len() - out0;
            if input.is_empty() && (out.len() < out.capacity() || (used == 0 && produced == 0)) {
                break;
            }
        }
        if out[start..].ends_with(&TRAILER) {
            out.truncate(out.len() - TRAILER.len());
        }
        if out.len() == start {
            // Nothing pending: an empty stored block, so that appending the
            // trailer yields a complete block (RFC 7692 §7.2.3.6).
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.c.reset();
        }
        Ok(())
    }
}

/// Server-side decompressor.
pub struct Inflater {
    d: RawInflate,
    cfg: DeflateConfig,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Inflater {
    /// Decompressor for the client side of `cfg`.
    pub fn new(cfg: &DeflateConfig) -> Self {
        let d = RawInflate::new(clamp_bits(cfg.client_max_window_bits))
            // Only an allocation failure (which aborts first) or an invalid window (clamped
            // above) can fail the initialisation.
            .expect("inflate stream with a valid window");
        Inflater {
            d,
            cfg: *cfg,
            no_context_takeover: cfg.client_no_context_takeover,
        }
    }

    /// The client's compression context as far as we hold it (the last inflated bytes, up
    /// to the window), to continue the stream in another process. Empty when the context is
    /// reset after every message anyway.
    pub fn context(&self) -> Vec<u8> {
        if self.no_context_takeover {
            return Vec::new();
        }
        self.d.dictionary()
    }

    /// The parameters it was made for.
    pub fn config(&self) -> &DeflateConfig {
        &self.cfg
    }

    /// An inflater continuing a context taken with [`context`](Inflater::context).
    pub fn with_context(cfg: &DeflateConfig, context: &[u8]) -> Result<Self, ProtocolError> {
        let mut i = Inflater::new(cfg);
        if !i.no_context_takeover {
            i.d.set_dictionary(context)?;
        }
        Ok(i)
    }

    /// Inflates one whole message: appends `00 00 ff ff`, output limited to
    /// `max_size` bytes in `out` (MessageTooLarge beyond), resets per message
    /// if client_no_context_takeover.
    pub fn decompress(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), ProtocolError> {
        self.decompress_chunk(data, out, max_size)?;
        self.finish_message(out, max_size)
    }

    /// Streaming: inflates the next piece of a compressed message into `out`
    /// (`out.len()` never grows much beyond `max_size + 1`).
    pub fn decompress_chunk(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), ProtocolError> {
        let r = self.inflate(data, out, max_size);
        if r.is_err() {
            self.d.reset();
        }
        r
    }

    /// Streaming: ends the message (feeds the trailer, resets if needed).
    pub fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), ProtocolError> {
        let r = self.inflate(&TRAILER, out, max_size);
        if r.is_err() || self.no_context_takeover {
            self.d.reset();
        }
        r
    }

    /// Drops the context (e.g. after an aborted message).
    pub fn reset(&mut self) {
        self.d.reset();
    }

    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<(), ProtocolError> {
        let too_large = ProtocolError::MessageTooLarge { limit: max };
        loop {
            if out.len() > max {
                return Err(too_large);
            }
            let allowed = max - out.len() + 1;
            let spare = out.capacity() - out.len();
            if spare == 0 || (spare < MIN_CHUNK && spare < allowed) {
                let want = out.len().max(MIN_CHUNK).min(allowed);
                out.reserve_exact(want);
            }
            let p = self.d.inflate(input, out)?;
            let (used, produced) = (p.consumed, p.produced);
            input = input.get(used..).unwrap_or(&[]);
            if out.len() > max {
                return Err(too_large);
            }
            if p.stream_end {
                // BFINAL block: start a fresh stream for whatever follows.
                self.d.reset();
                if input.is_empty() {
                    return Ok(());
                }
                continue;
            }
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
            if used == 0 && produced == 0 {
                if input.is_empty() {
                    return Ok(());
                }
                return Err(ProtocolError::Inflate("inflate made no progress".into()));
            }
        }
    }
}

/// Compresses `data` with a fresh raw deflate context (window 15), trailer stripped.
pub fn compress_once(data: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let mut d = Deflater::new(&DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    });
    let mut out = Vec::new();
    d.compress(data, &mut out)?;
    Ok(out)
}

/// Inflates one message with a fresh context, limited to `max_size` bytes.
pub fn inflate_once(data: &[u8], max_size: usize) -> Result<Vec<u8>, ProtocolError> {
    let mut i = Inflater::new(&DeflateConfig::default());
    let mut out = Vec::new();
    i.decompress(data, &mut out, max_size)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(s: &str) -> Option<DeflateConfig> {
        negotiate(s).map(|c| c.0)
    }

    #[test]
    fn negotiate_plain_offer() {
        let (c, r) = negotiate("permessage-deflate").unwrap();
        assert_eq!(c, DeflateConfig::default());
        assert_eq!(r, "permessage-deflate");
    }

    #[test]
    fn negotiate_client_max_window_bits_without_value_is_omitted() {
        let (c, r) = negotiate("permessage-deflate; client_max_window_bits").unwrap();
        assert_eq!(c.client_max_window_bits, 15);
        assert_eq!(r, "permessage-deflate");
    }

    #[test]
    fn negotiate_all_four_params_are_echoed() {
        let (c, r) = negotiate(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
        )
        .unwrap();
        assert!(c.server_no_context_takeover && c.client_no_context_takeover);
        assert_eq!(
            (c.server_max_window_bits, c.client_max_window_bits),
            (10, 12)
        );
        assert_eq!(r, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12");
    }

    #[test]
    fn negotiate_quoted_value() {
        assert_eq!(
            cfg("permessage-deflate; server_max_window_bits=\"11\"")
                .unwrap()
                .server_max_window_bits,
            11
        );
    }

    #[test]
    fn unknown_param_declines_offer() {
        assert!(negotiate("permessage-deflate; foo=1").is_none());
        assert!(negotiate("permessage-deflate; foo").is_none());
    }

    #[test]
    fn duplicate_param_declines_offer() {
        assert!(negotiate(
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
        )
        .is_none());
        assert!(
            negotiate("permessage-deflate; client_max_window_bits=10; client_max_window_bits")
                .is_none()
        );
    }

    #[test]
    fn bad_window_values_decline_offer() {
        for v in ["7", "16", "08", "0", "", "abc", "1 0", "-9"] {
            assert!(
                negotiate(&format!("permessage-deflate; server_max_window_bits={v}")).is_none(),
                "{v}"
            );
            assert!(
                negotiate(&format!("permessage-deflate; client_max_window_bits={v}")).is_none(),
                "{v}"
            );
        }
        assert!(negotiate("permessage-deflate; server_max_window_bits").is_none());
        assert!(negotiate("permessage-deflate; server_no_context_takeover=1").is_none());
    }

    #[test]
    fn server_max_window_bits_8_is_accepted_and_compressed_with_window_9() {
        let (c, r) = negotiate("permessage-deflate; server_max_window_bits=8").unwrap();
        assert_eq!(c.server_max_window_bits, 8);
        assert_eq!(r, "permessage-deflate; server_max_window_bits=8");
        let mut d = Deflater::new(&c);
        let mut i = Inflater::new(&DeflateConfig::default());
        let data: Vec<u8> = (0..20_000u32)
            .map(|x| b"abcdefgh"[(x * x % 7) as usize])
            .collect();
        for _ in 0..3 {
            let mut z = Vec::new();
            d.compress(&data, &mut z).unwrap();
            let mut out = Vec::new();
            i.decompress(&z, &mut out, 1 << 20).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn first_acceptable_offer_wins() {
        let (c, r) = negotiate(
            "permessage-deflate; foo, permessage-deflate; server_max_window_bits=9; client_no_context_takeover, permessage-deflate",
        )
        .unwrap();
        assert_eq!(c.server_max_window_bits, 9);
        assert!(c.client_no_context_takeover);
        assert_eq!(
            r,
            "permessage-deflate; client_no_context_takeover; server_max_window_bits=9"
        );
    }

    #[test]
    fn client_max_window_bits_8_is_accepted() {
        let (c, r) = negotiate("permessage-deflate; client_max_window_bits=8").unwrap();
        assert_eq!(c.client_max_window_bits, 8);
        assert_eq!(r, "permessage-deflate; client_max_window_bits=8");
        // inflater works with a wider window
        let mut i = Inflater::new(&c);
        let mut out = Vec::new();
        i.decompress(&compress_once(b"hello hello hello").unwrap(), &mut out, 100)
            .unwrap();
        assert_eq!(out, b"hello hello hello");
    }

    #[test]
    fn other_extensions_are_skipped() {
        let (c, _) =
            negotiate("x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover")
                .unwrap();
        assert!(c.client_no_context_takeover);
        assert!(negotiate("x-webkit-deflate-frame").is_none());
        assert!(negotiate("").is_none());
    }

    #[test]
    fn deflater_output_has_no_trailer_and_roundtrips() {
        let c = DeflateConfig::default();
        let mut d = Deflater::new(&c);
        let mut i = Inflater::new(&c);
        for msg in [&b"Hello"[..], b"", b"Hello", &[7u8; 100_000][..]] {
            let mut z = Vec::new();
            d.compress(msg, &mut z).unwrap();
            assert!(!z.ends_with(&TRAILER));
            let mut out = Vec::new();
            i.decompress(&z, &mut out, 1 << 20).unwrap();
            assert_eq!(out, msg);
        }
    }

    #[test]
    fn rfc7692_example_hello() {
        // RFC 7692 §7.2.3.1
        let mut i = Inflater::new(&DeflateConfig::default());
        let mut out = Vec::new();
        i.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100)
            .unwrap();
        assert_eq!(out, b"Hello");
        // §7.2.3.2: second message referencing the first with context takeover
        let mut out = Vec::new();
        i.decompress(&[0xf2, 0x00, 0x11, 0x00, 0x00], &mut out, 100)
            .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn rfc7692_bfinal_block_is_accepted() {
        // §7.2.3.4 style: a final block then the trailer
        let mut i = Inflater::new(&DeflateConfig::default());
        let mut out = Vec::new();
        i.decompress(
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
            &mut out,
            100,
        )
        .unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn context_takeover_makes_repeat_smaller() {
        let c = DeflateConfig::default();
        let mut d = Deflater::new(&c);
        let msg = b"the quick brown fox jumps over the lazy dog, again and again";
        let (mut a, mut b) = (Vec::new(), Vec::new());
        d.compress(msg, &mut a).unwrap();
        d.compress(msg, &mut b).unwrap();
        assert!(b.len() < a.len());
        let nc = DeflateConfig {
            server_no_context_takeover: true,
            ..c
        };
        let mut d = Deflater::new(&nc);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        d.compress(msg, &mut a).unwrap();
        d.compress(msg, &mut b).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn decompression_bomb_is_1009() {
        let z = compress_once(&vec![0u8; 10 << 20]).unwrap();
        assert!(z.len() < 20_000);
        let mut i = Inflater::new(&DeflateConfig::default());
        let mut out = Vec::new();
        let e = i.decompress(&z, &mut out, 1 << 20).unwrap_err();
        assert_eq!(e.close_code(), 1009);
        assert!(
            out.capacity() <= (1 << 20) + MIN_CHUNK + 1,
            "cap {}",
            out.capacity()
        );
    }

    #[test]
    fn garbage_is_an_inflate_error() {
        let mut i = Inflater::new(&DeflateConfig::default());
        let mut out = Vec::new();
        let e = i
            .decompress(&[0xff, 0xff, 0xff, 0xff], &mut out, 100)
            .unwrap_err();
        assert!(matches!(e, ProtocolError::Inflate(_)));
        assert_eq!(e.close_code(), 1002);
    }

    #[test]
    fn all_window_sizes_roundtrip() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * i % 251) as u8).collect();
        for sb in 9..=15u8 {
            let c = DeflateConfig {
                server_max_window_bits: sb,
                client_max_window_bits: sb,
                ..DeflateConfig::default()
            };
            let mut d = Deflater::new(&c);
            let mut i = Inflater::new(&c);
            for _ in 0..2 {
                let mut z = Vec::new();
                d.compress(&data, &mut z).unwrap();
                let mut out = Vec::new();
                i.decompress(&z, &mut out, 1 << 20).unwrap();
                assert_eq!(out, data);
            }
        }
    }

    proptest! {
        #[test]
        fn negotiate_never_panics(s in ".{0,80}") {
            let _ = negotiate(&s);
        }

        #[test]
        fn inflate_random_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut i = Inflater::new(&DeflateConfig::default());
            let mut out = Vec::new();
            let _ = i.decompress(&b, &mut out, 4096);
            prop_assert!(out.len() <= 4096 + MIN_CHUNK);
        }
    }
}
