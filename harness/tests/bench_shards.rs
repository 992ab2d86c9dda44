//! Two `pushspec bench --shard K/2` processes against one target at the
//! same time, then `pushspec bench merge`: the merged report holds
//! exactly what the shards measured.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn exe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pushspec"))
}

/// Waits for a child at most `limit`, killing it after that.
fn wait(mut child: Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a shard ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shard_processes_merge_exactly() {
    let server = pushspec_reference_server::Server::bind(
        ([127, 0, 0, 1], 0).into(),
        pushspec_reference_server::Config::conformance(),
    )
    .await
    .unwrap()
    .spawn_isolated()
    .unwrap();
    let ws = format!("ws://{}/", server.local_addr());
    let dir = std::env::temp_dir().join(format!("pushspec-shards-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<_> = (1..=2).map(|k| dir.join(format!("s{k}.json"))).collect();
    let children: Vec<Child> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            exe()
                .args(["bench", "ws-echo", "--ws", &ws, "--connections", "3"])
                .args(["--duration", "500ms", "--warmup", "100ms"])
                .args(["--shard", &format!("{}/2", i + 1), "--json"])
                .arg(f)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let shard_ops = tokio::task::spawn_blocking(move || {
        for c in children {
            assert!(wait(c, Duration::from_secs(60)).success());
        }
    });
    shard_ops.await.unwrap();
    let shards: Vec<_> = files.iter().map(|f| json(f)).collect();
    for (i, s) in shards.iter().enumerate() {
        assert_eq!(s["config"]["shard"]["k"], i + 1, "{s}");
        assert_eq!(s["config"]["connections"], 3, "{s}");
        assert!(s["results"]["operations"].as_u64().unwrap() > 0, "{s}");
    }

    let merged = dir.join("merged.json");
    let o = exe()
        .args(["bench", "merge"])
        .args(&files)
        .arg("--json")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("merged from   2 shards"));
    let m = json(&merged);
    let sum = |key: &str| -> u64 {
        shards
            .iter()
            .map(|s| s["results"][key].as_u64().unwrap())
            .sum()
    };
    assert_eq!(m["results"]["operations"], sum("operations"), "{m}");
    let counts: u64 = shards
        .iter()
        .map(|s| s["results"]["latency_us"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(m["results"]["latency_us"]["count"], counts, "{m}");
    let max = shards
        .iter()
        .map(|s| s["results"]["latency_us"]["max"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(m["results"]["latency_us"]["max"], max, "{m}");
    assert!(m["config"].get("shard").is_none(), "{m}");
    assert_eq!(m["config"]["connections"], 3, "{m}");
    assert_eq!(m["shards"].as_array().unwrap().len(), 2, "{m}");

    // Shards that do not belong together are refused (exit 2).
    for (args, says) in [
        (vec![&files[0], &files[0]], "both shard 1/2"),
        (vec![&files[0]], "shard 2/2 missing"),
        (vec![&merged], "is not a shard"),
    ] {
        let o = exe().args(["bench", "merge"]).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{err}");
    }
}
