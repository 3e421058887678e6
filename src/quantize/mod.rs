//! `quantize`: rewrite a checkpoint's tensors into ggml block types, the way llama-quantize chooses them, as a
//! GGUF or as OpenAI's MXFP4 safetensors layout.
//!
//! - [`preset`]: the presets (`--type`), as data.
//! - [`select`]: which type each tensor gets (llama.cpp's rules, overrides, fallbacks).
//! - [`imatrix`]: per-input-channel activation importance collected by the forward pass (`--calibration`).

pub mod calibrate;
pub mod encode;
pub mod imatrix;
pub mod pipeline;
pub mod preset;
pub mod safetensors_out;
pub mod select;

pub use encode::Mxfp4Scale;
pub use imatrix::ImportanceMatrix;
pub use pipeline::{
    quantize_gguf, quantize_to_gguf, write_gguf, OutputSplit, QuantizeOptions, SourceTensor,
    Summary,
};
pub use preset::{Preset, PRESETS};
pub use select::{Choice, Reason, TensorTypeOverride, TypeRules};
