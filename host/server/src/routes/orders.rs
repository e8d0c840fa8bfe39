//! Orders: place (idempotent with an `Idempotency-Key`), get, list, pay,
//! cancel, fulfil; and the cart price preview that shows each plugin's part.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::State;
use axum::http::header::LOCATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bazaar_kernel::model::{
    IDEMPOTENCY_KEY_LEN_MAX, IdempotencyKey, OrderNumber, OrderRequest, StoreId,
};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{Command, Outcome};

use crate::auth::{Authorized, Role, perm};
use crate::dto::{CartPrice, Order, OrderInput, OrderList, PageQuery};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::order_json::{self, JsonBytes};
use crate::routes::stores::unknown_store;
use crate::state::AppState;

/// The request header that makes order creation idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The response header set on a replayed (not newly created) order.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// The request's idempotency key: 1 to 128 visible ASCII characters.
/// Checkout tokens must send one: a storefront retries, and a retry without
/// a key would order twice.
fn idempotency_key(
    header: Option<&HeaderValue>,
    role: Role,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = header else {
        if role == Role::Checkout {
            return Err(ApiError::bad_request(
                "idempotency_key_required",
                "checkout tokens must send an Idempotency-Key header (1 to 128 visible ASCII characters, e.g. a UUID) so that retries never order twice",
            ));
        }
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    let visible = |c: char| c.is_ascii_graphic();
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LEN_MAX || !key.chars().all(visible) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!(
                "the Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"
            ),
        ));
    }
    Ok(Some(IdempotencyKey::from(key)))
}

/// The request's `Idempotency-Key` header alone: taking axum's `HeaderMap`
/// would copy every header of every order.
pub struct IdempotencyKeyHeader(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKeyHeader {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(Self(parts.headers.get(IDEMPOTENCY_KEY_HEADER).cloned()))
    }
}

