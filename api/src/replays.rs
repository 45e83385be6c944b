//! `/v1/replays`: request, list, watch and cancel replay jobs.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Serialize;
use streamtier_replayer::plan::{self, dry_run};
use streamtier_replayer::{IdRange, JobPlan, JobRecord, PartitionPlan, ReplayRequest};

use crate::state::AppState;
use crate::ApiError;

/// Answer to a dry run: what the replay would read, per partition and in total.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DryRun {
    /// Always true.
    pub dry_run: bool,
    /// The topic.
    pub topic: String,
    /// The resolved range.
    pub range: IdRange,
    /// Per partition.
    pub partitions: Vec<PartitionPlan>,
    /// Objects to read.
    pub objects: u64,
    /// Entries in those objects plus entries only in Redis.
    pub entries: u64,
    /// Bytes of those objects.
    pub bytes: u64,
    /// With a filter: the entries it takes, counted by reading the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matching_entries: Option<u64>,
    /// With a restore: the entries it writes (each snapshot's window and the older entries a
    /// group had pending).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_entries: Option<u64>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<JobRecord>,
    /// All jobs.
    pub total: u64,
    /// Jobs skipped.
    pub offset: u64,
    /// Page size.
    pub limit: u64,
}

/// Parses a JSON body, naming the field at fault.
fn parse_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::status(StatusCode::PAYLOAD_TOO_LARGE, r.body_text())
        } else {
            ApiError::status(StatusCode::BAD_REQUEST, r.body_text())
        }
    })?;
    // The body is JSON whatever the content type says: `curl -d` sends a form type by default.
    let _ = headers;
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // An unknown or missing field is named in serde's message, not in the path.
        let field = extract_quoted(&message)
            .filter(|_| message.starts_with("unknown field") || message.starts_with("missing field"))
            .unwrap_or(path);
        // `.` is the whole body (not JSON, or not an object), `?` a place the parser had not
        // reached a field in (a body cut short): no field to name.
        if field == "." || field.split('.').any(|segment| segment == "?") {
            ApiError::status(StatusCode::BAD_REQUEST, message)
        } else {
            ApiError::field(StatusCode::BAD_REQUEST, field, message)
        }
    })?;
    // Anything after the value is an error of the whole body.
    de.end()
        .map_err(|e| ApiError::status(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(value)
}

fn extract_quoted(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = message[start..].find('`')? + start;
    Some(message[start..end].to_string())
}

/// Plans a request with the replayer's planner, against this server's topics and rules.
///
/// # Errors
/// 400 for malformed fields, 404 for an unknown topic or partition, 422 for a range, template
/// or rate that cannot be honoured, 503 when Redis cannot be read.
pub async fn plan_request(state: &AppState, request: &ReplayRequest) -> Result<JobPlan, ApiError> {
    let topics = state.topics().await?;
    let limits = state.replayer.limits();
    Ok(plan::plan_request(state.replayer.hot(), limits, &state.targets, &topics, request).await?)
}

/// `POST /v1/replays`
#[utoipa::path(tag = "replays", post, path = "/v1/replays", request_body = ReplayRequest,
    responses(
        (status = 202, description = "Job accepted; `Location` names it", body = JobRecord),
        (status = 200, description = "Dry run: the plan", body = DryRun),
        (status = 400, description = "Malformed request", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or wrong token", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown topic or partition", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The target is not a stream, original ids would not ascend in it, or a restore's target is not empty", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Range, template or rate cannot be honoured", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ReplayRequest = parse_body(&headers, body)?;
    let plan = plan_request(&state, &request).await?;
    let (hot, store) = (state.replayer.hot(), state.replayer.store());
    let range = plan.range;
    // A dry run answers what the real request would: a conflict is a conflict.
    let plan = plan::prepare(hot, store, plan).await?;
    if request.dry_run {
        let partitions = dry_run(hot, store, &plan).await?;
        let body = DryRun {
            dry_run: true,
            topic: request.topic.clone(),
            range,
            objects: partitions.iter().map(|p| p.objects).sum(),
            entries: partitions
                .iter()
                .map(|p| p.archived_entries + p.redis_entries)
                .sum(),
            bytes: partitions.iter().map(|p| p.bytes).sum(),
            matching_entries: partitions.iter().map(|p| p.matching_entries).sum::<Option<u64>>(),
            restore_entries: partitions.iter().map(|p| p.restore_entries).sum::<Option<u64>>(),
            partitions,
        };
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let record = state.replayer.create(&plan).await?;
    state.replayer.spawn(record.clone());
    let location = format!("/v1/replays/{}", record.id);
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(record)).into_response())
}

fn number(query: &HashMap<String, String>, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::field(
                StatusCode::BAD_REQUEST,
                name,
                format!("`{text}` is not a number from 0 to {max}"),
            )),
        },
    }
}

