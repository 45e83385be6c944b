//! Unit tests of `layout`.

use super::*;
use proptest::prelude::*;

#[test]
fn builds_keys() {
    let id = StreamId::new(1_763_780_645_000, 2);
    assert_eq!(partition_prefix("orders", 3), "topic=orders/partition=3/");
    assert_eq!(
        object_key("orders", 3, id),
        "topic=orders/partition=3/dt=2025-11-22/hour=03/\
         00000001763780645000-00000000000000000002.parquet"
    );
    assert_eq!(
        gap_key("orders", 3, id),
        "topic=orders/partition=3/_gaps/00000001763780645000-00000000000000000002.json"
    );
    assert_eq!(
        hour_prefix("orders", 3, hour_of(id)),
        "topic=orders/partition=3/dt=2025-11-22/hour=03/"
    );
    assert_eq!(
        object_key("o", 0, StreamId::MIN),
        "topic=o/partition=0/dt=1970-01-01/hour=00/\
         00000000000000000000-00000000000000000000.parquet"
    );
}

#[test]
fn builds_and_parses_daily_keys() {
    let id = StreamId::new(1_763_780_645_000, 2);
    let key = span_object_key("orders", 3, ObjectSpan::Day, id);
    assert_eq!(
        key,
        "topic=orders/partition=3/dt=2025-11-22/00000001763780645000-00000000000000000002.parquet"
    );
    assert_eq!(
        day_seek("orders", 3, id),
        "topic=orders/partition=3/dt=2025-11-22"
    );
    let parsed = parse_object_key(&format!("archive/{key}")).unwrap();
    assert_eq!(
        (parsed.first_id, parsed.span, parsed.partition),
        (id, ObjectSpan::Day, 3)
    );
    // The wrong day, or a daily name under an hour, is not an object key.
    assert_eq!(
        parse_object_key(
            "topic=orders/partition=3/dt=2025-11-23/00000001763780645000-00000000000000000002.parquet"
        ),
        None
    );
    assert_eq!(ObjectSpan::parse("1d").unwrap(), ObjectSpan::Day);
    assert_eq!(ObjectSpan::parse("1h").unwrap(), ObjectSpan::Hour);
    let err = ObjectSpan::parse("2h").unwrap_err().to_string();
    assert!(err.contains("`2h`"), "{err}");
    assert_eq!(ObjectSpan::Day.end_ms(id), 1_763_856_000_000);
    assert_eq!(ObjectSpan::Hour.end_ms(id), 1_763_784_000_000);
}

#[test]
fn merged_keys_name_both_ids_and_sort_before_their_first_object() {
    let (a, b) = (
        StreamId::new(1_763_780_645_000, 2),
        StreamId::new(1_763_780_699_000, 0),
    );
    for span in [ObjectSpan::Hour, ObjectSpan::Day] {
        let merged = merged_object_key("orders", 3, span, a, b);
        let parsed = parse_object_key(&format!("x/{merged}")).unwrap();
        assert_eq!(
            (parsed.first_id, parsed.merged_last, parsed.span),
            (a, Some(b), span)
        );
        let plain = span_object_key("orders", 3, span, a);
        assert!(merged < plain, "{merged} vs {plain}");
        assert!(plain < span_object_key("orders", 3, span, StreamId::new(a.ms, a.seq + 1)));
        // Backwards, or across the span's end, it is not a key this crate makes.
        assert_eq!(
            parse_object_key(&merged_object_key("orders", 3, span, b, a)),
            None
        );
        let far = StreamId::new(a.ms + 2 * span.ms(), 0);
        assert_eq!(
            parse_object_key(&merged_object_key("orders", 3, span, a, far)),
            None
        );
    }
    assert_eq!(
        merged_object_key("orders", 3, ObjectSpan::Hour, a, b),
        "topic=orders/partition=3/dt=2025-11-22/hour=03/\
         00000001763780645000-00000000000000000002-00000001763780699000-00000000000000000000.parquet"
    );
}

#[test]
fn computes_utc_date_and_hour() {
    assert_eq!(utc_date_hour(0), (1970, 1, 1, 0));
    assert_eq!(utc_date_hour(1_763_780_645_000), (2025, 11, 22, 3));
    assert_eq!(utc_date_hour(951_782_400_000), (2000, 2, 29, 0));
    assert_eq!(utc_date_hour(951_868_799_999), (2000, 2, 29, 23));
    assert_eq!(utc_date_hour(4_102_444_800_000), (2100, 1, 1, 0));
    assert_eq!(hour_of(StreamId::new(3_599_999, 9)), 0);
    assert_eq!(hour_of(StreamId::new(3_600_000, 0)), 1);
    let (year, ..) = utc_date_hour(u64::MAX);
    assert!(year > 500_000_000);
}

