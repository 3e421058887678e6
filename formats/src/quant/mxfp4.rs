//! MXFP4 (OCP microscaling FP4): 32 elements share one E8M0 exponent byte; each element is an E2M1 code.
//!
//! Two byte layouts hold the same numbers, and we repack between them losslessly:
//! - **ggml** (`block_mxfp4`, ggml-common.h): 17-byte block = exponent byte `e`, then 16 bytes where byte j holds
//!   element j in its low nibble and element j + 16 in its high nibble.
//! - **HF / OpenAI** (gpt-oss `*_blocks` / `*_scales`): per 32 elements, 16 bytes in `blocks` where byte j holds
//!   element 2j in its low nibble and 2j + 1 in its high nibble, and one exponent byte in `scales`.
//!
//! Value = FP4(code) * 2^(e - 127). ggml stores the E2M1 values doubled ([`KVALUES_MXFP4`]) and halves the scale
//! ([`e8m0_to_fp32_half`]), which gives the same products exactly; both decoders here use ggml's arithmetic, so
//! code 8 (E2M1 "-0") decodes to +0.0, as in ggml.

use super::{map_blocks, QuantError};
use crate::DType;

/// Elements per block (ggml `QK_MXFP4`).
pub const QK_MXFP4: usize = 32;

/// E2M1 values times two, indexed by the 4-bit code. Must agree with ggml-common.h `kvalues_mxfp4`
/// (`kvalues_fp4`) and gguf-py `MXFP4.kvalues`.
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml's `block_mxfp4`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMxfp4 {
    /// Shared exponent, E8M0 (bias 127).
    pub e: u8,
    pub qs: [u8; QK_MXFP4 / 2],
}

const _: () = assert!(std::mem::size_of::<BlockMxfp4>() == 1 + QK_MXFP4 / 2);

impl BlockMxfp4 {
    pub const SIZE: usize = 1 + QK_MXFP4 / 2;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut qs = [0u8; QK_MXFP4 / 2];
        qs.copy_from_slice(&b[1..]);
        Self { e: b[0], qs }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0] = self.e;
        b[1..].copy_from_slice(&self.qs);
        b
    }
}

/// 2^(e - 127) / 2, bit-exact with ggml-impl.h `ggml_e8m0_to_fp32_half` (e = 0 and 1 give the subnormals
/// 2^-128 and 2^-127; e = 255 gives 2^127, not NaN, as in ggml).
#[inline]
pub fn e8m0_to_fp32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        u32::from(e - 1) << 23
    };
    f32::from_bits(bits)
}

/// Decodes one ggml block, as ggml's `dequantize_row_mxfp4`.
#[inline]
pub fn dequantize_block_mxfp4(block: &[u8; 17], out: &mut [f32; 32]) {
    let d = e8m0_to_fp32_half(block[0]);
    for (j, &q) in block[1..].iter().enumerate() {
        out[j] = f32::from(KVALUES_MXFP4[usize::from(q & 0x0F)]) * d;
        out[j + 16] = f32::from(KVALUES_MXFP4[usize::from(q >> 4)]) * d;
    }
}

/// Decodes whole ggml blocks: `src.len()` = 17 bytes per block, `dst.len()` 32 elements per block.
pub fn dequantize_row_mxfp4(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BlockMxfp4::SIZE * QK_MXFP4, dst.len());
    map_blocks(src, dst, dequantize_block_mxfp4);
}

/// ggml's `best_index_mxfp4`: the code whose value is nearest to `x` at half-scale `d`, ties to the lowest
/// index (so 0 gets code 0, never 8). The arithmetic is ggml's, float for float.
#[inline]
pub fn best_index_mxfp4(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (f32::from(KVALUES_MXFP4[0]) * d - x).abs();
    for (i, &k) in KVALUES_MXFP4.iter().enumerate().skip(1) {
        let err = (f32::from(k) * d - x).abs();
        if err < best_err {
            best = i as u8;
            best_err = err;
        }
    }
    best
}

