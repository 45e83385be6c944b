//! Consumer-group snapshots: every group of a partition stream with its position, consumers and
//! pending entries, and the stream's own counters, as they were at one instant. A faithful
//! restore puts them back; people query them like the rest of the archive.
//!
//! A snapshot is one JSON object under [`crate::layout::group_snapshot_key`]:
//!
//! ```text
//! {"format_version": 1, "topic": "orders", "partition": 0, "stream": "orders:0",
//!  "taken_at_ms": 1764547200000, "archived_id": "1764547199000-0",
//!  "stream_info": {"length": 120, "first_entry_id": "…", "last_entry_id": "…",
//!                  "last_generated_id": "…", "entries_added": 5000,
//!                  "max_deleted_entry_id": "0-0", "recorded_first_entry_id": "…"},
//!  "groups": [{"name": "billing", "last_delivered_id": "…", "entries_read": 4990,
//!              "consumers": [{"name": "c1", "pending": 2, "idle_ms": 150}],
//!              "pending_count": 2, "pending_truncated": false,
//!              "pending": [{"id": "…", "consumer": "c1", "idle_ms": 140, "deliveries": 1}]}]}
//! ```
//!
//! Names (groups, consumers) are JSON strings when they are UTF-8, else `{"base64": "…"}`.
//! `pending` lists the oldest pending entries first, at most the archiver's limit; when the
//! group had more, `pending_truncated` is true and `pending_count` says how many. Readers ignore
//! keys they do not know; a higher `format_version` is refused.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::StreamId;

/// The version of the snapshot format this crate writes and reads.
pub const GROUPS_FORMAT_VERSION: u32 = 1;

/// Every consumer group of one partition stream at one instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// [`GROUPS_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// The Redis stream key.
    pub stream: String,
    /// When it was taken, in Unix epoch milliseconds (Redis' clock).
    pub taken_at_ms: u64,
    /// The last archived id when it was taken (`0-0` when nothing was).
    pub archived_id: StreamId,
    /// The stream's counters.
    pub stream_info: StreamCounters,
    /// Its consumer groups, in the order Redis lists them.
    pub groups: Vec<GroupState>,
}

/// What `XINFO STREAM` says of a stream, beyond its entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCounters {
    /// Entries in the stream.
    pub length: u64,
    /// The oldest entry present.
    pub first_entry_id: Option<StreamId>,
    /// The newest entry present.
    pub last_entry_id: Option<StreamId>,
    /// The newest id ever generated.
    pub last_generated_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// The highest id removed by `XDEL`.
    pub max_deleted_entry_id: StreamId,
    /// The first id Redis recorded.
    pub recorded_first_entry_id: StreamId,
}

/// One consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// Group name.
    pub name: Name,
    /// The last id delivered to any of its consumers.
    pub last_delivered_id: StreamId,
    /// Entries read (its logical offset), when Redis knows it.
    pub entries_read: Option<u64>,
    /// Every consumer, with its pending count.
    pub consumers: Vec<ConsumerState>,
    /// Entries delivered and not acknowledged.
    pub pending_count: u64,
    /// Whether `pending` holds fewer than `pending_count` (the oldest ones).
    pub pending_truncated: bool,
    /// Pending entries, oldest first.
    pub pending: Vec<PendingEntry>,
}

/// One consumer of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerState {
    /// Consumer name.
    pub name: Name,
    /// Its pending entries.
    pub pending: u64,
    /// Milliseconds since it last interacted with the group.
    pub idle_ms: u64,
}

/// One pending entry of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// The entry's id.
    pub id: StreamId,
    /// The consumer it was delivered to.
    pub consumer: Name,
    /// Milliseconds since it was last delivered.
    pub idle_ms: u64,
    /// Times it was delivered.
    pub deliveries: u64,
}

/// A group or consumer name: any bytes, shown as text when they are UTF-8.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(pub Vec<u8>);

impl Name {
    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(s.as_bytes().to_vec())
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NameRepr {
    Text(String),
    Binary { base64: String },
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => NameRepr::Text(text.to_owned()),
            Err(_) => NameRepr::Binary {
                base64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        match NameRepr::deserialize(deserializer)? {
            NameRepr::Text(text) => Ok(Name(text.into_bytes())),
            NameRepr::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(Name)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl GroupSnapshot {
    /// The snapshot as compact JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, integers and ids (serialized as strings) cannot fail to serialize.
        serde_json::to_vec(self).expect("a group snapshot always serializes")
    }

    /// Parses a snapshot written by [`Self::to_json`] (unknown keys are ignored).
    ///
    /// # Errors
    /// [`Error::Json`] when it is not one; [`Error::UnknownFormatVersion`] when it was written
    /// by a later version.
    pub fn from_json(b: &[u8]) -> Result<GroupSnapshot> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let version: Version = serde_json::from_slice(b).map_err(|source| Error::Json { source })?;
        if version.format_version != GROUPS_FORMAT_VERSION {
            return Err(Error::UnknownFormatVersion {
                version: version.format_version.to_string(),
            });
        }
        serde_json::from_slice(b).map_err(|source| Error::Json { source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GroupSnapshot {
        GroupSnapshot {
            format_version: GROUPS_FORMAT_VERSION,
            topic: "orders".into(),
            partition: 3,
            stream: "orders:3".into(),
            taken_at_ms: 1_764_547_200_000,
            archived_id: StreamId::new(1_764_547_199_000, 0),
            stream_info: StreamCounters {
                length: 2,
                first_entry_id: Some(StreamId::new(10, 0)),
                last_entry_id: Some(StreamId::new(11, 0)),
                last_generated_id: StreamId::new(11, 0),
                entries_added: 9,
                max_deleted_entry_id: StreamId::new(5, 0),
                recorded_first_entry_id: StreamId::new(10, 0),
            },
            groups: vec![GroupState {
                name: "billing".into(),
                last_delivered_id: StreamId::new(11, 0),
                entries_read: Some(9),
                consumers: vec![ConsumerState {
                    name: Name(vec![0xff, 0x00, b'c']),
                    pending: 1,
                    idle_ms: 20,
                }],
                pending_count: 1,
                pending_truncated: false,
                pending: vec![PendingEntry {
                    id: StreamId::new(10, 0),
                    consumer: Name(vec![0xff, 0x00, b'c']),
                    idle_ms: 15,
                    deliveries: 2,
                }],
            }],
        }
    }

    #[test]
    fn snapshots_round_trip_with_binary_names() {
        let s = sample();
        let json = s.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(text.contains(r#""name":"billing""#), "{text}");
        assert!(text.contains(r#""consumer":{"base64":"/wBj"}"#), "{text}");
        assert_eq!(GroupSnapshot::from_json(&json).unwrap(), s);
    }

    #[test]
    fn a_later_format_or_a_damaged_snapshot_is_refused() {
        let mut s = sample();
        s.format_version = 2;
        assert!(matches!(
            GroupSnapshot::from_json(&s.to_json()),
            Err(Error::UnknownFormatVersion { .. })
        ));
        assert!(matches!(GroupSnapshot::from_json(b"{"), Err(Error::Json { .. })));
    }
}
