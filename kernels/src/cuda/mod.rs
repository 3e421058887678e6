//! The CUDA backend: device buffers and kernel launches through cudarc, kernels from `kernels/cuda/*.cu` compiled
//! at run time by NVRTC for the GPU found.
//!
//! Nothing here is linked against CUDA: cudarc opens the driver (`libcuda.so`) and [`nvrtc`] opens NVRTC when a
//! [`Gpu`] is first opened, so the binary builds without a toolkit and runs where there is no GPU; there
//! [`Gpu::open`] fails with [`CudaError::NoDriver`] or [`CudaError::NoDevice`].
//!
//! Weights go to the device once, in their stored types ([`WeightStore`]), and every kernel decodes them as
//! [`crate::cpu::decode`] does; [`MatDesc`] describes a matrix inside those bytes as [`crate::cpu::WeightMatrix`]
//! does on the host.

mod device;
pub mod nvrtc;

pub use device::{
    ActScratch, Attention, Buf, Gpu, MatDesc, MoeTiles, MulMat, WeightStore, KERNEL_NAMES,
    MMVQ_MAX_BATCH, TOKENS_PER_TILE,
};
pub use nvrtc::{Nvrtc, Output};

/// Text every kernel source is compiled behind (types, weight decoding, warp reductions).
pub const COMMON: &str = include_str!("../../cuda/common.cuh");

/// The kernel sources, by file name.
pub const SOURCES: [(&str, &str); 2] = [
    ("matmul.cu", include_str!("../../cuda/matmul.cu")),
    ("ops.cu", include_str!("../../cuda/ops.cu")),
];

/// What NVRTC compiles for source `name`: [`COMMON`], then the file, with a `#line` so errors name the file's
/// own lines.
pub fn full_source(name: &str, source: &str) -> String {
    format!("{COMMON}\n#line 1 \"{name}\"\n{source}")
}

/// Why the CUDA backend could not run.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver found ({0})")]
    NoDriver(String),
    #[error("no CUDA device found ({0})")]
    NoDevice(String),
    #[error("NVRTC (the CUDA run-time compiler) not found: {0}")]
    NoNvrtc(String),
    #[error("NVRTC could not compile {name} ({arch}):\n{log}")]
    Compile {
        name: String,
        arch: String,
        log: String,
    },
    #[error("CUDA driver: {0}")]
    Driver(#[from] cudarc::driver::DriverError),
    #[error("the CUDA backend cannot {0}")]
    Unsupported(String),
}
