//! When an object closes: its span (hour or day) is over, it is full, retention needs its
//! entries out of Redis, or `flush_after` says it is old enough. One rule serves the daemon and
//! `--once`, so that every traffic shape ends up as one object per partition-span in steady
//! state.

use streamtier_schemas::{layout, ObjectSpan, StreamId};
use streamtier_tiers::hot::StreamInfo;

use crate::settings::{ArchiveConfig, Retention};

/// The span the object starting at `first` is written with: the topic's, except that a day
/// whose chain already holds an hourly object stays hourly until it ends. Daily keys sort
/// before a day's hourly keys, so a daily object after an hourly one of the same day would
/// break the rule that keys sort in ID order (from `1d` to `1h` needs no such care).
pub fn object_span(configured: ObjectSpan, chain_last_key: Option<&str>, first: StreamId) -> ObjectSpan {
    let hourly_today = chain_last_key
        .and_then(layout::parse_object_key)
        .is_some_and(|k| {
            k.span == ObjectSpan::Hour && ObjectSpan::Day.of(k.first_id) == ObjectSpan::Day.of(first)
        });
    if hourly_today {
        ObjectSpan::Hour
    } else {
        configured
    }
}

/// Why an object is written now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// `--flush`: everything present is archived, open hour or not.
    Flush,
    /// Its span (hour or day) is over: a later entry exists, or the clock passed the span's
    /// end plus `close_grace`.
    SpanOver,
    /// The unarchived entries fill an object (`max_object_entries`, `max_object_bytes`).
    Full,
    /// More than `retention_slack` entries beyond the hot window wait for the hour to close.
    Retention,
    /// The oldest unarchived entry is older than `flush_after`.
    FlushAfter,
}

impl Close {
    /// The reason as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Close::Flush => "flush",
            Close::SpanOver => "span_over",
            Close::Full => "full",
            Close::Retention => "retention",
            Close::FlushAfter => "flush_after",
        }
    }
}

/// What the rule looks at, all from one read's snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The oldest unarchived entry: the first of the next object.
    pub first: StreamId,
    /// The span of the next object (see [`object_span`]).
    pub span: ObjectSpan,
    /// `XINFO STREAM`, read atomically with `first`.
    pub info: &'a StreamInfo,
    /// Entries-added offset of the last archived entry, when known.
    pub archived_offset: Option<u64>,
    /// Now, in epoch milliseconds.
    pub now_ms: u64,
    /// Average payload bytes of the entries read lately (at least 1).
    pub avg_entry_bytes: u64,
    /// How long (by the clock) the stream's last generated id has stayed the same, as seen by
    /// this worker; `None` when it has no history (a `--once` pass), which counts as quiet.
    pub quiet_ms: Option<u64>,
}

impl Facts<'_> {
    /// Entries added after the archive's end: an upper bound of what waits to be archived
    /// (`XDEL` may have removed some), or the stream's length when the offset is unknown.
    pub fn unarchived(&self) -> u64 {
        let added = self
            .archived_offset
            .map(|o| self.info.entries_added.saturating_sub(o));
        added.map_or(self.info.length, |a| a.min(self.info.length))
    }
}

