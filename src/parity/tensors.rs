//! Tensor-by-tensor comparison of two checkpoints of the same model, whatever their layouts.
//!
//! Every tensor is compared in the GGUF naming and the GGUF logical shape (row-major; expert matrices
//! `(E, out, in)`), because that is the one layout every other maps onto without loss of information:
//! the name table ([`crate::gpt_oss::names`]) says, per GGUF tensor, which HF / original tensor holds it and
//! which part of it (the even or odd rows of the interleaved gate/up projection, the q / k / v rows of the
//! original fused qkv). Expert matrices in HF / original checkpoints come either as an MXFP4 pair
//! (`*_blocks` + `*_scales`, `(E, out, in)`) or dense (a BF16 fine-tune, `(E, in, out)`: the transpose).
//!
//! Both sides are decoded to f32 with the scalar reference decoders of `ossify_formats::quant` (exact for
//! every type we read) one slab at a time (one expert, or a bounded block of rows), slabs in parallel with
//! rayon, so memory stays bounded by threads × slab whatever the model size. A conversion that cannot lose
//! information (same type on both sides, a widening to F32, an MXFP4 repack, MXFP4 to BF16) must give
//! bit-identical floats; any other is reported with RMSE, max |error| and SNR.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use ossify_formats::quant::{dequantize_row, dequantize_row_mxfp4_hf, QK_MXFP4, QS_MXFP4};
use ossify_formats::{DType, TensorView};
use rayon::prelude::*;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::gpt_oss::names::{self, Source, TensorName};

/// Upper bound on the f32 elements one slab decodes (per side) for 1-D and 2-D tensors.
const SLAB_ELEMENTS: usize = 1 << 22;

