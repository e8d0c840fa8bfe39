//! A store's analytics: the named queries of the analytics plugins it
//! enabled, answered as JSON, and the live stream of its headline figures
//! that the Double-11 dashboard follows.
//!
//! A query's arguments come from the query string (`?by=units&limit=10` is
//! `{"by": "units", "limit": 10}`), so a dashboard or `curl` needs no body.
//! The plugin answers from the state the event consumer built, on the
//! blocking pool; nothing a query does changes that state.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse as _, Response};
use bazaar_kernel::model::{PluginId, StoreId};
use bazaar_runtime::{QUERY_ARGUMENTS_BYTES_MAX, QUERY_NAME_BYTES_MAX};
use serde_json::{Map, Value};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::auth::{Authorized, perm};
use crate::error::{ApiError, ErrorBody};
use crate::extract::PathParams;
use crate::routes::plugins::plugin_id;
use crate::state::{AppState, LIVE_STREAMS_MAX, QueryAdmission};

/// How often a live stream sends the headline: twice a second looks live
/// on a dashboard, and the plugin's per-second figures change no faster.
pub const LIVE_INTERVAL_MS: u64 = 500;

/// How often a live stream sends a keep-alive comment when it has sent
/// nothing else (its queries keep failing): proxies commonly close a
/// connection idle for 30 to 60 seconds.
pub const LIVE_KEEP_ALIVE_MS: u64 = 15_000;

/// The query a live stream asks, and the name of its events.
pub const LIVE_QUERY: &str = "headline";

/// Longest query string of an analytics query, in bytes: a query takes a
/// few options (a ranking, a limit, a few ids), and the runtime accepts
/// arguments of at most 4 KiB of JSON anyway.
pub const QUERY_STRING_BYTES_MAX: usize = 2 * 1024;

/// Most parameters in the query string of an analytics query.
pub const QUERY_PARAMETERS_MAX: usize = 16;

