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
            Some(crate::mmap::map_input(&file, path, len).map_err(io)?)
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

    /// Tells the kernel this process is done with the pages under `bytes` (a sub-slice of [`MappedFile::bytes`];
    /// anything else is ignored), so they stop counting toward its resident set. A streaming reader calls this
    /// after consuming a range, which keeps the resident set bounded whatever the file size. Best effort: an
    /// error only means the pages stay resident.
    pub fn release(&self, bytes: &[u8]) {
        let Some(map) = &self.map else { return };
        crate::mmap::release_pages(map, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_pages_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.bin");
        let data: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let f = MappedFile::open(&path).unwrap();
        let bytes = f.bytes();
        assert_eq!(bytes, &data[..]);
        // An unaligned range inside, the whole map, and a slice that is not ours (ignored).
        f.release(&bytes[100..5000]);
        assert_eq!(bytes, &data[..]);
        f.release(bytes);
        f.release(&data[..10]);
        assert_eq!(f.bytes(), &data[..]);
    }
}
