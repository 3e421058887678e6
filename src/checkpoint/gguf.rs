//! A GGUF file as a checkpoint: config from its `gpt-oss.*` metadata (the keys llama.cpp reads,
//! src/models/openai-moe.cpp and llama-model.cpp), tensors from its tensor infos.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ossify_formats::gguf::constants::{self as k, ARCH_GPT_OSS};
use ossify_formats::gguf::{GgufModel, MetaValue};

use crate::gpt_oss::config::{check_layer_count, ConfigSource};
use crate::gpt_oss::names;
use crate::gpt_oss::{AttentionKind, GptOssConfig, RopeScaling};

use super::{Checkpoint, ExpertStorage, Layout, Store};

/// llama.cpp's gpt-oss graph hard-codes the SwiGLU clamp (src/models/openai-moe.cpp, `ggml_swiglu_oai` limit).
const LLAMACPP_SWIGLU_LIMIT: f64 = 7.0;
/// llama.cpp's YaRN defaults when the beta keys are absent (llama-hparams.h `yarn_beta_fast` / `yarn_beta_slow`).
const LLAMACPP_YARN_BETA_FAST: f64 = 32.0;
const LLAMACPP_YARN_BETA_SLOW: f64 = 1.0;

struct Meta<'a> {
    file: &'a GgufModel,
    path: &'a Path,
}

impl<'a> Meta<'a> {
    fn key(&self, template: &str) -> String {
        k::key(template, ARCH_GPT_OSS)
    }
    fn opt(&self, template: &str) -> Option<&'a MetaValue> {
        self.file.get(&self.key(template))
    }
    fn missing(&self, template: &str) -> anyhow::Error {
        anyhow!(
            "{}: required metadata key '{}' is missing",
            self.path.display(),
            self.key(template)
        )
    }
    fn opt_usize(&self, template: &str) -> Result<Option<usize>> {
        let Some(v) = self.opt(template) else {
            return Ok(None);
        };
        let n = v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                anyhow!(
                    "{}: metadata key '{}' should be an unsigned integer, found {}",
                    self.path.display(),
                    self.key(template),
                    v.summary()
                )
            })?;
        Ok(Some(n))
    }
    fn usize(&self, template: &str) -> Result<usize> {
        self.opt_usize(template)?
            .ok_or_else(|| self.missing(template))
    }
    fn opt_f64(&self, template: &str) -> Result<Option<f64>> {
        let Some(v) = self.opt(template) else {
            return Ok(None);
        };
        Ok(Some(v.as_f64().ok_or_else(|| {
            anyhow!(
                "{}: metadata key '{}' should be a number, found {}",
                self.path.display(),
                self.key(template),
                v.summary()
            )
        })?))
    }
    fn token(&self, key: &str) -> Option<u32> {
        self.file.get(key).and_then(MetaValue::as_u32)
    }
}

pub(super) fn open(path: &Path) -> Result<Checkpoint> {
    let file = GgufModel::open(path).map_err(anyhow::Error::new)?;
    let config = config_from_gguf(&file, path)?;
    validate(&file, path, &config)?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        layout: Layout::Gguf,
        config,
        config_path: None,
        tokenizer_dir: None,
        experts: ExpertStorage::Gguf,
        store: Store::Gguf(Box::new(file)),
    })
}

