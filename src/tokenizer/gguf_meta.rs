//! GgufVocab <-> GGUF metadata: the `tokenizer.*` keys in the order and with the types llama.cpp's converter
//! writes them (`_set_vocab_gpt2`, then `SpecialVocab.add_to_gguf`), and back from a GGUF file.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ossify_formats::gguf::constants as k;
use ossify_formats::gguf::{GgufFile, GgufModel, MetaArray, MetaValue};

use super::vocab::{GgufVocab, SpecialToken, TokenType};

/// The `*_token_id` key of a special token kind; `Cls` has none (gguf-py has no `add_cls_token_id`).
pub fn special_id_key(kind: SpecialToken) -> Option<&'static str> {
    match kind {
        SpecialToken::Bos => Some(k::TOKENIZER_GGML_BOS_TOKEN_ID),
        SpecialToken::Eos => Some(k::TOKENIZER_GGML_EOS_TOKEN_ID),
        SpecialToken::Unk => Some(k::TOKENIZER_GGML_UNKNOWN_TOKEN_ID),
        SpecialToken::Sep => Some(k::TOKENIZER_GGML_SEPERATOR_TOKEN_ID),
        SpecialToken::Pad => Some(k::TOKENIZER_GGML_PADDING_TOKEN_ID),
        SpecialToken::Mask => Some(k::TOKENIZER_GGML_MASK_TOKEN_ID),
        SpecialToken::Cls => None,
    }
}

/// The `add_*_token` key of a kind; only bos, eos and sep have one in gguf-py.
pub fn add_flag_key(kind: SpecialToken) -> Option<&'static str> {
    match kind {
        SpecialToken::Bos => Some(k::TOKENIZER_GGML_ADD_BOS_TOKEN),
        SpecialToken::Eos => Some(k::TOKENIZER_GGML_ADD_EOS_TOKEN),
        SpecialToken::Sep => Some(k::TOKENIZER_GGML_ADD_SEP_TOKEN),
        _ => None,
    }
}

impl GgufVocab {
    /// The `tokenizer.*` key/values as llama.cpp's converter writes them, in its order: model, pre, tokens
    /// (string array), token_type (i32 array), merges (string array, when any), the special ids (u32) in the
    /// order SpecialVocab found them, the add_*_token flags (bool), the chat template, the normalizer flags.
    pub fn to_metadata(&self) -> Vec<(String, MetaValue)> {
        let mut kv: Vec<(String, MetaValue)> = vec![
            (
                k::TOKENIZER_GGML_MODEL.into(),
                MetaValue::String(self.model.clone()),
            ),
            (
                k::TOKENIZER_GGML_PRE.into(),
                MetaValue::String(self.pre.clone()),
            ),
            (
                k::TOKENIZER_GGML_TOKENS.into(),
                MetaValue::Array(MetaArray::String(self.tokens.clone())),
            ),
            (
                k::TOKENIZER_GGML_TOKEN_TYPE.into(),
                MetaValue::Array(MetaArray::I32(self.token_types.clone())),
            ),
        ];
        if !self.merges.is_empty() {
            kv.push((
                k::TOKENIZER_GGML_MERGES.into(),
                MetaValue::Array(MetaArray::String(self.merges.clone())),
            ));
        }
        for &kind in &self.special_order {
            if let (Some(key), Some(id)) = (special_id_key(kind), self.special_id(kind)) {
                kv.push((key.into(), MetaValue::U32(id)));
            }
        }
        for &kind in &self.add_order {
            if let (Some(key), Some(b)) = (add_flag_key(kind), self.add_flag(kind)) {
                kv.push((key.into(), MetaValue::Bool(b)));
            }
        }
        if let Some(t) = &self.chat_template {
            kv.push((
                k::TOKENIZER_CHAT_TEMPLATE.into(),
                MetaValue::String(t.clone()),
            ));
        }
        if let Some(b) = self.normalizer_lowercase {
            kv.push((
                k::TOKENIZER_GGML_NORMALIZER_LOWERCASE.into(),
                MetaValue::Bool(b),
            ));
        }
        if let Some(b) = self.normalizer_strip_accents {
            kv.push((
                k::TOKENIZER_GGML_NORMALIZER_STRIP_ACCENTS.into(),
                MetaValue::Bool(b),
            ));
        }
        kv
    }

    /// The vocabulary stored in a GGUF file's metadata. Special ids and flags keep the file's key order.
    pub fn from_gguf(file: &GgufFile) -> Result<GgufVocab> {
        Self::from_metadata(&file.metadata)
    }

    /// Opens `path` and reads its vocabulary; errors name the file.
    pub fn from_gguf_path(path: &Path) -> Result<GgufVocab> {
        // Any shard of a split model: the vocabulary is in the first.
        let model = GgufModel::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::from_metadata(model.metadata())
            .with_context(|| format!("{}: reading the tokenizer metadata", path.display()))
    }

