//! The archive read transaction's reply, parsed as it arrives: its entries become ranges of
//! the reply buffer in the same pass that finds where the reply ends, so the largest part of
//! every read is looked at once.

use bytes::Bytes;
use streamtier_schemas::{EntryBatch, EntryBatchBuilder, StreamId};

use super::resp::{header, unexpected, Cursor, Failure, Incoming, Item, Walk};

/// Entries a parser makes room for up front, whatever the reply announces.
const MAX_PRESIZE: usize = 65_536;

/// The parsed `EXEC` reply of the read transaction.
pub(crate) struct ReadReply {
    /// The bookkeeping script's reply.
    pub(crate) info: Item,
    /// The `XRANGE` entries.
    pub(crate) entries: EntryBatch,
}

/// Where the parser is in (`ASKING`'s `+OK`,) `+OK`, `+QUEUED` ×2, `EXEC`'s `*2`, the
/// script's reply, the `XRANGE` reply.
enum Phase {
    /// The three status replies.
    Head(Walk),
    /// The `EXEC` header.
    Exec,
    /// The script's reply.
    Script(Walk),
    /// The `XRANGE` array header.
    Range,
    /// Entries still to come.
    Entries(usize),
    /// Anything of another shape: walked to its end, judged by [`XrangeTx::finish`].
    Other(Walk),
    /// Whole.
    Done,
}

/// Reads the reply of `MULTI`, `EVALSHA`, `XRANGE`, `EXEC` as it arrives (see [`Incoming`]).
pub(super) struct XrangeTx {
    phase: Phase,
    pos: usize,
    entries: Option<EntryBatchBuilder>,
    /// The transaction was sent after `ASKING`.
    asking: bool,
}

impl XrangeTx {
    pub(super) fn new(asking: bool) -> Self {
        Self {
            phase: Phase::Head(Walk::new(3 + usize::from(asking))),
            pos: 0,
            entries: None,
            asking,
        }
    }

    /// The reply, once whole (a `NOSCRIPT` failure asks for the script's body).
    pub(super) fn finish(self, reply: &Bytes) -> Result<ReadReply, Failure> {
        let mut c = Cursor::new(reply);
        if self.asking {
            c.simple()?;
        }
        c.simple()?;
        // A command refused while queuing is reported here; EXEC then only says EXECABORT.
        let queued = [c.simple(), c.simple()];
        let exec = c.array();
        for q in queued {
            q?;
        }
        if exec? != 2 {
            return Err(Failure::Protocol("EXEC did not answer two replies".into()));
        }
        let info = c.item(0)?;
        let entries = match self.entries {
            Some(builder) => builder
                .finish(reply.clone())
                .map_err(|e| Failure::Protocol(e.to_string()))?,
            // Not an array of entries: an error reply, or a nil array (no entries).
            None => {
                c.array()?;
                EntryBatch::default()
            }
        };
        Ok(ReadReply { info, entries })
    }

    /// Parses the entry at `self.pos`: `Ok(false)` when it has not fully arrived.
    fn entry(&mut self, buf: &[u8]) -> Result<bool, Failure> {
        let Some(builder) = self.entries.as_mut() else {
            return Err(Failure::Protocol("entries without a builder".into()));
        };
        let Some((kind, n, mut pos)) = header(buf, self.pos)? else {
            return Ok(false);
        };
        if kind != b'*' || n != 2 {
            return Err(Failure::Protocol("XRANGE item is not [id, fields]".into()));
        }
        let Some(id) = bulk(buf, &mut pos)? else {
            return Ok(false);
        };
        let id_text = &buf[id];
        let id = StreamId::parse_ascii(id_text).ok_or_else(|| {
            Failure::Protocol(format!("bad entry id `{}`", String::from_utf8_lossy(id_text)))
        })?;
        let Some((kind, items, body)) = header(buf, pos)? else {
            return Ok(false);
        };
        if kind != b'*' {
            return Err(unexpected(kind, "an array of fields"));
        }
        if items % 2 != 0 {
            return Err(Failure::Protocol(format!(
                "entry `{id}` has an odd number of field items"
            )));
        }
        pos = body;
        let mark = builder.mark();
        builder.entry(id);
        for _ in 0..items / 2 {
            let (Some(name), Some(value)) = (bulk(buf, &mut pos)?, bulk(buf, &mut pos)?) else {
                builder.rollback(mark);
                return Ok(false);
            };
            builder
                .field(name, value)
                .map_err(|e| Failure::Protocol(e.to_string()))?;
        }
        self.pos = pos;
        Ok(true)
    }
}

impl Incoming for XrangeTx {
    fn end(&self) -> usize {
        self.pos
    }

    fn advance(&mut self, buf: &[u8]) -> Result<bool, Failure> {
        loop {
            match &mut self.phase {
                Phase::Head(walk) | Phase::Script(walk) | Phase::Other(walk) => {
                    if !walk.advance(buf)? {
                        return Ok(false);
                    }
                    self.pos = walk.end();
                    self.phase = match self.phase {
                        Phase::Head(_) => Phase::Exec,
                        Phase::Script(_) => Phase::Range,
                        _ => Phase::Done,
                    };
                }
                Phase::Exec => match header(buf, self.pos)? {
                    None => return Ok(false),
                    Some((b'*', 2, body)) => {
                        self.pos = body;
                        self.phase = Phase::Script(Walk::at(body, 1));
                    }
                    Some(_) => self.phase = Phase::Other(Walk::at(self.pos, 1)),
                },
                Phase::Range => match header(buf, self.pos)? {
                    None => return Ok(false),
                    Some((b'*', n, body)) if n >= 0 => {
                        let n = n as usize;
                        self.pos = body;
                        self.entries = Some(EntryBatchBuilder::new(n.min(MAX_PRESIZE)));
                        self.phase = Phase::Entries(n);
                    }
                    Some(_) => self.phase = Phase::Other(Walk::at(self.pos, 1)),
                },
                Phase::Entries(0) => self.phase = Phase::Done,
                Phase::Entries(left) => {
                    let left = *left;
                    if !self.entry(buf)? {
                        return Ok(false);
                    }
                    self.phase = Phase::Entries(left - 1);
                }
                Phase::Done => return Ok(true),
            }
        }
    }
}

