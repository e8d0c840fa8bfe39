//! `GET /metrics`: the node's figures for Prometheus.
//!
//! It needs an operator token unless the node is configured with
//! `metrics_public`, because the figures name stores and plugins and show
//! the node's load. It is outside the in-flight cap, so an overloaded node
//! still tells its scraper why; its own cap is `METRICS_SCRAPES_MAX`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse as _, Response};

use crate::auth::{Permission, authorize};
use crate::error::{ApiError, ErrorBody};
use crate::metrics::{self, METRICS_SCRAPES_MAX};
use crate::state::{AppState, MetricsAccess};

/// Prometheus metrics in the text exposition format 0.0.4: orders placed
/// and duplicated, commands refused, journal commits, records and bytes,
/// journal commit latency and records per commit (histograms), shard queue
/// depths, calls, failures, traps and instantiations per plugin version,
/// open circuit breakers, analytics consumer lag, and HTTP requests and
/// latency per route. An operator token is needed unless the node runs
/// with `metrics_public`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "metrics",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 503, description = "Too many scrapes at once", body = ErrorBody),
    ),
    security(("bearer" = []), ())
)]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.metrics_access() == MetricsAccess::Operator {
        authorize(&headers, &state, Permission::ReadMetrics)?;
    }
    let _permit = state.scrapes().try_acquire().map_err(|_| {
        ApiError::overloaded(format!(
            "{METRICS_SCRAPES_MAX} scrapes are in progress already; retry shortly"
        ))
    })?;
    let scrape = state.scrape().await?;
    let text = metrics::render(&scrape, state.http_metrics());
    Ok(([(CONTENT_TYPE, metrics::CONTENT_TYPE), (CACHE_CONTROL, "no-store")], text).into_response())
}
