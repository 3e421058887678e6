//! The fast precision: activations rounded to what ggml's CPU backend multiplies each weight type with
//! (`type_traits_cpu[type].vec_dot_type` in ggml-cpu.c), so logits follow llama.cpp's rather than the exact f32
//! reference.
//!
//! | weight type            | activations become                | dot                                 |
//! |------------------------|-----------------------------------|-------------------------------------|
//! | MXFP4 (both layouts)   | Q8_0 (32 per block, d = amax/127 as f16) | integer block sums × (e8m0/2 · d), block by block (ggml's repacked `mxfp4_8x8`) |
//! | Q8_0                   | Q8_0                              | integer block sums × (d_w · d_x)   |
//! | BF16                   | BF16 (round to nearest even)      | `vdpbf16ps` chains: one token as `ggml_vec_dot_bf16`, batches as tinyBLAS |
//! | F16                    | F16                               | f32 accumulation                   |
//! | F32, Q4_*/Q5_*, transposed | unchanged (exact path)        | as [`super::matmul`]               |
//!
//! Q8_0 quantization follows ggml's AVX2 `quantize_row_q8_0` (the path llama.cpp takes on x86): multiplier
//! `127 / amax`, round half to even. Each optimized dot has a scalar twin here ([`vec_dot_q8_ref`]).

use std::cell::RefCell;

use rayon::prelude::*;

use ossify_formats::quant::q8_0::QK8_0;
use ossify_formats::quant::{
    bf16_to_fp32, fp16_to_fp32, fp32_to_bf16, fp32_to_fp16, BlockMxfp4, BlockQ8_0, QK_MXFP4,
};
use ossify_formats::DType;

use super::decode::{e8m0_to_fp32_half, KVALUES_MXFP4};
use super::matmul::{matmul_with, Storage, WeightMatrix};
use super::simd::{Avx2, Isa, PANEL_BLOCK, PANEL_ROWS};
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

/// Bytes of nibbles per MXFP4 block (the HF pair's `blocks`).
const NIB: usize = QK_MXFP4 / 2;

/// Activations of `n` tokens quantized to Q8_0: per token `cols / 32` scales (the f16 `d`, widened), `cols`
/// signed bytes, and `cols / 4` lane sums `k` = −12 · (sum of each 4 consecutive bytes), which turn the
/// unsigned-weight dots (FP4 codes + 12) back into signed ones.
#[derive(Default, Debug)]
pub struct Q8Acts {
    pub d: Vec<f32>,
    pub k: Vec<i32>,
    /// Per block, −12 · the sum of its codes (the unsigned-weight correction of a whole block).
    pub sx: Vec<i32>,
    pub qs: Vec<i8>,
    /// BF16 activations (for BF16 weights under AVX-512 BF16).
    pub bf16: Vec<u16>,
}

/// Quantizes one row (`x.len()` a multiple of 32) into `d` (one per block) and `qs`, as ggml's AVX2
/// `quantize_row_q8_0`: `d = f16(amax / 127)`, `q = round_half_even(x · (127 / amax))`.
/// `k` (8 per block) gets −12 · the sum of each 4 consecutive codes.
pub fn quantize_row_q8(x: &[f32], d: &mut [f32], k: &mut [i32], qs: &mut [i8]) {
    for (((xb, db), kb), qb) in x
        .chunks_exact(QK8_0)
        .zip(d.iter_mut())
        .zip(k.chunks_exact_mut(8))
        .zip(qs.chunks_exact_mut(QK8_0))
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
        && w.cols() % QK8_0 == 0
        && matches!(
            w.storage(),
            Storage::Mxfp4Pair { .. }
                | Storage::Ggml {
                    dtype: DType::Mxfp4 | DType::Q8_0,
                    ..
                }
        )
}

