//! The gpt-oss model: configuration, tensor-name maps between layouts, and the forward pass.

pub mod config;
pub mod names;

pub use config::{AttentionKind, GptOssConfig, RopeScaling};
