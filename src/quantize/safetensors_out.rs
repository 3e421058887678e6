//! `--format safetensors`: OpenAI's Hugging Face MXFP4 layout, as openai/gpt-oss-20b ships it.
//!
//! - Expert matrices as `*_blocks` (U8, (E, out, in/32, 16)) + `*_scales` (U8, (E, out, in/32)), rows in the
//!   checkpoint's order, so gate/up rows stay interleaved (row 2i gate, 2i + 1 up). A BF16 fine-tune's experts
//!   are (E, in, out): each output row is a column of that, encoded with the same MXFP4 rule as the GGUF path
//!   and repacked (`repack_ggml_to_hf`), so both decode to identical values.
//! - Every other tensor BF16.
//! - config.json gains `quantization_config` {quant_method: mxfp4, modules_to_not_convert: [...]}.
//! - Shards of at most `shard_bytes` (5 GB by default, as `save_pretrained`), `model-0000i-of-0000n.safetensors`
//!   plus `model.safetensors.index.json`; a model that fits one shard is a single `model.safetensors`.
//! - Tokenizer files, generation config and chat template are copied.
//! - Written into `<dir>.partial/` and renamed to `<dir>` at the end; removed on error (`atomic::PartialDir`:
//!   an existing folder with contents is never replaced or removed, an empty one is filled).
//!
//! A GGUF input works too: its tensors are mapped back through the name table (gpt_oss::names), gate and up
//! rows re-interleaved, MXFP4 experts repacked without re-encoding (so they decode to the GGUF's exact values),
//! and config.json is written from the GGUF metadata. A GGUF holds no Hugging Face tokenizer files; the summary
//! says so. Tensors in other ggml block types (Q8_0 attention of a `mxfp4_moe` GGUF) are decoded to BF16 or
//! MXFP4 only with `--allow-requantize`, as re-quantizing is everywhere else.

use std::collections::HashSet;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ossify_formats::atomic::{preflight, Existing, Kind, PartialDir, PartialFile, PartialSet};
use ossify_formats::quant::{
    self, quantize_row_mxfp4_mse, quantize_row_mxfp4_ref, repack_ggml_to_hf,
};
use ossify_formats::quant::{BlockMxfp4, QK_MXFP4, QS_MXFP4};
use ossify_formats::safetensors::{SafetensorsWriter, INDEX_FILE, SINGLE_FILE};
use ossify_formats::sink::{assign_files, FileSet, Sink};
use ossify_formats::{DType, TensorView};
use rayon::prelude::*;
use serde_json::json;

use super::encode::Mxfp4Scale;
use super::pipeline::{QuantizeOptions, PIECE_BYTES};
use crate::checkpoint::{Checkpoint, ExpertStorage, Layout};
use crate::gpt_oss::names::{self, Source};
use crate::stream::{drive, FnJob, Job as StreamJob};

/// `save_pretrained`'s default `max_shard_size` ("5GB").
pub const DEFAULT_SHARD_BYTES: usize = 5_000_000_000;

/// Files copied next to the weights when the source has them.
const COPIED_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
];

/// `quantization_config.modules_to_not_convert` as in openai/gpt-oss-20b's config.json.
const MODULES_NOT_CONVERTED: &[&str] = &[
    "model.layers.*.self_attn",
    "model.layers.*.mlp.router",
    "model.embed_tokens",
    "lm_head",
];

/// How one output tensor (or MXFP4 pair) is made.
enum Job {
    /// BF16 copy or conversion of a float tensor.
    Bf16 { src: String },
    /// Existing MXFP4 blocks or scales, copied.
    Copy { src: String },
    /// Dense (E, in, out) experts encoded as (blocks, scales) of (E, out, in).
    Experts {
        src: String,
        /// GGUF names whose importance applies to even / odd output rows (gate / up), or to all rows (down).
        importance: (String, String),
    },
    /// GGUF expert matrices (E, out, in): one, or gate and up whose rows interleave (gate even), as HF MXFP4.
    GgufExperts { parts: Vec<String> },
    /// GGUF gate and up biases (E, n) interleaved into one (E, 2n) BF16 bias (gate even).
    InterleavedBias { gate: String, up: String },
}

