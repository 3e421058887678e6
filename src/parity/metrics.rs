//! Logit metrics between a reference model and a candidate, defined as llama.cpp's
//! `llama-perplexity --kl-divergence` defines them (tools/perplexity/perplexity.cpp: `kl_divergence_result`,
//! `log_softmax(..., kl_divergence_result &)`, `kl_divergence()` and `perplexity()`), so our numbers read the same
//! as llama.cpp's:
//!
//! - A row of logits at position `i` is scored against the token at `i + 1`: its negative log-likelihood feeds
//!   the perplexity, and its probability feeds Δp. Rows without a following token are not scored.
//! - KL divergence is `Σ_v p_ref(v) · (ln p_ref(v) − ln p_cand(v))` per scored row (reference ‖ candidate).
//! - "Same top p" compares the argmax of the two rows (first index wins ties, as llama.cpp's strict `>`).
//! - Δp is `p_cand(next) − p_ref(next)`; RMS Δp is `sqrt(mean(Δp²))`.
//! - Means carry llama.cpp's uncertainty `sqrt((mean(x²) − mean(x)²) / (n − 1))`, zeroed for n ≤ 10; the
//!   log-perplexity ratio subtracts the covariance of the two NLL series; percentiles interpolate linearly at
//!   `fraction · (n − 1)` in the sorted values and the median averages the two middle values.
//!
//! One deliberate difference: llama.cpp stores the base model's log-probabilities as 16-bit integers over a
//! 16-nat range and drops vocabulary entries below −16 from the KLD sum. We hold both rows in memory, so every
//! quantity here is computed exactly, in f64, over the whole vocabulary. On real models the two agree to the
//! precision llama.cpp prints; on near-identical models ours can resolve KLDs far below llama.cpp's ~1e-5 floor.
//!
//! Beyond llama.cpp we add `max_abs_dlogit` (max |Δlogit| over every scored row and vocabulary entry), and we
//! track rows holding NaN or ±Inf instead of letting them poison the sums: such rows are counted, the first
//! one is named, and they are left out of every statistic.

use anyhow::{bail, Result};
use serde::Serialize;

/// Which side of a comparison a row came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Reference,
    Candidate,
}

/// The first scored row that held a NaN or an infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NonFinite {
    /// Token position (row index in the logit matrix).
    pub position: usize,
    pub side: Side,
}

/// Log-softmax facts about one row, in f64.
#[derive(Clone, Copy, Debug)]
struct RowStats {
    /// `max + ln Σ exp(x − max)`: subtracting it from a logit gives its log-probability.
    log_norm: f64,
    /// First index of the largest logit.
    argmax: usize,
}

/// `None` when the row holds a NaN or an infinity (or is empty).
fn row_stats(row: &[f32]) -> Option<RowStats> {
    let mut max = f64::NEG_INFINITY;
    let mut argmax = 0usize;
    for (i, &x) in row.iter().enumerate() {
        if !x.is_finite() {
            return None;
        }
        let x = f64::from(x);
        if i == 0 || x > max {
            max = x;
            argmax = i;
        }
    }
    if row.is_empty() {
        return None;
    }
    let sum: f64 = row.iter().map(|&x| (f64::from(x) - max).exp()).sum();
    Some(RowStats {
        log_norm: max + sum.ln(),
        argmax,
    })
}

/// Mean and its uncertainty as llama-perplexity's `mean_and_uncertainty` lambda computes them.
pub fn mean_and_uncertainty(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count < 1 {
        return (0.0, 0.0);
    }
    let n = count as f64;
    let f = sum / n;
    let df = sum2 / n - f * f;
    let df = if df > 0.0 && count > 10 {
        (df / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (f, df)
}

/// llama-perplexity's `covariance` lambda (0 for fewer than 10 values).
fn covariance(suma: f64, sumb: f64, sumab: f64, count: usize) -> f64 {
    if count < 10 {
        return 0.0;
    }
    let n = count as f64;
    (sumab / n - (suma / n) * (sumb / n)) / (n - 1.0)
}

/// llama-perplexity's `percentile` lambda over sorted values.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let (Some(&first), Some(&last)) = (sorted.first(), sorted.last()) else {
        return 0.0;
    };
    if fraction <= 0.0 {
        return first;
    }
    if fraction >= 1.0 {
        return last;
    }
    let p = fraction * (sorted.len() - 1) as f64;
    let ip = p as usize;
    let frac = p - ip as f64;
    let hi = sorted[(ip + 1).min(sorted.len() - 1)];
    (1.0 - frac) * sorted[ip] + frac * hi
}

