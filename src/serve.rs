//! `streamtier serve` (the HTTP API) and `streamtier run` (the API and the archiver daemon in
//! one process).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use streamtier_api::AppState;
use streamtier_archiver::{Context, Metrics, SystemClock};
use streamtier_replayer::Replayer;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{clients, load_config, owner_id, render, watch_signals};

/// Runs the API (and with `with_archiver`, the archiver daemon) until SIGINT/SIGTERM.
pub async fn serve(config: Option<PathBuf>, with_archiver: bool) -> ExitCode {
    let checked = match load_config(config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (hot, store) = match clients(&checked).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let replayer = Replayer::new(
        hot.clone(),
        store.clone(),
        checked.replay.clone(),
        shutdown.clone(),
    );
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(AppState {
        replayer: replayer.clone(),
        catalog: checked.catalog(),
        allowed_targets: checked.settings.replay.allowed_targets.clone(),
        token: checked.api.token.clone(),
        archiver: with_archiver.then(|| metrics.clone()),
        summaries: Default::default(),
    });
    let listener = match tokio::net::TcpListener::bind(checked.api.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {} (api.listen): {e}", checked.api.listen);
            return ExitCode::FAILURE;
        }
    };
    info!(listen = %checked.api.listen, auth = checked.api.token.is_some(), store = %store.describe(), "API listening");
    match replayer.resume_unfinished().await {
        Ok(0) => {}
        Ok(n) => info!(jobs = n, "resumed unfinished replay jobs"),
        Err(e) => warn!(error = %render(&e), "could not list unfinished replay jobs"),
    }
    let archiver = with_archiver.then(|| {
        let ctx = Context {
            hot,
            store,
            config: Arc::new(checked.archive.clone()),
            clock: Arc::new(SystemClock),
            metrics,
            owner: owner_id(),
        };
        let (source, shutdown) = (checked.source(), shutdown.clone());
        tokio::spawn(async move {
            info!("archiver running");
            let result = streamtier_archiver::run(ctx, source, shutdown.clone()).await;
            if let Err(e) = &result {
                error!("archiver stopped: {}", render(e));
                shutdown.cancel();
            }
            result.is_ok()
        })
    });
    let served = streamtier_api::serve(listener, state, checked.api.max_body_bytes, shutdown.clone()).await;
    shutdown.cancel();
    replayer.wait_stopped().await;
    let archiver_ok = match archiver {
        Some(task) => task.await.unwrap_or(false),
        None => true,
    };
    match served {
        Ok(()) if archiver_ok => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(()) => ExitCode::FAILURE,
        Err(e) => {
            error!("API server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
