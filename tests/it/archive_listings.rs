//! What finding a partition's objects costs on an S3-protocol server, whatever the archive's age
//! and however many group snapshots it has: requests are counted, not timed.

use bytes::Bytes;
use futures::StreamExt;
use streamtier_schemas::{layout, StreamId};
use streamtier_tiers::archive::PartitionArchive;

use crate::harness::s3::S3Sandbox;

/// 2025-01-01T00:00:00Z
const T0: u64 = 1_735_689_600_000;
const DAY: u64 = 86_400_000;

/// LIST requests the sandbox received since `since` requests (a listing is a GET of the bucket).
fn lists_since(s3: &S3Sandbox, since: usize) -> usize {
    let bucket = format!("/{}", s3.bucket());
    s3.requests()[since..]
        .iter()
        .filter(|(method, path)| method == "GET" && path.trim_end_matches('/') == bucket)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_and_last_objects_cost_a_few_listings_whatever_the_snapshots_and_days() {
    let s3 = S3Sandbox::start().await;
    let store = s3.store("listings");
    // 5,000 group snapshots (they sort before every object) and 400 days of hourly objects.
    let mut keys: Vec<String> = (0..5000u64)
        .map(|i| layout::group_snapshot_key("t", 0, T0 + i * 60_000))
        .collect();
    let objects: Vec<String> = (0..400u64)
        .map(|d| layout::object_key("t", 0, StreamId::new(T0 + d * DAY + 3_600_000, 0)))
        .collect();
    keys.extend(objects.iter().cloned());
    futures::stream::iter(keys)
        .map(|key| {
            let store = store.clone();
            async move {
                // Listings read keys, not bodies: any bytes do.
                store
                    .put_if_absent(&key, Bytes::from_static(b"{}"), &[])
                    .await
                    .expect("put");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let archive = PartitionArchive::new(store.clone(), "t", 0);

    let before = s3.requests().len();
    let last = archive.last_object(None).await.expect("last").expect("an object");
    assert_eq!(&last.key, objects.last().expect("objects"));
    let lists = lists_since(&s3, before);
    assert!(lists <= 2, "the chain's end took {lists} listings");

    let before = s3.requests().len();
    let first = archive.objects_after(None, 1).await.expect("first");
    assert_eq!(first.first().map(|o| &o.key), objects.first());
    let lists = lists_since(&s3, before);
    assert_eq!(lists, 1, "the first object took {lists} listings");

    // Every object, in order, with 5,000 snapshots before them: one page of objects.
    let before = s3.requests().len();
    let all = archive.objects_after(None, 10_000).await.expect("all");
    assert_eq!(all.iter().map(|o| o.key.clone()).collect::<Vec<_>>(), objects);
    assert_eq!(lists_since(&s3, before), 1);
}