/// The 32 weights of block `ib` of a stored row as integers in element order (FP4 codes doubled for MXFP4, the
/// i8 values for Q8_0) and the block's weight scale (E8M0 halved, or the f16 `d`). None for other storage.
fn block_ints(row: Storage, ib: usize) -> Option<([i32; QK8_0], f32)> {
    let mut v = [0i32; QK8_0];
    let scale = match row {
        Storage::Mxfp4Pair { blocks, scales } => {
            let b = &blocks[ib * NIB..][..NIB];
            for j in 0..NIB {
                v[2 * j] = i32::from(KVALUES_MXFP4[(b[j] & 0x0f) as usize]);
                v[2 * j + 1] = i32::from(KVALUES_MXFP4[(b[j] >> 4) as usize]);
            }
            e8m0_to_fp32_half(scales[ib])
        }
        Storage::Ggml {
            dtype: DType::Mxfp4,
            bytes,
            ..
        } => {
            let blk = &bytes[ib * BlockMxfp4::SIZE..][..BlockMxfp4::SIZE];
            for j in 0..NIB {
                v[j] = i32::from(KVALUES_MXFP4[(blk[1 + j] & 0x0f) as usize]);
                v[j + NIB] = i32::from(KVALUES_MXFP4[(blk[1 + j] >> 4) as usize]);
            }
            e8m0_to_fp32_half(blk[0])
        }
        Storage::Ggml {
            dtype: DType::Q8_0,
            bytes,
            ..
        } => {
            let blk = &bytes[ib * BlockQ8_0::SIZE..][..BlockQ8_0::SIZE];
            for (vj, &q) in v.iter_mut().zip(&blk[2..]) {
                *vj = i32::from(q as i8);
            }
            fp16_to_fp32(u16::from_le_bytes([blk[0], blk[1]]))
        }
        Storage::Ggml { .. } => return None,
    };
    Some((v, scale))
}

/// Stored row `line` of `w` · one token's Q8_0 activations: the scalar twin of every SIMD path, bit for bit.
///
/// MXFP4 (both layouts), as ggml's repacked `gemv/gemm_mxfp4_8x8_q8_0` (the path llama.cpp's CPU backend takes
/// for MXFP4 weights on AVX2 and later): per block the integer sum of 32 products, then
/// `acc = fma(float(sum), e · d, acc)` block after block.
///
/// Q8_0, as llama.cpp's `tinyBLAS_Q0_AVX` (llamafile sgemm, which ggml's CPU backend runs for Q8_0 weights on
/// x86): per block 8 integer lane sums of 4 products, each lane scaled by `w_scale · d` into its accumulator by a
/// fused multiply-add, block after block, then the lanes summed as `hsum` does (`(l0+l4 + l2+l6) +
/// (l1+l5 + l3+l7)`).
pub fn vec_dot_q8_ref(w: &WeightMatrix, line: usize, d: &[f32], qs: &[i8]) -> f32 {
    let nb = w.cols() / QK8_0;
    let row = w.storage().row(line, w.cols());
    let per_block = !matches!(
        row,
        Storage::Ggml {
            dtype: DType::Q8_0,
            ..
        }
    );
    let mut sum = 0f32;
    let mut acc = [0f32; 8];
    for ib in 0..nb {
        let Some((v, ws)) = block_ints(row, ib) else {
            return f32::NAN;
        };
        let xq = &qs[ib * QK8_0..(ib + 1) * QK8_0];
        let sc = ws * d[ib];
        if per_block {
            let isum: i32 = v.iter().zip(xq).map(|(a, &b)| a * i32::from(b)).sum();
            sum = (isum as f32).mul_add(sc, sum);
            continue;
        }
        for (l, a) in acc.iter_mut().enumerate() {
            let lane: i32 = (4 * l..4 * l + 4).map(|j| v[j] * i32::from(xq[j])).sum();
            *a = sc.mul_add(lane as f32, *a);
        }
    }
    if per_block {
        return sum;
    }
    let s: [f32; 4] = std::array::from_fn(|i| acc[i] + acc[i + 4]);
    (s[0] + s[2]) + (s[1] + s[3])
}

