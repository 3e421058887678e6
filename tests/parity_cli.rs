//! `ossify verify-parity` end to end on the golden checkpoints: exit codes, the JSON report, and a corrupted
//! candidate named down to its layer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn golden(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden").join(p)
}

fn ossify(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ossify"))
        .args(args)
        .output()
        .expect("run ossify")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn lossless_layouts_pass_with_exit_0() {
    let o = ossify(&[
        "verify-parity",
        s(&golden("tiny")),
        s(&golden("llamacpp/tiny.f32.gguf")),
        "--tensors-only",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["pass"], true);
    assert_eq!(v["comparison"], "checkpoints");
    assert_eq!(v["tensors"]["n_failed"], 0);
    assert_eq!(v["tensors"]["n_tensors"], 3 + 19 * 4);
}

#[test]
fn corrupted_candidate_exits_1_and_names_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let src = golden("tiny/original");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    // Flip one bit in the middle of layer 3's router weight (a BF16/F32 tensor: the bytes are found by content).
    let ck = ossify::checkpoint::Checkpoint::open(dir.path(), None).unwrap();
    let target = ck.tensor("block.3.mlp.gate.weight").unwrap().bytes.to_vec();
    drop(ck);
    let path = dir.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(target.len())
        .position(|w| w == target)
        .unwrap()
        + target.len() / 2;
    bytes[at] ^= 0x08;
    std::fs::write(&path, bytes).unwrap();

    let o = ossify(&[
        "verify-parity",
        s(&src),
        s(dir.path()),
        "--tensors-only",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["pass"], false);
    assert_eq!(v["tensors"]["first_failed_layer"], 3);
    assert_eq!(
        v["tensors"]["failed"][0]["name"],
        "blk.3.ffn_gate_inp.weight"
    );

    let o = ossify(&["verify-parity", s(&src), s(dir.path()), "--tensors-only"]);
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("FAILED blk.3.ffn_gate_inp.weight (layer 3)"),
        "{text}"
    );
}

#[test]
fn errors_exit_2_with_one_line() {
    let o = ossify(&["verify-parity", "/nonexistent/a", s(&golden("tiny"))]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.starts_with("error: ") && e.contains("/nonexistent/a"),
        "{e}"
    );
    // --reference-logits needs --tokens.
    let o = ossify(&[
        "verify-parity",
        "--reference-logits",
        s(&golden("reference/tiny.seq0.logits.npy")),
        s(&golden("tiny")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tokens"));
}

#[test]
fn lossy_conversion_reports_tensor_statistics() {
    let o = ossify(&[
        "verify-parity",
        s(&golden("tiny")),
        s(&golden("llamacpp/tiny.q8_0.gguf")),
        "--tensors-only",
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    let lossy = v["tensors"]["lossy"].as_array().unwrap();
    assert!(!lossy.is_empty());
    for t in lossy {
        assert_eq!(t["candidate_dtype"], "Q8_0");
        assert!(t["snr_db"].as_f64().unwrap() > 30.0, "{t}");
        assert!(t["rmse"].as_f64().unwrap() > 0.0);
    }
}
