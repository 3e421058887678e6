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

// ---- parsing ---------------------------------------------------------------------------------------------------

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Map, Value};

/// Defaults transformers' `GptOssConfig` fills in for fields a config.json leaves out (transformers
/// models/gpt_oss/configuration_gpt_oss.py). llama.cpp's converter reads the config through transformers
/// (`AutoConfig.from_pretrained(..).to_dict()`), so it sees these same defaults.
mod hf_default {
    pub const SLIDING_WINDOW: usize = 128;
    pub const MAX_POSITION_EMBEDDINGS: usize = 131072;
    pub const RMS_NORM_EPS: f64 = 1e-5;
    pub const ROPE_THETA: f64 = 150000.0;
    pub const SWIGLU_LIMIT: f64 = 7.0;
    pub const YARN_FACTOR: f64 = 32.0;
    pub const YARN_BETA_FAST: f64 = 32.0;
    pub const YARN_BETA_SLOW: f64 = 1.0;
    pub const YARN_ORIGINAL_CONTEXT: usize = 4096;
}

/// Upper bounds on what a config may say, checked before anything is sized by it. Far above any gpt-oss
/// (120b: 36 layers, hidden 2880, 64 heads of 64, 128 experts, 201088 tokens, 131072 positions) and small
/// enough that every product of dimensions ossify forms (experts × rows × columns, vocab × hidden) fits in 64
/// bits, so no shape arithmetic can overflow.
pub mod limits {
    pub const MAX_LAYERS: usize = 1 << 10;
    /// hidden_size and intermediate_size.
    pub const MAX_WIDTH: usize = 1 << 20;
    pub const MAX_HEADS: usize = 1 << 12;
    pub const MAX_HEAD_DIM: usize = 1 << 12;
    pub const MAX_EXPERTS: usize = 1 << 12;
    pub const MAX_VOCAB: usize = 1 << 24;
    /// max_position_embeddings, sliding_window, and the context a command may ask for.
    pub const MAX_CONTEXT: usize = 1 << 24;
}

/// Which file a config was read from, so that a validation error spells the field as that file does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// transformers' config.json (the field names of [`GptOssConfig`]).
    HfJson,
    /// OpenAI's original/config.json.
    OriginalJson,
    /// GGUF metadata (llama.cpp's keys).
    Gguf,
}

impl ConfigSource {
    /// `field` (a [`GptOssConfig`] field, transformers' name) as this input spells it, quoted:
    /// `'num_local_experts'`, `'num_experts'`, `metadata key 'gpt-oss.expert_count'`.
    pub fn spell(self, field: &str) -> String {
        let spelled = match self {
            ConfigSource::HfJson => None,
            ConfigSource::OriginalJson => JSON_KEYS
                .iter()
                .find(|k| k.name == field)
                .and_then(|k| k.original)
                .map(|(name, _)| name.to_string()),
            ConfigSource::Gguf => {
                if let Some(key) = super::metadata::gguf_key_of(field) {
                    return format!("metadata key '{key}'");
                }
                None
            }
        };
        format!("field '{}'", spelled.as_deref().unwrap_or(field))
    }
}

/// Refuses a layer count before anything is sized by it (the per-layer attention kinds are allocated while
/// the config is still being read).
pub fn check_layer_count(n: usize, path: &Path, source: ConfigSource) -> Result<()> {
    if n == 0 || n > limits::MAX_LAYERS {
        bail!(
            "{}: {} = {n} is out of range: it must be between 1 and {}",
            path.display(),
            source.spell("num_hidden_layers"),
            limits::MAX_LAYERS
        );
    }
    Ok(())
}

/// OpenAI's reference RMSNorm epsilon (gpt_oss/torch/model.py); original/config.json does not carry it.
const ORIGINAL_RMS_NORM_EPS: f64 = 1e-5;

/// One number of the config, read and written through accessors, so that one table can map it to each format
/// ([`HF_JSON_KEYS`] here, `metadata::GGUF_KEYS` for GGUF). A getter returns `None` when the config has no
/// such value (the YaRN fields without YaRN scaling); a setter ignores a value it has no place for.
#[derive(Clone, Copy)]
pub enum Field {
    Count {
        get: fn(&GptOssConfig) -> Option<usize>,
        set: fn(&mut GptOssConfig, usize),
    },
    Float {
        get: fn(&GptOssConfig) -> Option<f64>,
        set: fn(&mut GptOssConfig, f64),
    },
}

macro_rules! count {
    ($f:ident) => {
        Field::Count {
            get: |c| Some(c.$f),
            set: |c, n| c.$f = n,
        }
    };
}
macro_rules! float {
    ($f:ident) => {
        Field::Float {
            get: |c| Some(c.$f),
            set: |c, x| c.$f = x,
        }
    };
}
macro_rules! yarn {
    ($kind:ident, $f:ident) => {
        Field::$kind {
            get: |c| c.rope_scaling.as_ref().map(|r| r.$f),
            set: |c, v| {
                if let Some(r) = c.rope_scaling.as_mut() {
                    r.$f = v;
                }
            },
        }
    };
}

