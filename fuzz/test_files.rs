//! The committed fuzz inputs, read for the normal test suite: shared by `formats/tests/fuzz_regressions.rs` and
//! `tests/fuzz_regressions.rs` (each includes this file with `#[path]`; the two crates' tests cannot share a
//! module otherwise). `fuzz_dir` is the repository's `fuzz/` folder.

use std::path::Path;

/// Every file in `fuzz/<kind>/<target>/` (kind: `seeds` or `regressions`) as (name, bytes), sorted by name;
/// none when the folder does not exist.
pub fn files(fuzz_dir: &Path, kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir.join(kind).join(target);
    let mut out: Vec<(String, Vec<u8>)> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// One crash reproducer, `fuzz/regressions/<target>/<name>`, by the name of the bug it pins.
#[allow(dead_code)] // formats has no reproducer of its own yet
pub fn reproducer(fuzz_dir: &Path, target: &str, name: &str) -> Vec<u8> {
    let p = fuzz_dir.join("regressions").join(target).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}