/// The order or cart of `body` as the kernel takes it, checked once, within
/// the customer's rate limit, in the currency the client expects (if it
/// says one).
async fn admitted_request(
    state: &AppState,
    store: &StoreId,
    body: JsonBody,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<OrderRequest, ApiError> {
    let input: OrderInput = body.parse().await?;
    let expected_currency = input.expected_currency()?;
    let request = input.into_request(idempotency_key)?;
    state.rate_limits().admit_customer(store, &request.customer.id)?;
    check_currency(state, store, expected_currency).await?;
    Ok(request)
}

/// Checks the order's stated currency, if any, against the store's.
async fn check_currency(
    state: &AppState,
    store: &StoreId,
    expected: Option<Currency>,
) -> Result<(), ApiError> {
    let Some(expected) = expected else { return Ok(()) };
    let actual = state.store_currency(store).await?;
    if expected != actual {
        return Err(ApiError::from(bazaar_kernel::KernelError::CurrencyMismatch {
            expected: actual.to_string(),
            got: expected.to_string(),
        })
        .at_field("currency"));
    }
    Ok(())
}

/// Order `number` of `store` as the shard holds it now, shared with the
/// shard rather than copied: the writer thread hands over a pointer.
fn shared_order(
    shard: &bazaar_kernel::Shard,
    store: &StoreId,
    number: OrderNumber,
) -> Option<Arc<bazaar_kernel::model::Order>> {
    shard.store(store)?.orders().shared(number).cloned()
}

/// Places an order: prices it with the store's pricing plugins, routes it
/// with its logistics plugin, reserves the stock, and answers once the order
/// is durable. With an `Idempotency-Key`, a retry of the same request
/// answers 200 with the same order; the same key with another request is
/// refused with 409.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/orders",
    tag = "orders",
    params(
        ("store" = String, Path, description = "Store id"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 128 visible ASCII characters; required for checkout tokens"),
    ),
    request_body = OrderInput,
    responses(
        (status = 201, description = "Placed: stock reserved, durable", body = Order,
            headers(("Location" = String, description = "The order's URL"))),
        (status = 200, description = "An earlier identical request with this Idempotency-Key placed it", body = Order,
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 404, description = "No such store or SKU", body = ErrorBody),
        (status = 409, description = "Insufficient stock, purchase limit exceeded, or the key was used for another request", body = ErrorBody),
        (status = 422, description = "Invalid order: quantities, identifiers, address, currency", body = ErrorBody),
        (status = 507, description = "The node holds as many orders as its `orders_held_max` allows (`orders_held_full`); the orders it holds, and retries of them, are still served", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    auth: Authorized<perm::PlaceOrders>,
    State(state): State<AppState>,
    IdempotencyKeyHeader(key_header): IdempotencyKeyHeader,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let store = auth.store()?.clone();
    let key = idempotency_key(key_header.as_ref(), auth.caller.role)?;
    let request = admitted_request(&state, &store, body, key).await?;
    let id = store.clone();
    let (outcome, copy) = state
        .place_order(store.clone(), request, move |shard, outcome| match outcome {
            Outcome::OrderPlaced { order, .. } => shared_order(shard, &id, *order),
            _ => None,
        })
        .await?;
    let order = copy.ok_or_else(|| ApiError::internal("a placed order is missing"))?;
    let body = order_json::order(&store, &order);
    let duplicate = matches!(outcome, Outcome::OrderPlaced { duplicate: true, .. });
    let location = format!("/v1/stores/{store}/orders/{}", order.number);
    // From the `String` itself: `from_str` would copy it.
    let location = HeaderValue::try_from(location)
        .map_err(|_| ApiError::internal("an order URL is not a header value"))?;
    if duplicate {
        let replayed = HeaderName::from_static(IDEMPOTENT_REPLAYED_HEADER);
        Ok((
            StatusCode::OK,
            [(LOCATION, location), (replayed, HeaderValue::from_static("true"))],
            body,
        )
            .into_response())
    } else {
        Ok((StatusCode::CREATED, [(LOCATION, location)], body).into_response())
    }
}

/// The order number of a path, or a 404.
fn order_number(text: &str) -> Result<OrderNumber, ApiError> {
    text.parse::<OrderNumber>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::not_found(
            "order_not_found",
            format!(
                "no order {:?}: order numbers are positive integers",
                text.chars().take(40).collect::<String>()
            ),
        )
    })
}

/// One order.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/orders/{number}",
    tag = "orders",
    params(
        ("store" = String, Path, description = "Store id"),
        ("number" = u64, Path, description = "Order number"),
    ),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such store or order", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    auth: Authorized<perm::ReadOrder>,
    State(state): State<AppState>,
    PathParams((_, number)): PathParams<(String, String)>,
) -> Result<JsonBytes, ApiError> {
    let store = auth.store()?.clone();
    let number = order_number(&number)?;
    let id = store.clone();
    let found = state
        .read(&store, move |shard| {
            shard.store(&id).map(|state| state.orders().shared(number).cloned())
        })
        .await?;
    let order = found
        .ok_or_else(|| unknown_store(&store))?
        .ok_or_else(|| ApiError::from(bazaar_kernel::KernelError::UnknownOrder(number)))?;
    Ok(order_json::order(&store, &order))
}

