//! The model-level fuzz targets' bodies (`ossify::fuzz`: config.json, tokenizer.json, GGUF metadata → config)
//! over their committed seeds and every crash reproducer the fuzzer found (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`), in the normal test suite. A reproducer is named after the bug it pins; each
//! also has a test of its own below, named the same way, that asserts the one clear error ossify now gives.

use std::path::PathBuf;

use ossify::fuzz;

#[path = "../fuzz/test_files.rs"]
mod test_files;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    test_files::files(&fuzz_dir(), kind, target)
}

fn reproducer(target: &str, name: &str) -> Vec<u8> {
    test_files::reproducer(&fuzz_dir(), target, name)
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

fn golden_tokenizer_json() -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/tiny/tokenizer.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Both ways ossify loads a tokenizer.json (the text tokenizer, and the GGUF vocabulary of a checkpoint folder)
/// refuse `bytes` with one error naming the file and containing `why`.
fn assert_tokenizer_refused(bytes: &[u8], why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let tj = dir.path().join("tokenizer.json");
    std::fs::write(&tj, bytes).unwrap();
    let Err(e) = ossify::tokenizer::TextTokenizer::from_tokenizer_json(&tj) else {
        panic!("accepted as a text tokenizer");
    };
    let e = format!("{e:#}");
    assert!(
        e.starts_with(&tj.display().to_string()) && e.contains(why),
        "{e}"
    );
    let Err(e) = ossify::tokenizer::GgufVocab::from_dir(dir.path(), 544) else {
        panic!("accepted as a GGUF vocabulary");
    };
    let e = format!("{e:#}");
    assert!(
        e.contains(&tj.display().to_string()) && e.contains(why),
        "{e}"
    );
}

/// tokenizers 0.22 panics (`expect("Helper")`, decoders/mod.rs) when the value of `decoder` is not valid JSON,
/// and `TextTokenizer::from_tokenizer_json` handed it the bytes before checking the syntax: exit 101 with a
/// backtrace. Found by the tokenizer_json target (reproducer: golden/tiny's tokenizer.json with 8 bytes of
/// binary where the decoder's `{"t` was).
#[test]
fn fuzz_tokenizer_decoder_json_syntax_error_panics_in_tokenizers() {
    let data = reproducer(
        "tokenizer_json",
        "decoder_json_syntax_error_panics_in_tokenizers",
    );
    let e = fuzz::tokenizer_json(&data).unwrap_err();
    assert!(e.contains("tokenizer.json: not valid JSON"), "{e}");
    assert_tokenizer_refused(&data, "not valid JSON");
    assert_tokenizer_refused(br#"{"decoder": [}"#, "not valid JSON");
}

/// The same library panics (`expect("Precompiled")`, normalizers/mod.rs) on valid JSON: a `Precompiled`
/// normalizer without a `precompiled_charsmap`. Found reading that code after the panic above; the load is
/// now guarded, so any panic left in the library is one error line.
#[test]
fn fuzz_tokenizer_precompiled_normalizer_without_charsmap_panics_in_tokenizers() {
    let mut tj = golden_tokenizer_json();
    tj["normalizer"] = serde_json::json!({"type": "Precompiled"});
    let bytes = serde_json::to_vec(&tj).unwrap();
    assert_tokenizer_refused(
        &bytes,
        "the tokenizers library cannot load it: malformed (Precompiled",
    );
    assert!(fuzz::tokenizer_json(&bytes).is_err());
}
