//! The reference forward pass of gpt-oss, in f32 with every weight decoded exactly, straight from the
//! checkpoint's mapped bytes.
//!
//! It follows transformers' `modeling_gpt_oss.py` operation by operation: RMSNorm (`x · rsqrt(mean(x²) + eps)`,
//! then the scale), q/k/v with biases, half-split RoPE with YaRN ([`super::rope`]), grouped-query attention
//! scaled by `1/sqrt(head_dim)` with one learned sink logit per head that joins the softmax denominator only,
//! sliding-window layers that see the `sliding_window` most recent keys including the current one
//! (`kv_idx > q_idx - window`, masking_utils.py), the router (linear + bias, top-k on the logits, softmax
//! over those k), experts (gate clamped above at `swiglu_limit`, up clamped to ±limit,
//! `(up + 1) · gate · sigmoid(1.702 · gate)`, down + bias) summed in expert order, the final norm and the
//! untied unembedding.
//!
//! ```ignore
//! let model = Model::new(&checkpoint, ForwardOptions::default())?;
//! let logits = model.forward(&tokens)?;            // [T, vocab], row-major
//! let mut s = model.session();                      // incremental decode with a KV cache
//! let l = s.eval(&prompt)?; let next = s.eval_last(&[tok])?;
//! s.eval_each(&chunk, chunk.len() / 2, |i, row| score(i, row))?;   // perplexity: one batch of logits at a time
//! let trace = model.forward_traced(&tokens)?;       // residual stream after each sub-block
//! let first = trace.first_divergence(&reference_trace, 1e-3);      // where two models part
//! let bad = trace.first_non_finite();                              // first layer that made a NaN / Inf
//! ```
//!
//! Memory: weight matrices are views over the mapped files (never copied; 1-D tensors are decoded, a few
//! hundred KB per layer); full-attention layers keep every position's keys and values, sliding layers only
//! the last `sliding_window` (a ring); activations are sized to one batch (`ForwardOptions::batch_size`).

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

pub use ossify_kernels::cpu::Precision;
use ossify_kernels::cpu::{dot, matmul_prec, WeightMatrix};

use super::config::{AttentionKind, GptOssConfig};
pub use super::cuda::Device;
use super::cuda::{CudaModel, CudaSession};
use super::names::Layout;
use super::rope::Rope;
use super::weights::{LayerWeights, TensorSource, Weights};

/// gpt-oss's SwiGLU slope (transformers' `swiglu_alpha`, OpenAI's `alpha` in gpt_oss/torch/model.py).
pub const SWIGLU_ALPHA: f32 = 1.702;

#[derive(Clone, Debug)]
pub struct ForwardOptions {
    /// Round the YaRN correction range as llama.cpp does (8 and 18 for gpt-oss) instead of the HF / OpenAI
    /// definition (8.0928 and 17.398).
    pub yarn_truncate: bool,
    /// Worker threads; 0 takes as many as the rayon pool the caller runs in (the command's `--threads`; outside
    /// any pool, rayon's default: one per core).
    pub threads: usize,
    /// Tokens per forward step when a long input is evaluated (bounds activation memory).
    pub batch_size: usize,
    /// Expected context length: full-attention KV caches reserve this many positions up front. 0 = grow.
    pub context: usize,
    /// How matmul activations are rounded: exact f32 (the transformers reference) or as llama.cpp's CPU
    /// backend rounds them (Q8_0 for MXFP4 / Q8_0 weights, BF16 for BF16), which is faster.
    pub precision: Precision,
    /// Where to compute: the CPU, or a CUDA GPU ([`super::cuda`]).
    pub device: Device,
}

