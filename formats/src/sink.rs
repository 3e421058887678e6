//! The output pipeline's one abstraction: a **sink** is a planned output that takes tensor bytes at offsets.
//!
//! Every writer in ossify works in three steps, as gguf-py's `GGUFWriter` does:
//!
//! 1. **Plan** every output file before any data: each file's header (names, types, shapes) fixes every
//!    tensor's offset ([`crate::gguf::GgufWriter`], [`crate::safetensors::SafetensorsWriter`]). Bad input
//!    fails here, before anything is written. Creating the file makes `X.partial` (exclusive, locked, never
//!    over an input: [`crate::atomic`]) with the header in place and the final length set.
//! 2. **Write pieces** at offsets, from any thread, in any order ([`Sink::write_at`]): a streaming producer
//!    never holds a whole tensor, rows made in parallel land where the plan put them, so the bytes are the same
//!    at any thread count.
//! 3. **Finish**: check every byte arrived, flush, rename into place ([`FileSink::finish`]).
//!
//! An output of several files is one sink over all of them, addressed by the tensors' indices in plan order;
//! its files are planned up front, each written at its own `X.partial`, and committed together as one
//! [`PartialSet`] once every file is complete and flushed: the set appears together or not at all (the first
//! file, the one readers open, renamed last), and a half-set left by a crash between two renames is found and
//! removed by the next run (see [`crate::atomic::PartialSet`]). Both kinds of set go through it:
//!
//! - Split GGUF (`--split-max-size` / `--split-max-tensors`): [`GgufOutput`] holds every shard and the set
//!   ([`crate::gguf::GgufWriter::create_split`] plans them, each with its own `split.*` keys).
//! - Sharded safetensors: a [`FileSet`] of [`SafetensorsOutput`]s (inside a [`crate::atomic::PartialDir`],
//!   which makes the whole folder appear at once). [`assign_files`] cuts the plan into files (a new file
//!   whenever the next tensor would pass a size or count limit, as `save_pretrained` shards).
//!
//! The streaming driver that feeds a sink (`ossify::stream`) does not know how many files there are.
//!
//! [`GgufOutput`]: crate::gguf::GgufOutput
//! [`SafetensorsOutput`]: crate::safetensors::SafetensorsOutput

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::atomic::{OutputError, PartialFile, PartialSet};

/// A planned output that takes each tensor's bytes, whole or in pieces, at offsets. `Sync`: pieces may be
/// written from many threads at once; pieces must not overlap.
pub trait Sink: Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Tensors planned, in plan order.
    fn n_tensors(&self) -> usize;

    /// Bytes tensor `t` must be given (0 for an index out of range).
    fn tensor_size(&self, t: usize) -> usize;

    /// Writes `bytes` into tensor `t`, starting `offset` bytes into it. Refuses a piece past the tensor's end.
    fn write_at(&self, t: usize, offset: usize, bytes: &[u8]) -> Result<(), Self::Error>;
}

/// A sink that is one file, written at `X.partial` and renamed to `X` when finished.
pub trait FileSink: Sink + Sized {
    /// The final name.
    fn target(&self) -> &Path;

    /// Checks that every tensor was written in full and flushes the data to disk; renames nothing.
    fn prepare(&self) -> Result<(), Self::Error>;

    /// Renames the file into place (after [`FileSink::prepare`]).
    fn commit(self) -> Result<(), Self::Error>;

    /// The prepared partial files, for a [`FileSet`] to commit together with others.
    fn into_files(self) -> Vec<PartialFile>;

    /// [`FileSink::prepare`], then [`FileSink::commit`].
    fn finish(self) -> Result<(), Self::Error> {
        self.prepare()?;
        self.commit()
    }
}

/// Several files that appear together: a sink over all their tensors, in plan order (file 0's tensors in its
/// order, then file 1's, ...).
#[derive(Debug)]
pub struct FileSet<S> {
    set: PartialSet,
    files: Vec<S>,
    /// Plan index → (file, index in the file).
    slots: Vec<(usize, usize)>,
}

impl<S: FileSink> FileSet<S> {
    /// The files, in order, created after `set` was claimed for their targets; each holds the next
    /// `n_tensors()` tensors of the plan.
    pub fn new(set: PartialSet, files: Vec<S>) -> FileSet<S> {
        let slots = files
            .iter()
            .enumerate()
            .flat_map(|(k, f)| (0..f.n_tensors()).map(move |i| (k, i)))
            .collect();
        FileSet { set, files, slots }
    }

    pub fn files(&self) -> &[S] {
        &self.files
    }

    /// Which file tensor `t` is in, and its index there.
    pub fn slot(&self, t: usize) -> Option<(usize, usize)> {
        self.slots.get(t).copied()
    }

    /// Checks and flushes every file, then commits them as one [`PartialSet`]; returns the final names.
    pub fn finish(self) -> Result<Vec<PathBuf>, S::Error>
    where
        S::Error: From<OutputError>,
    {
        for f in &self.files {
            f.prepare()?;
        }
        let files = self
            .files
            .into_iter()
            .flat_map(FileSink::into_files)
            .collect();
        Ok(self.set.commit(files)?)
    }
}

