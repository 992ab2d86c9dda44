//! Times whole case families against the in-process reference server, the
//! way `pushspec run` executes them (parallel jobs, one connection per case).
//! Run: `cargo bench --bench suite`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pushspec::case::file::load_embedded;
use pushspec::case::select::{Patterns, Selection};
use pushspec::engine::{self, Plan, Targets};
use pushspec::outcome::Outcome;
use pushspec::profile::{Capabilities, Profile};
use pushspec::settings::Settings;
use pushspec_reference_server::{Config, Server};

fn suite(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        Server::bind(([127, 0, 0, 1], 0).into(), Config::conformance())
            .await
            .unwrap()
            .spawn_isolated()
            .unwrap()
    });
    let addr = server.local_addr();
    let all = load_embedded().unwrap();
    let mut group = c.benchmark_group("suite");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for pattern in ["ws.*", "sse.*"] {
        let sel = Selection::new(
            Patterns::new(&[pattern]).unwrap(),
            Patterns::new(&["sse.keepalive.*"]).unwrap(),
        );
        let cases: Vec<_> = all.iter().filter(|c| sel.selects(&c.id)).cloned().collect();
        if cases.is_empty() {
            continue;
        }
        group.bench_function(pattern, |b| {
            b.iter(|| {
                let plan = Plan {
                    cases: cases.clone(),
                    targets: Targets::reference(addr),
                    settings: Settings {
                        timeout: Duration::from_secs(2),
                        max_message: 64 << 20,
                    },
                    capabilities: Capabilities {
                        profile: Profile::reference(),
                        publish: true,
                        skip_timing: true,
                    },
                    known_failing: None,
                    strict: false,
                    jobs: 8,
                    confirm: false,
                    run_budget: None,
                };
                let results = rt
                    .block_on(engine::run(plan, |_| {}, std::future::pending()))
                    .results;
                assert!(results.iter().all(|r| r.outcome != Outcome::Fail));
            })
        });
    }
    group.finish();
    drop(server);
}

criterion_group!(benches, suite);
criterion_main!(benches);
