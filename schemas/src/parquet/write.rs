//! The streaming object writer: entries -> Arrow record batches -> zstd Parquet.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{
    ArrayRef, Int64Array, ListArray, MapArray, RecordBatch, StructArray,
    TimestampMillisecondArray,
};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, SchemaRef};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::{
    key_value_fields, map_entries_field, raw_element_field, EncodeOptions, COL_ID, COL_SEQ,
    COL_TS, CREATED_BY, UTC,
};
use crate::columns::{parse_value, validate_columns, ColumnType, TypedColumn, TypedValue};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::id::StreamId;
use crate::layout::validate_topic_name;
use crate::meta::ObjectMeta;

/// Largest byte size of one Arrow string/binary array (`i32` offsets).
const MAX_ARRAY_BYTES: usize = i32::MAX as usize;
/// Up to this many fields, repeated names are found by comparing pairs.
const SMALL_FIELD_COUNT: usize = 16;

/// Streaming writer for one object.
///
/// Push batches of entries in strictly ascending ID order with [`ObjectWriter::write`], then
/// [`ObjectWriter::finish`]. Memory is bounded by one row group.
pub struct ObjectWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    columns: Vec<TypedColumn>,
    entry_count: u64,
    first_id: Option<StreamId>,
    last_id: Option<StreamId>,
}

impl<W: Write + Send> ObjectWriter<W> {
    /// Starts an object that is written to `sink`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidColumn`] for bad typed columns, [`Error::InvalidOptions`] for a zstd
    /// level outside 1-22 or a zero row group size, [`Error::Parquet`] if the writer fails.
    pub fn new(sink: W, columns: &[TypedColumn], options: &EncodeOptions) -> Result<Self> {
        validate_columns(columns)?;
        if options.row_group_entries == 0 {
            return Err(Error::InvalidOptions {
                option: "row_group_entries",
                reason: "must be at least 1".into(),
            });
        }
        let level = ZstdLevel::try_new(options.zstd_level).map_err(|_| Error::InvalidOptions {
            option: "zstd_level",
            reason: format!("`{}` is outside 1-22", options.zstd_level),
        })?;
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(options.row_group_entries))
            .set_created_by(CREATED_BY.into());
        // Unique or monotonic values gain nothing from a dictionary.
        for column in [COL_ID, COL_TS, COL_SEQ] {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        let schema = super::arrow_schema(columns);
        let writer = ArrowWriter::try_new(sink, schema.clone(), Some(props.build()))
            .map_err(|source| Error::Parquet { source })?;
        Ok(ObjectWriter {
            writer,
            schema,
            columns: columns.to_vec(),
            entry_count: 0,
            first_id: None,
            last_id: None,
        })
    }

