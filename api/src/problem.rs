//! Errors as `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`, and the
//! offending `field` when there is one.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use streamtier_replayer::Error as ReplayError;
use streamtier_schemas::Report;
use streamtier_tiers::ErrorKind;

/// What the API answers when something is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A setting is wrong (startup only).
    #[error("invalid setting `{key}`: {reason}")]
    Settings {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// A problem to send to the client.
    #[error("{status} {title}: {detail}")]
    Problem {
        /// HTTP status.
        status: StatusCode,
        /// Short kind, e.g. `invalid-request`.
        kind: &'static str,
        /// Human title.
        title: &'static str,
        /// What exactly is wrong.
        detail: String,
        /// The request field at fault.
        field: Option<String>,
    },
}

/// The JSON body of a problem.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What exactly is wrong.
    pub detail: String,
    /// The request field at fault, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// A problem with a field.
    pub fn field(status: StatusCode, field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::problem(status, detail.into(), Some(field.into()))
    }

    /// A problem without a field.
    pub fn status(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::problem(status, detail.into(), None)
    }

    fn problem(status: StatusCode, detail: String, field: Option<String>) -> Self {
        let (kind, title) = kind_of(status);
        ApiError::Problem {
            status,
            kind,
            title,
            detail,
            field,
        }
    }
}

fn kind_of(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("invalid-request", "The request is malformed"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "A valid bearer token is required"),
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::CONFLICT => ("conflict", "The request conflicts with the target's state"),
        StatusCode::REQUEST_TIMEOUT => ("request-timeout", "The request did not arrive in time"),
        StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "The request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Send application/json"),
        StatusCode::UNPROCESSABLE_ENTITY => ("unprocessable", "The request cannot be honoured"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "A dependency is unavailable"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "The route does not take this method"),
        s if s.is_client_error() => ("invalid-request", s.canonical_reason().unwrap_or("Bad request")),
        _ => ("internal", "Internal error"),
    }
}

impl From<ReplayError> for ApiError {
    fn from(e: ReplayError) -> Self {
        let detail = Report(&e).to_string();
        match &e {
            ReplayError::Invalid { field, .. } => ApiError::field(StatusCode::BAD_REQUEST, field, detail),
            ReplayError::Unacceptable { field, .. } => {
                ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, detail)
            }
            ReplayError::Missing { field, .. } => ApiError::field(StatusCode::NOT_FOUND, field, detail),
            ReplayError::Conflict { .. } | ReplayError::Occupied { .. } | ReplayError::NotAStream { .. } => {
                ApiError::field(StatusCode::CONFLICT, "target", detail)
            }
            _ => ApiError::status(status_of(e.kind()), detail),
        }
    }
}

impl From<streamtier_tiers::Error> for ApiError {
    fn from(e: streamtier_tiers::Error) -> Self {
        ApiError::status(status_of(e.kind()), Report(&e).to_string())
    }
}

/// The HTTP status of each kind of error: the one place where errors become statuses (a
/// replay request's field errors add which field, 400 or 422).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Corrupt | ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Settings { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Problem {
                    kind: "/problems/internal".into(),
                    title: "Internal error".into(),
                    status: 500,
                    detail: self.to_string(),
                    field: None,
                },
            ),
            ApiError::Problem {
                status,
                kind,
                title,
                detail,
                field,
            } => (
                status,
                Problem {
                    kind: format!("/problems/{kind}"),
                    title: title.into(),
                    status: status.as_u16(),
                    detail,
                    field,
                },
            ),
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_error_has_its_status() {
        for (kind, status) in [
            (ErrorKind::InvalidInput, 400),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Corrupt, 500),
            (ErrorKind::Internal, 500),
        ] {
            assert_eq!(status_of(kind).as_u16(), status, "{kind:?}");
        }
    }
}
