//! Codec micro-benchmarks: masking vs. a memcpy baseline, and frame decoding.
//!
//! Run with `cargo bench --bench codec`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prefork_ws::protocol::frame::encode_frame;
use prefork_ws::protocol::{apply_mask, DecoderConfig, Event, MessageDecoder};

const MIB: usize = 1024 * 1024;

fn bench_mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask_1MiB");
    g.throughput(Throughput::Bytes(MIB as u64));
    let mut buf: Vec<u8> = (0..MIB).map(|i| i as u8).collect();
    g.bench_function("apply_mask", |b| {
        b.iter(|| apply_mask(black_box(&mut buf), black_box([0x12, 0x34, 0x56, 0x78]), 0))
    });
    g.bench_function("apply_mask_unaligned_offset", |b| {
        b.iter(|| {
            apply_mask(
                black_box(&mut buf[1..]),
                black_box([0x12, 0x34, 0x56, 0x78]),
                3,
            )
        })
    });
    let src = buf.clone();
    let mut dst = vec![0u8; MIB];
    g.bench_function("memcpy_baseline", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    g.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_masked_frame");
    for (name, size) in [("small_32B", 32usize), ("large_64KiB", 64 * 1024)] {
        let payload = vec![b'x'; size];
        let mut frame = Vec::new();
        encode_frame(&mut frame, true, false, 2, &payload, Some([1, 2, 3, 4]));
        let mut work = frame.clone();
        let mut dec = MessageDecoder::new(DecoderConfig::default());
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                // decoding unmasks in place: restore the masked bytes first
                work.copy_from_slice(&frame);
                match dec.decode(black_box(&mut work)) {
                    Ok((n, Some(Event::Message { data, .. }))) => {
                        black_box((n, data.len()));
                    }
                    other => panic!("unexpected {other:?}"),
                }
            })
        });
    }
    // same 64 KiB message, but as 4 fragments (reassembly path)
    let payload = vec![b'x'; 64 * 1024];
    let mut frame = Vec::new();
    for (i, chunk) in payload.chunks(16 * 1024).enumerate() {
        encode_frame(
            &mut frame,
            i == 3,
            false,
            if i == 0 { 1 } else { 0 },
            chunk,
            Some([1, 2, 3, 4]),
        );
    }
    let mut work = frame.clone();
    let mut dec = MessageDecoder::new(DecoderConfig::default());
    g.throughput(Throughput::Bytes(payload.len() as u64));
    g.bench_function("fragmented_text_64KiB", |b| {
        b.iter(|| {
            work.copy_from_slice(&frame);
            let mut pos = 0;
            loop {
                match dec.decode(&mut work[pos..]) {
                    Ok((n, ev)) => {
                        pos += n;
                        if let Some(Event::Message { data, .. }) = ev {
                            black_box(data.len());
                            break;
                        }
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench_mask, bench_decode);
criterion_main!(benches);
