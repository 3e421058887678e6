//! The fast precision: activations rounded to what ggml's CPU backend multiplies each weight type with
//! (`type_traits_cpu[type].vec_dot_type` in ggml-cpu.c), so logits follow llama.cpp's rather than the exact f32
//! reference.
//!
//! | weight type            | activations become                | dot                                 |
//! |------------------------|-----------------------------------|-------------------------------------|
//! | MXFP4 (both layouts)   | Q8_0 (32 per block, d = amax/127 as f16) | integer block sums × (e8m0/2 · d) |
//! | Q8_0                   | Q8_0                              | integer block sums × (d_w · d_x)   |
//! | BF16                   | BF16 (round to nearest even)      | f32 accumulation of exact products |
//! | F16                    | F16                               | f32 accumulation                   |
//! | F32, Q4_*/Q5_*, transposed | unchanged (exact path)        | as [`super::matmul`]               |
//!
//! Q8_0 quantization follows ggml's AVX2 `quantize_row_q8_0` (the path llama.cpp takes on x86): multiplier
//! `127 / amax`, round half to even. Each optimized dot has a scalar twin here ([`vec_dot_q8_ref`]).

use std::cell::RefCell;

use rayon::prelude::*;

use ossify_formats::quant::{bf16_to_fp32, fp16_to_fp32, fp32_to_bf16, fp32_to_fp16};
use ossify_formats::DType;

use super::decode::{e8m0_to_fp32_half, KVALUES_MXFP4};
use super::matmul::{matmul, Storage, WeightMatrix};
use super::simd::Avx2;
use super::KernelError;

/// How the matmuls treat activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Every weight decoded exactly, activations and accumulation in f32 (the transformers reference).
    #[default]
    Exact,
    /// Activations rounded per weight type as ggml's CPU backend does (Q8_0 for MXFP4 / Q8_0 weights, BF16 for
    /// BF16, F16 for F16): faster, and matches llama.cpp's logits more closely than [`Precision::Exact`].
    Q8Activations,
}

/// Q8_0 block length.
pub const QK8: usize = 32;

/// Activations of `n` tokens quantized to Q8_0: per token `cols / 32` scales (the f16 `d`, widened), `cols`
/// signed bytes, and `cols / 4` lane sums `k` = −12 · (sum of each 4 consecutive bytes), which turn the
/// unsigned-weight dots (FP4 codes + 12) back into signed ones.
#[derive(Default, Debug)]
pub struct Q8Acts {
    pub d: Vec<f32>,
    pub k: Vec<i32>,
    pub qs: Vec<i8>,
}

/// Quantizes one row (`x.len()` a multiple of 32) into `d` (one per block) and `qs`, as ggml's AVX2
/// `quantize_row_q8_0`: `d = f16(amax / 127)`, `q = round_half_even(x · (127 / amax))`.
/// `k` (8 per block) gets −12 · the sum of each 4 consecutive codes.
pub fn quantize_row_q8(x: &[f32], d: &mut [f32], k: &mut [i32], qs: &mut [i8]) {
    for (((xb, db), kb), qb) in x
        .chunks_exact(QK8)
        .zip(d.iter_mut())
        .zip(k.chunks_exact_mut(8))
        .zip(qs.chunks_exact_mut(QK8))
    {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        *db = fp16_to_fp32(fp32_to_fp16(amax / 127.0));
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        for (q, &v) in qb.iter_mut().zip(xb) {
            // Round half to even without a libm call: adding 1.5 · 2^23 leaves no fraction bits, so the
            // addition rounds (to nearest even) and the subtraction is exact; |v · id| ≤ 127 is far inside range.
            *q = ((v * id + 12_582_912.0) - 12_582_912.0) as i8;
        }
        for (kv, q4) in kb.iter_mut().zip(qb.chunks_exact(4)) {
            *kv = -12 * q4.iter().map(|&q| i32::from(q)).sum::<i32>();
        }
    }
}

