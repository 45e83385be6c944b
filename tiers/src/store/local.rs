//! Local-directory backend: atomic create-if-absent through a temporary file and a hard link.
//!
//! A write goes to `<root>/.streamtier-tmp/` (same file system), is fsynced, then hard-linked
//! to its key. `link(2)` fails with `EEXIST` if the key exists, atomically, so two writers of
//! the same key can never both succeed nor replace each other. The file system must support
//! hard links (local disks do; some network or FUSE file systems do not). Spool files
//! ([`super::SpoolFile`]) are created in the same directory and linked the same way.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::spool::{SpoolDir, SpoolFile};
use super::{invalid_range, ObjectHead, ObjectInfo, PutOutcome, TMP_DIR_NAME};
use crate::error::{Error, Result};

/// A directory holding one file per key.
#[derive(Clone, Debug)]
pub struct LocalStore {
    /// Absolute, canonical root directory.
    root: Arc<PathBuf>,
    /// Its temporary directory, where spool files are created.
    spool: Arc<SpoolDir>,
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn not_found_or(op: &'static str, key: &str, path: &Path, source: io::Error) -> Error {
    // A directory is a key prefix, not an object (as on S3).
    if matches!(
        source.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::IsADirectory
    ) {
        Error::NotFound { key: key.to_owned() }
    } else {
        io_err(op, path)(source)
    }
}

impl LocalStore {
    /// Opens the store rooted at `root`, creating the directory if it is missing.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory cannot be created or resolved.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err("create directory", &root))?;
        let root = fs::canonicalize(&root).map_err(io_err("resolve directory", &root))?;
        Ok(Self {
            spool: Arc::new(SpoolDir::new(root.join(TMP_DIR_NAME))),
            root: Arc::new(root),
        })
    }

    /// Returns the absolute root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> PathBuf {
        // Keys are validated by `Store`: relative, no `.`/`..`/empty segments.
        self.root.join(key)
    }

    /// Runs blocking file I/O off the async threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Path) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let root = Arc::clone(&self.root);
        match tokio::task::spawn_blocking(move || f(&root)).await {
            Ok(result) => result,
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(err) => Err(Error::Io {
                op: "run blocking file task",
                path: self.root.to_path_buf(),
                source: io::Error::other(err),
            }),
        }
    }

    pub(super) async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        _metadata: &[(String, String)],
    ) -> Result<PutOutcome> {
        let (key, path, dir) = (key.to_owned(), self.path_of(key), Arc::clone(&self.spool));
        self.blocking(move |root| {
            if let Some(outcome) = precheck(&key, &path)? {
                return Ok(outcome);
            }
            let mut spool = dir.create()?;
            spool.write_all(&body).map_err(io_err("write", spool.path()))?;
            publish(root, &key, &path, &spool)
        })
        .await
    }

    pub(super) async fn spool(&self) -> Result<SpoolFile> {
        let dir = Arc::clone(&self.spool);
        self.blocking(move |_| dir.create()).await
    }

    pub(super) async fn put_spooled(&self, key: &str, spool: SpoolFile) -> Result<PutOutcome> {
        let (key, path) = (key.to_owned(), self.path_of(key));
        self.blocking(move |root| publish(root, &key, &path, &spool))
            .await
    }

    pub(super) async fn get(&self, key: &str) -> Result<Bytes> {
        let (key, path) = (key.to_owned(), self.path_of(key));
        self.blocking(move |_| {
            fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| not_found_or("read", &key, &path, e))
        })
        .await
    }

    pub(super) async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let (key, path) = (key.to_owned(), self.path_of(key));
        self.blocking(move |_| {
            let mut file = File::open(&path).map_err(|e| not_found_or("open", &key, &path, e))?;
            let size = file.metadata().map_err(io_err("stat", &path))?.len();
            if range.start >= size {
                return Err(invalid_range(&key, range));
            }
            read_at(&mut file, &path, range.start, range.end.min(size))
        })
        .await
    }

    pub(super) async fn get_suffix(&self, key: &str, len: u64) -> Result<Bytes> {
        let (key, path) = (key.to_owned(), self.path_of(key));
        self.blocking(move |_| {
            let mut file = File::open(&path).map_err(|e| not_found_or("open", &key, &path, e))?;
            let size = file.metadata().map_err(io_err("stat", &path))?.len();
            read_at(&mut file, &path, size.saturating_sub(len), size)
        })
        .await
    }

    pub(super) async fn head(&self, key: &str) -> Result<ObjectHead> {
        let (key, path) = (key.to_owned(), self.path_of(key));
        self.blocking(move |_| {
            let meta = fs::metadata(&path).map_err(|e| not_found_or("stat", &key, &path, e))?;
            if !meta.is_file() {
                return Err(Error::NotFound { key });
            }
            Ok(ObjectHead {
                key,
                size: meta.len(),
                metadata: Vec::new(),
            })
        })
        .await
    }

    pub(super) async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<ObjectInfo>> {
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        self.blocking(move |root| {
            let mut found = walk(root, &prefix, start_after.as_deref())?;
            found.sort_unstable_by(|a, b| a.key.as_bytes().cmp(b.key.as_bytes()));
            if let Some(limit) = limit {
                found.truncate(limit);
            }
            Ok(found)
        })
        .await
    }

    pub(super) async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.to_owned();
        self.blocking(move |root| {
            let (base, partial) = prefix.rsplit_once('/').unwrap_or(("", &prefix));
            let dir = root.join(base);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(io_err("read directory", &dir)(e)),
            };
            let mut found = Vec::new();
            for entry in entries {
                let entry = entry.map_err(io_err("read directory", &dir))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not a key this store could have written
                };
                let file_type = entry.file_type().map_err(io_err("stat", &entry.path()))?;
                if !file_type.is_dir()
                    || !name.starts_with(partial)
                    || (base.is_empty() && name == TMP_DIR_NAME)
                    || !holds_a_file(&entry.path())?
                {
                    continue;
                }
                found.push(if base.is_empty() {
                    format!("{name}/")
                } else {
                    format!("{base}/{name}/")
                });
            }
            found.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            Ok(found)
        })
        .await
    }

    pub(super) async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key);
        self.blocking(move |_| match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &path)(e)),
            _ => Ok(()),
        })
        .await
    }

    pub(super) async fn check(&self) -> Result<()> {
        self.blocking(|root| {
            let tmp = root.join(TMP_DIR_NAME);
            fs::create_dir_all(&tmp).map_err(io_err("create directory", &tmp))?;
            fs::read_dir(root).map_err(io_err("read directory", root))?;
            Ok(())
        })
        .await
    }

    pub(super) fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

