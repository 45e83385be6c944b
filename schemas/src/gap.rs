//! Gap records: entries that vanished from Redis before they were archived.

use crate::error::{Error, Result};
use crate::id::StreamId;

/// A recorded gap, stored as JSON under [`gap_key`](crate::layout::gap_key).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GapRecord {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// The Redis stream key.
    pub stream: String,
    /// Last archived ID before the gap (`0-0` when nothing was archived).
    pub after_id: StreamId,
    /// First entry present after the gap (`None` if the gap reaches the end of the stream).
    pub before_id: Option<StreamId>,
    /// Exact number of entries missing.
    pub count: u64,
    /// entries-added offset of the last missing entry.
    pub last_offset: u64,
    /// Short machine-ish text, e.g. `trimmed-before-archive` or `deleted`.
    pub reason: String,
    /// When the gap was detected, in Unix epoch milliseconds.
    pub detected_at_ms: u64,
}

impl GapRecord {
    /// Returns the record as compact JSON; IDs are `"<ms>-<seq>"` strings.
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, integers and IDs (serialized as strings) cannot fail to serialize.
        serde_json::to_vec(self).expect("a gap record always serializes")
    }

    /// Parses a record written by [`GapRecord::to_json`]. Unknown keys are ignored so that
    /// later versions may add some.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Json`] for invalid JSON or a missing or mistyped key.
    pub fn from_json(b: &[u8]) -> Result<GapRecord> {
        serde_json::from_slice(b).map_err(|source| Error::Json { source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GapRecord {
        GapRecord {
            topic: "__strm:app.orders".into(),
            partition: 2,
            stream: "__strm:app.orders:2".into(),
            after_id: StreamId::new(1_763_780_645_000, 1),
            before_id: Some(StreamId::new(1_763_780_646_000, 0)),
            count: 42,
            last_offset: 1_042,
            reason: "trimmed-before-archive".into(),
            detected_at_ms: 1_763_780_700_000,
        }
    }

    #[test]
    fn json_round_trips_with_text_ids() {
        let gap = sample();
        let json = gap.to_json();
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["after_id"], "1763780645000-1");
        assert_eq!(value["before_id"], "1763780646000-0");
        assert_eq!(GapRecord::from_json(&json).unwrap(), gap);

        let open_ended = GapRecord {
            before_id: None,
            after_id: StreamId::MIN,
            ..sample()
        };
        let json = open_ended.to_json();
        assert_eq!(GapRecord::from_json(&json).unwrap(), open_ended);
    }

    #[test]
    fn rejects_invalid_json() {
        assert!(matches!(GapRecord::from_json(b"{"), Err(Error::Json { .. })));
        assert!(matches!(GapRecord::from_json(b"{}"), Err(Error::Json { .. })));
        let mut value: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        value["after_id"] = "1:2".into();
        assert!(GapRecord::from_json(value.to_string().as_bytes()).is_err());
    }
}
