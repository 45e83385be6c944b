//! The `[archive]` and `[[topics]]` settings as a person writes them, and their checked form.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streamtier_schemas::{layout, ColumnType, ObjectSpan, TypedColumn};
use streamtier_tiers::hot::is_internal_key;

use crate::Result;
use parse::{at_most, invalid, parse_bounded};
pub use parse::{parse_duration, parse_size};

/// Default `archive.close_grace`: how long after an object's hour ends, with no later entry
/// in the stream, the hour counts as closed. Entries that Redis numbers itself carry Redis'
/// clock, which may lag this process' clock a little; an entry that still lands in a closed
/// hour only starts a second object of that hour, it is never lost.
pub const DEFAULT_CLOSE_GRACE: &str = "30s";
/// Default `archive.retention_slack`: how many entries beyond the hot window may wait in Redis
/// for their hour to close (per partition).
pub const DEFAULT_RETENTION_SLACK: u64 = 10_000;
/// Default `archive.max_object_entries`.
pub const DEFAULT_MAX_OBJECT_ENTRIES: u64 = 1_000_000;
/// Default `archive.max_object_bytes`.
pub const DEFAULT_MAX_OBJECT_BYTES: &str = "128MiB";
/// Default `archive.zstd_level`: the writer's default (see the schemas crate for why 1).
pub const DEFAULT_ZSTD_LEVEL: i32 = streamtier_schemas::parquet::DEFAULT_ZSTD_LEVEL;
/// Default `archive.concurrency`: partitions archived at once.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Default `archive.lease_ttl`.
pub const DEFAULT_LEASE_TTL: &str = "30s";
/// Default `archive.poll_interval`: how often an idle partition is looked at again.
pub const DEFAULT_POLL_INTERVAL: &str = "1s";
/// Default `archive.discover_interval`: how often keys are re-scanned without `[[topics]]`.
pub const DEFAULT_DISCOVER_INTERVAL: &str = "30s";
/// Default `archive.read_batch_bytes`: target size of one `XRANGE` reply.
pub const DEFAULT_READ_BATCH_BYTES: &str = "1MiB";
/// Default `archive.row_group_bytes`: encoded size of one Parquet row group.
pub const DEFAULT_ROW_GROUP_BYTES: &str = "1MiB";
/// Default `archive.group_snapshot_interval`: consumer-group moves a restore may miss at most.
pub const DEFAULT_GROUP_SNAPSHOT_INTERVAL: &str = "1m";
/// Default `archive.group_snapshot_max_pending`: pending entries recorded per group.
pub const DEFAULT_GROUP_SNAPSHOT_MAX_PENDING: usize = 10_000;
/// The most `archive.group_snapshot_max_pending` allows: a snapshot stays a few MiB per group.
pub const MAX_GROUP_SNAPSHOT_PENDING: usize = 100_000;
/// Default `topics.retain_entries`.
pub const DEFAULT_RETAIN_ENTRIES: u64 = 100_000;
/// Default `topics.retain_for`.
pub const DEFAULT_RETAIN_FOR: &str = "1h";
/// Default `topics.object_span`: one object per partition-hour.
pub const DEFAULT_OBJECT_SPAN: &str = "1h";
/// Retention for discovered topics (no `[[topics]]`): the same defaults.
pub const DEFAULT_PARTITIONS: u32 = 1;
/// The most partitions of one topic, and of all `[[topics]]` together: each one is a stream
/// key held in memory and, in the daemon, a task.
pub const MAX_PARTITIONS: u32 = 100_000;
/// The longest `topics.streams` template, in bytes (every partition's key is held in memory).
pub const MAX_STREAMS_BYTES: usize = 512;
/// The most `archive.concurrency` allows: each partition archived at once holds a read batch
/// and a row group in memory.
pub const MAX_CONCURRENCY: usize = 1024;
/// The most `archive.max_object_entries` allows.
pub const MAX_OBJECT_ENTRIES: u64 = 100_000_000;
/// The most `archive.max_object_bytes` allows (objects are encoded into the spool first).
pub const MAX_OBJECT_BYTES: &str = "16GiB";
/// The most `archive.read_batch_bytes` and `archive.row_group_bytes` allow: each partition
/// archived at once holds one of each in memory.
pub const MAX_BATCH_BYTES: &str = "256MiB";
/// The longest `[archive]` duration (grace, lease, intervals): they feed clock arithmetic,
/// and anything longer is a mistake. `topics.retain_for` has no bound (see [`Retention`]).
pub const MAX_DURATION: &str = "30d";