impl Field {
    pub const VOCAB_SIZE: Field = count!(vocab_size);
    pub const HIDDEN_SIZE: Field = count!(hidden_size);
    pub const INTERMEDIATE_SIZE: Field = count!(intermediate_size);
    pub const NUM_HIDDEN_LAYERS: Field = count!(num_hidden_layers);
    pub const NUM_ATTENTION_HEADS: Field = count!(num_attention_heads);
    pub const NUM_KEY_VALUE_HEADS: Field = count!(num_key_value_heads);
    pub const HEAD_DIM: Field = count!(head_dim);
    pub const NUM_LOCAL_EXPERTS: Field = count!(num_local_experts);
    pub const NUM_EXPERTS_PER_TOK: Field = count!(num_experts_per_tok);
    pub const SLIDING_WINDOW: Field = count!(sliding_window);
    pub const MAX_POSITION_EMBEDDINGS: Field = count!(max_position_embeddings);
    pub const ROPE_THETA: Field = float!(rope_theta);
    pub const RMS_NORM_EPS: Field = float!(rms_norm_eps);
    pub const SWIGLU_LIMIT: Field = float!(swiglu_limit);
    pub const YARN_FACTOR: Field = yarn!(Float, factor);
    pub const YARN_BETA_FAST: Field = yarn!(Float, beta_fast);
    pub const YARN_BETA_SLOW: Field = yarn!(Float, beta_slow);
    pub const YARN_ORIGINAL_CONTEXT: Field = yarn!(Count, original_max_position_embeddings);
}

/// What a config.json without a field means.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Absent {
    /// An error; a count must also not be 0.
    Required,
    /// transformers' default (for floats and counts alike).
    Default(f64),
}

/// One number of config.json: its name in HF's config.json (transformers' name, the one written;
/// `rope_scaling.x` for a field of the rope block) and other spellings accepted there, what a missing one means
/// in HF's, and its name in OpenAI's original/config.json with what a missing one means there. Every config.json
/// spelling of a number is here; messages spell a field through this table ([`ConfigSource::spell`]).
struct JsonKey {
    name: &'static str,
    aliases: &'static [&'static str],
    /// `None`: not a top-level number of HF's config.json (the rope block's fields, read by `parse_hf_rope`).
    hf_absent: Option<Absent>,
    original: Option<(&'static str, Absent)>,
    field: Field,
}

use Absent::{Default as Or, Required as Req};

/// The numbers of config.json, both layouts. HF's rope block, layer types and token ids are structured and read by
/// [`GptOssConfig::from_hf_json`] itself; original/config.json's YaRN numbers are flat and read through this
/// table.
const JSON_KEYS: &[JsonKey] = &[
    JsonKey {
        name: "vocab_size",
        aliases: &[],
        hf_absent: Some(Req),
        original: Some(("vocab_size", Req)),
        field: Field::VOCAB_SIZE,
    },
    JsonKey {
        name: "hidden_size",
        aliases: &[],
        hf_absent: Some(Req),
        original: Some(("hidden_size", Req)),
        field: Field::HIDDEN_SIZE,
    },
    JsonKey {
        name: "intermediate_size",
        aliases: &[],
        hf_absent: Some(Req),
        original: Some(("intermediate_size", Req)),
        field: Field::INTERMEDIATE_SIZE,
    },
    JsonKey {
        name: "num_hidden_layers",
        aliases: &[],
        hf_absent: Some(Req),
        original: Some(("num_hidden_layers", Req)),
        field: Field::NUM_HIDDEN_LAYERS,
    },
    JsonKey {
        name: "num_attention_heads",
        aliases: &[],
        hf_absent: Some(Req),
        original: Some(("num_attention_heads", Req)),
        field: Field::NUM_ATTENTION_HEADS,
    },
    JsonKey {
        name: "num_key_value_heads",
        aliases: &[],
        hf_absent: Some(Req),
        original: Some(("num_key_value_heads", Req)),
        field: Field::NUM_KEY_VALUE_HEADS,
    },
    JsonKey {
        name: "head_dim",
        aliases: &[],
        hf_absent: Some(Req),
        original: Some(("head_dim", Req)),
        field: Field::HEAD_DIM,
    },
    JsonKey {
        name: "num_local_experts",
        aliases: &["num_experts"],
        hf_absent: Some(Req),
        original: Some(("num_experts", Req)),
        field: Field::NUM_LOCAL_EXPERTS,
    },
    JsonKey {
        name: "num_experts_per_tok",
        aliases: &["experts_per_token"],
        hf_absent: Some(Req),
        original: Some(("experts_per_token", Req)),
        field: Field::NUM_EXPERTS_PER_TOK,
    },
    JsonKey {
        name: "sliding_window",
        aliases: &[],
        hf_absent: Some(Or(hf_default::SLIDING_WINDOW as f64)),
        original: Some(("sliding_window", Req)),
        field: Field::SLIDING_WINDOW,
    },
    // original: initial_context_length × rope_scaling_factor (from_original_json).
    JsonKey {
        name: "max_position_embeddings",
        aliases: &[],
        hf_absent: Some(Or(hf_default::MAX_POSITION_EMBEDDINGS as f64)),
        original: None,
        field: Field::MAX_POSITION_EMBEDDINGS,
    },
    // HF: a rope_parameters block may carry it instead (from_hf_json).
    JsonKey {
        name: "rope_theta",
        aliases: &[],
        hf_absent: Some(Or(hf_default::ROPE_THETA)),
        original: Some(("rope_theta", Req)),
        field: Field::ROPE_THETA,
    },
    // original: not in the file, OpenAI's constant.
    JsonKey {
        name: "rms_norm_eps",
        aliases: &[],
        hf_absent: Some(Or(hf_default::RMS_NORM_EPS)),
        original: None,
        field: Field::RMS_NORM_EPS,
    },
    JsonKey {
        name: "swiglu_limit",
        aliases: &[],
        hf_absent: Some(Or(hf_default::SWIGLU_LIMIT)),
        original: Some(("swiglu_limit", Or(hf_default::SWIGLU_LIMIT))),
        field: Field::SWIGLU_LIMIT,
    },
    // original/config.json's YaRN numbers, named as OpenAI's code uses them (gpt_oss/torch/model.py):
    // rope_ntk_alpha is beta_slow, rope_ntk_beta beta_fast.
    JsonKey {
        name: "rope_scaling.factor",
        aliases: &[],
        hf_absent: None,
        original: Some(("rope_scaling_factor", Req)),
        field: Field::YARN_FACTOR,
    },
    JsonKey {
        name: "rope_scaling.beta_fast",
        aliases: &[],
        hf_absent: None,
        original: Some(("rope_ntk_beta", Req)),
        field: Field::YARN_BETA_FAST,
    },
    JsonKey {
        name: "rope_scaling.beta_slow",
        aliases: &[],
        hf_absent: None,
        original: Some(("rope_ntk_alpha", Req)),
        field: Field::YARN_BETA_SLOW,
    },
    JsonKey {
        name: "rope_scaling.original_max_position_embeddings",
        aliases: &[],
        hf_absent: None,
        original: Some(("initial_context_length", Req)),
        field: Field::YARN_ORIGINAL_CONTEXT,
    },
];

