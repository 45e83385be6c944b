//! Writing replayed entries into a target stream together with the job's cursor, atomically.

use redis::Value;
use streamtier_schemas::{Entry, StreamId};

use super::keys::companion_key;
use super::Hot;
use crate::{Error, Result};

/// How replayed entries get their ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdMode {
    /// Fresh ids from the target (`XADD *`).
    New,
    /// The source ids; they must be above everything already in the target.
    Original,
}

/// One batch for [`Hot::write_replay_batch`].
#[derive(Clone, Debug)]
pub struct ReplayBatch<'a> {
    /// Target stream key.
    pub target: &'a str,
    /// Job id (one cursor per job and target).
    pub job: &'a str,
    /// The cursor the caller last saw (`None` before the first batch).
    pub expected: Option<StreamId>,
    /// Entries in ascending source-id order.
    pub entries: &'a [Entry],
    /// How ids are assigned.
    pub ids: IdMode,
    /// With `Some((field, prefix))`, each entry gets `field = prefix + source id` appended.
    pub origin: Option<(&'a str, &'a str)>,
    /// The cursor moves here instead of to the last entry's id (at or above it): the source
    /// entries up to it that the caller left out (a filter) are done too. With it, `entries` may
    /// be empty: the batch then only moves the cursor.
    pub through: Option<StreamId>,
}

/// What happened to a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayWrite {
    /// Written; the cursor is now the batch's last source id and `total` entries were written
    /// by this job to this target.
    Written {
        /// Entries written by the job to this target so far.
        total: u64,
    },
    /// The cursor was not the expected one: another runner moved it. Nothing was written.
    CursorMoved {
        /// The cursor found.
        cursor: Option<StreamId>,
        /// Entries written so far.
        total: u64,
    },
    /// Original ids would not be above the target's last id. Nothing was written.
    IdConflict {
        /// The target's last generated id.
        target_last: StreamId,
    },
}

/// The hash holding replay cursors for a target, in the target's cluster slot.
pub fn replay_cursor_key(target: &str) -> String {
    companion_key("replay", target)
}

pub(super) fn protocol(key: &str, reason: String) -> Error {
    Error::Protocol {
        key: key.to_string(),
        reason,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(super) fn opt_id(key: &str, s: &str) -> Result<Option<StreamId>> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| protocol(key, format!("bad cursor `{s}`")))
}

impl Hot {
    /// Appends `batch` to its target and moves the job's cursor in one transaction (see the
    /// replayer's crate docs); checks everything before the first write, so a batch is written
    /// whole or not at all.
    ///
    /// # Errors
    /// [`Error::InvalidKey`] for an entry that cannot be written (no fields, too many fields),
    /// [`Error::Redis`] when Redis fails, [`Error::Protocol`] on an unexpected reply.
    pub async fn write_replay_batch(&self, batch: &ReplayBatch<'_>) -> Result<ReplayWrite> {
        if batch.entries.is_empty() && batch.through.is_none() {
            return Err(protocol(batch.target, "empty replay batch".into()));
        }
        if let (Some(through), Some(last)) = (batch.through, batch.entries.last()) {
            if through < last.id {
                return Err(protocol(
                    batch.target,
                    format!(
                        "the cursor would move to `{through}`, below the batch's last entry `{}`",
                        last.id
                    ),
                ));
            }
        }
        let extra = usize::from(batch.origin.is_some());
        if let Some(entry) = batch.entries.iter().find(|e| e.fields.len() + extra == 0) {
            return Err(Error::InvalidKey {
                key: batch.target.to_string(),
                reason: format!(
                    "entry `{}` has no fields; a replayed entry needs at least one",
                    entry.id
                ),
            });
        }
        self.raw
            .run("replay batch", batch.target, |pool, asking| async move {
                pool.write_replay(asking, batch).await
            })
            .await
    }

    /// A job's cursor on a target and the entries it wrote there.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn replay_cursor(&self, target: &str, job: &str) -> Result<(Option<StreamId>, u64)> {
        let key = replay_cursor_key(target);
        let mut con = self.con.clone();
        let (cursor, total): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(&key)
            .arg(job)
            .arg(format!("{job}:n"))
            .query_async(&mut con)
            .await
            .map_err(|source| Error::Redis {
                op: "HMGET",
                key: key.clone(),
                source,
            })?;
        Ok((opt_id(&key, cursor.as_deref().unwrap_or(""))?, total.unwrap_or(0)))
    }
}

/// One consumer group of a stream, as `XINFO GROUPS` and `XPENDING` describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name (lossy UTF-8).
    pub name: String,
    /// Last id delivered to the group.
    pub last_delivered_id: StreamId,
    /// Entries delivered but not acknowledged.
    pub pending: u64,
    /// The lowest pending id.
    pub lowest_pending_id: Option<StreamId>,
    /// Entries not yet delivered, when Redis knows.
    pub lag: Option<u64>,
}

impl Hot {
    /// The consumer groups of `stream` (none when it does not exist).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails, [`Error::Protocol`] on an unexpected reply.
    pub async fn consumer_groups(&self, stream: &str) -> Result<Vec<GroupInfo>> {
        let mut con = self.con.clone();
        let err = |op: &'static str| {
            let key = stream.to_string();
            move |source| Error::Redis { op, key, source }
        };
        let exists: i64 = redis::cmd("EXISTS")
            .arg(stream)
            .query_async(&mut con)
            .await
            .map_err(err("EXISTS"))?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let groups: Vec<Value> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(stream)
            .query_async(&mut con)
            .await
            .map_err(err("XINFO GROUPS"))?;
        let mut out = Vec::new();
        for group in groups {
            let pairs: Vec<(String, Value)> = match group {
                Value::Array(items) => items
                    .chunks(2)
                    .filter_map(|kv| Some((text(&kv[0])?, kv.get(1)?.clone())))
                    .collect(),
                Value::Map(items) => items
                    .into_iter()
                    .filter_map(|(k, v)| Some((text(&k)?, v)))
                    .collect(),
                other => return Err(protocol(stream, format!("XINFO GROUPS item {other:?}"))),
            };
            let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let name = get("name").and_then(|v| text(&v)).unwrap_or_default();
            let last_delivered_id = get("last-delivered-id")
                .and_then(|v| text(&v))
                .and_then(|s| s.parse().ok())
                .unwrap_or(StreamId::MIN);
            let pending = get("pending")
                .and_then(|v| text(&v))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let lag = get("lag").and_then(|v| text(&v)).and_then(|s| s.parse().ok());
            let summary: Value = redis::cmd("XPENDING")
                .arg(stream)
                .arg(&name)
                .query_async(&mut con)
                .await
                .map_err(err("XPENDING"))?;
            let lowest_pending_id = match summary {
                Value::Array(items) => items.get(1).and_then(text).and_then(|s| s.parse().ok()),
                _ => None,
            };
            out.push(GroupInfo {
                name,
                last_delivered_id,
                pending,
                lowest_pending_id,
                lag,
            });
        }
        Ok(out)
    }
}
