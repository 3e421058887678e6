//! `ossify convert SRC -o OUT`: an HF or original checkpoint to a GGUF that equals, byte for byte in every tensor
//! and every metadata value llama.cpp reads, what llama.cpp's own converter writes.
//!
//! Streaming: the source is memory-mapped and every tensor goes out in pieces of a few MiB, each written at its
//! planned offset by a writer thread while the next piece is made, through a channel of capacity two:
//!
//! - A tensor the conversion leaves unchanged (BF16 embeddings, attention and `lm_head` into a BF16 GGUF: most
//!   of the bytes) is written straight from the map, with no copy in user space, after a scan for NaNs (the
//!   one value the encoders would change; a piece holding one takes the full path, so the bytes stay exact).
//! - Any other piece (MXFP4 repacks, type changes, gate/up splits, transposes) is made with its rows spread over
//!   the thread pool into one of a few reused buffers.
//!
//! Each source range is released from the resident set once consumed ([`Checkpoint::release`]), so memory
//! stays at a few pieces whatever the model size. Rows are independent and land at planned offsets, so the
//! output is the same at any thread count. Output goes to `<out>.partial` and is renamed when complete.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use ossify_formats::atomic::{Existing, Kind};
use ossify_formats::gguf::{GgufWriter, SplitRule};
use ossify_formats::quant::has_nan;
use rayon::prelude::*;

use crate::checkpoint::{Checkpoint, Layout};
use crate::plan::{OutType, Plan};

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

/// Runs a conversion and returns its summary.
pub fn convert(opts: &ConvertOptions) -> Result<ConvertSummary> {
    let start = Instant::now();
    super::check_output(&opts.out, Kind::File, opts.force, &[&opts.src])?;
    let ckpt = Checkpoint::open(&opts.src, opts.layout)?;
    let plan = Plan::new(&ckpt, opts.outtype)?;

    let mut w = GgufWriter::new();
    for (key, value) in plan.metadata(&ckpt)? {
        w.add_kv(&key, value)
            .with_context(|| format!("{}: metadata key '{key}'", opts.out.display()))?;
    }
    let mut tensor_bytes = 0u64;
    for t in &plan.tensors {
        w.add_tensor(&t.name, t.dtype, &t.shape)
            .with_context(|| format!("{}: tensor '{}'", opts.out.display(), t.name))?;
        tensor_bytes += t.nbytes() as u64;
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads)
        .build()
        .context("starting the thread pool")?;
    let output = w
        .create_split(&opts.out, opts.split, Existing::from_force(opts.force))
        .with_context(|| format!("{}", opts.out.display()))?;
    let bar = progress_bar(opts, tensor_bytes);

    // Producer: this thread, piece by piece, rows in parallel. Consumer: a writer thread, which hands the
    // buffers of made pieces back for reuse.
    let (tx, rx) = mpsc::sync_channel::<Piece<'_>>(2);
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    let (out_ref, ckpt_ref, bar_ref) = (&output, &ckpt, &bar);
    let written: Result<()> = std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<()> {
            for piece in rx {
                let (tensor, offset, bytes) = match &piece {
                    Piece::Source {
                        tensor,
                        offset,
                        bytes,
                    } => (*tensor, *offset, *bytes),
                    Piece::Made {
                        tensor,
                        offset,
                        bytes,
                    } => (*tensor, *offset, bytes.as_slice()),
                };
                out_ref.write_tensor_at(tensor, offset, bytes)?;
                if let Some(b) = bar_ref {
                    b.inc(bytes.len() as u64);
                }
                match piece {
                    Piece::Source { bytes, .. } => ckpt_ref.release(bytes),
                    // The producer may be gone already; then the buffer is simply freed.
                    Piece::Made { bytes, .. } => drop(free_tx.send(bytes)),
                }
            }
            Ok(())
        });
        let produced: Result<()> = (|| {
            for (i, t) in plan.tensors.iter().enumerate() {
                let (n_rows, row_bytes) = (t.n_rows(), t.row_bytes());
                let unchanged = t.unchanged_source(&ckpt);
                let step = t.chunk_rows(match (opts.piece_bytes, unchanged) {
                    (0, Some(_)) => SOURCE_PIECE_BYTES,
                    (0, None) => MADE_PIECE_BYTES,
                    (n, _) => n,
                });
                let mut r = 0;
                while r < n_rows {
                    let end = (r + step).min(n_rows);
                    let (a, b) = (r * row_bytes, end * row_bytes);
                    let as_is = unchanged.and_then(|src| src.get(a..b)).filter(|p| {
                        !pool.install(|| p.par_chunks(NAN_SCAN_BYTES).any(|c| has_nan(t.dtype, c)))
                    });
                    let piece = match as_is {
                        Some(bytes) => Piece::Source {
                            tensor: i,
                            offset: a,
                            bytes,
                        },
                        None => {
                            let mut buf = free_rx.try_recv().unwrap_or_default();
                            buf.clear();
                            buf.resize(b - a, 0);
                            let read =
                                pool.install(|| t.materialize_rows(&ckpt, r..end, &mut buf))?;
                            for src in read {
                                ckpt.release(src);
                            }
                            Piece::Made {
                                tensor: i,
                                offset: a,
                                bytes: buf,
                            }
                        }
                    };
                    if tx.send(piece).is_err() {
                        return Ok(()); // the writer failed; its error is reported below
                    }
                    r = end;
                }
            }
            Ok(())
        })();
        drop(tx);
        let wrote = writer
            .join()
            .map_err(|_| anyhow!("the writer thread panicked"))?;
        produced.and(wrote)
    });
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // On error `output` is dropped here, which removes `<out>.partial` (every shard's).
    written.with_context(|| format!("converting into {}", opts.out.display()))?;
    let files: Vec<PathBuf> = output.paths().iter().map(|p| p.to_path_buf()).collect();
    output
        .finish()
        .with_context(|| format!("{}", opts.out.display()))?;
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

/// Output bytes made per piece. Small enough that a piece the producer just made (or scanned) is still in the
/// CPU cache when the writer copies it into the page cache: on the 4 GB benchmark 2 MiB pieces took about a
/// quarter less CPU than 32 MiB ones (1 MiB was no better); and the few in flight stay far under the memory
/// budget.
const MADE_PIECE_BYTES: usize = 2 << 20;
/// Bytes per piece written unchanged from the source map (no buffer of ours holds them); same reasoning.
const SOURCE_PIECE_BYTES: usize = 2 << 20;
/// The NaN scan's share of a piece per thread (a multiple of every element size).
const NAN_SCAN_BYTES: usize = 256 << 10;

/// A piece of an output tensor on its way to the writer.
enum Piece<'c> {
    /// Bytes exactly as in the source map; released from the resident set once written.
    Source {
        tensor: usize,
        offset: usize,
        bytes: &'c [u8],
    },
    /// Bytes made by the conversion; the buffer goes back to the producer once written.
    Made {
        tensor: usize,
        offset: usize,
        bytes: Vec<u8>,
    },
}

/// Runs `ossify convert` and prints its summary.
pub fn run(opts: &ConvertOptions) -> Result<()> {
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

fn progress_bar(opts: &ConvertOptions, total: u64) -> Option<indicatif::ProgressBar> {
    if !opts.progress || opts.json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
