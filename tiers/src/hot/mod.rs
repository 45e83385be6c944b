//! The hot tier: Redis streams, read in atomic batches and trimmed by one Lua script.

mod conn;
mod keys;
mod lease;
mod raw;
mod replay;
mod reply;

use std::fmt;
use std::sync::Arc;

use redis::Script;
use serde::{Deserialize, Serialize};
use streamtier_schemas::{EntryBatch, StreamId};

use crate::{Error, Result};

pub use conn::RedisConn;
pub use keys::{chain_key, is_internal_key, lease_key, KEY_PREFIX};
pub use lease::Lease;
use raw::RawPool;
pub use replay::{replay_cursor_key, GroupInfo, IdMode, ReplayBatch, ReplayWrite, MAX_REPLAY_FIELDS};
use reply::{parse_entries, parse_read, parse_trim};

/// Default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The `[redis]` section: where the partition streams live.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS).
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

/// Replaces the password of a Redis URL with `***`, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &creds[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
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

/// Connects to Redis (a single server or a cluster) with a reconnecting connection that retries
/// with backoff inside the client.
///
/// # Errors
/// [`Error::InvalidSettings`] for a bad URL, [`Error::Redis`] when the first connection fails.
pub async fn connect(settings: &RedisSettings) -> Result<Hot> {
    settings.validate()?;
    let con = conn::open(settings).await?;
    let mut hot = Hot::new(con);
    if !hot.is_cluster() {
        hot.raw = RawPool::for_url(&settings.url).map(Arc::new);
    }
    Ok(hot)
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
    /// Direct connections for batch reads and replay writes (single server only; `None`: the
    /// generic client does everything).
    raw: Option<Arc<RawPool>>,
    read: Script,
    trim: Script,
    replay: Script,
}

impl fmt::Debug for Hot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hot").finish_non_exhaustive()
    }
}

impl Hot {
    /// Wraps a connection built at the edge.
    pub fn new(con: RedisConn) -> Self {
        Self {
            con,
            raw: None,
            read: Script::new(include_str!("read.lua")),
            trim: Script::new(include_str!("trim.lua")),
            replay: replay::script(),
        }
    }

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
        if let Some(raw) = &self.raw {
            let chain = chain_key(stream);
            let sha = self.read.get_hash();
            let mut reply = raw.read(stream, &chain, sha, (&start, &end), count).await?;
            if reply.is_none() {
                // NOSCRIPT: the server lost its script cache (restart, failover, SCRIPT FLUSH).
                self.load_read_script(stream).await?;
                reply = raw.read(stream, &chain, sha, (&start, &end), count).await?;
            }
            let reply = reply.ok_or_else(|| Error::Protocol {
                key: stream.to_string(),
                reason: "the read script is missing right after loading it".into(),
            })?;
            return parse_read(stream, reply.info.into_value(), reply.entries);
        }
        let mut con = self.con.clone();
        // One transaction: the bookkeeping script, then a native XRANGE. MULTI/EXEC keeps them
        // atomic without copying every entry through Lua tables.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("EVALSHA")
            .arg(self.read.get_hash())
            .arg(2)
            .arg(stream)
            .arg(chain_key(stream))
            .cmd("XRANGE")
            .arg(stream)
            .arg(start)
            .arg(end)
            .arg("COUNT")
            .arg(count);
        let err = |source| Error::Redis {
            op: "read batch",
            key: stream.to_string(),
            source,
        };
        let replies: Vec<redis::Value> = match pipe.query_async(&mut con).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.load_read_script(stream).await?;
                pipe.query_async(&mut con).await.map_err(err)?
            }
            other => other.map_err(err)?,
        };
        let mut replies = replies.into_iter();
        let (Some(info), Some(entries)) = (replies.next(), replies.next()) else {
            return Err(Error::Protocol {
                key: stream.to_string(),
                reason: "read transaction answered fewer than two replies".into(),
            });
        };
        let entries = parse_entries(stream, entries)?;
        let entries = EntryBatch::try_from_entries(&entries).map_err(|e| Error::Protocol {
            key: stream.to_string(),
            reason: e.to_string(),
        })?;
        parse_read(stream, info, entries)
    }

    async fn load_read_script(&self, stream: &str) -> Result<()> {
        let mut con = self.con.clone();
        self.read
            .prepare_invoke()
            .load_async(&mut con)
            .await
            .map(|_| ())
            .map_err(|source| Error::Redis {
                op: "SCRIPT LOAD",
                key: stream.to_string(),
                source,
            })
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

    /// Trims archived entries in one atomic script (see `trim.lua`).
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails, [`Error::Protocol`] on an unexpected reply.
    pub async fn trim(&self, req: &TrimRequest<'_>) -> Result<TrimOutcome> {
        let mut con = self.con.clone();
        let value: redis::Value = self
            .trim
            .key(req.stream)
            .key(chain_key(req.stream))
            .arg(req.archived.to_string())
            .arg(req.archived_offset.unwrap_or(0))
            .arg(req.keep_from.map(|id| id.to_string()).unwrap_or_default())
            .arg(req.retain_entries)
            .arg(req.retain_max_entries.unwrap_or(0))
            .arg(if req.respect_groups { "1" } else { "0" })
            .arg(req.hint.unwrap_or_default())
            .invoke_async(&mut con)
            .await
            .map_err(|source| Error::Redis {
                op: "trim",
                key: req.stream.to_string(),
                source,
            })?;
        parse_trim(req.stream, value)
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
