//! The routes of the API, assembled into one router and one OpenAPI
//! document from the same declarations, so the document lists exactly the
//! routes the server serves.

mod analytics;
mod catalog;
mod devices;
mod metrics;
mod orders;
mod plugins;
mod publishers;
mod stock;
mod store_plugins;
mod stores;
mod system;
mod tokens;

use std::collections::BTreeMap;
use std::ops::Bound;

use axum::http::{Method, Uri};
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use analytics::{
    LIVE_INTERVAL_MS, LIVE_KEEP_ALIVE_MS, LIVE_QUERY, QUERY_PARAMETERS_MAX, QUERY_STRING_BYTES_MAX,
};
pub use devices::{LAYOUT_BODY_BYTES_MAX, LAYOUT_BODY_READ_TIMEOUT_MS};
pub use orders::{IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER};

use crate::error::{ApiError, ErrorBody, echoed};
use crate::state::AppState;

/// The document's fixed parts; the paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Bazaar",
        description = "The HTTP API of a Bazaar node: stores, catalogue, stock, orders, the plugin platform (publishers, installs, the marketplace, versions, stores' plugins), and the device bus (warehouse maps, devices, robot tasks, emergency stops). \
            Send `Authorization: Bearer <token>`. Money is `{\"amount_minor\": 599900, \"currency\": \"CNY\"}` \
            (integer minor units). Every error is `{\"error\": {\"code\", \"message\"}}`; 503 and 429 carry `Retry-After`."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "system", description = "Health, readiness and this document; no token needed"),
        (name = "tokens", description = "Bearer tokens (operators only)"),
        (name = "stores", description = "Stores (tenants)"),
        (name = "catalogue", description = "Products, prices and warehouses"),
        (name = "stock", description = "Stock levels"),
        (name = "publishers", description = "Trusted plugin publishers' keys (operators only)"),
        (name = "plugins", description = "The plugin platform: signed installs, the marketplace, active and shadow versions, breakers and counters"),
        (name = "store-plugins", description = "The plugins a store enabled, with configuration, consent and settings, and its pricing rules"),
        (name = "orders", description = "Orders and cart pricing"),
        (name = "analytics", description = "A store's analytics plugins: named queries and the live headline stream"),
        (name = "devices", description = "The device bus: warehouse maps, devices and their telemetry, robot tasks, quarantine release, emergency stops, and the node's fleet (operators only)"),
        (name = "metrics", description = "Prometheus metrics (an operator token unless the node runs with metrics_public)"),
    )
)]
struct ApiDoc;

/// The routes behind the in-flight limit (everything but `system`), and the
/// open ones.
fn route_sets() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let limited = OpenApiRouter::new()
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(stores::create, stores::list))
        .routes(routes!(stores::get))
        .routes(routes!(catalog::list_products))
        .routes(routes!(catalog::put_product, catalog::get_product))
        .routes(routes!(catalog::list_warehouses))
        .routes(routes!(catalog::put_warehouse))
        .routes(routes!(stock::receive))
        .routes(routes!(stock::write_off))
        .routes(routes!(stock::list))
        .routes(routes!(stock::get))
        .routes(routes!(store_plugins::list))
        .routes(routes!(store_plugins::enable, store_plugins::disable))
        .routes(routes!(store_plugins::put_config, store_plugins::delete_config))
        .routes(routes!(store_plugins::put_pricing_rules))
        .routes(routes!(publishers::list))
        .routes(routes!(publishers::trust, publishers::distrust))
        .routes(routes!(plugins::install, plugins::list))
        .routes(routes!(plugins::get))
        .routes(routes!(plugins::activate))
        .routes(routes!(plugins::rollback))
        .routes(routes!(plugins::start_shadow, plugins::get_shadow, plugins::stop_shadow))
        .routes(routes!(plugins::promote_shadow))
        .routes(routes!(plugins::remove_version))
        .routes(routes!(plugins::stats))
        .routes(routes!(plugins::breakers))
        .routes(routes!(orders::create, orders::list))
        .routes(routes!(orders::get))
        .routes(routes!(orders::pay))
        .routes(routes!(orders::cancel))
        .routes(routes!(orders::fulfil))
        .routes(routes!(orders::price_cart))
        .routes(routes!(analytics::query))
        .routes(routes!(analytics::stream))
        .routes(routes!(devices::put_layout, devices::get_layout))
        .routes(routes!(devices::list_devices))
        .routes(routes!(devices::put_device, devices::get_device, devices::delete_device))
        .routes(routes!(devices::release_device))
        .routes(routes!(devices::list_tasks))
        .routes(routes!(devices::emergency_stop))
        .routes(routes!(devices::resume))
        .routes(routes!(devices::fleet));
    let open = OpenApiRouter::new()
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(system::openapi_json))
        .routes(routes!(system::docs))
        .routes(routes!(metrics::metrics));
    (limited, open)
}

/// Every operation of the API as (method, path template), from the same
/// declarations as the router.
pub fn operations() -> Vec<(Method, String)> {
    operations_of(&openapi())
}

/// The operations `document` describes, as (method, path template).
fn operations_of(document: &OpenApi) -> Vec<(Method, String)> {
    let mut operations = Vec::new();
    for (path, item) in &document.paths.paths {
        let methods = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ];
        for (method, operation) in methods {
            if operation.is_some() {
                operations.push((method, path.clone()));
            }
        }
    }
    operations
}

