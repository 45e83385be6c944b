//! Unit tests of `write`.

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