/// Whether the weights of this matrix are multiplied with Q8_0 activations in [`Precision::Q8Activations`].
fn uses_q8(w: &WeightMatrix) -> bool {
    !w.is_transposed()
        && w.cols() % QK8 == 0
        && matches!(
            w.storage(),
            Storage::Mxfp4Pair { .. }
                | Storage::Ggml {
                    dtype: DType::Mxfp4 | DType::Q8_0,
                    ..
                }
        )
}

/// Stored row `line` of `w` · one token's Q8_0 activations: the scalar twin (integer block sums, blocks summed
/// in order in f32).
pub fn vec_dot_q8_ref(w: &WeightMatrix, line: usize, d: &[f32], qs: &[i8]) -> f32 {
    let nb = w.cols() / QK8;
    let row = w.storage().row(line, w.cols());
    let mut sum = 0f32;
    for ib in 0..nb {
        let xq = &qs[ib * QK8..(ib + 1) * QK8];
        let (scale, isum) = match row {
            Storage::Mxfp4Pair { blocks, scales } => {
                let b = &blocks[ib * 16..][..16];
                let e = scales[ib];
                let mut s = 0i32;
                for j in 0..16 {
                    s += i32::from(KVALUES_MXFP4[(b[j] & 0x0f) as usize]) * i32::from(xq[2 * j]);
                    s += i32::from(KVALUES_MXFP4[(b[j] >> 4) as usize]) * i32::from(xq[2 * j + 1]);
                }
                (e8m0_to_fp32_half(e) * d[ib], s)
            }
            Storage::Ggml {
                dtype: DType::Mxfp4,
                bytes,
                ..
            } => {
                let blk = &bytes[ib * 17..][..17];
                let mut s = 0i32;
                for j in 0..16 {
                    s += i32::from(KVALUES_MXFP4[(blk[1 + j] & 0x0f) as usize]) * i32::from(xq[j]);
                    s += i32::from(KVALUES_MXFP4[(blk[1 + j] >> 4) as usize])
                        * i32::from(xq[j + 16]);
                }
                (e8m0_to_fp32_half(blk[0]) * d[ib], s)
            }
            Storage::Ggml {
                dtype: DType::Q8_0,
                bytes,
                ..
            } => {
                let blk = &bytes[ib * 34..][..34];
                let mut s = 0i32;
                for j in 0..QK8 {
                    s += i32::from(blk[2 + j] as i8) * i32::from(xq[j]);
                }
                (
                    fp16_to_fp32(u16::from_le_bytes([blk[0], blk[1]])) * d[ib],
                    s,
                )
            }
            Storage::Ggml { .. } => return f32::NAN,
        };
        sum += scale * isum as f32;
    }
    sum
}

#[inline]
fn vec_dot_q8(
    simd: Option<Avx2>,
    w: &WeightMatrix,
    line: usize,
    d: &[f32],
    k: &[i32],
    qs: &[i8],
) -> f32 {
    if let Some(s) = simd {
        match w.storage().row(line, w.cols()) {
            Storage::Mxfp4Pair { blocks, scales } => {
                return s.dot_mxfp4_q8(true, blocks, scales, d, k, qs)
            }
            Storage::Ggml {
                dtype: DType::Mxfp4,
                bytes,
                ..
            } => return s.dot_mxfp4_q8(false, bytes, &[], d, k, qs),
            Storage::Ggml {
                dtype: DType::Q8_0,
                bytes,
                ..
            } => return s.dot_q8_0_q8(bytes, d, qs),
            Storage::Ggml { .. } => {}
        }
    }
    vec_dot_q8_ref(w, line, d, qs)
}

