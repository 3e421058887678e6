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
use ossify_formats::gguf::constants::LlamaFileType;
use ossify_formats::gguf::MetaValue;
use ossify_formats::quant::{self, repack_hf_to_ggml};
use ossify_formats::quant::{QK_MXFP4, QS_MXFP4};
use ossify_formats::{DType, TensorView};
use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, ExpertStorage, Layout};
pub use crate::gpt_oss::names::Source;
use crate::gpt_oss::{metadata, names};
use crate::tokenizer::GgufVocab;

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

    /// `general.file_type`, with MOSTLY_MXFP4_MOE when MXFP4 experts sit beside 16/32-bit weights (base.py
    /// `prepare_metadata`).
    fn file_type(self, mxfp4_experts: bool) -> LlamaFileType {
        match self {
            OutType::Q8_0 => LlamaFileType::MostlyQ8_0,
            _ if mxfp4_experts => LlamaFileType::MostlyMxfp4Moe,
            OutType::F16 => LlamaFileType::MostlyF16,
            OutType::Bf16 => LlamaFileType::MostlyBF16,
            OutType::F32 | OutType::Auto => LlamaFileType::AllF32,
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

/// The type llama.cpp's converter stores a (non-MXFP4) tensor in (base.py `prepare_tensors`; the router,
/// MODEL_TENSOR.FFN_GATE_INP, is always F32).
pub fn target_dtype(gguf_name: &str, shape: &[usize], outtype: DType) -> DType {
    let n_dims = shape.len();
    if n_dims <= 1
        || gguf_name.ends_with("_norm.weight")
        || names::FFN_GATE_INP.is(gguf_name)
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
        if ckpt.experts == ExpertStorage::Gguf {
            bail!("GGUF input cannot be planned");
        }
        let tensors = names::resolve_all(ckpt.layout, ckpt.experts, c)
            .into_iter()
            .map(|r| {
                let dtype = match r.source {
                    Source::Mxfp4 { .. } => DType::Mxfp4,
                    _ => target_dtype(&r.gguf, &r.shape, out_dtype),
                };
                PlannedTensor {
                    name: r.gguf,
                    shape: r.shape,
                    dtype,
                    source: r.source,
                }
            })
            .collect();
        Ok(Plan {
            tensors,
            outtype,
            file_type: outtype.file_type(ckpt.experts == ExpertStorage::Mxfp4).id(),
        })
    }
}

impl Plan {
    /// Every metadata key/value of the GGUF, in the order llama.cpp's converter writes them: the model's
    /// ([`metadata::to_gguf`]), then the vocabulary's.
    pub fn metadata(&self, ckpt: &Checkpoint) -> Result<Vec<(String, MetaValue)>> {
        let mut kv = metadata::to_gguf(&ckpt.config, &model_name(ckpt), self.file_type)?;
        kv.extend(vocab_metadata(ckpt)?);
        Ok(kv)
    }
}

/// `general.name`: the model folder's name (for `original/`, its parent's), as gguf-py falls back to.
fn model_name(ckpt: &Checkpoint) -> String {
    let dir = match ckpt.layout {
        Layout::Original => ckpt.path.parent().unwrap_or(&ckpt.path),
        _ => &ckpt.path,
    };
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gpt-oss".into())
}

/// The tokenizer key/values, as llama.cpp's `_set_vocab_gpt2` + gguf-py's `SpecialVocab` write them
/// (`GgufVocab::to_metadata`).
fn vocab_metadata(ckpt: &Checkpoint) -> Result<Vec<(String, MetaValue)>> {
    let Some(dir) = &ckpt.tokenizer_dir else {
        bail!(
            "{}: no tokenizer.json here{}; a GGUF needs the vocabulary",
            ckpt.path.display(),
            if ckpt.layout == Layout::Original {
                " or in the parent folder"
            } else {
                ""
            }
        );
    };
    let v = GgufVocab::from_dir(dir, ckpt.config.vocab_size)
        .with_context(|| format!("{}: reading the tokenizer", dir.display()))?;
    Ok(v.to_metadata())
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
    /// Rows of the output: every dimension but the last.
    pub fn n_rows(&self) -> usize {
        self.shape.iter().rev().skip(1).product()
    }

    /// Bytes of one output row (the last dimension).
    pub fn row_bytes(&self) -> usize {
        self.dtype
            .nbytes(self.shape.last().copied().unwrap_or(1))
            .unwrap_or(0)
    }

    /// How many output rows to produce at a time so a piece holds about `target_bytes` (at least one row; for
    /// dense experts whole experts, since an expert is transposed as a unit).
    pub fn chunk_rows(&self, target_bytes: usize) -> usize {
        let rows = (target_bytes / self.row_bytes().max(1)).max(1);
        match self.source {
            Source::DenseExperts { .. } => {
                let per_expert = self.shape.get(1).copied().unwrap_or(1).max(1);
                rows.div_ceil(per_expert) * per_expert
            }
            _ => rows,
        }
    }

    /// The source bytes this tensor's bytes equal, when the conversion changes nothing (same float type, rows
    /// taken in order: BF16 embeddings, attention and `lm_head` into a BF16 GGUF). The one exception is NaN,
    /// which the encoders canonicalise as gguf-py does (`has_nan` tells when a piece needs the full path).
    pub fn unchanged_source<'c>(&self, ckpt: &'c Checkpoint) -> Option<&'c [u8]> {
        let (name, first) = match &self.source {
            Source::Whole { name } => (name, 0),
            Source::Rows { name, start, .. } => {
                let row_len = if self.shape.len() == 1 {
                    1
                } else {
                    self.shape.last().copied()?
                };
                (name, start.checked_mul(row_len)?)
            }
            _ => return None,
        };
        let t = ckpt.get(name)?;
        if t.dtype != self.dtype || !matches!(t.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return None;
        }
        let start = first.checked_mul(t.dtype.type_size())?;
        t.bytes.get(start..start.checked_add(self.nbytes())?)
    }

    /// Produces this tensor's bytes in its GGUF type. The checkpoint was validated when opened (every source
    /// tensor present with the shape and dtype the config implies); this re-checks what it indexes.
    pub fn materialize(&self, ckpt: &Checkpoint) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.nbytes()];
        self.materialize_rows(ckpt, 0..self.n_rows(), &mut out)?;
        Ok(out)
    }

    /// Produces output rows `rows` into `out` (exactly their bytes) and returns the source slices it read, for
    /// the caller to release ([`Checkpoint::release`]) once done. Dense-expert pieces must be whole experts
    /// ([`PlannedTensor::chunk_rows`]).
    pub fn materialize_rows<'c>(
        &self,
        ckpt: &'c Checkpoint,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
    ) -> Result<Vec<&'c [u8]>> {
        self.materialize_inner(ckpt, rows, out)
            .with_context(|| format!("tensor '{}' (from {})", self.name, self.source.describe()))
    }

    fn materialize_inner<'c>(
        &self,
        ckpt: &'c Checkpoint,
        rows: std::ops::Range<usize>,
        out: &mut [u8],
    ) -> Result<Vec<&'c [u8]>> {
        let row_len = self.shape.last().copied().unwrap_or(1);
        let n_rows = self.n_rows();
        let row_bytes = self
            .dtype
            .nbytes(row_len)
            .ok_or_else(|| anyhow!("row of {row_len} is not whole {} blocks", self.dtype))?;
        if rows.start >= rows.end || rows.end > n_rows || out.len() != rows.len() * row_bytes {
            bail!(
                "rows {rows:?} of {n_rows} do not fit a {}-byte piece",
                out.len()
            );
        }
        if row_bytes == 0 {
            return Ok(Vec::new());
        }
        let r0 = rows.start;
        match &self.source {
            Source::Mxfp4 {
                blocks,
                scales,
                parity,
            } => {
                let b = ckpt.tensor(blocks)?;
                let s = ckpt.tensor(scales)?;
                let (e, r_src) = match b.shape[..] {
                    [e, r, _, QS_MXFP4] => (e, r),
                    _ => bail!(
                        "'{blocks}' has shape {:?}, expected (E, rows, blocks, 16)",
                        b.shape
                    ),
                };
                let nb = row_len / QK_MXFP4;
                let r_out = *self.shape.get(1).unwrap_or(&0);
                let (step, off) = Source::row_step(*parity);
                if r_out == 0 || (r_out - 1) * step + off >= r_src {
                    bail!("'{blocks}' has {r_src} rows, too few for {r_out} output rows");
                }
                check_len(&b, e * r_src * nb * QS_MXFP4)?;
                check_len(&s, e * r_src * nb)?;
                let src_row = |i: usize| (i / r_out) * r_src + (i % r_out) * step + off;
                out.par_chunks_mut(row_bytes)
                    .enumerate()
                    .try_for_each(|(k, dst)| {
                        let src = src_row(r0 + k);
                        repack_hf_to_ggml(
                            &b.bytes[src * nb * QS_MXFP4..(src + 1) * nb * QS_MXFP4],
                            &s.bytes[src * nb..(src + 1) * nb],
                            dst,
                        )
                    })?;
                let (first, last) = (src_row(rows.start), src_row(rows.end - 1) + 1);
                Ok(vec![
                    &b.bytes[first * nb * QS_MXFP4..last * nb * QS_MXFP4],
                    &s.bytes[first * nb..last * nb],
                ])
            }
            Source::DenseExperts { name, parity } => {
                let t = float_source(ckpt, name)?;
                let r_out = self.shape.get(1).copied().unwrap_or(0).max(1);
                if r0 % r_out != 0 || rows.end % r_out != 0 {
                    bail!("rows {rows:?} are not whole experts of {r_out} rows");
                }
                let (e0, e1) = (r0 / r_out, rows.end / r_out);
                self.transpose_experts(&t, *parity, e0, row_len, row_bytes, out)?;
                let per_expert = t.bytes.len() / t.shape.first().copied().unwrap_or(1).max(1);
                Ok(vec![&t.bytes[e0 * per_expert..e1 * per_expert]])
            }
            source => {
                let (name, map) = self.row_map(source, ckpt)?;
                let t = float_source(ckpt, name)?;
                let n_src = t.n_elements();
                let dtype = self.dtype;
                let es = t.dtype.type_size();
                out.par_chunks_mut(row_bytes).enumerate().try_for_each(
                    |(k, dst)| -> Result<()> {
                        let r = r0 + k;
                        let mut row = vec![0f32; row_len];
                        match &map {
                            RowMap::Contiguous(start) => {
                                let s = start(r);
                                if s + row_len > n_src {
                                    bail!("row {r} reads past the source's {n_src} elements");
                                }
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
                        // A NaN / Inf takes its whole Q8_0 block with it (its scale): refused, as quantize does.
                        if dtype == DType::Q8_0 {
                            if let Some(i) = row.iter().position(|v| !v.is_finite()) {
                                bail!(
                                    "row {r}: value {} at column {i} is not finite; quantizing it to Q8_0 breaks \
                                     its whole block (--outtype bf16 keeps it)",
                                    row[i]
                                );
                            }
                        }
                        quant::quantize_row(dtype, &row, dst).map_err(anyhow::Error::new)
                    },
                )?;
                Ok(match &map {
                    // Row starts grow with the row; every row was checked to fit above.
                    RowMap::Contiguous(start) => t
                        .bytes
                        .get(start(rows.start) * es..(start(rows.end - 1) + row_len) * es)
                        .into_iter()
                        .collect(),
                    RowMap::Gather(_) => vec![t.bytes],
                })
            }
        }
    }

    /// For float sources (not dense experts): the source tensor and where each output row's values are.
    fn row_map<'s>(&self, source: &'s Source, ckpt: &Checkpoint) -> Result<(&'s str, RowMap)> {
        let row_len = self.shape.last().copied().unwrap_or(1);
        Ok(match source {
            Source::Whole { name } => (name, RowMap::Contiguous(Box::new(move |r| r * row_len))),
            Source::Interleaved { name, parity } => {
                let (step, off) = Source::row_step(Some(*parity));
                if self.shape.len() == 2 && ckpt.tensor(name)?.shape.len() == 2 {
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
            Source::Rows { name, start, .. } => {
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
        parity: Option<usize>,
        first_expert: usize,
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
        let (step, off) = Source::row_step(parity);
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
        if first_expert + out.len() / (row_bytes * r_out.max(1)) > e_n {
            bail!("experts from {first_expert} run past the source's {e_n}");
        }
        let dtype = self.dtype;
        out.par_chunks_mut(row_bytes * r_out)
            .enumerate()
            .try_for_each(|(j, expert)| {
                let e = first_expert + j;
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
