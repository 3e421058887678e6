//! GGUF writing, planned then streamed, like gguf-py's `GGUFWriter`.
//!
//! [`GgufWriter`] collects the key/values and the tensor infos (name, type, shape) in the order they will be
//! written. [`GgufWriter::create`] computes every offset, writes the header into `<path>.partial` and sets the
//! file's final length, so the padding between tensors is already zeros. [`GgufOutput::write_tensor`] then puts
//! each tensor's bytes at its planned offset with a positioned write; it takes `&self`, so a converter can write
//! several tensors from several threads in any order without holding the file in memory.
//! [`GgufOutput::write_tensor_at`] writes part of a tensor, so a streaming converter never holds a whole tensor.
//! [`GgufOutput::finish`] checks that every tensor arrived, syncs, and renames the file into place.
//!
//! The bytes are exactly gguf-py's for the same key/values and tensors in the same order: header, key/values,
//! tensor infos, zero padding to the alignment, then each tensor padded with zeros to the alignment.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::constants::{
    GENERAL_ALIGNMENT, GGML_MAX_DIMS, GGML_MAX_NAME, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC,
    GGUF_VERSION, SPLIT_COUNT, SPLIT_NO, SPLIT_TENSORS_COUNT,
};
use super::split::{check_no_strays, is_split_key, split_path, MAX_SPLITS};
use super::value::{encode_str, encode_value, MetaValue, MAX_ARRAY_DEPTH};
use super::GgufError;
use crate::atomic::{Existing, PartialFile, PartialSet};
use crate::sink::{FileSink, Sink};
use crate::DType;

#[derive(Clone, Debug)]
struct PlannedTensor {
    name: String,
    dtype: DType,
    shape: Vec<usize>,
    size: usize,
}

/// Builder for a GGUF file: key/values and tensor infos, in file order.
#[derive(Clone, Debug)]
pub struct GgufWriter {
    kvs: Vec<(String, MetaValue)>,
    keys: HashSet<String>,
    tensors: Vec<PlannedTensor>,
    names: HashSet<String>,
    alignment: usize,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty plan with the default alignment (32). Nothing is added implicitly — not even
    /// `general.architecture`, which gguf-py adds first; add it first yourself to match gguf-py's order.
    pub fn new() -> Self {
        GgufWriter {
            kvs: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
            alignment: GGUF_DEFAULT_ALIGNMENT,
        }
    }

    /// Adds a key/value after the ones already added. Refuses an empty or duplicate key. `general.alignment` must
    /// be a u32 power of two and sets the data alignment.
    pub fn add_kv(&mut self, key: &str, value: MetaValue) -> Result<(), GgufError> {
        if key.is_empty() {
            return Err(GgufError::InvalidKey {
                key: key.to_owned(),
                why: "empty".into(),
            });
        }
        if self.keys.contains(key) {
            return Err(GgufError::DuplicateKey {
                key: key.to_owned(),
            });
        }
        if let MetaValue::Array(a) = &value {
            if a.depth() > MAX_ARRAY_DEPTH {
                return Err(GgufError::ArrayTooDeep {
                    key: key.to_owned(),
                    max: MAX_ARRAY_DEPTH,
                });
            }
        }
        if key == GENERAL_ALIGNMENT {
            match value {
                MetaValue::U32(a) if a.is_power_of_two() => self.alignment = a as usize,
                ref v => {
                    return Err(GgufError::BadAlignment {
                        found: format!("{v:?}"),
                    })
                }
            }
        }
        self.keys.insert(key.to_owned());
        self.kvs.push((key.to_owned(), value));
        Ok(())
    }