/// One output tensor of a safetensors quantization: name, where it comes from, source type (where one tensor),
/// type, shape.
pub type PlannedTensor = (String, String, Option<DType>, DType, Vec<usize>);

/// What [`quantize_to_safetensors`] wrote.
#[derive(Debug)]
pub struct SafetensorsSummary {
    /// Bytes of tensor data written.
    pub bytes_out: usize,
    /// Things the user should know (for a GGUF input: the missing tokenizer files).
    pub notes: Vec<String>,
    /// Every output tensor in file order: name, where it comes from, source type (where one tensor), type,
    /// shape.
    pub tensors: Vec<PlannedTensor>,
    /// The weight files (path inside the output folder, bytes, tensors), first to last.
    pub files: Vec<(String, u64, usize)>,
}

impl Job {
    /// The source tensor(s) and what is done to them.
    fn describe(&self) -> String {
        match self {
            Job::Bf16 { src } => format!("{src} (as BF16)"),
            Job::Copy { src } => src.clone(),
            Job::Experts { src, .. } => format!("{src} (transposed, encoded MXFP4)"),
            Job::GgufExperts { parts } => match parts.as_slice() {
                [one] => format!("{one} (repacked)"),
                _ => format!("{} (rows interleaved, repacked)", parts.join(" + ")),
            },
            Job::InterleavedBias { gate, up } => format!("{gate} + {up} (interleaved, as BF16)"),
        }
    }

    /// The one source tensor, where there is one.
    fn single_source(&self) -> Option<&str> {
        match self {
            Job::Bf16 { src } | Job::Copy { src } | Job::Experts { src, .. } => Some(src),
            Job::GgufExperts { .. } | Job::InterleavedBias { .. } => None,
        }
    }
}

struct Planned {
    job: Job,
    /// (name, dtype, shape) of the one or two tensors the job writes.
    outputs: Vec<(String, DType, Vec<usize>)>,
}

impl Planned {
    fn nbytes(&self) -> usize {
        self.outputs
            .iter()
            .map(|(_, d, s)| d.nbytes(s.iter().product()).unwrap_or(0))
            .sum()
    }
}

fn plan(ckpt: &Checkpoint) -> Result<Vec<Planned>> {
    // Dense experts, from the name table: the source of which GGUF expert matrices (gate / up or down), whose
    // importance applies to the even / odd output rows (or to all rows).
    let resolved = names::resolve_all(Layout::Hf, ckpt.experts, &ckpt.config);
    let importance_of = |src: &str| -> Option<(String, String)> {
        let parts: Vec<(Option<usize>, &str)> = resolved
            .iter()
            .filter_map(|r| match &r.source {
                Source::DenseExperts { name, parity } if name == src => {
                    Some((*parity, r.gguf.as_str()))
                }
                _ => None,
            })
            .collect();
        let with = |p: usize| {
            parts
                .iter()
                .find(|(q, _)| *q == Some(p))
                .map(|(_, g)| g.to_string())
        };
        match parts[..] {
            [] => None,
            [(None, g)] => Some((g.to_string(), g.to_string())),
            _ => Some((with(0)?, with(1)?)),
        }
    };
    let mut out = Vec::new();
    for name in ckpt.tensor_names() {
        let t = ckpt.tensor(name)?;
        if let Some(importance) = importance_of(name) {
            let [e, n_in, n_out] = t.shape[..] else {
                bail!(
                    "tensor '{name}': expected (experts, in, out), found {:?}",
                    t.shape
                );
            };
            if n_in % QK_MXFP4 != 0 {
                bail!(
                    "tensor '{name}' {:?}: MXFP4 cannot hold rows of {n_in} (not a multiple of {QK_MXFP4})",
                    t.shape
                );
            }
            let (blocks, scales) = names::mxfp4_pair(name, Layout::Hf);
            out.push(Planned {
                job: Job::Experts {
                    src: name.to_string(),
                    importance,
                },
                outputs: vec![
                    (blocks, DType::U8, vec![e, n_out, n_in / QK_MXFP4, QS_MXFP4]),
                    (scales, DType::U8, vec![e, n_out, n_in / QK_MXFP4]),
                ],
            });
        } else if t.dtype == DType::U8 {
            out.push(Planned {
                job: Job::Copy {
                    src: name.to_string(),
                },
                outputs: vec![(name.to_string(), DType::U8, t.shape.clone())],
            });
        } else if matches!(t.dtype, DType::BF16 | DType::F16 | DType::F32) {
            out.push(Planned {
                job: Job::Bf16 {
                    src: name.to_string(),
                },
                outputs: vec![(name.to_string(), DType::BF16, t.shape.clone())],
            });
        } else {
            bail!(
                "tensor '{name}': {} cannot be written as BF16 or MXFP4",
                t.dtype
            );
        }
    }
    Ok(out)
}

