//! BF16 fine-tunes store experts as (E, in, out), the transpose of the MXFP4 layout; in the real models
//! hidden = intermediate = 2880, so a transposition error passes every shape check. This test builds a
//! checkpoint whose expert values encode their own (expert, in, out) position, with hidden != intermediate,
//! converts it, and checks every element of every expert tensor lands where llama.cpp expects it:
//! ffn_gate_exps[e, i, h] = gate_up_proj[e, h, 2i], ffn_up_exps[e, i, h] = gate_up_proj[e, h, 2i + 1],
//! ffn_down_exps[e, h, i] = down_proj[e, i, h] (conversion/gpt_oss.py: transpose(-1, -2), then [:, ::2] / [:, 1::2]).

use std::path::{Path, PathBuf};
use std::process::Command;

use ossify_formats::gguf::GgufFile;
use ossify_formats::safetensors::SafetensorsWriter;
use ossify_formats::DType;

const E: usize = 3;
const H: usize = 64; // hidden
const I: usize = 40; // intermediate (not a multiple of the 32-row tiles)
const V: usize = 544; // golden tokenizer's vocabulary
const LAYERS: usize = 2;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = 16;

/// A value that names its position exactly in f32.
fn code(e: usize, a: usize, b: usize) -> f32 {
    (e * 1_000_000 + a * 1000 + b) as f32
}

fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(f32::to_le_bytes).collect()
}

fn write_checkpoint(dir: &Path) {
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/tiny");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "special_tokens_map.json",
    ] {
        if golden.join(f).is_file() {
            std::fs::copy(golden.join(f), dir.join(f)).unwrap();
        }
    }
    let config = serde_json::json!({
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
        "vocab_size": V, "hidden_size": H, "intermediate_size": I, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
        "num_local_experts": E, "num_experts_per_tok": 2, "sliding_window": 8,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 150000,
        "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
                         "original_max_position_embeddings": 128, "truncate": false},
        "eos_token_id": 494, "pad_token_id": 491
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();

    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    fn plain(tensors: &mut Vec<(String, Vec<usize>, Vec<u8>)>, name: String, shape: Vec<usize>) {
        let n: usize = shape.iter().product();
        let bytes = f32_bytes((0..n).map(|k| (k % 7) as f32 * 0.125));
        tensors.push((name, shape, bytes));
    }
    plain(&mut tensors, "model.embed_tokens.weight".into(), vec![V, H]);
    plain(&mut tensors, "lm_head.weight".into(), vec![V, H]);
    plain(&mut tensors, "model.norm.weight".into(), vec![H]);
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        plain(&mut tensors, format!("{p}.input_layernorm.weight"), vec![H]);
        plain(
            &mut tensors,
            format!("{p}.post_attention_layernorm.weight"),
            vec![H],
        );
        plain(
            &mut tensors,
            format!("{p}.self_attn.q_proj.weight"),
            vec![q, H],
        );
        plain(&mut tensors, format!("{p}.self_attn.q_proj.bias"), vec![q]);
        plain(
            &mut tensors,
            format!("{p}.self_attn.k_proj.weight"),
            vec![kv, H],
        );
        plain(&mut tensors, format!("{p}.self_attn.k_proj.bias"), vec![kv]);
        plain(
            &mut tensors,
            format!("{p}.self_attn.v_proj.weight"),
            vec![kv, H],
        );
        plain(&mut tensors, format!("{p}.self_attn.v_proj.bias"), vec![kv]);
        plain(
            &mut tensors,
            format!("{p}.self_attn.o_proj.weight"),
            vec![H, q],
        );
        plain(&mut tensors, format!("{p}.self_attn.o_proj.bias"), vec![H]);
        plain(&mut tensors, format!("{p}.self_attn.sinks"), vec![HEADS]);
        plain(&mut tensors, format!("{p}.mlp.router.weight"), vec![E, H]);
        plain(&mut tensors, format!("{p}.mlp.router.bias"), vec![E]);
        // (E, in, out): gate_up in = H, out = 2I; down in = I, out = H.
        let gu =
            (0..E).flat_map(|e| (0..H).flat_map(move |h| (0..2 * I).map(move |o| code(e, h, o))));
        tensors.push((
            format!("{p}.mlp.experts.gate_up_proj"),
            vec![E, H, 2 * I],
            f32_bytes(gu),
        ));
        let gub = (0..E).flat_map(|e| (0..2 * I).map(move |o| code(e, 0, o)));
        tensors.push((
            format!("{p}.mlp.experts.gate_up_proj_bias"),
            vec![E, 2 * I],
            f32_bytes(gub),
        ));
        let down =
            (0..E).flat_map(|e| (0..I).flat_map(move |i| (0..H).map(move |h| code(e, i, h))));
        tensors.push((
            format!("{p}.mlp.experts.down_proj"),
            vec![E, I, H],
            f32_bytes(down),
        ));
        let db = (0..E).flat_map(|e| (0..H).map(move |h| code(e, 0, h)));
        tensors.push((
            format!("{p}.mlp.experts.down_proj_bias"),
            vec![E, H],
            f32_bytes(db),
        ));
    }
    let mut w = SafetensorsWriter::new();
    w.add_metadata("format", "pt");
    let ids: Vec<usize> = tensors
        .iter()
        .map(|(n, s, _)| w.add_tensor(n, DType::F32, s).unwrap())
        .collect();
    let out = w.create(&dir.join("model.safetensors")).unwrap();
    for (i, (_, _, b)) in ids.iter().zip(&tensors) {
        out.write_tensor(*i, b).unwrap();
    }
    out.finish().unwrap();
}

