//! The one error type of the HTTP API. Every refusal becomes
//! `{"error": {"code": "...", "message": "..."}}` with the status that says
//! whose fault it was, so a client can branch on `code` and a person can
//! read `message`. Kernel, node and plugin platform errors map here in one
//! place.

use axum::http::header::{self, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bazaar_kernel::KernelError;
use bazaar_node::NodeError;
use bazaar_node::consumer::QueryError;
use bazaar_node::platform::PlatformError;
use serde::Serialize;
use utoipa::ToSchema;

/// Seconds a refused client should wait before retrying after an overload:
/// the node drains a full queue in well under a second, and `Retry-After`
/// counts whole seconds.
pub const OVERLOAD_RETRY_AFTER_S: u64 = 1;

/// Most characters of a client's own text (a path, a path parameter) an
/// error message repeats: enough to recognise it, while a request line of
/// hundreds of kilobytes is not echoed back whole.
pub const ECHOED_TEXT_CHARS_MAX: usize = 128;

/// `text` as an error message quotes it: the first
/// [`ECHOED_TEXT_CHARS_MAX`] characters, and how long it was when longer.
pub(crate) fn echoed(text: &str) -> String {
    match text.char_indices().nth(ECHOED_TEXT_CHARS_MAX) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &text[..cut], text.len()),
    }
}

/// A refused request: status, machine-readable code, human message, and
/// where in the request the problem is when that is known.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code such as `insufficient_stock`.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
    /// The JSON path of the offending field (`lines[0].quantity`), if any.
    pub field: Option<String>,
    /// Line of a JSON syntax error, 1-based.
    pub line: Option<usize>,
    /// Column of a JSON syntax error, 1-based.
    pub column: Option<usize>,
    /// Seconds to wait before retrying, sent as `Retry-After`.
    pub retry_after_s: Option<u64>,
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `insufficient_stock`, `invalid_body`,
    /// `malformed_json`, `forbidden`, `overloaded`.
    pub code: String,
    /// What was wrong, in words.
    pub message: String,
    /// JSON path of the offending field, e.g. `lines[0].quantity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Line of a JSON syntax error (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column of a JSON syntax error (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            line: None,
            column: None,
            retry_after_s: None,
        }
    }

    /// Names the offending field.
    pub fn at_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400: the request itself is malformed (header, query, path).
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: no such thing.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422: well-formed but semantically wrong.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 401: no credentials, or credentials that are not a token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the token may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 409: the current state forbids it.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503 with `Retry-After`: the server is saturated; retry shortly.
    pub fn overloaded(message: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", message);
        error.retry_after_s = Some(OVERLOAD_RETRY_AFTER_S);
        error
    }

    /// 429 with `Retry-After`: a rate limit refused the request.
    pub fn rate_limited(message: impl Into<String>, retry_after_s: u64) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        error.retry_after_s = Some(retry_after_s.max(1));
        error
    }

    /// 500: the server failed; the message says how.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                field: self.field.clone(),
                line: self.line,
                column: self.column,
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        (self.status, headers, axum::Json(self.body())).into_response()
    }
}