impl ForwardOptions {
    /// How logits are computed, for reports (`verify-parity --json`'s `mode`): `f32-reference` (every weight
    /// decoded exactly, activations and accumulation in f32) or `q8-activations` (activations rounded as
    /// llama.cpp's CPU backend rounds them), with `-yarn-truncate` when the YaRN bounds are rounded.
    pub fn mode(&self) -> &'static str {
        match (self.precision, self.yarn_truncate) {
            (Precision::Exact, false) => "f32-reference",
            (Precision::Exact, true) => "f32-reference-yarn-truncate",
            (Precision::Q8Activations, false) => "q8-activations",
            (Precision::Q8Activations, true) => "q8-activations-yarn-truncate",
        }
    }
}

impl Default for ForwardOptions {
    fn default() -> Self {
        ForwardOptions {
            yarn_truncate: false,
            threads: 0,
            batch_size: 512,
            context: 0,
            precision: Precision::Exact,
            device: Device::Cpu,
        }
    }
}

/// Which expert matmul an [`ExpertHook`] sees the input of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertMatmul {
    /// The normed hidden state, input of both gate and up.
    GateUp,
    /// The SwiGLU output, input of down.
    Down,
}

/// Called with (layer, expert, matmul, inputs `[n, in]` row-major) for every expert matmul: how `quantize
/// --calibration` collects its importance matrix.
pub type ExpertHook<'a> = Box<dyn Fn(usize, usize, ExpertMatmul, &[f32]) + Send + Sync + 'a>;

/// A gpt-oss model whose weights are views over a checkpoint.
pub struct Model<'a> {
    config: GptOssConfig,
    weights: Weights<'a>,
    rope: Rope,
    options: ForwardOptions,
    pool: rayon::ThreadPool,
    expert_hook: Option<ExpertHook<'a>>,
    /// The weights on a GPU when `options.device` chose one: every step runs there.
    cuda: Option<CudaModel>,
}

/// Which half of a layer a traced residual follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubBlock {
    Attention,
    Moe,
}

/// The residual stream through a run, each `[T, hidden]` row-major.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// Token embeddings (the stream before layer 0).
    pub embeddings: Vec<f32>,
    /// Per layer: the residual after the attention sub-block (`x + attn(norm(x))`).
    pub after_attention: Vec<Vec<f32>>,
    /// Per layer: the residual after the MoE sub-block, i.e. the layer's output (transformers'
    /// `hidden_states[l + 1]` for all layers but the last, which transformers reports after the final norm).
    pub after_moe: Vec<Vec<f32>>,
    /// `[T, vocab]`
    pub logits: Vec<f32>,
}

/// One point of the residual stream where two runs were compared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Divergence {
    pub layer: usize,
    pub sub_block: SubBlock,
    /// ‖self − reference‖₂ / ‖reference‖₂ over all tokens.
    pub relative_error: f64,
}

