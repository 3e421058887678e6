//! All-or-nothing outputs that never destroy what exists: the one atomic file primitive ([`PartialFile`]), the one
//! atomic folder primitive ([`PartialDir`]) and the one atomic set of files ([`PartialSet`]) every writer in ossify
//! goes through.
//!
//! An output `X` is built at `X.partial` beside it (same folder, so the final rename is atomic) and renamed to
//! `X` only when complete; a reader never sees a half-written model under the target's name. The rules:
//!
//! - **Exclusive and locked.** `X.partial` is created with `O_CREAT | O_EXCL | O_NOFOLLOW` (never through a
//!   symbolic link) and held under an exclusive `flock` for as long as it is written. A second writer of the same
//!   output finds the lock taken and gets [`OutputError::Busy`] ("another process is writing X"). A
//!   `X.partial` whose lock is free was left by a run that died (SIGKILL, power loss: a lock dies with its
//!   process); it is taken over, emptied and reused, and [`preflight`] reports it so the command can name it.
//!   A taker checks after locking that the path still names the inode it locked, so two runs that race for a
//!   stale partial cannot both win.
//! - **Never over an input.** Readers register every file they open ([`protect_input`]; the memory-mapped
//!   readers in this crate do it themselves). A target or partial that *is* one of them (same device and inode,
//!   symbolic links followed, hard links included) is refused with [`OutputError::IsInput`], `--force` or not.
//! - **Never over an existing output unless asked.** [`Existing::Refuse`] refuses an existing target, checked
//!   when the output is created and again by the final rename (`RENAME_NOREPLACE`), so a target that appears
//!   meanwhile survives too. [`Existing::Replace`] (`--force`) replaces a file, never a folder with contents:
//!   a user's folder is never removed. An empty folder is not an output and may be filled.
//! - **Nothing left behind.** Dropping an uncommitted output removes its partial; [`remove_live_partials`]
//!   removes every partial of the process (the binary calls it on SIGINT / SIGTERM before exiting).
//!
//! A set of files that must appear together (a split GGUF, safetensors shards) is a [`PartialSet`]: its
//! [`PartialFile`]s are renamed together through a journal, so a crash between two renames leaves a half-set the
//! next run recognises and removes (see [`crate::sink`]); a folder output is a [`PartialDir`] whose files are
//! plain [`PartialFile`]s (or a [`PartialSet`]) inside it. Files, folders and sets share one claim: the locked
//! partial, its rename, and its removal when dropped uncommitted.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::direct::SeqWriter;

use rustix::fs::{FlockOperation, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

/// What to do when the output already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Refuse: the default of every command.
    Refuse,
    /// Replace an existing file (`--force`). Never an input, never a folder with contents.
    Replace,
}

impl Existing {
    /// `--force` as a policy.
    pub fn from_force(force: bool) -> Existing {
        if force {
            Existing::Replace
        } else {
            Existing::Refuse
        }
    }
}

/// Why an output could not be created or committed. Every message names the path.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: already exists; not replacing it (--force replaces it)")]
    Exists { path: PathBuf },
    #[error("{path}: is one of this command's inputs{same}; ossify never writes over its inputs")]
    IsInput {
        path: PathBuf,
        /// " (the same file as INPUT)" when reached through another name (a link), else empty.
        same: String,
    },
    #[error("{target}: another process is writing it ({partial} is locked); wait for it to finish or choose another output")]
    Busy { target: PathBuf, partial: PathBuf },
    #[error("{path}: is a symbolic link; ossify does not write through links (remove it or choose another output)")]
    Symlink { path: PathBuf },
    #[error("{path}: is a folder; give a file name")]
    IsFolder { path: PathBuf },
    #[error("{path}: is not a regular file; not writing over it")]
    NotAFile { path: PathBuf },
    #[error("{path}: is a file, but this output is a folder")]
    NotAFolder { path: PathBuf },
    #[error("{path}: is a folder that is not empty; ossify never removes a folder (remove it yourself or choose another name)")]
    FolderNotEmpty { path: PathBuf },
    #[error("{path}: exists and was not made by ossify; not removing it (move it away)")]
    NotOurs { path: PathBuf },
    #[error("{path}: not a valid output name")]
    BadName { path: PathBuf },
    #[error("{path}: ends in '/', which names a folder; this output is a file")]
    TrailingSlash { path: PathBuf },
    #[error("{path}: the output folder {folder} does not exist")]
    NoFolder { path: PathBuf, folder: PathBuf },
    #[error("{path}: not one of the files this set was created for")]
    NotInSet { path: PathBuf },
    #[error("{path}: interrupted")]
    Interrupted { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_owned(),
        source,
    }
}

fn errno_err(path: &Path) -> impl Fn(Errno) -> OutputError + '_ {
    move |e| OutputError::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

/// `X.partial` for an output `X`: same folder (so the rename stays on one file system), name plus ".partial".
/// A trailing slash (`-o out/`) names the folder `out`, whose partial is `out.partial`, not `out/.partial`.
pub fn partial_path(target: &Path) -> PathBuf {
    let target = normalize(target);
    let mut name: OsString = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The target without trailing slashes or `.` components (`out/` and `out/.` are `out`).
fn normalize(target: &Path) -> PathBuf {
    target.components().collect()
}

/// The folder an output lands in (`.` for a bare name).
fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

// ---- inputs ----

static INPUTS: Mutex<Vec<(u64, u64, PathBuf)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere does not make the lists wrong: they are only pushed to and removed from.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers `path` (symbolic links followed) as an input of this process: no output may be written over it.
/// A folder registers itself and every entry directly inside it, so an output inside a checkpoint folder
/// cannot replace one of its files. A path that does not exist is ignored.
pub fn protect_input(path: &Path) {
    let Ok(m) = fs::metadata(path) else { return };
    let mut inputs = lock(&INPUTS);
    let mut add = |m: &fs::Metadata, p: &Path| {
        if !inputs
            .iter()
            .any(|(d, i, _)| (*d, *i) == (m.dev(), m.ino()))
        {
            inputs.push((m.dev(), m.ino(), p.to_owned()));
        }
    };
    add(&m, path);
    if m.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                let p = e.path();
                if let Ok(m) = fs::metadata(&p) {
                    add(&m, &p);
                }
            }
        }
    }
}

