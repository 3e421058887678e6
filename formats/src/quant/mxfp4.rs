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

/// Bytes of packed E2M1 codes per block, two codes a byte: ggml's `qs`, and the last dimension of the HF layout's
/// `*_blocks` tensor.
pub const QS_MXFP4: usize = QK_MXFP4 / 2;

/// E2M1 values times two, indexed by the 4-bit code. Must agree with ggml-common.h `kvalues_mxfp4`
/// (`kvalues_fp4`) and gguf-py `MXFP4.kvalues`.
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml's `block_mxfp4`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMxfp4 {
    /// Shared exponent, E8M0 (bias 127).
    pub e: u8,
    pub qs: [u8; QS_MXFP4],
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

/// The power of two an E8M0 scale byte stands for (bias 127; 255, NaN in OCP, is 128 here as ggml reads it).
pub fn e8m0_exponent(e: u8) -> i32 {
    i32::from(e) - 127
}

/// How many of the E2M1 codes packed two to a byte in `qs` are ±6, the largest magnitude (codes 7 and 15);
/// the same in either nibble order, so it counts ggml blocks' `qs` and the HF layout's `*_blocks` alike.
pub fn count_codes_at_6(qs: &[u8]) -> u64 {
    qs.iter()
        .map(|&b| u64::from(b & 0x7 == 0x7) + u64::from((b >> 4) & 0x7 == 0x7))
        .sum()
}

