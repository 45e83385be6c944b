//! Object keys: where objects and gap records live, relative to the store root.
//!
//! ```text
//! topic=<topic>/partition=<p>/dt=YYYY-MM-DD/hour=HH/<first_id.object_name()>.parquet   (span 1h)
//! topic=<topic>/partition=<p>/dt=YYYY-MM-DD/<first_id.object_name()>.parquet           (span 1d)
//! topic=<topic>/partition=<p>/_gaps/<after.object_name()>.json
//! ```
//!
//! Compaction writes a *merged* object, which replaces consecutive objects of one span, under
//! `<first_id.object_name()>-<last_id.object_name()>.parquet` in the same directory: it sorts
//! just before the object that starts with the same ID (`-` sorts before `.`), and its name
//! says which IDs it holds.
//!
//! An object never spans two of its [`ObjectSpan`]s (hours or UTC days) and lives under the date (and
//! hour) of its first ID. Within a partition, keys of objects sort in ID order (dates and hours
//! are zero padded), up to the year 9999, as long as a day's daily objects come before its
//! hourly ones: a daily name starts with a digit, which sorts before `hour=`. The archiver keeps
//! that order when a topic's span changes: from `1d` to `1h` at once, from `1h` to `1d` at the
//! next UTC day.

use crate::civil::civil_from_days;
use crate::error::{Error, Result};
use crate::id::StreamId;

const MS_PER_HOUR: u64 = 3_600_000;
const MS_PER_DAY: u64 = 86_400_000;
/// Longest accepted topic name in bytes.
pub const MAX_TOPIC_LEN: usize = 200;
const OBJECT_SUFFIX: &str = ".parquet";
const GAP_SUFFIX: &str = ".json";
const GAPS_DIR: &str = "_gaps";
const GROUPS_DIR: &str = "_groups";

/// How much time one object may cover: its first ID's hour or UTC day (`object_span`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectSpan {
    /// One hour (`"1h"`, the default): `dt=YYYY-MM-DD/hour=HH/`.
    #[default]
    Hour,
    /// One UTC day (`"1d"`): `dt=YYYY-MM-DD/`, for topics with few entries an hour.
    Day,
}

impl ObjectSpan {
    /// Parses `"1h"` or `"1d"`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSpan`] naming the value.
    pub fn parse(s: &str) -> Result<ObjectSpan> {
        match s {
            "1h" => Ok(ObjectSpan::Hour),
            "1d" => Ok(ObjectSpan::Day),
            other => Err(Error::InvalidSpan {
                value: other.to_owned(),
            }),
        }
    }

    /// `"1h"` or `"1d"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectSpan::Hour => "1h",
            ObjectSpan::Day => "1d",
        }
    }

    /// Length in milliseconds.
    pub fn ms(self) -> u64 {
        match self {
            ObjectSpan::Hour => MS_PER_HOUR,
            ObjectSpan::Day => MS_PER_DAY,
        }
    }

    /// The span number (since the Unix epoch) that holds `id`.
    pub fn of(self, id: StreamId) -> u64 {
        id.ms / self.ms()
    }

    /// Epoch milliseconds at which the span holding `id` ends (saturating).
    pub fn end_ms(self, id: StreamId) -> u64 {
        (self.of(id) + 1).saturating_mul(self.ms())
    }
}

/// Returns the prefix shared by all keys of one topic: `topic=<topic>/`.
///
/// `topic` must pass [`validate_topic_name`]; this function does not check it.
pub fn topic_prefix(topic: &str) -> String {
    format!("topic={topic}/")
}

/// The topic of a listed prefix `topic=<t>/` (with or without a leading store prefix); `None`
/// for any other prefix or a name [`validate_topic_name`] refuses.
pub fn parse_topic_prefix(prefix: &str) -> Option<String> {
    let (_, seg) = tail_segments(prefix.strip_suffix('/')?, 1)?;
    let topic = seg[0].strip_prefix("topic=")?;
    validate_topic_name(topic).ok()?;
    Some(topic.to_owned())
}

/// The topic and partition of a listed prefix `topic=<t>/partition=<p>/` as
/// [`partition_prefix`] makes it (with or without a leading store prefix).
pub fn parse_partition_prefix(prefix: &str) -> Option<(String, u32)> {
    let (_, seg) = tail_segments(prefix.strip_suffix('/')?, 2)?;
    let (topic, partition) = topic_partition(seg[0], seg[1])?;
    (seg[1] == format!("partition={partition}")).then_some((topic, partition))
}

/// Whether a listed prefix is a day directory of a partition (`…/dt=YYYY-MM-DD/`), where its
/// objects of that day live.
pub fn is_day_prefix(prefix: &str) -> bool {
    prefix
        .strip_suffix('/')
        .and_then(|p| tail_segments(p, 1))
        .is_some_and(|(_, seg)| seg[0].starts_with("dt="))
}

