//! The one `unsafe` operation the readers share: dropping resident pages of a read-only file mapping once a
//! streaming reader is done with them, so its resident set stays bounded whatever the file size.

use memmap2::{Mmap, UncheckedAdvice};

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
