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
}
