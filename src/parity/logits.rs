//! Running two models on the same tokens and judging their logits: thresholds, and, when they disagree, the
//! first layer and sub-block where the residual streams part.
//!
//! Models are reached through [`LogitModel`], so this logic is the same for ossify's forward pass on any
//! checkpoint and for logits dumped by another implementation, and it is tested with small stand-in models.

use anyhow::{bail, Result};
use serde::Serialize;

use super::metrics::{KldAccumulator, LogitSummary, NllAccumulator, Perplexity};

/// The residual stream through one run, each entry `[T, hidden]` row-major (the forward pass's trace).
#[derive(Clone, Debug, Default)]
pub struct ResidualTrace {
    /// Token embeddings (the stream before layer 0).
    pub embeddings: Vec<f32>,
    /// Per layer: the residual after the attention sub-block.
    pub after_attention: Vec<Vec<f32>>,
    /// Per layer: the residual after the MoE sub-block (the layer's output).
    pub after_moe: Vec<Vec<f32>>,
    /// `[T, vocab]`.
    pub logits: Vec<f32>,
}

/// Something that turns token ids into logits `[T, vocab]` (row-major f32), and can show its residual stream.
pub trait LogitModel {
    fn vocab_size(&self) -> usize;
    fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>>;
    fn trace(&self, tokens: &[u32]) -> Result<ResidualTrace>;
    /// How the logits were computed (`"f32"`: every weight decoded exactly, f32 activations).
    fn mode(&self) -> &'static str {
        "f32"
    }
    /// Where the logits were computed (`"cpu"`, or the GPU's name).
    fn device(&self) -> String {
        "cpu".to_string()
    }
    /// A running context that takes a sequence a piece at a time (its KV cache kept between pieces), so two
    /// models can be compared piece by piece with one piece of logits in memory, not the whole sequence's
    /// (`[T, vocab]` f32 is 0.8 MB per token at o200k's vocabulary). `None`: whole sequences only.
    fn session(&self) -> Option<Box<dyn LogitSession + '_>> {
        None
    }
}

/// See [`LogitModel::session`].
pub trait LogitSession {
    /// Appends `tokens` to the context; their logits `[tokens.len(), vocab]`.
    fn eval(&mut self, tokens: &[u32]) -> Result<Vec<f32>>;
    /// The piece size the model computes best in (its batch: a smaller one re-reads the weights more often).
    fn piece_len(&self) -> usize;
}

/// `value > limit`, with NaN counting as past any limit.
fn above(value: f64, limit: f64) -> bool {
    value.is_nan() || value > limit
}

/// Pass/fail limits on a logit comparison; `None` disables a check.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Thresholds {
    pub max_kld: Option<f64>,
    pub min_top1: Option<f64>,
    pub max_ppl_ratio: Option<f64>,
    /// Set when these are the defaults for a conversion kind (`"q8_0"`), not limits the user gave; messages say
    /// so.
    pub default_for: Option<&'static str>,
}

impl Thresholds {
    /// Every limit `s` breaks, as one line each. Rows with NaN / Inf always break parity.
    pub fn violations(&self, s: &LogitSummary) -> Vec<String> {
        let mut v = Vec::new();
        // "--max-kld 0.001" when the user set it; "the default --max-kld 0.05 for q8_0 conversions" otherwise.
        let limit = |flag: &str, x: String| match self.default_for {
            Some(kind) => {
                format!("the default {flag} {x} for {kind} conversions (set {flag} to change it)")
            }
            None => format!("{flag} {x}"),
        };
        if let Some(x) = self.max_kld {
            if above(s.kld_mean, x) {
                v.push(format!(
                    "mean KLD {:.6e} > {}",
                    s.kld_mean,
                    limit("--max-kld", format!("{x:e}"))
                ));
            }
        }
        if let Some(x) = self.min_top1 {
            if above(-s.top1_agreement, -x) {
                v.push(format!(
                    "same top-1 {:.4} < {}",
                    s.top1_agreement,
                    limit("--min-top1", x.to_string())
                ));
            }
        }
        if let Some(x) = self.max_ppl_ratio {
            if above(s.ppl_ratio, x) {
                v.push(format!(
                    "PPL ratio {:.6} > {}",
                    s.ppl_ratio,
                    limit("--max-ppl-ratio", x.to_string())
                ));
            }
        }
        if let Some(nf) = s.first_nonfinite {
            v.push(format!(
                "{} row(s) hold NaN or Inf, first at position {} ({:?})",
                s.n_nonfinite, nf.position, nf.side
            ));
        }
        if s.n_tokens == 0 && s.first_nonfinite.is_none() {
            v.push("no token was scored".to_string());
        }
        v
    }
}

