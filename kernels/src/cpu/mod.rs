//! CPU kernels: weights decoded on the fly, rayon-parallel over output rows, batched over tokens.
//!
//! Every optimized kernel has a plain scalar twin (`*_ref`) and a test that they agree.

pub mod decode;
pub mod matmul;
pub mod q8;
pub mod simd;

pub use matmul::{dot, dot_scalar, matmul, matmul_ref, matmul_with, Storage, WeightMatrix};
pub use q8::{matmul_prec, matmul_prec_ref, matmul_prec_with, Precision};
pub use simd::Isa;

use ossify_formats::DType;

/// Why a kernel refused its input.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("the CPU kernels cannot decode {0} weights")]
    UnsupportedType(DType),
    #[error("shape mismatch: {0}")]
    Shape(String),
}

#[cfg(test)]
mod tests;