/// Refuses a ggml block type other than MXFP4 unless re-quantizing is allowed.
fn check_requantize(name: &str, dtype: DType, opts: &QuantizeOptions) -> Result<()> {
    if dtype.is_quantized() && dtype != DType::Mxfp4 && !opts.allow_requantize {
        bail!(
            "tensor '{name}' is {dtype}; writing it as BF16/MXFP4 re-quantizes it (pass --allow-requantize to do so anyway)"
        );
    }
    Ok(())
}

/// The HF tensors of a GGUF checkpoint, from the name table; GGUF tensors the table does not know are returned
/// as the second value (left out).
fn plan_gguf(ckpt: &Checkpoint, opts: &QuantizeOptions) -> Result<(Vec<Planned>, Vec<String>)> {
    let mut out = Vec::new();
    let mut used = HashSet::new();
    let mut done = HashSet::new();
    // The name table read backwards: each HF tensor (or MXFP4 pair), from the GGUF tensors cut from it.
    let resolved = names::resolve_all(Layout::Hf, ExpertStorage::Mxfp4, &ckpt.config);
    let parity = |s: &Source| match s {
        Source::Interleaved { parity, .. } => Some(*parity),
        Source::Mxfp4 { parity, .. } | Source::DenseExperts { parity, .. } => *parity,
        _ => None,
    };
    for r in &resolved {
        let hf = r.source.inputs().concat();
        if !done.insert(hf.clone()) {
            continue;
        }
        // Every GGUF tensor cut from this HF tensor, gate (even) before up (odd).
        let mut cut: Vec<&names::Resolved> = resolved
            .iter()
            .filter(|o| o.source.inputs().concat() == hf)
            .collect();
        cut.sort_by_key(|o| parity(&o.source));
        let parts: Vec<String> = cut.iter().map(|o| o.gguf.clone()).collect();
        used.extend(parts.iter().cloned());
        let t = ckpt.tensor(&parts[0])?;
        for p in &parts {
            let u = ckpt.tensor(p)?;
            if (u.dtype, &u.shape) != (t.dtype, &t.shape) {
                bail!(
                    "tensor '{p}' is {} {:?} but '{}' is {} {:?}; they should match",
                    u.dtype,
                    u.shape,
                    parts[0],
                    t.dtype,
                    t.shape
                );
            }
            check_requantize(p, u.dtype, opts)?;
        }
        let np = parts.len();
        match &r.source {
            Source::Mxfp4 { blocks, scales, .. } => {
                let [e, rows, cols] = t.shape[..] else {
                    bail!(
                        "tensor '{}': expected (experts, out, in), found {:?}",
                        parts[0],
                        t.shape
                    );
                };
                if cols % QK_MXFP4 != 0 {
                    bail!(
                        "tensor '{}' {:?}: MXFP4 cannot hold rows of {cols} (not a multiple of {QK_MXFP4})",
                        parts[0],
                        t.shape
                    );
                }
                out.push(Planned {
                    job: Job::GgufExperts { parts },
                    outputs: vec![
                        (
                            blocks.clone(),
                            DType::U8,
                            vec![e, rows * np, cols / QK_MXFP4, QS_MXFP4],
                        ),
                        (
                            scales.clone(),
                            DType::U8,
                            vec![e, rows * np, cols / QK_MXFP4],
                        ),
                    ],
                });
            }
            Source::Interleaved { name, .. } => {
                let ([gate, up], &[e, n]) = (&parts[..], &t.shape[..]) else {
                    bail!(
                        "tensor '{}': expected a gate and an up part of (experts, n), found {:?}",
                        parts[0],
                        t.shape
                    );
                };
                out.push(Planned {
                    job: Job::InterleavedBias {
                        gate: gate.clone(),
                        up: up.clone(),
                    },
                    outputs: vec![(name.clone(), DType::BF16, vec![e, 2 * n])],
                });
            }
            source => out.push(Planned {
                job: Job::Bf16 {
                    src: parts[0].clone(),
                },
                outputs: vec![(source.inputs().concat(), DType::BF16, t.shape.clone())],
            }),
        }
    }
    let left_out = ckpt
        .tensor_names()
        .into_iter()
        .filter(|n| !used.contains(*n))
        .map(str::to_string)
        .collect();
    Ok((out, left_out))
}

