//! `ossify perplexity MODEL --text FILE [--ctx N]`: chunked perplexity as llama-perplexity computes it
//! (context N, each chunk from an empty cache, the second half of each chunk scored), PPL ± uncertainty.
//! `--dump-logits out.npy` writes every chunk's logits `[chunks · N, vocab]` (float32) and the chunks' token
//! ids beside it (`out.tokens.json`, `{"sequences": [...]}`), the input of `verify-parity --reference-logits`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use ossify_formats::atomic::{Existing, Kind, PartialFile};

use crate::checkpoint::Checkpoint;
use crate::npy::NpyF32Writer;
use crate::parity::input::{open_model, read_tokens, tokenize};
use crate::parity::logits::{chunked_perplexity, first_nonfinite_stage};

/// Options of `ossify perplexity`.
#[derive(Clone, Debug)]
pub struct PerplexityOptions {
    pub model: PathBuf,
    pub text: Option<PathBuf>,
    /// Token ids instead of text (JSON, as `verify-parity --tokens`).
    pub tokens: Option<PathBuf>,
    pub ctx: usize,
    pub dump_logits: Option<PathBuf>,
    pub yarn_truncate: bool,
    pub precision: crate::gpt_oss::Precision,
    /// Where the forward pass runs.
    pub device: crate::gpt_oss::Device,
    pub json: bool,
    /// Replace existing --dump-logits files (never an input).
    pub force: bool,
    /// No progress bar and no "wrote" line on standard error.
    pub quiet: bool,
}

/// `FILE.tokens.json` beside `--dump-logits FILE.npy` (FILE: the path without its extension): the token ids of
/// the dumped logits.
pub fn tokens_path(dump: &Path) -> PathBuf {
    dump.with_extension("tokens.json")
}

/// Computes and prints the perplexity; false (exit 1) when it is no measurement: NaN / Inf logits, or no
/// token scored.
pub fn run(opts: &PerplexityOptions) -> Result<bool> {
    let existing = Existing::from_force(opts.force);
    if let Some(p) = &opts.dump_logits {
        let inputs: Vec<&Path> = [
            Some(opts.model.as_path()),
            opts.text.as_deref(),
            opts.tokens.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        super::check_output(p, Kind::File, opts.force, &inputs)?;
        super::check_output(&tokens_path(p), Kind::File, opts.force, &inputs)?;
    }
    let ck = Checkpoint::open(&opts.model, None)?;
    let tokens: Vec<u32> = match (&opts.text, &opts.tokens) {
        (Some(t), None) => {
            let text = crate::checkpoint::read_input_text(t)?;
            tokenize(&ck, &text)?
        }
        (None, Some(p)) => read_tokens(p, None)?.into_iter().flatten().collect(),
        _ => bail!("give --text FILE (or --tokens FILE.json)"),
    };
    // The input's own faults name the input file (the scorer below only knows token ids).
    if let Some(input) = opts.text.as_ref().or(opts.tokens.as_ref()) {
        let vocab = ck.config.vocab_size;
        if let Some((i, t)) = tokens
            .iter()
            .enumerate()
            .find(|(_, &t)| t as usize >= vocab)
        {
            bail!(
                "{}: position {i}: token id {t} is outside the model's vocabulary of {vocab}",
                input.display()
            );
        }
        if tokens.len() < opts.ctx {
            bail!(
                "{}: {} tokens; a context of {} needs at least {} (one chunk; llama-perplexity itself asks for {})",
                input.display(),
                tokens.len(),
                opts.ctx,
                opts.ctx,
                2 * opts.ctx
            );
        }
    }
    let model = open_model(
        &ck,
        opts.yarn_truncate,
        opts.precision,
        opts.ctx,
        opts.device,
    )?;
    let vocab = ck.config.vocab_size;
    let n_chunks = tokens.len() / opts.ctx.max(1);

    let mut dump = match &opts.dump_logits {
        Some(p) if n_chunks > 0 => Some(NpyF32Writer::create(
            p,
            &[n_chunks * opts.ctx, vocab],
            existing,
        )?),
        _ => None,
    };
    let bar = crate::progress::bar(
        !opts.quiet,
        n_chunks as u64,
        "perplexity",
        crate::progress::Unit::Items("chunks"),
    );
    let result = chunked_perplexity(model.as_ref(), &tokens, opts.ctx, |_, _, logits| {
        if let Some(w) = dump.as_mut() {
            w.write(logits)?;
        }
        bar.inc(1);
        Ok(())
    });
    bar.finish_and_clear();
    let result = result?;
    // A perplexity over rows that hold NaN / Inf, or over no row at all, is no measurement: the verdict fails
    // (exit 1) and says where the NaN came from; no dump is written.
    let broken = match result.result.first_nonfinite {
        Some(pos) => {
            let (chunk, row) = (pos / opts.ctx, pos % opts.ctx);
            let trace = model.trace(&tokens[chunk * opts.ctx..(chunk + 1) * opts.ctx])?;
            let origin = match first_nonfinite_stage(&trace) {
                Some((Some(l), sub)) => format!("first produced by layer {l} {sub}"),
                Some((None, sub)) => format!("already in the {sub}"),
                None => "in the final norm or the unembedding".to_string(),
            };
            Some(format!(
                "{} of {} scored rows hold NaN or Inf logits, the first at position {pos} (chunk {chunk}, row {row}); \
                 NaN/Inf {origin}",
                result.result.n_nonfinite,
                result.result.n_nonfinite + result.result.n_tokens
            ))
        }
        None if result.result.n_tokens == 0 => Some("no token was scored".to_string()),
        None => None,
    };
    if let Some(why) = broken {
        drop(dump);
        if opts.json {
            let mut v = serde_json::to_value(&result)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("model".into(), opts.model.display().to_string().into());
                o.insert("mode".into(), model.mode().into());
                o.insert("pass".into(), false.into());
                o.insert("failure".into(), why.clone().into());
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!("{}: FAIL: {why}", opts.model.display());
        }
        return Ok(false);
    }
    if let (Some(w), Some(p)) = (dump, &opts.dump_logits) {
        // Both files are written whole first, then both renamed into place: the pair appears together.
        let logits = w.finish_deferred()?;
        let seqs: Vec<&[u32]> = tokens.chunks_exact(opts.ctx).take(n_chunks).collect();
        let tp = tokens_path(p);
        let side = PartialFile::create(&tp, existing)?;
        side.file()
            .write_all(serde_json::to_string(&serde_json::json!({ "sequences": seqs }))?.as_bytes())
            .with_context(|| format!("writing {}", side.partial_path().display()))?;
        logits.commit()?;
        side.commit()?;
        if !opts.quiet {
            eprintln!(
                "wrote {} (float32 [{} x {}, {vocab}]: every row of {n_chunks} chunks of {} tokens) and {}",
                p.display(),
                n_chunks,
                opts.ctx,
                opts.ctx,
                tp.display()
            );
        }
    }
    if opts.json {
        let mut v = serde_json::to_value(&result)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("model".into(), opts.model.display().to_string().into());
            o.insert("mode".into(), model.mode().into());
            o.insert("pass".into(), true.into());
            o.insert("device".into(), model.device().into());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "{}: {} chunks of {} tokens ({} tokens scored, {} in the text)",
            opts.model.display(),
            result.n_chunks,
            result.n_ctx,
            result.result.n_tokens,
            result.n_text_tokens
        );
        println!(
            "Final estimate: PPL = {:.4} +/- {:.5}",
            result.result.ppl, result.result.ppl_uncertainty
        );
    }
    Ok(true)
}
