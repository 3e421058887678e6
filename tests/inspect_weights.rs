//! `ossify inspect-weights` on each kind of input, checked against tests/data/inspect/expected.json, which
//! tests/data/inspect/make_expected.py computes with safetensors + numpy and gguf-py (not with ossify).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn inspect(args: &[&str], path: &PathBuf) -> Value {
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("inspect-weights")
        .args(args)
        .arg("--json")
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn expected() -> Value {
    let p = root().join("tests/data/inspect/expected.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn tensor<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tensor {name} in report"))
}

fn close(a: &Value, b: &Value, what: &str) {
    let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
    assert!(
        (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
        "{what}: {x} vs expected {y}"
    );
}

fn check_stats(got: &Value, want: &Value, name: &str) {
    for k in ["min", "max", "mean", "std", "share_at_6"] {
        if !want[k].is_null() {
            close(&got[k], &want[k], &format!("{name} {k}"));
        }
    }
    assert_eq!(got["count"], want["count"], "{name} count");
    assert_eq!(got["nan"], 0);
    assert_eq!(got["inf"], 0);
    if !want["scale_exponents"].is_null() {
        assert_eq!(
            got["scale_exponents"], want["scale_exponents"],
            "{name} scale exponents"
        );
    }
}

#[test]
fn hf_folder_headers_only() {
    let r = inspect(&[], &root().join("golden/tiny"));
    let e = expected();
    assert_eq!(r["layout"], "hf");
    assert_eq!(
        r["tensors"].as_array().unwrap().len() as u64,
        e["hf"]["n_tensors"].as_u64().unwrap()
    );
    assert_eq!(r["total_bytes"], e["hf"]["total_bytes"]);
    // golden/tiny/config.json: 4 layers, 4 experts, top-2, 4 heads, 2 kv heads, head_dim 16, sliding window 8.
    let a = &r["architecture"];
    assert_eq!(
        (
            a["layers"].as_u64(),
            a["experts"].as_u64(),
            a["experts_per_token"].as_u64()
        ),
        (Some(4), Some(4), Some(2))
    );
    assert_eq!(
        (
            a["heads"].as_u64(),
            a["kv_heads"].as_u64(),
            a["head_dim"].as_u64()
        ),
        (Some(4), Some(2), Some(16))
    );
    assert_eq!(a["sliding_window"], 8);
    assert_eq!(a["layer_types"], "SFSF");
    let t = tensor(&r, "model.layers.0.mlp.experts.gate_up_proj_blocks");
    assert_eq!(t["dtype"], "U8");
    assert_eq!(t["shape"], serde_json::json!([4, 128, 3, 16]));
    assert!(t["file"].as_str().unwrap().starts_with("model-0000"));
    assert!(t["stats"].is_null(), "no stats without --stats");
}

#[test]
fn hf_folder_stats() {
    let r = inspect(&["--stats"], &root().join("golden/tiny"));
    let e = &expected()["hf"];
    for name in [
        "model.embed_tokens.weight",
        "model.layers.2.self_attn.sinks",
        "model.layers.1.mlp.experts.down_proj_blocks",
    ] {
        check_stats(&tensor(&r, name)["stats"], &e[name], name);
    }
}

#[test]
fn gguf_stats_match_gguf_py() {
    let r = inspect(
        &["--stats", "--threads", "2"],
        &root().join("golden/llamacpp/tiny.bf16.gguf"),
    );
    let e = &expected()["gguf"];
    assert_eq!(r["layout"], "gguf");
    assert_eq!(
        r["tensors"].as_array().unwrap().len() as u64,
        e["n_tensors"].as_u64().unwrap()
    );
    assert_eq!(r["architecture"]["context"], 32768);
    for name in [
        "token_embd.weight",
        "blk.1.ffn_down_exps.weight",
        "blk.0.attn_sinks.weight",
    ] {
        check_stats(&tensor(&r, name)["stats"], &e[name], name);
    }
    // The lossless repack: MXFP4 statistics read from the GGUF equal those read from the HF blocks.
    assert_eq!(
        e["blk.1.ffn_down_exps.weight"],
        expected()["hf"]["model.layers.1.mlp.experts.down_proj_blocks"]
    );
}

#[test]
fn original_folder_and_single_file() {
    let r = inspect(&[], &root().join("golden/tiny/original"));
    assert_eq!(r["layout"], "original");
    assert_eq!(r["architecture"]["context"], 32768);
    let t = tensor(&r, "block.0.attn.qkv.weight");
    assert_eq!(t["shape"], serde_json::json!([128, 96]));

    let r = inspect(&[], &root().join("golden/tiny/original/model.safetensors"));
    assert_eq!(r["layout"], "original (one file)");
    assert_eq!(r["tensors"].as_array().unwrap().len(), 3 + 4 * 15);
}

#[test]
fn human_output() {
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("inspect-weights")
        .arg("--stats")
        .arg(root().join("golden/tiny"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.starts_with("path"));
    assert!(text.contains("layout  hf"));
    assert!(text.contains("model.layers.3.mlp.experts.gate_up_proj_blocks"));
    assert!(text.contains("scale-exp {"));
}

#[test]
fn broken_pipe_is_success() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("inspect-weights")
        .arg(root().join("golden/tiny"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before ossify writes anything (`ossify inspect-weights x | head -0`).
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "a closed pipe is not an error: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
