//! S3 backend: conditional writes (`If-None-Match: *`), ranged reads and paginated listing.
//!
//! Transient failures (throttling, 5xx, timeouts, dropped connections) are retried by the SDK,
//! configured once where the client is built ([`super::connect`]); this module adds only the
//! retry that the SDK does not do: `409 ConditionalRequestConflict`, which S3 returns when two
//! conditional writes of one key race and asks the caller to retry.

mod write;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::spool::SpoolDir;
use super::{invalid_range, ObjectHead, ObjectInfo};
use crate::error::{Error, Result};

/// Bodies larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// Size of each part of a multipart upload (S3 needs at least 5 MiB for all but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded at once.
const PART_CONCURRENCY: usize = 4;
/// Keys asked for per `ListObjectsV2` page; 1000 is the S3 maximum.
pub const DEFAULT_LIST_PAGE_SIZE: usize = 1000;
/// Attempts of a conditional write that keeps meeting `409 ConditionalRequestConflict`.
const CONFLICT_ATTEMPTS: u32 = 6;
/// Name of the default spool directory, under the system's temporary directory.
pub const DEFAULT_SPOOL_DIR_NAME: &str = "streamtier-spool";

/// A bucket and key prefix on S3 or an S3-compatible server.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    list_page_size: usize,
    /// Where objects are spooled before upload.
    spool: Arc<SpoolDir>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client's configuration is left out: it holds the credential provider.
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("spool_dir", &self.spool.path())
            .finish_non_exhaustive()
    }
}

/// How a failed S3 call should be treated.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    NotFound,
    PreconditionFailed,
    Conflict,
    InvalidRange,
    Other,
}

fn classify<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>, status: Option<u16>) -> Failure {
    match (status, err.code()) {
        (_, Some("NoSuchKey")) | (Some(404), Some("NotFound") | None) => Failure::NotFound,
        (_, Some("PreconditionFailed")) | (Some(412), _) => Failure::PreconditionFailed,
        (_, Some("ConditionalRequestConflict")) | (Some(409), None) => Failure::Conflict,
        (_, Some("InvalidRange")) | (Some(416), _) => Failure::InvalidRange,
        _ => Failure::Other,
    }
}

fn failure<E: ProvideErrorMetadata>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Failure {
    classify(err, err.raw_response().map(|r| r.status().as_u16()))
}

fn s3_err(op: &'static str, key: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::S3 {
        op,
        key: key.to_owned(),
        source: Box::new(source),
    }
}

/// Backoff between sends of a conflicting conditional write: 50 ms, 100 ms, ... capped at 1 s.
fn conflict_backoff(attempt: u32) -> Duration {
    crate::retry::backoff(attempt, Duration::from_millis(50), Duration::from_secs(1))
}

impl S3Store {
    /// Wraps a client for `bucket`; every key is stored under `prefix` (a trailing `/` is added
    /// when missing, leading ones are dropped; an empty prefix means the bucket's root).
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let prefix = prefix.trim_matches('/');
        Self {
            client,
            bucket: bucket.into(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            list_page_size: DEFAULT_LIST_PAGE_SIZE,
            spool: Arc::new(SpoolDir::new(std::env::temp_dir().join(DEFAULT_SPOOL_DIR_NAME))),
        }
    }

    /// Sets the directory objects are spooled in before upload (default:
    /// [`DEFAULT_SPOOL_DIR_NAME`] under the system's temporary directory).
    #[must_use]
    pub fn with_spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool = Arc::new(SpoolDir::new(dir.into()));
        self
    }

    /// Returns the spool directory.
    pub fn spool_dir(&self) -> &Path {
        self.spool.path()
    }

    /// Sets how many keys each `ListObjectsV2` page asks for (clamped to 1..=1000); tests use
    /// small pages to exercise pagination cheaply.
    #[must_use]
    pub fn with_list_page_size(mut self, page_size: usize) -> Self {
        self.list_page_size = page_size.clamp(1, DEFAULT_LIST_PAGE_SIZE);
        self
    }

    /// Returns the bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Returns the key prefix: empty, or ending with `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(super) async fn get(&self, key: &str) -> Result<Bytes> {
        self.get_object(key, None).await
    }

    pub(super) async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let header = format!("bytes={}-{}", range.start, range.end - 1);
        match self.get_object(key, Some(header)).await {
            Err(Error::InvalidRange { .. }) => Err(invalid_range(key, range)),
            other => other,
        }
    }

    pub(super) async fn get_suffix(&self, key: &str, len: u64) -> Result<Bytes> {
        if len > 0 {
            match self.get_object(key, Some(format!("bytes=-{len}"))).await {
                // S3 rejects a suffix range of an empty object; that object's suffix is empty.
                Err(Error::InvalidRange { .. }) => {}
                other => return other,
            }
        }
        // Either nothing was asked for or the object is empty: only its existence matters.
        self.head(key).await.map(|_| Bytes::new())
    }

    async fn get_object(&self, key: &str, range: Option<String>) -> Result<Bytes> {
        let full = self.full_key(key);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .set_range(range)
            .send()
            .await
            .map_err(|e| match failure(&e) {
                Failure::NotFound => Error::NotFound { key: key.to_owned() },
                Failure::InvalidRange => invalid_range(key, 0..0),
                _ => s3_err("get_object", &full, e),
            })?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| s3_err("get_object", &full, e))?;
        Ok(data.into_bytes())
    }

    pub(super) async fn head(&self, key: &str) -> Result<ObjectHead> {
        let full = self.full_key(key);
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| match failure(&e) {
                Failure::NotFound => Error::NotFound { key: key.to_owned() },
                _ => s3_err("head_object", &full, e),
            })?;
        let mut metadata: Vec<(String, String)> = out
            .metadata()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        metadata.sort();
        Ok(ObjectHead {
            key: key.to_owned(),
            size: u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
            metadata,
        })
    }

    pub(super) async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<ObjectInfo>> {
        let full_prefix = self.full_key(prefix);
        let start_after = start_after.map(|s| self.full_key(s));
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let want = limit.map_or(self.list_page_size, |l| {
                (l - found.len()).min(self.list_page_size)
            });
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_start_after(start_after.clone())
                .set_continuation_token(token.take())
                .max_keys(i32::try_from(want).unwrap_or(1000))
                .send()
                .await
                .map_err(|e| s3_err("list_objects_v2", &full_prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                found.push(ObjectInfo {
                    key: key.to_owned(),
                    size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                });
            }
            if let Some(limit) = limit.filter(|&l| found.len() >= l) {
                found.truncate(limit);
                break;
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(found)
    }

    pub(super) async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>> {
        let full_prefix = self.full_key(prefix);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .delimiter("/")
                .set_continuation_token(token.take())
                .max_keys(i32::try_from(self.list_page_size).unwrap_or(1000))
                .send()
                .await
                .map_err(|e| s3_err("list_objects_v2", &full_prefix, e))?;
            found.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix()?.strip_prefix(&self.prefix))
                    .map(str::to_owned),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        found.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        found.dedup();
        Ok(found)
    }

    pub(super) async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full_key(key);
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if failure(&e) == Failure::NotFound => Ok(()),
            Err(e) => Err(s3_err("delete_object", &full, e)),
        }
    }

    pub(super) async fn check(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_err("head_bucket", &self.bucket, e))
    }

    pub(super) fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_backoff_is_bounded() {
        for attempt in 0..20 {
            let d = conflict_backoff(attempt);
            assert!(d <= Duration::from_secs(1), "{d:?}");
            assert!(d >= Duration::from_millis(25), "{d:?}");
        }
    }
}
