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
