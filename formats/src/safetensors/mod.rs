//! safetensors: memory-mapped reading of one file or a sharded folder, and a streaming writer.
//!
//! Header parsing and validation are the `safetensors` crate's (strict bounds and offset checks); what is ours
//! is the memory map, shard routing through `model.safetensors.index.json`, and turning every tensor into a
//! [`TensorView`] with our [`DType`]. A shard name taken from an index must be a plain relative path made of
//! normal components (no `..`, no root, no drive): a hostile index cannot make us open a file outside the model
//! folder. Symlinks inside the folder are followed, because the Hugging Face cache is built from them.

mod mmap;
mod reader;
mod writer;

pub use mmap::MappedFile;
pub use reader::{SafetensorsModel, TensorEntry, INDEX_FILE, SINGLE_FILE};
pub use writer::{SafetensorsOutput, SafetensorsWriter};

use std::path::PathBuf;

/// Everything that can go wrong reading or writing safetensors. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The output could not be created or committed; the message names the path.
    #[error(transparent)]
    Output(#[from] crate::atomic::OutputError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file: {source}")]
    Header {
        path: PathBuf,
        #[source]
        source: ::safetensors::SafeTensorError,
    },
    #[error("{path}: tensor '{tensor}' has dtype {dtype}, which ossify does not read")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: tensor '{tensor}': {message}")]
    BadTensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    #[error("{path}: truncated: {message}")]
    Truncated { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Index { path: PathBuf, message: String },
    #[error("{index}: shard '{shard}' is not a plain file name inside the model folder")]
    ShardOutsideFolder { index: PathBuf, shard: String },
    #[error("{index}: shard '{shard}' (holding tensor '{tensor}') does not exist")]
    MissingShard {
        index: PathBuf,
        shard: String,
        tensor: String,
    },
    #[error("{index}: names tensor '{tensor}' in {shard}, but that file has no such tensor")]
    TensorNotInShard {
        index: PathBuf,
        shard: PathBuf,
        tensor: String,
    },
    #[error("tensor '{tensor}' appears in both {first} and {second}")]
    DuplicateTensor {
        tensor: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{path}: no safetensors file found (expected {SINGLE_FILE} or {INDEX_FILE})")]
    NoModel { path: PathBuf },
    #[error("{path}: {message}")]
    Write { path: PathBuf, message: String },
}

pub type Result<T> = std::result::Result<T, SafetensorsError>;
