//! The hot paths' own RESP2 connections: the archive read transaction and the replay write
//! transaction, encoded and parsed directly.
//!
//! The generic client turns every reply into a tree of owned values (an allocation per field)
//! and every argument into its own buffer. Here a request is encoded into one buffer and a
//! reply is read into one buffer, checked for completeness by a resumable walk, and parsed in
//! place: an entry costs one allocation (its field list) and every name and value is a
//! reference-counted slice of the reply.
//!
//! The same code serves a single server and a Redis Cluster: `route.rs` sends each exchange to
//! the node holding its key and follows redirects. Every key of one exchange shares the hash
//! slot of its stream (see `keys.rs`).

mod read;
mod replay;
mod resp;
mod route;
mod script;
mod xrange;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use redis::{ConnectionAddr, IntoConnectionInfo, ServerErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::Error;
use resp::{Cursor, Failure, Incoming, Walk};
pub(crate) use resp::{Item, Request};
pub(crate) use route::Router;
pub(crate) use script::{Lua, GROUPS, LEASE_ACQUIRE, LEASE_RELEASE, MEMBERS, PRESSURE, RESTORE_GROUPS, TRIM};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections kept open between uses.
const MAX_IDLE: usize = 16;
/// Read buffer of a connection: its size at rest and its least growth step.
const BUFFER_BYTES: usize = 64 * 1024;

/// Where to connect.
#[derive(Clone, Debug)]
enum Addr {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// Opens raw connections on demand and keeps a few idle ones. A connection is used by one
/// exchange at a time and is only put back when that exchange left it clean (whole replies
/// read, no `WATCH` left).
pub(crate) struct RawPool {
    addr: Addr,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    idle: Mutex<Vec<RawConn>>,
}

impl std::fmt::Debug for RawPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPool")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

enum Io {
    Tcp(TcpStream),
    Unix(UnixStream),
}

struct RawConn {
    io: Io,
    buf: BytesMut,
    /// The size of the last reply: the next is usually alike, so its buffer is sized for it up
    /// front instead of growing (and copying) as it arrives.
    last_reply: usize,
}

impl RawPool {
    /// A pool for `url` when it names a plain TCP or Unix-socket server; `None` otherwise.
    pub(crate) fn for_url(url: &str) -> Option<Self> {
        let info = url.into_connection_info().ok()?;
        let addr = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Addr::Tcp(host.clone(), *port),
            ConnectionAddr::Unix(path) => Addr::Unix(path.clone()),
            _ => return None,
        };
        let redis = info.redis_settings();
        Some(Self {
            addr,
            username: redis.username().map(str::to_string),
            password: redis.password().map(str::to_string),
            db: redis.db(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A pool for another node of the same cluster (same credentials; clusters have one db).
    pub(crate) fn node(&self, host: &str, port: u16) -> Self {
        Self {
            addr: Addr::Tcp(host.to_string(), port),
            username: self.username.clone(),
            password: self.password.clone(),
            db: 0,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The host this pool connects to (empty for a Unix socket).
    pub(crate) fn host(&self) -> &str {
        match &self.addr {
            Addr::Tcp(host, _) => host,
            Addr::Unix(_) => "",
        }
    }

    /// Sends `request` on a pooled connection and returns it with the reply; a reused
    /// connection that turns out broken is replaced once (so only send reads this way).
    async fn exchange(&self, request: &Request) -> Result<(RawConn, Bytes), Failure> {
        let walk = || Walk::new(request.commands);
        let (con, reply, _) = self.exchange_with(request, walk).await?;
        Ok((con, reply))
    }

    /// [`RawPool::exchange`], with the replies read as they arrive by what `incoming` makes
    /// (a new one for each attempt), which is returned too.
    async fn exchange_with<I: Incoming>(
        &self,
        request: &Request,
        incoming: impl Fn() -> I,
    ) -> Result<(RawConn, Bytes, I), Failure> {
        let mut last = Failure::Io(std::io::ErrorKind::ConnectionReset.into());
        for attempt in 0..2 {
            let mut con = self.take(attempt > 0).await?;
            let mut reader = incoming();
            match con.exchange_into(request, &mut reader).await {
                Ok(reply) => return Ok((con, reply, reader)),
                Err(f @ Failure::Io(_)) => last = f,
                Err(f) => return Err(f),
            }
        }
        Err(last)
    }

    /// An idle connection, or a new one when `fresh` or none is idle.
    async fn take(&self, fresh: bool) -> Result<RawConn, Failure> {
        if !fresh {
            if let Some(con) = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() {
                return Ok(con);
            }
        }
        tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .unwrap_or_else(|_| Err(Failure::Io(std::io::ErrorKind::TimedOut.into())))
    }

    fn give_back(&self, con: RawConn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(con);
        }
    }

    async fn connect(&self) -> Result<RawConn, Failure> {
        let io = match &self.addr {
            Addr::Tcp(host, port) => {
                let s = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(Failure::Io)?;
                s.set_nodelay(true).map_err(Failure::Io)?;
                Io::Tcp(s)
            }
            Addr::Unix(path) => Io::Unix(UnixStream::connect(path).await.map_err(Failure::Io)?),
        };
        let mut con = RawConn {
            io,
            buf: BytesMut::with_capacity(BUFFER_BYTES),
            last_reply: 0,
        };
        let mut setup = Request::default();
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => {
                setup.push(&[b"AUTH", user.as_bytes(), password.as_bytes()]);
            }
            (None, Some(password)) => {
                setup.push(&[b"AUTH", password.as_bytes()]);
            }
            _ => {}
        }
        if self.db != 0 {
            setup.push(&[b"SELECT", self.db.to_string().as_bytes()]);
        }
        if setup.commands > 0 {
            let reply = con.exchange(&setup).await?;
            let mut c = Cursor::new(&reply);
            for _ in 0..setup.commands {
                c.simple()?;
            }
        }
        Ok(con)
    }
}

impl RawConn {
    /// Sends `request` and reads one top-level reply per command into one buffer.
    async fn exchange(&mut self, request: &Request) -> Result<Bytes, Failure> {
        let mut walk = Walk::new(request.commands);
        self.exchange_into(request, &mut walk).await
    }

    /// Sends `request` and reads its replies into one buffer, which `incoming` looks at as it
    /// arrives and says when it is whole.
    async fn exchange_into(
        &mut self,
        request: &Request,
        incoming: &mut impl Incoming,
    ) -> Result<Bytes, Failure> {
        let io = async {
            match &mut self.io {
                Io::Tcp(s) => s.write_all(&request.buf).await,
                Io::Unix(s) => s.write_all(&request.buf).await,
            }
            .map_err(Failure::Io)?;
            if self.buf.is_empty() {
                let want = (self.last_reply + self.last_reply / 8).max(BUFFER_BYTES);
                if self.buf.capacity() < want {
                    self.buf = BytesMut::with_capacity(want);
                }
            }
            loop {
                if incoming.advance(&self.buf)? {
                    let end = incoming.end();
                    self.last_reply = end;
                    let reply = self.buf.split_to(end).freeze();
                    if self.buf.is_empty() && self.buf.capacity() > BUFFER_BYTES {
                        // The rest of a large buffer would keep the whole allocation alive
                        // (shared with `reply`) for as long as this connection idles; the
                        // next exchange allocates what it needs.
                        self.buf = BytesMut::new();
                    }
                    return Ok(reply);
                }
                if self.buf.capacity() - self.buf.len() < 16 * 1024 {
                    // Grow geometrically so that a large reply is not copied many times.
                    self.buf.reserve(self.buf.len().max(BUFFER_BYTES));
                }
                let n = match &mut self.io {
                    Io::Tcp(s) => s.read_buf(&mut self.buf).await,
                    Io::Unix(s) => s.read_buf(&mut self.buf).await,
                }
                .map_err(Failure::Io)?;
                if n == 0 {
                    return Err(Failure::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
            }
        };
        tokio::time::timeout(RESPONSE_TIMEOUT, io)
            .await
            .unwrap_or_else(|_| Err(Failure::Io(std::io::ErrorKind::TimedOut.into())))
    }
}

/// The crate error for a failed exchange about `key`.
fn failure(op: &'static str, key: &str, f: Failure) -> Error {
    match f {
        Failure::Io(e) => Error::Redis {
            op,
            key: key.to_string(),
            source: e.into(),
        },
        Failure::Server(message) => Error::Redis {
            op,
            key: key.to_string(),
            source: (
                redis::ErrorKind::Server(server_kind(&message)),
                "server error",
                message,
            )
                .into(),
        },
        Failure::Protocol(reason) => Error::Protocol {
            key: key.to_string(),
            reason,
        },
    }
}

fn server_kind(message: &str) -> ServerErrorKind {
    match message.split(' ').next() {
        Some("NOSCRIPT") => ServerErrorKind::NoScript,
        Some("LOADING") => ServerErrorKind::BusyLoading,
        Some("EXECABORT") => ServerErrorKind::ExecAbort,
        Some("READONLY") => ServerErrorKind::ReadOnly,
        Some("NOPERM") => ServerErrorKind::NoPerm,
        Some("TRYAGAIN") => ServerErrorKind::TryAgain,
        Some("MOVED") => ServerErrorKind::Moved,
        Some("ASK") => ServerErrorKind::Ask,
        Some("CLUSTERDOWN") => ServerErrorKind::ClusterDown,
        _ => ServerErrorKind::ResponseError,
    }
}
