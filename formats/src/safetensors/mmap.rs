//! The one place this crate maps files into memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{Result, SafetensorsError};

/// A read-only memory map of a whole file, with its path for error messages.
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    map: Option<Mmap>,
}

impl MappedFile {
    pub fn open(path: &Path) -> Result<MappedFile> {
        let io = |source| SafetensorsError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        // An empty file cannot be mapped on every platform; it is simply an empty slice.
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and lives as long as `MappedFile`; all slices handed out borrow from
            // it. Like every mmap-based reader (safetensors, llama.cpp), we rely on nobody truncating or
            // rewriting the file while we read it; that is a documented requirement of the tool, and the worst
            // outcome is a SIGBUS, not silent memory unsafety within our own code.
            Some(unsafe { Mmap::map(&file) }.map_err(io)?)
        };
        Ok(MappedFile {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}