/// The E8M0 scale byte and the packed codes of each whole ggml MXFP4 block in `bytes`.
pub fn split_blocks_mxfp4(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> + Clone {
    bytes
        .chunks_exact(BlockMxfp4::SIZE)
        .map(|b| (b[0], &b[1..]))
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

/// Midpoints between consecutive magnitudes of [`KVALUES_MXFP4`] codes 0..8 (0, 1, 2, 3, 4, 6, 8, 12).
const KMIDS: [f32; 7] = [0.5, 1.5, 2.5, 3.5, 5.0, 7.0, 10.0];

/// The midpoints scaled by the half-scale `d`; every product is exact (a power of two times a short integer).
#[inline]
fn scaled_mids(d: f32) -> [f32; 7] {
    KMIDS.map(|m| m * d)
}

/// Code for `x` given the scaled midpoints: the number of midpoints strictly below |x|, with x's sign.
#[inline]
fn nearest_code_mids(x: f32, mids: &[f32; 7]) -> u8 {
    // From exponent 253 on (d >= 2^125) ggml's products overflow and the shortcut no longer mirrors its
    // arithmetic; such blocks (never real weights) take ggml's own search.
    if mids[6].is_infinite() {
        return best_index_mxfp4(x, mids[0] * 2.0);
    }
    let a = x.abs();
    let i = mids.iter().filter(|&&m| m < a).count() as u8;
    if i != 0 && x.is_sign_negative() {
        i + 8
    } else {
        i
    }
}

/// Same result as [`best_index_mxfp4`] (ggml's 16-way search), by comparing |x| with the 7 midpoints.
///
/// Why it is the same: every k*d is exact. For |x| between magnitudes lo*d and hi*d, ggml's errors |x| - lo*d and
/// hi*d - |x| are exact by Sterbenz's lemma (lo*d >= |x|/2), except for lo = 0 where the first is |x| itself and
/// the second, when rounded, is still >= d/2 >= |x|. So ggml picks hi exactly when |x| is strictly above the
/// (exact) midpoint. Farther candidates are strictly worse, rounding being monotone. ggml's "lowest index wins
/// ties" means the smaller magnitude on both sides of zero, and code 0 (not 8) for zero. From exponent 253 on,
/// where ggml's products overflow, we run ggml's search itself. `best_index_matches_reference` checks all this at
/// every exponent, tie point and float neighbour.
#[inline]
pub fn nearest_code_mxfp4(x: f32, d: f32) -> u8 {
    nearest_code_mids(x, &scaled_mids(d))
}

fn encode_block(x: &[f32; QK_MXFP4], e: u8) -> [u8; 17] {
    let mids = scaled_mids(e8m0_to_fp32_half(e));
    let mut b = [0u8; 17];
    b[0] = e;
    for j in 0..QK_MXFP4 / 2 {
        b[1 + j] = nearest_code_mids(x[j], &mids) | (nearest_code_mids(x[j + 16], &mids) << 4);
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

/// Encodes whole blocks with the same bytes as [`quantize_row_mxfp4_ref`], faster: the exponent comes from amax's
/// bits instead of `log2f` where that is provably the same, and the codes from a branch-free midpoint count the
/// compiler vectorises (built a second time for AVX2, picked by the program's one SIMD decision, [`crate::cpu`]).
/// Every other block (NaN or infinite elements, amax near a power of two or below 2^-124, scales where ggml's
/// products overflow) goes through the reference.
pub fn quantize_row_mxfp4(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK_MXFP4 * BlockMxfp4::SIZE, dst.len());
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::cpu_features().avx2() {
        // SAFETY: the CPU has AVX2 (the one dispatch decision says so), the only requirement of this
        // target_feature function.
        unsafe { quantize_row_mxfp4_avx2(src, dst) };
        return;
    }
    quantize_row_mxfp4_fast(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_mxfp4_avx2(src: &[f32], dst: &mut [u8]) {
    quantize_row_mxfp4_fast(src, dst);
}

/// The block loop, spelled out (not through `map_blocks`) so that it is compiled inside the AVX2 variant.
#[inline(always)]
fn quantize_row_mxfp4_fast(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src
        .chunks_exact(QK_MXFP4)
        .zip(dst.chunks_exact_mut(BlockMxfp4::SIZE))
    {
        if let (Ok(x), Ok(o)) = (
            <&[f32; QK_MXFP4]>::try_from(x),
            <&mut [u8; BlockMxfp4::SIZE]>::try_from(o),
        ) {
            quantize_block_mxfp4_fast(x, o);
        }
    }
}

/// [`quantize_block_mxfp4_ref`] without calls or per-element branches:
/// - amax: for non-NaN floats |x| orders as its bits do, so the max of the masked bits is ggml's amax;
/// - exponent: for a normal amax whose mantissa is not within 4096 ulps of the next power of two, log2f(amax)
///   lies strictly between its unbiased exponent k and k + 1 by far more than log2f's error, so
///   floor(log2f(amax)) = k and ggml's exponent is the biased exponent minus 2;
/// - codes: as [`nearest_code_mids`], counting midpoints below |x| without a branch.
#[inline(always)]
fn quantize_block_mxfp4_fast(x: &[f32; QK_MXFP4], o: &mut [u8; BlockMxfp4::SIZE]) {
    let mut m = 0u32;
    for v in x {
        m = m.max(v.to_bits() & 0x7FFF_FFFF);
    }
    let biased = m >> 23;
    if m >= 0x7F80_0000 || biased < 3 || (m & 0x007F_FFFF) >= 0x007F_F000 {
        *o = quantize_block_mxfp4_ref(x);
        return;
    }
    let e = (biased - 2) as u8;
    let mids = scaled_mids(e8m0_to_fp32_half(e));
    if mids[6].is_infinite() {
        *o = encode_block(x, e);
        return;
    }
    let mut codes = [0u8; QK_MXFP4];
    for (c, v) in codes.iter_mut().zip(x) {
        let bits = v.to_bits();
        let a = f32::from_bits(bits & 0x7FFF_FFFF);
        let mut i = 0u8;
        for &mid in &mids {
            i += u8::from(mid < a);
        }
        let neg = u8::from(i != 0) & (bits >> 31) as u8;
        *c = i | (neg << 3);
    }
    o[0] = e;
    for j in 0..QK_MXFP4 / 2 {
        o[1 + j] = codes[j] | (codes[j + 16] << 4);
    }
}

/// How far below and above the reference exponent the MSE rule looks. Below: a smaller scale resolves the bulk
/// of the block better at the cost of clipping the largest values; above: no clipping (the ref rule clips
/// everything above 1.5 * 2^floor(log2 amax) to 6 * scale) at a coarser step.
const MSE_EXPONENT_RANGE: std::ops::RangeInclusive<i32> = -2..=1;

/// (Importance-weighted) squared error of encoding `x` with exponent `e` and the nearest codes, computed from the
/// decoded values exactly as [`dequantize_block_mxfp4`] would produce them.
fn block_error(x: &[f32; QK_MXFP4], w: Option<&[f32; QK_MXFP4]>, e: u8) -> f64 {
    let d = e8m0_to_fp32_half(e);
    let mids = scaled_mids(d);
    let mut err = 0f64;
    for (i, &xi) in x.iter().enumerate() {
        let y = f32::from(KVALUES_MXFP4[usize::from(nearest_code_mids(xi, &mids))]) * d;
        let diff = f64::from(y) - f64::from(xi);
        err += w.map_or(1.0, |w| f64::from(w[i])) * diff * diff;
    }
    err
}

/// A lower bound of [`block_error`] for exponent `e`: what clipping the element of largest magnitude to 12 * d
/// alone costs. Lets the search skip smaller exponents cheaply.
fn clipping_error(x: &[f32; QK_MXFP4], w: Option<&[f32; QK_MXFP4]>, e: u8) -> f64 {
    let top = f64::from(12.0 * e8m0_to_fp32_half(e));
    let (mut i_max, mut amax) = (0, 0f32);
    for (i, v) in x.iter().enumerate() {
        if v.abs() > amax {
            (i_max, amax) = (i, v.abs());
        }
    }
    let over = (f64::from(amax) - top).max(0.0);
    w.map_or(1.0, |w| f64::from(w[i_max])) * over * over
}

/// Encodes one block choosing the exponent among the reference exponent and its neighbours (and, for each, the
/// nearest codes) that minimises the (importance-weighted) squared error. Starts from the reference choice and
/// only moves on a strictly smaller error, so it is never worse than [`quantize_block_mxfp4_ref`] by that
/// measure, and equal to it when nothing beats it.
pub fn quantize_block_mxfp4_mse(x: &[f32; QK_MXFP4], w: Option<&[f32; QK_MXFP4]>) -> [u8; 17] {
    let e_ref = mxfp4_ref_exponent(x);
    let mut best_err = block_error(x, w, e_ref);
    let mut best_e = e_ref;
    if best_err > 0.0 {
        for delta in MSE_EXPONENT_RANGE {
            let e = i32::from(e_ref) + delta;
            if delta == 0 || !(0..=254).contains(&e) {
                continue;
            }
            if delta < 0 && clipping_error(x, w, e as u8) >= best_err {
                continue;
            }
            let err = block_error(x, w, e as u8);
            if err < best_err {
                best_err = err;
                best_e = e as u8;
            }
        }
    }
    encode_block(x, best_e)
}

/// Encodes whole blocks with the MSE rule (see [`quantize_block_mxfp4_mse`]).
///
/// `importance`, when given, holds non-negative weights, one per column: its length is a multiple of 32 that
/// divides `src.len()`, and it repeats over `src` (so one row's importance, e.g. an importance matrix's
/// per-input-channel values, serves any number of rows passed at once; a length equal to `src.len()` gives one
/// weight per element).
pub fn quantize_row_mxfp4_mse(src: &[f32], importance: Option<&[f32]>, dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK_MXFP4 * BlockMxfp4::SIZE, dst.len());
    debug_assert!(importance
        .is_none_or(|w| w.len() % QK_MXFP4 == 0 && !w.is_empty() && src.len() % w.len() == 0));
    let mut weights = importance.map(|w| w.chunks_exact(QK_MXFP4).cycle());
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
                let x = (u * 2.0 - 1.0) * 64.0 * d;
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

    /// A small deterministic generator (xorshift), so failures reproduce.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn check_fast(x: &[f32]) {
        let mut want = vec![0u8; x.len() / QK_MXFP4 * BlockMxfp4::SIZE];
        let mut got = vec![0xAAu8; want.len()];
        quantize_row_mxfp4_ref(x, &mut want);
        quantize_row_mxfp4(x, &mut got);
        assert_eq!(got, want);
        quantize_row_mxfp4_fast(x, &mut got);
        assert_eq!(got, want);
    }

    #[test]
    fn fast_encoder_equals_the_reference_on_random_blocks() {
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let mut x = vec![0f32; 32 * 4096];
        for round in 0..64 {
            for v in x.iter_mut() {
                let r = xorshift(&mut s);
                *v = match round % 4 {
                    0 => f32::from_bits(r as u32),
                    1 => ((r % 2_000_001) as f32 - 1_000_000.0) * 1e-6,
                    2 => f32::from_bits((r as u32) & 0xFFFF_0000),
                    // values at and next to code midpoints and magnitudes, any exponent
                    _ => {
                        let k = [
                            0.5f32, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 10.0, 12.0,
                        ][(r % 13) as usize];
                        let e = ((r >> 8) % 250) as i32 - 125;
                        let y = k * 2f32.powi(e);
                        let y = f32::from_bits(
                            y.to_bits()
                                .wrapping_add(((r >> 20) % 3) as u32)
                                .wrapping_sub(1),
                        );
                        if r >> 40 & 1 == 1 {
                            -y
                        } else {
                            y
                        }
                    }
                };
            }
            check_fast(&x);
        }
    }

    #[test]
    fn fast_encoder_equals_the_reference_near_powers_of_two() {
        // amax just below 2^k, where log2f rounds up, at every exponent.
        let mut x = Vec::new();
        for biased in 0..255u32 {
            for back in [0u32, 1, 2, 30, 4095, 4096, 4097, 100_000] {
                let top = f32::from_bits((biased << 23).wrapping_sub(back));
                let mut b = [0f32; QK_MXFP4];
                for (i, v) in b.iter_mut().enumerate() {
                    *v = top * (i as f32 / 31.0) * if i % 2 == 0 { 1.0 } else { -1.0 };
                }
                b[31] = top;
                x.extend_from_slice(&b);
            }
        }
        check_fast(&x);
    }
}
