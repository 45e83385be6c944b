//! Parsing the human values of the settings (durations, sizes) and refusing them naming the key.

use std::time::Duration;

use super::MAX_DURATION;
use crate::{Error, Result};

/// The error for `key`, refused for `reason`.
pub(super) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidSettings {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Parses a human duration such as `60s`, `1h30m` or `250ms`.
///
/// # Errors
/// [`Error::InvalidSettings`] naming `key`.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        invalid(
            key,
            format!("`{value}` is not a duration (e.g. `60s`, `1h`): {e}"),
        )
    })
}

/// Parses a human duration of at most [`MAX_DURATION`].
///
/// # Errors
/// [`Error::InvalidSettings`] naming `key`.
pub(super) fn parse_bounded(key: &str, value: &str) -> Result<Duration> {
    let d = parse_duration(key, value)?;
    if d > parse_duration(key, MAX_DURATION)? {
        return Err(invalid(key, format!("must be at most {MAX_DURATION}")));
    }
    Ok(d)
}

/// Parses a size such as `128MiB`, `8MB`, `4096` (bytes).
///
/// # Errors
/// [`Error::InvalidSettings`] naming `key`.
pub fn parse_size(key: &str, value: &str) -> Result<u64> {
    streamtier_schemas::units::size_bytes(value).ok_or_else(|| {
        invalid(
            key,
            format!("`{value}` is not a size (e.g. `128MiB`, `8MB`, `4096`)"),
        )
    })
}

/// Refuses a size above `max` (a size constant such as [`super::MAX_BATCH_BYTES`]).
pub(super) fn at_most(key: &str, bytes: u64, max: &str) -> Result<()> {
    if bytes > parse_size(key, max)? {
        return Err(invalid(key, format!("must be at most {max}")));
    }
    Ok(())
}
