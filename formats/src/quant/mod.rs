//! Number formats: one module per block type, scalar reference encoders and decoders bit-exact with ggml.
//!
//! Each module mirrors its ggml counterpart (ggml-common.h block structs, ggml-quants.c `quantize_row_*_ref` and
//! `dequantize_row_*`, ggml-impl.h scalar conversions) with Rust casing, so a reader can put them side by side.
//! These are the plain twins: kernels may add fast paths, and test them against these.
//!
//! The per-type functions work on whole blocks and trust their caller for lengths (debug-asserted);
//! [`dequantize_row`] and [`quantize_row`] dispatch on a [`DType`] and check every length first.

pub mod bf16;
pub mod f16;
pub mod mxfp4;
mod nan;
pub mod q4_0;
pub mod q4_1;
pub mod q5_0;
pub mod q5_1;
pub mod q8_0;

pub use bf16::{bf16_to_fp32, fp32_to_bf16};
pub use f16::{fp16_to_fp32, fp32_to_fp16};
pub use mxfp4::{
    count_codes_at_6, dequantize_block_mxfp4, dequantize_row_mxfp4, dequantize_row_mxfp4_hf,
    e8m0_exponent, e8m0_to_fp32_half, quantize_row_mxfp4, quantize_row_mxfp4_mse,
    quantize_row_mxfp4_ref, repack_ggml_to_hf, repack_hf_to_ggml, split_blocks_mxfp4, BlockMxfp4,
    KVALUES_MXFP4, QK_MXFP4, QS_MXFP4,
};
pub use nan::has_nan;
pub use q4_0::{dequantize_row_q4_0, quantize_row_q4_0_ref, BlockQ4_0, QK4_0};
pub use q4_1::{dequantize_row_q4_1, quantize_row_q4_1_ref, BlockQ4_1, QK4_1};
pub use q5_0::{dequantize_row_q5_0, quantize_row_q5_0_ref, BlockQ5_0, QK5_0};
pub use q5_1::{dequantize_row_q5_1, quantize_row_q5_1_ref, BlockQ5_1, QK5_1};
pub use q8_0::{dequantize_row_q8_0, quantize_row_q8_0, quantize_row_q8_0_ref, BlockQ8_0, QK8_0};

use crate::DType;

/// What can go wrong converting a row. The caller adds the file and tensor name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantError {
    #[error("{dtype}: {n_elements} elements is not a whole number of {block_size}-element blocks")]
    NotBlockMultiple {
        dtype: DType,
        n_elements: usize,
        block_size: usize,
    },
    #[error("{dtype}: {what}: expected {expected}, found {found}")]
    LengthMismatch {
        dtype: DType,
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("{dtype} is not a numeric type we can convert to or from f32")]
    Unsupported { dtype: DType },
}

/// One number format ossify converts to and from f32, with its reference codec: the one list of those types
/// (as gguf-py's quant classes register themselves). Decoding, writing, the kernels' decoders, quantize's type
/// names and inspect-weights' statistics all read it.
#[derive(Clone, Copy)]
pub struct Codec {
    pub dtype: DType,
    /// Decodes whole blocks; `dst.len()` elements from exactly `dtype.nbytes(dst.len())` bytes.
    pub dequantize: fn(&[u8], &mut [f32]),
    /// Encodes whole blocks with ggml's reference rule (for MXFP4 the bit-exact ggml rule).
    pub quantize: fn(&[f32], &mut [u8]),
}

