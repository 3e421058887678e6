//! GGUF format facts, in one place: magic, version, alignment, value type ids, metadata key names and the llama
//! file-type ids.
//!
//! Every item mirrors a constant of gguf-py (`gguf-py/gguf/constants.py` in llama.cpp 0c1e570, PyPI `gguf`
//! 0.19) and names it in its comment, so a reader can check one against the other.
//!
//! Key names: a key under `{arch}.` is a template; expand it with [`key`] (`key(LLM_BLOCK_COUNT, "gpt-oss")` is
//! `"gpt-oss.block_count"`). Rust names follow the key: `general.*` -> `GENERAL_*`, `tokenizer.*` ->
//! `TOKENIZER_*`, `{arch}.attention.*` -> `ATTENTION_*`, `{arch}.rope.*` -> `ROPE_*`, `{arch}.expert_*` ->
//! `EXPERT_*`, any other `{arch}.*` -> `LLM_*`. The value type each key carries when llama.cpp's converter writes
//! it (gguf_writer.py's `add_*` methods) is noted beside it.

/// `GGUF_MAGIC`: the first four bytes of every GGUF file, "GGUF" (read as a little-endian u32: 0x46554747).
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// `GGUF_VERSION`: the version we write. We read 2 and 3 (same layout for little-endian files); 1 is obsolete.
pub const GGUF_VERSION: u32 = 3;
/// `GGUF_DEFAULT_ALIGNMENT`: data alignment unless `general.alignment` says otherwise.
pub const GGUF_DEFAULT_ALIGNMENT: usize = 32;
/// `GGML_QUANT_VERSION`: value of `general.quantization_version` that llama.cpp's converter writes.
pub const GGML_QUANT_VERSION: u32 = 2;
/// `GGML_MAX_DIMS`: most dimensions a tensor may have.
pub const GGML_MAX_DIMS: usize = 4;
/// `GGML_MAX_NAME` (ggml.h): ggml rejects a tensor name of this many bytes or more (gguf.cpp).
pub const GGML_MAX_NAME: usize = 64;

/// `GGUFValueType`: the type id stored before every metadata value (and inside arrays).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgufValueType {
    Uint8 = 0,
    Int8 = 1,
    Uint16 = 2,
    Int16 = 3,
    Uint32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    Uint64 = 10,
    Int64 = 11,
    Float64 = 12,
}

impl GgufValueType {
    pub fn from_u32(id: u32) -> Option<GgufValueType> {
        use GgufValueType as T;
        Some(match id {
            0 => T::Uint8,
            1 => T::Int8,
            2 => T::Uint16,
            3 => T::Int16,
            4 => T::Uint32,
            5 => T::Int32,
            6 => T::Float32,
            7 => T::Bool,
            8 => T::String,
            9 => T::Array,
            10 => T::Uint64,
            11 => T::Int64,
            12 => T::Float64,
            _ => return None,
        })
    }

    /// Bytes one value takes in the file; `None` for strings and arrays, whose size is in the data.
    pub fn fixed_size(self) -> Option<usize> {
        use GgufValueType as T;
        match self {
            T::Uint8 | T::Int8 | T::Bool => Some(1),
            T::Uint16 | T::Int16 => Some(2),
            T::Uint32 | T::Int32 | T::Float32 => Some(4),
            T::Uint64 | T::Int64 | T::Float64 => Some(8),
            T::String | T::Array => None,
        }
    }

    /// Name as ggml prints it (`gguf_type_name` in gguf.cpp).
    pub fn name(self) -> &'static str {
        use GgufValueType as T;
        match self {
            T::Uint8 => "u8",
            T::Int8 => "i8",
            T::Uint16 => "u16",
            T::Int16 => "i16",
            T::Uint32 => "u32",
            T::Int32 => "i32",
            T::Float32 => "f32",
            T::Bool => "bool",
            T::String => "str",
            T::Array => "arr",
            T::Uint64 => "u64",
            T::Int64 => "i64",
            T::Float64 => "f64",
        }
    }

    /// Name as gguf-py spells it (`GGUFValueType.UINT32.name`), which its `gguf-dump` prints.
    pub fn gguf_py_name(self) -> &'static str {
        use GgufValueType as T;
        match self {
            T::Uint8 => "UINT8",
            T::Int8 => "INT8",
            T::Uint16 => "UINT16",
            T::Int16 => "INT16",
            T::Uint32 => "UINT32",
            T::Int32 => "INT32",
            T::Float32 => "FLOAT32",
            T::Bool => "BOOL",
            T::String => "STRING",
            T::Array => "ARRAY",
            T::Uint64 => "UINT64",
            T::Int64 => "INT64",
            T::Float64 => "FLOAT64",
        }
    }
}