    /// [`GgufVocab::from_gguf`] over key/value pairs in file order.
    pub fn from_metadata(metadata: &[(String, MetaValue)]) -> Result<GgufVocab> {
        let get = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let string = |key: &str| -> Result<Option<String>> {
            get(key)
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| anyhow!("{key} is {}, expected a string", v.summary()))
                })
                .transpose()
        };
        let strings = |key: &str| -> Result<Option<Vec<String>>> {
            get(key)
                .map(|v| {
                    v.as_string_array().map(<[String]>::to_vec).ok_or_else(|| {
                        anyhow!("{key} is {}, expected an array of strings", v.summary())
                    })
                })
                .transpose()
        };
        let mut v = GgufVocab {
            model: string(k::TOKENIZER_GGML_MODEL)?.ok_or_else(|| {
                anyhow!(
                    "no {} key: the file has no vocabulary",
                    k::TOKENIZER_GGML_MODEL
                )
            })?,
            pre: string(k::TOKENIZER_GGML_PRE)?.unwrap_or_default(),
            tokens: strings(k::TOKENIZER_GGML_TOKENS)?.ok_or_else(|| {
                anyhow!(
                    "no {} key: the file has no vocabulary",
                    k::TOKENIZER_GGML_TOKENS
                )
            })?,
            merges: strings(k::TOKENIZER_GGML_MERGES)?.unwrap_or_default(),
            chat_template: string(k::TOKENIZER_CHAT_TEMPLATE)?,
            ..GgufVocab::default()
        };
        v.token_types = match get(k::TOKENIZER_GGML_TOKEN_TYPE) {
            Some(t) => t.as_i32_array().map(<[i32]>::to_vec).ok_or_else(|| {
                anyhow!(
                    "{} is {}, expected an i32 array",
                    k::TOKENIZER_GGML_TOKEN_TYPE,
                    t.summary()
                )
            })?,
            // llama.cpp takes every token as normal when the types are missing
            None => vec![TokenType::Normal as i32; v.tokens.len()],
        };
        if v.token_types.len() != v.tokens.len() {
            bail!(
                "{} has {} entries but {} has {}",
                k::TOKENIZER_GGML_TOKEN_TYPE,
                v.token_types.len(),
                k::TOKENIZER_GGML_TOKENS,
                v.tokens.len()
            );
        }
        let n_tokens = v.tokens.len();
        for (key, value) in metadata {
            if let Some(kind) = SpecialToken::ALL
                .into_iter()
                .find(|&s| special_id_key(s) == Some(key.as_str()))
            {
                let id = value
                    .as_u32()
                    .ok_or_else(|| anyhow!("{key} is {}, expected a u32", value.summary()))?;
                if usize::try_from(id).map_or(true, |i| i >= n_tokens) {
                    bail!("{key} is {id}, outside the vocabulary of {n_tokens} tokens");
                }
                if !v.special_order.contains(&kind) {
                    v.special_order.push(kind);
                }
                match kind {
                    SpecialToken::Bos => v.bos_token_id = Some(id),
                    SpecialToken::Eos => v.eos_token_id = Some(id),
                    SpecialToken::Unk => v.unknown_token_id = Some(id),
                    SpecialToken::Sep => v.separator_token_id = Some(id),
                    SpecialToken::Pad => v.padding_token_id = Some(id),
                    SpecialToken::Mask => v.mask_token_id = Some(id),
                    SpecialToken::Cls => {}
                }
            } else if let Some(kind) = SpecialToken::ALL
                .into_iter()
                .find(|&s| add_flag_key(s) == Some(key.as_str()))
            {
                let b = value
                    .as_bool()
                    .ok_or_else(|| anyhow!("{key} is {}, expected a bool", value.summary()))?;
                if !v.add_order.contains(&kind) {
                    v.add_order.push(kind);
                }
                match kind {
                    SpecialToken::Bos => v.add_bos_token = Some(b),
                    SpecialToken::Eos => v.add_eos_token = Some(b),
                    _ => v.add_sep_token = Some(b),
                }
            } else if key == k::TOKENIZER_GGML_NORMALIZER_LOWERCASE {
                v.normalizer_lowercase = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| anyhow!("{key} is {}, expected a bool", value.summary()))?,
                );
            } else if key == k::TOKENIZER_GGML_NORMALIZER_STRIP_ACCENTS {
                v.normalizer_strip_accents = Some(
                    value
                        .as_bool()
                        .ok_or_else(|| anyhow!("{key} is {}, expected a bool", value.summary()))?,
                );
            }
        }
        Ok(v)
    }
}