/// MXFP4 stored row `line` as codes + 12 (`wq`, element order) and block scales (`wd`), what a panel is built
/// from: AVX2 when `simd` is given, else the scalar twin. None for other storage.
pub fn decode_row_u12(
    simd: Option<Avx2>,
    w: &WeightMatrix,
    line: usize,
    wq: &mut [u8],
    wd: &mut [f32],
) -> Option<()> {
    let row = w.storage().row(line, w.cols());
    let (hf, blocks, scales) = match row {
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
    for ib in 0..w.cols() / QK8_0 {
        let (v, e) = block_ints(row, ib)?;
        for (q, c) in wq[ib * QK8_0..(ib + 1) * QK8_0].iter_mut().zip(v) {
            *q = (c + 12) as u8;
        }
        wd[ib] = e;
    }
    Some(())
}

thread_local! {
    /// The caller's reusable activation buffers (no allocation per token once warm).
    static SCRATCH: RefCell<(Q8Acts, Vec<f32>)> = RefCell::new(Default::default());
}

/// Rows each parallel task owns.
const ROWS_PER_TASK: usize = 8;

/// [`super::matmul()`] with activations treated as `precision` says.
pub fn matmul_prec(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    precision: Precision,
) -> Result<(), KernelError> {
    matmul_prec_with(Isa::detect(), w, x, n_tokens, y, precision)
}

/// [`matmul_prec`] with the implementation chosen by the caller (tests run each one this CPU supports).
pub fn matmul_prec_with(
    isa: Isa,
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    precision: Precision,
) -> Result<(), KernelError> {
    if precision == Precision::Exact {
        return matmul_with(isa, w, x, n_tokens, y);
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => {
            let (acts, rounded) = &mut *s;
            matmul_rounded(isa, w, x, n_tokens, y, acts, rounded)
        }
        // Re-entered on the same thread: fresh buffers.
        Err(_) => matmul_rounded(
            isa,
            w,
            x,
            n_tokens,
            y,
            &mut Q8Acts::default(),
            &mut Vec::new(),
        ),
    })
}

fn matmul_rounded(
    isa: Isa,
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
        return matmul_with(isa, w, x, n_tokens, y);
    }
    if uses_q8(w) {
        let nb = cols / QK8_0;
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
        acts.sx.clear();
        acts.sx
            .extend(acts.k.chunks_exact(8).map(|l| l.iter().sum::<i32>()));
        matmul_q8(isa, w, acts, n_tokens, y);
        return Ok(());
    }
    match w.storage() {
        Storage::Ggml {
            dtype: DType::BF16,
            bytes,
            row_bytes,
        } if !w.is_transposed() && isa.avx512().is_some_and(|s| s.has_bf16()) => {
            acts.bf16.clear();
            acts.bf16.extend(x.iter().map(|&v| fp32_to_bf16(v)));
            matmul_bf16_bf16(isa, w, bytes, row_bytes, &acts.bf16, n_tokens, y);
            Ok(())
        }
        Storage::Ggml {
            dtype: DType::BF16, ..
        } => {
            rounded.clear();
            rounded.extend(x.iter().map(|&v| bf16_to_fp32(fp32_to_bf16(v))));
            matmul_with(isa, w, rounded, n_tokens, y)
        }
        Storage::Ggml {
            dtype: DType::F16, ..
        } => {
            rounded.clear();
            rounded.extend(x.iter().map(|&v| fp16_to_fp32(fp32_to_fp16(v))));
            matmul_with(isa, w, rounded, n_tokens, y)
        }
        _ => matmul_with(isa, w, x, n_tokens, y),
    }
}

/// Tokens whose BF16 activations one pass over the weights serves.
const BF16_TOKENS_PER_TILE: usize = 64;

