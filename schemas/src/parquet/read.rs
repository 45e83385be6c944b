//! Decoding objects: footer metadata and entries, with integrity checks.

use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::checksum::{self, CHECKSUM_KEY};
use super::rows::append_entries;
use super::{COL_FIELDS, COL_ID, COL_RAW_FIELDS};
use crate::columns::{ColumnType, TypedColumn};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::meta::ObjectMeta;

/// Rows per decoded batch.
const DECODE_BATCH_ROWS: usize = 1024;
/// Upper bound on entries preallocated from an (unverified) footer row count.
const MAX_PREALLOCATED: usize = 1 << 16;

fn unreadable(source: ParquetError) -> Error {
    Error::UnreadableParquet { source }
}

fn parse_footer(data: &Bytes) -> Result<ParquetMetaData> {
    let metadata = ParquetMetaDataReader::new()
        .parse_and_finish(data)
        .map_err(unreadable)?;
    check_chunk_ranges(&metadata, data.len())?;
    Ok(metadata)
}

/// Rejects column chunks that lie outside the file: parquet-rs panics on negative ranges.
///
/// # Errors
/// [`Error::Corrupt`] naming the first such chunk.
pub fn check_chunk_ranges(metadata: &ParquetMetaData, file_len: usize) -> Result<()> {
    for (group, row_group) in metadata.row_groups().iter().enumerate() {
        for chunk in row_group.columns() {
            let start = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
            let len = chunk.compressed_size();
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(len).ok())
                .and_then(|(start, len)| start.checked_add(len))
                .is_some_and(|end| end <= file_len as u64);
            if !inside {
                return Err(Error::corrupt(format!(
                    "column chunk `{}` of row group {group} lies outside the object",
                    chunk.column_path()
                )));
            }
        }
    }
    Ok(())
}

/// The streamtier metadata of a parsed footer.
///
/// # Errors
/// As [`ObjectMeta::from_pairs`].
pub fn meta_of(metadata: &ParquetMetaData) -> Result<ObjectMeta> {
    let pairs = metadata
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| kv.value.as_deref().map(|v| (kv.key.as_str(), v)));
    ObjectMeta::from_pairs(pairs)
}

/// Returns the value of a footer key-value pair.
pub fn key_value(metadata: &ParquetMetaData, key: &str) -> Option<String> {
    metadata
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
}

/// Runs a decoding step, turning a panic inside parquet-rs into [`Error::Corrupt`].
///
/// parquet-rs still panics on some damaged inputs (found by the byte-flip proptest below, e.g.
/// an `unwrap` in its map reader). A damaged object must be an error, not a crashed worker.
/// The default panic hook still prints the message; nothing is observed after the unwind.
pub fn guarded<T>(step: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(Error::corrupt(format!("parquet reader panicked: {message}")))
    })
}

/// Decodes a whole object into its metadata and entries.
///
/// Verifies that IDs strictly ascend, that the entry count and the first and last IDs
/// match the metadata, and that the entries match the footer's entries checksum.
///
/// # Errors
///
/// [`Error::UnreadableParquet`] / [`Error::UnreadableRows`] for damaged bytes, the errors of
/// [`ObjectMeta::from_pairs`] for bad metadata, and [`Error::Corrupt`] when the rows break
/// the format or disagree with the metadata.
pub fn decode_object(data: Bytes) -> Result<(ObjectMeta, Vec<Entry>)> {
    guarded(move || decode_unguarded(data))
}

fn decode_unguarded(data: Bytes) -> Result<(ObjectMeta, Vec<Entry>)> {
    let metadata = Arc::new(parse_footer(&data)?);
    let meta = meta_of(&metadata)?;
    let expected_checksum = key_value(&metadata, CHECKSUM_KEY);
    let rows = metadata.file_metadata().num_rows();
    if u64::try_from(rows).ok() != Some(meta.entry_count) {
        return Err(Error::corrupt(format!(
            "footer has {rows} rows but metadata says {} entries",
            meta.entry_count
        )));
    }

    let plain =
        ArrowReaderMetadata::try_new(metadata.clone(), ArrowReaderOptions::new()).map_err(unreadable)?;
    let (wide, roots) = reader_schema(plain.schema())?;
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
    checksum::verify(&entries, expected_checksum.as_deref())?;
    Ok((meta, entries))
}

/// The typed columns of an object, from its footer's schema: the columns after the five that
/// every object has, in order (what [`super::arrow_schema`] was given when it was written).
///
/// # Errors
///
/// [`Error::UnreadableParquet`] for a damaged footer, [`Error::Corrupt`] for a column of a
/// type that typed columns never have.
pub fn typed_columns_of(data: &Bytes) -> Result<Vec<TypedColumn>> {
    guarded(|| {
        let metadata = Arc::new(parse_footer(data)?);
        let plain = ArrowReaderMetadata::try_new(metadata, ArrowReaderOptions::new()).map_err(unreadable)?;
        let fixed = super::arrow_schema(&[]).fields().len();
        plain
            .schema()
            .fields()
            .iter()
            .skip(fixed)
            .map(|f| {
                let kind = match f.data_type() {
                    DataType::Utf8 | DataType::LargeUtf8 => ColumnType::String,
                    DataType::Int64 => ColumnType::Int64,
                    DataType::Float64 => ColumnType::Float64,
                    DataType::Boolean => ColumnType::Bool,
                    DataType::Timestamp(_, _) => ColumnType::Timestamp,
                    other => {
                        return Err(Error::corrupt(format!(
                            "typed column `{}` has type {other}",
                            f.name()
                        )))
                    }
                };
                Ok(TypedColumn::new(f.name(), kind))
            })
            .collect()
    })
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

/// The schema to decode entries with (text and binary widened to 64-bit offsets: a batch of
/// large values may exceed 2 GiB) and the root columns entries need (`id`, `fields`,
/// `raw_fields`), for [`ProjectionMask::roots`].
///
/// # Errors
/// [`Error::Corrupt`] when one of those columns is missing.
pub fn reader_schema(file_schema: &Schema) -> Result<(Schema, Vec<usize>)> {
    let mut roots = Vec::with_capacity(3);
    for name in [COL_ID, COL_FIELDS, COL_RAW_FIELDS] {
        let index = file_schema
            .index_of(name)
            .map_err(|_| Error::corrupt(format!("column `{name}` is missing")))?;
        roots.push(index);
    }
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
    Ok((wide, roots))
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

#[cfg(test)]
mod tests;
