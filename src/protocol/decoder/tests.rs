use super::*;

#[test]
fn idle_decoder_is_small() {
    assert!(std::mem::size_of::<MessageDecoder>() < 100);
    let _ = MessageDecoder::new(DecoderConfig::default());
}
