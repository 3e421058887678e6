//! Writing a planned file front to back at the speed of the disk, without passing its bytes through the page
//! cache.
//!
//! A converter writes a model once and does not read it back; through the page cache every byte is first
//! copied into a newly allocated cache page (most of `convert`'s system time, measured), then written back by
//! the kernel, and a model as large as the machine's memory evicts everything else cached. The writers
//! ([`crate::gguf`], [`crate::safetensors`]) plan every offset first and, fed by the streaming driver, write
//! their pieces in file order. A [`SeqWriter`] takes advantage of that:
//!
//! - Pieces that continue where the previous one ended (after a small gap, which is padding and stays zeros)
//!   are copied into large buffers aligned for `O_DIRECT`; each full buffer is written by a background thread
//!   through a second descriptor of the same file opened with `O_DIRECT`, while the next one fills. The disk
//!   reads the buffer by DMA: no page-cache copy, no dirty pages, no writeback left for the final `fsync`.
//! - The end of the file (the part that is not a whole number of aligned blocks) is written through the page
//!   cache, as is everything if `O_DIRECT` is not available (other platforms, a file system that refuses it)
//!   or if a piece arrives out of order: the buffered data is written first, then the writer stays buffered,
//!   so the file holds exactly the bytes written, whatever the order. Durability is unchanged: the owner
//!   `fsync`s the file ([`SeqWriter::flush`], then `sync_all`) before renaming it into place.
//!
//! Memory: at most [`CHUNKS`] buffers of [`CHUNK`] bytes per file being written, returned when the file's last
//! byte arrives.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Bytes per direct write: large enough that the device sees few, large requests.
pub const CHUNK: usize = 8 << 20;
/// Buffers per file: one filling, the rest queued or being written.
pub const CHUNKS: usize = 4;
/// Alignment of file offsets and lengths for `O_DIRECT` (a multiple of every logical block size in use; a file
/// system that needs more refuses the write, and the writer falls back to the page cache). Buffers are
/// page-aligned.
const ALIGN: usize = 4096;
/// The largest hole between consecutive pieces taken as padding (filled with zeros, which the file holds
/// there already). GGUF pads tensors to its alignment (32 by default); a larger hole ends direct writing.
const MAX_GAP: u64 = 1 << 20;

/// A file written in planned order (module docs). All methods take `&self`; any thread may write.
#[derive(Debug)]
pub struct SeqWriter {
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    /// Every write goes straight to the file through the page cache.
    Buffered,
    /// Pieces are gathered into aligned buffers for direct writes.
    Direct(Box<Stage>),
    /// A direct write failed: the error, reported to every later call.
    Failed(io::ErrorKind, String),
}

/// A buffer of [`CHUNK`] bytes, page-aligned as `O_DIRECT` needs (an anonymous map), in huge pages where the
/// kernel has them: the disk driver pins the buffer's pages for every write, and pinning 4 huge pages is
/// cheaper than 2048 small ones.
struct Chunk {
    mem: memmap2::MmapMut,
}

impl Chunk {
    fn new() -> io::Result<Chunk> {
        let mem = memmap2::MmapMut::map_anon(CHUNK)?;
        #[cfg(target_os = "linux")]
        let _ = mem.advise(memmap2::Advice::HugePage); // a hint: small pages work too
        Ok(Chunk { mem })
    }

    fn bytes(&self) -> &[u8] {
        &self.mem[..CHUNK]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.mem[..CHUNK]
    }
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chunk")
    }
}

/// A full buffer on its way to the disk: the buffer, its file offset and how many of its bytes to write.
type Job = (Chunk, u64, usize);

#[derive(Debug)]
struct Stage {
    /// The file, buffered (the owner's descriptor, duplicated).
    plain: File,
    /// The same file opened with `O_DIRECT`.
    direct: Option<File>,
    /// The planned length: the last piece ends at most [`MAX_GAP`] before it.
    len: u64,
    /// File offset of the filling buffer's first byte (aligned).
    cursor: u64,
    /// Bytes of the filling buffer used.
    filled: usize,
    chunk: Option<Chunk>,
    /// Buffers allocated so far (at most [`CHUNKS`]).
    allocated: usize,
    /// Written buffers, to fill again.
    free: Vec<Chunk>,
    io: Option<Io>,
}

/// The background writer of one file: full buffers go in, written buffers (and any error) come back.
#[derive(Debug)]
struct Io {
    tx: Option<SyncSender<Job>>,
    back: Receiver<(Chunk, io::Result<()>)>,
    in_flight: usize,
    thread: Option<JoinHandle<()>>,
}

