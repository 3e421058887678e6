//! `ossify quantize --format safetensors`: OpenAI's MXFP4 layout. The experts must decode to exactly the values
//! of the matching GGUF; the folder must stay the one golden/quantize/ holds, and ossify's forward pass on it must
//! match transformers' logits of it (golden/quantize/make_reference.py). GGUF inputs work too.
//!
//! The golden folder is not trusted because ossify wrote it: tests/python/test_quantize_safetensors.py derives
//! every tensor's bytes from the BF16 source with numpy and gguf-py's MXFP4 quantizer and checks both the golden
//! folder and ossify's output against them.

use std::path::{Path, PathBuf};

use ossify::checkpoint::Checkpoint;
use ossify::gpt_oss::{ForwardOptions, GptOssConfig, Model};
use ossify::npy;
use ossify::parity::metrics::KldAccumulator;
use ossify::quantize::preset::Preset;
use ossify::quantize::safetensors_out::quantize_to_safetensors;
use ossify::quantize::{quantize_to_gguf, Mxfp4Scale, QuantizeOptions, TypeRules};
use ossify_formats::gguf::GgufFile;
use ossify_formats::quant::{dequantize_row, dequantize_row_mxfp4_hf};
use ossify_formats::safetensors::SafetensorsModel;
use ossify_formats::DType;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn options(scale: Mxfp4Scale) -> QuantizeOptions {
    QuantizeOptions {
        rules: TypeRules::new(Preset::by_name("mxfp4_moe").unwrap()),
        allow_requantize: false,
        allow_nonfinite: false,
        mxfp4_scale: scale,
        imatrix: None,
        progress: false,
        split: Default::default(),
        existing: ossify_formats::atomic::Existing::Refuse,
        name: None,
        dry_run: false,
    }
}

fn decode(dtype: DType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut v = vec![0f32; n];
    dequantize_row(dtype, bytes, &mut v).unwrap();
    v
}