fn read_f32(g: &GgufFile, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = g.tensor(name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(t.dtype, DType::F32, "{name}");
    let v = t
        .bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (t.shape.clone(), v)
}

#[test]
fn dense_experts_are_transposed_and_split_even_odd() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path());
    let out = dir.path().join("out.gguf");
    let o = Command::new(env!("CARGO_BIN_EXE_ossify"))
        .args(["convert", "--outtype", "f32", "-o"])
        .arg(&out)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g = GgufFile::open(&out).unwrap();
    for l in 0..LAYERS {
        let (shape, gate) = read_f32(&g, &format!("blk.{l}.ffn_gate_exps.weight"));
        assert_eq!(shape, vec![E, I, H]);
        let (_, up) = read_f32(&g, &format!("blk.{l}.ffn_up_exps.weight"));
        let (shape, down) = read_f32(&g, &format!("blk.{l}.ffn_down_exps.weight"));
        assert_eq!(shape, vec![E, H, I]);
        for e in 0..E {
            for i in 0..I {
                for h in 0..H {
                    assert_eq!(
                        gate[(e * I + i) * H + h],
                        code(e, h, 2 * i),
                        "gate e{e} i{i} h{h}"
                    );
                    assert_eq!(
                        up[(e * I + i) * H + h],
                        code(e, h, 2 * i + 1),
                        "up e{e} i{i} h{h}"
                    );
                    assert_eq!(
                        down[(e * H + h) * I + i],
                        code(e, i, h),
                        "down e{e} h{h} i{i}"
                    );
                }
            }
        }
        let (shape, gb) = read_f32(&g, &format!("blk.{l}.ffn_gate_exps.bias"));
        assert_eq!(shape, vec![E, I]);
        let (_, ub) = read_f32(&g, &format!("blk.{l}.ffn_up_exps.bias"));
        for e in 0..E {
            for i in 0..I {
                assert_eq!(gb[e * I + i], code(e, 0, 2 * i));
                assert_eq!(ub[e * I + i], code(e, 0, 2 * i + 1));
            }
        }
        let (shape, db) = read_f32(&g, &format!("blk.{l}.ffn_down_exps.bias"));
        assert_eq!(shape, vec![E, H]);
        assert_eq!(db[H + 5], code(1, 0, 5));
    }
}