impl SeqWriter {
    /// A writer of `file` (opened at `path`), which holds `len` bytes when complete; direct writes if this
    /// platform and file system allow them and `len` is worth it, buffered ones otherwise.
    pub fn new(file: &File, path: &Path, len: u64) -> SeqWriter {
        let state = match open_direct(file, path, len) {
            Some((plain, direct)) => State::Direct(Box::new(Stage {
                plain,
                direct: Some(direct),
                len,
                cursor: 0,
                filled: 0,
                chunk: None,
                allocated: 0,
                free: Vec::new(),
                io: None,
            })),
            None => State::Buffered,
        };
        SeqWriter {
            state: Mutex::new(state),
        }
    }

    /// A writer that only ever writes through the page cache.
    pub fn buffered() -> SeqWriter {
        SeqWriter {
            state: Mutex::new(State::Buffered),
        }
    }

    /// Whether pieces are still being gathered for direct writes (for tests and benchmarks).
    pub fn is_direct(&self) -> bool {
        matches!(*self.lock(), State::Direct(_))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `bytes` at `offset` of `file` (the file this writer was made for). Pieces must not overlap.
    pub fn write_at(&self, file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.lock();
        match &mut *state {
            State::Buffered => {
                drop(state);
                return file.write_all_at(bytes, offset);
            }
            State::Failed(kind, msg) => return Err(io::Error::new(*kind, msg.clone())),
            State::Direct(stage) => {
                let end = stage.cursor + stage.filled as u64;
                let in_order = offset >= end
                    && offset - end <= MAX_GAP
                    && offset
                        .checked_add(bytes.len() as u64)
                        .is_some_and(|e| e <= stage.len);
                if in_order {
                    if let Err(e) = stage.append(offset - end, bytes) {
                        *state = State::Failed(e.kind(), e.to_string());
                        return Err(e);
                    }
                    if stage.len - (stage.cursor + stage.filled as u64) > MAX_GAP {
                        return Ok(());
                    }
                    // What is left of the file is padding or a few small pieces: write everything gathered
                    // now, so the buffers go back, and the rest through the page cache.
                    return self.stop_direct(&mut state);
                }
            }
        }
        // Out of order: write what is gathered, then this piece and everything after through the page cache.
        let r = self.stop_direct(&mut state);
        drop(state);
        r?;
        file.write_all_at(bytes, offset)
    }

    /// Writes everything gathered; after it the file holds every byte written so far (not yet synced: the
    /// owner `fsync`s it).
    pub fn flush(&self) -> io::Result<()> {
        let mut state = self.lock();
        self.stop_direct(&mut state)
    }

    /// Ends direct writing: everything gathered reaches the file, and later writes are buffered.
    fn stop_direct(&self, state: &mut MutexGuard<'_, State>) -> io::Result<()> {
        let r = match &mut **state {
            State::Direct(stage) => stage.finish(),
            State::Failed(kind, msg) => return Err(io::Error::new(*kind, msg.clone())),
            State::Buffered => return Ok(()),
        };
        match r {
            Ok(()) => {
                **state = State::Buffered;
                Ok(())
            }
            Err(e) => {
                **state = State::Failed(e.kind(), e.to_string());
                Err(e)
            }
        }
    }
}

impl Stage {
    /// Appends `gap` zero bytes, then `bytes`, sending each buffer that fills to the disk.
    fn append(&mut self, gap: u64, mut bytes: &[u8]) -> io::Result<()> {
        let mut gap = gap as usize;
        while gap > 0 || !bytes.is_empty() {
            let mut chunk = match self.chunk.take() {
                Some(c) => c,
                None => self.free_chunk()?,
            };
            let room = CHUNK - self.filled;
            let zeros = gap.min(room);
            chunk.bytes_mut()[self.filled..self.filled + zeros].fill(0);
            let n = bytes.len().min(room - zeros);
            chunk.bytes_mut()[self.filled + zeros..self.filled + zeros + n]
                .copy_from_slice(&bytes[..n]);
            self.filled += zeros + n;
            gap -= zeros;
            bytes = &bytes[n..];
            if self.filled == CHUNK {
                self.send(chunk, CHUNK)?;
                self.cursor += CHUNK as u64;
                self.filled = 0;
            } else {
                self.chunk = Some(chunk);
            }
        }
        Ok(())
    }

    /// A buffer to fill: a new one while fewer than [`CHUNKS`] exist, else the next one the disk is done with.
    fn free_chunk(&mut self) -> io::Result<Chunk> {
        if let Some(c) = self.free.pop() {
            return Ok(c);
        }
        if self.allocated < CHUNKS {
            let c = Chunk::new()?;
            self.allocated += 1;
            return Ok(c);
        }
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| io::Error::other("no buffer free and none being written"))?;
        let (chunk, r) = io
            .back
            .recv()
            .map_err(|_| io::Error::other("the direct writer thread stopped"))?;
        io.in_flight -= 1;
        r.map(|()| chunk)
    }

