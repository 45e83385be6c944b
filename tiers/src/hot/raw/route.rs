//! Sends each raw exchange to the server that holds its key: the one server, or on a Redis
//! Cluster the primary of the key's hash slot, following `MOVED` and `ASK` redirects.
//!
//! A redirect or a `TRYAGAIN` is only ever answered before a command runs (while it is routed
//! or queued), so an exchange that got one changed nothing and is simply sent again. A
//! broken connection is not retried here: for a write it leaves open whether it landed, and
//! the callers' own retries settle that (the replay cursor tells).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::resp::{Cursor, Failure, Item, Request};
use super::{failure, RawPool};
use crate::hot::keys::slot;
use crate::Result;

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16_384;
/// Redirects and `TRYAGAIN`s followed for one exchange before giving up.
const MAX_ATTEMPTS: u32 = 12;
/// First wait after a `TRYAGAIN` or `CLUSTERDOWN` (doubling up to [`MAX_WAIT`]).
const FIRST_WAIT: Duration = Duration::from_millis(20);
const MAX_WAIT: Duration = Duration::from_millis(500);

/// Where raw exchanges go.
pub(crate) struct Router {
    /// The server, or the cluster's seed nodes.
    seeds: Vec<Arc<RawPool>>,
    /// The slot map, on a cluster.
    cluster: Option<RwLock<SlotMap>>,
    /// One refresh of the slot map at a time.
    refreshing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("seeds", &self.seeds)
            .field("cluster", &self.cluster.is_some())
            .finish_non_exhaustive()
    }
}

/// Which node serves each slot, and one pool per node.
#[derive(Default)]
struct SlotMap {
    /// Index into `nodes` per slot (`u16::MAX`: not known).
    owner: Vec<u16>,
    nodes: Vec<Arc<RawPool>>,
    by_addr: HashMap<(String, u16), u16>,
    /// Set when a redirect or a failed connection says the map is out of date.
    stale: bool,
}

impl SlotMap {
    fn node(&mut self, seed: &RawPool, host: &str, port: u16) -> u16 {
        let key = (host.to_string(), port);
        if let Some(i) = self.by_addr.get(&key) {
            return *i;
        }
        let i = self.nodes.len() as u16;
        self.nodes.push(Arc::new(seed.node(host, port)));
        self.by_addr.insert(key, i);
        i
    }
}

/// What an error reply asks of the router.
#[derive(Debug, PartialEq, Eq)]
enum Redirect {
    /// The slot lives elsewhere now.
    Moved(String, u16),
    /// Ask that node, this once, with `ASKING`.
    Ask(String, u16),
    /// The cluster is busy (a slot in migration, a failover): wait and retry.
    Wait,
}

fn redirect(message: &str) -> Option<Redirect> {
    let mut words = message.split(' ');
    let kind = words.next()?;
    let target = |mut words: std::str::Split<'_, char>| {
        let addr = words.nth(1)?;
        let (host, port) = addr.rsplit_once(':')?;
        Some((host.to_string(), port.parse().ok()?))
    };
    match kind {
        "MOVED" => target(words).map(|(h, p)| Redirect::Moved(h, p)),
        "ASK" => target(words).map(|(h, p)| Redirect::Ask(h, p)),
        "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "LOADING" => Some(Redirect::Wait),
        _ => None,
    }
}

