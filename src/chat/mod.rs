//! Talking to a model: the harmony conversation format ([`harmony`], as openai-harmony renders and parses it),
//! the checkpoint's own chat template ([`template`], through minijinja), and decoding with the KV cache
//! ([`generate`]).

pub mod generate;
pub mod harmony;
pub mod template;