/// Asserts that every expert row of the HF MXFP4 folder `st` decodes to the values of the matching row of the
/// GGUF `gg`; returns the number of rows compared.
fn experts_match_gguf(st: &Path, gg: &Path) -> usize {
    let m = SafetensorsModel::open(st).unwrap();
    let g = GgufFile::open(gg).unwrap();
    let mut checked = 0;
    for layer in 0..4 {
        for (hf, parts) in [
            (
                "gate_up_proj",
                vec![("ffn_gate_exps", 0usize), ("ffn_up_exps", 1)],
            ),
            ("down_proj", vec![("ffn_down_exps", 0)]),
        ] {
            let base = format!("model.layers.{layer}.mlp.experts.{hf}");
            let b = m.tensor(&format!("{base}_blocks")).unwrap();
            let s = m.tensor(&format!("{base}_scales")).unwrap();
            assert_eq!((b.dtype, s.dtype), (DType::U8, DType::U8));
            let [e, rows, nb, 16] = b.shape[..] else {
                panic!("{:?}", b.shape)
            };
            assert_eq!(s.shape, vec![e, rows, nb]);
            let mut hf_vals = vec![0f32; e * rows * nb * 32];
            dequantize_row_mxfp4_hf(b.bytes, s.bytes, &mut hf_vals).unwrap();
            let step = parts.len();
            for (gguf, off) in parts {
                let t = g.tensor(&format!("blk.{layer}.{gguf}.weight")).unwrap();
                assert_eq!(t.dtype, DType::Mxfp4);
                let cols = nb * 32;
                let gv = decode(t.dtype, t.bytes, t.n_elements());
                let per = rows / step;
                for ei in 0..e {
                    for r in 0..per {
                        let hr = ei * rows + r * step + off;
                        let gr = ei * per + r;
                        assert_eq!(
                            &hf_vals[hr * cols..(hr + 1) * cols],
                            &gv[gr * cols..(gr + 1) * cols],
                            "{base} expert {ei} row {r} vs {gguf}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    checked
}

fn check_experts_match_gguf(scale: Mxfp4Scale) {
    let src = root().join("golden/tiny-bf16-noisy");
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("st");
    let gg = dir.path().join("m.gguf");
    quantize_to_safetensors(&src, &st, &options(scale), 300_000).unwrap();
    quantize_to_gguf(&src, &gg, &options(scale)).unwrap();
    assert_eq!(experts_match_gguf(&st, &gg), 4 * 4 * (128 + 96));
    let m = SafetensorsModel::open(&st).unwrap();
    let source = SafetensorsModel::open(&src).unwrap();
    // Everything else is BF16, equal to the source.
    for e in source.entries() {
        if e.name.contains(".mlp.experts.") && !e.name.ends_with("_bias") {
            continue;
        }
        let a = m.tensor(&e.name).unwrap();
        let b = source.tensor(&e.name).unwrap();
        assert_eq!((a.dtype, &a.shape), (DType::BF16, &b.shape), "{}", e.name);
        assert!(a.bytes == b.bytes, "{}", e.name);
    }
}

#[test]
fn experts_decode_to_the_gguf_values_ref() {
    check_experts_match_gguf(Mxfp4Scale::Ref);
}

#[test]
fn experts_decode_to_the_gguf_values_mse() {
    check_experts_match_gguf(Mxfp4Scale::Mse);
}

/// Determinism against the checked-in copy: the command golden/quantize/make_reference.py ran writes the same
/// bytes today.
#[test]
fn folder_is_the_golden_one_with_config_index_and_tokenizer() {
    let src = root().join("golden/tiny-bf16-noisy");
    let golden = root().join("golden/quantize/tiny-bf16-noisy-mxfp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("st");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ossify"))
        .arg("quantize")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--format", "safetensors", "--shard-size", "300000", "-q"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names: Vec<_> = std::fs::read_dir(&golden)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut ours: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    ours.sort();
    assert_eq!(names, ours);
    for n in &names {
        let a = std::fs::read(out.join(n)).unwrap();
        let b = std::fs::read(golden.join(n)).unwrap();
        assert!(a == b, "{n:?} differs from golden/quantize");
    }
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["quantization_config"]["quant_method"], "mxfp4");
    assert_eq!(
        cfg["quantization_config"]["modules_to_not_convert"],
        serde_json::json!([
            "model.layers.*.self_attn",
            "model.layers.*.mlp.router",
            "model.embed_tokens",
            "lm_head"
        ])
    );
    assert!(names.iter().any(|n| n == "model.safetensors.index.json"));
    assert!(names.iter().any(|n| n == "chat_template.jinja"));
    assert!(!Path::new(&format!("{}.partial", out.display())).exists());
}

/// A GGUF input: llama.cpp's BF16 GGUF of golden/tiny-bf16-noisy gives exactly the tensors of the golden
/// folder made from the HF source (same BF16 values, same MXFP4 rule), and a config.json that reads back to the
/// same model; the tokenizer files it cannot hold are named in a note.
#[test]
fn gguf_input_gives_the_golden_tensors_and_says_tokenizer_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("st");
    let src = root().join("golden/llamacpp/quantize/tiny-bf16-noisy.bf16.gguf");
    let golden = root().join("golden/quantize/tiny-bf16-noisy-mxfp4");
    let s = quantize_to_safetensors(&src, &out, &options(Mxfp4Scale::Ref), 300_000).unwrap();
    assert!(
        s.notes.iter().any(|n| n.contains("tokenizer.json")),
        "{:?}",
        s.notes
    );
    assert!(!out.join("tokenizer.json").exists());
    let (ours, want) = (
        SafetensorsModel::open(&out).unwrap(),
        SafetensorsModel::open(&golden).unwrap(),
    );
    let names = |m: &SafetensorsModel| {
        let mut v: Vec<String> = m.entries().iter().map(|e| e.name.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(names(&ours), names(&want));
    for n in names(&want) {
        let (a, b) = (ours.tensor(&n).unwrap(), want.tensor(&n).unwrap());
        assert_eq!((a.dtype, &a.shape), (b.dtype, &b.shape), "{n}");
        assert!(a.bytes == b.bytes, "{n} differs from golden/quantize");
    }
    let (a, b) = (
        Checkpoint::open(&out, None).unwrap(),
        Checkpoint::open(&golden, None).unwrap(),
    );
    // The GGUF also knows the BOS token (from its tokenizer metadata), which the source's config.json leaves out.
    assert_eq!(a.config.bos_token_id, Some(490));
    let read_back = GptOssConfig {
        bos_token_id: None,
        ..a.config.clone()
    };
    assert_eq!(read_back, b.config);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["quantization_config"]["quant_method"], "mxfp4");
}

/// llama.cpp's mxfp4_moe GGUF: its Q8_0 attention would be re-quantized, so it needs --allow-requantize
/// (refused cleanly without); with it, the MXFP4 experts are repacked, not re-encoded, and decode to exactly the
/// GGUF's values.
#[test]
fn mxfp4_gguf_input_needs_allow_requantize_and_keeps_its_experts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("st");
    let src = root().join("golden/llamacpp/quantize/tiny-bf16-noisy.mxfp4_moe.gguf");
    let e = quantize_to_safetensors(&src, &out, &options(Mxfp4Scale::Ref), 300_000).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("--allow-requantize") && msg.contains("Q8_0"),
        "{msg}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let opts = QuantizeOptions {
        allow_requantize: true,
        ..options(Mxfp4Scale::Ref)
    };
    quantize_to_safetensors(&src, &out, &opts, 300_000).unwrap();
    assert_eq!(experts_match_gguf(&out, &src), 4 * 4 * (128 + 96));
    Checkpoint::open(&out, None).unwrap();
}

/// The forward-pass tolerance tests/forward_golden.rs holds ossify to.
const MAX_DLOGIT: f64 = 1e-3;
const MAX_MEAN_KL: f64 = 1e-6;
const TOP2_MARGIN: f32 = 1e-3;

/// Acceptance: ossify's forward pass on the OpenAI-layout folder ossify wrote matches transformers' float32
/// logits of the same folder (golden/quantize/make_reference.py) within the forward-pass tolerance.
#[test]
fn forward_on_the_golden_folder_matches_transformers() {
    let g = root().join("golden");
    let tokens: serde_json::Value =
        serde_json::from_slice(&std::fs::read(g.join("reference/tokens.json")).unwrap()).unwrap();
    let ckpt = Checkpoint::open(&g.join("quantize/tiny-bf16-noisy-mxfp4"), None).unwrap();
    let model = Model::new(&ckpt, ForwardOptions::default()).unwrap();
    let vocab = model.config().vocab_size;
    let seqs = tokens["sequences"].as_array().unwrap();
    assert!(!seqs.is_empty());
    for (k, s) in seqs.iter().enumerate() {
        let toks: Vec<u32> = s
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect();
        let want =
            npy::read_f32(&g.join(format!("quantize/tiny-bf16-noisy-mxfp4.seq{k}.logits.npy")))
                .unwrap();
        assert_eq!(want.shape, [toks.len(), vocab]);
        let got = model.forward(&toks).unwrap();
        assert_eq!(got.len(), want.data.len());
        let mut acc = KldAccumulator::default();
        let (mut checked, mut mismatched) = (0, 0);
        for (i, (r, o)) in want
            .data
            .chunks_exact(vocab)
            .zip(got.chunks_exact(vocab))
            .enumerate()
        {
            // The next token only feeds the perplexities, which this test does not read.
            acc.add_row(i, r, o, toks[(i + 1).min(toks.len() - 1)])
                .unwrap();
            let mut idx: Vec<usize> = (0..vocab).collect();
            idx.sort_by(|&a, &b| r[b].total_cmp(&r[a]));
            if r[idx[0]] - r[idx[1]] > TOP2_MARGIN {
                checked += 1;
                let ours = (0..vocab).max_by(|&a, &b| o[a].total_cmp(&o[b])).unwrap();
                mismatched += usize::from(ours != idx[0]);
            }
        }
        let m = acc.finish();
        println!(
            "seq{k}: max|Δlogit| {:.3e}  mean KL {:.3e}  top-1 {}/{checked} agree",
            m.max_abs_dlogit,
            m.kld_mean,
            checked - mismatched
        );
        assert_eq!((m.n_nonfinite, m.n_tokens), (0, toks.len()));
        assert!(
            m.max_abs_dlogit <= MAX_DLOGIT,
            "seq{k}: max |Δlogit| {}",
            m.max_abs_dlogit
        );
        assert!(m.kld_mean <= MAX_MEAN_KL, "seq{k}: mean KL {}", m.kld_mean);
        assert_eq!(mismatched, 0, "seq{k}: top-1 disagreements");
        assert!(checked > 0);
    }
}
