//! The bad-input corpus: every broken checkpoint makes `ossify convert` (and `inspect-weights`) exit with code 2
//! and one clear line naming the file and, where there is one, the tensor — and leaves no output file behind.
//! Each case starts from a copy of golden/tiny (HF layout, three shards with OpenAI's zero-based names).

use std::path::{Path, PathBuf};
use std::process::Command;

use ossify_formats::safetensors::{SafetensorsModel, SafetensorsWriter};
use ossify_formats::DType;

fn golden_tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/tiny")
}

/// Copies golden/tiny (without original/) into `dir/model`.
fn copy_tiny(dir: &Path) -> PathBuf {
    let m = dir.join("model");
    std::fs::create_dir_all(&m).unwrap();
    for e in std::fs::read_dir(golden_tiny()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, m.join(p.file_name().unwrap())).unwrap();
        }
    }
    m
}

/// The shard holding `tensor`, per the index.
fn shard_of(model: &Path, tensor: &str) -> PathBuf {
    let idx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    model.join(idx["weight_map"][tensor].as_str().unwrap())
}

type Edit = dyn Fn(&str, DType, &[usize], &[u8]) -> Option<(DType, Vec<usize>, Vec<u8>)>;

/// Rewrites one shard through `edit` (None drops the tensor).
fn rewrite_shard(path: &Path, edit: &Edit) {
    let tensors: Vec<(String, DType, Vec<usize>, Vec<u8>)> = {
        let m = SafetensorsModel::open(path).unwrap();
        m.entries()
            .iter()
            .filter_map(|e| {
                let v = m.view(e).unwrap();
                edit(&e.name, e.dtype, &e.shape, v.bytes).map(|(d, s, b)| (e.name.clone(), d, s, b))
            })
            .collect()
    };
    let mut w = SafetensorsWriter::new();
    w.add_metadata("format", "pt");
    let ids: Vec<usize> = tensors
        .iter()
        .map(|t| w.add_tensor(&t.0, t.1, &t.2).unwrap())
        .collect();
    // Written beside and renamed over: ossify's writers never replace a file the process has read.
    let new = path.with_extension("rewritten");
    let out = w.create(&new).unwrap();
    for (i, t) in ids.iter().zip(&tensors) {
        out.write_tensor(*i, &t.3).unwrap();
    }
    out.finish().unwrap();
    std::fs::rename(&new, path).unwrap();
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Runs `ossify convert model -o out.gguf`, expects failure: exit 2, one line on stderr containing every
/// `needle`, and neither the output nor `<out>.partial` left behind.
fn expect_failure(dir: &Path, model: &Path, needles: &[&str]) -> String {
    let out = dir.join("out").join("x.gguf");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("convert")
        .arg(model)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit code 2; stderr: {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line, got: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr should name '{n}': {err}");
    }
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().collect();
    assert!(left.is_empty(), "output left behind: {left:?}");
    err
}

const Q_PROJ: &str = "model.layers.1.self_attn.q_proj.weight";

#[test]
fn missing_shard() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    let shard = shard_of(&m, Q_PROJ);
    std::fs::remove_file(&shard).unwrap();
    let name = shard.file_name().unwrap().to_str().unwrap().to_string();
    expect_failure(
        dir.path(),
        &m,
        &["model.safetensors.index.json", &name, "does not exist"],
    );
}

#[test]
fn tensor_missing() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    rewrite_shard(&shard_of(&m, Q_PROJ), &|n, d, s, b| {
        (n != Q_PROJ).then(|| (d, s.to_vec(), b.to_vec()))
    });
    edit_json(&m.join("model.safetensors.index.json"), |v| {
        v["weight_map"].as_object_mut().unwrap().remove(Q_PROJ);
    });
    expect_failure(dir.path(), &m, &[Q_PROJ, "missing", "model-0000"]);
}

#[test]
fn index_names_a_tensor_not_in_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    rewrite_shard(&shard_of(&m, Q_PROJ), &|n, d, s, b| {
        (n != Q_PROJ).then(|| (d, s.to_vec(), b.to_vec()))
    });
    expect_failure(dir.path(), &m, &[Q_PROJ, "model.safetensors.index.json"]);
}

#[test]
fn tensor_with_wrong_shape() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    // Same bytes, transposed shape: exactly the mistake a shape check must catch.
    rewrite_shard(&shard_of(&m, Q_PROJ), &|n, d, s, b| {
        let s = if n == Q_PROJ {
            vec![s[1], s[0]]
        } else {
            s.to_vec()
        };
        Some((d, s, b.to_vec()))
    });
    expect_failure(
        dir.path(),
        &m,
        &[Q_PROJ, "shape [96, 64]", "expected [64, 96]"],
    );
}

#[test]
fn tensor_with_wrong_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    rewrite_shard(&shard_of(&m, Q_PROJ), &|n, d, s, b| {
        Some((
            if n == Q_PROJ { DType::I16 } else { d },
            s.to_vec(),
            b.to_vec(),
        ))
    });
    expect_failure(dir.path(), &m, &[Q_PROJ, "I16"]);
}

