//! One connection type over a single Redis server or a Redis Cluster, and the few commands that
//! must reach every primary (`SCAN`).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::{redact_url, RedisSettings};
use crate::{Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A reconnecting connection to one server, or a slot-routing connection to a cluster.
///
/// Every command streamtier sends names its keys, and the keys of one command always share a
/// hash slot (see `keys.rs`), so both kinds run the same commands and scripts.
#[derive(Clone)]
pub enum RedisConn {
    /// A single server (or a proxy that looks like one).
    Single(ConnectionManager),
    /// A Redis Cluster; commands are routed by key slot and follow `MOVED`/`ASK`.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

fn connect_error(settings: &RedisSettings, source: redis::RedisError) -> Error {
    Error::Redis {
        op: "connect",
        key: redact_url(&settings.url),
        source,
    }
}

/// Opens the connection that `settings` describe; with `cluster` unset, asks the server.
pub(super) async fn open(settings: &RedisSettings) -> Result<RedisConn> {
    let client = redis::Client::open(settings.url.as_str()).map_err(|e| Error::InvalidSettings {
        key: "redis.url",
        reason: e.to_string(),
    })?;
    let cluster = match settings.cluster {
        Some(cluster) => cluster,
        None => cluster_enabled(&client)
            .await
            .map_err(|e| connect_error(settings, e))?,
    };
    if cluster {
        let seeds = std::iter::once(settings.url.as_str()).chain(settings.nodes.iter().map(String::as_str));
        let builder = ClusterClientBuilder::new(seeds)
            .retries(6)
            .min_retry_wait(50)
            .max_retry_wait(2_000);
        let client = builder.build().map_err(|e| Error::InvalidSettings {
            key: "redis.nodes",
            reason: e.to_string(),
        })?;
        let config = ClusterConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let con = client
            .get_async_connection_with_config(config)
            .await
            .map_err(|e| connect_error(settings, e))?;
        return Ok(RedisConn::Cluster(con));
    }
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_secs(2));
    let con = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| connect_error(settings, e))?;
    Ok(RedisConn::Single(con))
}

/// Asks the server whether it runs in cluster mode (`INFO cluster`).
async fn cluster_enabled(client: &redis::Client) -> redis::RedisResult<bool> {
    let mut con = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    let info: String = redis::cmd("INFO").arg("cluster").query_async(&mut con).await?;
    Ok(info.lines().any(|l| l.trim() == "cluster_enabled:1"))
}

/// The primaries of a cluster, from `CLUSTER SLOTS`, as `(host, port)`.
async fn primaries(con: &mut ClusterConnection) -> Result<Vec<(String, u16)>> {
    let redis_err = |source| Error::Redis {
        op: "CLUSTER SLOTS",
        key: String::new(),
        source,
    };
    let reply = con
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await
        .map_err(redis_err)?;
    let protocol = |reason: &str| Error::Protocol {
        key: "CLUSTER SLOTS".into(),
        reason: reason.into(),
    };
    let Value::Array(ranges) = reply else {
        return Err(protocol("not an array"));
    };
    let mut nodes = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(protocol("a slot range is not an array"));
        };
        let Some(Value::Array(primary)) = parts.get(2) else {
            return Err(protocol("a slot range has no primary"));
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(protocol("a primary has no host")),
        };
        let port = match primary.get(1) {
            Some(Value::Int(p)) => {
                u16::try_from(*p).map_err(|_| protocol("a primary's port is out of range"))?
            }
            _ => return Err(protocol("a primary has no port")),
        };
        if !nodes.contains(&(host.clone(), port)) {
            nodes.push((host, port));
        }
    }
    Ok(nodes)
}

/// Runs a full `SCAN … TYPE stream` on every primary and collects the raw keys.
pub(super) async fn scan_stream_keys(con: &RedisConn) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    match con.clone() {
        RedisConn::Single(mut c) => scan_node(&mut c, None, &mut keys).await?,
        RedisConn::Cluster(mut c) => {
            for (host, port) in primaries(&mut c).await? {
                scan_node(&mut c, Some((host, port)), &mut keys).await?;
            }
        }
    }
    Ok(keys)
}

fn scan_cmd(cursor: u64) -> Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor).arg("COUNT").arg(1000).arg("TYPE").arg("stream");
    cmd
}

/// One node's scan; `node` routes the command on a cluster connection.
async fn scan_node<C: ScanTarget>(
    con: &mut C,
    node: Option<(String, u16)>,
    keys: &mut Vec<Vec<u8>>,
) -> Result<()> {
    let mut cursor: u64 = 0;
    loop {
        let value = con
            .send(scan_cmd(cursor), node.clone())
            .await
            .map_err(|source| Error::Redis {
                op: "SCAN",
                key: node.as_ref().map(|(h, p)| format!("{h}:{p}")).unwrap_or_default(),
                source,
            })?;
        let (next, batch): (u64, Vec<Vec<u8>>) =
            redis::FromRedisValue::from_redis_value(value).map_err(|source| Error::Redis {
                op: "SCAN",
                key: String::new(),
                source: source.into(),
            })?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return Ok(());
        }
    }
}

/// Sends one command, to a given node when the connection is a cluster's.
trait ScanTarget {
    async fn send(&mut self, cmd: Cmd, node: Option<(String, u16)>) -> redis::RedisResult<Value>;
}

impl ScanTarget for ConnectionManager {
    async fn send(&mut self, cmd: Cmd, _node: Option<(String, u16)>) -> redis::RedisResult<Value> {
        cmd.query_async(self).await
    }
}

impl ScanTarget for ClusterConnection {
    async fn send(&mut self, cmd: Cmd, node: Option<(String, u16)>) -> redis::RedisResult<Value> {
        let routing = match node {
            Some((host, port)) => SingleNodeRoutingInfo::ByAddress { host, port },
            None => SingleNodeRoutingInfo::RandomPrimary,
        };
        self.route_command(cmd, RoutingInfo::SingleNode(routing)).await
    }
}
