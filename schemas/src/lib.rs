//! The streamtier archive contract: how Redis stream entries are stored as objects.
//!
//! streamtier archives Redis Streams entries into zstd-compressed Parquet objects on an
//! object store (S3 or a directory) and replays them. Everything that must agree between
//! the archiver, the replayer and outside query engines lives here: [`StreamId`], [`Entry`]
//! (and [`EntryBatch`], entries sharing one buffer), the object key [`layout`], the Parquet
//! encoding ([`ObjectWriter`], [`decode_object`]), object metadata ([`ObjectMeta`]), gap
//! records ([`GapRecord`]) and consumer-group snapshots ([`groups::GroupSnapshot`]).
//!
//! The crate is pure: no async runtime and no I/O besides in-memory buffers and any
//! `std::io::Write` sink the caller hands to [`ObjectWriter`].
//!
//! # Object layout
//!
//! Keys are relative to the store root (the store adds its own prefix):
//!
//! ```text
//! topic=<topic>/partition=<p>/dt=YYYY-MM-DD/hour=HH/<ms:020>-<seq:020>.parquet   one object (span 1h)
//! topic=<topic>/partition=<p>/dt=YYYY-MM-DD/<ms:020>-<seq:020>.parquet           one object (span 1d)
//! topic=<topic>/partition=<p>/dt=.../<first>-<last>.parquet                      a merged object
//! topic=<topic>/partition=<p>/_gaps/<ms:020>-<seq:020>.json                      one gap record
//! topic=<topic>/partition=<p>/_groups/<ms:020>.json                               one group snapshot
//! ```
//!
//! An object is named after its first entry ID, zero padded so that byte order equals ID
//! order; `dt` and `hour` are the UTC date and hour of that ID's milliseconds. A topic's
//! [`ObjectSpan`] says whether objects are cut by hour (the default) or by UTC day; an object
//! never spans two of its spans, so the objects of a partition listed in key order are in ID
//! order and do not overlap (a day's daily keys sort before its hourly ones; the archiver
//! never writes a daily object after an hourly one of the same day). Compaction replaces runs
//! of objects with a *merged* object named by its first and last ID, which sorts just before
//! the object with the same first ID; until the runs' objects are removed, the merged object
//! overlaps them (readers skip what they already read). Topic names are checked by
//! [`validate_topic_name`]: one path segment that is also a valid Hive partition value.
//!
//! # Parquet schema
//!
//! | column       | Arrow type                                   | Parquet type                         | null |
//! |--------------|----------------------------------------------|--------------------------------------|------|
//! | `id`         | `Utf8`, `"<ms>-<seq>"`                       | `BYTE_ARRAY (STRING)`                | no   |
//! | `ts`         | `Timestamp(Millisecond, "UTC")`, the ID's ms | `INT64 TIMESTAMP(MILLIS, UTC)`       | no   |
//! | `seq`        | `Int64`, the ID's sequence number            | `INT64`                              | no   |
//! | `fields`     | `Map<Utf8, Utf8>` (`key_value`: `key`, `value`) | `MAP<STRING, STRING>`             | no   |
//! | `raw_fields` | `List<Binary>` (`element`)                   | `LIST<BYTE_ARRAY>`                   | yes  |
//! | typed        | `Utf8` / `Int64` / `Float64` / `Boolean` / `Timestamp(ms, UTC)` | as Arrow          | yes  |
//!
//! * The Arrow types are what the writer is given; the footer does not embed them (no
//!   `ARROW:schema` key, about 700 bytes an object), so readers take the Parquet logical types
//!   (`ts` is then `Timestamp(ms, "UTC")` for parquet-rs and pyarrow, `TIMESTAMPTZ` for DuckDB).
//! * `ts` and `seq` hold the unsigned ID halves as `i64`; values above `i64::MAX` wrap to
//!   negative numbers (year 292 million, or sequence numbers above 2^63). There are no
//!   unsigned types anywhere, because Athena cannot read them.
//! * `fields` is the queryable view. When an entry's fields are all valid UTF-8 and no name
//!   repeats, `fields` holds them exactly, in order, and `raw_fields` is null.
//! * Otherwise `raw_fields` holds the exact bytes `[name, value, name, value, ...]` in order,
//!   and `fields` holds a best-effort view: the first occurrence of each name, with names
//!   and values converted by `String::from_utf8_lossy` (map keys stay unique).
//! * Typed columns ([`TypedColumn`]) come from the first field of the same name when its
//!   value is UTF-8 and parses as the column type; otherwise they are null. See
//!   [`columns`] for the parsing rules.
//! * Row order is ascending ID order. Statistics are written per page (column index and
//!   offset index), so engines can prune pages on `ts`/`seq`; the names and values of
//!   `fields` and the values of `raw_fields` have none (a map's or list's entries share one
//!   column, nothing prunes by them), only the offset index. The `id` column sorts as text,
//!   not as IDs: use `ts` and `seq` for range predicates.
//! * Writer settings: zstd (level 1 by default), row groups of at most 65,536 entries and
//!   about 1 MiB encoded (the writer holds one row group, so this bounds its memory), data
//!   pages of at most 1,024 rows that line up with checksum blocks (so narrow reads fetch
//!   few pages), no
//!   dictionary on `id`/`ts`/`seq` or on field values (mostly unique; a dictionary page would
//!   have to be fetched whole by any page read), `created_by` = `streamtier`.
//!
//! # Round-trip guarantees
//!
//! [`decode_object`] returns exactly the entries given to the writer: IDs, field order,
//! repeated names, empty names and values, arbitrary binary, and entries without fields all
//! survive byte for byte. Decoding reads only `id`, `fields` and `raw_fields`, and verifies
//! that IDs strictly ascend, that the row count and the first and last IDs match the
//! metadata, and that the entries match the footer's CRC-32 entries checksum (Parquet as
//! written by parquet-rs has no page checksums, and a damaged zstd page can decode into
//! different bytes). Damaged objects produce errors whose [`Error::kind`] is
//! [`ErrorKind::Corrupt`], never a panic.
//!
//! # Metadata keys
//!
//! The Parquet footer key-value metadata ([`ObjectMeta::to_pairs`]) and, without the
//! `streamtier.` prefix and with `-` for `_`, the S3 user metadata
//! ([`ObjectMeta::to_s3_metadata`], values percent-encoded outside printable ASCII):
//!
//! | footer key                   | S3 key           | value                                       |
//! |------------------------------|------------------|---------------------------------------------|
//! | `streamtier.format_version`  | `format-version` | [`FORMAT_VERSION`] (`1`)                    |
//! | `streamtier.topic`           | `topic`          | topic name                                  |
//! | `streamtier.partition`       | `partition`      | partition number                            |
//! | `streamtier.stream`          | `stream`         | Redis stream key (UTF-8)                    |
//! | `streamtier.first_id`        | `first-id`       | first entry ID, `<ms>-<seq>`                |
//! | `streamtier.last_id`         | `last-id`        | last entry ID                               |
//! | `streamtier.entry_count`     | `entry-count`    | number of entries (at least 1)              |
//! | `streamtier.last_offset`     | `last-offset`    | entries-added offset of the last entry, when known |
//! | `streamtier.entries_crc32`   | (footer only)    | checksum, see [`parquet::CHECKSUM_KEY`]     |
//! | `streamtier.blocks_crc32`    | (footer only)    | per-block checksums, see [`parquet::BLOCKS_KEY`] |
//!
//! # Querying with Athena
//!
//! Partition projection finds objects without a crawler. List the typed columns after
//! `raw_fields` in their configured order. `topic` is `injected` (queries must say
//! `topic = '...'`); use `'projection.topic.type' = 'enum'` with
//! `'projection.topic.values' = 'a,b'` to allow queries across topics.
//!
//! ```text
//! CREATE EXTERNAL TABLE streamtier_entries (
//!   `id`         string,
//!   `ts`         timestamp,
//!   `seq`        bigint,
//!   `fields`     map<string, string>,
//!   `raw_fields` array<binary>
//!   -- typed columns, e.g. `amount` bigint, `carrier` string, `at` timestamp
//! )
//! PARTITIONED BY (`topic` string, `partition` int, `dt` string, `hour` int)
//! STORED AS PARQUET
//! LOCATION 's3://my-bucket/streamtier/'
//! TBLPROPERTIES (
//!   'parquet.compression' = 'ZSTD',
//!   'projection.enabled' = 'true',
//!   'projection.topic.type' = 'injected',
//!   'projection.partition.type' = 'integer',
//!   'projection.partition.range' = '0,1023',
//!   'projection.dt.type' = 'date',
//!   'projection.dt.format' = 'yyyy-MM-dd',
//!   'projection.dt.range' = '2024-01-01,NOW',
//!   'projection.dt.interval' = '1',
//!   'projection.dt.interval.unit' = 'DAYS',
//!   'projection.hour.type' = 'integer',
//!   'projection.hour.range' = '0,23',
//!   'projection.hour.digits' = '2',
//!   'storage.location.template' =
//!     's3://my-bucket/streamtier/topic=${topic}/partition=${partition}/dt=${dt}/hour=${hour}/'
//! );
//!
//! SELECT id, ts, fields['carrier'] AS carrier
//! FROM streamtier_entries
//! WHERE topic = '__strm:app.orders' AND dt = '2025-11-22' AND hour = 3
//!   AND element_at(fields, 'carrier') = 'ups'
//! ORDER BY ts, seq;
//! ```
//!
//! Topics with `object_span = "1d"` get a table of their own without `hour`: the same columns,
//! `PARTITIONED BY (`topic` string, `partition` int, `dt` string)`, no `projection.hour.*`
//! properties, and
//! `'storage.location.template' = 's3://my-bucket/streamtier/topic=${topic}/partition=${partition}/dt=${dt}/'`.
//! (Athena reads only the files directly in a partition's directory, so the hourly table never
//! sees daily objects and the daily table never sees hourly ones.)
//!
//! # Querying with DuckDB
//!
//! ```text
//! SELECT id, ts, seq, fields['carrier'] AS carrier, partition, hour
//! FROM read_parquet(
//!   's3://my-bucket/streamtier/topic=__strm:app.orders/partition=*/dt=2025-11-22/hour=*/*.parquet',
//!   hive_partitioning = true)
//! WHERE ts >= TIMESTAMPTZ '2025-11-22 03:00:00+00' AND fields['carrier'] = 'ups'
//! ORDER BY ts, seq;
//! ```
//!
//! A daily topic's objects sit one level higher: `topic=<t>/partition=*/dt=*/*.parquet`.
//! DuckDB refuses one glob over both depths with `hive_partitioning`; read each layout with
//! its own glob and combine them with `UNION ALL BY NAME` (`hour` is then null for daily
//! topics). DuckDB reads `ts` as `TIMESTAMPTZ` (its Python client then needs `pytz`).

#![warn(missing_docs)]

mod civil;
pub mod columns;
pub mod entries;
pub mod entry;
pub mod error;
pub mod gap;
pub mod groups;
pub mod id;
pub mod json;
pub mod layout;
pub mod meta;
pub mod parquet;
pub mod units;

pub use crate::civil::parse_rfc3339_ms;
pub use crate::columns::{validate_columns, ColumnType, TypedColumn};
pub use crate::entries::{BuilderMark, EntryBatch, EntryBatchBuilder, EntryRef, SpanError};
pub use crate::entry::Entry;
pub use crate::error::{Error, ErrorKind, Report, Result};
pub use crate::gap::GapRecord;
pub use crate::id::StreamId;
pub use crate::layout::{
    day_seek, gap_key, gaps_prefix, hour_of, hour_prefix, merged_object_key, object_key, parse_gap_key,
    parse_object_key, partition_prefix, span_object_key, utc_date_hour, validate_topic_name, GapKey,
    ObjectKey, ObjectSpan,
};
pub use crate::meta::{ObjectMeta, FORMAT_VERSION};
pub use crate::parquet::{
    arrow_schema, decode_object, encode_object, entries_from_batch, EncodeOptions, ObjectWriter,
};
