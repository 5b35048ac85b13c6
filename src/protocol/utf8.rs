//! Incremental, fail-fast UTF-8 validation.

use super::error::ProtocolError;

/// Incremental validator; feed arbitrary splits. Fails on the FIRST invalid
/// byte (fail fast), including overlong forms, surrogates (U+D800..DFFF),
/// code points > U+10FFFF and sequences that cannot complete.
///
/// The bulk is checked by `std::str::from_utf8`; an incomplete sequence at
/// the end of a chunk is carried over (std already verifies that such a tail
/// is a possible prefix, e.g. `ED A0` or `F4 90` are rejected right away).
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Utf8Validator {
    carry: [u8; 4],
    carry_len: u8,
}

/// Length of the sequence introduced by lead byte `b` (0 if not a lead byte).
#[inline]
fn seq_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// A validator at a sequence boundary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next chunk of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ProtocolError> {
        if self.carry_len > 0 {
            let have = self.carry_len as usize;
            let need = seq_len(self.carry[0]).saturating_sub(have);
            let take = need.min(bytes.len());
            let mut tmp = [0u8; 4];
            tmp[..have].copy_from_slice(&self.carry[..have]);
            tmp[have..have + take].copy_from_slice(&bytes[..take]);
            let total = have + take;
            match std::str::from_utf8(&tmp[..total]) {
                Ok(_) => {
                    self.carry_len = 0;
                    bytes = &bytes[take..];
                }
                Err(e) if e.error_len().is_none() && take == need => {
                    // cannot happen: a complete sequence is either valid or invalid
                    let _ = e;
                    return self.fail();
                }
                Err(e) if e.error_len().is_none() => {
                    // still a valid prefix, still incomplete (ran out of input)
                    self.carry[..total].copy_from_slice(&tmp[..total]);
                    self.carry_len = total as u8;
                    return Ok(());
                }
                Err(_) => return self.fail(),
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => self.fail(),
                None => {
                    let tail = &bytes[e.valid_up_to()..];
                    // std guarantees 1..=3 bytes forming a valid prefix here
                    if tail.is_empty() || tail.len() > 3 {
                        return self.fail();
                    }
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carry_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Ends the message: error if a sequence is incomplete. Always resets.
    pub fn finish(&mut self) -> Result<(), ProtocolError> {
        let incomplete = self.carry_len > 0;
        self.reset();
        if incomplete {
            Err(ProtocolError::InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Back to a sequence boundary.
    pub fn reset(&mut self) {
        self.carry_len = 0;
    }

    /// True when an incomplete sequence is pending.
    pub fn is_mid_sequence(&self) -> bool {
        self.carry_len > 0
    }

    fn fail(&mut self) -> Result<(), ProtocolError> {
        self.reset();
        Err(ProtocolError::InvalidUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn whole(b: &[u8]) -> Result<(), ProtocolError> {
        let mut v = Utf8Validator::new();
        v.feed(b)?;
        v.finish()
    }

    /// Feeds bytes one at a time; returns index of the byte whose feed failed.
    fn fail_index(b: &[u8]) -> Option<usize> {
        let mut v = Utf8Validator::new();
        for (i, x) in b.iter().enumerate() {
            if v.feed(std::slice::from_ref(x)).is_err() {
                return Some(i);
            }
        }
        if v.finish().is_err() {
            return Some(b.len());
        }
        None
    }

    #[test]
    fn valid_text_passes() {
        assert!(whole("κόσμε Hello-µ@ßöäüàá-UTF-8!! 𝄞".as_bytes()).is_ok());
        assert!(whole(b"").is_ok());
    }

    #[test]
    fn text_split_one_byte_at_a_time() {
        let s = "a€𝄞κόσμε\u{10FFFF}\u{D7FF}\u{E000}";
        assert_eq!(fail_index(s.as_bytes()), None);
    }

    #[test]
    fn overlong_utf8_fails_fast() {
        assert_eq!(fail_index(&[b'a', 0xc0, 0xaf]), Some(1));
        assert_eq!(fail_index(&[0xc1, 0xbf]), Some(0));
        assert_eq!(fail_index(&[0xe0, 0x80, 0xaf]), Some(1));
        assert_eq!(fail_index(&[0xe0, 0x9f, 0xbf]), Some(1));
        assert_eq!(fail_index(&[0xf0, 0x80, 0x80, 0xaf]), Some(1));
        assert_eq!(fail_index(&[0xf0, 0x8f, 0xbf, 0xbf]), Some(1));
    }

    #[test]
    fn surrogates_fail_fast() {
        assert_eq!(fail_index(&[0xed, 0xa0, 0x80]), Some(1));
        assert_eq!(fail_index(&[0xed, 0xbf, 0xbf]), Some(1));
        assert_eq!(fail_index(&[0xed, 0x9f, 0xbf]), None);
    }

    #[test]
    fn above_u10ffff_fails_fast() {
        assert_eq!(fail_index(&[0xf4, 0x90, 0x80, 0x80]), Some(1));
        assert_eq!(fail_index(&[0xf5, 0x80, 0x80, 0x80]), Some(0));
        assert_eq!(fail_index(&[0xff]), Some(0));
        assert_eq!(fail_index(&[0xf4, 0x8f, 0xbf, 0xbf]), None);
    }

    #[test]
    fn stray_continuation_fails() {
        assert_eq!(fail_index(&[b'a', 0x80]), Some(1));
        assert_eq!(fail_index(&[0xc3, 0xa9, 0xa9]), Some(2));
    }

    #[test]
    fn incomplete_sequence_where_next_byte_is_not_continuation() {
        assert_eq!(fail_index(&[0xe2, 0x82, b'a']), Some(2));
        assert_eq!(fail_index(&[0xf0, 0x9d, 0x84, 0x41]), Some(3));
    }

    #[test]
    fn truncated_sequence_at_message_end_fails_on_finish() {
        for t in [&[0xc3][..], &[0xe2, 0x82], &[0xf0, 0x9d, 0x84]] {
            let mut v = Utf8Validator::new();
            assert!(v.feed(t).is_ok());
            assert!(v.is_mid_sequence());
            assert_eq!(v.finish(), Err(ProtocolError::InvalidUtf8));
            // finish resets
            assert!(v.feed(b"ok").is_ok());
            assert!(v.finish().is_ok());
        }
    }

    #[test]
    fn invalid_byte_inside_chunk_fails_immediately() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"hello\xed\xa0\x80world").is_err());
    }

    proptest! {
        #[test]
        fn agrees_with_std_under_any_split(bytes in proptest::collection::vec(any::<u8>(), 0..64), splits in proptest::collection::vec(0usize..64, 0..6)) {
            let expect = std::str::from_utf8(&bytes).is_ok();
            let mut cuts: Vec<usize> = splits.into_iter().map(|s| s % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut v = Utf8Validator::new();
            let mut prev = 0;
            let mut ok = true;
            for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
                if v.feed(&bytes[prev..c]).is_err() { ok = false; break; }
                prev = c;
            }
            if ok { ok = v.finish().is_ok(); }
            prop_assert_eq!(ok, expect);
        }

        #[test]
        fn valid_strings_pass_under_any_split(s in ".*", cut in 0usize..1000) {
            let b = s.as_bytes();
            let c = cut % (b.len() + 1);
            let mut v = Utf8Validator::new();
            prop_assert!(v.feed(&b[..c]).is_ok());
            prop_assert!(v.feed(&b[c..]).is_ok());
            prop_assert!(v.finish().is_ok());
        }

        #[test]
        fn fails_at_first_invalid_byte(bytes in proptest::collection::vec(any::<u8>(), 1..32)) {
            // byte-at-a-time failure index == std's valid_up_to + (something within the bad sequence)
            if let Err(e) = std::str::from_utf8(&bytes) {
                let idx = fail_index(&bytes);
                match e.error_len() {
                    Some(n) => {
                        let at = e.valid_up_to();
                        let expect = if seq_len(bytes[at]) == 0 { at } else { at + n };
                        prop_assert_eq!(idx, Some(expect));
                    }
                    None => prop_assert_eq!(idx, Some(bytes.len())),
                }
            }
        }
    }
}