impl Fields<'_> {
    /// Reads one table entry into `c`.
    fn read(
        &self,
        names: &[&str],
        absent: Absent,
        field: Field,
        c: &mut GptOssConfig,
    ) -> Result<()> {
        match (field, absent) {
            (Field::Count { set, .. }, Req) => set(c, self.positive(names)?),
            (Field::Count { set, .. }, Or(d)) => {
                set(c, self.opt_usize(names)?.unwrap_or(d as usize))
            }
            (Field::Float { set, .. }, Req) => set(c, self.f64(names)?),
            (Field::Float { set, .. }, Or(d)) => set(c, self.opt_f64(names)?.unwrap_or(d)),
        }
        Ok(())
    }
}

/// A GGUF float is an f32: written as the shortest decimal that reads back to it (1e-5, not
/// 9.999999747378752e-6), as the config.json it came from spelled it.
fn f32_decimal(x: f64) -> f64 {
    let f = x as f32;
    if f64::from(f) == x {
        f.to_string().parse().unwrap_or(x)
    } else {
        x
    }
}

/// Reads fields of one JSON object, with errors that name the file and the field.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a Path,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, path: &'a Path) -> Result<Fields<'a>> {
        let map = value
            .as_object()
            .ok_or_else(|| anyhow!("{}: expected a JSON object", path.display()))?;
        Ok(Fields { map, path })
    }

    fn raw(&self, keys: &[&str]) -> Option<&'a Value> {
        keys.iter()
            .find_map(|k| self.map.get(*k).filter(|v| !v.is_null()))
    }

    fn missing(&self, keys: &[&str]) -> anyhow::Error {
        anyhow!(
            "{}: required field '{}' is missing",
            self.path.display(),
            keys.join("' / '")
        )
    }

    fn bad(&self, key: &str, want: &str, v: &Value) -> anyhow::Error {
        anyhow!(
            "{}: field '{key}' should be {want}, found {v}",
            self.path.display()
        )
    }

    fn opt_usize(&self, keys: &[&str]) -> Result<Option<usize>> {
        let Some(v) = self.raw(keys) else {
            return Ok(None);
        };
        // JSON written by Python may spell an integer as 4096.0.
        let n = v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.bad(keys[0], "a non-negative integer", v))?;
        Ok(Some(n))
    }

    fn usize(&self, keys: &[&str]) -> Result<usize> {
        self.opt_usize(keys)?.ok_or_else(|| self.missing(keys))
    }

    fn positive(&self, keys: &[&str]) -> Result<usize> {
        let n = self.usize(keys)?;
        if n == 0 {
            bail!("{}: field '{}' must not be 0", self.path.display(), keys[0]);
        }
        Ok(n)
    }

    fn opt_f64(&self, keys: &[&str]) -> Result<Option<f64>> {
        let Some(v) = self.raw(keys) else {
            return Ok(None);
        };
        Ok(Some(
            v.as_f64().ok_or_else(|| self.bad(keys[0], "a number", v))?,
        ))
    }

    fn f64(&self, keys: &[&str]) -> Result<f64> {
        self.opt_f64(keys)?.ok_or_else(|| self.missing(keys))
    }

    /// A token id, or the first of a list of ids (transformers allows `eos_token_id: [..]`).
    fn opt_token(&self, key: &str) -> Result<Option<u32>> {
        let Some(v) = self.raw(&[key]) else {
            return Ok(None);
        };
        let first = match v {
            Value::Array(a) => match a.first() {
                Some(x) => x,
                None => return Ok(None),
            },
            x => x,
        };
        first
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.bad(key, "a token id", v))
    }
}

