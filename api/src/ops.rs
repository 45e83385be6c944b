//! Operations endpoints: liveness, readiness, Prometheus metrics.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use streamtier_replayer::JobState;
use streamtier_schemas::Report;

use crate::state::AppState;
use crate::ApiError;

/// Jobs counted by state in `/metrics` (the newest ones).
const JOBS_COUNTED: u64 = 1000;

/// Health answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(tag = "operations", get, path = "/healthz", responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /readyz`: Redis and the store answer.
#[utoipa::path(tag = "operations", get, path = "/readyz", responses((status = 200, description = "Ready", body = Health),
    (status = 503, description = "Redis or the store does not answer", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Health>, ApiError> {
    state
        .replayer
        .hot()
        .ping()
        .await
        .map_err(|e| ApiError::status(StatusCode::SERVICE_UNAVAILABLE, format!("redis: {}", Report(&e))))?;
    state
        .replayer
        .store()
        .check()
        .await
        .map_err(|e| ApiError::status(StatusCode::SERVICE_UNAVAILABLE, format!("store: {}", Report(&e))))?;
    Ok(Json(Health { status: "ok" }))
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(tag = "operations", get, path = "/metrics", responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::new();
    if let Some(m) = &state.archiver {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "streamtier_archived_entries_total",
            "Entries written into new objects.",
            load(&m.archived_entries),
        );
        counter(
            &mut out,
            "streamtier_archived_bytes_total",
            "Bytes of new objects.",
            load(&m.archived_bytes),
        );
        counter(
            &mut out,
            "streamtier_archived_objects_total",
            "New objects.",
            load(&m.archived_objects),
        );
        counter(
            &mut out,
            "streamtier_adopted_objects_total",
            "Objects another archiver had already written.",
            load(&m.adopted_objects),
        );
        counter(
            &mut out,
            "streamtier_removed_objects_total",
            "Objects stored and then removed because another archiver moved the chain first.",
            load(&m.removed_objects),
        );
        counter(
            &mut out,
            "streamtier_trimmed_entries_total",
            "Entries trimmed from Redis.",
            load(&m.trimmed_entries),
        );
        counter(
            &mut out,
            "streamtier_gaps_total",
            "Gap records written.",
            load(&m.gaps),
        );
        counter(
            &mut out,
            "streamtier_group_snapshots_total",
            "Consumer-group snapshots written.",
            load(&m.group_snapshots),
        );
        counter(
            &mut out,
            "streamtier_gap_entries_total",
            "Entries lost before they were archived.",
            load(&m.gap_entries),
        );
        counter(
            &mut out,
            "streamtier_archive_errors_total",
            "Failed partition passes (Redis or store errors; retried).",
            load(&m.errors),
        );
        let statuses = m.statuses();
        let _ = writeln!(out, "# HELP streamtier_archive_lag_entries Entries in Redis not archived yet.\n# TYPE streamtier_archive_lag_entries gauge");
        for ((topic, p), s) in &statuses {
            if let Some(lag) = s.unarchived_entries {
                let _ = writeln!(
                    out,
                    "streamtier_archive_lag_entries{{topic=\"{}\",partition=\"{p}\"}} {lag}",
                    label(topic)
                );
            }
        }
        let _ = writeln!(out, "# HELP streamtier_groups_behind Consumer groups trimmed past by retain_max_entries.\n# TYPE streamtier_groups_behind gauge");
        for ((topic, p), s) in &statuses {
            let _ = writeln!(
                out,
                "streamtier_groups_behind{{topic=\"{}\",partition=\"{p}\"}} {}",
                label(topic),
                s.groups_behind.len()
            );
        }
        let _ = writeln!(out, "# HELP streamtier_partition_failing 1 when the last pass over the partition failed.\n# TYPE streamtier_partition_failing gauge");
        for ((topic, p), s) in &statuses {
            let _ = writeln!(
                out,
                "streamtier_partition_failing{{topic=\"{}\",partition=\"{p}\"}} {}",
                label(topic),
                u8::from(s.last_error.is_some())
            );
        }
    }
    let r = state.replayer.metrics();
    counter(
        &mut out,
        "streamtier_replay_entries_total",
        "Entries written by replays.",
        r.entries.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "streamtier_replay_batches_total",
        "Replay write scripts run.",
        r.batches.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "streamtier_replay_retries_total",
        "Retried Redis or store failures during replays.",
        r.retries.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "streamtier_replay_objects_total",
        "Objects opened by replays.",
        r.objects.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "streamtier_replay_bytes_total",
        "Bytes fetched from the store by replays.",
        r.bytes.load(Ordering::Relaxed),
    );
    let _ = writeln!(out, "# HELP streamtier_replay_paused_seconds_total Time replays waited before a batch, by reason.\n# TYPE streamtier_replay_paused_seconds_total counter");
    for reason in streamtier_replayer::PauseReason::ALL {
        let _ = writeln!(
            out,
            "streamtier_replay_paused_seconds_total{{reason=\"{}\"}} {:.3}",
            reason.as_str(),
            r.paused.get(reason) as f64 / 1000.0
        );
    }
    let mut counts = [0u64; 6];
    let mut rates = String::new();
    let mut observed = String::new();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    if let Ok((ids, _)) = state.replayer.jobs().list(0, JOBS_COUNTED).await {
        for id in ids {
            if let Ok(job) = state.replayer.jobs().get(&id).await {
                let i = match job.state {
                    JobState::Queued => 0,
                    JobState::Running => 1,
                    JobState::Succeeded => 2,
                    JobState::Failed => 3,
                    JobState::Cancelled => 4,
                    JobState::Paused => 5,
                };
                counts[i] += 1;
                if matches!(job.state, JobState::Running | JobState::Paused) {
                    let _ = writeln!(
                        rates,
                        "streamtier_replay_rate_limit{{job=\"{}\"}} {}",
                        job.id, job.rate_limit
                    );
                    let started = job
                        .started_at
                        .as_deref()
                        .and_then(streamtier_schemas::parse_rfc3339_ms);
                    if let Some(started) = started {
                        let secs = (now_ms - started).max(1) as f64 / 1000.0;
                        let _ = writeln!(
                            observed,
                            "streamtier_replay_job_entries_per_second{{job=\"{}\"}} {:.1}",
                            job.id,
                            job.entries_replayed as f64 / secs
                        );
                    }
                }
            }
        }
    }
    let _ = writeln!(out, "# HELP streamtier_replay_jobs Replay jobs by state (newest {JOBS_COUNTED}).\n# TYPE streamtier_replay_jobs gauge");
    for (state_name, n) in ["queued", "running", "succeeded", "failed", "cancelled", "paused"]
        .iter()
        .zip(counts)
    {
        let _ = writeln!(out, "streamtier_replay_jobs{{state=\"{state_name}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP streamtier_replay_rate_limit Entries per second allowed to each running job.\n# TYPE streamtier_replay_rate_limit gauge");
    out.push_str(&rates);
    let _ = writeln!(out, "# HELP streamtier_replay_job_entries_per_second Entries per second each running job has replayed since it started.\n# TYPE streamtier_replay_job_entries_per_second gauge");
    out.push_str(&observed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
        .into_response()
}
