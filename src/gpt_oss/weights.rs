//! The gpt-oss weights gathered from a checkpoint as views: every matrix is a [`WeightMatrix`] over the
//! checkpoint's (memory-mapped) bytes, whatever the layout and type. Only 1-D tensors (norm scales, biases,
//! sinks: a few hundred KB per layer) are decoded into f32 vectors.
//!
//! Where each tensor is comes from [`super::names::resolve`]; which layout a source uses is read from which
//! names it has, and how it stores its experts from layer 0's.

use anyhow::{anyhow, bail, Context, Result};

use ossify_formats::{DType, TensorView};
use ossify_kernels::cpu::decode::{decode_row, is_decodable};
use ossify_kernels::cpu::WeightMatrix;

use super::config::{AttentionKind, GptOssConfig};
use super::names::{self, ExpertStorage, Layout, Resolved, Source, TensorName};

/// Anything that can hand out the tensors of one checkpoint by their own names: the checkpoint module's
/// `Checkpoint`, or a test's own reader.
pub trait TensorSource {
    fn config(&self) -> &GptOssConfig;
    fn get(&self, name: &str) -> Option<TensorView<'_>>;
    /// Where the tensors come from (a path), for error messages.
    fn origin(&self) -> String;
}

/// One expert's three matrices.
#[derive(Clone, Copy, Debug)]
pub struct ExpertWeights<'a> {
    /// `(intermediate, hidden)`
    pub gate: WeightMatrix<'a>,
    /// `(intermediate, hidden)`
    pub up: WeightMatrix<'a>,
    /// `(hidden, intermediate)`
    pub down: WeightMatrix<'a>,
}

pub struct LayerWeights<'a> {
    pub kind: AttentionKind,
    pub attn_norm: Vec<f32>,
    pub q: WeightMatrix<'a>,
    pub q_bias: Vec<f32>,
    pub k: WeightMatrix<'a>,
    pub k_bias: Vec<f32>,
    pub v: WeightMatrix<'a>,
    pub v_bias: Vec<f32>,
    pub o: WeightMatrix<'a>,
    pub o_bias: Vec<f32>,
    pub sinks: Vec<f32>,
    pub post_attn_norm: Vec<f32>,
    pub router: WeightMatrix<'a>,
    pub router_bias: Vec<f32>,
    pub experts: Vec<ExpertWeights<'a>>,
    /// `[experts, intermediate]`, de-interleaved.
    pub gate_bias: Vec<f32>,
    /// `[experts, intermediate]`, de-interleaved.
    pub up_bias: Vec<f32>,
    /// `[experts, hidden]`
    pub down_bias: Vec<f32>,
}

pub struct Weights<'a> {
    pub layout: Layout,
    pub embed: WeightMatrix<'a>,
    pub output_norm: Vec<f32>,
    pub output: WeightMatrix<'a>,
    pub layers: Vec<LayerWeights<'a>>,
}

struct Gather<'a, S: TensorSource + ?Sized> {
    src: &'a S,
    cfg: &'a GptOssConfig,
    layout: Layout,
    experts: ExpertStorage,
}

fn bytes_of<'a>(view: &TensorView<'a>) -> Result<&'a [u8]> {
    view.check().map_err(|e| anyhow!(e))?;
    Ok(view.bytes)
}

impl<'a, S: TensorSource + ?Sized> Gather<'a, S> {
    fn ctx(&self, name: &str) -> String {
        format!("{}: tensor '{name}'", self.src.origin())
    }

    /// Where GGUF tensor `row` of layer `bid` lives in this source.
    fn resolve(&self, row: &TensorName, bid: Option<usize>) -> Resolved {
        names::resolve(row, bid, self.layout, self.experts, self.cfg)
    }

