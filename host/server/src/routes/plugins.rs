//! The plugin platform: installing signed packages, the marketplace, the
//! operator's version controls (activate, roll back, shadow runs, removal),
//! circuit breakers and call counters.
//!
//! Every platform call runs off the async reactor: it reads or writes the
//! registry's storage, and an install compiles the component.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::LOCATION;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bazaar_kernel::model::PluginId;
use bazaar_registry::{Manifest, Package, PluginSignature};

use crate::auth::{Authorized, Role, perm};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{
    JsonBody, PLUGIN_UPLOAD_BYTES_MAX, PLUGIN_UPLOAD_READ_TIMEOUT_MS, PathParams, decode_json,
};
use crate::platform_dto::{
    ActivatePlugin, Breaker, BreakerList, InstallPlugin, InstalledPlugin, Plugin, PluginList,
    PluginStats, PluginSwap, ShadowRun, StartShadow, VersionCounters,
};
use crate::state::{AppState, PLUGIN_UPLOADS_MAX};

/// The plugin of a path, or the 404 of a plugin that cannot exist.
pub fn plugin_id(text: &str) -> Result<PluginId, ApiError> {
    PluginId::new(text).map_err(|_| {
        ApiError::not_found(
            "plugin_not_found",
            format!("no plugin {:?} is installed", text.chars().take(80).collect::<String>()),
        )
    })
}

/// Decodes the base64 component of an upload; line breaks and spaces (as
/// `base64` tools wrap their output) are ignored.
fn decode_component(text: &str) -> Result<Vec<u8>, ApiError> {
    let engine = base64::engine::general_purpose::STANDARD;
    let decoded = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        engine.decode(compact)
    } else {
        engine.decode(text)
    };
    decoded.map_err(|error| {
        ApiError::bad_request(
            "invalid_base64",
            format!("field `component` is not standard base64 (with padding): {error}"),
        )
        .at_field("component")
    })
}

/// Installs a signed plugin package after every check: the manifest, the
/// publisher's trust and signature, the capabilities, the component's
/// size, shape, world and imports, and its compilation. Nothing is stored
/// unless all pass. A plugin's first version becomes its active version.
/// Operators install any plugin; a partner token only the plugins it lists.
#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "plugins",
    request_body(content = InstallPlugin, description = "The package: manifest text, base64 component, hex signature. Up to about 86 MiB, the only route allowed more than 64 KiB."),
    responses(
        (status = 201, description = "Installed", body = InstalledPlugin,
            headers(("Location" = String, description = "The plugin's URL"))),
        (status = 200, description = "The identical version was installed already", body = InstalledPlugin),
        (status = 400, description = "A field is not valid base64 or hex (the field is named)", body = ErrorBody),
        (status = 403, description = "Untrusted publisher, a capability the node does not grant, or a partner token for another plugin", body = ErrorBody),
        (status = 409, description = "The version exists with other bytes, or the id is a plugin of another kind", body = ErrorBody),
        (status = 413, description = "The body, or the component, is over its limit", body = ErrorBody),
        (status = 422, description = "Invalid manifest, missing or wrong signature, a core module instead of a component, the wrong world, an import not granted or unknown, limits above the node's", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn install(
    auth: Authorized<perm::InstallPlugins>,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let _permit = state.uploads().clone().try_acquire_owned().map_err(|_| {
        ApiError::overloaded(format!(
            "{PLUGIN_UPLOADS_MAX} plugin uploads are in progress already; retry shortly"
        ))
    })?;
    let bytes = body.bytes_within(PLUGIN_UPLOAD_BYTES_MAX, PLUGIN_UPLOAD_READ_TIMEOUT_MS).await?;
    let InstallPlugin { manifest: manifest_text, component, signature } = decode_json(&bytes)?;
    // The raw body and then the base64 text are let go as soon as they are
    // decoded: an upload holds tens of megabytes at each step.
    drop(bytes);
    // The manifest names the plugin: a partner may install only its own,
    // checked before the costly decoding. An unreadable manifest is refused
    // here exactly as the install would refuse it.
    let manifest = Manifest::parse(&manifest_text)
        .map_err(|error| ApiError::from(bazaar_node::platform::PlatformError::Manifest(error)))?;
    let id = manifest.id.to_string();
    if !auth.caller.reaches_plugin(&id) {
        return Err(ApiError::forbidden(format!(
            "this partner token is not scoped to plugin {id:?}; it may install only {}",
            auth.caller.plugins.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )));
    }
    let component = {
        let text = component;
        decode_component(&text)?
    };
    let signature = signature
        .as_deref()
        .map(|text| {
            PluginSignature::parse(text).map_err(|error| {
                ApiError::bad_request(
                    "invalid_signature_encoding",
                    format!("field `signature`: {error}"),
                )
                .at_field("signature")
            })
        })
        .transpose()?;
    let package = Package { manifest_text, component, signature };
    let installed = state.platform(move |platform| platform.install(package)).await?;
    let view = InstalledPlugin::of(&id, installed);
    if view.created {
        let location = format!("/v1/plugins/{id}");
        Ok((StatusCode::CREATED, [(LOCATION, location)], Json(view)).into_response())
    } else {
        Ok((StatusCode::OK, Json(view)).into_response())
    }
}

/// The marketplace: every installed plugin with its capabilities in plain
/// words, configuration schema, versions, active version and shadow.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    responses((status = 200, description = "Every installed plugin", body = PluginList)),
    security(("bearer" = []))
)]
pub async fn list(
    _auth: Authorized<perm::ListPlugins>,
    State(state): State<AppState>,
) -> Result<Json<PluginList>, ApiError> {
    let listings = state.platform(|platform| platform.listings()).await?;
    Ok(Json(PluginList { plugins: listings.into_iter().map(Plugin::from).collect() }))
}

