//! The conversion plan: for each GGUF tensor, where its bytes come from, how they are transformed and what type
//! they are stored in — decided exactly as llama.cpp's converter decides (conversion/base.py
//! `ModelBase.prepare_tensors`, conversion/gpt_oss.py `GptOssModel`):
//!
//! - MXFP4 experts (HF `*_blocks`/`*_scales`, original `.blocks`/`.scales`) are repacked losslessly into ggml
//!   MXFP4 blocks, whatever `--outtype` says; gate = even rows, up = odd rows of the fused gate/up matrix.
//! - Dense (BF16 fine-tune) experts are (E, in, out): transposed to (E, out, in), then split even/odd like the
//!   MXFP4 ones, and stored in the out type.
//! - 1-D tensors, `*_norm.weight`, the router (`ffn_gate_inp.weight`) and every non-`.weight` tensor (biases)
//!   are F32; other matrices take the out type; Q8_0 falls back to F16 for rows that are not whole blocks
//!   (gguf-py raises `QuantError` and the converter falls back).
//! - Original-layout fused qkv is split into row ranges q, k, v.
//!
//! [`PlannedTensor::materialize`] produces a tensor's bytes; rows are independent, so the result is the same
//! whatever the thread count.

use anyhow::{anyhow, bail, Context, Result};
use ossify_formats::quant::{self, repack_hf_to_ggml};
use ossify_formats::{DType, TensorView};
use rayon::prelude::*;

use crate::checkpoint::{mxfp4_names, Checkpoint, ExpertStorage, Layout};
use crate::gpt_oss::names::{self, Part};

/// `--outtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    /// As the source's matrices are stored (BF16 for published gpt-oss).
    Auto,
    F32,
    F16,
    Bf16,
    Q8_0,
}

impl OutType {
    pub const NAMES: &'static [&'static str] = &["auto", "f32", "f16", "bf16", "q8_0"];

    pub fn from_name(s: &str) -> Option<OutType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "auto" => OutType::Auto,
            "f32" => OutType::F32,
            "f16" => OutType::F16,
            "bf16" => OutType::Bf16,
            "q8_0" => OutType::Q8_0,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            OutType::Auto => "auto",
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::Bf16 => "bf16",
            OutType::Q8_0 => "q8_0",
        }
    }

    fn dtype(self) -> Option<DType> {
        match self {
            OutType::Auto => None,
            OutType::F32 => Some(DType::F32),
            OutType::F16 => Some(DType::F16),
            OutType::Bf16 => Some(DType::BF16),
            OutType::Q8_0 => Some(DType::Q8_0),
        }
    }

    /// `general.file_type` (gguf-py `LlamaFileType`): ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_BF16 32,
    /// and MOSTLY_MXFP4_MOE 38 when MXFP4 experts sit beside 16/32-bit weights (base.py `prepare_metadata`).
    fn file_type(self, mxfp4_experts: bool) -> u32 {
        match self {
            OutType::Q8_0 => 7,
            _ if mxfp4_experts => 38,
            OutType::F16 => 1,
            OutType::Bf16 => 32,
            OutType::F32 | OutType::Auto => 0,
        }
    }
}

/// Which rows along dimension 1 (the gate/up interleave) a tensor takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rows {
    All,
    Even,
    Odd,
}

impl Rows {
    fn of(part: Part) -> Rows {
        match part {
            Part::Gate => Rows::Even,
            Part::Up => Rows::Odd,
            _ => Rows::All,
        }
    }
    /// (step, offset) of source row for output row r: r * step + offset.
    fn step(self) -> (usize, usize) {
        match self {
            Rows::All => (1, 0),
            Rows::Even => (2, 0),
            Rows::Odd => (2, 1),
        }
    }
}

/// Where a GGUF tensor's values come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A float tensor, whole or with rows along dimension 1 selected (gate/up and their biases).
    Float { name: String, rows: Rows },
    /// Rows `[start, end)` of a float tensor's outermost dimension (original layout's fused qkv).
    RowRange {
        name: String,
        start: usize,
        end: usize,
    },
    /// Dense experts stored (E, in, out): read transposed to (E, out, in), then `rows` of out.
    DenseExperts { name: String, rows: Rows },
    /// MXFP4 blocks + scales, (E, out, in/32, 16) and (E, out, in/32): `rows` of out, repacked.
    Mxfp4 {
        blocks: String,
        scales: String,
        rows: Rows,
    },
}

