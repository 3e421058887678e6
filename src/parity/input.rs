//! What `verify-parity` and `perplexity` evaluate: token files, text through the checkpoint's tokenizer, the
//! built-in default sequence, and the model behind a checkpoint.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::logits::{LogitModel, LogitSession, ResidualTrace, Sequences};
use crate::checkpoint::Checkpoint;
use crate::gpt_oss::{ForwardOptions, Model};
use crate::tokenizer::{GgufVocab, TextTokenizer};

/// Reads token ids from JSON: `[1, 2, 3]`, `{"tokens": [..]}`, or `{"sequences": [[..], [..]]}` (the format of
/// golden/reference/tokens.json). `sequence` picks one sequence of several.
pub fn read_tokens(path: &Path, sequence: Option<usize>) -> Result<Sequences> {
    let text = crate::checkpoint::read_input_text(path)?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let ids = |v: &serde_json::Value, what: &str| -> Result<Vec<u32>> {
        let arr = v
            .as_array()
            .with_context(|| format!("{}: {what} is not an array", path.display()))?;
        arr.iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .with_context(|| {
                        format!("{}: {what}[{i}] = {x} is not a token id", path.display())
                    })
            })
            .collect()
    };
    let seqs: Sequences = if v.is_array() {
        vec![ids(&v, "the array")?]
    } else if let Some(t) = v.get("tokens") {
        vec![ids(t, "\"tokens\"")?]
    } else if let Some(s) = v.get("sequences").and_then(|s| s.as_array()) {
        s.iter()
            .enumerate()
            .map(|(k, x)| ids(x, &format!("\"sequences\"[{k}]")))
            .collect::<Result<_>>()?
    } else {
        bail!(
            "{}: expected a JSON array of token ids, {{\"tokens\": [...]}} or {{\"sequences\": [[...], ...]}}",
            path.display()
        );
    };
    match sequence {
        None => Ok(seqs),
        Some(k) => {
            let n = seqs.len();
            let s = seqs.into_iter().nth(k).with_context(|| {
                format!(
                    "{}: --sequence {k} asked, the file holds {n}",
                    path.display()
                )
            })?;
            Ok(vec![s])
        }
    }
}

/// The name reports give the input `verify-parity` scores when given neither `--text` nor `--tokens`.
pub const DEFAULT_INPUT_NAME: &str = "ossify-default-v1";

/// That input: short documents written for ossify (three harmony conversations with reasoning, in the format
/// gpt-oss was trained on, one paragraph of prose, one of code), each a sequence of its own, tokenized with the
/// source's tokenizer (special tokens parsed, as a chat client's prompt is).
pub const DEFAULT_INPUT: [(&str, &str); 5] = [
    (
        "conversation_math",
        include_str!("default_input/conversation_math.txt"),
    ),
    (
        "conversation_code",
        include_str!("default_input/conversation_code.txt"),
    ),
    (
        "conversation_multilingual",
        include_str!("default_input/conversation_multilingual.txt"),
    ),
    ("prose", include_str!("default_input/prose.txt")),
    ("code", include_str!("default_input/code.txt")),
];

/// [`DEFAULT_INPUT`] as token ids of `ck`'s tokenizer; an id past the model's vocabulary is an error naming
/// the document.
pub fn default_input(ck: &Checkpoint) -> Result<Sequences> {
    let tok = text_tokenizer(ck)?;
    DEFAULT_INPUT
        .iter()
        .map(|(name, text)| {
            let ids = tok.encode(text, true)?;
            if let Some(bad) = ids.iter().find(|&&i| i as usize >= ck.config.vocab_size) {
                bail!(
                    "{}: its tokenizer gives id {bad} for the default input '{name}', past vocab_size {}",
                    ck.path.display(),
                    ck.config.vocab_size
                );
            }
            Ok(ids)
        })
        .collect()
}