    /// The stored tensors `r` reads, each checked to be present with the shape the config implies.
    fn stored(&self, r: &Resolved) -> Result<Vec<TensorView<'a>>> {
        r.stored
            .iter()
            .map(|t| {
                let view = self.src.get(&t.name).ok_or_else(|| {
                    anyhow!("{}: tensor '{}' is missing", self.src.origin(), t.name)
                })?;
                if view.shape != t.shape {
                    bail!(
                        "{}: expected shape {:?}, found {:?}",
                        self.ctx(&t.name),
                        t.shape,
                        view.shape
                    );
                }
                Ok(view)
            })
            .collect()
    }

    /// A 1-D tensor (or its part of a fused one), decoded from any decodable type.
    fn vector(&self, row: &TensorName, bid: Option<usize>) -> Result<Vec<f32>> {
        let r = self.resolve(row, bid);
        let views = self.stored(&r)?;
        let [view] = &views[..] else {
            bail!("{}: not a vector", self.ctx(&r.gguf));
        };
        let ctx = || self.ctx(&view.name);
        let all = decode_all(view).with_context(ctx)?;
        let out: Vec<f32> = match &r.source {
            Source::Whole { .. } => all,
            Source::Interleaved { parity, .. } => {
                all.iter().skip(*parity).step_by(2).copied().collect()
            }
            Source::Rows { start, end, .. } => all
                .get(*start..*end)
                .ok_or_else(|| anyhow!("{}: too few values for the fused q/k/v", ctx()))?
                .to_vec(),
            Source::Mxfp4 { .. } | Source::DenseExperts { .. } => {
                bail!("{}: an expert matrix is not a vector", ctx())
            }
        };
        let len: usize = r.shape.iter().product();
        if out.len() != len {
            bail!(
                "{}: {} of shape {:?} gives {} values, expected {len}",
                ctx(),
                r.source.describe(),
                view.shape,
                out.len()
            );
        }
        Ok(out)
    }

    /// A `(rows, cols)` matrix (or the q/k/v rows of a fused one).
    fn matrix(&self, row: &TensorName, bid: Option<usize>) -> Result<WeightMatrix<'a>> {
        let r = self.resolve(row, bid);
        let views = self.stored(&r)?;
        let (Some(view), &[rows, cols]) = (views.first(), &r.shape[..]) else {
            bail!("{}: not a matrix", self.ctx(&r.gguf));
        };
        let ctx = || self.ctx(&view.name);
        let bytes = bytes_of(view).with_context(ctx)?;
        match &r.source {
            Source::Whole { .. } => {
                WeightMatrix::new(view.dtype, bytes, rows, cols).with_context(ctx)
            }
            Source::Rows { start, .. } => {
                let stored_rows = view.shape.first().copied().unwrap_or(0);
                WeightMatrix::new(view.dtype, bytes, stored_rows, cols)
                    .and_then(|m| m.select_rows(*start, 1, rows))
                    .with_context(ctx)
            }
            _ => bail!("{}: not a plain matrix", ctx()),
        }
    }

    /// The experts of layer `bid`: gate and up `(I, H)`, down `(H, I)` each, as views.
    fn experts(&self, bid: usize) -> Result<Vec<ExpertWeights<'a>>> {
        let gate = self.expert_set(&names::FFN_GATE_EXPS, bid)?;
        let up = self.expert_set(&names::FFN_UP_EXPS, bid)?;
        let down = self.expert_set(&names::FFN_DOWN_EXPS, bid)?;
        (0..self.cfg.num_local_experts)
            .map(|e| {
                Ok(ExpertWeights {
                    gate: gate.get(e)?,
                    up: up.get(e)?,
                    down: down.get(e)?,
                })
            })
            .collect()
    }

    /// An expert matrix `(E, out, in)` wherever it is stored: a GGUF stack, an MXFP4 pair or a dense transposed
    /// stack, gate and up taking every other stored row of a fused gate/up.
    fn expert_set(&self, row: &TensorName, bid: usize) -> Result<ExpertSet<'a>> {
        let r = self.resolve(row, Some(bid));
        let views = self.stored(&r)?;
        let ctx = || self.ctx(&views[0].name);
        let [e_n, out, inp] = r.shape[..] else {
            bail!("{}: not an expert stack", ctx());
        };
        let (step, first, m) = match &r.source {
            Source::Whole { .. } => {
                let v = &views[0];
                let m = WeightMatrix::new(v.dtype, bytes_of(v).with_context(ctx)?, e_n * out, inp);
                (1, 0, Stack::One(m.with_context(ctx)?))
            }
            Source::Mxfp4 { parity, .. } => {
                let (step, first) = Source::row_step(*parity);
                let (b, s) = (&views[0], &views[1]);
                let m = WeightMatrix::mxfp4_pair(
                    bytes_of(b).with_context(ctx)?,
                    bytes_of(s).with_context(|| self.ctx(&s.name))?,
                    e_n * out * step,
                    inp,
                )
                .with_context(ctx)?;
                (step, first, Stack::One(m))
            }
            Source::DenseExperts { parity, .. } => {
                let (step, first) = Source::row_step(*parity);
                let v = &views[0];
                let bytes = bytes_of(v).with_context(ctx)?;
                let slab = bytes.len() / e_n.max(1);
                let mats = (0..e_n)
                    .map(|e| {
                        WeightMatrix::transposed(
                            v.dtype,
                            &bytes[e * slab..(e + 1) * slab],
                            inp,
                            out * step,
                        )
                        .with_context(ctx)
                    })
                    .collect::<Result<Vec<_>>>()?;
                (step, first, Stack::Each(mats))
            }
            _ => bail!("{}: not an expert stack", ctx()),
        };
        Ok(ExpertSet {
            m,
            rows: out,
            step,
            first,
        })
    }
}

/// Per-expert matrices: one stacked `(E·stored_rows, cols)` matrix, or one matrix per expert.
enum Stack<'a> {
    One(WeightMatrix<'a>),
    Each(Vec<WeightMatrix<'a>>),
}

/// One expert matrix of each expert: `rows` rows taken `first, first + step, ...` of the expert's stored rows.
struct ExpertSet<'a> {
    m: Stack<'a>,
    rows: usize,
    step: usize,
    first: usize,
}

