//! Tensor names of gpt-oss in the three layouts we read, as data.
//!
//! Each row names one GGUF tensor (the names llama.cpp gives gpt-oss: gguf-py/gguf/constants.py
//! `MODEL_ARCH.GPT_OSS` and `TENSOR_NAMES`), where it comes from in the Hugging Face layout (transformers'
//! `GptOssForCausalLM` state dict) and in OpenAI's `original/` layout (gpt_oss/torch/model.py), and which part of
//! the source tensor it is. `{bid}` stands for the layer index.
//!
//! Expert weights can be stored two ways in HF and original checkpoints: MXFP4 as a pair `{hf}_blocks` +
//! `{hf}_scales` (original: `{original}.blocks` + `{original}.scales`), or as a plain 16/32-bit tensor named
//! `{hf}` (a BF16 fine-tune; shape (E, in, out), the transpose of the MXFP4 layout's (E, out, in)).

/// Which part of the source tensor a GGUF tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The whole source tensor.
    Whole,
    /// Even rows of the fused gate/up projection (or even entries of its bias): the gate.
    Gate,
    /// Odd rows of the fused gate/up projection (or odd entries of its bias): the up projection.
    Up,
    /// The query rows of the original layout's fused qkv (first n_heads * head_dim rows).
    Q,
    /// The key rows of the fused qkv (next n_kv_heads * head_dim rows).
    K,
    /// The value rows of the fused qkv (last n_kv_heads * head_dim rows).
    V,
}

/// One GGUF tensor and its sources. `hf_part` applies to the HF name, `original_part` to the original name.
#[derive(Clone, Copy, Debug)]
pub struct TensorName {
    pub gguf: &'static str,
    pub hf: &'static str,
    pub hf_part: Part,
    pub original: &'static str,
    pub original_part: Part,
    /// Expert matrix that HF and original checkpoints may store as MXFP4 blocks + scales.
    pub expert_matrix: bool,
}

const fn t(gguf: &'static str, hf: &'static str, original: &'static str) -> TensorName {
    TensorName {
        gguf,
        hf,
        hf_part: Part::Whole,
        original,
        original_part: Part::Whole,
        expert_matrix: false,
    }
}

const fn tp(
    gguf: &'static str,
    hf: &'static str,
    hf_part: Part,
    original: &'static str,
    original_part: Part,
) -> TensorName {
    TensorName {
        gguf,
        hf,
        hf_part,
        original,
        original_part,
        expert_matrix: false,
    }
}

const fn expert(
    gguf: &'static str,
    hf: &'static str,
    original: &'static str,
    part: Part,
) -> TensorName {
    TensorName {
        gguf,
        hf,
        hf_part: part,
        original,
        original_part: part,
        expert_matrix: true,
    }
}

/// Tensors outside the layers.
pub const GLOBAL: &[TensorName] = &[
    t(
        "token_embd.weight",
        "model.embed_tokens.weight",
        "embedding.weight",
    ),
    t("output_norm.weight", "model.norm.weight", "norm.scale"),
    t("output.weight", "lm_head.weight", "unembedding.weight"),
];

