//! The one streaming driver behind every writer: `convert`, `quantize` to GGUF and `quantize --format
//! safetensors` describe their output as [`Job`]s over a planned [`Sink`] (one file or a `FileSet` of several),
//! and [`drive`] moves the bytes.
//!
//! A job makes one output tensor, or a group that shares rows (MXFP4 blocks + scales), row range by row range.
//! The driver cuts each job into pieces of about `piece_bytes`, and runs a producer (this thread; the rows of a
//! piece spread over the thread pool) and a writer thread, joined by a channel of capacity two:
//!
//! - Rows the job leaves exactly as in the source ([`Job::unchanged`]) go to the sink straight from the memory
//!   map: no copy of their own.
//! - Other pieces are made into one of a few reused buffers, which the writer hands back.
//!
//! Pieces reach the sink in file order (jobs in plan order, rows in order), which lets a large output file be
//! written with direct I/O from a few aligned buffers instead of through the page cache
//! (`ossify_formats::direct`).
//!
//! Every source range is released from the resident set once consumed, so memory stays at a few pieces
//! whatever the model size. Rows are independent and land at planned offsets, so the bytes are the same at any
//! thread count and any piece size.

use std::ops::Range;
use std::sync::mpsc;

use anyhow::{anyhow, Context, Result};
use indicatif::ProgressBar;
use ossify_formats::sink::Sink;
use rayon::prelude::*;

use crate::checkpoint::Checkpoint;
use crate::plan::PlannedTensor;
use ossify_formats::quant::has_nan;

/// One output tensor (or a group of tensors with the same rows), made row range by row range.
pub trait Job<'c>: Sync {
    /// The tensor, for progress and errors.
    fn name(&self) -> &str;

    /// Rows of every output of this job.
    fn n_rows(&self) -> usize;

    /// (sink tensor index, bytes per row) of each output.
    fn outputs(&self) -> &[(usize, usize)];

    /// Rows per piece for pieces of about `target_bytes` (at least one). A job whose source is read in larger
    /// units (whole experts) rounds up to them.
    fn rows_per_piece(&self, target_bytes: usize) -> usize {
        let row: usize = self.outputs().iter().map(|o| o.1).sum();
        (target_bytes / row.max(1)).max(1)
    }

    /// Rows `rows` of the (single) output exactly as the source holds them, when they need no change.
    fn unchanged(&self, _rows: Range<usize>) -> Option<&'c [u8]> {
        None
    }

    /// Makes rows `rows` of every output into `out` (one slice per output, `rows.len()` rows each), spread over
    /// the current thread pool. Returns the source slices read, which the driver releases.
    fn make(&self, rows: Range<usize>, out: &mut [&mut [u8]]) -> Result<Vec<&'c [u8]>>;
}

/// A piece on its way to the writer.
enum Piece<'c> {
    /// Bytes exactly as in the source map; released once written.
    Source {
        tensor: usize,
        offset: usize,
        bytes: &'c [u8],
    },
    /// Bytes made by a job, one buffer per output; the buffers go back to the producer once written.
    Made {
        at: Vec<(usize, usize)>,
        bufs: Vec<Vec<u8>>,
    },
}

