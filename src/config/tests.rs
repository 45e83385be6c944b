//! Unit tests of `config`: which variables are settings, and a loader that refuses bad input
//! with an error, never with a panic or an abort.

use figment::Provider;
use proptest::prelude::*;

use super::*;

#[test]
fn only_known_sections_with_a_key_are_settings() {
    // What Kubernetes puts into every pod of a namespace with a Service named `streamtier`.
    for k8s in [
        "PORT",
        "PORT_8080_TCP",
        "PORT_8080_TCP_ADDR",
        "PORT_8080_TCP_PORT",
        "PORT_8080_TCP_PROTO",
        "SERVICE_HOST",
        "SERVICE_PORT",
        "SERVICE_PORT_HTTP",
        "REPORT_PEAK_RSS",
    ] {
        assert!(!is_setting(k8s), "{k8s}");
    }
    for other in ["FOO__BAR", "__URL", "REDISX__URL", ""] {
        assert!(!is_setting(other), "{other}");
    }
    for setting in [
        "REDIS__URL",
        "archive__flush_after",
        "Store__Url",
        "API__TOKEN",
        // A known section with a typo in the key is a setting, and refused by the check.
        "REDIS__URLL",
    ] {
        assert!(is_setting(setting), "{setting}");
    }
}

#[test]
fn the_sections_are_those_of_the_settings() {
    let data = Figment::from(figment::providers::Serialized::defaults(Settings::default()))
        .data()
        .expect("defaults serialize");
    let dict = data.values().next().expect("one profile");
    let mut keys: Vec<&str> = dict.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut sections = SECTIONS.to_vec();
    sections.sort_unstable();
    assert_eq!(keys, sections);
}

