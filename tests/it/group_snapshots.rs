//! Consumer-group snapshots against a real Redis and a local store: what the archiver records
//! (positions, consumers, pending entries across consumers, a stalled group, binary names, the
//! stream's counters), the cut of a long pending list, and that an unchanged state is not
//! recorded twice.

use std::time::Duration;

use streamtier_archiver::settings::ArchiveSettings;
use streamtier_archiver::worker::PassStats;
use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_schemas::groups::{GroupSnapshot, GroupState, Name};
use streamtier_schemas::{layout, StreamId};
use streamtier_tiers::store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::{keep_nothing, partition, system_context, test_settings};
use crate::harness::groups::{ack, create_group, deliver};
use crate::harness::redis::RedisServer;
use crate::harness::stream::xadd;

const T0: u64 = 1_700_000_000_000;

fn id(i: u64) -> StreamId {
    StreamId::new(T0 + i, 0)
}

async fn snapshots(store: &Store, partition: u32) -> Vec<GroupSnapshot> {
    let mut out = Vec::new();
    for o in store
        .list(&layout::groups_prefix("orders", partition), None, None)
        .await
        .expect("list")
    {
        assert!(layout::parse_group_snapshot_key(&o.key).is_some(), "{}", o.key);
        let body = store.get(&o.key).await.expect("get");
        out.push(GroupSnapshot::from_json(&body).expect("a snapshot"));
    }
    out
}

async fn pass(w: &mut PartitionWorker) -> PassStats {
    w.pass(Mode::Once, None, &CancellationToken::new())
        .await
        .expect("pass")
}

fn group<'a>(s: &'a GroupSnapshot, name: &[u8]) -> &'a GroupState {
    s.groups
        .iter()
        .find(|g| g.name.as_bytes() == name)
        .unwrap_or_else(|| panic!("no group {:?} in {s:?}", String::from_utf8_lossy(name)))
}

