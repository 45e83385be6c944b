//! The direct data path on a Redis Cluster: reads, trims and replay writes reach the node that
//! holds their slot while the slot migrates (`ASK`, then `MOVED`), and entries wider than a Lua
//! call allows are replayed (no script carries them).

use bytes::Bytes;
use streamtier_schemas::{Entry, StreamId};
use streamtier_tiers::hot::{
    self, Hot, IdMode, RedisSettings, ReplayBatch, ReplayWrite, TrimOutcome, TrimRequest,
};

use crate::harness::redis::{RedisCluster, RedisServer};
use crate::harness::stream::{xadd, xrange_all};

const STREAM: &str = "moving";
/// In the stream's slot (its hash tag is the stream's name).
const TARGET: &str = "{moving}:restored";

fn batch(from: u64, n: u64, fields: usize) -> Vec<Entry> {
    (from..from + n)
        .map(|i| {
            let fields = (0..fields)
                .map(|f| {
                    (
                        Bytes::from(format!("f{f}")),
                        Bytes::from(vec![0xff, i as u8, f as u8]),
                    )
                })
                .collect();
            Entry::new(StreamId::new(1_000 + i, 0), fields)
        })
        .collect()
}

async fn replay(hot: &Hot, entries: &[Entry], expected: Option<StreamId>) -> ReplayWrite {
    hot.write_replay_batch(&ReplayBatch {
        target: TARGET,
        job: "j",
        expected,
        entries,
        ids: IdMode::Original,
        origin: None,
        through: None,
    })
    .await
    .expect("replay batch")
}

async fn read_all(hot: &Hot) -> Vec<StreamId> {
    let batch = hot
        .read_after(STREAM, StreamId::MIN, None, 1_000)
        .await
        .expect("read batch");
    (0..batch.entries.len())
        .map(|i| batch.entries.get(i).id)
        .collect()
}

async fn trim(hot: &Hot, archived: StreamId) -> TrimOutcome {
    hot.trim(&TrimRequest {
        stream: STREAM,
        archived,
        archived_offset: None,
        keep_from: None,
        retain_entries: 0,
        retain_max_entries: None,
        respect_groups: true,
        hint: Some("orders/0/x.parquet"),
    })
    .await
    .expect("trim")
}

fn node_cmd<T: redis::FromRedisValue>(node: &RedisServer, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut node.con())
        .unwrap_or_else(|e| panic!("{args:?} on {}: {e}", node.url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_trims_and_replays_follow_a_migrating_slot() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("cluster");
    let mut con = cluster.con();
    for i in 1..=10 {
        xadd(
            &mut con,
            STREAM,
            &format!("{i}-0"),
            &[(b"v", i.to_string().as_bytes())],
        );
    }
    let hot = hot::connect(&RedisSettings {
        url: cluster.url(),
        ..RedisSettings::default()
    })
    .await
    .expect("connect");
    assert!(hot.is_cluster());

    // Before: the slot map says where the slot is.
    assert_eq!(read_all(&hot).await.len(), 10);
    let first = batch(1, 5, 2);
    assert!(matches!(
        replay(&hot, &first, None).await,
        ReplayWrite::Written { total: 5 }
    ));
    assert!(matches!(
        trim(&hot, StreamId::new(3, 0)).await,
        TrimOutcome::Trimmed { trimmed: 3, .. }
    ));

    // Migrate the slot to another node, key by key (the chain and cursor hashes share it).
    let slot: i64 = node_cmd(&cluster.nodes[0], &["CLUSTER", "KEYSLOT", STREAM]);
    let slot = slot.to_string();
    let holds = |n: &RedisServer| node_cmd::<i64>(n, &["CLUSTER", "COUNTKEYSINSLOT", &slot]) > 0;
    let source = cluster
        .nodes
        .iter()
        .position(holds)
        .expect("a node holds the slot");
    let dest = (source + 1) % cluster.nodes.len();
    let (src, dst) = (&cluster.nodes[source], &cluster.nodes[dest]);
    let id = |n: &RedisServer| node_cmd::<String>(n, &["CLUSTER", "MYID"]);
    let (src_id, dst_id) = (id(src), id(dst));
    let keys: Vec<String> = node_cmd(src, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]);
    assert_eq!(
        keys.len(),
        4,
        "stream, chain, target and cursor share the slot: {keys:?}"
    );
    node_cmd::<()>(dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]);
    node_cmd::<()>(src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id]);
    let port = dst.url().rsplit(':').next().expect("port").to_string();
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    migrate.extend(keys.iter().map(String::as_str));
    node_cmd::<()>(src, &migrate);

    // During: the map still names the source, which answers ASK; only ASKING reaches the keys.
    assert_eq!(read_all(&hot).await.len(), 7);
    let second = batch(6, 5, 2);
    assert!(matches!(
        replay(&hot, &second, Some(first[4].id)).await,
        ReplayWrite::Written { total: 10 }
    ));
    assert!(matches!(
        trim(&hot, StreamId::new(5, 0)).await,
        TrimOutcome::Trimmed { trimmed: 2, .. }
    ));

    // After: every node says the slot is the destination's; the source answers MOVED.
    for node in [dst, src].into_iter().chain(cluster.nodes.iter()) {
        node_cmd::<()>(node, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]);
    }
    assert_eq!(read_all(&hot).await.len(), 5);
    // Wider than one Lua call could carry (its limit was about 8,000 arguments).
    let wide = batch(11, 2, 5_000);
    assert!(matches!(
        replay(&hot, &wide, Some(second[4].id)).await,
        ReplayWrite::Written { total: 12 }
    ));

    let written = xrange_all(&mut con, TARGET);
    let expected: Vec<Entry> = first.into_iter().chain(second).chain(wide).collect();
    assert_eq!(written, expected, "every batch once, in order, byte for byte");
    assert!(node_cmd::<i64>(dst, &["CLUSTER", "COUNTKEYSINSLOT", &slot]) == 4);
}
