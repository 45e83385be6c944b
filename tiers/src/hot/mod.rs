//! The hot tier: Redis streams, read in atomic batches, trimmed by one Lua script and written
//! by replays, over the same direct connections on a single server and on a Redis Cluster.

mod conn;
mod groups;
mod keys;
mod lease;
mod pressure;
mod raw;
mod replay;
mod reply;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streamtier_schemas::{EntryBatch, StreamId};

use crate::{Error, Result};

pub use conn::RedisConn;
pub use groups::{GroupsNow, RestoreCounters, RestoredGroups};
pub use keys::{chain_key, is_internal_key, lease_key, KEY_PREFIX};
pub use lease::{heartbeat, Lease, MEMBERS_KEY};
pub use pressure::Pressure;
use raw::{RawPool, Router};
pub use replay::{replay_cursor_key, GroupInfo, IdMode, ReplayBatch, ReplayWrite};
use reply::{parse_read, parse_trim};

/// Default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The `[redis]` section: where the partition streams live.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (TLS, `rediss://`, is not supported).
    #[serde(default = "default_url")]
    pub url: String,
    /// Talk to a Redis Cluster (`url` and `nodes` are seed nodes). Unset: ask the server
    /// (`INFO cluster`) when connecting.
    #[serde(default)]
    pub cluster: Option<bool>,
    /// More cluster seed nodes besides `url`, in case that one is down at start.
    #[serde(default)]
    pub nodes: Vec<String>,
}

fn default_url() -> String {
    DEFAULT_REDIS_URL.to_string()
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: default_url(),
            cluster: None,
            nodes: Vec::new(),
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("cluster", &self.cluster)
            .field(
                "nodes",
                &self.nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Replaces the secrets of a Redis URL with `***`, for logs and errors: the password of
/// `user:password@`, a lone `password@` (which clients also take as a password), and
/// `password=`/`pass=` query parameters.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &base[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &base[..scheme + 3], &creds[..colon], &base[at..]),
                None => format!("{}***{}", &base[..scheme + 3], &base[at..]),
            }
        }
        _ => base.to_string(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((k, _))
                    if ["password", "pass", "passwd"]
                        .iter()
                        .any(|s| k.eq_ignore_ascii_case(s)) =>
                {
                    format!("{k}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

impl RedisSettings {
    /// Checks the URL without connecting.
    ///
    /// # Errors
    /// [`Error::InvalidSettings`] naming `redis.url`.
    pub fn validate(&self) -> Result<()> {
        redis::Client::open(self.url.as_str()).map_err(|e| Error::InvalidSettings {
            key: "redis.url",
            reason: format!("`{}` is not a Redis URL: {e}", redact_url(&self.url)),
        })?;
        for (i, node) in self.nodes.iter().enumerate() {
            redis::Client::open(node.as_str()).map_err(|e| Error::InvalidSettings {
                key: "redis.nodes",
                reason: format!("entry {i} `{}` is not a Redis URL: {e}", redact_url(node)),
            })?;
        }
        if !self.nodes.is_empty() && self.cluster == Some(false) {
            return Err(Error::InvalidSettings {
                key: "redis.nodes",
                reason: "seed nodes only make sense with a cluster; remove them or set redis.cluster = true"
                    .into(),
            });
        }
        Ok(())
    }
}

/// Connects to Redis (a single server or a cluster): direct connections for the data path
/// (reads, trims, replay writes) and the scripts (leases, heartbeats), and the generic client's
/// reconnecting connection for the rest (discovery, the chain hint, consumer groups, job records).
///
/// # Errors
/// [`Error::InvalidSettings`] for a bad or TLS URL, [`Error::Redis`] when the first connection
/// fails.
pub async fn connect(settings: &RedisSettings) -> Result<Hot> {
    settings.validate()?;
    let con = conn::open(settings).await?;
    let pool = |key: &'static str, url: &str| {
        RawPool::for_url(url).ok_or_else(|| Error::InvalidSettings {
            key,
            reason: format!(
                "`{}` is not a plain TCP or Unix-socket address (TLS is not supported)",
                redact_url(url)
            ),
        })
    };
    let seed = pool("redis.url", &settings.url)?;
    let router = if matches!(con, RedisConn::Cluster(_)) {
        let mut seeds = vec![seed];
        for node in &settings.nodes {
            seeds.push(pool("redis.nodes", node)?);
        }
        Router::cluster(seeds)
    } else {
        Router::single(seed)
    };
    Ok(Hot {
        con,
        raw: Arc::new(router),
    })
}

/// What `XINFO STREAM` says about a stream, read atomically with a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// Entries in the stream now.
    pub length: u64,
    /// Entries ever added (Redis 7+).
    pub entries_added: u64,
    /// The oldest entry present.
    pub first_id: Option<StreamId>,
    /// The newest entry present.
    pub last_entry_id: Option<StreamId>,
    /// The newest id ever generated.
    pub last_generated_id: StreamId,
    /// The highest id removed by `XDEL`.
    pub max_deleted_id: StreamId,
    /// The first id Redis recorded (moves with trimming).
    pub recorded_first_id: StreamId,
}

/// One batch read after a watermark.
#[derive(Clone, Debug)]
pub struct ReadBatch {
    /// Entries in ascending id order, sharing the reply's buffer.
    pub entries: EntryBatch,
    /// `None` when the stream does not exist.
    pub info: Option<StreamInfo>,
    /// The watermark that archivers last committed for this stream (the fence).
    pub fence: Option<StreamId>,
}

/// What the trim script is asked to do.
#[derive(Clone, Debug)]
pub struct TrimRequest<'a> {
    /// The stream key.
    pub stream: &'a str,
    /// Last entry id durably archived; nothing above it is ever trimmed.
    pub archived: StreamId,
    /// Entries-added offset of `archived`, when known (guards against a recreated stream).
    pub archived_offset: Option<u64>,
    /// Keep entries whose id is at or above this (the `retain_for` window).
    pub keep_from: Option<StreamId>,
    /// Keep at least this many of the newest entries.
    pub retain_entries: u64,
    /// Hard cap that may trim past a stalled consumer group (archived entries only).
    pub retain_max_entries: Option<u64>,
    /// Hold trimming back for consumer groups.
    pub respect_groups: bool,
    /// The archive's last object key, recorded as the chain hint (a listing shortcut).
    pub hint: Option<&'a str>,
}

