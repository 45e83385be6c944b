//! The archiver against a real three-primary Redis Cluster: slot routing, scripts, discovery.

use streamtier_tiers::store::{LocalStore, Store};

use crate::harness::archiver::{archive_flush, write_config};
use crate::harness::redis::RedisCluster;
use crate::harness::stream::{archived_entries, xadd, xrange_all};

const PARTITIONS: u32 = 8;
const PER_STREAM: u64 = 40;

/// Fills `orders:0..8` through the cluster and checks that the streams landed on several nodes.
fn fill(cluster: &RedisCluster) {
    let mut con = cluster.con();
    for p in 0..PARTITIONS {
        for i in 0..PER_STREAM {
            let value = format!("{p}-{i}");
            xadd(
                &mut con,
                &format!("orders:{p}"),
                "*",
                &[(b"v", value.as_bytes()), (b"\xff", b"")],
            );
        }
    }
    let holding = cluster
        .nodes
        .iter()
        .filter(|n| redis::cmd("DBSIZE").query::<u64>(&mut n.con()).expect("DBSIZE") > 0)
        .count();
    assert!(
        holding >= 2,
        "the test streams should spread over several primaries"
    );
}

fn run(config_toml: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), config_toml);
    let out = archive_flush(&config, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, stdout)
}

async fn assert_archived(store: &Store) {
    for p in 0..PARTITIONS {
        let values: Vec<String> = archived_entries(store, "orders", p)
            .await
            .iter()
            .map(|e| String::from_utf8(e.fields[0].1.to_vec()).expect("utf-8"))
            .collect();
        let expected: Vec<String> = (0..PER_STREAM).map(|i| format!("{p}-{i}")).collect();
        assert_eq!(values, expected, "partition {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_and_trims_every_partition_on_a_cluster() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("cluster");
    fill(&cluster);
    let archive = tempfile::tempdir().expect("tempdir");
    // `cluster` is left unset: the archiver asks the seed node and finds cluster mode on.
    let toml = format!(
        "[redis]\nurl = \"{}\"\n[store]\nurl = \"{}\"\n[archive]\nmax_object_entries = 15\n\
         [[topics]]\nname = \"orders\"\nstreams = \"orders:{{partition}}\"\npartitions = {PARTITIONS}\n\
         retain_entries = 5\nretain_for = \"0s\"\n",
        cluster.url(),
        archive.path().display()
    );
    let (_dir, stdout) = tokio::task::spawn_blocking(move || run(&toml))
        .await
        .expect("run");
    for p in 0..PARTITIONS {
        assert!(
            stdout.contains(&format!("orders/{p} (orders:{p})")),
            "summary: {stdout}"
        );
    }
    let store = Store::Local(LocalStore::new(archive.path()).expect("local store"));
    assert_archived(&store).await;
    // Trimmed on every primary by the script, down to the five newest entries.
    let mut con = cluster.con();
    for p in 0..PARTITIONS {
        let kept = xrange_all(&mut con, &format!("orders:{p}"));
        assert_eq!(kept.len(), 5, "orders:{p} after trimming");
        assert_eq!(kept[0].fields[0].1.as_ref(), format!("{p}-35").as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_streams_on_every_primary() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .expect("cluster");
    fill(&cluster);
    let archive = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[redis]\nurl = \"{}\"\ncluster = true\n[store]\nurl = \"{}\"\n",
        cluster.url(),
        archive.path().display()
    );
    let (_dir, stdout) = tokio::task::spawn_blocking(move || run(&toml))
        .await
        .expect("run");
    for p in 0..PARTITIONS {
        assert!(
            stdout.contains(&format!("orders/{p} (orders:{p})")),
            "summary: {stdout}"
        );
    }
    assert_archived(&Store::Local(
        LocalStore::new(archive.path()).expect("local store"),
    ))
    .await;
}
