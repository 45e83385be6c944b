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
mod tests;