/// ggml's reference shared exponent for a block: floor(log2(amax)) - 2 + 127, or 0 for an all-zero block.
///
/// As in ggml this goes through the C library's `log2f` (Rust's `f32::log2` calls the same libm), so an amax
/// just below a power of two whose log2 rounds up gets the higher exponent exactly as ggml gives it. Blocks with
/// amax < 2^-125 give a negative value, which ggml converts to `uint8_t` by C's (undefined) float conversion;
/// we reproduce what x86-64 builds of ggml and gguf-py produce there (conversion through a 32-bit int, keeping
/// the low byte).
#[inline]
pub fn mxfp4_ref_exponent(x: &[f32; QK_MXFP4]) -> u8 {
    let amax = x
        .iter()
        .fold(0.0f32, |m, v| if m < v.abs() { v.abs() } else { m });
    if amax > 0.0 {
        (amax.log2().floor() - 2.0 + 127.0) as i32 as u8
    } else {
        0
    }
}

/// Magnitudes of [`KVALUES_MXFP4`] codes 0..8 (codes 8..16 are their negatives).
const KMAG: [f32; 8] = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0];

/// Same result as [`best_index_mxfp4`], with two error evaluations instead of sixteen.
///
/// Why it is the same: every k*d is exact (a power of two times a small integer), so ggml's error
/// |k*d - x| is a rounded function that is monotone in k on each side of x, and symmetric in the sign of x.
/// The minimum is therefore at one of the two magnitudes bracketing |x|; ggml's "lowest index wins ties"
/// picks the smaller magnitude on both sides of zero, and code 0 (not 8) for magnitude zero. Distinct
/// non-bracketing candidates differ from the bracketing ones by at least d, far above the rounding of
/// |x| for the scales our encoders pick. `best_index_matches_reference` checks this on random and tie inputs.
#[inline]
pub fn nearest_code_mxfp4(x: f32, d: f32) -> u8 {
    let a = x.abs();
    // index of the largest magnitude <= a (magnitudes are exact multiples of d)
    let lo = KMAG[1..].iter().filter(|&&m| m * d <= a).count();
    let mut i = lo;
    if lo < 7 {
        let err_lo = (KMAG[lo] * d - a).abs();
        let err_hi = (KMAG[lo + 1] * d - a).abs();
        if err_hi < err_lo {
            i = lo + 1;
        }
    }
    if i != 0 && x.is_sign_negative() {
        (i + 8) as u8
    } else {
        i as u8
    }
}

fn encode_block(x: &[f32; QK_MXFP4], e: u8) -> [u8; 17] {
    let d = e8m0_to_fp32_half(e);
    let mut b = [0u8; 17];
    b[0] = e;
    for j in 0..QK_MXFP4 / 2 {
        b[1 + j] = nearest_code_mxfp4(x[j], d) | (nearest_code_mxfp4(x[j + 16], d) << 4);
    }
    b
}

/// Encodes one block with ggml's reference rule (`quantize_row_mxfp4_ref`), bit-exact.
pub fn quantize_block_mxfp4_ref(x: &[f32; QK_MXFP4]) -> [u8; 17] {
    encode_block(x, mxfp4_ref_exponent(x))
}

/// Encodes whole blocks with ggml's reference rule: `src.len()` a multiple of 32, `dst.len()` = 17 bytes per
/// block.
pub fn quantize_row_mxfp4_ref(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK_MXFP4 * BlockMxfp4::SIZE, dst.len());
    map_blocks(src, dst, |x, o: &mut [u8; 17]| {
        *o = quantize_block_mxfp4_ref(x)
    });
}

/// How far below and above the reference exponent the MSE rule looks. Below: a smaller scale resolves the bulk
/// of the block better at the cost of clipping the largest values; above: no clipping (the ref rule clips
/// everything above 1.5 * 2^floor(log2 amax) to 6 * scale) at a coarser step.
const MSE_EXPONENT_RANGE: std::ops::RangeInclusive<i32> = -2..=1;

