//! ossify as a library: the pipeline behind the `ossify` binary. It knows gpt-oss and knows nothing of byte
//! layouts (those live in `ossify-formats`) or of kernels (`ossify-kernels`). ARCHITECTURE.md describes the
//! modules and the direction of their imports.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod chat;
pub mod checkpoint;
pub mod cli;
pub mod fuzz;
pub mod gpt_oss;
pub mod interrupt;
pub mod npy;
pub mod parity;
pub mod plan;
pub mod progress;
pub mod quantize;
pub mod stream;
pub mod tokenizer;
