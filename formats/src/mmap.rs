//! The `unsafe` operations the readers share: mapping an input file read-only, and dropping resident pages of
//! such a mapping once a streaming reader is done with them, so its resident set stays bounded whatever the
//! file size.
//!
//! A mapped file that another program truncates while we read it turns the next access past its new end into
//! SIGBUS; no check before the access can close that window. Every mapping is therefore recorded with the size
//! it had when mapped: the binary's SIGBUS handler asks [`shrunk_input`] which file shrank, and reports it by
//! name (exit 2) instead of dying with "Bus error".

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use memmap2::{Mmap, UncheckedAdvice};

/// Every file mapped by this process, with its size when mapped.
static MAPPED: Mutex<Vec<(PathBuf, u64)>> = Mutex::new(Vec::new());

/// Maps `file` (opened from `path`) read-only, as an input: it is registered so that no output is written over
/// it ([`crate::atomic::protect_input`]) and so that a later shrink can be named ([`shrunk_input`]). `len` is
/// the size the caller checked; the map covers exactly that.
pub(crate) fn map_input(file: &File, path: &Path, len: u64) -> io::Result<Mmap> {
    crate::atomic::protect_input(path);
    // SAFETY: the map is read-only and lives as long as the reader that owns it; every slice handed out borrows
    // from it. Another process truncating the file while we hold it makes a later access raise SIGBUS (not
    // undefined behaviour inside our code): the binary turns that into a clear error naming the file
    // (module docs). We never write to files we read.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file)? };
    MAPPED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((path.to_owned(), len));
    Ok(map)
}

/// A mapped input that is now shorter than when it was mapped.
#[derive(Clone, Debug)]
pub struct Shrunk {
    pub path: PathBuf,
    /// Bytes when mapped.
    pub was: u64,
    /// Bytes now.
    pub now: u64,
}

impl std::fmt::Display for Shrunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the file shrank from {} to {} bytes while ossify was reading it (another program truncated or \
             rewrote it)",
            self.path.display(),
            self.was,
            self.now
        )
    }
}

/// The first mapped input that is now shorter than when it was mapped. For the SIGBUS handler (which runs
/// this on a normal thread) and for a write from a mapped input that failed (the kernel answers EFAULT rather
/// than SIGBUS when it is the one touching the vanished pages).
pub fn shrunk_input() -> Option<Shrunk> {
    let mapped = MAPPED.lock().unwrap_or_else(|e| e.into_inner());
    mapped.iter().find_map(|(p, was)| {
        let now = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        (now < *was).then(|| Shrunk {
            path: p.clone(),
            was: *was,
            now,
        })
    })
}

/// Drops this process's resident pages under `bytes`, a sub-slice of `map` (anything else is ignored). The bytes
/// stay readable: they fault back in from the file. Best effort: an error only means the pages stay resident.
pub(crate) fn release_pages(map: &Mmap, bytes: &[u8]) {
    let base = map.as_ptr() as usize;
    let start = bytes.as_ptr() as usize;
    if bytes.is_empty() || start < base || start + bytes.len() > base + map.len() {
        return;
    }
    // SAFETY: the mapping is read-only and file-backed (`Mmap::map`: PROT_READ, MAP_SHARED). MADV_DONTNEED on
    // such a mapping only drops this process's page-table entries; the next access faults the very same bytes
    // back in from the page cache, so every slice borrowed from the map, including ones over this range, keeps
    // reading the file's contents. (It would discard data only for private or anonymous memory, which this is
    // not.)
    let _ =
        unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start - base, bytes.len()) };
}