impl Source {
    /// The checkpoint tensors this reads.
    pub fn inputs(&self) -> Vec<&str> {
        match self {
            Source::Float { name, .. }
            | Source::RowRange { name, .. }
            | Source::DenseExperts { name, .. } => vec![name],
            Source::Mxfp4 { blocks, scales, .. } => vec![blocks, scales],
        }
    }

    /// One line for humans: how the tensor is made.
    pub fn describe(&self) -> String {
        let rows = |r: &Rows| match r {
            Rows::All => "",
            Rows::Even => ", even rows",
            Rows::Odd => ", odd rows",
        };
        match self {
            Source::Float { name, rows: r } => format!("{name}{}", rows(r)),
            Source::RowRange { name, start, end } => format!("{name} rows {start}..{end}"),
            Source::DenseExperts { name, rows: r } => format!("{name} transposed{}", rows(r)),
            Source::Mxfp4 {
                blocks, rows: r, ..
            } => format!("{blocks} repacked{}", rows(r)),
        }
    }
}

/// One output tensor.
#[derive(Clone, Debug)]
pub struct PlannedTensor {
    /// GGUF name.
    pub name: String,
    /// Row-major logical shape, outermost first.
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub source: Source,
}

impl PlannedTensor {
    pub fn nbytes(&self) -> usize {
        self.dtype.nbytes(self.shape.iter().product()).unwrap_or(0)
    }
}

/// The whole conversion.
#[derive(Clone, Debug)]
pub struct Plan {
    /// In llama.cpp's order (globals, then each layer in name-table order).
    pub tensors: Vec<PlannedTensor>,
    /// The out type after resolving `auto`.
    pub outtype: OutType,
    /// `general.file_type`.
    pub file_type: u32,
}

/// The type llama.cpp's converter stores a (non-MXFP4) tensor in (base.py `prepare_tensors`).
pub fn target_dtype(gguf_name: &str, shape: &[usize], outtype: DType) -> DType {
    let n_dims = shape.len();
    if n_dims <= 1
        || gguf_name.ends_with("_norm.weight")
        || is_router(gguf_name)
        || !gguf_name.ends_with(".weight")
    {
        return DType::F32;
    }
    if outtype.is_quantized() && shape.last().is_some_and(|&n| n % outtype.block_size() != 0) {
        // gguf.quants raises QuantError; the converter falls back to F16.
        return DType::F16;
    }
    outtype
}

/// `blk.N.ffn_gate_inp.weight` (MODEL_TENSOR.FFN_GATE_INP, always F32 in llama.cpp's converter).
fn is_router(name: &str) -> bool {
    name.starts_with("blk.") && name.ends_with(".ffn_gate_inp.weight")
}