/// The `[archive]` section.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSettings {
    /// An entry is archived at most this long after its id's time, even before its hour is
    /// over (a freshness bound for those who query fresh data). Unset by default: objects then
    /// close when their hour does, one object per partition-hour.
    pub flush_after: Option<String>,
    /// How long after an object's hour ends, with no later entry in the stream, the hour counts
    /// as closed; the daemon also waits until no entry has been added for this long.
    pub close_grace: String,
    /// Entries beyond the hot window (what `retain_entries` and `retain_for` keep) that may wait
    /// in Redis for their hour to close; past this, the open hour is archived so that trimming
    /// can go on.
    pub retention_slack: u64,
    /// Most entries in one object.
    pub max_object_entries: u64,
    /// Most payload bytes in one object (names and values, before compression).
    pub max_object_bytes: String,
    /// zstd level of the Parquet pages (1..=22).
    pub zstd_level: i32,
    /// Partitions archived at once by this process.
    pub concurrency: usize,
    /// How long a partition lease lasts without renewal.
    pub lease_ttl: String,
    /// How often an idle partition is looked at again.
    pub poll_interval: String,
    /// How often stream keys are re-scanned when no `[[topics]]` are configured.
    pub discover_interval: String,
    /// Target size of one `XRANGE` batch.
    pub read_batch_bytes: String,
    /// Encoded-size budget of one Parquet row group; a group closes at the first checksum
    /// block end past it. Each partition being archived holds its row group in progress, so
    /// this bounds memory; larger groups suit scans a little better.
    pub row_group_bytes: String,
    /// Never trim an entry that a consumer group still needs (see `retain_max_entries`).
    pub respect_consumer_groups: bool,
    /// How often the daemon compacts the closed spans of its partitions (as `streamtier
    /// compact` does). Unset by default: compaction then runs only when asked.
    pub compact_interval: Option<String>,
    /// At most how often each partition's consumer groups are recorded (one small JSON object
    /// under `_groups/`, only when the stream has groups and something changed since the last
    /// one): the group moves a restore may miss. `"0s"` records none. Each recording is one
    /// store write: a partition whose groups always move costs 3,600 / interval writes an hour.
    pub group_snapshot_interval: String,
    /// Most pending entries recorded per group (the oldest); a snapshot of a longer pending
    /// list says it was cut.
    pub group_snapshot_max_pending: usize,
}

impl Default for ArchiveSettings {
    fn default() -> Self {
        Self {
            flush_after: None,
            close_grace: DEFAULT_CLOSE_GRACE.into(),
            retention_slack: DEFAULT_RETENTION_SLACK,
            max_object_entries: DEFAULT_MAX_OBJECT_ENTRIES,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES.into(),
            zstd_level: DEFAULT_ZSTD_LEVEL,
            concurrency: DEFAULT_CONCURRENCY,
            lease_ttl: DEFAULT_LEASE_TTL.into(),
            poll_interval: DEFAULT_POLL_INTERVAL.into(),
            discover_interval: DEFAULT_DISCOVER_INTERVAL.into(),
            read_batch_bytes: DEFAULT_READ_BATCH_BYTES.into(),
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES.into(),
            respect_consumer_groups: true,
            compact_interval: None,
            group_snapshot_interval: DEFAULT_GROUP_SNAPSHOT_INTERVAL.into(),
            group_snapshot_max_pending: DEFAULT_GROUP_SNAPSHOT_MAX_PENDING,
        }
    }
}

/// One `[[topics]]` entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSettings {
    /// Topic name: one path segment of the archive layout.
    pub name: String,
    /// Key template; `{partition}` runs over `0..partitions`.
    pub streams: String,
    /// Number of partitions.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Keep at least the newest N entries in Redis.
    #[serde(default = "default_retain_entries")]
    pub retain_entries: u64,
    /// Keep at least the entries younger than this (by entry-id time); longer than the time
    /// since 1970 (`"100y"`) keeps every entry by time.
    #[serde(default = "default_retain_for")]
    pub retain_for: String,
    /// Hard cap on entries kept, even past a stalled consumer group.
    #[serde(default)]
    pub retain_max_entries: Option<u64>,
    /// Typed columns parsed from fields of the same name.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Time one object may cover: `"1h"` (default, `dt=…/hour=…/`) or `"1d"` (`dt=…/`, for
    /// topics with few entries an hour: fewer, larger objects).
    #[serde(default = "default_object_span")]
    pub object_span: String,
}

