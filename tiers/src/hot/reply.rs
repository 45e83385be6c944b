//! Turns the replies of the read and trim scripts into typed values, losslessly.

use bytes::Bytes;
use redis::Value;
use streamtier_schemas::{Entry, EntryBatch, StreamId};

use super::{ReadBatch, StreamInfo, TrimOutcome};
use crate::{Error, Result};

fn protocol(stream: &str, reason: impl Into<String>) -> Error {
    Error::Protocol {
        key: stream.to_string(),
        reason: reason.into(),
    }
}

fn text(stream: &str, v: &Value) -> Result<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| protocol(stream, "non-utf-8 text")),
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Okay => Ok("OK".to_string()),
        other => Err(protocol(stream, format!("expected text, got {other:?}"))),
    }
}

fn opt_text(stream: &str, v: &Value) -> Result<Option<String>> {
    match v {
        Value::Nil => Ok(None),
        v => text(stream, v).map(Some),
    }
}

fn int(stream: &str, v: &Value) -> Result<u64> {
    text(stream, v)?
        .parse()
        .map_err(|_| protocol(stream, format!("expected an integer, got {v:?}")))
}

fn id(stream: &str, v: &Value) -> Result<StreamId> {
    let t = text(stream, v)?;
    t.parse()
        .map_err(|_| protocol(stream, format!("bad entry id `{t}`")))
}

fn opt_id(stream: &str, v: &Value) -> Result<Option<StreamId>> {
    match v {
        Value::Nil => Ok(None),
        v => id(stream, v).map(Some),
    }
}

fn array<'a>(stream: &str, v: &'a Value) -> Result<&'a [Value]> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Set(a) => Ok(a),
        other => Err(protocol(stream, format!("expected an array, got {other:?}"))),
    }
}

fn bulk(v: Value) -> Option<Bytes> {
    match v {
        Value::BulkString(b) => Some(Bytes::from(b)),
        Value::SimpleString(s) => Some(Bytes::from(s)),
        _ => None,
    }
}

/// Parses an `XRANGE` reply (`[[id, [name, value, …]], …]`) keeping field order and repeats.
pub(crate) fn parse_entries(stream: &str, v: Value) -> Result<Vec<Entry>> {
    let Value::Array(items) = v else {
        return Err(protocol(stream, "XRANGE reply is not an array"));
    };
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut pair) = item else {
            return Err(protocol(stream, "XRANGE item is not an array"));
        };
        if pair.len() != 2 {
            return Err(protocol(stream, "XRANGE item is not [id, fields]"));
        }
        let fields_v = pair.pop().unwrap_or(Value::Nil);
        let entry_id = id(stream, &pair[0])?;
        let flat = match fields_v {
            Value::Array(flat) => flat,
            // A Lua script turns an empty table into nil.
            Value::Nil => Vec::new(),
            _ => return Err(protocol(stream, "XRANGE fields are not an array")),
        };
        if flat.len() % 2 != 0 {
            return Err(protocol(
                stream,
                format!("entry `{entry_id}` has an odd number of field items"),
            ));
        }
        let mut fields = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(n), Some(v)) = (it.next(), it.next()) {
            match (bulk(n), bulk(v)) {
                (Some(n), Some(v)) => fields.push((n, v)),
                _ => {
                    return Err(protocol(
                        stream,
                        format!("entry `{entry_id}` has a non-string field"),
                    ))
                }
            }
        }
        entries.push(Entry { id: entry_id, fields });
    }
    Ok(entries)
}

pub(crate) fn parse_read(stream: &str, v: Value, entries: EntryBatch) -> Result<ReadBatch> {
    let Value::Array(mut items) = v else {
        return Err(protocol(stream, "read reply is not an array"));
    };
    if items.len() < 2 {
        // {0, nil} loses its trailing nil in Lua's conversion.
        items.resize(2, Value::Nil);
    }
    let exists = int(stream, &items[0])? == 1;
    let fence = opt_id(stream, &items[1])?;
    if !exists {
        return Ok(ReadBatch {
            entries: EntryBatch::default(),
            info: None,
            fence,
        });
    }
    if items.len() != 9 {
        return Err(protocol(
            stream,
            format!("read reply has {} items, expected 9", items.len()),
        ));
    }
    let info = StreamInfo {
        length: int(stream, &items[2])?,
        entries_added: int(stream, &items[3])?,
        first_id: opt_id(stream, &items[4])?,
        last_generated_id: id(stream, &items[5])?,
        max_deleted_id: id(stream, &items[6])?,
        recorded_first_id: id(stream, &items[7])?,
        last_entry_id: opt_id(stream, &items[8])?,
    };
    Ok(ReadBatch {
        entries,
        info: Some(info),
        fence,
    })
}

pub(crate) fn parse_trim(stream: &str, v: Value) -> Result<TrimOutcome> {
    let items = array(stream, &v)?;
    let status = items
        .first()
        .map(|s| text(stream, s))
        .transpose()?
        .unwrap_or_default();
    match status.as_str() {
        "missing" => Ok(TrimOutcome::Missing),
        "regressed" => Ok(TrimOutcome::Regressed),
        "recreated" => Ok(TrimOutcome::Recreated),
        "ok" if items.len() >= 4 => Ok(TrimOutcome::Trimmed {
            trimmed: int(stream, &items[1])?,
            bound: opt_id(stream, &items[2])?,
            length: int(stream, &items[3])?,
            behind: items[4..]
                .iter()
                .map(|g| opt_text(stream, g).map(Option::unwrap_or_default))
                .collect::<Result<_>>()?,
        }),
        other => Err(protocol(stream, format!("unexpected trim status `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    #[test]
    fn entries_keep_order_repeats_and_binary() {
        let reply = Value::Array(vec![Value::Array(vec![
            b(b"5-1"),
            Value::Array(vec![b(b"a"), b(b"\xff\x00"), b(b"a"), b(b""), b(b"z"), b(b"1")]),
        ])]);
        let entries = parse_entries("s", reply).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id, StreamId::new(5, 1));
        let names: Vec<&[u8]> = entries[0].fields.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(names, vec![&b"a"[..], b"a", b"z"]);
        assert_eq!(entries[0].fields[0].1.as_ref(), b"\xff\x00");
        assert_eq!(entries[0].fields[1].1.as_ref(), b"");
    }

    #[test]
    fn odd_field_lists_are_refused() {
        let reply = Value::Array(vec![Value::Array(vec![b(b"1-0"), Value::Array(vec![b(b"a")])])]);
        assert!(parse_entries("s", reply).is_err());
    }

    #[test]
    fn missing_stream_reads_as_no_info() {
        let batch = parse_read("s", Value::Array(vec![Value::Int(0)]), EntryBatch::default()).unwrap();
        assert!(batch.info.is_none());
        assert!(batch.fence.is_none());
    }
}
