//! The HTTP API in this process: the router over a real Redis and a local store, called without
//! a socket. For tests of requests and answers, where a port and a second process add nothing;
//! what needs the process (start-up checks, its log, signals) uses [`super::http::Server`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use streamtier_api::{AppState, Catalog};
use streamtier_archiver::settings::TopicSettings;
use streamtier_replayer::plan::TargetRules;
use streamtier_replayer::{ReplayLimits, Replayer};
use streamtier_tiers::store::{LocalStore, Store};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::harness::http::Response;
use crate::harness::redis::RedisServer;

/// The router of `streamtier serve`, in-process.
pub struct InProcessApi {
    router: Router,
    /// The local store the API reads.
    pub store: Store,
    /// Holds the local store's directory.
    _dir: tempfile::TempDir,
}

/// What the API is configured with (the parts the tests vary).
pub struct ApiSetup {
    /// `[[topics]]`, as the configuration file gives them.
    pub topics: Vec<serde_json::Value>,
    /// `[replay]` limits.
    pub limits: ReplayLimits,
    /// `replay.allowed_targets`.
    pub allowed_targets: Vec<String>,
    /// `api.max_body_bytes`.
    pub max_body_bytes: usize,
}

impl Default for ApiSetup {
    fn default() -> Self {
        ApiSetup {
            topics: vec![serde_json::json!({
                "name": "orders", "streams": "orders:{partition}", "partitions": 2
            })],
            limits: ReplayLimits::default(),
            allowed_targets: Vec::new(),
            max_body_bytes: 1 << 20,
        }
    }
}

impl InProcessApi {
    pub async fn start(redis: &RedisServer, setup: ApiSetup) -> InProcessApi {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::Local(LocalStore::new(dir.path()).expect("store"));
        let topics = setup
            .topics
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let settings: TopicSettings = serde_json::from_value(t).expect("topic settings");
                settings.check(i).expect("topic")
            })
            .collect();
        let state = AppState {
            replayer: Replayer::new(
                redis.hot().await,
                store.clone(),
                setup.limits,
                CancellationToken::new(),
            ),
            catalog: Catalog::Topics(topics),
            targets: TargetRules {
                allowed: setup.allowed_targets,
            },
            token: None,
            archiver: None,
            summaries: Default::default(),
        };
        InProcessApi {
            router: streamtier_api::router(Arc::new(state), setup.max_body_bytes, Duration::from_secs(30)),
            store,
            _dir: dir,
        }
    }

    /// Sends one request through the router.
    pub async fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.request_with(method, path, &[], body).await
    }

    /// Sends one request with extra headers through the router.
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::from(body.to_vec())).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec();
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, b"").await
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }
}
