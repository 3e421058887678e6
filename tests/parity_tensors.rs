//! Tensor comparison across layouts on the golden checkpoints (golden/, made by transformers; see
//! golden/README.md).

use std::path::{Path, PathBuf};

use ossify::checkpoint::Checkpoint;
use ossify::parity::{check_compatible, tensors::compare_checkpoints};

fn golden(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(p)
}

fn open(p: &Path) -> Checkpoint {
    Checkpoint::open(p, None).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()))
}

#[test]
fn hf_and_original_layouts_hold_identical_tensors() {
    let a = open(&golden("tiny"));
    let b = open(&golden("tiny/original"));
    check_compatible(&a.config, &b.config).unwrap();
    let r = compare_checkpoints(&a, &b).unwrap();
    // 3 global + 19 per layer.
    assert_eq!(r.tensors.len(), 3 + 19 * a.config.num_hidden_layers);
    for t in &r.tensors {
        assert!(
            t.lossless,
            "{}: {} -> {}",
            t.name, t.reference_dtype, t.candidate_dtype
        );
        assert_eq!(t.n_different, 0, "{} differs: {t:?}", t.name);
    }
    assert_eq!(r.n_failed, 0);
}

#[test]
fn mxfp4_and_its_bf16_twin_are_equal_after_decoding() {
    let a = open(&golden("tiny"));
    let b = open(&golden("tiny-bf16"));
    let r = compare_checkpoints(&a, &b).unwrap();
    let gate = r
        .tensors
        .iter()
        .find(|t| t.name == "blk.1.ffn_gate_exps.weight")
        .unwrap();
    assert_eq!(gate.reference_dtype, "MXFP4");
    assert_eq!(gate.candidate_dtype, "BF16");
    assert_eq!(r.n_failed, 0, "{:?}", r.failures().collect::<Vec<_>>());
    assert_eq!(r.n_lossy, 0);
}

/// The noisy twin's experts are independent of tiny's, so they fail the tensor check. Expected values: torch in float64 over
/// golden/tiny-bf16-noisy vs golden/tiny-bf16 (transformers' dequantization of tiny, written by golden/generate.py):
/// `d = b - a; sqrt(mean(d²)), max|d|, 10·log10(Σa² / Σd²)` for model.layers.0.mlp.experts.down_proj.
#[test]
fn lossy_experts_report_error_statistics() {
    let a = open(&golden("tiny-bf16-noisy"));
    let b = open(&golden("tiny"));
    let r = compare_checkpoints(&a, &b).unwrap();
    let down = r
        .tensors
        .iter()
        .find(|t| t.name == "blk.0.ffn_down_exps.weight")
        .unwrap();
    assert!(!down.lossless, "BF16 -> MXFP4 can lose information");
    // ... but not this much: different weights are not MXFP4 rounding (issue 8), so the tensor fails.
    assert!(down.failed(), "{down:?}");
    assert!(
        down.failure()
            .unwrap()
            .contains("rounding to MXFP4 explains"),
        "{:?}",
        down.failure()
    );
    let close = |got: f64, want: f64| (got - want).abs() <= 1e-9 * want.abs();
    assert!(close(down.rmse, 0.128_492_135_725_301_2), "{}", down.rmse);
    assert!(close(down.max_abs_err, 0.662109375), "{}", down.max_abs_err);
    let snr = down.snr_db.unwrap();
    assert!(close(snr, -3.0654256839499054), "{snr}");
    // Attention weights are the same in both.
    let q = r
        .tensors
        .iter()
        .find(|t| t.name == "blk.0.attn_q.weight")
        .unwrap();
    assert_eq!((q.n_different, q.snr_db), (0, None));
}

/// A copy of golden/tiny/original with one byte of layer 2's attention output weight changed.
#[test]
fn corrupted_tensor_is_named_with_its_layer() {
    let dir = tempfile::tempdir().unwrap();
    let src = golden("tiny/original");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let ck = open(dir.path());
    let name = "block.2.attn.out.weight";
    let off = {
        let v = ck.tensor(name).unwrap();
        let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
        // Locate the tensor's bytes in the file by content (the view borrows from the mmap).
        let pos = bytes
            .windows(v.bytes.len())
            .position(|w| w == v.bytes)
            .unwrap();
        pos + 10
    };
    drop(ck);
    let path = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[off] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let a = open(&src);
    let b = open(dir.path());
    let r = compare_checkpoints(&a, &b).unwrap();
    assert_eq!(r.n_failed, 1);
    let f = r.failures().next().unwrap();
    assert_eq!(f.name, "blk.2.attn_output.weight");
    assert_eq!(f.layer, Some(2));
    assert_eq!(r.first_failed_layer(), Some(2));
    assert_eq!(f.n_different, 1);
}

#[test]
fn incompatible_configs_are_refused() {
    let a = open(&golden("tiny"));
    let mut c = a.config.clone();
    c.num_hidden_layers += 1;
    c.vocab_size = 7;
    let e = check_compatible(&a.config, &c).unwrap_err().to_string();
    assert!(e.contains("vocab_size: 544 vs 7"), "{e}");
    assert!(e.contains("num_hidden_layers"), "{e}");
}

/// GGUF files written by llama.cpp's own converter (golden/llamacpp, see golden/convert_with_llamacpp.py).
#[test]
fn hf_and_llama_cpp_gguf_agree_exactly_when_lossless() {
    let a = open(&golden("tiny"));
    for f in ["tiny.f32.gguf", "tiny.bf16.gguf"] {
        let b = open(&golden(&format!("llamacpp/{f}")));
        let r = compare_checkpoints(&a, &b).unwrap();
        assert_eq!(r.tensors.len(), 3 + 19 * a.config.num_hidden_layers);
        assert_eq!(r.n_failed, 0, "{f}: {:?}", r.failures().collect::<Vec<_>>());
        let exps = r
            .tensors
            .iter()
            .find(|t| t.name == "blk.3.ffn_up_exps.weight")
            .unwrap();
        assert_eq!(
            (exps.candidate_dtype.as_str(), exps.n_different),
            ("MXFP4", 0)
        );
    }
    let b = open(&golden("llamacpp/tiny.q8_0.gguf"));
    let r = compare_checkpoints(&a, &b).unwrap();
    assert_eq!(r.n_failed, 0);
    let q = r
        .tensors
        .iter()
        .find(|t| t.candidate_dtype == "Q8_0")
        .expect("llama.cpp's q8_0 output holds Q8_0 tensors");
    assert!(
        !q.lossless && q.n_different > 0 && q.snr_db.unwrap() > 30.0,
        "{q:?}"
    );
}
