//! Decoding objects: footer metadata and entries, with integrity checks.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{Array, BinaryArray, LargeBinaryArray, LargeStringArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::{COL_FIELDS, COL_ID, COL_RAW_FIELDS};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::id::StreamId;
use crate::meta::ObjectMeta;

/// Rows per decoded batch.
const DECODE_BATCH_ROWS: usize = 1024;
/// Upper bound on entries preallocated from an (unverified) footer row count.
const MAX_PREALLOCATED: usize = 1 << 16;

fn unreadable(source: ParquetError) -> Error {
    Error::UnreadableParquet { source }
}

fn parse_footer(data: &Bytes) -> Result<ParquetMetaData> {
    ParquetMetaDataReader::new()
        .parse_and_finish(data)
        .map_err(unreadable)
}

fn meta_of(metadata: &ParquetMetaData) -> Result<ObjectMeta> {
    let pairs = metadata
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.value.as_deref().map(|v| (kv.key.as_str(), v)));
    ObjectMeta::from_pairs(pairs)
}

/// Reads only the footer metadata of an object.
///
/// # Errors
///
/// [`Error::UnreadableParquet`] when the footer cannot be parsed, and the errors of
/// [`ObjectMeta::from_pairs`] when the streamtier keys are missing or bad.
pub fn read_meta(data: Bytes) -> Result<ObjectMeta> {
    meta_of(&parse_footer(&data)?)
}

/// Decodes a whole object into its metadata and entries.
///
/// Verifies that IDs strictly ascend and that the entry count and the first and last IDs
/// match the metadata.
///
/// # Errors
///
/// [`Error::UnreadableParquet`] / [`Error::UnreadableRows`] for damaged bytes, the errors of
/// [`ObjectMeta::from_pairs`] for bad metadata, and [`Error::Corrupt`] when the rows break
/// the format or disagree with the metadata.
pub fn decode_object(data: Bytes) -> Result<(ObjectMeta, Vec<Entry>)> {
    let metadata = Arc::new(parse_footer(&data)?);
    let meta = meta_of(&metadata)?;
    let rows = metadata.file_metadata().num_rows();
    if u64::try_from(rows).ok() != Some(meta.entry_count) {
        return Err(Error::corrupt(format!(
            "footer has {rows} rows but metadata says {} entries",
            meta.entry_count
        )));
    }

    let plain = ArrowReaderMetadata::try_new(metadata.clone(), ArrowReaderOptions::new())
        .map_err(unreadable)?;
    let file_schema = plain.schema();
    let mut roots = Vec::with_capacity(3);
    for name in [COL_ID, COL_FIELDS, COL_RAW_FIELDS] {
        let index = file_schema
            .index_of(name)
            .map_err(|_| Error::corrupt(format!("column `{name}` is missing")))?;
        roots.push(index);
    }
    // Read text and binary with 64-bit offsets: a batch of large values may exceed 2 GiB.
    let wide = Schema::new_with_metadata(
        file_schema
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                COL_FIELDS | COL_RAW_FIELDS => Arc::new(widen_field(f)),
                _ => f.clone(),
            })
            .collect::<Fields>(),
        file_schema.metadata().clone(),
    );
    let options = ArrowReaderOptions::new().with_schema(Arc::new(wide));
    let reader_meta = ArrowReaderMetadata::try_new(metadata, options)
        .map_err(|e| Error::corrupt(format!("unexpected column types: {e}")))?;
    let mask = ProjectionMask::roots(reader_meta.parquet_schema(), roots);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(data, reader_meta)
        .with_projection(mask)
        .with_batch_size(DECODE_BATCH_ROWS)
        .build()
        .map_err(unreadable)?;

    let mut entries = Vec::with_capacity((meta.entry_count as usize).min(MAX_PREALLOCATED));
    for batch in reader {
        let batch = batch.map_err(|source| Error::UnreadableRows { source })?;
        append_entries(&batch, &mut entries)?;
    }
    verify(&meta, &entries)?;
    Ok((meta, entries))
}

fn verify(meta: &ObjectMeta, entries: &[Entry]) -> Result<()> {
    if entries.len() as u64 != meta.entry_count {
        return Err(Error::corrupt(format!(
            "object holds {} entries but metadata says {}",
            entries.len(),
            meta.entry_count
        )));
    }
    if let Some(pair) = entries.windows(2).find(|w| w[0].id >= w[1].id) {
        return Err(Error::corrupt(format!(
            "ids not ascending: `{}` before `{}`",
            pair[0].id, pair[1].id
        )));
    }
    let (first, last) = (entries[0].id, entries[entries.len() - 1].id);
    if first != meta.first_id || last != meta.last_id {
        return Err(Error::corrupt(format!(
            "rows span `{first}`..`{last}` but metadata says `{}`..`{}`",
            meta.first_id, meta.last_id
        )));
    }
    Ok(())
}

