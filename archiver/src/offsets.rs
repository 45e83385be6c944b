//! Gap accounting: exact entries-added offsets from `XINFO STREAM`, compared with the archive.
//!
//! Every entry Redis ever added to a stream has an offset (1 for the first one ever). The archive
//! chain knows the offset of its last archived entry. For a batch read atomically with
//! `XINFO STREAM`, the offset of its first entry `x` is exact when no `XDEL` removed an id at or
//! after `x` (`max-deleted-entry-id < x`) and one of these holds:
//! - `x` is the oldest entry present: `entries-added - length + 1`;
//! - the batch runs to the newest entry: `entries-added - batch length + 1`;
//! - entries at or before the previous archived entry are still present and no `XDEL` happened
//!   after it: nothing between them can have gone, so it is the previous offset + 1.
//!
//! The difference between that offset and the archive's is the exact number of entries that
//! vanished unarchived (a producer's `MAXLEN`, `XDEL`, a foreign `XTRIM`).

use streamtier_schemas::StreamId;
use streamtier_tiers::hot::StreamInfo;

/// Exact offset of `first`, the first entry of a batch of `len` entries, when it can be known.
pub fn first_offset(
    info: &StreamInfo,
    first: StreamId,
    len: usize,
    reached_tail: bool,
    prev_id: StreamId,
    prev_offset: Option<u64>,
) -> Option<u64> {
    let no_xdel_from_first = info.max_deleted_id < first;
    if no_xdel_from_first && info.first_id == Some(first) {
        return (info.entries_added + 1).checked_sub(info.length);
    }
    if no_xdel_from_first && reached_tail {
        return (info.entries_added + 1).checked_sub(len as u64);
    }
    let prev_still_present = info.first_id.is_some_and(|f| f <= prev_id);
    if info.max_deleted_id <= prev_id && prev_still_present {
        return prev_offset.map(|o| o + 1);
    }
    None
}

/// How a batch relates to what the archive already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Continuity {
    /// The batch starts right after the archived entries.
    Contiguous,
    /// `count` entries vanished before they were archived; the last of them had `last_offset`.
    Gap {
        /// Entries missing.
        count: u64,
        /// Offset of the last missing entry.
        last_offset: u64,
    },
    /// The stream has fewer entries than the archive says it had: deleted and recreated, or a
    /// failover lost entries. Nothing may be trimmed on this evidence.
    Inconsistent,
    /// The offsets cannot be compared (an `XDEL` after the watermark hides the count for now).
    Unknown,
}

/// Compares the previous archived offset with the first offset of the next batch.
pub fn continuity(prev_offset: Option<u64>, first_offset: Option<u64>) -> Continuity {
    match (prev_offset, first_offset) {
        (Some(prev), Some(first)) if first == prev + 1 => Continuity::Contiguous,
        (Some(prev), Some(first)) if first > prev + 1 => Continuity::Gap {
            count: first - prev - 1,
            last_offset: first - 1,
        },
        (Some(_), Some(_)) => Continuity::Inconsistent,
        _ => Continuity::Unknown,
    }
}

/// Where the offsets stand while an object is built: the last id taken, its exact offset, or,
/// while an `XDEL` after it hides that, the last exact id with its offset plus what was taken
/// since (an estimate that lets the next exact offset count the deleted entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    /// The last id taken.
    pub last: StreamId,
    /// Its entries-added offset, when exact.
    pub last_offset: Option<u64>,
    /// The estimate kept while `last_offset` is unknown.
    pub estimate: Option<(StreamId, u64)>,
}

/// What a batch read atomically with `XINFO STREAM` says about continuity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchCheck {
    /// How the batch follows what was taken.
    pub continuity: Continuity,
    /// The last id known exactly before a gap.
    pub gap_after: StreamId,
    /// The id a gap ends before: the batch's first (or, with only the tail count, its last).
    pub gap_before: StreamId,
    offset: Option<u64>,
    tail_offset: Option<u64>,
}

impl Tally {
    /// Checks a batch of `len` entries from `first` to `batch_last`; `reached_tail` when it runs
    /// to the stream's newest entry.
    pub fn check(
        &self,
        info: &StreamInfo,
        first: StreamId,
        batch_last: StreamId,
        len: usize,
        reached_tail: bool,
    ) -> BatchCheck {
        let offset = first_offset(info, first, len, reached_tail, self.last, self.last_offset);
        // Compare with the exact offset, or with the estimate kept since an XDEL hid it.
        let (gap_after, prev) = match (self.last_offset, self.estimate) {
            (Some(o), _) => (self.last, Some(o)),
            (None, Some((anchor, n))) => (anchor, Some(n)),
            (None, None) => (self.last, None),
        };
        // At the tail, the newest entry's offset is `entries-added` (unless it was deleted):
        // that bounds what vanished in the whole batch even when XDEL hides where.
        let tail_offset = (reached_tail && info.last_entry_id == Some(info.last_generated_id))
            .then_some(info.entries_added);
        let continuity = match (offset, tail_offset, prev) {
            (None, Some(t), Some(p)) => match t.checked_sub(p + len as u64) {
                Some(0) => Continuity::Contiguous,
                Some(missing) => Continuity::Gap {
                    count: missing,
                    last_offset: t - len as u64,
                },
                None => Continuity::Inconsistent,
            },
            _ => continuity(prev, offset),
        };
        BatchCheck {
            continuity,
            gap_after,
            gap_before: if offset.is_some() { first } else { batch_last },
            offset,
            tail_offset,
        }
    }

