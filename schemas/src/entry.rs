//! One stream entry: an ID and its ordered (name, value) byte pairs.

use bytes::Bytes;

use crate::id::StreamId;

/// Fixed per-entry overhead counted by [`Entry::payload_len`] (the two halves of the ID).
pub(crate) const ENTRY_OVERHEAD: usize = 16;

/// A stream entry exactly as Redis holds it.
///
/// `fields` keeps Redis' order; names may repeat and names and values may be any bytes,
/// including empty ones. Archiving and replaying preserve all of that byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's ID.
    pub id: StreamId,
    /// Name/value pairs in the order they were added.
    pub fields: Vec<(Bytes, Bytes)>,
}

impl Entry {
    /// Creates an entry.
    pub fn new(id: StreamId, fields: Vec<(Bytes, Bytes)>) -> Self {
        Entry { id, fields }
    }

    /// Returns a rough size in bytes: the lengths of all names and values plus 16.
    ///
    /// Used to bound object sizes; it is not the encoded size.
    pub fn payload_len(&self) -> usize {
        self.fields
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum::<usize>()
            + ENTRY_OVERHEAD
    }

    /// Returns the value of the first field named `name`, if any.
    pub fn first_value(&self, name: &[u8]) -> Option<&Bytes> {
        self.fields
            .iter()
            .find(|(n, _)| n.as_ref() == name)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_len_sums_names_and_values_plus_overhead() {
        let entry = Entry::new(
            StreamId::new(1, 0),
            vec![
                (Bytes::from_static(b"a"), Bytes::from_static(b"xyz")),
                (Bytes::from_static(b""), Bytes::from_static(b"")),
                (Bytes::from_static(b"a"), Bytes::from_static(b"12")),
            ],
        );
        assert_eq!(entry.payload_len(), 1 + 3 + 1 + 2 + 16);
        assert_eq!(Entry::new(StreamId::MIN, vec![]).payload_len(), 16);
    }

    #[test]
    fn first_value_takes_the_first_occurrence() {
        let entry = Entry::new(
            StreamId::new(1, 0),
            vec![
                (Bytes::from_static(b"a"), Bytes::from_static(b"1")),
                (Bytes::from_static(b"a"), Bytes::from_static(b"2")),
            ],
        );
        assert_eq!(entry.first_value(b"a").unwrap(), &Bytes::from_static(b"1"));
        assert!(entry.first_value(b"b").is_none());
    }
}