/// Expands a key template: every `{arch}` becomes `arch` (gguf-py: `Keys.LLM.BLOCK_COUNT.format(arch=arch)`).
/// Keys without a placeholder come back unchanged.
pub fn key(template: &str, arch: &str) -> String {
    template.replace("{arch}", arch)
}

/// The architecture name llama.cpp uses for gpt-oss (`MODEL_ARCH_NAMES[MODEL_ARCH.GPT_OSS]`).
pub const ARCH_GPT_OSS: &str = "gpt-oss";

// ---- Keys.General ---------------------------------------------------------------------------------------------
/// `Keys.General.TYPE` (string, "model").
pub const GENERAL_TYPE: &str = "general.type";
/// `Keys.General.ARCHITECTURE` (string).
pub const GENERAL_ARCHITECTURE: &str = "general.architecture";
/// `Keys.General.QUANTIZATION_VERSION` (u32).
pub const GENERAL_QUANTIZATION_VERSION: &str = "general.quantization_version";
/// `Keys.General.ALIGNMENT` (u32, a power of two).
pub const GENERAL_ALIGNMENT: &str = "general.alignment";
/// `Keys.General.FILE_TYPE` (u32, a [`LlamaFileType`]).
pub const GENERAL_FILE_TYPE: &str = "general.file_type";
/// `Keys.General.NAME` (string).
pub const GENERAL_NAME: &str = "general.name";
/// `Keys.General.AUTHOR` (string).
pub const GENERAL_AUTHOR: &str = "general.author";
/// `Keys.General.VERSION` (string).
pub const GENERAL_VERSION: &str = "general.version";
/// `Keys.General.ORGANIZATION` (string).
pub const GENERAL_ORGANIZATION: &str = "general.organization";
/// `Keys.General.FINETUNE` (string).
pub const GENERAL_FINETUNE: &str = "general.finetune";
/// `Keys.General.BASENAME` (string).
pub const GENERAL_BASENAME: &str = "general.basename";
/// `Keys.General.DESCRIPTION` (string).
pub const GENERAL_DESCRIPTION: &str = "general.description";
/// `Keys.General.QUANTIZED_BY` (string).
pub const GENERAL_QUANTIZED_BY: &str = "general.quantized_by";
/// `Keys.General.SIZE_LABEL` (string, e.g. "20B").
pub const GENERAL_SIZE_LABEL: &str = "general.size_label";
/// `Keys.General.LICENSE` (string).
pub const GENERAL_LICENSE: &str = "general.license";
/// `Keys.General.LICENSE_NAME` (string).
pub const GENERAL_LICENSE_NAME: &str = "general.license.name";
/// `Keys.General.LICENSE_LINK` (string).
pub const GENERAL_LICENSE_LINK: &str = "general.license.link";
/// `Keys.General.URL` (string).
pub const GENERAL_URL: &str = "general.url";
/// `Keys.General.DOI` (string).
pub const GENERAL_DOI: &str = "general.doi";
/// `Keys.General.UUID` (string).
pub const GENERAL_UUID: &str = "general.uuid";
/// `Keys.General.REPO_URL` (string).
pub const GENERAL_REPO_URL: &str = "general.repo_url";
/// `Keys.General.SOURCE_URL` (string).
pub const GENERAL_SOURCE_URL: &str = "general.source.url";
/// `Keys.General.SOURCE_DOI` (string).
pub const GENERAL_SOURCE_DOI: &str = "general.source.doi";
/// `Keys.General.SOURCE_UUID` (string).
pub const GENERAL_SOURCE_UUID: &str = "general.source.uuid";
/// `Keys.General.SOURCE_REPO_URL` (string).
pub const GENERAL_SOURCE_REPO_URL: &str = "general.source.repo_url";
/// `Keys.General.BASE_MODEL_COUNT` (u32).
pub const GENERAL_BASE_MODEL_COUNT: &str = "general.base_model.count";
/// `Keys.General.BASE_MODEL_NAME` (string); `{id}` is the base model's index, expand with `str::replace`.
pub const GENERAL_BASE_MODEL_NAME: &str = "general.base_model.{id}.name";
/// `Keys.General.BASE_MODEL_AUTHOR` (string).
pub const GENERAL_BASE_MODEL_AUTHOR: &str = "general.base_model.{id}.author";
/// `Keys.General.BASE_MODEL_VERSION` (string).
pub const GENERAL_BASE_MODEL_VERSION: &str = "general.base_model.{id}.version";
/// `Keys.General.BASE_MODEL_ORGANIZATION` (string).
pub const GENERAL_BASE_MODEL_ORGANIZATION: &str = "general.base_model.{id}.organization";
/// `Keys.General.BASE_MODEL_DESCRIPTION` (string).
pub const GENERAL_BASE_MODEL_DESCRIPTION: &str = "general.base_model.{id}.description";
/// `Keys.General.BASE_MODEL_URL` (string).
pub const GENERAL_BASE_MODEL_URL: &str = "general.base_model.{id}.url";
/// `Keys.General.BASE_MODEL_DOI` (string).
pub const GENERAL_BASE_MODEL_DOI: &str = "general.base_model.{id}.doi";
/// `Keys.General.BASE_MODEL_UUID` (string).
pub const GENERAL_BASE_MODEL_UUID: &str = "general.base_model.{id}.uuid";
/// `Keys.General.BASE_MODEL_REPO_URL` (string).
pub const GENERAL_BASE_MODEL_REPO_URL: &str = "general.base_model.{id}.repo_url";
/// `Keys.General.DATASET_COUNT` (u32).
pub const GENERAL_DATASET_COUNT: &str = "general.dataset.count";
/// `Keys.General.DATASET_NAME` (string); `{id}` as for base models.
pub const GENERAL_DATASET_NAME: &str = "general.dataset.{id}.name";
/// `Keys.General.TAGS` (array of strings).
pub const GENERAL_TAGS: &str = "general.tags";
/// `Keys.General.LANGUAGES` (array of strings).
pub const GENERAL_LANGUAGES: &str = "general.languages";

