//! Stock levels: receive, write off, list per store, get per SKU.

use axum::Json;
use axum::extract::State;
use bazaar_kernel::Command;
use bazaar_kernel::model::{Sku, StoreId, WarehouseId};

use crate::auth::{Authorized, perm};
use crate::dto::{PageQuery, SkuStock, StockList, StockMovement};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::routes::catalog::unknown_sku;
use crate::routes::stores::unknown_store;
use crate::routes::{cursor, entries_after, page};
use crate::state::AppState;

/// Which way stock moves.
enum Direction {
    /// Units arrive.
    Receive,
    /// Available units are written off.
    WriteOff,
}

async fn move_stock(
    state: AppState,
    store: StoreId,
    body: JsonBody,
    direction: Direction,
) -> Result<Json<SkuStock>, ApiError> {
    let movement: StockMovement = body.parse().await?;
    let sku = Sku::new(movement.sku).map_err(|error| ApiError::from(error).at_field("sku"))?;
    let warehouse = WarehouseId::new(movement.warehouse)
        .map_err(|error| ApiError::from(error).at_field("warehouse"))?;
    let (store_id, sku_id, quantity) = (store.clone(), sku.clone(), movement.quantity);
    let command = match direction {
        Direction::Receive => {
            Command::ReceiveStock { store: store_id, sku: sku_id, warehouse, quantity }
        }
        Direction::WriteOff => {
            Command::WriteOffStock { store: store_id, sku: sku_id, warehouse, quantity }
        }
    };
    let (_, view) = state
        .execute(command, move |shard, _| {
            shard.store(&store).map(|state| SkuStock::of(&sku, state))
        })
        .await?;
    view.map(Json).ok_or_else(|| ApiError::internal("a changed stock level is missing"))
}

/// Units arrive in a warehouse: on hand and available grow.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/stock/receipts",
    tag = "stock",
    params(("store" = String, Path, description = "Store id")),
    request_body = StockMovement,
    responses(
        (status = 200, description = "The SKU's stock after the receipt", body = SkuStock),
        (status = 404, description = "No such store, SKU or warehouse", body = ErrorBody),
        (status = 422, description = "Quantity zero or too large", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn receive(
    auth: Authorized<perm::WriteStock>,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Json<SkuStock>, ApiError> {
    let store = auth.store()?.clone();
    move_stock(state, store, body, Direction::Receive).await
}

/// Available units are written off (damaged, lost): on hand and available
/// shrink. Reserved and sold units cannot be written off.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/stock/write-offs",
    tag = "stock",
    params(("store" = String, Path, description = "Store id")),
    request_body = StockMovement,
    responses(
        (status = 200, description = "The SKU's stock after the write-off", body = SkuStock),
        (status = 404, description = "No such store, SKU or warehouse", body = ErrorBody),
        (status = 409, description = "Fewer units available than written off", body = ErrorBody),
        (status = 422, description = "Quantity zero or too large", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn write_off(
    auth: Authorized<perm::WriteStock>,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Json<SkuStock>, ApiError> {
    let store = auth.store()?.clone();
    move_stock(state, store, body, Direction::WriteOff).await
}

/// Stock of every SKU of the catalogue, in SKU order.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/stock",
    tag = "stock",
    params(("store" = String, Path, description = "Store id"), PageQuery),
    responses(
        (status = 200, description = "A page of stock levels", body = StockList),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    auth: Authorized<perm::ReadStock>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<StockList>, ApiError> {
    let store = auth.store()?.clone();
    let limit = query.limit()?;
    let after = cursor("after", query.after.as_deref(), Sku::new)?;
    let id = store.clone();
    let listed = state
        .read(&store, move |shard| {
            let state = shard.store(&id)?;
            let entries = entries_after(state.products(), after.as_ref());
            Some(page(entries, limit, |sku, _| SkuStock::of(sku, state)))
        })
        .await?;
    let (stock, next) = listed.ok_or_else(|| unknown_store(&store))?;
    Ok(Json(StockList { stock, next_after: next.map(|sku| sku.to_string()) }))
}

/// Stock of one SKU, per warehouse and in total.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/stock/{sku}",
    tag = "stock",
    params(
        ("store" = String, Path, description = "Store id"),
        ("sku" = String, Path, description = "SKU"),
    ),
    responses(
        (status = 200, description = "The SKU's stock", body = SkuStock),
        (status = 404, description = "No such store or SKU", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    auth: Authorized<perm::ReadStock>,
    State(state): State<AppState>,
    PathParams((_, sku)): PathParams<(String, String)>,
) -> Result<Json<SkuStock>, ApiError> {
    let store = auth.store()?.clone();
    let sku = Sku::new(sku.clone()).map_err(|_| unknown_sku(&sku))?;
    let (id, wanted) = (store.clone(), sku.clone());
    let found = state
        .read(&store, move |shard| {
            let state = shard.store(&id)?;
            Some(state.products().contains_key(&wanted).then(|| SkuStock::of(&wanted, state)))
        })
        .await?;
    found.ok_or_else(|| unknown_store(&store))?.map(Json).ok_or_else(|| unknown_sku(sku.as_str()))
}
