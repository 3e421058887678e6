//! Q8_0: 32 elements as one f16 scale `d` and 32 signed bytes; x = q * d.
//! Layout and rules: ggml-common.h `block_q8_0`, ggml-quants.c `quantize_row_q8_0_ref` / `dequantize_row_q8_0`.

use super::f16::{fp16_to_fp32, fp32_to_fp16};
use super::map_blocks;

/// Elements per block (ggml `QK8_0`).
pub const QK8_0: usize = 32;

/// ggml's `block_q8_0`, little-endian on disk.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: u16,
    pub qs: [i8; QK8_0],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 2 + QK8_0);

impl BlockQ8_0 {
    pub const SIZE: usize = 2 + QK8_0;

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let mut qs = [0i8; QK8_0];
        for (q, &x) in qs.iter_mut().zip(&b[2..]) {
            *q = x as i8;
        }
        Self {
            d: u16::from_le_bytes([b[0], b[1]]),
            qs,
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..2].copy_from_slice(&self.d.to_le_bytes());
        for (o, &q) in b[2..].iter_mut().zip(&self.qs) {
            *o = q as u8;
        }
        b
    }

    /// ggml's reference rule: d = amax / 127, q = round(x / d) with halves away from zero.
    pub fn quantize_ref(x: &[f32; QK8_0]) -> Self {
        let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; QK8_0];
        for (q, v) in qs.iter_mut().zip(x) {
            // f32::round is C's roundf (halves away from zero); the value is within [-127, 127]
            *q = (v * id).round() as i8;
        }
        Self {
            d: fp32_to_fp16(d),
            qs,
        }
    }

    pub fn dequantize(&self, out: &mut [f32; QK8_0]) {
        let d = fp16_to_fp32(self.d);
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = f32::from(q) * d;
        }
    }
}

/// Encodes whole blocks: `src.len()` a multiple of 32, `dst.len()` = 34 bytes per block.
pub fn quantize_row_q8_0_ref(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK8_0 * BlockQ8_0::SIZE, dst.len());
    map_blocks(src, dst, |x, o: &mut [u8; BlockQ8_0::SIZE]| {
        *o = BlockQ8_0::quantize_ref(x).to_bytes()
    });
}

/// Encodes whole blocks with the same bytes as [`quantize_row_q8_0_ref`], faster: the block loop is written so
/// the compiler vectorises it, and built a second time for AVX2, picked by the program's one SIMD decision
/// ([`crate::cpu`]). Blocks the fast rule's arithmetic does not cover (an infinite or NaN element, a subnormal
/// scale) go through the reference.
pub fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(src.len() / QK8_0 * BlockQ8_0::SIZE, dst.len());
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::cpu_features().avx2() {
        // SAFETY: the CPU has AVX2 (the one dispatch decision says so), the only requirement of this
        // target_feature function.
        unsafe { quantize_row_q8_0_avx2(src, dst) };
        return;
    }
    quantize_row_q8_0_fast(src, dst);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_q8_0_avx2(src: &[f32], dst: &mut [u8]) {
    quantize_row_q8_0_fast(src, dst);
}

/// The block loop, spelled out (not through `map_blocks`) so that it is compiled inside the AVX2 variant.
#[inline(always)]
fn quantize_row_q8_0_fast(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src
        .chunks_exact(QK8_0)
        .zip(dst.chunks_exact_mut(BlockQ8_0::SIZE))
    {
        if let (Ok(x), Ok(o)) = (
            <&[f32; QK8_0]>::try_from(x),
            <&mut [u8; BlockQ8_0::SIZE]>::try_from(o),
        ) {
            quantize_block_q8_0_fast(x, o);
        }
    }
}

/// [`BlockQ8_0::quantize_ref`], rewritten without calls or data-dependent branches per element:
/// - amax: for non-NaN floats, |x| orders as its bits do, so the max of the masked bits is the max of |x|
///   (and a bit pattern at or above infinity's sends the block to the reference);
/// - roundf(t): with a normal scale, |t| = |x| / d <= 127 (plus a few ulps), so `t as i32` truncates exactly,
///   `t - trunc(t)` is exact, and rounding half away from zero adds the sign when that fraction is >= 0.5.
#[inline(always)]
fn quantize_block_q8_0_fast(x: &[f32; QK8_0], o: &mut [u8; BlockQ8_0::SIZE]) {
    let mut m = 0u32;
    for v in x {
        m = m.max(v.to_bits() & 0x7FFF_FFFF);
    }
    let amax = f32::from_bits(m);
    let d = amax / 127.0;
    if m >= 0x7F80_0000 || (d != 0.0 && d < f32::MIN_POSITIVE) {
        *o = BlockQ8_0::quantize_ref(x).to_bytes();
        return;
    }
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0u8; QK8_0];
    for (q, v) in q.iter_mut().zip(x) {
        let t = v * id;
        let i = t as i32;
        let frac = t - i as f32;
        let r = i + i32::from(frac >= 0.5) - i32::from(frac <= -0.5);
        *q = r.clamp(-128, 127) as i8 as u8;
    }
    o[..2].copy_from_slice(&fp32_to_fp16(d).to_le_bytes());
    o[2..].copy_from_slice(&q);
}

/// Decodes whole blocks: `src.len()` = 34 bytes per block, `dst.len()` 32 elements per block.
pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len() / BlockQ8_0::SIZE * QK8_0, dst.len());
    map_blocks(src, dst, |b, o| BlockQ8_0::from_bytes(b).dequantize(o));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so failures reproduce.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn check(x: &[f32]) {
        let mut want = vec![0u8; x.len() / QK8_0 * BlockQ8_0::SIZE];
        let mut got = vec![0xAAu8; want.len()];
        quantize_row_q8_0_ref(x, &mut want);
        quantize_row_q8_0(x, &mut got);
        assert_eq!(got, want, "input {x:?}");
        quantize_row_q8_0_fast(x, &mut got);
        assert_eq!(got, want, "input {x:?}");
    }

    #[test]
    fn fast_encoder_equals_the_reference_on_random_blocks() {
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        let mut x = vec![0f32; 32 * 4096];
        for round in 0..64 {
            for v in x.iter_mut() {
                let r = next(&mut s);
                *v = match round % 4 {
                    // any bit pattern (infinities, NaNs, subnormals included)
                    0 => f32::from_bits(r as u32),
                    // ordinary weights
                    1 => ((r % 2_000_001) as f32 - 1_000_000.0) * 1e-6,
                    // bf16 values, as the quantizer sees them
                    2 => f32::from_bits((r as u32) & 0xFFFF_0000),
                    // tiny scales
                    _ => ((r % 2001) as f32 - 1000.0) * 1e-40,
                };
            }
            check(&x);
        }
    }

    #[test]
    fn fast_encoder_equals_the_reference_at_rounding_ties() {
        // t = x / d lands exactly on and next to k + 0.5, where roundf and a careless rounding differ.
        let mut x = Vec::new();
        for k in 0..127 {
            let mut b = [0f32; QK8_0];
            b[0] = 127.0;
            let h = k as f32 + 0.5;
            b[1] = h;
            b[2] = -h;
            b[3] = f32::from_bits(h.to_bits() - 1);
            b[4] = -f32::from_bits(h.to_bits() + 1);
            b[5] = 0.49999997;
            b[6] = -0.49999997;
            b[7] = -0.0;
            x.extend_from_slice(&b);
        }
        x.extend_from_slice(&[0f32; QK8_0]);
        check(&x);
    }
}
