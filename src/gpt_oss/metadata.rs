//! The gpt-oss config as GGUF metadata, both ways, from one table.
//!
//! [`GGUF_KEYS`] lists, in the order llama.cpp's converter writes them (gguf-py `GGUFWriter`, conversion/base.py
//! `TextModel.set_gguf_parameters`, conversion/gpt_oss.py `GptOssModel.set_gguf_parameters`), every key of a
//! gpt-oss GGUF before the vocabulary: each config number with its accessor, GGUF value type and whether
//! llama.cpp's loader (src/models/openai-moe.cpp, llama-model.cpp) needs it. [`to_gguf`] walks the table to
//! write; [`config_from_gguf`] walks the same table to read. Values that are not plain numbers (the rope
//! scaling type, the per-layer sliding pattern, the vocabulary size and token ids) are spelled out beside it.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use ossify_formats::gguf::constants::{self as k, ARCH_GPT_OSS, ROPE_SCALING_TYPE_YARN};
use ossify_formats::gguf::{GgufModel, MetaArray, MetaValue};

use super::config::{
    check_layer_count, AttentionKind, ConfigSource, Field, GptOssConfig, RopeScaling,
};
use super::names;

/// llama.cpp's gpt-oss graph hard-codes the SwiGLU clamp (src/models/openai-moe.cpp, `ggml_swiglu_oai` limit).
const LLAMACPP_SWIGLU_LIMIT: f64 = 7.0;
/// llama.cpp's YaRN defaults when the beta keys are absent (llama-hparams.h `yarn_beta_fast` / `yarn_beta_slow`).
const LLAMACPP_YARN_BETA_FAST: f64 = 32.0;
const LLAMACPP_YARN_BETA_SLOW: f64 = 1.0;

/// Whether a reader needs a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    Required,
    Optional,
    /// Written for llama.cpp, never read back (it restates another key).
    WriteOnly,
}

/// One entry of the metadata, in write order.
#[derive(Clone, Copy)]
pub enum Entry {
    /// `general.architecture` = "gpt-oss".
    Architecture,
    /// `general.type` = "model".
    Type,
    /// `general.name`: the model folder's name.
    Name,
    /// A config number: `{arch}.*` key, the config.json field it carries (for messages), its accessor (written as
    /// u32 for counts, f32 for floats; skipped when the accessor has no value) and whether a reader needs it.
    /// Keys under `rope.scaling.` are read only when the scaling type is YaRN.
    Config {
        key: &'static str,
        field: &'static str,
        value: Field,
        need: Need,
    },
    /// `{arch}.rope.scaling.type` = "yarn" when the config has YaRN scaling.
    RopeScalingType,
    /// `general.file_type`.
    FileType,
    /// `{arch}.attention.sliding_window_pattern`, when the layers are not llama.cpp's default alternation.
    SlidingWindowPattern,
    /// `general.quantization_version`.
    QuantizationVersion,
}

const fn key(key: &'static str, field: &'static str, value: Field, need: Need) -> Entry {
    Entry::Config {
        key,
        field,
        value,
        need,
    }
}

use Need::{Optional, Required, WriteOnly};

/// Every key before the vocabulary, in llama.cpp's converter's order.
pub const GGUF_KEYS: &[Entry] = &[
    Entry::Architecture,
    Entry::Type,
    Entry::Name,
    key(
        k::LLM_BLOCK_COUNT,
        "num_hidden_layers",
        Field::NUM_HIDDEN_LAYERS,
        Required,
    ),
    key(
        k::LLM_CONTEXT_LENGTH,
        "max_position_embeddings",
        Field::MAX_POSITION_EMBEDDINGS,
        Required,
    ),
    key(
        k::LLM_EMBEDDING_LENGTH,
        "hidden_size",
        Field::HIDDEN_SIZE,
        Required,
    ),
    // Read only when the expert key below is missing.
    key(
        k::LLM_FEED_FORWARD_LENGTH,
        "intermediate_size",
        Field::INTERMEDIATE_SIZE,
        Optional,
    ),
    key(
        k::ATTENTION_HEAD_COUNT,
        "num_attention_heads",
        Field::NUM_ATTENTION_HEADS,
        Required,
    ),
    key(
        k::ATTENTION_HEAD_COUNT_KV,
        "num_key_value_heads",
        Field::NUM_KEY_VALUE_HEADS,
        Required,
    ),
    Entry::RopeScalingType,
    key(
        k::ROPE_SCALING_FACTOR,
        "rope_scaling.factor",
        Field::YARN_FACTOR,
        Required,
    ),
    key(
        k::ROPE_SCALING_ORIG_CTX_LEN,
        "rope_scaling.original_max_position_embeddings",
        Field::YARN_ORIGINAL_CONTEXT,
        Required,
    ),
    key(
        k::ROPE_SCALING_YARN_BETA_FAST,
        "rope_scaling.beta_fast",
        Field::YARN_BETA_FAST,
        Optional,
    ),
    key(
        k::ROPE_SCALING_YARN_BETA_SLOW,
        "rope_scaling.beta_slow",
        Field::YARN_BETA_SLOW,
        Optional,
    ),
    key(k::ROPE_FREQ_BASE, "rope_theta", Field::ROPE_THETA, Required),
    key(
        k::ATTENTION_LAYERNORM_RMS_EPS,
        "rms_norm_eps",
        Field::RMS_NORM_EPS,
        Required,
    ),
    key(
        k::EXPERT_COUNT,
        "num_local_experts",
        Field::NUM_LOCAL_EXPERTS,
        Required,
    ),
    key(
        k::EXPERT_USED_COUNT,
        "num_experts_per_tok",
        Field::NUM_EXPERTS_PER_TOK,
        Required,
    ),
    // Absent: hidden_size / num_attention_heads, as llama.cpp assumes.
    key(
        k::ATTENTION_KEY_LENGTH,
        "head_dim",
        Field::HEAD_DIM,
        Optional,
    ),
    key(
        k::ATTENTION_VALUE_LENGTH,
        "head_dim",
        Field::HEAD_DIM,
        WriteOnly,
    ),
    Entry::FileType,
    key(
        k::ATTENTION_SLIDING_WINDOW,
        "sliding_window",
        Field::SLIDING_WINDOW,
        Required,
    ),
    key(
        k::EXPERT_FEED_FORWARD_LENGTH,
        "intermediate_size",
        Field::INTERMEDIATE_SIZE,
        Optional,
    ),
    Entry::SlidingWindowPattern,
    Entry::QuantizationVersion,
];