/// Reads a [`GptOssConfig`] from GGUF metadata.
pub fn config_from_gguf(file: &GgufModel, path: &Path) -> Result<GptOssConfig> {
    let arch = file
        .get(k::GENERAL_ARCHITECTURE)
        .and_then(MetaValue::as_str)
        .ok_or_else(|| anyhow!("{}: no general.architecture", path.display()))?;
    if arch != ARCH_GPT_OSS {
        bail!(
            "{}: unknown architecture '{arch}'; ossify reads gpt-oss only",
            path.display()
        );
    }
    let m = Meta { file, path };
    let n_layers = m.usize(k::LLM_BLOCK_COUNT)?;
    check_layer_count(n_layers, path, ConfigSource::Gguf)?;
    let present = super::layers_present(
        file.tensor_infos().map(|t| t.name.as_str()),
        names::PER_LAYER[0].gguf,
    );
    if n_layers > present {
        bail!(
            "{}: metadata key '{}' = {n_layers} but the file's tensors hold {present} layer(s)",
            path.display(),
            m.key(k::LLM_BLOCK_COUNT)
        );
    }
    let hidden = m.usize(k::LLM_EMBEDDING_LENGTH)?;
    let heads = m.usize(k::ATTENTION_HEAD_COUNT)?;
    if heads == 0 {
        bail!(
            "{}: metadata key '{}' must not be 0",
            path.display(),
            m.key(k::ATTENTION_HEAD_COUNT)
        );
    }
    let head_dim = m
        .opt_usize(k::ATTENTION_KEY_LENGTH)?
        .unwrap_or(hidden / heads);
    // gpt-oss's attention uses one head size for keys and values; llama.cpp reads both keys.
    if let Some(v) = m.opt_usize(k::ATTENTION_VALUE_LENGTH)? {
        if v != head_dim {
            bail!(
                "{}: metadata key '{}' = {v} differs from the key length {head_dim}; gpt-oss uses one head size",
                path.display(),
                m.key(k::ATTENTION_VALUE_LENGTH)
            );
        }
    }
    let vocab = match file
        .get(k::TOKENIZER_GGML_TOKENS)
        .and_then(MetaValue::as_array)
    {
        Some(a) => a.len(),
        None => file
            .tensor_info(names::TOKEN_EMBD.gguf)
            .and_then(|t| t.shape.first().copied())
            .ok_or_else(|| {
                anyhow!(
                    "{}: no tokenizer.ggml.tokens and no {} to size the vocabulary",
                    path.display(),
                    names::TOKEN_EMBD.gguf
                )
            })?,
    };
    let scaling_type = m.opt(k::ROPE_SCALING_TYPE).and_then(MetaValue::as_str);
    let rope_scaling = match scaling_type {
        Some("yarn") => Some(RopeScaling {
            factor: m
                .opt_f64(k::ROPE_SCALING_FACTOR)?
                .ok_or_else(|| m.missing(k::ROPE_SCALING_FACTOR))?,
            beta_fast: m
                .opt_f64(k::ROPE_SCALING_YARN_BETA_FAST)?
                .unwrap_or(LLAMACPP_YARN_BETA_FAST),
            beta_slow: m
                .opt_f64(k::ROPE_SCALING_YARN_BETA_SLOW)?
                .unwrap_or(LLAMACPP_YARN_BETA_SLOW),
            original_max_position_embeddings: m.usize(k::ROPE_SCALING_ORIG_CTX_LEN)?,
            truncate: false,
        }),
        None | Some("none") => None,
        Some(other) => bail!(
            "{}: rope scaling type '{other}' is not supported for gpt-oss",
            path.display()
        ),
    };
    let layer_types = match m
        .opt(k::ATTENTION_SLIDING_WINDOW_PATTERN)
        .and_then(MetaValue::as_bool_array)
    {
        Some(p) if p.len() == n_layers => p
            .iter()
            .map(|&s| {
                if s {
                    AttentionKind::Sliding
                } else {
                    AttentionKind::Full
                }
            })
            .collect(),
        Some(p) => bail!(
            "{}: {} has {} entries for {n_layers} layers",
            path.display(),
            m.key(k::ATTENTION_SLIDING_WINDOW_PATTERN),
            p.len()
        ),
        None => AttentionKind::alternating(n_layers),
    };
    let config = GptOssConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: match m.opt_usize(k::EXPERT_FEED_FORWARD_LENGTH)? {
            Some(n) => n,
            None => m.usize(k::LLM_FEED_FORWARD_LENGTH)?,
        },
        num_hidden_layers: n_layers,
        num_attention_heads: heads,
        num_key_value_heads: m.usize(k::ATTENTION_HEAD_COUNT_KV)?,
        head_dim,
        num_local_experts: m.usize(k::EXPERT_COUNT)?,
        num_experts_per_tok: m.usize(k::EXPERT_USED_COUNT)?,
        sliding_window: m.usize(k::ATTENTION_SLIDING_WINDOW)?,
        max_position_embeddings: m.usize(k::LLM_CONTEXT_LENGTH)?,
        rope_theta: m
            .opt_f64(k::ROPE_FREQ_BASE)?
            .ok_or_else(|| m.missing(k::ROPE_FREQ_BASE))?,
        rope_scaling,
        rms_norm_eps: m
            .opt_f64(k::ATTENTION_LAYERNORM_RMS_EPS)?
            .ok_or_else(|| m.missing(k::ATTENTION_LAYERNORM_RMS_EPS))?,
        swiglu_limit: LLAMACPP_SWIGLU_LIMIT,
        layer_types,
        bos_token_id: m.token(k::TOKENIZER_GGML_BOS_TOKEN_ID),
        eos_token_id: m.token(k::TOKENIZER_GGML_EOS_TOKEN_ID),
        pad_token_id: m.token(k::TOKENIZER_GGML_PADDING_TOKEN_ID),
    };
    config.validate(path, ConfigSource::Gguf)?;
    Ok(config)
}

/// Every tensor llama.cpp's gpt-oss loader requires, with the shape the metadata implies.
fn validate(file: &GgufModel, path: &Path, c: &GptOssConfig) -> Result<()> {
    for r in names::resolve_all(Layout::Gguf, ExpertStorage::Gguf, c) {
        let name = &r.gguf;
        let t = file
            .tensor_info(name)
            .with_context(|| format!("{}: tensor '{name}' is missing", path.display()))?;
        if t.shape != r.shape {
            bail!(
                "{}: tensor '{name}' has shape {:?}, expected {:?} for this model's metadata",
                path.display(),
                t.shape,
                r.shape
            );
        }
    }
    Ok(())
}
