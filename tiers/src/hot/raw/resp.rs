//! RESP2 for the raw connections: a resumable completeness walk, an in-place parser whose
//! bulk strings are slices of the reply buffer, and a request encoder.

use bytes::Bytes;

/// Deepest nesting a reply may have (the read transaction needs 4).
const MAX_DEPTH: usize = 8;

/// Why a raw exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection broke or timed out.
    Io(std::io::Error),
    /// Redis answered with an error.
    Server(String),
    /// The reply does not have the expected shape.
    Protocol(String),
}

/// A reply element outside the entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Item {
    Int(i64),
    Bulk(Bytes),
    Nil,
    Array(Vec<Item>),
}

impl Item {
    /// The item as text (integers in decimal), `None` for nil or an array.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Item::Int(n) => Some(n.to_string()),
            Item::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Item::Nil | Item::Array(_) => None,
        }
    }
}

/// Encodes commands as RESP arrays of bulk strings into one buffer.
#[derive(Default)]
pub(crate) struct Request {
    pub(super) buf: Vec<u8>,
    /// Commands encoded so far (each has one top-level reply).
    pub(super) commands: usize,
}

impl Request {
    /// Starts a command of `args` arguments (its name included).
    pub(super) fn command(&mut self, args: usize) -> &mut Self {
        self.commands += 1;
        self.buf.push(b'*');
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(args).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Appends one argument.
    pub(super) fn arg(&mut self, arg: &[u8]) -> &mut Self {
        self.buf.push(b'$');
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(arg);
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Appends a whole command.
    pub(crate) fn push(&mut self, args: &[&[u8]]) -> &mut Self {
        self.command(args.len());
        for arg in args {
            self.arg(arg);
        }
        self
    }
}

/// Reads replies as they arrive: says when they are whole, and may parse them on the way.
pub(super) trait Incoming {
    /// Looks at what `buf` holds so far (the same buffer each time, only longer); `true` once
    /// every reply expected is whole, ending at [`Incoming::end`].
    fn advance(&mut self, buf: &[u8]) -> std::result::Result<bool, Failure>;

    /// Where the replies end (once [`Incoming::advance`] said they are whole).
    fn end(&self) -> usize;
}

/// Resumable check that a buffer holds whole replies: it never looks at a byte twice, so a
/// large reply arriving in many reads costs one pass in all.
pub(super) struct Walk {
    /// Start of the next element not yet walked.
    pub(super) pos: usize,
    /// Elements still expected by each open array, innermost last.
    open: Vec<i64>,
    /// Top-level replies complete so far, and expected.
    done: usize,
    replies: usize,
}

impl Walk {
    /// A walk over `replies` replies from the start of the buffer.
    pub(super) fn new(replies: usize) -> Self {
        Self::at(0, replies)
    }

    /// A walk over `replies` replies from `pos`.
    pub(super) fn at(pos: usize, replies: usize) -> Self {
        Self {
            pos,
            open: Vec::new(),
            done: 0,
            replies,
        }
    }
}

impl Incoming for Walk {
    fn end(&self) -> usize {
        self.pos
    }

    fn advance(&mut self, buf: &[u8]) -> std::result::Result<bool, Failure> {
        while self.done < self.replies {
            let Some((kind, value, body)) = header(buf, self.pos)? else {
                return Ok(false);
            };
            match kind {
                b'$' if value >= 0 => {
                    let end = body + value as usize + 2;
                    if end > buf.len() {
                        return Ok(false);
                    }
                    self.pos = end;
                }
                b'*' if value > 0 => {
                    if self.open.len() >= MAX_DEPTH {
                        return Err(Failure::Protocol("reply nested too deeply".into()));
                    }
                    self.pos = body;
                    self.open.push(value);
                    continue;
                }
                _ => self.pos = body,
            }
            // One element is complete: close every array it completes.
            loop {
                match self.open.last_mut() {
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        self.open.pop();
                    }
                    None => {
                        self.done += 1;
                        break;
                    }
                }
            }
        }
        Ok(true)
    }
}

/// Most digits of a RESP number (`i64` holds any 18-digit number).
const MAX_DIGITS: usize = 18;

/// Reads the header line at `pos`: its type byte, its number (0 for `+`/`-` lines) and where
/// the body starts. `None` when the line is not complete yet.
pub(super) fn header(buf: &[u8], pos: usize) -> std::result::Result<Option<(u8, i64, usize)>, Failure> {
    let Some(&kind) = buf.get(pos) else {
        return Ok(None);
    };
    match kind {
        b'+' | b'-' => {
            let rest = &buf[pos + 1..];
            let mut from = 0;
            while let Some(i) = rest[from..].iter().position(|&b| b == b'\r') {
                let at = from + i;
                match rest.get(at + 1) {
                    Some(b'\n') => return Ok(Some((kind, 0, pos + 1 + at + 2))),
                    Some(_) => from = at + 1,
                    None => return Ok(None),
                }
            }
            Ok(None)
        }
        b':' | b'$' | b'*' => {
            // The number and its CRLF, in one pass over a slice (no bounds check per byte):
            // up to 18 digits cannot overflow, more are refused.
            let rest = &buf[pos + 1..];
            let negative = rest.first() == Some(&b'-');
            let digits = &rest[usize::from(negative)..];
            let mut n: i64 = 0;
            let mut len = 0;
            for &d in digits {
                let v = d.wrapping_sub(b'0');
                if v > 9 {
                    break;
                }
                if len == MAX_DIGITS {
                    return Err(Failure::Protocol("number too large".into()));
                }
                n = n * 10 + i64::from(v);
                len += 1;
            }
            let i = pos + 1 + usize::from(negative) + len;
            match (buf.get(i), buf.get(i + 1)) {
                (None, _) | (Some(b'\r'), None) => Ok(None),
                (Some(b'\r'), Some(b'\n')) if len > 0 => {
                    Ok(Some((kind, if negative { -n } else { n }, i + 2)))
                }
                _ => Err(Failure::Protocol(format!(
                    "bad length line `{}`",
                    String::from_utf8_lossy(&buf[pos..(i + 2).min(buf.len())])
                ))),
            }
        }
        other => Err(Failure::Protocol(format!(
            "unexpected reply type byte {other:#04x}"
        ))),
    }
}

/// Parses a whole reply buffer in place; only names and values become slices of it.
pub(super) struct Cursor<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(data: &'a Bytes) -> Self {
        Self { data, pos: 0 }
    }

