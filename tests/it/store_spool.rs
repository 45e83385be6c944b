//! Spooled writes on both backends: an object encoded into a store's spool file is stored
//! create-if-absent like an in-memory body, streamed (S3) or linked (local), and the file is
//! gone afterwards whatever the outcome.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use streamtier_tiers::store::{LocalStore, PutOutcome, SpoolFile, Store};

use crate::harness::s3::{Fault, S3Sandbox};

/// A spool file of `store` holding `body`.
async fn spooled(store: &Store, body: &[u8]) -> SpoolFile {
    let mut spool = store.spool().await.expect("spool");
    spool.write_all(body).expect("write spool");
    spool.flush().expect("flush spool");
    assert_eq!(spool.len(), body.len() as u64);
    spool
}

/// Stores `body` through a spool file; checks that the file is removed.
async fn put_spooled(store: &Store, key: &str, body: &[u8], meta: &[(String, String)]) -> PutOutcome {
    let spool = spooled(store, body).await;
    let path = spool.path().to_owned();
    let outcome = store
        .put_spooled_if_absent(key, spool, meta)
        .await
        .expect("put_spooled_if_absent");
    assert!(!path.exists(), "spool file {} left behind", path.display());
    outcome
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

async fn spooled_put_creates_once(store: &Store) {
    let key = "topic=t/partition=0/dt=2024-01-01/hour=00/a.parquet";
    let first = pattern(300_000, 0);
    assert_eq!(put_spooled(store, key, &first, &[]).await, PutOutcome::Created);
    assert_eq!(store.get(key).await.unwrap(), first);
    let second = pattern(1000, 1);
    assert_eq!(
        put_spooled(store, key, &second, &[]).await,
        PutOutcome::AlreadyExists
    );
    assert_eq!(store.get(key).await.unwrap(), first, "never replaced");
    // An in-memory write of the same key sees the spooled object, and the other way round.
    let outcome = store.put_if_absent(key, second.clone(), &[]).await.unwrap();
    assert_eq!(outcome, PutOutcome::AlreadyExists);
    store.put_if_absent("b", second.clone(), &[]).await.unwrap();
    assert_eq!(
        put_spooled(store, "b", &first, &[]).await,
        PutOutcome::AlreadyExists
    );
    assert_eq!(store.get("b").await.unwrap(), second);
    // Unsafe keys are refused before anything is stored.
    let spool = spooled(store, b"x").await;
    assert!(store.put_spooled_if_absent("../x", spool, &[]).await.is_err());
    assert_eq!(store.list("", None, None).await.unwrap().len(), 2);
}

async fn concurrent_spooled_puts_create_once(store: &Store) {
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let body = pattern(50_000 + usize::from(i), i);
                put_spooled(&store, "race/x", &body, &[]).await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.expect("task") == PutOutcome::Created);
    }
    assert_eq!(created, 1);
    let stored = store.get("race/x").await.unwrap();
    let seed = (stored.len() - 50_000) as u8;
    assert_eq!(stored, pattern(stored.len(), seed), "one writer's body, whole");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_local_spooled_put_creates_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Local(LocalStore::new(dir.path()).unwrap());
    spooled_put_creates_once(&store).await;
    concurrent_spooled_puts_create_once(&store).await;
    // Spool files live in the store's temporary directory (linked, not copied), and none is left.
    let spool = store.spool().await.unwrap();
    assert_eq!(
        spool.path().parent(),
        Some(dir.path().join(".streamtier-tmp").as_path())
    );
    drop(spool);
    let left = std::fs::read_dir(dir.path().join(".streamtier-tmp"))
        .unwrap()
        .count();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_s3_spooled_put_creates_once() {
    let s3 = S3Sandbox::start().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let store = Store::S3(s3.s3_store("sp").with_spool_dir(spool_dir.path()));
    spooled_put_creates_once(&store).await;
    concurrent_spooled_puts_create_once(&store).await;
    assert_eq!(std::fs::read_dir(spool_dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_s3_spooled_bodies_stream_in_parts_and_survive_retries() {
    let s3 = S3Sandbox::start().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let store = Store::S3(s3.s3_store("sp").with_spool_dir(spool_dir.path()));
    let count = |method: &str, suffix: &str| {
        s3.requests()
            .iter()
            .filter(|(m, p)| m == method && p.ends_with(suffix))
            .count()
    };

    // Over the multipart threshold: three 8 MiB parts read from the file, then completed.
    let big = pattern(20 * 1024 * 1024 + 5, 3);
    let meta = [("streamtier-rows".to_owned(), "7".to_owned())];
    assert_eq!(put_spooled(&store, "big", &big, &meta).await, PutOutcome::Created);
    assert_eq!(count("PUT", "/sp/big"), 3, "three parts");
    let head = store.head("big").await.unwrap();
    assert_eq!((head.size, head.metadata), (big.len() as u64, meta.to_vec()));
    assert!(store.get("big").await.unwrap() == big);
    let other = pattern(17 * 1024 * 1024, 4);
    assert_eq!(
        put_spooled(&store, "big", &other, &[]).await,
        PutOutcome::AlreadyExists
    );
    assert!(store.get("big").await.unwrap() == big);

    // A throttled single put is retried by the SDK, which re-reads the file each time.
    s3.faults().inject("PUT", "/sp/slow", Fault::Status(503), 2);
    let body = pattern(100_000, 5);
    assert_eq!(put_spooled(&store, "slow", &body, &[]).await, PutOutcome::Created);
    assert_eq!(count("PUT", "/sp/slow"), 3);
    assert_eq!(store.get("slow").await.unwrap(), body);

    // A conflict answer is retried by the store itself, with a fresh stream of the file.
    s3.faults().inject("PUT", "/sp/contended", Fault::Status(409), 2);
    assert_eq!(
        put_spooled(&store, "contended", &body, &[]).await,
        PutOutcome::Created
    );
    assert_eq!(store.get("contended").await.unwrap(), body);

    // A write whose reply is lost meets itself on the retry.
    s3.faults().inject("PUT", "/sp/lost", Fault::DropAfterWrite, 1);
    let outcome = put_spooled(&store, "lost", &body, &[]).await;
    assert_eq!(outcome, PutOutcome::AlreadyExists);
    assert_eq!(store.get("lost").await.unwrap(), body);
    assert_eq!(std::fs::read_dir(spool_dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_spool_files_left_by_a_stopped_process_are_swept_once_stale() {
    let s3 = S3Sandbox::start().await;
    let spool_dir = tempfile::tempdir().unwrap();
    let left = |name: &str, age: Duration| -> PathBuf {
        let path = spool_dir.path().join(name);
        std::fs::write(&path, b"partial object").unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    };
    let old = left("0123456789abcdef.spool", Duration::from_secs(2 * 3600));
    let recent = left("fedcba9876543210.spool", Duration::from_secs(60));
    let unrelated = left("notes.txt", Duration::from_secs(2 * 3600));
    let store = Store::S3(s3.s3_store("sp").with_spool_dir(spool_dir.path()));
    let spool = store.spool().await.unwrap();
    assert!(
        !old.exists(),
        "an hour-old spool file belongs to a stopped process"
    );
    assert!(recent.exists(), "a recent one may belong to a running archiver");
    assert!(unrelated.exists());
    drop(spool);

    let dir = tempfile::tempdir().unwrap();
    let local = Store::Local(LocalStore::new(dir.path()).unwrap());
    let tmp = dir.path().join(".streamtier-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let stale = tmp.join("00000000000000aa.tmp");
    std::fs::write(&stale, b"x").unwrap();
    let file = std::fs::File::options().write(true).open(&stale).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    drop(local.spool().await.unwrap());
    assert!(!stale.exists());
}
