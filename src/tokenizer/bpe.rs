//! Byte-level BPE over a GGUF vocabulary (tokens + merges + the pre-tokenizer regex), the way llama.cpp's
//! `llm_tokenizer_bpe` and Hugging Face's byte-level BPE tokenize: split the text with the pre-tokenizer regex,
//! map each piece's bytes to GPT-2's printable byte alphabet, then repeatedly apply the lowest-ranked merge
//! (leftmost on ties) and look the resulting symbols up in the vocabulary.

use std::collections::HashMap;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use aho_corasick::{AhoCorasick, MatchKind};
use anyhow::{anyhow, bail, Context, Result};

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

/// Control tokens llama.cpp's vocabulary loader turns into user-defined ones for gpt-oss (llama-vocab.cpp).
const LLAMA_CPP_USER_DEFINED: [&str; 4] =
    ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/// A byte-level BPE tokenizer built from a GGUF vocabulary.
pub struct ByteLevelBpe {
    regex: fancy_regex::Regex,
    token_ids: HashMap<String, u32>,
    /// "left right" (the merge as the GGUF stores it) -> rank; looked up with a reused buffer
    merge_ranks: HashMap<String, u32>,
    byte_chars: [char; 256],
    /// for decoding: token strings by id, which ids are byte-level text, and the byte of each byte-level char
    tokens: Vec<String>,
    byte_level: Vec<bool>,
    char_bytes: HashMap<char, u8>,
    /// user-defined tokens (always matched in text) and control tokens (matched only when asked), as llama.cpp
    /// does; leftmost-longest
    user_defined: Specials,
    with_control: Specials,
}

/// Special token strings found in text by one automaton.
struct Specials {
    matcher: Option<AhoCorasick>,
    ids: Vec<u32>,
}

impl Specials {
    fn new(tokens: Vec<(String, u32)>) -> Result<Specials> {
        let tokens: Vec<(String, u32)> =
            tokens.into_iter().filter(|(s, _)| !s.is_empty()).collect();
        if tokens.is_empty() {
            return Ok(Specials {
                matcher: None,
                ids: Vec::new(),
            });
        }
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(tokens.iter().map(|(s, _)| s.as_str()))
            .context("building the special-token matcher")?;
        Ok(Specials {
            matcher: Some(matcher),
            ids: tokens.into_iter().map(|(_, id)| id).collect(),
        })
    }
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
        let has = |t: &str| vocab.tokens.iter().any(|x| x == t);
        let end_is_user_defined = has("<|return|>") && has("<|call|>") && has("<|end|>");
        for (id, (tok, &ty)) in vocab.tokens.iter().zip(&vocab.token_types).enumerate() {
            let id = u32::try_from(id).map_err(|_| anyhow!("vocabulary larger than u32 ids"))?;
            // llama.cpp (llama-vocab.cpp, "quick hack for gpt-oss") makes these control tokens user-defined, so
            // they are read as tokens even when special tokens are not parsed; and <|end|> too when the
            // vocabulary has <|return|> and <|call|> (o200k_harmony)
            let ty = if LLAMA_CPP_USER_DEFINED.contains(&tok.as_str())
                || (end_is_user_defined && tok == "<|end|>")
            {
                TokenType::UserDefined as i32
            } else {
                ty
            };
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
        let with_control = Specials::new(user_defined.iter().cloned().chain(control).collect())?;
        Ok(ByteLevelBpe {
            regex,
            token_ids,
            merge_ranks,
            byte_chars: bytes_to_unicode(),
            tokens: vocab.tokens.clone(),
            byte_level: vocab
                .token_types
                .iter()
                .map(|&t| matches!(token_type_from_i32(t), Some(TokenType::Normal)))
                .collect(),
            char_bytes: bytes_to_unicode()
                .iter()
                .zip(0..=255u8)
                .map(|(&c, b)| (c, b))
                .collect(),
            user_defined: Specials::new(user_defined)?,
            with_control,
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

    /// Token ids for `text` with no special token read at all (tiktoken's `encode_ordinary`): what harmony
    /// does with message text, where llama.cpp's `parse_special = false` still reads its user-defined tokens.
    pub fn encode_ordinary_text(&self, text: &str) -> Result<Vec<u32>> {
        let mut out = Vec::new();
        self.encode_ordinary(text, &mut out)?;
        Ok(out)
    }

    /// The bytes of `ids`: normal tokens decoded from GPT-2's byte alphabet, control and user-defined tokens
    /// as their text.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for &id in ids {
            let i = id as usize;
            let tok = self.tokens.get(i).ok_or_else(|| {
                anyhow!(
                    "token id {id} is outside the vocabulary of {} tokens",
                    self.tokens.len()
                )
            })?;
            if self.byte_level.get(i).copied().unwrap_or(false) {
                for c in tok.chars() {
                    match self.char_bytes.get(&c) {
                        Some(&b) => out.push(b),
                        None => out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes()),
                    }
                }
            } else {
                out.extend_from_slice(tok.as_bytes());
            }
        }
        Ok(out)
    }

