//! The raw limits: a minimal pipelined XADD writer and a pipelined XRANGE reader that walks the
//! RESP replies without building values.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One entry to write: id and fields.
pub type RawEntry = (String, Vec<(String, String)>);

/// Appends `XADD key id f v …` in RESP to `out`.
pub fn encode_xadd(out: &mut Vec<u8>, key: &str, entry: &RawEntry) {
    let args = 3 + 2 * entry.1.len();
    out.extend_from_slice(format!("*{args}\r\n").as_bytes());
    for part in ["XADD", key, entry.0.as_str()] {
        bulk(out, part.as_bytes());
    }
    for (n, v) in &entry.1 {
        bulk(out, n.as_bytes());
        bulk(out, v.as_bytes());
    }
}

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// A connection that pipelines raw commands.
pub struct Raw {
    write: TcpStream,
    read: BufReader<TcpStream>,
}

impl Raw {
    /// Connects to `host:port`.
    pub fn connect(addr: &str) -> Raw {
        let s = TcpStream::connect(addr).expect("connect to redis");
        s.set_nodelay(true).expect("nodelay");
        Raw {
            read: BufReader::with_capacity(1 << 20, s.try_clone().expect("clone")),
            write: s,
        }
    }

    /// Writes commands from `produce` on this thread while a second thread skips the `replies`
    /// replies as they come, so that Redis never waits for the client between batches: the
    /// write limit of one connection.
    pub fn duplex(&mut self, replies: usize, produce: impl FnOnce(&mut TcpStream)) {
        let (write, read) = (&mut self.write, &mut self.read);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for _ in 0..replies {
                    skip(read);
                }
            });
            produce(write);
        });
    }

    /// Sends one command and answers its integer reply.
    pub fn integer(&mut self, parts: &[&str]) -> i64 {
        let mut out = format!("*{}\r\n", parts.len()).into_bytes();
        for p in parts {
            bulk(&mut out, p.as_bytes());
        }
        self.write.write_all(&out).expect("write");
        let (l, _) = line(&mut self.read);
        match l.first() {
            Some(b':') => number(&l[1..]),
            _ => panic!(
                "{parts:?}: expected an integer, got {}",
                String::from_utf8_lossy(&l)
            ),
        }
    }

    /// Reads one XRANGE reply per key after its cursor (`COUNT count`), pipelined across keys;
    /// answers per key the number of entries and the last id, and the reply bytes.
    pub fn xrange_round(
        &mut self,
        cursors: &[(String, String)],
        count: usize,
    ) -> (Vec<(u64, Option<String>)>, u64) {
        let mut out = Vec::new();
        for (key, after) in cursors {
            let start = format!("({after}");
            let count = count.to_string();
            let parts = [
                "XRANGE",
                key.as_str(),
                start.as_str(),
                "+",
                "COUNT",
                count.as_str(),
            ];
            out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
            for p in parts {
                bulk(&mut out, p.as_bytes());
            }
        }
        self.write.write_all(&out).expect("write");
        let mut results = Vec::with_capacity(cursors.len());
        let mut bytes = 0;
        for _ in cursors {
            let (n, last, b) = skip_xrange(&mut self.read);
            bytes += b;
            results.push((n, last));
        }
        (results, bytes)
    }
}

fn line(r: &mut BufReader<TcpStream>) -> (Vec<u8>, u64) {
    let mut l = Vec::with_capacity(16);
    let n = r.read_until(b'\n', &mut l).expect("read");
    assert!(n > 2, "connection closed");
    l.truncate(l.len() - 2);
    (l, n as u64)
}

fn number(b: &[u8]) -> i64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("RESP number")
}

/// Skips one reply without building it; answers (bytes, top-level array length).
fn skip(r: &mut BufReader<TcpStream>) -> (u64, i64) {
    let (l, mut bytes) = line(r);
    match l[0] {
        b'+' | b':' => (bytes, 0),
        b'-' => panic!("redis error: {}", String::from_utf8_lossy(&l)),
        b'$' => {
            let len = number(&l[1..]);
            if len >= 0 {
                let mut rest = (len + 2) as u64;
                bytes += rest;
                while rest > 0 {
                    let buf = r.fill_buf().expect("read");
                    let take = (buf.len() as u64).min(rest) as usize;
                    r.consume(take);
                    rest -= take as u64;
                }
            }
            (bytes, 0)
        }
        b'*' => {
            let n = number(&l[1..]);
            for _ in 0..n.max(0) {
                bytes += skip(r).0;
            }
            (bytes, n)
        }
        other => panic!("unexpected RESP type {other}"),
    }
}

/// Walks an XRANGE reply: counts entries, keeps only the last id (the next cursor).
fn skip_xrange(r: &mut BufReader<TcpStream>) -> (u64, Option<String>, u64) {
    let (l, mut bytes) = line(r);
    assert_eq!(l[0], b'*', "XRANGE reply: {}", String::from_utf8_lossy(&l));
    let n = number(&l[1..]);
    let mut last = None;
    for i in 0..n {
        let (_, b) = line(r); // *2
        bytes += b;
        let (len, b) = line(r); // $len of the id
        bytes += b;
        let len = number(&len[1..]) as usize;
        let mut id = vec![0; len + 2];
        r.read_exact(&mut id).expect("read id");
        bytes += id.len() as u64;
        if i == n - 1 {
            id.truncate(len);
            last = Some(String::from_utf8(id).expect("id"));
        }
        bytes += skip(r).0; // the fields
    }
    (n.max(0) as u64, last, bytes)
}