/// One point of the residual stream: before layer 0 (`embedding`), or after a layer's attention or MoE.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageError {
    /// `None` for the embeddings.
    pub layer: Option<usize>,
    /// `"embedding"`, `"attention"` or `"moe"`.
    pub sub_block: &'static str,
    /// `‖cand − ref‖₂ / ‖ref‖₂` over all positions (infinite when the candidate holds NaN / Inf).
    pub relative_error: f64,
    pub candidate_nonfinite: bool,
    pub reference_nonfinite: bool,
}

/// Where two runs part: the whole series, and the stage named as the break.
#[derive(Clone, Debug, Serialize)]
pub struct Divergence {
    pub stages: Vec<StageError>,
    /// Index into `stages` of the first NaN / Inf (either side), if any.
    pub first_nonfinite: Option<usize>,
    /// Index into `stages` where the relative error jumps.
    pub first_jump: Option<usize>,
}

impl Divergence {
    /// "layer 2 attention", for the human summary.
    pub fn describe(&self, i: usize) -> String {
        match self.stages.get(i) {
            Some(StageError {
                layer: Some(l),
                sub_block,
                ..
            }) => format!("layer {l} {sub_block}"),
            Some(s) => s.sub_block.to_string(),
            None => "?".to_string(),
        }
    }
}

/// Relative error below which a stage counts as agreeing whatever its growth (f32 round-off level).
pub const JUMP_FLOOR: f64 = 1e-5;
/// Growth over the previous stage that counts as a jump.
pub const JUMP_FACTOR: f64 = 10.0;