// ---- Keys.LLM -------------------------------------------------------------------------------------------------
/// `Keys.LLM.VOCAB_SIZE` (u32).
pub const LLM_VOCAB_SIZE: &str = "{arch}.vocab_size";
/// `Keys.LLM.CONTEXT_LENGTH` (u32; gpt-oss: `max_position_embeddings`).
pub const LLM_CONTEXT_LENGTH: &str = "{arch}.context_length";
/// `Keys.LLM.EMBEDDING_LENGTH` (u32; `hidden_size`).
pub const LLM_EMBEDDING_LENGTH: &str = "{arch}.embedding_length";
/// `Keys.LLM.BLOCK_COUNT` (u32; `num_hidden_layers`).
pub const LLM_BLOCK_COUNT: &str = "{arch}.block_count";
/// `Keys.LLM.FEED_FORWARD_LENGTH` (u32; `intermediate_size`).
pub const LLM_FEED_FORWARD_LENGTH: &str = "{arch}.feed_forward_length";
/// `Keys.LLM.USE_PARALLEL_RESIDUAL` (bool).
pub const LLM_USE_PARALLEL_RESIDUAL: &str = "{arch}.use_parallel_residual";
/// `Keys.LLM.LOGIT_SCALE` (f32).
pub const LLM_LOGIT_SCALE: &str = "{arch}.logit_scale";
/// `Keys.LLM.EXPERT_FEED_FORWARD_LENGTH` (u32; gpt-oss writes `intermediate_size`).
pub const EXPERT_FEED_FORWARD_LENGTH: &str = "{arch}.expert_feed_forward_length";
/// `Keys.LLM.EXPERT_SHARED_FEED_FORWARD_LENGTH` (u32).
pub const EXPERT_SHARED_FEED_FORWARD_LENGTH: &str = "{arch}.expert_shared_feed_forward_length";
/// `Keys.LLM.EXPERT_COUNT` (u32; `num_local_experts`).
pub const EXPERT_COUNT: &str = "{arch}.expert_count";
/// `Keys.LLM.EXPERT_USED_COUNT` (u32; `num_experts_per_tok`).
pub const EXPERT_USED_COUNT: &str = "{arch}.expert_used_count";
/// `Keys.LLM.EXPERT_SHARED_COUNT` (u32).
pub const EXPERT_SHARED_COUNT: &str = "{arch}.expert_shared_count";
/// `Keys.LLM.EXPERT_WEIGHTS_SCALE` (f32).
pub const EXPERT_WEIGHTS_SCALE: &str = "{arch}.expert_weights_scale";
/// `Keys.LLM.EXPERT_WEIGHTS_NORM` (bool).
pub const EXPERT_WEIGHTS_NORM: &str = "{arch}.expert_weights_norm";
/// `Keys.LLM.EXPERT_GATING_FUNC` (u32, `ExpertGatingFuncType`).
pub const EXPERT_GATING_FUNC: &str = "{arch}.expert_gating_func";

