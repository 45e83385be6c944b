//! One object-store suite run against both backends (a local directory and S3 through the
//! in-process sandbox), plus backend-specific tests: multipart, pagination, faults, settings.

use std::time::{Duration, Instant};

use bytes::Bytes;
use streamtier_tiers::store::{
    self, LocalStore, ObjectInfo, PutOutcome, S3Store, Store, StoreSettings, StoreUrl,
};
use streamtier_tiers::{Error, ErrorKind};

use crate::harness::s3::{Fault, S3Sandbox, ATTEMPT_TIMEOUT};

fn local() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::Local(LocalStore::new(dir.path().join("archive")).expect("local store"));
    (dir, store)
}

fn body(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Writes `text` under `key` without metadata.
async fn put(store: &Store, key: &str, text: &str) -> PutOutcome {
    store
        .put_if_absent(key, body(text), &[])
        .await
        .expect("put_if_absent")
}

fn keys(found: &[ObjectInfo]) -> Vec<&str> {
    found.iter().map(|o| o.key.as_str()).collect()
}

fn is_not_found<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::NotFound { .. }))
}

/// Counts logged requests with `method` whose path ends with `suffix`.
fn count(s3: &S3Sandbox, method: &str, suffix: &str) -> usize {
    s3.requests()
        .iter()
        .filter(|(m, p)| m == method && p.ends_with(suffix))
        .count()
}

// --- the shared suite ------------------------------------------------------------------------

async fn put_if_absent_never_replaces(store: &Store) {
    let key = "topic=orders/partition=0/dt=2024-01-01/a.parquet";
    assert_eq!(put(store, key, "first").await, PutOutcome::Created);
    let again = put(store, key, "second, longer").await;
    assert_eq!(again, PutOutcome::AlreadyExists);
    assert_eq!(store.get(key).await.unwrap(), body("first"));
}

async fn concurrent_put_if_absent_creates_once(store: &Store) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put_if_absent("race/x", body(&format!("writer {i}")), &[])
                    .await
            })
        })
        .collect();
    let outcomes: Vec<PutOutcome> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|joined| joined.expect("task").expect("put"))
        .collect();
    let created = outcomes.iter().filter(|o| **o == PutOutcome::Created).count();
    assert_eq!(created, 1, "{outcomes:?}");
    let stored = store.get("race/x").await.unwrap();
    assert!(stored.starts_with(b"writer "), "{stored:?}");
}

async fn reads_whole_ranges_and_suffixes(store: &Store) {
    let key = "r/obj";
    put(store, key, "0123456789").await;
    assert_eq!(store.get(key).await.unwrap(), body("0123456789"));
    assert_eq!(store.get_range(key, 2..5).await.unwrap(), body("234"));
    assert_eq!(
        store.get_range(key, 8..100).await.unwrap(),
        body("89"),
        "end is cut at the end"
    );
    for bad in [5..5, 10..12, 50..60] {
        let result = store.get_range(key, bad.clone()).await;
        assert!(
            matches!(result, Err(Error::InvalidRange { .. })),
            "{bad:?}: {result:?}"
        );
    }
    assert_eq!(store.get_suffix(key, 3).await.unwrap(), body("789"));
    assert_eq!(store.get_suffix(key, 100).await.unwrap(), body("0123456789"));
    assert_eq!(store.get_suffix(key, 0).await.unwrap(), Bytes::new());
    store.put_if_absent("r/empty", Bytes::new(), &[]).await.unwrap();
    assert_eq!(store.get("r/empty").await.unwrap(), Bytes::new());
    assert_eq!(store.get_suffix("r/empty", 8).await.unwrap(), Bytes::new());
    assert_eq!(store.head("r/empty").await.unwrap().size, 0);
}

async fn head_reports_size_and_metadata(store: &Store, keeps_metadata: bool) {
    let metadata = vec![
        ("streamtier-last-id".to_owned(), "1700000000000-5".to_owned()),
        ("streamtier-first-id".to_owned(), "1700000000000-0".to_owned()),
    ];
    store
        .put_if_absent("h/obj", body("abcdef"), &metadata)
        .await
        .unwrap();
    let head = store.head("h/obj").await.unwrap();
    assert_eq!((head.key.as_str(), head.size), ("h/obj", 6));
    if keeps_metadata {
        let mut sorted = metadata;
        sorted.sort();
        assert_eq!(head.metadata, sorted);
    } else {
        assert!(head.metadata.is_empty());
    }
}