/// How one side holds one logical (GGUF-named) tensor.
#[derive(Clone, Debug)]
enum Holder<'a> {
    /// The stored tensor is the logical tensor.
    Direct(TensorView<'a>),
    /// Rows `start..start + n` of a 2-D tensor, or entries `start..start + n` of a 1-D one (original qkv).
    Rows { view: TensorView<'a>, start: usize },
    /// Every other entry of the last dimension, starting at `parity` (gate/up bias, `(E, 2I)`).
    Interleaved { view: TensorView<'a>, parity: usize },
    /// MXFP4 pair `(E, R, nb, 16)` + `(E, R, nb)`; with `parity`, logical row r is stored row 2r + parity.
    Mxfp4Pair {
        blocks: TensorView<'a>,
        scales: TensorView<'a>,
        parity: Option<usize>,
    },
    /// Dense `(E, in, R)`: the transpose of the logical `(E, out, in)`; with `parity`, as above.
    DenseTransposed {
        view: TensorView<'a>,
        parity: Option<usize>,
    },
}

/// One side's view of one logical tensor.
#[derive(Clone, Debug)]
struct Resolved<'a> {
    holder: Holder<'a>,
    /// Logical shape, row-major.
    shape: Vec<usize>,
    /// The number format the values come from.
    dtype: DType,
    /// Stored tensor name(s), for messages.
    source: String,
}

fn row_bytes(dtype: DType, row_len: usize, name: &str) -> Result<usize> {
    dtype
        .nbytes(row_len)
        .with_context(|| format!("tensor '{name}': rows of {row_len} are not whole {dtype} blocks"))
}

fn decode(dtype: DType, bytes: &[u8], out: &mut [f32], name: &str) -> Result<()> {
    dequantize_row(dtype, bytes, out).with_context(|| format!("decoding tensor '{name}'"))
}

impl<'a> Resolved<'a> {
    fn rank(&self) -> usize {
        self.shape.len()
    }

    fn row_len(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    fn n_rows(&self) -> usize {
        self.shape.iter().rev().skip(1).product()
    }

    /// Rows per slab: one expert for 3-D tensors, a bounded block otherwise.
    fn slab_rows(&self) -> usize {
        if self.rank() == 3 {
            self.shape[1].max(1)
        } else {
            (SLAB_ELEMENTS / self.row_len().max(1)).max(1)
        }
    }

    fn n_slabs(&self) -> usize {
        self.n_rows().div_ceil(self.slab_rows()).max(1)
    }

    /// Logical rows `r0..r0 + n` decoded into `out` (n × row_len values).
    fn decode_rows(&self, r0: usize, n: usize, out: &mut [f32]) -> Result<()> {
        let c = self.row_len();
        match &self.holder {
            Holder::Direct(v) => {
                let rb = row_bytes(v.dtype, c, &v.name)?;
                let bytes = v
                    .bytes
                    .get(r0 * rb..(r0 + n) * rb)
                    .with_context(|| format!("tensor '{}': rows past its end", v.name))?;
                decode(v.dtype, bytes, out, &v.name)
            }
            Holder::Rows { view, start } => {
                let rb = row_bytes(view.dtype, c, &view.name)?;
                let (a, b) = if view.shape.len() == 1 {
                    // 1-D: one logical row of `c` entries starting at `start`.
                    let es = view.dtype.type_size();
                    if view.dtype.is_quantized() {
                        bail!(
                            "tensor '{}': a {} vector cannot be split",
                            view.name,
                            view.dtype
                        );
                    }
                    (start * es, (start + c) * es)
                } else {
                    ((start + r0) * rb, (start + r0 + n) * rb)
                };
                let bytes = view
                    .bytes
                    .get(a..b)
                    .with_context(|| format!("tensor '{}': rows past its end", view.name))?;
                decode(view.dtype, bytes, out, &view.name)
            }
            Holder::Interleaved { view, parity } => {
                let src_c = 2 * c;
                let rb = row_bytes(view.dtype, src_c, &view.name)?;
                let bytes = view
                    .bytes
                    .get(r0 * rb..(r0 + n) * rb)
                    .with_context(|| format!("tensor '{}': rows past its end", view.name))?;
                let mut tmp = vec![0f32; n * src_c];
                decode(view.dtype, bytes, &mut tmp, &view.name)?;
                for (o, x) in out.iter_mut().zip(tmp.iter().skip(*parity).step_by(2)) {
                    *o = *x;
                }
                Ok(())
            }
            Holder::Mxfp4Pair {
                blocks,
                scales,
                parity,
            } => {
                let nb = c / QK_MXFP4;
                let rows_per_expert = self.shape.get(1).copied().unwrap_or(1);
                let src_rows_per_expert = rows_per_expert * if parity.is_some() { 2 } else { 1 };
                for (k, o) in out.chunks_exact_mut(c).take(n).enumerate() {
                    let r = r0 + k;
                    let (e, rr) = (r / rows_per_expert, r % rows_per_expert);
                    let sr = e * src_rows_per_expert + parity.map_or(rr, |p| 2 * rr + p);
                    let b = blocks
                        .bytes
                        .get(sr * nb * QS_MXFP4..(sr + 1) * nb * QS_MXFP4)
                        .with_context(|| format!("tensor '{}': rows past its end", blocks.name))?;
                    let s = scales
                        .bytes
                        .get(sr * nb..(sr + 1) * nb)
                        .with_context(|| format!("tensor '{}': rows past its end", scales.name))?;
                    dequantize_row_mxfp4_hf(b, s, o)
                        .with_context(|| format!("decoding tensor '{}'", blocks.name))?;
                }
                Ok(())
            }
            Holder::DenseTransposed { view, parity } => {
                // Only whole experts are asked for (slab_rows is one expert for 3-D tensors).
                let rows_per_expert = self.shape.get(1).copied().unwrap_or(1);
                if r0 % rows_per_expert != 0 || n % rows_per_expert != 0 {
                    bail!("tensor '{}': internal: partial expert requested", view.name);
                }
                let src_r = rows_per_expert * if parity.is_some() { 2 } else { 1 };
                let expert_elems = c * src_r;
                let eb = row_bytes(view.dtype, expert_elems, &view.name)?;
                let mut tmp = vec![0f32; expert_elems];
                for (k, o) in out.chunks_exact_mut(c * rows_per_expert).enumerate() {
                    let e = r0 / rows_per_expert + k;
                    let bytes = view
                        .bytes
                        .get(e * eb..(e + 1) * eb)
                        .with_context(|| format!("tensor '{}': experts past its end", view.name))?;
                    decode(view.dtype, bytes, &mut tmp, &view.name)?;
                    for r in 0..rows_per_expert {
                        let sr = parity.map_or(r, |p| 2 * r + p);
                        for (i, x) in o[r * c..(r + 1) * c].iter_mut().enumerate() {
                            *x = tmp[i * src_r + sr];
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

/// The tensor a checkpoint stores under `name`, or an error naming the checkpoint and the tensor.
fn stored<'a>(ck: &'a Checkpoint, name: &str, used: &mut Vec<String>) -> Result<TensorView<'a>> {
    let v = ck.get(name).with_context(|| {
        format!(
            "{}: tensor '{name}' is missing ({} layout)",
            ck.path.display(),
            ck.layout
        )
    })?;
    v.check()
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{}", ck.path.display()))?;
    used.push(name.to_string());
    Ok(v)
}

/// How `ck` holds the GGUF tensor `row` of layer `bid`: the name table's answer, each stored tensor checked to
/// be present with the shape the config implies.
fn resolve<'a>(
    ck: &'a Checkpoint,
    row: &TensorName,
    bid: Option<usize>,
    used: &mut Vec<String>,
) -> Result<Resolved<'a>> {
    let r = names::resolve(row, bid, ck.layout, ck.experts, &ck.config);
    let mut views = Vec::with_capacity(r.stored.len());
    for t in &r.stored {
        let v = stored(ck, &t.name, used)?;
        if v.shape != t.shape {
            bail!(
                "{}: tensor '{}' has shape {:?}, expected {:?}",
                ck.path.display(),
                v.name,
                v.shape,
                t.shape
            );
        }
        views.push(v);
    }
    let mut views = views.into_iter();
    let mut next = || {
        views
            .next()
            .with_context(|| format!("tensor '{}': no stored tensor", r.gguf))
    };
    let source = r.source.inputs().join(" + ");
    let (dtype, holder) = match r.source {
        Source::Whole { .. } => {
            let v = next()?;
            (v.dtype, Holder::Direct(v))
        }
        Source::Rows { start, .. } => {
            let v = next()?;
            (v.dtype, Holder::Rows { view: v, start })
        }
        Source::Interleaved { parity, .. } => {
            let v = next()?;
            (v.dtype, Holder::Interleaved { view: v, parity })
        }
        Source::Mxfp4 { parity, .. } => {
            let (blocks, scales) = (next()?, next()?);
            (
                DType::Mxfp4,
                Holder::Mxfp4Pair {
                    blocks,
                    scales,
                    parity,
                },
            )
        }
        Source::DenseExperts { parity, .. } => {
            let v = next()?;
            (v.dtype, Holder::DenseTransposed { view: v, parity })
        }
    };
    Ok(Resolved {
        holder,
        shape: r.shape,
        dtype,
        source,
    })
}

/// Whether converting `from` to `to` keeps every value exactly.
pub fn is_lossless(from: DType, to: DType) -> bool {
    from == to
        || (to == DType::F32 && matches!(from, DType::F16 | DType::BF16 | DType::Mxfp4))
        || (from == DType::Mxfp4 && to == DType::BF16)
}

/// Comparison of one tensor.
#[derive(Clone, Debug, Serialize)]
pub struct TensorComparison {
    /// GGUF name (`blk.3.attn_q.weight`).
    pub name: String,
    pub layer: Option<usize>,
    pub reference_source: String,
    pub candidate_source: String,
    pub reference_dtype: String,
    pub candidate_dtype: String,
    pub shape: Vec<usize>,
    /// The conversion could not lose information, so every value must be equal.
    pub lossless: bool,
    /// Values that differ (bitwise, with -0 = +0 and NaN = NaN).
    pub n_different: u64,
    /// Flat row-major index of the first differing value.
    pub first_difference: Option<u64>,
    pub rmse: f64,
    pub max_abs_err: f64,
    /// `10·log10(Σ ref² / Σ err²)`; `None` when there is no error (infinite SNR).
    pub snr_db: Option<f64>,
    /// The RMSE rounding to the candidate's type explains ([`super::error_model`]); `None` for a type without a
    /// rule, and when no value differs (nothing to explain, so it is not computed).
    pub expected_rmse: Option<f64>,
    /// Largest RMSE a lossy conversion may show: [`super::error_model::EXPLAINED_SSE_FACTOR`]'s square root
    /// times `expected_rmse`.
    pub max_rmse: Option<f64>,
}

impl TensorComparison {
    /// A lossless conversion that changed a value, or a lossy one whose error its target type cannot explain
    /// (NaN / Inf errors included).
    pub fn failed(&self) -> bool {
        self.n_different > 0 && (self.lossless || !self.explained())
    }

    /// The error is within what rounding to the candidate's type explains.
    pub fn explained(&self) -> bool {
        self.max_rmse.is_some_and(|m| self.rmse <= m)
    }

    /// Why the tensor failed, for reports.
    pub fn failure(&self) -> Option<String> {
        if !self.failed() {
            return None;
        }
        Some(if self.lossless {
            format!(
                "tensor {} ({} -> {}) should be lossless but {} of its values differ",
                self.name, self.reference_dtype, self.candidate_dtype, self.n_different
            )
        } else {
            match self.max_rmse {
                Some(m) => format!(
                    "tensor {} ({} -> {}): RMSE {:.3e} exceeds the {:.3e} rounding to {} explains (at most {:.3e})",
                    self.name,
                    self.reference_dtype,
                    self.candidate_dtype,
                    self.rmse,
                    self.expected_rmse.unwrap_or(0.0),
                    self.candidate_dtype,
                    m
                ),
                None => format!(
                    "tensor {} ({} -> {}): {} values differ and no error model explains {}",
                    self.name,
                    self.reference_dtype,
                    self.candidate_dtype,
                    self.n_different,
                    self.candidate_dtype
                ),
            }
        })
    }
}

/// Comparison of every tensor of two checkpoints.
#[derive(Clone, Debug, Serialize)]
pub struct TensorReport {
    pub tensors: Vec<TensorComparison>,
    pub n_exact: usize,
    pub n_lossy: usize,
    pub n_failed: usize,
}

impl TensorReport {
    pub fn failures(&self) -> impl Iterator<Item = &TensorComparison> {
        self.tensors.iter().filter(|t| t.failed())
    }

    /// The first layer (in layer order; global tensors count as outside any layer) holding a failed tensor.
    pub fn first_failed_layer(&self) -> Option<usize> {
        self.failures().filter_map(|t| t.layer).min()
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct SlabStats {
    n: u64,
    sse: f64,
    sum_ref2: f64,
    max_abs: f64,
    n_different: u64,
    first_difference: Option<u64>,
    /// Squared error rounding to the candidate's type explains (None: no rule for the type).
    expected_sse: Option<f64>,
}

impl SlabStats {
    fn merge(mut self, o: SlabStats) -> SlabStats {
        self.n += o.n;
        self.sse += o.sse;
        self.sum_ref2 += o.sum_ref2;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.n_different += o.n_different;
        self.expected_sse = match (self.expected_sse, o.expected_sse) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.first_difference = match (self.first_difference, o.first_difference) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self
    }
}

/// Compares one slab. `full`: every statistic (error sums, the reference's energy, what rounding to the
/// candidate's type explains); otherwise only whether values differ, the common case of a lossless conversion
/// and a quarter of the work (a tensor found to differ is compared again in full, see
/// [`compare_checkpoints_with`]).
fn compare_slab(a: &Resolved<'_>, b: &Resolved<'_>, slab: usize, full: bool) -> Result<SlabStats> {
    let c = a.row_len();
    let r0 = slab * a.slab_rows();
    let n = a.slab_rows().min(a.n_rows().saturating_sub(r0));
    let mut x = vec![0f32; n * c];
    let mut y = vec![0f32; n * c];
    a.decode_rows(r0, n, &mut x)?;
    b.decode_rows(r0, n, &mut y)?;
    let same = |p: f32, q: f32| p == q || (p.is_nan() && q.is_nan());
    let base = (r0 * c) as u64;
    if !full {
        // Branch-free count, so it vectorises.
        let n_different: u64 = x
            .iter()
            .zip(&y)
            .map(|(&p, &q)| u64::from(!same(p, q)))
            .sum();
        return Ok(SlabStats {
            n: x.len() as u64,
            n_different,
            first_difference: (n_different > 0)
                .then(|| x.iter().zip(&y).position(|(&p, &q)| !same(p, q)))
                .flatten()
                .map(|i| base + i as u64),
            expected_sse: None,
            ..SlabStats::default()
        });
    }
    let mut s = SlabStats {
        n: x.len() as u64,
        expected_sse: super::error_model::expected_sse(b.dtype, &x, c),
        ..SlabStats::default()
    };
    for (i, (&p, &q)) in x.iter().zip(&y).enumerate() {
        let same = same(p, q);
        if !same {
            s.n_different += 1;
            s.first_difference.get_or_insert(base + i as u64);
        }
        let (p, q) = (f64::from(p), f64::from(q));
        let d = q - p;
        if !same {
            // NaN / Inf on one side only: an unbounded error (f64::max would drop a NaN).
            let e = if d.is_finite() {
                d.abs()
            } else {
                f64::INFINITY
            };
            s.sse += e * e;
            s.max_abs = s.max_abs.max(e);
        }
        s.sum_ref2 += p * p;
    }
    Ok(s)
}

/// Compares every tensor of `candidate` with `reference` (both already checked to be the same model shape).
/// Missing tensors, tensors left over on either side and shape disagreements are errors naming the tensor.
pub fn compare_checkpoints(reference: &Checkpoint, candidate: &Checkpoint) -> Result<TensorReport> {
    compare_checkpoints_with(reference, candidate, &indicatif::ProgressBar::hidden())
}

/// [`compare_checkpoints`], advancing `bar` by each slab compared (its length is set to the slab count).
pub fn compare_checkpoints_with(
    reference: &Checkpoint,
    candidate: &Checkpoint,
    bar: &indicatif::ProgressBar,
) -> Result<TensorReport> {
    let n_layers = reference.config.num_hidden_layers;
    let mut used_ref = Vec::new();
    let mut used_cand = Vec::new();
    let mut pairs = Vec::new();
    for (bid, row) in names::all_tensors(n_layers) {
        let a = resolve(reference, row, bid, &mut used_ref)?;
        let b = resolve(candidate, row, bid, &mut used_cand)?;
        let gname = names::name_at(row.gguf, bid);
        if a.shape != b.shape {
            bail!(
                "tensor '{gname}': reference {} ({}) has logical shape {:?} but candidate {} ({}) has {:?}",
                a.source,
                reference.path.display(),
                a.shape,
                b.source,
                candidate.path.display(),
                b.shape
            );
        }
        pairs.push((gname, bid, a, b));
    }
    for (ck, used) in [(reference, &used_ref), (candidate, &used_cand)] {
        let used: BTreeSet<&str> = used.iter().map(String::as_str).collect();
        let extra: Vec<&str> = ck
            .tensor_names()
            .into_iter()
            .filter(|n| !used.contains(n))
            .collect();
        if !extra.is_empty() {
            bail!(
                "{}: {} tensor(s) that gpt-oss does not have: {}",
                ck.path.display(),
                extra.len(),
                extra.join(", ")
            );
        }
    }

    // Two passes: every slab checked for equality (cheap), then only the tensors with a difference compared in
    // full. A tensor whose values are all equal has nothing to explain, so its error model is not computed.
    let slabs_of = |i: usize| (0..pairs[i].2.n_slabs()).map(move |s| (i, s));
    let tasks: Vec<(usize, usize)> = (0..pairs.len()).flat_map(slabs_of).collect();
    bar.set_length(tasks.len() as u64);
    let run = |tasks: &[(usize, usize)], full: bool| -> Result<Vec<SlabStats>> {
        let stats: Vec<(usize, SlabStats)> = tasks
            .par_iter()
            .map(|&(i, s)| {
                let (_, _, a, b) = &pairs[i];
                let r = compare_slab(a, b, s, full).map(|st| (i, st));
                bar.inc(1);
                r
            })
            .collect::<Result<_>>()?;
        let mut per = vec![
            SlabStats {
                expected_sse: full.then_some(0.0),
                ..SlabStats::default()
            };
            pairs.len()
        ];
        for (i, s) in stats {
            per[i] = per[i].merge(s);
        }
        Ok(per)
    };
    let mut per = run(&tasks, false)?;
    let differing: Vec<usize> = (0..pairs.len())
        .filter(|&i| per[i].n_different > 0)
        .collect();
    if !differing.is_empty() {
        let again: Vec<(usize, usize)> = differing.iter().flat_map(|&i| slabs_of(i)).collect();
        bar.inc_length(again.len() as u64);
        let full = run(&again, true)?;
        for i in differing {
            per[i] = full[i];
        }
    }

    let tensors: Vec<TensorComparison> = pairs
        .into_iter()
        .zip(per)
        .map(|((name, layer, a, b), s)| {
            let n = s.n.max(1) as f64;
            TensorComparison {
                name,
                layer,
                reference_source: a.source,
                candidate_source: b.source,
                reference_dtype: a.dtype.name().to_string(),
                candidate_dtype: b.dtype.name().to_string(),
                shape: a.shape,
                lossless: is_lossless(a.dtype, b.dtype),
                n_different: s.n_different,
                first_difference: s.first_difference,
                rmse: (s.sse / n).sqrt(),
                max_abs_err: s.max_abs,
                snr_db: (s.sse > 0.0).then(|| 10.0 * (s.sum_ref2 / s.sse).log10()),
                expected_rmse: s.expected_sse.map(|e| (e / n).sqrt()),
                max_rmse: s
                    .expected_sse
                    .map(|e| (super::error_model::EXPLAINED_SSE_FACTOR * e / n).sqrt()),
            }
        })
        .collect();
    let n_failed = tensors.iter().filter(|t| t.failed()).count();
    let n_exact = tensors.iter().filter(|t| t.n_different == 0).count();
    Ok(TensorReport {
        n_lossy: tensors.len() - n_exact,
        n_exact,
        n_failed,
        tensors,
    })
}
