//! Row decoders the kernels call on the fly: one row (or a span of a row) of stored weights to f32.
//!
//! The formulas are ggml's `dequantize_row_*` (ggml/src/ggml-quants.c) and transformers'
//! `convert_moe_packed_tensors` for the HF/OpenAI MXFP4 pair. `ossify_formats::quant` is the home of the block
//! codecs; these are the kernels' copies of the decode side only, kept to a shape the inner loops can use
//! (no per-call checks: callers validate sizes once when they build a [`super::WeightMatrix`]).

use half::{bf16, f16};
use ossify_formats::DType;

/// FP4 (E2M1) values doubled, so they are integers; ggml's `kvalues_mxfp4` (ggml-common.h).
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// 2^(e - 128): the E8M0 scale halved, to pair with the doubled [`KVALUES_MXFP4`]. ggml's
/// `GGML_E8M0_TO_FP32_HALF` (ggml-impl.h), subnormal results included.
#[inline]
pub fn e8m0_to_fp32_half(e: u8) -> f32 {
    let bits: u32 = if e < 2 {
        0x0020_0000u32 << e
    } else {
        (u32::from(e) - 1) << 23
    };
    f32::from_bits(bits)
}

#[inline]
fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Whether [`decode_row`] can decode this type.
pub fn is_decodable(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::F32
            | DType::F16
            | DType::BF16
            | DType::Q8_0
            | DType::Q4_0
            | DType::Q4_1
            | DType::Q5_0
            | DType::Q5_1
            | DType::Mxfp4
    )
}

/// Decodes `dst.len()` elements stored as `dtype` in `src` (ggml block layouts for block types).
/// `src` must hold exactly `dtype.nbytes(dst.len())` bytes; a shorter `src` decodes a shorter prefix.
pub fn decode_row(dtype: DType, src: &[u8], dst: &mut [f32]) {
    match dtype {
        DType::F32 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        DType::F16 => {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f16::from_le_bytes([s[0], s[1]]).to_f32();
            }
        }
        DType::BF16 => {
            // bf16 is the top half of an f32: decoding is a shift.
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *d = f32::from_bits(u32::from(u16::from_le_bytes([s[0], s[1]])) << 16);
            }
        }
        DType::Q8_0 => {
            for (y, b) in dst.chunks_exact_mut(32).zip(src.chunks_exact(34)) {
                let d = f16_at(b, 0);
                for (yj, &q) in y.iter_mut().zip(&b[2..34]) {
                    *yj = f32::from(q as i8) * d;
                }
            }
        }
        DType::Q4_0 => {
            for (y, b) in dst.chunks_exact_mut(32).zip(src.chunks_exact(18)) {
                let d = f16_at(b, 0);
                let qs = &b[2..18];
                for j in 0..16 {
                    y[j] = (i32::from(qs[j] & 0x0f) - 8) as f32 * d;
                    y[j + 16] = (i32::from(qs[j] >> 4) - 8) as f32 * d;
                }
            }
        }
        DType::Q4_1 => {
            for (y, b) in dst.chunks_exact_mut(32).zip(src.chunks_exact(20)) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qs = &b[4..20];
                for j in 0..16 {
                    y[j] = f32::from(qs[j] & 0x0f) * d + m;
                    y[j + 16] = f32::from(qs[j] >> 4) * d + m;
                }
            }
        }
        DType::Q5_0 => {
            for (y, b) in dst.chunks_exact_mut(32).zip(src.chunks_exact(22)) {
                let d = f16_at(b, 0);
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                let qs = &b[6..22];
                for j in 0..16 {
                    let xh0 = ((qh >> j) << 4) & 0x10;
                    let xh1 = (qh >> (j + 12)) & 0x10;
                    let x0 = (u32::from(qs[j] & 0x0f) | xh0) as i32 - 16;
                    let x1 = (u32::from(qs[j] >> 4) | xh1) as i32 - 16;
                    y[j] = x0 as f32 * d;
                    y[j + 16] = x1 as f32 * d;
                }
            }
        }
        DType::Q5_1 => {
            for (y, b) in dst.chunks_exact_mut(32).zip(src.chunks_exact(24)) {
                let d = f16_at(b, 0);
                let m = f16_at(b, 2);
                let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                let qs = &b[8..24];
                for j in 0..16 {
                    let xh0 = ((qh >> j) << 4) & 0x10;
                    let xh1 = (qh >> (j + 12)) & 0x10;
                    let x0 = u32::from(qs[j] & 0x0f) | xh0;
                    let x1 = u32::from(qs[j] >> 4) | xh1;
                    y[j] = x0 as f32 * d + m;
                    y[j + 16] = x1 as f32 * d + m;
                }
            }
        }
        DType::Mxfp4 => {
            // ggml block_mxfp4: e (1 byte), qs[16]; element j in the low nibble of qs[j], j+16 in the high.
            for (y, b) in dst.chunks_exact_mut(32).zip(src.chunks_exact(17)) {
                let d = e8m0_to_fp32_half(b[0]);
                let qs = &b[1..17];
                for j in 0..16 {
                    y[j] = f32::from(KVALUES_MXFP4[usize::from(qs[j] & 0x0f)]) * d;
                    y[j + 16] = f32::from(KVALUES_MXFP4[usize::from(qs[j] >> 4)]) * d;
                }
            }
        }
        // Callers check `is_decodable` when they build a matrix; other types never reach here.
        _ => dst.fill(f32::NAN),
    }
}