/// Reads a JSON file, naming it in errors.
pub fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

impl AttentionKind {
    /// The layout llama.cpp assumes for gpt-oss (and transformers' default): even layers slide.
    pub fn alternating(n_layers: usize) -> Vec<AttentionKind> {
        (0..n_layers)
            .map(|i| {
                if i % 2 == 0 {
                    AttentionKind::Sliding
                } else {
                    AttentionKind::Full
                }
            })
            .collect()
    }
}

impl GptOssConfig {
    /// Parses a Hugging Face `config.json` (transformers 4.x `rope_scaling` + `rope_theta`, or 5.x
    /// `rope_parameters`). Shape-defining fields are required; the rest take transformers' defaults, as llama.cpp's
    /// converter (which reads through transformers) sees them.
    pub fn from_hf_json(json: &Value, path: &Path) -> Result<GptOssConfig> {
        let f = Fields::new(json, path)?;
        let model_type = f.raw(&["model_type"]).and_then(Value::as_str);
        let archs: Vec<&str> = f
            .raw(&["architectures"])
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if model_type != Some("gpt_oss") && !archs.contains(&"GptOssForCausalLM") {
            bail!(
                "{}: unknown architecture (model_type {}, architectures {:?}); ossify reads gpt-oss only",
                path.display(),
                model_type.map_or("missing".to_string(), |m| format!("'{m}'")),
                archs
            );
        }
        let mut c = GptOssConfig::blank();
        for k in JSON_KEYS {
            if let Some(absent) = k.hf_absent {
                let names: Vec<&str> = std::iter::once(k.name)
                    .chain(k.aliases.iter().copied())
                    .collect();
                f.read(&names, absent, k.field, &mut c)?;
            }
        }
        check_layer_count(c.num_hidden_layers, path, ConfigSource::HfJson)?;
        let rope = f.raw(&["rope_parameters", "rope_scaling"]);
        (c.rope_scaling, c.rope_theta) = match rope {
            None => (
                Some(RopeScaling {
                    factor: hf_default::YARN_FACTOR,
                    beta_fast: hf_default::YARN_BETA_FAST,
                    beta_slow: hf_default::YARN_BETA_SLOW,
                    original_max_position_embeddings: hf_default::YARN_ORIGINAL_CONTEXT,
                    truncate: false,
                }),
                c.rope_theta,
            ),
            Some(r) => {
                let (scaling, theta) = parse_hf_rope(r, path)?;
                (scaling, theta.unwrap_or(c.rope_theta))
            }
        };
        c.layer_types = match f.raw(&["layer_types"]) {
            None => AttentionKind::alternating(c.num_hidden_layers),
            Some(v) => parse_layer_types(v, path, c.num_hidden_layers)?,
        };
        c.bos_token_id = f.opt_token("bos_token_id")?;
        c.eos_token_id = f.opt_token("eos_token_id")?;
        c.pad_token_id = f.opt_token("pad_token_id")?;
        c.validated(path, ConfigSource::HfJson)
    }

    /// Parses OpenAI's `original/config.json` (gpt_oss/torch/model.py `ModelConfig`). Its YaRN fields map as
    /// OpenAI's code uses them: `rope_ntk_alpha` is beta_slow, `rope_ntk_beta` is beta_fast,
    /// `initial_context_length` the original context; the full context is initial × factor, which is what
    /// transformers' conversion script writes as `max_position_embeddings`.
    pub fn from_original_json(json: &Value, path: &Path) -> Result<GptOssConfig> {
        let f = Fields::new(json, path)?;
        let mut c = GptOssConfig::blank();
        // Filled by the table's YaRN rows.
        c.rope_scaling = Some(RopeScaling {
            factor: 0.0,
            beta_fast: 0.0,
            beta_slow: 0.0,
            original_max_position_embeddings: 0,
            truncate: false,
        });
        for k in JSON_KEYS {
            if let Some((name, absent)) = k.original {
                f.read(&[name], absent, k.field, &mut c)?;
            }
        }
        check_layer_count(c.num_hidden_layers, path, ConfigSource::OriginalJson)?;
        let (initial, factor) = c
            .rope_scaling
            .as_ref()
            .map_or((0, 0.0), |r| (r.original_max_position_embeddings, r.factor));
        c.max_position_embeddings = match f.opt_usize(&["max_position_embeddings"])? {
            Some(m) => m,
            None => {
                let m = initial as f64 * factor;
                if !(m.is_finite() && m >= 1.0 && m.fract() == 0.0) {
                    bail!(
                        "{}: initial_context_length × rope_scaling_factor = {m} is not a whole context length",
                        path.display()
                    );
                }
                m as usize
            }
        };
        c.rms_norm_eps = ORIGINAL_RMS_NORM_EPS;
        // OpenAI's reference: `sliding_window if layer_idx % 2 == 0 else 0`.
        c.layer_types = AttentionKind::alternating(c.num_hidden_layers);
        c.validated(path, ConfigSource::OriginalJson)
    }

