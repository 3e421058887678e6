//! Which pre-tokenizer a vocabulary uses, decided the way llama.cpp's converter decides it.
//!
//! llama.cpp (`conversion/base.py`, `get_vocab_base_pre`) encodes a fixed test string, hashes the token ids and
//! looks the hash up in a table it regenerates from known models. We reproduce that with the `tokenizers` crate,
//! so the real gpt-oss `tokenizer.json` gives "gpt-4o" exactly as llama.cpp does. Tiny test vocabularies hash to
//! nothing llama.cpp knows (it would refuse them); for those we also accept tokenizer.json's pre-tokenizer when
//! it splits with o200k's regex, and call that "gpt-4o" too. That is our choice, not llama.cpp's: it is what the
//! hash would say for any vocabulary trained with that split, and it keeps small test models convertible.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::pre_hashes::LLAMA_CPP_CHKHSH;

/// The test string llama.cpp hashes (`chktxt` in conversion/base.py and convert_hf_to_gguf_update.py).
pub const CHKTXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u{200d}🌫\u{fe0f} (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// o200k's split regex, as tiktoken (o200k_base) and the gpt-oss tokenizer.json spell it (also quoted as the
/// "original regex from tokenizer.json" for LLAMA_VOCAB_PRE_TYPE_GPT4O in llama.cpp's src/llama-vocab.cpp).
pub const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

/// The pre-tokenizer name llama.cpp writes for o200k vocabularies (`tokenizer.ggml.pre`).
pub const PRE_GPT4O: &str = "gpt-4o";

/// sha256 of Python's `str(ids)` ("[1, 2, 3]"), as llama.cpp hashes `tokenizer.encode(chktxt)`.
pub fn chkhsh(ids: &[u32]) -> String {
    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let text = format!("[{}]", list.join(", "));
    hex(&Sha256::digest(text.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name llama.cpp's converter gives a chkhsh, if it knows it (the last listed, as its `if` chain does).
pub fn llama_cpp_pre_name(chkhsh: &str) -> Option<&'static str> {
    LLAMA_CPP_CHKHSH
        .iter()
        .rev()
        .find(|(h, _)| *h == chkhsh)
        .map(|(_, name)| *name)
}

/// Decide `tokenizer.ggml.pre` for a tokenizer.json: the chkhsh lookup first, then o200k's split regex.
pub fn detect_pre(
    tokenizer: &tokenizers::Tokenizer,
    tokenizer_json: &serde_json::Value,
    origin: &str,
) -> Result<String> {
    let encoding = tokenizer
        .encode(CHKTXT, true)
        .map_err(|e| anyhow::anyhow!("{origin}: encoding llama.cpp's chktxt failed: {e}"))?;
    let hash = chkhsh(encoding.get_ids());
    if let Some(name) = llama_cpp_pre_name(&hash) {
        return Ok((*name).to_string());
    }
    if split_regexes(tokenizer_json.get("pre_tokenizer"))
        .iter()
        .any(|r| r == O200K_PATTERN)
    {
        return Ok(PRE_GPT4O.to_string());
    }
    bail!(
        "{origin}: llama.cpp would not recognise this BPE pre-tokenizer (chkhsh {hash} is not in its table, and \
         the pre-tokenizer does not split with o200k's regex)"
    )
}

/// Every `Split` regex in a tokenizer.json pre_tokenizer (a single one or nested in `Sequence`s).
fn split_regexes(pre: Option<&serde_json::Value>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = pre.into_iter().collect();
    while let Some(v) = stack.pop() {
        match v.get("type").and_then(|t| t.as_str()) {
            Some("Sequence") => {
                if let Some(items) = v.get("pretokenizers").and_then(|p| p.as_array()) {
                    stack.extend(items.iter());
                }
            }
            Some("Split") => {
                if let Some(r) = v
                    .get("pattern")
                    .and_then(|p| p.get("Regex"))
                    .and_then(|r| r.as_str())
                {
                    out.push(r.to_string());
                }
            }
            _ => {}
        }
    }
    out
}

/// The split regex llama.cpp uses for a `tokenizer.ggml.pre` name (only the ones ossify supports).
pub fn pre_regex(pre: &str) -> Result<&'static str> {
    match pre {
        PRE_GPT4O => Ok(O200K_PATTERN),
        other => bail!(
            "pre-tokenizer {other:?} is not supported for tokenizing text (only {PRE_GPT4O:?})"
        ),
    }
}

pub(crate) fn compile(pattern: &str) -> Result<fancy_regex::Regex> {
    fancy_regex::Regex::new(pattern).context("compiling the pre-tokenizer regex")
}