fn dequantize_row_f32(src: &[u8], dst: &mut [f32]) {
    for (o, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

fn quantize_row_f32(src: &[f32], dst: &mut [u8]) {
    for (x, o) in src.iter().zip(dst.chunks_exact_mut(4)) {
        o.copy_from_slice(&x.to_le_bytes());
    }
}

/// Every type ossify converts to and from f32, in the order llama.cpp lists them to users.
pub const CODECS: &[Codec] = &[
    Codec {
        dtype: DType::F32,
        dequantize: dequantize_row_f32,
        quantize: quantize_row_f32,
    },
    Codec {
        dtype: DType::F16,
        dequantize: f16::dequantize_row_f16,
        quantize: f16::quantize_row_f16,
    },
    Codec {
        dtype: DType::BF16,
        dequantize: bf16::dequantize_row_bf16,
        quantize: bf16::quantize_row_bf16,
    },
    Codec {
        dtype: DType::Q8_0,
        dequantize: dequantize_row_q8_0,
        quantize: quantize_row_q8_0,
    },
    Codec {
        dtype: DType::Q4_0,
        dequantize: dequantize_row_q4_0,
        quantize: quantize_row_q4_0_ref,
    },
    Codec {
        dtype: DType::Q4_1,
        dequantize: dequantize_row_q4_1,
        quantize: quantize_row_q4_1_ref,
    },
    Codec {
        dtype: DType::Q5_0,
        dequantize: dequantize_row_q5_0,
        quantize: quantize_row_q5_0_ref,
    },
    Codec {
        dtype: DType::Q5_1,
        dequantize: dequantize_row_q5_1,
        quantize: quantize_row_q5_1_ref,
    },
    Codec {
        dtype: DType::Mxfp4,
        dequantize: dequantize_row_mxfp4,
        quantize: quantize_row_mxfp4,
    },
];

/// The codec of `dtype`, if ossify converts it.
pub fn codec(dtype: DType) -> Option<&'static Codec> {
    CODECS.iter().find(|c| c.dtype == dtype)
}

/// Checks that `n_bytes` of `dtype` hold exactly `n_elements` elements.
fn check_sizes(
    dtype: DType,
    n_elements: usize,
    n_bytes: usize,
    what: &'static str,
) -> Result<(), QuantError> {
    if codec(dtype).is_none() {
        return Err(QuantError::Unsupported { dtype });
    }
    let expected = dtype
        .nbytes(n_elements)
        .ok_or(QuantError::NotBlockMultiple {
            dtype,
            n_elements,
            block_size: dtype.block_size(),
        })?;
    if expected != n_bytes {
        return Err(QuantError::LengthMismatch {
            dtype,
            what,
            expected,
            found: n_bytes,
        });
    }
    Ok(())
}

/// Decodes `dst.len()` elements of `dtype` from `src` (ggml's block layout for block types, little-endian for
/// scalars). `src.len()` must equal `dtype.nbytes(dst.len())`.
pub fn dequantize_row(dtype: DType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_sizes(dtype, dst.len(), src.len(), "source bytes")?;
    let c = codec(dtype).ok_or(QuantError::Unsupported { dtype })?;
    (c.dequantize)(src, dst);
    Ok(())
}

/// Encodes `src` as `dtype` into `dst` with ggml's reference rules (for MXFP4 the bit-exact ggml rule; see
/// [`quantize_row_mxfp4_mse`] for the better one). `dst.len()` must equal `dtype.nbytes(src.len())`.
pub fn quantize_row(dtype: DType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    check_sizes(dtype, src.len(), dst.len(), "destination bytes")?;
    let c = codec(dtype).ok_or(QuantError::Unsupported { dtype })?;
    (c.quantize)(src, dst);
    Ok(())
}

/// Runs `f` over matching whole blocks of `src` and `dst` (`I` items in, `O` items out per block).
pub(crate) fn map_blocks<T, U, const I: usize, const O: usize>(
    src: &[T],
    dst: &mut [U],
    mut f: impl FnMut(&[T; I], &mut [U; O]),
) {
    for (a, b) in src.chunks_exact(I).zip(dst.chunks_exact_mut(O)) {
        if let (Ok(a), Ok(b)) = (<&[T; I]>::try_from(a), <&mut [U; O]>::try_from(b)) {
            f(a, b);
        }
    }
}

/// The value of largest magnitude with its sign, the first one on ties (ggml's Q4_0 / Q5_0 `max`).
pub(crate) fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// (min, max) as ggml's Q4_1 / Q5_1 compute them, starting from (FLT_MAX, -FLT_MAX).
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_lengths() {
        let mut out = [0f32; 32];
        assert_eq!(
            dequantize_row(DType::Q8_0, &[0u8; 33], &mut out),
            Err(QuantError::LengthMismatch {
                dtype: DType::Q8_0,
                what: "source bytes",
                expected: 34,
                found: 33
            })
        );
        let mut out = [0f32; 31];
        assert!(matches!(
            dequantize_row(DType::Mxfp4, &[0u8; 17], &mut out),
            Err(QuantError::NotBlockMultiple { .. })
        ));
        let mut bytes = [0u8; 8];
        assert_eq!(
            quantize_row(DType::I64, &[0.0], &mut bytes),
            Err(QuantError::Unsupported { dtype: DType::I64 })
        );
    }
}
