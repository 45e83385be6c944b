//! The cold tier: an object store (a local directory or S3) with an atomic create-if-absent write.
//!
//! Keys are relative, `/`-separated paths such as
//! `topic=orders/partition=0/dt=2024-01-01/x.parquet`; each backend adds its own root (directory
//! or key prefix). Both backends enforce the same key rules (see [`Store::put_if_absent`]) and
//! list in the same order, so a conformance suite runs unchanged against both.
//!
//! - [`local`]: a directory; writes go to a temporary file that is hard-linked into place.
//! - [`s3`]: S3 or an S3-compatible server, through `aws-sdk-s3` with `If-None-Match: *`.
//! - [`spool`]: local files that large objects are written into before they are stored, so
//!   that memory does not grow with object size ([`Store::spool`], [`Store::put_spooled_if_absent`]).
//! - [`settings`]: what the user writes ([`StoreSettings`]) and [`connect`], which builds the
//!   client at the edge.

pub mod local;
pub mod s3;
pub mod settings;
pub mod spool;

use std::ops::Range;

use bytes::Bytes;

pub use local::LocalStore;
pub use s3::S3Store;
pub use settings::{connect, StoreSettings, StoreUrl, DEFAULT_URL};
pub use spool::SpoolFile;

use crate::error::{Error, Result};

/// Name of the local store's directory of temporary files; no key may start with it.
pub const TMP_DIR_NAME: &str = ".streamtier-tmp";

/// Where archived objects live. Keys are relative (`topic=orders/partition=0/dt=.../x.parquet`);
/// the store adds its own prefix.
#[derive(Clone, Debug)]
pub enum Store {
    /// A local directory.
    Local(LocalStore),
    /// An S3 bucket and key prefix.
    S3(S3Store),
}

/// What [`Store::put_if_absent`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object did not exist and now holds the given body.
    Created,
    /// An object already existed under the key and was left untouched. This is also what a
    /// retried write sees when its first attempt reached the store but the reply was lost;
    /// callers that need to know compare the stored object with what they meant to write.
    AlreadyExists,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the store.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// What [`Store::head`] knows about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectHead {
    /// Key relative to the store.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// S3 user metadata, sorted by name (S3 lowercases the names); always empty for the local
    /// store, whose objects carry their metadata in the Parquet footer.
    pub metadata: Vec<(String, String)>,
}

macro_rules! dispatch {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Local($store) => $call,
            Store::S3($store) => $call,
        }
    };
}

