//! Throughput of the `text/event-stream` parser on ~4 MiB of typical event-stream text, fed in
//! 16 KiB chunks: `Parser::feed` (owned `Event`s, four small allocations per event) and
//! `Parser::feed_with` (borrowed events, no allocation).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pushspec::wire::event_stream::{LineEnding, Parser};

const TARGET: usize = 4 * 1024 * 1024;
const CHUNK: usize = 16 * 1024;

/// `id: N`, `event: update`, a ~200-byte JSON `data` line and a blank line, repeated to ~4 MiB.
fn corpus(ending: LineEnding) -> Vec<u8> {
    let nl = std::str::from_utf8(ending.as_bytes()).unwrap();
    let mut out = String::with_capacity(TARGET + 512);
    let mut n = 0u64;
    while out.len() < TARGET {
        n += 1;
        let json = format!(
            concat!(
                r#"{{"seq":{n},"kind":"update","ts":"2026-01-01T00:00:{s:02}Z","#,
                r#""user":{{"id":"u{u}","name":"Ada Lovelace"}},"items":[{a},{b},{c}],"#,
                r#""text":"lorem ipsum dolor sit amet, consectetur adipiscing elit","ok":true}}"#,
            ),
            n = n,
            s = n % 60,
            u = n % 997,
            a = n % 7,
            b = n % 11,
            c = n % 13,
        );
        out.push_str(&format!("id: {n}{nl}event: update{nl}data: {json}{nl}{nl}"));
    }
    out.into_bytes()
}

fn feed(input: &[u8]) -> usize {
    let mut parser = Parser::new();
    let mut out = Vec::with_capacity(128);
    let mut events = 0;
    for chunk in input.chunks(CHUNK) {
        parser.feed(black_box(chunk), &mut out);
        events += out.len();
        out.clear();
    }
    parser.finish();
    events
}

/// The same through the borrowing API: no allocation per event.
fn feed_with(input: &[u8]) -> usize {
    let mut parser = Parser::new();
    let mut bytes = 0;
    for chunk in input.chunks(CHUNK) {
        parser.feed_with(black_box(chunk), |e| bytes += e.data.len());
    }
    parser.finish();
    bytes
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse_parser");
    for (name, ending) in [("feed_lf", LineEnding::Lf), ("feed_crlf", LineEnding::CrLf)] {
        let input = corpus(ending);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| b.iter(|| black_box(feed(&input))));
        group.bench_function(format!("{name}_borrowed"), |b| {
            b.iter(|| black_box(feed_with(&input)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
