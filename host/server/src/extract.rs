//! Extractors that turn a request's body, path and query into typed values
//! or into an [`ApiError`] that says exactly what was wrong.
//!
//! The body is read lazily (handlers authorise first, then parse), with a
//! hard byte limit checked against `Content-Length` before a byte is read
//! and enforced again while streaming, so a 10 MB upload is refused without
//! being buffered. Syntax errors answer 400 with line and column; well-formed
//! JSON of the wrong shape answers 422 with the path of the bad field. A
//! body declared as something else than JSON answers 415; one declared as
//! nothing is read as JSON.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, echoed};

/// Largest request body: an order of 100 lines with addresses and coupons
/// is a few KiB, and a plugin configuration is at most 64 KiB (the kernel's
/// `PLUGIN_CONFIG_LEN_MAX`); anything bigger is not a legitimate request.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// Longest time a client may take to send its body: a 64 KiB body crosses
/// any working network in far less; a trickling client holds a connection
/// and an in-flight slot, so it is cut off.
pub const BODY_READ_TIMEOUT_MS: u64 = 10_000;

/// Largest body of a plugin upload (`POST /v1/plugins`), the one route
/// that carries a component: the base64 text of the largest component a
/// package may hold (4 characters per 3 bytes of 64 MiB, about 85 MiB),
/// plus 1 MiB for the rest: a manifest of at most 64 KiB even if every byte
/// were JSON-escaped as `\u00XX` (384 KiB), the 128-character signature
/// and the field names.
pub const PLUGIN_UPLOAD_BYTES_MAX: usize =
    base64_len_bytes(bazaar_registry::PACKAGE_COMPONENT_BYTES_MAX) + 1024 * 1024;

/// Longest time a client may take to send a plugin upload: about 90 MB
/// arrive within five minutes over a link of 2.5 Mbit/s or better. Only
/// operators and partners reach this route, and at most
/// `PLUGIN_UPLOADS_MAX` uploads wait at once.
pub const PLUGIN_UPLOAD_READ_TIMEOUT_MS: u64 = 300_000;

/// Length of the padded base64 text of `len_bytes` bytes.
const fn base64_len_bytes(len_bytes: usize) -> usize {
    len_bytes.div_ceil(3) * 4
}

/// A request body not read yet; [`JsonBody::parse`] reads and decodes it.
pub struct JsonBody {
    /// The unread body.
    body: Body,
    /// The `Content-Length` the client declared, if any.
    declared_len_bytes: Option<u64>,
    /// The `Content-Type` the client declared, when it is not JSON.
    declared_other_media_type: Option<String>,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared_len_bytes = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse().ok());
        let declared_other_media_type = request
            .headers()
            .get(CONTENT_TYPE)
            .filter(|value| !is_json_media_type(value))
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        Ok(Self { body: request.into_body(), declared_len_bytes, declared_other_media_type })
    }
}

/// Whether a `Content-Type` declares JSON: `application/json` or a
/// structured `application/...+json` type, with any parameters (a charset).
/// A form (curl's `-d` without a type) or text is not read as JSON, since
/// the client meant something else by it.
fn is_json_media_type(value: &HeaderValue) -> bool {
    let Ok(text) = value.to_str() else { return false };
    // Compared in place: every order carries this header.
    let essence = text.split(';').next().unwrap_or_default().trim().as_bytes();
    let (kind, subtype) = essence.split_at(essence.len().min(b"application/".len()));
    kind.eq_ignore_ascii_case(b"application/")
        && (subtype.eq_ignore_ascii_case(b"json")
            || (subtype.len() > b"+json".len()
                && subtype[subtype.len() - b"+json".len()..].eq_ignore_ascii_case(b"+json")))
}

fn too_large(limit_bytes: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the request body is larger than this route's limit of {limit_bytes} bytes ({} KiB)",
            limit_bytes / 1024
        ),
    )
}

impl JsonBody {
    /// Reads the body within [`BODY_BYTES_MAX`] and [`BODY_READ_TIMEOUT_MS`].
    pub async fn bytes(self) -> Result<Bytes, ApiError> {
        self.bytes_within(BODY_BYTES_MAX, BODY_READ_TIMEOUT_MS).await
    }

    /// Reads the body within `limit_bytes` and `timeout_ms`: for the one
    /// route whose bodies are legitimately larger than [`BODY_BYTES_MAX`].
    pub async fn bytes_within(
        self,
        limit_bytes: usize,
        timeout_ms: u64,
    ) -> Result<Bytes, ApiError> {
        if let Some(declared) = &self.declared_other_media_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "the request body must be JSON, sent with `Content-Type: application/json`; this one was declared as {}",
                    echoed(declared)
                ),
            ));
        }
        if self.declared_len_bytes.is_some_and(|len| len > limit_bytes as u64) {
            return Err(too_large(limit_bytes));
        }
        let limited = Limited::new(self.body, limit_bytes);
        let collected = tokio::time::timeout(Duration::from_millis(timeout_ms), limited.collect())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!("the request body did not arrive within {timeout_ms} ms"),
                )
            })?;
        match collected {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
                Err(too_large(limit_bytes))
            }
            Err(error) => Err(ApiError::bad_request(
                "body_unreadable",
                format!("the request body could not be read: {error}"),
            )),
        }
    }

    /// Reads the body and decodes it as `T`.
    pub async fn parse<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        let bytes = self.bytes().await?;
        decode_json(&bytes)
    }
}

