//! Trusted publishers (operators only): the ed25519 keys whose signatures
//! the node accepts on plugin packages, one per publisher id.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{Authorized, perm};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams};
use crate::platform_dto::{Publisher, PublisherList, TrustPublisher};
use crate::state::AppState;

/// Trusts a publisher's public key, replacing any key it had: packages
/// whose manifest names this publisher must be signed with it. Versions
/// already installed stay installed.
#[utoipa::path(
    put,
    path = "/v1/publishers/{publisher}",
    tag = "publishers",
    params(("publisher" = String, Path, description = "Publisher id, as in its manifests' `publisher`")),
    request_body = TrustPublisher,
    responses(
        (status = 200, description = "Trusted", body = Publisher),
        (status = 422, description = "Not a publisher id, or not a usable ed25519 public key", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn trust(
    _auth: Authorized<perm::ManagePublishers>,
    State(state): State<AppState>,
    PathParams(publisher): PathParams<String>,
    body: JsonBody,
) -> Result<Json<Publisher>, ApiError> {
    let input: TrustPublisher = body.parse().await?;
    let trusted = state
        .platform(move |platform| {
            platform.trust_publisher(&publisher, &input.public_key)?;
            Ok(platform.publishers().into_iter().find(|view| view.publisher == publisher))
        })
        .await?;
    trusted
        .map(|view| Json(view.into()))
        .ok_or_else(|| ApiError::internal("a trusted publisher is missing"))
}

/// Lists the trusted publishers.
#[utoipa::path(
    get,
    path = "/v1/publishers",
    tag = "publishers",
    responses((status = 200, description = "Every trusted publisher", body = PublisherList)),
    security(("bearer" = []))
)]
pub async fn list(
    _auth: Authorized<perm::ManagePublishers>,
    State(state): State<AppState>,
) -> Result<Json<PublisherList>, ApiError> {
    let publishers = state.platform(|platform| Ok(platform.publishers())).await?;
    Ok(Json(PublisherList { publishers: publishers.into_iter().map(Publisher::from).collect() }))
}

/// Stops trusting a publisher: its packages can no longer be installed.
/// Versions already installed stay installed and running.
#[utoipa::path(
    delete,
    path = "/v1/publishers/{publisher}",
    tag = "publishers",
    params(("publisher" = String, Path, description = "Publisher id")),
    responses(
        (status = 204, description = "No longer trusted"),
        (status = 404, description = "The publisher is not trusted", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn distrust(
    _auth: Authorized<perm::ManagePublishers>,
    State(state): State<AppState>,
    PathParams(publisher): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    state.platform(move |platform| platform.distrust_publisher(&publisher)).await.map_err(
        |mut refused| {
            if refused.status == StatusCode::NOT_FOUND {
                refused.code = "publisher_not_found";
            }
            refused
        },
    )?;
    Ok(StatusCode::NO_CONTENT)
}