// ---- Keys.Attention -------------------------------------------------------------------------------------------
/// `Keys.Attention.HEAD_COUNT` (u32; `num_attention_heads`).
pub const ATTENTION_HEAD_COUNT: &str = "{arch}.attention.head_count";
/// `Keys.Attention.HEAD_COUNT_KV` (u32; `num_key_value_heads`).
pub const ATTENTION_HEAD_COUNT_KV: &str = "{arch}.attention.head_count_kv";
/// `Keys.Attention.KEY_LENGTH` (u32; `head_dim`).
pub const ATTENTION_KEY_LENGTH: &str = "{arch}.attention.key_length";
/// `Keys.Attention.VALUE_LENGTH` (u32; `head_dim`).
pub const ATTENTION_VALUE_LENGTH: &str = "{arch}.attention.value_length";
/// `Keys.Attention.LAYERNORM_EPS` (f32).
pub const ATTENTION_LAYERNORM_EPS: &str = "{arch}.attention.layer_norm_epsilon";
/// `Keys.Attention.LAYERNORM_RMS_EPS` (f32; `rms_norm_eps`).
pub const ATTENTION_LAYERNORM_RMS_EPS: &str = "{arch}.attention.layer_norm_rms_epsilon";
/// `Keys.Attention.CAUSAL` (bool; written only when false).
pub const ATTENTION_CAUSAL: &str = "{arch}.attention.causal";
/// `Keys.Attention.SLIDING_WINDOW` (u32; `sliding_window`).
pub const ATTENTION_SLIDING_WINDOW: &str = "{arch}.attention.sliding_window";
/// `Keys.Attention.SLIDING_WINDOW_PATTERN` (u32 period, or array of bool: one per layer, true = sliding).
pub const ATTENTION_SLIDING_WINDOW_PATTERN: &str = "{arch}.attention.sliding_window_pattern";
/// `Keys.Attention.SCALE` (f32).
pub const ATTENTION_SCALE: &str = "{arch}.attention.scale";