/// Tensors of layer `{bid}`.
pub const PER_LAYER: &[TensorName] = &[
    t(
        "blk.{bid}.attn_norm.weight",
        "model.layers.{bid}.input_layernorm.weight",
        "block.{bid}.attn.norm.scale",
    ),
    tp(
        "blk.{bid}.attn_q.weight",
        "model.layers.{bid}.self_attn.q_proj.weight",
        Part::Whole,
        "block.{bid}.attn.qkv.weight",
        Part::Q,
    ),
    tp(
        "blk.{bid}.attn_q.bias",
        "model.layers.{bid}.self_attn.q_proj.bias",
        Part::Whole,
        "block.{bid}.attn.qkv.bias",
        Part::Q,
    ),
    tp(
        "blk.{bid}.attn_k.weight",
        "model.layers.{bid}.self_attn.k_proj.weight",
        Part::Whole,
        "block.{bid}.attn.qkv.weight",
        Part::K,
    ),
    tp(
        "blk.{bid}.attn_k.bias",
        "model.layers.{bid}.self_attn.k_proj.bias",
        Part::Whole,
        "block.{bid}.attn.qkv.bias",
        Part::K,
    ),
    tp(
        "blk.{bid}.attn_v.weight",
        "model.layers.{bid}.self_attn.v_proj.weight",
        Part::Whole,
        "block.{bid}.attn.qkv.weight",
        Part::V,
    ),
    tp(
        "blk.{bid}.attn_v.bias",
        "model.layers.{bid}.self_attn.v_proj.bias",
        Part::Whole,
        "block.{bid}.attn.qkv.bias",
        Part::V,
    ),
    t(
        "blk.{bid}.attn_output.weight",
        "model.layers.{bid}.self_attn.o_proj.weight",
        "block.{bid}.attn.out.weight",
    ),
    t(
        "blk.{bid}.attn_output.bias",
        "model.layers.{bid}.self_attn.o_proj.bias",
        "block.{bid}.attn.out.bias",
    ),
    t(
        "blk.{bid}.attn_sinks.weight",
        "model.layers.{bid}.self_attn.sinks",
        "block.{bid}.attn.sinks",
    ),
    t(
        "blk.{bid}.post_attention_norm.weight",
        "model.layers.{bid}.post_attention_layernorm.weight",
        "block.{bid}.mlp.norm.scale",
    ),
    t(
        "blk.{bid}.ffn_gate_inp.weight",
        "model.layers.{bid}.mlp.router.weight",
        "block.{bid}.mlp.gate.weight",
    ),
    t(
        "blk.{bid}.ffn_gate_inp.bias",
        "model.layers.{bid}.mlp.router.bias",
        "block.{bid}.mlp.gate.bias",
    ),
    expert(
        "blk.{bid}.ffn_gate_exps.weight",
        "model.layers.{bid}.mlp.experts.gate_up_proj",
        "block.{bid}.mlp.mlp1_weight",
        Part::Gate,
    ),
    tp(
        "blk.{bid}.ffn_gate_exps.bias",
        "model.layers.{bid}.mlp.experts.gate_up_proj_bias",
        Part::Gate,
        "block.{bid}.mlp.mlp1_bias",
        Part::Gate,
    ),
    expert(
        "blk.{bid}.ffn_up_exps.weight",
        "model.layers.{bid}.mlp.experts.gate_up_proj",
        "block.{bid}.mlp.mlp1_weight",
        Part::Up,
    ),
    tp(
        "blk.{bid}.ffn_up_exps.bias",
        "model.layers.{bid}.mlp.experts.gate_up_proj_bias",
        Part::Up,
        "block.{bid}.mlp.mlp1_bias",
        Part::Up,
    ),
    expert(
        "blk.{bid}.ffn_down_exps.weight",
        "model.layers.{bid}.mlp.experts.down_proj",
        "block.{bid}.mlp.mlp2_weight",
        Part::Whole,
    ),
    t(
        "blk.{bid}.ffn_down_exps.bias",
        "model.layers.{bid}.mlp.experts.down_proj_bias",
        "block.{bid}.mlp.mlp2_bias",
    ),
];

/// HF MXFP4 pair names for an expert matrix base name: (`{base}_blocks`, `{base}_scales`).
pub fn hf_mxfp4_names(base: &str) -> (String, String) {
    (format!("{base}_blocks"), format!("{base}_scales"))
}

/// Original-layout MXFP4 pair names for an expert matrix base name: (`{base}.blocks`, `{base}.scales`).
pub fn original_mxfp4_names(base: &str) -> (String, String) {
    (format!("{base}.blocks"), format!("{base}.scales"))
}

/// Substitutes the layer index into a template.
pub fn layer_name(template: &str, bid: usize) -> String {
    template.replace("{bid}", &bid.to_string())
}

/// Every GGUF tensor of a model with `n_layers` layers, with its row of this table, in llama.cpp's order.
pub fn all_tensors(n_layers: usize) -> Vec<(Option<usize>, &'static TensorName)> {
    let mut v: Vec<(Option<usize>, &'static TensorName)> =
        GLOBAL.iter().map(|r| (None, r)).collect();
    for bid in 0..n_layers {
        v.extend(PER_LAYER.iter().map(|r| (Some(bid), r)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_layout() {
        let mut g: Vec<_> = all_tensors(2)
            .iter()
            .map(|(b, r)| layer_name(r.gguf, b.unwrap_or(0)))
            .collect();
        let n = g.len();
        g.sort();
        g.dedup();
        assert_eq!(g.len(), n);
    }

    #[test]
    fn names_match_llama_cpp_gpt_oss() {
        // One row checked against a GGUF written by llama.cpp's converter (golden/ tests check them all).
        assert_eq!(
            layer_name(PER_LAYER[10].gguf, 3),
            "blk.3.post_attention_norm.weight"
        );
    }
}
