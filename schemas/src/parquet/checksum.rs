//! The entries checksum: CRC-32 over a canonical byte stream of the entries.
//!
//! Parquet pages carry no checksum as written by parquet-rs, and a damaged zstd page can
//! decode into different bytes. The footer key `streamtier.entries_crc32` lets the decoder
//! prove that it returns exactly the entries that were written.
//!
//! Canonical stream, per entry in order: `ms`, `seq`, number of fields, then per field the
//! name length, name bytes, value length, value bytes; all integers `u64` little-endian.
//! The footer value is the CRC-32 (IEEE) of that stream as 8 lowercase hex digits.

use crate::entries::EntryRef;
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::id::StreamId;

/// Footer key of the entries checksum.
pub const CHECKSUM_KEY: &str = "streamtier.entries_crc32";
/// Footer key of the block checksums: `<rows>:<crc32>` per block of consecutive entries,
/// comma-separated, in row order. A reader that decodes whole blocks can prove each one
/// before it hands its entries on, without reading the whole object first.
pub const BLOCKS_KEY: &str = "streamtier.blocks_crc32";
/// A block ends after this many entries…
pub const BLOCK_ENTRIES: u64 = 1024;
/// …or once its payload reaches this many bytes, whichever comes first.
pub const BLOCK_BYTES: u64 = 4 * 1024 * 1024;

/// Values at least this long are fed to the CRC directly instead of through the scratch buffer.
const DIRECT_BYTES: usize = 4096;

/// Incremental checksum of entries.
///
/// The canonical stream is gathered into a scratch buffer and fed to the CRC in large slices:
/// fed field by field, the slices are too short for the CRC's vectorised path.
#[derive(Clone, Default)]
pub(crate) struct EntriesChecksum {
    crc: crc32fast::Hasher,
    scratch: Vec<u8>,
}

impl EntriesChecksum {
    /// Adds entries, in order.
    pub(crate) fn update(&mut self, entries: &[Entry]) {
        for entry in entries {
            let fields = entry.fields.iter().map(|(n, v)| (n.as_ref(), v.as_ref()));
            self.entry(entry.id, entry.fields.len(), fields);
        }
        self.flush();
    }

    /// Adds one entry; call [`EntriesChecksum::flush`] before reading the CRC.
    fn entry<'a>(&mut self, id: StreamId, count: usize, fields: impl Iterator<Item = (&'a [u8], &'a [u8])>) {
        self.scratch.extend_from_slice(&id.ms.to_le_bytes());
        self.scratch.extend_from_slice(&id.seq.to_le_bytes());
        self.scratch.extend_from_slice(&(count as u64).to_le_bytes());
        for (name, value) in fields {
            for part in [name, value] {
                self.scratch.extend_from_slice(&(part.len() as u64).to_le_bytes());
                if part.len() >= DIRECT_BYTES {
                    self.crc.update(&self.scratch);
                    self.scratch.clear();
                    self.crc.update(part);
                } else {
                    self.scratch.extend_from_slice(part);
                }
            }
        }
        if self.scratch.len() >= 64 * 1024 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.crc.update(&self.scratch);
        self.scratch.clear();
    }

    /// The CRC so far.
    fn crc32(mut self) -> crc32fast::Hasher {
        self.flush();
        self.crc
    }

    /// Returns the footer value.
    pub(crate) fn finish(self) -> String {
        format!("{:08x}", self.crc32().finalize())
    }
}

/// One checked block: its number of rows and the CRC-32 of its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Entries in the block.
    pub rows: u64,
    /// CRC-32 of the block's canonical entry stream.
    pub crc32: u32,
}

/// Cuts entries into blocks and checksums each; the whole-object checksum is the blocks' CRCs
/// combined, so every byte goes through the CRC once.
#[derive(Clone, Default)]
pub(crate) struct BlockChecksums {
    current: EntriesChecksum,
    whole: crc32fast::Hasher,
    rows: u64,
    bytes: u64,
    done: Vec<Block>,
}