/// Asks one of the store's analytics plugins a named query; the answer is
/// the plugin's JSON document. Query-string parameters are its arguments:
/// each value that is an integer written plainly (`10`, `-3`, not `010` or
/// `+3`) is a JSON number, every other one a string; a parameter given
/// twice is refused. `analytics-live` answers `headline`, `gmv-series`,
/// `top-skus` (`?by=units|revenue&limit=n`), `sell-through` and
/// `discounts`. Operators, and merchants of the store.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/analytics/{plugin}/{query}",
    tag = "analytics",
    params(
        ("store" = String, Path, description = "Store id"),
        ("plugin" = String, Path, description = "An analytics plugin the store enabled, e.g. `analytics-live`"),
        ("query" = String, Path, description = "The query's name, e.g. `headline` or `top-skus`"),
    ),
    responses(
        (status = 200, description = "The plugin's answer", body = serde_json::Value),
        (status = 400, description = "A query name or query string out of shape, or over its limit", body = ErrorBody),
        (status = 404, description = "The store has not enabled this analytics plugin", body = ErrorBody),
        (status = 502, description = "The plugin failed or refused the query; the message is its own", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn query(
    auth: Authorized<perm::ReadAnalytics>,
    State(state): State<AppState>,
    PathParams((_, plugin, name)): PathParams<(String, String, String)>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let store = auth.store()?.clone();
    let plugin = plugin_id(&plugin)?;
    check_query_name(&name)?;
    let arguments_json = arguments(&uri)?;
    let answer =
        state.ask_analytics(store, plugin, name, arguments_json, QueryAdmission::Refuse).await?;
    Ok(Json(answer))
}

/// Follows the store's headline figures live: server-sent events, an event
/// `headline` every 500 ms whose data is the plugin's `headline` answer
/// (the first one at once), keep-alive comments, and an event `error` with
/// the usual error body when a query fails (the stream ends after it when
/// the store disabled the plugin). At most 64 streams are open at once.
/// Operators, and merchants of the store.
#[utoipa::path(
    get,
    path = "/v1/stores/{store}/analytics/{plugin}/stream",
    tag = "analytics",
    params(
        ("store" = String, Path, description = "Store id"),
        ("plugin" = String, Path, description = "An analytics plugin the store enabled, e.g. `analytics-live`"),
    ),
    responses(
        (status = 200, description = "The stream of `headline` events", content_type = "text/event-stream", body = String),
        (status = 404, description = "The store has not enabled this analytics plugin", body = ErrorBody),
        (status = 502, description = "The plugin failed its first headline", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    auth: Authorized<perm::ReadAnalytics>,
    State(state): State<AppState>,
    PathParams((_, plugin)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let store = auth.store()?.clone();
    let plugin = plugin_id(&plugin)?;
    let permit = state.live_streams().clone().try_acquire_owned().map_err(|_| {
        ApiError::overloaded(format!(
            "{LIVE_STREAMS_MAX} live streams are open already; retry shortly or poll the headline query"
        ))
    })?;
    // The first answer is asked before the stream starts, so a store that
    // has not enabled the plugin gets its 404 instead of a stream of errors.
    let first = state
        .ask_analytics(
            store.clone(),
            plugin.clone(),
            LIVE_QUERY.into(),
            "{}".into(),
            QueryAdmission::Wait,
        )
        .await?;
    let interval = Duration::from_millis(LIVE_INTERVAL_MS);
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    // A slow query delays the next event rather than bunching the ones after.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let live = Live {
        stopping: state.streams_stopping(),
        state,
        store,
        plugin,
        first: Some(first),
        ticker,
        finished: false,
        _permit: permit,
    };
    let events = futures_util::stream::unfold(live, Live::next);
    let keep_alive = KeepAlive::new().interval(Duration::from_millis(LIVE_KEEP_ALIVE_MS));
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// One open live stream. Dropped when the client goes (the response body
/// is dropped with the connection), which frees its place.
struct Live {
    /// The shared state.
    state: AppState,
    /// The store.
    store: StoreId,
    /// The analytics plugin.
    plugin: PluginId,
    /// The answer asked before the stream started, sent first.
    first: Option<Value>,
    /// Ticks every [`LIVE_INTERVAL_MS`].
    ticker: Interval,
    /// Turns true when the server stops.
    stopping: watch::Receiver<bool>,
    /// Set after an error that ends the stream was sent.
    finished: bool,
    /// The stream's place among [`LIVE_STREAMS_MAX`].
    _permit: OwnedSemaphorePermit,
}

impl Live {
    /// The next event, or `None` when the stream ends.
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if self.finished {
            return None;
        }
        if let Some(answer) = self.first.take() {
            return Some((Ok(headline(&answer)), self));
        }
        tokio::select! {
            _ = self.ticker.tick() => {}
            _ = self.stopping.wait_for(|stop| *stop) => return None,
        }
        let asked = self
            .state
            .ask_analytics(
                self.store.clone(),
                self.plugin.clone(),
                LIVE_QUERY.into(),
                "{}".into(),
                QueryAdmission::Wait,
            )
            .await;
        let event = match asked {
            Ok(answer) => headline(&answer),
            Err(error) => {
                // A disabled plugin will not come back by itself; an
                // overload or a failing plugin may clear by the next tick.
                self.finished = error.status == axum::http::StatusCode::NOT_FOUND;
                let body = serde_json::to_string(&error.body()).unwrap_or_default();
                Event::default().event("error").data(body)
            }
        };
        Some((Ok(event), self))
    }
}

/// A `headline` event carrying `answer` on one line.
fn headline(answer: &Value) -> Event {
    Event::default().event(LIVE_QUERY).data(answer.to_string())
}

/// Refuses a query name the runtime would refuse, as the caller's error
/// rather than the plugin's.
fn check_query_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > QUERY_NAME_BYTES_MAX {
        return Err(ApiError::bad_request(
            "invalid_query_name",
            format!("a query name is 1 to {QUERY_NAME_BYTES_MAX} bytes long"),
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::bad_request(
            "invalid_query_name",
            "a query name has no spaces or control characters",
        ));
    }
    Ok(())
}

/// The JSON arguments object of the query string of `uri`.
fn arguments(uri: &Uri) -> Result<String, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_query", message);
    let text = uri.query().unwrap_or_default();
    if text.len() > QUERY_STRING_BYTES_MAX {
        return Err(invalid(format!(
            "the query string is {} bytes; at most {QUERY_STRING_BYTES_MAX} are accepted",
            text.len()
        )));
    }
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|rejection| invalid(rejection.body_text()))?;
    if pairs.len() > QUERY_PARAMETERS_MAX {
        return Err(invalid(format!(
            "{} query parameters; at most {QUERY_PARAMETERS_MAX} are accepted",
            pairs.len()
        )));
    }
    let mut arguments = Map::new();
    for (name, value) in pairs {
        if name.is_empty() {
            return Err(invalid("a query parameter has no name".into()));
        }
        let value = match plain_integer(&value) {
            Some(number) => Value::from(number),
            None => Value::String(value),
        };
        if arguments.contains_key(&name) {
            let shown: String = name.chars().take(64).collect();
            return Err(invalid(format!("query parameter {shown:?} is given twice")));
        }
        arguments.insert(name, value);
    }
    let json = Value::Object(arguments).to_string();
    if json.len() > QUERY_ARGUMENTS_BYTES_MAX {
        return Err(invalid(format!(
            "the arguments are {} bytes of JSON; at most {QUERY_ARGUMENTS_BYTES_MAX} are accepted",
            json.len()
        )));
    }
    Ok(json)
}

/// `text` as an integer when it is one written plainly: an optional minus
/// and digits without a leading zero, within `i64`. Codes such as `007`
/// stay text.
fn plain_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let plain = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    if plain { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(uri: &str) -> Result<Value, ApiError> {
        let uri: Uri = uri.parse().unwrap();
        arguments(&uri).map(|json| serde_json::from_str(&json).unwrap())
    }

    #[test]
    fn query_parameters_become_the_arguments_object_with_integers_as_numbers() {
        assert_eq!(
            parsed("/q?by=units&limit=10").unwrap(),
            serde_json::json!({"by": "units", "limit": 10})
        );
        assert_eq!(parsed("/q").unwrap(), serde_json::json!({}));
        assert_eq!(
            parsed("/q?sku=007&delta=-3&name=a%20b&big=99999999999999999999").unwrap(),
            serde_json::json!({"sku": "007", "delta": -3, "name": "a b", "big": "99999999999999999999"})
        );
    }

    #[test]
    fn repeated_nameless_or_too_many_parameters_are_refused() {
        assert_eq!(parsed("/q?limit=1&limit=2").unwrap_err().code, "invalid_query");
        assert_eq!(parsed("/q?=1").unwrap_err().code, "invalid_query");
        let many: Vec<String> = (0..=QUERY_PARAMETERS_MAX).map(|i| format!("p{i}=1")).collect();
        assert_eq!(parsed(&format!("/q?{}", many.join("&"))).unwrap_err().code, "invalid_query");
        let long = format!("/q?x={}", "a".repeat(QUERY_STRING_BYTES_MAX));
        assert!(parsed(&long).unwrap_err().message.contains("query string"));
    }

    #[test]
    fn only_plainly_written_integers_are_numbers() {
        for (text, number) in [("0", Some(0)), ("42", Some(42)), ("-7", Some(-7))] {
            assert_eq!(plain_integer(text), number, "{text}");
        }
        for text in ["", "-", "-0", "+1", "01", "1.5", "1e3", " 1"] {
            assert_eq!(plain_integer(text), None, "{text}");
        }
    }

    #[test]
    fn query_names_with_spaces_or_out_of_length_are_refused() {
        assert!(check_query_name("top-skus").is_ok());
        assert!(check_query_name("").is_err());
        assert!(check_query_name("a b").is_err());
        assert!(check_query_name(&"q".repeat(QUERY_NAME_BYTES_MAX + 1)).is_err());
    }
}
