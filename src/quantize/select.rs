//! Which type each tensor gets: llama-quantize's rules (src/llama-quant.cpp, `tensor_allows_quantization`,
//! `llama_tensor_get_type`, `llama_tensor_get_type_impl`, `tensor_type_fallback`) for the presets in
//! [`super::preset`], applied to GGUF tensor names and row-major shapes.
//!
//! Only the branches that can fire for gpt-oss with these presets are kept (32 experts, no imatrix-driven type
//! changes, no k-quants). One deliberate difference: for q4_0/q4_1/q5_0/q5_1 llama.cpp writes `output.weight` as
//! Q6_K, a type ossify does not write; ossify writes Q8_0 there and says so (pass `--output-tensor-type q8_0` to
//! llama-quantize for identical files).

use super::preset::{parse_tensor_type, Preset};
use crate::gpt_oss::names;
use ossify_formats::DType;
use regex::Regex;

/// One `--tensor-type REGEX=TYPE` override. The pattern is matched anywhere in the tensor name
/// (`std::regex_search` in llama.cpp), lower-cased as llama-quantize does.
#[derive(Clone, Debug)]
pub struct TensorTypeOverride {
    pub pattern: Regex,
    pub dtype: DType,
}

impl TensorTypeOverride {
    /// Parses `REGEX=TYPE`, splitting at the first `=` as llama-quantize's `parse_tensor_type` does.
    pub fn parse(arg: &str) -> Result<TensorTypeOverride, String> {
        let (pat, ty) = arg
            .split_once('=')
            .ok_or_else(|| format!("--tensor-type '{arg}': expected REGEX=TYPE"))?;
        if pat.is_empty() {
            return Err(format!(
                "--tensor-type '{arg}': missing tensor name pattern"
            ));
        }
        let dtype = parse_tensor_type(ty).map_err(|e| format!("--tensor-type '{arg}': {e}"))?;
        let pattern = Regex::new(&pat.to_lowercase())
            .map_err(|e| format!("--tensor-type '{arg}': bad pattern: {e}"))?;
        Ok(TensorTypeOverride { pattern, dtype })
    }
}

/// Everything that decides the output types.
#[derive(Clone, Debug)]
pub struct TypeRules {
    pub preset: &'static Preset,
    pub overrides: Vec<TensorTypeOverride>,
    pub output_tensor_type: Option<DType>,
    pub token_embedding_type: Option<DType>,
    /// The model has no `output.weight` and reuses `token_embd.weight` (never the case for gpt-oss).
    pub tied_embeddings: bool,
}

/// Why a tensor got its type; printed in the per-tensor log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// llama.cpp never quantizes it (1-D, norm, router, not a `.weight`): kept in its source type.
    NeverQuantized,
    Preset,
    Override(String),
    OutputTensorType,
    TokenEmbeddingType,
    /// The rule asked for `wanted`, which ossify does not write; `dtype` is the nearest type it does.
    Substituted {
        wanted: &'static str,
    },
    /// Rows of `ncols` elements are not whole blocks of `wanted` (llama.cpp's `tensor_type_fallback`).
    Fallback {
        wanted: DType,
        ncols: usize,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub dtype: DType,
    pub reason: Reason,
}

impl Choice {
    /// A note worth printing (fallbacks and substitutions), or `None`.
    pub fn note(&self, name: &str) -> Option<String> {
        match &self.reason {
            Reason::Fallback { wanted, ncols } => Some(format!(
                "{name}: rows of {ncols} are not a multiple of {wanted}'s block of {}, falling back to {}",
                wanted.block_size(),
                self.dtype
            )),
            Reason::Substituted { wanted } => Some(format!(
                "{name}: llama.cpp would write {wanted}, which ossify does not write; using {}",
                self.dtype
            )),
            _ => None,
        }
    }
}

/// ggml's `ggml_n_dims`: the number of dimensions once trailing (outermost) dimensions of 1 are dropped.
pub fn ggml_n_dims(shape: &[usize]) -> usize {
    // shape is outermost first; ggml's ne is innermost first.
    let mut n = shape.len();
    while n > 1 && shape[shape.len() - n] == 1 {
        n -= 1;
    }
    n.max(1)
}

