//! The raw limits: a minimal pipelined XADD writer and a pipelined XRANGE reader that walks the
//! RESP replies without building values.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One entry to write: id and fields.
pub type RawEntry = (String, Vec<(String, String)>);

/// Appends `XADD key id f v …` in RESP to `out`; answers where the key starts in `out`.
pub fn encode_xadd(out: &mut Vec<u8>, key: &str, entry: &RawEntry) -> usize {
    let args = 3 + 2 * entry.1.len();
    out.extend_from_slice(format!("*{args}\r\n").as_bytes());
    bulk(out, b"XADD");
    let at = out.len() + format!("${}\r\n", key.len()).len();
    bulk(out, key.as_bytes());
    bulk(out, entry.0.as_bytes());
    for (n, v) in &entry.1 {
        bulk(out, n.as_bytes());
        bulk(out, v.as_bytes());
    }
    at
}

/// XADD commands encoded in chunks (one write each), one list per stream, with where each
/// command's key sits, so that the same commands can be written again into other streams: the
/// raw pipelined XADD limit, measured whenever the server's state matters.
#[derive(Default)]
pub struct Xadds {
    streams: Vec<StreamXadds>,
    len: u64,
}

/// One stream's commands: its chunks, where each command's key starts in them, how many.
type StreamXadds = (Vec<Vec<u8>>, Vec<Vec<u32>>, u64);

impl Xadds {
    /// Entries per chunk.
    const CHUNK: u64 = 1000;

    /// Appends `XADD key …` for `entry` to the commands of stream number `stream`.
    pub fn push(&mut self, stream: usize, key: &str, entry: &RawEntry) {
        if self.streams.len() <= stream {
            self.streams.resize_with(stream + 1, Default::default);
        }
        let (chunks, keys, n) = &mut self.streams[stream];
        if *n % Self::CHUNK == 0 {
            chunks.push(Vec::with_capacity(Self::CHUNK as usize * 320));
            keys.push(Vec::with_capacity(Self::CHUNK as usize));
        }
        let (chunk, at) = (
            chunks.last_mut().expect("a chunk"),
            keys.last_mut().expect("a chunk"),
        );
        at.push(encode_xadd(chunk, key, entry) as u32);
        *n += 1;
        self.len += 1;
    }

    /// The commands.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Makes every command write to the stream whose name starts with `prefix` in place of the
    /// name's first `prefix.len()` bytes (`bench:3` becomes `rawxa:3` with `rawxa`).
    pub fn rename(&mut self, prefix: &str) {
        for (chunks, keys, _) in &mut self.streams {
            for (chunk, keys) in chunks.iter_mut().zip(keys.iter()) {
                for &at in keys {
                    let at = at as usize;
                    chunk[at..at + prefix.len()].copy_from_slice(prefix.as_bytes());
                }
            }
        }
    }

    /// Writes every stream's commands on a connection (and thread) of its own, as the readers
    /// read, while a second thread per connection skips the replies; answers the seconds it
    /// took and the CPU seconds Redis spent meanwhile.
    pub fn write(&self, addr: &str) -> (f64, f64) {
        let mut raw = Raw::connect(addr);
        let cpu = raw.cpu_seconds();
        let secs = self.write_routed(|_| addr.to_string());
        (secs, raw.cpu_seconds() - cpu)
    }

    /// [`Xadds::write`] with stream number `i` written to the server at `addr_of(i)` (a
    /// cluster's node for that stream); answers the seconds.
    pub fn write_routed(&self, addr_of: impl Fn(usize) -> String) -> f64 {
        let mut conns: Vec<Raw> = (0..self.streams.len())
            .map(|i| Raw::connect(&addr_of(i)))
            .collect();
        let start = std::time::Instant::now();
        std::thread::scope(|scope| {
            for (con, (chunks, _, n)) in conns.iter_mut().zip(&self.streams) {
                scope.spawn(move || {
                    con.duplex(*n as usize, |out| {
                        for chunk in chunks {
                            out.write_all(chunk).expect("write");
                        }
                    })
                });
            }
        });
        start.elapsed().as_secs_f64()
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
        self.send(parts);
        match header(&mut self.read) {
            (b':', n, _) => n,
            (kind, n, _) => panic!("{parts:?}: expected an integer, got `{}{n}`", kind as char),
        }
    }

    /// Sends one command and answers its bulk string reply.
    pub fn text(&mut self, parts: &[&str]) -> String {
        self.send(parts);
        let (kind, len, _) = header(&mut self.read);
        assert_eq!(kind, b'$', "{parts:?}: expected a bulk string");
        let mut body = vec![0; len as usize + 2];
        self.read.read_exact(&mut body).expect("read");
        body.truncate(len as usize);
        String::from_utf8(body).expect("utf-8 reply")
    }

    /// Redis' own CPU seconds so far (user and system, from `INFO cpu`).
    pub fn cpu_seconds(&mut self) -> f64 {
        self.text(&["INFO", "cpu"])
            .lines()
            .filter(|l| l.starts_with("used_cpu_user:") || l.starts_with("used_cpu_sys:"))
            .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
            .sum()
    }