impl Plan {
    /// Plans converting an HF or original checkpoint.
    pub fn new(ckpt: &Checkpoint, outtype: OutType) -> Result<Plan> {
        if ckpt.layout == Layout::Gguf {
            bail!(
                "{}: already a GGUF file; convert reads HF or original checkpoints (use quantize to re-type a GGUF)",
                ckpt.path.display()
            );
        }
        let c = &ckpt.config;
        let outtype = match outtype {
            OutType::Auto => auto_outtype(ckpt),
            o => o,
        };
        let out_dtype = outtype.dtype().unwrap_or(DType::F32);
        let mut tensors = Vec::new();
        for (bid, row) in names::all_tensors(c.num_hidden_layers) {
            let name = bid.map_or(row.gguf.to_string(), |b| names::layer_name(row.gguf, b));
            let shape = crate::checkpoint::gguf_shape(row.gguf, c)
                .ok_or_else(|| anyhow!("no shape rule for GGUF tensor '{name}'"))?;
            let (template, part) = match ckpt.layout {
                Layout::Original => (row.original, row.original_part),
                _ => (row.hf, row.hf_part),
            };
            let src = bid.map_or(template.to_string(), |b| names::layer_name(template, b));
            let (source, dtype) = if row.expert_matrix {
                match ckpt.experts {
                    ExpertStorage::Mxfp4 => {
                        let (blocks, scales) = mxfp4_names(&src, ckpt.layout);
                        (
                            Source::Mxfp4 {
                                blocks,
                                scales,
                                rows: Rows::of(part),
                            },
                            DType::Mxfp4,
                        )
                    }
                    ExpertStorage::Dense(_) => (
                        Source::DenseExperts {
                            name: src,
                            rows: Rows::of(part),
                        },
                        target_dtype(&name, &shape, out_dtype),
                    ),
                    ExpertStorage::Gguf => bail!("GGUF input cannot be planned"),
                }
            } else {
                let source = match part {
                    Part::Whole | Part::Gate | Part::Up => Source::Float {
                        name: src,
                        rows: Rows::of(part),
                    },
                    Part::Q | Part::K | Part::V => {
                        let q = c.num_attention_heads * c.head_dim;
                        let kv = c.num_key_value_heads * c.head_dim;
                        let (start, end) = match part {
                            Part::Q => (0, q),
                            Part::K => (q, q + kv),
                            _ => (q + kv, q + 2 * kv),
                        };
                        Source::RowRange {
                            name: src,
                            start,
                            end,
                        }
                    }
                };
                (source, target_dtype(&name, &shape, out_dtype))
            };
            tensors.push(PlannedTensor {
                name,
                shape,
                dtype,
                source,
            });
        }
        Ok(Plan {
            tensors,
            outtype,
            file_type: outtype.file_type(ckpt.experts == ExpertStorage::Mxfp4),
        })
    }
}

/// `auto`: the type of the source's first float matrix (llama.cpp's GUESSED heuristic looks at the first tensor
/// with 2+ dimensions that is BF16 or F16). An all-F32 source stays F32 (llama.cpp would pick F16; "as the
/// source" is what ossify promises).
fn auto_outtype(ckpt: &Checkpoint) -> OutType {
    let mut saw_f32 = false;
    for name in ckpt.tensor_names() {
        let Some(t) = ckpt.get(name) else { continue };
        if t.shape.len() < 2 {
            continue;
        }
        match t.dtype {
            DType::BF16 => return OutType::Bf16,
            DType::F16 => return OutType::F16,
            DType::F32 => saw_f32 = true,
            _ => {}
        }
    }
    if saw_f32 {
        OutType::F32
    } else {
        OutType::F16
    }
}

/// Reads element `i` of a scalar float tensor as f32 (exact for F32/F16/BF16).
#[inline]
fn read_f32(t: &TensorView<'_>, i: usize) -> f32 {
    match t.dtype {
        DType::F32 => {
            let b = &t.bytes[4 * i..4 * i + 4];
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }
        DType::F16 => quant::fp16_to_fp32(u16::from_le_bytes([t.bytes[2 * i], t.bytes[2 * i + 1]])),
        DType::BF16 => {
            quant::bf16_to_fp32(u16::from_le_bytes([t.bytes[2 * i], t.bytes[2 * i + 1]]))
        }
        _ => f32::NAN,
    }
}

impl PlannedTensor {
    /// Produces this tensor's bytes in its GGUF type. The checkpoint was validated when opened (every source
    /// tensor present with the shape and dtype the config implies); this re-checks what it indexes.
    pub fn materialize(&self, ckpt: &Checkpoint) -> Result<Vec<u8>> {
        self.materialize_inner(ckpt)
            .with_context(|| format!("tensor '{}' (from {})", self.name, self.source.describe()))
    }