#[test]
fn expert_blocks_with_wrong_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    const T: &str = "model.layers.0.mlp.experts.down_proj_blocks";
    let t = T;
    rewrite_shard(&shard_of(&m, t), &|n, d, s, b| {
        Some((if n == T { DType::I8 } else { d }, s.to_vec(), b.to_vec()))
    });
    expect_failure(dir.path(), &m, &[t, "I8", "U8"]);
}

#[test]
fn unexpected_extra_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    // A fifth layer's norm in a 4-layer model: llama.cpp's converter refuses tensors it cannot map.
    let extra = "model.layers.4.input_layernorm.weight";
    let norm = "model.layers.3.input_layernorm.weight";
    let shard = shard_of(&m, norm);
    let tensors: Vec<(String, DType, Vec<usize>, Vec<u8>)> = {
        let sm = SafetensorsModel::open(&shard).unwrap();
        let mut v: Vec<_> = sm
            .entries()
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    e.dtype,
                    e.shape.clone(),
                    sm.view(e).unwrap().bytes.to_vec(),
                )
            })
            .collect();
        let n = v.iter().find(|t| t.0 == norm).unwrap().clone();
        v.push((extra.to_string(), n.1, n.2, n.3));
        v
    };
    let mut w = SafetensorsWriter::new();
    let ids: Vec<usize> = tensors
        .iter()
        .map(|t| w.add_tensor(&t.0, t.1, &t.2).unwrap())
        .collect();
    let new = shard.with_extension("rewritten");
    let out = w.create(&new).unwrap();
    for (i, t) in ids.iter().zip(&tensors) {
        out.write_tensor(*i, &t.3).unwrap();
    }
    out.finish().unwrap();
    std::fs::rename(&new, &shard).unwrap();
    let shard_name = shard.file_name().unwrap().to_str().unwrap().to_string();
    edit_json(&m.join("model.safetensors.index.json"), |v| {
        v["weight_map"][extra] = shard_name.clone().into();
    });
    expect_failure(
        dir.path(),
        &m,
        &[extra, &shard_name, "not part of a gpt-oss model"],
    );
}

#[test]
fn truncated_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    let shard = shard_of(&m, Q_PROJ);
    let len = std::fs::metadata(&shard).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&shard)
        .unwrap();
    f.set_len(len - 100).unwrap();
    let name = shard.file_name().unwrap().to_str().unwrap().to_string();
    expect_failure(dir.path(), &m, &[&name, "truncated", "model.layers."]);
}

#[test]
fn index_names_a_file_outside_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    // A real safetensors file outside the model folder, so only the containment rule can stop it.
    let shard = shard_of(&m, Q_PROJ);
    std::fs::copy(&shard, dir.path().join("outside.safetensors")).unwrap();
    edit_json(&m.join("model.safetensors.index.json"), |v| {
        v["weight_map"][Q_PROJ] = "../outside.safetensors".into();
    });
    expect_failure(
        dir.path(),
        &m,
        &["../outside.safetensors", "inside the model folder"],
    );
}

#[test]
fn unknown_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    edit_json(&m.join("config.json"), |v| {
        v["model_type"] = "llama".into();
        v["architectures"] = serde_json::json!(["LlamaForCausalLM"]);
    });
    expect_failure(
        dir.path(),
        &m,
        &["config.json", "unknown architecture", "llama"],
    );
}

#[test]
fn config_missing_a_required_field() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    edit_json(&m.join("config.json"), |v| {
        v.as_object_mut().unwrap().remove("hidden_size");
    });
    expect_failure(dir.path(), &m, &["config.json", "hidden_size", "missing"]);
}

#[test]
fn original_config_missing_a_required_field() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("model");
    std::fs::create_dir_all(m.join("original")).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(golden_tiny().join(f), m.join(f)).unwrap();
    }
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            golden_tiny().join("original").join(f),
            m.join("original").join(f),
        )
        .unwrap();
    }
    edit_json(&m.join("original/config.json"), |v| {
        v.as_object_mut().unwrap().remove("rope_ntk_beta");
    });
    expect_failure(
        dir.path(),
        &m.join("original"),
        &["config.json", "rope_ntk_beta"],
    );
}

#[test]
fn output_folder_missing() {
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("convert")
        .arg(golden_tiny())
        .args(["-o", "/nonexistent-ossify-dir/sub/x.gguf"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("/nonexistent-ossify-dir/sub") && err.contains("does not exist"),
        "{err}"
    );
    assert!(!Path::new("/nonexistent-ossify-dir").exists());
}

#[test]
fn inspect_reports_the_same_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = copy_tiny(dir.path());
    rewrite_shard(&shard_of(&m, Q_PROJ), &|n, d, s, b| {
        let s = if n == Q_PROJ {
            vec![s[1], s[0]]
        } else {
            s.to_vec()
        };
        Some((d, s, b.to_vec()))
    });
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("inspect-weights")
        .arg(&m)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(Q_PROJ), "{err}");
}

#[test]
fn truncated_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/llamacpp/tiny.bf16.gguf");
    let p = dir.path().join("cut.gguf");
    let bytes = std::fs::read(src).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 1000]).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("inspect-weights")
        .arg(&p)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("cut.gguf"), "{err}");
}
