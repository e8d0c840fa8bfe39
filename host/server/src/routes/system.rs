//! Routes every client may call without a token: health, readiness, the
//! OpenAPI document and the page that renders it.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;

use crate::dto::{Health, Ready};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The API browser: one self-contained page, no external script or style,
/// since a node may run where nothing outside is reachable.
const DOCS_HTML: &str = include_str!("docs.html");

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "system",
    responses((status = 200, description = "The server is up", body = Health))
)]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// Readiness: every shard of the node takes work now.
#[utoipa::path(
    get,
    path = "/v1/ready",
    tag = "system",
    responses(
        (status = 200, description = "Every shard answered", body = Ready),
        (status = 503, description = "A shard queue is full or the node is stopping", body = ErrorBody),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    state.read_all(|_| ()).await?;
    Ok(Json(Ready { ready: true, shards: state.node().shard_count() }))
}

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "system",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = serde_json::Value))
)]
pub async fn openapi_json() -> impl IntoResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        crate::openapi().to_pretty_json().unwrap_or_else(|error| {
            format!("{{\"error\": {{\"code\": \"internal\", \"message\": \"{error}\"}}}}")
        })
    });
    ([(CONTENT_TYPE, "application/json")], document.as_str())
}

/// A page that renders the OpenAPI document: operations, parameters,
/// bodies, responses and schemas.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "system",
    responses((status = 200, description = "The API browser", content_type = "text/html", body = String))
)]
pub async fn docs() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page's own inline script and style, and fetches of this
            // origin; nothing else.
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
            (CACHE_CONTROL, "no-cache"),
        ],
        DOCS_HTML,
    )
}