/// MXFP4 stored row `line` as codes + 12 (`wq`, element order) and block scales (`wd`), the form
/// [`Avx2::dot_u12_q8_x4`] takes: AVX2 when `simd` is given, else the scalar twin. None for other storage.
pub fn decode_row_u12(
    simd: Option<Avx2>,
    w: &WeightMatrix,
    line: usize,
    wq: &mut [u8],
    wd: &mut [f32],
) -> Option<()> {
    let nb = w.cols() / QK8;
    let (hf, blocks, scales) = match w.storage().row(line, w.cols()) {
        Storage::Mxfp4Pair { blocks, scales } => (true, blocks, scales),
        Storage::Ggml {
            dtype: DType::Mxfp4,
            bytes,
            ..
        } => (false, bytes, &[][..]),
        Storage::Ggml { .. } => return None,
    };
    if let Some(s) = simd {
        s.decode_mxfp4_u12(hf, blocks, scales, wq, wd);
        return Some(());
    }
    let u = |n: u8| (KVALUES_MXFP4[n as usize] + 12) as u8;
    for ib in 0..nb {
        let (qs, e) = if hf {
            (&blocks[16 * ib..16 * ib + 16], scales[ib])
        } else {
            (&blocks[17 * ib + 1..17 * ib + 17], blocks[17 * ib])
        };
        for j in 0..16 {
            let (lo, hi) = (u(qs[j] & 0x0f), u(qs[j] >> 4));
            if hf {
                wq[32 * ib + 2 * j] = lo;
                wq[32 * ib + 2 * j + 1] = hi;
            } else {
                wq[32 * ib + j] = lo;
                wq[32 * ib + j + 16] = hi;
            }
        }
        wd[ib] = e8m0_to_fp32_half(e);
    }
    Some(())
}

thread_local! {
    /// The caller's reusable activation buffers (no allocation per token once warm).
    static SCRATCH: RefCell<(Q8Acts, Vec<f32>)> = RefCell::new(Default::default());
}

/// Rows each parallel task owns.
const ROWS_PER_TASK: usize = 8;

/// [`matmul`] with activations treated as `precision` says.
pub fn matmul_prec(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    precision: Precision,
) -> Result<(), KernelError> {
    if precision == Precision::Exact {
        return matmul(w, x, n_tokens, y);
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let (acts, rounded) = &mut *s;
            matmul_rounded(w, x, n_tokens, y, acts, rounded)
        }
        // Re-entered on the same thread: fresh buffers.
        Err(_) => matmul_rounded(w, x, n_tokens, y, &mut Q8Acts::default(), &mut Vec::new()),
    })
}

fn matmul_rounded(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    acts: &mut Q8Acts,
    rounded: &mut Vec<f32>,
) -> Result<(), KernelError> {
    let cols = w.cols();
    if x.len() != n_tokens * cols || y.len() != n_tokens * w.rows() {
        // Let the exact path report the mismatch in its words.
        return matmul(w, x, n_tokens, y);
    }
    if uses_q8(w) {
        let nb = cols / QK8;
        acts.d.resize(n_tokens * nb, 0.0);
        acts.k.resize(n_tokens * cols / 4, 0);
        acts.qs.resize(n_tokens * cols, 0);
        for t in 0..n_tokens {
            quantize_row_q8(
                &x[t * cols..(t + 1) * cols],
                &mut acts.d[t * nb..(t + 1) * nb],
                &mut acts.k[t * cols / 4..(t + 1) * cols / 4],
                &mut acts.qs[t * cols..(t + 1) * cols],
            );
        }
        matmul_q8(w, acts, n_tokens, y);
        return Ok(());
    }
    let round: Option<fn(f32) -> f32> = match w.storage() {
        Storage::Ggml {
            dtype: DType::BF16, ..
        } => Some(|v| bf16_to_fp32(fp32_to_bf16(v))),
        Storage::Ggml {
            dtype: DType::F16, ..
        } => Some(|v| fp16_to_fp32(fp32_to_fp16(v))),
        _ => None,
    };
    match round {
        Some(f) => {
            rounded.clear();
            rounded.extend(x.iter().map(|&v| f(v)));
            matmul(w, rounded, n_tokens, y)
        }
        None => matmul(w, x, n_tokens, y),
    }
}