    /// Hands `chunk` (its first `n` bytes, at the cursor) to the background writer, starting it if needed.
    fn send(&mut self, chunk: Chunk, n: usize) -> io::Result<()> {
        if self.io.is_none() {
            let direct = self.direct.take();
            let plain = self.plain.try_clone()?;
            let (tx, rx) = mpsc::sync_channel::<Job>(CHUNKS);
            let (back_tx, back) = mpsc::channel();
            let thread = std::thread::Builder::new()
                .name("direct-writer".into())
                .spawn(move || write_chunks(rx, back_tx, direct, plain))?;
            self.io = Some(Io {
                tx: Some(tx),
                back,
                in_flight: 0,
                thread: Some(thread),
            });
        }
        let io = self
            .io
            .as_mut()
            .ok_or_else(|| io::Error::other("the direct writer did not start"))?;
        let tx = io
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("the direct writer was stopped"))?;
        tx.send((chunk, self.cursor, n))
            .map_err(|_| io::Error::other("the direct writer thread stopped"))?;
        io.in_flight += 1;
        // Report a failed write as soon as it is known.
        while let Ok((c, r)) = io.back.try_recv() {
            io.in_flight -= 1;
            r?;
            self.free.push(c);
        }
        Ok(())
    }

    /// Writes everything gathered (the whole aligned blocks directly, the rest through the page cache), waits
    /// for the background writer and frees the buffers.
    fn finish(&mut self) -> io::Result<()> {
        let mut first_err = None;
        if let Some(chunk) = self.chunk.take() {
            let aligned = self.filled / ALIGN * ALIGN;
            let tail = chunk.bytes()[aligned..self.filled].to_vec();
            let at = self.cursor + aligned as u64;
            if aligned > 0 {
                if let Err(e) = self.send(chunk, aligned) {
                    first_err.get_or_insert(e);
                }
            }
            if let Err(e) = self.plain.write_all_at(&tail, at) {
                first_err.get_or_insert(e);
            }
            self.cursor += self.filled as u64;
            self.filled = 0;
        }
        if let Some(mut io) = self.io.take() {
            io.tx = None;
            while io.in_flight > 0 {
                match io.back.recv() {
                    Ok((_, r)) => {
                        io.in_flight -= 1;
                        if let Err(e) = r {
                            first_err.get_or_insert(e);
                        }
                    }
                    Err(_) => {
                        first_err
                            .get_or_insert(io::Error::other("the direct writer thread stopped"));
                        break;
                    }
                }
            }
            if let Some(t) = io.thread.take() {
                if t.join().is_err() {
                    first_err.get_or_insert(io::Error::other("the direct writer thread panicked"));
                }
            }
        }
        self.allocated = 0;
        self.free.clear();
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        // An abandoned output (an error elsewhere): stop the thread; what it wrote is removed with the file.
        if let Some(mut io) = self.io.take() {
            io.tx = None;
            drop(io.back);
            if let Some(t) = io.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The background writer: each buffer written directly; if the file system refuses a direct write
/// (`EINVAL`: an alignment it does not support), that buffer and every later one go through the page cache.
fn write_chunks(
    rx: Receiver<Job>,
    back: mpsc::Sender<(Chunk, io::Result<()>)>,
    mut direct: Option<File>,
    plain: File,
) {
    for (chunk, offset, n) in rx {
        let bytes = &chunk.bytes()[..n];
        let mut done = 0;
        let mut r = Ok(());
        while done < n {
            let at = offset + done as u64;
            let Some(d) = &direct else {
                r = plain.write_all_at(&bytes[done..], at);
                break;
            };
            match d.write_at(&bytes[done..], at) {
                Ok(0) => {
                    r = Err(io::Error::from(io::ErrorKind::WriteZero));
                    break;
                }
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    direct = None;
                }
                Err(e) => {
                    r = Err(e);
                    break;
                }
            }
        }
        if back.send((chunk, r)).is_err() {
            return;
        }
    }
}

/// The file duplicated, and opened again with `O_DIRECT` (checked to be the same file). `None` where that is
/// not possible or a file this small would not gain from it.
#[cfg(target_os = "linux")]
fn open_direct(file: &File, path: &Path, len: u64) -> Option<(File, File)> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::MetadataExt;
    if len < 2 * CHUNK as u64 {
        return None;
    }
    let flags = OFlags::WRONLY | OFlags::DIRECT | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let direct = File::from(rustix::fs::open(path, flags, Mode::empty()).ok()?);
    let (a, b) = (file.metadata().ok()?, direct.metadata().ok()?);
    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
        return None;
    }
    Some((file.try_clone().ok()?, direct))
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_file: &File, _path: &Path, _len: u64) -> Option<(File, File)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `len` zero bytes, as the writers plan it, and a writer for it.
    fn planned(dir: &Path, len: u64) -> (File, std::path::PathBuf, SeqWriter) {
        let path = dir.join("out.bin");
        let f = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        f.set_len(len).unwrap();
        let w = SeqWriter::new(&f, &path, len);
        (f, path, w)
    }

    fn pattern(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Pieces of odd sizes with small padding holes between them, ending before the file's end.
    fn pieces(len: usize) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 100;
        let mut k = 0u64;
        while at < len - 40 {
            let n = (((k * 7_919_993) % 3_000_017) as usize + 1).min(len - 40 - at);
            out.push((at, pattern(n, k)));
            at += n + (k % 3) as usize * 13;
            k += 1;
        }
        out
    }

    fn expected(len: usize, header: &[u8], pieces: &[(usize, Vec<u8>)]) -> Vec<u8> {
        let mut want = vec![0u8; len];
        want[..header.len()].copy_from_slice(header);
        for (at, p) in pieces {
            want[*at..at + p.len()].copy_from_slice(p);
        }
        want
    }

    #[test]
    fn in_order_pieces_with_padding_land_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let len = 3 * CHUNK + 12_345;
        let (f, path, w) = planned(dir.path(), len as u64);
        let direct = w.is_direct();
        let header = pattern(100, 99);
        w.write_at(&f, &header, 0).unwrap();
        let ps = pieces(len);
        for (at, p) in &ps {
            w.write_at(&f, p, *at as u64).unwrap();
        }
        // The last piece is within the padding of the end: everything is written and the buffers are freed.
        assert!(!w.is_direct());
        w.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected(len, &header, &ps));
        eprintln!("direct writes used: {direct}");
    }

    #[test]
    fn out_of_order_pieces_fall_back_and_stay_exact() {
        let dir = tempfile::tempdir().unwrap();
        let len = 3 * CHUNK + 4096 * 3 + 7;
        let (f, path, w) = planned(dir.path(), len as u64);
        let ps = pieces(len);
        // The first half in order, then the rest backwards: a piece behind the cursor (inside the zero-filled
        // padding) must survive the gathered zeros.
        let half = ps.len() / 2;
        for (at, p) in &ps[..half] {
            w.write_at(&f, p, *at as u64).unwrap();
        }
        for (at, p) in ps[half..].iter().rev() {
            w.write_at(&f, p, *at as u64).unwrap();
        }
        assert!(!w.is_direct());
        w.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected(len, &[], &ps));
    }

    #[test]
    fn a_skipped_small_piece_written_later_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let len = 4 * CHUNK;
        let (f, path, w) = planned(dir.path(), len as u64);
        let a = pattern(CHUNK + 5, 1);
        let small = pattern(40, 2);
        let b = pattern(CHUNK, 3);
        w.write_at(&f, &a, 0).unwrap();
        // `small` belongs at CHUNK + 5 but comes after `b`, which starts past it (inside the gap allowance).
        w.write_at(&f, &b, (CHUNK + 45) as u64).unwrap();
        w.write_at(&f, &small, (CHUNK + 5) as u64).unwrap();
        w.flush().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(&got[..CHUNK + 5], &a[..]);
        assert_eq!(&got[CHUNK + 5..CHUNK + 45], &small[..]);
        assert_eq!(&got[CHUNK + 45..2 * CHUNK + 45], &b[..]);
        assert!(got[2 * CHUNK + 45..].iter().all(|&x| x == 0));
    }

    #[test]
    fn many_threads_any_order_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let len = 2 * CHUNK + 999;
        let (f, path, w) = planned(dir.path(), len as u64);
        let ps = pieces(len);
        std::thread::scope(|s| {
            for part in ps.chunks(ps.len().div_ceil(3)) {
                let (f, w) = (&f, &w);
                s.spawn(move || {
                    for (at, p) in part {
                        w.write_at(f, p, *at as u64).unwrap();
                    }
                });
            }
        });
        w.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected(len, &[], &ps));
    }

    #[test]
    fn a_file_ended_early_is_flushed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let len = 5 * CHUNK;
        let (f, path, w) = planned(dir.path(), len as u64);
        let a = pattern(2 * CHUNK + 4097, 4);
        w.write_at(&f, &a, 0).unwrap();
        w.flush().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(&got[..a.len()], &a[..]);
        assert!(got[a.len()..].iter().all(|&x| x == 0));
        assert_eq!(got.len(), len);
    }
}