/// The registered input that `path` is (following links), if any. An input deleted since it was registered
/// no longer counts, so a reused inode number is not mistaken for it.
fn input_at(path: &Path) -> Option<PathBuf> {
    let m = fs::metadata(path).ok()?;
    let id = (m.dev(), m.ino());
    lock(&INPUTS)
        .iter()
        .filter(|(d, i, _)| (*d, *i) == id)
        .find(|(_, _, p)| fs::metadata(p).is_ok_and(|n| (n.dev(), n.ino()) == id))
        .map(|(_, _, p)| p.clone())
}

fn refuse_input(path: &Path) -> Result<(), OutputError> {
    match input_at(path) {
        Some(input) => Err(OutputError::IsInput {
            path: path.to_owned(),
            same: if input == path {
                String::new()
            } else {
                format!(" (the same file as {})", input.display())
            },
        }),
        None => Ok(()),
    }
}

// ---- live partials (for signals) ----

/// A partial output being written: (id, path, whether it is a folder).
type Live = (u64, PathBuf, bool);

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Creates a partial output through `open` and registers it as live in one step under the `LIVE` lock, so a
/// signal arriving in between cannot find the file on disk but not in the list (and leave it behind); refuses
/// once the process is shutting down.
fn create_live<T>(
    target: &Path,
    partial: &Path,
    dir: bool,
    open: impl FnOnce() -> Result<T, OutputError>,
) -> Result<(T, u64), OutputError> {
    let mut live = lock(&LIVE);
    if SHUTTING_DOWN.load(Ordering::SeqCst) {
        return Err(OutputError::Interrupted {
            path: target.to_owned(),
        });
    }
    let made = open()?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    live.push((id, partial.to_owned(), dir));
    Ok((made, id))
}

fn unregister_live(live: &mut Vec<Live>, id: u64) {
    live.retain(|(i, _, _)| *i != id);
}

/// Removes every partial output this process is writing and refuses new ones; returns what it removed. For a
/// signal handler thread about to exit: an output being committed either completes first or is removed.
pub fn remove_live_partials() -> Vec<PathBuf> {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    let mut live = lock(&LIVE);
    let mut removed = Vec::new();
    // Files first (some live inside a partial folder), then folders.
    live.sort_by_key(|(_, _, dir)| *dir);
    for (_, path, dir) in live.drain(..) {
        let ok = if dir {
            fs::remove_dir_all(&path).is_ok()
        } else {
            fs::remove_file(&path).is_ok()
        };
        if ok {
            removed.push(path);
        }
    }
    // Keep the lock held until the process exits: nothing may be committed after this.
    std::mem::forget(live);
    removed
}

// ---- checks before any work ----

/// What [`preflight`] found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// A partial output left by a run that died, which creating the output will replace.
    pub stale_partial: Option<PathBuf>,
}

/// Whether an output is one file or a folder of files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Folder,
}

/// Checks, before any work is done, that `target` may be written under `existing`: not an input, not an
/// existing output (unless replacing), its folder present, no other process writing it. Reports a stale
/// partial. Creating the output checks again (the answer may change meanwhile); this only fails early.
pub fn preflight(target: &Path, kind: Kind, existing: Existing) -> Result<Preflight, OutputError> {
    use std::os::unix::ffi::OsStrExt;
    if kind == Kind::File && target.as_os_str().as_bytes().ends_with(b"/") {
        return Err(OutputError::TrailingSlash {
            path: target.to_owned(),
        });
    }
    let target = normalize(target);
    if target.file_name().is_none() {
        return Err(OutputError::BadName { path: target });
    }
    let folder = parent_of(&target);
    if !folder.is_dir() {
        return Err(OutputError::NoFolder {
            path: target.clone(),
            folder,
        });
    }
    check_target(&target, kind, existing)?;
    let partial = partial_path(&target);
    refuse_input(&partial)?;
    let stale_partial = match fs::symlink_metadata(&partial) {
        Err(_) => None,
        Ok(m) if m.file_type().is_symlink() => {
            return Err(OutputError::Symlink { path: partial });
        }
        Ok(m) => {
            if kind == Kind::File && !m.is_file() {
                return Err(OutputError::NotAFile { path: partial });
            }
            if kind == Kind::Folder && !m.is_dir() {
                return Err(OutputError::NotOurs { path: partial });
            }
            let f = File::open(&partial).map_err(io_err(&partial))?;
            match rustix::fs::flock(&f, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => {
                    return Err(OutputError::Busy {
                        target: target.clone(),
                        partial,
                    })
                }
                Err(e) => return Err(errno_err(&partial)(e)),
            }
            if kind == Kind::Folder && !partial.join(MARKER).is_file() {
                return Err(OutputError::NotOurs { path: partial });
            }
            Some(partial)
        }
    };
    // The journal of a set of files named after the target (a split GGUF) left by a run that died mid-commit.
    let journal = set_journal_path(&target);
    let stale_partial = match stale_partial {
        None if fs::symlink_metadata(&journal).is_ok_and(|m| m.is_file()) => {
            let f = File::open(&journal).map_err(io_err(&journal))?;
            try_lock(&f, &target, &journal)?;
            Some(journal)
        }
        other => other,
    };
    Ok(Preflight { stale_partial })
}

