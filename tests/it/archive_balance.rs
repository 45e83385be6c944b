//! Several archiver daemons hold even shares of the partition leases, and a SIGKILLed one's
//! share moves to the others, which then archive its partitions exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use streamtier_schemas::StreamId;

use crate::harness::daemon::{archived_at_least, Setup};
use crate::harness::redis::RedisServer;
use crate::harness::stream::{assert_exactly_once, xadd};
use crate::wait_until;

const PARTITIONS: u32 = 30;
const LEASE_TTL: Duration = Duration::from_secs(3);

/// Leases held, by the process id inside the owner id (`host-PID-random`).
fn holders(redis: &RedisServer) -> BTreeMap<u32, usize> {
    let mut con = redis.con();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("streamtier:lease:*")
        .query(&mut con)
        .expect("KEYS");
    if keys.is_empty() {
        return BTreeMap::new();
    }
    let owners: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).expect("MGET");
    let mut by_pid = BTreeMap::new();
    for owner in owners.into_iter().flatten() {
        let pid = owner
            .rsplit('-')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("owner id `{owner}` has no pid"));
        *by_pid.entry(pid).or_insert(0) += 1;
    }
    by_pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_hold_even_shares_and_take_over_a_killed_ones_partitions() {
    let redis = RedisServer::start();
    let setup = Setup::new(
        &redis,
        &format!(
            "poll_interval = \"100ms\"\nlease_ttl = \"{}s\"\nflush_after = \"100ms\"",
            LEASE_TTL.as_secs()
        ),
        &format!(
            "[[topics]]\nname = \"even\"\nstreams = \"even:{{partition}}\"\npartitions = {PARTITIONS}\n\
             retain_entries = 0\nretain_for = \"0s\""
        ),
    );
    let streams: Vec<String> = (0..PARTITIONS).map(|p| format!("even:{p}")).collect();
    let mut produced = vec![BTreeSet::<StreamId>::new(); streams.len()];
    let mut con = redis.con();
    for (p, stream) in streams.iter().enumerate() {
        produced[p].insert(xadd(&mut con, stream, "*", &[(b"n", b"0")]));
    }
    let (mut a, mut b, mut c) = (setup.daemon("a"), setup.daemon("b"), setup.daemon("c"));
    // Each holds ceil(30 / 3) = 10: the ones that took more at the start gave the extras up.
    let even = |h: &BTreeMap<u32, usize>| h.len() == 3 && h.values().all(|n| *n == 10);
    wait_until!("10 leases each", 60, [a, b, c], even(&holders(&redis)));

    let victim = a.pid();
    a.kill9();
    let killed = Instant::now();
    let survivors =
        |h: &BTreeMap<u32, usize>| !h.contains_key(&victim) && h.len() == 2 && h.values().all(|n| *n == 15);
    wait_until!(
        "15 leases each on the survivors",
        30,
        [b, c],
        survivors(&holders(&redis))
    );
    // Its leases ran out after at most one lease time; the others had counted it gone after half
    // of one and took each lease as it ran out (a loose bound: the benchmark measures).
    let took = killed.elapsed();
    assert!(
        took < LEASE_TTL * 2,
        "the killed daemon's partitions were taken over after {took:?}"
    );

    // Entries written now, into every partition, are archived by the two left, each once.
    for (p, stream) in streams.iter().enumerate() {
        produced[p].insert(xadd(&mut con, stream, "*", &[(b"n", b"1")]));
    }
    let all: Vec<_> = (0..PARTITIONS).map(|p| ("even", p, 2)).collect();
    wait_until!(
        "everything archived",
        60,
        [b, c],
        archived_at_least(&setup.store, &all).await
    );
    for (p, stream) in (0..PARTITIONS).zip(&streams) {
        assert_exactly_once(&redis, &setup.store, "even", p, stream, &produced[p as usize]).await;
    }
    for d in [&mut b, &mut c] {
        let status = d.terminate().await;
        assert!(status.success(), "exit {status}:\n{}", d.log());
    }
}