impl Router {
    /// A router for one server at `pool`.
    pub(crate) fn single(pool: RawPool) -> Self {
        Self {
            seeds: vec![Arc::new(pool)],
            cluster: None,
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// A router for a cluster reached through `seeds`; the slot map is read on first use.
    pub(crate) fn cluster(seeds: Vec<RawPool>) -> Self {
        Self {
            seeds: seeds.into_iter().map(Arc::new).collect(),
            cluster: Some(RwLock::new(SlotMap {
                stale: true,
                ..SlotMap::default()
            })),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs `exchange` against the server holding `key` (with `asking` set after an `ASK`),
    /// following redirects; failures become crate errors naming `op` and `key`.
    pub(crate) async fn run<T, F>(
        &self,
        op: &'static str,
        key: &str,
        exchange: impl Fn(Arc<RawPool>, bool) -> F,
    ) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<T, Failure>>,
    {
        let Some(map) = &self.cluster else {
            return exchange(self.seeds[0].clone(), false)
                .await
                .map_err(|f| failure(op, key, f));
        };
        let slot = usize::from(slot(key.as_bytes()));
        let mut ask: Option<Arc<RawPool>> = None;
        let mut waits = 0;
        for _ in 0..MAX_ATTEMPTS {
            let (pool, asking) = match ask.take() {
                Some(pool) => (pool, true),
                None => (self.owner(slot, op, key).await?, false),
            };
            let message = match exchange(pool, asking).await {
                Ok(value) => return Ok(value),
                Err(Failure::Server(message)) => message,
                Err(f @ Failure::Io(_)) => {
                    // The node may be gone (a failover): look again next time.
                    write(map).stale = true;
                    return Err(failure(op, key, f));
                }
                Err(f) => return Err(failure(op, key, f)),
            };
            match redirect(&message) {
                Some(Redirect::Moved(host, port)) => {
                    let mut map = write(map);
                    let seed = &self.seeds[0];
                    let node = map.node(seed, &host, port);
                    if let Some(owner) = map.owner.get_mut(slot) {
                        *owner = node;
                    }
                    // One moved slot usually means a resharding: read the whole map again.
                    map.stale = true;
                }
                Some(Redirect::Ask(host, port)) => {
                    let mut map = write(map);
                    let node = map.node(&self.seeds[0], &host, port);
                    ask = Some(map.nodes[usize::from(node)].clone());
                }
                Some(Redirect::Wait) => {
                    tokio::time::sleep(crate::retry::backoff(waits, FIRST_WAIT, MAX_WAIT)).await;
                    waits += 1;
                }
                None => return Err(failure(op, key, Failure::Server(message))),
            }
        }
        Err(failure(
            op,
            key,
            Failure::Server(format!(
                "TRYAGAIN still redirected after {MAX_ATTEMPTS} attempts (the cluster is resharding or failing over)"
            )),
        ))
    }

    /// Sends one command per key (`command` writes key number `i`'s), pipelined: one exchange per node that
    /// holds any of them, all nodes at once. Answers each key's reply; an error reply (a
    /// redirect too: the caller asks that key again on its own) stays that key's failure.
    pub(crate) async fn each(
        &self,
        op: &'static str,
        keys: &[&str],
        command: impl Fn(usize, &mut Request),
    ) -> Result<Vec<std::result::Result<Item, Failure>>> {
        let mut groups: Vec<(Arc<RawPool>, Vec<usize>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let pool = self.owner(usize::from(slot(key.as_bytes())), op, key).await?;
            match groups.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &pool)) {
                Some((_, members)) => members.push(i),
                None => groups.push((pool, vec![i])),
            }
        }
        let exchanges = groups.iter().map(|(pool, members)| {
            let mut request = Request::default();
            for &i in members {
                command(i, &mut request);
            }
            async move {
                let (con, reply) = pool.exchange(&request).await?;
                pool.give_back(con);
                let mut c = Cursor::new(&reply);
                Ok::<_, Failure>(members.iter().map(|_| c.item(0)).collect::<Vec<_>>())
            }
        });
        let replies = futures::future::join_all(exchanges).await;
        let mut out: Vec<Option<std::result::Result<Item, Failure>>> = keys.iter().map(|_| None).collect();
        for ((_, members), replies) in groups.iter().zip(replies) {
            let replies = match replies {
                Ok(replies) => replies,
                Err(f) => {
                    if let Some(map) = &self.cluster {
                        write(map).stale = true;
                    }
                    return Err(failure(op, keys[members[0]], f));
                }
            };
            for (&i, reply) in members.iter().zip(replies) {
                if let (Err(Failure::Server(m)), Some(map)) = (&reply, &self.cluster) {
                    if m.starts_with("MOVED") {
                        write(map).stale = true;
                    }
                }
                out[i] = Some(reply);
            }
        }
        Ok(out
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Failure::Protocol("no reply".into()))))
            .collect())
    }

    /// The pool of the node serving `slot`, reading the slot map first when it is stale.
    async fn owner(&self, slot: usize, op: &'static str, key: &str) -> Result<Arc<RawPool>> {
        let Some(map) = &self.cluster else {
            return Ok(self.seeds[0].clone());
        };
        {
            let map = read(map);
            if !map.stale {
                if let Some(pool) = map.owner.get(slot).and_then(|i| map.nodes.get(usize::from(*i))) {
                    return Ok(pool.clone());
                }
            }
        }
        self.refresh(op, key).await?;
        let map = read(map);
        map.owner
            .get(slot)
            .and_then(|i| map.nodes.get(usize::from(*i)))
            .cloned()
            .ok_or_else(|| {
                failure(
                    op,
                    key,
                    Failure::Server(format!("CLUSTERDOWN no node serves hash slot {slot}")),
                )
            })
    }

    /// Reads `CLUSTER SLOTS` from a known node or a seed and replaces the map.
    async fn refresh(&self, op: &'static str, key: &str) -> Result<()> {
        let Some(map) = &self.cluster else {
            return Ok(());
        };
        let _one = self.refreshing.lock().await;
        if !read(map).stale {
            // Another task refreshed it while this one waited.
            return Ok(());
        }
        let known: Vec<Arc<RawPool>> = read(map).nodes.clone();
        let mut last: Option<Failure> = None;
        for pool in known.iter().chain(self.seeds.iter()) {
            match cluster_slots(pool).await {
                Ok(ranges) => {
                    let (nodes, by_addr) = {
                        let map = read(map);
                        (map.nodes.clone(), map.by_addr.clone())
                    };
                    let mut next = SlotMap {
                        owner: vec![u16::MAX; SLOTS],
                        nodes,
                        by_addr,
                        stale: false,
                    };
                    for (start, end, host, port) in ranges {
                        // An empty host means the node that answered.
                        let host = if host.is_empty() || host == "?" {
                            pool.host().to_string()
                        } else {
                            host
                        };
                        let node = next.node(&self.seeds[0], &host, port);
                        for s in start..=end.min(SLOTS - 1) {
                            next.owner[s] = node;
                        }
                    }
                    *write(map) = next;
                    return Ok(());
                }
                Err(f) => last = Some(f),
            }
        }
        // No node answered: the last failure says why (a broken connection is `Error::Redis`).
        Err(failure(
            op,
            key,
            last.unwrap_or_else(|| Failure::Protocol("no cluster seed nodes to ask for the slot map".into())),
        ))
    }
}

