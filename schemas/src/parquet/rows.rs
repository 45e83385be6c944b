//! Turning decoded record batches back into entries.

use arrow_array::cast::AsArray;
use arrow_array::{Array, BinaryArray, LargeBinaryArray, LargeStringArray, RecordBatch, StringArray};
use arrow_schema::DataType;
use bytes::Bytes;

use super::{COL_FIELDS, COL_ID, COL_RAW_FIELDS};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::id::StreamId;

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
            other => Err(Error::corrupt(format!(
                "`{what}` has type {other}, expected text"
            ))),
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

pub(super) fn append_entries(batch: &RecordBatch, out: &mut Vec<Entry>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parquet::batch::build_batch;
    use crate::parquet::test_support::meta_for;
    use crate::parquet::{arrow_schema, encode_object, EncodeOptions};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    fn bytes(b: &[u8]) -> Bytes {
        Bytes::copy_from_slice(b)
    }

    fn encode(entries: &[Entry]) -> Bytes {
        encode_object(entries, &meta_for(entries), &[], &EncodeOptions::default()).unwrap()
    }

    #[test]
    fn fields_map_holds_a_best_effort_view_of_raw_entries() {
        let entries = vec![Entry::new(
            StreamId::new(3, 0),
            vec![
                (bytes(b"\xff"), bytes(b"x")),
                (bytes(b"\xfe"), bytes(b"y")),
                (bytes(b"k"), bytes(b"v\xff")),
                (bytes(b"k"), bytes(b"w")),
            ],
        )];
        let reader = ParquetRecordBatchReaderBuilder::try_new(encode(&entries))
            .unwrap()
            .build()
            .unwrap();
        let batch = reader.into_iter().next().unwrap().unwrap();
        let map = batch.column_by_name("fields").unwrap().as_map();
        let keys: Vec<&str> = map.keys().as_string::<i32>().iter().flatten().collect();
        let values: Vec<&str> = map.values().as_string::<i32>().iter().flatten().collect();
        assert_eq!(keys, ["\u{fffd}", "k"]);
        assert_eq!(values, ["x", "v\u{fffd}"]);
        // A plain reader's batch (32-bit offsets) decodes through the public helper too.
        assert_eq!(entries_from_batch(&batch).unwrap(), entries);
    }

    #[test]
    fn detects_odd_raw_fields_and_bad_ids() {
        let schema = arrow_schema(&[]);
        let entries = vec![Entry::new(
            StreamId::new(1, 0),
            vec![(bytes(b"\xff"), bytes(b"v"))],
        )];
        let entries = crate::EntryBatch::from_entries(&entries);
        let batch = build_batch(&schema, &[], entries.iter()).unwrap();
        let raw = batch.column(4).as_list::<i32>();
        let odd = arrow_array::ListArray::new(
            crate::parquet::raw_element_field(),
            arrow_buffer::OffsetBuffer::new(vec![0, 1].into()),
            raw.values().slice(0, 1),
            raw.nulls().cloned(),
        );
        let mut columns = batch.columns().to_vec();
        columns[4] = Arc::new(odd);
        let bad = RecordBatch::try_new(schema.clone(), columns.clone()).unwrap();
        let err = entries_from_batch(&bad).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason } if reason.contains("odd")),
            "{err}"
        );
        columns[0] = Arc::new(StringArray::from(vec!["1:0"]));
        let bad = RecordBatch::try_new(schema, columns).unwrap();
        let err = entries_from_batch(&bad).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason } if reason.contains("`1:0`")),
            "{err}"
        );
    }
}