async fn lists_in_byte_order_with_prefix_marker_and_limit(store: &Store) {
    // '-' < '.' < '/' in bytes, unlike a directory walk's order.
    let all = ["a-b", "a.b", "a/b", "a/c/d", "ab", "b/x/y"];
    for key in all.iter().rev() {
        put(store, key, key).await;
    }
    let listed = store.list("", None, None).await.unwrap();
    assert_eq!(keys(&listed), all);
    assert_eq!(
        listed[3],
        ObjectInfo {
            key: "a/c/d".into(),
            size: 5
        }
    );
    assert_eq!(
        keys(&store.list("a/", None, None).await.unwrap()),
        ["a/b", "a/c/d"]
    );
    assert_eq!(keys(&store.list("a", None, None).await.unwrap()), &all[..5]);
    assert_eq!(keys(&store.list("a/c", None, None).await.unwrap()), ["a/c/d"]);
    assert_eq!(keys(&store.list("b/x/", None, None).await.unwrap()), ["b/x/y"]);
    assert!(store.list("nothing/", None, None).await.unwrap().is_empty());
    assert_eq!(keys(&store.list("", Some("a.b"), None).await.unwrap()), &all[2..]);
    assert_eq!(
        keys(&store.list("", Some("a/bb"), None).await.unwrap()),
        &all[3..]
    );
    assert_eq!(
        keys(&store.list("", Some("a/c"), Some(2)).await.unwrap()),
        ["a/c/d", "ab"]
    );
    assert_eq!(
        keys(&store.list("a", Some("a/b"), Some(1)).await.unwrap()),
        ["a/c/d"]
    );
    assert_eq!(keys(&store.list("", None, Some(2)).await.unwrap()), &all[..2]);
    assert!(store.list("", None, Some(0)).await.unwrap().is_empty());
    assert!(store.list("", Some("b/x/y"), None).await.unwrap().is_empty());
}

async fn lists_prefixes_one_level_down(store: &Store) {
    for key in [
        "topic=b/partition=0/dt=2024-01-01/x",
        "topic=a/partition=10/_gaps/g",
        "topic=a/partition=2/dt=2024-01-02/hour=03/y",
        "topic=a/partition=2/dt=2024-01-01/z",
        "topic=a/file",
        "topic=a-b/k",
        "topics/k",
        "top",
    ] {
        put(store, key, "x").await;
    }
    let listed = |prefix: &'static str| {
        let store = store.clone();
        async move { store.list_prefixes(prefix).await.expect("list_prefixes") }
    };
    assert_eq!(
        listed("").await,
        ["topic=a-b/", "topic=a/", "topic=b/", "topics/"]
    );
    assert_eq!(listed("topic=").await, ["topic=a-b/", "topic=a/", "topic=b/"]);
    assert_eq!(
        listed("topic=a/").await,
        ["topic=a/partition=10/", "topic=a/partition=2/"],
        "keys at the level itself are not prefixes"
    );
    assert_eq!(
        listed("topic=a/partition=2/").await,
        [
            "topic=a/partition=2/dt=2024-01-01/",
            "topic=a/partition=2/dt=2024-01-02/"
        ]
    );
    assert!(listed("topic=c/").await.is_empty());
    assert!(listed("top").await.iter().all(|p| p.ends_with('/')));
    // A prefix whose keys were all deleted is no prefix.
    store.delete("topic=a/partition=10/_gaps/g").await.unwrap();
    assert_eq!(listed("topic=a/").await, ["topic=a/partition=2/"]);
    assert!(store.list_prefixes("../").await.is_err());
}

async fn delete_removes_and_tolerates_missing(store: &Store) {
    put(store, "d/obj", "x").await;
    store.delete("d/obj").await.unwrap();
    assert!(is_not_found(store.get("d/obj").await));
    store.delete("d/obj").await.unwrap();
    store.delete("d/never-existed").await.unwrap();
    let recreated = put(store, "d/obj", "y").await;
    assert_eq!(recreated, PutOutcome::Created);
}