impl From<KernelError> for ApiError {
    fn from(error: KernelError) -> Self {
        let message = error.to_string();
        let (status, code) = match &error {
            KernelError::UnknownStore(_) => (StatusCode::NOT_FOUND, "store_not_found"),
            KernelError::UnknownSku(_) => (StatusCode::NOT_FOUND, "sku_not_found"),
            KernelError::UnknownWarehouse(_) => (StatusCode::NOT_FOUND, "warehouse_not_found"),
            KernelError::UnknownOrder(_) => (StatusCode::NOT_FOUND, "order_not_found"),
            KernelError::StoreExists(_) => (StatusCode::CONFLICT, "store_exists"),
            KernelError::InsufficientStock { .. } => (StatusCode::CONFLICT, "insufficient_stock"),
            KernelError::WriteOffExceedsAvailable { .. } => {
                (StatusCode::CONFLICT, "insufficient_stock")
            }
            KernelError::PurchaseLimitExceeded { .. } => {
                (StatusCode::CONFLICT, "purchase_limit_exceeded")
            }
            KernelError::IdempotencyConflict { .. } => {
                (StatusCode::CONFLICT, "idempotency_conflict")
            }
            KernelError::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
            KernelError::AlreadyConsumed { .. } => (StatusCode::CONFLICT, "already_consumed"),
            KernelError::CurrencyMismatch { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch")
            }
            KernelError::InvalidQuantity { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_quantity")
            }
            KernelError::InvalidIdentifier { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_identifier")
            }
            KernelError::InvalidShipmentPlan(_) => (StatusCode::CONFLICT, "unroutable"),
            KernelError::InvalidPricingRules(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_pricing_rules")
            }
            KernelError::UnknownDevice(_) => (StatusCode::NOT_FOUND, "device_not_found"),
            KernelError::InvalidDevice(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_device"),
            KernelError::InvalidLayout(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_layout"),
            KernelError::UnknownTask(_) => (StatusCode::NOT_FOUND, "task_not_found"),
            KernelError::InvalidTaskStep(_) => (StatusCode::CONFLICT, "invalid_task_step"),
            KernelError::TextTooLong { .. }
            | KernelError::InvalidCurrency(_)
            | KernelError::InvalidCoordinates
            | KernelError::AmountOverflow
            | KernelError::NegativeAmount { .. }
            | KernelError::TooMany { .. }
            | KernelError::EmptyOrder
            | KernelError::DuplicateLine(_)
            | KernelError::InvalidAdjustment { .. }
            | KernelError::InvalidStateWrite(_)
            | KernelError::DiscountOverCap { .. }
            | KernelError::ConfigTooLarge { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")
            }
        };
        Self::new(status, code, message)
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> Self {
        match error {
            NodeError::Kernel(kernel) => kernel.into(),
            NodeError::Overloaded { .. } => Self::overloaded(error.to_string()),
            NodeError::ShuttingDown => {
                let mut refused = Self::overloaded(error.to_string());
                refused.code = "shutting_down";
                refused
            }
            NodeError::OrdersHeldFull { .. } => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, "orders_held_full", error.to_string())
            }
            NodeError::Journal(_) | NodeError::Recovery(_) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "journal_failed", error.to_string())
            }
            NodeError::RiskRejected { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "order_rejected", error.to_string())
            }
            NodeError::RiskUnavailable { .. } => {
                let mut refused = Self::overloaded(error.to_string());
                refused.code = "risk_check_unavailable";
                refused
            }
            NodeError::PluginUnavailable { .. } => {
                let mut refused = Self::overloaded(error.to_string());
                refused.code = "plugin_unavailable";
                refused
            }
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        match error {
            QueryError::NotEnabled(message) => Self::not_found("analytics_not_enabled", message),
            // The plugin, not the caller, failed: its message says why.
            QueryError::Plugin(_) => {
                Self::new(StatusCode::BAD_GATEWAY, "plugin_failed", error.to_string())
            }
            QueryError::Node(node) => node.into(),
        }
    }
}

impl From<PlatformError> for ApiError {
    fn from(error: PlatformError) -> Self {
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match &error {
            // The violations say what the schema wanted at each JSON
            // pointer, and already begin by saying the configuration does
            // not match.
            PlatformError::Config(violations) => violations.to_string(),
            other => other.to_string(),
        };
        let mut refused = Self::new(status, error.code(), message);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A busy compiler or an unavailable registry clears shortly.
            refused.retry_after_s = Some(OVERLOAD_RETRY_AFTER_S);
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_text_is_quoted_whole_when_short_and_cut_at_a_character_when_long() {
        assert_eq!(echoed("acme"), "\"acme\"");
        let at_limit = "é".repeat(ECHOED_TEXT_CHARS_MAX);
        assert_eq!(echoed(&at_limit), format!("{at_limit:?}"));
        let long = "é".repeat(ECHOED_TEXT_CHARS_MAX + 1);
        let quoted = echoed(&long);
        assert!(quoted.starts_with(&format!("{:?}", "é".repeat(ECHOED_TEXT_CHARS_MAX))));
        assert!(quoted.ends_with(&format!("... ({} bytes)", long.len())));
    }
}