/// BF16 weights · BF16 activations with `vdpbf16ps` (AVX-512 BF16), parallel over rows, summed as llama.cpp's
/// CPU backend sums them: one token as `ggml_vec_dot_bf16` (two chains, f64 total), several in tiles of 4 rows ×
/// 2 tokens in tinyBLAS's order (one chain per row); `y = (yᵀ)ᵀ` as [`super::matmul()`] does. The weights are
/// read in place, never decoded.
fn matmul_bf16_bf16(
    isa: Isa,
    w: &WeightMatrix,
    bytes: &[u8],
    row_bytes: usize,
    xb: &[u16],
    n_tokens: usize,
    y: &mut [f32],
) {
    let (rows, cols) = (w.rows(), w.cols());
    let Some(s) = isa.avx512() else {
        return;
    };
    let row = |r: usize| {
        let line = w.line(r);
        &bytes[line * row_bytes..(line + 1) * row_bytes]
    };
    if n_tokens == 1 {
        y.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(ci, ys)| {
                let r0 = ci * ROWS_PER_TASK;
                for (k, v) in ys.iter_mut().enumerate() {
                    *v = s.vec_dot_bf16(row(r0 + k), xb, cols).unwrap_or(f32::NAN);
                }
            });
        return;
    }
    let tile_max = n_tokens.min(BF16_TOKENS_PER_TILE);
    let mut yt = vec![0f32; rows * tile_max];
    for (tile, xs) in xb.chunks(BF16_TOKENS_PER_TILE * cols).enumerate() {
        let nt = xs.len() / cols;
        let yt = &mut yt[..rows * nt];
        let xrow = |t: usize| &xs[t * cols..(t + 1) * cols];
        yt.par_chunks_mut(ROWS_PER_TASK * nt)
            .enumerate()
            .for_each(|(ci, yts)| {
                let nr = yts.len() / nt;
                let r0 = ci * ROWS_PER_TASK;
                let mut k = 0;
                while k < nr {
                    // Four rows at a time; a short last group repeats its last row and drops the extras.
                    let rs = [0, 1, 2, 3].map(|j| row(r0 + (k + j).min(nr - 1)));
                    let m = (nr - k).min(4);
                    let mut t = 0;
                    while t < nt {
                        let t1 = (t + 1).min(nt - 1);
                        let d = s
                            .dot4x2_bf16(rs, [xrow(t), xrow(t1)], cols)
                            .unwrap_or([[f32::NAN; 4]; 2]);
                        for j in 0..m {
                            yts[(k + j) * nt + t] = d[0][j];
                            if t1 != t {
                                yts[(k + j) * nt + t1] = d[1][j];
                            }
                        }
                        t += 2;
                    }
                    k += 4;
                }
            });
        let t0 = tile * BF16_TOKENS_PER_TILE;
        for r in 0..rows {
            for t in 0..nt {
                y[(t0 + t) * rows + r] = yt[r * nt + t];
            }
        }
    }
}