/// Writes every job into `sink`, piece by piece (module docs), with the rows of each piece spread over the
/// current thread pool (call it inside `pool.install`). `release` is handed each source slice once the driver
/// is done with it; `bar` counts output bytes. On error nothing more is written; the caller drops the sink,
/// which removes its partial files.
pub fn drive<'c, S: Sink>(
    jobs: &[Box<dyn Job<'c> + 'c>],
    sink: &S,
    piece_bytes: usize,
    release: &(dyn Fn(&[u8]) + Sync),
    bar: &ProgressBar,
) -> Result<()> {
    let (tx, rx) = mpsc::sync_channel::<(usize, Piece<'c>)>(2);
    let (free_tx, free_rx) = mpsc::channel::<Vec<Vec<u8>>>();
    std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<()> {
            for (job, piece) in rx {
                let name = || format!("tensor '{}'", jobs.get(job).map_or("", |j| j.name()));
                match piece {
                    Piece::Source {
                        tensor,
                        offset,
                        bytes,
                    } => {
                        sink.write_at(tensor, offset, bytes)
                            .map_err(shrunk_or)
                            .with_context(name)?;
                        bar.inc(bytes.len() as u64);
                        release(bytes);
                    }
                    Piece::Made { at, bufs } => {
                        for (&(tensor, offset), b) in at.iter().zip(&bufs) {
                            sink.write_at(tensor, offset, b).with_context(name)?;
                            bar.inc(b.len() as u64);
                        }
                        // The producer may be gone already; then the buffers are simply freed.
                        drop(free_tx.send(bufs));
                    }
                }
            }
            Ok(())
        });
        let produced = (|| -> Result<()> {
            for (j, job) in jobs.iter().enumerate() {
                let outputs = job.outputs();
                let n_rows = job.n_rows();
                let step = job.rows_per_piece(piece_bytes).max(1);
                let mut r = 0;
                while r < n_rows {
                    let end = (r + step).min(n_rows);
                    let piece = match job.unchanged(r..end) {
                        Some(bytes) if outputs.len() == 1 => Piece::Source {
                            tensor: outputs[0].0,
                            offset: r * outputs[0].1,
                            bytes,
                        },
                        _ => {
                            let mut bufs = free_rx.try_recv().unwrap_or_default();
                            bufs.resize_with(outputs.len(), Vec::new);
                            for (b, o) in bufs.iter_mut().zip(outputs) {
                                b.clear();
                                b.resize((end - r) * o.1, 0);
                            }
                            let mut slices: Vec<&mut [u8]> =
                                bufs.iter_mut().map(Vec::as_mut_slice).collect();
                            let read = job.make(r..end, &mut slices)?;
                            for src in read {
                                release(src);
                            }
                            Piece::Made {
                                at: outputs.iter().map(|&(t, row)| (t, r * row)).collect(),
                                bufs,
                            }
                        }
                    };
                    if tx.send((j, piece)).is_err() {
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
    })
}

/// A write straight from a mapped input fails with EFAULT (not SIGBUS) when the input was truncated meanwhile:
/// name the file that shrank instead of "Bad address".
fn shrunk_or<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    match ossify_formats::mmap::shrunk_input() {
        Some(s) => anyhow!("{s}"),
        None => e.into(),
    }
}

/// A job over a tensor already in its final bytes (a GGUF tensor copied as it is): every row unchanged.
pub struct BytesJob<'c> {
    pub name: String,
    pub bytes: &'c [u8],
    pub row_bytes: usize,
    pub outputs: [(usize, usize); 1],
}

impl<'c> BytesJob<'c> {
    /// `bytes` as output tensor `tensor`, in rows of `row_bytes`.
    pub fn new(name: &str, bytes: &'c [u8], row_bytes: usize, tensor: usize) -> BytesJob<'c> {
        BytesJob {
            name: name.to_string(),
            bytes,
            row_bytes: row_bytes.max(1),
            outputs: [(tensor, row_bytes.max(1))],
        }
    }
}

impl<'c> Job<'c> for BytesJob<'c> {
    fn name(&self) -> &str {
        &self.name
    }
    fn n_rows(&self) -> usize {
        self.bytes.len() / self.row_bytes
    }
    fn outputs(&self) -> &[(usize, usize)] {
        &self.outputs
    }
    fn unchanged(&self, rows: Range<usize>) -> Option<&'c [u8]> {
        self.bytes
            .get(rows.start * self.row_bytes..rows.end * self.row_bytes)
    }
    fn make(&self, rows: Range<usize>, out: &mut [&mut [u8]]) -> Result<Vec<&'c [u8]>> {
        let src = self
            .unchanged(rows)
            .ok_or_else(|| anyhow!("tensor '{}': rows past the end of its bytes", self.name))?;
        if let Some(o) = out.first_mut() {
            o.copy_from_slice(src);
        }
        Ok(vec![src])
    }
}

/// A job whose rows are made by a function (the safetensors writer's expert encoders, BF16 conversions):
/// `make(rows, outputs)` fills one slice per output and returns the source slices it read.
pub struct FnJob<'c, F> {
    pub name: String,
    pub n_rows: usize,
    pub outputs: Vec<(usize, usize)>,
    /// Rows as they are in the source, when the job copies them (`(bytes, bytes per row)`).
    pub unchanged: Option<(&'c [u8], usize)>,
    /// Rows per piece are rounded up to a multiple of this (1: any).
    pub row_unit: usize,
    pub make: F,
}

