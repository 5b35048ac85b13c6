//! Payload masking (RFC 6455 §5.3), word-at-a-time in safe code.

/// XOR `buf` with the mask, where `buf[0]` corresponds to mask byte index
/// `offset % 4`. Processes 32 bytes per iteration as four `u64` words (the
/// compiler turns this into SIMD), then the tail byte by byte.
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = mask;
    m.rotate_left(offset & 3);
    if buf.len() < 8 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= m[i & 3];
        }
        return;
    }
    let m64 = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut big = buf.chunks_exact_mut(32);
    for chunk in &mut big {
        for w in chunk.chunks_exact_mut(8) {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            let v = u64::from_ne_bytes(a) ^ m64;
            w.copy_from_slice(&v.to_ne_bytes());
        }
    }
    let rest = big.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let v = u64::from_ne_bytes(a) ^ m64;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    // Every chunk above is a multiple of 4 long, so the tail starts at mask index 0.
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(i + offset) % 4];
        }
    }

    #[test]
    fn mask_matches_bytewise_for_all_lengths_and_offsets() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..100 {
            for off in 0..8 {
                let orig: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut a = orig.clone();
                let mut b = orig.clone();
                apply_mask(&mut a, mask, off);
                naive(&mut b, mask, off);
                assert_eq!(a, b, "len {len} off {off}");
            }
        }
    }

    #[test]
    fn mask_is_an_involution() {
        let mask = [1, 2, 3, 4];
        let orig: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let mut a = orig.clone();
        apply_mask(&mut a, mask, 3);
        assert_ne!(a, orig);
        apply_mask(&mut a, mask, 3);
        assert_eq!(a, orig);
    }

    #[test]
    fn mask_split_at_any_point_equals_whole() {
        let mask = [0xde, 0xad, 0xbe, 0xef];
        let orig: Vec<u8> = (0..77u32).map(|i| (i * 13) as u8).collect();
        let mut whole = orig.clone();
        apply_mask(&mut whole, mask, 0);
        for split in 0..orig.len() {
            let mut parts = orig.clone();
            let (x, y) = parts.split_at_mut(split);
            apply_mask(x, mask, 0);
            apply_mask(y, mask, split);
            assert_eq!(parts, whole);
        }
    }
}
