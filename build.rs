//! `ossify --version` names the commit it was built from; without git (a source tarball) it says so.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let full = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) => format!("{version} (commit {c})"),
        None => format!("{version} (commit unknown: built outside git)"),
    };
    println!("cargo:rustc-env=OSSIFY_VERSION={full}");
    println!("cargo:rerun-if-changed=build.rs");
    // rebuild when HEAD moves (a worktree keeps its HEAD apart from the shared refs)
    if let Some(d) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={d}/HEAD");
    }
    // and when the branch HEAD names moves: only that ref, so a commit on another branch (or another worktree)
    // does not rebuild this crate
    if let (Some(d), Some(r)) = (
        git(&["rev-parse", "--git-common-dir"]),
        git(&["symbolic-ref", "-q", "HEAD"]),
    ) {
        println!("cargo:rerun-if-changed={d}/{r}");
        println!("cargo:rerun-if-changed={d}/packed-refs");
    }
}
