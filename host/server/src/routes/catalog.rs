//! The catalogue of a store: products with their prices, warehouses, and
//! the store's configuration of each plugin.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bazaar_kernel::Command;
use bazaar_kernel::model::{PluginId, Sku, WarehouseId};

use crate::auth::{Authorized, perm};
use crate::dto::{
    PageQuery, PluginConfigView, PluginRef, Product, ProductInput, ProductList, Warehouse,
    WarehouseInput, WarehouseList,
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

/// The plugin of this node named `plugin`, or a 404 naming those it runs.
fn known_plugin(state: &AppState, plugin: String) -> Result<(PluginId, PluginRef), ApiError> {
    let unknown = |plugin: &str| {
        ApiError::not_found(
            "plugin_not_found",
            format!("this node runs no plugin {:?}", plugin.chars().take(80).collect::<String>()),
        )
    };
    let id = PluginId::new(plugin.clone()).map_err(|_| unknown(&plugin))?;
    let known = state.plugin(&id).ok_or_else(|| unknown(&plugin))?;
    Ok((id, known.into()))
}

/// Sets the store's configuration of a plugin (the body is the plugin's
/// own JSON configuration object); the plugin runs on the store's orders
/// from now on.
#[utoipa::path(
    put,
    path = "/v1/stores/{store}/plugins/{plugin}/config",
    tag = "plugins",
    params(
        ("store" = String, Path, description = "Store id"),
        ("plugin" = String, Path, description = "Plugin id, e.g. `pricing-promotions`"),
    ),
    request_body(content = serde_json::Value, description = "The plugin's configuration: a JSON object of at most 64 KiB"),
    responses(
        (status = 200, description = "Stored", body = PluginConfigView),
        (status = 404, description = "No such store, or this node runs no such plugin", body = ErrorBody),
        (status = 422, description = "Not a JSON object", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_plugin_config(
    auth: Authorized<perm::ConfigurePlugins>,
    State(state): State<AppState>,
    PathParams((_, plugin)): PathParams<(String, String)>,
    body: JsonBody,
) -> Result<Json<PluginConfigView>, ApiError> {
    let store = auth.store()?.clone();
    let (plugin, reference) = known_plugin(&state, plugin)?;
    let config: serde_json::Value = body.parse().await?;
    if !config.is_object() {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "a plugin configuration must be a JSON object",
        ));
    }
    let command = Command::ConfigurePlugin {
        store: store.clone(),
        plugin: plugin.clone(),
        config_json: Some(config.to_string()),
    };
    let (_, view) = state
        .execute(command, move |shard, _| {
            let config = shard.store(&store)?.plugin_configs().get(&plugin)?;
            Some(PluginConfigView::of(&store, reference, config))
        })
        .await?;
    view.map(Json).ok_or_else(|| ApiError::internal("a stored configuration is missing"))
}

/// Removes the store's configuration of a plugin: it no longer runs on the
/// store's orders. Removing an absent configuration is not an error.
#[utoipa::path(
    delete,
    path = "/v1/stores/{store}/plugins/{plugin}/config",
    tag = "plugins",
    params(
        ("store" = String, Path, description = "Store id"),
        ("plugin" = String, Path, description = "Plugin id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such store, or this node runs no such plugin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_plugin_config(
    auth: Authorized<perm::ConfigurePlugins>,
    State(state): State<AppState>,
    PathParams((_, plugin)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let store = auth.store()?.clone();
    let (plugin, _) = known_plugin(&state, plugin)?;
    let command = Command::ConfigurePlugin { store, plugin, config_json: None };
    state.execute(command, |_, _| ()).await?;
    Ok(StatusCode::NO_CONTENT)
}