/// The GGUF keys of the config fields that are not plain numbers of [`GGUF_KEYS`], read by [`config_from_gguf`]
/// itself: (transformers' field name, key template).
const OTHER_KEYS: &[(&str, &str)] = &[
    ("vocab_size", k::TOKENIZER_GGML_TOKENS),
    ("layer_types", k::ATTENTION_SLIDING_WINDOW_PATTERN),
    ("bos_token_id", k::TOKENIZER_GGML_BOS_TOKEN_ID),
    ("eos_token_id", k::TOKENIZER_GGML_EOS_TOKEN_ID),
    ("pad_token_id", k::TOKENIZER_GGML_PADDING_TOKEN_ID),
];

/// The GGUF key a config field (transformers' name, as in [`GGUF_KEYS`]) is read from, for messages: the last
/// entry that sets it (`expert_feed_forward_length` overrides `feed_forward_length`), never a write-only one.
/// `None` for a field GGUF does not carry (swiglu_limit: llama.cpp's constant).
pub fn gguf_key_of(field: &str) -> Option<String> {
    let number = GGUF_KEYS.iter().rev().find_map(|e| match *e {
        Entry::Config {
            key,
            field: f,
            need,
            ..
        } if f == field && need != WriteOnly => Some(key),
        _ => None,
    });
    let template = number.or_else(|| {
        OTHER_KEYS
            .iter()
            .find(|(f, _)| *f == field)
            .map(|&(_, t)| t)
    })?;
    Some(k::key(template, ARCH_GPT_OSS))
}

fn in_rope_scaling(key: &str) -> bool {
    key.starts_with("{arch}.rope.scaling.")
}

/// Every metadata key/value before the vocabulary, in the order llama.cpp's converter writes them, with the same
/// GGUF value types: `name` is `general.name`, `file_type` `general.file_type`.
pub fn to_gguf(c: &GptOssConfig, name: &str, file_type: u32) -> Result<Vec<(String, MetaValue)>> {
    let a = |t: &str| k::key(t, ARCH_GPT_OSS);
    let mut kv = Vec::new();
    for e in GGUF_KEYS {
        match *e {
            Entry::Architecture => kv.push((
                k::GENERAL_ARCHITECTURE.into(),
                MetaValue::String(ARCH_GPT_OSS.into()),
            )),
            Entry::Type => kv.push((k::GENERAL_TYPE.into(), MetaValue::String("model".into()))),
            Entry::Name => kv.push((k::GENERAL_NAME.into(), MetaValue::String(name.into()))),
            Entry::Config {
                key, field, value, ..
            } => {
                let v = match value {
                    Field::Count { get, .. } => get(c)
                        .map(|n| {
                            u32::try_from(n)
                                .map(MetaValue::U32)
                                .map_err(|_| anyhow!("{field} = {n} does not fit GGUF's u32"))
                        })
                        .transpose()?,
                    Field::Float { get, .. } => get(c).map(|x| MetaValue::F32(x as f32)),
                };
                if let Some(v) = v {
                    kv.push((a(key), v));
                }
            }
            Entry::RopeScalingType => {
                if c.rope_scaling.is_some() {
                    kv.push((
                        a(k::ROPE_SCALING_TYPE),
                        MetaValue::String(ROPE_SCALING_TYPE_YARN.into()),
                    ));
                }
            }
            Entry::FileType => kv.push((k::GENERAL_FILE_TYPE.into(), MetaValue::U32(file_type))),
            Entry::SlidingWindowPattern => {
                if let Some(p) = sliding_window_pattern(c) {
                    kv.push((
                        a(k::ATTENTION_SLIDING_WINDOW_PATTERN),
                        MetaValue::Array(MetaArray::Bool(p)),
                    ));
                }
            }
            Entry::QuantizationVersion => kv.push((
                k::GENERAL_QUANTIZATION_VERSION.into(),
                MetaValue::U32(k::GGML_QUANT_VERSION),
            )),
        }
    }
    Ok(kv)
}