    /// The next header: its type byte, its number and the text of a `+`/`-` line.
    pub(super) fn header(&mut self) -> std::result::Result<(u8, i64, &'a [u8]), Failure> {
        let data: &'a [u8] = self.data;
        let (kind, value, body) =
            header(data, self.pos)?.ok_or_else(|| Failure::Protocol("reply ended early".into()))?;
        let line = &data[self.pos + 1..body - 2];
        self.pos = body;
        Ok((kind, value, line))
    }

    /// A `+` reply (`OK`, `QUEUED`); an error reply is returned as such.
    pub(super) fn simple(&mut self) -> std::result::Result<(), Failure> {
        match self.header()? {
            (b'+', _, _) => Ok(()),
            (b'-', _, line) => Err(server(line)),
            (kind, _, _) => Err(unexpected(kind, "a status")),
        }
    }

    /// Where the body of a bulk string whose header was just read lies.
    fn bulk_range(&mut self, len: i64) -> std::result::Result<std::ops::Range<usize>, Failure> {
        let len = usize::try_from(len).map_err(|_| Failure::Protocol("negative bulk length".into()))?;
        let start = self.pos;
        if self.data.len() < start + len + 2 {
            return Err(Failure::Protocol("reply ended early".into()));
        }
        self.pos = start + len + 2;
        Ok(start..start + len)
    }

    /// Any element, as an [`Item`]; an error reply is returned as [`Failure::Server`].
    pub(super) fn item(&mut self, depth: usize) -> std::result::Result<Item, Failure> {
        match self.header()? {
            (b':', n, _) => Ok(Item::Int(n)),
            (b'$' | b'*', -1, _) => Ok(Item::Nil),
            (b'$', len, _) => Ok(Item::Bulk(self.data.slice(self.bulk_range(len)?))),
            (b'+', _, line) => Ok(Item::Bulk(Bytes::copy_from_slice(line))),
            (b'-', _, line) => Err(server(line)),
            (b'*', n, _) if depth < MAX_DEPTH => (0..n)
                .map(|_| self.item(depth + 1))
                .collect::<std::result::Result<_, _>>()
                .map(Item::Array),
            (kind, _, _) => Err(unexpected(kind, "a value")),
        }
    }

    /// An array header's length (`-1` for a nil array).
    pub(super) fn array(&mut self) -> std::result::Result<i64, Failure> {
        match self.header()? {
            (b'*', n, _) => Ok(n),
            (b'-', _, line) => Err(server(line)),
            (kind, _, _) => Err(unexpected(kind, "an array")),
        }
    }
}

pub(super) fn server(line: &[u8]) -> Failure {
    Failure::Server(String::from_utf8_lossy(line).into_owned())
}

