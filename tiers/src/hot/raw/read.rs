//! The archive read transaction: `MULTI`, the bookkeeping script by hash, `XRANGE`, `EXEC`,
//! the same transaction as the generic path, so both read the same thing atomically.

use bytes::Bytes;
use streamtier_schemas::EntryBatch;

use super::resp::{Cursor, Failure, Item, Request};
use super::{failure, RawPool};
use crate::Result;

/// The parsed `EXEC` reply of the read transaction.
pub(crate) struct ReadReply {
    /// The bookkeeping script's reply.
    pub(crate) info: Item,
    /// The `XRANGE` entries.
    pub(crate) entries: EntryBatch,
}

impl RawPool {
    /// Runs the read transaction for entries in `range` (`XRANGE` bounds as given).
    /// `Ok(None)` when the script is not loaded (`NOSCRIPT`): load it and ask again.
    pub(crate) async fn read(
        &self,
        stream: &str,
        chain_key: &str,
        script_sha: &str,
        range: (&str, &str),
        count: usize,
    ) -> Result<Option<ReadReply>> {
        let count = count.to_string();
        let mut request = Request::default();
        request
            .push(&[b"MULTI"])
            .push(&[
                b"EVALSHA",
                script_sha.as_bytes(),
                b"2",
                stream.as_bytes(),
                chain_key.as_bytes(),
            ])
            .push(&[
                b"XRANGE",
                stream.as_bytes(),
                range.0.as_bytes(),
                range.1.as_bytes(),
                b"COUNT",
                count.as_bytes(),
            ])
            .push(&[b"EXEC"]);
        // Only reads: on a broken reused connection it is simply sent again on a new one.
        let (con, reply) = self.exchange(&request, "read batch", stream).await?;
        // The reply was read whole: the connection is in step whatever it says.
        self.give_back(con);
        parse(&reply).map_err(|f| failure("read batch", stream, f))
    }
}

/// `+OK`, `+QUEUED` ×2, then `EXEC`'s `[script reply, entries]`. `Ok(None)` on `NOSCRIPT`.
fn parse(reply: &Bytes) -> std::result::Result<Option<ReadReply>, Failure> {
    let mut c = Cursor::new(reply);
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
    let info = match c.item(0) {
        Ok(info) => info,
        Err(Failure::Server(msg)) if msg.starts_with("NOSCRIPT") => return Ok(None),
        Err(e) => return Err(e),
    };
    let entries = c.entries()?;
    Ok(Some(ReadReply { info, entries }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamtier_schemas::StreamId;

    const TRANSACTION: &[u8] = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n*3\r\n:1\r\n$-1\r\n:7\r\n\
*2\r\n*2\r\n$3\r\n5-1\r\n*6\r\n$1\r\na\r\n$2\r\n\xff\x00\r\n$1\r\na\r\n$0\r\n\r\n$1\r\nz\r\n$4\r\n\r\n\r\n\r\n\
*2\r\n$3\r\n6-0\r\n*0\r\n";

    fn parse_static(data: &'static [u8]) -> std::result::Result<Option<ReadReply>, Failure> {
        parse(&Bytes::from_static(data))
    }

    #[test]
    fn entries_are_parsed_losslessly() {
        let reply = parse_static(TRANSACTION).ok().flatten().unwrap();
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
            vec![(&b"a"[..], &b"\xff\x00"[..]), (b"a", b""), (b"z", b"\r\n\r\n")]
        );
        assert_eq!(reply.entries.get(1).field_count(), 0);
    }

    #[test]
    fn noscript_asks_for_a_load_and_other_errors_are_reported() {
        let noscript = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-NOSCRIPT No matching script\r\n*0\r\n";
        assert!(matches!(parse_static(noscript), Ok(None)));
        let wrongtype =
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-WRONGTYPE key `k` is a hash\r\n-WRONGTYPE x\r\n";
        assert!(matches!(parse_static(wrongtype), Err(Failure::Server(m)) if m.contains("is a hash")));
        let aborted =
            b"+OK\r\n-ERR wrong number of arguments\r\n+QUEUED\r\n-EXECABORT Transaction discarded\r\n";
        assert!(matches!(parse_static(aborted), Err(Failure::Server(m)) if m.contains("wrong number")));
    }

    #[test]
    fn malformed_replies_are_protocol_errors() {
        for bad in [
            &b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*1\r\n*2\r\n$3\r\nbad\r\n*0\r\n"[..],
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*1\r\n$1\r\na\r\n",
            b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:1\r\n*0\r\n:1\r\n",
        ] {
            assert!(
                matches!(parse(&Bytes::copy_from_slice(bad)), Err(Failure::Protocol(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