/// Squared error of encoding `x` with exponent `e` (nearest codes), weighted by `w` when given; and the block.
fn block_error(x: &[f32; QK_MXFP4], w: Option<&[f32; QK_MXFP4]>, e: u8) -> (f64, [u8; 17]) {
    let b = encode_block(x, e);
    let mut y = [0f32; QK_MXFP4];
    dequantize_block_mxfp4(&b, &mut y);
    let mut err = 0f64;
    for i in 0..QK_MXFP4 {
        let diff = f64::from(y[i]) - f64::from(x[i]);
        let wi = w.map_or(1.0, |w| f64::from(w[i]));
        err += wi * diff * diff;
    }
    (err, b)
}

/// Encodes one block choosing the exponent among the reference exponent and its neighbours (and, for each, the
/// nearest codes) that minimises the (importance-weighted) squared error. Starts from the reference choice and
/// only moves on a strictly smaller error, so it is never worse than [`quantize_block_mxfp4_ref`] by that
/// measure, and equal to it when nothing beats it.
pub fn quantize_block_mxfp4_mse(x: &[f32; QK_MXFP4], w: Option<&[f32; QK_MXFP4]>) -> [u8; 17] {
    let e_ref = mxfp4_ref_exponent(x);
    let (mut best_err, mut best) = block_error(x, w, e_ref);
    if best_err == 0.0 {
        return best;
    }
    for delta in MSE_EXPONENT_RANGE {
        let e = i32::from(e_ref) + delta;
        if delta == 0 || !(0..=254).contains(&e) {
            continue;
        }
        let (err, b) = block_error(x, w, e as u8);
        if err < best_err {
            best_err = err;
            best = b;
        }
    }
    best
}

/// Encodes whole blocks with the MSE rule (see [`quantize_block_mxfp4_mse`]). `importance`, when given, holds one
/// non-negative weight per element of `src` (e.g. an importance matrix's per-column values repeated per row).
pub fn quantize_row_mxfp4_mse(src: &[f32], importance: Option<&[f32]>, dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK_MXFP4 * BlockMxfp4::SIZE, dst.len());
    debug_assert!(importance.map_or(true, |w| w.len() == src.len()));
    let mut weights = importance.map(|w| w.chunks_exact(QK_MXFP4));
    for (x, o) in src
        .chunks_exact(QK_MXFP4)
        .zip(dst.chunks_exact_mut(BlockMxfp4::SIZE))
    {
        let w = weights
            .as_mut()
            .and_then(|it| it.next())
            .and_then(|w| <&[f32; QK_MXFP4]>::try_from(w).ok());
        if let (Ok(x), Ok(o)) = (
            <&[f32; QK_MXFP4]>::try_from(x),
            <&mut [u8; 17]>::try_from(o),
        ) {
            *o = quantize_block_mxfp4_mse(x, w);
        }
    }
}

fn check_hf_ggml(blocks: usize, scales: usize, ggml: usize) -> Result<(), QuantError> {
    let nb = scales;
    if blocks != nb * 16 {
        return Err(QuantError::LengthMismatch {
            dtype: DType::Mxfp4,
            what: "HF blocks bytes (16 per scale byte)",
            expected: nb * 16,
            found: blocks,
        });
    }
    if ggml != nb * BlockMxfp4::SIZE {
        return Err(QuantError::LengthMismatch {
            dtype: DType::Mxfp4,
            what: "ggml MXFP4 bytes (17 per scale byte)",
            expected: nb * BlockMxfp4::SIZE,
            found: ggml,
        });
    }
    Ok(())
}

/// Code of element k of an HF 16-byte group: element 2j is the low nibble of byte j, 2j + 1 the high one.
#[inline]
fn hf_code(group: &[u8], k: usize) -> u8 {
    (group[k / 2] >> (4 * (k % 2))) & 0x0F
}

