//! IEEE binary16 ("F16"), converted exactly as ggml converts it (ggml-impl.h `ggml_compute_fp32_to_fp16` /
//! `ggml_compute_fp16_to_fp32`): round to nearest even, overflow to infinity, subnormals kept, NaN -> quiet NaN
//! `0x7E00` with the sign kept. We do not use `half` here: its hardware path (F16C) keeps NaN payloads, which
//! ggml does not.

/// f32 -> f16 bits, bit-exact with ggml's `GGML_FP32_TO_FP16`.
///
/// The trick (from Maratyszcza's FP16 library, which ggml uses): scaling |f| by 2^112 then 2^-110 and adding a
/// power of two chosen from f's exponent makes the f32 adder do the round-to-nearest-even at f16's precision.
#[inline]
pub fn fp32_to_fp16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000); // 2^112
    let scale_to_zero = f32::from_bits(0x0880_0000); // 2^-110
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;

    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let bias = (shl1_w & 0xFF00_0000).max(0x7100_0000);

    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    let magnitude = if shl1_w > 0xFF00_0000 {
        0x7E00
    } else {
        nonsign
    };
    ((sign >> 16) | magnitude) as u16
}

/// f16 bits -> f32, exact (every f16 is an f32). A NaN comes back quiet with its payload, as on x86 in ggml.
#[inline]
pub fn fp16_to_fp32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1F);
    let man = u32::from(h & 0x03FF);
    let magnitude = match exp {
        // zero or subnormal: man * 2^-24, exact in f32
        0 => (man as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        0x1F if man == 0 => 0x7F80_0000,
        0x1F => 0x7FC0_0000 | (man << 13),
        _ => ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// Decodes little-endian f16 values; `src.len()` must be `2 * dst.len()`.
pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    debug_assert_eq!(src.len(), 2 * dst.len());
    for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *o = fp16_to_fp32(u16::from_le_bytes([b[0], b[1]]));
    }
}

/// Encodes to little-endian f16 (ggml's `ggml_fp32_to_fp16_row`); `dst.len()` must be `2 * src.len()`.
pub fn quantize_row_f16(src: &[f32], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), 2 * src.len());
    for (x, o) in src.iter().zip(dst.chunks_exact_mut(2)) {
        o.copy_from_slice(&fp32_to_fp16(*x).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // IEEE 754 binary16 encodings
        assert_eq!(fp32_to_fp16(1.0), 0x3C00);
        assert_eq!(fp32_to_fp16(-2.0), 0xC000);
        assert_eq!(fp32_to_fp16(65504.0), 0x7BFF);
        assert_eq!(fp32_to_fp16(65520.0), 0x7C00); // halfway to 2^16 rounds (to even) to infinity
        assert_eq!(fp32_to_fp16(f32::from_bits(0x3380_0000)), 0x0001); // 2^-24, smallest subnormal
        assert_eq!(fp32_to_fp16(f32::from_bits(0x3300_0000)), 0x0000); // 2^-25 ties to even: 0
        assert_eq!(fp32_to_fp16(-0.0), 0x8000);
        assert_eq!(fp32_to_fp16(f32::NAN), 0x7E00);
        assert_eq!(fp32_to_fp16(-f32::NAN), 0xFE00);
        assert_eq!(fp16_to_fp32(0x0001), f32::from_bits(0x3380_0000));
        assert_eq!(fp16_to_fp32(0x7C00), f32::INFINITY);
        assert_eq!(fp16_to_fp32(0xC000), -2.0);
    }

    #[test]
    fn every_f16_round_trips() {
        for h in 0..=u16::MAX {
            let f = fp16_to_fp32(h);
            if f.is_nan() {
                continue;
            }
            assert_eq!(fp32_to_fp16(f), h, "{h:#06x}");
        }
    }
}
