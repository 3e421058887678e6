//! `ossify convert SRC -o OUT`: an HF or original checkpoint to a GGUF that equals, byte for byte in every tensor
//! and every metadata value llama.cpp reads, what llama.cpp's own converter writes.
//!
//! Streaming: the source is memory-mapped and every tensor goes out in pieces of a few MiB, each written at its
//! planned offset by a writer thread while the next piece is made, through a channel of capacity two:
//!
//! - A tensor the conversion leaves unchanged (BF16 embeddings, attention and `lm_head` into a BF16 GGUF) is
//!   written straight from the map after a scan for NaNs (the one value the encoders would change; a piece
//!   holding one takes the full path, so the bytes stay exact).
//! - Any other piece (MXFP4 repacks, type changes, gate/up splits, transposes) is made with its rows spread over
//!   the thread pool into one of a few reused buffers.
//!
//! Each source range is released from the resident set once consumed ([`Checkpoint::release`]), so memory
//! stays at a few pieces whatever the model size. The output file is written front to back with direct I/O
//! from a few aligned buffers (`ossify_formats::direct`): its bytes are not copied into the page cache (the
//! largest cost of writing through it), and a model as large as the memory does not evict everything cached.
//! It is fsynced before the rename, as always. Rows are independent and land at planned offsets, so the
//! output is the same at any thread count. Output goes to `<out>.partial` and is renamed when complete.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use ossify_formats::atomic::{Existing, Kind};
use ossify_formats::gguf::constants::GENERAL_NAME;
use ossify_formats::gguf::{GgufWriter, MetaValue, SplitRule};

use crate::checkpoint::{Checkpoint, Layout};
use crate::plan::{OutType, Plan};
use crate::stream::{drive, Job, PlanJob};

use super::dry_run::{DryRun, PlannedTensorRow};

/// Options of `ossify convert`.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub src: PathBuf,
    pub out: PathBuf,
    pub outtype: OutType,
    pub layout: Option<Layout>,
    /// 0 = rayon's default (all cores).
    pub threads: usize,
    pub json: bool,
    /// Show a progress bar (only honoured on a terminal).
    pub progress: bool,
    /// Bytes per streamed piece; 0 = the defaults. The output is the same at any size (tests use tiny pieces).
    pub piece_bytes: usize,
    /// Cut the output into a split GGUF (`--split-max-size` / `--split-max-tensors`).
    pub split: SplitRule,
    /// Replace an existing output file (never an input).
    pub force: bool,
    /// `general.name` (default: the folder's name, as llama.cpp's converter falls back to).
    pub name: Option<String>,
    /// Plan only: report what would be written, write nothing.
    pub dry_run: bool,
}

/// What a conversion did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConvertSummary {
    pub source: String,
    pub layout: String,
    pub output: String,
    pub outtype: String,
    pub file_type: u32,
    pub tensors: usize,
    pub tensor_bytes: u64,
    /// The files written: `output` itself, or the shards of a split GGUF, first to last.
    pub files: Vec<String>,
    /// All the files' bytes.
    pub file_bytes: u64,
    pub seconds: f64,
}

/// The source, its plan and the GGUF writer with every key/value and tensor info added.
fn prepare(opts: &ConvertOptions) -> Result<(Checkpoint, Plan, GgufWriter)> {
    // A split output is written as shards named after `out`, not at `out`: an existing `out` is no obstacle (the
    // shards, and `out` itself when the model fits in one file, are checked when they are created, before any
    // work).
    let splits = opts.split != SplitRule::None;
    super::check_output(&opts.out, Kind::File, opts.force || splits, &[&opts.src])?;
    let ckpt = match Checkpoint::open(&opts.src, opts.layout) {
        Ok(c) => c,
        // a forced layout that the folder does not have fails on some missing field: name the mismatch instead
        Err(e) => match (opts.layout, crate::checkpoint::detect_layout(&opts.src)) {
            (Some(forced), Ok(found)) if forced != found => anyhow::bail!(
                "{}: --layout {forced} given, but this is a checkpoint in the {found} layout ({e:#})",
                opts.src.display()
            ),
            _ => return Err(e),
        },
    };
    let plan = Plan::new(&ckpt, opts.outtype)?;

    let mut w = GgufWriter::new();
    for (key, value) in plan.metadata(&ckpt)? {
        let value = match (&opts.name, key.as_str()) {
            (Some(name), GENERAL_NAME) => MetaValue::String(name.clone()),
            _ => value,
        };
        w.add_kv(&key, value)
            .with_context(|| format!("{}: metadata key '{key}'", opts.out.display()))?;
    }
    for t in &plan.tensors {
        w.add_tensor(&t.name, t.dtype, &t.shape)
            .with_context(|| format!("{}: tensor '{}'", opts.out.display(), t.name))?;
    }
    Ok((ckpt, plan, w))
}