    fn send(&mut self, parts: &[&str]) {
        let mut out = format!("*{}\r\n", parts.len()).into_bytes();
        for p in parts {
            bulk(&mut out, p.as_bytes());
        }
        self.write.write_all(&out).expect("write");
    }
}

/// Reads every entry of `keys`, `XRANGE … COUNT count` after a cursor, with one connection and
/// thread per key, so that Redis always has a request waiting while replies are walked (without
/// building anything); answers the entries and the reply bytes.
pub fn xrange_all(addr: &str, keys: &[String], count: usize) -> (u64, u64) {
    let routed: Vec<(String, String)> = keys.iter().map(|k| (addr.to_string(), k.clone())).collect();
    xrange_routed(&routed, count)
}

/// [`xrange_all`] over `(server, key)` pairs (a cluster's node for each key).
pub fn xrange_routed(keys: &[(String, String)], count: usize) -> (u64, u64) {
    std::thread::scope(|scope| {
        let readers: Vec<_> = keys
            .iter()
            .map(|(addr, key)| scope.spawn(move || xrange_stream(addr, key, count)))
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("reader thread"))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    })
}

fn xrange_stream(addr: &str, key: &str, count: usize) -> (u64, u64) {
    let mut raw = Raw::connect(addr);
    let count_arg = count.to_string();
    let mut after = "0-0".to_string();
    let (mut entries, mut bytes) = (0, 0);
    loop {
        let start = format!("({after}");
        raw.send(&["XRANGE", key, &start, "+", "COUNT", &count_arg]);
        let (kind, n, b) = header(&mut raw.read);
        assert_eq!(kind, b'*', "XRANGE reply");
        bytes += b;
        for i in 0..n {
            bytes += header(&mut raw.read).2; // *2
            let (_, len, b) = header(&mut raw.read); // $len of the id
            bytes += b + len as u64 + 2;
            if i == n - 1 {
                let mut id = vec![0; len as usize + 2];
                raw.read.read_exact(&mut id).expect("read id");
                id.truncate(len as usize);
                after = String::from_utf8(id).expect("id");
            } else {
                consume(&mut raw.read, len as u64 + 2);
            }
            bytes += skip(&mut raw.read).0; // the fields
        }
        entries += n.max(0) as u64;
        if n < count as i64 {
            return (entries, bytes);
        }
    }
}

/// Reads one RESP header line (`*3`, `$12`, `:5`, `+OK`) without allocating; answers its type,
/// its number (0 for a simple string) and its length in bytes.
fn header(r: &mut BufReader<TcpStream>) -> (u8, i64, u64) {
    let buf = r.fill_buf().expect("read");
    assert!(!buf.is_empty(), "connection closed");
    if let Some(end) = buf.iter().position(|&b| b == b'\n') {
        let parsed = parse_header(&buf[..end]);
        r.consume(end + 1);
        return (parsed.0, parsed.1, end as u64 + 1);
    }
    // The line runs past the buffered bytes.
    let mut line = Vec::with_capacity(32);
    r.read_until(b'\n', &mut line).expect("read");
    let parsed = parse_header(&line[..line.len() - 1]);
    (parsed.0, parsed.1, line.len() as u64)
}

fn parse_header(line: &[u8]) -> (u8, i64) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.first() {
        Some(b'-') => panic!("redis error: {}", String::from_utf8_lossy(line)),
        Some(b'+') => (b'+', 0),
        Some(&kind) => {
            let (negative, digits) = match &line[1..] {
                [b'-', rest @ ..] => (true, rest),
                rest => (false, rest),
            };
            let n = digits.iter().fold(0i64, |n, d| {
                assert!(
                    d.is_ascii_digit(),
                    "RESP number `{}`",
                    String::from_utf8_lossy(line)
                );
                n * 10 + i64::from(d - b'0')
            });
            (kind, if negative { -n } else { n })
        }
        None => panic!("empty RESP line"),
    }
}

fn consume(r: &mut BufReader<TcpStream>, mut n: u64) {
    while n > 0 {
        let buf = r.fill_buf().expect("read");
        assert!(!buf.is_empty(), "connection closed");
        let take = (buf.len() as u64).min(n) as usize;
        r.consume(take);
        n -= take as u64;
    }
}

/// Skips one reply without building it; answers (bytes, top-level array length).
fn skip(r: &mut BufReader<TcpStream>) -> (u64, i64) {
    let (kind, n, mut bytes) = header(r);
    match kind {
        b'+' | b':' => (bytes, 0),
        b'$' => {
            if n >= 0 {
                consume(r, n as u64 + 2);
                bytes += n as u64 + 2;
            }
            (bytes, 0)
        }
        b'*' => {
            for _ in 0..n.max(0) {
                bytes += skip(r).0;
            }
            (bytes, n)
        }
        other => panic!("unexpected RESP type {other}"),
    }
}
