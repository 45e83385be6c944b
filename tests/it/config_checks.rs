//! The configuration as the binary sees it: which environment variables are settings, store
//! settings refused before anything is touched, and retention that reaches back before 1970.

use std::path::Path;
use std::process::Output;

use crate::harness::archiver::{archive_flush, write_config};
use crate::harness::redis::RedisServer;
use crate::harness::stream::{archived_entries, xadd, xrange_all};
use streamtier_tiers::store::{LocalStore, Store};

/// What Kubernetes injects into every pod of a namespace with a Service named `streamtier`.
const SERVICE_LINKS: &[(&str, &str)] = &[
    ("STREAMTIER_PORT", "tcp://10.0.0.1:8080"),
    ("STREAMTIER_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
    ("STREAMTIER_PORT_8080_TCP_ADDR", "10.0.0.1"),
    ("STREAMTIER_PORT_8080_TCP_PORT", "8080"),
    ("STREAMTIER_PORT_8080_TCP_PROTO", "tcp"),
    ("STREAMTIER_SERVICE_HOST", "10.0.0.1"),
    ("STREAMTIER_SERVICE_PORT", "8080"),
    ("STREAMTIER_SERVICE_PORT_HTTP", "8080"),
];

fn topic_config(store: &Path, extra: &str) -> String {
    format!(
        "[store]\nurl = \"{}\"\n[[topics]]\nname = \"k\"\nstreams = \"k:{{partition}}\"\npartitions = 2\n{extra}",
        store.display()
    )
}

/// `n` entries over the streams `k:0` and `k:1`.
fn produce(con: &mut redis::Connection, n: u64) {
    for i in 0..n {
        xadd(
            con,
            &format!("k:{}", i % 2),
            "*",
            &[(b"i", i.to_string().as_bytes())],
        );
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn kubernetes_service_links_are_ignored_and_typos_in_known_sections_refused() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    produce(&mut con, 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let config = write_config(dir.path(), &topic_config(&archive, ""));
    let url = redis.url();
    let mut env: Vec<(&str, &str)> = SERVICE_LINKS.to_vec();
    env.push(("STREAMTIER_REDIS__URL", &url));
    let out = archive_flush(&config, &env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("k/1 (k:1)"));

    // A known section with a key that is not one is a typo worth stopping for.
    env.push(("STREAMTIER_REDIS__URLL", &url));
    let out = archive_flush(&config, &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`STREAMTIER_REDIS__URLL`"), "{err}");
    env.pop();

    // A value nested deeper than figment's parser can recurse: refused, not a stack overflow.
    let deep = "[".repeat(100_000);
    env.push(("STREAMTIER_ARCHIVE__CLOSE_GRACE", &deep));
    let out = archive_flush(&config, &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("STREAMTIER_ARCHIVE__CLOSE_GRACE") && err.contains("nested too deeply"),
        "{err}"
    );
}

#[test]
fn bad_store_settings_exit_2_naming_the_key_before_redis_is_tried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").expect("write file");
    // Nothing listens there: a run that got as far as Redis would fail differently.
    let redis = "[redis]\nurl = \"redis://127.0.0.1:1\"\n";
    let s3 = "url = \"s3://bucket/p\"\n";
    let cases: Vec<(String, &str, String)> = vec![
        (
            format!("[store]\nurl = \"{}\"\n", file.display()),
            "store.url",
            format!("`{}` is a file, not a directory", file.display()),
        ),
        (
            format!("[store]\nurl = \"file://{}/sub/archive\"\n", file.display()),
            "store.url",
            "cannot be created".into(),
        ),
        // /proc takes no new directory, even from root: found when the store is built.
        (
            "[store]\nurl = \"/proc/streamtier-archive\"\n".into(),
            "store.url",
            "/proc/streamtier-archive".into(),
        ),
        (
            format!("[store]\n{s3}endpoint = \"http://\"\n"),
            "store.endpoint",
            "`http://`".into(),
        ),
        (
            format!("[store]\n{s3}endpoint = \"minio:9000\"\n"),
            "store.endpoint",
            "`minio:9000`".into(),
        ),
        (
            format!("[store]\n{s3}region = \"us east 1\"\n"),
            "store.region",
            "`us east 1`".into(),
        ),
        (
            format!("[store]\n{s3}spool_dir = \"{}/spool\"\n", file.display()),
            "store.spool_dir",
            "cannot be created".into(),
        ),
        (
            "[store]\nurl = \"gs://bucket\"\n".into(),
            "store.url",
            "`gs`".into(),
        ),
    ];
    for (store, key, reason) in cases {
        let config = write_config(dir.path(), &format!("{redis}{store}"));
        let out = archive_flush(&config, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{store}: {err}");
        assert!(err.contains(key) && err.contains(&reason), "{store}: {err}");
        assert!(!err.to_lowercase().contains("redis"), "{store}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_for_longer_than_since_1970_archives_and_keeps_everything_by_time() {
    let redis = RedisServer::start();
    let mut con = redis.con();
    produce(&mut con, 100);
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let extra = "retain_entries = 10\nretain_for = \"100y\"\nretain_max_entries = 20\n";
    let config = write_config(dir.path(), &topic_config(&archive, extra));
    let url = redis.url();
    let out = tokio::task::spawn_blocking(move || {
        archive_flush(&config, &[("STREAMTIER_REDIS__URL", url.as_str())])
    })
    .await
    .expect("run streamtier");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{err}");
    // The trim used to fail with a raw script error (a time bound of `0-0`), and the retry
    // then reported nothing archived.
    assert!(!err.contains("failed"), "{err}");
    for p in 0..2 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("k/{p} ")))
            .unwrap_or_else(|| panic!("no summary line for k/{p}: {stdout}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        // partition (stream) entries objects bytes trimmed status
        assert_eq!(
            (cols[2], cols[3], cols[5], cols[6]),
            ("50", "1", "0", "ok"),
            "{line}"
        );
    }
    let store = Store::Local(LocalStore::new(&archive).expect("store"));
    for p in 0..2u32 {
        assert_eq!(archived_entries(&store, "k", p).await.len(), 50);
        // Every entry is younger than a hundred years: time keeps them all.
        assert_eq!(xrange_all(&mut con, &format!("k:{p}")).len(), 50);
    }
}
