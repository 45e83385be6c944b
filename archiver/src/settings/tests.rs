//! Unit tests of `settings`.

use super::*;

fn topic() -> TopicSettings {
    TopicSettings {
        name: "orders".into(),
        streams: "orders:{partition}".into(),
        partitions: 4,
        retain_entries: 10,
        retain_for: "1h".into(),
        retain_max_entries: None,
        columns: BTreeMap::new(),
        object_span: DEFAULT_OBJECT_SPAN.into(),
    }
}

#[test]
fn sizes_and_durations_parse() {
    assert_eq!(parse_size("k", "128MiB").unwrap(), 128 << 20);
    assert_eq!(parse_size("k", "8MB").unwrap(), 8_000_000);
    assert_eq!(parse_size("k", "4096").unwrap(), 4096);
    assert!(parse_size("k", "12 parsecs").is_err());
    assert_eq!(parse_duration("k", "60s").unwrap(), Duration::from_secs(60));
    assert!(parse_duration("k", "soon").is_err());
}

#[test]
fn topics_expand_their_template() {
    let t = topic().check(0).unwrap();
    assert_eq!(t.streams, vec!["orders:0", "orders:1", "orders:2", "orders:3"]);
}

#[test]
fn bad_topics_name_the_key() {
    let mut t = topic();
    t.partitions = 0;
    assert!(t
        .check(2)
        .unwrap_err()
        .to_string()
        .contains("topics[2].partitions"));
    let mut t = topic();
    t.streams = "orders".into();
    assert!(t.check(0).unwrap_err().to_string().contains("topics[0].streams"));
    let mut t = topic();
    t.name = "a/b".into();
    assert!(t.check(0).unwrap_err().to_string().contains("topics[0].name"));
    let mut t = topic();
    t.columns.insert("amount".into(), "decimal".into());
    assert!(t
        .check(0)
        .unwrap_err()
        .to_string()
        .contains("topics[0].columns.amount"));
    let mut t = topic();
    t.retain_for = "forever".into();
    assert!(t
        .check(0)
        .unwrap_err()
        .to_string()
        .contains("topics[0].retain_for"));
    let mut t = topic();
    t.object_span = "1w".into();
    let err = t.check(0).unwrap_err().to_string();
    assert!(
        err.contains("topics[0].object_span") && err.contains("`1w`"),
        "{err}"
    );
    t.object_span = "1d".into();
    assert_eq!(t.check(0).unwrap().span, ObjectSpan::Day);
}

#[test]
fn compact_interval_is_off_by_default_and_checked() {
    assert_eq!(ArchiveSettings::default().check().unwrap().compact_interval, None);
    let mut a = ArchiveSettings {
        compact_interval: Some("10m".into()),
        ..ArchiveSettings::default()
    };
    assert_eq!(
        a.check().unwrap().compact_interval,
        Some(Duration::from_secs(600))
    );
    for bad in ["10ms", "soon"] {
        a.compact_interval = Some(bad.into());
        let err = a.check().unwrap_err().to_string();
        assert!(err.contains("archive.compact_interval"), "{err}");
    }
}

#[test]
fn duplicate_streams_are_refused() {
    let mut b = topic();
    b.name = "other".into();
    assert!(check_topics(&[topic(), b])
        .unwrap_err()
        .to_string()
        .contains("topics[1].streams"));
}