/// The OpenAPI document of every route.
pub fn openapi() -> OpenApi {
    let (limited, open) = route_sets();
    let mut document =
        OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(limited).merge(open).into_openapi();
    complete(&mut document);
    document
}

/// The router with every route, the in-flight limit on the `limited` ones,
/// JSON 404 and 405, and a tracing span and metrics per request.
pub fn router(state: AppState) -> axum::Router {
    let (limited, open) = route_sets();
    let (limited, limited_document) = limited.split_for_parts();
    let (open, _) = open.split_for_parts();
    let observe =
        crate::observe::ObserveLayer::new(state.clone(), &operations_of(&limited_document));
    limited
        .merge(open)
        .merge(crate::console::router())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(observe)
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(
        "no_route",
        format!(
            "no route {method} {}; the API is described at /v1/openapi.json and /docs",
            echoed(uri.path())
        ),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not accept {method}; the Allow header lists what it does",
            echoed(uri.path())
        ),
    )
}

/// Adds what every operation shares, so handlers declare only their own
/// outcomes: the bearer scheme, and the refusals of authentication, body
/// parsing, admission and rate limits.
fn complete(document: &mut OpenApi) {
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "A token issued by POST /v1/tokens; the first operator token is in the data directory's `operator-token` file",
                ))
                .build(),
        ),
    );
    let error = |description: &str, retry: bool| {
        let mut response = ResponseBuilder::new().description(description).content(
            "application/json",
            ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorBody::name()))).build(),
        );
        if retry {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new().description(Some("Seconds to wait before retrying")).build(),
            );
        }
        response.build()
    };
    for item in document.paths.paths.values_mut() {
        let operations =
            [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            add_shared_responses(operation, &error);
        }
    }
}

fn add_shared_responses(
    operation: &mut Operation,
    error: &dyn Fn(&str, bool) -> utoipa::openapi::Response,
) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = operation.request_body.is_some();
    let responses = &mut operation.responses.responses;
    let mut add = |status: &str, response: utoipa::openapi::Response| {
        responses.entry(status.to_string()).or_insert(response.into());
    };
    if has_body {
        add("400", error("Malformed JSON (with line and column) or request header", false));
        add("413", error("Body over the 64 KiB limit", false));
        add("415", error("The body's Content-Type is not JSON", false));
        add("422", error("Well-formed JSON of the wrong shape (the field is named)", false));
    }
    if secured {
        add("401", error("Missing, malformed or revoked bearer token", false));
        add("403", error("The token's role or scope does not allow this", false));
        add("429", error("A per-store or per-customer rate limit refused the request", true));
        add(
            "503",
            error("The server or a shard queue is saturated; retry after Retry-After", true),
        );
    }
}

/// A cursor query parameter parsed as an identifier; 400 when malformed.
fn cursor<T>(
    name: &str,
    text: Option<&str>,
    parse: impl FnOnce(String) -> Result<T, bazaar_kernel::KernelError>,
) -> Result<Option<T>, ApiError> {
    text.map(|text| {
        parse(text.to_string()).map_err(|error| {
            ApiError::bad_request("invalid_query", format!("{name} is not a valid cursor: {error}"))
        })
    })
    .transpose()
}

/// The entries of `map` after `after` (all when `None`).
fn entries_after<'a, K: Ord, V>(
    map: &'a BTreeMap<K, V>,
    after: Option<&K>,
) -> impl Iterator<Item = (&'a K, &'a V)> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    map.range((start, Bound::Unbounded))
}

/// Up to `limit` entries viewed, and the cursor of the next page when more
/// entries follow.
fn page<'a, K: Clone + 'a, V: 'a, T>(
    mut entries: impl Iterator<Item = (&'a K, &'a V)>,
    limit: usize,
    view: impl Fn(&K, &V) -> T,
) -> (Vec<T>, Option<K>) {
    let mut items = Vec::new();
    let mut last = None;
    for (key, value) in entries.by_ref().take(limit) {
        items.push(view(key, value));
        last = Some(key);
    }
    let next = if entries.next().is_some() { last.cloned() } else { None };
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_with_no_cursor_and_continue_with_one() {
        let map: BTreeMap<u32, u32> = (1..=5).map(|n| (n, n * 10)).collect();
        let (first, next) = page(entries_after(&map, None), 2, |_, v| *v);
        assert_eq!((first, next), (vec![10, 20], Some(2)));
        let (second, next) = page(entries_after(&map, Some(&2)), 2, |_, v| *v);
        assert_eq!((second, next), (vec![30, 40], Some(4)));
        let (last, next) = page(entries_after(&map, Some(&4)), 2, |_, v| *v);
        assert_eq!((last, next), (vec![50], None));
    }

    #[test]
    fn the_document_secures_every_route_but_the_system_ones() {
        let document = openapi();
        for (path, item) in &document.paths.paths {
            let operations = [&item.get, &item.put, &item.post, &item.delete].into_iter().flatten();
            for operation in operations {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let system = path == "/docs"
                    || path.starts_with("/v1/health")
                    || path.starts_with("/v1/ready")
                    || path.starts_with("/v1/openapi");
                assert_eq!(secured, !system, "{path}");
            }
        }
    }
}