    /// Encodes `entries` (normally as one record batch) into the current row group.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfOrder`] if IDs are not strictly ascending across all calls (nothing of
    /// this call is written then), [`Error::EntryTooLarge`] for an entry over 2 GiB once
    /// encoded, [`Error::Arrow`] or [`Error::Parquet`] if encoding fails.
    pub fn write(&mut self, entries: &[Entry]) -> Result<()> {
        let mut previous = self.last_id;
        for entry in entries {
            if let Some(previous) = previous.filter(|p| *p >= entry.id) {
                return Err(Error::OutOfOrder {
                    previous,
                    next: entry.id,
                });
            }
            previous = Some(entry.id);
        }
        let mut rest = entries;
        while !rest.is_empty() {
            let take = batch_len(rest)?;
            let batch = build_batch(&self.schema, &self.columns, &rest[..take])?;
            self.writer
                .write(&batch)
                .map_err(|source| Error::Parquet { source })?;
            rest = &rest[take..];
        }
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            self.first_id.get_or_insert(first.id);
            self.last_id = Some(last.id);
            self.entry_count += entries.len() as u64;
        }
        Ok(())
    }

    /// Returns the number of entries written so far.
    pub fn entry_count(&self) -> u64 {
        self.entry_count
    }

    /// Returns the approximate encoded size so far: bytes flushed to the sink plus the
    /// estimated size of the row group in progress.
    pub fn bytes_written(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    /// Adds `meta` to the footer, closes the Parquet file and returns the sink.
    ///
    /// # Errors
    ///
    /// [`Error::MetaMismatch`] if `meta` does not describe the written entries (count, first
    /// and last ID; an object holds at least one entry), [`Error::InvalidTopic`] for a bad
    /// topic, [`Error::Parquet`] if closing fails.
    pub fn finish(mut self, meta: &ObjectMeta) -> Result<W> {
        let mismatch = |field, meta: String, data: String| Error::MetaMismatch { field, meta, data };
        let show = |id: Option<StreamId>| id.map_or_else(|| "none".into(), |id| id.to_string());
        if meta.entry_count != self.entry_count || self.entry_count == 0 {
            let (meta, data) = (meta.entry_count.to_string(), self.entry_count.to_string());
            return Err(mismatch("entry_count", meta, data));
        }
        if Some(meta.first_id) != self.first_id {
            return Err(mismatch("first_id", meta.first_id.to_string(), show(self.first_id)));
        }
        if Some(meta.last_id) != self.last_id {
            return Err(mismatch("last_id", meta.last_id.to_string(), show(self.last_id)));
        }
        validate_topic_name(&meta.topic)?;
        for (key, value) in meta.to_pairs() {
            self.writer
                .append_key_value_metadata(KeyValue::new(key, value));
        }
        self.writer
            .into_inner()
            .map_err(|source| Error::Parquet { source })
    }
}

/// Encodes a whole object in memory.
///
/// # Errors
///
/// As [`ObjectWriter::new`], [`ObjectWriter::write`] and [`ObjectWriter::finish`].
pub fn encode_object(
    entries: &[Entry],
    meta: &ObjectMeta,
    columns: &[TypedColumn],
    options: &EncodeOptions,
) -> Result<Bytes> {
    let estimate = entries.iter().map(Entry::payload_len).sum::<usize>() / 2;
    let mut writer = ObjectWriter::new(Vec::with_capacity(estimate), columns, options)?;
    writer.write(entries)?;
    writer.finish(meta).map(Bytes::from)
}

/// Returns how many leading entries fit in one batch without overflowing `i32` offsets.
fn batch_len(entries: &[Entry]) -> Result<usize> {
    let mut total = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        // Lossy UTF-8 conversion turns one invalid byte into three, hence the factor.
        let mut cost = entry.payload_len().saturating_mul(3);
        if cost > MAX_ARRAY_BYTES {
            cost = exact_cost(entry);
            if cost > MAX_ARRAY_BYTES {
                return Err(Error::EntryTooLarge {
                    id: entry.id,
                    bytes: entry.payload_len(),
                });
            }
        }
        total += cost;
        if total > MAX_ARRAY_BYTES {
            return Ok(i.max(1));
        }
    }
    Ok(entries.len())
}

/// The larger of an entry's bytes in `raw_fields` and in `fields`.
fn exact_cost(entry: &Entry) -> usize {
    let raw = entry.payload_len();
    let text: usize = entry
        .fields
        .iter()
        .map(|(n, v)| String::from_utf8_lossy(n).len() + String::from_utf8_lossy(v).len())
        .sum();
    raw.max(text)
}

/// Returns the fields as text when `fields` can hold them exactly: all UTF-8, names unique.
fn exact_text<'a>(fields: &'a [(Bytes, Bytes)], out: &mut Vec<(&'a str, &'a str)>) -> bool {
    out.clear();
    for (name, value) in fields {
        match (std::str::from_utf8(name), std::str::from_utf8(value)) {
            (Ok(name), Ok(value)) => out.push((name, value)),
            _ => return false,
        }
    }
    if out.len() <= SMALL_FIELD_COUNT {
        out.iter()
            .enumerate()
            .all(|(i, (name, _))| out[..i].iter().all(|(other, _)| other != name))
    } else {
        let mut seen = HashSet::with_capacity(out.len());
        out.iter().all(|(name, _)| seen.insert(*name))
    }
}

