//! bfloat16, converted exactly as ggml converts it (ggml-impl.h `ggml_compute_fp32_to_bf16`): round to
//! nearest even, NaN -> quiet NaN (top mantissa bit set, payload truncated), subnormals kept (not flushed).

/// f32 -> bf16 bits, bit-exact with ggml's `GGML_FP32_TO_BF16`.
#[inline]
pub fn fp32_to_bf16(f: f32) -> u16 {
    let u = f.to_bits();
    if (u & 0x7FFF_FFFF) > 0x7F80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7FFF + ((u >> 16) & 1)) >> 16) as u16
}

/// bf16 bits -> f32, exact.
#[inline]
pub fn bf16_to_fp32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// Decodes little-endian bf16 values; `src.len()` must be `2 * dst.len()`.
pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len(), 2 * dst.len());
    for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *o = bf16_to_fp32(u16::from_le_bytes([b[0], b[1]]));
    }
}

/// Encodes to little-endian bf16 (ggml's `ggml_fp32_to_bf16_row_ref`); `dst.len()` must be `2 * src.len()`.
pub fn quantize_row_bf16(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), 2 * src.len());
    for (x, o) in src.iter().zip(dst.chunks_exact_mut(2)) {
        o.copy_from_slice(&fp32_to_bf16(*x).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_nan() {
        assert_eq!(fp32_to_bf16(1.0), 0x3F80);
        // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (down)
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3F80_8000)), 0x3F80);
        // 1.0078125 + 2^-8 is halfway with an odd lower neighbour: ties to even (up)
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3F81_8000)), 0x3F82);
        assert_eq!(fp32_to_bf16(f32::from_bits(0x3F80_8001)), 0x3F81);
        // signalling NaN becomes quiet
        assert_eq!(fp32_to_bf16(f32::from_bits(0x7F80_0001)), 0x7FC0);
        // subnormals are rounded, not flushed
        assert_eq!(fp32_to_bf16(f32::from_bits(0x0001_8000)), 0x0002);
        // largest finite rounds up to infinity
        assert_eq!(fp32_to_bf16(f32::MAX), 0x7F80);
        assert_eq!(bf16_to_fp32(0xBF80), -1.0);
    }
}