// ---- Keys.Rope ------------------------------------------------------------------------------------------------
/// `Keys.Rope.DIMENSION_COUNT` (u32).
pub const ROPE_DIMENSION_COUNT: &str = "{arch}.rope.dimension_count";
/// `Keys.Rope.FREQ_BASE` (f32; `rope_theta`).
pub const ROPE_FREQ_BASE: &str = "{arch}.rope.freq_base";
/// `Keys.Rope.SCALING_TYPE` (string: "none", "linear", "yarn", "longrope" — `RopeScalingType`).
pub const ROPE_SCALING_TYPE: &str = "{arch}.rope.scaling.type";
/// `Keys.Rope.SCALING_FACTOR` (f32).
pub const ROPE_SCALING_FACTOR: &str = "{arch}.rope.scaling.factor";
/// `Keys.Rope.SCALING_ATTN_FACTOR` (f32).
pub const ROPE_SCALING_ATTN_FACTOR: &str = "{arch}.rope.scaling.attn_factor";
/// `Keys.Rope.SCALING_ORIG_CTX_LEN` (u32; `original_max_position_embeddings`).
pub const ROPE_SCALING_ORIG_CTX_LEN: &str = "{arch}.rope.scaling.original_context_length";
/// `Keys.Rope.SCALING_FINETUNED` (bool).
pub const ROPE_SCALING_FINETUNED: &str = "{arch}.rope.scaling.finetuned";
/// `Keys.Rope.SCALING_YARN_LOG_MUL` (f32).
pub const ROPE_SCALING_YARN_LOG_MUL: &str = "{arch}.rope.scaling.yarn_log_multiplier";
/// `Keys.Rope.SCALING_YARN_EXT_FACTOR` (f32; `extrapolation_factor`).
pub const ROPE_SCALING_YARN_EXT_FACTOR: &str = "{arch}.rope.scaling.yarn_ext_factor";
/// `Keys.Rope.SCALING_YARN_ATTN_FACTOR` (f32; `attention_factor` / `attn_factor`).
pub const ROPE_SCALING_YARN_ATTN_FACTOR: &str = "{arch}.rope.scaling.yarn_attn_factor";
/// `Keys.Rope.SCALING_YARN_BETA_FAST` (f32; `beta_fast`).
pub const ROPE_SCALING_YARN_BETA_FAST: &str = "{arch}.rope.scaling.yarn_beta_fast";
/// `Keys.Rope.SCALING_YARN_BETA_SLOW` (f32; `beta_slow`).
pub const ROPE_SCALING_YARN_BETA_SLOW: &str = "{arch}.rope.scaling.yarn_beta_slow";

// ---- Keys.Split -----------------------------------------------------------------------------------------------
/// `Keys.Split.LLM_KV_SPLIT_NO` (u16).
pub const SPLIT_NO: &str = "split.no";
/// `Keys.Split.LLM_KV_SPLIT_COUNT` (u16).
pub const SPLIT_COUNT: &str = "split.count";
/// `Keys.Split.LLM_KV_SPLIT_TENSORS_COUNT` (i32).
pub const SPLIT_TENSORS_COUNT: &str = "split.tensors.count";

