//! The Parquet encoding of an object: schema, streaming writer and decoder.
//!
//! See the crate docs for the column table. Decoding only reads `id`, `fields` and
//! `raw_fields`; `ts`, `seq` and typed columns exist for query engines.

mod batch;
mod checksum;
mod read;
mod rows;
mod write;

use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};

use crate::columns::{ColumnType, TypedColumn};

pub use checksum::{parse_blocks, verify_block, Block, BLOCKS_KEY, BLOCK_BYTES, BLOCK_ENTRIES, CHECKSUM_KEY};
pub use read::{
    check_chunk_ranges, decode_object, guarded, key_value, meta_of, reader_schema, typed_columns_of,
};
pub use rows::entries_from_batch;
pub use write::{encode_object, ObjectWriter};

/// Name of the `id` column (`"<ms>-<seq>"` text).
pub const COL_ID: &str = "id";
/// Name of the `ts` column (the ID's milliseconds as a UTC timestamp).
pub const COL_TS: &str = "ts";
/// Name of the `seq` column (the ID's sequence number).
pub const COL_SEQ: &str = "seq";
/// Name of the `fields` map column.
pub const COL_FIELDS: &str = "fields";
/// Name of the `raw_fields` list column.
pub const COL_RAW_FIELDS: &str = "raw_fields";
/// The `created_by` string written into every footer.
pub const CREATED_BY: &str = "streamtier";
/// Time zone of the timestamp columns.
const UTC: &str = "UTC";

/// Default zstd level of [`EncodeOptions`]. Level 1 took 14 % less of the archiver's CPU than
/// level 3 for objects 1 % larger (benchmark entries; README, Performance): an archiver must
/// keep up with its producers before it saves the last percent.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;
/// Default row group size of [`EncodeOptions`], in entries.
pub const DEFAULT_ROW_GROUP_ENTRIES: usize = 65_536;
/// Default row group budget of [`EncodeOptions`], in encoded bytes.
pub const DEFAULT_ROW_GROUP_BYTES: usize = 1 << 20;

/// How objects are encoded.
#[derive(Clone, Debug)]
pub struct EncodeOptions {
    /// zstd compression level: 1-22, 0 for zstd's default, negative for faster modes.
    pub zstd_level: i32,
    /// Maximum number of entries per row group (at least 1).
    pub row_group_entries: usize,
    /// Encoded-size budget of a row group (at least 1): a group closes at the first checksum
    /// block end once its estimated encoded size reaches this, so it runs past the budget by
    /// less than one block. The writer holds the group in progress, so this bounds its memory
    /// whatever the size of the entries.
    pub row_group_bytes: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            zstd_level: DEFAULT_ZSTD_LEVEL,
            row_group_entries: DEFAULT_ROW_GROUP_ENTRIES,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
        }
    }
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()))
}

/// The `key` and `value` children of the `fields` map entries.
fn key_value_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ])
}

/// The entries field of the `fields` map, with the Parquet-conventional name `key_value`.
fn map_entries_field() -> FieldRef {
    Arc::new(Field::new(
        "key_value",
        DataType::Struct(key_value_fields()),
        false,
    ))
}

/// The element field of `raw_fields`, with the Parquet-conventional name `element`.
pub(crate) fn raw_element_field() -> FieldRef {
    Arc::new(Field::new("element", DataType::Binary, false))
}

fn fields_type() -> DataType {
    DataType::Map(map_entries_field(), false)
}

fn raw_fields_type() -> DataType {
    DataType::List(raw_element_field())
}

fn typed_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Timestamp => timestamp_type(),
    }
}

/// Returns the Arrow schema of objects with these typed columns: `id`, `ts`, `seq`,
/// `fields`, `raw_fields`, then one nullable column per typed column.
///
/// Columns are not validated here; [`ObjectWriter::new`] does that.
pub fn arrow_schema(columns: &[TypedColumn]) -> SchemaRef {
    let mut fields = vec![
        Field::new(COL_ID, DataType::Utf8, false),
        Field::new(COL_TS, timestamp_type(), false),
        Field::new(COL_SEQ, DataType::Int64, false),
        Field::new(COL_FIELDS, fields_type(), false),
        Field::new(COL_RAW_FIELDS, raw_fields_type(), true),
    ];
    fields.extend(
        columns
            .iter()
            .map(|c| Field::new(c.name.as_str(), typed_type(c.kind), true)),
    );
    Arc::new(Schema::new(fields))
}

/// Helpers shared by the tests of the reader and the writer.
#[cfg(test)]
pub(crate) mod test_support {
    use bytes::Bytes;

    use crate::columns::{ColumnType, TypedColumn};
    use crate::entry::Entry;
    use crate::id::StreamId;
    use crate::meta::ObjectMeta;

    /// One typed column of each type.
    pub(crate) fn typed_columns() -> Vec<TypedColumn> {
        vec![
            TypedColumn::new("carrier", ColumnType::String),
            TypedColumn::new("amount", ColumnType::Int64),
            TypedColumn::new("price", ColumnType::Float64),
            TypedColumn::new("paid", ColumnType::Bool),
            TypedColumn::new("at", ColumnType::Timestamp),
        ]
    }

    /// Metadata that matches `entries`.
    pub(crate) fn meta_for(entries: &[Entry]) -> ObjectMeta {
        ObjectMeta {
            topic: "__strm:app.orders".into(),
            partition: 1,
            stream: "__strm:app.orders:1".into(),
            first_id: entries[0].id,
            last_id: entries[entries.len() - 1].id,
            entry_count: entries.len() as u64,
            last_offset: Some(1_000),
        }
    }

    /// An entry with text fields.
    pub(crate) fn entry(ms: u64, seq: u64, fields: &[(&str, &str)]) -> Entry {
        Entry::new(
            StreamId::new(ms, seq),
            fields
                .iter()
                .map(|(n, v)| {
                    (
                        Bytes::copy_from_slice(n.as_bytes()),
                        Bytes::copy_from_slice(v.as_bytes()),
                    )
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_fixed_columns_then_typed_columns() {
        let schema = arrow_schema(&[TypedColumn::new("amount", ColumnType::Int64)]);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["id", "ts", "seq", "fields", "raw_fields", "amount"]);
        assert!(!schema.field(0).is_nullable());
        assert!(schema.field(4).is_nullable());
        assert!(schema.field(5).is_nullable());
        assert_eq!(schema.field(1).data_type(), &timestamp_type());
    }

    #[test]
    fn default_options_use_zstd_1() {
        let options = EncodeOptions::default();
        assert_eq!(options.zstd_level, 1);
        assert_eq!(options.row_group_entries, 65_536);
        assert_eq!(options.row_group_bytes, 1 << 20);
    }
}
