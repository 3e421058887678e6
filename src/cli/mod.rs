//! One module per command.

pub mod quantize;