/// `GET /v1/replays`
#[utoipa::path(tag = "replays", get, path = "/v1/replays",
    params(("offset" = Option<u64>, Query, description = "Jobs to skip"), ("limit" = Option<u64>, Query, description = "Page size, at most 500 (default 50)")),
    responses((status = 401, description = "Missing or wrong bearer token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 200, description = "Jobs, newest first", body = JobPage)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<JobPage>, ApiError> {
    if let Some(unknown) = query.keys().find(|k| !["offset", "limit"].contains(&k.as_str())) {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            unknown.clone(),
            "unknown query parameter",
        ));
    }
    let offset = number(&query, "offset", 0, u64::MAX / 4)?;
    let limit = number(&query, "limit", 50, 500)?;
    let (ids, total) = state.replayer.jobs().list(offset, limit).await?;
    let mut jobs = Vec::with_capacity(ids.len());
    for id in ids {
        match state.replayer.jobs().get(&id).await {
            Ok(record) => jobs.push(record),
            Err(streamtier_replayer::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(JobPage {
        jobs,
        total,
        offset,
        limit,
    }))
}

/// `GET /v1/replays/{id}`
#[utoipa::path(tag = "replays", get, path = "/v1/replays/{id}", params(("id" = String, Path, description = "Job id")),
    responses((status = 401, description = "Missing or wrong bearer token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 200, description = "The job", body = JobRecord),
              (status = 404, description = "No such job", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    Ok(Json(state.replayer.jobs().get(&id).await?))
}

/// `POST /v1/replays/{id}/cancel`
#[utoipa::path(tag = "replays", post, path = "/v1/replays/{id}/cancel", params(("id" = String, Path, description = "Job id")),
    responses((status = 401, description = "Missing or wrong bearer token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 202, description = "Cancel requested; the job stops between batches", body = JobRecord),
              (status = 404, description = "No such job", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = state.replayer.cancel(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

/// `POST /v1/replays/{id}/pause`
#[utoipa::path(tag = "replays", post, path = "/v1/replays/{id}/pause", params(("id" = String, Path, description = "Job id")),
    responses((status = 401, description = "Missing or wrong bearer token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 202, description = "Pause requested; the job waits before its next batch (state `paused`, reason `operator`) until resumed", body = JobRecord),
              (status = 404, description = "No such job", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn pause(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let record = state.replayer.pause(&id, true).await?;
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

/// `POST /v1/replays/{id}/resume`
#[utoipa::path(tag = "replays", post, path = "/v1/replays/{id}/resume", params(("id" = String, Path, description = "Job id")),
    responses((status = 401, description = "Missing or wrong bearer token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 202, description = "The operator's hold is lifted; the job goes on unless Redis' pressure holds it", body = JobRecord),
              (status = 404, description = "No such job", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn resume(state: State<Arc<AppState>>, id: Path<String>) -> Result<Response, ApiError> {
    hold(state, id, false).await
}

/// Holds a job (or lets it go on): `202` with the job as it is.
async fn hold(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    on: bool,
) -> Result<Response, ApiError> {
    let record = state.replayer.pause(&id, on).await?;
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}
