//! How much error storing a tensor in a number format can explain, so that `verify-parity` judges a lossy
//! tensor against its target type instead of counting any difference as "lossy" (issue 8: two models with
//! entirely different expert weights, SNR −8.6 dB, passed `--tensors-only`).
//!
//! The rule: rounding to a grid of step Δ adds an error spread evenly over ±Δ/2, of mean square Δ²/12. For
//! each value of the reference we take the step the target type has there — derived from the type's
//! definition in ggml (ggml-quants.c `quantize_row_*_ref`), not from our encoder:
//!
//! | type  | step at a value of block b (32 values)                                                      |
//! |-------|---------------------------------------------------------------------------------------------|
//! | Q8_0  | amax(b) / 127                                                                               |
//! | Q5_0  | amax(b) / 16                                                                                |
//! | Q4_0  | amax(b) / 8                                                                                 |
//! | Q5_1  | (max(b) − min(b)) / 31                                                                      |
//! | Q4_1  | (max(b) − min(b)) / 15                                                                      |
//! | MXFP4 | s · {0.5, 1, 2} for \|x\|/s in [0, 2), [2, 4), [4, ∞), s = 2^(⌊log2 amax(b)⌋ − 2); values past 6s add their clipping (\|x\| − 6s)² |
//! | BF16 / F16 / F32 | one unit in the last place at the value (8 / 11 / 24 significant bits; F16 subnormal below 2^-14) |
//!
//! A lossy tensor passes when its summed squared error is at most [`EXPLAINED_SSE_FACTOR`] times the sum of
//! those expectations, i.e. its RMSE is at most twice what plain rounding to the target type gives. The slack
//! covers encoders that place error differently (`--mxfp4-scale mse`, an importance matrix) and blocks whose
//! values are not spread evenly; different weights miss the bound by orders of magnitude.

use ossify_formats::DType;

/// A lossy tensor's squared error may be this many times what rounding to its target type explains (RMSE
/// twice the expected).
pub const EXPLAINED_SSE_FACTOR: f64 = 4.0;

/// The ggml block size every quantized type here uses.
const QK: usize = 32;

/// One unit in the last place at `x` for a float format with `mantissa_bits` stored mantissa bits and smallest
/// normal exponent `min_exp`.
fn ulp(x: f64, mantissa_bits: i32, min_exp: i32) -> f64 {
    let e = if x == 0.0 || !x.is_finite() {
        min_exp
    } else {
        (x.abs().log2().floor() as i32).max(min_exp)
    };
    2f64.powi(e - mantissa_bits)
}

fn block_sse(dtype: DType, b: &[f32]) -> f64 {
    let amax = b.iter().fold(0f64, |m, &x| m.max(f64::from(x).abs()));
    let (lo, hi) = b
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
            (l.min(f64::from(x)), h.max(f64::from(x)))
        });
    let n = b.len() as f64;
    let uniform = |step: f64| n * step * step / 12.0;
    match dtype {
        DType::Q8_0 => uniform(amax / 127.0),
        DType::Q5_0 => uniform(amax / 16.0),
        DType::Q4_0 => uniform(amax / 8.0),
        DType::Q5_1 => uniform((hi - lo) / 31.0),
        DType::Q4_1 => uniform((hi - lo) / 15.0),
        DType::Mxfp4 => {
            if amax == 0.0 {
                return 0.0;
            }
            let s = 2f64.powi(amax.log2().floor() as i32 - 2);
            b.iter()
                .map(|&x| {
                    let r = f64::from(x).abs() / s;
                    let step = if r < 2.0 {
                        0.5
                    } else if r < 4.0 {
                        1.0
                    } else {
                        2.0
                    } * s;
                    step * step / 12.0 + ((r - 6.0).max(0.0) * s).powi(2)
                })
                .sum()
        }
        _ => 0.0,
    }
}

/// The squared error storing `values` (rows of `row_len`, reference values) in `dtype` is expected to add, or
/// `None` for a type without a rule (integers).
pub fn expected_sse(dtype: DType, values: &[f32], row_len: usize) -> Option<f64> {
    let per_value = |m: i32, min_exp: i32| -> f64 {
        values
            .iter()
            .map(|&x| ulp(f64::from(x), m, min_exp).powi(2) / 12.0)
            .sum()
    };
    Some(match dtype {
        DType::F32 => per_value(23, -126),
        DType::F16 => per_value(10, -14),
        DType::BF16 => per_value(7, -126),
        DType::Q8_0 | DType::Q5_0 | DType::Q4_0 | DType::Q5_1 | DType::Q4_1 | DType::Mxfp4 => {
            values
                .chunks(row_len.max(1))
                .flat_map(|row| row.chunks(QK))
                .map(|b| block_sse(dtype, b))
                .sum()
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ossify_formats::quant::{dequantize_row, quantize_row};

    /// A smooth, varied row (no randomness needed).
    fn row(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| scale * ((i as f32 * 0.37).sin() + 0.3 * (i as f32 * 1.7).cos()))
            .collect()
    }

    /// ggml's own rounding (our encoders are bit-exact with ggml's reference, tests/quant_golden.rs) stays
    /// within the bound, and different weights do not.
    #[test]
    fn rounding_is_explained_and_different_weights_are_not() {
        let x = row(4096, 0.02);
        let other = row(4096, 0.02).iter().rev().copied().collect::<Vec<_>>();
        for dtype in [
            DType::Q8_0,
            DType::Q5_0,
            DType::Q5_1,
            DType::Q4_0,
            DType::Q4_1,
            DType::Mxfp4,
            DType::BF16,
            DType::F16,
        ] {
            let mut bytes = vec![0u8; dtype.nbytes(x.len()).unwrap()];
            quantize_row(dtype, &x, &mut bytes).unwrap();
            let mut y = vec![0f32; x.len()];
            dequantize_row(dtype, &bytes, &mut y).unwrap();
            let sse: f64 = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            let bound = EXPLAINED_SSE_FACTOR * expected_sse(dtype, &x, 4096).unwrap();
            assert!(
                sse <= bound,
                "{dtype}: rounding error {sse:e} over bound {bound:e}"
            );
            // Plain rounding is close to its expectation, not far below it (the bound is not vacuous).
            assert!(
                sse * 20.0 >= bound,
                "{dtype}: bound {bound:e} is loose for {sse:e}"
            );
            let wrong: f64 = x
                .iter()
                .zip(&other)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            assert!(
                wrong > 20.0 * bound,
                "{dtype}: different weights {wrong:e} vs {bound:e}"
            );
        }
    }
}