/// The target itself: not an input; for a file, absent (or replaceable); for a folder, absent or empty.
fn check_target(target: &Path, kind: Kind, existing: Existing) -> Result<(), OutputError> {
    refuse_input(target)?;
    let m = match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(target)(e)),
        Ok(m) => m,
    };
    match kind {
        Kind::File if m.is_dir() => Err(OutputError::IsFolder {
            path: target.to_owned(),
        }),
        Kind::File if existing == Existing::Refuse => Err(OutputError::Exists {
            path: target.to_owned(),
        }),
        // Replacing renames over the name: a link is replaced, never written through.
        Kind::File if m.is_file() || m.file_type().is_symlink() => Ok(()),
        Kind::File => Err(OutputError::NotAFile {
            path: target.to_owned(),
        }),
        Kind::Folder if m.is_dir() => {
            let empty = fs::read_dir(target)
                .map_err(io_err(target))?
                .next()
                .is_none();
            if empty {
                Ok(())
            } else {
                Err(OutputError::FolderNotEmpty {
                    path: target.to_owned(),
                })
            }
        }
        Kind::Folder if existing == Existing::Refuse => Err(OutputError::Exists {
            path: target.to_owned(),
        }),
        Kind::Folder => Err(OutputError::NotAFolder {
            path: target.to_owned(),
        }),
    }
}

/// Takes an exclusive lock without waiting; a lock held elsewhere is another writer.
fn try_lock(f: &File, target: &Path, partial: &Path) -> Result<(), OutputError> {
    match rustix::fs::flock(f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(Errno::WOULDBLOCK) => Err(OutputError::Busy {
            target: target.to_owned(),
            partial: partial.to_owned(),
        }),
        Err(e) => Err(errno_err(partial)(e)),
    }
}

/// Whether `path` (not following links) still names the inode `f` has open.
fn still_at(f: &File, path: &Path) -> bool {
    match (f.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// How many times to retry when the partial changes under us (another run took it over or removed it).
const RACE_RETRIES: usize = 8;

/// Opens `partial` exclusively and locked; returns the file and whether it is a stale partial taken over (not yet
/// emptied).
fn open_partial_file(target: &Path, partial: &Path) -> Result<(File, bool), OutputError> {
    let mode = Mode::from_raw_mode(0o644);
    for _ in 0..RACE_RETRIES {
        let create =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::open(partial, create, mode) {
            Ok(fd) => {
                let f = File::from(fd);
                try_lock(&f, target, partial)?;
                if still_at(&f, partial) {
                    return Ok((f, false));
                }
            }
            Err(Errno::EXIST) => {
                if fs::symlink_metadata(partial).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(OutputError::Symlink {
                        path: partial.to_owned(),
                    });
                }
                refuse_input(partial)?;
                let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
                let f = match rustix::fs::open(partial, flags, Mode::empty()) {
                    Ok(fd) => File::from(fd),
                    Err(Errno::NOENT) => continue,
                    Err(Errno::LOOP) => {
                        return Err(OutputError::Symlink {
                            path: partial.to_owned(),
                        })
                    }
                    Err(Errno::ISDIR) => {
                        return Err(OutputError::NotAFile {
                            path: partial.to_owned(),
                        })
                    }
                    Err(e) => return Err(errno_err(partial)(e)),
                };
                if !f.metadata().map_err(io_err(partial))?.is_file() {
                    return Err(OutputError::NotAFile {
                        path: partial.to_owned(),
                    });
                }
                try_lock(&f, target, partial)?;
                if still_at(&f, partial) {
                    // Left by a run that died: ours now (the caller empties it).
                    return Ok((f, true));
                }
            }
            Err(Errno::LOOP) => {
                return Err(OutputError::Symlink {
                    path: partial.to_owned(),
                })
            }
            Err(e) => return Err(errno_err(partial)(e)),
        }
    }
    Err(OutputError::Busy {
        target: target.to_owned(),
        partial: partial.to_owned(),
    })
}

/// Renames `from` to `to`; with [`Existing::Refuse`], never over an existing `to` (`RENAME_NOREPLACE`, or a
/// check just before on file systems without it).
fn rename_into_place(from: &Path, to: &Path, existing: Existing) -> Result<(), OutputError> {
    if existing == Existing::Replace {
        return fs::rename(from, to).map_err(io_err(to));
    }
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(OutputError::Exists {
            path: to.to_owned(),
        }),
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(OutputError::Exists {
                    path: to.to_owned(),
                });
            }
            fs::rename(from, to).map_err(io_err(to))
        }
        Err(e) => Err(errno_err(to)(e)),
    }
}

