//! The dry run of a restore counts what the restore writes: the window the source held at the
//! snapshot and the older entries a group still had pending, not every archived entry it reads.

use std::time::Duration;

use streamtier_archiver::settings::{ArchiveSettings, Retention};
use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_replayer::plan::{build_plan, dry_run, prepare, SourcePartition};
use streamtier_replayer::{IdRange, Ids, JobState, ReplayRequest};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::{partition, system_context, test_settings};
use crate::harness::groups::{ack, create_group, deliver};
use crate::harness::replay::Fixture;
use crate::harness::stream::{xadd, xrange_all};

const T0: u64 = 1_700_000_000_000;

#[tokio::test]
async fn a_restore_dry_run_counts_the_snapshot_window_and_older_pending_entries() {
    // One object of 100 (read, it straddles the window), and objects of 30 (one below the
    // window skipped, one holding pending entries read, two inside it counted from footers).
    for max_object_entries in [1000, 30] {
        restore_counts_what_it_writes(max_object_entries).await;
    }
}

async fn restore_counts_what_it_writes(max_object_entries: u64) {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    for i in 1..=100u64 {
        xadd(
            &mut con,
            "orders:0",
            &format!("{}-0", T0 + i),
            &[(b"n", i.to_string().as_bytes())],
        );
    }
    // 56-70 delivered and not acknowledged: pending.
    create_group(&mut con, "orders:0", b"g", "0");
    let delivered = deliver(&mut con, "orders:0", b"g", "c", 70);
    ack(&mut con, "orders:0", b"g", &delivered[..55]);
    // Archive all 100 and keep 40 (61-100) in Redis, past the group's pending entries.
    let settings = ArchiveSettings {
        group_snapshot_interval: "1ms".into(),
        max_object_entries,
        ..test_settings()
    };
    let retention = Retention {
        retain_entries: 40,
        retain_for: Duration::ZERO,
        retain_max_entries: Some(40),
    };
    let ctx = system_context(f.hot.clone(), f.store.clone(), &settings, "t");
    let stats = PartitionWorker::new(ctx, partition("orders", 0, "orders:0", retention))
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .expect("archive");
    assert_eq!((stats.entries, stats.group_snapshots), (100, 1), "{stats:?}");
    assert_eq!(xrange_all(&mut con, "orders:0").len(), 40, "the window");
    let _: () = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");

    let request = ReplayRequest {
        topic: "orders".into(),
        target: Some("{stream}".into()),
        ids: Ids::Original,
        restore_groups: true,
        ..ReplayRequest::default()
    };
    let sources = [SourcePartition {
        partition: 0,
        stream: "orders:0".into(),
    }];
    let plan = build_plan(&request, IdRange::ALL, 1_000_000, &sources, |_| Ok(())).expect("plan");
    let plan = prepare(&f.hot, &f.store, plan).await.expect("prepare");
    let planned = dry_run(&f.hot, &f.store, &plan).await.expect("dry run");
    let p = &planned[0];
    if max_object_entries > 100 {
        assert_eq!(
            p.archived_entries, 100,
            "the object it reads holds everything: {p:?}"
        );
    }
    assert_eq!(
        (p.restore_entries, p.restore_pending_entries),
        (Some(45), Some(5)),
        "61-100, and 56-60 pending: {p:?}"
    );
    assert_eq!(
        xrange_all(&mut con, "orders:0").len(),
        0,
        "a dry run writes nothing"
    );

    let replayer = f.replayer(1_000_000);
    let record = replayer.create(&plan).await.expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    assert_eq!(done.entries_replayed, 45);
    assert_eq!(
        xrange_all(&mut con, "orders:0").len(),
        45,
        "what the dry run said"
    );
}
