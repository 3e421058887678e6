//! Acceptance of the reference forward pass: on every golden checkpoint and layout, ossify's logits agree with
//! transformers' float32 logits (golden/reference/, made by golden/generate.py) within what README claims, and
//! have the same top-1 wherever transformers' top-2 margin exceeds 1e-3. The measured values are printed
//! (`cargo test --release --test forward_golden -- --nocapture`).

use std::path::{Path, PathBuf};

use ossify::checkpoint::Checkpoint;
use ossify::gpt_oss::rope::Rope;
use ossify::gpt_oss::{Device, ForwardOptions, Layout, Model, Precision, SubBlock};
use ossify_formats::DType;

/// What README claims for the exact forward pass against transformers' float32 logits: the largest max |Δlogit|
/// and mean KL this suite measured on the CPU (rounded up), on every golden checkpoint and layout, llama.cpp's
/// lossless GGUFs of them, the quantized GGUFs (against transformers on their decoded weights) and with YaRN
/// truncation. Checked with [`MARGIN`].
const CLAIM: Bound = Bound {
    max_dlogit: 2.6e-5,
    mean_kl: 6.1e-12,
};
/// README's claim past 8192 positions (the 8200-token sequence of [`long_context_matches_transformers`]).
const LONG_CLAIM: Bound = Bound {
    max_dlogit: 5.3e-5,
    mean_kl: 4.1e-11,
};
/// Room for a different CPU's summation (FMA, SIMD width) around what was measured.
const MARGIN: f64 = 1.5;
/// README: CUDA exact agrees with CPU exact within this ([`cuda_exact_matches_cpu_exact`]). A CUDA run against
/// transformers is held to the CPU claim plus this.
const CUDA_VS_CPU: Bound = Bound {
    max_dlogit: 1e-4,
    mean_kl: 1e-9,
};
const TOP2_MARGIN: f32 = 1e-3;

/// Largest max |Δlogit| and mean KL allowed.
#[derive(Clone, Copy, Debug)]
struct Bound {
    max_dlogit: f64,
    mean_kl: f64,
}

impl Bound {
    /// The bound a run on `device` is checked against for a claim.
    fn on(self, device: Device) -> Bound {
        let b = Bound {
            max_dlogit: self.max_dlogit * MARGIN,
            mean_kl: self.mean_kl * MARGIN,
        };
        match device {
            Device::Cuda => Bound {
                max_dlogit: b.max_dlogit + CUDA_VS_CPU.max_dlogit,
                mean_kl: b.mean_kl + CUDA_VS_CPU.mean_kl,
            },
            _ => b,
        }
    }

    fn check(self, m: &Metrics, device: Device, what: &str) {
        let b = self.on(device);
        assert!(
            m.max_dlogit <= b.max_dlogit,
            "{what}: max |Δlogit| {:.3e} exceeds {:.3e} (README claims {:.1e})",
            m.max_dlogit,
            b.max_dlogit,
            self.max_dlogit
        );
        assert!(
            m.mean_kl <= b.mean_kl,
            "{what}: mean KL {:.3e} exceeds {:.3e} (README claims {:.1e})",
            m.mean_kl,
            b.mean_kl,
            self.mean_kl
        );
    }
}

/// One test body, two devices (as candle's `test_device!`): `NAME::cpu` always runs, `NAME::cuda` runs where a
/// CUDA GPU is there and otherwise says once "skipped: no CUDA device".
macro_rules! test_device {
    ($name:ident) => {
        mod $name {
            #[test]
            fn cpu() {
                super::$name(super::Device::Cpu)
            }
            #[test]
            fn cuda() {
                if super::have_cuda() {
                    super::$name(super::Device::Cuda)
                }
            }
        }
    };
}

/// Whether a CUDA driver and GPU are there; says "skipped: no CUDA device" (once per run) when not.
fn have_cuda() -> bool {
    static SAY: std::sync::Once = std::sync::Once::new();
    match ossify_kernels::cuda::Gpu::probe() {
        Ok(_) => true,
        Err(e) => {
            SAY.call_once(|| eprintln!("skipped: no CUDA device ({e})"));
            false
        }
    }
}

