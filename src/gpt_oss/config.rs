//! gpt-oss hyper-parameters, one struct whatever layout they were read from (HF config.json, OpenAI's
//! original/config.json, GGUF metadata). Field names and meanings follow transformers' `GptOssConfig`.

/// Whether a layer attends over a sliding window or the full context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKind {
    Sliding,
    Full,
}

/// YaRN parameters (transformers' `rope_scaling` / `rope_parameters` with rope_type "yarn").
#[derive(Clone, Debug, PartialEq)]
pub struct RopeScaling {
    pub factor: f64,
    pub beta_fast: f64,
    pub beta_slow: f64,
    pub original_max_position_embeddings: usize,
    /// false for gpt-oss (HF and OpenAI): the correction range is not rounded to whole dimensions.
    pub truncate: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GptOssConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub num_local_experts: usize,
    pub num_experts_per_tok: usize,
    pub sliding_window: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub rms_norm_eps: f64,
    pub swiglu_limit: f64,
    /// One entry per layer.
    pub layer_types: Vec<AttentionKind>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
}
