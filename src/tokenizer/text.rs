//! Text -> token ids, for `perplexity` and `verify-parity --text`, from whichever vocabulary a checkpoint has.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};

use super::bpe::ByteLevelBpe;
use super::vocab::GgufVocab;

/// A tokenizer for turning text into the ids a model was trained on.
pub enum TextTokenizer {
    /// A checkpoint's tokenizer.json through the `tokenizers` crate (bit-exact with the Python library).
    HuggingFace {
        tokenizer: Box<tokenizers::Tokenizer>,
        /// the same tokenizer with special-token parsing off, made on first use
        plain: OnceLock<Box<tokenizers::Tokenizer>>,
    },
    /// A GGUF file's vocabulary (tokens + merges + pre-tokenizer), byte-level BPE.
    Gguf(Box<ByteLevelBpe>),
    /// tiktoken-rs's o200k_harmony, for checkpoints without tokenizer.json.
    O200kHarmony(Box<tiktoken_rs::CoreBPE>),
}

impl TextTokenizer {
    pub fn from_tokenizer_json(path: &Path) -> Result<TextTokenizer> {
        let bytes = crate::checkpoint::read_input(path)?;
        let (tokenizer, tj) =
            super::validate::load_tokenizer_json(&bytes, &path.display().to_string())?;
        super::validate::validate_tokenizer_json(
            &tj,
            &tokenizer,
            None,
            &path.display().to_string(),
        )?;
        Ok(TextTokenizer::HuggingFace {
            tokenizer: Box::new(tokenizer),
            plain: OnceLock::new(),
        })
    }

    pub fn from_gguf_vocab(vocab: &GgufVocab) -> Result<TextTokenizer> {
        Ok(TextTokenizer::Gguf(Box::new(ByteLevelBpe::from_vocab(
            vocab,
        )?)))
    }

    pub fn o200k_harmony() -> Result<TextTokenizer> {
        let bpe = tiktoken_rs::o200k_harmony().context("loading tiktoken-rs's o200k_harmony")?;
        Ok(TextTokenizer::O200kHarmony(Box::new(bpe)))
    }

    /// A checkpoint folder's tokenizer.json; for OpenAI's `original/` folder (which ships none) the one of the
    /// Hugging Face folder around it, as published repositories nest them; else o200k_harmony.
    pub fn for_checkpoint_dir(dir: &Path) -> Result<TextTokenizer> {
        let own = dir.join("tokenizer.json");
        let around = dir
            .file_name()
            .filter(|n| *n == "original")
            .and_then(|_| dir.parent())
            .map(|p| p.join("tokenizer.json"));
        match [Some(own), around]
            .into_iter()
            .flatten()
            .find(|p| p.is_file())
        {
            Some(tj) => Self::from_tokenizer_json(&tj),
            None => Self::o200k_harmony(),
        }
    }

    /// The tokenizer of any checkpoint path ossify opens: a GGUF file's vocabulary, or for a folder as
    /// [`TextTokenizer::for_checkpoint_dir`].
    pub fn for_checkpoint(path: &Path) -> Result<TextTokenizer> {
        if path.is_dir() {
            Self::for_checkpoint_dir(path)
        } else {
            let vocab = GgufVocab::from_gguf_path(path)?;
            Self::from_gguf_vocab(&vocab).with_context(|| {
                format!(
                    "{}: building a tokenizer from its vocabulary",
                    path.display()
                )
            })
        }
    }

    /// Which kind this is, for reports.
    pub fn describe(&self) -> &'static str {
        match self {
            TextTokenizer::HuggingFace { .. } => "tokenizer.json",
            TextTokenizer::Gguf(_) => "GGUF vocabulary",
            TextTokenizer::O200kHarmony(_) => "o200k_harmony (tiktoken-rs)",
        }
    }

    /// Token ids for `text`, with no BOS/EOS added (gpt-oss adds none). With `parse_special`, special tokens
    /// written in the text (`<|start|>`) become their ids; without, they are tokenized as plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        match self {
            TextTokenizer::HuggingFace { tokenizer, plain } => {
                let tok = if parse_special {
                    tokenizer.as_ref()
                } else {
                    plain.get_or_init(|| {
                        let mut t = tokenizer.clone();
                        t.set_encode_special_tokens(true);
                        t
                    })
                };
                let enc = tok
                    .encode(text, false)
                    .map_err(|e| anyhow!("tokenizing text: {e}"))?;
                Ok(enc.get_ids().to_vec())
            }
            TextTokenizer::Gguf(bpe) => bpe.encode(text, parse_special),
            TextTokenizer::O200kHarmony(bpe) => Ok(if parse_special {
                bpe.encode_with_special_tokens(text)
            } else {
                bpe.encode_ordinary(text)
            }),
        }
    }

    /// The bytes of one token as the model sees them (a byte-level token may be part of a UTF-8 character):
    /// what `llama-tokenize` prints as a token's piece.
    pub fn piece_bytes(&self, id: u32) -> Result<Vec<u8>> {
        match self {
            TextTokenizer::HuggingFace { tokenizer, .. } => {
                let tok = tokenizer.id_to_token(id).ok_or_else(|| {
                    anyhow!(
                        "token id {id} is outside the vocabulary of {} tokens",
                        tokenizer.get_vocab_size(true)
                    )
                })?;
                if tokenizer.get_added_tokens_decoder().contains_key(&id) {
                    return Ok(tok.into_bytes());
                }
                // a byte-level token: its chars stand for bytes (GPT-2's alphabet)
                let table = super::bpe::bytes_to_unicode();
                Ok(tok
                    .chars()
                    .map(|c| match table.iter().position(|&t| t == c) {
                        Some(b) => vec![b as u8],
                        None => c.to_string().into_bytes(),
                    })
                    .collect::<Vec<_>>()
                    .concat())
            }
            TextTokenizer::Gguf(bpe) => bpe.decode_bytes(&[id]),
            TextTokenizer::O200kHarmony(bpe) => bpe
                .decode_bytes(&[id])
                .map_err(|e| anyhow!("decoding token id {id}: {e:?}")),
        }
    }

    /// Token ids for `text` with special tokens always read as text, whatever the vocabulary's token types
    /// say (tiktoken's `encode_ordinary`, what openai-harmony does with message text).
    pub fn encode_ordinary(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            TextTokenizer::Gguf(bpe) => bpe.encode_ordinary_text(text),
            _ => self.encode(text, false),
        }
    }

    /// Text of `ids` (invalid UTF-8, as a cut multi-byte character, becomes U+FFFD); special tokens as their
    /// text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            TextTokenizer::HuggingFace { tokenizer, .. } => tokenizer
                .decode(ids, false)
                .map_err(|e| anyhow!("decoding token ids: {e}")),
            TextTokenizer::Gguf(bpe) => {
                Ok(String::from_utf8_lossy(&bpe.decode_bytes(ids)?).into_owned())
            }
            TextTokenizer::O200kHarmony(bpe) => {
                let bytes = bpe
                    .decode_bytes(ids)
                    .map_err(|e| anyhow!("decoding token ids: {e:?}"))?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
        }
    }
}
