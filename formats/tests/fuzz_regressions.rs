//! The fuzz targets' bodies (`ossify_formats::fuzz`) over their committed seeds and every crash reproducer the
//! fuzzer found (`fuzz/seeds/<target>/`, `fuzz/regressions/<target>/`), in the normal test suite. A reproducer
//! is named after the bug it pins; each also has a test of its own below, named the same way, that asserts the
//! one clear error the reader now gives.

use std::path::PathBuf;

use ossify_formats::fuzz;

#[path = "../../fuzz/test_files.rs"]
mod test_files;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    test_files::files(&fuzz_dir(), kind, target)
}

#[test]
fn fuzz_seeds_are_accepted() {
    let gguf = files("seeds", "gguf");
    let st = files("seeds", "safetensors");
    assert!(gguf.len() >= 5 && st.len() >= 3, "seeds missing");
    for (name, data) in gguf {
        fuzz::gguf(&data).unwrap_or_else(|e| panic!("gguf seed {name}: {e}"));
    }
    for (name, data) in st {
        fuzz::safetensors(&data).unwrap_or_else(|e| panic!("safetensors seed {name}: {e}"));
    }
}

/// Every reproducer runs to a result (a panic fails the test); none is accepted as a valid file.
#[test]
fn fuzz_reproducers_are_refused_cleanly() {
    for (name, data) in files("regressions", "gguf") {
        assert!(
            fuzz::gguf(&data).is_err(),
            "gguf reproducer {name} accepted"
        );
    }
    for (name, data) in files("regressions", "safetensors") {
        assert!(
            fuzz::safetensors(&data).is_err(),
            "safetensors reproducer {name} accepted"
        );
    }
}

#[test]
fn fuzz_split_files_cuts_at_the_separator() {
    let sep = fuzz::FILE_SEPARATOR;
    let joined = [&b"a"[..], sep, b"", sep, b"c", sep, b"d"].concat();
    assert_eq!(
        fuzz::split_files(&joined, 3),
        vec![&b"a"[..], b"", &[b"c", sep, b"d"].concat()[..]]
    );
    assert_eq!(fuzz::split_files(b"abc", 5), vec![&b"abc"[..]]);
}
