//! The OpenAPI 3.1 document, generated from the handlers and types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "streamtier", description = "Unlimited retention for Redis Streams: replays, topics, health."),
    paths(
        crate::replays::create,
        crate::replays::list,
        crate::replays::get,
        crate::replays::cancel,
        crate::replays::pause,
        crate::replays::resume,
        crate::topics::list,
        crate::topics::get,
        crate::entries::entries,
        crate::ops::healthz,
        crate::ops::readyz,
        crate::ops::metrics,
        openapi_json,
    ),
    components(schemas(
        streamtier_replayer::ReplayRequest,
        streamtier_replayer::JobRecord,
        streamtier_replayer::PartitionPlan,
        crate::problem::Problem,
    )),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

/// `GET /openapi.json`
#[utoipa::path(tag = "operations", get, path = "/openapi.json", responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
