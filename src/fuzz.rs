//! Fuzz target bodies for the model-level readers, in library code so that one body runs under the
//! coverage-guided fuzzer (`fuzz/`, driven by `scripts/fuzz`) and in plain `cargo test` over the committed seeds
//! and every crash reproducer (`tests/fuzz_regressions.rs`). The byte-level readers' bodies (GGUF, safetensors
//! and the shard index) are in `ossify_formats::fuzz`, which also explains the conventions: `Err` is a refusal,
//! a panic or an abort is a bug, multi-file inputs are joined by [`FILE_SEPARATOR`].

use std::path::Path;

use ossify_formats::gguf::{GgufFile, GgufModel};

pub use ossify_formats::fuzz::{split_files, ScratchDir, FILE_SEPARATOR};

use crate::gpt_oss::config::ConfigSource;
use crate::gpt_oss::{metadata, GptOssConfig};
use crate::tokenizer::{ByteLevelBpe, GgufVocab, TextTokenizer};

/// Text every tokenizer that loads is asked to encode (and decode back): plain words, bytes outside ASCII and
/// gpt-oss's special tokens written out.
const SAMPLE_TEXT: &str = "Hello, world! ünïcödé 123\n<|start|>user<|message|>hi<|end|>";

/// config.json → [`GptOssConfig`], read both as transformers' config.json and as OpenAI's original/config.json,
/// each through its validation step. A config that is accepted must survive what ossify then does with it: its
/// GGUF metadata is formed, and the config.json ossify writes for it reads back to an accepted config.
pub fn config_json(data: &[u8]) -> Result<(), String> {
    let json: serde_json::Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    let path = Path::new("config.json");
    let hf = GptOssConfig::from_hf_json(&json, path);
    let original = GptOssConfig::from_original_json(&json, path);
    let mut accepted = 0;
    for (c, source) in [
        (hf, ConfigSource::HfJson),
        (original, ConfigSource::OriginalJson),
    ] {
        let Ok(c) = c else { continue };
        accepted += 1;
        if let Err(e) = c.validate(path, source) {
            panic!("an accepted config fails validate(): {e:#}");
        }
        let _ = metadata::to_gguf(&c, "fuzz", 0);
        let written = c.to_hf_json();
        if let Err(e) = GptOssConfig::from_hf_json(&written, path) {
            panic!(
                "the config.json ossify writes for an accepted config is refused: {e:#}\n{written}"
            );
        }
    }
    if accepted == 0 {
        return Err("refused as either config.json".into());
    }
    Ok(())
}

/// GGUF metadata → [`GptOssConfig`] (`config_from_gguf`, which ends in the same validation step), then the
/// tensor shapes that config implies checked against the file (what opening a GGUF checkpoint does), and the
/// vocabulary in the metadata built into the byte-level BPE tokenizer, which then encodes and decodes a sample.
pub fn gguf_config(data: &[u8]) -> Result<(), String> {
    let path = Path::new("fuzz.gguf");
    let file = GgufFile::from_bytes(data.to_vec()).map_err(|e| e.to_string())?;
    let vocab = GgufVocab::from_gguf(&file);
    let model = GgufModel::from_file(file, path.to_path_buf()).map_err(|e| e.to_string())?;
    let config = metadata::config_from_gguf(&model, path);
    if let Ok(c) = &config {
        if let Err(e) = c.validate(path, ConfigSource::Gguf) {
            panic!("an accepted config fails validate(): {e:#}");
        }
        let _ = crate::checkpoint::validate_gguf_tensors(&model, path, c);
        let _ = metadata::to_gguf(c, "fuzz", 0);
    }
    let tokenizer = vocab.and_then(|v| ByteLevelBpe::from_vocab(&v));
    if let Ok(t) = &tokenizer {
        for parse_special in [false, true] {
            if let Ok(ids) = t.encode(SAMPLE_TEXT, parse_special) {
                let _ = t.decode_bytes(&ids);
            }
        }
    }
    match (config, tokenizer) {
        (Err(e), Err(_)) => Err(format!("{e:#}")),
        _ => Ok(()),
    }
}

/// tokenizer.json → our tokenizer, through its validation step: the GGUF vocabulary ossify builds for a
/// checkpoint folder ([`GgufVocab::from_dir`], with `vocab_size` 544, golden/tiny's), and the text tokenizer
/// ([`TextTokenizer`]) that then encodes and decodes a sample. The input is up to three files joined by
/// [`FILE_SEPARATOR`]: tokenizer.json, tokenizer_config.json, config.json (the last two optional, as in a
/// checkpoint folder; config.json here only supplies special token ids).
pub fn tokenizer_json(data: &[u8]) -> Result<(), String> {
    const VOCAB_SIZE: usize = 544;
    let parts = split_files(data, 3);
    let dir = ScratchDir::new()?;
    let mut tj = None;
    for (part, name) in parts
        .iter()
        .zip(["tokenizer.json", "tokenizer_config.json", "config.json"])
    {
        let p = dir.write(name, part)?;
        tj.get_or_insert(p);
    }
    let tj = tj.ok_or("no file")?;
    let vocab = GgufVocab::from_dir(dir.path(), VOCAB_SIZE);
    if let Ok(v) = &vocab {
        assert_eq!(v.tokens.len(), VOCAB_SIZE, "tokens for every embedding row");
        assert_eq!(v.tokens.len(), v.token_types.len());
        let _ = v.to_metadata();
        if let Ok(t) = ByteLevelBpe::from_vocab(v) {
            if let Ok(ids) = t.encode(SAMPLE_TEXT, true) {
                let _ = t.decode_bytes(&ids);
            }
        }
    }
    let text = TextTokenizer::from_tokenizer_json(&tj);
    if let Ok(t) = &text {
        for parse_special in [false, true] {
            if let Ok(ids) = t.encode(SAMPLE_TEXT, parse_special) {
                let _ = t.decode(&ids);
            }
        }
    }
    match (vocab, text) {
        (Err(e), Err(_)) => Err(format!("{e:#}")),
        _ => Ok(()),
    }
}
