//! Reads an object's metadata from the end of its Parquet file, without fetching the rest.

use parquet::file::metadata::ParquetMetaDataReader;
use streamtier_schemas::{Error, ObjectMeta, Result};

const MAGIC: &[u8] = b"PAR1";

fn corrupt(reason: impl Into<String>) -> Error {
    Error::Corrupt {
        reason: reason.into(),
    }
}

/// How many bytes from the end of the file hold the footer, read from its last 8 bytes.
///
/// # Errors
/// [`Error::Corrupt`] when `tail` does not end like a Parquet file.
pub fn footer_len(tail: &[u8]) -> Result<u64> {
    if tail.len() < 8 || &tail[tail.len() - 4..] != MAGIC {
        return Err(corrupt("not a parquet file: missing `PAR1` at the end"));
    }
    let n = &tail[tail.len() - 8..tail.len() - 4];
    Ok(u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as u64 + 8)
}

/// Decodes streamtier's metadata from the last bytes of an object (at least [`footer_len`]).
///
/// # Errors
/// [`Error::Corrupt`] or [`Error::Parquet`] when the footer is unreadable, and the metadata
/// errors of [`ObjectMeta::from_pairs`].
pub fn read_meta(tail: &[u8]) -> Result<ObjectMeta> {
    let len = footer_len(tail)? as usize;
    if tail.len() < len {
        return Err(corrupt("footer is longer than the bytes read"));
    }
    let meta = ParquetMetaDataReader::decode_metadata(&tail[tail.len() - len..tail.len() - 8])
        .map_err(|source| Error::Parquet { source })?;
    let kv = meta
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    ObjectMeta::from_pairs(
        kv.iter()
            .map(|kv| (kv.key.as_str(), kv.value.as_deref().unwrap_or(""))),
    )
}
