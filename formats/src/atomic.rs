//! All-or-nothing output files: write `<target>.partial` beside the target, rename it into place on success,
//! remove it on error or drop. A reader never sees a half-written model under the target's name, and a failed
//! run leaves nothing behind (DESIGN.md, "Errors and output safety").

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A file being written at `<target>.partial`. [`PartialFile::commit`] syncs it and renames it to the target;
/// dropping it uncommitted deletes it.
#[derive(Debug)]
pub struct PartialFile {
    file: File,
    partial: PathBuf,
    target: PathBuf,
    committed: bool,
}

/// `<target>.partial`: same folder (so the rename stays on one file system and is atomic), name plus ".partial".
pub fn partial_path(target: &Path) -> PathBuf {
    let mut name: OsString = target.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

impl PartialFile {
    /// Creates (or truncates) `<target>.partial` for reading and writing. The target itself is untouched until
    /// [`PartialFile::commit`].
    pub fn create(target: &Path) -> io::Result<PartialFile> {
        let partial = partial_path(target);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)?;
        Ok(PartialFile {
            file,
            partial,
            target: target.to_owned(),
            committed: false,
        })
    }

    /// The open file. `&File` implements `Write` and `Seek`, and on unix `FileExt::write_all_at`, so several
    /// threads may write disjoint ranges through it at once.
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the data to disk, renames `<target>.partial` to the target (replacing an existing file), and syncs
    /// the folder so the rename itself survives a crash.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.partial, &self.target)?;
        self.committed = true;
        // The data is already safe and renamed; a folder that cannot be opened or synced (some file systems
        // refuse) only weakens crash durability, so it is not an error.
        if let Some(dir) = self.target.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error that made us drop the file is the one worth reporting.
            let _ = fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn commit_renames_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.gguf");
        let p = PartialFile::create(&target).unwrap();
        assert_eq!(p.partial_path(), dir.path().join("out.gguf.partial"));
        p.file().write_all(b"hello").unwrap();
        assert!(!target.exists());
        p.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"hello");
        assert!(!dir.path().join("out.gguf.partial").exists());
    }

    #[test]
    fn drop_removes_partial_and_keeps_old_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.gguf");
        fs::write(&target, b"old").unwrap();
        {
            let p = PartialFile::create(&target).unwrap();
            p.file().write_all(b"new but failed").unwrap();
        }
        assert!(!dir.path().join("out.gguf.partial").exists());
        assert_eq!(fs::read(&target).unwrap(), b"old");
    }
}