fn default_partitions() -> u32 {
    DEFAULT_PARTITIONS
}
fn default_retain_entries() -> u64 {
    DEFAULT_RETAIN_ENTRIES
}
fn default_retain_for() -> String {
    DEFAULT_RETAIN_FOR.into()
}
fn default_object_span() -> String {
    DEFAULT_OBJECT_SPAN.into()
}

/// Checked `[archive]` settings.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    /// See [`ArchiveSettings::flush_after`].
    pub flush_after: Option<Duration>,
    /// See [`ArchiveSettings::close_grace`].
    pub close_grace: Duration,
    /// See [`ArchiveSettings::retention_slack`].
    pub retention_slack: u64,
    /// See [`ArchiveSettings::max_object_entries`].
    pub max_object_entries: u64,
    /// See [`ArchiveSettings::max_object_bytes`].
    pub max_object_bytes: u64,
    /// See [`ArchiveSettings::zstd_level`].
    pub zstd_level: i32,
    /// See [`ArchiveSettings::concurrency`].
    pub concurrency: usize,
    /// See [`ArchiveSettings::lease_ttl`].
    pub lease_ttl: Duration,
    /// See [`ArchiveSettings::poll_interval`].
    pub poll_interval: Duration,
    /// See [`ArchiveSettings::discover_interval`].
    pub discover_interval: Duration,
    /// See [`ArchiveSettings::read_batch_bytes`].
    pub read_batch_bytes: u64,
    /// See [`ArchiveSettings::row_group_bytes`].
    pub row_group_bytes: u64,
    /// See [`ArchiveSettings::respect_consumer_groups`].
    pub respect_consumer_groups: bool,
    /// See [`ArchiveSettings::compact_interval`].
    pub compact_interval: Option<Duration>,
    /// See [`ArchiveSettings::group_snapshot_interval`] (zero: none).
    pub group_snapshot_interval: Duration,
    /// See [`ArchiveSettings::group_snapshot_max_pending`].
    pub group_snapshot_max_pending: usize,
}

/// Retention rules of one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Keep at least the newest N entries.
    pub retain_entries: u64,
    /// Keep entries younger than this.
    pub retain_for: Duration,
    /// Hard cap past stalled consumer groups.
    pub retain_max_entries: Option<u64>,
}

impl Retention {
    /// The entry-id time (epoch ms) below which entries are old enough to trim, at `now_ms`:
    /// `None` when `retain_for` is zero (time keeps nothing), `Some(0)` when `retain_for`
    /// reaches back before 1970 (nothing is old enough: `"100y"` keeps by time forever).
    pub fn keep_from_ms(&self, now_ms: u64) -> Option<u64> {
        if self.retain_for.is_zero() {
            return None;
        }
        let retain_ms = u64::try_from(self.retain_for.as_millis()).unwrap_or(u64::MAX);
        Some(now_ms.saturating_sub(retain_ms))
    }

    /// Whether an entry of time `ms` is outside the `retain_for` window at `now_ms`.
    pub fn old_enough(&self, ms: u64, now_ms: u64) -> bool {
        self.keep_from_ms(now_ms).is_none_or(|keep_from| ms < keep_from)
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            retain_entries: DEFAULT_RETAIN_ENTRIES,
            retain_for: parse_duration("topics.retain_for", DEFAULT_RETAIN_FOR)
                .unwrap_or(Duration::from_secs(3600)),
            retain_max_entries: None,
        }
    }
}

/// A checked topic.
#[derive(Clone, Debug)]
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Stream key of each partition, index = partition number.
    pub streams: Vec<String>,
    /// Retention rules.
    pub retention: Retention,
    /// Typed columns.
    pub columns: Vec<TypedColumn>,
    /// Time one object may cover.
    pub span: ObjectSpan,
}