    /// A config with every number 0 and nothing optional, for readers to fill from a table.
    pub(crate) fn blank() -> GptOssConfig {
        GptOssConfig {
            vocab_size: 0,
            hidden_size: 0,
            intermediate_size: 0,
            num_hidden_layers: 0,
            num_attention_heads: 0,
            num_key_value_heads: 0,
            head_dim: 0,
            num_local_experts: 0,
            num_experts_per_tok: 0,
            sliding_window: 0,
            max_position_embeddings: 0,
            rope_theta: 0.0,
            rope_scaling: None,
            rms_norm_eps: 0.0,
            swiglu_limit: 0.0,
            layer_types: Vec::new(),
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
        }
    }

    /// config.json for a checkpoint that has none (GGUF): transformers' `GptOssConfig` fields, spelled as
    /// openai/gpt-oss-20b's config.json spells them; the numbers through the same table [`from_hf_json`] reads.
    ///
    /// [`from_hf_json`]: GptOssConfig::from_hf_json
    pub fn to_hf_json(&self) -> Value {
        let mut o = Map::new();
        for (k, v) in [
            ("architectures", json!(["GptOssForCausalLM"])),
            ("model_type", json!("gpt_oss")),
            ("attention_bias", json!(true)),
            ("hidden_act", json!("silu")),
            ("tie_word_embeddings", json!(false)),
        ] {
            o.insert(k.into(), v);
        }
        for k in JSON_KEYS {
            let v = match k.field {
                Field::Count { get, .. } => get(self).map(|n| json!(n)),
                Field::Float { get, .. } => get(self).map(|x| json!(f32_decimal(x))),
            };
            if let (Some(_), Some(v)) = (k.hf_absent, v) {
                o.insert(k.name.into(), v);
            }
        }
        let rope_scaling = match &self.rope_scaling {
            Some(r) => json!({
                "rope_type": "yarn",
                "factor": f32_decimal(r.factor),
                "beta_fast": f32_decimal(r.beta_fast),
                "beta_slow": f32_decimal(r.beta_slow),
                "original_max_position_embeddings": r.original_max_position_embeddings,
                "truncate": r.truncate,
            }),
            None => json!({ "rope_type": "default" }),
        };
        o.insert("rope_scaling".into(), rope_scaling);
        let layer_types: Vec<&str> = self
            .layer_types
            .iter()
            .map(|k| match k {
                AttentionKind::Sliding => "sliding_attention",
                AttentionKind::Full => "full_attention",
            })
            .collect();
        o.insert("layer_types".into(), json!(layer_types));
        for (key, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
            ("pad_token_id", self.pad_token_id),
        ] {
            if let Some(id) = id {
                o.insert(key.into(), json!(id));
            }
        }
        Value::Object(o)
    }

