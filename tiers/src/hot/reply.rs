//! Turns the replies of the read and trim scripts into typed values.

use streamtier_schemas::{EntryBatch, StreamId};

use super::raw::Item;
use super::{ReadBatch, StreamInfo, TrimOutcome};
use crate::{Error, Result};

fn protocol(stream: &str, reason: impl Into<String>) -> Error {
    Error::Protocol {
        key: stream.to_string(),
        reason: reason.into(),
    }
}

fn text(stream: &str, v: &Item) -> Result<String> {
    match v {
        Item::Bulk(b) => String::from_utf8(b.to_vec()).map_err(|_| protocol(stream, "non-utf-8 text")),
        Item::Int(i) => Ok(i.to_string()),
        other => Err(protocol(stream, format!("expected text, got {other:?}"))),
    }
}

fn int(stream: &str, v: &Item) -> Result<u64> {
    text(stream, v)?
        .parse()
        .map_err(|_| protocol(stream, format!("expected an integer, got {v:?}")))
}

fn id(stream: &str, v: &Item) -> Result<StreamId> {
    let t = text(stream, v)?;
    t.parse()
        .map_err(|_| protocol(stream, format!("bad entry id `{t}`")))
}

fn opt_id(stream: &str, v: &Item) -> Result<Option<StreamId>> {
    match v {
        Item::Nil => Ok(None),
        v => id(stream, v).map(Some),
    }
}

pub(crate) fn parse_read(stream: &str, v: Item, entries: EntryBatch) -> Result<ReadBatch> {
    let Item::Array(mut items) = v else {
        return Err(protocol(stream, "read reply is not an array"));
    };
    if items.len() < 2 {
        // {0, nil} loses its trailing nil in Lua's conversion.
        items.resize(2, Item::Nil);
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

pub(crate) fn parse_trim(stream: &str, v: Item) -> Result<TrimOutcome> {
    let Item::Array(items) = v else {
        return Err(protocol(stream, format!("trim reply is not an array: {v:?}")));
    };
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
                .map(|g| match g {
                    Item::Nil => Ok(String::new()),
                    g => text(stream, g),
                })
                .collect::<Result<_>>()?,
        }),
        other => Err(protocol(stream, format!("unexpected trim status `{other}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static [u8]) -> Item {
        Item::Bulk(bytes::Bytes::from_static(s))
    }

    #[test]
    fn missing_stream_reads_as_no_info() {
        let batch = parse_read("s", Item::Array(vec![Item::Int(0)]), EntryBatch::default()).unwrap();
        assert!(batch.info.is_none());
        assert!(batch.fence.is_none());
    }

    #[test]
    fn read_replies_become_stream_info() {
        let reply = Item::Array(vec![
            Item::Int(1),
            b(b"4-0"),
            Item::Int(3),
            Item::Int(9),
            b(b"5-0"),
            b(b"7-1"),
            b(b"0-0"),
            b(b"5-0"),
            b(b"7-1"),
        ]);
        let batch = parse_read("s", reply, EntryBatch::default()).unwrap();
        assert_eq!(batch.fence, Some(StreamId::new(4, 0)));
        let info = batch.info.unwrap();
        assert_eq!((info.length, info.entries_added), (3, 9));
        assert_eq!(info.last_entry_id, Some(StreamId::new(7, 1)));
        let short = Item::Array(vec![Item::Int(1), Item::Nil, Item::Int(3)]);
        assert!(parse_read("s", short, EntryBatch::default()).is_err());
    }

    #[test]
    fn trim_replies_become_outcomes() {
        let ok = Item::Array(vec![b(b"ok"), Item::Int(4), b(b"9-0"), Item::Int(2), b(b"g1")]);
        assert_eq!(
            parse_trim("s", ok).unwrap(),
            TrimOutcome::Trimmed {
                trimmed: 4,
                bound: Some(StreamId::new(9, 0)),
                length: 2,
                behind: vec!["g1".into()],
            }
        );
        assert_eq!(
            parse_trim("s", Item::Array(vec![b(b"missing")])).unwrap(),
            TrimOutcome::Missing
        );
        assert!(parse_trim("s", Item::Array(vec![b(b"what")])).is_err());
    }
}