    /// Plans a tensor after the ones already added; returns its index for [`GgufOutput::write_tensor`]. `shape`
    /// is row-major (outermost first), as in [`crate::TensorView`]; it is reversed into GGUF's `ne`.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[usize],
    ) -> Result<usize, GgufError> {
        let invalid = |why: String| GgufError::InvalidShape {
            name: name.to_owned(),
            shape: shape.to_vec(),
            why,
        };
        if name.is_empty() || name.len() >= GGML_MAX_NAME {
            return Err(GgufError::InvalidKey {
                key: name.to_owned(),
                why: format!(
                    "a tensor name must be 1 to {} bytes long (ggml's GGML_MAX_NAME)",
                    GGML_MAX_NAME - 1
                ),
            });
        }
        if self.names.contains(name) {
            return Err(GgufError::DuplicateTensor {
                name: name.to_owned(),
            });
        }
        if dtype.ggml_type().is_none() {
            return Err(GgufError::UnsupportedDType {
                name: name.to_owned(),
                dtype,
            });
        }
        if shape.is_empty() || shape.len() > GGML_MAX_DIMS {
            return Err(invalid(format!("expected 1 to {GGML_MAX_DIMS} dimensions")));
        }
        if shape.contains(&0) {
            return Err(invalid("a dimension is zero".into()));
        }
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n as u64 <= i64::MAX as u64)
            .ok_or_else(|| invalid("too many elements".into()))?;
        let row_len = shape.last().copied().unwrap_or(1);
        if row_len % dtype.block_size() != 0 {
            return Err(invalid(format!(
                "row length {row_len} is not a multiple of {dtype}'s block size {}",
                dtype.block_size()
            )));
        }
        let size = dtype
            .nbytes(n)
            .ok_or_else(|| invalid("byte size overflows".into()))?;
        self.names.insert(name.to_owned());
        self.tensors.push(PlannedTensor {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
            size,
        });
        Ok(self.tensors.len() - 1)
    }

    pub fn alignment(&self) -> usize {
        self.alignment
    }

    pub fn n_tensors(&self) -> usize {
        self.tensors.len()
    }

    /// Header, key/values and tensor infos, padded to the alignment; and each tensor's offset relative to the
    /// data section.
    fn plan(&self) -> (Vec<u8>, Vec<u64>, u64) {
        let align = self.alignment as u64;
        let mut h = Vec::new();
        h.extend_from_slice(&GGUF_MAGIC);
        h.extend_from_slice(&GGUF_VERSION.to_le_bytes());
        h.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        h.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            encode_str(&mut h, k);
            encode_value(&mut h, v);
        }
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut off = 0u64;
        for t in &self.tensors {
            encode_str(&mut h, &t.name);
            h.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
            for &d in t.shape.iter().rev() {
                h.extend_from_slice(&(d as u64).to_le_bytes());
            }
            // A type without a ggml id was refused by add_tensor.
            h.extend_from_slice(&t.dtype.ggml_type().unwrap_or(u32::MAX).to_le_bytes());
            h.extend_from_slice(&off.to_le_bytes());
            offsets.push(off);
            off += pad(t.size as u64, align);
        }
        // gguf-py pads after the tensor infos whether or not there are tensors.
        h.resize(pad(h.len() as u64, align) as usize, 0);
        (h, offsets, off)
    }

    /// The complete header (with padding) that [`GgufWriter::create`] would write, for tests and dry runs.
    pub fn header_bytes(&self) -> Vec<u8> {
        self.plan().0
    }

    /// Creates `<path>.partial`, writes the header, and sizes the file; returns the handle tensors are written
    /// through. Nothing appears at `path` until [`GgufOutput::finish`]. An existing `path` is refused (see
    /// [`GgufWriter::create_with`]).
    pub fn create(self, path: &Path) -> Result<GgufOutput, GgufError> {
        self.create_with(path, Existing::Refuse)
    }

    /// [`GgufWriter::create`], with what to do about an existing `path` (the rules of [`crate::atomic`]).
    pub fn create_with(self, path: &Path, existing: Existing) -> Result<GgufOutput, GgufError> {
        let shard = self.create_file(path, existing)?;
        let place = shard.offsets.iter().map(|&o| (0, o)).collect();
        Ok(GgufOutput::new(vec![shard.out], None, self.tensors, place))
    }

    /// [`GgufWriter::create`] cut into a split set by `rule`, as `llama-gguf-split --split` cuts the single
    /// file (byte for byte): `PREFIX-00001-of-0000N.gguf` ... where `PREFIX` is `path` without its `.gguf`
    /// (as llama.cpp's converter and llama-quantize name shards). The first shard holds every key/value, then
    /// the three split keys; the others only those three ([`SplitKeyOrder::GgufSplit`]). A rule that gives one
    /// shard writes the plain file at `path`, as llama.cpp's converter does. Nothing appears until
    /// [`GgufOutput::finish`], which renames the first shard last, so a reader that finds it finds the rest.
    /// `existing` applies to each shard.
    pub fn create_split(
        self,
        path: &Path,
        rule: SplitRule,
        existing: Existing,
    ) -> Result<GgufOutput, GgufError> {
        let sizes: Vec<usize> = self.tensors.iter().map(|t| t.size).collect();
        let shard_of = rule.assign(&sizes);
        self.create_shards(path, &shard_of, SplitKeyOrder::GgufSplit, existing)
    }

    /// [`GgufWriter::create_split`] with each tensor's shard given (0-based, in tensor order; each shard
    /// continues the last or starts the next, none empty), e.g. llama-quantize `--keep-split` keeping its
    /// input's, and the split keys in `order`.
    pub fn create_shards(
        self,
        path: &Path,
        shard_of: &[usize],
        order: SplitKeyOrder,
        existing: Existing,
    ) -> Result<GgufOutput, GgufError> {
        let Some(shards) = self.shard_writers(path, shard_of, order)? else {
            return self.create_with(path, existing);
        };
        let prefix = split_output_prefix(path);
        let targets: Vec<PathBuf> = shards.iter().map(|(p, _)| p.clone()).collect();
        // Claimed before the shards: a half-set left by a run that died mid-commit goes first.
        let set = PartialSet::create(path, &targets)?;
        check_no_strays(&prefix, shards.len())?;
        let mut files = Vec::with_capacity(shards.len());
        let mut place = Vec::with_capacity(self.tensors.len());
        for (no, (shard_path, w)) in shards.iter().enumerate() {
            let shard = w.create_file(shard_path, existing)?;
            place.extend(shard.offsets.iter().map(|&o| (no, o)));
            files.push(shard.out);
        }
        Ok(GgufOutput::new(files, Some(set), self.tensors, place))
    }

    /// The files [`GgufWriter::create_split`] would write, without writing anything: each path, its size in
    /// bytes and how many tensors it holds (for `--dry-run`).
    pub fn planned_files(
        &self,
        path: &Path,
        rule: SplitRule,
    ) -> Result<Vec<PlannedFileInfo>, GgufError> {
        let sizes: Vec<usize> = self.tensors.iter().map(|t| t.size).collect();
        self.planned_shards(path, &rule.assign(&sizes), SplitKeyOrder::GgufSplit)
    }

    /// [`GgufWriter::planned_files`] for [`GgufWriter::create_shards`].
    pub fn planned_shards(
        &self,
        path: &Path,
        shard_of: &[usize],
        order: SplitKeyOrder,
    ) -> Result<Vec<PlannedFileInfo>, GgufError> {
        let info = |p: &Path, w: &GgufWriter| {
            let (header, _, data_len) = w.plan();
            PlannedFileInfo {
                path: p.to_path_buf(),
                bytes: header.len() as u64 + data_len,
                tensors: w.tensors.len(),
            }
        };
        Ok(match self.shard_writers(path, shard_of, order)? {
            None => vec![info(path, self)],
            Some(shards) => shards.iter().map(|(p, w)| info(p, w)).collect(),
        })
    }

    /// The shards of a split output, each path with its writer (key/values and tensor infos, no data); `None`
    /// when `shard_of` puts everything in one file.
    fn shard_writers(
        &self,
        path: &Path,
        shard_of: &[usize],
        order: SplitKeyOrder,
    ) -> Result<Option<Vec<(PathBuf, GgufWriter)>>, GgufError> {
        let contiguous = shard_of.len() == self.tensors.len()
            && shard_of.first().is_none_or(|&s| s == 0)
            && shard_of
                .windows(2)
                .all(|w| w[1] == w[0] || w[1] == w[0] + 1);
        if !contiguous {
            return Err(GgufError::BadShardPlan {
                tensors: self.tensors.len(),
            }
            .in_file(path));
        }
        let count = shard_of.last().map_or(1, |&s| s + 1);
        if count <= 1 {
            return Ok(None);
        }
        if count > MAX_SPLITS {
            return Err(GgufError::TooManySplits {
                count,
                max: MAX_SPLITS,
            }
            .in_file(path));
        }
        let prefix = split_output_prefix(path);
        let total = i32::try_from(self.tensors.len()).map_err(|_| {
            GgufError::TooManySplits {
                count: self.tensors.len(),
                max: i32::MAX as usize,
            }
            .in_file(path)
        })?;
        let mut writers: Vec<GgufWriter> = Vec::with_capacity(count);
        for no in 0..count {
            let mut w = GgufWriter::new();
            if no == 0 {
                for (k, v) in &self.kvs {
                    if !is_split_key(k) {
                        w.add_kv(k, v.clone())?;
                    }
                }
            } else if self.alignment != GGUF_DEFAULT_ALIGNMENT {
                // Each shard is read with its own header's alignment.
                w.add_kv(GENERAL_ALIGNMENT, MetaValue::U32(self.alignment as u32))?;
            }
            // The types llama.cpp gives them: u16, u16, i32.
            for key in order.keys() {
                let value = match key {
                    SPLIT_NO => MetaValue::U16(no as u16),
                    SPLIT_COUNT => MetaValue::U16(count as u16),
                    _ => MetaValue::I32(total),
                };
                w.add_kv(key, value)?;
            }
            writers.push(w);
        }
        for (t, &no) in self.tensors.iter().zip(shard_of) {
            if let Some(w) = writers.get_mut(no) {
                w.add_tensor(&t.name, t.dtype, &t.shape)?;
            }
        }
        Ok(Some(
            writers
                .into_iter()
                .enumerate()
                .map(|(no, w)| (split_path(&prefix, no, count), w))
                .collect(),
        ))
    }

    /// One file: header written, length set, offsets of its tensors.
    fn create_file(&self, path: &Path, existing: Existing) -> Result<PlannedFile, GgufError> {
        let (header, offsets, data_len) = self.plan();
        let data_offset = header.len() as u64;
        let run = || -> Result<PartialFile, GgufError> {
            let mut file = PartialFile::create(path, existing)?;
            // Extending the file fills it with zeros: that is the padding between tensors (and sparse until
            // the tensors are written).
            file.set_planned_len(data_offset + data_len)?;
            file.write_at(&header, 0)?;
            Ok(file)
        };
        let file = run().map_err(|e| e.in_file(path))?;
        Ok(PlannedFile {
            out: OutFile { file, data_offset },
            offsets,
        })
    }
}

