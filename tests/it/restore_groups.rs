//! Faithful restore against a real Redis and a local store: a source with three consumer groups
//! (one caught up, one behind with entries pending on two consumers, one stalled past the trim
//! point) is archived and trimmed, Redis is wiped, and a restore brings back the entries, the
//! groups, their positions and pending entries, and the stream's counters.

use std::collections::BTreeMap;
use std::time::Duration;

use streamtier_archiver::settings::{ArchiveSettings, Retention};
use streamtier_archiver::worker::PassStats;
use streamtier_archiver::{Mode, PartitionWorker};
use streamtier_replayer::plan::{build_plan, prepare, JobPlan, SourcePartition};
use streamtier_replayer::{IdRange, Ids, JobRecord, JobState, ReplayRequest};
use streamtier_schemas::{Entry, StreamId};
use tokio_util::sync::CancellationToken;

use crate::harness::archiver::{binary, partition, system_context, test_settings, write_config};
use crate::harness::groups::{ack, create_group, deliver, groups_view, GroupsView};
use crate::harness::http::{api_config, Deadline, Server};
use crate::harness::replay::Fixture;
use crate::harness::stream::{xadd, xrange_all};

const T0: u64 = 1_700_000_000_000;

fn id(i: u64) -> String {
    format!("{}-0", T0 + i)
}

/// Adds entries `from..=to` to `orders:0`.
fn produce(con: &mut redis::Connection, from: u64, to: u64) {
    for i in from..=to {
        xadd(
            con,
            "orders:0",
            &id(i),
            &[(b"n", i.to_string().as_bytes()), (b"bin", &[0xff, i as u8])],
        );
    }
}

/// Archives `orders:0` once, keeping at most 50 entries in Redis even past the groups.
async fn archive(f: &Fixture) {
    archive_keeping(f, 50).await;
}

/// Archives `orders:0` once, keeping at most `max` entries in Redis even past the groups.
async fn archive_keeping(f: &Fixture, max: u64) {
    let retention = Retention {
        retain_entries: 20,
        retain_for: Duration::ZERO,
        retain_max_entries: Some(max),
    };
    let stats = archive_with(f, retention, "1ms").await;
    assert_eq!(stats.group_snapshots, 1, "{stats:?}");
}

/// Archives `orders:0` once (flushing the open hour) with `retention`, recording groups at most
/// every `snapshot_interval`.
async fn archive_with(f: &Fixture, retention: Retention, snapshot_interval: &str) -> PassStats {
    let settings = ArchiveSettings {
        group_snapshot_interval: snapshot_interval.into(),
        ..test_settings()
    };
    let ctx = system_context(f.hot.clone(), f.store.clone(), &settings, "t");
    PartitionWorker::new(ctx, partition("orders", 0, "orders:0", retention))
        .pass(Mode::Flush, None, &CancellationToken::new())
        .await
        .expect("archive")
}

/// What a consumer of each group would get next: the entries after its last delivered id.
fn undelivered(con: &mut redis::Connection, view: &GroupsView) -> BTreeMap<String, Vec<Entry>> {
    let all = xrange_all(con, "orders:0");
    view.groups
        .iter()
        .map(|(name, g)| {
            let last: StreamId = g["last-delivered-id"].parse().expect("id");
            (
                name.clone(),
                all.iter().filter(|e| e.id > last).cloned().collect(),
            )
        })
        .collect()
}

/// Plans the restore of orders/0 into its own key, as of `at`.
async fn plan(f: &Fixture, at: Option<String>) -> streamtier_replayer::Result<JobPlan> {
    let request = ReplayRequest {
        topic: "orders".into(),
        target: Some("{stream}".into()),
        ids: Ids::Original,
        restore_groups: true,
        at,
        ..ReplayRequest::default()
    };
    let sources = [SourcePartition {
        partition: 0,
        stream: "orders:0".into(),
    }];
    let plan = build_plan(&request, IdRange::ALL, 1_000_000, &sources, |_| Ok(()))?;
    prepare(&f.hot, &f.store, plan).await
}

/// Restores orders/0 into its own key, as of `at`.
async fn restore(f: &Fixture, at: Option<String>) -> JobRecord {
    let replayer = f.replayer(1_000_000);
    let plan = plan(f, at).await.expect("plan");
    let record = replayer.create(&plan).await.expect("job");
    let done = replayer.run(record, |_| {}).await.expect("run");
    assert_eq!(done.state, JobState::Succeeded, "{:?}", done.error);
    done
}

