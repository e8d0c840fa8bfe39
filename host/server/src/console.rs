//! The web console: a one-page app for operators and merchants (the live
//! Double-11 dashboard, orders, the marketplace, analytics, the fleet of
//! warehouse devices, plugin versions, circuit breakers and stores),
//! served by the node itself.
//!
//! The console is hand-written HTML, CSS and JavaScript modules embedded in
//! the binary, so `cargo build` is the only build step and a node needs
//! nothing else to show it. It is a client of the public API like any
//! other: the page asks for a bearer token, keeps it in the tab's
//! `sessionStorage` and sends it with every call, so the static files
//! themselves need no authentication.
//!
//! Every response carries a strict `Content-Security-Policy` (this origin
//! only: no inline script or style, no other host), and an `ETag` (a hash
//! of the embedded bytes, computed once) so a browser revalidates with a
//! cheap 304 instead of fetching the files again.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;

/// Where the console is served.
pub const CONSOLE_PATH: &str = "/console";

/// The policy of every console response: scripts, styles, images and API
/// calls from this origin only; no inline code (so injected markup cannot
/// run), no plugins, no framing, no form posts elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Browsers revalidate every file on each load: the names carry no
/// version, so a cached copy must never outlive an upgrade of the node; the
/// `ETag` makes the revalidation a 304 without a body.
const CACHE_CONTROL: &str = "no-cache";

/// Longest asset name echoed back in a 404: the names are short, and a
/// client-chosen path must not grow the error body.
const ASSET_NAME_ECHO_CHARS_MAX: usize = 64;

/// Most entity tags read from an `If-None-Match` header: a browser sends
/// one; a longer list is not worth comparing and is answered in full.
const IF_NONE_MATCH_TAGS_MAX: usize = 16;

/// One embedded file.
struct Asset {
    /// Its name under `/console/assets/`.
    name: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
}

/// Declares the embedded files, read from `host/server/console/` at build
/// time.
macro_rules! assets {
    ($($name:literal => $content_type:literal),* $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("../console/", $name)),
        }),*]
    };
}

/// The page that loads the app; served at `/console` and `/console/`.
const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../console/index.html"),
};

/// The files the page loads: the stylesheet, the icon, and the app's
/// JavaScript modules.
const ASSETS: &[Asset] = assets! {
    "style.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
    "app.js" => "text/javascript; charset=utf-8",
    "api.js" => "text/javascript; charset=utf-8",
    "dom.js" => "text/javascript; charset=utf-8",
    "format.js" => "text/javascript; charset=utf-8",
    "chart.js" => "text/javascript; charset=utf-8",
    "page-login.js" => "text/javascript; charset=utf-8",
    "page-dashboard.js" => "text/javascript; charset=utf-8",
    "page-orders.js" => "text/javascript; charset=utf-8",
    "page-marketplace.js" => "text/javascript; charset=utf-8",
    "page-analytics.js" => "text/javascript; charset=utf-8",
    "page-fleet.js" => "text/javascript; charset=utf-8",
    "page-plugins.js" => "text/javascript; charset=utf-8",
    "page-breakers.js" => "text/javascript; charset=utf-8",
    "page-stores.js" => "text/javascript; charset=utf-8",
};

/// The routes of the console. They need no state and no token.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(CONSOLE_PATH, get(index))
        .route("/console/", get(index))
        .route("/console/assets/{file}", get(asset))
}

/// The app's page.
async fn index(headers: HeaderMap) -> Response {
    respond(&INDEX, entity_tag(None), &headers)
}

/// One embedded file, or a 404 like every other refusal.
async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|asset| asset.name == file) {
        Some(index) => respond(&ASSETS[index], entity_tag(Some(index)), &headers),
        None => ApiError::not_found(
            "asset_not_found",
            format!(
                "the console has no file {:?}; the console is at {CONSOLE_PATH}",
                file.chars().take(ASSET_NAME_ECHO_CHARS_MAX).collect::<String>()
            ),
        )
        .into_response(),
    }
}

/// The entity tag of the index page (`None`) or of `ASSETS[index]`: the
/// first 128 bits of its SHA-256, hex, computed once for every file.
fn entity_tag(index: Option<usize>) -> &'static HeaderValue {
    static TAGS: OnceLock<(HeaderValue, Vec<HeaderValue>)> = OnceLock::new();
    let (index_tag, asset_tags) = TAGS.get_or_init(|| {
        let tag = |body: &[u8]| {
            let digest = Sha256::digest(body);
            let hex: String = digest[..16].iter().map(|byte| format!("{byte:02x}")).collect();
            // Hex digits between quotes are always a valid header value.
            HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"\""))
        };
        (tag(INDEX.body), ASSETS.iter().map(|asset| tag(asset.body)).collect())
    });
    match index {
        Some(index) => &asset_tags[index],
        None => index_tag,
    }
}