    /// The one validation step every config goes through, whatever file it was read from: each number within
    /// its bound ([`limits`]) and consistent with the others, so that nothing later can size memory, loop or
    /// divide by a value a hostile file chose. Errors name the file, the field as `source` spells it, and the
    /// bound.
    pub fn validate(&self, path: &Path, source: ConfigSource) -> Result<()> {
        let file = path.display();
        let name = |field: &str| source.spell(field);
        let count = |field: &str, v: usize, max: usize| -> Result<()> {
            if v == 0 || v > max {
                bail!(
                    "{file}: {} = {v} is out of range: it must be between 1 and {max}",
                    name(field)
                );
            }
            Ok(())
        };
        let at_most = |field: &str, v: usize, other: &str, max: usize| -> Result<()> {
            if v > max {
                bail!(
                    "{file}: {} = {v} exceeds {} = {max}",
                    name(field),
                    name(other)
                );
            }
            Ok(())
        };
        let positive = |field: &str, v: f64, min: f64| -> Result<()> {
            if !(v.is_finite() && v >= min && v > 0.0) {
                let bound = if min > 0.0 {
                    format!("a finite number >= {min}")
                } else {
                    "a finite number > 0".to_string()
                };
                bail!("{file}: {} = {v} must be {bound}", name(field));
            }
            Ok(())
        };
        count(
            "num_hidden_layers",
            self.num_hidden_layers,
            limits::MAX_LAYERS,
        )?;
        count("hidden_size", self.hidden_size, limits::MAX_WIDTH)?;
        count(
            "intermediate_size",
            self.intermediate_size,
            limits::MAX_WIDTH,
        )?;
        count(
            "num_attention_heads",
            self.num_attention_heads,
            limits::MAX_HEADS,
        )?;
        count(
            "num_key_value_heads",
            self.num_key_value_heads,
            limits::MAX_HEADS,
        )?;
        count("head_dim", self.head_dim, limits::MAX_HEAD_DIM)?;
        count(
            "num_local_experts",
            self.num_local_experts,
            limits::MAX_EXPERTS,
        )?;
        count(
            "num_experts_per_tok",
            self.num_experts_per_tok,
            limits::MAX_EXPERTS,
        )?;
        count("vocab_size", self.vocab_size, limits::MAX_VOCAB)?;
        count(
            "max_position_embeddings",
            self.max_position_embeddings,
            limits::MAX_CONTEXT,
        )?;
        count("sliding_window", self.sliding_window, limits::MAX_CONTEXT)?;
        at_most(
            "sliding_window",
            self.sliding_window,
            "max_position_embeddings",
            self.max_position_embeddings,
        )?;
        if self.head_dim % 2 != 0 {
            // RoPE rotates the first half of each head with the second.
            bail!(
                "{file}: {} = {} must be even (RoPE rotates pairs)",
                name("head_dim"),
                self.head_dim
            );
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            bail!(
                "{file}: {} = {} is not a multiple of {} = {}",
                name("num_attention_heads"),
                self.num_attention_heads,
                name("num_key_value_heads"),
                self.num_key_value_heads
            );
        }
        at_most(
            "num_experts_per_tok",
            self.num_experts_per_tok,
            "num_local_experts",
            self.num_local_experts,
        )?;
        if self.layer_types.len() != self.num_hidden_layers {
            bail!(
                "{file}: {} has {} entries for {} = {}",
                name("layer_types"),
                self.layer_types.len(),
                name("num_hidden_layers"),
                self.num_hidden_layers
            );
        }
        positive("rope_theta", self.rope_theta, 0.0)?;
        positive("rms_norm_eps", self.rms_norm_eps, 0.0)?;
        positive("swiglu_limit", self.swiglu_limit, 0.0)?;
        if let Some(r) = &self.rope_scaling {
            // transformers' _validate_yarn_parameters: "factor field must be a float >= 1".
            positive("rope_scaling.factor", r.factor, 1.0)?;
            positive("rope_scaling.beta_fast", r.beta_fast, 0.0)?;
            positive("rope_scaling.beta_slow", r.beta_slow, 0.0)?;
            count(
                "rope_scaling.original_max_position_embeddings",
                r.original_max_position_embeddings,
                limits::MAX_CONTEXT,
            )?;
            at_most(
                "rope_scaling.original_max_position_embeddings",
                r.original_max_position_embeddings,
                "max_position_embeddings",
                self.max_position_embeddings,
            )?;
        }
        for (field, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
            ("pad_token_id", self.pad_token_id),
        ] {
            if let Some(id) = id.filter(|&i| i as usize >= self.vocab_size) {
                bail!(
                    "{file}: {} = {id} is outside the vocabulary ({} = {})",
                    name(field),
                    name("vocab_size"),
                    self.vocab_size
                );
            }
        }
        Ok(())
    }

    fn validated(self, path: &Path, source: ConfigSource) -> Result<GptOssConfig> {
        self.validate(path, source)?;
        Ok(self)
    }

    /// Whether the layers follow the layout llama.cpp assumes when a GGUF has no
    /// `gpt-oss.attention.sliding_window_pattern` (even layers slide; src/models/openai-moe.cpp
    /// `load_swa_pattern(ml, 2)`).
    pub fn has_default_layer_types(&self) -> bool {
        self.layer_types == AttentionKind::alternating(self.num_hidden_layers)
    }
}

/// (scaling, rope_theta if the block carries it) from `rope_parameters` / `rope_scaling`.
fn parse_hf_rope(r: &Value, path: &Path) -> Result<(Option<RopeScaling>, Option<f64>)> {
    let f = Fields::new(r, path)?;
    let theta = f.opt_f64(&["rope_theta"])?;
    let kind = f
        .raw(&["rope_type", "type"])
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok((None, theta)),
        "yarn" => {
            let factor = f.opt_f64(&["factor"])?;
            let Some(factor) = factor else {
                // llama.cpp writes no scaling keys for a yarn block without a factor.
                return Ok((None, theta));
            };
            Ok((
                Some(RopeScaling {
                    factor,
                    beta_fast: f
                        .opt_f64(&["beta_fast"])?
                        .unwrap_or(hf_default::YARN_BETA_FAST),
                    beta_slow: f
                        .opt_f64(&["beta_slow"])?
                        .unwrap_or(hf_default::YARN_BETA_SLOW),
                    original_max_position_embeddings: f
                        .usize(&["original_max_position_embeddings"])
                        .map_err(|e| anyhow!("{e} (in rope_scaling)"))?,
                    truncate: f
                        .raw(&["truncate"])
                        .and_then(Value::as_bool)
                        .unwrap_or(true),
                }),
                theta,
            ))
        }
        other => bail!(
            "{}: rope_type '{other}' is not supported for gpt-oss (expected 'yarn' or 'default')",
            path.display()
        ),
    }
}

