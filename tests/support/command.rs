//! The `pushspec` command line run in-process, as the CLI-level tests
//! (cli, bench, clients, tls, report) drive it, and their scratch folders.

use std::path::PathBuf;

use clap::Parser;
use pushspec::cli::{Cli, execute};

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `pushspec ARGS...` in this process; what it printed and its exit code.
pub async fn pushspec(args: &[&str]) -> Output {
    let cli = Cli::try_parse_from(std::iter::once("pushspec").chain(args.iter().copied()))
        .expect("arguments parse");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = execute(cli, &mut out, &mut err).await;
    Output {
        code,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// An empty folder of this test process (the pid keeps the test binaries,
/// which run one after another or at once, apart).
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pushspec-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
