//! The streaming object writer: entries -> Arrow record batches -> zstd Parquet.

use std::io::Write;

use arrow_schema::SchemaRef;
use bytes::Bytes;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::batch::{batch_len, build_batch};
use super::checksum::{BlockChecksums, BLOCKS_KEY, BLOCK_ENTRIES, CHECKSUM_KEY};
use super::{EncodeOptions, COL_ID, COL_SEQ, COL_TS, CREATED_BY};
use crate::columns::{validate_columns, TypedColumn};
use crate::entries::EntryBatch;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::id::StreamId;
use crate::layout::validate_topic_name;
use crate::meta::ObjectMeta;

/// Streaming writer for one object.
///
/// Push batches of entries in strictly ascending ID order with [`ObjectWriter::write_batch`]
/// (or [`ObjectWriter::write`]), then [`ObjectWriter::finish`]. Memory is bounded by one row
/// group; the sink receives the rest.
pub struct ObjectWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    schema: SchemaRef,
    columns: Vec<TypedColumn>,
    entry_count: u64,
    first_id: Option<StreamId>,
    last_id: Option<StreamId>,
    checksums: BlockChecksums,
    row_group_bytes: usize,
}

impl<W: Write + Send> ObjectWriter<W> {
    /// Starts an object that is written to `sink`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidColumn`] for bad typed columns, [`Error::InvalidOptions`] for a zstd
    /// level zstd does not accept or a zero row group limit, [`Error::Parquet`] if the writer fails.
    pub fn new(sink: W, columns: &[TypedColumn], options: &EncodeOptions) -> Result<Self> {
        validate_columns(columns)?;
        for (option, value) in [
            ("row_group_entries", options.row_group_entries),
            ("row_group_bytes", options.row_group_bytes),
        ] {
            if value == 0 {
                return Err(Error::InvalidOptions {
                    option,
                    reason: "must be at least 1".into(),
                });
            }
        }
        let level = ZstdLevel::try_new(options.zstd_level).map_err(|_| Error::InvalidOptions {
            option: "zstd_level",
            reason: format!("`{}` is not a zstd level (at most 22)", options.zstd_level),
        })?;
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(options.row_group_entries))
            // Pages of at most one checksum block of rows: a reader that needs a narrow range
            // fetches a few pages, not whole column chunks.
            .set_data_page_row_count_limit(BLOCK_ENTRIES as usize)
            .set_write_batch_size(BLOCK_ENTRIES as usize)
            .set_created_by(CREATED_BY.into());
        // Unique or monotonic values gain nothing from a dictionary.
        for column in [COL_ID, COL_TS, COL_SEQ] {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        // Field values are mostly unique: a dictionary page would hold most of the chunk, and a
        // reader of a few pages would have to fetch it whole.
        // Nor do the statistics of names or values help anyone: a map's or list's entries
        // share one column, so no reader can prune rows by them. Without them the writer
        // compares no names or values (a few percent of the archiver's time, measured) and the
        // page index of every row group holds no copies of them. Names keep their dictionary.
        let path = |p: [&str; 3]| ColumnPath::new(p.map(String::from).to_vec());
        props = props
            .set_column_statistics_enabled(path(["fields", "key_value", "key"]), EnabledStatistics::None);
        for column in [
            path(["fields", "key_value", "value"]),
            path(["raw_fields", "list", "element"]),
        ] {
            props = props
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_statistics_enabled(column, EnabledStatistics::None);
        }
        let schema = super::arrow_schema(columns);
        // No embedded Arrow schema (`ARROW:schema`, about 700 bytes of every footer): the
        // Parquet schema and its logical types say everything readers need.
        let writer_options = ArrowWriterOptions::new()
            .with_properties(props.build())
            .with_skip_arrow_metadata(true);
        let writer = ArrowWriter::try_new_with_options(sink, schema.clone(), writer_options)
            .map_err(|source| Error::Parquet { source })?;
        Ok(ObjectWriter {
            writer,
            schema,
            columns: columns.to_vec(),
            entry_count: 0,
            first_id: None,
            last_id: None,
            checksums: BlockChecksums::default(),
            row_group_bytes: options.row_group_bytes,
        })
    }

