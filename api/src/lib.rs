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
//! streamtier's own keys unless `replay.allowed_targets` lists them. Bodies are size-limited and
//! unknown fields are rejected. The token never appears in logs or errors.

mod entries;
mod openapi;
mod ops;
mod problem;
pub mod replays;
pub mod settings;
mod state;
mod topics;

use std::sync::Arc;

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

/// The router over `state`.
pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
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
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown`, then finishes the requests in flight.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    max_body_bytes: usize,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state, max_body_bytes))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
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