    fn materialize_inner(&self, ckpt: &Checkpoint) -> Result<Vec<u8>> {
        let row_len = self.shape.last().copied().unwrap_or(1);
        let n_rows: usize = self.shape.iter().rev().skip(1).product();
        let row_bytes = self
            .dtype
            .nbytes(row_len)
            .ok_or_else(|| anyhow!("row of {row_len} is not whole {} blocks", self.dtype))?;
        let mut out = vec![0u8; n_rows * row_bytes];
        if row_bytes == 0 {
            return Ok(out);
        }
        match &self.source {
            Source::Mxfp4 {
                blocks,
                scales,
                rows,
            } => {
                let b = ckpt.tensor(blocks)?;
                let s = ckpt.tensor(scales)?;
                let (e, r_src) = match b.shape[..] {
                    [e, r, _, 16] => (e, r),
                    _ => bail!(
                        "'{blocks}' has shape {:?}, expected (E, rows, blocks, 16)",
                        b.shape
                    ),
                };
                let nb = row_len / 32;
                let r_out = *self.shape.get(1).unwrap_or(&0);
                if r_out == 0 || (r_out - 1) * rows.step().0 + rows.step().1 >= r_src {
                    bail!("'{blocks}' has {r_src} rows, too few for {r_out} output rows");
                }
                check_len(&b, e * r_src * nb * 16)?;
                check_len(&s, e * r_src * nb)?;
                let (step, off) = rows.step();
                out.par_chunks_mut(row_bytes)
                    .enumerate()
                    .try_for_each(|(i, dst)| {
                        let (ei, r) = (i / r_out, i % r_out);
                        let src_row = ei * r_src + r * step + off;
                        repack_hf_to_ggml(
                            &b.bytes[src_row * nb * 16..(src_row + 1) * nb * 16],
                            &s.bytes[src_row * nb..(src_row + 1) * nb],
                            dst,
                        )
                    })?;
            }
            Source::DenseExperts { name, rows } => {
                let t = float_source(ckpt, name)?;
                self.transpose_experts(&t, *rows, row_len, row_bytes, &mut out)?;
            }
            source => {
                let (name, map) = self.row_map(source, ckpt)?;
                let t = float_source(ckpt, name)?;
                let n_src = t.n_elements();
                let dtype = self.dtype;
                out.par_chunks_mut(row_bytes).enumerate().try_for_each(
                    |(r, dst)| -> Result<()> {
                        let mut row = vec![0f32; row_len];
                        match &map {
                            RowMap::Contiguous(start) => {
                                let s = start(r);
                                if s + row_len > n_src {
                                    bail!("row {r} reads past the source's {n_src} elements");
                                }
                                let es = t.dtype.type_size();
                                quant::dequantize_row(
                                    t.dtype,
                                    &t.bytes[s * es..(s + row_len) * es],
                                    &mut row,
                                )?;
                            }
                            RowMap::Gather(index) => {
                                for (c, x) in row.iter_mut().enumerate() {
                                    let i = index(r, c);
                                    if i >= n_src {
                                        bail!("index {i} outside the source's {n_src} elements");
                                    }
                                    *x = read_f32(&t, i);
                                }
                            }
                        }
                        quant::quantize_row(dtype, &row, dst).map_err(anyhow::Error::new)
                    },
                )?;
            }
        }
        Ok(out)
    }

