//! Stores: create (operators), list (a merchant sees its own), get.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use bazaar_kernel::model::StoreId;

use crate::auth::{Authorized, Role, perm};
use crate::dto::{CreateStore, PageQuery, Store, StoreList};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, QueryParams};
use crate::routes::{cursor, entries_after, page};
use crate::state::AppState;

/// Creates a store with its currency.
#[utoipa::path(
    post,
    path = "/v1/stores",
    tag = "stores",
    request_body = CreateStore,
    responses(
        (status = 201, description = "Created", body = Store),
        (status = 409, description = "A store with this id exists", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    _auth: Authorized<perm::CreateStores>,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let command = body.parse::<CreateStore>().await?.into_command()?;
    let store = command.store().clone();
    let id = store.clone();
    let (_, view) = state
        .execute(command, move |shard, _| {
            shard.store(&id).map(|s| (Store::of(&id, s), s.currency()))
        })
        .await?;
    let (view, currency) = view.ok_or_else(|| ApiError::internal("a created store is missing"))?;
    state.remember_currency(&store, currency);
    let location = format!("/v1/stores/{store}");
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(view)).into_response())
}

/// Lists stores in id order; a merchant sees only its own.
#[utoipa::path(
    get,
    path = "/v1/stores",
    tag = "stores",
    params(PageQuery),
    responses((status = 200, description = "A page of stores", body = StoreList)),
    security(("bearer" = []))
)]
pub async fn list(
    auth: Authorized<perm::ListStores>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<StoreList>, ApiError> {
    let limit = query.limit()?;
    let after = cursor("after", query.after.as_deref(), StoreId::new)?;
    let caller = auth.caller.clone();
    let pages = state
        .read_all(move |shard| {
            // One page per shard (plus one to know if more follow), then
            // merged: every shard holds a slice of the id order.
            let visible = entries_after(shard.stores(), after.as_ref()).filter(|(id, _)| {
                caller.role == Role::Operator || caller.reaches_store(id.as_str())
            });
            page(visible, limit + 1, Store::of).0
        })
        .await?;
    let mut stores: Vec<Store> = pages.into_iter().flatten().collect();
    stores.sort_by(|a, b| a.id.cmp(&b.id));
    let more = stores.len() > limit;
    stores.truncate(limit);
    let next_after = if more { stores.last().map(|s| s.id.clone()) } else { None };
    Ok(Json(StoreList { stores, next_after }))
}

/// One store: settings, counts and configured plugins.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}",
    tag = "stores",
    params(("store" = String, Path, description = "Store id")),
    responses(
        (status = 200, description = "The store", body = Store),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    auth: Authorized<perm::ReadStore>,
    State(state): State<AppState>,
) -> Result<Json<Store>, ApiError> {
    let store = auth.store()?.clone();
    let id = store.clone();
    let view = state.read(&store, move |shard| shard.store(&id).map(|s| Store::of(&id, s))).await?;
    view.map(Json).ok_or_else(|| unknown_store(&store))
}

/// The 404 of a store that does not exist.
pub fn unknown_store(store: &StoreId) -> ApiError {
    bazaar_kernel::KernelError::UnknownStore(store.to_string()).into()
}