impl<'c, F> FnJob<'c, F>
where
    F: Fn(Range<usize>, &mut [&mut [u8]]) -> Result<Vec<&'c [u8]>> + Sync,
{
    /// A job of `n_rows` rows into `outputs` ((sink tensor, bytes per row) each), pieces a multiple of
    /// `row_unit` rows.
    pub fn new(
        name: &str,
        n_rows: usize,
        outputs: Vec<(usize, usize)>,
        row_unit: usize,
        make: F,
    ) -> FnJob<'c, F> {
        FnJob {
            name: name.to_string(),
            n_rows,
            outputs,
            unchanged: None,
            row_unit,
            make,
        }
    }

    /// Rows that are the source's own bytes (`row` bytes each) go out as they are.
    pub fn unchanged_from(mut self, bytes: &'c [u8], row: usize) -> Self {
        self.unchanged = Some((bytes, row.max(1)));
        self
    }
}

impl<'c, F> Job<'c> for FnJob<'c, F>
where
    F: Fn(Range<usize>, &mut [&mut [u8]]) -> Result<Vec<&'c [u8]>> + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }
    fn n_rows(&self) -> usize {
        self.n_rows
    }
    fn outputs(&self) -> &[(usize, usize)] {
        &self.outputs
    }
    fn rows_per_piece(&self, target_bytes: usize) -> usize {
        let row: usize = self.outputs.iter().map(|o| o.1).sum();
        let unit = self.row_unit.max(1);
        (target_bytes / row.max(1)).max(1).div_ceil(unit) * unit
    }
    fn unchanged(&self, rows: Range<usize>) -> Option<&'c [u8]> {
        let (bytes, row) = self.unchanged?;
        bytes.get(rows.start * row..rows.end * row)
    }
    fn make(&self, rows: Range<usize>, out: &mut [&mut [u8]]) -> Result<Vec<&'c [u8]>> {
        (self.make)(rows, out).with_context(|| format!("tensor '{}'", self.name))
    }
}

/// The NaN scan's share of a piece per thread (a multiple of every element size).
const NAN_SCAN_BYTES: usize = 256 << 10;

/// A tensor of a conversion plan ([`crate::plan`]). Rows the plan leaves unchanged go out from the map after a
/// scan for NaNs (the one value the encoders would change; a piece holding one takes the full path, so the
/// bytes stay exact); the rest are made by [`PlannedTensor::materialize_rows`].
pub struct PlanJob<'c> {
    t: &'c PlannedTensor,
    ckpt: &'c Checkpoint,
    unchanged: Option<&'c [u8]>,
    outputs: [(usize, usize); 1],
}

impl<'c> PlanJob<'c> {
    /// Plan tensor `t` of `ckpt`, written as sink tensor `tensor`.
    pub fn new(t: &'c PlannedTensor, ckpt: &'c Checkpoint, tensor: usize) -> PlanJob<'c> {
        PlanJob {
            t,
            ckpt,
            unchanged: t.unchanged_source(ckpt),
            outputs: [(tensor, t.row_bytes())],
        }
    }
}

impl<'c> Job<'c> for PlanJob<'c> {
    fn name(&self) -> &str {
        &self.t.name
    }
    fn n_rows(&self) -> usize {
        self.t.n_rows()
    }
    fn outputs(&self) -> &[(usize, usize)] {
        &self.outputs
    }
    fn rows_per_piece(&self, target_bytes: usize) -> usize {
        self.t.chunk_rows(target_bytes)
    }
    fn unchanged(&self, rows: Range<usize>) -> Option<&'c [u8]> {
        let row = self.outputs[0].1;
        let dtype = self.t.dtype;
        self.unchanged?
            .get(rows.start * row..rows.end * row)
            .filter(|p| !p.par_chunks(NAN_SCAN_BYTES).any(|c| has_nan(dtype, c)))
    }
    fn make(&self, rows: Range<usize>, out: &mut [&mut [u8]]) -> Result<Vec<&'c [u8]>> {
        match out.first_mut() {
            Some(o) => self.t.materialize_rows(self.ckpt, rows, o),
            None => Ok(Vec::new()),
        }
    }
}