impl BlockChecksums {
    /// Adds entries, in order.
    pub(crate) fn update<'a>(&mut self, entries: impl Iterator<Item = EntryRef<'a>>) {
        for entry in entries {
            self.current.entry(entry.id, entry.field_count(), entry.fields());
            self.rows += 1;
            self.bytes += entry.payload_len() as u64;
            if self.rows >= BLOCK_ENTRIES || self.bytes >= BLOCK_BYTES {
                self.close();
            }
        }
    }

    /// Rows the current block takes before it closes by count (it may close earlier by bytes).
    pub(crate) fn rows_left(&self) -> u64 {
        BLOCK_ENTRIES - self.rows
    }

    fn close(&mut self) {
        if self.rows > 0 {
            let crc = std::mem::take(&mut self.current).crc32();
            self.whole.combine(&crc);
            self.done.push(Block {
                rows: self.rows,
                crc32: crc.finalize(),
            });
            self.rows = 0;
            self.bytes = 0;
        }
    }

    /// Returns the footer values: the entries checksum and the block checksums.
    pub(crate) fn finish(mut self) -> (String, String) {
        self.close();
        (
            format!("{:08x}", self.whole.finalize()),
            format_blocks(&self.done),
        )
    }
}

fn format_blocks(blocks: &[Block]) -> String {
    blocks
        .iter()
        .map(|b| format!("{}:{:08x}", b.rows, b.crc32))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses the footer value of [`BLOCKS_KEY`].
///
/// # Errors
/// [`Error::Corrupt`] when it is malformed.
pub fn parse_blocks(value: &str) -> Result<Vec<Block>> {
    value
        .split(',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let parsed = part.split_once(':').and_then(|(rows, crc)| {
                Some(Block {
                    rows: rows.parse().ok().filter(|r| *r > 0)?,
                    crc32: u32::from_str_radix(crc, 16).ok().filter(|_| crc.len() == 8)?,
                })
            });
            parsed.ok_or_else(|| Error::corrupt(format!("bad block checksum `{part}` in `{BLOCKS_KEY}`")))
        })
        .collect()
}

/// Checks the entries of one whole block.
///
/// # Errors
/// [`Error::Corrupt`] when the count or the checksum differs.
pub fn verify_block(entries: &[Entry], block: Block) -> Result<()> {
    if entries.len() as u64 != block.rows {
        return Err(Error::corrupt(format!(
            "a block holds {} entries but its checksum covers {}",
            entries.len(),
            block.rows
        )));
    }
    let mut checksum = EntriesChecksum::default();
    checksum.update(entries);
    let actual = checksum.crc32().finalize();
    if actual != block.crc32 {
        return Err(Error::corrupt(format!(
            "block checksum is `{actual:08x}` but the footer says `{:08x}`",
            block.crc32
        )));
    }
    Ok(())
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

    #[test]
    fn blocks_cut_by_count_and_bytes_and_parse_back() {
        let small: Vec<Entry> = (0..(BLOCK_ENTRIES * 2 + 5))
            .map(|i| {
                Entry::new(
                    StreamId::new(i, 0),
                    vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))],
                )
            })
            .collect();
        let mut blocks = BlockChecksums::default();
        let batch = crate::EntryBatch::from_entries(&small);
        blocks.update(batch.range(0..10));
        blocks.update(batch.range(10..batch.len()));
        let (whole, blocks) = blocks.finish();
        let mut plain = EntriesChecksum::default();
        plain.update(&small);
        assert_eq!(
            whole,
            plain.finish(),
            "combined block CRCs equal the whole stream's CRC"
        );
        let parsed = parse_blocks(&blocks).unwrap();
        assert_eq!(
            parsed.iter().map(|b| b.rows).collect::<Vec<_>>(),
            vec![BLOCK_ENTRIES, BLOCK_ENTRIES, 5]
        );
        let first = &small[..BLOCK_ENTRIES as usize];
        verify_block(first, parsed[0]).unwrap();
        assert!(verify_block(&small[1..=BLOCK_ENTRIES as usize], parsed[0]).is_err());
        let big = Bytes::from(vec![0u8; (BLOCK_BYTES / 2) as usize]);
        let large: Vec<Entry> = (0..3)
            .map(|i| Entry::new(StreamId::new(i, 0), vec![(Bytes::new(), big.clone())]))
            .collect();
        let mut blocks = BlockChecksums::default();
        blocks.update(crate::EntryBatch::from_entries(&large).iter());
        let (whole, blocks) = blocks.finish();
        let mut plain = EntriesChecksum::default();
        plain.update(&large);
        assert_eq!(whole, plain.finish());
        let parsed = parse_blocks(&blocks).unwrap();
        assert_eq!(parsed.iter().map(|b| b.rows).collect::<Vec<_>>(), vec![2, 1]);
        assert!(parse_blocks("12:zz").is_err());
        assert!(parse_blocks("0:00000000").is_err());
        assert_eq!(parse_blocks("").unwrap(), vec![]);
    }
}