/// Decodes `bytes` as `T`: 400 with line and column for malformed JSON, 422
/// with the field path for JSON of the wrong shape.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "the request body is empty; expected a JSON document",
        ));
    }
    // Nearly every body is valid, and tracking the path of each field costs
    // an allocation per key: decode plainly first, and only a body that
    // fails is decoded again, the same way, to say where it went wrong.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        json_error(error.into_inner(), (path != ".").then_some(path))
    })?;
    // Trailing garbage after the document is a syntax error too.
    deserializer.end().map_err(|error| json_error(error, None))?;
    Ok(value)
}

fn json_error(error: serde_json::Error, path: Option<String>) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Data => match path {
            Some(path) => ApiError::unprocessable(
                "invalid_body",
                format!("field `{path}` is invalid: {error}"),
            )
            .at_field(path),
            None => ApiError::unprocessable(
                "invalid_body",
                format!("the request body has the wrong shape: {error}"),
            ),
        },
        _ => {
            let mut refused = ApiError::bad_request(
                "malformed_json",
                format!("the request body is not valid JSON: {error}"),
            );
            refused.line = Some(error.line());
            refused.column = Some(error.column());
            refused
        }
    }
}

/// Path parameters; a malformed one is a 404 naming the parameter, since no
/// resource can live at such a path.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state).await.map(|Path(value)| Self(value)).map_err(
            |rejection| {
                ApiError::not_found(
                    "not_found",
                    format!("no such resource: {}", rejection.body_text()),
                )
            },
        )
    }
}

/// Query parameters; a malformed query is a 400 saying which parameter.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        sku: String,
        quantity: u32,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Order {
        lines: Vec<Line>,
    }

    #[test]
    fn json_and_structured_json_media_types_are_json_and_forms_and_text_are_not() {
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
            "application/merge-patch+json",
            "APPLICATION/VND.API+JSON",
        ] {
            assert!(is_json_media_type(&HeaderValue::from_static(json)), "{json}");
        }
        for other in [
            "application/x-www-form-urlencoded",
            "text/plain",
            "text/json+json",
            "application/jsonx",
            "application/+json",
            "application/",
            "json",
            "multipart/form-data; boundary=x",
            "",
        ] {
            assert!(!is_json_media_type(&HeaderValue::from_static(other)), "{other}");
        }
        let not_text = HeaderValue::from_bytes(b"application/json\xff").unwrap();
        assert!(!is_json_media_type(&not_text));
    }

    #[test]
    fn a_well_formed_body_decodes() {
        let order: Order = decode_json(br#"{"lines": [{"sku": "A", "quantity": 2}]}"#).unwrap();
        assert_eq!(order.lines[0].sku, "A");
        assert_eq!(order.lines[0].quantity, 2);
    }

    #[test]
    fn truncated_json_is_a_bad_request_with_its_position() {
        let error = decode_json::<Order>(b"{\"lines\": [\n{\"sku\": \"A\"").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert_eq!(error.code, "malformed_json");
        assert_eq!(error.line, Some(2));
        assert!(error.column.is_some());
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        let error =
            decode_json::<Order>(br#"{"lines": [{"sku": "A", "quantity": "two"}]}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.field.as_deref(), Some("lines[0].quantity"));
    }

    #[test]
    fn a_number_too_big_for_its_field_is_unprocessable() {
        let error =
            decode_json::<Order>(br#"{"lines": [{"sku": "A", "quantity": 1e40}]}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        let error = decode_json::<Order>(
            br#"{"lines": [{"sku": "A", "quantity": 99999999999999999999999}]}"#,
        )
        .unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.field.as_deref(), Some("lines[0].quantity"));
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let error = decode_json::<Order>(br#"{"lines": [], "discount": 100}"#).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(error.message.contains("discount"), "{}", error.message);
    }

    #[test]
    fn a_plugin_upload_fits_the_largest_component_in_base64() {
        let component = bazaar_registry::PACKAGE_COMPONENT_BYTES_MAX;
        assert_eq!(base64_len_bytes(3), 4);
        assert_eq!(base64_len_bytes(4), 8);
        assert!(PLUGIN_UPLOAD_BYTES_MAX > component / 3 * 4 + bazaar_registry::MANIFEST_BYTES_MAX);
    }

    #[test]
    fn trailing_garbage_is_malformed() {
        let error = decode_json::<Order>(br#"{"lines": []} x"#).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }
}
