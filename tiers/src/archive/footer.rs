//! The one footer reader: an object's footer and page index in as few ranged reads as it
//! takes, and the object as Parquet's async reader sees it.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use streamtier_schemas::parquet::meta_of;
use streamtier_schemas::ObjectMeta;

use crate::store::Store;
use crate::Error;

/// Bytes fetched from an object's end in the first request, to find its footer and page index,
/// when nothing better is known (a source uses the span of the previous object's footer).
pub const FOOTER_PREFETCH: usize = 64 * 1024;
/// The most a first footer request asks for, whatever the previous footer spanned.
pub const MAX_FOOTER_PREFETCH: usize = 8 << 20;

/// An object in the store as Parquet's async reader sees it.
pub struct ObjectFile {
    store: Store,
    key: String,
    size: u64,
    /// Bytes fetched so far.
    fetched: Arc<AtomicU64>,
    /// The whole object when it was fetched ahead in one request: reads are served from it.
    body: Option<Bytes>,
}

impl ObjectFile {
    /// The object `key` of `size` bytes; reads are served from `body` when it is the whole
    /// object fetched ahead (and counted as fetched).
    pub fn new(store: Store, key: String, size: u64, body: Option<Bytes>) -> Self {
        let fetched = Arc::new(AtomicU64::new(body.as_ref().map_or(0, |b| b.len() as u64)));
        ObjectFile {
            store,
            key,
            size,
            fetched,
            body,
        }
    }

    /// The count of bytes fetched from the store so far (shared with the readers made from it).
    pub fn fetched(&self) -> Arc<AtomicU64> {
        self.fetched.clone()
    }
}

fn external(e: Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            if let Some(body) = &self.body {
                let (start, end) = (range.start as usize, range.end as usize);
                if start <= end && end <= body.len() {
                    return Ok(body.slice(start..end));
                }
                return Err(ParquetError::EOF(format!(
                    "range {start}..{end} is past the {} bytes of `{}`",
                    body.len(),
                    self.key
                )));
            }
            let data = self.store.get_range(&self.key, range).await.map_err(external)?;
            self.fetched.fetch_add(data.len() as u64, Ordering::Relaxed);
            Ok(data)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            Ok(Arc::new(
                load_footer(self, FOOTER_PREFETCH, PageIndexPolicy::Optional)
                    .await?
                    .0,
            ))
        }
        .boxed()
    }
}

/// Reads an object's footer with its page index: the last `prefetch` bytes first, then, if the
/// footer needs more, only the bytes before those (parquet's own loader fetches the whole
/// footer again, and the page index a third time). Answers the metadata and how many bytes
/// from the end it spans, page index included: a good first request for the next object. With
/// `PageIndexPolicy::Skip` (metadata only) the page index is not fetched at all.
pub async fn load_footer(
    file: &mut ObjectFile,
    prefetch: usize,
    page_index: PageIndexPolicy,
) -> parquet::errors::Result<(ParquetMetaData, usize)> {
    let size = file.size;
    let mut tail = file.get_bytes(size.saturating_sub(prefetch as u64)..size).await?;
    // The metadata, then the page index before it: two extensions at most.
    for _ in 0..3 {
        let mut reader = ParquetMetaDataReader::new().with_page_index_policy(page_index);
        match reader.try_parse_sized(&tail, size) {
            Ok(()) => {
                let metadata_size = reader.metadata_size();
                let metadata = reader.finish()?;
                let span = footer_span(&metadata, size)
                    .or(metadata_size)
                    .unwrap_or(tail.len());
                return Ok((metadata, span));
            }
            Err(ParquetError::NeedMoreData(needed)) if needed > tail.len() && needed as u64 <= size => {
                let missing = file
                    .get_bytes(size - needed as u64..size - tail.len() as u64)
                    .await?;
                let mut joined = BytesMut::with_capacity(needed);
                joined.extend_from_slice(&missing);
                joined.extend_from_slice(&tail);
                tail = joined.freeze();
            }
            Err(e) => return Err(e),
        }
    }
    Err(ParquetError::General(format!(
        "the footer asked for more than the {} bytes it said it needed",
        tail.len()
    )))
}