    /// Encodes `entries` (normally as one record batch) into the current row group.
    ///
    /// # Errors
    ///
    /// [`Error::OutOfOrder`] if IDs are not strictly ascending across all calls (nothing of
    /// this call is written then), [`Error::EntryTooLarge`] for an entry over 2 GiB once
    /// encoded, [`Error::Arrow`] or [`Error::Parquet`] if encoding fails.
    pub fn write_batch(&mut self, entries: &EntryBatch) -> Result<()> {
        let mut previous = self.last_id;
        for &id in entries.ids() {
            if let Some(previous) = previous.filter(|p| *p >= id) {
                return Err(Error::OutOfOrder { previous, next: id });
            }
            previous = Some(id);
        }
        let mut start = 0;
        while start < entries.len() {
            // Record batches end where checksum blocks do: the Arrow copy of the entries stays
            // at one block whatever the caller's batch, and pages (cut every block of rows)
            // line up with blocks, so a narrow read fetches the pages of its blocks only.
            let take = batch_len(entries, start, self.checksums.rows_left() as usize)?;
            let run = start..start + take;
            let batch = build_batch(&self.schema, &self.columns, entries.range(run.clone()))?;
            self.writer
                .write(&batch)
                .map_err(|source| Error::Parquet { source })?;
            self.checksums.update(entries.range(run));
            start += take;
            // The byte budget closes a row group only where a block ends, so that pages keep
            // lining up with blocks in the next group; it overshoots by less than one block.
            if self.checksums.rows_left() == BLOCK_ENTRIES
                && self.writer.in_progress_size() >= self.row_group_bytes
            {
                self.writer.flush().map_err(|source| Error::Parquet { source })?;
            }
        }
        if let (Some(first), Some(last)) = (entries.first_id(), entries.last_id()) {
            self.first_id.get_or_insert(first);
            self.last_id = Some(last);
            self.entry_count += entries.len() as u64;
        }
        Ok(())
    }

