//! `streamtier serve` (the HTTP API) and `streamtier run` (the API and the archiver daemon in
//! one process).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use streamtier_archiver::{Context, Metrics, SystemClock};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{api_state, owner_id, start, watch_signals};
use streamtier_schemas::Report;

/// Runs the API (and with `with_archiver`, the archiver daemon) until SIGINT/SIGTERM.
pub async fn serve(config: Option<PathBuf>, with_archiver: bool) -> ExitCode {
    let (checked, hot, store) = match start(config.as_deref()).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(watch_signals(shutdown.clone()));
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(api_state(
        &checked,
        hot.clone(),
        store.clone(),
        &shutdown,
        with_archiver.then(|| metrics.clone()),
    ));
    let replayer = state.replayer.clone();
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
        Err(e) => warn!(error = %Report(&e), "could not list unfinished replay jobs"),
    }
    // Jobs whose runner dies later (a `streamtier replay` or another server killed) are
    // adopted once their lease runs out.
    replayer.adopt_orphans();
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
                error!("archiver stopped: {}", Report(e));
                shutdown.cancel();
            }
            result.is_ok()
        })
    });
    let served = streamtier_api::serve(listener, state, &checked.api, shutdown.clone()).await;
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
            error!("API server failed: {}", Report(&e));
            ExitCode::FAILURE
        }
    }
}
