//! The gpt-oss weights gathered from a checkpoint as views: every matrix is a [`WeightMatrix`] over the
//! checkpoint's (memory-mapped) bytes, whatever the layout and type. Only 1-D tensors (norm scales, biases,
//! sinks: a few hundred KB per layer) are decoded into f32 vectors.
//!
//! Names come from [`super::names`]; which layout a source uses is read from which names it has.

use anyhow::{anyhow, bail, Context, Result};

use ossify_formats::{DType, TensorView};
use ossify_kernels::cpu::decode::{decode_row, is_decodable};
use ossify_kernels::cpu::WeightMatrix;

use super::config::{AttentionKind, GptOssConfig};
use super::names::{self, Part, TensorName};

/// Anything that can hand out the tensors of one checkpoint by their own names: [`crate::checkpoint`]'s
/// `Checkpoint`, or a test's own reader.
pub trait TensorSource {
    fn config(&self) -> &GptOssConfig;
    fn get(&self, name: &str) -> Option<TensorView<'_>>;
    /// Where the tensors come from (a path), for error messages.
    fn origin(&self) -> String;
}

/// Which of the tensor-name columns of [`names`] a source uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameLayout {
    Gguf,
    Hf,
    Original,
}

impl NameLayout {
    fn detect<S: TensorSource + ?Sized>(src: &S) -> Result<NameLayout> {
        let g = &names::GLOBAL[0];
        for (layout, name) in [
            (NameLayout::Gguf, g.gguf),
            (NameLayout::Hf, g.hf),
            (NameLayout::Original, g.original),
        ] {
            if src.get(name).is_some() {
                return Ok(layout);
            }
        }
        bail!(
            "{}: no token embedding found (looked for '{}', '{}' and '{}'); not a gpt-oss checkpoint",
            src.origin(),
            g.gguf,
            g.hf,
            g.original
        )
    }

    fn name_of(self, row: &TensorName, bid: Option<usize>) -> (String, Part) {
        let (template, part) = match self {
            NameLayout::Gguf => (row.gguf, Part::Whole),
            NameLayout::Hf => (row.hf, row.hf_part),
            NameLayout::Original => (row.original, row.original_part),
        };
        (names::layer_name(template, bid.unwrap_or(0)), part)
    }
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
    pub layout: NameLayout,
    pub embed: WeightMatrix<'a>,
    pub output_norm: Vec<f32>,
    pub output: WeightMatrix<'a>,
    pub layers: Vec<LayerWeights<'a>>,
}

struct Gather<'a, S: TensorSource + ?Sized> {
    src: &'a S,
    cfg: &'a GptOssConfig,
    layout: NameLayout,
}

fn bytes_of<'a>(view: &TensorView<'a>) -> Result<&'a [u8]> {
    view.check().map_err(|e| anyhow!(e))?;
    Ok(view.bytes)
}