impl Trace {
    /// The relative error of this run's residual stream against `reference`'s after every sub-block, in
    /// order (layer 0 attention, layer 0 MoE, layer 1 attention, ...). Runs of different shapes give an
    /// empty list.
    pub fn relative_errors(&self, reference: &Trace) -> Vec<Divergence> {
        let rel = |a: &[f32], b: &[f32]| {
            let (mut num, mut den) = (0f64, 0f64);
            for (x, y) in a.iter().zip(b) {
                num += (f64::from(*x) - f64::from(*y)).powi(2);
                den += f64::from(*y).powi(2);
            }
            if den > 0.0 {
                (num / den).sqrt()
            } else {
                num.sqrt()
            }
        };
        if self.after_attention.len() != reference.after_attention.len()
            || self.embeddings.len() != reference.embeddings.len()
        {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(2 * self.after_attention.len());
        for l in 0..self.after_attention.len() {
            for (sub_block, a, b) in [
                (
                    SubBlock::Attention,
                    &self.after_attention[l],
                    &reference.after_attention[l],
                ),
                (SubBlock::Moe, &self.after_moe[l], &reference.after_moe[l]),
            ] {
                out.push(Divergence {
                    layer: l,
                    sub_block,
                    relative_error: rel(a, b),
                });
            }
        }
        out
    }

    /// The first sub-block whose relative error against `reference` exceeds `threshold` (NaN counts as
    /// exceeding), for "name the first layer where they diverge".
    pub fn first_divergence(&self, reference: &Trace, threshold: f64) -> Option<Divergence> {
        self.relative_errors(reference)
            .into_iter()
            .find(|d| d.relative_error.is_nan() || d.relative_error > threshold)
    }

    /// The first (layer, sub-block) whose output holds a NaN or an infinity.
    pub fn first_non_finite(&self) -> Option<(usize, SubBlock)> {
        let bad = |v: &Vec<f32>| v.iter().any(|x| !x.is_finite());
        (0..self.after_attention.len()).find_map(|l| {
            if bad(&self.after_attention[l]) {
                Some((l, SubBlock::Attention))
            } else if self.after_moe.get(l).is_some_and(bad) {
                Some((l, SubBlock::Moe))
            } else {
                None
            }
        })
    }
}

impl<'a> Model<'a> {
    /// Gathers the weights of `src` (a `Checkpoint`) as views and prepares the RoPE tables.
    pub fn new<S: TensorSource + ?Sized>(src: &'a S, options: ForwardOptions) -> Result<Model<'a>> {
        let config = src.config().clone();
        let weights = Weights::gather(src)?;
        let rope = Rope::new(&config, options.yarn_truncate.then_some(true));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(match options.threads {
                0 => rayon::current_num_threads(),
                n => n,
            })
            .build()
            .context("starting the forward pass's thread pool")?;
        let cuda = CudaModel::for_device(&config, &weights, &options)?;
        Ok(Model {
            config,
            weights,
            rope,
            options,
            pool,
            expert_hook: None,
            cuda,
        })
    }

    /// Observes the inputs of every expert matmul (see [`ExpertHook`]).
    pub fn with_expert_hook(mut self, hook: ExpertHook<'a>) -> Self {
        self.expert_hook = Some(hook);
        self
    }

    pub fn config(&self) -> &GptOssConfig {
        &self.config
    }

    /// Which naming the checkpoint used (GGUF, HF or original).
    pub fn layout(&self) -> Layout {
        self.weights.layout
    }

    pub fn options(&self) -> &ForwardOptions {
        &self.options
    }

    /// Where the forward pass runs: "cpu", or the GPU ("NVIDIA H200 (sm_90)").
    pub fn device(&self) -> String {
        self.cuda
            .as_ref()
            .map_or_else(|| "cpu".to_string(), |c| c.describe())
    }

    /// The GPU model, when the forward pass runs on one.
    pub fn cuda(&self) -> Option<&CudaModel> {
        self.cuda.as_ref()
    }

    /// A fresh session (empty KV cache).
    pub fn session(&self) -> Session<'_, 'a> {
        let kvd = self.config.num_key_value_heads * self.config.head_dim;
        // Never more positions than the model has (a caller's context is a hint, not a bound).
        let reserve = self
            .options
            .context
            .min(self.config.max_position_embeddings)
            .saturating_mul(kvd);
        // On a GPU the caches live there (made on the first step).
        let cpu_layers = if self.cuda.is_some() {
            &[][..]
        } else {
            &self.weights.layers[..]
        };
        let caches = cpu_layers
            .iter()
            .map(|l| match l.kind {
                // The ring grows as positions arrive (up to the window), so a window longer than the input
                // costs nothing.
                AttentionKind::Sliding => LayerCache {
                    k: Vec::new(),
                    v: Vec::new(),
                    ring: Some(self.config.sliding_window.max(1)),
                    kvd,
                },
                AttentionKind::Full => LayerCache {
                    k: Vec::with_capacity(reserve),
                    v: Vec::with_capacity(reserve),
                    ring: None,
                    kvd,
                },
            })
            .collect();
        Session {
            model: self,
            caches,
            n_past: 0,
            gpu: None,
        }
    }

    /// Logits `[T, vocab]` (row-major) for `tokens` from an empty context.
    pub fn forward(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.session().eval(tokens)
    }

    /// Like [`Model::forward`], also returning the residual stream after every attention and MoE sub-block.
    pub fn forward_traced(&self, tokens: &[u32]) -> Result<Trace> {
        let mut s = self.session();
        let h = self.config.hidden_size;
        let n_layers = self.config.num_hidden_layers;
        let mut trace = Trace {
            embeddings: Vec::with_capacity(tokens.len() * h),
            after_attention: vec![Vec::with_capacity(tokens.len() * h); n_layers],
            after_moe: vec![Vec::with_capacity(tokens.len() * h); n_layers],
            logits: Vec::with_capacity(tokens.len() * self.config.vocab_size),
        };
        for chunk in tokens.chunks(self.options.batch_size.max(1)) {
            let logits = s.eval_inner(chunk, Some(&mut trace))?;
            trace.logits.extend_from_slice(&logits);
        }
        Ok(trace)
    }
}

/// Keys and values of one layer: every position for full layers, the last `window` positions in a ring for
/// sliding ones (older keys can never be attended again).
struct LayerCache {
    k: Vec<f32>,
    v: Vec<f32>,
    ring: Option<usize>,
    kvd: usize,
}

impl LayerCache {
    fn slot(&self, pos: usize) -> usize {
        match self.ring {
            Some(cap) => pos % cap,
            None => pos,
        }
    }