/// The importance of expert `e`'s input channels for the GGUF tensor `name`, when the MSE rule uses one.
fn expert_importance(
    opts: &QuantizeOptions,
    name: &str,
    e: usize,
    n_in: usize,
) -> Option<Vec<f32>> {
    opts.imatrix
        .as_ref()
        .filter(|_| opts.mxfp4_scale == Mxfp4Scale::Mse)
        .and_then(|m| m.expert(name, e))
        .filter(|v| v.len() == n_in)
}

/// Encodes output row `row` (values `x`, importance `w`) as MXFP4 with the chosen rule, in ggml's blocks, then
/// repacks it as HF's blocks `b` and scales `s`.
fn encode_hf_mxfp4_row(
    x: &[f32],
    w: Option<&[f32]>,
    opts: &QuantizeOptions,
    row: usize,
    b: &mut [u8],
    s: &mut [u8],
) -> Result<()> {
    let mut ggml = vec![0u8; x.len() / QK_MXFP4 * BlockMxfp4::SIZE];
    super::encode::check_finite(x, opts.allow_nonfinite).with_context(|| format!("row {row}"))?;
    match opts.mxfp4_scale {
        Mxfp4Scale::Ref => quantize_row_mxfp4_ref(x, &mut ggml),
        Mxfp4Scale::Mse => quantize_row_mxfp4_mse(x, w, &mut ggml),
    }
    Ok(repack_ggml_to_hf(&ggml, b, s)?)
}

/// Fills a piece of an HF MXFP4 pair, `out` = [blocks, scales] with `nb` blocks a row, one row at a time in
/// parallel: `row_into(row, blocks, scales)` writes output row `row`; the piece starts at row `first`.
fn hf_mxfp4_rows(
    out: &mut [&mut [u8]],
    nb: usize,
    first: usize,
    row_into: impl Fn(usize, &mut [u8], &mut [u8]) -> Result<()> + Sync + Send,
) -> Result<()> {
    let [blocks, scales] = out else {
        bail!("expected blocks and scales");
    };
    blocks
        .par_chunks_mut(nb * QS_MXFP4)
        .zip(scales.par_chunks_mut(nb))
        .enumerate()
        .try_for_each(|(i, (b, s))| row_into(first + i, b, s))
}

type JobBox<'c> = Box<dyn StreamJob<'c> + 'c>;