fn read(map: &RwLock<SlotMap>) -> std::sync::RwLockReadGuard<'_, SlotMap> {
    map.read().unwrap_or_else(|p| p.into_inner())
}

fn write(map: &RwLock<SlotMap>) -> std::sync::RwLockWriteGuard<'_, SlotMap> {
    map.write().unwrap_or_else(|p| p.into_inner())
}

/// `CLUSTER SLOTS` as `(first slot, last slot, primary host, primary port)`.
async fn cluster_slots(pool: &RawPool) -> std::result::Result<Vec<(usize, usize, String, u16)>, Failure> {
    let mut request = Request::default();
    request.push(&[b"CLUSTER", b"SLOTS"]);
    let (con, reply) = pool.exchange(&request).await?;
    pool.give_back(con);
    parse_slots(&reply)
}

fn parse_slots(reply: &bytes::Bytes) -> std::result::Result<Vec<(usize, usize, String, u16)>, Failure> {
    let bad = || Failure::Protocol("unexpected CLUSTER SLOTS reply".into());
    let Item::Array(ranges) = Cursor::new(reply).item(0)? else {
        return Err(bad());
    };
    let mut out = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Item::Array(parts) = range else {
            return Err(bad());
        };
        let (Some(Item::Int(start)), Some(Item::Int(end)), Some(Item::Array(primary))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            return Err(bad());
        };
        let (Some(host), Some(Item::Int(port))) = (primary.first().and_then(Item::text), primary.get(1))
        else {
            return Err(bad());
        };
        let (Ok(start), Ok(end), Ok(port)) = (
            usize::try_from(*start),
            usize::try_from(*end),
            u16::try_from(*port),
        ) else {
            return Err(bad());
        };
        out.push((start, end, host, port));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_read_from_error_replies() {
        assert_eq!(
            redirect("MOVED 3999 127.0.0.1:6381"),
            Some(Redirect::Moved("127.0.0.1".into(), 6381))
        );
        assert_eq!(
            redirect("ASK 3999 ::1:7000"),
            Some(Redirect::Ask("::1".into(), 7000))
        );
        assert_eq!(
            redirect("TRYAGAIN Multiple keys request during rehashing of slot"),
            Some(Redirect::Wait)
        );
        assert_eq!(redirect("CLUSTERDOWN The cluster is down"), Some(Redirect::Wait));
        assert_eq!(redirect("WRONGTYPE Operation against a key"), None);
        assert_eq!(redirect("MOVED nonsense"), None);
    }

    #[test]
    fn slot_ranges_are_parsed() {
        let reply = bytes::Bytes::from_static(
            b"*2\r\n*3\r\n:0\r\n:5460\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*0\r\n\
*4\r\n:5461\r\n:16383\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n*3\r\n$9\r\n127.0.0.1\r\n:7002\r\n$2\r\nid\r\n",
        );
        assert_eq!(
            parse_slots(&reply).unwrap(),
            vec![
                (0, 5460, "127.0.0.1".into(), 7000),
                (5461, 16383, String::new(), 7001)
            ]
        );
        assert!(parse_slots(&bytes::Bytes::from_static(b"*1\r\n:1\r\n")).is_err());
    }
}