/// Whether the request's `If-None-Match` names `tag` (or `*`), so the
/// browser's copy is current.
fn is_current(headers: &HeaderMap, tag: &HeaderValue) -> bool {
    let Some(wanted) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let tag = tag.to_str().unwrap_or_default();
    wanted.split(',').take(IF_NONE_MATCH_TAGS_MAX).map(str::trim).any(|candidate| {
        // A weak comparison, as RFC 9110 asks for If-None-Match.
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

/// `asset` with its headers, or a 304 when the browser has it already.
fn respond(asset: &Asset, tag: &HeaderValue, request: &HeaderMap) -> Response {
    let common: [(HeaderName, HeaderValue); 5] = [
        (header::ETAG, tag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ];
    if is_current(request, tag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    let content_type = [(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type))];
    (StatusCode::OK, common, content_type, asset.body).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use super::*;

    /// Sends a GET for `path` with extra headers to the console router.
    async fn get_path(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        router::<()>().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    async fn body_text(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_console_page_is_served_with_and_without_a_trailing_slash() {
        for path in ["/console", "/console/"] {
            let response = get_path(path, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
            assert_eq!(
                response.headers()[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            let page = body_text(response).await;
            assert!(page.contains("/console/assets/app.js"), "{page}");
        }
    }

    #[tokio::test]
    async fn every_asset_the_page_and_the_modules_name_is_embedded() {
        let mut sources = vec![String::from_utf8(INDEX.body.to_vec()).unwrap()];
        sources.extend(
            ASSETS
                .iter()
                .filter(|a| a.name.ends_with(".js"))
                .map(|a| String::from_utf8(a.body.to_vec()).unwrap()),
        );
        for source in &sources {
            for piece in source.split(['"', '\'']) {
                let name =
                    piece.strip_prefix("./").or_else(|| piece.strip_prefix("/console/assets/"));
                let Some(name) = name else { continue };
                if name.ends_with(".js") || name.ends_with(".css") || name.ends_with(".svg") {
                    assert!(ASSETS.iter().any(|a| a.name == name), "{name} is not embedded");
                }
            }
        }
    }

    #[test]
    fn every_file_of_the_console_directory_is_embedded() {
        let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/console");
        for entry in std::fs::read_dir(directory).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let embedded = name == INDEX.name || ASSETS.iter().any(|asset| asset.name == name);
            assert!(embedded, "console/{name} is not in ASSETS");
        }
    }

    #[tokio::test]
    async fn assets_have_their_content_type_and_a_revalidating_cache_policy() {
        for asset in ASSETS {
            let response = get_path(&format!("/console/assets/{}", asset.name), &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.name);
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], asset.content_type);
            assert_eq!(headers[header::CACHE_CONTROL], CACHE_CONTROL);
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(headers[header::ETAG].to_str().unwrap().len() == 34, "{:?}", headers);
        }
    }

    #[tokio::test]
    async fn a_matching_etag_is_answered_with_not_modified_and_no_body() {
        let first = get_path("/console/assets/app.js", &[]).await;
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        let again = get_path("/console/assets/app.js", &[("if-none-match", &tag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[header::ETAG], tag.as_str());
        assert!(body_text(again).await.is_empty());
        let weak = format!("\"other\", W/{tag}");
        let weakly = get_path("/console/assets/app.js", &[("if-none-match", &weak)]).await;
        assert_eq!(weakly.status(), StatusCode::NOT_MODIFIED);
        let stale = get_path("/console/assets/app.js", &[("if-none-match", "\"old\"")]).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn files_with_other_contents_have_other_etags() {
        let tags: std::collections::HashSet<_> =
            (0..ASSETS.len()).map(|index| entity_tag(Some(index))).collect();
        assert_eq!(tags.len(), ASSETS.len());
        assert!(!tags.contains(entity_tag(None)));
    }

    #[tokio::test]
    async fn an_unknown_file_is_a_json_404() {
        for path in ["/console/assets/missing.js", "/console/assets/..%2Fsrc%2Flib.rs"] {
            let response = get_path(path, &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let body: serde_json::Value = serde_json::from_str(&body_text(response).await).unwrap();
            assert_eq!(body["error"]["code"], "asset_not_found");
        }
    }
}