async fn missing_objects_are_not_found(store: &Store) {
    put(store, "m/dir/obj", "x").await;
    assert!(
        is_not_found(store.get("m/dir").await),
        "a prefix is not an object"
    );
    assert!(is_not_found(store.head("m/dir").await));
    assert!(is_not_found(store.get("m/missing").await));
    assert!(is_not_found(store.get_range("m/missing", 0..4).await));
    assert!(is_not_found(store.get_suffix("m/missing", 4).await));
    let err = store.head("m/missing").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "object `m/missing` not found");
}

async fn unsafe_keys_are_rejected(store: &Store) {
    for key in ["", "/abs", "../up", "a//b", "a/./b", "a/", ".streamtier-tmp/x"] {
        let err = store.put_if_absent(key, body("x"), &[]).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{key:?}: {err}");
        assert!(store.get(key).await.is_err());
    }
    assert!(store.list("../", None, None).await.is_err());
    store.check().await.unwrap();
}

macro_rules! both_backends {
    ($($suite:ident => $local:ident, $s3:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $local() {
            let (_dir, store) = local();
            $suite(&store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $s3() {
            let s3 = S3Sandbox::start().await;
            $suite(&s3.store("archive")).await;
        }
    )*};
}

both_backends! {
    put_if_absent_never_replaces => store_local_put_if_absent_never_replaces, store_s3_put_if_absent_never_replaces;
    concurrent_put_if_absent_creates_once => store_local_concurrent_put_if_absent_creates_once, store_s3_concurrent_put_if_absent_creates_once;
    reads_whole_ranges_and_suffixes => store_local_reads_whole_ranges_and_suffixes, store_s3_reads_whole_ranges_and_suffixes;
    lists_in_byte_order_with_prefix_marker_and_limit => store_local_lists_in_byte_order_with_prefix_marker_and_limit, store_s3_lists_in_byte_order_with_prefix_marker_and_limit;
    lists_prefixes_one_level_down => store_local_lists_prefixes_one_level_down, store_s3_lists_prefixes_one_level_down;
    delete_removes_and_tolerates_missing => store_local_delete_removes_and_tolerates_missing, store_s3_delete_removes_and_tolerates_missing;
    missing_objects_are_not_found => store_local_missing_objects_are_not_found, store_s3_missing_objects_are_not_found;
    unsafe_keys_are_rejected => store_local_unsafe_keys_are_rejected, store_s3_unsafe_keys_are_rejected;
}

#[tokio::test]
async fn store_local_head_reports_size_without_metadata() {
    let (_dir, store) = local();
    head_reports_size_and_metadata(&store, false).await;
}

#[tokio::test]
async fn store_s3_head_round_trips_user_metadata() {
    let s3 = S3Sandbox::start().await;
    head_reports_size_and_metadata(&s3.store("archive"), true).await;
}

// --- local only ------------------------------------------------------------------------------

#[tokio::test]
async fn store_local_never_lists_temporary_files() {
    let (dir, store) = local();
    put(&store, "t/real", "x").await;
    let tmp = dir.path().join("archive/.streamtier-tmp");
    std::fs::write(tmp.join("left-over.tmp"), b"partial").unwrap();
    std::fs::create_dir_all(tmp.join("t")).unwrap();
    std::fs::write(tmp.join("t/nested"), b"partial").unwrap();
    assert_eq!(keys(&store.list("", None, None).await.unwrap()), ["t/real"]);
    assert_eq!(
        keys(&store.list(".streamtier-tmp", None, None).await.unwrap()),
        Vec::<&str>::new()
    );
    let tmp_entries = std::fs::read_dir(&tmp).unwrap().count();
    assert_eq!(tmp_entries, 2, "a successful put leaves no temporary file behind");
}

#[tokio::test]
async fn store_local_creates_its_root_and_describes_a_file_url() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("deep/new/archive");
    let store = Store::Local(LocalStore::new(&root).unwrap());
    assert!(root.is_dir());
    let canonical = root.canonicalize().unwrap();
    assert_eq!(store.describe(), format!("file://{}", canonical.display()));
    store.check().await.unwrap();
}

// --- S3 only ---------------------------------------------------------------------------------

#[tokio::test]
async fn store_s3_prefixes_isolate_stores_in_one_bucket() {
    let s3 = S3Sandbox::start().await;
    let (a, b) = (s3.store("tenant-a"), s3.store("/tenant-b/"));
    put(&a, "k", "a").await;
    assert_eq!(put(&b, "k", "b").await, PutOutcome::Created);
    assert_eq!(keys(&a.list("", None, None).await.unwrap()), ["k"]);
    assert_eq!(b.get("k").await.unwrap(), body("b"));
    let root = s3.store("");
    assert_eq!(
        keys(&root.list("", None, None).await.unwrap()),
        ["tenant-a/k", "tenant-b/k"]
    );
    assert_eq!(a.describe(), format!("s3://{}/tenant-a", s3.bucket()));
    assert_eq!(root.describe(), format!("s3://{}", s3.bucket()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_s3_lists_across_pages() {
    let s3 = S3Sandbox::start().await;
    let store = s3.store("p");
    let all: Vec<String> = (0..1100).map(|i| format!("k/{i:05}")).collect();
    futures::future::try_join_all(all.chunks(69).map(|chunk| {
        let store = store.clone();
        async move {
            for key in chunk {
                store.put_if_absent(key, Bytes::from_static(b"x"), &[]).await?;
            }
            Ok::<_, Error>(())
        }
    }))
    .await
    .unwrap();
    let listed = store.list("k/", None, None).await.unwrap();
    assert_eq!(keys(&listed), all);
    let bucket_path = format!("/{}", s3.bucket());
    let lists = s3
        .requests()
        .into_iter()
        .filter(|(m, p)| m == "GET" && p.trim_end_matches('/') == bucket_path);
    assert_eq!(lists.count(), 2, "two pages of at most 1000");

    let root = Store::S3(s3.s3_store("").with_list_page_size(7));
    let dirs: Vec<String> = (0..20).map(|i| format!("p/d{i:02}/")).collect();
    for dir in &dirs {
        put(&root, &format!("{dir}x"), "x").await;
    }
    assert_eq!(
        root.list_prefixes("p/d").await.unwrap(),
        dirs,
        "prefixes across pages"
    );

    let small = Store::S3(s3.s3_store("p").with_list_page_size(7));
    let page = small.list("k/000", Some("k/00012"), Some(20)).await.unwrap();
    assert_eq!(keys(&page), &all[13..33]);
    let tail = small.list("k/", Some("k/01090"), None).await.unwrap();
    assert_eq!(keys(&tail), &all[1091..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_s3_multipart_round_trips_a_20_mib_body() {
    let s3 = S3Sandbox::start().await;
    let store = s3.store("mp");
    let big: Bytes = (0..20 * 1024 * 1024u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let meta = [("streamtier-rows".to_owned(), "42".to_owned())];
    assert_eq!(
        store.put_if_absent("big", big.clone(), &meta).await.unwrap(),
        PutOutcome::Created
    );
    assert_eq!(count(&s3, "PUT", "/mp/big"), 3, "three 8 MiB parts");
    let head = store.head("big").await.unwrap();
    assert_eq!((head.size, head.metadata), (big.len() as u64, meta.to_vec()));
    assert!(store.get("big").await.unwrap() == big);
    assert_eq!(
        store.get_suffix("big", 8).await.unwrap(),
        big.slice(big.len() - 8..)
    );

    // A second multipart write of the same key is refused at completion, then aborted.
    let other = Bytes::from(vec![7u8; 17 * 1024 * 1024]);
    assert_eq!(
        store.put_if_absent("big", other, &[]).await.unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(
        count(&s3, "DELETE", "/mp/big"),
        1,
        "the refused upload is aborted"
    );
    assert!(store.get("big").await.unwrap() == big);
}

#[tokio::test]
async fn store_s3_throttled_puts_are_retried_by_the_sdk() {
    let s3 = S3Sandbox::start().await;
    let store = s3.store("f");
    s3.faults().inject("PUT", "/f/slow", Fault::Status(503), 2);
    assert_eq!(put(&store, "slow", "x").await, PutOutcome::Created);
    assert_eq!(count(&s3, "PUT", "/f/slow"), 3);
    assert_eq!(store.get("slow").await.unwrap(), body("x"));
}

#[tokio::test]
async fn store_s3_persistent_errors_give_up_after_max_attempts() {
    let s3 = S3Sandbox::start().await;
    let store = s3.store("f");
    put(&store, "down", "x").await;
    s3.faults().inject("GET", "/f/down", Fault::Status(500), 100);
    let err = store.get("down").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(matches!(&err, Error::S3 { op: "get_object", .. }), "{err:?}");
    assert_eq!(count(&s3, "GET", "/f/down"), 8, "S3_MAX_ATTEMPTS-like budget");
}

#[tokio::test]
async fn store_s3_conditional_write_conflicts_are_retried() {
    let s3 = S3Sandbox::start().await;
    let store = s3.store("f");
    s3.faults().inject("PUT", "/f/contended", Fault::Status(409), 2);
    let outcome = put(&store, "contended", "x").await;
    assert_eq!(outcome, PutOutcome::Created);
    assert_eq!(count(&s3, "PUT", "/f/contended"), 3);
}

#[tokio::test]
async fn store_s3_lost_put_reply_reads_as_already_exists() {
    let s3 = S3Sandbox::start().await;
    let store = s3.store("f");
    s3.faults().inject("PUT", "/f/lost", Fault::DropAfterWrite, 1);
    let outcome = put(&store, "lost", "written once").await;
    assert_eq!(
        outcome,
        PutOutcome::AlreadyExists,
        "the SDK's retry meets its own write"
    );
    assert_eq!(count(&s3, "PUT", "/f/lost"), 2);
    assert_eq!(store.get("lost").await.unwrap(), body("written once"));
}

#[tokio::test]
async fn store_s3_slow_replies_time_out_and_are_retried() {
    let s3 = S3Sandbox::start().await;
    let store = s3.store("f");
    put(&store, "slow", "x").await;
    s3.faults().inject(
        "GET",
        "/f/slow",
        Fault::Delay(ATTEMPT_TIMEOUT + Duration::from_secs(2)),
        1,
    );
    let started = Instant::now();
    assert_eq!(store.get("slow").await.unwrap(), body("x"));
    assert!(started.elapsed() >= ATTEMPT_TIMEOUT);
    assert_eq!(count(&s3, "GET", "/f/slow"), 2);
}

#[tokio::test]
async fn store_s3_check_fails_for_a_missing_bucket() {
    let s3 = S3Sandbox::start().await;
    s3.store("").check().await.unwrap();
    let missing = Store::S3(S3Store::new(s3.client(), "no-such-bucket", ""));
    let err = missing.check().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

// --- settings --------------------------------------------------------------------------------

fn settings(url: &str) -> StoreSettings {
    StoreSettings {
        url: url.into(),
        ..StoreSettings::default()
    }
}

#[test]
fn store_settings_parse_url_accepts_and_rejects() {
    let local = |p: &str| StoreUrl::Local(p.into());
    let s3 = |b: &str, p: &str| StoreUrl::S3 {
        bucket: b.into(),
        prefix: p.into(),
    };
    let accepted = [
        ("./archive", local("./archive")),
        ("relative/dir", local("relative/dir")),
        ("/abs/dir", local("/abs/dir")),
        ("file:///abs/dir", local("/abs/dir")),
        ("s3://bucket", s3("bucket", "")),
        ("s3://bucket/", s3("bucket", "")),
        (
            "s3://my.bucket-1/optional/prefix/",
            s3("my.bucket-1", "optional/prefix"),
        ),
    ];
    for (url, expected) in accepted {
        assert_eq!(settings(url).parse_url().unwrap(), expected, "{url}");
    }
    let rejected = "http://x s3:// s3:///prefix file://relative gs://b s3://UPPER s3://ab \
                    s3://bucket_x s3://b..b/p s3://bucket/a//b";
    for url in std::iter::once("").chain(rejected.split_whitespace()) {
        match settings(url).parse_url() {
            Err(Error::InvalidSettings { key: "store.url", .. }) => {}
            other => panic!("{url:?} should be rejected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn store_connect_builds_the_store_the_url_names() {
    let dir = tempfile::tempdir().unwrap();
    let local = store::connect(&settings(&dir.path().join("a").display().to_string())).await;
    assert!(matches!(local, Ok(Store::Local(_))), "{local:?}");
    local.unwrap().check().await.unwrap();

    let mut settings = settings("s3://archive-bucket/streams");
    settings.endpoint = Some("http://127.0.0.1:9".into());
    settings.region = Some("eu-west-1".into());
    settings.force_path_style = true;
    let s3 = store::connect(&settings).await.unwrap();
    assert_eq!(s3.describe(), "s3://archive-bucket/streams");

    settings.endpoint = Some("127.0.0.1:9".into());
    let err = store::connect(&settings).await.unwrap_err();
    assert!(
        err.to_string().starts_with("invalid setting `store.endpoint`"),
        "{err}"
    );
}