/// One file a GGUF output would be written as (see [`GgufWriter::planned_files`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFileInfo {
    pub path: PathBuf,
    /// The whole file: header, key/values, tensor infos, padding and tensor data.
    pub bytes: u64,
    pub tensors: usize,
}

/// The order of the three split keys at the end of each shard's key/values, which differs between llama.cpp's
/// tools: each `gguf_set_val_*` removes a key and appends it (ggml/src/gguf.cpp), and gguf-split sets
/// `split.count` twice (a placeholder, then the count), so it ends up last; llama-quantize sets each once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitKeyOrder {
    /// `split.no`, `split.tensors.count`, `split.count`: tools/gguf-split.
    GgufSplit,
    /// `split.no`, `split.count`, `split.tensors.count`: src/llama-quant.cpp (`--keep-split`).
    LlamaQuantize,
}

impl SplitKeyOrder {
    fn keys(self) -> [&'static str; 3] {
        match self {
            SplitKeyOrder::GgufSplit => [SPLIT_NO, SPLIT_TENSORS_COUNT, SPLIT_COUNT],
            SplitKeyOrder::LlamaQuantize => [SPLIT_NO, SPLIT_COUNT, SPLIT_TENSORS_COUNT],
        }
    }
}

/// How to cut a model into a split set: llama-gguf-split's `--split-max-size` / `--split-max-tensors`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SplitRule {
    /// One file.
    #[default]
    None,
    /// A shard ends before the tensor that would take its tensor data (each tensor padded to 32 bytes, the
    /// header not counted) past this many bytes. A tensor larger than the limit gets a shard of its own.
    MaxSize(u64),
    /// At most this many tensors per shard.
    MaxTensors(usize),
}