impl<S: FileSink> Sink for FileSet<S> {
    type Error = S::Error;

    fn n_tensors(&self) -> usize {
        self.slots.len()
    }

    fn tensor_size(&self, t: usize) -> usize {
        self.slot(t)
            .and_then(|(k, i)| self.files.get(k).map(|f| f.tensor_size(i)))
            .unwrap_or(0)
    }

    fn write_at(&self, t: usize, offset: usize, bytes: &[u8]) -> Result<(), S::Error> {
        // An index past the plan goes to the last file's own range check, which names the error.
        let (k, i) = self
            .slot(t)
            .unwrap_or((self.files.len().saturating_sub(1), usize::MAX));
        match self.files.get(k) {
            Some(f) => f.write_at(i, offset, bytes),
            None => Ok(()),
        }
    }
}

/// Assigns tensors of `sizes` bytes, in order, to consecutive files: a new file whenever the next tensor would
/// take the current one past `max_bytes` or `max_tensors` (a tensor larger than `max_bytes` gets a file of its
/// own). Returns each file's range of tensor indices; at least one (empty) range for no tensors.
pub fn assign_files(
    sizes: &[u64],
    max_bytes: Option<u64>,
    max_tensors: Option<usize>,
) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, &n) in sizes.iter().enumerate() {
        let count = i - start;
        let too_big = max_bytes.is_some_and(|m| bytes.saturating_add(n) > m);
        let too_many = max_tensors.is_some_and(|m| count >= m.max(1));
        if count > 0 && (too_big || too_many) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes = bytes.saturating_add(n);
    }
    out.push(start..sizes.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{GgufFile, GgufWriter, MetaValue};
    use crate::DType;

    #[test]
    fn assignment_follows_the_limits() {
        assert_eq!(assign_files(&[], Some(10), None), vec![0..0]);
        assert_eq!(
            assign_files(&[4, 4, 4, 20, 1], Some(10), None),
            vec![0..2, 2..3, 3..4, 4..5]
        );
        assert_eq!(
            assign_files(&[1, 1, 1, 1, 1], None, Some(2)),
            vec![0..2, 2..4, 4..5]
        );
        assert_eq!(assign_files(&[1, 1, 1], None, None), vec![0..3]);
    }

    fn gguf(dir: &Path, name: &str, tensors: &[(&str, usize)]) -> crate::gguf::GgufOutput {
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", MetaValue::String("t".into()))
            .unwrap();
        for (n, len) in tensors {
            w.add_tensor(n, DType::F32, &[*len]).unwrap();
        }
        w.create(&dir.join(name)).unwrap()
    }

    #[test]
    fn a_set_routes_by_plan_index_and_appears_only_complete() {
        let dir = tempfile::tempdir().unwrap();
        let journal = PartialSet::create(
            &dir.path().join("set"),
            &[dir.path().join("a.gguf"), dir.path().join("b.gguf")],
        )
        .unwrap();
        let set = FileSet::new(
            journal,
            vec![
                gguf(dir.path(), "a.gguf", &[("x", 8), ("y", 8)]),
                gguf(dir.path(), "b.gguf", &[("z", 8)]),
            ],
        );
        assert_eq!(set.n_tensors(), 3);
        assert_eq!(set.slot(2), Some((1, 0)));
        // Pieces, out of order, from two threads.
        std::thread::scope(|s| {
            s.spawn(|| set.write_at(2, 16, &[3; 16]).unwrap());
            s.spawn(|| set.write_at(0, 0, &[1; 32]).unwrap());
        });
        set.write_at(2, 0, &[3; 16]).unwrap();
        assert!(set.write_at(2, 24, &[3; 16]).is_err());
        assert!(!dir.path().join("a.gguf").exists());
        // Tensor 1 is missing: nothing appears, and dropping the set removes the partials.
        let set = {
            let c = dir.path().join("c.gguf");
            let journal = PartialSet::create(&c, std::slice::from_ref(&c)).unwrap();
            let e = FileSet::new(journal, vec![gguf(dir.path(), "c.gguf", &[("x", 8)])]);
            assert!(e.finish().is_err());
            set
        };
        assert!(!dir.path().join("c.gguf.partial").exists());
        assert!(!dir.path().join("c.gguf.set.partial").exists());
        set.write_at(1, 0, &[2; 32]).unwrap();
        let names = set.finish().unwrap();
        assert_eq!(
            names,
            vec![dir.path().join("a.gguf"), dir.path().join("b.gguf")]
        );
        let a = GgufFile::open(&dir.path().join("a.gguf")).unwrap();
        assert_eq!(a.tensor("y").unwrap().bytes, &[2; 32]);
        let b = GgufFile::open(&dir.path().join("b.gguf")).unwrap();
        assert_eq!(b.tensor("z").unwrap().bytes, &[3; 32]);
        assert!(!dir.path().join("set.set.partial").exists());
    }
}
