//! S3 writes: create-if-absent from memory or streamed from a spool file, in one request or,
//! above [`MULTIPART_THRESHOLD`], in parts completed with `If-None-Match: *`.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use super::{
    conflict_backoff, failure, s3_err, Failure, S3Store, CONFLICT_ATTEMPTS, MULTIPART_THRESHOLD,
    PART_CONCURRENCY, PART_SIZE,
};
use crate::error::{Error, Result};
use crate::store::spool::SpoolFile;
use crate::store::PutOutcome;

/// Read buffer of a body streamed from a spool file.
const FILE_BUFFER: usize = 256 * 1024;

/// What an upload sends: bytes in memory, or a file streamed from disk.
enum Body<'a> {
    Memory(Bytes),
    File { path: &'a Path, len: u64 },
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Memory(bytes) => bytes.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// The bytes `range` as a request body; a file body is re-opened for every attempt, so
    /// the SDK's retries can resend it.
    async fn stream(&self, range: Range<u64>) -> Result<ByteStream> {
        match self {
            Body::Memory(bytes) => Ok(ByteStream::from(
                bytes.slice(range.start as usize..range.end as usize),
            )),
            Body::File { path, .. } => ByteStream::read_from()
                .path(path)
                .offset(range.start)
                .length(Length::Exact(range.end - range.start))
                .buffer_size(FILE_BUFFER)
                .build()
                .await
                .map_err(|e| Error::Io {
                    op: "read spool file",
                    path: path.to_path_buf(),
                    source: std::io::Error::other(e),
                }),
        }
    }
}

impl S3Store {
    pub(in crate::store) async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        metadata: &[(String, String)],
    ) -> Result<PutOutcome> {
        self.put(key, Body::Memory(body), metadata).await
    }

    pub(in crate::store) async fn spool(&self) -> Result<SpoolFile> {
        let dir = Arc::clone(&self.spool);
        let result = tokio::task::spawn_blocking(move || dir.create()).await;
        result.unwrap_or_else(|e| {
            Err(Error::Io {
                op: "run blocking file task",
                path: self.spool.path().to_path_buf(),
                source: std::io::Error::other(e),
            })
        })
    }

    pub(in crate::store) async fn put_spooled(
        &self,
        key: &str,
        spool: SpoolFile,
        metadata: &[(String, String)],
    ) -> Result<PutOutcome> {
        let body = Body::File {
            path: spool.path(),
            len: spool.len(),
        };
        self.put(key, body, metadata).await
    }

    async fn put(&self, key: &str, body: Body<'_>, metadata: &[(String, String)]) -> Result<PutOutcome> {
        let full = self.full_key(key);
        let metadata: HashMap<String, String> = metadata.iter().cloned().collect();
        let len = body.len();
        if len > MULTIPART_THRESHOLD as u64 {
            return self.put_multipart(&full, body, metadata).await;
        }
        decide("put_object", &full, || async {
            let stream = body.stream(0..len).await?;
            Ok(self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&full)
                .if_none_match("*")
                .set_metadata(Some(metadata.clone()))
                .content_length(len as i64)
                .body(stream)
                .send()
                .await)
        })
        .await
    }

    /// Uploads in parts and completes with `If-None-Match: *`, so that the object appears only
    /// if absent; any failure aborts the upload so that no parts are left behind.
    ///
    /// s3s-fs 0.14 does honour `If-None-Match` on `CompleteMultipartUpload` (checked before it
    /// writes, not atomically), so no `HeadObject` pre-check is needed; the test sandbox
    /// serialises conditional writes to make the check atomic.
    async fn put_multipart(
        &self,
        full: &str,
        body: Body<'_>,
        metadata: HashMap<String, String>,
    ) -> Result<PutOutcome> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .set_metadata(Some(metadata))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .map_err(|e| s3_err("create_multipart_upload", full, e))?;
        let upload_id = created.upload_id().ok_or_else(|| {
            s3_err(
                "create_multipart_upload",
                full,
                std::io::Error::other("response has no upload id"),
            )
        })?;
        let result = self.upload_and_complete(full, upload_id, &body).await;
        if !matches!(result, Ok(PutOutcome::Created)) {
            let aborted = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .send()
                .await;
            if let Err(e) = aborted {
                // Left-over parts cost storage only; a bucket lifecycle rule can expire them.
                tracing::warn!(object_key = %full, upload_id, error = %aws_sdk_s3::error::DisplayErrorContext(&e), "failed to abort multipart upload");
            }
        }
        result
    }

    async fn upload_and_complete(&self, full: &str, upload_id: &str, body: &Body<'_>) -> Result<PutOutcome> {
        let len = body.len();
        let ranges: Vec<(i32, Range<u64>)> = (0..len)
            .step_by(PART_SIZE)
            .zip(1..)
            .map(|(start, number)| (number, start..(start + PART_SIZE as u64).min(len)))
            .collect();
        let parts: Vec<CompletedPart> = futures::stream::iter(ranges)
            .map(|(number, range)| async move {
                let chunk_len = range.end - range.start;
                let chunk = body.stream(range).await?;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(full)
                    .upload_id(upload_id)
                    .part_number(number)
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .content_length(chunk_len as i64)
                    .body(chunk)
                    .send()
                    .await
                    .map_err(|e| s3_err("upload_part", full, e))?;
                Ok::<_, Error>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
                        .build(),
                )
            })
            .buffered(PART_CONCURRENCY)
            .try_collect()
            .await?;
        let completed = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        decide("complete_multipart_upload", full, || async {
            Ok(self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .if_none_match("*")
                .multipart_upload(completed.clone())
                .send()
                .await)
        })
        .await
    }
}

/// Sends a conditional write (`If-None-Match: *`) until it is decided: created, refused because
/// the key exists, or failed. `409 ConditionalRequestConflict` is retried with backoff, up to
/// [`CONFLICT_ATTEMPTS`] sends.
async fn decide<T, E, F, Fut>(op: &'static str, full: &str, mut send: F) -> Result<PutOutcome>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<std::result::Result<T, SdkError<E, HttpResponse>>>>,
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut attempt = 0;
    loop {
        match send().await? {
            Ok(_) => return Ok(PutOutcome::Created),
            Err(e) => match failure(&e) {
                Failure::PreconditionFailed => return Ok(PutOutcome::AlreadyExists),
                Failure::Conflict if attempt + 1 < CONFLICT_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(object_key = %full, attempt, op, "conditional write conflict, retrying");
                    tokio::time::sleep(conflict_backoff(attempt)).await;
                }
                _ => return Err(s3_err(op, full, e)),
            },
        }
    }
}
