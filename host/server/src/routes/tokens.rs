//! Token management (operators only): issue, list, revoke.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bazaar_kernel::model::{PluginId, StoreId};

use crate::auth::{Authorized, TokenRequest, perm};
use crate::dto::{CreateToken, IssuedToken, Token, TokenList};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams};
use crate::state::AppState;

/// Issues a token. The secret is in this response only; the node keeps
/// just its SHA-256.
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "tokens",
    request_body = CreateToken,
    responses(
        (status = 201, description = "Issued; the secret is shown this once", body = IssuedToken),
        (status = 409, description = "The node holds the most tokens it may", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    _auth: Authorized<perm::ManageTokens>,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let input: CreateToken = body.parse().await?;
    let stores = input
        .stores
        .into_iter()
        .enumerate()
        .map(|(index, store)| {
            StoreId::new(store).map_err(|e| ApiError::from(e).at_field(format!("stores[{index}]")))
        })
        .collect::<Result<_, _>>()?;
    let plugins = input
        .plugins
        .into_iter()
        .enumerate()
        .map(|(index, plugin)| {
            PluginId::new(plugin)
                .map_err(|e| ApiError::from(e).at_field(format!("plugins[{index}]")))
        })
        .collect::<Result<_, _>>()?;
    let request = TokenRequest { role: input.role, stores, plugins, label: input.label };
    // Issuing writes the registry durably: storage IO, off the reactor.
    let issued = tokio::task::spawn_blocking(move || state.tokens().issue(request))
        .await
        .map_err(|error| ApiError::internal(format!("issuing a token failed: {error}")))??;
    let (record, secret) = issued;
    Ok((StatusCode::CREATED, Json(IssuedToken { secret, token: Token::from(record.as_ref()) })))
}

/// Lists every token, without secrets.
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "tokens",
    responses((status = 200, description = "Every token, oldest first", body = TokenList)),
    security(("bearer" = []))
)]
pub async fn list(
    _auth: Authorized<perm::ManageTokens>,
    State(state): State<AppState>,
) -> Json<TokenList> {
    let tokens = state.tokens().list().iter().map(|record| Token::from(record.as_ref())).collect();
    Json(TokenList { tokens })
}

/// Revokes a token at once. The last operator token cannot be revoked.
#[utoipa::path(
    delete,
    path = "/v1/tokens/{token_id}",
    tag = "tokens",
    params(("token_id" = String, Path, description = "The token's id (`tok_...`)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 409, description = "It is the last operator token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    _auth: Authorized<perm::ManageTokens>,
    State(state): State<AppState>,
    PathParams(token_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    tokio::task::spawn_blocking(move || state.tokens().revoke(&token_id))
        .await
        .map_err(|error| ApiError::internal(format!("revoking a token failed: {error}")))??;
    Ok(StatusCode::NO_CONTENT)
}