/// Returns `field` with 32-bit-offset text and binary types replaced by 64-bit ones.
fn widen_field(field: &FieldRef) -> Field {
    field.as_ref().clone().with_data_type(widen(field.data_type()))
}

fn widen(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8 => DataType::LargeUtf8,
        DataType::Binary => DataType::LargeBinary,
        DataType::List(f) => DataType::List(Arc::new(widen_field(f))),
        DataType::Map(f, sorted) => DataType::Map(Arc::new(widen_field(f)), *sorted),
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(|f| Arc::new(widen_field(f))).collect())
        }
        other => other.clone(),
    }
}

/// A text column with 32- or 64-bit offsets.
enum Text<'a> {
    Small(&'a StringArray),
    Large(&'a LargeStringArray),
}

impl<'a> Text<'a> {
    fn new(array: &'a dyn Array, what: &str) -> Result<Self> {
        match array.data_type() {
            DataType::Utf8 => Ok(Text::Small(array.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(Text::Large(array.as_string::<i64>())),
            other => Err(Error::corrupt(format!("`{what}` has type {other}, expected text"))),
        }
    }

    fn value(&self, i: usize) -> &'a str {
        match self {
            Text::Small(a) => a.value(i),
            Text::Large(a) => a.value(i),
        }
    }
}

/// A binary column with 32- or 64-bit offsets.
enum Binary<'a> {
    Small(&'a BinaryArray),
    Large(&'a LargeBinaryArray),
}

impl<'a> Binary<'a> {
    fn new(array: &'a dyn Array) -> Result<Self> {
        match array.data_type() {
            DataType::Binary => Ok(Binary::Small(array.as_binary::<i32>())),
            DataType::LargeBinary => Ok(Binary::Large(array.as_binary::<i64>())),
            other => Err(Error::corrupt(format!(
                "`raw_fields` elements have type {other}, expected binary"
            ))),
        }
    }

    fn value(&self, i: usize) -> &'a [u8] {
        match self {
            Binary::Small(a) => a.value(i),
            Binary::Large(a) => a.value(i),
        }
    }
}

/// Decodes the entries of one record batch holding at least the columns `id`, `fields` and
/// `raw_fields` (text and binary with 32- or 64-bit offsets), for example a batch read
/// from selected row groups. Does not check ID order.
///
/// # Errors
///
/// [`Error::Corrupt`] when a column is missing or mistyped, an ID does not parse, or a
/// `raw_fields` list has an odd length.
pub fn entries_from_batch(batch: &RecordBatch) -> Result<Vec<Entry>> {
    let mut entries = Vec::with_capacity(batch.num_rows());
    append_entries(batch, &mut entries)?;
    Ok(entries)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| Error::corrupt(format!("column `{name}` is missing")))
}

fn append_entries(batch: &RecordBatch, out: &mut Vec<Entry>) -> Result<()> {
    let ids = Text::new(column(batch, COL_ID)?, COL_ID)?;
    let map = column(batch, COL_FIELDS)?
        .as_map_opt()
        .ok_or_else(|| Error::corrupt("`fields` is not a map"))?;
    let keys = Text::new(map.keys().as_ref(), "fields.key")?;
    let values = Text::new(map.values().as_ref(), "fields.value")?;
    let map_offsets = map.value_offsets();
    let raw = column(batch, COL_RAW_FIELDS)?
        .as_list_opt::<i32>()
        .ok_or_else(|| Error::corrupt("`raw_fields` is not a list"))?;
    let raw_items = Binary::new(raw.values().as_ref())?;
    let raw_offsets = raw.value_offsets();

    for row in 0..batch.num_rows() {
        let text = ids.value(row);
        let id: StreamId = text
            .parse()
            .map_err(|_| Error::corrupt(format!("row has invalid id `{text}`")))?;
        let fields = if raw.is_valid(row) {
            let (start, end) = (raw_offsets[row] as usize, raw_offsets[row + 1] as usize);
            if (end - start) % 2 != 0 {
                return Err(Error::corrupt(format!(
                    "`raw_fields` of `{id}` has an odd length {}",
                    end - start
                )));
            }
            (start..end)
                .step_by(2)
                .map(|i| {
                    (
                        Bytes::copy_from_slice(raw_items.value(i)),
                        Bytes::copy_from_slice(raw_items.value(i + 1)),
                    )
                })
                .collect()
        } else {
            (map_offsets[row] as usize..map_offsets[row + 1] as usize)
                .map(|i| {
                    (
                        Bytes::copy_from_slice(keys.value(i).as_bytes()),
                        Bytes::copy_from_slice(values.value(i).as_bytes()),
                    )
                })
                .collect()
        };
        out.push(Entry { id, fields });
    }
    Ok(())
}
