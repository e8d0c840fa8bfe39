//! The catalogue of a store: products with their prices, and warehouses.

use axum::Json;
use axum::extract::State;
use bazaar_kernel::Command;
use bazaar_kernel::model::{Sku, WarehouseId};

use crate::auth::{Authorized, perm};
use crate::dto::{
    PageQuery, Product, ProductInput, ProductList, Warehouse, WarehouseInput, WarehouseList,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::routes::stores::unknown_store;
use crate::routes::{cursor, entries_after, page};
use crate::state::AppState;

/// Creates a product or replaces its title, price and purchase limit.
#[utoipa::path(
    put,
    path = "/v1/stores/{store}/products/{sku}",
    tag = "catalogue",
    params(
        ("store" = String, Path, description = "Store id"),
        ("sku" = String, Path, description = "SKU: 1 to 64 characters of A-Z a-z 0-9 . _ -"),
    ),
    request_body = ProductInput,
    responses(
        (status = 200, description = "Stored", body = Product),
        (status = 404, description = "No such store", body = ErrorBody),
        (status = 422, description = "Invalid SKU, price, or a currency other than the store's", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_product(
    auth: Authorized<perm::WriteCatalog>,
    State(state): State<AppState>,
    PathParams((_, sku)): PathParams<(String, String)>,
    body: JsonBody,
) -> Result<Json<Product>, ApiError> {
    let store = auth.store()?.clone();
    let sku = Sku::new(sku).map_err(|error| ApiError::from(error).at_field("sku"))?;
    let command = body.parse::<ProductInput>().await?.into_command(store.clone(), sku.clone())?;
    let (_, view) = state
        .execute(command, move |shard, _| {
            let state = shard.store(&store)?;
            state.products().get(&sku).map(|product| Product::of(product, state.currency()))
        })
        .await?;
    view.map(Json).ok_or_else(|| ApiError::internal("a stored product is missing"))
}

/// Lists the catalogue in SKU order.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/products",
    tag = "catalogue",
    params(("store" = String, Path, description = "Store id"), PageQuery),
    responses(
        (status = 200, description = "A page of products", body = ProductList),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_products(
    auth: Authorized<perm::ReadProducts>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<ProductList>, ApiError> {
    let store = auth.store()?.clone();
    let limit = query.limit()?;
    let after = cursor("after", query.after.as_deref(), Sku::new)?;
    let id = store.clone();
    let listed = state
        .read(&store, move |shard| {
            let state = shard.store(&id)?;
            let currency = state.currency();
            let entries = entries_after(state.products(), after.as_ref());
            Some(page(entries, limit, |_, product| Product::of(product, currency)))
        })
        .await?;
    let (products, next) = listed.ok_or_else(|| unknown_store(&store))?;
    Ok(Json(ProductList { products, next_after: next.map(|sku| sku.to_string()) }))
}

/// One product.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/products/{sku}",
    tag = "catalogue",
    params(
        ("store" = String, Path, description = "Store id"),
        ("sku" = String, Path, description = "SKU"),
    ),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No such store or SKU", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_product(
    auth: Authorized<perm::ReadProducts>,
    State(state): State<AppState>,
    PathParams((_, sku)): PathParams<(String, String)>,
) -> Result<Json<Product>, ApiError> {
    let store = auth.store()?.clone();
    let sku = Sku::new(sku.clone()).map_err(|_| unknown_sku(&sku))?;
    let id = store.clone();
    let wanted = sku.clone();
    let found = state
        .read(&store, move |shard| {
            let state = shard.store(&id)?;
            Some(state.products().get(&wanted).map(|p| Product::of(p, state.currency())))
        })
        .await?;
    found.ok_or_else(|| unknown_store(&store))?.map(Json).ok_or_else(|| unknown_sku(sku.as_str()))
}

/// The 404 of an unknown SKU.
pub fn unknown_sku(sku: &str) -> ApiError {
    bazaar_kernel::KernelError::UnknownSku(sku.chars().take(80).collect()).into()
}

/// Creates a warehouse or replaces its name and location.
#[utoipa::path(
    put,
    path = "/v1/stores/{store}/warehouses/{warehouse}",
    tag = "catalogue",
    params(
        ("store" = String, Path, description = "Store id"),
        ("warehouse" = String, Path, description = "Warehouse id: 1 to 64 characters of A-Z a-z 0-9 . _ -"),
    ),
    request_body = WarehouseInput,
    responses(
        (status = 200, description = "Stored", body = Warehouse),
        (status = 404, description = "No such store", body = ErrorBody),
        (status = 422, description = "Invalid id, name or coordinates", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_warehouse(
    auth: Authorized<perm::WriteCatalog>,
    State(state): State<AppState>,
    PathParams((_, warehouse)): PathParams<(String, String)>,
    body: JsonBody,
) -> Result<Json<Warehouse>, ApiError> {
    let store = auth.store()?.clone();
    let id =
        WarehouseId::new(warehouse).map_err(|error| ApiError::from(error).at_field("warehouse"))?;
    let input: WarehouseInput = body.parse().await?;
    let warehouse = bazaar_kernel::model::Warehouse {
        id: id.clone(),
        name: input.name,
        location: input.location.into(),
    };
    let command = Command::UpsertWarehouse { store: store.clone(), warehouse };
    let (_, view) = state
        .execute(command, move |shard, _| {
            shard.store(&store)?.warehouses().get(&id).map(Warehouse::from)
        })
        .await?;
    view.map(Json).ok_or_else(|| ApiError::internal("a stored warehouse is missing"))
}

/// Lists warehouses in id order.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/warehouses",
    tag = "catalogue",
    params(("store" = String, Path, description = "Store id"), PageQuery),
    responses(
        (status = 200, description = "A page of warehouses", body = WarehouseList),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_warehouses(
    auth: Authorized<perm::ReadStore>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<WarehouseList>, ApiError> {
    let store = auth.store()?.clone();
    let limit = query.limit()?;
    let after = cursor("after", query.after.as_deref(), WarehouseId::new)?;
    let id = store.clone();
    let listed = state
        .read(&store, move |shard| {
            let entries = entries_after(shard.store(&id)?.warehouses(), after.as_ref());
            Some(page(entries, limit, |_, warehouse| Warehouse::from(warehouse)))
        })
        .await?;
    let (warehouses, next) = listed.ok_or_else(|| unknown_store(&store))?;
    Ok(Json(WarehouseList { warehouses, next_after: next.map(|id| id.to_string()) }))
}
