//! The API's connection loop: one HTTP/1.1 connection a task, bounded in number and in time.
//!
//! A client that opens connections and never finishes a request must not hold the process'
//! file descriptors (the archiver beside the API needs them for its spool files) nor keep
//! `/healthz` from answering. So:
//! - a request's head must arrive whole within `api.header_read_timeout`, counted from the
//!   connection's start or from the end of the previous response;
//! - a connection with no request in flight for `api.idle_timeout` is closed;
//! - at most `api.max_connections` connections are held: when a new one would pass that, the
//!   oldest connection with no request in flight (a half-sent head, an idle keep-alive) is closed
//!   to make room, and only when every connection is busy is the new one refused.
//!
//! A request in flight (its handler or its streamed response) is never cut by these rules.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a stopping server waits for the requests in flight.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The limits of [`serve`] (from `[api]`).
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Connections held at once.
    pub max_connections: usize,
    /// Time for a request's head to arrive whole.
    pub header_read_timeout: Duration,
    /// Time a connection may stay without a request in flight.
    pub idle_timeout: Duration,
}

/// One connection, as the loop and its task share it.
struct Conn {
    /// Requests whose handler or response body is still running.
    in_flight: AtomicUsize,
    /// Since when `in_flight` has been 0.
    idle_since: Mutex<Instant>,
    /// Asks the connection to close once its request in flight (if any) is done.
    close: CancellationToken,
}

impl Conn {
    fn busy(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// When it will have been idle for `timeout`, or `None` while a request is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        (self.in_flight.load(Ordering::SeqCst) == 0).then(|| since + timeout)
    }
}

/// A request in flight; dropped with its response body.
struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
    }
}

/// A response body that keeps its connection busy until it has been sent or dropped.
struct Guarded {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connections held, oldest first.
#[derive(Default)]
struct Registry {
    next: u64,
    conns: BTreeMap<u64, Arc<Conn>>,
}

impl Registry {
    /// Makes room for one more connection under `max`: closes the oldest idle one if needed.
    /// False when every connection is busy.
    fn admit(&mut self, max: usize) -> bool {
        if self.conns.len() < max {
            return true;
        }
        let oldest_idle = self
            .conns
            .iter()
            .find(|(_, c)| c.in_flight.load(Ordering::SeqCst) == 0)
            .map(|(k, _)| *k);
        match oldest_idle.and_then(|k| self.conns.remove(&k)) {
            Some(conn) => {
                conn.close.cancel();
                true
            }
            None => false,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, within `limits`; then lets the requests in
/// flight finish (for at most ten seconds).
///
/// # Errors
/// Never at present: accept errors (such as running out of file descriptors) are logged and
/// retried after a pause.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let tracker = TaskTracker::new();
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: waiting lets connections close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    }
                }
            },
        };
        let conn = {
            let mut reg = registry.lock().unwrap_or_else(|e| e.into_inner());
            if !reg.admit(limits.max_connections) {
                refused += 1;
                if refused.is_power_of_two() {
                    tracing::warn!(%peer, refused, max_connections = limits.max_connections,
                        "refused a connection: every connection has a request in flight");
                }
                drop(stream);
                continue;
            }
            let conn = Arc::new(Conn {
                in_flight: AtomicUsize::new(0),
                idle_since: Mutex::new(Instant::now()),
                close: shutdown.child_token(),
            });
            let id = reg.next;
            reg.next += 1;
            reg.conns.insert(id, conn.clone());
            (id, conn)
        };
        let (registry, router) = (registry.clone(), router.clone());
        tracker.spawn(async move {
            let (id, conn) = conn;
            serve_connection(stream, router, &conn, limits).await;
            registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .conns
                .remove(&id);
        });
    }
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "stopped with requests still in flight"
        );
    }
    Ok(())
}

async fn serve_connection(stream: TcpStream, router: Router, conn: &Arc<Conn>, limits: ConnLimits) {
    let _ = stream.set_nodelay(true);
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let busy = conn.busy();
            let router = router.clone();
            async move {
                let response = router
                    .oneshot(Request::from(request.map(Body::new)))
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                Ok::<Response<Guarded>, Infallible>(response.map(|inner| Guarded { inner, _busy: busy }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let idle = conn.idle_deadline(limits.idle_timeout);
        // While busy, look again a little later: the request's end resets the idle clock.
        let wake = idle.unwrap_or_else(|| Instant::now() + limits.idle_timeout.min(Duration::from_secs(1)));
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            () = conn.close.cancelled(), if !closing => {
                // Nothing in flight: whatever is half read is dropped with the socket.
                if conn.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep_until(wake), if !closing => {
                if conn.idle_deadline(limits.idle_timeout).is_some_and(|d| d <= Instant::now()) {
                    return;
                }
            }
        }
    }
}