/// Syncs a folder so a rename in it survives a crash. Some file systems refuse; that only weakens durability
/// of data already written and renamed, so it is not an error.
fn sync_folder(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

// ---- what a file and a folder output share ----

/// A claimed output: `X.partial` created exclusively and held locked, registered as live, renamed to `X` by a
/// commit. Dropping an uncommitted claim removes its partial (a file, or a folder with what is inside).
#[derive(Debug)]
struct Claim {
    /// The open partial (file or folder): holds the lock, and proves the path still names what we made.
    handle: File,
    partial: PathBuf,
    target: PathBuf,
    kind: Kind,
    existing: Existing,
    live: u64,
    stale: bool,
    committed: bool,
}

impl Claim {
    /// Claims `X.partial` for `target` after checking `target` may be written under `existing`. A stale partial
    /// (left by a run that died) is taken over as it is: the caller empties it.
    fn create(target: &Path, kind: Kind, existing: Existing) -> Result<Claim, OutputError> {
        let target = normalize(target);
        if SHUTTING_DOWN.load(Ordering::SeqCst) {
            return Err(OutputError::Interrupted { path: target });
        }
        if target.file_name().is_none() {
            return Err(OutputError::BadName { path: target });
        }
        check_target(&target, kind, existing)?;
        let partial = partial_path(&target);
        refuse_input(&partial)?;
        let ((handle, stale), live) =
            create_live(&target, &partial, kind == Kind::Folder, || match kind {
                Kind::File => open_partial_file(&target, &partial),
                Kind::Folder => open_partial_dir(&target, &partial),
            })?;
        Ok(Claim {
            handle,
            partial,
            target,
            kind,
            existing,
            live,
            stale,
            committed: false,
        })
    }

    /// Renames `X.partial` to `X` under `existing`, with the live list held (`live`), so a signal handler sees
    /// the output either before (and removes it) or after (and leaves it).
    fn rename_locked(
        &mut self,
        live: &mut Vec<Live>,
        existing: Existing,
    ) -> Result<(), OutputError> {
        if SHUTTING_DOWN.load(Ordering::SeqCst) {
            return Err(OutputError::Interrupted {
                path: self.target.clone(),
            });
        }
        rename_into_place(&self.partial, &self.target, existing)?;
        self.committed = true;
        unregister_live(live, self.live);
        Ok(())
    }

    /// Commits one output: with the live list held, `policy` checks the target again and says how to rename;
    /// then the rename, then the folder synced so the rename itself survives a crash.
    fn commit(
        &mut self,
        policy: impl FnOnce(&Claim) -> Result<Existing, OutputError>,
    ) -> Result<(), OutputError> {
        let mut live = lock(&LIVE);
        let existing = policy(self)?;
        self.rename_locked(&mut live, existing)?;
        drop(live);
        sync_folder(&parent_of(&self.target));
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        // Still locked by us, so nobody else can have taken the name over; best effort: the error that made us
        // drop the output is the one worth reporting.
        let mut live = lock(&LIVE);
        if still_at(&self.handle, &self.partial) {
            let _ = match self.kind {
                Kind::File => fs::remove_file(&self.partial),
                Kind::Folder => fs::remove_dir_all(&self.partial),
            };
        }
        unregister_live(&mut live, self.live);
    }
}

// ---- one file ----

/// A file being written at `X.partial`. [`PartialFile::commit`] syncs it and renames it to `X`; dropping it
/// uncommitted removes it.
#[derive(Debug)]
pub struct PartialFile {
    claim: Claim,
    /// Writes through [`PartialFile::write_at`]: direct I/O for in-order pieces of a large planned file.
    seq: SeqWriter,
}

/// Whether large outputs may be written with direct I/O (`OSSIFY_DIRECT_IO=0` says no: everything through the
/// page cache, as before).
fn direct_io_allowed() -> bool {
    std::env::var_os("OSSIFY_DIRECT_IO").is_none_or(|v| v != "0")
}

impl PartialFile {
    /// Creates `X.partial` exclusively and locked, after checking `X` may be written under `existing` (see the
    /// module docs). `X` itself is untouched until [`PartialFile::commit`].
    pub fn create(target: &Path, existing: Existing) -> Result<PartialFile, OutputError> {
        let claim = Claim::create(target, Kind::File, existing)?;
        if claim.stale {
            // Left by a run that died: ours now, emptied.
            claim.handle.set_len(0).map_err(io_err(&claim.partial))?;
        }
        Ok(PartialFile {
            claim,
            seq: SeqWriter::buffered(),
        })
    }

    /// The open file. `&File` implements `Write` and `Seek`, and `FileExt::write_all_at`, so several threads may
    /// write disjoint ranges through it at once.
    pub fn file(&self) -> &File {
        &self.claim.handle
    }

    pub fn partial_path(&self) -> &Path {
        &self.claim.partial
    }

    pub fn target(&self) -> &Path {
        &self.claim.target
    }

    /// Whether creating this output took over a partial left by a run that died.
    pub fn replaced_stale(&self) -> bool {
        self.claim.stale
    }

    /// Sizes the file to its planned length (zeros until written) for a writer that then fills it through
    /// [`PartialFile::write_at`]. A large file written front to back is then written with direct I/O, not
    /// through the page cache ([`crate::direct`]; `OSSIFY_DIRECT_IO=0` turns that off).
    pub fn set_planned_len(&mut self, len: u64) -> io::Result<()> {
        self.seq.flush()?;
        self.claim.handle.set_len(len)?;
        if direct_io_allowed() {
            self.seq = SeqWriter::new(&self.claim.handle, &self.claim.partial, len);
        }
        Ok(())
    }

    /// Writes `bytes` at `offset`; safe from several threads at once for disjoint ranges. Pieces in file order
    /// are gathered for direct writes (see [`PartialFile::set_planned_len`]); [`PartialFile::sync`] writes
    /// what is gathered.
    pub fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.seq.write_at(&self.claim.handle, bytes, offset)
    }

    /// Writes everything gathered by [`PartialFile::write_at`] and flushes the file to disk.
    pub fn sync(&self) -> io::Result<()> {
        self.seq.flush()?;
        self.claim.handle.sync_all()
    }

    /// Flushes the data to disk and renames `X.partial` to `X` (see [`Existing`]), then syncs the folder so
    /// the rename itself survives a crash.
    pub fn commit(mut self) -> Result<(), OutputError> {
        self.before_rename()?;
        self.claim.commit(|c| Ok(c.existing))
    }

    /// The data on disk, and the target still not an input.
    fn before_rename(&self) -> Result<(), OutputError> {
        self.sync().map_err(io_err(&self.claim.partial))?;
        refuse_input(&self.claim.target)
    }
}

// ---- one folder ----

/// Marks a partial folder as ossify's, so a stale one can be told from a user's folder that happens to be
/// called `X.partial` (which is never removed).
const MARKER: &str = ".ossify-partial";