/// Repacks HF/OpenAI MXFP4 (`blocks`: 16 bytes per 32 elements, `scales`: one byte per 32 elements) into ggml
/// blocks, bit for bit (llama.cpp's `transform_nibble_layout` in conversion/gpt_oss.py does the same). Works on
/// any number of whole blocks: a row, an expert or a whole tensor, since blocks and scales run in the same order.
pub fn repack_hf_to_ggml(blocks: &[u8], scales: &[u8], dst: &mut [u8]) -> Result<(), QuantError> {
    check_hf_ggml(blocks.len(), scales.len(), dst.len())?;
    for ((g, &e), o) in blocks
        .chunks_exact(16)
        .zip(scales)
        .zip(dst.chunks_exact_mut(BlockMxfp4::SIZE))
    {
        o[0] = e;
        for j in 0..16 {
            o[1 + j] = hf_code(g, j) | (hf_code(g, j + 16) << 4);
        }
    }
    Ok(())
}

/// Inverse of [`repack_hf_to_ggml`].
pub fn repack_ggml_to_hf(
    src: &[u8],
    blocks: &mut [u8],
    scales: &mut [u8],
) -> Result<(), QuantError> {
    check_hf_ggml(blocks.len(), scales.len(), src.len())?;
    for ((b, g), e) in src
        .chunks_exact(BlockMxfp4::SIZE)
        .zip(blocks.chunks_exact_mut(16))
        .zip(scales.iter_mut())
    {
        *e = b[0];
        let code = |k: usize| {
            let q = b[1 + k % 16];
            if k < 16 {
                q & 0x0F
            } else {
                q >> 4
            }
        };
        for (j, o) in g.iter_mut().enumerate() {
            *o = code(2 * j) | (code(2 * j + 1) << 4);
        }
    }
    Ok(())
}

/// Decodes HF/OpenAI MXFP4 straight from `blocks` / `scales` (see [`repack_hf_to_ggml`] for the layout), with the
/// same arithmetic as the ggml decoder, so both give identical floats.
pub fn dequantize_row_mxfp4_hf(
    blocks: &[u8],
    scales: &[u8],
    dst: &mut [f32],
) -> Result<(), QuantError> {
    if dst.len() != scales.len() * QK_MXFP4 {
        return Err(QuantError::LengthMismatch {
            dtype: DType::Mxfp4,
            what: "output elements (32 per scale byte)",
            expected: scales.len() * QK_MXFP4,
            found: dst.len(),
        });
    }
    if blocks.len() != scales.len() * 16 {
        return Err(QuantError::LengthMismatch {
            dtype: DType::Mxfp4,
            what: "HF blocks bytes (16 per scale byte)",
            expected: scales.len() * 16,
            found: blocks.len(),
        });
    }
    for ((g, &e), o) in blocks
        .chunks_exact(16)
        .zip(scales)
        .zip(dst.chunks_exact_mut(QK_MXFP4))
    {
        let d = e8m0_to_fp32_half(e);
        for (j, &q) in g.iter().enumerate() {
            o[2 * j] = f32::from(KVALUES_MXFP4[usize::from(q & 0x0F)]) * d;
            o[2 * j + 1] = f32::from(KVALUES_MXFP4[usize::from(q >> 4)]) * d;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, for reproducible test inputs without a dependency.
    fn rng(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn best_index_matches_reference() {
        let mut s = 7u64;
        for e in 0..=254u8 {
            let d = e8m0_to_fp32_half(e);
            // every tie point, every value, and their float neighbours
            for m2 in 0..=28u32 {
                let base = m2 as f32 * 0.5 * d;
                for v in [base, -base] {
                    for x in [
                        v,
                        f32::from_bits(v.to_bits().wrapping_add(1)),
                        f32::from_bits(v.to_bits().wrapping_sub(1)),
                    ] {
                        if x.is_finite() {
                            assert_eq!(
                                nearest_code_mxfp4(x, d),
                                best_index_mxfp4(x, d),
                                "x={x:e} e={e}"
                            );
                        }
                    }
                }
            }
            for _ in 0..200 {
                let u = (rng(&mut s) >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
                let x = (u * 2.0 - 1.0) * 16.0 * d;
                if x.is_finite() {
                    assert_eq!(
                        nearest_code_mxfp4(x, d),
                        best_index_mxfp4(x, d),
                        "x={x:e} e={e}"
                    );
                }
            }
        }
    }
}
