//! `y = x · Wᵀ (+ nothing)` over weights of any supported type, decoded on the fly.
//!
//! A [`WeightMatrix`] describes a 2-D matrix inside a tensor's bytes without copying: its storage (a ggml type
//! with a row stride, or the HF/OpenAI MXFP4 pair), which stored rows are its rows (`first`, `step`: the even /
//! odd rows of an interleaved gate/up projection, the q/k/v row ranges of a fused qkv), and its orientation
//! (stored `(out, in)` as usual, or `(in, out)` as BF16 fine-tunes store experts).
//!
//! The kernel decodes each weight row once per call into a small per-task scratch and dots it with every
//! token's activation, so prefill costs one decode per weight, and a matrix is never dequantized whole.

use std::cell::RefCell;

use rayon::prelude::*;

use ossify_formats::DType;

use super::decode::{decode_row, decode_row_mxfp4_hf, is_decodable, scalar_at};
use super::simd::{Avx2, Isa};
use super::KernelError;

/// Where a matrix's numbers are stored.
#[derive(Clone, Copy, Debug)]
pub enum Storage<'a> {
    /// Stored rows of `dtype` elements (plain scalars or ggml blocks, ggml MXFP4 included), `row_bytes` apart.
    Ggml {
        dtype: DType,
        bytes: &'a [u8],
        row_bytes: usize,
    },
    /// The HF / OpenAI MXFP4 pair: per stored row, `cols / 2` bytes of nibbles and `cols / 32` E8M0 scales.
    Mxfp4Pair { blocks: &'a [u8], scales: &'a [u8] },
}

impl<'a> Storage<'a> {
    /// Stored row `line` alone (of a matrix with `cols` columns), in the same form: the one place that spells
    /// where a stored row's bytes lie, for every kernel.
    #[inline]
    pub fn row(self, line: usize, cols: usize) -> Storage<'a> {
        match self {
            Storage::Ggml {
                dtype,
                bytes,
                row_bytes,
            } => Storage::Ggml {
                dtype,
                bytes: &bytes[line * row_bytes..(line + 1) * row_bytes],
                row_bytes,
            },
            Storage::Mxfp4Pair { blocks, scales } => {
                let (b, s) = (cols / 2, cols / 32);
                Storage::Mxfp4Pair {
                    blocks: &blocks[line * b..(line + 1) * b],
                    scales: &scales[line * s..(line + 1) * s],
                }
            }
        }
    }
}

/// A 2-D weight matrix `rows (out) × cols (in)` viewed inside stored bytes.
#[derive(Clone, Copy, Debug)]
pub struct WeightMatrix<'a> {
    storage: Storage<'a>,
    /// Logical output features.
    rows: usize,
    /// Logical input features.
    cols: usize,
    /// Logical row r is stored line `first + r * step`.
    first: usize,
    step: usize,
    /// Stored as (in, out): logical row r is a stored column.
    transposed: bool,
}

