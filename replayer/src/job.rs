//! Replay jobs: the request as a user sends it, the durable record kept in Redis, and the store
//! of records.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use streamtier_tiers::hot::{Hot, KEY_PREFIX};

use crate::range::IdRange;
use crate::{Error, Result};

/// Default target template: beside the source, never into it.
pub const DEFAULT_TARGET: &str = "{topic}:replay:{partition}";

/// How replayed entries get their ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ids {
    /// Fresh ids from the target.
    #[default]
    New,
    /// The source ids (restore into an empty or older stream).
    Original,
}

/// A replay as requested (`POST /v1/replays`, `streamtier replay`). Only `topic` is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Topic to replay.
    pub topic: String,
    /// Partitions to replay; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<u32>>,
    /// Inclusive start: RFC 3339 time or entry id; the start of the archive when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Exclusive end: RFC 3339 time or entry id; the newest entry when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Target key template with `{topic}`, `{partition}`, `{stream}`; default
    /// [`DEFAULT_TARGET`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `new` (default) or `original`.
    #[serde(default)]
    pub ids: Ids,
    /// With `ids = new`: a field appended to each entry holding `<source stream>/<original id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_field: Option<String>,
    /// Entries per second for this job; the server default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u64>,
    /// Answer with the plan and write nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// With `ids: original`: a faithful restore, which also puts back each partition's
    /// consumer groups and the stream's counters from the archive's group snapshots, and
    /// writes the entries the source held then (see the `restore` module).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restore_groups: bool,
    /// With `restore_groups`: restore as of this RFC 3339 time or entry id (the latest group
    /// snapshot at or before it); the latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Pause while the target holds more entries its consumer groups have not been delivered
    /// (its length without groups); the server's `replay.max_target_backlog` when absent, 0 for
    /// no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_target_backlog: Option<u64>,
    /// Only the entries this filter takes (see the `filter` module for the language).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a free slot.
    Queued,
    /// Replaying.
    Running,
    /// Running, but waiting before its next batch (see each partition's `paused`).
    Paused,
    /// Every partition is done.
    Succeeded,
    /// Stopped by an error (see `error`).
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl JobState {
    /// Answers whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

/// One partition of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartitionJob {
    /// Partition number.
    pub partition: u32,
    /// Source stream key.
    pub stream: String,
    /// Target stream key.
    pub target: String,
    /// Entries written to the target so far.
    pub entries_replayed: u64,
    /// Last source id written, if any.
    pub last_source_id: Option<String>,
    /// Whether this partition is complete.
    pub done: bool,
    /// Why this partition waits before its next batch, while it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<crate::engine::PauseReason>,
    /// For a restore: what it writes and puts back, and what it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<crate::restore::PartitionRestore>,
}

/// The durable record of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// Job id (time-ordered).
    pub id: String,
    /// State.
    pub state: JobState,
    /// The request as accepted.
    pub request: ReplayRequest,
    /// The resolved id range (`to` fixed when the job was created).
    pub range: IdRange,
    /// Entries per second.
    pub rate_limit: u64,
    /// Per partition progress.
    pub partitions: Vec<PartitionJob>,
    /// Entries written, all partitions.
    pub entries_replayed: u64,
    /// Objects opened.
    pub objects_read: u64,
    /// Bytes fetched from the store.
    pub bytes_read: u64,
    /// Of those, bytes of footers and page indexes.
    #[serde(default)]
    pub footer_bytes_read: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub started_at: Option<String>,
    /// RFC 3339.
    pub finished_at: Option<String>,
}

/// Now, as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// A new time-ordered job id: 12 hex digits of milliseconds, then 8 random ones.
pub fn new_job_id() -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    format!("{ms:012x}{:08x}", rand::random::<u32>())
}

