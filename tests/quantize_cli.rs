//! `ossify quantize` from the command line: bad input fails with a clear message and writes nothing; shapes
//! that a type cannot hold fall back the way llama.cpp does, and say so.

mod common;

use common::ossify;
use std::path::{Path, PathBuf};
use std::process::Output;

use ossify_formats::gguf::{GgufFile, GgufWriter, MetaValue};
use ossify_formats::DType;

fn golden(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden/llamacpp/quantize")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails, says `needle`, and leaves neither the output nor a `.partial` behind.
fn assert_refused(dir: &Path, out: &Path, o: &Output, needle: &str) {
    assert!(!o.status.success(), "should fail: {}", stderr(o));
    assert!(
        stderr(o).contains(needle),
        "stderr lacks '{needle}': {}",
        stderr(o)
    );
    assert!(!out.exists(), "output was written");
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A small GGUF with rows of 40 (not whole 32-element blocks).
fn odd_rows_gguf(path: &Path) {
    let mut w = GgufWriter::new();
    // Not "gpt-oss": a gpt-oss GGUF's metadata is checked before re-typing (a file without block_count is
    // refused), and this fixture is only about rows that are not whole blocks.
    w.add_kv("general.architecture", MetaValue::String("llama".into()))
        .unwrap();
    let shapes: [(&str, [usize; 2]); 2] =
        [("blk.0.attn_q.weight", [4, 40]), ("output.weight", [4, 40])];
    for (n, s) in shapes {
        w.add_tensor(n, DType::F32, &s).unwrap();
    }
    let out = w.create(path).unwrap();
    let bytes: Vec<u8> = (0..160)
        .flat_map(|i| (i as f32 * 0.01).to_le_bytes())
        .collect();
    out.write_tensor(0, &bytes).unwrap();
    out.write_tensor(1, &bytes).unwrap();
    out.finish().unwrap();
}

#[test]
fn unknown_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let o = ossify(&[
        "quantize",
        &golden("tiny-bf16-noisy.bf16.gguf"),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q4_k_m",
    ]);
    assert_refused(dir.path(), &out, &o, "unknown quantization type 'q4_k_m'");
    let o = ossify(&[
        "quantize",
        &golden("tiny-bf16-noisy.bf16.gguf"),
        "-o",
        out.to_str().unwrap(),
        "--tensor-type",
        "attn=q6_k",
    ]);
    assert_refused(dir.path(), &out, &o, "unknown tensor type 'q6_k'");
}

#[test]
fn requantizing_needs_allow_requantize() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let src = golden("tiny-bf16-noisy.q8_0.gguf");
    let o = ossify(&[
        "quantize",
        &src,
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q4_0",
        "-q",
    ]);
    assert_refused(dir.path(), &out, &o, "--allow-requantize");
    assert!(stderr(&o).contains("is already Q8_0"), "{}", stderr(&o));
    let o = ossify(&[
        "quantize",
        &src,
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q4_0",
        "-q",
        "--allow-requantize",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(
        f.tensor_info("blk.0.attn_q.weight").unwrap().dtype,
        DType::Q4_0
    );
}

#[test]
fn same_type_is_copied_without_allow_requantize() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let src = golden("tiny-bf16-noisy.mxfp4_moe.gguf");
    let o = ossify(&[
        "quantize",
        &src,
        "-o",
        out.to_str().unwrap(),
        "--type",
        "mxfp4_moe",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = GgufFile::open(&out).unwrap();
    let b = GgufFile::open(Path::new(&src)).unwrap();
    for t in &b.tensors {
        let o = a.tensor_info(&t.name).unwrap();
        assert_eq!(o.dtype, t.dtype);
        assert!(a.tensor_bytes(o) == b.tensor_bytes(t), "{}", t.name);
    }
}

#[test]
fn rows_that_are_not_whole_blocks_fall_back_to_f16_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let src: PathBuf = dir.path().join("odd.gguf");
    odd_rows_gguf(&src);
    let out = dir.path().join("o.gguf");
    let o = ossify(&[
        "quantize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q8_0",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("blk.0.attn_q.weight: rows of 40 are not a multiple"),
        "{}",
        stderr(&o)
    );
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(
        f.tensor_info("blk.0.attn_q.weight").unwrap().dtype,
        DType::F16
    );
    // output.weight: the Q8_0 rule cannot hold rows of 40 either -> F16 (llama.cpp's tensor_type_fallback)
    assert_eq!(f.tensor_info("output.weight").unwrap().dtype, DType::F16);
}

#[test]
fn a_named_type_that_cannot_hold_the_tensor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("odd.gguf");
    odd_rows_gguf(&src);
    let outdir = tempfile::tempdir().unwrap();
    let out = outdir.path().join("o.gguf");
    let o = ossify(&[
        "quantize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q8_0",
        "--output-tensor-type",
        "q4_0",
    ]);
    assert_refused(outdir.path(), &out, &o, "output.weight");
    assert!(
        stderr(&o).contains("--output-tensor-type Q4_0 cannot hold it"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn existing_output_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    std::fs::write(&out, b"keep").unwrap();
    let o = ossify(&[
        "quantize",
        &golden("tiny-bf16-noisy.bf16.gguf"),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");
}

#[test]
fn output_bytes_do_not_depend_on_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/tiny-bf16-noisy");
    let mut files = Vec::new();
    for t in ["1", "3"] {
        let out = dir.path().join(format!("t{t}.gguf"));
        let o = ossify(&[
            "quantize",
            src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--mxfp4-scale",
            "mse",
            "--threads",
            t,
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        files.push(std::fs::read(&out).unwrap());
    }
    assert!(files[0] == files[1]);
}