#[test]
fn parses_object_keys_with_and_without_prefix() {
    let id = StreamId::new(1_763_780_645_000, 2);
    let key = object_key("__strm:app.orders", 7, id);
    let expected = ObjectKey {
        topic: "__strm:app.orders".into(),
        partition: 7,
        first_id: id,
        span: ObjectSpan::Hour,
        merged_last: None,
    };
    assert_eq!(parse_object_key(&key), Some(expected.clone()));
    assert_eq!(
        parse_object_key(&format!("archive/v1/{key}")),
        Some(expected.clone())
    );
    assert_eq!(parse_object_key(&format!("/{key}")), Some(expected));
    let gap = gap_key("orders", 7, id);
    assert_eq!(parse_object_key(&gap), None);
    assert_eq!(
        parse_gap_key(&format!("x/{gap}")),
        Some(GapKey {
            topic: "orders".into(),
            partition: 7,
            after: id
        })
    );
    assert_eq!(parse_gap_key(&key), None);
    for bad in [
        "",
        "topic=orders/partition=7/dt=2025-11-22/hour=04/00000001763780645000-00000000000000000002.parquet",
        "topic=orders/partition=07/dt=2025-11-22/hour=03/00000001763780645000-00000000000000000002.parquet",
        "topic=orders/partition=7/dt=2025-11-22/hour=03/00000001763780645000-00000000000000000002.json",
        "topic=orders/partition=7/dt=2025-11-22/hour=03/1763780645000-2.parquet",
        "topic=/partition=7/dt=2025-11-22/hour=03/00000001763780645000-00000000000000000002.parquet",
        "partition=7/dt=2025-11-22/hour=03/00000001763780645000-00000000000000000002.parquet",
        "topic=orders/partition=7/_gaps/x.json",
    ] {
        assert_eq!(parse_object_key(bad), None, "{bad}");
    }
}

#[test]
fn validates_topic_names() {
    for good in [
        "orders",
        "__strm:app.orders",
        "a b",
        "ünïcode",
        "x.y-z_1",
        &"a".repeat(200),
    ] {
        validate_topic_name(good).unwrap();
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a\\b",
        "a=b",
        "a%2F",
        "a\nb",
        "a\u{7f}",
        " a",
        "a ",
        "\ta",
        &"a".repeat(201),
    ] {
        let err = validate_topic_name(bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidTopic { topic, .. } if topic == bad),
            "{bad}"
        );
    }
}

proptest! {
    #[test]
    fn object_keys_round_trip_and_sort_by_id(
        topic in "[a-zA-Z0-9_.:-]{1,30}",
        partition in any::<u32>(),
        a in 0u64..253_402_300_800_000, sa in any::<u64>(),
        b in 0u64..253_402_300_800_000, sb in any::<u64>(),
    ) {
        prop_assume!(topic != "." && topic != "..");
        let (ia, ib) = (StreamId::new(a, sa), StreamId::new(b, sb));
        let (ka, kb) = (object_key(&topic, partition, ia), object_key(&topic, partition, ib));
        let parsed = parse_object_key(&ka).unwrap();
        prop_assert_eq!(parsed, ObjectKey { topic: topic.clone(), partition, first_id: ia, span: ObjectSpan::Hour, merged_last: None });
        prop_assert_eq!(ka.cmp(&kb), ia.cmp(&ib));
        let (da, db) = (
            span_object_key(&topic, partition, ObjectSpan::Day, ia),
            span_object_key(&topic, partition, ObjectSpan::Day, ib),
        );
        prop_assert_eq!(parse_object_key(&da).map(|k| (k.first_id, k.span)), Some((ia, ObjectSpan::Day)));
        prop_assert_eq!(da.cmp(&db), ia.cmp(&ib));
        // A day's daily objects sort before its hourly ones, and both after `day_seek`.
        let seek = day_seek(&topic, partition, ia);
        prop_assert!(seek < da && seek.as_str() < ka.as_str());
        if ia.ms / MS_PER_DAY == ib.ms / MS_PER_DAY {
            prop_assert!(da < kb);
        }
    }
}

#[test]
fn group_snapshot_keys_sort_by_time_and_parse_back() {
    let a = group_snapshot_key("orders", 3, 1_764_547_200_000);
    assert_eq!(a, "topic=orders/partition=3/_groups/00000001764547200000.json");
    assert!(a < group_snapshot_key("orders", 3, 1_764_547_200_001));
    assert!(a.starts_with(&groups_prefix("orders", 3)));
    assert_eq!(
        parse_group_snapshot_key(&format!("prefix/{a}")),
        Some(1_764_547_200_000)
    );
    assert_eq!(
        parse_group_snapshot_key("topic=orders/partition=3/_groups/12.json"),
        None
    );
    assert_eq!(
        parse_group_snapshot_key("topic=orders/partition=3/_gaps/00000001764547200000.json"),
        None
    );
    // Snapshots sort before the partition's objects and are never taken for one.
    assert!(a < span_object_key("orders", 3, ObjectSpan::Day, StreamId::new(0, 0)));
    assert!(parse_object_key(&a).is_none());
}

#[test]
fn parses_the_prefixes_a_delimited_listing_returns() {
    assert_eq!(topic_prefix("orders"), "topic=orders/");
    assert_eq!(parse_topic_prefix("topic=orders/"), Some("orders".into()));
    assert_eq!(parse_topic_prefix("root/topic=a:b/"), Some("a:b".into()));
    for other in ["topic=orders", "topic=/", "orders/", "topic=a%b/"] {
        assert_eq!(parse_topic_prefix(other), None, "{other}");
    }
    let p = partition_prefix("orders", 12);
    assert_eq!(parse_partition_prefix(&p), Some(("orders".into(), 12)));
    assert_eq!(
        parse_partition_prefix(&format!("root/{p}")),
        Some(("orders".into(), 12))
    );
    for other in [
        "topic=orders/partition=012/",
        "topic=orders/partition=x/",
        "topic=orders/_gaps/",
        "topic=orders/partition=1",
    ] {
        assert_eq!(parse_partition_prefix(other), None, "{other}");
    }
    let day = day_seek("orders", 1, StreamId::new(1_700_000_000_000, 0));
    assert!(is_day_prefix(&format!("{day}/")));
    assert!(!is_day_prefix(&gaps_prefix("orders", 1)));
    assert!(!is_day_prefix(&groups_prefix("orders", 1)));
    assert!(!is_day_prefix(&day));
}