/// Decodes one row of the HF / OpenAI MXFP4 pair: `blocks` holds 16 bytes per 32 elements (element 2j in the
/// low nibble of byte j, 2j+1 in the high nibble), `scales` one E8M0 byte per 32 elements.
pub fn decode_row_mxfp4_hf(blocks: &[u8], scales: &[u8], dst: &mut [f32]) {
    for ((y, b), &e) in dst
        .chunks_exact_mut(32)
        .zip(blocks.chunks_exact(16))
        .zip(scales)
    {
        let d = e8m0_to_fp32_half(e);
        for j in 0..16 {
            y[2 * j] = f32::from(KVALUES_MXFP4[usize::from(b[j] & 0x0f)]) * d;
            y[2 * j + 1] = f32::from(KVALUES_MXFP4[usize::from(b[j] >> 4)]) * d;
        }
    }
}

/// One element of a scalar type, for the scalar reference kernels.
pub fn scalar_at(dtype: DType, src: &[u8], i: usize) -> f32 {
    match dtype {
        DType::F32 => {
            f32::from_le_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]])
        }
        DType::F16 => f16_at(src, 2 * i),
        DType::BF16 => bf16::from_le_bytes([src[2 * i], src[2 * i + 1]]).to_f32(),
        _ => f32::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_a_power_of_two() {
        assert_eq!(e8m0_to_fp32_half(128), 1.0);
        assert_eq!(e8m0_to_fp32_half(127), 0.5);
        assert_eq!(e8m0_to_fp32_half(130), 4.0);
        assert_eq!(e8m0_to_fp32_half(1), 2f32.powi(-127));
        assert_eq!(e8m0_to_fp32_half(0), 2f32.powi(-128));
    }

    #[test]
    fn hf_and_ggml_mxfp4_nibble_orders_decode_alike() {
        // The same 32 values, packed the HF way (2j low, 2j+1 high) and the ggml way (j low, j+16 high).
        let codes: Vec<u8> = (0..32u8).map(|i| (i * 7 + 3) % 16).collect();
        let mut hf = [0u8; 16];
        let mut gg = [0u8; 17];
        gg[0] = 130;
        for j in 0..16 {
            hf[j] = codes[2 * j] | (codes[2 * j + 1] << 4);
            gg[1 + j] = codes[j] | (codes[j + 16] << 4);
        }
        let mut a = [0f32; 32];
        let mut b = [0f32; 32];
        decode_row_mxfp4_hf(&hf, &[130], &mut a);
        decode_row(DType::Mxfp4, &gg, &mut b);
        // FP4 E2M1 values from transformers' FP4_VALUES times the scale 2^(130-127).
        let fp4 = [
            0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0,
        ];
        for i in 0..32 {
            assert_eq!(a[i], fp4[usize::from(codes[i])] * 8.0);
            assert_eq!(b[i], a[i]);
        }
    }
}
