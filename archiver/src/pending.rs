//! Entries read ahead of the object being built, and how many of them the object takes.

use streamtier_schemas::{EntryBatch, EntryRef, ObjectSpan, StreamId};
use streamtier_tiers::hot::ReadBatch;

/// Entries read from Redis but not yet placed in an object, with the snapshot they were read
/// with; what one object leaves over starts the next, so each entry is read once per pass.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The read, entries and snapshot.
    pub(crate) batch: ReadBatch,
    pos: usize,
}

impl Pending {
    pub(crate) fn new(batch: ReadBatch) -> Self {
        Self { batch, pos: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.batch.entries.len() - self.pos
    }

    pub(crate) fn first_id(&self) -> Option<StreamId> {
        self.batch.entries.ids().get(self.pos).copied()
    }

    pub(crate) fn rest(&self) -> impl ExactSizeIterator<Item = EntryRef<'_>> + '_ {
        self.batch.entries.range(self.pos..self.batch.entries.len())
    }

    /// The next `n` entries, sharing the reply's buffer.
    pub(crate) fn take(&mut self, n: usize) -> EntryBatch {
        let all = self.batch.entries.len();
        let piece = if self.pos == 0 && n == all {
            std::mem::take(&mut self.batch.entries)
        } else {
            self.batch.entries.slice(self.pos..self.pos + n)
        };
        self.pos = if n == all { 0 } else { self.pos + n };
        piece
    }
}

/// How many leading entries fit into the object: same span (hour or day) number `bucket`,
/// within the entry and byte budgets.
/// The first entry of an object always fits, however large, so that no entry is ever stuck.
pub(crate) fn fit<'a>(
    entries: impl ExactSizeIterator<Item = EntryRef<'a>>,
    span: ObjectSpan,
    bucket: u64,
    entries_left: u64,
    bytes_left: u64,
    empty: bool,
) -> (usize, u64) {
    let mut bytes = 0u64;
    let len = entries.len();
    for (i, e) in entries.enumerate() {
        let size = e.payload_len() as u64;
        let first_of_object = empty && i == 0;
        if span.of(e.id) != bucket
            || i as u64 >= entries_left
            || (!first_of_object && bytes + size > bytes_left)
        {
            return (i, bytes);
        }
        bytes += size;
    }
    (len, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use streamtier_schemas::Entry;

    fn e(ms: u64, size: usize) -> Entry {
        Entry {
            id: StreamId::new(ms, 0),
            fields: vec![(Bytes::from_static(b"k"), Bytes::from(vec![0u8; size]))],
        }
    }

    #[test]
    fn objects_stop_at_the_hour() {
        let entries = EntryBatch::from_entries(&[e(3_599_998, 1), e(3_599_999, 1), e(3_600_000, 1)]);
        assert_eq!(fit(entries.iter(), ObjectSpan::Hour, 0, 100, 1 << 20, true).0, 2);
        // A daily object runs on past the hour, up to the day's end.
        let day = 86_400_000;
        let entries = EntryBatch::from_entries(&[e(3_599_999, 1), e(3_600_000, 1), e(day - 1, 1), e(day, 1)]);
        assert_eq!(fit(entries.iter(), ObjectSpan::Day, 0, 100, 1 << 20, true).0, 3);
    }

    #[test]
    fn objects_stop_at_their_budgets_but_always_take_one() {
        let entries = EntryBatch::from_entries(&[e(1, 100), e(2, 100), e(3, 100)]);
        assert_eq!(fit(entries.iter(), ObjectSpan::Hour, 0, 2, 1 << 20, true).0, 2);
        assert_eq!(fit(entries.iter(), ObjectSpan::Hour, 0, 100, 10, true).0, 1);
        assert_eq!(fit(entries.iter(), ObjectSpan::Hour, 0, 100, 10, false).0, 0);
    }

    #[test]
    fn pieces_of_a_read_come_out_in_order_and_whole() {
        let entries: Vec<Entry> = (1..=5).map(|ms| e(ms, 3)).collect();
        let mut p = Pending::new(ReadBatch {
            entries: EntryBatch::from_entries(&entries),
            info: None,
            fence: None,
        });
        assert_eq!(p.take(2).to_entries(), entries[..2].to_vec());
        assert_eq!(p.first_id(), Some(StreamId::new(3, 0)));
        assert_eq!(p.rest().len(), 3);
        assert_eq!(p.take(3).to_entries(), entries[2..].to_vec());
        assert_eq!((p.len(), p.first_id()), (0, None));
    }
}
