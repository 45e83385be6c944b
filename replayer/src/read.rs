//! Reading a partition without writing anywhere: the archive and the hot window as one range in
//! id order, as JSON lines or an Arrow IPC stream (the entries route and `streamtier read`). Memory stays that of one
//! source batch whatever the range: lines are produced as the reader takes them.

use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, BinaryBuilder};
use arrow_array::{ArrayRef, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema};
use bytes::Bytes;
use futures::Stream;
use streamtier_schemas::json::entry_json_line;
use streamtier_schemas::{Entry, StreamId};

use crate::filter::Filter;
use crate::range::{parse_bound, IdRange};
use crate::source::PartitionSource;
use crate::{Error, Result};

/// The range of a read: from `from` (inclusive) or after `after` (exclusive), to `to`
/// (exclusive); each an RFC 3339 time or an entry id. `after` a time excludes that whole
/// millisecond.
///
/// # Errors
/// [`Error::Invalid`] naming the field that is malformed (or `after` given with `from`),
/// [`Error::Unacceptable`] when `to` is not after the start.
pub fn read_range(from: Option<&str>, after: Option<&str>, to: Option<&str>) -> Result<IdRange> {
    let start = match (from, after) {
        (Some(_), Some(_)) => {
            return Err(Error::Invalid {
                field: "after".into(),
                reason: "give `from` or `after`, not both".into(),
            })
        }
        (Some(f), None) => parse_bound("from", f)?,
        (None, Some(a)) => {
            let bound = parse_bound("after", a)?;
            // An id excludes itself; a time (or bare milliseconds) its whole millisecond.
            let next = if a.trim().contains('-') && a.trim().parse::<StreamId>().is_ok() {
                bound.successor()
            } else {
                bound.ms.checked_add(1).map(|ms| StreamId::new(ms, 0))
            };
            next.ok_or_else(|| Error::Unacceptable {
                field: "after".into(),
                reason: "nothing comes after the last possible id".into(),
            })?
        }
        (None, None) => StreamId::MIN,
    };
    let to = to.map(|t| parse_bound("to", t)).transpose()?;
    if to.is_some_and(|t| t <= start) {
        return Err(Error::Unacceptable {
            field: "to".into(),
            reason: "must be after the start of the range".into(),
        });
    }
    Ok(IdRange { from: start, to })
}

/// How a read's entries are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line (see `streamtier_schemas::json`).
    JsonLines,
    /// An Arrow IPC stream: `id` (utf8) and `fields` (list of struct `name`, `value`, both
    /// binary), one record batch per source batch.
    ArrowStream,
}

impl Format {
    /// The media type of the body.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::JsonLines => "application/x-ndjson",
            Format::ArrowStream => "application/vnd.apache.arrow.stream",
        }
    }
}

fn arrow_schema() -> Arc<Schema> {
    let pair = Fields::from(vec![
        Field::new("name", DataType::Binary, false),
        Field::new("value", DataType::Binary, false),
    ]);
    let item = Field::new("item", DataType::Struct(pair), false);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("fields", DataType::List(Arc::new(item)), false),
    ]))
}

fn record_batch(schema: &Arc<Schema>, entries: &[Entry]) -> std::result::Result<RecordBatch, ArrowError> {
    let ids = StringArray::from_iter_values(entries.iter().map(|e| e.id.to_string()));
    let (mut names, mut values) = (BinaryBuilder::new(), BinaryBuilder::new());
    let mut offsets = Vec::with_capacity(entries.len() + 1);
    offsets.push(0i32);
    for e in entries {
        for (name, value) in &e.fields {
            names.append_value(name);
            values.append_value(value);
        }
        let end = i32::try_from(names.len())
            .map_err(|_| ArrowError::ComputeError("too many fields in one batch".into()))?;
        offsets.push(end);
    }
    let DataType::List(item) = schema.field(1).data_type() else {
        return Err(ArrowError::SchemaError("`fields` is not a list".into()));
    };
    let DataType::Struct(pair) = item.data_type() else {
        return Err(ArrowError::SchemaError("`fields` items are not structs".into()));
    };
    let pairs: Vec<ArrayRef> = vec![Arc::new(names.finish()), Arc::new(values.finish())];
    let pairs = StructArray::try_new(pair.clone(), pairs, None)?;
    let list = ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(offsets.into()),
        Arc::new(pairs),
        None,
    )?;
    RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(list)])
}

/// Writes batches of entries in one [`Format`].
enum Encoder {
    Json,
    Arrow(Box<StreamWriter<Vec<u8>>>, Arc<Schema>),
}

impl Encoder {
    fn new(format: Format) -> std::result::Result<Encoder, ArrowError> {
        Ok(match format {
            Format::JsonLines => Encoder::Json,
            Format::ArrowStream => {
                let schema = arrow_schema();
                Encoder::Arrow(Box::new(StreamWriter::try_new(Vec::new(), &schema)?), schema)
            }
        })
    }