    fn append(&mut self, p0: usize, k: &[f32], v: &[f32]) {
        match self.ring {
            None => {
                debug_assert_eq!(self.k.len(), p0 * self.kvd);
                self.k.extend_from_slice(k);
                self.v.extend_from_slice(v);
            }
            Some(_) => {
                for (t, (kt, vt)) in k
                    .chunks_exact(self.kvd)
                    .zip(v.chunks_exact(self.kvd))
                    .enumerate()
                {
                    let s = self.slot(p0 + t) * self.kvd;
                    // Positions arrive in order, so a slot is either filled already or the next one.
                    if s == self.k.len() {
                        self.k.extend_from_slice(kt);
                        self.v.extend_from_slice(vt);
                    } else {
                        self.k[s..s + self.kvd].copy_from_slice(kt);
                        self.v[s..s + self.kvd].copy_from_slice(vt);
                    }
                }
            }
        }
    }
}

/// A running context: feed tokens in any number of steps, get their logits.
pub struct Session<'m, 'a> {
    model: &'m Model<'a>,
    caches: Vec<LayerCache>,
    n_past: usize,
    gpu: Option<CudaSession>,
}

impl<'m, 'a> Session<'m, 'a> {
    /// Tokens evaluated so far.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Forgets the context.
    pub fn reset(&mut self) {
        *self = self.model.session();
    }

    /// Appends `tokens` to the context and returns their logits `[T, vocab]`.
    pub fn eval(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(tokens.len() * self.model.config.vocab_size);
        for chunk in tokens.chunks(self.model.options.batch_size.max(1)) {
            out.extend_from_slice(&self.eval_inner(chunk, None)?);
        }
        Ok(out)
    }

    /// Appends `tokens` and returns the logits of the last one only (the unembedding runs for it alone).
    pub fn eval_last(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let mut last = Vec::new();
        let n = tokens.len();
        self.eval_each(tokens, n.saturating_sub(1), |_, row| {
            last.clear();
            last.extend_from_slice(row)
        })?;
        Ok(last)
    }

    /// Appends `tokens` and calls `f(i, logits)` for every `i >= first_scored` (index into `tokens`), a batch at
    /// a time: memory holds one batch of logits, and tokens before `first_scored` skip the unembedding. This is
    /// what chunked perplexity needs (score only the second half of each chunk).
    pub fn eval_each(
        &mut self,
        tokens: &[u32],
        first_scored: usize,
        mut f: impl FnMut(usize, &[f32]),
    ) -> Result<()> {
        let v = self.model.config.vocab_size;
        let bs = self.model.options.batch_size.max(1);
        for (b, chunk) in tokens.chunks(bs).enumerate() {
            let start = b * bs;
            let from = first_scored.saturating_sub(start).min(chunk.len());
            let logits = self.model.pool.install(|| self.step(chunk, None, from))?;
            for (k, row) in logits.chunks_exact(v.max(1)).enumerate() {
                f(start + from + k, row);
            }
        }
        Ok(())
    }