/// Builders of one typed column.
enum TypedBuilder {
    String(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Bool(BooleanBuilder),
    Timestamp(TimestampMillisecondBuilder),
}

impl TypedBuilder {
    fn new(kind: ColumnType, rows: usize) -> Self {
        match kind {
            ColumnType::String => TypedBuilder::String(StringBuilder::with_capacity(rows, 0)),
            ColumnType::Int64 => TypedBuilder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Float64 => TypedBuilder::Float64(Float64Builder::with_capacity(rows)),
            ColumnType::Bool => TypedBuilder::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::Timestamp => {
                TypedBuilder::Timestamp(TimestampMillisecondBuilder::with_capacity(rows))
            }
        }
    }

    /// Appends the parsed value, or null when absent or unparsable.
    fn append(&mut self, value: Option<TypedValue<'_>>) {
        match (self, value) {
            (TypedBuilder::String(b), Some(TypedValue::String(v))) => b.append_value(v),
            (TypedBuilder::Int64(b), Some(TypedValue::Int64(v))) => b.append_value(v),
            (TypedBuilder::Float64(b), Some(TypedValue::Float64(v))) => b.append_value(v),
            (TypedBuilder::Bool(b), Some(TypedValue::Bool(v))) => b.append_value(v),
            (TypedBuilder::Timestamp(b), Some(TypedValue::Timestamp(v))) => b.append_value(v),
            (TypedBuilder::String(b), _) => b.append_null(),
            (TypedBuilder::Int64(b), _) => b.append_null(),
            (TypedBuilder::Float64(b), _) => b.append_null(),
            (TypedBuilder::Bool(b), _) => b.append_null(),
            (TypedBuilder::Timestamp(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            TypedBuilder::String(mut b) => Arc::new(b.finish()),
            TypedBuilder::Int64(mut b) => Arc::new(b.finish()),
            TypedBuilder::Float64(mut b) => Arc::new(b.finish()),
            TypedBuilder::Bool(mut b) => Arc::new(b.finish()),
            TypedBuilder::Timestamp(mut b) => Arc::new(b.finish().with_timezone(UTC)),
        }
    }
}

/// Converts a count to an `i32` offset; [`batch_len`] keeps batches far below the limit.
fn offset(len: usize) -> Result<i32> {
    i32::try_from(len).map_err(|_| Error::Arrow {
        source: ArrowError::OffsetOverflowError(len),
    })
}

/// Builds the record batch of one run of entries.
fn build_batch(schema: &SchemaRef, columns: &[TypedColumn], entries: &[Entry]) -> Result<RecordBatch> {
    let rows = entries.len();
    let mut ids = StringBuilder::with_capacity(rows, rows * 24);
    let mut ts = Vec::with_capacity(rows);
    let mut seq = Vec::with_capacity(rows);
    let mut keys = StringBuilder::new();
    let mut values = StringBuilder::new();
    let mut map_offsets = Vec::with_capacity(rows + 1);
    map_offsets.push(0i32);
    let mut pairs = 0usize;
    let mut raw = BinaryBuilder::new();
    let mut raw_offsets = Vec::with_capacity(rows + 1);
    raw_offsets.push(0i32);
    let mut raw_items = 0usize;
    let mut raw_valid = NullBufferBuilder::new(rows);
    let mut typed: Vec<TypedBuilder> = columns.iter().map(|c| TypedBuilder::new(c.kind, rows)).collect();

    let mut id_text = String::with_capacity(41);
    let mut text = Vec::new();
    let mut seen = HashSet::new();
    for entry in entries {
        id_text.clear();
        // Writing to a String cannot fail.
        let _ = write!(id_text, "{}", entry.id);
        ids.append_value(&id_text);
        // Documented wrap: IDs above i64::MAX (year 292 million) become negative here.
        ts.push(entry.id.ms as i64);
        seq.push(entry.id.seq as i64);

        if exact_text(&entry.fields, &mut text) {
            for (name, value) in &text {
                keys.append_value(name);
                values.append_value(value);
            }
            pairs += text.len();
            raw_valid.append_null();
        } else {
            // Best-effort view: first occurrence of each (lossy) name.
            seen.clear();
            for (name, value) in &entry.fields {
                let name: Cow<'_, str> = String::from_utf8_lossy(name);
                if seen.insert(name.clone().into_owned()) {
                    keys.append_value(&name);
                    values.append_value(String::from_utf8_lossy(value));
                    pairs += 1;
                }
            }
            for (name, value) in &entry.fields {
                raw.append_value(name);
                raw.append_value(value);
            }
            raw_items += 2 * entry.fields.len();
            raw_valid.append_non_null();
        }
        map_offsets.push(offset(pairs)?);
        raw_offsets.push(offset(raw_items)?);
        for (builder, column) in typed.iter_mut().zip(columns) {
            builder.append(column.source(entry).and_then(|text| parse_value(column.kind, text)));
        }
    }

    let arrow = |source| Error::Arrow { source };
    let kv = StructArray::try_new(
        key_value_fields(),
        vec![Arc::new(keys.finish()), Arc::new(values.finish())],
        None,
    )
    .map_err(arrow)?;
    let map = MapArray::try_new(
        map_entries_field(),
        OffsetBuffer::new(ScalarBuffer::from(map_offsets)),
        kv,
        None,
        false,
    )
    .map_err(arrow)?;
    let raw_list = ListArray::try_new(
        raw_element_field(),
        OffsetBuffer::new(ScalarBuffer::from(raw_offsets)),
        Arc::new(raw.finish()),
        raw_valid.finish(),
    )
    .map_err(arrow)?;

    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(ids.finish()),
        Arc::new(TimestampMillisecondArray::from(ts).with_timezone(UTC)),
        Arc::new(Int64Array::from(seq)),
        Arc::new(map),
        Arc::new(raw_list),
    ];
    arrays.extend(typed.into_iter().map(TypedBuilder::finish));
    RecordBatch::try_new(schema.clone(), arrays).map_err(arrow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::test_support::{entry, meta_for};
    use crate::ErrorKind;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::{ConvertedType, LogicalType, TimeUnit};
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

    fn typed_columns() -> Vec<TypedColumn> {
        vec![
            TypedColumn::new("carrier", ColumnType::String),
            TypedColumn::new("amount", ColumnType::Int64),
            TypedColumn::new("price", ColumnType::Float64),
            TypedColumn::new("paid", ColumnType::Bool),
            TypedColumn::new("at", ColumnType::Timestamp),
        ]
    }

    #[test]
    fn typed_columns_hold_parsed_values_or_nulls() {
        let mut bad_utf8 = entry(3, 0, &[]);
        bad_utf8.fields.push((Bytes::from_static(b"carrier"), Bytes::from_static(b"\xff")));
        let entries = vec![
            entry(1, 0, &[("carrier", "ups"), ("amount", "12"), ("price", "2.5"), ("paid", "TRUE"), ("at", "2025-11-22T03:04:05Z")]),
            entry(2, 0, &[("amount", "twelve"), ("price", "x"), ("paid", "maybe"), ("at", "1763780645001"), ("amount", "13")]),
            bad_utf8,
            entry(4, 0, &[("carrier", "dhl"), ("carrier", "fedex"), ("amount", "-5"), ("paid", "0"), ("at", "nope")]),
        ];
        let data = encode_object(&entries, &meta_for(&entries), &typed_columns(), &EncodeOptions::default()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(data).unwrap().build().unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let carrier = batch.column_by_name("carrier").unwrap().as_string::<i32>();
        assert_eq!(carrier.iter().collect::<Vec<_>>(), [Some("ups"), None, None, Some("dhl")]);
        let amount = batch.column_by_name("amount").unwrap().as_primitive::<Int64Type>();
        assert_eq!(amount.iter().collect::<Vec<_>>(), [Some(12), None, None, Some(-5)]);
        let price = batch.column_by_name("price").unwrap().as_primitive::<Float64Type>();
        assert_eq!(price.iter().collect::<Vec<_>>(), [Some(2.5), None, None, None]);
        let paid = batch.column_by_name("paid").unwrap().as_boolean();
        assert_eq!(paid.iter().collect::<Vec<_>>(), [Some(true), None, None, Some(false)]);
        let at = batch.column_by_name("at").unwrap();
        assert_eq!(at.data_type(), &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into())));
        let at = at.as_primitive::<TimestampMillisecondType>();
        assert_eq!(at.iter().collect::<Vec<_>>(), [Some(1_763_780_645_000), Some(1_763_780_645_001), None, None]);
        let ts = batch.column_by_name("ts").unwrap().as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.values().to_vec(), [1, 2, 3, 4]);
        let raw = batch.column_by_name("raw_fields").unwrap();
        assert_eq!((0..4).map(|i| raw.is_valid(i)).collect::<Vec<_>>(), [false, true, true, true]);
    }

