//! `ossify convert` against llama.cpp's own converter: on every golden checkpoint and out type, every tensor's
//! name, type, shape and bytes, and every metadata value llama.cpp reads, equal those in the GGUF that
//! llama.cpp's convert_hf_to_gguf.py wrote from the same input (golden/llamacpp/, see golden/README.md).
//! Tensor order and general.* provenance keys (name, size label, ...) may differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ossify_formats::gguf::{GgufFile, MetaValue};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn golden(rel: &str) -> PathBuf {
    root().join("golden").join(rel)
}

fn convert(src: &Path, out: &Path, extra: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("convert")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .expect("run ossify");
    assert!(
        o.status.success(),
        "ossify convert {} {:?} failed: {}",
        src.display(),
        extra,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// general.* keys that describe provenance (gguf-py `Metadata`), not the model; allowed to differ.
fn is_provenance(key: &str) -> bool {
    key.starts_with("general.")
        && !matches!(
            key,
            "general.architecture"
                | "general.file_type"
                | "general.quantization_version"
                | "general.alignment"
                | "general.type"
        )
}

fn assert_same_model(ours: &Path, reference: &Path) {
    let a = GgufFile::open(ours).expect("open ours");
    let b = GgufFile::open(reference).expect("open reference");
    let kv = |f: &GgufFile| -> BTreeMap<String, MetaValue> {
        f.metadata
            .iter()
            .filter(|(k, _)| !is_provenance(k))
            .cloned()
            .collect()
    };
    let (ka, kb) = (kv(&a), kv(&b));
    for (k, v) in &kb {
        match ka.get(k) {
            None => panic!(
                "{}: metadata key '{k}' missing (llama.cpp has {})",
                ours.display(),
                v.summary()
            ),
            Some(x) => assert_eq!(x, v, "{}: metadata key '{k}'", ours.display()),
        }
    }
    for k in ka.keys() {
        assert!(
            kb.contains_key(k),
            "{}: extra metadata key '{k}'",
            ours.display()
        );
    }
    assert_eq!(a.alignment, b.alignment);
    assert_eq!(a.tensors.len(), b.tensors.len(), "tensor count");
    for tb in &b.tensors {
        let ta = a
            .tensor_info(&tb.name)
            .unwrap_or_else(|| panic!("{}: tensor '{}' missing", ours.display(), tb.name));
        assert_eq!(
            (ta.dtype, &ta.shape),
            (tb.dtype, &tb.shape),
            "tensor '{}'",
            tb.name
        );
        assert!(
            a.tensor_bytes(ta) == b.tensor_bytes(tb),
            "{}: tensor '{}' bytes differ from llama.cpp's",
            ours.display(),
            tb.name
        );
    }
}

/// (source folder, --outtype, llama.cpp's output)
const RUNS: &[(&str, &str, &str)] = &[
    ("tiny", "f32", "llamacpp/tiny.f32.gguf"),
    ("tiny", "f16", "llamacpp/tiny.f16.gguf"),
    ("tiny", "bf16", "llamacpp/tiny.bf16.gguf"),
    ("tiny", "q8_0", "llamacpp/tiny.q8_0.gguf"),
    ("tiny-bf16", "bf16", "llamacpp/tiny-bf16.bf16.gguf"),
    ("tiny-bf16", "f32", "llamacpp/tiny-bf16.f32.gguf"),
];

#[test]
fn equals_llama_cpp_converter_on_every_golden_input() {
    let dir = tempfile::tempdir().unwrap();
    for (src, outtype, reference) in RUNS {
        let out = dir.path().join(format!("{src}.{outtype}.gguf"));
        convert(&golden(src), &out, &["--outtype", outtype]);
        assert_same_model(&out, &golden(reference));
    }
}

#[test]
fn equals_llama_cpp_converter_when_streamed_row_by_row() {
    // Every tensor goes out in one-row pieces (dense experts: one expert per piece), each written at its offset
    // and its source range released in between: the file must not change.
    let dir = tempfile::tempdir().unwrap();
    for (src, outtype, reference) in RUNS {
        let out = dir.path().join(format!("{src}.{outtype}.gguf"));
        convert(
            &golden(src),
            &out,
            &["--outtype", outtype, "--piece-bytes", "1"],
        );
        assert_same_model(&out, &golden(reference));
    }
}

#[test]
fn auto_outtype_is_the_source_type() {
    // Published gpt-oss stores its non-expert matrices in BF16: auto = bf16, as llama.cpp's heuristic decides.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("auto.gguf");
    convert(&golden("tiny"), &out, &[]);
    assert_same_model(&out, &golden("llamacpp/tiny.bf16.gguf"));
}

#[test]
fn original_layout_equals_hf_layout_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for outtype in ["bf16", "f32", "q8_0"] {
        let hf = dir.path().join(format!("hf.{outtype}.gguf"));
        let orig = dir.path().join(format!("orig.{outtype}.gguf"));
        convert(&golden("tiny"), &hf, &["--outtype", outtype]);
        convert(&golden("tiny/original"), &orig, &["--outtype", outtype]);
        let (a, b) = (std::fs::read(&hf).unwrap(), std::fs::read(&orig).unwrap());
        assert!(
            a == b,
            "original/ -> GGUF differs from HF -> GGUF with --outtype {outtype}"
        );
        assert_same_model(&orig, &golden(&format!("llamacpp/tiny.{outtype}.gguf")));
    }
}

#[test]
fn output_is_identical_at_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    for (src, outtype) in [("tiny", "q8_0"), ("tiny-bf16", "bf16")] {
        let one = dir.path().join(format!("{src}.t1.gguf"));
        let two = dir.path().join(format!("{src}.t2.gguf"));
        convert(
            &golden(src),
            &one,
            &["--outtype", outtype, "--threads", "1"],
        );
        convert(
            &golden(src),
            &two,
            &["--outtype", outtype, "--threads", "2"],
        );
        assert!(
            std::fs::read(&one).unwrap() == std::fs::read(&two).unwrap(),
            "{src} --outtype {outtype}: --threads 1 and 2 differ"
        );
    }
}

#[test]
fn json_summary_describes_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.gguf");
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .args(["convert", "--json", "--outtype", "q8_0", "-o"])
        .arg(&out)
        .arg(golden("tiny"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["outtype"], "q8_0");
    assert_eq!(v["layout"], "hf");
    // llama.cpp's q8_0 file says MOSTLY_Q8_0 (7); 4 layers x 19 tensors + 3.
    assert_eq!(v["file_type"], 7);
    assert_eq!(v["tensors"], 79);
    assert_eq!(v["file_bytes"], std::fs::metadata(&out).unwrap().len());
}
