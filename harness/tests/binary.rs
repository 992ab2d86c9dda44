//! The `pushspec` binary itself starts, knows its version, and refuses a
//! bad flag with the usage exit code. (Also makes cargo build the binary
//! that the workspace's CLI tests drive as a separate process.)

use std::process::Command;

#[test]
fn version_and_usage_error() {
    let exe = env!("CARGO_BIN_EXE_pushspec");
    let o = Command::new(exe).arg("--version").output().unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("pushspec "));
    let o = Command::new(exe)
        .args(["run", "--jobs", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