/// `y[t, r] = row r · token t` over quantized activations, parallel over rows: MXFP4 through panels of 8 rows
/// when there is SIMD, Q8_0 row by row; yᵀ is transposed into y.
fn matmul_q8(isa: Isa, w: &WeightMatrix, acts: &Q8Acts, n_tokens: usize, y: &mut [f32]) {
    let (rows, cols) = (w.rows(), w.cols());
    let nb = cols / QK8_0;
    let tok = |t: usize| {
        (
            &acts.d[t * nb..(t + 1) * nb],
            &acts.sx[t * nb..(t + 1) * nb],
            &acts.qs[t * cols..(t + 1) * cols],
        )
    };
    let mxfp4 = matches!(
        w.storage(),
        Storage::Mxfp4Pair { .. }
            | Storage::Ggml {
                dtype: DType::Mxfp4,
                ..
            }
    );
    if let (true, Some(s)) = (mxfp4, isa.avx2()) {
        matmul_mxfp4_panels(s, w, &tok, n_tokens, y);
        return;
    }
    let q8_0 = match w.storage() {
        Storage::Ggml {
            dtype: DType::Q8_0,
            bytes,
            row_bytes,
        } => Some((bytes, row_bytes)),
        _ => None,
    };
    let mut yt = vec![0f32; rows * n_tokens];
    yt.par_chunks_mut(ROWS_PER_TASK * n_tokens)
        .enumerate()
        .for_each(|(ci, yts)| {
            let nr = yts.len() / n_tokens;
            let r0 = ci * ROWS_PER_TASK;
            match (q8_0, isa.avx2()) {
                (Some((bytes, row_bytes)), Some(s)) => {
                    let row = |r: usize| {
                        let line = w.line(r0 + r.min(nr - 1));
                        &bytes[line * row_bytes..(line + 1) * row_bytes]
                    };
                    if n_tokens == 1 {
                        // Decode: one row at a time, one stream of weights per thread, as ggml does.
                        let (d, _, qs) = tok(0);
                        for (k, v) in yts.iter_mut().enumerate() {
                            *v = s.q8_0_tile_1x1(row(k), d, qs);
                        }
                        return;
                    }
                    // Four rows at a time (a short last group repeats its last row), four tokens at a time.
                    for k in (0..nr).step_by(4) {
                        let rs = [0, 1, 2, 3].map(|j| row(k + j));
                        let m = (nr - k).min(4);
                        let mut put = |t: usize, v: &[f32; 4]| {
                            for (j, &vj) in v.iter().enumerate().take(m) {
                                yts[(k + j) * n_tokens + t] = vj;
                            }
                        };
                        let mut t0 = 0;
                        while t0 + 4 <= n_tokens {
                            let ts = [0, 1, 2, 3].map(|j| tok(t0 + j));
                            let o = s.q8_0_tile_4x4(rs, ts.map(|t| t.0), ts.map(|t| t.2));
                            for (j, oj) in o.iter().enumerate() {
                                put(t0 + j, oj);
                            }
                            t0 += 4;
                        }
                        for t in t0..n_tokens {
                            let (d, _, qs) = tok(t);
                            put(t, &s.q8_0_tile_4x1(rs, d, qs));
                        }
                    }
                }
                _ => {
                    for (k, yrow) in yts.chunks_exact_mut(n_tokens).enumerate() {
                        let line = w.line(r0 + k);
                        for (t, v) in yrow.iter_mut().enumerate() {
                            let (d, _, qs) = tok(t);
                            *v = vec_dot_q8_ref(w, line, d, qs);
                        }
                    }
                }
            }
        });
    for r in 0..rows {
        for t in 0..n_tokens {
            y[t * rows + r] = yt[r * n_tokens + t];
        }
    }
}

/// One worker's panel buffers, kept between calls: a fresh zeroed set per rayon split (`for_each_init`) cost a
/// one-token matvec about as much memory traffic as its weights.
#[derive(Default)]
struct PanelBuffers {
    wq: Vec<u8>,
    wd: Vec<f32>,
    panel: Vec<u8>,
    ws: Vec<f32>,
}

thread_local! {
    static PANEL_SCRATCH: RefCell<PanelBuffers> = RefCell::new(PanelBuffers::default());
}