/// Checks a job id from a URL before it becomes part of a key.
pub fn valid_job_id(id: &str) -> bool {
    id.len() == 20
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn job_key(id: &str) -> String {
    format!("{KEY_PREFIX}replay:job:{id}")
}
fn pause_key(id: &str) -> String {
    format!("{KEY_PREFIX}replay:pause:{id}")
}
fn cancel_key(id: &str) -> String {
    format!("{KEY_PREFIX}replay:cancel:{id}")
}
fn index_key() -> String {
    format!("{KEY_PREFIX}replay:jobs")
}
fn unfinished_key() -> String {
    format!("{KEY_PREFIX}replay:unfinished")
}

/// Job records in Redis: `streamtier:replay:job:<id>` (JSON), the index
/// `streamtier:replay:jobs` (sorted by creation), the set `streamtier:replay:unfinished` of the
/// jobs not final when last saved (what servers look through for jobs to adopt, in one
/// command), and `streamtier:replay:cancel:<id>` flags.
#[derive(Clone, Debug)]
pub struct JobStore {
    hot: Hot,
}

impl JobStore {
    /// Records over the hot tier's Redis.
    pub fn new(hot: Hot) -> Self {
        JobStore { hot }
    }

    fn redis_err(op: &'static str, key: String) -> impl FnOnce(redis::RedisError) -> Error {
        move |source| Error::Tier {
            context: format!("job store {op}"),
            source: streamtier_tiers::Error::Redis { op, key, source },
        }
    }

    /// Writes a record (creating its index entry).
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn save(&self, record: &JobRecord) -> Result<()> {
        let mut con = self.hot.connection();
        let json = serde_json::to_string(record).map_err(|e| Error::BadRecord {
            job: record.id.clone(),
            reason: e.to_string(),
        })?;
        let key = job_key(&record.id);
        redis::cmd("SET")
            .arg(&key)
            .arg(json)
            .query_async::<()>(&mut con)
            .await
            .map_err(Self::redis_err("SET", key))?;
        let created = u64::from_str_radix(&record.id[..12.min(record.id.len())], 16).unwrap_or(0);
        redis::cmd("ZADD")
            .arg(index_key())
            .arg(created)
            .arg(&record.id)
            .query_async::<()>(&mut con)
            .await
            .map_err(Self::redis_err("ZADD", index_key()))?;
        self.mark_unfinished(&record.id, !record.state.is_final()).await
    }

    /// Adds a job to the set of unfinished jobs, or takes it out.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn mark_unfinished(&self, id: &str, unfinished: bool) -> Result<()> {
        let mut con = self.hot.connection();
        let op = if unfinished { "SADD" } else { "SREM" };
        redis::cmd(op)
            .arg(unfinished_key())
            .arg(id)
            .query_async::<()>(&mut con)
            .await
            .map_err(Self::redis_err(op, unfinished_key()))
    }

    /// The jobs that were not final when last saved, in no order (a job that ended while its
    /// last save raced with a progress save may linger: read its record).
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn unfinished(&self) -> Result<Vec<String>> {
        let mut con = self.hot.connection();
        redis::cmd("SMEMBERS")
            .arg(unfinished_key())
            .query_async(&mut con)
            .await
            .map_err(Self::redis_err("SMEMBERS", unfinished_key()))
    }

    /// Reads a record.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::BadRecord`], [`Error::Tier`].
    pub async fn get(&self, id: &str) -> Result<JobRecord> {
        if !valid_job_id(id) {
            return Err(Error::NotFound {
                what: format!("job `{id}`"),
            });
        }
        let mut con = self.hot.connection();
        let key = job_key(id);
        let json: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut con)
            .await
            .map_err(Self::redis_err("GET", key))?;
        let json = json.ok_or_else(|| Error::NotFound {
            what: format!("job `{id}`"),
        })?;
        serde_json::from_str(&json).map_err(|e| Error::BadRecord {
            job: id.to_string(),
            reason: e.to_string(),
        })
    }

    /// Job ids, newest first: `limit` of them after skipping `offset`; and the total.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn list(&self, offset: u64, limit: u64) -> Result<(Vec<String>, u64)> {
        let mut con = self.hot.connection();
        let ids: Vec<String> = if limit == 0 {
            Vec::new()
        } else {
            redis::cmd("ZREVRANGE")
                .arg(index_key())
                .arg(offset)
                .arg(offset + limit - 1)
                .query_async(&mut con)
                .await
                .map_err(Self::redis_err("ZREVRANGE", index_key()))?
        };
        let total: u64 = redis::cmd("ZCARD")
            .arg(index_key())
            .query_async(&mut con)
            .await
            .map_err(Self::redis_err("ZCARD", index_key()))?;
        Ok((ids, total))
    }

    /// Sets (`on`) or clears a job's flag `key`.
    async fn flag(&self, key: String, on: bool) -> Result<()> {
        let mut con = self.hot.connection();
        let op = if on { "SET" } else { "DEL" };
        let mut cmd = redis::cmd(op);
        cmd.arg(&key);
        if on {
            cmd.arg(1);
        }
        cmd.query_async::<()>(&mut con)
            .await
            .map_err(Self::redis_err(op, key))
    }

    /// Whether a job's flag `key` is set.
    async fn flagged(&self, key: String) -> Result<bool> {
        let mut con = self.hot.connection();
        redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut con)
            .await
            .map_err(Self::redis_err("EXISTS", key))
    }

    /// Asks a job to stop.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn request_cancel(&self, id: &str) -> Result<()> {
        self.flag(cancel_key(id), true).await
    }

    /// Holds a job before its next batches (`hold`) or lets it go on.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn request_pause(&self, id: &str, hold: bool) -> Result<()> {
        self.flag(pause_key(id), hold).await
    }

    /// Answers whether an operator holds a job.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn pause_requested(&self, id: &str) -> Result<bool> {
        self.flagged(pause_key(id)).await
    }

    /// Answers whether a job was asked to stop.
    ///
    /// # Errors
    /// [`Error::Tier`] when Redis fails.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        self.flagged(cancel_key(id)).await
    }
}

