//! Compute kernels for ossify: matmul and friends over f32, 16-bit and block-quantized weights.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