    /// As [`ObjectWriter::write_batch`], for entries that are not in a batch yet (they are
    /// copied into one).
    ///
    /// # Errors
    ///
    /// As [`ObjectWriter::write_batch`].
    pub fn write(&mut self, entries: &[Entry]) -> Result<()> {
        self.write_batch(&EntryBatch::from_entries(entries))
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

    /// Adds `meta` and the entries checksum to the footer, closes the Parquet file and returns the sink.
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
            return Err(mismatch(
                "first_id",
                meta.first_id.to_string(),
                show(self.first_id),
            ));
        }
        if Some(meta.last_id) != self.last_id {
            return Err(mismatch("last_id", meta.last_id.to_string(), show(self.last_id)));
        }
        validate_topic_name(&meta.topic)?;
        for (key, value) in meta.to_pairs() {
            self.writer.append_key_value_metadata(KeyValue::new(key, value));
        }
        let (checksum, blocks) = std::mem::take(&mut self.checksums).finish();
        self.writer
            .append_key_value_metadata(KeyValue::new(CHECKSUM_KEY.to_owned(), checksum));
        self.writer
            .append_key_value_metadata(KeyValue::new(BLOCKS_KEY.to_owned(), blocks));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::ColumnType;
    use crate::parquet::test_support::{entry, meta_for, typed_columns};
    use crate::ErrorKind;
    use parquet::basic::{ConvertedType, LogicalType, TimeUnit};
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};

    #[test]
    fn parquet_schema_is_athena_friendly() {
        let entries = vec![entry(1, 0, &[("a", "b")])];
        let data = encode_object(
            &entries,
            &meta_for(&entries),
            &typed_columns(),
            &EncodeOptions::default(),
        )
        .unwrap();
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
                    ConvertedType::UINT_8
                        | ConvertedType::UINT_16
                        | ConvertedType::UINT_32
                        | ConvertedType::UINT_64
                );
            assert!(!unsigned, "{}", column.path());
        }
        let path = |c: &parquet::schema::types::ColumnDescriptor| c.path().string();
        let ts = schema.columns().iter().find(|c| path(c) == "ts").unwrap();
        assert_eq!(
            ts.logical_type_ref(),
            Some(&LogicalType::timestamp(true, TimeUnit::MILLIS))
        );
        let at = schema.columns().iter().find(|c| path(c) == "at").unwrap();
        assert_eq!(
            at.logical_type_ref(),
            Some(&LogicalType::timestamp(true, TimeUnit::MILLIS))
        );
        let leaves: Vec<String> = schema.columns().iter().map(|c| path(c)).collect();
        assert_eq!(
            leaves[..5],
            [
                "id",
                "ts",
                "seq",
                "fields.key_value.key",
                "fields.key_value.value"
            ]
        );
        assert_eq!(leaves[5], "raw_fields.list.element");
        let fields = schema.root_schema().get_fields()[3].clone();
        assert_eq!(
            fields.get_basic_info().logical_type_ref(),
            Some(&LogicalType::Map)
        );
        let row_group = metadata.row_group(0);
        for chunk in row_group.columns() {
            // The footer records the codec only, not its level.
            assert!(matches!(chunk.compression(), Compression::ZSTD(_)));
            // Every column can be read page by page; field names and values have no
            // statistics to prune by.
            assert!(chunk.offset_index_offset().is_some());
            let path = chunk.column_path().string();
            let values = [
                "fields.key_value.key",
                "fields.key_value.value",
                "raw_fields.list.element",
            ]
            .contains(&path.as_str());
            assert_eq!(chunk.column_index_offset().is_some(), !values, "{path}");
            assert_eq!(chunk.statistics().is_some(), !values, "{path}");
        }
    }

    #[test]
    fn rejects_out_of_order_entries_across_calls() {
        let mut writer = ObjectWriter::new(Vec::new(), &[], &EncodeOptions::default()).unwrap();
        writer.write(&[entry(5, 0, &[]), entry(5, 1, &[])]).unwrap();
        let err = writer.write(&[entry(6, 0, &[]), entry(5, 1, &[])]).unwrap_err();
        assert!(
            matches!(err, Error::OutOfOrder { previous, next } if previous == StreamId::new(6, 0) && next == StreamId::new(5, 1))
        );
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
            (
                ObjectMeta {
                    entry_count: 3,
                    ..good.clone()
                },
                "entry_count",
            ),
            (
                ObjectMeta {
                    first_id: StreamId::new(0, 1),
                    ..good.clone()
                },
                "first_id",
            ),
            (
                ObjectMeta {
                    last_id: StreamId::new(3, 0),
                    ..good.clone()
                },
                "last_id",
            ),
        ] {
            let err = new().finish(&meta).unwrap_err();
            assert!(
                matches!(err, Error::MetaMismatch { field: f, .. } if f == field),
                "{err}"
            );
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
        let bad_topic = ObjectMeta {
            topic: "a/b".into(),
            ..good.clone()
        };
        assert!(matches!(
            new().finish(&bad_topic),
            Err(Error::InvalidTopic { .. })
        ));
        let empty = ObjectWriter::new(Vec::new(), &[], &EncodeOptions::default()).unwrap();
        assert!(matches!(empty.finish(&good), Err(Error::MetaMismatch { .. })));
        assert!(!new().finish(&good).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_options_and_columns() {
        for (zstd_level, row_group_entries, row_group_bytes, option) in [
            (-200_000, 10, 10, "zstd_level"),
            (23, 10, 10, "zstd_level"),
            (3, 0, 10, "row_group_entries"),
            (3, 10, 0, "row_group_bytes"),
        ] {
            let options = EncodeOptions {
                zstd_level,
                row_group_entries,
                row_group_bytes,
            };
            let err = ObjectWriter::new(Vec::new(), &[], &options).err().unwrap();
            assert!(matches!(err, Error::InvalidOptions { option: o, .. } if o == option));
        }
        let columns = [TypedColumn::new("seq", ColumnType::Int64)];
        let err = ObjectWriter::new(Vec::new(), &columns, &EncodeOptions::default())
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidColumn { column, .. } if column == "seq"));
    }

    #[test]
    fn splits_row_groups_and_reports_progress() {
        let options = EncodeOptions {
            zstd_level: 1,
            row_group_entries: 100,
            ..EncodeOptions::default()
        };
        let mut writer = ObjectWriter::new(Vec::new(), &[], &options).unwrap();
        let mut progress = Vec::new();
        for chunk in 0..5u64 {
            let entries: Vec<Entry> = (0..70)
                .map(|i| entry(chunk * 100 + i, 0, &[("k", "some value")]))
                .collect();
            writer.write(&entries).unwrap();
            progress.push(writer.bytes_written());
        }
        // An estimate: it grows with the data but not necessarily on every call.
        assert!(progress[0] > 0 && progress[4] > progress[0], "{progress:?}");
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

    /// Entries of incompressible 32-character values, so that encoded sizes are real.
    fn noisy_entries(n: u64) -> Vec<Entry> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|i| {
                let value: String = (0..16)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        format!("{:02x}", x as u8)
                    })
                    .collect();
                entry(1_000 + i, 0, &[("k", &value)])
            })
            .collect()
    }

    fn write_in_runs(entries: &[Entry], run: usize, options: &EncodeOptions) -> Bytes {
        let mut writer = ObjectWriter::new(Vec::new(), &[], options).unwrap();
        for chunk in entries.chunks(run) {
            writer.write(chunk).unwrap();
        }
        Bytes::from(writer.finish(&meta_for(entries)).unwrap())
    }

    #[test]
    fn pages_line_up_with_checksum_blocks_whatever_the_batches() {
        let entries: Vec<Entry> = (0..3_000)
            .map(|i| entry(i, 0, &[("k", "v"), ("n", "1")]))
            .collect();
        // Batches of 700 cross block boundaries; pages must still start every 1,024 rows.
        let data = write_in_runs(&entries, 700, &EncodeOptions::default());
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&data)
            .unwrap();
        let page_index = metadata.page_index_for_row_group(0);
        for column in 0..metadata.row_group(0).num_columns() {
            let pages = page_index.page_locations(column).unwrap();
            let starts: Vec<i64> = pages.iter().map(|p| p.first_row_index).collect();
            assert_eq!(starts, [0, 1_024, 2_048], "column {column}");
        }
        let blocks = crate::parquet::key_value(&metadata, BLOCKS_KEY).unwrap();
        let rows: Vec<&str> = blocks.split(',').map(|b| b.split(':').next().unwrap()).collect();
        assert_eq!(rows, ["1024", "1024", "952"]);
        assert_eq!(crate::decode_object(data).unwrap().1, entries);
    }

    #[test]
    fn row_group_bytes_bounds_each_row_group() {
        let entries = noisy_entries(20_000);
        let options = EncodeOptions {
            zstd_level: 1,
            row_group_bytes: 64 * 1024,
            ..EncodeOptions::default()
        };
        let data = write_in_runs(&entries, 700, &options);
        let metadata = ParquetMetaDataReader::new().parse_and_finish(&data).unwrap();
        // About 380 KB encoded, blocks of about 20 KB: several groups, each within the budget
        // plus one block.
        let sizes: Vec<i64> = metadata
            .row_groups()
            .iter()
            .map(|g| g.compressed_size())
            .collect();
        assert!(metadata.num_row_groups() >= 4, "{sizes:?}");
        for group in metadata.row_groups() {
            assert!(
                group.compressed_size() <= 96 * 1024,
                "{}",
                group.compressed_size()
            );
        }
        let rows: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
        assert_eq!(rows.iter().sum::<i64>(), 20_000);
        // Groups end where checksum blocks do.
        let mut start = 0;
        for n in &rows[..rows.len() - 1] {
            start += n;
            assert_eq!(start % BLOCK_ENTRIES as i64, 0, "{rows:?}");
        }
        assert_eq!(crate::decode_object(data).unwrap().1, entries);
    }
}