/// llama.cpp's converter writes no layer layout: llama.cpp then assumes even layers slide
/// (src/models/openai-moe.cpp `load_swa_pattern(ml, 2)`). That same loader first reads
/// `gpt-oss.attention.sliding_window_pattern` as a per-layer bool array, so a checkpoint with any other
/// `layer_types` gets that array (true = sliding) and stays exact; the default layout gets nothing, so the file
/// equals llama.cpp's.
pub fn sliding_window_pattern(c: &GptOssConfig) -> Option<Vec<bool>> {
    if c.has_default_layer_types() {
        return None;
    }
    Some(
        c.layer_types
            .iter()
            .map(|t| *t == AttentionKind::Sliding)
            .collect(),
    )
}

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

/// Reads a [`GptOssConfig`] from GGUF metadata: the numbers through [`GGUF_KEYS`], then what llama.cpp derives
/// when a key is absent.
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
    let yarn = match m.opt(k::ROPE_SCALING_TYPE).and_then(MetaValue::as_str) {
        Some(ROPE_SCALING_TYPE_YARN) => true,
        None | Some("none") => false,
        Some(other) => bail!(
            "{}: rope scaling type '{other}' is not supported for gpt-oss",
            path.display()
        ),
    };
    let mut c = GptOssConfig::blank();
    c.swiglu_limit = LLAMACPP_SWIGLU_LIMIT;
    if yarn {
        c.rope_scaling = Some(RopeScaling {
            factor: 0.0,
            beta_fast: LLAMACPP_YARN_BETA_FAST,
            beta_slow: LLAMACPP_YARN_BETA_SLOW,
            original_max_position_embeddings: 0,
            truncate: false,
        });
    }
    let mut seen = HashSet::new();
    for e in GGUF_KEYS {
        let Entry::Config {
            key, value, need, ..
        } = *e
        else {
            continue;
        };
        if need == WriteOnly || (in_rope_scaling(key) && !yarn) {
            continue;
        }
        let found = match value {
            Field::Count { set, .. } => m.opt_usize(key)?.map(|n| set(&mut c, n)),
            Field::Float { set, .. } => m.opt_f64(key)?.map(|x| set(&mut c, x)),
        };
        match (found, need) {
            (Some(()), _) => {
                seen.insert(key);
            }
            (None, Required) => return Err(m.missing(key)),
            (None, _) => {}
        }
    }
    if !seen.contains(k::LLM_FEED_FORWARD_LENGTH) && !seen.contains(k::EXPERT_FEED_FORWARD_LENGTH) {
        return Err(m.missing(k::LLM_FEED_FORWARD_LENGTH));
    }
    let (heads, n_layers) = (c.num_attention_heads, c.num_hidden_layers);
    // The layer count sizes the per-layer kinds below: bounded, and backed by the file's tensors.
    check_layer_count(n_layers, path, ConfigSource::Gguf)?;
    let present = names::layers_present(
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
    if heads == 0 {
        bail!(
            "{}: metadata key '{}' must not be 0",
            path.display(),
            m.key(k::ATTENTION_HEAD_COUNT)
        );
    }
    if !seen.contains(k::ATTENTION_KEY_LENGTH) {
        c.head_dim = c.hidden_size / heads;
    }
    // gpt-oss's attention uses one head size for keys and values; llama.cpp reads both keys.
    if let Some(v) = m.opt_usize(k::ATTENTION_VALUE_LENGTH)? {
        if v != c.head_dim {
            bail!(
                "{}: metadata key '{}' = {v} differs from the key length {}; gpt-oss uses one head size",
                path.display(),
                m.key(k::ATTENTION_VALUE_LENGTH),
                c.head_dim
            );
        }
    }
    c.vocab_size = match file
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
    c.layer_types = match m
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
    c.bos_token_id = m.token(k::TOKENIZER_GGML_BOS_TOKEN_ID);
    c.eos_token_id = m.token(k::TOKENIZER_GGML_EOS_TOKEN_ID);
    c.pad_token_id = m.token(k::TOKENIZER_GGML_PADDING_TOKEN_ID);
    c.validate(path, ConfigSource::Gguf)?;
    Ok(c)
}