    #[test]
    fn parquet_schema_is_athena_friendly() {
        let entries = vec![entry(1, 0, &[("a", "b")])];
        let data = encode_object(&entries, &meta_for(&entries), &typed_columns(), &EncodeOptions::default()).unwrap();
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&data)
            .unwrap();
        let file = metadata.file_metadata();
        assert_eq!(file.created_by(), Some("streamtier"));
        let schema = file.schema_descr();
        for column in schema.columns() {
            let unsigned = matches!(column.logical_type_ref(), Some(LogicalType::Integer(t)) if !t.is_signed)
                || matches!(
                    column.converted_type(),
                    ConvertedType::UINT_8 | ConvertedType::UINT_16 | ConvertedType::UINT_32 | ConvertedType::UINT_64
                );
            assert!(!unsigned, "{}", column.path());
        }
        let path = |c: &parquet::schema::types::ColumnDescriptor| c.path().string();
        let ts = schema.columns().iter().find(|c| path(c) == "ts").unwrap();
        assert_eq!(ts.logical_type_ref(), Some(&LogicalType::timestamp(true, TimeUnit::MILLIS)));
        let at = schema.columns().iter().find(|c| path(c) == "at").unwrap();
        assert_eq!(at.logical_type_ref(), Some(&LogicalType::timestamp(true, TimeUnit::MILLIS)));
        let leaves: Vec<String> = schema.columns().iter().map(|c| path(c)).collect();
        assert_eq!(
            leaves[..5],
            ["id", "ts", "seq", "fields.key_value.key", "fields.key_value.value"]
        );
        assert_eq!(leaves[5], "raw_fields.list.element");
        let fields = schema.root_schema().get_fields()[3].clone();
        assert_eq!(fields.get_basic_info().logical_type_ref(), Some(&LogicalType::Map));
        let row_group = metadata.row_group(0);
        for chunk in row_group.columns() {
            assert!(matches!(chunk.compression(), Compression::ZSTD(l) if l.compression_level() == 3));
            assert!(chunk.column_index_offset().is_some(), "{}", chunk.column_path());
            assert!(chunk.offset_index_offset().is_some());
        }
    }