impl SplitRule {
    /// The shard (0-based) of each tensor, given the tensors' byte sizes in file order. The rule of
    /// gguf-split.cpp's `split_strategy` (sizes padded to `GGUF_DEFAULT_ALIGNMENT` whatever the file's
    /// alignment), except that it never makes an empty shard: where gguf-split gives up because the very first
    /// tensor is over the size, that tensor gets the first shard alone.
    pub fn assign(&self, sizes: &[usize]) -> Vec<usize> {
        let mut shard = 0usize;
        let mut in_shard = 0usize;
        let mut bytes = 0u64;
        let mut out = Vec::with_capacity(sizes.len());
        for (i, &size) in sizes.iter().enumerate() {
            let n = pad(size as u64, GGUF_DEFAULT_ALIGNMENT as u64);
            let cut = match *self {
                SplitRule::None => false,
                SplitRule::MaxSize(max) => in_shard > 0 && bytes.saturating_add(n) > max,
                SplitRule::MaxTensors(max) => max > 0 && i > 0 && i % max == 0,
            };
            if cut {
                shard += 1;
                in_shard = 0;
                bytes = 0;
            }
            in_shard += 1;
            bytes = bytes.saturating_add(n);
            out.push(shard);
        }
        out
    }
}

/// `PREFIX` of the shards written for `path`: `path` without a final `.gguf` (llama.cpp's converter and
/// llama-quantize `--keep-split` strip it; gguf-split takes the prefix as given).
pub fn split_output_prefix(path: &Path) -> PathBuf {
    match path.to_str().and_then(|s| s.strip_suffix(".gguf")) {
        Some(p) if !p.is_empty() && !p.ends_with('/') => PathBuf::from(p),
        _ => path.to_owned(),
    }
}

