//! The range a replay covers: `from` (inclusive) and `to` (exclusive), each an RFC 3339 time or
//! an entry id.

use serde::{Deserialize, Serialize};
use streamtier_schemas::{parse_rfc3339_ms, StreamId};

use crate::{Error, Result};

/// A resolved id range: ids `>= from` and `< to` (no upper end when `to` is `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IdRange {
    /// First id included.
    #[schema(value_type = String, example = "1762041600000-0")]
    pub from: StreamId,
    /// First id excluded; none for no end.
    #[schema(value_type = Option<String>)]
    pub to: Option<StreamId>,
}

impl IdRange {
    /// Everything.
    pub const ALL: IdRange = IdRange {
        from: StreamId::MIN,
        to: None,
    };

    /// Answers whether `id` lies in the range.
    pub fn contains(&self, id: StreamId) -> bool {
        id >= self.from && self.to.is_none_or(|to| id < to)
    }

    /// Answers whether every id after `id` lies past the range end.
    pub fn ends_at_or_before(&self, id: StreamId) -> bool {
        self.to
            .is_some_and(|to| id.successor().is_none_or(|next| next >= to))
    }

    /// The last id included, if the range has an end and is not empty.
    pub fn last(&self) -> Option<StreamId> {
        self.to
            .and_then(StreamId::predecessor)
            .filter(|last| *last >= self.from)
    }

    /// Parses `from` and `to` as the request gives them; `field_from`/`field_to` name them in
    /// errors.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a bound is neither an RFC 3339 time nor an entry id,
    /// [`Error::Unacceptable`] when `from` is not before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<IdRange> {
        let from_id = from.map(|f| parse_bound("from", f)).transpose()?;
        let to_id = to.map(|t| parse_bound("to", t)).transpose()?;
        if let (Some(f), Some(t)) = (from_id, to_id) {
            if f >= t {
                return Err(Error::Unacceptable {
                    field: "from".into(),
                    reason: format!("`from` ({f}) must be before `to` ({t}); `to` is exclusive"),
                });
            }
        }
        Ok(IdRange {
            from: from_id.unwrap_or(StreamId::MIN),
            to: to_id,
        })
    }
}

/// Parses one bound: `2026-11-01T00:00:00Z` (any RFC 3339 offset) becomes `<ms>-0`; an entry
/// id is taken as is; a bare number is a millisecond id (`<ms>-0`).
///
/// # Errors
/// [`Error::Invalid`] naming `field`.
pub fn parse_bound(field: &str, text: &str) -> Result<StreamId> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !text.starts_with('-') {
        if let Ok(id) = text.parse::<StreamId>() {
            return Ok(id);
        }
        if let Ok(ms) = text.parse::<u64>() {
            return Ok(StreamId::new(ms, 0));
        }
    }
    match parse_rfc3339_ms(text) {
        Some(ms) if ms >= 0 => Ok(StreamId::new(ms as u64, 0)),
        Some(_) => Err(Error::Invalid {
            field: field.into(),
            reason: format!("`{text}` is before 1970, where no entry id can be"),
        }),
        None => Err(Error::Invalid {
            field: field.into(),
            reason: format!(
                "`{text}` is neither an RFC 3339 time (2026-11-01T00:00:00Z) nor an entry id (1762041600000-0)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_as_times_or_ids() {
        assert_eq!(
            parse_bound("from", "1762041600000-5").unwrap(),
            StreamId::new(1_762_041_600_000, 5)
        );
        assert_eq!(
            parse_bound("from", "1762041600000").unwrap(),
            StreamId::new(1_762_041_600_000, 0)
        );
        assert_eq!(
            parse_bound("from", "2025-11-02T00:00:00Z").unwrap(),
            StreamId::new(1_762_041_600_000, 0)
        );
        assert_eq!(
            parse_bound("from", "2025-11-02T01:00:00+01:00").unwrap(),
            StreamId::new(1_762_041_600_000, 0)
        );
        let err = parse_bound("to", "yesterday").unwrap_err();
        assert!(err.to_string().contains("`to`"), "{err}");
        assert!(parse_bound("to", "1-2-3").is_err());
        assert!(parse_bound("to", "").is_err());
    }

    #[test]
    fn ranges_are_half_open_and_checked() {
        let r = IdRange::parse(Some("10-0"), Some("20-0")).unwrap();
        assert!(r.contains(StreamId::new(10, 0)));
        assert!(r.contains(StreamId::new(19, u64::MAX)));
        assert!(!r.contains(StreamId::new(20, 0)));
        assert_eq!(r.last(), Some(StreamId::new(19, u64::MAX)));
        assert!(r.ends_at_or_before(StreamId::new(19, u64::MAX)));
        assert!(!r.ends_at_or_before(StreamId::new(19, 5)));
        let err = IdRange::parse(Some("20-0"), Some("20-0")).unwrap_err();
        assert!(matches!(err, Error::Unacceptable { ref field, .. } if field == "from"));
        assert!(IdRange::ALL.contains(StreamId::MAX));
    }
}