/// A folder being written at `X.partial/`; [`PartialDir::commit`] renames it to `X`, dropping it uncommitted
/// removes it. Files inside are written with [`PartialFile`] (so each appears whole even inside the folder).
#[derive(Debug)]
pub struct PartialDir {
    claim: Claim,
}

impl PartialDir {
    /// Creates `X.partial/` exclusively and locked (a stale one of ours is emptied and taken over; a folder of
    /// that name not made by ossify is refused, never removed). `X` must not exist, or be an empty folder.
    pub fn create(target: &Path, existing: Existing) -> Result<PartialDir, OutputError> {
        let claim = Claim::create(target, Kind::Folder, existing)?;
        Ok(PartialDir { claim })
    }

    /// The folder files are written into (`X.partial/`).
    pub fn path(&self) -> &Path {
        &self.claim.partial
    }

    pub fn target(&self) -> &Path {
        &self.claim.target
    }

    pub fn replaced_stale(&self) -> bool {
        self.claim.stale
    }

    /// Renames `X.partial/` to `X` (replacing an empty folder `X`). Files inside must be committed first.
    pub fn commit(mut self) -> Result<(), OutputError> {
        let marker = self.claim.partial.join(MARKER);
        fs::remove_file(&marker).map_err(io_err(&marker))?;
        let _ = self.claim.handle.sync_all();
        self.claim.commit(|c| {
            // An empty folder at X is replaced by the rename itself; anything else is refused again here.
            check_target(&c.target, Kind::Folder, c.existing)?;
            Ok(if c.target.is_dir() {
                Existing::Replace
            } else {
                Existing::Refuse
            })
        })
    }
}

fn open_partial_dir(target: &Path, partial: &Path) -> Result<(File, bool), OutputError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for _ in 0..RACE_RETRIES {
        // mkdir never follows a link and fails on any existing name: it is the exclusive create of a folder.
        let fresh = match fs::create_dir(partial) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(io_err(partial)(e)),
        };
        let dir = match rustix::fs::open(partial, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT) => continue,
            Err(Errno::LOOP) => {
                return Err(OutputError::Symlink {
                    path: partial.to_owned(),
                })
            }
            Err(Errno::NOTDIR) => {
                return Err(OutputError::NotOurs {
                    path: partial.to_owned(),
                })
            }
            Err(e) => return Err(errno_err(partial)(e)),
        };
        try_lock(&dir, target, partial)?;
        if !still_at(&dir, partial) {
            continue;
        }
        let marker = partial.join(MARKER);
        if fresh {
            File::create(&marker).map_err(io_err(&marker))?;
            return Ok((dir, false));
        }
        // Ours (marked) and abandoned (unlocked): empty it. Only plain files are ever written inside.
        if !marker.is_file() {
            return Err(OutputError::NotOurs {
                path: partial.to_owned(),
            });
        }
        for e in fs::read_dir(partial).map_err(io_err(partial))? {
            let e = e.map_err(io_err(partial))?;
            let p = e.path();
            if p == marker {
                continue;
            }
            if !e.file_type().map_err(io_err(&p))?.is_file() {
                return Err(OutputError::NotOurs {
                    path: partial.to_owned(),
                });
            }
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
        return Ok((dir, true));
    }
    Err(OutputError::Busy {
        target: target.to_owned(),
        partial: partial.to_owned(),
    })
}

// ---- a set of files ----

/// `NAME.set`, whose partial is the journal of the set named `NAME`. Never created itself.
fn set_name(name: &Path) -> PathBuf {
    let mut s = normalize(name).into_os_string();
    s.push(".set");
    PathBuf::from(s)
}

/// The journal of the set of files named `name` (the output the user named): `NAME.set.partial`.
pub fn set_journal_path(name: &Path) -> PathBuf {
    partial_path(&set_name(name))
}

/// Several files in one folder that appear together or not at all: a split GGUF's shards, safetensors shards.
///
/// A rename is atomic for one name only, so a set is committed through a journal, `NAME.set.partial` beside the
/// files. [`PartialSet::create`] claims it before any file of the set is created (exclusive and locked like any
/// partial: a second writer of the same set is [`OutputError::Busy`]). [`PartialSet::commit`] writes into it the
/// files it is about to rename (name and inode) and syncs it, renames every file, the first (the one readers
/// open) last, and removes it. A crash between two renames leaves the journal, unlocked: the next
/// [`PartialSet::create`] of the set finds it ([`preflight`] reports it) and removes the files it lists that are
/// still the ones renamed (same inode), a set that never completed, as a stale partial is replaced. Had every
/// rename happened, the set is complete and stays; only the journal goes. A rename that fails (a target that
/// appeared meanwhile) removes the files of the set already renamed.
#[derive(Debug)]
pub struct PartialSet {
    journal: Claim,
    folder: PathBuf,
    targets: Vec<PathBuf>,
}

impl PartialSet {
    /// Claims the journal of the set `name` whose files will be `targets` (all in `name`'s folder; the first is
    /// the one readers open), recovering from a run that died while committing it. Create the files after this,
    /// each a [`PartialFile`] with its own [`Existing`] rule.
    pub fn create(name: &Path, targets: &[PathBuf]) -> Result<PartialSet, OutputError> {
        let name = normalize(name);
        let folder = parent_of(&name);
        let targets: Vec<PathBuf> = targets.iter().map(|t| normalize(t)).collect();
        if let Some(t) = targets
            .iter()
            .find(|t| t.file_name().is_none() || parent_of(t) != folder)
        {
            return Err(OutputError::BadName { path: t.clone() });
        }
        // The journal is never renamed to NAME.set, so whatever is there is left alone.
        let journal = Claim::create(&set_name(&name), Kind::File, Existing::Replace)?;
        if journal.stale {
            remove_half_set(&journal.partial, &folder)?;
            journal
                .handle
                .set_len(0)
                .map_err(io_err(&journal.partial))?;
        }
        Ok(PartialSet {
            journal,
            folder,
            targets,
        })
    }