/// Returns the prefix shared by all keys of one partition: `topic=<topic>/partition=<p>/`.
///
/// `topic` must pass [`validate_topic_name`]; this function does not check it.
pub fn partition_prefix(topic: &str, partition: u32) -> String {
    format!("{}partition={partition}/", topic_prefix(topic))
}

/// Returns the prefix of all objects whose first ID falls in `hour` (as given by [`hour_of`]):
/// `topic=<topic>/partition=<p>/dt=YYYY-MM-DD/hour=HH/`.
pub fn hour_prefix(topic: &str, partition: u32, hour: u64) -> String {
    let (year, month, day, hh) = utc_date_hour(hour.saturating_mul(MS_PER_HOUR));
    format!(
        "{}dt={year:04}-{month:02}-{day:02}/hour={hh:02}/",
        partition_prefix(topic, partition)
    )
}

/// Returns the prefix of all objects of both spans whose first ID falls on the UTC day of
/// `id`, without its trailing `/`: `topic=<topic>/partition=<p>/dt=YYYY-MM-DD`.
///
/// As a listing's `start_after`, it yields every object that may hold `id` or a later ID and
/// skips only objects of earlier days (which end before `id`, since no object spans two days).
pub fn day_seek(topic: &str, partition: u32, id: StreamId) -> String {
    let (year, month, day, _) = utc_date_hour(id.ms);
    format!(
        "{}dt={year:04}-{month:02}-{day:02}",
        partition_prefix(topic, partition)
    )
}

/// Returns the key of the hourly object whose first entry is `first_id`:
/// `topic=<t>/partition=<p>/dt=YYYY-MM-DD/hour=HH/<first_id.object_name()>.parquet`,
/// with the UTC date and hour of `first_id.ms`.
pub fn object_key(topic: &str, partition: u32, first_id: StreamId) -> String {
    span_object_key(topic, partition, ObjectSpan::Hour, first_id)
}

/// Returns the key of the object of `span` whose first entry is `first_id`: the hourly layout
/// of [`object_key`], or `topic=<t>/partition=<p>/dt=YYYY-MM-DD/<name>.parquet` for a day.
pub fn span_object_key(topic: &str, partition: u32, span: ObjectSpan, first_id: StreamId) -> String {
    let name = first_id.object_name();
    match span {
        ObjectSpan::Hour => format!(
            "{}{name}{OBJECT_SUFFIX}",
            hour_prefix(topic, partition, hour_of(first_id))
        ),
        ObjectSpan::Day => format!("{}/{name}{OBJECT_SUFFIX}", day_seek(topic, partition, first_id)),
    }
}

/// Returns the key of a merged object (see the module docs) of `span` that holds the IDs
/// `first_id..=last_id`: `<dir>/<first>-<last>.parquet`.
pub fn merged_object_key(
    topic: &str,
    partition: u32,
    span: ObjectSpan,
    first_id: StreamId,
    last_id: StreamId,
) -> String {
    let plain = span_object_key(topic, partition, span, first_id);
    let stem = plain.strip_suffix(OBJECT_SUFFIX).unwrap_or(&plain);
    format!("{stem}-{}{OBJECT_SUFFIX}", last_id.object_name())
}

/// Returns the prefix of all gap records of one partition: `topic=<t>/partition=<p>/_gaps/`.
pub fn gaps_prefix(topic: &str, partition: u32) -> String {
    format!("{}{GAPS_DIR}/", partition_prefix(topic, partition))
}

/// Returns the key of the gap record for the gap following `after`:
/// `topic=<t>/partition=<p>/_gaps/<after.object_name()>.json`.
pub fn gap_key(topic: &str, partition: u32, after: StreamId) -> String {
    format!(
        "{}{}{GAP_SUFFIX}",
        gaps_prefix(topic, partition),
        after.object_name()
    )
}

/// Returns the prefix of all group snapshots of one partition:
/// `topic=<t>/partition=<p>/_groups/`.
pub fn groups_prefix(topic: &str, partition: u32) -> String {
    format!("{}{GROUPS_DIR}/", partition_prefix(topic, partition))
}

/// Returns the key of the group snapshot taken at `taken_ms` (epoch milliseconds):
/// `topic=<t>/partition=<p>/_groups/<taken_ms:020>.json`, so that snapshots sort by time.
pub fn group_snapshot_key(topic: &str, partition: u32, taken_ms: u64) -> String {
    format!("{}{taken_ms:020}{GAP_SUFFIX}", groups_prefix(topic, partition))
}

/// The time of a group snapshot key made by [`group_snapshot_key`], with or without a leading
/// store prefix.
pub fn parse_group_snapshot_key(key: &str) -> Option<u64> {
    let (_, seg) = tail_segments(key, 4)?;
    topic_partition(seg[0], seg[1])?;
    if seg[2] != GROUPS_DIR {
        return None;
    }
    let digits = seg[3].strip_suffix(GAP_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The parts of an object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// ID of the object's first entry.
    pub first_id: StreamId,
    /// The layout it was written with: the time it may cover.
    pub span: ObjectSpan,
    /// The ID of the last entry, for a merged object (named by both); `None` for an object
    /// written by the archiver.
    pub merged_last: Option<StreamId>,
}

/// The parts of a gap record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapKey {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// The last archived ID before the gap.
    pub after: StreamId,
}