/// One plugin as the marketplace lists it.
#[utoipa::path(
    get,
    path = "/v1/plugins/{plugin}",
    tag = "plugins",
    params(("plugin" = String, Path, description = "Plugin id")),
    responses(
        (status = 200, description = "The plugin", body = Plugin),
        (status = 404, description = "No such plugin is installed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    _auth: Authorized<perm::ListPlugins>,
    State(state): State<AppState>,
    PathParams(plugin): PathParams<String>,
) -> Result<Json<Plugin>, ApiError> {
    let id = plugin_id(&plugin)?;
    let wanted = id.clone();
    let listing = state.platform(move |platform| platform.listing(&wanted)).await?;
    listing.map(|listing| Json(listing.into())).ok_or_else(|| not_installed(&id))
}

/// The 404 of a plugin that is not installed.
fn not_installed(id: &PluginId) -> ApiError {
    ApiError::not_found("plugin_not_found", format!("no plugin {id} is installed"))
}

/// Makes an installed version the active one: every call that starts from
/// now on runs it, calls in flight finish on the version they started with.
/// Stores that pinned a version keep it.
#[utoipa::path(
    post,
    path = "/v1/plugins/{plugin}/activate",
    tag = "plugins",
    params(("plugin" = String, Path, description = "Plugin id")),
    request_body = ActivatePlugin,
    responses(
        (status = 200, description = "Swapped", body = PluginSwap),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn activate(
    _auth: Authorized<perm::ManagePlugins>,
    State(state): State<AppState>,
    PathParams(plugin): PathParams<String>,
    body: JsonBody,
) -> Result<Json<PluginSwap>, ApiError> {
    let id = plugin_id(&plugin)?;
    let input: ActivatePlugin = body.parse().await?;
    let swap = state.platform(move |platform| platform.activate(&id, &input.version)).await?;
    Ok(Json(swap.into()))
}

/// Reactivates the version that was active before the current one.
#[utoipa::path(
    post,
    path = "/v1/plugins/{plugin}/rollback",
    tag = "plugins",
    params(("plugin" = String, Path, description = "Plugin id")),
    responses(
        (status = 200, description = "Rolled back", body = PluginSwap),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 422, description = "No earlier version to roll back to", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn rollback(
    _auth: Authorized<perm::ManagePlugins>,
    State(state): State<AppState>,
    PathParams(plugin): PathParams<String>,
) -> Result<Json<PluginSwap>, ApiError> {
    let id = plugin_id(&plugin)?;
    let swap = state.platform(move |platform| platform.rollback(&id)).await?;
    Ok(Json(swap.into()))
}

/// Starts (or restarts, with fresh counts) a shadow run: the version runs
/// beside the active one on a share of the calls of following stores, its
/// outputs compared and thrown away.
#[utoipa::path(
    put,
    path = "/v1/plugins/{plugin}/shadow",
    tag = "plugins",
    params(("plugin" = String, Path, description = "Plugin id")),
    request_body = StartShadow,
    responses(
        (status = 200, description = "Running", body = ShadowRun),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 422, description = "The active version, or a share outside 1 to 100", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn start_shadow(
    _auth: Authorized<perm::ManagePlugins>,
    State(state): State<AppState>,
    PathParams(plugin): PathParams<String>,
    body: JsonBody,
) -> Result<Json<ShadowRun>, ApiError> {
    let id = plugin_id(&plugin)?;
    let input: StartShadow = body.parse().await?;
    let report = state
        .platform(move |platform| {
            platform.start_shadow(&id, &input.version, input.share_percent)?;
            Ok(platform.shadow_report(&id))
        })
        .await?;
    report
        .map(|report| Json(report.into()))
        .ok_or_else(|| ApiError::internal("a started shadow run is missing"))
}

/// The shadow run of a plugin and what it found so far.
#[utoipa::path(
    get,
    path = "/v1/plugins/{plugin}/shadow",
    tag = "plugins",
    params(("plugin" = String, Path, description = "Plugin id")),
    responses(
        (status = 200, description = "The shadow run", body = ShadowRun),
        (status = 404, description = "No shadow run for this plugin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_shadow(
    _auth: Authorized<perm::ReadPluginReports>,
    State(state): State<AppState>,
    PathParams(plugin): PathParams<String>,
) -> Result<Json<ShadowRun>, ApiError> {
    let id = plugin_id(&plugin)?;
    let wanted = id.clone();
    let report = state.platform(move |platform| Ok(platform.shadow_report(&wanted))).await?;
    report.map(|report| Json(report.into())).ok_or_else(|| no_shadow(&id))
}

/// The 404 of a plugin without a shadow run.
fn no_shadow(id: &PluginId) -> ApiError {
    ApiError::not_found("shadow_not_found", format!("plugin {id} has no shadow run"))
}

/// Ends a shadow run, discarding the trial; the active version is untouched.
#[utoipa::path(
    delete,
    path = "/v1/plugins/{plugin}/shadow",
    tag = "plugins",
    params(("plugin" = String, Path, description = "Plugin id")),
    responses(
        (status = 204, description = "Ended (or there was none)"),
        (status = 404, description = "No such plugin", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stop_shadow(
    _auth: Authorized<perm::ManagePlugins>,
    State(state): State<AppState>,
    PathParams(plugin): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let id = plugin_id(&plugin)?;
    state.platform(move |platform| platform.stop_shadow(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Makes the shadow version the active one and ends the shadow run.
#[utoipa::path(
    post,
    path = "/v1/plugins/{plugin}/shadow/promote",
    tag = "plugins",
    params(("plugin" = String, Path, description = "Plugin id")),
    responses(
        (status = 200, description = "Promoted", body = PluginSwap),
        (status = 404, description = "No such plugin", body = ErrorBody),
        (status = 422, description = "No shadow run to promote", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn promote_shadow(
    _auth: Authorized<perm::ManagePlugins>,
    State(state): State<AppState>,
    PathParams(plugin): PathParams<String>,
) -> Result<Json<PluginSwap>, ApiError> {
    let id = plugin_id(&plugin)?;
    let swap = state.platform(move |platform| platform.promote_shadow(&id)).await?;
    Ok(Json(swap.into()))
}

/// Removes an installed version that is neither active nor the shadow.
/// A store that pinned it gets its plugin's failure policy until it pins
/// another version or follows the active one.
#[utoipa::path(
    delete,
    path = "/v1/plugins/{plugin}/versions/{version}",
    tag = "plugins",
    params(
        ("plugin" = String, Path, description = "Plugin id"),
        ("version" = String, Path, description = "The version to remove"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such plugin or version", body = ErrorBody),
        (status = 422, description = "The version is active or the shadow", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove_version(
    _auth: Authorized<perm::ManagePlugins>,
    State(state): State<AppState>,
    PathParams((plugin, version)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = plugin_id(&plugin)?;
    state.platform(move |platform| platform.remove_version(&id, &version)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The circuit breakers (per plugin per store) that are not plainly
/// closed: open ones skip their plugin under its failure policy. Operators
/// see every store's; a merchant sees its own stores'.
#[utoipa::path(
    get,
    path = "/v1/breakers",
    tag = "plugins",
    responses((status = 200, description = "Breakers with recent failures, open or half open", body = BreakerList)),
    security(("bearer" = []))
)]
pub async fn breakers(
    auth: Authorized<perm::ReadBreakers>,
    State(state): State<AppState>,
) -> Result<Json<BreakerList>, ApiError> {
    let caller = auth.caller.clone();
    let breakers = state
        .platform(move |platform| {
            Ok(match caller.role {
                Role::Operator => platform.breakers(None),
                _ => platform.breakers(Some(&caller.stores)),
            })
        })
        .await?;
    Ok(Json(BreakerList { breakers: breakers.into_iter().map(Breaker::from).collect() }))
}

/// The call counters of each loaded version of a plugin since the node
/// started: calls, failures, traps, instances. Operators, and the partner
/// that publishes the plugin.
#[utoipa::path(
    get,
    path = "/v1/plugins/{plugin}/stats",
    tag = "plugins",
    params(("plugin" = String, Path, description = "Plugin id")),
    responses(
        (status = 200, description = "Counters per version", body = PluginStats),
        (status = 404, description = "No such plugin is installed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stats(
    _auth: Authorized<perm::ReadPluginReports>,
    State(state): State<AppState>,
    PathParams(plugin): PathParams<String>,
) -> Result<Json<PluginStats>, ApiError> {
    let id = plugin_id(&plugin)?;
    let wanted = id.clone();
    let counters = state
        .platform(move |platform| {
            Ok(platform.listing(&wanted)?.map(|_| platform.call_counters(Some(&wanted))))
        })
        .await?
        .ok_or_else(|| not_installed(&id))?;
    Ok(Json(PluginStats {
        plugin: id.to_string(),
        versions: counters.into_iter().map(VersionCounters::from).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_decodes_from_wrapped_base64() {
        assert_eq!(decode_component("AGFzbQ==").unwrap(), b"\0asm");
        assert_eq!(decode_component("AGFz\nbQ==\n").unwrap(), b"\0asm");
    }

    #[test]
    fn bad_base64_is_a_bad_request_naming_the_field() {
        let error = decode_component("not base64!").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.field.as_deref(), Some("component"));
        assert!(error.message.contains("component"), "{}", error.message);
    }
}