impl ArchiveSettings {
    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`](crate::Error::InvalidSettings) naming the first bad key.
    pub fn check(&self) -> Result<ArchiveConfig> {
        let cfg = ArchiveConfig {
            flush_after: self
                .flush_after
                .as_deref()
                .map(|v| parse_bounded("archive.flush_after", v))
                .transpose()?,
            close_grace: parse_bounded("archive.close_grace", &self.close_grace)?,
            retention_slack: self.retention_slack,
            max_object_entries: self.max_object_entries,
            max_object_bytes: parse_size("archive.max_object_bytes", &self.max_object_bytes)?,
            zstd_level: self.zstd_level,
            concurrency: self.concurrency,
            lease_ttl: parse_bounded("archive.lease_ttl", &self.lease_ttl)?,
            poll_interval: parse_bounded("archive.poll_interval", &self.poll_interval)?,
            discover_interval: parse_bounded("archive.discover_interval", &self.discover_interval)?,
            read_batch_bytes: parse_size("archive.read_batch_bytes", &self.read_batch_bytes)?,
            row_group_bytes: parse_size("archive.row_group_bytes", &self.row_group_bytes)?,
            respect_consumer_groups: self.respect_consumer_groups,
            compact_interval: self
                .compact_interval
                .as_deref()
                .map(|v| parse_bounded("archive.compact_interval", v))
                .transpose()?,
            group_snapshot_interval: parse_bounded(
                "archive.group_snapshot_interval",
                &self.group_snapshot_interval,
            )?,
            group_snapshot_max_pending: self.group_snapshot_max_pending,
        };
        if cfg.compact_interval.is_some_and(|d| d < Duration::from_secs(1)) {
            return Err(invalid("archive.compact_interval", "must be at least 1s"));
        }
        if cfg.group_snapshot_max_pending > MAX_GROUP_SNAPSHOT_PENDING {
            return Err(invalid(
                "archive.group_snapshot_max_pending",
                format!("must be at most {MAX_GROUP_SNAPSHOT_PENDING}"),
            ));
        }
        if cfg.max_object_entries == 0 {
            return Err(invalid("archive.max_object_entries", "must be at least 1"));
        }
        if cfg.max_object_entries > MAX_OBJECT_ENTRIES {
            return Err(invalid(
                "archive.max_object_entries",
                format!("must be at most {MAX_OBJECT_ENTRIES}"),
            ));
        }
        if cfg.max_object_bytes < 1024 {
            return Err(invalid("archive.max_object_bytes", "must be at least 1KiB"));
        }
        at_most("archive.max_object_bytes", cfg.max_object_bytes, MAX_OBJECT_BYTES)?;
        if !(1..=22).contains(&cfg.zstd_level) {
            return Err(invalid(
                "archive.zstd_level",
                format!("{} is outside 1..=22", cfg.zstd_level),
            ));
        }
        if cfg.concurrency == 0 {
            return Err(invalid("archive.concurrency", "must be at least 1"));
        }
        if cfg.concurrency > MAX_CONCURRENCY {
            return Err(invalid(
                "archive.concurrency",
                format!("must be at most {MAX_CONCURRENCY}"),
            ));
        }
        if cfg.lease_ttl < Duration::from_secs(1) {
            return Err(invalid("archive.lease_ttl", "must be at least 1s"));
        }
        if cfg.poll_interval.is_zero() {
            return Err(invalid("archive.poll_interval", "must be more than 0"));
        }
        if cfg.read_batch_bytes == 0 {
            return Err(invalid("archive.read_batch_bytes", "must be more than 0"));
        }
        at_most("archive.read_batch_bytes", cfg.read_batch_bytes, MAX_BATCH_BYTES)?;
        if cfg.row_group_bytes < 64 * 1024 {
            return Err(invalid("archive.row_group_bytes", "must be at least 64KiB"));
        }
        at_most("archive.row_group_bytes", cfg.row_group_bytes, MAX_BATCH_BYTES)?;
        if usize::try_from(cfg.row_group_bytes).is_err() {
            return Err(invalid(
                "archive.row_group_bytes",
                "is larger than this machine can address",
            ));
        }
        Ok(cfg)
    }
}

impl TopicSettings {
    /// Checks the topic; `index` is its position in `[[topics]]`, for messages.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`](crate::Error::InvalidSettings) naming the bad key, e.g. `topics[0].partitions`.
    pub fn check(&self, index: usize) -> Result<Topic> {
        let key = |k: &str| format!("topics[{index}].{k}");
        layout::validate_topic_name(&self.name).map_err(|e| invalid(key("name"), e.to_string()))?;
        if self.partitions == 0 {
            return Err(invalid(key("partitions"), "must be at least 1"));
        }
        if self.partitions > MAX_PARTITIONS {
            return Err(invalid(
                key("partitions"),
                format!("must be at most {MAX_PARTITIONS}"),
            ));
        }
        if self.streams.is_empty() {
            return Err(invalid(key("streams"), "must not be empty"));
        }
        if self.streams.len() > MAX_STREAMS_BYTES {
            return Err(invalid(
                key("streams"),
                format!("must be at most {MAX_STREAMS_BYTES} bytes long"),
            ));
        }
        let templated = self.streams.contains("{partition}");
        if self.partitions > 1 && !templated {
            return Err(invalid(
                key("streams"),
                format!(
                    "`{}` has no `{{partition}}` but the topic has {} partitions",
                    self.streams, self.partitions
                ),
            ));
        }
        let streams: Vec<String> = (0..self.partitions)
            .map(|p| self.streams.replace("{partition}", &p.to_string()))
            .collect();
        if let Some(own) = streams.iter().find(|s| is_internal_key(s)) {
            // Discovery and replays leave these keys alone; archiving and trimming them would
            // eat streamtier's own state (or Runnel's).
            return Err(invalid(
                key("streams"),
                format!("`{own}` is one of streamtier's own keys (or Runnel's internal ones)"),
            ));
        }
        let retention = Retention {
            retain_entries: self.retain_entries,
            retain_for: parse_duration(&key("retain_for"), &self.retain_for)?,
            retain_max_entries: self.retain_max_entries,
        };
        if let Some(cap) = retention.retain_max_entries {
            if cap < retention.retain_entries {
                return Err(invalid(
                    key("retain_max_entries"),
                    format!("{cap} is below retain_entries ({})", retention.retain_entries),
                ));
            }
        }
        let mut columns = Vec::new();
        for (name, kind) in &self.columns {
            let kind: ColumnType = kind.parse().map_err(|e: streamtier_schemas::Error| {
                invalid(key(&format!("columns.{name}")), e.to_string())
            })?;
            columns.push(TypedColumn {
                name: name.clone(),
                kind,
            });
        }
        streamtier_schemas::columns::validate_columns(&columns)
            .map_err(|e| invalid(key("columns"), e.to_string()))?;
        let span = ObjectSpan::parse(self.object_span.trim())
            .map_err(|e| invalid(key("object_span"), e.to_string()))?;
        Ok(Topic {
            name: self.name.clone(),
            streams,
            retention,
            columns,
            span,
        })
    }
}

