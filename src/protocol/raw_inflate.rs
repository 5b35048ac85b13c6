//! A raw-deflate inflate stream on zlib-rs's C API (`libz-rs-sys`, pure Rust), used instead
//! of flate2's `Decompress` because it can also give out its sliding window
//! (`inflateGetDictionary`): a connection handed to another worker takes the last 32 KiB of
//! what the client sent with it, so the client can keep its compression context
//! (permessage-deflate context takeover).

use libz_rs_sys as z;

use super::error::ProtocolError;

/// Outcome of one `inflate` call.
pub(crate) struct Progress {
    pub consumed: usize,
    pub produced: usize,
    /// The stream's final block ended (`Z_STREAM_END`).
    pub stream_end: bool,
}

/// One raw inflate stream. The `z_stream` is boxed: zlib's state points back at it.
pub(crate) struct RawInflate {
    strm: Box<z::z_stream>,
}

// SAFETY: the stream and its state are owned by this value alone (no shared pointers escape);
// moving it to another thread moves all of it.
unsafe impl Send for RawInflate {}

fn error(what: &str, code: i32) -> ProtocolError {
    ProtocolError::Inflate(format!("{what} failed ({code})"))
}

impl RawInflate {
    /// A raw stream (no zlib header) with a window of `window_bits` (9..=15).
    pub fn new(window_bits: u8) -> Result<RawInflate, ProtocolError> {
        let mut strm = Box::<z::z_stream>::default();
        // SAFETY: a default-initialised stream (allocator set), the library's own version
        // string and the struct's size, as inflateInit2 requires.
        let rc = unsafe {
            z::inflateInit2_(
                &mut *strm,
                -i32::from(window_bits),
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as i32,
            )
        };
        if rc != z::Z_OK {
            return Err(error("inflateInit2", rc));
        }
        Ok(RawInflate { strm })
    }

    /// Inflates from `input` into the spare capacity of `out` (Z_SYNC_FLUSH).
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, ProtocolError> {
        let spare = out.capacity() - out.len();
        let avail_in = input.len().min(u32::MAX as usize) as u32;
        let avail_out = spare.min(u32::MAX as usize) as u32;
        self.strm.next_in = input.as_ptr();
        self.strm.avail_in = avail_in;
        // SAFETY: `len..capacity` of `out` is allocated; inflate writes at most `avail_out`
        // bytes there, and `set_len` below exposes only what it wrote.
        self.strm.next_out = unsafe { out.as_mut_ptr().add(out.len()) };
        self.strm.avail_out = avail_out;
        // SAFETY: an initialised stream whose in/out pointers were just set to live buffers.
        let rc = unsafe { z::inflate(&mut *self.strm, z::Z_SYNC_FLUSH) };
        let consumed = (avail_in - self.strm.avail_in) as usize;
        let produced = (avail_out - self.strm.avail_out) as usize;
        // SAFETY: inflate initialised exactly `produced` bytes after `len`.
        unsafe { out.set_len(out.len() + produced) };
        self.strm.next_in = std::ptr::null();
        self.strm.next_out = std::ptr::null_mut();
        match rc {
            z::Z_OK | z::Z_BUF_ERROR => Ok(Progress {
                consumed,
                produced,
                stream_end: false,
            }),
            z::Z_STREAM_END => Ok(Progress {
                consumed,
                produced,
                stream_end: true,
            }),
            z::Z_NEED_DICT => Err(ProtocolError::Inflate("a preset dictionary".into())),
            rc => Err(ProtocolError::Inflate(format!(
                "invalid compressed data ({rc})"
            ))),
        }
    }

    /// Forgets the context (a new stream, same window).
    pub fn reset(&mut self) {
        // SAFETY: an initialised stream.
        unsafe { z::inflateReset(&mut *self.strm) };
    }

    /// The sliding window: the last (up to 2^window_bits) bytes inflated.
    pub fn dictionary(&self) -> Vec<u8> {
        let mut dict = vec![0u8; 1 << 15];
        let mut len: u32 = 0;
        // SAFETY: a 32 KiB buffer is always enough for the window (zlib's documentation).
        let rc = unsafe { z::inflateGetDictionary(&*self.strm, dict.as_mut_ptr(), &mut len) };
        if rc != z::Z_OK {
            return Vec::new();
        }
        dict.truncate(len as usize);
        dict
    }

    /// Primes the window with `dict` (what `dictionary` gave out elsewhere).
    pub fn set_dictionary(&mut self, dict: &[u8]) -> Result<(), ProtocolError> {
        if dict.is_empty() {
            return Ok(());
        }
        // SAFETY: an initialised raw stream and a live slice (raw streams take a dictionary at
        // any time).
        let rc =
            unsafe { z::inflateSetDictionary(&mut *self.strm, dict.as_ptr(), dict.len() as u32) };
        if rc == z::Z_OK {
            Ok(())
        } else {
            Err(error("inflateSetDictionary", rc))
        }
    }
}

impl Drop for RawInflate {
    fn drop(&mut self) {
        // SAFETY: an initialised stream, ended once.
        unsafe { z::inflateEnd(&mut *self.strm) };
    }
}
