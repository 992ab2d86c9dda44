//! Throughput of the WebSocket frame codec on masked frames of 125 B,
//! 64 KiB and 16 MiB: encode (into a reused buffer), decode, and the bare
//! masking loop.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pushspec::wire::frame::{Frame, LengthEncoding, apply_mask, decode, encode, encode_into};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const SIZES: [(&str, usize); 3] = [
    ("125B", 125),
    ("64KiB", 64 * 1024),
    ("16MiB", 16 * 1024 * 1024),
];

fn frame_of(len: usize) -> Frame {
    let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
    Frame::binary(payload).masked(KEY)
}

fn configure(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    len: usize,
) {
    group.throughput(Throughput::Bytes(len as u64));
    if len >= 1 << 20 {
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(5));
    } else {
        group.sample_size(100);
        group.measurement_time(Duration::from_secs(3));
    }
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_masked");
    for (name, len) in SIZES {
        configure(&mut group, len);
        let frame = frame_of(len);
        let mut out = Vec::with_capacity(len + 14);
        group.bench_with_input(BenchmarkId::from_parameter(name), &frame, |b, frame| {
            b.iter(|| {
                out.clear();
                encode_into(black_box(frame), LengthEncoding::Minimal, None, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_masked");
    for (name, len) in SIZES {
        configure(&mut group, len);
        let wire = encode(&frame_of(len));
        group.bench_with_input(BenchmarkId::from_parameter(name), &wire, |b, wire| {
            b.iter(|| {
                let (frame, used) = decode(black_box(wire), u64::MAX)
                    .expect("valid frame")
                    .expect("complete frame");
                black_box((frame.payload.len(), used))
            })
        });
    }
    group.finish();
}

fn bench_mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply_mask");
    for (name, len) in SIZES {
        configure(&mut group, len);
        let mut buf = frame_of(len).payload;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), KEY, black_box(1)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_encode, bench_decode, bench_mask);
criterion_main!(benches);