    fn split_special<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Part<'t>> {
        let specials = if parse_special {
            &self.with_control
        } else {
            &self.user_defined
        };
        let Some(matcher) = &specials.matcher else {
            return vec![Part::Text(text)];
        };
        let mut parts = Vec::new();
        let mut pos = 0;
        for m in matcher.find_iter(text) {
            let Some(&id) = specials.ids.get(m.pattern().as_usize()) else {
                continue;
            };
            if m.start() > pos {
                parts.push(Part::Text(&text[pos..m.start()]));
            }
            parts.push(Part::Special(id));
            pos = m.end();
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

    /// BPE on one pre-tokenized piece: a doubly linked list of symbols (byte ranges of the byte-level string)
    /// and a heap of candidate merges ordered by (rank, position), so long pieces stay O(n log n). Equal ranks go
    /// leftmost first, as tiktoken, Hugging Face and llama.cpp do.
    fn encode_piece(&self, piece: &str, out: &mut Vec<u32>) -> Result<()> {
        let s: String = piece
            .bytes()
            .map(|b| self.byte_chars[usize::from(b)])
            .collect();
        let mut syms: Vec<Sym> = Vec::with_capacity(piece.len());
        for (i, (at, c)) in s.char_indices().enumerate() {
            syms.push(Sym {
                start: at,
                end: at + c.len_utf8(),
                prev: i.checked_sub(1),
                next: Some(i + 1),
            });
        }
        if let Some(last) = syms.last_mut() {
            last.next = None;
        }
        let mut key = String::new();
        let mut rank_of = |l: &Sym, r: &Sym| -> Option<u32> {
            key.clear();
            key.push_str(&s[l.start..l.end]);
            key.push(' ');
            key.push_str(&s[r.start..r.end]);
            self.merge_ranks.get(key.as_str()).copied()
        };
        // (rank, left index, right symbol's end when pushed): stale entries are skipped on pop
        let mut heap: BinaryHeap<Reverse<(u32, usize, usize)>> = BinaryHeap::new();
        for i in 0..syms.len().saturating_sub(1) {
            if let Some(rank) = rank_of(&syms[i], &syms[i + 1]) {
                heap.push(Reverse((rank, i, syms[i + 1].end)));
            }
        }
        let mut alive = vec![true; syms.len()];
        while let Some(Reverse((_, i, right_end))) = heap.pop() {
            let Some(j) = syms[i].next else { continue };
            if !alive[i] || syms[j].end != right_end {
                continue;
            }
            // merge j into i
            syms[i].end = syms[j].end;
            syms[i].next = syms[j].next;
            alive[j] = false;
            if let Some(n) = syms[j].next {
                syms[n].prev = Some(i);
            }
            if let Some(p) = syms[i].prev {
                if let Some(rank) = rank_of(&syms[p], &syms[i]) {
                    heap.push(Reverse((rank, p, syms[i].end)));
                }
            }
            if let Some(n) = syms[i].next {
                if let Some(rank) = rank_of(&syms[i], &syms[n]) {
                    heap.push(Reverse((rank, i, syms[n].end)));
                }
            }
        }
        let mut cur = if syms.is_empty() { None } else { Some(0) };
        while let Some(i) = cur {
            let sym = &s[syms[i].start..syms[i].end];
            match self.token_ids.get(sym) {
                Some(&id) => out.push(id),
                None => {
                    // a symbol the vocabulary lacks: fall back to its single bytes, as llama.cpp does
                    for c in sym.chars() {
                        let mut buf = [0u8; 4];
                        let id =
                            self.token_ids
                                .get(&*c.encode_utf8(&mut buf))
                                .ok_or_else(|| {
                                    anyhow!("the vocabulary has no token for byte symbol {c:?}")
                                })?;
                        out.push(*id);
                    }
                }
            }
            cur = syms[i].next;
        }
        Ok(())
    }
}

/// One symbol of a piece being merged: `s[start..end]` of the byte-level string, and its neighbours.
struct Sym {
    start: usize,
    end: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

enum Part<'t> {
    Special(u32),
    Text(&'t str),
}