/// The checkpoint's tokenizer: its folder's tokenizer.json (HF; for `original/`, the parent's), the GGUF
/// file's own vocabulary (`tokenizer.ggml.*`), or tiktoken's o200k_harmony for a folder without one.
pub fn text_tokenizer(ck: &Checkpoint) -> Result<TextTokenizer> {
    if let Some(dir) = &ck.tokenizer_dir {
        return TextTokenizer::for_checkpoint_dir(dir);
    }
    if let Some(g) = ck.gguf() {
        let strings = |k: &str| -> Result<Vec<String>> {
            Ok(g.get(k)
                .and_then(|v| v.as_string_array())
                .with_context(|| format!("{}: no string array '{k}'", ck.path.display()))?
                .to_vec())
        };
        let text = |k: &str| g.get(k).and_then(|v| v.as_str()).map(str::to_string);
        let tokens = strings("tokenizer.ggml.tokens")?;
        let token_types = match g
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_i32_array())
        {
            Some(t) => t.to_vec(),
            None => vec![1; tokens.len()],
        };
        let vocab = GgufVocab {
            model: text("tokenizer.ggml.model").unwrap_or_default(),
            pre: text("tokenizer.ggml.pre").unwrap_or_default(),
            merges: strings("tokenizer.ggml.merges")?,
            tokens,
            token_types,
            ..GgufVocab::default()
        };
        return TextTokenizer::from_gguf_vocab(&vocab)
            .with_context(|| format!("{}: the GGUF vocabulary", ck.path.display()));
    }
    TextTokenizer::for_checkpoint_dir(&ck.path)
}

/// Text to token ids with the checkpoint's tokenizer, special tokens in the text read as plain text and none
/// added (llama-perplexity's `common_tokenize(.., add_special = true, parse_special = false)` adds none for
/// gpt-oss, whose vocabulary has no BOS to add).
pub fn tokenize(ck: &Checkpoint, text: &str) -> Result<Vec<u32>> {
    let tok = text_tokenizer(ck)?;
    let ids = tok
        .encode(text, false)
        .with_context(|| format!("{}: tokenizing with {}", ck.path.display(), tok.describe()))?;
    if let Some(bad) = ids.iter().find(|&&t| t as usize >= ck.config.vocab_size) {
        bail!(
            "{}: {} produced id {bad}, outside the model's vocabulary of {}",
            ck.path.display(),
            tok.describe(),
            ck.config.vocab_size
        );
    }
    Ok(ids)
}

/// ossify's forward pass ([`crate::gpt_oss::Model`]) as a [`LogitModel`].
pub struct ForwardModel<'a> {
    model: Model<'a>,
}

impl LogitModel for ForwardModel<'_> {
    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    fn logits(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.model.forward(tokens)
    }

    fn trace(&self, tokens: &[u32]) -> Result<ResidualTrace> {
        let t = self.model.forward_traced(tokens)?;
        Ok(ResidualTrace {
            embeddings: t.embeddings,
            after_attention: t.after_attention,
            after_moe: t.after_moe,
            logits: t.logits,
        })
    }

    fn mode(&self) -> &'static str {
        self.model.options().mode()
    }

    fn device(&self) -> String {
        self.model.device()
    }

    fn session(&self) -> Option<Box<dyn LogitSession + '_>> {
        Some(Box::new(ForwardSession {
            piece: self.model.options().batch_size.max(1),
            session: self.model.session(),
        }))
    }
}

struct ForwardSession<'m, 'a> {
    session: crate::gpt_oss::Session<'m, 'a>,
    piece: usize,
}

impl LogitSession for ForwardSession<'_, '_> {
    fn eval(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        self.session.eval(tokens)
    }

    fn piece_len(&self) -> usize {
        self.piece
    }
}

/// ossify's forward pass over `ck`, sized for sequences of up to `context` tokens (0: grow as needed).
pub fn open_model<'a>(
    ck: &'a Checkpoint,
    yarn_truncate: bool,
    precision: crate::gpt_oss::Precision,
    context: usize,
    device: crate::gpt_oss::Device,
) -> Result<Box<dyn LogitModel + 'a>> {
    let model = Model::new(
        ck,
        ForwardOptions {
            yarn_truncate,
            precision,
            context,
            device,
            ..ForwardOptions::default()
        },
    )
    .with_context(|| format!("{}: preparing the forward pass", ck.path.display()))?;
    Ok(Box::new(ForwardModel { model }))
}
