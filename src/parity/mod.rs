//! Proving that a converted model computes what its source computes: tensor-by-tensor comparison
//! ([`tensors`]) and logit metrics defined as llama.cpp's `llama-perplexity --kl-divergence` defines them
//! ([`metrics`]).

pub mod error_model;
pub mod input;
pub mod logits;
pub mod metrics;
pub mod tensors;

use anyhow::{bail, Result};

use crate::gpt_oss::GptOssConfig;

/// Checks that two configs describe models of the same shape, so that their tensors and logits can be
/// compared; the error lists every disagreement. Called before any compute.
pub fn check_compatible(reference: &GptOssConfig, candidate: &GptOssConfig) -> Result<()> {
    let fields: [(&str, usize, usize); 11] = [
        ("vocab_size", reference.vocab_size, candidate.vocab_size),
        (
            "num_hidden_layers",
            reference.num_hidden_layers,
            candidate.num_hidden_layers,
        ),
        ("hidden_size", reference.hidden_size, candidate.hidden_size),
        (
            "intermediate_size",
            reference.intermediate_size,
            candidate.intermediate_size,
        ),
        (
            "num_attention_heads",
            reference.num_attention_heads,
            candidate.num_attention_heads,
        ),
        (
            "num_key_value_heads",
            reference.num_key_value_heads,
            candidate.num_key_value_heads,
        ),
        ("head_dim", reference.head_dim, candidate.head_dim),
        (
            "num_local_experts",
            reference.num_local_experts,
            candidate.num_local_experts,
        ),
        (
            "num_experts_per_tok",
            reference.num_experts_per_tok,
            candidate.num_experts_per_tok,
        ),
        (
            "sliding_window",
            reference.sliding_window,
            candidate.sliding_window,
        ),
        (
            "layer_types.len()",
            reference.layer_types.len(),
            candidate.layer_types.len(),
        ),
    ];
    let mut diffs: Vec<String> = fields
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(k, a, b)| format!("{k}: {a} vs {b}"))
        .collect();
    if diffs.is_empty() && reference.layer_types != candidate.layer_types {
        diffs.push(format!(
            "layer_types: {:?} vs {:?}",
            reference.layer_types, candidate.layer_types
        ));
    }
    if !diffs.is_empty() {
        bail!(
            "the models cannot be compared (reference vs candidate): {}",
            diffs.join(", ")
        );
    }
    Ok(())
}