#[tokio::test]
async fn the_archiver_records_groups_pending_entries_and_counters() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    for i in 1..=100 {
        xadd(
            &mut con,
            "orders:0",
            &id(i).to_string(),
            &[(b"n", i.to_string().as_bytes())],
        );
        xadd(&mut con, "orders:1", &id(i).to_string(), &[(b"n", b"x")]);
    }
    // Caught up: everything delivered and acknowledged.
    create_group(&mut con, "orders:0", b"caught", "0");
    let all = deliver(&mut con, "orders:0", b"caught", "c", 100);
    ack(&mut con, "orders:0", b"caught", &all);
    // Behind, with entries pending on two consumers: c1 holds 21-30, c2 36-60.
    create_group(&mut con, "orders:0", b"behind", "0");
    let first = deliver(&mut con, "orders:0", b"behind", "c1", 30);
    let second = deliver(&mut con, "orders:0", b"behind", "c2", 30);
    ack(&mut con, "orders:0", b"behind", &first[..20]);
    ack(&mut con, "orders:0", b"behind", &second[..5]);
    // Stalled early, under a name that is not UTF-8, with a consumer that holds nothing.
    let stalled: &[u8] = b"\xffstalled";
    create_group(&mut con, "orders:0", stalled, "0");
    deliver(&mut con, "orders:0", stalled, "s", 5);
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg("orders:0")
        .arg(stalled)
        .arg("idle")
        .query(&mut con)
        .expect("CREATECONSUMER");

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::Local(LocalStore::new(dir.path()).expect("store"));
    let settings = ArchiveSettings {
        group_snapshot_interval: "1ms".into(),
        group_snapshot_max_pending: 20,
        ..test_settings()
    };
    let ctx = system_context(redis.hot().await, store.clone(), &settings, "t");
    let mut worker = PartitionWorker::new(ctx.clone(), partition("orders", 0, "orders:0", keep_nothing()));
    let stats = pass(&mut worker).await;
    assert_eq!(stats.group_snapshots, 1, "{stats:?}");
    assert!(stats.objects > 0);

    let taken = snapshots(&store, 0).await;
    assert_eq!(taken.len(), 1);
    let s = &taken[0];
    assert_eq!(
        (s.topic.as_str(), s.partition, s.stream.as_str()),
        ("orders", 0, "orders:0")
    );
    assert_eq!(
        s.archived_id,
        id(100),
        "everything was archived before the snapshot"
    );
    // The counters are the stream's after the pass (the trim kept what the groups need).
    let info = redis
        .hot()
        .await
        .stream_info("orders:0")
        .await
        .expect("info")
        .expect("stream");
    let c = &s.stream_info;
    assert_eq!(
        (
            c.length,
            c.first_entry_id,
            c.last_entry_id,
            c.last_generated_id,
            c.entries_added
        ),
        (
            info.length,
            info.first_id,
            info.last_entry_id,
            info.last_generated_id,
            info.entries_added
        )
    );
    assert_eq!(c.max_deleted_entry_id, info.max_deleted_id);
    assert_eq!(
        c.first_entry_id,
        Some(id(1)),
        "the stalled group holds the trim back"
    );

    let caught = group(s, b"caught");
    assert_eq!(
        (
            caught.last_delivered_id,
            caught.entries_read,
            caught.pending_count,
            caught.pending.len()
        ),
        (id(100), Some(100), 0, 0)
    );
    let behind = group(s, b"behind");
    assert_eq!(
        (behind.last_delivered_id, behind.entries_read),
        (id(60), Some(60))
    );
    assert_eq!(behind.pending_count, 35);
    assert!(behind.pending_truncated, "35 pending, 20 recorded");
    let recorded: Vec<(StreamId, String, u64)> = behind
        .pending
        .iter()
        .map(|p| (p.id, p.consumer.to_string(), p.deliveries))
        .collect();
    let expected: Vec<(StreamId, String, u64)> = (21..=30)
        .map(|i| (id(i), "c1".to_string(), 1))
        .chain((36..=45).map(|i| (id(i), "c2".to_string(), 1)))
        .collect();
    assert_eq!(recorded, expected, "the oldest 20, with their consumers");
    let consumers: Vec<(String, u64)> = behind
        .consumers
        .iter()
        .map(|c| (c.name.to_string(), c.pending))
        .collect();
    assert_eq!(consumers, [("c1".to_string(), 10), ("c2".to_string(), 25)]);

    let stalled_group = group(s, stalled);
    assert_eq!(stalled_group.name, Name(stalled.to_vec()));
    assert_eq!(
        (
            stalled_group.last_delivered_id,
            stalled_group.pending_count,
            stalled_group.pending_truncated
        ),
        (id(5), 5, false)
    );
    let consumers: Vec<(String, u64)> = stalled_group
        .consumers
        .iter()
        .map(|c| (c.name.to_string(), c.pending))
        .collect();
    assert_eq!(consumers, [("idle".to_string(), 0), ("s".to_string(), 5)]);

    // Nothing changed: no second snapshot, however often the interval passes.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(pass(&mut worker).await.group_snapshots, 0);
    assert_eq!(snapshots(&store, 0).await.len(), 1);
    // A group moves: a new snapshot records it.
    ack(&mut con, "orders:0", b"behind", &first[20..21]);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(pass(&mut worker).await.group_snapshots, 1);
    let taken = snapshots(&store, 0).await;
    assert_eq!(taken.len(), 2);
    assert!(taken[0].taken_at_ms <= taken[1].taken_at_ms, "keys sort by time");
    assert_eq!(group(&taken[1], b"behind").pending_count, 34);

    // A stream without groups records nothing.
    let mut plain = PartitionWorker::new(ctx, partition("orders", 1, "orders:1", keep_nothing()));
    assert_eq!(pass(&mut plain).await.group_snapshots, 0);
    assert!(snapshots(&store, 1).await.is_empty());
}