    #[test]
    fn rejects_out_of_order_entries_across_calls() {
        let mut writer = ObjectWriter::new(Vec::new(), &[], &EncodeOptions::default()).unwrap();
        writer.write(&[entry(5, 0, &[]), entry(5, 1, &[])]).unwrap();
        let err = writer.write(&[entry(6, 0, &[]), entry(5, 1, &[])]).unwrap_err();
        assert!(matches!(err, Error::OutOfOrder { previous, next } if previous == StreamId::new(6, 0) && next == StreamId::new(5, 1)));
        let err = writer.write(&[entry(5, 1, &[])]).unwrap_err();
        assert!(matches!(err, Error::OutOfOrder { .. }));
        assert_eq!(writer.entry_count(), 2);
    }

    #[test]
    fn finish_requires_matching_metadata() {
        let entries = vec![entry(1, 0, &[]), entry(2, 0, &[])];
        let new = || {
            let mut writer = ObjectWriter::new(Vec::new(), &[], &EncodeOptions::default()).unwrap();
            writer.write(&entries).unwrap();
            writer
        };
        let good = meta_for(&entries);
        for (meta, field) in [
            (ObjectMeta { entry_count: 3, ..good.clone() }, "entry_count"),
            (ObjectMeta { first_id: StreamId::new(0, 1), ..good.clone() }, "first_id"),
            (ObjectMeta { last_id: StreamId::new(3, 0), ..good.clone() }, "last_id"),
        ] {
            let err = new().finish(&meta).unwrap_err();
            assert!(matches!(err, Error::MetaMismatch { field: f, .. } if f == field), "{err}");
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
        let bad_topic = ObjectMeta { topic: "a/b".into(), ..good.clone() };
        assert!(matches!(new().finish(&bad_topic), Err(Error::InvalidTopic { .. })));
        let empty = ObjectWriter::new(Vec::new(), &[], &EncodeOptions::default()).unwrap();
        assert!(matches!(empty.finish(&good), Err(Error::MetaMismatch { .. })));
        assert!(!new().finish(&good).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_options_and_columns() {
        for (zstd_level, row_group_entries, option) in [(0, 10, "zstd_level"), (23, 10, "zstd_level"), (3, 0, "row_group_entries")] {
            let options = EncodeOptions { zstd_level, row_group_entries };
            let err = ObjectWriter::new(Vec::new(), &[], &options).err().unwrap();
            assert!(matches!(err, Error::InvalidOptions { option: o, .. } if o == option));
        }
        let columns = [TypedColumn::new("seq", ColumnType::Int64)];
        let err = ObjectWriter::new(Vec::new(), &columns, &EncodeOptions::default()).err().unwrap();
        assert!(matches!(err, Error::InvalidColumn { column, .. } if column == "seq"));
    }

    #[test]
    fn splits_row_groups_and_reports_progress() {
        let options = EncodeOptions { zstd_level: 1, row_group_entries: 100 };
        let mut writer = ObjectWriter::new(Vec::new(), &[], &options).unwrap();
        let mut last = 0;
        for chunk in 0..5u64 {
            let entries: Vec<Entry> = (0..70).map(|i| entry(chunk * 100 + i, 0, &[("k", "some value")])).collect();
            writer.write(&entries).unwrap();
            assert!(writer.bytes_written() > last);
            last = writer.bytes_written();
        }
        assert_eq!(writer.entry_count(), 350);
        let meta = ObjectMeta {
            first_id: StreamId::new(0, 0),
            last_id: StreamId::new(469, 0),
            entry_count: 350,
            ..meta_for(&[entry(0, 0, &[])])
        };
        let data = Bytes::from(writer.finish(&meta).unwrap());
        let metadata = ParquetMetaDataReader::new().parse_and_finish(&data).unwrap();
        let sizes: Vec<i64> = metadata.row_groups().iter().map(|rg| rg.num_rows()).collect();
        assert_eq!(sizes, [100, 100, 100, 50]);
    }

    #[test]
    fn batch_len_keeps_arrays_under_two_gib() {
        let small = entry(1, 0, &[("a", "b")]);
        assert_eq!(batch_len(&[small.clone(), small.clone()]).unwrap(), 2);
        assert!(exact_cost(&small) >= 2);
        let mut invalid = entry(1, 0, &[]);
        invalid.fields.push((Bytes::from_static(b"\xff\xfe"), Bytes::new()));
        assert_eq!(exact_cost(&invalid), 6);
    }
}
