//! Spool files: an object is encoded into a local file and stored from there, so that an
//! archiver's memory never depends on how large its objects are.
//!
//! The local store spools into its own temporary directory (same file system, so storing is a
//! hard link and no copy); S3 spools into a directory of its own, by default under the system's
//! temporary directory, and uploads by streaming from the file. A spool file is removed when
//! it is dropped; files left by a killed process are swept the first time a process spools
//! (see [`sweep_stale`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// Extension of spool files.
pub const SPOOL_SUFFIX: &str = ".spool";
/// Extension of the temporary files that earlier versions of the local store wrote.
pub(crate) const TMP_SUFFIX: &str = ".tmp";
/// Spool and temporary files older than this belong to a process that died: building one
/// object takes seconds to minutes, never hours.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A directory spool files are created in; the first file a process creates there sweeps
/// the stale files of stopped processes.
#[derive(Debug)]
pub(crate) struct SpoolDir {
    dir: PathBuf,
    swept: AtomicBool,
}

impl SpoolDir {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            swept: AtomicBool::new(false),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// Creates a spool file here (sweeping first, once per process). Blocking.
    ///
    /// # Errors
    ///
    /// As [`SpoolFile::create`].
    pub(crate) fn create(&self) -> Result<SpoolFile> {
        if !self.swept.swap(true, Ordering::Relaxed) {
            sweep_stale(&self.dir, STALE_AFTER);
        }
        SpoolFile::create(&self.dir)
    }
}

/// A local file holding one object while it is encoded; removed when dropped.
///
/// Writes go straight to the file (the Parquet writer buffers in front of it); an I/O error
/// names the file, so that a full disk is reported as such.
#[derive(Debug)]
pub struct SpoolFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl SpoolFile {
    /// Creates a new, empty spool file in `dir` (created if missing). Blocking.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the directory or file that could not be created.
    pub(crate) fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            op: "create spool directory",
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(format!("{:016x}{SPOOL_SUFFIX}", rand::random::<u64>()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| Error::Io {
                op: "create spool file",
                path: path.clone(),
                source,
            })?;
        Ok(Self { path, file, len: 0 })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far: the object's size once it is finished.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the content durable (the local store links the file into place afterwards).
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_all().map_err(|source| Error::Io {
            op: "sync spool file",
            path: self.path.clone(),
            source,
        })
    }

    fn context(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("spool file `{}`: {e}", self.path.display()))
    }
}

impl Write for SpoolFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.write(buf) {
            Ok(n) => {
                self.len += n as u64;
                Ok(n)
            }
            Err(e) => Err(self.context(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush().map_err(|e| self.context(e))
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        // A file that outlives its process is swept later; nothing refers to it.
        let _ = fs::remove_file(&self.path);
    }
}

/// Removes spool and temporary files in `dir` that were last modified more than `older_than`
/// ago; answers how many were removed. Other files are never touched, and a file that cannot
/// be removed is skipped: this is housekeeping, never a reason to fail.
pub fn sweep_stale(dir: &Path, older_than: Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.ends_with(SPOOL_SUFFIX) || name.ends_with(TMP_SUFFIX)) {
            continue;
        }
        let stale = entry
            .metadata()
            .ok()
            .filter(fs::Metadata::is_file)
            .and_then(|m| m.modified().ok())
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > older_than);
        if stale && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(dir = %dir.display(), removed, "removed spool files left by a stopped process");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_removes_itself() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let mut spool = SpoolFile::create(&spool_dir).unwrap();
        assert!(spool.is_empty());
        spool.write_all(b"hello ").unwrap();
        spool.write_all(b"world").unwrap();
        spool.flush().unwrap();
        spool.sync().unwrap();
        assert_eq!(spool.len(), 11);
        assert_eq!(fs::read(spool.path()).unwrap(), b"hello world");
        let path = spool.path().to_owned();
        drop(spool);
        assert!(!path.exists());
    }

    #[test]
    fn sweeps_only_old_spool_and_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = |name: &str| {
            let path = dir.path().join(name);
            fs::write(&path, b"x").unwrap();
            let past = SystemTime::now() - Duration::from_secs(7200);
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(past)
                .unwrap();
            path
        };
        let old_spool = old("a.spool");
        let old_tmp = old("b.tmp");
        let other = old("keep.parquet");
        let fresh = SpoolFile::create(dir.path()).unwrap();
        assert_eq!(sweep_stale(dir.path(), STALE_AFTER), 2);
        assert!(!old_spool.exists() && !old_tmp.exists());
        assert!(other.exists() && fresh.path().exists());
        assert_eq!(sweep_stale(&dir.path().join("missing"), STALE_AFTER), 0);
    }
}