/// What a conversion would write (`--dry-run`): every tensor with its source, and the files; creates nothing.
pub fn dry_run(opts: &ConvertOptions) -> Result<DryRun> {
    let (ckpt, plan, w) = prepare(opts)?;
    let files = w.planned_files(&opts.out, opts.split)?;
    let tensors = plan
        .tensors
        .iter()
        .map(|t| PlannedTensorRow {
            name: t.name.clone(),
            source: t.source.describe(),
            source_type: None,
            dtype: t.dtype.name().to_string(),
            shape: t.shape.clone(),
            bytes: t.nbytes() as u64,
        })
        .collect();
    Ok(DryRun::new(
        ckpt.path.display().to_string(),
        opts.out.display().to_string(),
        tensors,
        files.iter().map(Into::into).collect(),
    ))
}

/// Runs a conversion and returns its summary.
pub fn convert(opts: &ConvertOptions) -> Result<ConvertSummary> {
    let start = Instant::now();
    let (ckpt, plan, w) = prepare(opts)?;
    let tensor_bytes: u64 = plan.tensors.iter().map(|t| t.nbytes() as u64).sum();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .context("starting the thread pool")?;
    // Its errors name the file already.
    let output = w.create_split(&opts.out, opts.split, Existing::from_force(opts.force))?;
    let bar = crate::progress::bar(
        opts.progress,
        tensor_bytes,
        "writing",
        crate::progress::Unit::Bytes,
    );

    let jobs: Vec<Box<dyn Job<'_> + '_>> = plan
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| Box::new(PlanJob::new(t, &ckpt, i)) as Box<dyn Job<'_> + '_>)
        .collect();
    let piece_bytes = match opts.piece_bytes {
        0 => PIECE_BYTES,
        n => n,
    };
    let written = pool.install(|| drive(&jobs, &output, piece_bytes, &|b| ckpt.release(b), &bar));
    bar.finish_and_clear();
    // On error `output` is dropped here, which removes `<out>.partial` (every shard's).
    written.with_context(|| format!("converting into {}", opts.out.display()))?;
    let files: Vec<PathBuf> = output.paths().iter().map(|p| p.to_path_buf()).collect();
    output.finish()?;
    let file_bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    Ok(ConvertSummary {
        source: ckpt.path.display().to_string(),
        layout: ckpt.layout.to_string(),
        output: opts.out.display().to_string(),
        outtype: plan.outtype.name().to_string(),
        file_type: plan.file_type,
        tensors: plan.tensors.len(),
        tensor_bytes,
        files: files.iter().map(|f| f.display().to_string()).collect(),
        file_bytes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Output bytes per piece. Small enough that a piece the producer just made (or scanned) is still in the CPU
/// cache when the writer copies it into the page cache: on the 4 GB benchmark 2 MiB pieces took about a quarter
/// less CPU than 32 MiB ones (1 MiB was no better); and the few in flight stay far under the memory budget.
const PIECE_BYTES: usize = 2 << 20;

/// Runs `ossify convert` and prints its summary (or with `dry_run`, its plan).
pub fn run(opts: &ConvertOptions) -> Result<()> {
    if opts.dry_run {
        return dry_run(opts)?.print(opts.json);
    }
    let s = convert(opts)?;
    if opts.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &s)?;
        writeln!(out)?;
    } else {
        writeln!(
            std::io::stdout().lock(),
            "wrote {}: {} tensors, {:.1} MiB, outtype {} (general.file_type {}), from {} layout {} in {:.2} s",
            match s.files.as_slice() {
                [one] => one.clone(),
                [first, .., last] => format!("{} files, {first} to {last}", s.files.len()),
                [] => s.output.clone(),
            },
            s.tensors,
            s.file_bytes as f64 / (1024.0 * 1024.0),
            s.outtype,
            s.file_type,
            s.layout,
            s.source,
            s.seconds
        )?;
    }
    Ok(())
}
