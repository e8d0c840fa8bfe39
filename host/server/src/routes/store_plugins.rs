//! A store's plugins: what the merchant enabled, with which configuration,
//! consent, version and priority, and how the store's pricing plugins
//! combine.
//!
//! Enabling goes through the platform's checks first (the configuration
//! against the plugin's schema, the consent against the capabilities it
//! asks for, the pinned version), then through the journal as one
//! `ConfigurePlugin` command, so an order is priced either with the old
//! settings or the new ones, never a mix.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use bazaar_kernel::Command;
use bazaar_kernel::model::{Capability, PluginId, StoreId};
use bazaar_node::platform::{EnableRequest, PlatformError};

use crate::auth::{Authorized, perm};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams};
use crate::platform_dto::{EnablePlugin, PricingRulesBody, StorePlugin, StorePluginList};
use crate::routes::plugins::plugin_id;
use crate::routes::stores::unknown_store;
use crate::state::AppState;

/// Checks `request` with the platform and journals the store's new
/// configuration and settings of `plugin`.
async fn enable_checked(
    state: &AppState,
    store: StoreId,
    plugin: PluginId,
    request: EnableRequest,
) -> Result<Json<StorePlugin>, ApiError> {
    // An unknown store is a 404 before the configuration is judged.
    state.store_currency(&store).await?;
    let config_json = request.config.to_string();
    let checked = plugin.clone();
    let settings =
        state.platform(move |platform| platform.check_enable(&checked, &request)).await?;
    let command = Command::ConfigurePlugin {
        store: store.clone(),
        plugin: plugin.clone(),
        config_json: Some(config_json),
        settings,
    };
    let (_, view) = state
        .execute(command, move |shard, _| {
            let config = shard.store(&store)?.plugin_configs().get(&plugin)?;
            Some(StorePlugin::of(&store, plugin.as_str(), config))
        })
        .await?;
    view.map(Json).ok_or_else(|| ApiError::internal("a stored configuration is missing"))
}