    /// For float sources (not dense experts): the source tensor and where each output row's values are.
    fn row_map<'s>(&self, source: &'s Source, ckpt: &Checkpoint) -> Result<(&'s str, RowMap)> {
        let row_len = self.shape.last().copied().unwrap_or(1);
        Ok(match source {
            Source::Float { name, rows } => {
                let (step, off) = rows.step();
                if step == 1 {
                    (name, RowMap::Contiguous(Box::new(move |r| r * row_len)))
                } else if self.shape.len() == 2 && ckpt.tensor(name)?.shape.len() == 2 {
                    // A gate/up bias (E, 2I) -> (E, I): every other entry of the last dimension.
                    (
                        name,
                        RowMap::Gather(Box::new(move |r, c| r * 2 * row_len + c * step + off)),
                    )
                } else {
                    // (E, 2X, C) -> (E, X, C): whole rows of dimension 1.
                    let x = *self.shape.get(1).unwrap_or(&1);
                    (
                        name,
                        RowMap::Contiguous(Box::new(move |r| {
                            let (e, j) = (r / x, r % x);
                            ((e * 2 * x) + j * step + off) * row_len
                        })),
                    )
                }
            }
            Source::RowRange { name, start, .. } => {
                let start = *start;
                if self.shape.len() == 1 {
                    // A bias: one row, elements start..end.
                    (name, RowMap::Contiguous(Box::new(move |_| start)))
                } else {
                    (
                        name,
                        RowMap::Contiguous(Box::new(move |r| (start + r) * row_len)),
                    )
                }
            }
            Source::DenseExperts { .. } | Source::Mxfp4 { .. } => {
                bail!("expert sources have their own paths")
            }
        })
    }

    /// Dense experts (E, in, out_total) -> (E, out, in), `rows` of out. Works in tiles of output rows so the
    /// source is read along its rows (a plain gather would touch one cache line per element).
    fn transpose_experts(
        &self,
        t: &TensorView<'_>,
        rows: Rows,
        row_len: usize,
        row_bytes: usize,
        out: &mut [u8],
    ) -> Result<()> {
        const TILE: usize = 32;
        let (e_n, c_n, out_total) = match t.shape[..] {
            [e, c, o] => (e, c, o),
            _ => bail!("expected a 3-D expert tensor, found {:?}", t.shape),
        };
        let r_out = *self.shape.get(1).unwrap_or(&0);
        let (step, off) = rows.step();
        if c_n != row_len
            || (r_out > 0 && (r_out - 1) * step + off >= out_total)
            || e_n != self.shape[0]
        {
            bail!(
                "source shape {:?} does not fit output shape {:?}",
                t.shape,
                self.shape
            );
        }
        let dtype = self.dtype;
        out.par_chunks_mut(row_bytes * r_out)
            .enumerate()
            .try_for_each(|(e, expert)| {
                expert
                    .par_chunks_mut(row_bytes * TILE)
                    .enumerate()
                    .try_for_each(|(blk, dst)| -> Result<()> {
                        let o0 = blk * TILE;
                        let n = dst.len() / row_bytes;
                        let mut tile = vec![0f32; n * row_len];
                        for c in 0..c_n {
                            let base = (e * c_n + c) * out_total;
                            for k in 0..n {
                                tile[k * row_len + c] = read_f32(t, base + (o0 + k) * step + off);
                            }
                        }
                        for (k, d) in dst.chunks_mut(row_bytes).enumerate() {
                            quant::quantize_row(dtype, &tile[k * row_len..(k + 1) * row_len], d)?;
                        }
                        Ok(())
                    })
            })
    }
}

/// A float source tensor, checked to hold exactly its shape.
fn float_source<'c>(ckpt: &'c Checkpoint, name: &str) -> Result<TensorView<'c>> {
    let t = ckpt.tensor(name)?;
    if !matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16) {
        bail!("source '{name}' has dtype {}, not a float type", t.dtype);
    }
    t.check().map_err(|e| anyhow!(e))?;
    Ok(t)
}

/// Where an output row's values are in the source.
enum RowMap {
    /// A run of row-length elements starting at this element index.
    Contiguous(Box<dyn Fn(usize) -> usize + Sync>),
    /// Element by element.
    Gather(IndexFn),
}

/// (output row, column) -> source element index.
type IndexFn = Box<dyn Fn(usize, usize) -> usize + Sync>;

fn check_len(t: &TensorView<'_>, want: usize) -> Result<()> {
    if t.bytes.len() != want {
        bail!(
            "tensor '{}' holds {} bytes, expected {want}",
            t.name,
            t.bytes.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_llama_cpp_rules() {
        let bf = DType::BF16;
        assert_eq!(
            target_dtype("blk.0.attn_norm.weight", &[96], bf),
            DType::F32
        );
        assert_eq!(
            target_dtype("blk.0.attn_sinks.weight", &[4], bf),
            DType::F32
        );
        assert_eq!(
            target_dtype("blk.0.ffn_gate_inp.weight", &[4, 96], bf),
            DType::F32
        );
        assert_eq!(target_dtype("blk.0.attn_q.bias", &[64], bf), DType::F32);
        assert_eq!(
            target_dtype("blk.0.ffn_gate_exps.bias", &[4, 64], bf),
            DType::F32
        );
        assert_eq!(
            target_dtype("blk.0.attn_q.weight", &[64, 96], bf),
            DType::BF16
        );
        assert_eq!(
            target_dtype("output.weight", &[544, 96], DType::Q8_0),
            DType::Q8_0
        );
        // 96 = 3 blocks; 40 is not whole blocks -> F16 fallback.
        assert_eq!(
            target_dtype("blk.0.attn_q.weight", &[64, 40], DType::Q8_0),
            DType::F16
        );
    }
}