fn parse_layer_types(v: &Value, path: &Path, n_layers: usize) -> Result<Vec<AttentionKind>> {
    let a = v
        .as_array()
        .ok_or_else(|| anyhow!("{}: layer_types should be a list", path.display()))?;
    if a.len() != n_layers {
        bail!(
            "{}: layer_types has {} entries but num_hidden_layers is {n_layers}",
            path.display(),
            a.len()
        );
    }
    a.iter()
        .enumerate()
        .map(|(i, x)| match x.as_str() {
            Some("sliding_attention") => Ok(AttentionKind::Sliding),
            Some("full_attention") => Ok(AttentionKind::Full),
            _ => Err(anyhow!(
                "{}: layer_types[{i}] is {x}, expected \"sliding_attention\" or \"full_attention\"",
                path.display()
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn golden(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("golden")
            .join(rel)
    }

    #[test]
    fn hf_4x_rope_scaling_and_5x_rope_parameters_agree() {
        let p = golden("tiny/config.json");
        let v4 = read_json(&p).unwrap();
        let c4 = GptOssConfig::from_hf_json(&v4, &p).unwrap();
        // transformers 5.x spelling: rope_parameters carries rope_theta; no top-level rope_theta.
        let mut v5 = v4.clone();
        let obj = v5.as_object_mut().unwrap();
        let mut rope = obj.remove("rope_scaling").unwrap();
        rope["rope_theta"] = obj.remove("rope_theta").unwrap();
        obj.insert("rope_parameters".into(), rope);
        let c5 = GptOssConfig::from_hf_json(&v5, &p).unwrap();
        assert_eq!(c4, c5);
        let r = c4.rope_scaling.as_ref().unwrap();
        assert_eq!(
            (r.factor, r.beta_fast, r.beta_slow, r.truncate),
            (32.0, 32.0, 1.0, false)
        );
        assert_eq!(c4.rope_theta, 150000.0);
        assert!(c4.has_default_layer_types());
    }

    #[test]
    fn original_config_equals_hf_config() {
        // golden/tiny/original/config.json is OpenAI's spelling of the same model as golden/tiny/config.json.
        let ph = golden("tiny/config.json");
        let po = golden("tiny/original/config.json");
        let h = GptOssConfig::from_hf_json(&read_json(&ph).unwrap(), &ph).unwrap();
        let o = GptOssConfig::from_original_json(&read_json(&po).unwrap(), &po).unwrap();
        let strip = |c: &GptOssConfig| GptOssConfig {
            bos_token_id: None,
            eos_token_id: None,
            pad_token_id: None,
            ..c.clone()
        };
        assert_eq!(strip(&h), strip(&o));
    }

    #[test]
    fn missing_and_malformed_fields_are_named() {
        let p = PathBuf::from("x/config.json");
        let base = serde_json::json!({"model_type": "gpt_oss", "vocab_size": 10, "hidden_size": 64,
            "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 32, "num_local_experts": 2, "num_experts_per_tok": 1});
        let c = GptOssConfig::from_hf_json(&base, &p).unwrap();
        // transformers' defaults fill the rest.
        assert_eq!(c.sliding_window, 128);
        assert_eq!(c.max_position_embeddings, 131072);
        assert_eq!(
            c.rope_scaling
                .as_ref()
                .map(|r| r.original_max_position_embeddings),
            Some(4096)
        );
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove("head_dim");
        let e = GptOssConfig::from_hf_json(&v, &p).unwrap_err().to_string();
        assert!(e.contains("x/config.json") && e.contains("head_dim"), "{e}");
        let mut v = base.clone();
        v["hidden_size"] = "big".into();
        let e = GptOssConfig::from_hf_json(&v, &p).unwrap_err().to_string();
        assert!(e.contains("hidden_size") && e.contains("\"big\""), "{e}");
        let mut v = base.clone();
        v["num_experts_per_tok"] = 3.into();
        assert!(GptOssConfig::from_hf_json(&v, &p).is_err());
        let mut v = base;
        v["eos_token_id"] = serde_json::json!([7, 8]);
        assert_eq!(
            GptOssConfig::from_hf_json(&v, &p).unwrap().eos_token_id,
            Some(7)
        );
    }

    /// Every field as each input spells it in messages (what the former hand-kept spelling list said), now read
    /// from the config.json table and the GGUF key table.
    #[test]
    fn fields_are_spelled_as_each_input_spells_them() {
        use ossify_formats::gguf::constants as k;
        let rows: &[(&str, &str, &str)] = &[
            ("vocab_size", "vocab_size", k::TOKENIZER_GGML_TOKENS),
            ("hidden_size", "hidden_size", k::LLM_EMBEDDING_LENGTH),
            (
                "intermediate_size",
                "intermediate_size",
                k::EXPERT_FEED_FORWARD_LENGTH,
            ),
            ("num_hidden_layers", "num_hidden_layers", k::LLM_BLOCK_COUNT),
            (
                "num_attention_heads",
                "num_attention_heads",
                k::ATTENTION_HEAD_COUNT,
            ),
            (
                "num_key_value_heads",
                "num_key_value_heads",
                k::ATTENTION_HEAD_COUNT_KV,
            ),
            ("head_dim", "head_dim", k::ATTENTION_KEY_LENGTH),
            ("num_local_experts", "num_experts", k::EXPERT_COUNT),
            (
                "num_experts_per_tok",
                "experts_per_token",
                k::EXPERT_USED_COUNT,
            ),
            (
                "sliding_window",
                "sliding_window",
                k::ATTENTION_SLIDING_WINDOW,
            ),
            ("max_position_embeddings", "", k::LLM_CONTEXT_LENGTH),
            ("layer_types", "", k::ATTENTION_SLIDING_WINDOW_PATTERN),
            ("rope_theta", "rope_theta", k::ROPE_FREQ_BASE),
            ("rms_norm_eps", "", k::ATTENTION_LAYERNORM_RMS_EPS),
            ("swiglu_limit", "swiglu_limit", ""),
            (
                "rope_scaling.factor",
                "rope_scaling_factor",
                k::ROPE_SCALING_FACTOR,
            ),
            (
                "rope_scaling.beta_fast",
                "rope_ntk_beta",
                k::ROPE_SCALING_YARN_BETA_FAST,
            ),
            (
                "rope_scaling.beta_slow",
                "rope_ntk_alpha",
                k::ROPE_SCALING_YARN_BETA_SLOW,
            ),
            (
                "rope_scaling.original_max_position_embeddings",
                "initial_context_length",
                k::ROPE_SCALING_ORIG_CTX_LEN,
            ),
            ("bos_token_id", "", k::TOKENIZER_GGML_BOS_TOKEN_ID),
            ("eos_token_id", "", k::TOKENIZER_GGML_EOS_TOKEN_ID),
            ("pad_token_id", "", k::TOKENIZER_GGML_PADDING_TOKEN_ID),
        ];
        for &(field, original, gguf) in rows {
            assert_eq!(
                ConfigSource::HfJson.spell(field),
                format!("field '{field}'")
            );
            let o = if original.is_empty() { field } else { original };
            assert_eq!(
                ConfigSource::OriginalJson.spell(field),
                format!("field '{o}'")
            );
            let g = if gguf.is_empty() {
                format!("field '{field}'")
            } else {
                format!("metadata key '{}'", k::key(gguf, k::ARCH_GPT_OSS))
            };
            assert_eq!(ConfigSource::Gguf.spell(field), g);
        }
    }

    /// One hostile value per rule: each is refused with the file, the field and the bound named; the issue's
    /// cases (issue 8: sliding_window 2^62, num_hidden_layers 20000 / 1e9, negative epsilon, rope base 0)
    /// are among them.
    #[test]
    fn every_number_is_bounded() {
        let p = golden("tiny/config.json");
        let base = read_json(&p).unwrap();
        let huge = serde_json::json!(1u64 << 62);
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("num_hidden_layers", 20000.into(), "between 1 and 1024"),
            ("num_hidden_layers", 1e9.into(), "between 1 and 1024"),
            ("sliding_window", huge.clone(), "between 1 and"),
            (
                "sliding_window",
                40000.into(),
                "exceeds field 'max_position_embeddings'",
            ),
            ("sliding_window", u64::MAX.into(), "between 1 and"),
            ("max_position_embeddings", huge.clone(), "between 1 and"),
            ("hidden_size", huge.clone(), "between 1 and"),
            ("head_dim", 15.into(), "must be even"),
            ("num_key_value_heads", 3.into(), "not a multiple"),
            ("vocab_size", huge, "between 1 and"),
            ("rms_norm_eps", (-1.0).into(), "finite number > 0"),
            ("rms_norm_eps", 0.0.into(), "finite number > 0"),
            ("rope_theta", 0.0.into(), "finite number > 0"),
            ("swiglu_limit", (-7.0).into(), "finite number > 0"),
            ("eos_token_id", 100000.into(), "outside the vocabulary"),
        ];
        for (field, value, want) in cases {
            let mut v = base.clone();
            v[field] = value.clone();
            if field == "num_hidden_layers" {
                v.as_object_mut().unwrap().remove("layer_types");
            }
            let e = GptOssConfig::from_hf_json(&v, &p)
                .expect_err(&format!("{field} = {value} should be refused"))
                .to_string();
            assert!(
                e.contains("tiny/config.json")
                    && e.contains(&format!("'{field}'"))
                    && e.contains(want),
                "{field} = {value}: {e}"
            );
        }
        for (field, value, want) in [
            ("factor", 0.0, ">= 1"),
            ("factor", 0.5, ">= 1"),
            ("beta_fast", -1.0, "> 0"),
        ] {
            let mut v = base.clone();
            v["rope_scaling"][field] = value.into();
            let e = GptOssConfig::from_hf_json(&v, &p).unwrap_err().to_string();
            assert!(
                e.contains(&format!("'rope_scaling.{field}'")) && e.contains(want),
                "{e}"
            );
        }
        // OpenAI's spelling is used for original/config.json.
        let po = golden("tiny/original/config.json");
        let mut v = read_json(&po).unwrap();
        v["num_experts"] = serde_json::json!(1u64 << 40);
        let e = GptOssConfig::from_original_json(&v, &po)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'num_experts'") && e.contains("between 1 and 4096"),
            "{e}"
        );
    }
}