fn pad(x: u64, align: u64) -> u64 {
    x.div_ceil(align) * align
}

/// One output file being written.
#[derive(Debug)]
struct OutFile {
    file: PartialFile,
    data_offset: u64,
}

struct PlannedFile {
    out: OutFile,
    offsets: Vec<u64>,
}

/// A GGUF being written (one file, or every shard of a split set): headers in place, tensors to come. `Sync`:
/// call [`GgufOutput::write_tensor`] from as many threads as you like. Dropped without [`GgufOutput::finish`],
/// it removes the partial files.
#[derive(Debug)]
pub struct GgufOutput {
    files: Vec<OutFile>,
    /// A split set's journal: its files are committed together.
    set: Option<PartialSet>,
    tensors: Vec<PlannedTensor>,
    /// Each tensor's file and offset in that file's data section.
    place: Vec<(usize, u64)>,
    /// Bytes written so far into each tensor.
    written: Vec<AtomicU64>,
}

impl GgufOutput {
    fn new(
        files: Vec<OutFile>,
        set: Option<PartialSet>,
        tensors: Vec<PlannedTensor>,
        place: Vec<(usize, u64)>,
    ) -> Self {
        let written = tensors.iter().map(|_| AtomicU64::new(0)).collect();
        GgufOutput {
            files,
            set,
            tensors,
            place,
            written,
        }
    }

