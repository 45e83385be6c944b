//! placeholder crate docs

mod civil;
pub mod columns;
pub mod entry;
pub mod error;
pub mod gap;
pub mod id;
pub mod layout;
pub mod meta;
pub mod parquet;

pub use crate::columns::{validate_columns, ColumnType, TypedColumn};
pub use crate::entry::Entry;
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::gap::GapRecord;
pub use crate::id::StreamId;
pub use crate::layout::{
    gap_key, gaps_prefix, hour_of, hour_prefix, object_key, parse_gap_key, parse_object_key,
    partition_prefix, utc_date_hour, validate_topic_name, GapKey, ObjectKey,
};
pub use crate::meta::{ObjectMeta, FORMAT_VERSION};
pub use crate::parquet::{
    arrow_schema, decode_object, encode_object, entries_from_batch, read_meta, EncodeOptions,
    ObjectWriter,
};