/// `v[..n]`, growing `v` (zero-filled) only when it is shorter.
fn at_least<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// Panel `pi` of [`matmul_mxfp4_panels`]: rows `8 pi ..` of `w` against every token, into `yts` (`[rows, n]`).
fn panel_task<'t>(
    s: Avx2,
    w: &WeightMatrix,
    tok: &(dyn Fn(usize) -> (&'t [f32], &'t [i32], &'t [i8]) + Sync),
    n_tokens: usize,
    pi: usize,
    yts: &mut [f32],
    buf: &mut PanelBuffers,
) {
    let cols = w.cols();
    let nb = cols / QK8_0;
    let wq = at_least(&mut buf.wq, PANEL_ROWS * cols);
    let wd = at_least(&mut buf.wd, PANEL_ROWS * nb);
    let panel = at_least(&mut buf.panel, nb * PANEL_BLOCK);
    let ws = at_least(&mut buf.ws, nb * PANEL_ROWS);
    let nr = yts.len() / n_tokens;
    let line = |r: usize| w.line(pi * PANEL_ROWS + r.min(nr - 1));
    if let Storage::Ggml {
        dtype: DType::Mxfp4,
        bytes,
        row_bytes,
    } = w.storage()
    {
        let rows = std::array::from_fn(|r| &bytes[line(r) * row_bytes..(line(r) + 1) * row_bytes]);
        if n_tokens == 1 {
            // Decode: the blocks go straight from the weights into the dot (the panel would be used once).
            let (d, sx, qs) = tok(0);
            let o = s.mxfp4_ggml_q8_x1(rows, d, sx, qs);
            yts.copy_from_slice(&o[..nr]);
            return;
        }
        s.build_panel_ggml(rows, panel, ws);
    } else {
        for r in 0..PANEL_ROWS {
            let (q, e) = (
                &mut wq[r * cols..(r + 1) * cols],
                &mut wd[r * nb..(r + 1) * nb],
            );
            if decode_row_u12(Some(s), w, line(r), q, e).is_none() {
                yts.fill(f32::NAN);
                return;
            }
        }
        s.build_panel(wq, cols, panel);
        for ib in 0..nb {
            for r in 0..PANEL_ROWS {
                ws[ib * PANEL_ROWS + r] = wd[r * nb + ib];
            }
        }
    }
    let mut put = |t: usize, v: &[f32; PANEL_ROWS]| {
        for (r, &vr) in v.iter().enumerate().take(nr) {
            yts[r * n_tokens + t] = vr;
        }
    };
    let mut t0 = 0;
    while t0 + 4 <= n_tokens {
        let ts = [0, 1, 2, 3].map(|j| tok(t0 + j));
        let o = s.panel_q8_x4(panel, ws, ts.map(|t| t.0), ts.map(|t| t.1), ts.map(|t| t.2));
        for (j, oj) in o.iter().enumerate() {
            put(t0 + j, oj);
        }
        t0 += 4;
    }
    for t in t0..n_tokens {
        let (d, sx, qs) = tok(t);
        put(t, &s.panel_q8_x1(panel, ws, d, sx, qs));
    }
}

/// MXFP4 weights · Q8_0 activations as llama.cpp's repacked MXFP4 kernels compute them: each task decodes 8 rows
/// into a panel (codes + 12, transposed so that a register holds 8 rows) once, then runs every token over it, four
/// at a time; a short last panel repeats its last row and drops the extra results.
fn matmul_mxfp4_panels<'t>(
    s: Avx2,
    w: &WeightMatrix,
    tok: &(dyn Fn(usize) -> (&'t [f32], &'t [i32], &'t [i8]) + Sync),
    n_tokens: usize,
    y: &mut [f32],
) {
    let rows = w.rows();
    let mut yt = vec![0f32; rows * n_tokens];
    yt.par_chunks_mut(PANEL_ROWS * n_tokens)
        .enumerate()
        .for_each(|(pi, yts)| {
            PANEL_SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut b) => panel_task(s, w, tok, n_tokens, pi, yts, &mut b),
                // Re-entered on the same thread: fresh buffers.
                Err(_) => panel_task(s, w, tok, n_tokens, pi, yts, &mut PanelBuffers::default()),
            })
        });
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
        return super::matmul::matmul_ref(w, x, n_tokens, y);
    }
    let nb = cols / QK8_0;
    let (mut d, mut k, mut qs) = (vec![0f32; nb], vec![0i32; cols / 4], vec![0i8; cols]);
    for t in 0..n_tokens {
        quantize_row_q8(&x[t * cols..(t + 1) * cols], &mut d, &mut k, &mut qs);
        for r in 0..rows {
            y[t * rows + r] = vec_dot_q8_ref(w, w.line(r), &d, &qs);
        }
    }
    Ok(())
}