/// What the footer of the object `key` of `size` bytes says (one ranged read, usually).
///
/// # Errors
/// The store's errors; [`Error::Object`] when the footer is unreadable or not streamtier's.
pub async fn read_meta(store: &Store, key: &str, size: u64) -> Result<ObjectMeta, Error> {
    let mut file = ObjectFile::new(store.clone(), key.to_owned(), size, None);
    let object = |source| Error::Object {
        key: key.to_owned(),
        source,
    };
    let metadata = match load_footer(&mut file, FOOTER_PREFETCH, PageIndexPolicy::Skip).await {
        Ok((metadata, _)) => metadata,
        Err(ParquetError::External(e)) => match e.downcast::<Error>() {
            Ok(e) => return Err(*e),
            Err(e) => {
                return Err(object(streamtier_schemas::Error::Corrupt {
                    reason: e.to_string(),
                }))
            }
        },
        Err(source) => return Err(object(streamtier_schemas::Error::UnreadableParquet { source })),
    };
    meta_of(&metadata).map_err(object)
}

/// Bytes from the start of the page index (or of the metadata) to the end of the object.
fn footer_span(metadata: &ParquetMetaData, size: u64) -> Option<usize> {
    let columns = metadata.row_groups().iter().flat_map(|g| g.columns());
    let index_start = columns
        .flat_map(|c| [c.column_index_offset(), c.offset_index_offset()])
        .flatten()
        .min();
    let start = u64::try_from(index_start?).ok()?;
    usize::try_from(size.checked_sub(start)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalStore;
    use streamtier_schemas::{encode_object, EncodeOptions, Entry, ObjectMeta, StreamId};

    /// An object with many small row groups, so that its footer and page index span more
    /// than the first request.
    fn object_with_a_large_footer() -> Bytes {
        let entries: Vec<Entry> = (0..4000u64)
            .map(|i| {
                let value = Bytes::from(format!("value {i}"));
                Entry::new(
                    StreamId::new(1_700_000_000_000 + i, 0),
                    vec![(Bytes::from_static(b"k"), value)],
                )
            })
            .collect();
        let meta = ObjectMeta {
            topic: "t".into(),
            partition: 0,
            stream: "t:0".into(),
            first_id: entries[0].id,
            last_id: entries[entries.len() - 1].id,
            entry_count: entries.len() as u64,
            last_offset: Some(entries.len() as u64),
        };
        let options = EncodeOptions {
            row_group_entries: 16,
            ..EncodeOptions::default()
        };
        encode_object(&entries, &meta, &[], &options).unwrap()
    }

    #[tokio::test]
    async fn a_footer_past_the_first_read_costs_only_its_missing_bytes() {
        let data = object_with_a_large_footer();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Local(LocalStore::new(dir.path()).unwrap());
        store.put_if_absent("o.parquet", data.clone(), &[]).await.unwrap();
        let mut file = ObjectFile::new(store, "o.parquet".into(), data.len() as u64, None);
        let whole = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&data)
            .unwrap();

        let (metadata, span) = load_footer(&mut file, FOOTER_PREFETCH, PageIndexPolicy::Optional)
            .await
            .unwrap();
        assert!(span > FOOTER_PREFETCH, "the footer spans {span} bytes");
        assert_eq!(metadata.num_row_groups(), whole.num_row_groups());
        assert!(metadata.page_index().is_some(), "the page index was read");
        // Parquet's own loader fetches the first 64 KiB, then the whole metadata, then the
        // page index: more than the span.
        assert_eq!(
            file.fetched.load(Ordering::Relaxed),
            span as u64,
            "each footer byte read once"
        );

        // Asked for its span first, it reads nothing more.
        file.fetched.store(0, Ordering::Relaxed);
        let (again, again_span) = load_footer(&mut file, span, PageIndexPolicy::Optional)
            .await
            .unwrap();
        assert_eq!(
            (again.num_row_groups(), again_span),
            (whole.num_row_groups(), span)
        );
        assert_eq!(file.fetched.load(Ordering::Relaxed), span as u64);

        // Metadata only (what `read_meta` asks): the page index is not fetched.
        file.fetched.store(0, Ordering::Relaxed);
        let (meta_only, _) = load_footer(&mut file, FOOTER_PREFETCH, PageIndexPolicy::Skip)
            .await
            .unwrap();
        assert!(meta_only.page_index().is_none());
        let fetched = file.fetched.load(Ordering::Relaxed);
        assert!(
            fetched < span as u64,
            "{fetched} bytes fetched for the metadata, the footer spans {span}"
        );
    }
}
