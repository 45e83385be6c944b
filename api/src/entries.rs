//! `GET /v1/topics/{topic}/partitions/{partition}/entries`: a partition's entries from the
//! archive and the hot window as one range, streamed as JSON lines (or Arrow IPC when asked),
//! without writing anything.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use streamtier_replayer::filter::Filter;
use streamtier_replayer::read::{encoded, read_range, Format};
use streamtier_replayer::source::PartitionSource;

use crate::state::AppState;
use crate::ApiError;

/// The query parameters the route knows.
const PARAMS: [&str; 5] = ["from", "after", "to", "limit", "filter"];

/// `GET /v1/topics/{topic}/partitions/{partition}/entries`
#[utoipa::path(tag = "topics", get, path = "/v1/topics/{topic}/partitions/{partition}/entries",
    params(("topic" = String, Path, description = "Topic name"), ("partition" = u32, Path, description = "Partition number"),
           ("from" = Option<String>, Query, description = "Inclusive start: RFC 3339 time or entry id"),
           ("after" = Option<String>, Query, description = "Exclusive start (instead of `from`): the last id of the previous page, or a time"),
           ("to" = Option<String>, Query, description = "Exclusive end: RFC 3339 time or entry id"),
           ("limit" = Option<u64>, Query, description = "Most entries (default 1000)"),
           ("filter" = Option<String>, Query, description = "Only the entries this filter takes, e.g. `fields.customer = '42' and amount > 100`")),
    responses((status = 401, description = "Missing or wrong bearer token", body = crate::problem::Problem, content_type = "application/problem+json"),
              (status = 200, description = "One JSON object per line: `{\"id\": …, \"fields\": [[name, value], …]}`, names and values that are not UTF-8 as `{\"base64\": …}`; a failure after the first line ends them with `{\"error\": …}`. With `Accept: application/vnd.apache.arrow.stream`, an Arrow IPC stream of `id` (utf8) and `fields` (list of struct `name`, `value`: binary)", content_type = "application/x-ndjson"),
              (status = 400, description = "Malformed parameter", body = crate::problem::Problem, content_type = "application/problem+json"),
              (status = 404, description = "No such topic or partition", body = crate::problem::Problem, content_type = "application/problem+json"),
              (status = 422, description = "A range that ends before it starts", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn entries(
    State(state): State<Arc<AppState>>,
    Path((topic, partition)): Path<(String, u32)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let arrow = Format::ArrowStream.content_type();
    let format = if headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with(arrow)))
    {
        Format::ArrowStream
    } else {
        Format::JsonLines
    };
    if let Some(unknown) = query.keys().find(|k| !PARAMS.contains(&k.as_str())) {
        return Err(ApiError::field(
            StatusCode::BAD_REQUEST,
            unknown.clone(),
            "unknown query parameter",
        ));
    }
    let limit = match query.get("limit") {
        None => 1000,
        Some(text) => text.parse::<u64>().map_err(|_| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                "limit",
                format!("`{text}` is not a count of entries"),
            )
        })?,
    };
    let get = |name: &str| query.get(name).map(String::as_str);
    let range = read_range(get("from"), get("after"), get("to"))?;
    let filter = get("filter").map(Filter::parse).transpose()?;
    let stream = state.stream_of(&topic, partition).await?;
    let source = PartitionSource::new(
        state.replayer.hot().clone(),
        state.replayer.store().clone(),
        &topic,
        partition,
        &stream,
        range,
        None,
    )
    .skipping_for(filter.clone());
    // A failure before the first entry is a status, not a 200 with an error line.
    let body = Body::from_stream(
        encoded(source, Some(limit), format, filter)
            .await?
            .map(Ok::<_, std::convert::Infallible>),
    );
    Ok(([(header::CONTENT_TYPE, format.content_type())], body).into_response())
}
