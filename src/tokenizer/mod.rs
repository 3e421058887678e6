//! Vocabularies and tokenization.
//!
//! - [`GgufVocab`]: the `tokenizer.*` metadata llama.cpp's converter writes for gpt-oss, built from a checkpoint's
//!   tokenizer.json (+ tokenizer_config.json, chat_template.jinja, config.json) or from tiktoken-rs's
//!   o200k_harmony when a checkpoint has no tokenizer.json.
//! - [`GgufVocab::to_metadata`] / [`GgufVocab::from_gguf`]: those keys, in llama.cpp's order and types, to and
//!   from a GGUF file.
//! - [`TextTokenizer`]: text <-> ids from tokenizer.json (the `tokenizers` crate), from a GGUF vocabulary (our
//!   byte-level BPE, [`ByteLevelBpe`]) or from o200k_harmony (tiktoken-rs); [`TextTokenizer::for_checkpoint`]
//!   picks the one a checkpoint path has.
//!
//! Tests pin every piece to llama.cpp's converter, the Python `tokenizers` library and tiktoken
//! (tests/tokenizer_*.rs, fixtures and the script that made them in tests/data/tokenizer/).

mod bpe;
mod gguf_meta;
mod pre;
mod pre_hashes;
mod text;
mod validate;
mod vocab;

pub use bpe::{bytes_to_token_string, bytes_to_unicode, ByteLevelBpe};
pub use gguf_meta::{add_flag_key, special_id_key};
pub use pre::{
    chkhsh, detect_pre, llama_cpp_pre_name, pre_regex, CHKTXT, O200K_PATTERN, PRE_GPT4O,
};
pub use text::TextTokenizer;
pub use validate::validate_tokenizer_json;
pub use vocab::{
    does_token_look_special, tiktoken_ranks, tiktoken_ranks_to_bpe, token_type_from_i32, GgufVocab,
    SpecialToken, TokenType, GPT_OSS_NAMED_SPECIALS, GPT_OSS_VOCAB_SIZE, O200K_BASE_RANKS,
};