    /// Takes the first `take` entries of a checked batch (`whole` when that is all of it),
    /// the last of them being `last`.
    pub fn advance(&mut self, check: &BatchCheck, take: u64, whole: bool, last: StreamId) {
        (self.last_offset, self.estimate) = match (check.offset, self.last_offset, self.estimate) {
            (Some(o), _, _) => (Some(o + take - 1), None),
            (None, _, _) if whole && check.tail_offset.is_some() => (check.tail_offset, None),
            (None, Some(p), _) => (None, Some((self.last, p + take))),
            (None, None, Some((anchor, n))) => (None, Some((anchor, n + take))),
            (None, None, None) => (None, None),
        };
        self.last = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    fn info(length: u64, added: u64, first: u64, last: u64, max_deleted: u64) -> StreamInfo {
        StreamInfo {
            length,
            entries_added: added,
            first_id: Some(id(first)),
            last_entry_id: Some(id(last)),
            last_generated_id: id(last),
            max_deleted_id: id(max_deleted),
            recorded_first_id: id(first),
        }
    }

    #[test]
    fn producer_maxlen_gap_is_counted_exactly() {
        // 100 entries 1..=100 added, producer kept the newest 10, archive had 1..=20.
        let i = info(10, 100, 91, 100, 0);
        let first = first_offset(&i, id(91), 10, true, id(20), Some(20));
        assert_eq!(first, Some(91));
        assert_eq!(
            continuity(Some(20), first),
            Continuity::Gap {
                count: 70,
                last_offset: 90
            }
        );
    }

    #[test]
    fn trimmed_before_first_seen_is_a_gap_from_zero() {
        let i = info(5, 12, 8, 12, 0);
        let first = first_offset(&i, id(8), 5, true, StreamId::MIN, Some(0));
        assert_eq!(
            continuity(Some(0), first),
            Continuity::Gap {
                count: 7,
                last_offset: 7
            }
        );
    }

    #[test]
    fn retained_entries_keep_the_count_without_xinfo_arithmetic() {
        // Entries 1..=50 present, archive up to 30, batch 31..=40 not reaching the tail.
        let i = info(50, 50, 1, 50, 0);
        assert_eq!(first_offset(&i, id(31), 10, false, id(30), Some(30)), Some(31));
    }

    #[test]
    fn xdel_after_the_watermark_is_counted_at_the_tail() {
        // 1..=10 added, 4 and 5 deleted, archive up to 3.
        let i = info(8, 10, 1, 10, 5);
        assert_eq!(first_offset(&i, id(6), 5, false, id(3), Some(3)), None);
        let first = first_offset(&i, id(6), 5, true, id(3), Some(3));
        assert_eq!(
            continuity(Some(3), first),
            Continuity::Gap {
                count: 2,
                last_offset: 5
            }
        );
    }

    #[test]
    fn a_recreated_stream_is_inconsistent() {
        let i = info(3, 3, 1, 3, 0);
        let first = first_offset(&i, id(1), 3, true, StreamId::MIN, Some(500));
        assert_eq!(continuity(Some(500), first), Continuity::Inconsistent);
    }

    #[test]
    fn an_xdel_keeps_an_estimate_until_the_tail_makes_it_exact() {
        // 1..=20 added, 12 deleted, archive up to 10 (offset 10).
        let i = info(19, 20, 1, 20, 12);
        let mut tally = Tally {
            last: id(10),
            last_offset: Some(10),
            estimate: None,
        };
        // 11, 13, 14 (not the tail): the XDEL after 10 hides their offsets.
        let check = tally.check(&i, id(11), id(14), 3, false);
        assert_eq!(check.continuity, Continuity::Unknown);
        tally.advance(&check, 3, true, id(14));
        assert_eq!((tally.last_offset, tally.estimate), (None, Some((id(10), 13))));
        // 15..=20 runs to the tail, after the XDEL: 15 is offset 15, so one of the 4 entries
        // after 10 vanished (the estimate said 13), and the offsets are exact again.
        let check = tally.check(&i, id(15), id(20), 6, true);
        assert_eq!(
            (check.continuity, check.gap_after, check.gap_before),
            (
                Continuity::Gap {
                    count: 1,
                    last_offset: 14
                },
                id(10),
                id(15)
            )
        );
        tally.advance(&check, 6, true, id(20));
        assert_eq!(
            tally,
            Tally {
                last: id(20),
                last_offset: Some(20),
                estimate: None
            }
        );
    }
}
