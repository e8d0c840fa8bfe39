//! The router in process, without a socket (axum's `examples/testing`
//! style): a node on a temporary directory, the state over it, and requests
//! sent straight into the router.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bazaar_node::consumer::Consumers;
use bazaar_node::platform::Platform;
use bazaar_node::{Node, NodeConfig, PluginSet};
use bazaar_server::{AppState, Limits, MetricsAccess, OperatorToken, Rate, app};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("a body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_router_serves_a_node_without_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginSet::none();
    let node = Arc::new(Node::open(NodeConfig::new(dir.path()), plugins.clone()).unwrap());
    let (platform, _) = Platform::open(node.storage().clone(), dir.path(), plugins).unwrap();
    let consumers = Arc::new(Consumers::start(node.clone(), platform.plugins().clone()).unwrap());
    let limits = Limits { in_flight_max: 16, store_rate: Rate::OFF, customer_rate: Rate::OFF };
    let state =
        AppState::new(node, limits, platform, consumers, MetricsAccess::Operator, None).unwrap();
    let OperatorToken::Created(path) = state.ensure_operator_token(dir.path()).unwrap() else {
        panic!("a fresh data directory gets an operator token");
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner may read the token");
    }
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert_eq!(
        state.ensure_operator_token(dir.path()).unwrap(),
        OperatorToken::Existing(path),
        "a second start keeps the token"
    );
    let router = app(state);

    let (status, health) =
        send(&router, Request::get("/v1/health").body(Body::empty()).unwrap()).await;
    assert_eq!((status, health["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, refused) =
        send(&router, Request::get("/v1/stores").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );

    let create = Request::post("/v1/stores")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(json!({"id": "acme", "name": "Acme", "currency": "CNY"}).to_string()))
        .unwrap();
    let (status, store) = send(&router, create).await;
    assert_eq!((status, store["currency"].as_str()), (StatusCode::CREATED, Some("CNY")));
    let list = Request::get("/v1/stores")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, stores) = send(&router, list).await;
    assert_eq!((status, stores["stores"][0]["id"].as_str()), (StatusCode::OK, Some("acme")));

    let (status, refused) =
        send(&router, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized")),
        "metrics need an operator token unless they are public"
    );
}