    /// The files that [`GgufOutput::finish`] will create, first shard first.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.file.target()).collect()
    }

    fn file_of(&self, index: usize) -> Option<(&OutFile, u64)> {
        let &(f, off) = self.place.get(index)?;
        self.files.get(f).map(|file| (file, file.data_offset + off))
    }

    /// Where tensor `index` starts in its file (0 for an index out of range).
    pub fn tensor_offset(&self, index: usize) -> u64 {
        self.file_of(index).map_or(0, |(_, o)| o)
    }

    /// Bytes tensor `index` must be given (0 for an index out of range).
    pub fn tensor_size(&self, index: usize) -> usize {
        self.tensors.get(index).map_or(0, |t| t.size)
    }

    /// Writes tensor `index`'s bytes at its planned offset. Refuses a wrong byte count and a second write.
    pub fn write_tensor(&self, index: usize, bytes: &[u8]) -> Result<(), GgufError> {
        if let (Some(t), Some((f, _))) = (self.tensors.get(index), self.file_of(index)) {
            if bytes.len() != t.size {
                return Err(GgufError::WrongSize {
                    name: t.name.clone(),
                    expected: t.size,
                    got: bytes.len(),
                }
                .in_file(f.file.target()));
            }
        }
        self.write_tensor_at(index, 0, bytes)
    }

    /// Writes `bytes` into tensor `index` starting `offset` bytes into it, for tensors produced piece by piece.
    /// Refuses a piece that runs past the tensor's end, and more bytes in all than the tensor holds (the sign of
    /// a piece written twice); [`GgufOutput::finish`] refuses a tensor not wholly written. Pieces must not
    /// overlap: only their total is counted.
    pub fn write_tensor_at(
        &self,
        index: usize,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), GgufError> {
        let (t, filled, (f, start)) = match (
            self.tensors.get(index),
            self.written.get(index),
            self.file_of(index),
        ) {
            (Some(t), Some(w), Some(f)) => (t, w, f),
            _ => {
                let path = self
                    .files
                    .first()
                    .map_or(Path::new(""), |f| f.file.target());
                return Err(GgufError::NoSuchTensor {
                    index,
                    count: self.tensors.len(),
                }
                .in_file(path));
            }
        };
        let path = f.file.target();
        if offset
            .checked_add(bytes.len())
            .is_none_or(|end| end > t.size)
        {
            return Err(GgufError::WrongSize {
                name: t.name.clone(),
                expected: t.size,
                got: offset.saturating_add(bytes.len()),
            }
            .in_file(path));
        }
        let n = bytes.len() as u64;
        if filled.fetch_add(n, Ordering::AcqRel) + n > t.size as u64 {
            filled.fetch_sub(n, Ordering::AcqRel);
            return Err(GgufError::WrittenTwice {
                name: t.name.clone(),
            }
            .in_file(path));
        }
        if let Err(e) = f.file.write_at(bytes, start + offset as u64) {
            filled.fetch_sub(n, Ordering::AcqRel);
            return Err(GgufError::Io(e).in_file(path));
        }
        Ok(())
    }

    /// Checks that every tensor was written, syncs every file, then renames them into place: the first shard
    /// of a split set last, so the set is complete by the time its first file (the one readers open) appears.
    pub fn finish(self) -> Result<(), GgufError> {
        FileSink::finish(self)
    }

    /// Whether creating this output took over a partial left by a run that died.
    pub fn replaced_stale(&self) -> bool {
        self.files.iter().any(|f| f.file.replaced_stale())
            || self.set.as_ref().is_some_and(PartialSet::replaced_stale)
    }
}

/// A GGUF output is one sink over all its files (the shards of a split set are addressed by the tensors' plan
/// indices, as in [`crate::sink::FileSet`]).
impl Sink for GgufOutput {
    type Error = GgufError;

    fn n_tensors(&self) -> usize {
        self.tensors.len()
    }

    fn tensor_size(&self, t: usize) -> usize {
        GgufOutput::tensor_size(self, t)
    }

    fn write_at(&self, t: usize, offset: usize, bytes: &[u8]) -> Result<(), GgufError> {
        self.write_tensor_at(t, offset, bytes)
    }
}

impl FileSink for GgufOutput {
    /// The first file (the one readers open).
    fn target(&self) -> &Path {
        self.files
            .first()
            .map_or(Path::new(""), |f| f.file.target())
    }

    fn prepare(&self) -> Result<(), GgufError> {
        let missing: Vec<(&PlannedTensor, usize)> = self
            .tensors
            .iter()
            .zip(&self.written)
            .zip(&self.place)
            .filter(|((t, w), _)| w.load(Ordering::Acquire) != t.size as u64)
            .map(|((t, _), &(f, _))| (t, f))
            .collect();
        if let Some(&(first, f)) = missing.first() {
            let path = self.files.get(f).map_or(Path::new(""), |f| f.file.target());
            return Err(GgufError::NotWritten {
                count: missing.len(),
                first: first.name.clone(),
            }
            .in_file(path));
        }
        for f in &self.files {
            f.file
                .sync()
                .map_err(|e| GgufError::Io(e).in_file(f.file.target()))?;
        }
        Ok(())
    }

    /// Renames the file into place; a split set's files together ([`PartialSet::commit`]: the first shard last,
    /// so the set is complete by the time its first file appears, and a crash between renames is recovered).
    fn commit(self) -> Result<(), GgufError> {
        let files = self.files.into_iter().map(|f| f.file);
        match self.set {
            Some(set) => {
                set.commit(files.collect())?;
            }
            None => {
                for f in files {
                    f.commit()?;
                }
            }
        }
        Ok(())
    }

    fn into_files(self) -> Vec<PartialFile> {
        self.files.into_iter().map(|f| f.file).collect()
    }
}