impl Store {
    /// Creates `key` with `body` only if no object exists under it (S3: `If-None-Match: *`;
    /// local: a hard link, which never replaces). `metadata` becomes S3 user metadata; the
    /// local store ignores it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if `key` is empty, absolute, ends with `/`, has an empty, `.` or
    /// `..` segment, a backslash or NUL, or starts with [`TMP_DIR_NAME`]; [`Error::Io`] or
    /// [`Error::S3`] if the write fails.
    pub async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &[(String, String)],
    ) -> Result<PutOutcome> {
        validate_key(key)?;
        dispatch!(self, s => s.put_if_absent(key, body, metadata).await)
    }

    /// Creates an empty spool file to encode an object into, where this store can store it
    /// from without holding it in memory: the local store's temporary directory (storing is
    /// then a hard link), or S3's spool directory (storing streams the file). The first call
    /// of a process also removes spool files that stopped processes left behind.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the directory or file that could not be created.
    pub async fn spool(&self) -> Result<SpoolFile> {
        dispatch!(self, s => s.spool().await)
    }

    /// As [`Store::put_if_absent`], with the body in a spool file made by this store's
    /// [`Store::spool`]; the file is removed once stored (or not).
    ///
    /// # Errors
    ///
    /// As [`Store::put_if_absent`]; [`Error::Io`] naming the file if it cannot be read.
    pub async fn put_spooled_if_absent(
        &self,
        key: &str,
        spool: SpoolFile,
        metadata: &[(String, String)],
    ) -> Result<PutOutcome> {
        validate_key(key)?;
        match self {
            Store::Local(s) => s.put_spooled(key, spool).await,
            Store::S3(s) => s.put_spooled(key, spool, metadata).await,
        }
    }

    /// Reads a whole object.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if the object does not exist, [`Error::InvalidKey`] for a bad key,
    /// [`Error::Io`] or [`Error::S3`] if the read fails.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        dispatch!(self, s => s.get(key).await)
    }

    /// Reads the bytes `range` of an object; a range that runs past the end is cut at the end.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRange`] if the range is empty or starts at or after the end of the
    /// object, otherwise as [`Store::get`].
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        if range.start >= range.end {
            return Err(invalid_range(key, range));
        }
        dispatch!(self, s => s.get_range(key, range).await)
    }

    /// Reads the last `len` bytes of an object, or the whole object if it is smaller (a
    /// Parquet footer read).
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    pub async fn get_suffix(&self, key: &str, len: u64) -> Result<Bytes> {
        validate_key(key)?;
        dispatch!(self, s => s.get_suffix(key, len).await)
    }

    /// Reads the size and metadata of an object.
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    pub async fn head(&self, key: &str) -> Result<ObjectHead> {
        validate_key(key)?;
        dispatch!(self, s => s.head(key).await)
    }

    /// Lists the keys that start with `prefix` (a plain string prefix, not necessarily a whole
    /// path segment), in ascending byte order, strictly after `start_after` when given, at most
    /// `limit` of them when given. Never returns temporary files.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] if `prefix` is absolute or has an empty, `.` or `..` segment
    /// before its last `/`; [`Error::Io`] or [`Error::S3`] if listing fails.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<ObjectInfo>> {
        validate_prefix(prefix)?;
        if limit == Some(0) {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.list(prefix, start_after, limit).await)
    }

    /// Lists the prefixes one level below `prefix`, as a listing with the delimiter `/` groups
    /// them: for every key that starts with `prefix` and has a `/` after it, the key up to and
    /// including that first `/` (so `topic=` gives `topic=a/`, `topic=b/`), each once, in
    /// ascending byte order. Keys without a `/` after `prefix` are not listed, nor are the keys
    /// below a prefix (S3 returns them as common prefixes without listing those keys; the local
    /// store reads one directory and looks into each subdirectory only until it finds a file,
    /// so that it too never lists a prefix that holds no key). Never lists temporary files.
    ///
    /// # Errors
    ///
    /// As [`Store::list`].
    pub async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        dispatch!(self, s => s.list_prefixes(prefix).await)
    }

    /// Deletes an object; deleting a missing object succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] for a bad key, [`Error::Io`] or [`Error::S3`] if deletion fails.
    pub async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        dispatch!(self, s => s.delete(key).await)
    }

    /// Checks that the bucket or directory is reachable (a readiness probe).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] or [`Error::S3`] describing what is unreachable.
    pub async fn check(&self) -> Result<()> {
        dispatch!(self, s => s.check().await)
    }

    /// Returns where the store points, for logs: `s3://bucket/prefix` or `file:///abs/dir`.
    /// Never contains secrets.
    pub fn describe(&self) -> String {
        dispatch!(self, s => s.describe())
    }
}

pub(crate) fn invalid_range(key: &str, range: Range<u64>) -> Error {
    Error::InvalidRange {
        key: key.to_owned(),
        start: range.start,
        end: range.end,
    }
}

fn invalid_key(key: &str, reason: &str) -> Error {
    Error::InvalidKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Checks one `/`-separated segment that becomes a directory or file name.
fn validate_segment(key: &str, segment: &str) -> Result<()> {
    match segment {
        "" => Err(invalid_key(key, "empty path segment")),
        "." | ".." => Err(invalid_key(key, "`.` and `..` segments are not allowed")),
        _ => Ok(()),
    }
}

fn validate_chars(key: &str) -> Result<()> {
    if key.starts_with('/') {
        return Err(invalid_key(key, "key must be relative"));
    }
    if key.contains(['\\', '\0']) {
        return Err(invalid_key(key, "backslash and NUL are not allowed"));
    }
    Ok(())
}

/// Checks that `key` is a safe relative path usable by every backend.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid_key(key, "key is empty"));
    }
    validate_chars(key)?;
    for segment in key.split('/') {
        validate_segment(key, segment)?;
    }
    if key.split('/').next() == Some(TMP_DIR_NAME) {
        return Err(invalid_key(
            key,
            "keys under the temporary directory are reserved",
        ));
    }
    Ok(())
}

/// Checks a listing prefix: like a key, except that it may be empty and its last segment is a
/// partial name (it may be empty, as in `topic=a/`).
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    validate_chars(prefix)?;
    if let Some((dirs, _partial)) = prefix.rsplit_once('/') {
        for segment in dirs.split('/') {
            validate_segment(prefix, segment)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_safe_relative_paths() {
        for ok in ["a", "topic=a/partition=0/dt=2024-01-01/x.parquet", "a/.b", "a..b"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/abs",
            "a//b",
            "a/",
            "../x",
            "a/./b",
            "a/../b",
            "a\\b",
            "a\0b",
            ".streamtier-tmp/x",
        ] {
            assert!(
                matches!(validate_key(bad), Err(Error::InvalidKey { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefixes_may_be_partial_but_not_escape() {
        for ok in ["", "topic=a/", "topic=a/part", "..x", "a/.."] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["/a", "../", "a//b", "a/../b/"] {
            assert!(validate_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