/// The bulk string at `*pos`, moving past it: `Ok(None)` when it has not fully arrived.
fn bulk(buf: &[u8], pos: &mut usize) -> Result<Option<std::ops::Range<usize>>, Failure> {
    match header(buf, *pos)? {
        None => Ok(None),
        Some((b'$', len, body)) if len >= 0 => {
            let end = body + len as usize;
            if end + 2 > buf.len() {
                return Ok(None);
            }
            *pos = end + 2;
            Ok(Some(body..end))
        }
        Some((kind, _, _)) => Err(unexpected(kind, "a bulk string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSACTION: &[u8] = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n*3\r\n:1\r\n$-1\r\n:7\r\n\
*2\r\n*2\r\n$3\r\n5-1\r\n*6\r\n$1\r\na\r\n$2\r\n\xff\x00\r\n$1\r\na\r\n$0\r\n\r\n$1\r\nz\r\n$4\r\n\r\n\r\n\r\n\
*2\r\n$3\r\n6-0\r\n*0\r\n";

    /// Feeds `data` in pieces of `piece` bytes, as reads would deliver it.
    fn parse_in_pieces(data: &[u8], piece: usize) -> Result<ReadReply, Failure> {
        let mut tx = XrangeTx::new(false);
        let mut end = 0;
        loop {
            end = (end + piece).min(data.len());
            if tx.advance(&data[..end])? {
                assert_eq!(tx.end(), data.len(), "the reply ends where the data does");
                return tx.finish(&Bytes::copy_from_slice(data));
            }
            if end == data.len() {
                return Err(Failure::Protocol("incomplete".into()));
            }
        }
    }

    fn parse(data: &[u8]) -> Result<ReadReply, Failure> {
        parse_in_pieces(data, data.len())
    }

    #[test]
    fn entries_are_parsed_losslessly_whatever_the_read_sizes() {
        for piece in [1, 2, 3, 5, 7, 11, 64, 4096] {
            let reply = parse_in_pieces(TRANSACTION, piece).unwrap();
            assert_eq!(
                reply.info,
                Item::Array(vec![Item::Int(1), Item::Nil, Item::Int(7)])
            );
            assert_eq!(reply.entries.len(), 2);
            let e = reply.entries.get(0);
            assert_eq!(e.id, StreamId::new(5, 1));
            let fields: Vec<(&[u8], &[u8])> = e.fields().collect();
            assert_eq!(
                fields,
                vec![(&b"a"[..], &b"\xff\x00"[..]), (b"a", b""), (b"z", b"\r\n\r\n")],
                "piece {piece}"
            );
            assert_eq!(reply.entries.get(1).id, StreamId::new(6, 0));
            assert_eq!(reply.entries.get(1).field_count(), 0);
        }
        // Incomplete: never done.
        assert!(parse(&TRANSACTION[..TRANSACTION.len() - 1]).is_err());
    }

    #[test]
    fn noscript_asks_for_a_load_and_other_errors_are_reported() {
        let noscript = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-NOSCRIPT No matching script\r\n*0\r\n";
        assert!(matches!(parse(noscript), Err(f) if super::super::script::is_noscript(&f)));
        let wrongtype =
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-WRONGTYPE key `k` is a hash\r\n-WRONGTYPE x\r\n";
        assert!(matches!(parse(wrongtype), Err(Failure::Server(m)) if m.contains("is a hash")));
        let range_error = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n-WRONGTYPE x\r\n";
        assert!(matches!(parse(range_error), Err(Failure::Server(m)) if m == "WRONGTYPE x"));
        let aborted =
            b"+OK\r\n-ERR wrong number of arguments\r\n+QUEUED\r\n-EXECABORT Transaction discarded\r\n";
        assert!(matches!(parse(aborted), Err(Failure::Server(m)) if m.contains("wrong number")));
        let nil = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*-1\r\n";
        assert_eq!(parse(nil).unwrap().entries.len(), 0);
        // After ASKING: one more status first.
        let mut asked = b"+OK\r\n".to_vec();
        asked.extend_from_slice(nil);
        let mut tx = XrangeTx::new(true);
        assert!(tx.advance(&asked).unwrap());
        assert_eq!(tx.end(), asked.len());
        assert_eq!(tx.finish(&Bytes::from(asked)).unwrap().entries.len(), 0);
        let moved = b"+OK\r\n-MOVED 12 127.0.0.1:7001\r\n-MOVED 12 127.0.0.1:7001\r\n-EXECABORT x\r\n";
        assert!(matches!(parse(moved), Err(Failure::Server(m)) if m.starts_with("MOVED")));
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        for bad in [
            &b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*1\r\n*2\r\n$3\r\nbad\r\n*0\r\n"[..],
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*1\r\n$1\r\na\r\n",
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*1\r\n*3\r\n$3\r\n1-0\r\n*0\r\n",
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n:1\r\n:2\r\n",
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*1\r\n*2\r\n$21\r\n99999999999999999999-0\r\n*0\r\n",
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:1\r\n*0\r\n:1\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(Failure::Protocol(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