/// Splits `key` into an optional store prefix and the last `n` `/`-separated segments.
fn tail_segments(key: &str, n: usize) -> Option<(&str, Vec<&str>)> {
    let mut segments: Vec<&str> = key.rsplitn(n + 1, '/').collect();
    if segments.len() > n {
        segments.pop();
    }
    if segments.len() != n {
        return None;
    }
    segments.reverse();
    let tail_len = segments.iter().map(|s| s.len()).sum::<usize>() + n - 1;
    Some((&key[key.len() - tail_len..], segments))
}

/// Parses `topic=<t>` and `partition=<p>` segments.
fn topic_partition(topic_seg: &str, partition_seg: &str) -> Option<(String, u32)> {
    let topic = topic_seg.strip_prefix("topic=")?;
    validate_topic_name(topic).ok()?;
    let partition = partition_seg.strip_prefix("partition=")?;
    if partition.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((topic.to_owned(), partition.parse().ok()?))
}

/// Parses an object key made by [`span_object_key`] (either span), with or without a leading
/// store prefix.
///
/// Returns `None` for gap records, other files, and keys that are not exactly what
/// [`span_object_key`] produces (for example a `dt`/`hour` that does not match the ID).
pub fn parse_object_key(key: &str) -> Option<ObjectKey> {
    [(ObjectSpan::Hour, 5), (ObjectSpan::Day, 4)]
        .into_iter()
        .find_map(|(span, n)| {
            let (tail, seg) = tail_segments(key, n)?;
            let (topic, partition) = topic_partition(seg[0], seg[1])?;
            let name = seg[n - 1].strip_suffix(OBJECT_SUFFIX)?;
            let width = StreamId::MIN.object_name().len();
            let (first, merged_last) = match name.len() {
                n if n == width => (name, None),
                n if n == 2 * width + 1 && name.as_bytes()[width] == b'-' => {
                    let last = StreamId::parse_object_name(&name[width + 1..]).ok()?;
                    (&name[..width], Some(last))
                }
                _ => return None,
            };
            let first_id = StreamId::parse_object_name(first).ok()?;
            let expected = match merged_last {
                None => span_object_key(&topic, partition, span, first_id),
                // A merged object never spans two of its spans, and holds at least two entries.
                Some(last) if last > first_id && span.of(last) == span.of(first_id) => {
                    merged_object_key(&topic, partition, span, first_id, last)
                }
                Some(_) => return None,
            };
            (expected == tail).then_some(ObjectKey {
                topic,
                partition,
                first_id,
                span,
                merged_last,
            })
        })
}

/// Parses a gap record key made by [`gap_key`], with or without a leading store prefix.
pub fn parse_gap_key(key: &str) -> Option<GapKey> {
    let (_, seg) = tail_segments(key, 4)?;
    let (topic, partition) = topic_partition(seg[0], seg[1])?;
    if seg[2] != GAPS_DIR {
        return None;
    }
    let name = seg[3].strip_suffix(GAP_SUFFIX)?;
    let after = StreamId::parse_object_name(name).ok()?;
    Some(GapKey {
        topic,
        partition,
        after,
    })
}

/// Returns the hour number (since the Unix epoch) of an ID: `id.ms / 3_600_000`.
///
/// An object never spans two hours, so every object lives under the hour of its first ID.
pub fn hour_of(id: StreamId) -> u64 {
    id.ms / MS_PER_HOUR
}

/// Returns the UTC (year, month, day, hour) of Unix epoch milliseconds.
pub fn utc_date_hour(ms: u64) -> (i64, u32, u32, u32) {
    // Both quotients fit: u64::MAX / MS_PER_DAY is about 2.1e11 and the hour is below 24.
    let days = (ms / MS_PER_DAY) as i64;
    let hour = ((ms % MS_PER_DAY) / MS_PER_HOUR) as u32;
    let (year, month, day) = civil_from_days(days);
    (year, month, day, hour)
}

/// Checks that a topic name works as one path segment and a Hive partition value.
///
/// Accepted: non-empty, at most 200 bytes, no `/`, `\`, `=`, `%` (Hive and DuckDB
/// percent-decode partition values), no control characters, not `.` or `..`, no leading or
/// trailing whitespace. Names like `__strm:app.orders` are fine.
///
/// # Errors
///
/// Returns [`Error::InvalidTopic`] naming the topic and the rule it breaks.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_TOPIC_LEN {
        Some("is longer than 200 bytes")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else if name.contains(['/', '\\']) {
        Some("contains a path separator")
    } else if name.contains('=') {
        Some("contains `=`")
    } else if name.contains('%') {
        Some("contains `%`")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        Some("has leading or trailing whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidTopic {
            topic: name.into(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
