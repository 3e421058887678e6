//! The GGUF vocabulary of a gpt-oss checkpoint, built exactly as llama.cpp's converter builds it:
//! `TextModel._set_vocab_gpt2` -> `get_vocab_base` (tokens, token types, "[PAD{i}]" padding), `get_vocab_base_pre`
//! (see `pre.rs`) and gguf-py's `SpecialVocab` (merges, special token ids, add_*_token flags, chat template).
//! References are to llama.cpp 0c1e570: conversion/base.py and gguf-py/gguf/vocab.py.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use super::bpe::{bytes_to_token_string, bytes_to_unicode};
use super::pre::{detect_pre, PRE_GPT4O};

pub use ossify_formats::gguf::constants::TokenType;

/// The `TokenType` of a `tokenizer.ggml.token_type` value.
pub fn token_type_from_i32(v: i32) -> Option<TokenType> {
    [
        TokenType::Normal,
        TokenType::Unknown,
        TokenType::Control,
        TokenType::UserDefined,
        TokenType::Unused,
        TokenType::Byte,
    ]
    .into_iter()
    .find(|t| *t as i32 == v)
}

/// The special token kinds gguf-py's `SpecialVocab` looks for, in its order
/// (`special_token_types = ('bos', 'eos', 'unk', 'sep', 'pad', 'cls', 'mask')`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialToken {
    Bos,
    Eos,
    Unk,
    Sep,
    Pad,
    Cls,
    Mask,
}

impl SpecialToken {
    pub const ALL: [SpecialToken; 7] = [
        SpecialToken::Bos,
        SpecialToken::Eos,
        SpecialToken::Unk,
        SpecialToken::Sep,
        SpecialToken::Pad,
        SpecialToken::Cls,
        SpecialToken::Mask,
    ];

    /// The name SpecialVocab uses (`bos` in `bos_token`, `bos_token_id`, `add_bos_token`).
    pub fn name(self) -> &'static str {
        match self {
            SpecialToken::Bos => "bos",
            SpecialToken::Eos => "eos",
            SpecialToken::Unk => "unk",
            SpecialToken::Sep => "sep",
            SpecialToken::Pad => "pad",
            SpecialToken::Cls => "cls",
            SpecialToken::Mask => "mask",
        }
    }
}

