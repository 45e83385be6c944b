//! The disaster drill without `[[topics]]`: topics found by discovery are archived, Redis is
//! flushed, and the topics are still found from the archive alone (their partitions and the
//! stream keys the objects record), by `restore`, `replay`, `read` and the topic routes.

use std::path::Path;
use std::process::{Command, Output};

use streamtier_schemas::Entry;

use crate::harness::archiver::{archive_flush, binary, write_config};
use crate::harness::groups::{create_group, groups_view};
use crate::harness::http::{api_config, Server};
use crate::harness::redis::RedisServer;
use crate::harness::stream::{xadd, xrange_all};

const T0: u64 = 1_700_000_000_000;
const ALLOWED: &str = "[replay]\nallowed_targets = [\"orders:*\", \"audit\", \"copy:*\"]\n";

/// Adds `n` entries to `key`, one a millisecond from `T0`.
fn produce(con: &mut redis::Connection, key: &str, n: u64) -> Vec<Entry> {
    for i in 0..n {
        xadd(
            con,
            key,
            &format!("{}-0", T0 + i),
            &[(b"n", i.to_string().as_bytes())],
        );
    }
    xrange_all(con, key)
}

fn wipe(con: &mut redis::Connection) {
    let _: () = redis::cmd("FLUSHALL").query(con).expect("FLUSHALL");
}

fn streamtier(config: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .output()
        .expect("run streamtier")
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Archives `orders:0` (30 entries, a group), `orders:1` (20) and `audit` (10) with
/// `archive --once --flush`, then flushes Redis; returns what was produced.
fn archive_and_flush(redis: &RedisServer, config: &Path) -> [Vec<Entry>; 3] {
    let mut con = redis.con();
    let produced = [
        produce(&mut con, "orders:0", 30),
        produce(&mut con, "orders:1", 20),
        produce(&mut con, "audit", 10),
    ];
    create_group(&mut con, "orders:0", b"billing", "0");
    assert_ok(&archive_flush(config, &[]), "archive --once --flush");
    wipe(&mut con);
    produced
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_topics_are_found_in_the_archive_once_redis_lost_them() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("archive");
    let config = write_config(dir.path(), &api_config(&redis, &root, 1, ALLOWED));
    let [orders0, orders1, audit] = archive_and_flush(&redis, &config);
    let mut con = redis.con();

    // `read` finds partition 1 of `orders` with no key in Redis.
    let read = streamtier(&config, &["read", "--topic", "orders", "--partition", "1"]);
    assert_ok(&read, "read");
    let lines = String::from_utf8_lossy(&read.stdout).lines().count();
    assert_eq!(lines, orders1.len(), "every archived entry of orders/1");

    // `replay` reads the archive into another key.
    let replay = streamtier(
        &config,
        &[
            "replay",
            "--topic",
            "orders",
            "--partitions",
            "1",
            "--target",
            "copy:{partition}",
        ],
    );
    assert_ok(&replay, "replay");
    let fields = |entries: &[Entry]| entries.iter().map(|e| e.fields.clone()).collect::<Vec<_>>();
    assert_eq!(
        fields(&xrange_all(&mut con, "copy:1")),
        fields(&orders1),
        "new ids, same entries"
    );

    // The topic routes list the archived topics and partitions with their stream keys.
    {
        let server = Server::start("serve", dir.path(), |port| {
            api_config(&redis, &root, port, ALLOWED)
        })
        .await;
        let list = server.get_json("/v1/topics").await;
        let topics: Vec<(String, u64)> = list["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .map(|t| {
                (
                    t["topic"].as_str().unwrap_or("").to_owned(),
                    t["partitions"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        for want in [("audit".to_string(), 1), ("orders".to_string(), 2)] {
            assert!(topics.contains(&want), "{want:?} in {list}");
        }
        let orders = server.get_json("/v1/topics/orders").await;
        let parts: Vec<(u64, String, u64)> = orders["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|p| {
                (
                    p["partition"].as_u64().unwrap_or(99),
                    p["stream"].as_str().unwrap_or("").to_owned(),
                    p["archive"]["entries"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(
            parts,
            [(0, "orders:0".to_string(), 30), (1, "orders:1".to_string(), 20)],
            "{orders}"
        );
        let body = serde_json::json!({"topic": "orders", "target": "{stream}", "ids": "original",
            "restore_groups": true, "dry_run": true});
        let dry = server.post("/v1/replays", &body).await;
        assert_eq!(dry.status, 200, "{}", dry.text());
        let dry = dry.json();
        assert_eq!(dry["restore_entries"], orders0.len() + orders1.len(), "{dry}");
    }

    // `restore` brings the topics back into their own keys, groups included; its dry run says
    // how many entries it writes.
    let dry = streamtier(&config, &["restore", "--topic", "orders", "--dry-run"]);
    assert_ok(&dry, "restore --dry-run");
    let text = String::from_utf8_lossy(&dry.stdout);
    for n in [orders0.len(), orders1.len()] {
        assert!(text.contains(&format!("restore writes {n} entries")), "{text}");
    }
    assert_ok(
        &streamtier(&config, &["restore", "--topic", "orders"]),
        "restore orders",
    );
    assert_ok(
        &streamtier(&config, &["restore", "--topic", "audit"]),
        "restore audit",
    );
    assert_eq!(xrange_all(&mut con, "orders:0"), orders0);
    assert_eq!(xrange_all(&mut con, "orders:1"), orders1);
    assert_eq!(xrange_all(&mut con, "audit"), audit);
    let groups = groups_view(&mut con, "orders:0").groups;
    assert_eq!(groups.keys().collect::<Vec<_>>(), ["billing"], "{groups:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_topic_restores_from_the_archive_alone() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("archive");
    let topics = format!(
        "{ALLOWED}[[topics]]\nname = \"orders\"\nstreams = \"orders:{{partition}}\"\npartitions = 2\n"
    );
    let config = write_config(dir.path(), &api_config(&redis, &root, 1, &topics));
    // `audit` is not configured, so it is not archived: only the configured topic is.
    let [orders0, orders1, _] = archive_and_flush(&redis, &config);
    let mut con = redis.con();
    let read = streamtier(&config, &["read", "--topic", "orders", "--partition", "0"]);
    assert_ok(&read, "read");
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).lines().count(),
        orders0.len()
    );
    assert_ok(&streamtier(&config, &["restore", "--topic", "orders"]), "restore");
    assert_eq!(xrange_all(&mut con, "orders:0"), orders0);
    assert_eq!(xrange_all(&mut con, "orders:1"), orders1);
}
