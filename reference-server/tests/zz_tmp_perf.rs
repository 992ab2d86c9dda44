mod common;
use common::*;
use pushspec_reference_server::Config;
use std::time::Instant;

#[tokio::test]
async fn perf_sanity() {
    let h = start(Config::default()).await;
    let mut c = ws(&h).await;
    let t = Instant::now();
    let payload = "a".repeat(16 << 20);
    c.send(&masked(0x81, payload.as_bytes())).await;
    let (b0, p) = c.frame().await;
    assert_eq!((b0, p.len()), (0x81, 16 << 20));
    println!("16 MiB text echo: {:?}", t.elapsed());
    let t = Instant::now();
    let mut bytes = Vec::new();
    let frag = vec![b'b'; 64];
    let n = (4 << 20) / 64;
    for i in 0..n {
        let op = if i == 0 { 0x01 } else { 0x00 };
        let fin = if i == n - 1 { 0x80 } else { 0 };
        bytes.extend(masked(op | fin, &frag));
    }
    c.send(&bytes).await;
    let (b0, p) = c.frame().await;
    assert_eq!((b0, p.len()), (0x81, 4 << 20));
    println!("4 MiB in 65536 frames: {:?}", t.elapsed());
    let t = Instant::now();
    for _ in 0..1000 {
        c.send(&masked(0x82, &[7; 16])).await;
        c.frame().await;
    }
    println!("1000 round trips: {:?}", t.elapsed());
}