/// `y[t, r] = row r · token t` over quantized activations, parallel over rows; each task walks its rows and,
/// per row, every token (the row stays in L1 across tokens).
fn matmul_q8(w: &WeightMatrix, acts: &Q8Acts, n_tokens: usize, y: &mut [f32]) {
    let (rows, cols) = (w.rows(), w.cols());
    let nb = cols / QK8;
    let simd = Avx2::detect();
    let tok = |t: usize| {
        (
            &acts.d[t * nb..(t + 1) * nb],
            &acts.k[t * cols / 4..(t + 1) * cols / 4],
            &acts.qs[t * cols..(t + 1) * cols],
        )
    };
    if n_tokens == 1 {
        let (d, k, qs) = tok(0);
        y.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(ci, ys)| {
                for (r, yr) in ys.iter_mut().enumerate() {
                    *yr = vec_dot_q8(simd, w, w.line(ci * ROWS_PER_TASK + r), d, k, qs);
                }
            });
        return;
    }
    // Several tokens: each task owns ROWS_PER_TASK rows of yᵀ; an MXFP4 row is decoded once (codes + 12, block
    // scales) and dotted with four tokens at a time, bit-identical to the one-token path; yᵀ is transposed.
    let mut yt = vec![0f32; rows * n_tokens];
    yt.par_chunks_mut(ROWS_PER_TASK * n_tokens)
        .enumerate()
        .for_each_init(
            || (vec![0u8; cols], vec![0f32; nb]),
            |(wq, wd), (ci, yts)| {
                for (k, yrow) in yts.chunks_exact_mut(n_tokens).enumerate() {
                    let line = w.line(ci * ROWS_PER_TASK + k);
                    match simd {
                        Some(s) if decode_row_u12(Some(s), w, line, wq, wd).is_some() => {
                            for t0 in (0..n_tokens).step_by(4) {
                                // A short last group repeats its last token; the extra results are dropped.
                                let ts = [0, 1, 2, 3].map(|j| tok((t0 + j).min(n_tokens - 1)));
                                let r = s.dot_u12_q8_x4(
                                    wq,
                                    wd,
                                    ts.map(|t| t.0),
                                    ts.map(|t| t.1),
                                    ts.map(|t| t.2),
                                );
                                let m = (n_tokens - t0).min(4);
                                yrow[t0..t0 + m].copy_from_slice(&r[..m]);
                            }
                        }
                        _ => {
                            for (t, v) in yrow.iter_mut().enumerate() {
                                let (d, k, qs) = tok(t);
                                *v = vec_dot_q8(simd, w, line, d, k, qs);
                            }
                        }
                    }
                }
            },
        );
    for r in 0..rows {
        for t in 0..n_tokens {
            y[t * rows + r] = yt[r * n_tokens + t];
        }
    }
}

/// The scalar twin of [`matmul_prec`]: one thread, activations rounded by the scalar code, scalar dots.
pub fn matmul_prec_ref(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    precision: Precision,
) -> Result<(), KernelError> {
    if precision == Precision::Exact || !uses_q8(w) {
        let rounded: Vec<f32> = match (precision, w.storage()) {
            (
                Precision::Q8Activations,
                Storage::Ggml {
                    dtype: DType::BF16, ..
                },
            ) => x.iter().map(|&v| bf16_to_fp32(fp32_to_bf16(v))).collect(),
            (
                Precision::Q8Activations,
                Storage::Ggml {
                    dtype: DType::F16, ..
                },
            ) => x.iter().map(|&v| fp16_to_fp32(fp32_to_fp16(v))).collect(),
            _ => x.to_vec(),
        };
        return super::matmul::matmul_ref(w, &rounded, n_tokens, y);
    }
    let (rows, cols) = (w.rows(), w.cols());
    if x.len() != n_tokens * cols || y.len() != n_tokens * rows {
        return matmul(w, x, n_tokens, y);
    }
    let nb = cols / QK8;
    let (mut d, mut k, mut qs) = (vec![0f32; nb], vec![0i32; cols / 4], vec![0i8; cols]);
    for t in 0..n_tokens {
        quantize_row_q8(&x[t * cols..(t + 1) * cols], &mut d, &mut k, &mut qs);
        for r in 0..rows {
            y[t * rows + r] = vec_dot_q8_ref(w, w.line(r), &d, &qs);
        }
    }
    Ok(())
}