fn relative_error(r: &[f32], c: &[f32]) -> (f64, bool, bool) {
    let r_bad = r.iter().any(|x| !x.is_finite());
    let c_bad = c.iter().any(|x| !x.is_finite());
    if r_bad || c_bad || r.len() != c.len() {
        return (f64::INFINITY, r_bad, c_bad);
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (&a, &b) in r.iter().zip(c) {
        let d = f64::from(b) - f64::from(a);
        num += d * d;
        den += f64::from(a) * f64::from(a);
    }
    let rel = if den > 0.0 {
        (num / den).sqrt()
    } else if num > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    (rel, false, false)
}

/// Compares two traces stage by stage. The break is the first stage whose relative error exceeds
/// [`JUMP_FLOOR`] and grew by more than [`JUMP_FACTOR`] over the stage before (the error a sub-block adds,
/// not the error it inherits); failing that, the stage with the largest growth.
pub fn locate_divergence(reference: &ResidualTrace, candidate: &ResidualTrace) -> Divergence {
    let mut stages = Vec::new();
    let mut push = |layer, sub_block, r: &[f32], c: &[f32]| {
        let (rel, rb, cb) = relative_error(r, c);
        stages.push(StageError {
            layer,
            sub_block,
            relative_error: rel,
            reference_nonfinite: rb,
            candidate_nonfinite: cb,
        });
    };
    push(
        None,
        "embedding",
        &reference.embeddings,
        &candidate.embeddings,
    );
    let n = reference
        .after_attention
        .len()
        .min(candidate.after_attention.len());
    for l in 0..n {
        push(
            Some(l),
            "attention",
            &reference.after_attention[l],
            &candidate.after_attention[l],
        );
        if let (Some(r), Some(c)) = (reference.after_moe.get(l), candidate.after_moe.get(l)) {
            push(Some(l), "moe", r, c);
        }
    }
    let first_nonfinite = stages
        .iter()
        .position(|s| s.reference_nonfinite || s.candidate_nonfinite);
    let mut prev = 0f64;
    let mut first_jump = None;
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in stages.iter().enumerate() {
        let e = s.relative_error;
        if e > JUMP_FLOOR && (e > JUMP_FACTOR * prev || prev == 0.0) {
            first_jump = Some(i);
            break;
        }
        let growth = if prev > 0.0 { e / prev } else { 0.0 };
        let better = match best {
            Some((_, g)) => growth > g,
            None => true,
        };
        if e > 0.0 && better {
            best = Some((i, growth));
        }
        prev = e;
    }
    let first_jump = first_jump.or_else(|| {
        best.filter(|_| stages.iter().any(|s| s.relative_error > JUMP_FLOOR))
            .map(|(i, _)| i)
    });
    Divergence {
        stages,
        first_nonfinite,
        first_jump,
    }
}

/// Token ids to evaluate: one or more independent sequences (each starts from an empty context).
pub type Sequences = Vec<Vec<u32>>;

/// The verdict of a logit comparison.
#[derive(Clone, Debug, Serialize)]
pub struct LogitVerdict {
    pub summary: LogitSummary,
    pub violations: Vec<String>,
    /// Present when the verdict failed and both models could be traced.
    pub divergence: Option<Divergence>,
}

impl LogitVerdict {
    pub fn pass(&self) -> bool {
        self.violations.is_empty()
    }
}

fn check_sequences(seqs: &Sequences, vocab: usize) -> Result<()> {
    if seqs.iter().all(|s| s.len() < 2) {
        bail!("need at least one sequence of 2 or more tokens to score a prediction");
    }
    for (k, s) in seqs.iter().enumerate() {
        if let Some((i, t)) = s.iter().enumerate().find(|(_, &t)| t as usize >= vocab) {
            bail!("sequence {k}, position {i}: token id {t} is outside the vocabulary of {vocab}");
        }
    }
    Ok(())
}

/// Accumulates `reference` vs `candidate` logits of one sequence into `acc` (every row with a next token).
pub fn accumulate(
    acc: &mut KldAccumulator,
    reference: &[f32],
    candidate: &[f32],
    vocab: usize,
    tokens: &[u32],
) -> Result<()> {
    accumulate_piece(acc, reference, candidate, vocab, tokens, 0, tokens.len())
}

/// [`accumulate`] for the piece `tokens[start..start + n]` of a sequence: its logits `[n, vocab]` from each model.
fn accumulate_piece(
    acc: &mut KldAccumulator,
    reference: &[f32],
    candidate: &[f32],
    vocab: usize,
    tokens: &[u32],
    start: usize,
    n: usize,
) -> Result<()> {
    for (what, m) in [("reference", reference), ("candidate", candidate)] {
        if m.len() != n * vocab {
            bail!(
                "{what} logits hold {} values, not {n} tokens × {vocab}",
                m.len()
            );
        }
    }
    for k in 0..n {
        let i = start + k;
        let Some(&next) = tokens.get(i + 1) else {
            break;
        };
        let row = k * vocab..(k + 1) * vocab;
        acc.add_row(i, &reference[row.clone()], &candidate[row], next)?;
    }
    Ok(())
}

/// Runs both models on every sequence, compares, and when the verdict fails, traces the first sequence
/// through both to name where they part.
pub fn verify_models(
    reference: &dyn LogitModel,
    candidate: &dyn LogitModel,
    seqs: &Sequences,
    thresholds: &Thresholds,
) -> Result<LogitVerdict> {
    let hidden = indicatif::ProgressBar::hidden();
    verify_models_with(reference, candidate, seqs, thresholds, [&hidden, &hidden])
}

/// [`verify_models`], advancing `bars` (reference, candidate) by each sequence's tokens as each model's
/// forward pass finishes it (their lengths are set to the tokens of all sequences).
pub fn verify_models_with(
    reference: &dyn LogitModel,
    candidate: &dyn LogitModel,
    seqs: &Sequences,
    thresholds: &Thresholds,
    bars: [&indicatif::ProgressBar; 2],
) -> Result<LogitVerdict> {
    let vocab = reference.vocab_size();
    if candidate.vocab_size() != vocab {
        bail!(
            "the models cannot be compared: vocabulary of {vocab} vs {}",
            candidate.vocab_size()
        );
    }
    check_sequences(seqs, vocab)?;
    let total: usize = seqs.iter().map(Vec::len).sum();
    for b in bars {
        b.set_length(total as u64);
    }
    let mut acc = KldAccumulator::default();
    for s in seqs {
        // Piece by piece where both models can (memory flat in the sequence's length), else whole.
        let Some((mut rs, mut cs)) = reference.session().zip(candidate.session()) else {
            let r = reference.logits(s)?;
            bars[0].inc(s.len() as u64);
            let c = candidate.logits(s)?;
            bars[1].inc(s.len() as u64);
            accumulate(&mut acc, &r, &c, vocab, s)?;
            continue;
        };
        let piece = rs.piece_len().min(cs.piece_len()).max(1);
        for (k, chunk) in s.chunks(piece).enumerate() {
            let r = rs.eval(chunk)?;
            bars[0].inc(chunk.len() as u64);
            let c = cs.eval(chunk)?;
            bars[1].inc(chunk.len() as u64);
            accumulate_piece(&mut acc, &r, &c, vocab, s, k * piece, chunk.len())?;
        }
    }
    let summary = acc.finish();
    let violations = thresholds.violations(&summary);
    let divergence = if violations.is_empty() {
        None
    } else {
        let s = seqs.iter().find(|s| s.len() >= 2).unwrap_or(&seqs[0]);
        Some(locate_divergence(
            &reference.trace(s)?,
            &candidate.trace(s)?,
        ))
    };
    Ok(LogitVerdict {
        summary,
        violations,
        divergence,
    })
}

/// Compares `candidate` with logits another implementation computed for `seqs` (rows of all sequences
/// stacked in order: `[Σ T, vocab]`). A failed verdict traces the candidate to find a NaN / Inf source.
/// `bar` advances by each sequence's tokens (its length is set to all of them).
pub fn verify_against_logits(
    reference: &[f32],
    candidate: &dyn LogitModel,
    seqs: &Sequences,
    thresholds: &Thresholds,
    bar: &indicatif::ProgressBar,
) -> Result<(LogitVerdict, Option<ResidualTrace>)> {
    let vocab = candidate.vocab_size();
    check_sequences(seqs, vocab)?;
    let total: usize = seqs.iter().map(Vec::len).sum();
    if reference.len() != total * vocab {
        bail!(
            "reference logits hold {} values; {total} tokens × the candidate's vocabulary of {vocab} need {}",
            reference.len(),
            total * vocab
        );
    }
    bar.set_length(total as u64);
    let mut acc = KldAccumulator::default();
    let mut off = 0;
    for s in seqs {
        let c = candidate.logits(s)?;
        bar.inc(s.len() as u64);
        let r = &reference[off * vocab..(off + s.len()) * vocab];
        accumulate(&mut acc, r, &c, vocab, s)?;
        off += s.len();
    }
    let summary = acc.finish();
    let violations = thresholds.violations(&summary);
    let trace = if summary.first_nonfinite.is_some() {
        let s = seqs.iter().find(|s| s.len() >= 2).unwrap_or(&seqs[0]);
        Some(candidate.trace(s)?)
    } else {
        None
    };
    Ok((
        LogitVerdict {
            summary,
            violations,
            divergence: None,
        },
        trace,
    ))
}

/// The first `(layer, sub-block)` of a trace whose output holds NaN or Inf.
pub fn first_nonfinite_stage(t: &ResidualTrace) -> Option<(Option<usize>, &'static str)> {
    let bad = |v: &[f32]| v.iter().any(|x| !x.is_finite());
    if bad(&t.embeddings) {
        return Some((None, "embedding"));
    }
    for (l, a) in t.after_attention.iter().enumerate() {
        if bad(a) {
            return Some((Some(l), "attention"));
        }
        if t.after_moe.get(l).is_some_and(|m| bad(m)) {
            return Some((Some(l), "moe"));
        }
    }
    None
}

/// Chunked perplexity as llama-perplexity's `perplexity()` computes it.
#[derive(Clone, Debug, Serialize)]
pub struct ChunkedPerplexity {
    pub n_ctx: usize,
    pub n_chunks: usize,
    /// Tokens in the text (only `n_chunks · n_ctx` of them are evaluated).
    pub n_text_tokens: usize,
    #[serde(flatten)]
    pub result: Perplexity,
}

/// Splits `tokens` into `⌊T / n_ctx⌋` chunks, evaluates each from an empty context, and scores the second half
/// of each chunk (rows `n_ctx/2 .. n_ctx-1`, each against the next token), exactly the rows llama-perplexity
/// scores. `on_chunk(i, n, logits)` sees every chunk's `[n_ctx, vocab]` logits (progress, `--dump-logits`).
pub fn chunked_perplexity(
    model: &dyn LogitModel,
    tokens: &[u32],
    n_ctx: usize,
    mut on_chunk: impl FnMut(usize, usize, &[f32]) -> Result<()>,
) -> Result<ChunkedPerplexity> {
    if n_ctx < 4 {
        bail!("--ctx must be at least 4 (got {n_ctx})");
    }
    if tokens.len() < n_ctx {
        bail!(
            "the text tokenizes to {} tokens; a context of {n_ctx} needs at least {n_ctx} (one chunk; \
             llama-perplexity itself asks for {})",
            tokens.len(),
            2 * n_ctx
        );
    }
    let vocab = model.vocab_size();
    check_sequences(&vec![tokens.to_vec()], vocab)?;
    let n_chunks = tokens.len() / n_ctx;
    let first = n_ctx / 2;
    let mut acc = NllAccumulator::default();
    for k in 0..n_chunks {
        let chunk = &tokens[k * n_ctx..(k + 1) * n_ctx];
        let logits = model.logits(chunk)?;
        if logits.len() != n_ctx * vocab {
            bail!(
                "chunk {k}: the model returned {} logits, not {n_ctx} × {vocab}",
                logits.len()
            );
        }
        for i in first..n_ctx - 1 {
            acc.add_row(
                k * n_ctx + i,
                &logits[i * vocab..(i + 1) * vocab],
                chunk[i + 1],
            )?;
        }
        on_chunk(k, n_chunks, &logits)?;
    }
    Ok(ChunkedPerplexity {
        n_ctx,
        n_chunks,
        n_text_tokens: tokens.len(),
        result: acc.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in model: "layers" that add a per-layer offset to a one-hot-ish stream; `bad` perturbs one stage.
    struct Toy {
        vocab: usize,
        layers: usize,
        /// (layer, is_moe, amount) added to that stage's output.
        bad: Option<(usize, bool, f32)>,
        nan_at: Option<(usize, bool)>,
    }

    impl Toy {
        fn new() -> Toy {
            Toy {
                vocab: 8,
                layers: 3,
                bad: None,
                nan_at: None,
            }
        }
    }

    impl LogitModel for Toy {
        fn vocab_size(&self) -> usize {
            self.vocab
        }
        fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
            Ok(self.trace(tokens)?.logits)
        }
        fn trace(&self, tokens: &[u32]) -> Result<ResidualTrace> {
            let v = self.vocab;
            let mut x: Vec<f32> = tokens
                .iter()
                .flat_map(|&t| {
                    (0..v).map(move |j| {
                        if j == (t as usize + 1) % v {
                            2.0
                        } else {
                            0.1 * j as f32
                        }
                    })
                })
                .collect();
            let mut tr = ResidualTrace {
                embeddings: x.clone(),
                ..Default::default()
            };
            for l in 0..self.layers {
                for moe in [false, true] {
                    for (i, y) in x.iter_mut().enumerate() {
                        *y += 0.01 * ((i + l) % 5) as f32;
                    }
                    if let Some((bl, bm, amt)) = self.bad {
                        if bl == l && bm == moe {
                            x[3] += amt;
                        }
                    }
                    if self.nan_at == Some((l, moe)) {
                        x[0] = f32::NAN;
                    }
                    if moe {
                        tr.after_moe.push(x.clone());
                    } else {
                        tr.after_attention.push(x.clone());
                    }
                }
            }
            tr.logits = x;
            Ok(tr)
        }
    }

    fn seqs() -> Sequences {
        vec![vec![1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4]]
    }

    /// A model that is also fed piece by piece: each piece recomputes the whole prefix and returns the new rows.
    struct Pieces(Toy, usize);

    struct PieceSession<'m> {
        model: &'m Toy,
        piece: usize,
        seen: Vec<u32>,
    }

    impl LogitSession for PieceSession<'_> {
        fn eval(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
            let start = self.seen.len() * self.model.vocab;
            self.seen.extend_from_slice(tokens);
            Ok(self.model.logits(&self.seen)?[start..].to_vec())
        }
        fn piece_len(&self) -> usize {
            self.piece
        }
    }

    impl LogitModel for Pieces {
        fn vocab_size(&self) -> usize {
            self.0.vocab
        }
        fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
            self.0.logits(tokens)
        }
        fn trace(&self, tokens: &[u32]) -> Result<ResidualTrace> {
            self.0.trace(tokens)
        }
        fn session(&self) -> Option<Box<dyn LogitSession + '_>> {
            Some(Box::new(PieceSession {
                model: &self.0,
                piece: self.1,
                seen: Vec::new(),
            }))
        }
    }

    #[test]
    fn pieces_score_exactly_as_whole_sequences() {
        let seqs = vec![
            vec![1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4],
            vec![5, 4, 3],
            vec![7],
            (0..23).map(|i| (i * 3 % 8) as u32).collect(),
        ];
        let t = Thresholds::default();
        let mut c = Toy::new();
        c.layers = 4;
        let whole = verify_models(&Toy::new(), &c, &seqs, &t).unwrap().summary;
        assert_eq!(whole.n_tokens, 11 + 2 + 22);
        assert!(whole.kld_mean > 0.0);
        for piece in [1, 2, 5, 12, 100] {
            let mut c = Toy::new();
            c.layers = 4;
            let v = verify_models(&Pieces(Toy::new(), piece), &Pieces(c, piece + 1), &seqs, &t)
                .unwrap();
            assert_eq!(v.summary, whole, "piece {piece}");
        }
    }

    #[test]
    fn identical_models_pass_any_threshold() {
        let t = Thresholds {
            max_kld: Some(0.0),
            min_top1: Some(1.0),
            max_ppl_ratio: Some(1.0),
            default_for: None,
        };
        let v = verify_models(&Toy::new(), &Toy::new(), &seqs(), &t).unwrap();
        assert!(v.pass(), "{:?}", v.violations);
        assert_eq!(v.summary.n_tokens, 11);
        assert!(v.divergence.is_none());
    }

    #[test]
    fn a_perturbed_sub_block_is_named() {
        let mut c = Toy::new();
        c.bad = Some((1, true, 3.0));
        let t = Thresholds {
            max_kld: Some(1e-6),
            ..Default::default()
        };
        let v = verify_models(&Toy::new(), &c, &seqs(), &t).unwrap();
        assert!(!v.pass());
        let d = v.divergence.unwrap();
        let i = d.first_jump.unwrap();
        assert_eq!(d.describe(i), "layer 1 moe");
        assert_eq!(d.stages[i - 1].relative_error, 0.0);
    }

    #[test]
    fn nan_is_traced_to_its_layer() {
        let mut c = Toy::new();
        c.nan_at = Some((2, false));
        let (v, trace) = verify_against_logits(
            &Toy::new().logits(&seqs()[0]).unwrap(),
            &c,
            &seqs(),
            &Thresholds::default(),
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        assert!(!v.pass());
        assert!(v.summary.first_nonfinite.is_some());
        assert_eq!(
            first_nonfinite_stage(&trace.unwrap()),
            Some((Some(2), "attention"))
        );
    }

    #[test]
    fn reference_logits_must_match_the_tokens() {
        let hidden = indicatif::ProgressBar::hidden();
        let e = verify_against_logits(
            &[0.0; 5],
            &Toy::new(),
            &seqs(),
            &Thresholds::default(),
            &hidden,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("12 tokens"), "{e}");
    }

    #[test]
    fn chunked_perplexity_scores_second_halves() {
        let toks: Vec<u32> = (0..21).map(|i| (i * 3 % 8) as u32).collect();
        let mut seen = Vec::new();
        let p = chunked_perplexity(&Toy::new(), &toks, 8, |k, n, l| {
            seen.push((k, n, l.len()));
            Ok(())
        })
        .unwrap();
        // 21 tokens / 8 = 2 chunks; rows 4..7 of each are scored: 3 per chunk.
        assert_eq!(p.n_chunks, 2);
        assert_eq!(p.result.n_tokens, 6);
        assert_eq!(seen, vec![(0, 2, 64), (1, 2, 64)]);
        // Independently: the same rows scored by hand through NllAccumulator's definition.
        let m = Toy::new();
        let mut want = 0.0;
        for k in 0..2 {
            let c = &toks[k * 8..(k + 1) * 8];
            let l = m.logits(c).unwrap();
            for i in 4..7 {
                let row: Vec<f64> = l[i * 8..(i + 1) * 8]
                    .iter()
                    .map(|&x| f64::from(x))
                    .collect();
                let z: f64 = row.iter().map(|x| x.exp()).sum();
                want += z.ln() - row[c[i + 1] as usize];
            }
        }
        assert!((p.result.ppl - (want / 6.0).exp()).abs() < 1e-9);
        let e = chunked_perplexity(&Toy::new(), &toks[..5], 8, |_, _, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("5 tokens") && e.contains("at least 8"), "{e}");
    }
}
