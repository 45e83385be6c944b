//! Reading a partition without writing anywhere: the archive and the hot window as one range in
//! id order, as JSON lines (the entries route and `streamtier read`). Memory stays that of one
//! source batch whatever the range: lines are produced as the reader takes them.

use bytes::Bytes;
use futures::Stream;
use streamtier_schemas::json::entry_json_line;
use streamtier_schemas::{Report, StreamId};

use crate::range::{parse_bound, IdRange};
use crate::source::PartitionSource;
use crate::{Error, Result};

/// The range of a read: from `from` (inclusive) or after `after` (exclusive), to `to`
/// (exclusive); each an RFC 3339 time or an entry id. `after` a time excludes that whole
/// millisecond.
///
/// # Errors
/// [`Error::Invalid`] naming the field that is malformed (or `after` given with `from`),
/// [`Error::Unacceptable`] when `to` is not after the start.
pub fn read_range(from: Option<&str>, after: Option<&str>, to: Option<&str>) -> Result<IdRange> {
    let start = match (from, after) {
        (Some(_), Some(_)) => {
            return Err(Error::Invalid {
                field: "after".into(),
                reason: "give `from` or `after`, not both".into(),
            })
        }
        (Some(f), None) => parse_bound("from", f)?,
        (None, Some(a)) => {
            let bound = parse_bound("after", a)?;
            // An id excludes itself; a time (or bare milliseconds) its whole millisecond.
            let next = if a.trim().contains('-') && a.trim().parse::<StreamId>().is_ok() {
                bound.successor()
            } else {
                bound.ms.checked_add(1).map(|ms| StreamId::new(ms, 0))
            };
            next.ok_or_else(|| Error::Unacceptable {
                field: "after".into(),
                reason: "nothing comes after the last possible id".into(),
            })?
        }
        (None, None) => StreamId::MIN,
    };
    let to = to.map(|t| parse_bound("to", t)).transpose()?;
    if to.is_some_and(|t| t <= start) {
        return Err(Error::Unacceptable {
            field: "to".into(),
            reason: "must be after the start of the range".into(),
        });
    }
    Ok(IdRange { from: start, to })
}

/// The entries of `source`, at most `limit`, as JSON lines (see `streamtier_schemas::json`),
/// one chunk per source batch. A failure after the first line cannot become an HTTP status any
/// more: it ends the lines with `{"error": "…"}`.
pub fn json_lines(source: PartitionSource, limit: Option<u64>) -> impl Stream<Item = Bytes> + Send {
    futures::stream::unfold(
        (Some(source), limit.unwrap_or(u64::MAX)),
        |(source, left)| async move {
            let mut source = source?;
            if left == 0 {
                return None;
            }
            match source.next_batch().await {
                Ok(Some(entries)) => {
                    let take = entries.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let mut out = Vec::with_capacity(take * 64);
                    for e in &entries[..take] {
                        entry_json_line(e, &mut out);
                    }
                    Some((Bytes::from(out), (Some(source), left - take as u64)))
                }
                Ok(None) => None,
                Err(e) => {
                    let mut out = b"{\"error\":".to_vec();
                    serde_json::to_writer(&mut out, &Report(&e).to_string()).ok()?;
                    out.extend_from_slice(b"}\n");
                    Some((Bytes::from(out), (None, 0)))
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_start_at_from_or_after_after() {
        let r = read_range(Some("5-1"), None, Some("9-0")).unwrap();
        assert_eq!((r.from, r.to), (StreamId::new(5, 1), Some(StreamId::new(9, 0))));
        assert_eq!(
            read_range(None, Some("5-1"), None).unwrap().from,
            StreamId::new(5, 2)
        );
        // After a time: the next millisecond.
        let r = read_range(None, Some("1970-01-01T00:00:00.005Z"), None).unwrap();
        assert_eq!(r.from, StreamId::new(6, 0));
        assert_eq!(
            read_range(None, Some("5"), None).unwrap().from,
            StreamId::new(6, 0)
        );
        assert_eq!(read_range(None, None, None).unwrap(), IdRange::ALL);
        let field = |e: Error| match e {
            Error::Invalid { field, .. } | Error::Unacceptable { field, .. } => field,
            other => panic!("{other}"),
        };
        assert_eq!(
            field(read_range(Some("1-0"), Some("1-0"), None).unwrap_err()),
            "after"
        );
        assert_eq!(field(read_range(Some("soon"), None, None).unwrap_err()), "from");
        assert_eq!(
            field(read_range(Some("5-0"), None, Some("5-0")).unwrap_err()),
            "to"
        );
    }
}