/// The ids pending in some group of `view` that are older than the source's first entry (the
/// ones a restore brings back from the archive), in id order.
fn trimmed_pending(view: &GroupsView, source_entries: &[Entry]) -> Vec<String> {
    let first_kept = source_entries[0].id;
    let mut ids: Vec<StreamId> = view
        .pending
        .values()
        .flatten()
        .map(|p| p.0.parse::<StreamId>().expect("id"))
        .filter(|id| *id < first_kept)
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter().map(|id| id.to_string()).collect()
}

fn wipe(con: &mut redis::Connection) {
    let _: () = redis::cmd("FLUSHALL").query(con).expect("FLUSHALL");
}

/// The source's state: three groups on 200 entries, the stalled one's pending entries trimmed.
fn three_groups(con: &mut redis::Connection) -> (Vec<String>, Vec<String>) {
    produce(con, 1, 200);
    create_group(con, "orders:0", b"caught", "0");
    let all = deliver(con, "orders:0", b"caught", "c", 200);
    ack(con, "orders:0", b"caught", &all);
    create_group(con, "orders:0", b"behind", "0");
    let first = deliver(con, "orders:0", b"behind", "c1", 150);
    let second = deliver(con, "orders:0", b"behind", "c2", 30);
    ack(con, "orders:0", b"behind", &first[..140]);
    ack(con, "orders:0", b"behind", &second[..5]);
    create_group(con, "orders:0", b"stalled", "0");
    deliver(con, "orders:0", b"stalled", "s", 5);
    (first, second)
}

