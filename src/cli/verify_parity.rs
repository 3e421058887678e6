//! `ossify verify-parity SOURCE CANDIDATE`: prove a converted model computes what its source computes.
//!
//! 1. Tensors: every tensor mapped between layouts, decoded to f32 on both sides and compared (exact for
//!    lossless conversions; RMSE / max |err| / SNR otherwise) — see [`crate::parity::tensors`].
//! 2. Logits: both models on the same tokens, metrics as llama-perplexity --kl-divergence defines them;
//!    past threshold, both runs traced to name the first layer and sub-block where they part.
//!
//! `verify-parity --reference-logits ref.npy --tokens tokens.json CANDIDATE` compares the candidate's logits
//! with float32 logits another implementation dumped. Exit codes: 0 within thresholds, 1 outside, 2 error.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;

use ossify_formats::DType;

use crate::checkpoint::Checkpoint;
use crate::npy;
use crate::parity::check_compatible;
use crate::parity::input::{default_input, open_model, read_tokens, tokenize, DEFAULT_INPUT_NAME};
use crate::parity::logits::{
    first_nonfinite_stage, verify_against_logits, verify_models_with, LogitVerdict, Sequences,
    Thresholds,
};
use crate::parity::tensors::{compare_checkpoints_with, TensorComparison, TensorReport};

/// Options of `ossify verify-parity`.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The source checkpoint (absent with `reference_logits`).
    pub source: Option<PathBuf>,
    pub candidate: PathBuf,
    pub reference_logits: Option<PathBuf>,
    pub text: Option<PathBuf>,
    pub tokens: Option<PathBuf>,
    /// Which sequence of a multi-sequence tokens file to use (default: all).
    pub sequence: Option<usize>,
    pub thresholds: Thresholds,
    pub yarn_truncate: bool,
    pub precision: crate::gpt_oss::Precision,
    /// Where the forward passes run.
    pub device: crate::gpt_oss::Device,
    /// Skip the logit stage (no forward pass).
    pub tensors_only: bool,
    pub json: bool,
    /// Progress bars on standard error (only on a terminal).
    pub progress: bool,
}

/// `--text` is evaluated in independent sequences of at most this many tokens.
pub const TEXT_SEQUENCE_LEN: usize = 512;

/// Default logit limits per conversion kind, used when the user sets none: (kind, max mean KLD, min same-top-1).
/// A conversion's kind is that of its most lossy tensor ([`conversion_kind`]), in this order.
///
/// Where they come from: llama.cpp's own files for golden/tiny-bf16-noisy (golden/llamacpp/quantize, made by
/// llama-quantize) and golden/llamacpp/tiny.q8_0.gguf, measured against their source with the default input,
/// with golden/reference/tokens.json and with a text; the worst value with a margin of about 2×: Q8_0 KLD
/// 7.5e-2 / top-1 0.87, MXFP4 experts 9.1e-2 / 0.70, Q5 1.8e-1 / 0.58, Q4 5.1e-1 / 0.33, F16 and BF16 below
/// 1e-12. The tiny model's random weights make rounding
/// show far more than in a trained model, so these bounds are loose; for lossy conversions the strict check is
/// the tensor one (every tensor within the error its type explains, [`crate::parity::error_model`]). A
/// lossless conversion (every tensor identical) may differ only by f32 summation order between storage layouts.
pub const DEFAULT_THRESHOLDS: &[(&str, f64, f64)] = &[
    ("lossless", 1e-6, 0.999),
    ("f16/bf16", 1e-4, 0.99),
    ("q8_0", 0.15, 0.75),
    ("mxfp4", 0.3, 0.55),
    ("q5_0/q5_1", 0.5, 0.45),
    ("q4_0/q4_1", 1.0, 0.25),
];

/// The row of [`DEFAULT_THRESHOLDS`] for a number format a lossy tensor was stored in.
fn kind_of(dtype: DType) -> usize {
    match dtype {
        DType::F16 | DType::BF16 => 1,
        DType::Q8_0 => 2,
        DType::Mxfp4 => 3,
        DType::Q5_0 | DType::Q5_1 => 4,
        DType::Q4_0 | DType::Q4_1 => 5,
        _ => 0,
    }
}