impl<'a, S: TensorSource + ?Sized> Gather<'a, S> {
    fn tensor(&self, name: &str) -> Result<TensorView<'a>> {
        self.src
            .get(name)
            .ok_or_else(|| anyhow!("{}: tensor '{name}' is missing", self.src.origin()))
    }

    fn ctx(&self, name: &str) -> String {
        format!("{}: tensor '{name}'", self.src.origin())
    }

    /// The 1-D part of a source vector (any decodable type), checked to have `len` values.
    fn vector(&self, row: &TensorName, bid: Option<usize>, len: usize) -> Result<Vec<f32>> {
        let (name, part) = self.layout.name_of(row, bid);
        let view = self.tensor(&name)?;
        let all = decode_all(&view).with_context(|| self.ctx(&name))?;
        let out: Vec<f32> = match part {
            Part::Whole => all,
            Part::Gate => all.iter().step_by(2).copied().collect(),
            Part::Up => all.iter().skip(1).step_by(2).copied().collect(),
            Part::Q | Part::K | Part::V => {
                let (start, n) = self.qkv_range(part);
                all.get(start..start + n)
                    .ok_or_else(|| {
                        anyhow!(
                            "{}: {} values, too few for the fused q/k/v",
                            self.ctx(&name),
                            all.len()
                        )
                    })?
                    .to_vec()
            }
        };
        if out.len() != len {
            bail!(
                "{}: {:?} of shape {:?} gives {} values, expected {len}",
                self.ctx(&name),
                part,
                view.shape,
                out.len()
            );
        }
        Ok(out)
    }

    /// (first row, rows) of a q/k/v part inside a fused qkv.
    fn qkv_range(&self, part: Part) -> (usize, usize) {
        let (q, kv) = (
            self.cfg.num_attention_heads * self.cfg.head_dim,
            self.cfg.num_key_value_heads * self.cfg.head_dim,
        );
        match part {
            Part::K => (q, kv),
            Part::V => (q + kv, kv),
            _ => (0, q),
        }
    }

    /// A `(rows, cols)` matrix (or the q/k/v rows of a fused one).
    fn matrix(
        &self,
        row: &TensorName,
        bid: Option<usize>,
        rows: usize,
        cols: usize,
    ) -> Result<WeightMatrix<'a>> {
        let (name, part) = self.layout.name_of(row, bid);
        let view = self.tensor(&name)?;
        let ctx = || self.ctx(&name);
        let bytes = bytes_of(&view).with_context(ctx)?;
        let (stored_rows, first) = match part {
            Part::Whole => (rows, 0),
            Part::Q | Part::K | Part::V => {
                let (start, _) = self.qkv_range(part);
                let total = self.qkv_range(Part::V).0 + self.qkv_range(Part::V).1;
                (total, start)
            }
            Part::Gate | Part::Up => bail!("{}: gate/up parts are expert tensors", ctx()),
        };
        if view.shape != [stored_rows, cols] {
            bail!(
                "{}: expected shape [{stored_rows}, {cols}], found {:?}",
                ctx(),
                view.shape
            );
        }
        let m = WeightMatrix::new(view.dtype, bytes, stored_rows, cols).with_context(ctx)?;
        if part == Part::Whole {
            Ok(m)
        } else {
            m.select_rows(first, 1, rows).with_context(ctx)
        }
    }

    /// The experts of layer `bid`: gate and up `(I, H)`, down `(H, I)` each, as views.
    fn experts(&self, bid: usize) -> Result<Vec<ExpertWeights<'a>>> {
        let (e_n, h, i) = (
            self.cfg.num_local_experts,
            self.cfg.hidden_size,
            self.cfg.intermediate_size,
        );
        let row = |gguf: &str| {
            names::PER_LAYER
                .iter()
                .find(|r| r.gguf == gguf)
                .ok_or_else(|| anyhow!("name table has no row '{gguf}'"))
        };
        let gate_row = row("blk.{bid}.ffn_gate_exps.weight")?;
        let up_row = row("blk.{bid}.ffn_up_exps.weight")?;
        let down_row = row("blk.{bid}.ffn_down_exps.weight")?;
        let mut out = Vec::with_capacity(e_n);
        if self.layout == NameLayout::Gguf {
            let gate = self.expert_stack(gate_row, bid, i, h)?;
            let up = self.expert_stack(up_row, bid, i, h)?;
            let down = self.expert_stack(down_row, bid, h, i)?;
            for e in 0..e_n {
                out.push(ExpertWeights {
                    gate: gate.select_rows(e * i, 1, i)?,
                    up: up.select_rows(e * i, 1, i)?,
                    down: down.select_rows(e * h, 1, h)?,
                });
            }
            return Ok(out);
        }
        // HF / original: a fused gate_up with interleaved rows (even = gate), and down.
        let (gu_name, _) = self.layout.name_of(gate_row, Some(bid));
        let (down_name, _) = self.layout.name_of(down_row, Some(bid));
        let gate_up = self.hf_expert(&gu_name, 2 * i, h)?;
        let down = self.hf_expert(&down_name, h, i)?;
        for e in 0..e_n {
            out.push(ExpertWeights {
                gate: gate_up.get(e, 0, 2, i)?,
                up: gate_up.get(e, 1, 2, i)?,
                down: down.get(e, 0, 1, h)?,
            });
        }
        Ok(out)
    }

    /// A GGUF expert tensor `[E, rows, cols]` as one `(E·rows, cols)` matrix.
    fn expert_stack(
        &self,
        row: &TensorName,
        bid: usize,
        rows: usize,
        cols: usize,
    ) -> Result<WeightMatrix<'a>> {
        let (name, _) = self.layout.name_of(row, Some(bid));
        let view = self.tensor(&name)?;
        let ctx = || self.ctx(&name);
        let e_n = self.cfg.num_local_experts;
        if view.shape != [e_n, rows, cols] {
            bail!(
                "{}: expected shape [{e_n}, {rows}, {cols}], found {:?}",
                ctx(),
                view.shape
            );
        }
        let bytes = bytes_of(&view).with_context(ctx)?;
        WeightMatrix::new(view.dtype, bytes, e_n * rows, cols).with_context(ctx)
    }

    /// An HF / original expert matrix of logical shape `(out, in)` per expert: the MXFP4 pair, or a plain
    /// tensor stored `(E, out, in)` (original) or `(E, in, out)` (HF BF16 fine-tunes).
    fn hf_expert(&self, base: &str, out: usize, inp: usize) -> Result<ExpertSet<'a>> {
        let e_n = self.cfg.num_local_experts;
        let (bn, sn) = match self.layout {
            NameLayout::Original => names::original_mxfp4_names(base),
            _ => names::hf_mxfp4_names(base),
        };
        if let (Some(blocks), Some(scales)) = (self.src.get(&bn), self.src.get(&sn)) {
            if blocks.shape != [e_n, out, inp / 32, 16] || scales.shape != [e_n, out, inp / 32] {
                bail!(
                    "{}: MXFP4 pair '{bn}' {:?} / '{sn}' {:?} does not fit {e_n} experts of {out}x{inp}",
                    self.src.origin(),
                    blocks.shape,
                    scales.shape
                );
            }
            let m = WeightMatrix::mxfp4_pair(
                bytes_of(&blocks).with_context(|| self.ctx(&bn))?,
                bytes_of(&scales).with_context(|| self.ctx(&sn))?,
                e_n * out,
                inp,
            )
            .with_context(|| self.ctx(&bn))?;
            return Ok(ExpertSet::Stacked { m, rows: out });
        }
        let view = self.tensor(base).with_context(|| {
            format!("expert weights are neither an MXFP4 pair ('{bn}' + '{sn}') nor a plain tensor")
        })?;
        let ctx = || self.ctx(base);
        let bytes = bytes_of(&view).with_context(ctx)?;
        let normal = view.shape == [e_n, out, inp];
        let transposed = view.shape == [e_n, inp, out];
        // When out == in both fit; the layout decides: HF stores (E, in, out), original (E, out, in).
        if transposed && (!normal || self.layout == NameLayout::Hf) {
            let slab = bytes.len() / e_n.max(1);
            let mats = (0..e_n)
                .map(|e| {
                    WeightMatrix::transposed(view.dtype, &bytes[e * slab..(e + 1) * slab], inp, out)
                        .with_context(ctx)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ExpertSet::Each(mats))
        } else if normal {
            let m = WeightMatrix::new(view.dtype, bytes, e_n * out, inp).with_context(ctx)?;
            Ok(ExpertSet::Stacked { m, rows: out })
        } else {
            bail!(
                "{}: expected shape [{e_n}, {out}, {inp}] or [{e_n}, {inp}, {out}], found {:?}",
                ctx(),
                view.shape
            )
        }
    }
}

