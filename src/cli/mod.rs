//! One module per command. Each exposes its options as a plain struct and a `run` that prints its result;
//! `main.rs` only maps clap arguments onto them.

pub mod convert;
pub mod dry_run;
pub mod generate;
pub mod inspect_weights;
pub mod perplexity;
pub mod quantize;
pub mod split;
pub mod tokenize;
pub mod verify_parity;

use std::path::Path;

use ossify_formats::atomic::{self, Existing, Kind};

/// Checks before any work that `target` may be written (not an input, not an existing output unless `force`,
/// nobody else writing it), so a long run does not fail at its end; says so when a partial output left by an
/// interrupted run will be replaced. `inputs` are registered first (the readers register the files they map
/// themselves, later; text and token files are read whole, so they are named here).
pub(crate) fn check_output(
    target: &Path,
    kind: Kind,
    force: bool,
    inputs: &[&Path],
) -> anyhow::Result<()> {
    for i in inputs {
        atomic::protect_input(i);
    }
    let p = atomic::preflight(target, kind, Existing::from_force(force))?;
    if let Some(stale) = p.stale_partial {
        eprintln!(
            "note: {}: left by an interrupted run; replacing it",
            stale.display()
        );
    }
    Ok(())
}

/// The flags every command takes (tests/cli_consistency.rs walks the command tree to check each has them).
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct CommonArgs {
    /// Worker threads (default: one per core, or RAYON_NUM_THREADS). The output is the same at any count.
    #[arg(short = 't', long, default_value_t = 0, value_parser = parse_threads)]
    pub threads: usize,
    /// No progress bars and no summary on standard error (errors and warnings still print).
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl CommonArgs {
    /// Runs `f` on a thread pool of `--threads` workers: everything the command computes in parallel (the
    /// forward pass, encoders, statistics) runs there.
    pub fn install<T: Send>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|e| anyhow::anyhow!("starting {} worker threads: {e}", self.threads))?;
        pool.install(f)
    }

    /// A progress bar on standard error (see [`crate::progress::bar`]), hidden with `--quiet`.
    pub fn bar(&self, len: u64, what: &str, unit: crate::progress::Unit) -> indicatif::ProgressBar {
        crate::progress::bar(!self.quiet, len, what, unit)
    }
}

/// Most worker threads a command may start: this many per core. More only adds scheduling; a hostile
/// `--threads 100000` would spend a minute creating threads before failing.
pub const MAX_THREADS_PER_CORE: usize = 8;

/// clap parser for `--threads`: 0 (all cores) up to [`MAX_THREADS_PER_CORE`] × the cores.
pub fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("'{s}' is not a thread count"))?;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let max = MAX_THREADS_PER_CORE * cores;
    if n > max {
        return Err(format!(
            "{n} threads is more than {MAX_THREADS_PER_CORE} per core ({cores} cores): give at most {max}, or 0 for one per core"
        ));
    }
    Ok(n)
}

/// Longest `--name` accepted: a name, not a document (llama.cpp sets no limit; a GGUF string may hold 2^64).
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// clap parser for `--name` (`general.name`): printable text, no control characters (a name is shown on
/// terminals and in model lists), not empty, at most [`MAX_MODEL_NAME_BYTES`] bytes of UTF-8.
pub fn parse_model_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the name is empty".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the name holds the control character {}; give printable text",
            c.escape_default()
        ));
    }
    if s.len() > MAX_MODEL_NAME_BYTES {
        return Err(format!(
            "the name is {} bytes; give at most {MAX_MODEL_NAME_BYTES}",
            s.len()
        ));
    }
    Ok(s.to_string())
}

/// clap parser for a context length (`perplexity --ctx`): a whole number of tokens up to the largest context
/// a model may declare.
pub fn parse_ctx(s: &str) -> Result<usize, String> {
    let max = crate::gpt_oss::config::limits::MAX_CONTEXT;
    match s.parse::<usize>() {
        Ok(n) if (4..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "'{s}' is not a context length from 4 to {max} tokens"
        )),
    }
}

/// A verdict threshold: a finite number in `range` (a NaN or infinite limit would pass what it never checked).
fn parse_threshold(
    s: &str,
    range: std::ops::RangeInclusive<f64>,
    what: &str,
) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && range.contains(&x) => Ok(x),
        _ => Err(format!("'{s}' is not {what}")),
    }
}

/// clap parser for `--max-kld`: a finite KL divergence >= 0.
pub fn parse_max_kld(s: &str) -> Result<f64, String> {
    parse_threshold(s, 0.0..=f64::MAX, "a finite KL divergence >= 0")
}

/// clap parser for `--min-top1`: a fraction from 0 to 1.
pub fn parse_min_top1(s: &str) -> Result<f64, String> {
    parse_threshold(s, 0.0..=1.0, "a fraction from 0 to 1")
}

/// clap parser for `--max-ppl-ratio`: a finite ratio > 0.
pub fn parse_max_ppl_ratio(s: &str) -> Result<f64, String> {
    parse_threshold(
        s,
        f64::MIN_POSITIVE..=f64::MAX,
        "a finite perplexity ratio > 0",
    )
}