fn read_at(file: &mut File, path: &Path, start: u64, end: u64) -> Result<Bytes> {
    let len = usize::try_from(end - start).map_err(|e| io_err("read", path)(io::Error::other(e)))?;
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(start)).map_err(io_err("seek", path))?;
    file.read_exact(&mut buf).map_err(io_err("read", path))?;
    Ok(Bytes::from(buf))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Answers early when `key` is taken; the hard link is what decides atomically.
fn precheck(key: &str, path: &Path) -> Result<Option<PutOutcome>> {
    match fs::symlink_metadata(path) {
        // S3 can hold both `a` and `a/b`; a directory tree cannot.
        Ok(meta) if meta.is_dir() => Err(Error::InvalidKey {
            key: key.to_owned(),
            reason: "a directory of other keys has this name".to_owned(),
        }),
        Ok(_) => Ok(Some(PutOutcome::AlreadyExists)),
        Err(_) => Ok(None),
    }
}

/// Makes `spool` durable and links it to `path` unless `key` is taken.
fn publish(root: &Path, key: &str, path: &Path, spool: &SpoolFile) -> Result<PutOutcome> {
    if let Some(outcome) = precheck(key, path)? {
        return Ok(outcome);
    }
    spool.sync()?;
    link_into_place(root, spool.path(), path)
}

/// Hard-links the durable file `tmp` to `path`, creating (durably) the directories between.
fn link_into_place(root: &Path, tmp: &Path, path: &Path) -> Result<PutOutcome> {
    let parent = path.parent().unwrap_or(root);
    // New directories must be durable too: each one's entry in its parent is synced, and only
    // those (a new hour of an existing day costs one directory sync, not one per ancestor).
    let mut missing = Vec::new();
    let mut dir = parent;
    while dir != root && !dir.is_dir() {
        missing.push(dir);
        dir = dir.parent().unwrap_or(root);
    }
    for dir in missing.into_iter().rev() {
        match fs::create_dir(dir) {
            Ok(()) => {}
            // Another writer made it meanwhile; syncing its parent again costs little.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create directory", dir)(e)),
        }
        sync_dir(dir.parent().unwrap_or(root))?;
    }
    match fs::hard_link(tmp, path) {
        Ok(()) => {
            sync_dir(parent)?;
            Ok(PutOutcome::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(PutOutcome::AlreadyExists),
        Err(e) => Err(io_err("link", path)(e)),
    }
}

/// Whether a file lies anywhere below `dir` (a prefix without keys, such as a directory left
/// empty by deletes, is no prefix on S3); stops at the first one.
fn holds_a_file(dir: &Path) -> Result<bool> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("read directory", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let file_type = entry.file_type().map_err(io_err("stat", &entry.path()))?;
            if file_type.is_file() && entry.file_name().to_str().is_some() {
                return Ok(true);
            }
            if file_type.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(false)
}

/// Collects the files under `root` whose key starts with `prefix` and sorts after
/// `start_after`; skips the temporary directory and directories that cannot match.
fn walk(root: &Path, prefix: &str, start_after: Option<&str>) -> Result<Vec<ObjectInfo>> {
    let base = prefix.rsplit_once('/').map_or("", |(dirs, _)| dirs);
    let mut stack = vec![(root.join(base), base.to_owned())];
    let mut found = Vec::new();
    while let Some((dir, rel)) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("read directory", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue; // not a key this store could have written
            };
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let file_type = entry.file_type().map_err(io_err("stat", &entry.path()))?;
            if file_type.is_dir() {
                if key == TMP_DIR_NAME {
                    continue;
                }
                let as_prefix = format!("{key}/");
                let may_match = as_prefix.starts_with(prefix) || prefix.starts_with(&as_prefix);
                // Every key below starts with `as_prefix`: if the marker sorts after that and
                // is not itself inside the subtree, the whole subtree is before the marker.
                let all_before = start_after
                    .is_some_and(|after| after > as_prefix.as_str() && !after.starts_with(&as_prefix));
                if may_match && !all_before {
                    stack.push((entry.path(), key));
                }
            } else if file_type.is_file()
                && key.starts_with(prefix)
                && start_after.is_none_or(|after| key.as_str() > after)
            {
                let size = entry.metadata().map_err(io_err("stat", &entry.path()))?.len();
                found.push(ObjectInfo { key, size });
            }
        }
    }
    Ok(found)
}