    fn eval_inner(&mut self, tokens: &[u32], trace: Option<&mut Trace>) -> Result<Vec<f32>> {
        let model = self.model;
        model.pool.install(|| self.step(tokens, trace, 0))
    }

    /// One batch through every layer; logits for `tokens[logits_from..]`.
    fn step(
        &mut self,
        tokens: &[u32],
        mut trace: Option<&mut Trace>,
        logits_from: usize,
    ) -> Result<Vec<f32>> {
        let m = self.model;
        let cfg = &m.config;
        let w = &m.weights;
        let (t_n, h, v_n) = (tokens.len(), cfg.hidden_size, cfg.vocab_size);
        if t_n == 0 {
            return Ok(Vec::new());
        }
        if let Some(gpu) = &m.cuda {
            let hook = m.expert_hook.as_deref();
            let p0 = self.n_past;
            let out = gpu.step(&mut self.gpu, &m.rope, p0, tokens, trace, logits_from, hook)?;
            self.n_past += t_n;
            return Ok(out);
        }
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let (qd, kvd) = (nh * hd, nkv * hd);
        let eps = cfg.rms_norm_eps as f32;
        let p0 = self.n_past;
        let prec = m.options.precision;

        let mut x = vec![0f32; t_n * h];
        for (xt, &tok) in x.chunks_exact_mut(h).zip(tokens) {
            if tok as usize >= v_n {
                bail!("token id {tok} is outside the vocabulary of {v_n}");
            }
            w.embed.decode_row_into(tok as usize, xt)?;
        }
        if let Some(tr) = trace.as_deref_mut() {
            tr.embeddings.extend_from_slice(&x);
        }

        let half = hd / 2;
        let mut cos = vec![0f32; t_n * half];
        let mut sin = vec![0f32; t_n * half];
        for t in 0..t_n {
            m.rope.cos_sin(
                p0 + t,
                &mut cos[t * half..(t + 1) * half],
                &mut sin[t * half..(t + 1) * half],
            );
        }

        let mut xn = vec![0f32; t_n * h];
        let mut q = vec![0f32; t_n * qd];
        let mut k = vec![0f32; t_n * kvd];
        let mut v = vec![0f32; t_n * kvd];
        let mut attn = vec![0f32; t_n * qd];
        let mut o = vec![0f32; t_n * h];

        for (l, lw) in w.layers.iter().enumerate() {
            let ctx = || format!("layer {l}");
            rms_norm(&x, &lw.attn_norm, eps, &mut xn);
            linear(&lw.q, &lw.q_bias, &xn, t_n, &mut q, prec).with_context(ctx)?;
            linear(&lw.k, &lw.k_bias, &xn, t_n, &mut k, prec).with_context(ctx)?;
            linear(&lw.v, &lw.v_bias, &xn, t_n, &mut v, prec).with_context(ctx)?;
            for t in 0..t_n {
                let (c, s) = (
                    &cos[t * half..(t + 1) * half],
                    &sin[t * half..(t + 1) * half],
                );
                m.rope.apply(&mut q[t * qd..(t + 1) * qd], c, s);
                m.rope.apply(&mut k[t * kvd..(t + 1) * kvd], c, s);
            }
            attention(cfg, lw, &self.caches[l], p0, &q, &k, &v, &mut attn);
            self.caches[l].append(p0, &k, &v);
            linear(&lw.o, &lw.o_bias, &attn, t_n, &mut o, prec).with_context(ctx)?;
            add_into(&mut x, &o);
            if let Some(tr) = trace.as_deref_mut() {
                tr.after_attention[l].extend_from_slice(&x);
            }

            rms_norm(&x, &lw.post_attn_norm, eps, &mut xn);
            let hook = m.expert_hook.as_deref().map(|h| (l, h));
            moe(cfg, lw, &xn, t_n, &mut o, prec, hook).with_context(ctx)?;
            add_into(&mut x, &o);
            if let Some(tr) = trace.as_deref_mut() {
                tr.after_moe[l].extend_from_slice(&x);
            }
        }
        self.n_past += t_n;

        let scored = t_n - logits_from.min(t_n);
        let xs = &x[(t_n - scored) * h..];
        rms_norm(xs, &w.output_norm, eps, &mut xn[..scored * h]);
        let mut logits = vec![0f32; scored * v_n];
        matmul_prec(&w.output, &xn[..scored * h], scored, &mut logits, prec)
            .context("unembedding")?;
        Ok(logits)
    }
}

/// transformers' GptOssRMSNorm in f32: `weight · (x · rsqrt(mean(x²) + eps))`, row by row.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let h = weight.len();
    for (xr, or) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let ms = dot(xr, xr) / h as f32;
        let r = 1.0 / (ms + eps).sqrt();
        for ((o, &xv), &wv) in or.iter_mut().zip(xr).zip(weight) {
            *o = wv * (xv * r);
        }
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// `y = x · Wᵀ + b` for `n` tokens.
fn linear(
    w: &WeightMatrix,
    bias: &[f32],
    x: &[f32],
    n: usize,
    y: &mut [f32],
    p: Precision,
) -> Result<()> {
    matmul_prec(w, x, n, y, p)?;
    for yr in y.chunks_exact_mut(bias.len().max(1)) {
        add_into(yr, bias);
    }
    Ok(())
}

/// Attention of this batch's queries over the cached keys plus this batch's own, with sinks.
#[allow(clippy::too_many_arguments)]
fn attention<'a>(
    cfg: &GptOssConfig,
    lw: &LayerWeights,
    cache: &'a LayerCache,
    p0: usize,
    q: &[f32],
    k: &'a [f32],
    v: &'a [f32],
    out: &mut [f32],
) {
    let (nh, nkv, hd) = (
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    );
    let (qd, kvd, n_rep) = (nh * hd, nkv * hd, nh / nkv);
    let window = match lw.kind {
        AttentionKind::Sliding => cfg.sliding_window.max(1),
        AttentionKind::Full => usize::MAX,
    };
    // transformers multiplies by `head_dim ** -0.5`, a Python float rounded to f32.
    let scale = (hd as f64).powf(-0.5) as f32;
    // Position `pos` of kv head `kvh`: from the cache before this batch, from the batch's own rows after.
    let pick = |cached: &'a [f32], new: &'a [f32], pos: usize, kvh: usize| -> &'a [f32] {
        let (buf, off) = if pos < p0 {
            (cached, cache.slot(pos) * kvd + kvh * hd)
        } else {
            (new, (pos - p0) * kvd + kvh * hd)
        };
        &buf[off..off + hd]
    };
    out.par_chunks_mut(hd)
        .enumerate()
        .for_each_init(Vec::<f32>::new, |scores, (idx, o)| {
            let (t, head) = (idx / nh, idx % nh);
            let pos = p0 + t;
            let kvh = head / n_rep;
            let lo = if window == usize::MAX {
                0
            } else {
                (pos + 1).saturating_sub(window)
            };
            let qv = &q[t * qd + head * hd..t * qd + (head + 1) * hd];
            scores.clear();
            for j in lo..=pos {
                let kj = pick(&cache.k, k, j, kvh);
                scores.push(dot(qv, kj) * scale);
            }
            let sink = lw.sinks[head];
            let mx = scores.iter().fold(sink, |a, &b| a.max(b));
            let mut denom = (sink - mx).exp();
            for s in scores.iter_mut() {
                *s = (*s - mx).exp();
                denom += *s;
            }
            o.fill(0.0);
            for (j, &s) in (lo..=pos).zip(scores.iter()) {
                let p = s / denom;
                let vj = pick(&cache.v, v, j, kvh);
                for (a, &b) in o.iter_mut().zip(vj) {
                    *a += p * b;
                }
            }
        });
}