/// Median as llama-perplexity computes it: the mean of the two middle values for an even count.
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 0 {
        0.5 * (sorted[n / 2] + sorted[n / 2 - 1])
    } else {
        sorted[n / 2]
    }
}

/// Running sums of one model's negative log-likelihoods: perplexity as llama-perplexity's `perplexity()`.
#[derive(Clone, Debug, Default)]
pub struct NllAccumulator {
    sum: f64,
    sum2: f64,
    count: usize,
    nonfinite: Option<usize>,
    n_nonfinite: usize,
}

/// Perplexity of one model over the scored tokens.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Perplexity {
    pub n_tokens: usize,
    pub ppl: f64,
    /// `ppl · sqrt((mean(nll²) − mean(nll)²) / (n − 1))`, as llama-perplexity's "Final estimate".
    pub ppl_uncertainty: f64,
    pub mean_nll: f64,
    /// Rows left out because they held NaN or ±Inf, and the first of them.
    pub n_nonfinite: usize,
    pub first_nonfinite: Option<usize>,
}

impl NllAccumulator {
    /// Scores `row` (the logits at `position`) against `next_token`.
    pub fn add_row(&mut self, position: usize, row: &[f32], next_token: u32) -> Result<()> {
        let Some(x) = row.get(next_token as usize) else {
            bail!(
                "token id {next_token} at position {} is outside the vocabulary of {} logits",
                position + 1,
                row.len()
            );
        };
        match row_stats(row) {
            Some(s) => {
                let nll = s.log_norm - f64::from(*x);
                self.sum += nll;
                self.sum2 += nll * nll;
                self.count += 1;
            }
            None => {
                self.n_nonfinite += 1;
                self.nonfinite.get_or_insert(position);
            }
        }
        Ok(())
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Perplexity so far.
    pub fn finish(&self) -> Perplexity {
        let n = self.count;
        let (mean, mean2) = if n > 0 {
            (self.sum / n as f64, self.sum2 / n as f64)
        } else {
            (0.0, 0.0)
        };
        let var = mean2 - mean * mean;
        let ppl = mean.exp();
        let unc = if var > 0.0 && n > 1 {
            (var / (n as f64 - 1.0)).sqrt() * ppl
        } else {
            0.0
        };
        Perplexity {
            n_tokens: n,
            ppl,
            ppl_uncertainty: unc,
            mean_nll: mean,
            n_nonfinite: self.n_nonfinite,
            first_nonfinite: self.nonfinite,
        }
    }
}

/// Running comparison of two models' logits, row by row (llama.cpp's `kl_divergence_result` plus the per-row
/// values it sorts for percentiles).
#[derive(Clone, Debug, Default)]
pub struct KldAccumulator {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    max_p_diff: f64,
    n_same_top: usize,
    count: usize,
    max_abs_dlogit: f64,
    kld_values: Vec<f64>,
    n_nonfinite: usize,
    first_nonfinite: Option<NonFinite>,
}

/// Every metric of a logit comparison. Field names are the `--json` keys.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogitSummary {
    /// Scored rows (rows with a following token and finite logits on both sides).
    pub n_tokens: usize,
    pub kld_mean: f64,
    pub kld_mean_uncertainty: f64,
    pub kld_median: f64,
    pub kld_p99: f64,
    pub kld_max: f64,
    pub kld_min: f64,
    /// Fraction of scored rows whose argmax agrees ("Same top p").
    pub top1_agreement: f64,
    pub top1_agreement_uncertainty: f64,
    pub max_abs_dlogit: f64,
    pub mean_dp: f64,
    pub mean_dp_uncertainty: f64,
    pub rms_dp: f64,
    pub rms_dp_uncertainty: f64,
    pub max_abs_dp: f64,
    pub ppl_reference: f64,
    pub ppl_reference_uncertainty: f64,
    pub ppl_candidate: f64,
    pub ppl_candidate_uncertainty: f64,
    /// `ln(PPL(candidate) / PPL(reference))` ("Mean ln(PPL(Q)/PPL(base))").
    pub ln_ppl_ratio: f64,
    pub ln_ppl_ratio_uncertainty: f64,
    /// `PPL(candidate) / PPL(reference)`.
    pub ppl_ratio: f64,
    pub ppl_ratio_uncertainty: f64,
    /// Rows left out because either side held NaN or ±Inf, and the first of them.
    pub n_nonfinite: usize,
    pub first_nonfinite: Option<NonFinite>,
}