impl<'a> WeightMatrix<'a> {
    /// A stored `(rows, cols)` matrix of `dtype`, rows packed back to back.
    pub fn new(
        dtype: DType,
        bytes: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, KernelError> {
        if !is_decodable(dtype) {
            return Err(KernelError::UnsupportedType(dtype));
        }
        let row_bytes = dtype.nbytes(cols).ok_or(KernelError::Shape(format!(
            "{cols} columns of {dtype} are not whole blocks"
        )))?;
        check_len(bytes.len(), rows, row_bytes, "matrix")?;
        Ok(Self {
            storage: Storage::Ggml {
                dtype,
                bytes,
                row_bytes,
            },
            rows,
            cols,
            first: 0,
            step: 1,
            transposed: false,
        })
    }

    /// The HF / OpenAI MXFP4 pair for a stored `(rows, cols)` matrix: `blocks` `[rows, cols/32, 16]`,
    /// `scales` `[rows, cols/32]`.
    pub fn mxfp4_pair(
        blocks: &'a [u8],
        scales: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, KernelError> {
        if cols % 32 != 0 {
            return Err(KernelError::Shape(format!(
                "MXFP4 row length {cols} is not a multiple of 32"
            )));
        }
        check_len(blocks.len(), rows, cols / 2, "MXFP4 blocks")?;
        check_len(scales.len(), rows, cols / 32, "MXFP4 scales")?;
        Ok(Self {
            storage: Storage::Mxfp4Pair { blocks, scales },
            rows,
            cols,
            first: 0,
            step: 1,
            transposed: false,
        })
    }

    /// A matrix stored transposed, as `(in_features, out_features)` of a plain scalar type (F32, F16, BF16):
    /// the orientation of BF16 fine-tunes' experts. The result has `out_features` rows and `in_features`
    /// columns; `y = x · W` is computed by accumulating stored rows scaled by x.
    pub fn transposed(
        dtype: DType,
        bytes: &'a [u8],
        in_features: usize,
        out_features: usize,
    ) -> Result<Self, KernelError> {
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(KernelError::UnsupportedType(dtype));
        }
        let row_bytes = out_features * dtype.type_size();
        check_len(bytes.len(), in_features, row_bytes, "transposed matrix")?;
        Ok(Self {
            storage: Storage::Ggml {
                dtype,
                bytes,
                row_bytes,
            },
            rows: out_features,
            cols: in_features,
            first: 0,
            step: 1,
            transposed: true,
        })
    }

    /// The `n` rows `first, first + step, ...` of this matrix, as a matrix (no copy).
    pub fn select_rows(&self, first: usize, step: usize, n: usize) -> Result<Self, KernelError> {
        if step == 0 || n == 0 || first + (n - 1) * step >= self.rows {
            return Err(KernelError::Shape(format!(
                "rows {first}, {first}+{step}, ... ({n} rows) are outside a matrix of {} rows",
                self.rows
            )));
        }
        Ok(Self {
            rows: n,
            first: self.first + first * self.step,
            step: self.step * step,
            ..*self
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn is_transposed(&self) -> bool {
        self.transposed
    }

    /// Where the numbers are stored.
    pub fn storage(&self) -> Storage<'a> {
        self.storage
    }

    /// The stored line holding logical row `r`.
    #[inline]
    pub(crate) fn line(&self, r: usize) -> usize {
        self.first + r * self.step
    }

    /// Decodes stored row `line` into `dst[..cols]` (row-major storage only), MXFP4 through AVX2 when there.
    #[inline]
    fn decode_stored_row_with(&self, simd: Option<Avx2>, line: usize, dst: &mut [f32]) {
        if let Some(s) = simd {
            match self.storage.row(line, self.cols) {
                Storage::Mxfp4Pair { blocks, scales } => {
                    return s.decode_mxfp4_hf(blocks, scales, dst);
                }
                Storage::Ggml {
                    dtype: DType::Mxfp4,
                    bytes,
                    ..
                } => return s.decode_mxfp4_ggml(bytes, dst),
                Storage::Ggml { .. } => {}
            }
        }
        self.decode_stored_row(line, dst)
    }

    /// Decodes stored row `line` into `dst[..cols]` (row-major storage only): the scalar reference decoders.
    #[inline]
    fn decode_stored_row(&self, line: usize, dst: &mut [f32]) {
        match self.storage.row(line, self.cols) {
            Storage::Ggml { dtype, bytes, .. } => decode_row(dtype, bytes, dst),
            Storage::Mxfp4Pair { blocks, scales } => decode_row_mxfp4_hf(blocks, scales, dst),
        }
    }

    /// Stored row `line` · x for one token: decode fused with the dot for MXFP4 (both layouts), BF16 and Q8_0 when
    /// AVX2 is there, otherwise decode into `scratch` and dot.
    #[inline]
    fn row_dot(&self, simd: Option<Avx2>, line: usize, x: &[f32], scratch: &mut [f32]) -> f32 {
        if let Some(s) = simd {
            match self.storage.row(line, self.cols) {
                Storage::Mxfp4Pair { blocks, scales } => {
                    return s.dot_mxfp4_hf(blocks, scales, x);
                }
                Storage::Ggml {
                    dtype: DType::Mxfp4,
                    bytes,
                    ..
                } => return s.dot_mxfp4_ggml(bytes, x),
                Storage::Ggml {
                    dtype: DType::BF16,
                    bytes,
                    ..
                } => return s.dot_bf16(bytes, x),
                Storage::Ggml {
                    dtype: DType::Q8_0,
                    bytes,
                    ..
                } if self.cols % 32 == 0 => return s.dot_q8_0(bytes, x),
                Storage::Ggml { .. } => {}
            }
        }
        self.decode_stored_row(line, scratch);
        dot_with(simd, scratch, x)
    }

    /// Decodes logical row `r` into `dst` (`cols` values), whatever the orientation. Used to gather
    /// embedding rows and by the scalar reference; slow for transposed matrices.
    pub fn decode_row_into(&self, r: usize, dst: &mut [f32]) -> Result<(), KernelError> {
        if r >= self.rows || dst.len() != self.cols {
            return Err(KernelError::Shape(format!(
                "row {r} of a {}x{} matrix into {} values",
                self.rows,
                self.cols,
                dst.len()
            )));
        }
        let line = self.first + r * self.step;
        if self.transposed {
            if let Storage::Ggml {
                dtype,
                bytes,
                row_bytes,
            } = self.storage
            {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = scalar_at(dtype, &bytes[i * row_bytes..(i + 1) * row_bytes], line);
                }
            }
        } else {
            self.decode_stored_row(line, dst);
        }
        Ok(())
    }
}

fn check_len(have: usize, rows: usize, row_bytes: usize, what: &str) -> Result<(), KernelError> {
    let want = rows
        .checked_mul(row_bytes)
        .ok_or(KernelError::Shape(format!("{what}: size overflows")))?;
    if have != want {
        return Err(KernelError::Shape(format!(
            "{what}: {rows} rows of {row_bytes} bytes need {want} bytes, {have} given"
        )));
    }
    Ok(())
}

/// Rows each parallel task decodes at once (normal orientation); its scratch is `ROWS_PER_TASK * cols` f32.
const ROWS_PER_TASK: usize = 8;
/// Tokens whose activations one pass over the weights serves (prefill); a tile of a 2880-wide model is 720 KiB.
const TOKENS_PER_TILE: usize = 64;
/// Output features each parallel task owns in the transposed orientation.
const COLS_PER_TASK: usize = 64;

/// Σ a·b: AVX2/FMA when the CPU has it, [`dot_scalar`] otherwise.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_with(Isa::detect().avx2(), a, b)
}

/// Σ a·b with the AVX2 kernel when `simd` is given, [`dot_scalar`] otherwise.
#[inline]
pub fn dot_with(simd: Option<Avx2>, a: &[f32], b: &[f32]) -> f32 {
    match simd {
        Some(s) => s.dot(a, b),
        None => dot_scalar(a, b),
    }
}

/// The portable dot: 8 independent partial sums, so the loop vectorizes; the order is fixed, so results are
/// deterministic.
#[inline]
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

fn check_io(w: &WeightMatrix, x: &[f32], n_tokens: usize, y: &[f32]) -> Result<(), KernelError> {
    if x.len() != n_tokens * w.cols || y.len() != n_tokens * w.rows {
        return Err(KernelError::Shape(format!(
            "matmul of a {}x{} matrix with {} tokens: x has {} values (want {}), y has {} (want {})",
            w.rows,
            w.cols,
            n_tokens,
            x.len(),
            n_tokens * w.cols,
            y.len(),
            n_tokens * w.rows
        )));
    }
    Ok(())
}

/// `y[t, r] = Σ_c W[r, c] · x[t, c]` for `n_tokens` tokens: x is `[n_tokens, cols]`, y `[n_tokens, rows]`, both
/// row-major. Parallel over output rows on the current rayon pool.
pub fn matmul(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    matmul_with(Isa::detect(), w, x, n_tokens, y)
}

/// [`matmul`] with the implementation chosen by the caller (tests run each one this CPU supports).
pub fn matmul_with(
    isa: Isa,
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_io(w, x, n_tokens, y)?;
    if n_tokens == 0 || w.rows == 0 {
        return Ok(());
    }
    if w.transposed {
        matmul_transposed(w, x, n_tokens, y);
        return Ok(());
    }
    let cols = w.cols;
    let simd = isa.avx2();
    if n_tokens == 1 {
        y.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .for_each(|(ci, ys)| {
                with_scratch(cols, |scratch| {
                    for (k, yr) in ys.iter_mut().enumerate() {
                        let r = ci * ROWS_PER_TASK + k;
                        *yr = w.row_dot(simd, w.first + r * w.step, x, scratch);
                    }
                })
            });
        return Ok(());
    }
    // Several tokens, in tiles of TOKENS_PER_TILE (bounds the temporary and keeps the tile's activations in
    // cache): each task owns ROWS_PER_TASK rows of yᵀ ([rows, tile]), decodes them once per tile and dots them
    // with every token of the tile; yᵀ is transposed into y.
    let tile_max = n_tokens.min(TOKENS_PER_TILE);
    let mut yt = vec![0f32; w.rows * tile_max];
    for (tile, xs) in x.chunks(TOKENS_PER_TILE * cols).enumerate() {
        let nt = xs.len() / cols;
        let yt = &mut yt[..w.rows * nt];
        yt.par_chunks_mut(ROWS_PER_TASK * nt)
            .enumerate()
            .for_each(|(ci, yts)| {
                with_scratch(ROWS_PER_TASK * cols, |scratch| {
                    let nr = yts.len() / nt;
                    for k in 0..nr {
                        let r = ci * ROWS_PER_TASK + k;
                        w.decode_stored_row_with(
                            simd,
                            w.first + r * w.step,
                            &mut scratch[k * cols..(k + 1) * cols],
                        );
                    }
                    let row = |k: usize| &scratch[k * cols..(k + 1) * cols];
                    let xrow = |t: usize| &xs[t * cols..(t + 1) * cols];
                    let mut t = 0;
                    // Four tokens against four rows at a time where AVX-512 gives the registers, then two,
                    // then the leftovers one by one (each dot summed in the same order whichever tile runs it).
                    if let Some(s) = simd {
                        if let Some(z) = isa.avx512() {
                            t = token_tiles(s, t, nr, nt, &row, &xrow, yts, |r, x| {
                                z.dot4x4_f32(r, x, cols)
                            });
                        }
                        t = token_tiles(s, t, nr, nt, &row, &xrow, yts, |r, x| {
                            s.dot4x2(r, x, cols)
                        });
                    }
                    for t in t..nt {
                        for k in 0..nr {
                            yts[k * nt + t] = dot_with(simd, row(k), xrow(t));
                        }
                    }
                })
            });
        let t0 = tile * TOKENS_PER_TILE;
        transpose_into(yt, w.rows, nt, &mut y[t0 * w.rows..(t0 + nt) * w.rows]);
    }
    Ok(())
}

thread_local! {
    /// One worker's f32 row scratch, kept between calls: allocating a zeroed one per rayon split
    /// (`for_each_init`) cost a one-token matvec memory traffic of the order of its weights.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `n` floats of this thread's scratch (fresh ones if the scratch is already in use here).
fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < n {
                v.resize(n, 0.0);
            }
            f(&mut v[..n])
        }
        Err(_) => f(&mut vec![0f32; n]),
    })
}