/// What the trim script did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrimOutcome {
    /// Trimmed `trimmed` entries below `bound`; `behind` lists groups trimmed past by the hard cap.
    Trimmed {
        /// Entries removed.
        trimmed: u64,
        /// The `MINID` used, if any.
        bound: Option<StreamId>,
        /// Stream length afterwards.
        length: u64,
        /// Groups that lost undelivered or pending entries to `retain_max_entries`.
        behind: Vec<String>,
    },
    /// The stream's last id is below the archived watermark (failover, or deleted and recreated).
    Regressed,
    /// The stream has fewer entries ever added than the archive holds: it was recreated.
    Recreated,
    /// The stream does not exist.
    Missing,
}

/// A cheap-to-clone handle on the hot tier.
#[derive(Clone)]
pub struct Hot {
    con: RedisConn,
    /// Direct connections for reads, trims and replay writes, routed by key.
    raw: Arc<Router>,
}

impl fmt::Debug for Hot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hot").finish_non_exhaustive()
    }
}

impl Hot {
    /// The connection, for callers that need plain commands.
    pub fn connection(&self) -> RedisConn {
        self.con.clone()
    }

    /// Answers whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self.con, RedisConn::Cluster(_))
    }

    /// Answers whether Redis is reachable.
    ///
    /// # Errors
    /// [`Error::Redis`] when it is not.
    pub async fn ping(&self) -> Result<()> {
        let mut con = self.con.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut con)
            .await
            .map_err(|source| Error::Redis {
                op: "PING",
                key: String::new(),
                source,
            })
    }

    /// Reads up to `count` entries with ids in `(after, end]`, atomically with `XINFO STREAM` and
    /// the chain fence.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails or the key is not a stream, [`Error::Protocol`] on an
    /// unexpected reply.
    pub async fn read_after(
        &self,
        stream: &str,
        after: StreamId,
        end: Option<StreamId>,
        count: usize,
    ) -> Result<ReadBatch> {
        let end = end.map_or_else(|| "+".to_string(), |id| id.to_string());
        let start = format!("({after}");
        let chain = chain_key(stream);
        let reply = self
            .raw
            .run("read batch", stream, |pool, asking| {
                let (start, end, chain) = (&start, &end, &chain);
                async move { pool.read(asking, stream, chain, (start, end), count).await }
            })
            .await?;
        parse_read(stream, reply.info, reply.entries)
    }

    /// What `XINFO STREAM` says about `stream` (`None` when it does not exist).
    ///
    /// # Errors
    /// As [`Hot::read_after`].
    pub async fn stream_info(&self, stream: &str) -> Result<Option<StreamInfo>> {
        // An empty id range: the read answers with the bookkeeping only.
        Ok(self
            .read_after(stream, StreamId::MIN, Some(StreamId::MIN), 1)
            .await?
            .info)
    }

    /// The type of `key` as Redis' `TYPE` names it (`stream`, `string`, `hash`, …), `None`
    /// when it does not exist.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn key_type(&self, key: &str) -> Result<Option<String>> {
        let mut con = self.con.clone();
        let found: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut con)
            .await
            .map_err(|source| Error::Redis {
                op: "TYPE",
                key: key.to_string(),
                source,
            })?;
        Ok((found != "none").then_some(found))
    }

    /// Trims archived entries in one atomic script (see `trim.lua`).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails, [`Error::Protocol`] on an unexpected reply.
    pub async fn trim(&self, req: &TrimRequest<'_>) -> Result<TrimOutcome> {
        let chain = chain_key(req.stream);
        let archived = req.archived.to_string();
        let offset = req.archived_offset.unwrap_or(0).to_string();
        let keep_from = req.keep_from.map(|id| id.to_string()).unwrap_or_default();
        let retain = req.retain_entries.to_string();
        let max = req.retain_max_entries.unwrap_or(0).to_string();
        let args: [&[u8]; 7] = [
            archived.as_bytes(),
            offset.as_bytes(),
            keep_from.as_bytes(),
            retain.as_bytes(),
            max.as_bytes(),
            if req.respect_groups { b"1" } else { b"0" },
            req.hint.unwrap_or_default().as_bytes(),
        ];
        let reply = self
            .script("trim", &raw::TRIM, &[req.stream, &chain], &args)
            .await?;
        parse_trim(req.stream, reply)
    }

    /// For each `(stream, id)`, whether the stream holds an entry above `id`: one pipelined
    /// `XRANGE … COUNT 1` per stream, one round trip per node, so that many quiet partitions
    /// cost one exchange. An error for one stream (a redirect, a wrong type) answers `true`:
    /// the caller then looks at that stream on its own.
    ///
    /// # Errors
    /// [`Error::Redis`] when a node cannot be reached.
    pub async fn newer_than(&self, streams: &[(&str, StreamId)]) -> Result<Vec<bool>> {
        let keys: Vec<&str> = streams.iter().map(|(k, _)| *k).collect();
        let after: Vec<String> = streams.iter().map(|(_, id)| format!("({id}")).collect();
        let replies = self
            .raw
            .each("watch", &keys, |i, request: &mut raw::Request| {
                request.push(&[
                    b"XRANGE",
                    keys[i].as_bytes(),
                    after[i].as_bytes(),
                    b"+",
                    b"COUNT",
                    b"1",
                ]);
            })
            .await?;
        Ok(replies
            .into_iter()
            .map(|r| {
                !matches!(r, Ok(raw::Item::Array(ref a)) if a.is_empty()) && !matches!(r, Ok(raw::Item::Nil))
            })
            .collect())
    }

    /// Runs one of the scripts in `lua/` with `keys` (all in one slot) on the node holding them.
    pub(crate) async fn script(
        &self,
        op: &'static str,
        lua: &raw::Lua,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<raw::Item> {
        let route = keys.first().copied().unwrap_or_default();
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        self.raw
            .run(op, route, |pool, asking| {
                let keys = &keys;
                async move { pool.script(asking, lua, keys, args).await }
            })
            .await
    }

    /// The last object key this stream's archivers committed (a listing hint; may be absent).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn chain_hint(&self, stream: &str) -> Result<Option<String>> {
        let mut con = self.con.clone();
        redis::cmd("HGET")
            .arg(chain_key(stream))
            .arg("hint")
            .query_async(&mut con)
            .await
            .map_err(|source| Error::Redis {
                op: "HGET",
                key: chain_key(stream),
                source,
            })
    }

    /// All keys of type stream (`SCAN … TYPE stream`), without streamtier's and Runnel's own keys.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails.
    pub async fn scan_streams(&self) -> Result<Vec<String>> {
        let mut keys: Vec<String> = conn::scan_stream_keys(&self.con)
            .await?
            .into_iter()
            // Stream keys that are not UTF-8 cannot name a topic; they are left alone.
            .filter_map(|key| String::from_utf8(key).ok())
            .filter(|key| !is_internal_key(key))
            .collect();
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn secrets_never_reach_a_log_line() {
        for (url, want) in [
            ("redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"),
            ("redis://:s3cret@host", "redis://:***@host"),
            ("redis://s3cret@host:6379", "redis://***@host:6379"),
            (
                "redis://host:6379?password=s3cret&db=2",
                "redis://host:6379?password=***&db=2",
            ),
            (
                "redis+unix:///run/redis.sock?pass=s3cret",
                "redis+unix:///run/redis.sock?pass=***",
            ),
            ("redis://host:6379/1", "redis://host:6379/1"),
        ] {
            let shown = redact_url(url);
            assert_eq!(shown, want);
            assert!(!shown.contains("s3cret"));
        }
    }
}
