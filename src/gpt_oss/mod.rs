//! The gpt-oss model: configuration, tensor-name maps between layouts, and the forward pass.

pub mod config;

pub use config::{AttentionKind, GptOssConfig, RopeScaling};