/// `src` is `[a, b]`, `dst` becomes `[b, a]`.
fn transpose_into(src: &[f32], a: usize, b: usize, dst: &mut [f32]) {
    for i in 0..a {
        for j in 0..b {
            dst[j * a + i] = src[i * b + j];
        }
    }
}

/// Tokens `t..nt` of a prefill task in groups of `T` against its `nr` decoded rows in groups of 4 (`tile`, which
/// returns `out[j][k] = row k · token j`), the rows left over by single dots into `yts` (`[nr, nt]`); returns the
/// first token no group took.
#[allow(clippy::too_many_arguments)]
fn token_tiles<'r, const T: usize>(
    s: Avx2,
    mut t: usize,
    nr: usize,
    nt: usize,
    row: &impl Fn(usize) -> &'r [f32],
    xrow: &impl Fn(usize) -> &'r [f32],
    yts: &mut [f32],
    tile: impl Fn([&'r [f32]; 4], [&'r [f32]; T]) -> [[f32; 4]; T],
) -> usize {
    while t + T <= nt {
        let xs: [&[f32]; T] = std::array::from_fn(|j| xrow(t + j));
        let mut k = 0;
        while k + 4 <= nr {
            let d = tile(std::array::from_fn(|i| row(k + i)), xs);
            for (j, dj) in d.iter().enumerate() {
                for (i, &v) in dj.iter().enumerate() {
                    yts[(k + i) * nt + t + j] = v;
                }
            }
            k += 4;
        }
        for k in k..nr {
            for (j, xj) in xs.iter().enumerate() {
                yts[k * nt + t + j] = s.dot(row(k), xj);
            }
        }
        t += T;
    }
    t
}