/// Answers why the object starting at `facts.first` should be written now, or `None` when it
/// should wait (its hour is open and nothing else needs it).
pub fn close_reason(
    cfg: &ArchiveConfig,
    retention: &Retention,
    flush: bool,
    facts: &Facts<'_>,
) -> Option<Close> {
    if flush {
        return Some(Close::Flush);
    }
    let span_end = facts.span.end_ms(facts.first);
    let later_entry = facts.info.last_entry_id.is_some_and(|l| l.ms >= span_end);
    let grace = cfg.close_grace.as_millis() as u64;
    // The clock closes a span only while no entry is being added: a producer still backfilling
    // it with explicit past ids would otherwise see it cut into pieces.
    let quiet = facts.quiet_ms.is_none_or(|q| q >= grace);
    if later_entry || (quiet && facts.now_ms >= span_end.saturating_add(grace)) {
        return Some(Close::SpanOver);
    }
    let unarchived = facts.unarchived();
    if unarchived >= cfg.max_object_entries
        || unarchived.saturating_mul(facts.avg_entry_bytes) >= cfg.max_object_bytes
    {
        return Some(Close::Full);
    }
    let trimmable_by_time = retention.old_enough(facts.first.ms, facts.now_ms);
    let window = retention.retain_entries.saturating_add(cfg.retention_slack);
    if trimmable_by_time && unarchived > window {
        return Some(Close::Retention);
    }
    if let Some(flush_after) = cfg.flush_after {
        if facts.now_ms.saturating_sub(facts.first.ms) >= flush_after.as_millis() as u64 {
            return Some(Close::FlushAfter);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::settings::ArchiveSettings;

    const H: u64 = 3_600_000;

    fn cfg() -> ArchiveConfig {
        ArchiveSettings::default().check().unwrap()
    }

    fn info(length: u64, added: u64, last_ms: u64) -> StreamInfo {
        StreamInfo {
            length,
            entries_added: added,
            first_id: Some(StreamId::new(10 * H, 0)),
            last_entry_id: Some(StreamId::new(last_ms, 0)),
            last_generated_id: StreamId::new(last_ms, 0),
            max_deleted_id: StreamId::MIN,
            recorded_first_id: StreamId::MIN,
        }
    }

    fn facts(info: &StreamInfo, first_ms: u64, now_ms: u64) -> Facts<'_> {
        Facts {
            first: StreamId::new(first_ms, 0),
            span: ObjectSpan::Hour,
            info,
            archived_offset: Some(info.entries_added - info.length),
            now_ms,
            avg_entry_bytes: 200,
            quiet_ms: None,
        }
    }

    fn keep(retain_entries: u64, retain_for: Duration) -> Retention {
        Retention {
            retain_entries,
            retain_for,
            retain_max_entries: None,
        }
    }

    #[test]
    fn an_open_hour_waits_and_a_closed_one_does_not() {
        let (c, r) = (cfg(), Retention::default());
        let open = info(5, 5, 10 * H + 100);
        assert_eq!(
            close_reason(&c, &r, false, &facts(&open, 10 * H + 1, 10 * H + 200)),
            None
        );
        // A later entry closes the hour at once.
        let later = info(6, 6, 11 * H);
        assert_eq!(
            close_reason(&c, &r, false, &facts(&later, 10 * H + 1, 10 * H + 200)),
            Some(Close::SpanOver)
        );
        // Without one, the clock does, after the grace.
        let grace = c.close_grace.as_millis() as u64;
        assert_eq!(
            close_reason(&c, &r, false, &facts(&open, 10 * H + 1, 11 * H + grace - 1)),
            None
        );
        assert_eq!(
            close_reason(&c, &r, false, &facts(&open, 10 * H + 1, 11 * H + grace)),
            Some(Close::SpanOver)
        );
        assert_eq!(
            close_reason(&c, &r, true, &facts(&open, 10 * H + 1, 10 * H + 200)),
            Some(Close::Flush)
        );
        // A stream still being written (a backfill with past ids) keeps its hour open.
        let mut busy = facts(&open, 10 * H + 1, 12 * H);
        busy.quiet_ms = Some(grace - 1);
        assert_eq!(close_reason(&c, &r, false, &busy), None);
        busy.quiet_ms = Some(grace);
        assert_eq!(close_reason(&c, &r, false, &busy), Some(Close::SpanOver));
    }

    #[test]
    fn a_full_object_closes_in_an_open_hour() {
        let mut c = cfg();
        c.max_object_entries = 100;
        let r = Retention::default();
        let now = 10 * H + 1000;
        assert_eq!(
            close_reason(&c, &r, false, &facts(&info(99, 99, now), 10 * H, now)),
            None
        );
        assert_eq!(
            close_reason(&c, &r, false, &facts(&info(100, 100, now), 10 * H, now)),
            Some(Close::Full)
        );
        c.max_object_entries = 1_000_000;
        c.max_object_bytes = 200 * 50;
        assert_eq!(
            close_reason(&c, &r, false, &facts(&info(50, 50, now), 10 * H, now)),
            Some(Close::Full)
        );
    }

    #[test]
    fn retention_closes_an_open_hour_only_past_the_window_and_slack() {
        let mut c = cfg();
        c.retention_slack = 100;
        let now = 10 * H + 30 * 60_000;
        let small = keep(10, Duration::ZERO);
        assert_eq!(
            close_reason(&c, &small, false, &facts(&info(110, 110, now), 10 * H, now)),
            None
        );
        assert_eq!(
            close_reason(&c, &small, false, &facts(&info(111, 111, now), 10 * H, now)),
            Some(Close::Retention)
        );
        // Entries the time window still keeps hold nothing back.
        let by_time = keep(10, Duration::from_secs(3600));
        assert_eq!(
            close_reason(&c, &by_time, false, &facts(&info(500, 500, now), 10 * H, now)),
            None
        );
        // Archived entries still in Redis (retention keeps them) do not count.
        let i = info(500, 500, now);
        let mut f = facts(&i, 10 * H, now);
        f.archived_offset = Some(450);
        assert_eq!(close_reason(&c, &small, false, &f), None);
    }

    #[test]
    fn flush_after_is_a_freshness_bound_when_set() {
        let mut c = cfg();
        let r = Retention::default();
        let now = 10 * H + 5000;
        let i = info(1, 1, 10 * H);
        assert_eq!(close_reason(&c, &r, false, &facts(&i, 10 * H, now)), None);
        c.flush_after = Some(Duration::from_secs(5));
        assert_eq!(
            close_reason(&c, &r, false, &facts(&i, 10 * H, now)),
            Some(Close::FlushAfter)
        );
        assert_eq!(close_reason(&c, &r, false, &facts(&i, 10 * H + 1, now)), None);
    }

    #[test]
    fn a_daily_object_stays_open_until_its_day_ends() {
        const D: u64 = 24 * H;
        let (c, r) = (cfg(), Retention::default());
        let grace = c.close_grace.as_millis() as u64;
        let i = info(5, 5, 3 * D + 5 * H);
        let mut f = facts(&i, 3 * D + H, 3 * D + 10 * H);
        f.span = ObjectSpan::Day;
        assert_eq!(close_reason(&c, &r, false, &f), None);
        f.now_ms = 4 * D + grace;
        assert_eq!(close_reason(&c, &r, false, &f), Some(Close::SpanOver));
        let next_day = info(6, 6, 4 * D);
        let mut f = facts(&next_day, 3 * D + H, 3 * D + 10 * H);
        f.span = ObjectSpan::Day;
        assert_eq!(close_reason(&c, &r, false, &f), Some(Close::SpanOver));
        // Past the hot window plus the slack, retention archives the day so far.
        let mut c = cfg();
        c.retention_slack = 100;
        let busy = info(111, 111, 3 * D + 5 * H);
        let mut f = facts(&busy, 3 * D + H, 3 * D + 10 * H);
        f.span = ObjectSpan::Day;
        assert_eq!(
            close_reason(&c, &keep(10, Duration::from_secs(3600)), false, &f),
            Some(Close::Retention)
        );
    }

    #[test]
    fn a_day_with_an_hourly_object_stays_hourly() {
        const D: u64 = 24 * H;
        let first = StreamId::new(3 * D + 5 * H, 0);
        let hourly = layout::span_object_key("t", 0, ObjectSpan::Hour, StreamId::new(3 * D + H, 0));
        let daily = layout::span_object_key("t", 0, ObjectSpan::Day, StreamId::new(3 * D + H, 0));
        let yesterday = layout::span_object_key("t", 0, ObjectSpan::Hour, StreamId::new(2 * D + H, 0));
        assert_eq!(
            object_span(ObjectSpan::Day, Some(&hourly), first),
            ObjectSpan::Hour
        );
        assert_eq!(
            object_span(ObjectSpan::Day, Some(&yesterday), first),
            ObjectSpan::Day
        );
        assert_eq!(object_span(ObjectSpan::Day, Some(&daily), first), ObjectSpan::Day);
        assert_eq!(object_span(ObjectSpan::Day, None, first), ObjectSpan::Day);
        assert_eq!(
            object_span(ObjectSpan::Hour, Some(&daily), first),
            ObjectSpan::Hour
        );
        // Whatever the switch, keys keep sorting in id order.
        let next = |span| layout::span_object_key("t", 0, span, first);
        assert!(hourly < next(object_span(ObjectSpan::Day, Some(&hourly), first)));
        assert!(daily < next(object_span(ObjectSpan::Hour, Some(&daily), first)));
    }
}