/// The default options on `device`.
fn opts(device: Device) -> ForwardOptions {
    ForwardOptions {
        device,
        ..ForwardOptions::default()
    }
}

fn golden() -> PathBuf {
    let g = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    assert!(
        g.join("reference/tokens.json").is_file(),
        "golden data missing at {} (golden/generate.py makes it)",
        g.display()
    );
    g
}

/// A little-endian float32 C-order .npy: (shape, values).
fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{}: not a .npy file", path.display());
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(header.contains("'<f4'"), "{}: {header}", path.display());
    assert!(header.contains("'fortran_order': False"));
    let shape_str = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_str
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data: Vec<f32> = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

fn sequences() -> Vec<Vec<u32>> {
    let text = std::fs::read_to_string(golden().join("reference/tokens.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

struct Metrics {
    max_dlogit: f64,
    mean_kl: f64,
    top1_checked: usize,
    top1_mismatch: usize,
}

fn log_softmax(x: &[f32]) -> Vec<f64> {
    let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let lse = x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln() + m;
    x.iter().map(|&v| v as f64 - lse).collect()
}

/// Ours against the reference, `[T, vocab]` each. KL(reference || ours), as llama-perplexity defines it.
fn compare(reference: &[f32], ours: &[f32], vocab: usize) -> Metrics {
    assert_eq!(reference.len(), ours.len());
    let mut m = Metrics {
        max_dlogit: 0.0,
        mean_kl: 0.0,
        top1_checked: 0,
        top1_mismatch: 0,
    };
    let rows = reference.len() / vocab;
    for (r, o) in reference.chunks_exact(vocab).zip(ours.chunks_exact(vocab)) {
        for (a, b) in r.iter().zip(o) {
            assert!(b.is_finite(), "non-finite logit");
            m.max_dlogit = m.max_dlogit.max((a - b).abs() as f64);
        }
        let (lr, lo) = (log_softmax(r), log_softmax(o));
        m.mean_kl += lr
            .iter()
            .zip(&lo)
            .map(|(a, b)| a.exp() * (a - b))
            .sum::<f64>();
        let mut idx: Vec<usize> = (0..vocab).collect();
        idx.sort_by(|&a, &b| r[b].total_cmp(&r[a]));
        if r[idx[0]] - r[idx[1]] > TOP2_MARGIN {
            m.top1_checked += 1;
            let top_ours = (0..vocab).max_by(|&a, &b| o[a].total_cmp(&o[b])).unwrap();
            if top_ours != idx[0] {
                m.top1_mismatch += 1;
            }
        }
    }
    m.mean_kl /= rows as f64;
    m
}

/// Runs `ckpt` on every golden sequence and checks it against `golden/reference/<reference>.seq<k>.<suffix>.npy`.
fn check(ckpt_path: &Path, reference: &str, suffix: &str, options: ForwardOptions) {
    check_in(
        &golden().join("reference"),
        ckpt_path,
        reference,
        suffix,
        options,
    )
}

/// Like [`check`], with the reference logits in `ref_dir`.
fn check_in(
    ref_dir: &Path,
    ckpt_path: &Path,
    reference: &str,
    suffix: &str,
    options: ForwardOptions,
) {
    let ckpt = Checkpoint::open(ckpt_path, None)
        .unwrap_or_else(|e| panic!("{}: {e:#}", ckpt_path.display()));
    let device = options.device;
    let model = Model::new(&ckpt, options).unwrap_or_else(|e| panic!("{e:#}"));
    let vocab = model.config().vocab_size;
    for (k, toks) in sequences().iter().enumerate() {
        let refp = ref_dir.join(format!("{reference}.seq{k}.{suffix}.npy"));
        let (shape, want) = read_npy_f32(&refp);
        assert_eq!(shape, [toks.len(), vocab]);
        let got = model.forward(toks).unwrap();
        let m = compare(&want, &got, vocab);
        println!(
            "{} ({:?}) seq{k} vs {}: max|Δlogit| {:.3e}  mean KL {:.3e}  top-1 {}/{} agree",
            ckpt_path
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(ckpt_path)
                .display(),
            model.layout(),
            refp.file_name().unwrap().to_string_lossy(),
            m.max_dlogit,
            m.mean_kl,
            m.top1_checked - m.top1_mismatch,
            m.top1_checked
        );
        CLAIM.check(&m, device, &refp.display().to_string());
        assert_eq!(m.top1_mismatch, 0, "top-1 disagreements");
        assert!(m.top1_checked > 0);
    }
}

test_device!(hf_mxfp4_matches_transformers);
fn hf_mxfp4_matches_transformers(device: Device) {
    check(&golden().join("tiny"), "tiny", "logits", opts(device));
}

test_device!(original_layout_matches_transformers);
fn original_layout_matches_transformers(device: Device) {
    check(
        &golden().join("tiny/original"),
        "tiny",
        "logits",
        opts(device),
    );
}

test_device!(hf_bf16_matches_transformers);
fn hf_bf16_matches_transformers(device: Device) {
    check(
        &golden().join("tiny-bf16"),
        "tiny-bf16",
        "logits",
        opts(device),
    );
    check(
        &golden().join("tiny-bf16-noisy"),
        "tiny-bf16-noisy",
        "logits",
        opts(device),
    );
}

test_device!(gguf_from_llama_cpp_matches_transformers);
fn gguf_from_llama_cpp_matches_transformers(device: Device) {
    // Lossless conversions by llama.cpp's converter: the same function as the source.
    for (file, reference) in [
        ("tiny.f32.gguf", "tiny"),
        ("tiny.f16.gguf", "tiny"),
        ("tiny.bf16.gguf", "tiny"),
        ("tiny-bf16.f32.gguf", "tiny-bf16"),
        ("tiny-bf16.bf16.gguf", "tiny-bf16"),
    ] {
        check(
            &golden().join("llamacpp").join(file),
            reference,
            "logits",
            opts(device),
        );
    }
}

test_device!(quantized_gguf_matches_transformers_on_decoded_weights);
/// Quantized GGUFs (gguf-py's quantizers; llama.cpp's converter for tiny.q8_0) against transformers run on the
/// weights as gguf-py decodes them (tests/data/forward/make_quant_refs.py).
fn quantized_gguf_matches_transformers_on_decoded_weights(device: Device) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/forward");
    for (ty, dtype) in [
        ("q8_0", DType::Q8_0),
        ("q4_0", DType::Q4_0),
        ("q4_1", DType::Q4_1),
        ("q5_0", DType::Q5_0),
        ("q5_1", DType::Q5_1),
        ("mxfp4", DType::Mxfp4),
    ] {
        let path = data.join(format!("tiny-bf16.{ty}.gguf"));
        let ckpt = Checkpoint::open(&path, None).unwrap();
        // The fixture really holds the type under test, experts included.
        for name in [
            "blk.0.attn_q.weight",
            "blk.0.ffn_gate_exps.weight",
            "output.weight",
        ] {
            assert_eq!(ckpt.tensor(name).unwrap().dtype, dtype, "{name} in {ty}");
        }
        check_in(
            &data,
            &path,
            &format!("tiny-bf16.{ty}"),
            "logits",
            opts(device),
        );
    }
    check_in(
        &data,
        &golden().join("llamacpp/tiny.q8_0.gguf"),
        "tiny.q8_0",
        "logits",
        opts(device),
    );
}

test_device!(yarn_truncate_matches_transformers_with_rounded_bounds);
fn yarn_truncate_matches_transformers_with_rounded_bounds(device: Device) {
    let opts = ForwardOptions {
        yarn_truncate: true,
        ..opts(device)
    };
    check(
        &golden().join("tiny"),
        "tiny",
        "logits-yarn-truncate",
        opts.clone(),
    );
    check(
        &golden().join("tiny-bf16-noisy"),
        "tiny-bf16-noisy",
        "logits-yarn-truncate",
        opts.clone(),
    );
    // llama.cpp's own F32 path (all-F32 GGUF, so no activation quantization) rounds the bounds too: with
    // --yarn-truncate ossify matches the logits llama.cpp computed.
    check_in(
        &golden().join("llamacpp"),
        &golden().join("llamacpp/tiny-bf16.f32.gguf"),
        "tiny-bf16.f32",
        "logits",
        opts,
    );
}

#[test]
fn yarn_inverse_frequencies_match_transformers() {
    let facts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(golden().join("reference/facts.json")).unwrap(),
    )
    .unwrap();
    let ckpt = Checkpoint::open(&golden().join("tiny"), None).unwrap();
    for (truncate, key) in [
        (false, "tiny.inv_freq.truncate_false"),
        (true, "tiny.inv_freq.truncate_true"),
    ] {
        let want: Vec<f64> = facts[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let rope = Rope::new(&ckpt.config, Some(truncate));
        assert_eq!(rope.inv_freq.len(), want.len());
        for (i, (&a, &b)) in rope.inv_freq.iter().zip(&want).enumerate() {
            assert!(
                ((a as f64) - b).abs() <= 1e-6 * b.abs(),
                "{key}[{i}]: {a} vs {b}"
            );
        }
    }
}

test_device!(traced_residuals_match_transformers);
/// The residual stream after each attention and MoE sub-block matches transformers' (attn_resid: input of
/// post_attention_layernorm; hidden: decoder layer outputs; last_prenorm: input of the final norm).
fn traced_residuals_match_transformers(device: Device) {
    let ckpt = Checkpoint::open(&golden().join("tiny"), None).unwrap();
    let model = Model::new(&ckpt, opts(device)).unwrap();
    let toks = &sequences()[0];
    let tr = model.forward_traced(toks).unwrap();
    let (_, attn) = read_npy_f32(&golden().join("reference/tiny.seq0.attn_resid.npy"));
    let (hs, hidden) = read_npy_f32(&golden().join("reference/tiny.seq0.hidden.npy"));
    let (_, last) = read_npy_f32(&golden().join("reference/tiny.seq0.last_prenorm.npy"));
    let n_layers = model.config().num_hidden_layers;
    let th = hs[1] * hs[2];
    let close = |a: &[f32], b: &[f32], what: &str| {
        let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
        let err = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        println!("{what}: max |Δ| {err:.3e} (scale {scale:.2})");
        assert!(err <= 1e-5 * scale, "{what}: max |Δ| {err}");
    };
    close(&tr.embeddings, &hidden[..th], "embeddings");
    for l in 0..n_layers {
        close(
            &tr.after_attention[l],
            &attn[l * th..(l + 1) * th],
            &format!("layer {l} after attention"),
        );
        let want = if l + 1 < n_layers {
            &hidden[(l + 1) * th..(l + 2) * th]
        } else {
            &last[..]
        };
        close(&tr.after_moe[l], want, &format!("layer {l} after MoE"));
    }
    assert_eq!(tr.first_non_finite(), None);

    // Divergence between two runs is located at the sub-block where it starts: the same weights in GGUF
    // agree everywhere; tiny-bf16-noisy (same attention, experts off the MXFP4 grid) first diverges at
    // layer 0's MoE.
    let gg = Checkpoint::open(&golden().join("llamacpp/tiny.f32.gguf"), None).unwrap();
    let tr_gguf = Model::new(&gg, opts(device))
        .unwrap()
        .forward_traced(toks)
        .unwrap();
    let errs = tr_gguf.relative_errors(&tr);
    assert_eq!(errs.len(), 2 * n_layers);
    assert!(errs.iter().all(|d| d.relative_error < 1e-5), "{errs:?}");
    assert_eq!(tr_gguf.first_divergence(&tr, 1e-4), None);
    let noisy = Checkpoint::open(&golden().join("tiny-bf16-noisy"), None).unwrap();
    let tr_noisy = Model::new(&noisy, opts(device))
        .unwrap()
        .forward_traced(toks)
        .unwrap();
    let first = tr_noisy.first_divergence(&tr, 1e-4).unwrap();
    println!("tiny-bf16-noisy vs tiny diverges first at {first:?}");
    assert_eq!((first.layer, first.sub_block), (0, SubBlock::Moe));
    assert_eq!(tr.logits, model.forward(toks).unwrap());
}

test_device!(kv_cache_and_batching_agree_with_one_pass);
/// Incremental decode through the KV cache (sliding-window ring included) and small prefill batches give the
/// logits of one full pass.
fn kv_cache_and_batching_agree_with_one_pass(device: Device) {
    let ckpt = Checkpoint::open(&golden().join("tiny"), None).unwrap();
    let model = Model::new(&ckpt, opts(device)).unwrap();
    assert_eq!(model.layout(), Layout::Hf);
    let toks = &sequences()[0];
    let window = model.config().sliding_window;
    assert!(toks.len() > 2 * window, "sequence must outrun the window");
    let full = model.forward(toks).unwrap();
    let vocab = model.config().vocab_size;

    let mut s = model.session();
    let mut inc = s.eval(&toks[..5]).unwrap();
    for &t in &toks[5..] {
        inc.extend(s.eval(&[t]).unwrap());
    }
    assert_eq!(s.n_past(), toks.len());

    let batched = Model::new(
        &ckpt,
        ForwardOptions {
            batch_size: 3,
            threads: 1,
            ..opts(device)
        },
    )
    .unwrap()
    .forward(toks)
    .unwrap();
    for (what, other) in [("incremental", &inc), ("batch of 3", &batched)] {
        let m = compare(&full, other, vocab);
        println!("{what} vs one pass: max|Δlogit| {:.3e}", m.max_dlogit);
        assert!(m.max_dlogit <= 1e-4, "{what}: {}", m.max_dlogit);
    }
    s.reset();
    assert_eq!(s.n_past(), 0);

    // Scoring only a suffix, a batch at a time, gives the same rows.
    let mut s = model.session();
    let mut seen = Vec::new();
    s.eval_each(&toks[..20], 12, |i, row| {
        let m = compare(&full[i * vocab..(i + 1) * vocab], row, vocab);
        assert!(m.max_dlogit <= 1e-4, "eval_each row {i}: {}", m.max_dlogit);
        seen.push(i);
    })
    .unwrap();
    assert_eq!(seen, (12..20).collect::<Vec<_>>());
    let last = s.eval_last(&toks[20..]).unwrap();
    let m = compare(&full[(toks.len() - 1) * vocab..], &last, vocab);
    assert!(m.max_dlogit <= 1e-4, "eval_last: {}", m.max_dlogit);
}

test_device!(out_of_vocabulary_token_is_an_error);
fn out_of_vocabulary_token_is_an_error(device: Device) {
    let ckpt = Checkpoint::open(&golden().join("tiny"), None).unwrap();
    let model = Model::new(&ckpt, opts(device)).unwrap();
    let err = model.forward(&[1, 100_000]).unwrap_err();
    assert!(format!("{err:#}").contains("100000"), "{err:#}");
}

test_device!(long_context_matches_transformers);
/// Past 8192 positions (YaRN's long range, the sliding ring wrapped a thousand times): the last positions of an
/// 8200-token sequence match transformers (tests/data/forward/make_quant_refs.py `long`).
fn long_context_matches_transformers(device: Device) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/forward");
    let toks: Vec<u32> =
        serde_json::from_str(&std::fs::read_to_string(data.join("long.tokens.json")).unwrap())
            .unwrap();
    let (shape, want) = read_npy_f32(&data.join("long.tail.logits.npy"));
    assert!(toks.len() > 8192);
    let ckpt = Checkpoint::open(&golden().join("tiny"), None).unwrap();
    let opts = ForwardOptions {
        context: toks.len(),
        ..opts(device)
    };
    let model = Model::new(&ckpt, opts).unwrap();
    let vocab = model.config().vocab_size;
    assert_eq!(shape[1], vocab);
    let first = toks.len() - shape[0];
    let mut got = Vec::new();
    model
        .session()
        .eval_each(&toks, first, |_, row| got.extend_from_slice(row))
        .unwrap();
    let m = compare(&want, &got, vocab);
    println!(
        "{} tokens, last {}: max|Δlogit| {:.3e}  mean KL {:.3e}  top-1 {}/{} agree",
        toks.len(),
        shape[0],
        m.max_dlogit,
        m.mean_kl,
        m.top1_checked - m.top1_mismatch,
        m.top1_checked
    );
    LONG_CLAIM.check(&m, device, "long.tail.logits.npy");
    assert_eq!(m.top1_mismatch, 0);
}

/// With activations rounded as ggml's CPU backend rounds them (Q8_0 inputs to the MXFP4 experts) and the YaRN
/// bounds rounded, ossify reproduces llama.cpp's own logits on tiny.f32.gguf, and more closely than the exact
/// mode does (golden/README.md: the gap is activation quantization, magnified by the tiny model).
#[test]
fn q8_activations_match_llama_cpp_logits() {
    let path = golden().join("llamacpp/tiny.f32.gguf");
    let ckpt = Checkpoint::open(&path, None).unwrap();
    let run = |precision: Precision| {
        let model = Model::new(
            &ckpt,
            ForwardOptions {
                yarn_truncate: true,
                precision,
                ..ForwardOptions::default()
            },
        )
        .unwrap();
        let vocab = model.config().vocab_size;
        sequences()
            .iter()
            .enumerate()
            .map(|(k, toks)| {
                let refp = golden().join(format!("llamacpp/tiny.f32.seq{k}.logits.npy"));
                let (shape, want) = read_npy_f32(&refp);
                assert_eq!(shape, [toks.len(), vocab]);
                compare(&want, &model.forward(toks).unwrap(), vocab).max_dlogit
            })
            .collect::<Vec<_>>()
    };
    let exact = run(Precision::Exact);
    let q8 = run(Precision::Q8Activations);
    println!("vs llama.cpp tiny.f32 logits: exact {exact:?}, q8-activations {q8:?}");
    for (k, (e, q)) in exact.iter().zip(&q8).enumerate() {
        assert!(*q <= 1e-4, "seq{k}: q8-activations max|Δlogit| {q}");
        assert!(
            q < e,
            "seq{k}: q8-activations {q} is not closer than exact {e}"
        );
    }
}

/// The CUDA forward pass in exact mode against the CPU's on every golden checkpoint, layout and type: max |Δlogit|
/// ≤ 1e-4 and mean KL ≤ 1e-9 (the two differ only in summation order).
#[test]
fn cuda_exact_matches_cpu_exact() {
    if !have_cuda() {
        return;
    }
    let g = golden();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/forward");
    let mut paths = vec![
        g.join("tiny"),
        g.join("tiny/original"),
        g.join("tiny-bf16"),
        g.join("tiny-bf16-noisy"),
    ];
    for f in [
        "tiny.f32.gguf",
        "tiny.f16.gguf",
        "tiny.bf16.gguf",
        "tiny.q8_0.gguf",
        "tiny-bf16.f32.gguf",
        "tiny-bf16.bf16.gguf",
    ] {
        paths.push(g.join("llamacpp").join(f));
    }
    for ty in ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "mxfp4"] {
        paths.push(data.join(format!("tiny-bf16.{ty}.gguf")));
    }
    for path in paths {
        let ckpt =
            Checkpoint::open(&path, None).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        let cpu = Model::new(&ckpt, opts(Device::Cpu)).unwrap();
        let gpu = Model::new(&ckpt, opts(Device::Cuda)).unwrap();
        let vocab = cpu.config().vocab_size;
        for (k, toks) in sequences().iter().enumerate() {
            let m = compare(
                &cpu.forward(toks).unwrap(),
                &gpu.forward(toks).unwrap(),
                vocab,
            );
            println!(
                "{} seq{k} on {}: max|Δlogit| {:.3e}  mean KL {:.3e}",
                path.display(),
                gpu.device(),
                m.max_dlogit,
                m.mean_kl
            );
            assert!(
                m.max_dlogit <= CUDA_VS_CPU.max_dlogit,
                "{}: max |Δlogit| {}",
                path.display(),
                m.max_dlogit
            );
            assert!(
                m.mean_kl <= CUDA_VS_CPU.mean_kl,
                "{}: mean KL {}",
                path.display(),
                m.mean_kl
            );
        }
    }
}
