//! GGUF, llama.cpp's model file: reader and writer.
//!
//! Our own rather than a published crate because the published ones are wrong exactly where gpt-oss lives
//! (gguf-rs sizes BF16 and MXFP4 with a 256-element block; ggus has no MXFP4).
//!
//! Layout (little-endian): magic "GGUF", u32 version, u64 tensor count, u64 key/value count; the key/values
//! (string key, u32 type, value); the tensor infos (string name, u32 n_dims, n_dims × u64 `ne` innermost first,
//! u32 ggml type, u64 offset into the data section); zero padding to the alignment; the data section, each
//! tensor at its offset and padded to the alignment.
//!
//! - [`GgufFile`] memory-maps a file and validates all of it up front, following ggml's `gguf.cpp` checks, so
//!   every later access is a bounds-checked slice. Nothing read from the file sizes an allocation before it is
//!   checked against the bytes that remain.
//! - [`GgufWriter`] follows gguf-py's `GGUFWriter`: plan every offset first, then stream. [`GgufOutput`] lets
//!   tensors be written in any order, from several threads, at their planned offsets, into `<out>.partial`,
//!   renamed into place by [`GgufOutput::finish`]. Same input gives the same bytes as gguf-py writes.
//! - [`constants`] holds the format facts and metadata key names.
//!
//! ```
//! use ossify_formats::gguf::{constants as k, GgufFile, GgufWriter, MetaValue};
//! use ossify_formats::DType;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("ossify-gguf-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! let path = dir.join("model.gguf");
//! let mut w = GgufWriter::new();
//! w.add_kv(k::GENERAL_ARCHITECTURE, MetaValue::String(k::ARCH_GPT_OSS.into()))?;
//! w.add_kv(&k::key(k::LLM_BLOCK_COUNT, k::ARCH_GPT_OSS), MetaValue::U32(24))?;
//! let experts = w.add_tensor("blk.0.ffn_down_exps.weight", DType::Mxfp4, &[4, 96, 64])?;
//! let out = w.create(&path)?; // writes model.gguf.partial
//! // any order, any thread: out.write_tensor(i, &bytes)
//! out.write_tensor(experts, &vec![0u8; out.tensor_size(experts)])?;
//! out.finish()?; // renames model.gguf.partial to model.gguf
//!
//! let f = GgufFile::open(&path)?;
//! assert_eq!(f.architecture(), Some("gpt-oss"));
//! let t = f.tensor("blk.0.ffn_down_exps.weight").unwrap();
//! assert_eq!((t.dtype, t.shape.as_slice()), (DType::Mxfp4, &[4, 96, 64][..]));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

pub mod constants;
mod reader;
mod split;
mod value;
mod writer;

pub use reader::{GgufFile, TensorInfo};
pub use split::{is_split_key, split_path, split_prefix, GgufModel, MAX_SPLITS};
pub use value::{MetaArray, MetaValue, DUMP_ARRAY_ITEMS};
pub use writer::{
    split_output_prefix, GgufOutput, GgufWriter, PlannedFileInfo, SplitKeyOrder, SplitRule,
};

use std::path::PathBuf;

use crate::DType;