#[test]
fn nesting_counts_brackets_outside_strings() {
    assert_eq!(nesting("redis://127.0.0.1:6379"), 0);
    assert_eq!(nesting("[1, [2, {a = [3]}]]"), 4);
    assert_eq!(nesting(r#""[[[[\"[[" "#), 0);
    assert_eq!(nesting(&"[".repeat(100_000)), 100_000);
    assert_eq!(nesting("]]]]["), 1);
}

#[test]
fn deep_toml_and_huge_numbers_are_errors() {
    let deep = format!("a = {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(load_text(&deep).is_err());
    let topic = |partitions: &str| {
        format!("[[topics]]\nname = \"o\"\nstreams = \"o:{{partition}}\"\npartitions = {partitions}\n")
    };
    let err = load_text(&topic("1000000000")).unwrap_err().to_string();
    assert!(
        err.contains("topics[0].partitions") && err.contains("at most 100000"),
        "{err}"
    );
    assert!(load_text(&topic("-1")).is_err());
    assert!(load_text(&topic("99999999999999999999999")).is_err());
    let err = load_text("[archive]\nconcurrency = 9223372036854775807\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("archive.concurrency"), "{err}");
    let err = load_text("[[topics]]\nname = \"own\"\nstreams = \"streamtier:{partition}\"\npartitions = 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("topics[0].streams"), "{err}");
    let err = load_text("[store]\nurl = \"/etc/passwd\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("store.url") && err.contains("`/etc/passwd` is a file, not a directory"),
        "{err}"
    );
    load_text("").expect("the defaults are a configuration");
}

#[test]
fn a_huge_file_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamtier.toml");
    let line = format!("# {}\n", "x".repeat(1021));
    std::fs::write(&path, line.repeat(5 << 10)).unwrap();
    let err = load(Some(&path)).unwrap_err().to_string();
    assert!(err.contains("is larger than 4 MiB"), "{err}");
}

/// Keys of each section, as the file spells them (`topics` are `[[topics]]` entries).
const KEYS: &[(&str, &[&str])] = &[
    ("redis", &["url", "cluster", "nodes"]),
    (
        "store",
        &["url", "endpoint", "region", "force_path_style", "spool_dir"],
    ),
    (
        "archive",
        &[
            "flush_after",
            "close_grace",
            "retention_slack",
            "max_object_entries",
            "max_object_bytes",
            "zstd_level",
            "concurrency",
            "lease_ttl",
            "poll_interval",
            "discover_interval",
            "read_batch_bytes",
            "row_group_bytes",
            "respect_consumer_groups",
            "compact_interval",
            "group_snapshot_interval",
            "group_snapshot_max_pending",
        ],
    ),
    (
        "topics",
        &[
            "streams",
            "partitions",
            "retain_entries",
            "retain_for",
            "retain_max_entries",
            "columns",
            "object_span",
        ],
    ),
    (
        "api",
        &["listen", "token", "allow_unauthenticated", "max_body_bytes"],
    ),
    (
        "replay",
        &[
            "max_jobs",
            "partition_concurrency",
            "default_rate",
            "max_rate",
            "allowed_targets",
            "max_target_backlog",
            "max_redis_memory",
        ],
    ),
];

/// A TOML basic string holding `s`.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML value of any type, often a wrong one, often at an extreme.
fn value() -> impl Strategy<Value = String> {
    let extreme = prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("4294967295".to_string()),
        Just("4294967296".to_string()),
        Just("1000000000".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("18446744073709551615".to_string()),
        Just("99999999999999999999999999".to_string()),
        Just("1e400".to_string()),
        Just("nan".to_string()),
        Just("-inf".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("{}".to_string()),
        Just("[]".to_string()),
    ];
    let strings = prop_oneof![
        Just("100y"),
        Just("600000000000y"),
        Just("18446744073709551615s"),
        Just("0s"),
        Just("-1s"),
        Just("1ns"),
        Just("99999999999999999999GiB"),
        Just("16GiB"),
        Just("1TiB"),
        Just("0%"),
        Just("streamtier:{partition}"),
        Just("o:{partition}"),
        Just("s3://bucket/p"),
        Just("http://[::1"),
        Just("/etc/passwd"),
        Just("/etc/passwd/x"),
        Just("file://relative"),
        Just("gs://b"),
        Just("redis://:@:0"),
        Just("0.0.0.0:0"),
        Just(""),
    ]
    .prop_map(quoted);
    prop_oneof![
        extreme,
        strings,
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u32>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<String>().prop_map(|s| quoted(&s)),
        (1usize..100_000).prop_map(|n| quoted(&"x".repeat(n))),
        (1usize..5_000).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n))),
        (1usize..5_000).prop_map(|n| format!("{}1{}", "{a = ".repeat(n), "}".repeat(n))),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| format!("{v:?}")),
        "\\{ [a-z]{1,8} = [0-9]{1,3} \\}",
    ]
}

/// A configuration file: sections with real keys (and some that are not) and bad values.
fn file() -> impl Strategy<Value = String> {
    let line = (any::<prop::sample::Index>(), value(), any::<bool>());
    let section = (0..KEYS.len(), prop::collection::vec(line, 0..8));
    prop::collection::vec(section, 0..6).prop_map(|sections| {
        let mut text = String::new();
        for (i, (s, lines)) in sections.into_iter().enumerate() {
            let (name, _) = KEYS[s];
            if name == "topics" {
                // A topic that would pass but for the values below (or a duplicate key).
                text.push_str(&format!(
                    "[[topics]]\nname = \"t{i}\"\nstreams = \"t{i}:{{partition}}\"\n"
                ));
            } else {
                text.push_str(&format!("[{name}]\n"));
            }
            for (key, value, typo) in lines {
                let keys = KEYS[s].1;
                let key = keys[key.index(keys.len())];
                let typo = if typo { "x" } else { "" };
                text.push_str(&format!("{key}{typo} = {value}\n"));
            }
        }
        text
    })
}

/// Any text at all: random bytes, a file of bad values, or such a file with garbage in it.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2_000).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        file(),
        (file(), "[\\[\\]{}=\"'#\n a-z0-9.]{0,200}").prop_map(|(f, junk)| f + &junk),
        (1usize..200_000).prop_map(|n| format!("a = {}", "[".repeat(n))),
        (1usize..200_000).prop_map(|n| format!("[{}]\nx = 1", vec!["a"; n].join("."))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the text, the loader answers Ok or Err; what it accepts is within bounds.
    #[test]
    fn the_loader_never_panics_and_accepts_only_bounded_settings(text in text()) {
        if let Ok(checked) = load_text(&text) {
            let partitions: usize = checked.topics.iter().map(|t| t.streams.len()).sum();
            prop_assert!(partitions <= streamtier_archiver::settings::MAX_PARTITIONS as usize);
            prop_assert!(checked.archive.concurrency <= streamtier_archiver::settings::MAX_CONCURRENCY);
            prop_assert!(checked.replay.max_jobs <= streamtier_replayer::settings::MAX_JOBS);
            prop_assert!(checked.api.max_body_bytes <= streamtier_api::settings::MAX_BODY_BYTES);
        }
    }
}
