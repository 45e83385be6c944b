//! The HTTP API: request, watch and cancel replays; each partition's hot window, archive and
//! lag; health, Prometheus metrics and OpenAPI.
//!
//! Routes (JSON; errors are `application/problem+json` naming the offending field):
//!
//! | route                           | what                                        |
//! |---------------------------------|---------------------------------------------|
//! | `POST /v1/replays`              | request a replay (202 + `Location`), or a dry run (200) |
//! | `GET /v1/replays`               | jobs, newest first (`offset`, `limit`)       |
//! | `GET /v1/replays/{id}`          | one job                                      |
//! | `POST /v1/replays/{id}/cancel`  | stop a job between batches                   |
//! | `POST /v1/replays/{id}/pause`, `…/resume` | hold a job before its next batch, or let it go on |
//! | `GET /v1/topics/{topic}/partitions/{p}/entries` | entries from the archive and Redis as one range (JSON lines or Arrow IPC) |
//! | `GET /v1/topics`                | topics                                       |
//! | `GET /v1/topics/{topic}`        | partitions: Redis, archive, lag, groups, gaps |
//! | `GET /healthz`, `GET /readyz`   | alive; Redis and the store answer            |
//! | `GET /metrics`                  | Prometheus text                              |
//! | `GET /openapi.json`             | OpenAPI 3.1, generated from the code         |
//!
//! # Security
//!
//! With `api.token` set, every `/v1` route needs `Authorization: Bearer <token>` (compared in
//! constant time); without one, [`ApiSettings::check`] refuses a non-loopback listen address
//! unless `api.allow_unauthenticated` says so. Replays may not write into source streams or
//! streamtier's own keys unless `replay.allowed_targets` lists them. Bodies are size-limited,
//! read whole within `api.body_read_timeout`, and unknown fields are rejected. The token never
//! appears in logs or errors.
//!
//! No client can stop the process or starve it (see [`serve`](mod@serve)): connections are
//! capped (`api.max_connections`, the oldest idle one making room), a request's head must arrive
//! within `api.header_read_timeout`, idle connections close after `api.idle_timeout`; filters
//! nest at most [`MAX_DEPTH`](streamtier_replayer::filter::MAX_DEPTH) levels and JSON bodies 128.
//! Every refusal, the router's and the extractors' included, is `application/problem+json`.

mod entries;
mod openapi;
mod ops;
mod problem;
pub mod replays;
pub mod serve;
pub mod settings;
mod state;
mod topics;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use openapi::ApiDoc;
pub use problem::{ApiError, Problem};
pub use settings::{ApiConfig, ApiSettings};
pub use state::{AppState, Catalog};

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

async fn require_token(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.as_bytes()) {
        next.run(request).await
    } else {
        let mut response = ApiError::status(
            StatusCode::UNAUTHORIZED,
            "send `Authorization: Bearer <api.token>`",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

async fn not_found() -> ApiError {
    ApiError::status(StatusCode::NOT_FOUND, "no such route")
}

/// Reads a request's body whole, within `api.body_read_timeout` and `api.max_body_bytes`,
/// before any handler sees it: a client trickling its body cannot hold a handler, and every
/// refusal is a problem (`408`, `413`, `400`).
async fn read_body(
    State((max_bytes, timeout)): State<(usize, Duration)>,
    request: Request,
    next: Next,
) -> Response {
    use http_body::Body as _;
    let (parts, body) = request.into_parts();
    if body.size_hint().exact() == Some(0) {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let read = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, max_bytes));
    match tokio::time::timeout(timeout, read).await {
        Err(_) => ApiError::status(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} (api.body_read_timeout)",
                humantime::format_duration(timeout)
            ),
        )
        .into_response(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {max_bytes} bytes (api.max_body_bytes)"),
        )
        .into_response(),
        Ok(Err(e)) => ApiError::status(
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {e}"),
        )
        .into_response(),
        Ok(Ok(collected)) => {
            let body = axum::body::Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
    }
}

/// Turns the plain-text refusals of axum's extractors and router (a path segment that is not a
/// number, a query that does not parse, a method a route does not take) into problems, so that
/// every error the API answers is `application/problem+json`.
async fn problems_only(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    // Refusals are a line of text; more is cut.
    let text = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    let mut problem = ApiError::status(status, detail).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(header::ALLOW, allow);
    }
    problem
}

/// The router over `state`: bodies of at most `max_body_bytes`, arriving within
/// `body_read_timeout`.
pub fn router(state: Arc<AppState>, max_body_bytes: usize, body_read_timeout: Duration) -> Router {
    let v1 = Router::new()
        .route("/v1/replays", post(replays::create).get(replays::list))
        .route("/v1/replays/{id}", get(replays::get))
        .route("/v1/replays/{id}/cancel", post(replays::cancel))
        .route("/v1/replays/{id}/pause", post(replays::pause))
        .route("/v1/replays/{id}/resume", post(replays::resume))
        .route("/v1/topics", get(topics::list))
        .route("/v1/topics/{topic}", get(topics::get))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/entries",
            get(entries::entries),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(v1)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(
            (max_body_bytes, body_read_timeout),
            read_body,
        ))
        .layer(middleware::from_fn(problems_only))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown`, then finishes the requests in flight, with
/// the connection limits of `config` (see [`serve`](mod@serve)).
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    config: &ApiConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = router(state, config.max_body_bytes, config.body_read_timeout);
    serve::serve(listener, router, config.conns, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