/// What llama.cpp's converter writes under `tokenizer.*` for a gpt-oss model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: "gpt2" (byte-level BPE)
    pub model: String,
    /// `tokenizer.ggml.pre`: "gpt-4o" for o200k
    pub pre: String,
    /// `tokenizer.ggml.tokens`, padded to the config's vocab_size with "[PAD{i}]"
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, one `TokenType` per token
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges`, "left right" in byte-level characters
    pub merges: Vec<String>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub unknown_token_id: Option<u32>,
    pub separator_token_id: Option<u32>,
    pub padding_token_id: Option<u32>,
    pub mask_token_id: Option<u32>,
    pub add_bos_token: Option<bool>,
    pub add_eos_token: Option<bool>,
    pub add_sep_token: Option<bool>,
    /// `tokenizer.chat_template`
    pub chat_template: Option<String>,
    /// `tokenizer.ggml.normalizer.lowercase` / `.strip_accents` (from tokenizer.json's normalizer)
    pub normalizer_lowercase: Option<bool>,
    pub normalizer_strip_accents: Option<bool>,
    /// The order SpecialVocab found the special ids in, which is the order llama.cpp writes their keys in.
    /// `Cls` can appear here (it decides other ids) but gguf-py has no key for it and writes nothing.
    pub special_order: Vec<SpecialToken>,
    /// The order of the add_*_token flags, likewise.
    pub add_order: Vec<SpecialToken>,
}

impl GgufVocab {
    pub fn special_id(&self, kind: SpecialToken) -> Option<u32> {
        match kind {
            SpecialToken::Bos => self.bos_token_id,
            SpecialToken::Eos => self.eos_token_id,
            SpecialToken::Unk => self.unknown_token_id,
            SpecialToken::Sep => self.separator_token_id,
            SpecialToken::Pad => self.padding_token_id,
            SpecialToken::Mask => self.mask_token_id,
            SpecialToken::Cls => None,
        }
    }

    fn special_slot(&mut self, kind: SpecialToken) -> Option<&mut Option<u32>> {
        Some(match kind {
            SpecialToken::Bos => &mut self.bos_token_id,
            SpecialToken::Eos => &mut self.eos_token_id,
            SpecialToken::Unk => &mut self.unknown_token_id,
            SpecialToken::Sep => &mut self.separator_token_id,
            SpecialToken::Pad => &mut self.padding_token_id,
            SpecialToken::Mask => &mut self.mask_token_id,
            SpecialToken::Cls => return None,
        })
    }

    pub fn add_flag(&self, kind: SpecialToken) -> Option<bool> {
        match kind {
            SpecialToken::Bos => self.add_bos_token,
            SpecialToken::Eos => self.add_eos_token,
            SpecialToken::Sep => self.add_sep_token,
            _ => None,
        }
    }

    fn add_slot(&mut self, kind: SpecialToken) -> Option<&mut Option<bool>> {
        match kind {
            SpecialToken::Bos => Some(&mut self.add_bos_token),
            SpecialToken::Eos => Some(&mut self.add_eos_token),
            SpecialToken::Sep => Some(&mut self.add_sep_token),
            _ => None,
        }
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokens
            .iter()
            .position(|t| t == token)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Build the vocabulary from a Hugging Face checkpoint folder: tokenizer.json (required), and where present
    /// tokenizer_config.json, chat_template.jinja / chat_template.json and config.json. `vocab_size` is the
    /// model config's (the embedding rows); ids the tokenizer lacks below it become "[PAD{i}]" (UNUSED).
    pub fn from_dir(dir: &Path, vocab_size: usize) -> Result<GgufVocab> {
        let tj_path = dir.join("tokenizer.json");
        let origin = tj_path.display().to_string();
        let bytes = crate::checkpoint::read_input(&tj_path)?;
        let (tokenizer, tj) = super::validate::load_tokenizer_json(&bytes, &origin)?;
        super::validate::validate_tokenizer_json(&tj, &tokenizer, Some(vocab_size), &origin)?;

        let mut v = GgufVocab {
            model: "gpt2".into(),
            ..GgufVocab::default()
        };
        v.base_vocab(&tokenizer, vocab_size, &origin)?;
        v.pre = detect_pre(&tokenizer, &tj, &origin)?;
        v.special_vocab(dir, &tj, &origin)?;
        Ok(v)
    }

    /// `get_vocab_base`: tokens by id, padding and token types.
    fn base_vocab(
        &mut self,
        tokenizer: &tokenizers::Tokenizer,
        vocab_size: usize,
        origin: &str,
    ) -> Result<()> {
        let vocab = tokenizer.get_vocab(true);
        let max_id = vocab.values().copied().max().unwrap_or(0);
        if usize::try_from(max_id).map_or(true, |m| m >= vocab_size) {
            bail!("{origin}: token id {max_id} does not fit the model's vocab_size {vocab_size}");
        }
        let mut by_id: Vec<Option<String>> = vec![None; vocab_size];
        for (tok, id) in vocab {
            // bounds checked above; a duplicate id keeps one string, as Python's reverse dict does
            if let Some(slot) = by_id.get_mut(id as usize) {
                *slot = Some(tok);
            }
        }
        let added = tokenizer.get_added_tokens_decoder();
        let added_contents: std::collections::HashSet<&str> =
            added.values().map(|t| t.content.as_str()).collect();
        self.tokens = Vec::with_capacity(vocab_size);
        self.token_types = Vec::with_capacity(vocab_size);
        for (i, tok) in by_id.into_iter().enumerate() {
            let Some(mut tok) = tok else {
                self.tokens.push(format!("[PAD{i}]"));
                self.token_types.push(TokenType::Unused as i32);
                continue;
            };
            let ty = if added_contents.contains(tok.as_str()) {
                // llama.cpp re-encodes/decodes non-normalized added tokens; for byte-level BPE added tokens that
                // round trip is the identity, so it is not repeated here.
                let special = u32::try_from(i)
                    .ok()
                    .and_then(|id| added.get(&id))
                    .is_some_and(|t| t.special);
                if special || does_token_look_special(&tok) {
                    TokenType::Control
                } else {
                    tok = tok.replace('\u{2581}', " ");
                    TokenType::UserDefined
                }
            } else {
                TokenType::Normal
            };
            self.tokens.push(tok);
            self.token_types.push(ty as i32);
        }
        Ok(())
    }

    /// gguf-py `SpecialVocab(dir, load_merges=True)`: `_try_load_from_tokenizer_json` then
    /// `_try_load_from_config_json`. Not reproduced: merges.txt (gpt-oss ships merges in tokenizer.json),
    /// `additional_chat_templates/` (named templates), and the eot/eom ids TemplateProcessing can add.
    fn special_vocab(&mut self, dir: &Path, tj: &Value, origin: &str) -> Result<()> {
        self.merges = read_merges(tj.get("model").and_then(|m| m.get("merges")), origin)?;
        if let Some(n) = tj.get("normalizer").filter(|n| !n.is_null()) {
            self.parse_normalizer(n);
        }
        let added_tokens: Vec<(String, Value)> = tj
            .get("added_tokens")
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|t| {
                        let content = t.get("content")?.as_str()?.to_string();
                        Some((content, t.get("id").cloned().unwrap_or(Value::Null)))
                    })
                    .collect()
            })
            .unwrap_or_default();

        let tc_path = dir.join("tokenizer_config.json");
        let mut tc: Option<serde_json::Map<String, Value>> = if tc_path.is_file() {
            let text =
                fs::read(&tc_path).with_context(|| format!("reading {}", tc_path.display()))?;
            let v: Value = serde_json::from_slice(&text)
                .with_context(|| format!("parsing {}", tc_path.display()))?;
            match v {
                Value::Object(m) => Some(m),
                _ => bail!("{}: not a JSON object", tc_path.display()),
            }
        } else {
            None
        };

        let tc_str = |tc: &Option<serde_json::Map<String, Value>>, key: &str| -> Option<Value> {
            tc.as_ref()
                .and_then(|m| m.get(key))
                .filter(|v| truthy(v))
                .cloned()
        };
        let special_bos = tc_str(&tc, "bos_token");
        let special_cls = tc_str(&tc, "cls_token");
        let special_eos = tc_str(&tc, "eos_token");
        let special_sep = tc_str(&tc, "sep_token");
        let tc_truthy = tc.as_ref().is_some_and(|m| !m.is_empty());
        let mut special_bos = special_bos;
        let mut special_eos = special_eos;
        if special_bos.is_none() && tc_truthy {
            if let (Some(cls), Some(m)) = (&special_cls, tc.as_mut()) {
                m.insert("bos_token".into(), cls.clone());
                special_bos = Some(cls.clone());
            }
        }
        if special_eos.is_none() && tc_truthy {
            if let (Some(sep), Some(m)) = (&special_sep, tc.as_mut()) {
                m.insert("eos_token".into(), sep.clone());
                special_eos = Some(sep.clone());
            }
        }

        if let Some(pp) = tj.get("post_processor").filter(|p| truthy(p)) {
            let processors: Vec<&Value> = match pp.get("processors").and_then(|p| p.as_array()) {
                Some(list) => list.iter().collect(),
                None => vec![pp],
            };
            for p in processors {
                match p.get("type").and_then(|t| t.as_str()) {
                    Some("ByteLevel") => {
                        self.set_add_default(SpecialToken::Bos, false);
                        self.set_add_default(SpecialToken::Eos, false);
                    }
                    Some("RobertaProcessing") => {
                        self.set_add(SpecialToken::Bos, true);
                        self.set_add(SpecialToken::Eos, true);
                        self.set_add(SpecialToken::Sep, true);
                    }
                    Some("TemplateProcessing") => {
                        // the simple case only: a template that starts with bos / ends with eos
                        let single = p
                            .get("single")
                            .and_then(|s| s.as_array())
                            .cloned()
                            .unwrap_or_default();
                        if single.len() > 1 {
                            let id_of = |v: Option<&Value>| {
                                v.and_then(|t| t.get("SpecialToken"))
                                    .and_then(|s| s.get("id"))
                                    .and_then(|i| i.as_str())
                                    .map(str::to_string)
                            };
                            if let Some(first) = id_of(single.first()) {
                                let is = [&special_bos, &special_cls].iter().any(|s| {
                                    s.as_ref().and_then(|v| v.as_str()) == Some(first.as_str())
                                });
                                self.set_add(SpecialToken::Bos, is);
                            }
                            if let Some(last) = id_of(single.last()) {
                                let is = special_eos.as_ref().and_then(|v| v.as_str())
                                    == Some(last.as_str());
                                self.set_add(SpecialToken::Eos, is);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }

        if let Some(tc) = tc.filter(|m| !m.is_empty()) {
            self.chat_template = read_chat_template(dir, &tc)?;
            for kind in SpecialToken::ALL {
                if let Some(Value::Bool(b)) = tc.get(&format!("add_{}_token", kind.name())) {
                    self.set_add_default(kind, *b);
                }
                let content = match tc.get(&format!("{}_token", kind.name())) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Object(o)) => match o.get("content") {
                        Some(Value::String(s)) => s.clone(),
                        _ => continue,
                    },
                    _ => continue,
                };
                let id = added_tokens
                    .iter()
                    .find(|(c, _)| *c == content)
                    .map(|(_, id)| id.clone());
                self.set_special(kind, id.as_ref(), origin)?;
            }
        }

        let cfg_path = dir.join("config.json");
        if cfg_path.is_file() {
            let text =
                fs::read(&cfg_path).with_context(|| format!("reading {}", cfg_path.display()))?;
            let cfg: Value = serde_json::from_slice(&text)
                .with_context(|| format!("parsing {}", cfg_path.display()))?;
            let origin = cfg_path.display().to_string();
            for kind in SpecialToken::ALL {
                let key = format!("{}_token_id", kind.name());
                let id = match cfg.get(&key).filter(|v| !v.is_null()) {
                    Some(v) => Some(v),
                    None => cfg.get("text_config").and_then(|t| t.get(&key)),
                };
                self.set_special(kind, id, &origin)?;
            }
        }
        Ok(())
    }

    /// `SpecialVocab._set_special_token`: integers only, first one wins, negative ids are an error.
    fn set_special(&mut self, kind: SpecialToken, id: Option<&Value>, origin: &str) -> Result<()> {
        let Some(n) = id.and_then(|v| v.as_i64()) else {
            return Ok(());
        };
        if n < 0 {
            bail!(
                "{origin}: invalid value for special token type {}: {n}",
                kind.name()
            );
        }
        if self.special_order.contains(&kind) {
            return Ok(());
        }
        let id = u32::try_from(n)
            .map_err(|_| anyhow!("{origin}: {} token id {n} is too large", kind.name()))?;
        self.special_order.push(kind);
        if let Some(slot) = self.special_slot(kind) {
            *slot = Some(id);
        }
        Ok(())
    }

    /// `add_special_token.setdefault(typ, value)` (first writer wins).
    fn set_add_default(&mut self, kind: SpecialToken, value: bool) {
        if self.add_order.contains(&kind) {
            return;
        }
        self.set_add(kind, value);
    }

    /// `add_special_token[typ] = value` (overwrites, keeps the first position).
    fn set_add(&mut self, kind: SpecialToken, value: bool) {
        if !self.add_order.contains(&kind) {
            self.add_order.push(kind);
        }
        if let Some(slot) = self.add_slot(kind) {
            *slot = Some(value);
        }
    }

    /// `SpecialVocab._parse_normalizer`.
    fn parse_normalizer(&mut self, n: &Value) {
        match n.get("type").and_then(|t| t.as_str()) {
            Some("Lowercase") => self.normalizer_lowercase = Some(true),
            Some("StripAccents") => self.normalizer_strip_accents = Some(true),
            Some("BertNormalizer") => {
                if let Some(b) = n.get("lowercase").and_then(|v| v.as_bool()) {
                    self.normalizer_lowercase = Some(b);
                }
                if let Some(b) = n.get("strip_accents").and_then(|v| v.as_bool()) {
                    self.normalizer_strip_accents = Some(b);
                }
            }
            Some("Sequence") => {
                for inner in n
                    .get("normalizers")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    self.parse_normalizer(inner);
                }
            }
            _ => {}
        }
    }
}

/// Python truthiness for the JSON values SpecialVocab tests with `if x:` / `or`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// tokenizer.json's merges in the string form gguf-py writes: "a b" strings as they are, and the
/// `[["a", "b"], ...]` form (transformers >= 4.45) joined with a space, spaces inside a part written as U+0120.
fn read_merges(merges: Option<&Value>, origin: &str) -> Result<Vec<String>> {
    let Some(list) = merges.and_then(|m| m.as_array()).filter(|l| !l.is_empty()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(list.len());
    let pair_form = list[0].is_array();
    for (i, m) in list.iter().enumerate() {
        match (pair_form, m) {
            (false, Value::String(s)) => out.push(s.clone()),
            (true, Value::Array(pair)) if pair.len() == 2 => {
                let part = |p: &Value| -> Result<String> {
                    let s = p
                        .as_str()
                        .ok_or_else(|| anyhow!("{origin}: merge {i} has a non-string part"))?;
                    Ok(s.chars()
                        .map(|c| if c == ' ' { '\u{0120}' } else { c })
                        .collect())
                };
                out.push(format!("{} {}", part(&pair[0])?, part(&pair[1])?));
            }
            _ => bail!("{origin}: merge {i} is in an unknown format: {m}"),
        }
    }
    Ok(out)
}

/// tokenizer_config.json's `chat_template`, else chat_template.jinja, else chat_template.json's.
fn read_chat_template(dir: &Path, tc: &serde_json::Map<String, Value>) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    let json = dir.join("chat_template.json");
    let alt = if jinja.is_file() {
        Some(fs::read_to_string(&jinja).with_context(|| format!("reading {}", jinja.display()))?)
    } else if json.is_file() {
        let text = fs::read(&json).with_context(|| format!("reading {}", json.display()))?;
        let v: Value =
            serde_json::from_slice(&text).with_context(|| format!("parsing {}", json.display()))?;
        v.get("chat_template")
            .and_then(|t| t.as_str())
            .map(str::to_string)
    } else {
        None
    };
    Ok(match tc.get("chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        // a list of named templates: keep the default one (named ones are not written; see special_vocab)
        Some(Value::Array(list)) => list.iter().find_map(|t| {
            (t.get("name")?.as_str()? == "default")
                .then(|| t.get("template")?.as_str().map(str::to_string))?
        }),
        // `tokenizer_config.get("chat_template", alt)`: an explicit null is kept (no template)
        None => alt,
        Some(_) => None,
    })
}

/// `ModelBase.does_token_look_special` (conversion/base.py).
pub fn does_token_look_special(token: &str) -> bool {
    matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<\u{ff5c}") && token.ends_with("\u{ff5c}>"))
        || (token.starts_with("<unused") && token.ends_with('>'))
}

/// The gpt-oss special tokens of the real gpt-oss tokenizer.json: transformers'
/// convert_gpt_oss_weights_to_hf.py (`GptOssConverter`) adds these ids 199998..=200018, with o200k_base's
/// `<|endofprompt|>` at 200018 and `<|reserved_{id}|>` in the gaps; the config's vocab_size 201088 pads the rest.
pub const GPT_OSS_NAMED_SPECIALS: &[(&str, u32)] = &[
    ("<|startoftext|>", 199998),
    ("<|endoftext|>", 199999),
    ("<|return|>", 200002),
    ("<|constrain|>", 200003),
    ("<|channel|>", 200005),
    ("<|start|>", 200006),
    ("<|end|>", 200007),
    ("<|message|>", 200008),
    ("<|call|>", 200012),
    ("<|endofprompt|>", 200018),
];
/// Number of o200k_base mergeable ranks (ids 0..199998).
pub const O200K_BASE_RANKS: u32 = 199_998;
/// gpt-oss config.json `vocab_size`.
pub const GPT_OSS_VOCAB_SIZE: usize = 201_088;

impl GgufVocab {
    /// The gpt-oss vocabulary from tiktoken-rs's o200k_harmony ranks, for checkpoints without tokenizer.json
    /// (OpenAI's `original/` layout). Tokens and merges are derived as transformers' `GptOssConverter` derives
    /// the real tokenizer.json (every split of a token into two tokens is a merge, ordered by the token's rank,
    /// then by the parts' ranks); special ids as its tokenizer_config.json / config.json give them
    /// (bos <|startoftext|>, eos <|return|>, pad <|endoftext|>); no chat template (tiktoken-rs has none).
    pub fn from_o200k_harmony(vocab_size: usize) -> Result<GgufVocab> {
        let last_special = GPT_OSS_NAMED_SPECIALS
            .iter()
            .map(|(_, id)| *id)
            .max()
            .unwrap_or(0);
        if usize::try_from(last_special).map_or(true, |m| m >= vocab_size) {
            bail!(
                "vocab_size {vocab_size} is too small for gpt-oss's special token {last_special}"
            );
        }
        let bpe = tiktoken_rs::o200k_harmony().context("loading tiktoken-rs's o200k_harmony")?;
        let ranks = tiktoken_ranks(&bpe, O200K_BASE_RANKS)?;
        let (tokens, merges) = tiktoken_ranks_to_bpe(&ranks);

        let mut v = GgufVocab {
            model: "gpt2".into(),
            pre: PRE_GPT4O.into(),
            merges,
            ..GgufVocab::default()
        };
        v.tokens = Vec::with_capacity(vocab_size);
        v.token_types = Vec::with_capacity(vocab_size);
        for tok in tokens {
            v.tokens.push(tok);
            v.token_types.push(TokenType::Normal as i32);
        }
        for id in O200K_BASE_RANKS..=last_special {
            let name = GPT_OSS_NAMED_SPECIALS
                .iter()
                .find(|(_, i)| *i == id)
                .map_or_else(|| format!("<|reserved_{id}|>"), |(n, _)| (*n).to_string());
            v.tokens.push(name);
            v.token_types.push(TokenType::Control as i32);
        }
        for i in v.tokens.len()..vocab_size {
            v.tokens.push(format!("[PAD{i}]"));
            v.token_types.push(TokenType::Unused as i32);
        }

        let id = |name: &str| {
            GPT_OSS_NAMED_SPECIALS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, i)| *i)
        };
        v.bos_token_id = id("<|startoftext|>");
        v.eos_token_id = id("<|return|>");
        v.padding_token_id = id("<|endoftext|>");
        v.special_order = vec![SpecialToken::Bos, SpecialToken::Eos, SpecialToken::Pad];
        v.add_bos_token = Some(false);
        v.add_eos_token = Some(false);
        v.add_order = vec![SpecialToken::Bos, SpecialToken::Eos];
        Ok(v)
    }
}

/// The byte strings of ranks `0..n` of a tiktoken encoding.
pub fn tiktoken_ranks(bpe: &tiktoken_rs::CoreBPE, n: u32) -> Result<Vec<Vec<u8>>> {
    (0..n)
        .map(|r| {
            bpe.decode_bytes(&[r])
                .map_err(|e| anyhow!("the tiktoken encoding has no rank {r}: {e:?}"))
        })
        .collect()
}

/// tiktoken ranks -> (byte-level token strings by rank, merges), as transformers' `TikTokenConverter` /
/// `GptOssConverter.extract_vocab_merges_from_model` derive them: every split of a token into two tokens is a
/// merge; merges ordered by the merged token's rank, then by (left rank, right rank).
pub fn tiktoken_ranks_to_bpe(ranks: &[Vec<u8>]) -> (Vec<String>, Vec<String>) {
    let rank_of: HashMap<&[u8], usize> = ranks
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_slice(), i))
        .collect();
    let table = bytes_to_unicode();
    let tokens: Vec<String> = ranks
        .iter()
        .map(|b| bytes_to_token_string(b, &table))
        .collect();
    let mut merges = Vec::new();
    for bytes in ranks {
        let mut local: Vec<(usize, usize)> = (1..bytes.len())
            .filter_map(|k| Some((*rank_of.get(&bytes[..k])?, *rank_of.get(&bytes[k..])?)))
            .collect();
        local.sort_unstable();
        for (l, r) in local {
            // both are ranks, so in range
            if let (Some(l), Some(r)) = (tokens.get(l), tokens.get(r)) {
                merges.push(format!("{l} {r}"));
            }
        }
    }
    (tokens, merges)
}