#[tokio::test]
async fn a_wiped_redis_gets_its_entries_groups_and_pending_entries_back() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    three_groups(&mut con);
    archive(&f).await;
    let source_entries = xrange_all(&mut con, "orders:0");
    assert_eq!(source_entries.len(), 50, "trimmed past the stalled group");
    let source = groups_view(&mut con, "orders:0");
    let source_next = undelivered(&mut con, &source);
    // The stalled group's pending entries 1-5 are gone from the source, but archived.
    let stalled_pending: Vec<String> = source.pending["stalled"].iter().map(|p| p.0.clone()).collect();
    assert_eq!(stalled_pending, (1..=5).map(id).collect::<Vec<_>>());

    wipe(&mut con);
    let done = restore(&f, None).await;
    let restored = &done.partitions[0].restore.as_ref().expect("a restore");
    assert_eq!(
        (
            restored.groups_restored,
            restored.pending_restored,
            restored.pending_missing
        ),
        (Some(3), 40, 0),
        "{restored:?}"
    );

    let view = groups_view(&mut con, "orders:0");
    assert_eq!(view.groups, source.groups, "XINFO GROUPS");
    assert_eq!(
        view.consumers, source.consumers,
        "XINFO CONSUMERS (names, pending)"
    );
    assert_eq!(view.pending, source.pending, "XPENDING");
    // The pending entries the source had trimmed (the stalled group's, and the oldest of the
    // behind one's) are back, with their bodies; everything else is the source's window.
    let trimmed_pending = trimmed_pending(&source, &source_entries);
    assert_eq!(
        trimmed_pending.len(),
        15,
        "1-5 (stalled) and 141-150 (behind, c1)"
    );
    let mut counters = source.counters.clone();
    counters.insert("length".into(), (50 + trimmed_pending.len()).to_string());
    assert_eq!(view.counters, counters, "XINFO STREAM counters");
    let entries = xrange_all(&mut con, "orders:0");
    let (back, window) = entries.split_at(trimmed_pending.len());
    assert_eq!(window, &source_entries[..], "the source's window, byte for byte");
    assert_eq!(
        back.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
        trimmed_pending
    );
    assert!(back
        .iter()
        .all(|e| e.fields[0].1 == e.id.ms.saturating_sub(T0).to_string().as_bytes()));

    // XAUTOCLAIM hands out exactly the pending ones, none of them deleted...
    for (group, pending) in &source.pending {
        let reply: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg("orders:0")
            .arg(group.as_bytes())
            .arg("claimer")
            .arg(0)
            .arg("0-0")
            .arg("COUNT")
            .arg(10_000)
            .arg("JUSTID")
            .query(&mut con)
            .expect("XAUTOCLAIM");
        let redis::Value::Array(parts) = reply else {
            panic!("XAUTOCLAIM reply")
        };
        let claimed: Vec<String> = match &parts[1] {
            redis::Value::Array(ids) => ids
                .iter()
                .map(|v| match v {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        };
        let want: Vec<String> = pending.iter().map(|p| p.0.clone()).collect();
        assert_eq!(claimed, want, "XAUTOCLAIM of `{group}`");
        assert_eq!(
            parts[2],
            redis::Value::Array(Vec::new()),
            "deleted ids in `{group}`"
        );
    }

    // ...and each group's consumers get exactly what they had not been delivered: what the source
    // would hand out, and the pending entries it had trimmed that lie after the group's
    // position (back in the stream, so that a claim can hand them out, and new to that group).
    for (group, expected) in &source_next {
        let last: StreamId = source.groups[group]["last-delivered-id"].parse().expect("id");
        let mut want: Vec<String> = trimmed_pending
            .iter()
            .filter(|i| i.parse::<StreamId>().expect("id") > last)
            .cloned()
            .collect();
        want.extend(expected.iter().map(|e| e.id.to_string()));
        let got = deliver(&mut con, "orders:0", group.as_bytes(), "after-restore", 10_000);
        assert_eq!(got, want, "XREADGROUP > of `{group}`");
    }
    // A second restore into the same key is refused before it writes anything.
    let err = plan(&f, None).await.expect_err("an occupied target");
    assert!(
        matches!(err, streamtier_replayer::Error::Occupied { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_restore_at_a_time_brings_back_the_state_of_then() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    let (_, second) = three_groups(&mut con);
    archive(&f).await;
    let then = groups_view(&mut con, "orders:0");
    let then_entries = xrange_all(&mut con, "orders:0");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Later: more entries, the behind group catches up a little, a new group appears.
    produce(&mut con, 201, 260);
    ack(&mut con, "orders:0", b"behind", &second[5..]);
    create_group(&mut con, "orders:0", b"late", "$");
    archive(&f).await;
    assert_ne!(groups_view(&mut con, "orders:0"), then);

    wipe(&mut con);
    let done = restore(&f, Some(at)).await;
    assert!(done.partitions[0]
        .restore
        .as_ref()
        .is_some_and(|r| r.groups_restored == Some(3)));
    let view = groups_view(&mut con, "orders:0");
    assert_eq!(view.groups, then.groups, "groups as they were at `at`");
    assert_eq!(view.pending, then.pending);
    assert_eq!(view.counters["entries-added"], then.counters["entries-added"]);
    assert_eq!(
        view.counters["last-generated-id"],
        then.counters["last-generated-id"]
    );
    let restored = xrange_all(&mut con, "orders:0");
    assert_eq!(
        restored[restored.len() - then_entries.len()..],
        then_entries[..],
        "the window of then, and no entry from after `at`"
    );
    assert_eq!(
        restored.len(),
        then_entries.len() + 15,
        "with the 15 pending entries trimmed then"
    );
}

#[tokio::test]
async fn an_archive_without_snapshots_restores_its_entries_and_says_so() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    produce(&mut con, 1, 120);
    let produced = xrange_all(&mut con, "orders:0");
    // An archive as the archiver wrote it before group snapshots existed.
    let keep_nothing = Retention {
        retain_entries: 0,
        retain_for: Duration::ZERO,
        retain_max_entries: None,
    };
    archive_with(&f, keep_nothing, "0s").await;
    let added = groups_view(&mut con, "orders:0").counters["entries-added"].clone();

    wipe(&mut con);
    let done = restore(&f, None).await;
    let r = done.partitions[0].restore.as_ref().expect("a restore");
    assert!(r.snapshot.is_none() && r.groups_restored == Some(0), "{r:?}");
    assert!(
        r.note.as_deref().is_some_and(|n| n.contains("no group snapshot")),
        "{r:?}"
    );
    assert_eq!(xrange_all(&mut con, "orders:0"), produced);
    let view = groups_view(&mut con, "orders:0");
    assert!(view.groups.is_empty());
    assert_eq!(view.counters["entries-added"], added);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_with_kill_9_resumes_exactly_once() {
    let f = Fixture::new().await;
    let mut con = f.redis.con();
    three_groups(&mut con);
    produce(&mut con, 201, 3000);
    archive_keeping(&f, 2000).await;
    let source = groups_view(&mut con, "orders:0");
    let source_entries = xrange_all(&mut con, "orders:0");
    wipe(&mut con);

    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[replay]\nallowed_targets = [\"orders:*\"]\n\
                 [[topics]]\nname = \"orders\"\nstreams = \"orders:{partition}\"\npartitions = 1\n";
    let config = write_config(dir.path(), &api_config(&f.redis, &f.root, 1, extra));
    let log = dir.path().join("restore.log");
    let mut restore = std::process::Command::new(binary())
        .args(["restore", "--topic", "orders", "--rate-limit", "500", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start restore");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n: u64 = redis::cmd("XLEN").arg("orders:0").query(&mut con).expect("XLEN");
        if n >= 300 {
            break;
        }
        assert!(
            restore.try_wait().expect("try_wait").is_none(),
            "the restore ended early: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(std::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    restore.kill().expect("kill -9");
    restore.wait().expect("reap");
    let written: u64 = redis::cmd("XLEN").arg("orders:0").query(&mut con).expect("XLEN");
    assert!(
        written < source_entries.len() as u64,
        "killed midway ({written} written)"
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let job = text
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .expect("the job id in the log")
        .to_owned();

    // `serve` resumes the job where the cursor says.
    let mut server = Server::start("serve", dir.path(), |port| {
        api_config(&f.redis, &f.root, port, extra)
    })
    .await;
    let deadline = Deadline::secs(120);
    let record = loop {
        let r = server.get_json(&format!("/v1/replays/{job}")).await;
        if r["state"] == "succeeded" {
            break r;
        }
        assert!(r["state"] == "running" || r["state"] == "queued", "{r}");
        server.tick(&deadline, "the restore to finish").await;
    };
    assert_eq!(
        record["partitions"][0]["restore"]["groups_restored"], 3,
        "{record}"
    );
    let view = groups_view(&mut con, "orders:0");
    assert_eq!(
        view.groups, source.groups,
        "groups created once, at their positions"
    );
    assert_eq!(view.pending, source.pending);
    let entries = xrange_all(&mut con, "orders:0");
    assert_eq!(
        entries[entries.len() - source_entries.len()..],
        source_entries[..],
        "exactly once"
    );
    let back = trimmed_pending(&source, &source_entries);
    assert_eq!(
        back.len(),
        40,
        "1-5, 141-150 and 156-180 were pending and trimmed"
    );
    assert_eq!(entries.len(), source_entries.len() + back.len());
    // The command refuses a second restore into the streams it filled: a bad request, exit 2.
    let again = std::process::Command::new(binary())
        .args(["restore", "--topic", "orders", "--config"])
        .arg(&config)
        .output()
        .expect("run restore");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(
        xrange_all(&mut con, "orders:0").len(),
        entries.len(),
        "nothing written"
    );
    let ids: Vec<String> = entries[..back.len()].iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, back);
}

#[tokio::test]
async fn the_groups_step_refuses_before_writing_and_finishes_a_half_done_one() {
    use streamtier_schemas::groups::{ConsumerState, GroupState};
    use streamtier_tiers::hot::RestoreCounters;
    let redis = crate::harness::redis::RedisServer::start();
    let hot = redis.hot().await;
    let mut con = redis.con();
    produce(&mut con, 1, 2);
    let group = GroupState {
        name: "g".into(),
        last_delivered_id: id(1).parse().expect("id"),
        entries_read: Some(1),
        consumers: vec![ConsumerState {
            name: "c".into(),
            pending: 0,
            idle_ms: 0,
        }],
        pending_count: 0,
        pending_truncated: false,
        pending: Vec::new(),
    };
    let counters = |last: u64| RestoreCounters {
        last_generated_id: id(last).parse().expect("id"),
        entries_added: 2,
        max_deleted_id: StreamId::MIN,
    };
    // The stream holds an entry above the last id to set: refused before any group is made.
    let err = hot
        .restore_groups("orders:0", "job", std::slice::from_ref(&group), counters(1))
        .await
        .expect_err("an entry above the last id");
    assert!(err.to_string().contains("restore groups"), "{err}");
    assert!(groups_view(&mut con, "orders:0").groups.is_empty());
    // A group left behind by a step that failed halfway is set again, once.
    create_group(&mut con, "orders:0", b"g", "0");
    let done = hot
        .restore_groups("orders:0", "job", std::slice::from_ref(&group), counters(2))
        .await
        .expect("restore");
    assert_eq!((done.already_done, done.groups), (false, 1));
    let view = groups_view(&mut con, "orders:0");
    assert_eq!(view.groups["g"]["last-delivered-id"], id(1));
    assert_eq!(view.groups["g"]["entries-read"], "1");
    assert_eq!(view.consumers["g"], [("c".to_string(), "0".to_string())]);
    let again = hot
        .restore_groups("orders:0", "job", std::slice::from_ref(&group), counters(2))
        .await
        .expect("a second call");
    assert!(again.already_done);
}
