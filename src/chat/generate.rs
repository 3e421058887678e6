//! Decoding with the KV cache of the reference forward pass: greedy or sampled (temperature, top-p, seeded),
//! stopping at harmony's `<|return|>` / `<|call|>` (and `<|endoftext|>`, the third eos of gpt-oss's
//! generation_config), with every token handed to a callback as it is made.

use std::time::Instant;

use anyhow::Result;

use super::harmony::{self, Event, StreamParser};
use crate::gpt_oss::Session;
use crate::tokenizer::TextTokenizer;

/// How the next token is chosen.
#[derive(Clone, Copy, Debug)]
pub struct SamplerOptions {
    /// 0 = greedy (the first highest logit, as torch.argmax and llama.cpp's greedy sampler take it).
    pub temperature: f32,
    /// Keep the smallest set of most likely tokens whose probabilities sum to at least this (1 = all).
    pub top_p: f32,
    pub seed: u64,
}

/// A seeded sampler: the same seed, logits and options give the same tokens on every machine.
pub struct Sampler {
    opts: SamplerOptions,
    state: u64,
}

impl Sampler {
    pub fn new(opts: SamplerOptions) -> Sampler {
        Sampler {
            opts,
            state: opts.seed,
        }
    }

    /// SplitMix64 (Steele, Lea & Flood 2014): a tiny, well-mixed generator; uniform in [0, 1) from its top
    /// 53 bits.
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The next token id from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.opts.temperature <= 0.0 {
            return argmax(logits);
        }
        let t = f64::from(self.opts.temperature);
        let max = logits
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, ((f64::from(l) - f64::from(max)) / t).exp()))
            .collect();
        if probs.is_empty() {
            return argmax(logits);
        }
        // most likely first; equal probabilities by id, so the order never depends on the sort's stability
        probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let top_p = f64::from(self.opts.top_p.clamp(0.0, 1.0));
        let mut keep = probs.len();
        if top_p < 1.0 {
            let mut acc = 0.0;
            for (k, p) in probs.iter().enumerate() {
                acc += p.1 / total;
                if acc >= top_p {
                    keep = k + 1;
                    break;
                }
            }
        }
        let kept = &probs[..keep];
        let mass: f64 = kept.iter().map(|p| p.1).sum();
        let mut r = self.uniform() * mass;
        for p in kept {
            if r < p.1 {
                return p.0;
            }
            r -= p.1;
        }
        kept[kept.len() - 1].0
    }
}

/// The index of the first largest value (NaN never wins).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &x) in v.iter().enumerate() {
        if x > best_v {
            best = i;
            best_v = x;
        }
    }
    best as u32
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `<|return|>`: the answer is complete.
    Return,
    /// `<|call|>`: the model calls a tool.
    Call,
    /// `<|endoftext|>`.
    EndOfText,
    MaxTokens,
    ContextFull,
}

/// What one generation made.
#[derive(Debug, serde::Serialize)]
pub struct Generation {
    pub prompt_tokens: usize,
    /// Generated ids, the stop token included.
    pub tokens: Vec<u32>,
    pub text: String,
    pub messages: Vec<harmony::ParsedMessage>,
    pub stop: StopReason,
    pub prompt_ms: f64,
    pub generate_ms: f64,
}

/// The special ids of harmony's structure in a vocabulary; absent ones (a non-gpt-oss vocabulary) are None.
pub struct HarmonyIds {
    specials: Vec<(u32, &'static str)>,
    stops: Vec<(u32, StopReason)>,
}

impl HarmonyIds {
    pub fn new(tok: &TextTokenizer) -> HarmonyIds {
        let id = |s: &str| harmony::special_id(tok, s).ok();
        let specials = [
            harmony::START,
            harmony::MESSAGE,
            harmony::END,
            harmony::RETURN,
            harmony::CALL,
            harmony::CHANNEL,
            harmony::CONSTRAIN,
        ]
        .into_iter()
        .filter_map(|s| id(s).map(|i| (i, s)))
        .collect();
        let stops = [
            (harmony::RETURN, StopReason::Return),
            (harmony::CALL, StopReason::Call),
            ("<|endoftext|>", StopReason::EndOfText),
        ]
        .into_iter()
        .filter_map(|(s, r)| id(s).map(|i| (i, r)))
        .collect();
        HarmonyIds { specials, stops }
    }

    fn special(&self, id: u32) -> Option<&'static str> {
        self.specials
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, s)| *s)
    }

    fn stop(&self, id: u32) -> Option<StopReason> {
        self.stops.iter().find(|(i, _)| *i == id).map(|(_, r)| *r)
    }
}

/// Turns generated ids into text for the harmony parser, holding back a UTF-8 character cut between tokens.
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // an incomplete character at the end waits; an invalid sequence is emitted as U+FFFD
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        out
    }

    fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Options of one generation.