    /// The files, in order, as [`PartialSet::create`] was given them.
    pub fn targets(&self) -> &[PathBuf] {
        &self.targets
    }

    /// Whether creating the set found the journal of a run that died (and removed what it had renamed).
    pub fn replaced_stale(&self) -> bool {
        self.journal.stale
    }

    /// Syncs every file, then renames them all into place (the first last) as one step for any reader and for
    /// a crash (see [`PartialSet`]); returns the final names. `files` are the set's targets, in order.
    pub fn commit(self, files: Vec<PartialFile>) -> Result<Vec<PathBuf>, OutputError> {
        self.commit_until(files, None)
    }

    /// [`PartialSet::commit`]; with `crash_after: Some(n)`, stops after `n` renames leaving everything on disk
    /// as a SIGKILL would (tests only).
    fn commit_until(
        mut self,
        mut files: Vec<PartialFile>,
        crash_after: Option<usize>,
    ) -> Result<Vec<PathBuf>, OutputError> {
        if let Some((f, _)) = files
            .iter()
            .zip(&self.targets)
            .find(|(f, t)| f.target() != t.as_path())
        {
            return Err(OutputError::NotInSet {
                path: f.target().to_owned(),
            });
        }
        if let Some(t) = self.targets.get(files.len()) {
            return Err(OutputError::NotInSet { path: t.clone() });
        }
        for f in &files {
            f.before_rename()?;
        }
        let mut journal = Vec::new();
        for f in &files {
            let m = f.file().metadata().map_err(io_err(f.partial_path()))?;
            let name = f.target().file_name().unwrap_or_default().as_bytes();
            let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
            // Size and modification time beside the inode: a file deleted since and another written at the
            // same name can get the same inode number back, and must not be taken for ours.
            let stamp = identity(&m);
            journal.extend_from_slice(
                format!("{} {} {} {} {hex}\n", stamp.0, stamp.1, stamp.2, stamp.3).as_bytes(),
            );
        }
        let j = &self.journal;
        let write = || -> io::Result<()> {
            j.handle.set_len(0)?;
            j.handle.write_all_at(&journal, 0)?;
            j.handle.sync_all()
        };
        write().map_err(io_err(&j.partial))?;
        // The journal's name must be on disk before any rename is.
        sync_folder(&self.folder);

        let mut live = lock(&LIVE);
        let order: Vec<usize> = (1..files.len()).chain(0..files.len().min(1)).collect();
        for n in 0..=order.len() {
            if crash_after == Some(n) {
                for c in files
                    .iter_mut()
                    .map(|f| &mut f.claim)
                    .chain([&mut self.journal])
                {
                    c.committed = true;
                    unregister_live(&mut live, c.live);
                }
                return Ok(Vec::new());
            }
            let Some(&i) = order.get(n) else { break };
            let renamed = match files.get_mut(i) {
                Some(f) => {
                    let existing = f.claim.existing;
                    f.claim.rename_locked(&mut live, existing)
                }
                None => Ok(()),
            };
            if let Err(e) = renamed {
                for f in order[..n].iter().filter_map(|&d| files.get(d)) {
                    if still_at(&f.claim.handle, &f.claim.target) {
                        let _ = fs::remove_file(&f.claim.target);
                    }
                }
                // Unlock before the uncommitted files and the journal remove themselves.
                drop(live);
                return Err(e);
            }
        }
        let _ = fs::remove_file(&self.journal.partial);
        self.journal.committed = true;
        unregister_live(&mut live, self.journal.live);
        drop(live);
        sync_folder(&self.folder);
        Ok(self.targets.clone())
    }
}

/// After a crash mid-commit: the files a stale `journal` lists that are still the ones it renamed. All of them:
/// the set completed and stays. Some: the set never completed, and they are removed (never an input).
fn remove_half_set(journal: &Path, folder: &Path) -> Result<(), OutputError> {
    let text = fs::read(journal).map_err(io_err(journal))?;
    let mut listed = 0usize;
    let mut renamed = Vec::new();
    // A line cut short by the crash names nothing: no rename starts before the journal is synced.
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').take(6).collect();
        let [dev, ino, len, mtime, hex] = fields[..] else {
            continue;
        };
        let number = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
        let mtime_ns = std::str::from_utf8(mtime)
            .ok()
            .and_then(|t| t.parse::<i128>().ok());
        let (Some(dev), Some(ino), Some(len), Some(mtime_ns), Some(name)) =
            (number(dev), number(ino), number(len), mtime_ns, unhex(hex))
        else {
            continue;
        };
        listed += 1;
        let path = folder.join(std::ffi::OsStr::from_bytes(&name));
        let ours = fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_file() && identity(&m) == (dev, ino, len, mtime_ns));
        if ours && input_at(&path).is_none() {
            renamed.push(path);
        }
    }
    if renamed.len() < listed {
        for p in &renamed {
            fs::remove_file(p).map_err(io_err(p))?;
        }
    }
    Ok(())
}

/// What tells a renamed file of a set from whatever was put at its name since: device, inode, size and
/// modification time in nanoseconds (a rename keeps all four; an inode number alone can be reused).
fn identity(m: &fs::Metadata) -> (u64, u64, u64, i128) {
    let mtime_ns = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
    (m.dev(), m.ino(), m.len(), mtime_ns)
}

