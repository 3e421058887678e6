//! Row decoders the kernels call on the fly: one row (or a span of a row) of stored weights to f32.
//!
//! The formulas live in `ossify_formats::quant` (bit-exact with ggml's `dequantize_row_*` and with transformers'
//! MXFP4 decode); this module only dispatches to the per-type functions without re-checking lengths on every
//! row: callers validate sizes once, when they build a [`super::WeightMatrix`].

use ossify_formats::quant;
use ossify_formats::DType;

pub use ossify_formats::quant::{e8m0_to_fp32_half, KVALUES_MXFP4};

/// Whether [`decode_row`] can decode this type: the types of `ossify_formats::quant::CODECS`.
pub fn is_decodable(dtype: DType) -> bool {
    quant::codec(dtype).is_some()
}

/// Decodes `dst.len()` elements stored as `dtype` in `src` (ggml block layouts for block types).
/// `src` must hold exactly `dtype.nbytes(dst.len())` bytes.
#[inline]
pub fn decode_row(dtype: DType, src: &[u8], dst: &mut [f32]) {
    match quant::codec(dtype) {
        Some(c) => (c.dequantize)(src, dst),
        // Callers check `is_decodable` when they build a matrix; other types never reach here.
        None => dst.fill(f32::NAN),
    }
}

/// Decodes one row of the HF / OpenAI MXFP4 pair: `blocks` holds 16 bytes per 32 elements (element 2j in the
/// low nibble of byte j, 2j+1 in the high nibble), `scales` one E8M0 byte per 32 elements.
#[inline]
pub fn decode_row_mxfp4_hf(blocks: &[u8], scales: &[u8], dst: &mut [f32]) {
    if quant::dequantize_row_mxfp4_hf(blocks, scales, dst).is_err() {
        // Sizes are validated when the matrix is built; a mismatch here would be a bug, and NaN shows it.
        dst.fill(f32::NAN);
    }
}

/// One element of a scalar type, for the scalar reference kernels.
pub fn scalar_at(dtype: DType, src: &[u8], i: usize) -> f32 {
    match dtype {
        DType::F32 => {
            f32::from_le_bytes([src[4 * i], src[4 * i + 1], src[4 * i + 2], src[4 * i + 3]])
        }
        DType::F16 => quant::fp16_to_fp32(u16::from_le_bytes([src[2 * i], src[2 * i + 1]])),
        DType::BF16 => quant::bf16_to_fp32(u16::from_le_bytes([src[2 * i], src[2 * i + 1]])),
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