// ---- Keys.Tokenizer -------------------------------------------------------------------------------------------
/// `Keys.Tokenizer.MODEL` (string; "gpt2" for gpt-oss).
pub const TOKENIZER_GGML_MODEL: &str = "tokenizer.ggml.model";
/// `Keys.Tokenizer.PRE` (string; "gpt-4o" for o200k).
pub const TOKENIZER_GGML_PRE: &str = "tokenizer.ggml.pre";
/// `Keys.Tokenizer.LIST` (array of strings).
pub const TOKENIZER_GGML_TOKENS: &str = "tokenizer.ggml.tokens";
/// `Keys.Tokenizer.TOKEN_TYPE` (array of i32, `TokenType`).
pub const TOKENIZER_GGML_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
/// `Keys.Tokenizer.TOKEN_TYPE_COUNT` (u32).
pub const TOKENIZER_GGML_TOKEN_TYPE_COUNT: &str = "tokenizer.ggml.token_type_count";
/// `Keys.Tokenizer.SCORES` (array of f32).
pub const TOKENIZER_GGML_SCORES: &str = "tokenizer.ggml.scores";
/// `Keys.Tokenizer.MERGES` (array of strings, "a b").
pub const TOKENIZER_GGML_MERGES: &str = "tokenizer.ggml.merges";
/// `Keys.Tokenizer.BOS_ID` (u32).
pub const TOKENIZER_GGML_BOS_TOKEN_ID: &str = "tokenizer.ggml.bos_token_id";
/// `Keys.Tokenizer.EOS_ID` (u32).
pub const TOKENIZER_GGML_EOS_TOKEN_ID: &str = "tokenizer.ggml.eos_token_id";
/// `Keys.Tokenizer.EOT_ID` (u32).
pub const TOKENIZER_GGML_EOT_TOKEN_ID: &str = "tokenizer.ggml.eot_token_id";
/// `Keys.Tokenizer.EOM_ID` (u32).
pub const TOKENIZER_GGML_EOM_TOKEN_ID: &str = "tokenizer.ggml.eom_token_id";
/// `Keys.Tokenizer.UNK_ID` (u32).
pub const TOKENIZER_GGML_UNKNOWN_TOKEN_ID: &str = "tokenizer.ggml.unknown_token_id";
/// `Keys.Tokenizer.SEP_ID` (u32; the misspelling is llama.cpp's).
pub const TOKENIZER_GGML_SEPERATOR_TOKEN_ID: &str = "tokenizer.ggml.seperator_token_id";
/// `Keys.Tokenizer.PAD_ID` (u32).
pub const TOKENIZER_GGML_PADDING_TOKEN_ID: &str = "tokenizer.ggml.padding_token_id";
/// `Keys.Tokenizer.MASK_ID` (u32).
pub const TOKENIZER_GGML_MASK_TOKEN_ID: &str = "tokenizer.ggml.mask_token_id";
/// `Keys.Tokenizer.ADD_BOS` (bool).
pub const TOKENIZER_GGML_ADD_BOS_TOKEN: &str = "tokenizer.ggml.add_bos_token";
/// `Keys.Tokenizer.ADD_EOS` (bool).
pub const TOKENIZER_GGML_ADD_EOS_TOKEN: &str = "tokenizer.ggml.add_eos_token";
/// `Keys.Tokenizer.ADD_SEP` (bool).
pub const TOKENIZER_GGML_ADD_SEP_TOKEN: &str = "tokenizer.ggml.add_sep_token";
/// `Keys.Tokenizer.ADD_PREFIX` (bool).
pub const TOKENIZER_GGML_ADD_SPACE_PREFIX: &str = "tokenizer.ggml.add_space_prefix";
/// `Keys.Tokenizer.NORMALIZER_LOWERCASE` (bool; from tokenizer.json's normalizer, via SpecialVocab).
pub const TOKENIZER_GGML_NORMALIZER_LOWERCASE: &str = "tokenizer.ggml.normalizer.lowercase";
/// `Keys.Tokenizer.NORMALIZER_STRIP_ACCENTS` (bool).
pub const TOKENIZER_GGML_NORMALIZER_STRIP_ACCENTS: &str = "tokenizer.ggml.normalizer.strip_accents";
/// `Keys.Tokenizer.PRECOMPILED_CHARSMAP` (array of u8).
pub const TOKENIZER_GGML_PRECOMPILED_CHARSMAP: &str = "tokenizer.ggml.precompiled_charsmap";
/// `Keys.Tokenizer.REMOVE_EXTRA_WS` (bool).
pub const TOKENIZER_GGML_REMOVE_EXTRA_WHITESPACES: &str = "tokenizer.ggml.remove_extra_whitespaces";
/// `Keys.Tokenizer.FIM_PRE_ID` (u32).
pub const TOKENIZER_GGML_FIM_PRE_TOKEN_ID: &str = "tokenizer.ggml.fim_pre_token_id";
/// `Keys.Tokenizer.FIM_SUF_ID` (u32).
pub const TOKENIZER_GGML_FIM_SUF_TOKEN_ID: &str = "tokenizer.ggml.fim_suf_token_id";
/// `Keys.Tokenizer.FIM_MID_ID` (u32).
pub const TOKENIZER_GGML_FIM_MID_TOKEN_ID: &str = "tokenizer.ggml.fim_mid_token_id";
/// `Keys.Tokenizer.FIM_PAD_ID` (u32).
pub const TOKENIZER_GGML_FIM_PAD_TOKEN_ID: &str = "tokenizer.ggml.fim_pad_token_id";
/// `Keys.Tokenizer.FIM_REP_ID` (u32).
pub const TOKENIZER_GGML_FIM_REP_TOKEN_ID: &str = "tokenizer.ggml.fim_rep_token_id";
/// `Keys.Tokenizer.FIM_SEP_ID` (u32).
pub const TOKENIZER_GGML_FIM_SEP_TOKEN_ID: &str = "tokenizer.ggml.fim_sep_token_id";
/// `Keys.Tokenizer.HF_JSON` (string).
pub const TOKENIZER_HUGGINGFACE_JSON: &str = "tokenizer.huggingface.json";
/// `Keys.Tokenizer.CHAT_TEMPLATE` (string).
pub const TOKENIZER_CHAT_TEMPLATE: &str = "tokenizer.chat_template";
/// `Keys.Tokenizer.CHAT_TEMPLATE_N` (string); `{name}` is the template's name, expand with `str::replace`.
pub const TOKENIZER_CHAT_TEMPLATE_N: &str = "tokenizer.chat_template.{name}";
/// `Keys.Tokenizer.CHAT_TEMPLATES` (array of strings: the names).
pub const TOKENIZER_CHAT_TEMPLATES: &str = "tokenizer.chat_templates";