#[test]
fn numbers_that_size_memory_are_bounded() {
    let mut t = topic();
    // A billion partitions used to build a billion keys before anything said no.
    t.partitions = 1_000_000_000;
    let err = check_topics(&[t.clone()]).unwrap_err().to_string();
    assert!(
        err.contains("topics[0].partitions") && err.contains("at most 100000"),
        "{err}"
    );
    assert!(t
        .check(0)
        .unwrap_err()
        .to_string()
        .contains("topics[0].partitions"));
    let mut a = topic();
    a.partitions = 60_000;
    let mut b = a.clone();
    b.name = "other".into();
    b.streams = "other:{partition}".into();
    let err = check_topics(&[a, b]).unwrap_err().to_string();
    assert!(
        err.contains("topics[1].partitions") && err.contains("in all"),
        "{err}"
    );
    let mut t = topic();
    t.streams = format!("{}:{{partition}}", "k".repeat(MAX_STREAMS_BYTES));
    assert!(t.check(0).unwrap_err().to_string().contains("topics[0].streams"));

    let cases: Vec<(ArchiveSettings, &str)> = vec![
        (
            ArchiveSettings {
                concurrency: usize::MAX,
                ..ArchiveSettings::default()
            },
            "archive.concurrency",
        ),
        (
            ArchiveSettings {
                max_object_entries: u64::MAX,
                ..ArchiveSettings::default()
            },
            "archive.max_object_entries",
        ),
        (
            ArchiveSettings {
                max_object_bytes: "1024GiB".into(),
                ..ArchiveSettings::default()
            },
            "archive.max_object_bytes",
        ),
        (
            ArchiveSettings {
                read_batch_bytes: "1GiB".into(),
                ..ArchiveSettings::default()
            },
            "archive.read_batch_bytes",
        ),
        (
            ArchiveSettings {
                row_group_bytes: "1GiB".into(),
                ..ArchiveSettings::default()
            },
            "archive.row_group_bytes",
        ),
        (
            ArchiveSettings {
                lease_ttl: "1000y".into(),
                ..ArchiveSettings::default()
            },
            "archive.lease_ttl",
        ),
        (
            ArchiveSettings {
                poll_interval: "31d".into(),
                ..ArchiveSettings::default()
            },
            "archive.poll_interval",
        ),
        (
            ArchiveSettings {
                flush_after: Some("100y".into()),
                ..ArchiveSettings::default()
            },
            "archive.flush_after",
        ),
    ];
    for (settings, key) in cases {
        let err = settings.check().unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("at most"), "{key}: {err}");
    }
    let at_the_bounds = ArchiveSettings {
        concurrency: MAX_CONCURRENCY,
        max_object_entries: MAX_OBJECT_ENTRIES,
        max_object_bytes: MAX_OBJECT_BYTES.into(),
        read_batch_bytes: MAX_BATCH_BYTES.into(),
        row_group_bytes: MAX_BATCH_BYTES.into(),
        lease_ttl: MAX_DURATION.into(),
        ..ArchiveSettings::default()
    };
    at_the_bounds.check().unwrap();
}

#[test]
fn topics_over_streamtiers_own_keys_are_refused() {
    for streams in [
        "streamtier:{partition}",
        "streamtier:chain:x",
        "__lock:{partition}",
    ] {
        let mut t = topic();
        t.streams = streams.into();
        t.partitions = if streams.contains("{partition}") { 2 } else { 1 };
        let err = check_topics(&[topic(), t]).unwrap_err().to_string();
        assert!(
            err.contains("topics[1].streams") && err.contains("own keys"),
            "{streams}: {err}"
        );
    }
    let mut t = topic();
    t.streams = "app:streamtier:{partition}".into();
    t.check(0).unwrap();
}

#[test]
fn retain_for_beyond_1970_keeps_everything_by_time() {
    let now = 1_800_000_000_000;
    let mut t = topic();
    t.retain_for = "100y".into();
    let r = t.check(0).unwrap().retention;
    assert_eq!(r.keep_from_ms(now), Some(0));
    assert!(!r.old_enough(0, now));
    let forever = Retention {
        retain_for: Duration::MAX,
        ..r.clone()
    };
    assert_eq!(forever.keep_from_ms(now), Some(0));
    let hour = Retention {
        retain_for: Duration::from_secs(3600),
        ..r.clone()
    };
    assert_eq!(hour.keep_from_ms(now), Some(now - 3_600_000));
    assert!(hour.old_enough(now - 3_600_001, now) && !hour.old_enough(now - 3_600_000, now));
    let zero = Retention {
        retain_for: Duration::ZERO,
        ..r
    };
    assert_eq!(zero.keep_from_ms(now), None);
    assert!(zero.old_enough(now, now));
}
