//! File formats and number formats for ossify, with no knowledge of any model.
//!
//! Everything here works on one idea: a tensor is a name, a type, a shape and a borrowed slice of bytes
//! ([`TensorView`]). Readers ([`gguf`], [`safetensors`]) produce views over memory-mapped files; writers
//! consume them; [`quant`] holds one module per block format with scalar reference encoders and decoders that
//! agree bit for bit with ggml's reference C code.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod atomic;
pub mod cpu;
pub mod direct;
pub mod dtype;
pub mod fuzz;
pub mod gguf;
pub mod mmap;
pub mod npy;
pub mod quant;
pub mod safetensors;
pub mod sink;
pub mod tensor;

pub use dtype::DType;
pub use tensor::TensorView;