pub(super) fn unexpected(kind: u8, wanted: &str) -> Failure {
    Failure::Protocol(format!("expected {wanted}, got a `{}` reply", kind as char))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk_in_pieces(data: &[u8], replies: usize, piece: usize) -> Option<usize> {
        let mut walk = Walk::new(replies);
        let mut end = 0;
        while end < data.len() {
            end = (end + piece).min(data.len());
            match walk.advance(&data[..end]) {
                Ok(true) => return Some(walk.pos),
                Ok(false) => {}
                Err(_) => return None,
            }
        }
        None
    }

    const TRANSACTION: &[u8] = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n*3\r\n:1\r\n$-1\r\n:7\r\n\
*2\r\n*2\r\n$3\r\n5-1\r\n*6\r\n$1\r\na\r\n$2\r\n\xff\x00\r\n$1\r\na\r\n$0\r\n\r\n$1\r\nz\r\n$4\r\n\r\n\r\n\r\n\
*2\r\n$3\r\n6-0\r\n*0\r\n";

    #[test]
    fn the_walk_finds_the_end_whatever_the_read_sizes() {
        for piece in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(
                walk_in_pieces(TRANSACTION, 4, piece),
                Some(TRANSACTION.len()),
                "piece {piece}"
            );
        }
        // Incomplete: never done.
        assert_eq!(walk_in_pieces(&TRANSACTION[..TRANSACTION.len() - 1], 4, 3), None);
        assert!(Walk::new(1).advance(b"?what\r\n").is_err());
        assert!(Walk::new(1).advance(b"*x\r\n").is_err());
        assert!(Walk::new(1).advance(b"$99999999999999999999\r\n").is_err());
    }

    #[test]
    fn numbers_and_statuses_parse() {
        let data = Bytes::from_static(b":-12\r\n+OK\r\n-ERR no\r\n$-1\r\n*-1\r\n");
        let mut c = Cursor::new(&data);
        assert_eq!(c.item(0).unwrap(), Item::Int(-12));
        c.simple().unwrap();
        assert!(matches!(c.simple(), Err(Failure::Server(m)) if m == "ERR no"));
        assert_eq!(c.item(0).unwrap(), Item::Nil);
        assert_eq!(c.array().unwrap(), -1);
        let big = Bytes::from_static(b":999999999999999999\r\n:-999999999999999999\r\n");
        let mut c = Cursor::new(&big);
        assert_eq!(c.item(0).unwrap(), Item::Int(999_999_999_999_999_999));
        assert_eq!(c.item(0).unwrap(), Item::Int(-999_999_999_999_999_999));
        for bad in [
            &b":1234567890123456789\r\n"[..],
            b":-\r\n",
            b"$\r\n",
            b":12x\r\n",
            b"*1\n",
        ] {
            let data = Bytes::copy_from_slice(bad);
            let parsed = Cursor::new(&data).item(0);
            assert!(matches!(parsed, Err(Failure::Protocol(_))), "{bad:?}: {parsed:?}");
        }
    }

    #[test]
    fn commands_are_encoded_as_bulk_arrays() {
        let mut r = Request::default();
        r.push(&[b"XRANGE", b"k", b"(1-0"]);
        r.command(2).arg(b"GET").arg(b"");
        assert_eq!(
            r.buf,
            b"*3\r\n$6\r\nXRANGE\r\n$1\r\nk\r\n$4\r\n(1-0\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n".to_vec()
        );
        assert_eq!(r.commands, 2);
    }

    /// Pieces of replies, whole and broken, so that random buffers are often almost valid.
    fn piece() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            Just(b"*1\r\n".to_vec()),
            Just(b"*2\r\n".to_vec()),
            Just(b"*-1\r\n".to_vec()),
            Just(b"*-7\r\n".to_vec()),
            Just(b"*999999999999999999\r\n".to_vec()),
            Just(b"$999999999999999999\r\n".to_vec()),
            Just(b"$3\r\nabc\r\n".to_vec()),
            Just(b"$-1\r\n".to_vec()),
            Just(b"$-2\r\n".to_vec()),
            Just(b":-12\r\n".to_vec()),
            Just(b"+OK\r\n".to_vec()),
            Just(b"-ERR no\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\r".to_vec()),
            any::<u8>().prop_map(|b| vec![b]),
            proptest::collection::vec(any::<u8>(), 0..16),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

        /// Whatever Redis (or something posing as it) sends, the walk and the parser answer a
        /// reply or an error, never a panic; and a reply the walk calls whole parses without
        /// running out of bytes.
        #[test]
        fn any_bytes_are_a_reply_or_an_error(
            pieces in proptest::collection::vec(piece(), 0..48),
            nested in 0usize..40,
        ) {
            let mut data = b"*1\r\n".repeat(nested);
            data.extend(pieces.concat());
            let whole = Walk::new(1).advance(&data);
            let bytes = Bytes::from(data);
            let parsed = Cursor::new(&bytes).item(0);
            if let (Ok(true), Err(Failure::Protocol(m))) = (&whole, &parsed) {
                proptest::prop_assert!(m != "reply ended early", "the walk said whole: {bytes:?}");
            }
            if nested > MAX_DEPTH {
                proptest::prop_assert!(matches!(whole, Err(_) | Ok(false)));
                proptest::prop_assert!(parsed.is_err());
            }
        }
    }
}