impl KldAccumulator {
    /// Compares one row of logits at `position` (reference and candidate, same length) scored against
    /// `next_token`. Errors only on inputs that cannot be compared (lengths, token id out of range).
    pub fn add_row(
        &mut self,
        position: usize,
        reference: &[f32],
        candidate: &[f32],
        next_token: u32,
    ) -> Result<()> {
        if reference.len() != candidate.len() {
            bail!(
                "position {position}: reference has {} logits but candidate has {}",
                reference.len(),
                candidate.len()
            );
        }
        let tok = next_token as usize;
        if tok >= reference.len() {
            bail!(
                "token id {next_token} at position {} is outside the vocabulary of {} logits",
                position + 1,
                reference.len()
            );
        }
        let (r, c) = match (row_stats(reference), row_stats(candidate)) {
            (Some(r), Some(c)) => (r, c),
            (r, _) => {
                self.n_nonfinite += 1;
                let side = if r.is_none() {
                    Side::Reference
                } else {
                    Side::Candidate
                };
                self.first_nonfinite
                    .get_or_insert(NonFinite { position, side });
                return Ok(());
            }
        };

        let nll_base = r.log_norm - f64::from(reference[tok]);
        let nll = c.log_norm - f64::from(candidate[tok]);
        self.sum_nll += nll;
        self.sum_nll2 += nll * nll;
        self.sum_nll_base += nll_base;
        self.sum_nll_base2 += nll_base * nll_base;
        self.sum_nll_nll_base += nll * nll_base;

        let mut kld = 0.0f64;
        let mut max_d = self.max_abs_dlogit;
        for (&xr, &xc) in reference.iter().zip(candidate) {
            let (xr, xc) = (f64::from(xr), f64::from(xc));
            let lp_ref = xr - r.log_norm;
            let lp_cand = xc - c.log_norm;
            kld += lp_ref.exp() * (lp_ref - lp_cand);
            max_d = max_d.max((xc - xr).abs());
        }
        self.max_abs_dlogit = max_d;
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.kld_values.push(kld);
        self.count += 1;
        if r.argmax == c.argmax {
            self.n_same_top += 1;
        }

        let p_diff = (-nll).exp() - (-nll_base).exp();
        self.sum_p_diff += p_diff;
        let p_diff2 = p_diff * p_diff;
        self.sum_p_diff2 += p_diff2;
        self.sum_p_diff4 += p_diff2 * p_diff2;
        self.max_p_diff = self.max_p_diff.max(p_diff.abs());
        Ok(())
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The summary so far.
    pub fn finish(&self) -> LogitSummary {
        let n = self.count;
        let mut kld = self.kld_values.clone();
        kld.sort_by(f64::total_cmp);

        let log_ppl = mean_and_uncertainty(self.sum_nll, self.sum_nll2, n);
        let log_ppl_base = mean_and_uncertainty(self.sum_nll_base, self.sum_nll_base2, n);
        let cov = covariance(self.sum_nll, self.sum_nll_base, self.sum_nll_nll_base, n);
        let ln_ratio = log_ppl.0 - log_ppl_base.0;
        let ln_ratio_unc = (log_ppl.1 * log_ppl.1 + log_ppl_base.1 * log_ppl_base.1 - 2.0 * cov)
            .max(0.0)
            .sqrt();
        let ppl = log_ppl.0.exp();
        let ppl_base = log_ppl_base.0.exp();
        let ratio = ln_ratio.exp();

        let kl = mean_and_uncertainty(self.sum_kld, self.sum_kld2, n);
        let p_diff = mean_and_uncertainty(self.sum_p_diff, self.sum_p_diff2, n);
        let p_diff_mse = mean_and_uncertainty(self.sum_p_diff2, self.sum_p_diff4, n);
        let rms = p_diff_mse.0.sqrt();
        let rms_unc = if rms > 0.0 {
            0.5 / rms * p_diff_mse.1
        } else {
            0.0
        };
        let (top, top_unc) = if n > 0 {
            let p = self.n_same_top as f64 / n as f64;
            let unc = if n > 1 {
                (p * (1.0 - p) / (n as f64 - 1.0)).sqrt()
            } else {
                0.0
            };
            (p, unc)
        } else {
            (0.0, 0.0)
        };

        LogitSummary {
            n_tokens: n,
            kld_mean: kl.0,
            kld_mean_uncertainty: kl.1,
            kld_median: median(&kld),
            kld_p99: percentile(&kld, 0.99),
            kld_max: kld.last().copied().unwrap_or(0.0),
            kld_min: kld.first().copied().unwrap_or(0.0),
            top1_agreement: top,
            top1_agreement_uncertainty: top_unc,
            max_abs_dlogit: self.max_abs_dlogit,
            mean_dp: p_diff.0,
            mean_dp_uncertainty: p_diff.1,
            rms_dp: rms,
            rms_dp_uncertainty: rms_unc,
            max_abs_dp: self.max_p_diff,
            ppl_reference: ppl_base,
            ppl_reference_uncertainty: ppl_base * log_ppl_base.1,
            ppl_candidate: ppl,
            ppl_candidate_uncertainty: ppl * log_ppl.1,
            ln_ppl_ratio: ln_ratio,
            ln_ppl_ratio_uncertainty: ln_ratio_unc,
            ppl_ratio: ratio,
            ppl_ratio_uncertainty: ratio * ln_ratio_unc,
            n_nonfinite: self.n_nonfinite,
            first_nonfinite: self.first_nonfinite,
        }
    }
}

/// Compares two logit matrices `[T, vocab]` (row-major) over the rows in `scored`, each row `i` scored against
/// `tokens[i + 1]`. `scored` must end before `T` (the last row has no following token).
pub fn compare_logits(
    reference: &[f32],
    candidate: &[f32],
    vocab: usize,
    tokens: &[u32],
    scored: std::ops::Range<usize>,
) -> Result<LogitSummary> {
    let t = tokens.len();
    if vocab == 0 {
        bail!("vocabulary size is 0");
    }
    for (what, m) in [("reference", reference), ("candidate", candidate)] {
        if m.len() != t * vocab {
            bail!(
                "{what} logits hold {} values but {t} tokens × {vocab} vocabulary entries need {}",
                m.len(),
                t * vocab
            );
        }
    }
    if scored.end >= t.max(1) && !scored.is_empty() {
        bail!(
            "cannot score rows {}..{}: the last scored row needs a following token among {t}",
            scored.start,
            scored.end
        );
    }
    let mut acc = KldAccumulator::default();
    for i in scored {
        let row = i * vocab..(i + 1) * vocab;
        acc.add_row(i, &reference[row.clone()], &candidate[row], tokens[i + 1])?;
    }
    Ok(acc.finish())
}

/// Scores every row that has a following token: rows `0..T-1`.
pub fn compare_all(
    reference: &[f32],
    candidate: &[f32],
    vocab: usize,
    tokens: &[u32],
) -> Result<LogitSummary> {
    compare_logits(
        reference,
        candidate,
        vocab,
        tokens,
        0..tokens.len().saturating_sub(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from tests/data/parity_metrics_case.json, computed by tests/data/parity_metrics_case.py with numpy
    /// (an independent transcription of perplexity.cpp's formulas).
    #[derive(serde::Deserialize)]
    struct Case {
        vocab: usize,
        tokens: Vec<u32>,
        reference: Vec<f32>,
        candidate: Vec<f32>,
        expected: std::collections::BTreeMap<String, f64>,
    }

    fn close(name: &str, got: f64, want: f64) {
        let tol = 1e-9 * want.abs().max(1e-3);
        assert!(
            (got - want).abs() <= tol,
            "{name}: got {got:e}, numpy says {want:e}"
        );
    }

    #[test]
    fn matches_numpy_transcription_of_llama_perplexity() {
        let case: Case =
            serde_json::from_str(include_str!("../../tests/data/parity_metrics_case.json"))
                .unwrap();
        let s = compare_all(&case.reference, &case.candidate, case.vocab, &case.tokens).unwrap();
        let got = serde_json::to_value(&s).unwrap();
        assert!(case.expected.len() >= 20);
        for (k, want) in &case.expected {
            let g = got[k.as_str()]
                .as_f64()
                .unwrap_or_else(|| panic!("summary lacks {k}"));
            close(k, g, *want);
        }
    }

    #[test]
    fn identical_logits_are_perfect() {
        let vocab = 5;
        let row = [0.5f32, -1.0, 2.0, 0.0, 1.5];
        let m: Vec<f32> = row.iter().cycle().take(3 * vocab).copied().collect();
        let s = compare_all(&m, &m, vocab, &[0, 2, 4]).unwrap();
        assert_eq!(s.n_tokens, 2);
        assert_eq!(s.kld_max, 0.0);
        assert_eq!(s.top1_agreement, 1.0);
        assert_eq!(s.max_abs_dlogit, 0.0);
        assert_eq!(s.rms_dp, 0.0);
        assert_eq!(s.ppl_ratio, 1.0);
        // Hand-derived: p(2) = e^2 / Σ e^x; the scored tokens are 2 and 4.
        let z: f64 = row.iter().map(|&x| f64::from(x).exp()).sum();
        let nll2 = z.ln() - 2.0;
        let nll4 = z.ln() - 1.5;
        close("ppl", s.ppl_reference, ((nll2 + nll4) / 2.0).exp());
    }

    #[test]
    fn two_token_vocab_kld_by_hand() {
        // Reference p = (1/2, 1/2); candidate logits (ln 3, 0) → q = (3/4, 1/4).
        // KL(p‖q) = 1/2 ln(2/3) + 1/2 ln 2; the argmax differs (ref ties → index 0, cand → 0): same top.
        let r = [0.0f32, 0.0, 0.0, 0.0];
        let c = [3f32.ln(), 0.0, 3f32.ln(), 0.0];
        let s = compare_all(&r, &c, 2, &[0, 1]).unwrap();
        let want = 0.5 * (2.0f64 / 3.0).ln() + 0.5 * 2.0f64.ln();
        assert!((s.kld_mean - want).abs() < 1e-7, "{}", s.kld_mean);
        assert_eq!(s.top1_agreement, 1.0);
        // Next token 1: p_ref = 1/2, p_cand = 1/4.
        assert!((s.mean_dp + 0.25).abs() < 1e-7);
        assert!((s.ppl_reference - 2.0).abs() < 1e-12);
        assert!((s.ppl_candidate - 4.0).abs() < 1e-6);
    }

    #[test]
    fn nonfinite_rows_are_named_and_skipped() {
        let r = [0.0f32, 1.0, 0.0, 1.0, 0.0, 1.0];
        let c = [0.0f32, 1.0, f32::NAN, 1.0, 0.0, 1.0];
        let s = compare_all(&r, &c, 2, &[0, 1, 1]).unwrap();
        assert_eq!(s.n_tokens, 1);
        assert_eq!(s.n_nonfinite, 1);
        assert_eq!(
            s.first_nonfinite,
            Some(NonFinite {
                position: 1,
                side: Side::Candidate
            })
        );
    }

    #[test]
    fn bad_shapes_and_tokens_are_errors() {
        assert!(compare_all(&[0.0; 4], &[0.0; 6], 2, &[0, 1]).is_err());
        let e = compare_all(&[0.0; 4], &[0.0; 4], 2, &[0, 7]).unwrap_err();
        assert!(e.to_string().contains("token id 7"), "{e}");
    }

    #[test]
    fn percentile_and_median_follow_llama_cpp() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(median(&v), 2.5);
        assert_eq!(median(&v[..3]), 2.0);
        // 0.5 · 3 = 1.5 → halfway between v[1] and v[2].
        assert_eq!(percentile(&v, 0.5), 2.5);
        assert_eq!(percentile(&v, 0.99), 0.03 * 3.0 + 0.97 * 4.0);
        assert_eq!(percentile(&v, 1.0), 4.0);
    }

    #[test]
    fn perplexity_accumulator_matches_hand_values() {
        let mut a = NllAccumulator::default();
        // Uniform over 4: nll = ln 4 each, PPL 4, zero spread.
        a.add_row(0, &[0.0; 4], 3).unwrap();
        a.add_row(1, &[0.0; 4], 0).unwrap();
        let p = a.finish();
        assert!((p.ppl - 4.0).abs() < 1e-12);
        assert_eq!(p.ppl_uncertainty, 0.0);
        assert!(a.add_row(2, &[0.0; 4], 4).is_err());
    }
}