pub struct GenerateOptions {
    pub max_tokens: usize,
    /// The context limit: generation stops when prompt + generated reaches it.
    pub ctx: usize,
    pub sampler: SamplerOptions,
}

/// Evaluates `prompt` after what `session` already holds (`history`: the ids it holds; when `prompt` does not
/// extend them the session starts over) and generates. `on_event` sees every content piece with its channel.
pub fn generate(
    session: &mut Session<'_, '_>,
    history: &mut Vec<u32>,
    prompt: &[u32],
    tok: &TextTokenizer,
    ids: &HarmonyIds,
    opts: &GenerateOptions,
    mut on_event: impl FnMut(&Event) -> Result<()>,
) -> Result<Generation> {
    let t0 = Instant::now();
    let new: &[u32] = if prompt.starts_with(history) && session.n_past() == history.len() {
        &prompt[history.len()..]
    } else {
        session.reset();
        history.clear();
        prompt
    };
    let mut logits = if new.is_empty() {
        // the prompt is exactly what the session holds: re-evaluate its last token for fresh logits
        session.reset();
        history.clear();
        session.eval_last(prompt)?
    } else {
        session.eval_last(new)?
    };
    history.clear();
    history.extend_from_slice(prompt);
    let prompt_ms = t0.elapsed().as_secs_f64() * 1e3;

    let t1 = Instant::now();
    let mut sampler = Sampler::new(opts.sampler);
    let mut parser = StreamParser::for_assistant();
    let mut utf8 = Utf8Stream {
        pending: Vec::new(),
    };
    let mut tokens = Vec::new();
    let mut text = String::new();
    let stop = loop {
        if tokens.len() >= opts.max_tokens {
            break StopReason::MaxTokens;
        }
        let next = sampler.sample(&logits);
        tokens.push(next);
        if let Some(reason) = ids.stop(next) {
            let s = utf8.flush();
            feed(&mut parser, &s, false, &mut on_event)?;
            text.push_str(&s);
            let name = ids.special(next).unwrap_or("<|endoftext|>");
            text.push_str(name);
            parser.finish();
            break reason;
        }
        if let Some(special) = ids.special(next) {
            let s = utf8.flush();
            feed(&mut parser, &s, false, &mut on_event)?;
            text.push_str(&s);
            feed(&mut parser, special, true, &mut on_event)?;
            text.push_str(special);
        } else {
            // an id the tokenizer does not know (embedding rows past the vocabulary) adds no text
            let bytes = tok.piece_bytes(next).unwrap_or_default();
            let s = utf8.push(&bytes);
            feed(&mut parser, &s, false, &mut on_event)?;
            text.push_str(&s);
        }
        if history.len() + 1 >= opts.ctx {
            parser.finish();
            break StopReason::ContextFull;
        }
        logits = session.eval_last(&[next])?;
        history.push(next);
    };
    if matches!(stop, StopReason::MaxTokens | StopReason::ContextFull) {
        let s = utf8.flush();
        feed(&mut parser, &s, false, &mut on_event)?;
        text.push_str(&s);
        parser.finish();
    }
    Ok(Generation {
        prompt_tokens: prompt.len(),
        tokens,
        text,
        messages: parser.messages,
        stop,
        prompt_ms,
        generate_ms: t1.elapsed().as_secs_f64() * 1e3,
    })
}

/// Feeds the parser; a model that breaks the harmony structure is not an error for the user (its text still
/// counts), so a parse error only ends the structured view of that message.
fn feed(
    parser: &mut StreamParser,
    piece: &str,
    special: bool,
    on_event: &mut impl FnMut(&Event) -> Result<()>,
) -> Result<()> {
    if piece.is_empty() {
        return Ok(());
    }
    match parser.push(piece, special) {
        Ok(e) => on_event(&e),
        Err(_) => on_event(&Event::Content {
            channel: None,
            text: piece.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, f32::NAN]), 1);
    }

    #[test]
    fn sampling_is_deterministic_per_seed_and_respects_top_p() {
        let logits = [2.0f32, 1.0, 0.5, -1.0, 3.0];
        let opts = SamplerOptions {
            temperature: 1.0,
            top_p: 1.0,
            seed: 42,
        };
        let run = |o: SamplerOptions| {
            let mut s = Sampler::new(o);
            (0..200).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(opts), run(opts));
        assert_ne!(run(opts), run(SamplerOptions { seed: 43, ..opts }));
        // p = softmax: 4 holds 0.63, 0 holds 0.23: top_p 0.8 keeps only those two
        let kept = run(SamplerOptions { top_p: 0.8, ..opts });
        assert!(kept.iter().all(|&t| t == 4 || t == 0));
        assert!(kept.contains(&0) && kept.contains(&4));
    }

    #[test]
    fn utf8_cut_between_tokens_waits() {
        let mut u = Utf8Stream {
            pending: Vec::new(),
        };
        let e = "é".as_bytes();
        assert_eq!(u.push(&e[..1]), "");
        assert_eq!(u.push(&e[1..]), "é");
    }
}
