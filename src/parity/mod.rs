//! Proving that a converted model computes what its source computes: tensor-by-tensor comparison
//! ([`tensors`]), logit metrics defined as llama.cpp's `llama-perplexity --kl-divergence` defines them
//! ([`metrics`]).

pub mod metrics;
