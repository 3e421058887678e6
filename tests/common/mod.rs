//! Helpers the end-to-end tests share: where the golden data is, and running the built binary.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A path under golden/.
pub fn golden(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(p)
}

/// Runs the `ossify` binary built for this test run.
pub fn ossify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ossify"))
        .args(args)
        .output()
        .expect("run ossify")
}

/// Runs the binary and checks its exit code, showing its stderr when the code differs.
pub fn ossify_exit(args: &[&str], code: i32) -> Output {
    let o = ossify(args);
    assert_eq!(
        o.status.code(),
        Some(code),
        "ossify {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A path as an argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The command's stdout as JSON, or a panic showing what it printed instead.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}
