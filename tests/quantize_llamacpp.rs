//! Bit-exactness with llama.cpp: ossify's `quantize` on the BF16 GGUF that llama.cpp's converter made from
//! golden/tiny-bf16-noisy must give, tensor for tensor, the bytes llama.cpp's `llama_model_quantize` wrote
//! (golden/llamacpp/quantize/, made by its generate.py).

use std::path::{Path, PathBuf};

use ossify::quantize::preset::Preset;
use ossify::quantize::{quantize_gguf, Mxfp4Scale, QuantizeOptions, TypeRules};
use ossify_formats::gguf::constants::GENERAL_FILE_TYPE;
use ossify_formats::gguf::GgufFile;
use ossify_formats::DType;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden/llamacpp/quantize")
        .join(name)
}

fn options(preset: &str) -> QuantizeOptions {
    let mut rules = TypeRules::new(Preset::by_name(preset).unwrap());
    if preset.starts_with("q4") || preset.starts_with("q5") {
        // llama.cpp's default for output.weight there is Q6_K; generate.py asked it for Q8_0.
        rules.output_tensor_type = Some(DType::Q8_0);
    }
    QuantizeOptions {
        rules,
        allow_requantize: false,
        allow_nonfinite: false,
        mxfp4_scale: Mxfp4Scale::Ref,
        imatrix: None,
        progress: false,
        split: Default::default(),
        existing: ossify_formats::atomic::Existing::Refuse,
        name: None,
        dry_run: false,
    }
}

fn check(preset: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    quantize_gguf(&golden("tiny-bf16-noisy.bf16.gguf"), &out, &options(preset)).unwrap();
    let ours = GgufFile::open(&out).unwrap();
    let theirs = GgufFile::open(&golden(&format!("tiny-bf16-noisy.{preset}.gguf"))).unwrap();
    assert_eq!(ours.tensors.len(), theirs.tensors.len());
    let mut quantized = 0;
    for t in &theirs.tensors {
        let o = ours
            .tensor_info(&t.name)
            .unwrap_or_else(|| panic!("{preset}: {} missing", t.name));
        assert_eq!(
            (o.dtype, &o.shape),
            (t.dtype, &t.shape),
            "{preset}: {}",
            t.name
        );
        assert!(
            ours.tensor_bytes(o) == theirs.tensor_bytes(t),
            "{preset}: {} ({}) bytes differ from llama.cpp's",
            t.name,
            t.dtype
        );
        quantized += usize::from(t.dtype.is_quantized());
    }
    assert!(
        quantized > 10,
        "{preset}: only {quantized} quantized tensors"
    );
    assert_eq!(
        ours.get(GENERAL_FILE_TYPE).and_then(|v| v.as_u32()),
        theirs.get(GENERAL_FILE_TYPE).and_then(|v| v.as_u32())
    );
}

#[test]
fn mxfp4_moe_matches_llama_quantize() {
    check("mxfp4_moe");
}

#[test]
fn q8_0_matches_llama_quantize() {
    check("q8_0");
}

#[test]
fn q4_0_matches_llama_quantize() {
    check("q4_0");
}

#[test]
fn q4_1_matches_llama_quantize() {
    check("q4_1");
}

#[test]
fn q5_0_matches_llama_quantize() {
    check("q5_0");
}

#[test]
fn q5_1_matches_llama_quantize() {
    check("q5_1");
}

/// An HF BF16 folder goes through convert's plan and gives the same tensors as llama.cpp's converter followed
/// by llama.cpp's quantizer.
#[test]
fn hf_folder_input_matches_convert_then_llama_quantize() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/tiny-bf16-noisy");
    ossify::quantize::quantize_to_gguf(&src, &out, &options("mxfp4_moe")).unwrap();
    let ours = GgufFile::open(&out).unwrap();
    let theirs = GgufFile::open(&golden("tiny-bf16-noisy.mxfp4_moe.gguf")).unwrap();
    assert_eq!(ours.tensors.len(), theirs.tensors.len());
    for t in &theirs.tensors {
        let o = ours.tensor_info(&t.name).unwrap();
        assert_eq!((o.dtype, &o.shape), (t.dtype, &t.shape), "{}", t.name);
        assert!(
            ours.tensor_bytes(o) == theirs.tensor_bytes(t),
            "{} differs",
            t.name
        );
    }
}