    fn batch(&mut self, entries: &[Entry]) -> std::result::Result<Bytes, ArrowError> {
        match self {
            Encoder::Json => {
                let mut out = Vec::with_capacity(entries.len() * 64);
                for e in entries {
                    entry_json_line(e, &mut out);
                }
                Ok(Bytes::from(out))
            }
            Encoder::Arrow(writer, schema) => {
                writer.write(&record_batch(schema, entries)?)?;
                Ok(Bytes::from(std::mem::take(writer.get_mut())))
            }
        }
    }

    /// What ends the body well.
    fn finish(&mut self) -> Option<Bytes> {
        match self {
            Encoder::Json => None,
            Encoder::Arrow(writer, _) => {
                writer.finish().ok()?;
                Some(Bytes::from(std::mem::take(writer.get_mut())))
            }
        }
    }

    /// What ends the body after a failure: a JSON line saying so; an Arrow stream is left
    /// without its end marker, which readers report.
    fn failed(&self, e: &(dyn std::error::Error + 'static)) -> Option<Bytes> {
        match self {
            Encoder::Json => {
                let mut out = b"{\"error\":".to_vec();
                serde_json::to_writer(&mut out, &streamtier_schemas::Report(e).to_string()).ok()?;
                out.extend_from_slice(b"}\n");
                Some(Bytes::from(out))
            }
            Encoder::Arrow(..) => None,
        }
    }
}

/// The entries of `source`, at most `limit`, in `format`, one chunk per source batch, produced
/// as the body is taken. The first batch is read before this returns, so that a failure before
/// any entry (a missing object, Redis unreachable) is an error the caller can answer with a
/// status. A failure after that cannot: JSON lines end with `{"error": "…"}`, an Arrow stream
/// ends without its end marker.
///
/// # Errors
/// What reading the first batch failed with.
pub async fn encoded(
    mut source: PartitionSource,
    limit: Option<u64>,
    format: Format,
    filter: Option<Filter>,
) -> Result<impl Stream<Item = Bytes> + Send> {
    let left = limit.unwrap_or(u64::MAX);
    let first = taken(&mut source, filter.as_ref(), left).await?;
    let state = match Encoder::new(format) {
        Ok(encoder) => Some((source, encoder, left, filter, Some(first))),
        Err(_) => None,
    };
    Ok(futures::stream::unfold(state, |state| async move {
        let (mut source, mut encoder, left, filter, first) = state?;
        let next = match first {
            Some(first) => Ok(first),
            None => taken(&mut source, filter.as_ref(), left).await,
        };
        match next {
            Ok(Some(entries)) => {
                let take = entries.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                match encoder.batch(&entries[..take]) {
                    Ok(chunk) => Some((chunk, Some((source, encoder, left - take as u64, filter, None)))),
                    Err(e) => encoder.failed(&e).map(|chunk| (chunk, None)),
                }
            }
            Ok(None) => encoder.finish().map(|chunk| (chunk, None)),
            Err(e) => encoder.failed(&e).map(|chunk| (chunk, None)),
        }
    }))
}

/// The next entries `filter` takes, reading until some are or the range ends: no empty batch.
async fn taken(
    source: &mut PartitionSource,
    filter: Option<&Filter>,
    left: u64,
) -> Result<Option<Vec<Entry>>> {
    loop {
        if left == 0 {
            return Ok(None);
        }
        match source.next_batch().await? {
            Some(mut entries) => {
                if let Some(f) = filter {
                    entries.retain(|e| f.matches(e));
                }
                if !entries.is_empty() {
                    return Ok(Some(entries));
                }
            }
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_start_at_from_or_after_after() {
        let r = read_range(Some("5-1"), None, Some("9-0")).unwrap();
        assert_eq!((r.from, r.to), (StreamId::new(5, 1), Some(StreamId::new(9, 0))));
        assert_eq!(
            read_range(None, Some("5-1"), None).unwrap().from,
            StreamId::new(5, 2)
        );
        // After a time: the next millisecond.
        let r = read_range(None, Some("1970-01-01T00:00:00.005Z"), None).unwrap();
        assert_eq!(r.from, StreamId::new(6, 0));
        assert_eq!(
            read_range(None, Some("5"), None).unwrap().from,
            StreamId::new(6, 0)
        );
        assert_eq!(read_range(None, None, None).unwrap(), IdRange::ALL);
        let field = |e: Error| match e {
            Error::Invalid { field, .. } | Error::Unacceptable { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(
            field(read_range(Some("1-0"), Some("1-0"), None).unwrap_err()),
            "after"
        );
        assert_eq!(field(read_range(Some("soon"), None, None).unwrap_err()), "from");
        assert_eq!(
            field(read_range(Some("5-0"), None, Some("5-0")).unwrap_err()),
            "to"
        );
    }
}
