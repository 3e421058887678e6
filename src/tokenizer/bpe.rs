//! Byte-level BPE over a GGUF vocabulary (tokens + merges + the pre-tokenizer regex), the way llama.cpp's
//! `llm_tokenizer_bpe` and Hugging Face's byte-level BPE tokenize: split the text with the pre-tokenizer regex,
//! map each piece's bytes to GPT-2's printable byte alphabet, then repeatedly apply the lowest-ranked merge
//! (leftmost on ties) and look the resulting symbols up in the vocabulary.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};

use super::pre::{compile, pre_regex};
use super::vocab::{token_type_from_i32, GgufVocab, TokenType};

/// GPT-2's byte -> printable char table (`bytes_to_unicode` in GPT-2 / transformers / llama.cpp's unicode.cpp).
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(b)
        } else {
            n += 1;
            255 + n
        };
        // all codes are below 0x200, always valid scalar values
        table[usize::from(b)] = char::from_u32(code).unwrap_or('\u{FFFD}');
    }
    table
}

/// Bytes -> the byte-level string a tokenizer.json / GGUF vocabulary stores.
pub fn bytes_to_token_string(bytes: &[u8], table: &[char; 256]) -> String {
    bytes.iter().map(|&b| table[usize::from(b)]).collect()
}

/// A byte-level BPE tokenizer built from a GGUF vocabulary.
pub struct ByteLevelBpe {
    regex: fancy_regex::Regex,
    token_ids: HashMap<String, u32>,
    /// "left right" (the merge as the GGUF stores it) -> rank; looked up with a reused buffer
    merge_ranks: HashMap<String, u32>,
    byte_chars: [char; 256],
    /// control tokens (matched only when asked) and user-defined tokens (always matched), as llama.cpp does
    control: Vec<(String, u32)>,
    user_defined: Vec<(String, u32)>,
}

impl ByteLevelBpe {
    pub fn from_vocab(vocab: &GgufVocab) -> Result<ByteLevelBpe> {
        if vocab.model != "gpt2" {
            bail!(
                "tokenizer model {:?} is not byte-level BPE (\"gpt2\")",
                vocab.model
            );
        }
        if vocab.tokens.len() != vocab.token_types.len() {
            bail!(
                "{} tokens but {} token types",
                vocab.tokens.len(),
                vocab.token_types.len()
            );
        }
        let regex = compile(pre_regex(&vocab.pre)?)?;
        let mut token_ids = HashMap::with_capacity(vocab.tokens.len());
        let mut control = Vec::new();
        let mut user_defined = Vec::new();
        for (id, (tok, &ty)) in vocab.tokens.iter().zip(&vocab.token_types).enumerate() {
            let id = u32::try_from(id).map_err(|_| anyhow!("vocabulary larger than u32 ids"))?;
            match token_type_from_i32(ty) {
                Some(TokenType::Control) => control.push((tok.clone(), id)),
                Some(TokenType::UserDefined) => user_defined.push((tok.clone(), id)),
                Some(TokenType::Unused) => continue,
                _ => {}
            }
            // first id wins for duplicate strings, as llama.cpp's token_to_id map keeps the first insert
            token_ids.entry(tok.clone()).or_insert(id);
        }
        let mut merge_ranks = HashMap::with_capacity(vocab.merges.len());
        for (rank, m) in vocab.merges.iter().enumerate() {
            // llama.cpp splits at the first space after the first character; a merge without one is corrupt
            if !m.char_indices().skip(1).any(|(_, c)| c == ' ') {
                bail!("merge {rank} {m:?} has no space separating its two parts");
            }
            let rank = u32::try_from(rank).map_err(|_| anyhow!("too many merges"))?;
            merge_ranks.entry(m.clone()).or_insert(rank);
        }
        Ok(ByteLevelBpe {
            regex,
            token_ids,
            merge_ranks,
            byte_chars: bytes_to_unicode(),
            control,
            user_defined,
        })
    }

    /// Token ids for `text`. Control tokens written in the text (`<|start|>`) become their ids only with
    /// `parse_special`; otherwise they are tokenized as plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        for part in self.split_special(text, parse_special) {
            match part {
                Part::Special(id) => out.push(id),
                Part::Text(t) => self.encode_ordinary(t, &mut out)?,
            }
        }
        Ok(out)
    }

    fn split_special<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Part<'t>> {
        let mut hits: Vec<(usize, usize, u32)> = Vec::new();
        let specials = self.user_defined.iter().chain(if parse_special {
            &self.control[..]
        } else {
            &[]
        });
        for (s, id) in specials {
            if s.is_empty() {
                continue;
            }
            hits.extend(
                text.match_indices(s.as_str())
                    .map(|(at, m)| (at, m.len(), *id)),
            );
        }
        // leftmost first, longest first at the same place
        hits.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut parts = Vec::new();
        let mut pos = 0;
        for (at, len, id) in hits {
            if at < pos {
                continue;
            }
            if at > pos {
                parts.push(Part::Text(&text[pos..at]));
            }
            parts.push(Part::Special(id));
            pos = at + len;
        }
        if pos < text.len() {
            parts.push(Part::Text(&text[pos..]));
        }
        parts
    }

    fn encode_ordinary(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        let mut last = 0;
        for m in self.regex.find_iter(text) {
            let m = m.map_err(|e| anyhow!("pre-tokenizer regex failed: {e}"))?;
            if m.start() > last {
                self.encode_piece(&text[last..m.start()], out)?;
            }
            self.encode_piece(m.as_str(), out)?;
            last = m.end();
        }
        if last < text.len() {
            self.encode_piece(&text[last..], out)?;
        }
        Ok(())
    }

    fn encode_piece(&self, piece: &str, out: &mut Vec<u32>) -> Result<()> {
        let mut symbols: Vec<String> = piece
            .bytes()
            .map(|b| self.byte_chars[usize::from(b)].to_string())
            .collect();
        let mut key = String::new();
        loop {
            let mut best: Option<(u32, usize)> = None;
            for pair in symbols.windows(2).enumerate() {
                let (i, [l, r]) = pair else { continue };
                key.clear();
                key.push_str(l);
                key.push(' ');
                key.push_str(r);
                if let Some(&rank) = self.merge_ranks.get(key.as_str()) {
                    if best.map_or(true, |(r, _)| rank < r) {
                        best = Some((rank, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            let right = symbols.remove(i + 1);
            symbols[i].push_str(&right);
        }
        for s in symbols {
            match self.token_ids.get(&s) {
                Some(&id) => out.push(id),
                None => {
                    // a symbol the vocabulary lacks: fall back to its single bytes, as llama.cpp does
                    for c in s.chars() {
                        let id = self.token_ids.get(&c.to_string()).ok_or_else(|| {
                            anyhow!("the vocabulary has no token for byte symbol {c:?}")
                        })?;
                        out.push(*id);
                    }
                }
            }
        }
        Ok(())
    }
}

enum Part<'t> {
    Special(u32),
    Text(&'t str),
}