/// What is wrong with a GGUF file (or with what a caller asked the writer to write), and where.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// Wraps any other error with the file it concerns.
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: Box<GgufError>,
    },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The output could not be created or committed (exists, is an input, is being written by another
    /// process, ...); the message names the path.
    #[error(transparent)]
    Output(#[from] crate::atomic::OutputError),

    // ---- reading ----
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: Vec<u8> },
    #[error("unsupported GGUF version {0} (supported: 2 and 3)")]
    UnsupportedVersion(u32),
    #[error("truncated: {what} needs {needed} bytes at offset {offset} but the file has {available} left")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error(
        "header claims {count} {what}, more than the {remaining} bytes left in the file could hold"
    )]
    ImplausibleCount {
        what: &'static str,
        count: u64,
        remaining: u64,
    },
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },
    #[error("key #{index} at offset {offset} is empty")]
    EmptyKey { index: u64, offset: u64 },
    #[error("duplicate key '{key}'")]
    DuplicateKey { key: String },
    #[error("key '{key}': unknown value type id {type_id} at offset {offset}")]
    UnknownValueType {
        key: String,
        type_id: u32,
        offset: u64,
    },
    #[error("key '{key}': arrays nested deeper than {max} levels")]
    ArrayTooDeep { key: String, max: usize },
    #[error("general.alignment must be a u32 power of two, found {found}")]
    BadAlignment { found: String },
    #[error("tensor #{index} name '{name}' is {len} bytes long; ggml allows at most {max}")]
    TensorNameTooLong {
        index: u64,
        name: String,
        len: usize,
        max: usize,
    },
    #[error("duplicate tensor name '{name}'")]
    DuplicateTensor { name: String },
    #[error("tensor '{name}': {n_dims} dimensions, expected 1 to 4")]
    BadDimCount { name: String, n_dims: u64 },
    #[error("tensor '{name}': dimension {dim} is {value}, expected 1 to 2^63-1")]
    BadDim {
        name: String,
        dim: usize,
        value: u64,
    },
    #[error("tensor '{name}': shape {shape:?} has too many elements")]
    ShapeOverflow { name: String, shape: Vec<u64> },
    #[error("tensor '{name}': unknown or unsupported ggml type id {type_id}")]
    UnknownTensorType { name: String, type_id: u32 },
    #[error("tensor '{name}': row length {row_len} is not a multiple of {dtype}'s block size {block_size}")]
    RowNotBlockMultiple {
        name: String,
        row_len: usize,
        dtype: DType,
        block_size: usize,
    },
    #[error("tensor '{name}': data offset {offset}, expected {expected} (tensors must be contiguous, in order, each padded to the alignment)")]
    BadTensorOffset {
        name: String,
        offset: u64,
        expected: u64,
    },
    #[error("tensor '{name}': data [{start}, {end}) lies outside the file ({file_len} bytes)")]
    TensorOutOfFile {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    // ---- split sets (split.rs) ----
    #[error("{key} {why}")]
    SplitKey { key: &'static str, why: String },
    #[error("is shard {} of {count} (split.no {no}) but is not named {expected}, so the other shards cannot be found", no + 1)]
    SplitName {
        no: usize,
        count: usize,
        expected: String,
    },
    #[error("missing: shard {} of the {count}-file split model {} belongs to", no + 1, given.display())]
    SplitMissing {
        no: usize,
        count: usize,
        given: PathBuf,
    },
    #[error("named like a shard of the same split model but not one of its {count} files (left over from another split?); move it away or the set to its own folder")]
    SplitStray { count: usize },
    #[error("does not belong to this split set: {key} is {found}, expected {expected}")]
    SplitMismatch {
        key: &'static str,
        found: String,
        expected: String,
    },
    #[error("split.tensors.count says {expected} tensors but the {count} shards hold {found}")]
    SplitTensorCount {
        expected: usize,
        found: usize,
        count: usize,
    },
    #[error("tensor '{name}' is also in {}", first.display())]
    SplitDuplicateTensor { name: String, first: PathBuf },

    // ---- writing ----
    #[error("tensor '{name}': {dtype} cannot be stored in GGUF")]
    UnsupportedDType { name: String, dtype: DType },
    #[error("tensor '{name}': invalid shape {shape:?}: {why}")]
    InvalidShape {
        name: String,
        shape: Vec<usize>,
        why: String,
    },
    #[error("invalid key '{key}': {why}")]
    InvalidKey { key: String, why: String },
    #[error("tensor index {index} out of range ({count} tensors planned)")]
    NoSuchTensor { index: usize, count: usize },
    #[error("tensor '{name}': {got} bytes given, {expected} planned")]
    WrongSize {
        name: String,
        expected: usize,
        got: usize,
    },
    #[error("a split plan must give each of the {tensors} tensors a shard, in order, none empty")]
    BadShardPlan { tensors: usize },
    #[error("would be {count} files, more than the {max} a split set can have")]
    TooManySplits { count: usize, max: usize },
    #[error("tensor '{name}' written twice")]
    WrittenTwice { name: String },
    #[error("{count} tensors never written, first '{first}'")]
    NotWritten { count: usize, first: String },
}

impl GgufError {
    /// Attaches the file name, once.
    pub(crate) fn in_file(self, path: &std::path::Path) -> GgufError {
        match self {
            e @ (GgufError::File { .. } | GgufError::Output(_)) => e,
            e => GgufError::File {
                path: path.to_owned(),
                source: Box::new(e),
            },
        }
    }
}
