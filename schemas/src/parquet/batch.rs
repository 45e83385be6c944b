//! Building Arrow record batches from entries.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use super::{key_value_fields, map_entries_field, raw_element_field, UTC};
use crate::columns::{parse_value, ColumnType, TypedColumn, TypedValue};
use crate::entries::{EntryBatch, EntryRef};
use crate::error::{Error, Result};
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{
    ArrayRef, Int64Array, ListArray, MapArray, RecordBatch, StructArray, TimestampMillisecondArray,
};
use arrow_buffer::{NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, SchemaRef};

/// Largest byte size of one Arrow string/binary array (`i32` offsets).
const MAX_ARRAY_BYTES: usize = i32::MAX as usize;
/// Up to this many fields, repeated names are found by comparing pairs.
const SMALL_FIELD_COUNT: usize = 16;

/// Returns how many entries from `start` on, `max` at most, fit in one batch without
/// overflowing `i32` offsets.
pub(super) fn batch_len(entries: &EntryBatch, start: usize, max: usize) -> Result<usize> {
    let end = entries.len().min(start.saturating_add(max));
    let mut total = 0usize;
    for (i, entry) in entries.range(start..end).enumerate() {
        // Lossy UTF-8 conversion turns one invalid byte into three, hence the factor.
        let mut cost = entry.payload_len().saturating_mul(3);
        if cost > MAX_ARRAY_BYTES {
            cost = exact_cost(&entry);
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
    Ok(end - start)
}

/// The larger of an entry's bytes in `raw_fields` and in `fields`.
fn exact_cost(entry: &EntryRef<'_>) -> usize {
    let raw = entry.payload_len();
    let text: usize = entry
        .fields()
        .map(|(n, v)| String::from_utf8_lossy(n).len() + String::from_utf8_lossy(v).len())
        .sum();
    raw.max(text)
}

/// Returns the fields as text when `fields` can hold them exactly: all UTF-8, names unique.
fn exact_text<'a>(entry: &EntryRef<'a>, out: &mut Vec<(&'a str, &'a str)>) -> bool {
    if !entry.text_fields(out) {
        return false;
    }
    if out.len() <= SMALL_FIELD_COUNT {
        // Names are compared by length and end bytes first, whole only when those agree.
        let mut marks = [0u32; SMALL_FIELD_COUNT];
        for (mark, (name, _)) in marks.iter_mut().zip(out.iter()) {
            let b = name.as_bytes();
            *mark = (b.len() as u32) << 16
                | u32::from(b.first().copied().unwrap_or(0)) << 8
                | u32::from(b.last().copied().unwrap_or(0));
        }
        out.iter().enumerate().all(|(i, (name, _))| {
            out[..i]
                .iter()
                .zip(&marks)
                .all(|((other, _), mark)| *mark != marks[i] || other != name)
        })
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
pub(super) fn build_batch<'a>(
    schema: &SchemaRef,
    columns: &[TypedColumn],
    entries: impl ExactSizeIterator<Item = EntryRef<'a>>,
) -> Result<RecordBatch> {
    let entries: Vec<EntryRef<'a>> = entries.collect();
    let rows = entries.len();
    let (mut fields, mut name_bytes, mut value_bytes) = (0, 0, 0);
    for entry in &entries {
        fields += entry.field_count();
        for (name, value) in entry.fields() {
            name_bytes += name.len();
            value_bytes += value.len();
        }
    }
    let mut ids = StringBuilder::with_capacity(rows, rows * 24);
    let mut ts = Vec::with_capacity(rows);
    let mut seq = Vec::with_capacity(rows);
    // Sized for entries that are all text (the usual case), so the builders never grow.
    let mut keys = StringBuilder::with_capacity(fields, name_bytes);
    let mut values = StringBuilder::with_capacity(fields, value_bytes);
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
        id_text.push_str(itoa::Buffer::new().format(entry.id.ms));
        id_text.push('-');
        id_text.push_str(itoa::Buffer::new().format(entry.id.seq));
        ids.append_value(&id_text);
        // Documented wrap: IDs above i64::MAX (year 292 million) become negative here.
        ts.push(entry.id.ms as i64);
        seq.push(entry.id.seq as i64);

        if exact_text(&entry, &mut text) {
            for (name, value) in &text {
                keys.append_value(name);
                values.append_value(value);
            }
            pairs += text.len();
            raw_valid.append_null();
        } else {
            // Best-effort view: first occurrence of each (lossy) name.
            seen.clear();
            for (name, value) in entry.fields() {
                let name: Cow<'_, str> = String::from_utf8_lossy(name);
                if seen.insert(name.clone().into_owned()) {
                    keys.append_value(&name);
                    values.append_value(String::from_utf8_lossy(value));
                    pairs += 1;
                }
            }
            for (name, value) in entry.fields() {
                raw.append_value(name);
                raw.append_value(value);
            }
            raw_items += 2 * entry.field_count();
            raw_valid.append_non_null();
        }
        map_offsets.push(offset(pairs)?);
        raw_offsets.push(offset(raw_items)?);
        for (builder, column) in typed.iter_mut().zip(columns) {
            builder.append(
                column
                    .source(&entry)
                    .and_then(|text| parse_value(column.kind, text)),
            );
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
    use crate::parquet::test_support::{entry, meta_for, typed_columns};
    use crate::parquet::{encode_object, EncodeOptions};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
    use arrow_array::Array;
    use bytes::Bytes;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn typed_columns_hold_parsed_values_or_nulls() {
        let mut bad_utf8 = entry(3, 0, &[]);
        bad_utf8
            .fields
            .push((Bytes::from_static(b"carrier"), Bytes::from_static(b"\xff")));
        let entries = vec![
            entry(
                1,
                0,
                &[
                    ("carrier", "ups"),
                    ("amount", "12"),
                    ("price", "2.5"),
                    ("paid", "TRUE"),
                    ("at", "2025-11-22T03:04:05Z"),
                ],
            ),
            entry(
                2,
                0,
                &[
                    ("amount", "twelve"),
                    ("price", "x"),
                    ("paid", "maybe"),
                    ("at", "1763780645001"),
                    ("amount", "13"),
                ],
            ),
            bad_utf8,
            entry(
                4,
                0,
                &[
                    ("carrier", "dhl"),
                    ("carrier", "fedex"),
                    ("amount", "-5"),
                    ("paid", "0"),
                    ("at", "nope"),
                ],
            ),
        ];
        let data = encode_object(
            &entries,
            &meta_for(&entries),
            &typed_columns(),
            &EncodeOptions::default(),
        )
        .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(data)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        let carrier = batch.column_by_name("carrier").unwrap().as_string::<i32>();
        assert_eq!(
            carrier.iter().collect::<Vec<_>>(),
            [Some("ups"), None, None, Some("dhl")]
        );
        let amount = batch
            .column_by_name("amount")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(
            amount.iter().collect::<Vec<_>>(),
            [Some(12), None, None, Some(-5)]
        );
        let price = batch
            .column_by_name("price")
            .unwrap()
            .as_primitive::<Float64Type>();
        assert_eq!(price.iter().collect::<Vec<_>>(), [Some(2.5), None, None, None]);
        let paid = batch.column_by_name("paid").unwrap().as_boolean();
        assert_eq!(
            paid.iter().collect::<Vec<_>>(),
            [Some(true), None, None, Some(false)]
        );
        let at = batch.column_by_name("at").unwrap();
        assert_eq!(
            at.data_type(),
            &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into()))
        );
        let at = at.as_primitive::<TimestampMillisecondType>();
        assert_eq!(
            at.iter().collect::<Vec<_>>(),
            [Some(1_763_780_645_000), Some(1_763_780_645_001), None, None]
        );
        let ts = batch
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        assert_eq!(ts.values().to_vec(), [1, 2, 3, 4]);
        let raw = batch.column_by_name("raw_fields").unwrap();
        assert_eq!(
            (0..4).map(|i| raw.is_valid(i)).collect::<Vec<_>>(),
            [false, true, true, true]
        );
    }

    #[test]
    fn exact_text_needs_unique_names() {
        let text = |fields: &[(&str, &str)]| {
            let batch = EntryBatch::from_entries(&[entry(1, 0, fields)]);
            exact_text(&batch.get(0), &mut Vec::new())
        };
        // Same length and end bytes, other names.
        assert!(text(&[("ab_b", "1"), ("axxb", "2"), ("b", "3")]));
        assert!(!text(&[("ab_b", "1"), ("axxb", "2"), ("ab_b", "3")]));
        assert!(!text(&[("", "1"), ("", "2")]));
        let many: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
        let mut fields: Vec<(&str, &str)> = many.iter().map(|n| (n.as_str(), "v")).collect();
        assert!(text(&fields));
        fields.push(("f7", "again"));
        assert!(!text(&fields));
    }

    #[test]
    fn batch_len_keeps_arrays_under_two_gib() {
        let small = entry(1, 0, &[("a", "b")]);
        let batch = EntryBatch::from_entries(&[small.clone(), small.clone()]);
        assert_eq!(batch_len(&batch, 0, usize::MAX).unwrap(), 2);
        assert_eq!(batch_len(&batch, 1, usize::MAX).unwrap(), 1);
        assert_eq!(batch_len(&batch, 0, 1).unwrap(), 1);
        assert!(exact_cost(&batch.get(0)) >= 2);
        let mut invalid = entry(1, 0, &[]);
        invalid
            .fields
            .push((Bytes::from_static(b"\xff\xfe"), Bytes::new()));
        let cost = |e: &crate::Entry| exact_cost(&EntryBatch::from_entries(std::slice::from_ref(e)).get(0));
        assert_eq!(cost(&invalid), 18);
        invalid.fields.push((Bytes::new(), Bytes::from(vec![0xff; 100])));
        assert_eq!(cost(&invalid), 6 + 300);
    }
}