/// Journals that the store no longer runs `plugin`.
async fn disable_plugin(
    state: &AppState,
    store: StoreId,
    plugin: PluginId,
) -> Result<StatusCode, ApiError> {
    let command = Command::ConfigurePlugin {
        store,
        plugin,
        config_json: None,
        settings: bazaar_kernel::PluginSettings::default(),
    };
    state.execute(command, |_, _| ()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables a plugin for the store, or changes its configuration and
/// settings: the configuration must match the plugin's schema (each
/// violation is named by its JSON pointer) and the consent must cover
/// every capability it asks for. It runs on the store's orders from the
/// next one on.
#[utoipa::path(
    put,
    path = "/v1/stores/{store}/plugins/{plugin}",
    tag = "store-plugins",
    params(
        ("store" = String, Path, description = "Store id"),
        ("plugin" = String, Path, description = "Plugin id, e.g. `pricing-promotions`"),
    ),
    request_body = EnablePlugin,
    responses(
        (status = 200, description = "Enabled", body = StorePlugin),
        (status = 404, description = "No such store, plugin or pinned version", body = ErrorBody),
        (status = 422, description = "The configuration does not match the schema, consent is missing, or a setting is out of range", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn enable(
    auth: Authorized<perm::ConfigurePlugins>,
    State(state): State<AppState>,
    PathParams((_, plugin)): PathParams<(String, String)>,
    body: JsonBody,
) -> Result<Json<StorePlugin>, ApiError> {
    let store = auth.store()?.clone();
    let plugin = plugin_id(&plugin)?;
    let input: EnablePlugin = body.parse().await?;
    let request = EnableRequest {
        consent: input.consent()?,
        config: input.config,
        version: input.version,
        priority: input.priority,
        exclusive: input.exclusive,
    };
    enable_checked(&state, store, plugin, request).await
}

/// Disables a plugin for the store: it no longer runs on the store's
/// orders. Disabling a plugin the store has not enabled is not an error.
#[utoipa::path(
    delete,
    path = "/v1/stores/{store}/plugins/{plugin}",
    tag = "store-plugins",
    params(
        ("store" = String, Path, description = "Store id"),
        ("plugin" = String, Path, description = "Plugin id"),
    ),
    responses(
        (status = 204, description = "Disabled"),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn disable(
    auth: Authorized<perm::ConfigurePlugins>,
    State(state): State<AppState>,
    PathParams((_, plugin)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let store = auth.store()?.clone();
    disable_plugin(&state, store, plugin_id(&plugin)?).await
}

/// The short form of enabling: the body is the configuration alone. The
/// store keeps its other settings for the plugin; a plugin the store has
/// not enabled yet is enabled following the active version, at priority 0,
/// with consent to the capabilities its marketplace listing shows. Use
/// `PUT /v1/stores/{store}/plugins/{plugin}` to consent, pin or order
/// explicitly.
#[utoipa::path(
    put,
    path = "/v1/stores/{store}/plugins/{plugin}/config",
    tag = "store-plugins",
    params(
        ("store" = String, Path, description = "Store id"),
        ("plugin" = String, Path, description = "Plugin id, e.g. `pricing-promotions`"),
    ),
    request_body(content = serde_json::Value, description = "The plugin's configuration: a JSON object of at most 64 KiB matching its schema"),
    responses(
        (status = 200, description = "Stored", body = StorePlugin),
        (status = 404, description = "No such store or plugin", body = ErrorBody),
        (status = 422, description = "Not a JSON object, or it does not match the schema", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_config(
    auth: Authorized<perm::ConfigurePlugins>,
    State(state): State<AppState>,
    PathParams((_, plugin)): PathParams<(String, String)>,
    body: JsonBody,
) -> Result<Json<StorePlugin>, ApiError> {
    let store = auth.store()?.clone();
    let plugin = plugin_id(&plugin)?;
    let config: serde_json::Value = body.parse().await?;
    let (wanted_store, wanted_plugin) = (store.clone(), plugin.clone());
    let current = state
        .read(&store, move |shard| {
            let state = shard.store(&wanted_store)?;
            Some(state.plugin_configs().get(&wanted_plugin).map(|c| c.settings.clone()))
        })
        .await?
        .ok_or_else(|| unknown_store(&store))?;
    let request = match current {
        Some(settings) => EnableRequest {
            config,
            consent: settings.consented,
            version: settings.version_pin,
            priority: settings.priority,
            exclusive: settings.exclusive,
        },
        None => {
            let listed = plugin.clone();
            let listing = state.platform(move |platform| platform.listing(&listed)).await?;
            let listing = listing.ok_or_else(|| {
                ApiError::from(PlatformError::NotFound(format!("no plugin {plugin} is installed")))
            })?;
            EnableRequest {
                config,
                consent: listing
                    .capabilities
                    .iter()
                    .filter_map(|capability| Capability::parse(capability.name))
                    .collect(),
                version: None,
                priority: 0,
                exclusive: false,
            }
        }
    };
    enable_checked(&state, store, plugin, request).await
}

/// The short form of disabling; the same as
/// `DELETE /v1/stores/{store}/plugins/{plugin}`.
#[utoipa::path(
    delete,
    path = "/v1/stores/{store}/plugins/{plugin}/config",
    tag = "store-plugins",
    params(
        ("store" = String, Path, description = "Store id"),
        ("plugin" = String, Path, description = "Plugin id"),
    ),
    responses(
        (status = 204, description = "Disabled"),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_config(
    auth: Authorized<perm::ConfigurePlugins>,
    State(state): State<AppState>,
    PathParams((_, plugin)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let store = auth.store()?.clone();
    disable_plugin(&state, store, plugin_id(&plugin)?).await
}

/// What the store has enabled, with configurations and settings, and how
/// its pricing plugins combine. A merchant sees only its own stores.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/plugins",
    tag = "store-plugins",
    params(("store" = String, Path, description = "Store id")),
    responses(
        (status = 200, description = "The store's plugins", body = StorePluginList),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    auth: Authorized<perm::ReadStore>,
    State(state): State<AppState>,
) -> Result<Json<StorePluginList>, ApiError> {
    let store = auth.store()?.clone();
    let id = store.clone();
    let listed = state
        .read(&store, move |shard| {
            let state = shard.store(&id)?;
            Some(StorePluginList {
                store: id.to_string(),
                plugins: state
                    .plugin_configs()
                    .iter()
                    .map(|(plugin, config)| StorePlugin::of(&id, plugin.as_str(), config))
                    .collect(),
                pricing_rules: state.pricing_rules().into(),
            })
        })
        .await?;
    listed.map(Json).ok_or_else(|| unknown_store(&store))
}

/// Sets how the store's pricing plugins combine: a cap on their total
/// discount, as a percentage of the subtotal, an amount, or both (the
/// smaller applies). Adjustments beyond the cap are trimmed, latest first.
#[utoipa::path(
    put,
    path = "/v1/stores/{store}/pricing-rules",
    tag = "store-plugins",
    params(("store" = String, Path, description = "Store id")),
    request_body = PricingRulesBody,
    responses(
        (status = 200, description = "Stored", body = PricingRulesBody),
        (status = 404, description = "No such store", body = ErrorBody),
        (status = 422, description = "A percentage over 100 or a negative amount", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn put_pricing_rules(
    auth: Authorized<perm::ConfigurePlugins>,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Json<PricingRulesBody>, ApiError> {
    let store = auth.store()?.clone();
    let input: PricingRulesBody = body.parse().await?;
    let command = Command::SetPricingRules { store: store.clone(), rules: input.into() };
    let (_, view) = state
        .execute(command, move |shard, _| {
            shard.store(&store).map(|state| PricingRulesBody::from(state.pricing_rules()))
        })
        .await?;
    view.map(Json).ok_or_else(|| ApiError::internal("stored pricing rules are missing"))
}