/// llama.cpp's `tensor_allows_quantization`, restricted to the names that can occur in a gpt-oss GGUF.
pub fn allows_quantization(name: &str, shape: &[usize]) -> bool {
    ggml_n_dims(shape) >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains("ffn_gate_inp.weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
}

fn is_output(name: &str) -> bool {
    names::OUTPUT.is(name)
}

/// llama.cpp also counts `per_layer_token_embd.weight` (Gemma 3n), which gpt-oss does not have.
fn is_token_embd(name: &str) -> bool {
    names::TOKEN_EMBD.is(name) || name == "per_layer_token_embd.weight"
}

impl TypeRules {
    pub fn new(preset: &'static Preset) -> TypeRules {
        TypeRules {
            preset,
            overrides: Vec::new(),
            output_tensor_type: None,
            token_embedding_type: None,
            tied_embeddings: false,
        }
    }

    /// The type tensor `name` of row-major `shape`, currently `current`, is written as.
    ///
    /// Errors when a type the user named explicitly for this tensor cannot hold its rows.
    pub fn choose(&self, name: &str, shape: &[usize], current: DType) -> Result<Choice, String> {
        let ncols = shape.last().copied().unwrap_or(1);
        let explicit = |dtype: DType, flag: &str, reason: Reason| {
            if ncols % dtype.block_size() != 0 {
                Err(format!(
                    "tensor '{name}' {shape:?}: {flag} {dtype} cannot hold it (rows of {ncols} are not a \
                     multiple of {})",
                    dtype.block_size()
                ))
            } else {
                Ok(Choice { dtype, reason })
            }
        };
        if !allows_quantization(name, shape) {
            return Ok(Choice {
                dtype: current,
                reason: Reason::NeverQuantized,
            });
        }
        if let (Some(t), true) = (self.token_embedding_type, is_token_embd(name)) {
            return explicit(t, "--token-embedding-type", Reason::TokenEmbeddingType);
        }
        if let (Some(t), true) = (self.output_tensor_type, is_output(name)) {
            return explicit(t, "--output-tensor-type", Reason::OutputTensorType);
        }
        let default = self.preset.default;
        if !default.is_quantized() {
            return Ok(Choice {
                dtype: default,
                reason: Reason::Preset,
            });
        }
        let lower = name.to_lowercase();
        let mut choice = match self.overrides.iter().find(|o| o.pattern.is_match(&lower)) {
            Some(o) => Choice {
                dtype: o.dtype,
                reason: Reason::Override(o.pattern.as_str().to_string()),
            },
            None => self.preset_choice(name, shape),
        };
        // tensor_type_fallback: every type we write has 32-element blocks, so the only fallback is F16.
        if ncols % choice.dtype.block_size() != 0 {
            choice = Choice {
                dtype: DType::F16,
                reason: Reason::Fallback {
                    wanted: choice.dtype,
                    ncols,
                },
            };
        }
        Ok(choice)
    }

    /// `llama_tensor_get_type_impl` for our presets.
    fn preset_choice(&self, name: &str, shape: &[usize]) -> Choice {
        let default = self.preset.default;
        let ncols = shape.last().copied().unwrap_or(1);
        let mxfp4_moe = self.preset.default == DType::Mxfp4;
        let chosen = |dtype| Choice {
            dtype,
            reason: Reason::Preset,
        };
        if is_output(name) || (self.tied_embeddings && is_token_embd(name)) {
            if mxfp4_moe || ncols % default.block_size() != 0 || default == DType::Q8_0 {
                return chosen(DType::Q8_0);
            }
            return Choice {
                dtype: DType::Q8_0,
                reason: Reason::Substituted { wanted: "Q6_K" },
            };
        }
        if mxfp4_moe {
            // ne[2] > 1: a stack of expert matrices.
            let experts = shape.len() == 3 && shape[0] > 1;
            return chosen(if experts { DType::Mxfp4 } else { DType::Q8_0 });
        }
        chosen(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(p: &str) -> TypeRules {
        TypeRules::new(Preset::by_name(p).unwrap())
    }

    fn ty(r: &TypeRules, name: &str, shape: &[usize], cur: DType) -> DType {
        r.choose(name, shape, cur).unwrap().dtype
    }

    #[test]
    fn mxfp4_moe_matches_llama_quant_rules() {
        let r = rules("mxfp4_moe");
        let bf = DType::BF16;
        assert_eq!(
            ty(&r, "blk.0.ffn_gate_exps.weight", &[32, 2880, 2880], bf),
            DType::Mxfp4
        );
        assert_eq!(
            ty(&r, "blk.0.ffn_down_exps.weight", &[32, 2880, 2880], bf),
            DType::Mxfp4
        );
        assert_eq!(
            ty(&r, "blk.0.attn_q.weight", &[4096, 2880], bf),
            DType::Q8_0
        );
        assert_eq!(
            ty(&r, "token_embd.weight", &[201088, 2880], bf),
            DType::Q8_0
        );
        assert_eq!(ty(&r, "output.weight", &[201088, 2880], bf), DType::Q8_0);
        // never quantized: router, norms, 1-D biases and sinks keep their type
        assert_eq!(ty(&r, "blk.0.ffn_gate_inp.weight", &[32, 2880], bf), bf);
        assert_eq!(
            ty(&r, "blk.0.attn_norm.weight", &[2880], DType::F32),
            DType::F32
        );
        assert_eq!(
            ty(&r, "blk.0.attn_sinks.weight", &[64], DType::F32),
            DType::F32
        );
        assert_eq!(
            ty(&r, "blk.0.ffn_gate_exps.bias", &[32, 2880], DType::F32),
            DType::F32
        );
        // an expert stack of one expert is not "ne[2] > 1"
        assert_eq!(
            ty(&r, "blk.0.ffn_up_exps.weight", &[1, 64, 64], bf),
            DType::Q8_0
        );
    }

    #[test]
    fn output_under_q4_presets_is_substituted() {
        let r = rules("q4_0");
        let c = r.choose("output.weight", &[1000, 64], DType::BF16).unwrap();
        assert_eq!(c.dtype, DType::Q8_0);
        assert_eq!(c.reason, Reason::Substituted { wanted: "Q6_K" });
        assert!(c.note("output.weight").unwrap().contains("Q6_K"));
        assert_eq!(
            ty(&r, "token_embd.weight", &[1000, 64], DType::BF16),
            DType::Q4_0
        );
        assert_eq!(
            ty(&r, "blk.0.ffn_down_exps.weight", &[4, 64, 64], DType::BF16),
            DType::Q4_0
        );
    }

    #[test]
    fn float_presets_ignore_overrides_like_llama_cpp() {
        let mut r = rules("f16");
        r.overrides
            .push(TensorTypeOverride::parse("attn_q=q8_0").unwrap());
        assert_eq!(
            ty(&r, "blk.0.attn_q.weight", &[64, 64], DType::BF16),
            DType::F16
        );
        assert_eq!(ty(&r, "output.weight", &[100, 64], DType::BF16), DType::F16);
    }

    #[test]
    fn overrides_first_match_wins_and_fall_back() {
        let mut r = rules("mxfp4_moe");
        r.overrides
            .push(TensorTypeOverride::parse("ffn_down_exps=Q8_0").unwrap());
        r.overrides
            .push(TensorTypeOverride::parse("ffn_.*_exps=q4_1").unwrap());
        assert_eq!(
            ty(&r, "blk.3.ffn_down_exps.weight", &[4, 64, 64], DType::BF16),
            DType::Q8_0
        );
        assert_eq!(
            ty(&r, "blk.3.ffn_up_exps.weight", &[4, 64, 64], DType::BF16),
            DType::Q4_1
        );
        // rows of 40 are not whole blocks: F16, with a note
        let c = r
            .choose("blk.3.attn_q.weight", &[64, 40], DType::BF16)
            .unwrap();
        assert_eq!(c.dtype, DType::F16);
        assert!(matches!(
            c.reason,
            Reason::Fallback {
                wanted: DType::Q8_0,
                ncols: 40
            }
        ));
    }

    #[test]
    fn explicit_types_that_cannot_hold_a_tensor_are_errors() {
        let mut r = rules("q8_0");
        r.output_tensor_type = Some(DType::Q4_0);
        assert_eq!(
            ty(&r, "output.weight", &[100, 64], DType::BF16),
            DType::Q4_0
        );
        let e = r
            .choose("output.weight", &[100, 40], DType::BF16)
            .unwrap_err();
        assert!(
            e.contains("output.weight") && e.contains("--output-tensor-type"),
            "{e}"
        );
        r.token_embedding_type = Some(DType::F32);
        assert_eq!(
            ty(&r, "token_embd.weight", &[100, 40], DType::BF16),
            DType::F32
        );
    }

    #[test]
    fn bad_overrides_are_rejected() {
        assert!(TensorTypeOverride::parse("attn_q").is_err());
        assert!(TensorTypeOverride::parse("=q8_0").is_err());
        assert!(TensorTypeOverride::parse("attn_q=q6_k").is_err());
        assert!(TensorTypeOverride::parse("attn_q(=q8_0").is_err());
    }

    #[test]
    fn n_dims_drops_outer_ones() {
        assert_eq!(ggml_n_dims(&[1, 64]), 1);
        assert_eq!(ggml_n_dims(&[2, 64]), 2);
        assert_eq!(ggml_n_dims(&[]), 1);
        assert_eq!(ggml_n_dims(&[1, 1, 3, 4]), 2);
    }
}
