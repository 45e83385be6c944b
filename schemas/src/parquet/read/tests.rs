//! Unit tests of `read`.

use super::*;

/// Reads only the footer metadata of a whole object.
fn read_meta(data: Bytes) -> Result<ObjectMeta> {
    guarded(move || meta_of(&parse_footer(&data)?))
}
use crate::columns::{ColumnType, TypedColumn};
use crate::error::ErrorKind;
use crate::id::StreamId;
use crate::parquet::batch::build_batch;
use crate::parquet::test_support::{entry, meta_for};
use crate::parquet::{arrow_schema, encode_object, EncodeOptions, ObjectWriter};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use proptest::prelude::*;

/// Writes `entries` without the writer's checks, with the given footer pairs.
fn write_unchecked(entries: &[Entry], pairs: Vec<(String, String)>) -> Bytes {
    let schema = arrow_schema(&[]);
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), None).unwrap();
    writer
        .write(&build_batch(&schema, &[], crate::EntryBatch::from_entries(entries).iter()).unwrap())
        .unwrap();
    for (k, v) in pairs {
        writer.append_key_value_metadata(KeyValue::new(k, v));
    }
    Bytes::from(writer.into_inner().unwrap())
}

fn encode(entries: &[Entry]) -> Bytes {
    encode_object(entries, &meta_for(entries), &[], &EncodeOptions::default()).unwrap()
}

fn bytes(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

#[test]
fn round_trips_binary_repeated_and_empty_fields() {
    let entries = vec![
        Entry::new(StreamId::new(1, 0), vec![]),
        Entry::new(StreamId::new(1, 1), vec![(bytes(b""), bytes(b""))]),
        Entry::new(
            StreamId::new(2, 0),
            vec![
                (bytes(b"a"), bytes(b"1")),
                (bytes(b"b"), bytes(b"")),
                (bytes(b"a"), bytes(b"2")),
            ],
        ),
        Entry::new(
            StreamId::new(3, 0),
            vec![
                (bytes(b"\xff"), bytes(b"x")),
                (bytes(b"\xfe"), bytes(b"\x00\xc3")),
                (bytes(b"k"), bytes(b"v")),
            ],
        ),
        entry(u64::MAX, u64::MAX, &[("carrier", "ups"), ("", "empty name")]),
    ];
    let data = encode(&entries);
    let (meta, decoded) = decode_object(data.clone()).unwrap();
    assert_eq!(meta, meta_for(&entries));
    assert_eq!(decoded, entries);
    assert_eq!(read_meta(data).unwrap(), meta);
}

#[test]
fn footers_carry_no_embedded_arrow_schema() {
    let entries = vec![entry(5, 0, &[("carrier", "ups")])];
    let metadata = parse_footer(&encode(&entries)).unwrap();
    assert_eq!(key_value(&metadata, "ARROW:schema"), None);
    assert!(key_value(&metadata, CHECKSUM_KEY).is_some());
}

#[test]
fn typed_columns_are_read_back_from_the_schema() {
    let entries = vec![entry(5, 0, &[("carrier", "ups"), ("amount", "12")])];
    let columns = crate::parquet::test_support::typed_columns();
    let data = encode_object(&entries, &meta_for(&entries), &columns, &EncodeOptions::default()).unwrap();
    assert_eq!(typed_columns_of(&data).unwrap(), columns);
    assert!(typed_columns_of(&encode(&entries)).unwrap().is_empty());
    assert!(typed_columns_of(&data.slice(..data.len() - 10)).is_err());
}

#[test]
fn round_trips_a_ten_megabyte_value() {
    let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i * 7 + i / 3) as u8).collect();
    let entries = vec![
        Entry::new(
            StreamId::new(1, 0),
            vec![(bytes(b"blob"), Bytes::from(big.clone()))],
        ),
        Entry::new(
            StreamId::new(1, 1),
            vec![(bytes(b"text"), Bytes::from("é".repeat(5 * 1024 * 1024)))],
        ),
    ];
    let (_, decoded) = decode_object(encode(&entries)).unwrap();
    assert_eq!(decoded, entries);
}