/// The conversion kind (a row of [`DEFAULT_THRESHOLDS`]): the most lossy type among the candidate's lossy
/// tensors; without a tensor comparison (`--reference-logits`), the most lossy type the candidate stores.
pub fn conversion_kind(report: Option<&TensorReport>, candidate: &Checkpoint) -> usize {
    match report {
        Some(r) => r
            .tensors
            .iter()
            .filter(|t| t.n_different > 0 && !t.lossless)
            .filter_map(|t| DType::from_name(&t.candidate_dtype))
            .map(kind_of)
            .max()
            .unwrap_or(0),
        None => candidate
            .tensor_names()
            .into_iter()
            .filter_map(|n| candidate.get(n))
            .map(|v| kind_of(v.dtype))
            .max()
            .unwrap_or(0),
    }
}

#[derive(Serialize)]
struct TensorJson<'a> {
    n_tensors: usize,
    n_exact: usize,
    n_lossy: usize,
    n_failed: usize,
    first_failed_layer: Option<usize>,
    failed: Vec<&'a TensorComparison>,
    lossy: Vec<&'a TensorComparison>,
}

#[derive(Serialize)]
struct LogitJson<'a> {
    mode: &'static str,
    /// Where the forward passes ran: "cpu", or the GPU.
    device: String,
    n_sequences: usize,
    /// What was scored: the built-in set's name, or the --text / --tokens file.
    input: String,
    #[serde(flatten)]
    summary: &'a crate::parity::metrics::LogitSummary,
}

/// Names the input the logits were computed on, for the report.
fn input_name(opts: &VerifyOptions) -> String {
    match (&opts.text, &opts.tokens) {
        (Some(t), _) => format!("text {}", t.display()),
        (None, Some(t)) => match opts.sequence {
            Some(k) => format!("tokens {} (sequence {k})", t.display()),
            None => format!("tokens {}", t.display()),
        },
        (None, None) => format!(
            "{DEFAULT_INPUT_NAME} (built in: 3 harmony conversations with reasoning, prose, code)"
        ),
    }
}

#[derive(Serialize)]
struct NonFiniteJson {
    layer: Option<usize>,
    sub_block: &'static str,
}

#[derive(Serialize)]
struct ReportJson<'a> {
    comparison: &'static str,
    reference: String,
    candidate: String,
    pass: bool,
    violations: &'a [String],
    thresholds: &'a Thresholds,
    tensors: Option<TensorJson<'a>>,
    logits: Option<LogitJson<'a>>,
    divergence: Option<&'a crate::parity::logits::Divergence>,
    first_nonfinite: Option<NonFiniteJson>,
}

fn tensor_json(r: &TensorReport) -> TensorJson<'_> {
    TensorJson {
        n_tensors: r.tensors.len(),
        n_exact: r.n_exact,
        n_lossy: r.n_lossy,
        n_failed: r.n_failed,
        first_failed_layer: r.first_failed_layer(),
        failed: r.failures().collect(),
        lossy: r
            .tensors
            .iter()
            .filter(|t| !t.failed() && t.n_different > 0)
            .collect(),
    }
}

fn sequences(opts: &VerifyOptions, ck: &Checkpoint) -> Result<Sequences> {
    match (&opts.text, &opts.tokens) {
        (Some(_), Some(_)) => bail!("give --text or --tokens, not both"),
        (Some(t), None) => {
            let text = crate::checkpoint::read_input_text(t)?;
            // Long texts are split into independent sequences so that both models' logits stay small
            // ([T, vocab] f32 each).
            let ids = tokenize(ck, &text)?;
            Ok(ids.chunks(TEXT_SEQUENCE_LEN).map(<[u32]>::to_vec).collect())
        }
        (None, Some(p)) => read_tokens(p, opts.sequence),
        (None, None) => default_input(ck),
    }
}

/// The user's limits, or when they set none, the defaults for `kind` (a row of [`DEFAULT_THRESHOLDS`]).
fn thresholds(opts: &VerifyOptions, kind: usize) -> Thresholds {
    let t = opts.thresholds;
    if t.max_kld.is_none() && t.min_top1.is_none() && t.max_ppl_ratio.is_none() {
        let (name, kld, top1) = DEFAULT_THRESHOLDS[kind.min(DEFAULT_THRESHOLDS.len() - 1)];
        Thresholds {
            max_kld: Some(kld),
            min_top1: Some(top1),
            max_ppl_ratio: None,
            default_for: Some(name),
        }
    } else {
        t
    }
}

/// A bar for one step of the verification (its length is set by the step).
fn step_bar(opts: &VerifyOptions, what: &str, unit: &'static str) -> indicatif::ProgressBar {
    crate::progress::bar(opts.progress, 0, what, crate::progress::Unit::Items(unit))
}