/// Expands a target template for one partition.
pub fn expand_target(template: &str, topic: &str, partition: u32, stream: &str) -> String {
    template
        .replace("{topic}", topic)
        .replace("{partition}", &partition.to_string())
        .replace("{stream}", stream)
}

/// Checks a target template: not empty, placeholders known, and distinct per partition when
/// several partitions are replayed.
///
/// # Errors
/// [`Error::Unacceptable`] naming `target`.
pub fn check_target_template(template: &str, partitions: usize) -> Result<()> {
    let unacceptable = |reason: String| Error::Unacceptable {
        field: "target".into(),
        reason,
    };
    if template.trim().is_empty() {
        return Err(unacceptable("the target template is empty".into()));
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        let known = ["topic", "partition", "stream"];
        // `{...}` that is not a placeholder may be a Redis Cluster hash tag; only names that
        // look like placeholders must be known ones.
        if name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            && !name.is_empty()
            && !known.contains(&name)
        {
            return Err(unacceptable(format!(
                "unknown placeholder `{{{name}}}`; use {{topic}}, {{partition}} or {{stream}}"
            )));
        }
        rest = &after[close + 1..];
    }
    if partitions > 1 && !template.contains("{partition}") && !template.contains("{stream}") {
        return Err(unacceptable(
            "several partitions would share one target; put {partition} or {stream} in the template".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_reject_unknown_fields_and_default_the_rest() {
        let r: ReplayRequest = serde_json::from_str(r#"{"topic": "orders"}"#).unwrap();
        assert_eq!(r.ids, Ids::New);
        assert!(!r.dry_run);
        let err = serde_json::from_str::<ReplayRequest>(r#"{"topic": "o", "form": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("form"), "{err}");
        let err = serde_json::from_str::<ReplayRequest>(r#"{"topic": "o", "ids": "old"}"#).unwrap_err();
        assert!(err.to_string().contains("old"), "{err}");
    }

    #[test]
    fn targets_expand_and_are_checked() {
        assert_eq!(
            expand_target("{topic}-r:{partition}", "orders", 3, "orders:3"),
            "orders-r:3"
        );
        assert_eq!(
            expand_target("copy:{stream}", "orders", 3, "orders:3"),
            "copy:orders:3"
        );
        check_target_template("{topic}-r:{partition}", 4).unwrap();
        check_target_template("one", 1).unwrap();
        check_target_template("x:{app}:{partition}", 4).unwrap_err();
        check_target_template("__strm:{App.1}.{partition}", 4).unwrap();
        assert!(check_target_template("", 1).is_err());
        assert!(check_target_template("one", 2).is_err());
    }

    #[test]
    fn job_ids_are_time_ordered_and_checked() {
        let a = new_job_id();
        assert!(valid_job_id(&a));
        assert!(!valid_job_id("../etc"));
        assert!(!valid_job_id("ABCDEF0123456789abcd"));
    }
}