/// GGUF experts (E, out, in), one tensor or gate + up, as HF MXFP4 (blocks, scales) of (E, parts × out, in)
/// with the parts' rows interleaved. MXFP4 rows are repacked as they are; others are decoded and encoded.
/// Pieces are whole experts.
fn gguf_experts_job<'c>(
    ckpt: &'c Checkpoint,
    parts: &[String],
    opts: &'c QuantizeOptions,
    ids: &[usize],
) -> Result<JobBox<'c>> {
    let views = parts
        .iter()
        .map(|p| ckpt.tensor(p))
        .collect::<Result<Vec<_>>>()?;
    let first = views.first().ok_or_else(|| anyhow!("no expert tensor"))?;
    let (dtype, name) = (first.dtype, parts[0].as_str());
    let [n_exp, rows, cols] = first.shape[..] else {
        bail!("tensor '{name}': expected 3 dimensions");
    };
    let row_bytes = dtype
        .nbytes(cols)
        .ok_or_else(|| anyhow!("tensor '{name}': rows of {cols} do not fit {dtype}"))?;
    for (v, p) in views.iter().zip(parts) {
        if v.bytes.len() != n_exp * rows * row_bytes {
            bail!(
                "tensor '{p}': {} bytes for {:?} {}",
                v.bytes.len(),
                v.shape,
                v.dtype
            );
        }
    }
    let (np, nb) = (views.len(), cols / QK_MXFP4);
    let imp: Vec<Vec<Option<Vec<f32>>>> = (0..n_exp)
        .map(|e| {
            parts
                .iter()
                .map(|p| expert_importance(opts, p, e, cols))
                .collect()
        })
        .collect();
    let per_expert = rows * np;
    let outputs = vec![(ids[0], nb * QS_MXFP4), (ids[1], nb)];
    let make = move |range: Range<usize>, out: &mut [&mut [u8]]| -> Result<Vec<&'c [u8]>> {
        hf_mxfp4_rows(out, nb, range.start, |row, b, s| {
            let (e, o) = (row / per_expert, row % per_expert);
            let (p, r) = (o % np, o / np);
            let at = (e * rows + r) * row_bytes;
            let src = &views[p].bytes[at..at + row_bytes];
            if dtype == DType::Mxfp4 {
                return Ok(repack_ggml_to_hf(src, b, s)?);
            }
            let mut x = vec![0f32; cols];
            quant::dequantize_row(dtype, src, &mut x)?;
            let w = imp.get(e).and_then(|v| v.get(p)).and_then(Option::as_deref);
            encode_hf_mxfp4_row(&x, w, opts, row, b, s)
        })?;
        // The experts this piece read, from each part.
        let (e0, e1) = (range.start / per_expert, range.end.div_ceil(per_expert));
        Ok(views
            .iter()
            .filter_map(|v| v.bytes.get(e0 * rows * row_bytes..e1 * rows * row_bytes))
            .collect())
    };
    Ok(Box::new(FnJob::new(
        name,
        n_exp * per_expert,
        outputs,
        per_expert,
        make,
    )))
}

/// Gate and up biases (E, n) as one BF16 (E, 2n) with gate at even entries; a row per expert.
fn interleave_bias_job<'c>(
    ckpt: &'c Checkpoint,
    gate: &str,
    up: &str,
    id: usize,
) -> Result<JobBox<'c>> {
    let (g, u) = (ckpt.tensor(gate)?, ckpt.tensor(up)?);
    let n = g.shape.last().copied().unwrap_or(0);
    let row_bytes = g.dtype.nbytes(n).unwrap_or(0);
    if (g.dtype, &g.shape) != (u.dtype, &u.shape)
        || n == 0
        || row_bytes == 0
        || g.bytes.len() % row_bytes != 0
        || u.bytes.len() != g.bytes.len()
    {
        bail!("tensors '{gate}' and '{up}' should have the same non-empty shape");
    }
    let n_rows = g.bytes.len() / row_bytes;
    let make = move |range: Range<usize>, out: &mut [&mut [u8]]| -> Result<Vec<&'c [u8]>> {
        let [dst] = out else {
            bail!("expected one output");
        };
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        let mut x = vec![0f32; 2 * n];
        for (i, o) in dst.chunks_exact_mut(4 * n).enumerate() {
            let at = (range.start + i) * row_bytes;
            quant::dequantize_row(g.dtype, &g.bytes[at..at + row_bytes], &mut a)?;
            quant::dequantize_row(u.dtype, &u.bytes[at..at + row_bytes], &mut b)?;
            for (k, (&p, &q)) in a.iter().zip(&b).enumerate() {
                x[2 * k] = p;
                x[2 * k + 1] = q;
            }
            quant::quantize_row(DType::BF16, &x, o)?;
        }
        Ok(Vec::new())
    };
    Ok(Box::new(FnJob::new(
        gate,
        n_rows,
        vec![(id, 4 * n)],
        1,
        make,
    )))
}