#[test]
fn truncated_objects_are_errors() {
    let entries: Vec<Entry> = (0..50)
        .map(|i| entry(i, 0, &[("k", "value"), ("n", &i.to_string())]))
        .collect();
    let data = encode(&entries);
    for len in (0..data.len()).step_by(7).chain([data.len() - 1]) {
        let err = decode_object(data.slice(..len)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{len}: {err}");
    }
    assert!(read_meta(data.slice(..data.len() - 1)).is_err());
    assert!(read_meta(Bytes::from_static(b"PAR1")).is_err());
}

#[test]
fn detects_rows_that_disagree_with_the_metadata() {
    let entries = vec![entry(1, 0, &[]), entry(2, 0, &[])];
    let meta = meta_for(&entries);
    let cases = [
        (
            ObjectMeta {
                entry_count: 3,
                ..meta.clone()
            },
            entries.clone(),
            "3 entries",
        ),
        (
            ObjectMeta {
                first_id: StreamId::new(0, 5),
                ..meta.clone()
            },
            entries.clone(),
            "rows span",
        ),
        (
            meta.clone(),
            vec![entry(2, 0, &[]), entry(1, 0, &[])],
            "ascending",
        ),
        (
            meta.clone(),
            vec![entry(1, 0, &[]), entry(1, 0, &[])],
            "ascending",
        ),
    ];
    for (meta, rows, expect) in cases {
        let err = decode_object(write_unchecked(&rows, meta.to_pairs())).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { reason } if reason.contains(expect)),
            "{err}"
        );
    }
    let err = decode_object(write_unchecked(&entries, vec![])).unwrap_err();
    assert!(matches!(
        err,
        Error::MissingMetadata {
            key: "streamtier.format_version"
        }
    ));
}

fn any_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::new()),
        prop::sample::select(vec!["a", "b", "carrier", "amount"]).prop_map(|s: &str| Bytes::from(s)),
        "[a-zA-Z0-9 é€]{0,10}".prop_map(Bytes::from),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(Bytes::from),
    ]
}

fn utf8_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        prop::sample::select(vec!["a", "b", "carrier", "amount", ""]).prop_map(|s: &str| Bytes::from(s)),
        "[a-z0-9€]{0,10}".prop_map(Bytes::from),
        (-50i64..50).prop_map(|n| Bytes::from(n.to_string())),
    ]
}

fn any_fields() -> impl Strategy<Value = Vec<(Bytes, Bytes)>> {
    prop_oneof![
        prop::collection::vec((any_bytes(), any_bytes()), 0..=6),
        prop::collection::vec((utf8_bytes(), utf8_bytes()), 0..=6),
    ]
}

fn any_entries() -> impl Strategy<Value = Vec<Entry>> {
    let start = prop_oneof![
        0u64..1_000,
        1_700_000_000_000u64..1_800_000_000_000,
        Just(i64::MAX as u64 - 2)
    ];
    let steps = prop::collection::vec((0u64..3, 0u64..3, any_fields()), 1..40);
    (start, steps).prop_map(|(start, steps)| {
        let mut id = StreamId::new(start, 0);
        steps
            .into_iter()
            .map(|(dms, dseq, fields)| {
                id = if dms == 0 {
                    StreamId::new(id.ms, id.seq + 1 + dseq)
                } else {
                    StreamId::new(id.ms + dms, dseq)
                };
                Entry::new(id, fields)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn entries_round_trip_byte_for_byte(
        entries in any_entries(),
        row_group_entries in 1usize..8,
        chunk in 1usize..10,
    ) {
        let columns = [TypedColumn::new("amount", ColumnType::Int64), TypedColumn::new("a", ColumnType::String)];
        let options = EncodeOptions { zstd_level: 1, row_group_entries, ..EncodeOptions::default() };
        let mut writer = ObjectWriter::new(Vec::new(), &columns, &options).unwrap();
        for part in entries.chunks(chunk) {
            writer.write(part).unwrap();
        }
        let meta = meta_for(&entries);
        let data = Bytes::from(writer.finish(&meta).unwrap());
        let (decoded_meta, decoded) = decode_object(data).unwrap();
        prop_assert_eq!(decoded_meta, meta);
        prop_assert_eq!(decoded, entries);
    }

    #[test]
    fn damaged_objects_never_panic(entries in any_entries(), at in any::<prop::sample::Index>(), xor in 1u8..) {
        let mut data = encode(&entries).to_vec();
        let i = at.index(data.len());
        data[i] ^= xor;
        // A flip may hit bytes nothing reads (statistics, typed columns); otherwise the
        // object must be rejected, never decoded into different entries.
        if let Ok((_, decoded)) = decode_object(Bytes::from(data.clone())) {
            prop_assert_eq!(decoded, entries);
        }
        let _ = read_meta(Bytes::from(data));
    }
}