/// Runs the verification, prints its report (human or JSON) and says whether it passed.
pub fn run(opts: &VerifyOptions) -> Result<bool> {
    let candidate = Checkpoint::open(&opts.candidate, None)?;
    let th: Thresholds;
    let mut violations: Vec<String> = Vec::new();
    let mut tensor_report = None;
    let mut verdict: Option<LogitVerdict> = None;
    let mut n_sequences = 0;
    let mut nonfinite = None;
    let mut mode = "none";
    let mut device = String::from("none");

    let (comparison, reference_name) = if let Some(ref_logits) = &opts.reference_logits {
        if opts.source.is_some() {
            bail!("--reference-logits replaces SOURCE: give one or the other");
        }
        let Some(tokens) = &opts.tokens else {
            bail!("--reference-logits needs --tokens FILE.json (the ids the logits were computed for)");
        };
        let seqs = read_tokens(tokens, opts.sequence)?;
        let arr = npy::read_f32(ref_logits)?;
        let vocab = candidate.config.vocab_size;
        if arr.shape.len() != 2 || arr.shape[1] != vocab {
            bail!(
                "{}: reference logits have shape {:?}; expected [tokens, {vocab}] for the candidate's vocabulary",
                ref_logits.display(),
                arr.shape
            );
        }
        let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
        let model = open_model(
            &candidate,
            opts.yarn_truncate,
            opts.precision,
            longest,
            opts.device,
        )?;
        mode = model.mode();
        device = model.device();
        n_sequences = seqs.len();
        th = thresholds(opts, conversion_kind(None, &candidate));
        let bar = step_bar(opts, "forward pass, candidate", "tokens");
        let (v, trace) = verify_against_logits(&arr.data, model.as_ref(), &seqs, &th, &bar)?;
        bar.finish_and_clear();
        nonfinite = trace.as_ref().and_then(first_nonfinite_stage);
        verdict = Some(v);
        ("reference-logits", ref_logits.display().to_string())
    } else {
        let Some(src) = &opts.source else {
            bail!("give SOURCE and CANDIDATE, or --reference-logits FILE --tokens FILE CANDIDATE");
        };
        let source = Checkpoint::open(src, None)?;
        check_compatible(&source.config, &candidate.config)?;
        let bar = step_bar(opts, "comparing tensors", "pieces");
        let report = compare_checkpoints_with(&source, &candidate, &bar)?;
        bar.finish_and_clear();
        violations.extend(report.failures().filter_map(TensorComparison::failure));
        th = thresholds(opts, conversion_kind(Some(&report), &candidate));
        tensor_report = Some(report);
        if !opts.tensors_only {
            let seqs = sequences(opts, &source)?;
            let longest = seqs.iter().map(Vec::len).max().unwrap_or(0);
            let a = open_model(
                &source,
                opts.yarn_truncate,
                opts.precision,
                longest,
                opts.device,
            )?;
            let b = open_model(
                &candidate,
                opts.yarn_truncate,
                opts.precision,
                longest,
                opts.device,
            )?;
            mode = b.mode();
            device = b.device();
            n_sequences = seqs.len();
            let bars = [
                step_bar(opts, "forward pass, source   ", "tokens"),
                step_bar(opts, "forward pass, candidate", "tokens"),
            ];
            let shown = crate::progress::stack(&[&bars[0], &bars[1]]);
            let v = verify_models_with(a.as_ref(), b.as_ref(), &seqs, &th, [&bars[0], &bars[1]]);
            for b in &bars {
                b.finish_and_clear();
            }
            drop(shown);
            verdict = Some(v?);
        }
        ("checkpoints", src.display().to_string())
    };
    if let Some(v) = &verdict {
        violations.extend(v.violations.iter().cloned());
    }
    let pass = violations.is_empty();

    if opts.json {
        let report = ReportJson {
            comparison,
            reference: reference_name,
            candidate: opts.candidate.display().to_string(),
            pass,
            violations: &violations,
            thresholds: &th,
            tensors: tensor_report.as_ref().map(tensor_json),
            logits: verdict.as_ref().map(|v| LogitJson {
                mode,
                device: device.clone(),
                n_sequences,
                input: input_name(opts),
                summary: &v.summary,
            }),
            divergence: verdict.as_ref().and_then(|v| v.divergence.as_ref()),
            first_nonfinite: nonfinite.map(|(layer, sub_block)| NonFiniteJson { layer, sub_block }),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(
            &reference_name,
            opts,
            tensor_report.as_ref(),
            verdict.as_ref(),
            mode,
            nonfinite,
            &violations,
            &th,
        );
    }
    Ok(pass)
}

fn fmt_snr(s: Option<f64>) -> String {
    s.map_or("inf".to_string(), |x| format!("{x:.1} dB"))
}

#[allow(clippy::too_many_arguments)]
fn print_human(
    reference: &str,
    opts: &VerifyOptions,
    tensors: Option<&TensorReport>,
    verdict: Option<&LogitVerdict>,
    mode: &str,
    nonfinite: Option<(Option<usize>, &'static str)>,
    violations: &[String],
    th: &Thresholds,
) {
    let color = std::io::stdout().is_terminal() && crate::progress::color_allowed();
    println!("reference: {reference}");
    println!("candidate: {}", opts.candidate.display());
    if verdict.is_some() {
        println!("input:     {}", input_name(opts));
    }
    if let Some(r) = tensors {
        println!(
            "tensors:   {} compared, {} identical, {} lossy, {} FAILED",
            r.tensors.len(),
            r.n_exact,
            r.n_lossy,
            r.n_failed
        );
        for t in r.failures() {
            println!(
                "  FAILED {} (layer {}): {}; first at flat index {}, max |err| {:.3e}, SNR {}",
                t.name,
                t.layer.map_or("-".to_string(), |l| l.to_string()),
                t.failure().unwrap_or_default(),
                t.first_difference.unwrap_or(0),
                t.max_abs_err,
                fmt_snr(t.snr_db)
            );
        }
        let mut lossy: Vec<&TensorComparison> = r
            .tensors
            .iter()
            .filter(|t| !t.failed() && t.n_different > 0)
            .collect();
        lossy.sort_by(|a, b| {
            a.snr_db
                .unwrap_or(f64::INFINITY)
                .total_cmp(&b.snr_db.unwrap_or(f64::INFINITY))
        });
        for t in lossy.iter().take(5) {
            println!(
                "  lossy  {} {} -> {}: RMSE {:.3e}, max |err| {:.3e}, SNR {}",
                t.name,
                t.reference_dtype,
                t.candidate_dtype,
                t.rmse,
                t.max_abs_err,
                fmt_snr(t.snr_db)
            );
        }
        if lossy.len() > 5 {
            println!(
                "  ... {} more lossy tensors (--json lists all)",
                lossy.len() - 5
            );
        }
    }
    if let Some(v) = verdict {
        let s = &v.summary;
        if let Some(kind) = th.default_for {
            println!(
                "limits:    the defaults for {kind} conversions: mean KLD <= {:e}, same top-1 >= {}",
                th.max_kld.unwrap_or(f64::NAN),
                th.min_top1.unwrap_or(f64::NAN)
            );
        }
        println!(
            "logits:    {} tokens scored ({mode} forward pass)",
            s.n_tokens
        );
        println!(
            "  KLD mean {:.6e} ± {:.1e}, median {:.3e}, p99 {:.3e}, max {:.3e}",
            s.kld_mean, s.kld_mean_uncertainty, s.kld_median, s.kld_p99, s.kld_max
        );
        println!(
            "  same top-1 {:.3} %, max |Δlogit| {:.3e}, RMS Δp {:.4} %",
            100.0 * s.top1_agreement,
            s.max_abs_dlogit,
            100.0 * s.rms_dp
        );
        println!(
            "  PPL reference {:.4}, candidate {:.4}, ratio {:.6} ± {:.6}",
            s.ppl_reference, s.ppl_candidate, s.ppl_ratio, s.ppl_ratio_uncertainty
        );
        if let Some(d) = &v.divergence {
            if let Some(i) = d.first_nonfinite {
                println!("  NaN/Inf first appears after {}", d.describe(i));
            }
            if let Some(i) = d.first_jump {
                println!(
                    "  residual streams part at {} (relative error {:.3e})",
                    d.describe(i),
                    d.stages[i].relative_error
                );
            }
        }
    }
    if let Some((layer, sub)) = nonfinite {
        match layer {
            Some(l) => println!("  NaN/Inf first produced by layer {l} {sub}"),
            None => println!("  NaN/Inf already in the {sub}"),
        }
    }
    let (ok, bad) = if color {
        ("\x1b[32mPASS\x1b[0m", "\x1b[31mFAIL\x1b[0m")
    } else {
        ("PASS", "FAIL")
    };
    if violations.is_empty() {
        println!("{ok}");
    } else {
        println!("{bad}: {}", violations.join("; "));
    }
}