/// Checks all topics, including that no topic name or stream key is used twice.
///
/// # Errors
/// [`Error::InvalidSettings`](crate::Error::InvalidSettings) naming the bad key.
pub fn check_topics(topics: &[TopicSettings]) -> Result<Vec<Topic>> {
    // Before any key is built: the sum is bounded, not only each topic.
    let mut total = 0u64;
    for (i, t) in topics.iter().enumerate() {
        total += u64::from(t.partitions);
        if total > u64::from(MAX_PARTITIONS) {
            let reason = if t.partitions > MAX_PARTITIONS {
                format!("must be at most {MAX_PARTITIONS}")
            } else {
                format!("the topics have more than {MAX_PARTITIONS} partitions in all")
            };
            return Err(invalid(format!("topics[{i}].partitions"), reason));
        }
    }
    let checked = topics
        .iter()
        .enumerate()
        .map(|(i, t)| t.check(i))
        .collect::<Result<Vec<_>>>()?;
    let mut names = std::collections::HashSet::new();
    let mut streams = std::collections::HashSet::new();
    for (i, t) in checked.iter().enumerate() {
        if !names.insert(t.name.clone()) {
            return Err(invalid(
                format!("topics[{i}].name"),
                format!("topic `{}` is configured twice", t.name),
            ));
        }
        for s in &t.streams {
            if !streams.insert(s.clone()) {
                return Err(invalid(
                    format!("topics[{i}].streams"),
                    format!("stream `{s}` belongs to two topics"),
                ));
            }
        }
    }
    Ok(checked)
}

mod parse;
#[cfg(test)]
mod tests;