fn unhex(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.is_empty() || hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_renames_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.gguf");
        let p = PartialFile::create(&target, Existing::Refuse).unwrap();
        assert_eq!(p.partial_path(), dir.path().join("out.gguf.partial"));
        p.file().write_all(b"hello").unwrap();
        assert!(!target.exists());
        p.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"hello");
        assert!(!dir.path().join("out.gguf.partial").exists());
    }

    #[test]
    fn existing_target_is_refused_unless_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.gguf");
        fs::write(&target, b"old").unwrap();
        let e = PartialFile::create(&target, Existing::Refuse).unwrap_err();
        assert!(matches!(e, OutputError::Exists { .. }), "{e}");
        {
            let p = PartialFile::create(&target, Existing::Replace).unwrap();
            p.file().write_all(b"new but failed").unwrap();
        }
        assert!(!dir.path().join("out.gguf.partial").exists());
        assert_eq!(fs::read(&target).unwrap(), b"old");
        let p = PartialFile::create(&target, Existing::Replace).unwrap();
        p.file().write_all(b"new").unwrap();
        p.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn a_target_appearing_meanwhile_survives() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.gguf");
        let p = PartialFile::create(&target, Existing::Refuse).unwrap();
        fs::write(&target, b"theirs").unwrap();
        assert!(matches!(
            p.commit().unwrap_err(),
            OutputError::Exists { .. }
        ));
        assert_eq!(fs::read(&target).unwrap(), b"theirs");
        assert!(!dir.path().join("out.gguf.partial").exists());
    }

    #[test]
    fn second_writer_is_busy_and_stale_partial_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.gguf");
        let a = PartialFile::create(&target, Existing::Refuse).unwrap();
        let e = PartialFile::create(&target, Existing::Refuse).unwrap_err();
        assert!(matches!(e, OutputError::Busy { .. }), "{e}");
        assert!(matches!(
            preflight(&target, Kind::File, Existing::Refuse).unwrap_err(),
            OutputError::Busy { .. }
        ));
        drop(a);
        // A partial nobody holds (what a SIGKILL leaves) is reported, then taken over and emptied.
        let partial = partial_path(&target);
        fs::write(&partial, b"stale bytes").unwrap();
        let pf = preflight(&target, Kind::File, Existing::Refuse).unwrap();
        assert_eq!(pf.stale_partial.as_deref(), Some(partial.as_path()));
        let b = PartialFile::create(&target, Existing::Refuse).unwrap();
        assert!(b.replaced_stale());
        assert_eq!(b.file().metadata().unwrap().len(), 0);
        b.commit().unwrap();
    }

    #[test]
    fn never_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        let target = dir.path().join("out.gguf");
        std::os::unix::fs::symlink(&victim, partial_path(&target)).unwrap();
        let e = PartialFile::create(&target, Existing::Replace).unwrap_err();
        assert!(matches!(e, OutputError::Symlink { .. }), "{e}");
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn inputs_are_never_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("config.json"), b"{}").unwrap();
        protect_input(&src);
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(src.join("config.json"), &link).unwrap();
        for t in [src.join("config.json"), link] {
            let e = PartialFile::create(&t, Existing::Replace).unwrap_err();
            assert!(matches!(e, OutputError::IsInput { .. }), "{e}");
        }
        assert_eq!(fs::read(src.join("config.json")).unwrap(), b"{}");
    }

    #[test]
    fn a_stale_partial_folder_of_ours_is_taken_over_and_a_live_one_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("st");
        {
            let _live = PartialDir::create(&target, Existing::Refuse).unwrap();
            let e = PartialDir::create(&target, Existing::Refuse).unwrap_err();
            assert!(matches!(e, OutputError::Busy { .. }), "{e}");
        }
        assert!(!partial_path(&target).exists());
        // What a SIGKILL leaves: our marked folder with a half-written shard, and no lock.
        let partial = partial_path(&target);
        fs::create_dir(&partial).unwrap();
        fs::write(partial.join(MARKER), b"").unwrap();
        fs::write(partial.join("model.safetensors.partial"), b"half").unwrap();
        let pf = preflight(&target, Kind::Folder, Existing::Refuse).unwrap();
        assert_eq!(pf.stale_partial.as_deref(), Some(partial.as_path()));
        let d = PartialDir::create(&target, Existing::Refuse).unwrap();
        assert!(d.replaced_stale());
        let left: Vec<_> = fs::read_dir(&partial)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(MARKER)]);
        d.commit().unwrap();
        assert!(target.is_dir() && fs::read_dir(&target).unwrap().next().is_none());
    }

    #[test]
    fn folders_trailing_slash_and_user_folders() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ft");
        let with_slash = PathBuf::from(format!("{}/", target.display()));
        assert_eq!(partial_path(&with_slash), dir.path().join("ft.partial"));
        let d = PartialDir::create(&with_slash, Existing::Refuse).unwrap();
        let f = PartialFile::create(&d.path().join("a.bin"), Existing::Refuse).unwrap();
        f.file().write_all(b"x").unwrap();
        f.commit().unwrap();
        d.commit().unwrap();
        assert_eq!(fs::read(target.join("a.bin")).unwrap(), b"x");
        assert!(!target.join(MARKER).exists());
        // Not empty: refused even when replacing; the folder is untouched.
        let e = PartialDir::create(&target, Existing::Replace).unwrap_err();
        assert!(matches!(e, OutputError::FolderNotEmpty { .. }), "{e}");
        // A user's folder named like a partial is never removed.
        let other = dir.path().join("o");
        fs::create_dir(dir.path().join("o.partial")).unwrap();
        fs::write(dir.path().join("o.partial/mine"), b"1").unwrap();
        let e = PartialDir::create(&other, Existing::Refuse).unwrap_err();
        assert!(matches!(e, OutputError::NotOurs { .. }), "{e}");
        assert!(dir.path().join("o.partial/mine").exists());
        // An empty folder may be filled.
        let empty = dir.path().join("empty");
        fs::create_dir(&empty).unwrap();
        PartialDir::create(&empty, Existing::Refuse)
            .unwrap()
            .commit()
            .unwrap();
        assert!(empty.is_dir());
    }

    fn set_files(targets: &[PathBuf], existing: Existing) -> Vec<PartialFile> {
        targets
            .iter()
            .map(|t| {
                let f = PartialFile::create(t, existing).unwrap();
                f.file().write_all(t.to_string_lossy().as_bytes()).unwrap();
                f
            })
            .collect()
    }

    #[test]
    fn a_set_appears_whole_and_a_crash_between_renames_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let name = dir.path().join("m.gguf");
        let targets: Vec<PathBuf> = ["m-1.gguf", "m-2.gguf", "m-3.gguf"]
            .iter()
            .map(|n| dir.path().join(n))
            .collect();
        let journal = set_journal_path(&name);
        assert_eq!(journal, dir.path().join("m.gguf.set.partial"));

        // A second writer of the same set is busy while the first holds it.
        let set = PartialSet::create(&name, &targets).unwrap();
        assert!(matches!(
            PartialSet::create(&name, &targets).unwrap_err(),
            OutputError::Busy { .. }
        ));
        // Killed after the first rename (m-2; the first file, the one readers open, goes last).
        set.commit_until(set_files(&targets, Existing::Refuse), Some(1))
            .unwrap();
        assert!(targets[1].is_file() && !targets[0].exists() && !targets[2].exists());
        assert!(journal.is_file());
        let pf = preflight(&name, Kind::File, Existing::Refuse).unwrap();
        assert_eq!(pf.stale_partial.as_deref(), Some(journal.as_path()));

        // The next run finds the half-set and removes what the dead run renamed, then completes.
        let set = PartialSet::create(&name, &targets).unwrap();
        assert!(set.replaced_stale());
        assert!(!targets[1].exists());
        let files = set_files(&targets, Existing::Refuse);
        // The two partials never renamed were left too, and are taken over as any stale partial.
        let stale: Vec<bool> = files.iter().map(PartialFile::replaced_stale).collect();
        assert_eq!(stale, [true, false, true]);
        assert_eq!(set.commit(files).unwrap(), targets);
        for t in &targets {
            assert_eq!(fs::read(t).unwrap(), t.to_string_lossy().as_bytes());
            assert!(!partial_path(t).exists());
        }
        assert!(!journal.exists());

        // Killed after every rename, before the journal went: the set is complete and stays.
        let more: Vec<PathBuf> = ["n-1", "n-2"].iter().map(|n| dir.path().join(n)).collect();
        let nname = dir.path().join("n");
        PartialSet::create(&nname, &more)
            .unwrap()
            .commit_until(set_files(&more, Existing::Refuse), Some(2))
            .unwrap();
        assert!(set_journal_path(&nname).is_file());
        let set = PartialSet::create(&nname, &more).unwrap();
        assert!(more.iter().all(|t| t.is_file()));
        assert!(matches!(
            PartialFile::create(&more[0], Existing::Refuse).unwrap_err(),
            OutputError::Exists { .. }
        ));
        drop(set);
        assert!(!set_journal_path(&nname).exists());

        // A half-set whose renamed file was since replaced by someone else's: theirs is not removed.
        let set = PartialSet::create(&nname, &more).unwrap();
        set.commit_until(set_files(&more, Existing::Replace), Some(1))
            .unwrap();
        fs::remove_file(&more[1]).unwrap();
        fs::write(&more[1], b"theirs").unwrap();
        let set = PartialSet::create(&nname, &more).unwrap();
        assert!(set.replaced_stale());
        assert_eq!(fs::read(&more[1]).unwrap(), b"theirs");
        drop(set);

        // The same when theirs got the very inode number back (a file deleted, another written at the name:
        // filesystems reuse freed inodes at once; rewriting in place keeps the inode and shows it every time).
        fs::remove_file(&more[1]).unwrap();
        let set = PartialSet::create(&nname, &more).unwrap();
        set.commit_until(set_files(&more, Existing::Replace), Some(1))
            .unwrap();
        let ino = fs::metadata(&more[1]).unwrap().ino();
        fs::write(&more[1], b"theirs, same inode").unwrap();
        assert_eq!(fs::metadata(&more[1]).unwrap().ino(), ino);
        let set = PartialSet::create(&nname, &more).unwrap();
        assert!(set.replaced_stale());
        assert_eq!(fs::read(&more[1]).unwrap(), b"theirs, same inode");
    }

    #[test]
    fn a_set_whose_rename_fails_leaves_nothing_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<PathBuf> = ["a", "b", "c"].iter().map(|n| dir.path().join(n)).collect();
        let set = PartialSet::create(&dir.path().join("s"), &targets).unwrap();
        let files = set_files(&targets, Existing::Refuse);
        // c appears meanwhile: b is renamed first, then c is refused; b goes again, theirs stays.
        fs::write(&targets[2], b"theirs").unwrap();
        let e = set.commit(files).unwrap_err();
        assert!(matches!(e, OutputError::Exists { .. }), "{e}");
        assert!(!targets[0].exists() && !targets[1].exists());
        assert_eq!(fs::read(&targets[2]).unwrap(), b"theirs");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("c")]);

        // Files that are not the set's are refused before anything is renamed; a set spans one folder.
        let set = PartialSet::create(&dir.path().join("s"), &targets[..2]).unwrap();
        let files = set_files(&[targets[1].clone(), targets[0].clone()], Existing::Refuse);
        assert!(matches!(
            set.commit(files).unwrap_err(),
            OutputError::NotInSet { .. }
        ));
        assert!(!targets[0].exists() && !targets[1].exists());
        let e = PartialSet::create(&dir.path().join("s"), &[PathBuf::from("elsewhere")]);
        assert!(matches!(e.unwrap_err(), OutputError::BadName { .. }));
    }
}