/// `LlamaFileType`: the value of `general.file_type`, naming the type most weights are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum LlamaFileType {
    AllF32 = 0,
    MostlyF16 = 1,
    MostlyQ4_0 = 2,
    MostlyQ4_1 = 3,
    MostlyQ8_0 = 7,
    MostlyQ5_0 = 8,
    MostlyQ5_1 = 9,
    MostlyBF16 = 32,
    MostlyMxfp4Moe = 38,
}

impl LlamaFileType {
    const ALL: [LlamaFileType; 9] = [
        LlamaFileType::AllF32,
        LlamaFileType::MostlyF16,
        LlamaFileType::MostlyQ4_0,
        LlamaFileType::MostlyQ4_1,
        LlamaFileType::MostlyQ8_0,
        LlamaFileType::MostlyQ5_0,
        LlamaFileType::MostlyQ5_1,
        LlamaFileType::MostlyBF16,
        LlamaFileType::MostlyMxfp4Moe,
    ];

    pub fn id(self) -> u32 {
        self as u32
    }

    /// The file type for an id; `None` for ids gpt-oss never uses (the k-quants, i-quants, ...).
    pub fn from_id(id: u32) -> Option<LlamaFileType> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// gguf-py's enum member name ("MOSTLY_MXFP4_MOE"), for inspect output.
    pub fn name(self) -> &'static str {
        match self {
            LlamaFileType::AllF32 => "ALL_F32",
            LlamaFileType::MostlyF16 => "MOSTLY_F16",
            LlamaFileType::MostlyQ4_0 => "MOSTLY_Q4_0",
            LlamaFileType::MostlyQ4_1 => "MOSTLY_Q4_1",
            LlamaFileType::MostlyQ8_0 => "MOSTLY_Q8_0",
            LlamaFileType::MostlyQ5_0 => "MOSTLY_Q5_0",
            LlamaFileType::MostlyQ5_1 => "MOSTLY_Q5_1",
            LlamaFileType::MostlyBF16 => "MOSTLY_BF16",
            LlamaFileType::MostlyMxfp4Moe => "MOSTLY_MXFP4_MOE",
        }
    }
}

/// `TokenType`: values of `tokenizer.ggml.token_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum TokenType {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}

/// `RopeScalingType.YARN.value`: the string stored under [`ROPE_SCALING_TYPE`] for YaRN.
pub const ROPE_SCALING_TYPE_YARN: &str = "yarn";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_expands_arch() {
        assert_eq!(key(LLM_BLOCK_COUNT, ARCH_GPT_OSS), "gpt-oss.block_count");
        assert_eq!(
            key(ATTENTION_SLIDING_WINDOW, "gpt-oss"),
            "gpt-oss.attention.sliding_window"
        );
        assert_eq!(key(GENERAL_ARCHITECTURE, "x"), "general.architecture");
    }

    #[test]
    fn value_type_ids_round_trip() {
        for id in 0..13 {
            let t = GgufValueType::from_u32(id).unwrap();
            assert_eq!(t as u32, id);
        }
        assert_eq!(GgufValueType::from_u32(13), None);
    }

    #[test]
    fn file_type_ids() {
        assert_eq!(LlamaFileType::MostlyMxfp4Moe.id(), 38);
        assert_eq!(LlamaFileType::from_id(32), Some(LlamaFileType::MostlyBF16));
        assert_eq!(LlamaFileType::from_id(10), None);
    }
}