impl<'a> ExpertSet<'a> {
    fn get(&self, e: usize) -> Result<WeightMatrix<'a>> {
        let (step, n) = (self.step, self.rows);
        Ok(match &self.m {
            Stack::One(m) => m.select_rows(e * n * step + self.first, step, n)?,
            Stack::Each(v) => v
                .get(e)
                .ok_or_else(|| anyhow!("expert {e} out of range"))?
                .select_rows(self.first, step, n)?,
        })
    }
}

/// Every element of a tensor as f32 (for 1-D tensors: norms, biases, sinks).
fn decode_all(view: &TensorView) -> Result<Vec<f32>> {
    let bytes = bytes_of(view)?;
    if !is_decodable(view.dtype) {
        bail!("type {} cannot be decoded to f32", view.dtype);
    }
    let mut out = vec![0f32; view.n_elements()];
    decode_row(view.dtype, bytes, &mut out);
    Ok(out)
}

impl<'a> Weights<'a> {
    /// Gathers every weight of the model described by `src.config()`, checking each shape.
    pub fn gather<S: TensorSource + ?Sized>(src: &'a S) -> Result<Weights<'a>> {
        let cfg = src.config();
        let layout = Layout::by_names(|n| src.get(n).is_some()).ok_or_else(|| {
            let g = &names::TOKEN_EMBD;
            anyhow!(
                "{}: no token embedding found (looked for '{}', '{}' and '{}'); not a gpt-oss checkpoint",
                src.origin(),
                g.gguf,
                g.hf,
                g.original
            )
        })?;
        let (h, v) = (cfg.hidden_size, cfg.vocab_size);
        let (nh, nkv, hd) = (
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
            cfg.head_dim,
        );
        let (e_n, i) = (cfg.num_local_experts, cfg.intermediate_size);
        let widths = [h, v, nh, hd, e_n, i, cfg.num_hidden_layers];
        if widths.contains(&0)
            || nkv == 0
            || nh % nkv != 0
            || hd % 2 != 0
            || cfg.num_experts_per_tok == 0
            || cfg.num_experts_per_tok > e_n
        {
            bail!(
                "{}: inconsistent config: hidden {h}, vocab {v}, {} layers, {nh} heads, {nkv} kv heads, head_dim \
                 {hd}, top-{} of {e_n} experts of width {i}",
                src.origin(),
                cfg.num_hidden_layers,
                cfg.num_experts_per_tok
            );
        }
        if cfg.layer_types.len() != cfg.num_hidden_layers {
            bail!(
                "{}: config has {} layer types for {} layers",
                src.origin(),
                cfg.layer_types.len(),
                cfg.num_hidden_layers
            );
        }
        let experts = names::detect_experts(layout, |n| src.get(n).map(|t| t.dtype))
            .map_err(|e| anyhow!("{}: {e}", src.origin()))?;
        let g = Gather {
            src,
            cfg,
            layout,
            experts,
        };
        use names::*;
        let embed = g.matrix(&TOKEN_EMBD, None)?;
        let output_norm = g.vector(&OUTPUT_NORM, None)?;
        let output = g.matrix(&OUTPUT, None)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for (bid, &kind) in cfg.layer_types.iter().enumerate() {
            let b = Some(bid);
            layers.push(LayerWeights {
                kind,
                attn_norm: g.vector(&ATTN_NORM, b)?,
                q: g.matrix(&ATTN_Q, b)?,
                q_bias: g.vector(&ATTN_Q_BIAS, b)?,
                k: g.matrix(&ATTN_K, b)?,
                k_bias: g.vector(&ATTN_K_BIAS, b)?,
                v: g.matrix(&ATTN_V, b)?,
                v_bias: g.vector(&ATTN_V_BIAS, b)?,
                o: g.matrix(&ATTN_OUTPUT, b)?,
                o_bias: g.vector(&ATTN_OUTPUT_BIAS, b)?,
                sinks: g.vector(&ATTN_SINKS, b)?,
                post_attn_norm: g.vector(&POST_ATTN_NORM, b)?,
                router: g.matrix(&FFN_GATE_INP, b)?,
                router_bias: g.vector(&FFN_GATE_INP_BIAS, b)?,
                experts: g.experts(bid)?,
                gate_bias: g.vector(&FFN_GATE_EXPS_BIAS, b)?,
                up_bias: g.vector(&FFN_UP_EXPS_BIAS, b)?,
                down_bias: g.vector(&FFN_DOWN_EXPS_BIAS, b)?,
            });
        }
        Ok(Weights {
            layout,
            embed,
            output_norm,
            output,
            layers,
        })
    }
}

/// Types the forward pass can compute from.
pub fn supported(dtype: DType) -> bool {
    is_decodable(dtype)
}
