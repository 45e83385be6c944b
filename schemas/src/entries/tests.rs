//! Unit tests of `entries`.

use super::*;

fn entry(ms: u64, fields: &[(&[u8], &[u8])]) -> Entry {
    let fields = fields
        .iter()
        .map(|(n, v)| (Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)))
        .collect();
    Entry::new(StreamId::new(ms, 0), fields)
}

fn texts(batch: &EntryBatch, i: usize) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    batch
        .get(i)
        .text_fields(&mut out)
        .then(|| out.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
}

#[test]
fn text_fields_are_the_utf8_fields_whatever_lies_between_them() {
    let pair = |n: &str, v: &str| Some(vec![(n.to_string(), v.to_string())]);
    // Packed with nothing between them: a character split across name and value is two
    // invalid fields, though the bytes together are valid UTF-8.
    let packed = EntryBatch::from_entries(&[
        entry(1, &[(b"name", "caf\u{e9} \u{1f600}".as_bytes())]),
        entry(2, &[(b"\xc3", b"\xa9")]),
        entry(3, &[(b"a", b"ok"), (b"b", b"\xff")]),
        entry(4, &[(b"", b"")]),
    ]);
    assert_eq!(texts(&packed, 0), pair("name", "caf\u{e9} \u{1f600}"));
    assert_eq!(texts(&packed, 1), None);
    assert_eq!(texts(&packed, 2), None);
    assert_eq!(texts(&packed, 3), pair("", ""));
    // As in a reply: ASCII headers between the fields, and one field far from the others.
    let data = Bytes::from_static(b"$1\r\nk\r\n$2\r\n\xc3\xa9\r\n$1\r\nj\r\n");
    let mut far = b"$1\r\nk\r\n".to_vec();
    far.extend(std::iter::repeat_n(0xffu8, 100));
    far.extend_from_slice(b"xy");
    let far = Bytes::from(far);
    let mut b = EntryBatchBuilder::new(2);
    b.entry(StreamId::new(1, 0));
    b.field(4..5, 11..13).unwrap();
    b.entry(StreamId::new(2, 0));
    b.field(4..5, 19..20).unwrap();
    let reply = b.finish(data).unwrap();
    assert_eq!(texts(&reply, 0), pair("k", "\u{e9}"));
    assert_eq!(texts(&reply, 1), pair("k", "j"));
    let mut b = EntryBatchBuilder::new(1);
    b.entry(StreamId::new(1, 0));
    b.field(4..5, far.len() - 2..far.len()).unwrap();
    assert_eq!(texts(&b.finish(far).unwrap(), 0), pair("k", "xy"));
}

#[test]
fn a_slice_holds_the_same_entries_over_the_same_buffer() {
    let entries = vec![
        entry(1, &[(b"a", b"1"), (b"b", b"2")]),
        entry(2, &[(b"c", b"\xff")]),
        entry(3, &[]),
        entry(4, &[(b"d", b"4"), (b"d", b"5"), (b"e", b"")]),
    ];
    let batch = EntryBatch::from_entries(&entries);
    for start in 0..=entries.len() {
        for end in start..=entries.len() {
            let part = batch.slice(start..end);
            assert_eq!(part.to_entries(), entries[start..end].to_vec(), "{start}..{end}");
            assert_eq!(part.len(), end - start);
        }
    }
    let tail = batch.slice(1..4);
    assert_eq!(tail.slice(1..3).to_entries(), entries[2..4].to_vec());
}

#[test]
fn a_builder_rolls_back_to_a_mark_and_checks_ranges_at_the_end() {
    let data = Bytes::from_static(b"abcdef");
    let mut b = EntryBatchBuilder::new(2);
    b.entry(StreamId::new(1, 0));
    b.field(0..1, 1..2).unwrap();
    let mark = b.mark();
    b.entry(StreamId::new(2, 0));
    b.field(2..3, 3..4).unwrap();
    b.field(4..5, 5..6).unwrap();
    b.rollback(mark);
    assert_eq!(b.len(), 1);
    b.field(2..3, 3..6).unwrap();
    b.entry(StreamId::new(3, 0));
    let batch = b.finish(data).unwrap();
    assert_eq!(batch.ids(), &[StreamId::new(1, 0), StreamId::new(3, 0)]);
    let fields: Vec<_> = batch.get(0).fields().collect();
    assert_eq!(fields, vec![(&b"a"[..], &b"b"[..]), (b"c", b"def")]);
    assert_eq!(batch.get(1).field_count(), 0);
    // Ranges are 32-bit.
    let mut b = EntryBatchBuilder::new(1);
    b.entry(StreamId::new(1, 0));
    assert!(b.field(0..1, 0..(u32::MAX as usize + 1)).is_err());
}

#[test]
fn round_trips_entries_and_truncates() {
    let entries = vec![
        entry(1, &[(b"a", b"x"), (b"a", b"\xff\x00"), (b"", b"")]),
        entry(2, &[]),
        entry(3, &[(b"k", b"v")]),
    ];
    let mut batch = EntryBatch::from_entries(&entries);
    assert_eq!(batch.len(), 3);
    assert_eq!(batch.to_entries(), entries);
    assert_eq!(batch.get(0).payload_len(), entries[0].payload_len());
    assert_eq!(batch.get(0).first_value(b"a"), Some(&b"x"[..]));
    assert_eq!(batch.get(1).field_count(), 0);
    assert_eq!(
        (batch.first_id(), batch.last_id()),
        (Some(entries[0].id), Some(entries[2].id))
    );
    batch.truncate(2);
    assert_eq!(batch.to_entries(), entries[..2]);
    batch.truncate(0);
    assert!(batch.is_empty() && batch.to_entries().is_empty());
    assert!(EntryBatch::from_entries(&[]).is_empty());
}

#[test]
fn refuses_ranges_outside_the_buffer() {
    let data = Bytes::from_static(b"abcd");
    let mut builder = EntryBatchBuilder::new(1);
    builder.entry(StreamId::new(1, 0));
    builder.field(0..1, 1..4).unwrap();
    assert!(builder.field(Range { start: 3, end: 2 }, 0..0).is_err());
    let batch = builder.finish(data.clone()).unwrap();
    assert_eq!(
        batch.get(0).fields().collect::<Vec<_>>(),
        [(&b"a"[..], &b"bcd"[..])]
    );
    let mut builder = EntryBatchBuilder::new(1);
    builder.entry(StreamId::new(1, 0));
    builder.field(0..1, 2..5).unwrap();
    assert!(builder.finish(data).is_err());
}