/// The router and the experts for `n` tokens of `xn` (`[n, hidden]`), into `out` (`[n, hidden]`).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn moe(
    cfg: &GptOssConfig,
    lw: &LayerWeights,
    xn: &[f32],
    n: usize,
    out: &mut [f32],
    prec: Precision,
    hook: Option<(
        usize,
        &(dyn Fn(usize, usize, ExpertMatmul, &[f32]) + Send + Sync),
    )>,
) -> Result<()> {
    let (h, i_n, e_n, k) = (
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_local_experts,
        cfg.num_experts_per_tok,
    );
    let limit = cfg.swiglu_limit as f32;
    let mut logits = vec![0f32; n * e_n];
    linear(&lw.router, &lw.router_bias, xn, n, &mut logits, prec).context("router")?;

    // Per expert: (token, routing weight), tokens in order.
    let mut routed: Vec<Vec<(usize, f32)>> = vec![Vec::new(); e_n];
    let mut order: Vec<usize> = Vec::with_capacity(e_n);
    for (t, lr) in logits.chunks_exact(e_n).enumerate() {
        order.clear();
        order.extend(0..e_n);
        // top-k by logit (ties: lower index first), then softmax over those k.
        order.sort_by(|&a, &b| lr[b].total_cmp(&lr[a]).then(a.cmp(&b)));
        let top = &order[..k];
        let mx = lr[top[0]];
        let exps: Vec<f32> = top.iter().map(|&e| (lr[e] - mx).exp()).collect();
        let sum: f32 = exps.iter().sum();
        for (&e, &x) in top.iter().zip(&exps) {
            routed[e].push((t, x / sum));
        }
    }

    out.fill(0.0);
    let (mut xe, mut gate, mut up, mut down) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (e, toks) in routed.iter().enumerate() {
        if toks.is_empty() {
            continue;
        }
        let ne = toks.len();
        let ew = &lw.experts[e];
        xe.clear();
        for &(t, _) in toks {
            xe.extend_from_slice(&xn[t * h..(t + 1) * h]);
        }
        if let Some((l, f)) = hook {
            f(l, e, ExpertMatmul::GateUp, &xe);
        }
        gate.resize(ne * i_n, 0.0);
        up.resize(ne * i_n, 0.0);
        down.resize(ne * h, 0.0);
        let ctx = || format!("expert {e}");
        linear(
            &ew.gate,
            &lw.gate_bias[e * i_n..(e + 1) * i_n],
            &xe,
            ne,
            &mut gate,
            prec,
        )
        .with_context(ctx)?;
        linear(
            &ew.up,
            &lw.up_bias[e * i_n..(e + 1) * i_n],
            &xe,
            ne,
            &mut up,
            prec,
        )
        .with_context(ctx)?;
        for (g, u) in gate.iter_mut().zip(&up) {
            let gc = g.min(limit);
            let uc = u.clamp(-limit, limit);
            let glu = gc * sigmoid(gc * SWIGLU_ALPHA);
            *g = (uc + 1.0) * glu;
        }
        if let Some((l, f)) = hook {
            f(l, e, ExpertMatmul::Down, &gate);
        }
        linear(
            &ew.down,
            &lw.down_bias[e * h..(e + 1) * h],
            &gate,
            ne,
            &mut down,
            prec,
        )
        .with_context(ctx)?;
        for (&(t, wgt), dr) in toks.iter().zip(down.chunks_exact(h)) {
            for (a, &b) in out[t * h..(t + 1) * h].iter_mut().zip(dr) {
                *a += b * wgt;
            }
        }
    }
    Ok(())
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