/// Per-expert matrices: one stacked `(E·rows, cols)` matrix, or one matrix per expert.
enum ExpertSet<'a> {
    Stacked { m: WeightMatrix<'a>, rows: usize },
    Each(Vec<WeightMatrix<'a>>),
}

impl<'a> ExpertSet<'a> {
    fn get(&self, e: usize, first: usize, step: usize, n: usize) -> Result<WeightMatrix<'a>> {
        Ok(match self {
            ExpertSet::Stacked { m, rows } => m.select_rows(e * rows + first, step, n)?,
            ExpertSet::Each(v) => v
                .get(e)
                .ok_or_else(|| anyhow!("expert {e} out of range"))?
                .select_rows(first, step, n)?,
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
        let layout = NameLayout::detect(src)?;
        let g = Gather { src, cfg, layout };
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
        let glob = |gguf: &str| {
            names::GLOBAL
                .iter()
                .find(|r| r.gguf == gguf)
                .ok_or_else(|| anyhow!("name table has no row '{gguf}'"))
        };
        let per = |gguf: &str| {
            names::PER_LAYER
                .iter()
                .find(|r| r.gguf == gguf)
                .ok_or_else(|| anyhow!("name table has no row '{gguf}'"))
        };
        let embed = g.matrix(glob("token_embd.weight")?, None, v, h)?;
        let output_norm = g.vector(glob("output_norm.weight")?, None, h)?;
        let output = g.matrix(glob("output.weight")?, None, v, h)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for (bid, &kind) in cfg.layer_types.iter().enumerate() {
            let b = Some(bid);
            layers.push(LayerWeights {
                kind,
                attn_norm: g.vector(per("blk.{bid}.attn_norm.weight")?, b, h)?,
                q: g.matrix(per("blk.{bid}.attn_q.weight")?, b, nh * hd, h)?,
                q_bias: g.vector(per("blk.{bid}.attn_q.bias")?, b, nh * hd)?,
                k: g.matrix(per("blk.{bid}.attn_k.weight")?, b, nkv * hd, h)?,
                k_bias: g.vector(per("blk.{bid}.attn_k.bias")?, b, nkv * hd)?,
                v: g.matrix(per("blk.{bid}.attn_v.weight")?, b, nkv * hd, h)?,
                v_bias: g.vector(per("blk.{bid}.attn_v.bias")?, b, nkv * hd)?,
                o: g.matrix(per("blk.{bid}.attn_output.weight")?, b, h, nh * hd)?,
                o_bias: g.vector(per("blk.{bid}.attn_output.bias")?, b, h)?,
                sinks: g.vector(per("blk.{bid}.attn_sinks.weight")?, b, nh)?,
                post_attn_norm: g.vector(per("blk.{bid}.post_attention_norm.weight")?, b, h)?,
                router: g.matrix(per("blk.{bid}.ffn_gate_inp.weight")?, b, e_n, h)?,
                router_bias: g.vector(per("blk.{bid}.ffn_gate_inp.bias")?, b, e_n)?,
                experts: g.experts(bid)?,
                gate_bias: g.vector(per("blk.{bid}.ffn_gate_exps.bias")?, b, e_n * i)?,
                up_bias: g.vector(per("blk.{bid}.ffn_up_exps.bias")?, b, e_n * i)?,
                down_bias: g.vector(per("blk.{bid}.ffn_down_exps.bias")?, b, e_n * h)?,
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

impl TensorSource for crate::checkpoint::Checkpoint {
    fn config(&self) -> &GptOssConfig {
        &self.config
    }

    fn get(&self, name: &str) -> Option<TensorView<'_>> {
        crate::checkpoint::Checkpoint::get(self, name)
    }

    fn origin(&self) -> String {
        self.path.display().to_string()
    }
}
