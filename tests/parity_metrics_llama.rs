//! The logit metrics against llama.cpp's own `llama-perplexity --kl-divergence` (tests/data/llama_kld/make.py:
//! llama-perplexity's printed statistics for llama.cpp's F32 vs Q8_0 GGUF of golden/tiny, and the logit rows
//! it scored, recomputed with llama-cpp-python).
//!
//! llama-perplexity stores the base model's log-probabilities as 16-bit integers over a 16-nat range and
//! prints 6 decimals; we compute from the float logits in f64. The tolerances below allow for that and
//! nothing more.

use std::path::Path;

use ossify::parity::metrics::KldAccumulator;

#[test]
fn metrics_agree_with_llama_perplexity() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/llama_kld");
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let base = ossify::npy::read_f32(&dir.join("base.f32.rows.npy")).unwrap();
    let cand = ossify::npy::read_f32(&dir.join("cand.q8_0.rows.npy")).unwrap();
    let vocab = exp["n_vocab"].as_u64().unwrap() as usize;
    let next: Vec<u32> = exp["next_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(base.shape, vec![next.len(), vocab]);
    let mut acc = KldAccumulator::default();
    for (i, &t) in next.iter().enumerate() {
        let r = i * vocab..(i + 1) * vocab;
        acc.add_row(i, &base.data[r.clone()], &cand.data[r], t)
            .unwrap();
    }
    let s = acc.finish();
    let lp = &exp["llama_perplexity"];
    let want = |k: &str, i: usize| lp[k][i].as_f64().unwrap();
    let near = |name: &str, got: f64, want: f64, rel: f64, abs: f64| {
        assert!(
            (got - want).abs() <= abs + rel * want.abs(),
            "{name}: ossify {got}, llama-perplexity {want}"
        );
    };
    eprintln!("{s:#?}");
    assert_eq!(s.n_tokens, 119);
    near(
        "PPL(Q)",
        s.ppl_candidate,
        want("ppl_candidate", 0),
        1e-4,
        0.0,
    );
    near(
        "PPL(Q) ±",
        s.ppl_candidate_uncertainty,
        want("ppl_candidate", 1),
        1e-3,
        0.0,
    );
    near(
        "PPL(base)",
        s.ppl_reference,
        want("ppl_reference", 0),
        1e-4,
        0.0,
    );
    near(
        "PPL(base) ±",
        s.ppl_reference_uncertainty,
        want("ppl_reference", 1),
        1e-3,
        0.0,
    );
    near(
        "ln ratio",
        s.ln_ppl_ratio,
        want("ln_ppl_ratio", 0),
        0.0,
        1e-4,
    );
    near(
        "ln ratio ±",
        s.ln_ppl_ratio_uncertainty,
        want("ln_ppl_ratio", 1),
        0.0,
        1e-4,
    );
    near("KLD mean", s.kld_mean, want("kld_mean", 0), 1e-2, 1e-5);
    near(
        "KLD mean ±",
        s.kld_mean_uncertainty,
        want("kld_mean", 1),
        1e-2,
        1e-5,
    );
    near("KLD max", s.kld_max, want("kld_max", 0), 1e-2, 1e-5);
    near("KLD p99", s.kld_p99, want("kld_p99", 0), 1e-2, 1e-5);
    near(
        "KLD median",
        s.kld_median,
        want("kld_median", 0),
        1e-2,
        1e-5,
    );
    near(
        "RMS Δp",
        100.0 * s.rms_dp,
        want("rms_dp_percent", 0),
        0.0,
        1e-3,
    );
    near(
        "RMS Δp ±",
        100.0 * s.rms_dp_uncertainty,
        want("rms_dp_percent", 1),
        0.0,
        1e-3,
    );
    near(
        "Same top p",
        100.0 * s.top1_agreement,
        want("top1_percent", 0),
        0.0,
        1e-3,
    );
    near(
        "Same top p ±",
        100.0 * s.top1_agreement_uncertainty,
        want("top1_percent", 1),
        0.0,
        1e-3,
    );
}
