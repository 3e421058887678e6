//! One module per command. Each exposes its options as a plain struct and a `run` that prints its result;
//! `main.rs` only maps clap arguments onto them.

pub mod convert;
pub mod inspect_weights;
pub mod perplexity;
pub mod quantize;
pub mod split;
pub mod verify_parity;