/// Dense experts (E, in, out) as HF MXFP4 (blocks, scales) of (E, out, in). Pieces are whole experts (an
/// output row is a column of the source).
fn experts_job<'c>(
    name: &str,
    t: TensorView<'c>,
    importance: &(String, String),
    opts: &'c QuantizeOptions,
    ids: &[usize],
) -> Result<JobBox<'c>> {
    let [n_exp, n_in, n_out] = t.shape[..] else {
        bail!("tensor '{name}': expected 3 dimensions");
    };
    let esize = t.dtype.type_size();
    if t.bytes.len() != n_exp * n_in * n_out * esize {
        bail!(
            "tensor '{name}': {} bytes for {:?} {}",
            t.bytes.len(),
            t.shape,
            t.dtype
        );
    }
    let nb = n_in / QK_MXFP4;
    let imp: Vec<[Option<Vec<f32>>; 2]> = (0..n_exp)
        .map(|e| {
            [
                expert_importance(opts, &importance.0, e, n_in),
                expert_importance(opts, &importance.1, e, n_in),
            ]
        })
        .collect();
    let slab = n_in * n_out * esize;
    let make = move |range: Range<usize>, out: &mut [&mut [u8]]| -> Result<Vec<&'c [u8]>> {
        hf_mxfp4_rows(out, nb, range.start, |row, b, s| {
            let (e, o) = (row / n_out, row % n_out);
            let mut x = vec![0f32; n_in];
            for (i, v) in x.iter_mut().enumerate() {
                let at = ((e * n_in + i) * n_out + o) * esize;
                quant::dequantize_row(t.dtype, &t.bytes[at..at + esize], std::slice::from_mut(v))?;
            }
            let w = imp.get(e).and_then(|p| p[o % 2].as_deref());
            encode_hf_mxfp4_row(&x, w, opts, row, b, s)
        })?;
        let (e0, e1) = (range.start / n_out, range.end.div_ceil(n_out));
        Ok(t.bytes.get(e0 * slab..e1 * slab).into_iter().collect())
    };
    Ok(Box::new(FnJob::new(
        name,
        n_exp * n_out,
        vec![(ids[0], nb * QS_MXFP4), (ids[1], nb)],
        n_out,
        make,
    )))
}

/// A float tensor as BF16, row by row (the last dimension); a BF16 one goes out as it is. `Copy` (U8) tensors
/// take the same path with `bf16 = false`.
fn bf16_job<'c>(name: &str, t: TensorView<'c>, id: usize, bf16: bool) -> Result<JobBox<'c>> {
    let ncols = t.shape.last().copied().unwrap_or(1).max(1);
    let src_row = t.dtype.nbytes(ncols).unwrap_or(0);
    if src_row == 0 || t.bytes.len() % src_row != 0 {
        bail!(
            "tensor '{name}': {} bytes for {:?} {}",
            t.bytes.len(),
            t.shape,
            t.dtype
        );
    }
    let n_rows = t.bytes.len() / src_row;
    let as_is = !bf16 || t.dtype == DType::BF16;
    let dst_row = if as_is { src_row } else { 2 * ncols };
    let make = move |range: Range<usize>, out: &mut [&mut [u8]]| -> Result<Vec<&'c [u8]>> {
        let [dst] = out else {
            bail!("expected one output");
        };
        let src = t
            .bytes
            .get(range.start * src_row..range.end * src_row)
            .ok_or_else(|| anyhow!("rows {range:?} out of range"))?;
        if as_is {
            dst.copy_from_slice(src);
        } else {
            dst.par_chunks_mut(dst_row)
                .zip(src.par_chunks(src_row))
                .try_for_each(|(o, s)| -> Result<()> {
                    let mut f = vec![0f32; ncols];
                    quant::dequantize_row(t.dtype, s, &mut f)?;
                    quant::quantize_row(DType::BF16, &f, o)?;
                    Ok(())
                })?;
        }
        Ok(vec![src])
    };
    let job = FnJob::new(name, n_rows, vec![(id, dst_row)], 1, make);
    Ok(Box::new(if as_is {
        job.unchanged_from(t.bytes, src_row)
    } else {
        job
    }))
}

