//! The gpt-oss model: configuration, tensor-name maps between layouts, and the forward pass.

pub mod config;
pub mod metadata;
pub mod names;

pub use config::{AttentionKind, GptOssConfig, RopeScaling};
pub mod cuda;
pub mod forward;
pub mod rope;
pub mod weights;

pub use forward::{Device, Divergence, ForwardOptions, Model, Precision, Session, SubBlock, Trace};
pub use names::Layout;
pub use weights::TensorSource;
