//! llama.cpp's converter writes no layer layout, and llama.cpp then assumes even layers slide. For any other
//! `layer_types`, ossify writes `gpt-oss.attention.sliding_window_pattern` (one bool per layer, true = sliding),
//! which llama.cpp's gpt-oss loader reads first (src/llama-model.cpp `load_swa_pattern`). That llama.cpp honours
//! it was checked with tests/data/layer_types/check_llamacpp.py (logits vs transformers: 0.57 with the pattern,
//! 9.4 without).

use std::path::PathBuf;
use std::process::Command;

use ossify_formats::gguf::{GgufFile, MetaValue};

const KEY: &str = "gpt-oss.attention.sliding_window_pattern";

fn convert_with_layer_types(layer_types: &[&str]) -> GgufFile {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/tiny-bf16");
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    for e in std::fs::read_dir(&golden).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, m.join(p.file_name().unwrap())).unwrap();
    }
    let cfg = m.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["layer_types"] = serde_json::json!(layer_types);
    std::fs::write(&cfg, v.to_string()).unwrap();
    let out = dir.path().join("out.gguf");
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("convert")
        .arg(&m)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bytes = std::fs::read(&out).unwrap();
    GgufFile::from_bytes(bytes).unwrap()
}

#[test]
fn non_alternating_layers_get_a_pattern() {
    let g = convert_with_layer_types(&[
        "full_attention",
        "sliding_attention",
        "sliding_attention",
        "full_attention",
    ]);
    assert_eq!(
        g.get(KEY).and_then(MetaValue::as_bool_array),
        Some(&[false, true, true, false][..])
    );
}

#[test]
fn alternating_layers_get_none_as_llama_cpp_writes() {
    let g = convert_with_layer_types(&[
        "sliding_attention",
        "full_attention",
        "sliding_attention",
        "full_attention",
    ]);
    assert!(g.get(KEY).is_none());
}

#[test]
fn unknown_layer_type_is_refused() {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/tiny-bf16");
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m");
    std::fs::create_dir(&m).unwrap();
    for e in std::fs::read_dir(&golden).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, m.join(p.file_name().unwrap())).unwrap();
    }
    let cfg = m.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["layer_types"] = serde_json::json!([
        "sliding_attention",
        "full_attention",
        "banana",
        "full_attention"
    ]);
    std::fs::write(&cfg, v.to_string()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("convert")
        .arg(&m)
        .arg("-o")
        .arg(dir.path().join("x.gguf"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("config.json") && err.contains("layer_types[2]"),
        "{err}"
    );
}