/// Writes `input` (an HF folder or a GGUF file) as OpenAI-layout MXFP4 safetensors into the folder `output`.
pub fn quantize_to_safetensors(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    shard_bytes: usize,
) -> Result<SafetensorsSummary> {
    let ckpt = Checkpoint::open(input, None)?;
    // Checked before any work; created (and checked again) below.
    preflight(output, Kind::Folder, opts.existing)?;
    let mut notes = Vec::new();
    let jobs = match ckpt.layout {
        Layout::Hf => plan(&ckpt),
        Layout::Gguf => plan_gguf(&ckpt, opts).map(|(jobs, left_out)| {
            if !left_out.is_empty() {
                notes.push(format!(
                    "left out GGUF tensors the Hugging Face layout has no place for: {}",
                    left_out.join(", ")
                ));
            }
            notes.push(format!(
                "a GGUF holds no Hugging Face tokenizer files: copy tokenizer.json, tokenizer_config.json, \
                 special_tokens_map.json and chat_template.jinja from the original model into {}",
                output.display()
            ));
            jobs
        }),
        Layout::Original => bail!(
            "{}: --format safetensors reads a Hugging Face folder or a GGUF (this is {} layout; \
             `ossify convert` it to the Hugging Face layout first)",
            input.display(),
            ckpt.layout
        ),
    }
    .with_context(|| format!("{}", input.display()))?;

    // Shards: in order, a new one whenever the next job would pass the limit (a pair stays together).
    let sizes: Vec<u64> = jobs.iter().map(|j| j.nbytes() as u64).collect();
    let shards = assign_files(&sizes, Some(shard_bytes as u64), None);
    let n_shards = shards.len();
    let shard_name = |k: usize| {
        if n_shards == 1 {
            SINGLE_FILE.to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", k + 1, n_shards)
        }
    };

    // Plan every shard (each file's header fixes its offsets), then one driver writes all of them.
    let mut weight_map = serde_json::Map::new();
    let mut writers = Vec::with_capacity(n_shards);
    let mut ids: Vec<Vec<usize>> = Vec::with_capacity(jobs.len());
    let mut total = 0usize;
    for (k, members) in shards.iter().enumerate() {
        let mut w = SafetensorsWriter::new();
        w.add_metadata("format", "pt");
        for i in members.clone() {
            let mut these = Vec::new();
            for (name, dtype, shape) in &jobs[i].outputs {
                w.add_tensor(name, *dtype, shape)?;
                these.push(total);
                total += 1;
                weight_map.insert(name.clone(), json!(shard_name(k)));
            }
            ids.push(these);
        }
        writers.push(w);
    }
    if opts.dry_run {
        let tensors = jobs
            .iter()
            .flat_map(|p| {
                let source_type = p
                    .job
                    .single_source()
                    .and_then(|src| ckpt.tensor(src).ok())
                    .map(|v| v.dtype);
                p.outputs.iter().map(move |(name, dtype, shape)| {
                    (
                        name.clone(),
                        p.job.describe(),
                        source_type,
                        *dtype,
                        shape.clone(),
                    )
                })
            })
            .collect();
        let files = writers
            .iter()
            .enumerate()
            .map(|(k, w)| Ok((shard_name(k), w.planned_bytes()?, w.n_tensors())))
            .collect::<Result<_>>()?;
        return Ok(SafetensorsSummary {
            bytes_out: jobs.iter().map(Planned::nbytes).sum(),
            notes,
            tensors,
            files,
        });
    }
    let dir = PartialDir::create(output, opts.existing)?;
    let partial = dir.path().to_path_buf();
    let targets: Vec<PathBuf> = (0..n_shards).map(|k| partial.join(shard_name(k))).collect();
    let journal = PartialSet::create(&partial.join(SINGLE_FILE), &targets)?;
    let mut files = Vec::with_capacity(n_shards);
    for (k, w) in writers.into_iter().enumerate() {
        files.push(w.create(&partial.join(shard_name(k)))?);
    }
    let set = FileSet::new(journal, files);
    let stream: Vec<JobBox<'_>> = jobs
        .iter()
        .zip(&ids)
        .map(|(p, ids)| -> Result<JobBox<'_>> {
            match &p.job {
                Job::Bf16 { src } => bf16_job(src, ckpt.tensor(src)?, ids[0], true),
                Job::Copy { src } => bf16_job(src, ckpt.tensor(src)?, ids[0], false),
                Job::Experts { src, importance } => {
                    experts_job(src, ckpt.tensor(src)?, importance, opts, ids)
                }
                Job::GgufExperts { parts } => gguf_experts_job(&ckpt, parts, opts, ids),
                Job::InterleavedBias { gate, up } => interleave_bias_job(&ckpt, gate, up, ids[0]),
            }
        })
        .collect::<Result<_>>()?;
    let bytes_out: usize = (0..set.n_tensors()).map(|t| set.tensor_size(t)).sum();
    let bar = crate::progress::bar(
        opts.progress,
        bytes_out as u64,
        "writing",
        crate::progress::Unit::Bytes,
    );
    drive(&stream, &set, PIECE_BYTES, &|b| ckpt.release(b), &bar)?;
    bar.finish_and_clear();
    set.finish()?;
    let total = bytes_out;
    if n_shards > 1 {
        let index = json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
        write_json(&partial.join(INDEX_FILE), &index)?;
    }
    write_config(&ckpt, &partial.join("config.json"))?;
    if ckpt.layout == Layout::Hf {
        let from = ckpt
            .tokenizer_dir
            .clone()
            .unwrap_or_else(|| input.to_path_buf());
        for f in COPIED_FILES {
            let src = from.join(f);
            if src.is_file() {
                copy_file(&src, &partial.join(f))?;
            }
        }
    }
    dir.commit()?;
    Ok(SafetensorsSummary {
        bytes_out: total,
        notes,
        tensors: Vec::new(),
        files: Vec::new(),
    })
}

fn write_config(ckpt: &Checkpoint, to: &Path) -> Result<()> {
    let mut cfg: serde_json::Value = match &ckpt.config_path {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?
        }
        None => ckpt.config.to_hf_json(),
    };
    let path = ckpt.config_path.as_deref().unwrap_or(&ckpt.path);
    let obj = cfg
        .as_object_mut()
        .ok_or_else(|| anyhow!("{}: not a JSON object", path.display()))?;
    obj.insert(
        "quantization_config".into(),
        json!({ "modules_to_not_convert": MODULES_NOT_CONVERTED, "quant_method": "mxfp4" }),
    );
    write_json(to, &cfg)
}

/// Writes a small file inside the partial folder, whole or not at all.
fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    write_file(path, s.as_bytes())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let f = PartialFile::create(path, Existing::Refuse)?;
    f.file()
        .write_all(bytes)
        .with_context(|| f.partial_path().display().to_string())?;
    f.commit()?;
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let f = PartialFile::create(to, Existing::Refuse)?;
    let mut src =
        std::fs::File::open(from).with_context(|| format!("copying {}", from.display()))?;
    std::io::copy(&mut src, &mut f.file())
        .with_context(|| format!("copying {}", from.display()))?;
    f.commit()?;
    Ok(())
}