/// Stored `(in, out)`: each task owns COLS_PER_TASK outputs, walks the stored rows once, decodes the span of
/// each that it needs, and accumulates `x[t, i] · W[i, o]` into yᵀ.
fn matmul_transposed(w: &WeightMatrix, x: &[f32], n_tokens: usize, y: &mut [f32]) {
    let Storage::Ggml {
        dtype,
        bytes,
        row_bytes,
    } = w.storage
    else {
        return;
    };
    let esz = dtype.type_size();
    let cols = w.cols;
    let mut xt = vec![0f32; cols * n_tokens];
    transpose_into(x, n_tokens, cols, &mut xt);
    let mut yt = vec![0f32; w.rows * n_tokens];
    let span_max = (COLS_PER_TASK - 1) * w.step + 1;
    yt.par_chunks_mut(COLS_PER_TASK * n_tokens)
        .enumerate()
        .for_each_init(
            || vec![0f32; span_max],
            |scratch, (ci, yts)| {
                let no = yts.len() / n_tokens;
                let c0 = w.first + ci * COLS_PER_TASK * w.step;
                let span = (no - 1) * w.step + 1;
                for i in 0..cols {
                    let row = &bytes[i * row_bytes..(i + 1) * row_bytes];
                    decode_row(
                        dtype,
                        &row[c0 * esz..(c0 + span) * esz],
                        &mut scratch[..span],
                    );
                    let xi = &xt[i * n_tokens..(i + 1) * n_tokens];
                    for o in 0..no {
                        let wv = scratch[o * w.step];
                        let acc = &mut yts[o * n_tokens..(o + 1) * n_tokens];
                        for (a, &xv) in acc.iter_mut().zip(xi) {
                            *a += xv * wv;
                        }
                    }
                }
            },
        );
    transpose_into(&yt, w.rows, n_tokens, y);
}

/// The scalar twin of [`matmul`]: one thread, one row at a time, a plain sequential sum. Tests only compare
/// against it; it is also the definition the fast path must agree with.
pub fn matmul_ref(
    w: &WeightMatrix,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_io(w, x, n_tokens, y)?;
    let mut row = vec![0f32; w.cols];
    for r in 0..w.rows {
        w.decode_row_into(r, &mut row)?;
        for t in 0..n_tokens {
            let xt = &x[t * w.cols..(t + 1) * w.cols];
            let mut s = 0f32;
            for (a, b) in row.iter().zip(xt) {
                s += a * b;
            }
            y[t * w.rows + r] = s;
        }
    }
    Ok(())
}