/// Lists orders in number order, `limit` at a time after order `after`.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/orders",
    tag = "orders",
    params(("store" = String, Path, description = "Store id"), PageQuery),
    responses(
        (status = 200, description = "A page of orders", body = OrderList),
        (status = 404, description = "No such store", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    auth: Authorized<perm::ListOrders>,
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<JsonBytes, ApiError> {
    let store = auth.store()?.clone();
    let limit = query.limit()?;
    let after: OrderNumber = match query.after.as_deref() {
        None => 0,
        Some(text) => text.parse().map_err(|_| {
            ApiError::bad_request(
                "invalid_query",
                "after must be an order number (a non-negative integer)",
            )
        })?,
    };
    let id = store.clone();
    let listed = state
        .read(&store, move |shard| {
            let orders = shard.store(&id)?.orders();
            let page: Vec<_> = orders.after(after).take(limit).cloned().collect();
            let more = page.last().is_some_and(|last| last.number < orders.len() as u64);
            Some((page, more))
        })
        .await?;
    let (orders, more) = listed.ok_or_else(|| unknown_store(&store))?;
    let next_after = if more { orders.last().map(|order| order.number) } else { None };
    Ok(order_json::order_page(&store, &orders, next_after))
}

/// What a status change does.
#[derive(Clone, Copy)]
enum Change {
    /// Reserved to paid.
    Pay,
    /// Reserved or paid to cancelled.
    Cancel,
    /// Paid (picked or packed by robots, or not) to fulfilled.
    Fulfil,
}

async fn change(
    auth: Authorized<perm::ChangeOrders>,
    state: AppState,
    number: &str,
    change: Change,
) -> Result<JsonBytes, ApiError> {
    let store = auth.store()?.clone();
    let order = order_number(number)?;
    let at_ms = bazaar_node::wall_clock_ms();
    let target = store.clone();
    let command = match change {
        Change::Pay => Command::PayOrder { store: target, order, at_ms },
        Change::Cancel => Command::CancelOrder { store: target, order, at_ms },
        Change::Fulfil => Command::FulfilOrder { store: target, order, at_ms },
    };
    let id = store.clone();
    let (_, copy) = state.execute(command, move |shard, _| shared_order(shard, &id, order)).await?;
    let copy = copy.ok_or_else(|| ApiError::internal("a changed order is missing"))?;
    Ok(order_json::order(&store, &copy))
}

/// Marks a reserved order paid: its reserved units become sold.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/orders/{number}/pay",
    tag = "orders",
    params(
        ("store" = String, Path, description = "Store id"),
        ("number" = u64, Path, description = "Order number"),
    ),
    responses(
        (status = 200, description = "Paid", body = Order),
        (status = 404, description = "No such store or order", body = ErrorBody),
        (status = 409, description = "The order is not reserved", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn pay(
    auth: Authorized<perm::ChangeOrders>,
    State(state): State<AppState>,
    PathParams((_, number)): PathParams<(String, String)>,
) -> Result<JsonBytes, ApiError> {
    change(auth, state, &number, Change::Pay).await
}

/// Cancels an order that is reserved or paid (not once robots picked it):
/// its units are available again, its purchase-limit units are returned
/// to the customer, and its robot tasks are dropped.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/orders/{number}/cancel",
    tag = "orders",
    params(
        ("store" = String, Path, description = "Store id"),
        ("number" = u64, Path, description = "Order number"),
    ),
    responses(
        (status = 200, description = "Cancelled", body = Order),
        (status = 404, description = "No such store or order", body = ErrorBody),
        (status = 409, description = "The order is picked, packed, shipped or cancelled", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    auth: Authorized<perm::ChangeOrders>,
    State(state): State<AppState>,
    PathParams((_, number)): PathParams<(String, String)>,
) -> Result<JsonBytes, ApiError> {
    change(auth, state, &number, Change::Cancel).await
}

/// Marks a paid order fulfilled (also once robots picked or packed it):
/// its units leave the warehouses, and any robot tasks it still has are
/// dropped, since it was fulfilled by hand.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/orders/{number}/fulfil",
    tag = "orders",
    params(
        ("store" = String, Path, description = "Store id"),
        ("number" = u64, Path, description = "Order number"),
    ),
    responses(
        (status = 200, description = "Fulfilled", body = Order),
        (status = 404, description = "No such store or order", body = ErrorBody),
        (status = 409, description = "The order is not paid, picked or packed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn fulfil(
    auth: Authorized<perm::ChangeOrders>,
    State(state): State<AppState>,
    PathParams((_, number)): PathParams<(String, String)>,
) -> Result<JsonBytes, ApiError> {
    change(auth, state, &number, Change::Fulfil).await
}

/// Prices and routes a cart with the store's plugins as an order placed now
/// would be, without placing it: nothing is reserved or recorded. Shows each
/// pricing plugin's adjustments and failures, the shipment plan and who
/// routed it, and the totals.
#[utoipa::path(
    post,
    path = "/v1/stores/{store}/cart/price",
    tag = "orders",
    params(("store" = String, Path, description = "Store id")),
    request_body = OrderInput,
    responses(
        (status = 200, description = "The priced cart", body = CartPrice),
        (status = 404, description = "No such store or SKU", body = ErrorBody),
        (status = 409, description = "Insufficient stock or purchase limit exceeded", body = ErrorBody),
        (status = 422, description = "Invalid cart", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn price_cart(
    auth: Authorized<perm::PriceCarts>,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Json<CartPrice>, ApiError> {
    let store = auth.store()?.clone();
    let request = admitted_request(&state, &store, body, None).await?;
    let preview = state.preview(store.clone(), request).await?;
    Ok(Json(CartPrice::of(&store, &preview)))
}
