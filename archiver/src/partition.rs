//! Partitions: the configured topics expanded into stream keys, or topics discovered by `SCAN`.

use std::collections::BTreeMap;
use std::sync::Arc;

use streamtier_schemas::{layout, ObjectSpan, TypedColumn};

use streamtier_tiers::archive::PartitionArchive;
use streamtier_tiers::store::Store;

use crate::settings::{Retention, Topic};

/// One partition stream and the rules that apply to it.
#[derive(Clone, Debug)]
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// Redis stream key.
    pub stream: String,
    /// Retention rules of the topic.
    pub retention: Retention,
    /// Typed columns of the topic.
    pub columns: Arc<Vec<TypedColumn>>,
    /// Time one object of the topic may cover.
    pub span: ObjectSpan,
}

impl Partition {
    /// The partition's archive in `store`.
    pub fn archive(&self, store: &Store) -> PartitionArchive {
        PartitionArchive::new(store.clone(), &self.topic, self.partition)
    }

    /// `topic/partition`, for logs and summaries.
    pub fn label(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }
}

/// Expands configured topics into their partitions.
pub fn from_topics(topics: &[Topic]) -> Vec<Partition> {
    let mut out = Vec::new();
    for t in topics {
        let columns = Arc::new(t.columns.clone());
        for (p, stream) in t.streams.iter().enumerate() {
            out.push(Partition {
                topic: t.name.clone(),
                partition: p as u32,
                stream: stream.clone(),
                retention: t.retention.clone(),
                columns: columns.clone(),
                span: t.span,
            });
        }
    }
    out
}

/// Splits `orders:3` or `events.12` into (`orders`, 3); `None` for keys without a numeric suffix.
pub fn split_partition(key: &str) -> Option<(&str, u32)> {
    let pos = key.rfind([':', '.', '-', '_'])?;
    let digits = &key[pos + 1..];
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    let topic = &key[..pos];
    if topic.is_empty() {
        return None;
    }
    Some((topic, digits.parse().ok()?))
}

/// Which stream key holds each `(topic, partition)`, as far as the caller knows.
pub type Owners = BTreeMap<(String, u32), String>;

/// Turns discovered stream keys into partitions: `name<sep><n>` is partition n of topic `name`,
/// any other key a single-partition topic. Keys that cannot name a topic, or that collide with
/// another key's topic and partition, are returned in the second list with the reason.
///
/// On a collision, the key in `owners` (the one already archived there) keeps the slot;
/// otherwise a numbered key wins over a plain key of the same name.
pub fn discover(
    keys: &[String],
    retention: &Retention,
    owners: &Owners,
) -> (Vec<Partition>, Vec<(String, String)>) {
    let mut by_slot: BTreeMap<(String, u32), String> = BTreeMap::new();
    let mut skipped = Vec::new();
    let no_columns = Arc::new(Vec::new());
    let owning: Vec<&String> = keys.iter().filter(|k| owners.values().any(|o| o == *k)).collect();
    let (numbered, plain): (Vec<&String>, Vec<&String>) = keys
        .iter()
        .filter(|k| !owning.contains(k))
        .partition(|k| split_partition(k).is_some());
    for key in owning.into_iter().chain(numbered).chain(plain) {
        let (topic, partition) = split_partition(key).unwrap_or((key.as_str(), 0));
        if let Err(e) = layout::validate_topic_name(topic) {
            skipped.push((key.clone(), e.to_string()));
            continue;
        }
        let slot = (topic.to_string(), partition);
        if let Some(other) = by_slot.get(&slot) {
            skipped.push((
                key.clone(),
                format!("topic `{topic}` partition {partition} is already stream `{other}`"),
            ));
            continue;
        }
        by_slot.insert(slot, key.clone());
    }
    let parts = by_slot
        .into_iter()
        .map(|((topic, partition), stream)| Partition {
            topic,
            partition,
            stream,
            retention: retention.clone(),
            columns: no_columns.clone(),
            span: ObjectSpan::default(),
        })
        .collect();
    (parts, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_suffixes_name_partitions() {
        assert_eq!(split_partition("orders:3"), Some(("orders", 3)));
        assert_eq!(split_partition("events.12"), Some(("events", 12)));
        assert_eq!(
            split_partition("__strm:app.orders.0"),
            Some(("__strm:app.orders", 0))
        );
        assert_eq!(split_partition("orders"), None);
        assert_eq!(split_partition("orders:"), None);
        assert_eq!(split_partition("orders:07"), None);
        assert_eq!(split_partition(":1"), None);
    }

    #[test]
    fn discovery_groups_keys_into_topics() {
        let keys: Vec<String> = ["orders:0", "orders:1", "audit", "orders", "bad/name:1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (parts, skipped) = discover(&keys, &Retention::default(), &Owners::new());
        let got: Vec<(String, u32, String)> = parts
            .iter()
            .map(|p| (p.topic.clone(), p.partition, p.stream.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("audit".into(), 0, "audit".into()),
                ("orders".into(), 0, "orders:0".into()),
                ("orders".into(), 1, "orders:1".into()),
            ]
        );
        let skipped: Vec<&str> = skipped.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(skipped, vec!["bad/name:1", "orders"]);
        // A key that already owns the slot keeps it.
        let owners: Owners = [(("orders".to_string(), 0), "orders".to_string())].into();
        let (parts, skipped) = discover(&keys, &Retention::default(), &owners);
        assert!(parts
            .iter()
            .any(|p| p.topic == "orders" && p.partition == 0 && p.stream == "orders"));
        assert!(skipped
            .iter()
            .any(|(k, why)| k == "orders:0" && why.contains("`orders`")));
    }
}
