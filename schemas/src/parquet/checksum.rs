//! The entries checksum: CRC-32 over a canonical byte stream of the entries.
//!
//! Parquet pages carry no checksum as written by parquet-rs, and a damaged zstd page can
//! decode into different bytes. The footer key `streamtier.entries_crc32` lets the decoder
//! prove that it returns exactly the entries that were written.
//!
//! Canonical stream, per entry in order: `ms`, `seq`, number of fields, then per field the
//! name length, name bytes, value length, value bytes; all integers `u64` little-endian.
//! The footer value is the CRC-32 (IEEE) of that stream as 8 lowercase hex digits.

use crate::entry::Entry;
use crate::error::{Error, Result};

/// Footer key of the entries checksum.
pub const CHECKSUM_KEY: &str = "streamtier.entries_crc32";

/// Incremental checksum of entries.
#[derive(Clone, Default)]
pub(crate) struct EntriesChecksum(crc32fast::Hasher);

impl EntriesChecksum {
    /// Adds entries, in order.
    pub(crate) fn update(&mut self, entries: &[Entry]) {
        for entry in entries {
            self.0.update(&entry.id.ms.to_le_bytes());
            self.0.update(&entry.id.seq.to_le_bytes());
            self.0.update(&(entry.fields.len() as u64).to_le_bytes());
            for (name, value) in &entry.fields {
                self.0.update(&(name.len() as u64).to_le_bytes());
                self.0.update(name);
                self.0.update(&(value.len() as u64).to_le_bytes());
                self.0.update(value);
            }
        }
    }

    /// Returns the footer value.
    pub(crate) fn finish(self) -> String {
        format!("{:08x}", self.0.finalize())
    }
}

/// Checks `entries` against the footer value `expected`.
pub(crate) fn verify(entries: &[Entry], expected: Option<&str>) -> Result<()> {
    let expected = expected.ok_or(Error::MissingMetadata { key: CHECKSUM_KEY })?;
    let mut checksum = EntriesChecksum::default();
    checksum.update(entries);
    let actual = checksum.finish();
    if actual != expected {
        return Err(Error::corrupt(format!(
            "entries checksum is `{actual}` but the footer says `{expected}`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::StreamId;
    use bytes::Bytes;

    #[test]
    fn checksum_is_incremental_and_sensitive_to_field_boundaries() {
        let e = |fields: Vec<(&'static [u8], &'static [u8])>| {
            Entry::new(
                StreamId::new(1, 2),
                fields
                    .into_iter()
                    .map(|(n, v)| (Bytes::from_static(n), Bytes::from_static(v)))
                    .collect(),
            )
        };
        let a = e(vec![(b"ab", b"c")]);
        let b = e(vec![(b"a", b"bc")]);
        let sum = |entries: &[Entry]| {
            let mut c = EntriesChecksum::default();
            c.update(entries);
            c.finish()
        };
        let (a, b) = ([a], [b]);
        assert_ne!(sum(&a), sum(&b));
        let mut split = EntriesChecksum::default();
        split.update(&a);
        split.update(&b);
        assert_eq!(split.finish(), sum(&[a[0].clone(), b[0].clone()]));
        assert_eq!(sum(&[]), "00000000");
        verify(&a, Some(&sum(&a))).unwrap();
        let err = verify(&a, Some("00000000")).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }));
        assert!(matches!(verify(&a, None), Err(Error::MissingMetadata { .. })));
    }
}
