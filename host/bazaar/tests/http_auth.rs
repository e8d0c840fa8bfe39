//! The auth matrix over a real `bazaar serve` process: every route with
//! every kind of caller (no token, a bad token, operator, merchant of the
//! store, merchant of another store, partner of the plugin, partner of
//! another plugin, checkout of the store, checkout of another store).
//! Refusals are 401 or 403 and change nothing in either store nor in the
//! plugin platform; permitted calls succeed.

mod common;

use std::collections::BTreeSet;

use common::{ANALYTICS_PLUGIN, DRIVER_PLUGIN, Publisher, ROUTES, Server, order_body};
use serde_json::{Value, json};

/// The store the routes target.
const OWN: &str = "alpha";
/// The other tenant.
const OTHER: &str = "beta";
/// The SKU both stores sell.
const SKU: &str = "D11-PHONE";
/// The plugin the platform's routes target: the partner's, in two versions.
const PLUGIN: &str = "tagged-pricing";

/// Who calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    /// No `Authorization` header.
    Anonymous,
    /// A well-formed secret that is no token.
    BadToken,
    /// The operator.
    Operator,
    /// A merchant of the targeted store.
    MerchantOwn,
    /// A merchant of the other store.
    MerchantOther,
    /// The partner publishing the targeted plugin.
    Partner,
    /// A partner of another plugin.
    PartnerOther,
    /// The targeted store's checkout.
    CheckoutOwn,
    /// The other store's checkout.
    CheckoutOther,
}

const CALLERS: [Caller; 9] = [
    Caller::Anonymous,
    Caller::BadToken,
    Caller::Operator,
    Caller::MerchantOwn,
    Caller::MerchantOther,
    Caller::Partner,
    Caller::PartnerOther,
    Caller::CheckoutOwn,
    Caller::CheckoutOther,
];

/// Who may call a route (besides the refusals every route shares).
#[derive(Clone, Copy, Debug)]
enum Access {
    /// Anyone, without a token.
    Public,
    /// Operators only.
    Operator,
    /// Operators and merchants (any merchant: the route names no store).
    AnyMerchant,
    /// Operators and the store's merchants.
    Merchant,
    /// Operators, the store's merchants and its checkout tokens.
    Checkout,
    /// Every token, whatever its role and scope.
    AnyToken,
    /// Operators and the partner publishing the plugin.
    Publisher,
}

/// The access of each route; must cover `ROUTES` exactly.
const MATRIX: &[(&str, &str, Access)] = &[
    ("GET", "/v1/health", Access::Public),
    ("GET", "/v1/ready", Access::Public),
    ("GET", "/v1/openapi.json", Access::Public),
    ("GET", "/docs", Access::Public),
    ("POST", "/v1/tokens", Access::Operator),
    ("GET", "/v1/tokens", Access::Operator),
    ("DELETE", "/v1/tokens/{token_id}", Access::Operator),
    ("POST", "/v1/stores", Access::Operator),
    ("GET", "/v1/stores", Access::AnyMerchant),
    ("GET", "/v1/stores/{store}", Access::Merchant),
    ("GET", "/v1/stores/{store}/products", Access::Checkout),
    ("PUT", "/v1/stores/{store}/products/{sku}", Access::Merchant),
    ("GET", "/v1/stores/{store}/products/{sku}", Access::Checkout),
    ("GET", "/v1/stores/{store}/warehouses", Access::Merchant),
    ("PUT", "/v1/stores/{store}/warehouses/{warehouse}", Access::Merchant),
    ("POST", "/v1/stores/{store}/stock/receipts", Access::Merchant),
    ("POST", "/v1/stores/{store}/stock/write-offs", Access::Merchant),
    ("GET", "/v1/stores/{store}/stock", Access::Checkout),
    ("GET", "/v1/stores/{store}/stock/{sku}", Access::Checkout),
    ("GET", "/v1/stores/{store}/plugins", Access::Merchant),
    ("PUT", "/v1/stores/{store}/plugins/{plugin}", Access::Merchant),
    ("DELETE", "/v1/stores/{store}/plugins/{plugin}", Access::Merchant),
    ("PUT", "/v1/stores/{store}/plugins/{plugin}/config", Access::Merchant),
    ("DELETE", "/v1/stores/{store}/plugins/{plugin}/config", Access::Merchant),
    ("PUT", "/v1/stores/{store}/pricing-rules", Access::Merchant),
    ("POST", "/v1/stores/{store}/orders", Access::Checkout),
    ("GET", "/v1/stores/{store}/orders", Access::Merchant),
    ("GET", "/v1/stores/{store}/orders/{number}", Access::Checkout),
    ("POST", "/v1/stores/{store}/orders/{number}/pay", Access::Merchant),
    ("POST", "/v1/stores/{store}/orders/{number}/cancel", Access::Merchant),
    ("POST", "/v1/stores/{store}/orders/{number}/fulfil", Access::Merchant),
    ("POST", "/v1/stores/{store}/cart/price", Access::Checkout),
    ("GET", "/v1/stores/{store}/analytics/{plugin}/{query}", Access::Merchant),
    ("GET", "/v1/stores/{store}/analytics/{plugin}/stream", Access::Merchant),
    ("PUT", "/v1/publishers/{publisher}", Access::Operator),
    ("GET", "/v1/publishers", Access::Operator),
    ("DELETE", "/v1/publishers/{publisher}", Access::Operator),
    ("POST", "/v1/plugins", Access::Publisher),
    ("GET", "/v1/plugins", Access::AnyToken),
    ("GET", "/v1/plugins/{plugin}", Access::AnyToken),
    ("POST", "/v1/plugins/{plugin}/activate", Access::Operator),
    ("POST", "/v1/plugins/{plugin}/rollback", Access::Operator),
    ("PUT", "/v1/plugins/{plugin}/shadow", Access::Operator),
    ("GET", "/v1/plugins/{plugin}/shadow", Access::Publisher),
    ("DELETE", "/v1/plugins/{plugin}/shadow", Access::Operator),
    ("POST", "/v1/plugins/{plugin}/shadow/promote", Access::Operator),
    ("DELETE", "/v1/plugins/{plugin}/versions/{version}", Access::Operator),
    ("GET", "/v1/plugins/{plugin}/stats", Access::Publisher),
    ("GET", "/v1/breakers", Access::AnyMerchant),
    ("GET", "/metrics", Access::Operator),
    ("PUT", "/v1/stores/{store}/warehouses/{warehouse}/layout", Access::Merchant),
    ("GET", "/v1/stores/{store}/warehouses/{warehouse}/layout", Access::Merchant),
    ("GET", "/v1/stores/{store}/devices", Access::Merchant),
    ("PUT", "/v1/stores/{store}/devices/{device}", Access::Merchant),
    ("GET", "/v1/stores/{store}/devices/{device}", Access::Merchant),
    ("DELETE", "/v1/stores/{store}/devices/{device}", Access::Merchant),
    ("POST", "/v1/stores/{store}/devices/{device}/release", Access::Merchant),
    ("GET", "/v1/stores/{store}/tasks", Access::Merchant),
    (
        "POST",
        "/v1/stores/{store}/warehouses/{warehouse}/zones/{zone}/emergency-stop",
        Access::Merchant,
    ),
    ("POST", "/v1/stores/{store}/warehouses/{warehouse}/zones/{zone}/resume", Access::Merchant),
    ("GET", "/v1/devices", Access::Operator),
];

/// The device every store registers before the matrix runs.
const DEVICE: &str = "agv-1";

/// A floor map of a warehouse where `SKU` is picked at `A1`.
fn layout() -> Value {
    json!({
        "map_id": "floor-1",
        "nodes": [{"id": "A1", "x_mm": 1_000, "y_mm": 0}, {"id": "pack", "x_mm": 0, "y_mm": 0}],
        "pick_locations": {SKU: "A1"},
        "pack_station": "pack"
    })
}

/// A registration of an AGV in HGH with serial number `serial`.
fn agv(serial: &str) -> Value {
    json!({
        "kind": "agv", "warehouse": "HGH", "zone": "north", "driver": DRIVER_PLUGIN,
        "manufacturer": "acme-robotics", "serial_number": serial, "model": "T1"
    })
}

/// The status `caller` gets from a route with `access`: a success class
/// (2) or the exact refusal.
fn expected(access: Access, caller: Caller) -> u16 {
    use Caller::*;
    match (access, caller) {
        (Access::Public, _) => 2,
        (_, Anonymous | BadToken) => 401,
        (_, Operator) => 2,
        (Access::AnyToken, _) => 2,
        (Access::Publisher, Partner) => 2,
        (Access::AnyMerchant, MerchantOwn | MerchantOther) => 2,
        (Access::Merchant | Access::Checkout, MerchantOwn) => 2,
        (Access::Checkout, CheckoutOwn) => 2,
        _ => 403,
    }
}

/// The tokens of every caller.
struct Tokens {
    /// Merchant of the targeted store.
    merchant_own: String,
    /// Merchant of the other store.
    merchant_other: String,
    /// The partner of the targeted plugin.
    partner: String,
    /// A partner of another plugin.
    partner_other: String,
    /// Checkout of the targeted store.
    checkout_own: String,
    /// Checkout of the other store.
    checkout_other: String,
    /// A token id that a refused DELETE targets.
    victim_id: String,
    /// The publisher of the targeted plugin (not a token: its key signs
    /// the packages the install route receives).
    publisher: Publisher,
}

impl Tokens {
    fn of(&self, server: &Server, caller: Caller) -> Option<String> {
        match caller {
            Caller::Anonymous => None,
            Caller::BadToken => {
                Some("bzr_0000000000000000000000000000000000000000000000000000000000000000".into())
            }
            Caller::Operator => Some(server.operator.clone()),
            Caller::MerchantOwn => Some(self.merchant_own.clone()),
            Caller::MerchantOther => Some(self.merchant_other.clone()),
            Caller::Partner => Some(self.partner.clone()),
            Caller::PartnerOther => Some(self.partner_other.clone()),
            Caller::CheckoutOwn => Some(self.checkout_own.clone()),
            Caller::CheckoutOther => Some(self.checkout_other.clone()),
        }
    }
}

/// A request for `route`; `fresh` makes it succeed when allowed (it prepares
/// what the call needs as the operator), otherwise it targets existing data.
struct Call {
    /// The concrete path.
    path: String,
    /// The JSON body, if the route takes one.
    body: Option<Value>,
    /// Extra headers (an `Idempotency-Key` for orders).
    headers: Vec<(String, String)>,
}

async fn call_for(
    server: &Server,
    tokens: &Tokens,
    method: &str,
    template: &str,
    serial: usize,
    fresh: bool,
) -> Call {
    let store_path = |rest: &str| format!("/v1/stores/{OWN}{rest}");
    let key = vec![("Idempotency-Key".to_string(), format!("matrix-{serial}"))];
    let new_order = || async {
        let order = server
            .operator(
                "POST",
                &store_path("/orders"),
                Some(order_body(&format!("c{serial}"), SKU, 1)),
                201,
            )
            .await;
        order["number"].as_u64().unwrap()
    };
    let (path, body, headers) = match (method, template) {
        ("POST", "/v1/tokens") => (
            "/v1/tokens".to_string(),
            Some(json!({"role": "checkout", "stores": [OWN], "label": "matrix"})),
            vec![],
        ),
        ("DELETE", "/v1/tokens/{token_id}") => {
            let id = if fresh {
                server.issue_token("partner", &[], &["pricing-promotions"]).await.1
            } else {
                tokens.victim_id.clone()
            };
            (format!("/v1/tokens/{id}"), None, vec![])
        }
        ("POST", "/v1/stores") => (
            "/v1/stores".to_string(),
            Some(json!({"id": format!("made-{serial}"), "name": "new", "currency": "CNY"})),
            vec![],
        ),
        ("PUT", "/v1/stores/{store}/products/{sku}") => (
            store_path(&format!("/products/NEW-{serial}")),
            Some(json!({"title": "new", "price": {"amount_minor": 100, "currency": "CNY"}})),
            vec![],
        ),
        ("GET", "/v1/stores/{store}/products/{sku}")
        | ("GET", "/v1/stores/{store}/stock/{sku}") => {
            (template.replace("{store}", OWN).replace("{sku}", SKU), None, vec![])
        }
        ("PUT", "/v1/stores/{store}/warehouses/{warehouse}") => (
            store_path(&format!("/warehouses/W{serial}")),
            Some(json!({"name": "new", "location": {"latitude_micro": 0, "longitude_micro": 0}})),
            vec![],
        ),
        ("POST", "/v1/stores/{store}/stock/receipts")
        | ("POST", "/v1/stores/{store}/stock/write-offs") => (
            template.replace("{store}", OWN),
            Some(json!({"sku": SKU, "warehouse": "HGH", "quantity": 1})),
            vec![],
        ),
        ("PUT", "/v1/stores/{store}/plugins/{plugin}/config") => (
            store_path("/plugins/logistics-router/config"),
            Some(serde_json::from_str(bazaar_node::seed::ROUTER_CONFIG).unwrap()),
            vec![],
        ),
        ("DELETE", "/v1/stores/{store}/plugins/{plugin}/config") => {
            if fresh {
                let config: Value =
                    serde_json::from_str(bazaar_node::seed::PROMOTIONS_CONFIG).unwrap();
                server
                    .operator(
                        "PUT",
                        &store_path("/plugins/pricing-promotions/config"),
                        Some(config),
                        200,
                    )
                    .await;
            }
            (store_path("/plugins/pricing-promotions/config"), None, vec![])
        }
        ("POST", "/v1/stores/{store}/orders") => {
            (store_path("/orders"), Some(order_body(&format!("c{serial}"), SKU, 1)), key)
        }
        ("POST", "/v1/stores/{store}/cart/price") => {
            (store_path("/cart/price"), Some(order_body("pricer", SKU, 1)), vec![])
        }
        ("GET", "/v1/stores/{store}/analytics/{plugin}/{query}") => {
            (store_path(&format!("/analytics/{ANALYTICS_PLUGIN}/headline")), None, vec![])
        }
        ("GET", "/v1/stores/{store}/analytics/{plugin}/stream") => {
            (store_path(&format!("/analytics/{ANALYTICS_PLUGIN}/stream")), None, vec![])
        }
        ("PUT", "/v1/stores/{store}/plugins/{plugin}") => (
            store_path("/plugins/logistics-router"),
            Some(json!({
                "config": serde_json::from_str::<Value>(bazaar_node::seed::ROUTER_CONFIG).unwrap(),
                "consent": ["config"],
            })),
            vec![],
        ),
        ("DELETE", "/v1/stores/{store}/plugins/{plugin}") => {
            if fresh {
                let config: Value =
                    serde_json::from_str(bazaar_node::seed::PROMOTIONS_CONFIG).unwrap();
                server
                    .operator(
                        "PUT",
                        &store_path("/plugins/pricing-promotions/config"),
                        Some(config),
                        200,
                    )
                    .await;
            }
            (store_path("/plugins/pricing-promotions"), None, vec![])
        }
        ("PUT", "/v1/stores/{store}/pricing-rules") => {
            (store_path("/pricing-rules"), Some(json!({"discount_cap_percent": 90})), vec![])
        }
        ("PUT", "/v1/publishers/{publisher}") => (
            format!("/v1/publishers/matrix-{serial}"),
            Some(json!({"public_key": Publisher::new("unused").public_key()})),
            vec![],
        ),
        ("DELETE", "/v1/publishers/{publisher}") => {
            let id = if fresh {
                let doomed = Publisher::new(&format!("doomed-{serial}"));
                server.trust(&doomed).await;
                doomed.id
            } else {
                tokens.publisher.id.clone()
            };
            (format!("/v1/publishers/{id}"), None, vec![])
        }
        ("POST", "/v1/plugins") => (
            "/v1/plugins".to_string(),
            Some(tokens.publisher.artifact(&bazaar_artifacts::TAGGED_PRICING_V1)),
            vec![],
        ),
        ("POST", "/v1/plugins/{plugin}/activate") => {
            if fresh {
                reset_plugin(server, &tokens.publisher).await;
            }
            (plugin_path("/activate"), Some(json!({"version": "2.0.0"})), vec![])
        }
        ("POST", "/v1/plugins/{plugin}/rollback") => {
            if fresh {
                reset_plugin(server, &tokens.publisher).await;
                server
                    .operator(
                        "POST",
                        &plugin_path("/activate"),
                        Some(json!({"version": "2.0.0"})),
                        200,
                    )
                    .await;
            }
            (plugin_path("/rollback"), None, vec![])
        }
        ("PUT", "/v1/plugins/{plugin}/shadow") => {
            if fresh {
                reset_plugin(server, &tokens.publisher).await;
            }
            (plugin_path("/shadow"), Some(json!({"version": "2.0.0", "share_percent": 50})), vec![])
        }
        ("GET", "/v1/plugins/{plugin}/shadow")
        | ("DELETE", "/v1/plugins/{plugin}/shadow")
        | ("POST", "/v1/plugins/{plugin}/shadow/promote") => {
            if fresh {
                reset_plugin(server, &tokens.publisher).await;
                server
                    .operator(
                        "PUT",
                        &plugin_path("/shadow"),
                        Some(json!({"version": "2.0.0", "share_percent": 50})),
                        200,
                    )
                    .await;
            }
            (template.replace("{plugin}", PLUGIN), None, vec![])
        }
        ("DELETE", "/v1/plugins/{plugin}/versions/{version}") => {
            if fresh {
                reset_plugin(server, &tokens.publisher).await;
            }
            (plugin_path("/versions/2.0.0"), None, vec![])
        }
        ("GET", "/v1/stores/{store}/orders/{number}") => (store_path("/orders/1"), None, vec![]),
        ("PUT", "/v1/stores/{store}/warehouses/{warehouse}/layout")
        | ("GET", "/v1/stores/{store}/warehouses/{warehouse}/layout") => {
            let body = (method == "PUT").then(layout);
            (store_path("/warehouses/HGH/layout"), body, vec![])
        }
        ("PUT", "/v1/stores/{store}/devices/{device}") => (
            store_path(&format!("/devices/agv-m{serial}")),
            Some(agv(&format!("M{serial}"))),
            vec![],
        ),
        ("GET", "/v1/stores/{store}/devices/{device}")
        | ("POST", "/v1/stores/{store}/devices/{device}/release") => {
            (template.replace("{store}", OWN).replace("{device}", DEVICE), None, vec![])
        }
        ("DELETE", "/v1/stores/{store}/devices/{device}") => {
            let device = if fresh {
                let doomed = format!("doomed-{serial}");
                server
                    .operator(
                        "PUT",
                        &store_path(&format!("/devices/{doomed}")),
                        Some(agv(&format!("D{serial}"))),
                        201,
                    )
                    .await;
                doomed
            } else {
                DEVICE.to_string()
            };
            (store_path(&format!("/devices/{device}")), None, vec![])
        }
        ("POST", "/v1/stores/{store}/warehouses/{warehouse}/zones/{zone}/emergency-stop")
        | ("POST", "/v1/stores/{store}/warehouses/{warehouse}/zones/{zone}/resume") => (
            template
                .replace("{store}", OWN)
                .replace("{warehouse}", "HGH")
                .replace("{zone}", "north"),
            None,
            vec![],
        ),
        ("POST", "/v1/stores/{store}/orders/{number}/pay")
        | ("POST", "/v1/stores/{store}/orders/{number}/cancel") => {
            let number = if fresh { new_order().await } else { 1 };
            (
                template.replace("{store}", OWN).replace("{number}", &number.to_string()),
                None,
                vec![],
            )
        }
        ("POST", "/v1/stores/{store}/orders/{number}/fulfil") => {
            let number = if fresh {
                let number = new_order().await;
                server
                    .operator("POST", &store_path(&format!("/orders/{number}/pay")), None, 200)
                    .await;
                number
            } else {
                2
            };
            (store_path(&format!("/orders/{number}/fulfil")), None, vec![])
        }
        (_, template) => {
            (template.replace("{store}", OWN).replace("{plugin}", PLUGIN), None, vec![])
        }
    };
    Call { path, body, headers }
}

/// The status of `GET path` with `token`, without reading the body (a
/// live stream's body does not end); the connection is closed after.
async fn stream_status(server: &Server, path: &str, token: Option<&str>) -> reqwest::StatusCode {
    let mut request = server.client.get(format!("{}{path}", server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the server answers").status()
}

/// The path of the targeted plugin followed by `rest`.
fn plugin_path(rest: &str) -> String {
    format!("/v1/plugins/{PLUGIN}{rest}")
}

/// Puts the targeted plugin back as the matrix starts from: both versions
/// installed, 1.0.0 active, no shadow run.
async fn reset_plugin(server: &Server, publisher: &Publisher) {
    for artifact in [&bazaar_artifacts::TAGGED_PRICING_V1, &bazaar_artifacts::TAGGED_PRICING_V2] {
        let reply = server.install(&server.operator, &publisher.artifact(artifact)).await;
        assert!(reply.status.is_success(), "installing {}: {}", artifact.version, reply.text);
    }
    server
        .operator("POST", &plugin_path("/activate"), Some(json!({"version": "1.0.0"})), 200)
        .await;
    server.operator("DELETE", &plugin_path("/shadow"), None, 204).await;
}

/// Everything either store holds (devices without their telemetry), the
/// token list, the trusted publishers and the installed plugins, as the
/// operator sees them.
async fn snapshot(server: &Server) -> Vec<Value> {
    let mut state = vec![server.operator("GET", "/v1/tokens", None, 200).await];
    state.push(server.operator("GET", "/v1/publishers", None, 200).await);
    state.push(server.operator("GET", "/v1/plugins", None, 200).await);
    for store in [OWN, OTHER] {
        for rest in [
            "",
            "/products",
            "/warehouses",
            "/stock",
            "/plugins",
            "/warehouses/HGH/layout",
            "/devices",
            "/tasks",
        ] {
            let mut read =
                server.operator("GET", &format!("/v1/stores/{store}{rest}"), None, 200).await;
            // Telemetry is what the bus last heard, not state a request
            // could change: it appears with the bus's first round.
            if let Some(devices) = read.get_mut("devices").and_then(Value::as_array_mut) {
                for device in devices {
                    device["telemetry"] = Value::Null;
                }
            }
            state.push(read);
        }
        state.push(Value::Array(server.all_orders(store).await));
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_the_roles_it_should_and_refusals_change_nothing() {
    let matrix: BTreeSet<(&str, &str)> = MATRIX.iter().map(|(m, p, _)| (*m, *p)).collect();
    let routes: BTreeSet<(&str, &str)> = ROUTES.iter().copied().collect();
    assert_eq!(matrix, routes, "the matrix must cover every route");

    let server = Server::start(&[]);
    for store in [OWN, OTHER] {
        server.seed_store(store, SKU, 1_000).await;
        server.configure_plugins(store).await;
        server.enable_analytics(store, &[SKU]).await;
        server
            .operator(
                "POST",
                &format!("/v1/stores/{store}/orders"),
                Some(order_body("seed", SKU, 1)),
                201,
            )
            .await;
        server
            .operator(
                "POST",
                &format!("/v1/stores/{store}/orders"),
                Some(order_body("seed2", SKU, 1)),
                201,
            )
            .await;
        server.operator("POST", &format!("/v1/stores/{store}/orders/2/pay"), None, 200).await;
        server.enable_driver(store).await;
        server
            .operator(
                "PUT",
                &format!("/v1/stores/{store}/warehouses/HGH/layout"),
                Some(layout()),
                200,
            )
            .await;
        server
            .operator("PUT", &format!("/v1/stores/{store}/devices/{DEVICE}"), Some(agv("S1")), 201)
            .await;
    }
    // Emergency stops need the bus connected to its broker.
    server.wait_for_bus().await;
    let publisher = Publisher::new("bazaar-tests");
    server.trust(&publisher).await;
    reset_plugin(&server, &publisher).await;
    let tokens = Tokens {
        merchant_own: server.issue_token("merchant", &[OWN], &[]).await.0,
        merchant_other: server.issue_token("merchant", &[OTHER], &[]).await.0,
        partner: server.issue_token("partner", &[], &[PLUGIN]).await.0,
        partner_other: server.issue_token("partner", &[], &["pricing-promotions"]).await.0,
        checkout_own: server.issue_token("checkout", &[OWN], &[]).await.0,
        checkout_other: server.issue_token("checkout", &[OTHER], &[]).await.0,
        victim_id: server.issue_token("merchant", &[OTHER], &[]).await.1,
        publisher,
    };

    // Every refusal first, with the state compared before and after.
    let before = snapshot(&server).await;
    let mut serial = 0;
    let mut refusals = 0;
    for (method, template, access) in MATRIX {
        for caller in CALLERS {
            let want = expected(*access, caller);
            if want == 2 {
                continue;
            }
            serial += 1;
            let call = call_for(&server, &tokens, method, template, serial, false).await;
            let headers: Vec<(&str, &str)> =
                call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let token = tokens.of(&server, caller);
            let reply = server
                .send(
                    method,
                    &call.path,
                    token.as_deref(),
                    &headers,
                    call.body.map(|b| b.to_string()),
                )
                .await;
            assert_eq!(
                reply.status.as_u16(),
                want,
                "{caller:?} {method} {}: {}",
                call.path,
                reply.text
            );
            let code = if want == 401 { "unauthorized" } else { "forbidden" };
            assert_eq!(reply.code(), code, "{caller:?} {method} {}", call.path);
            assert!(!reply.message().is_empty());
            if want == 401 {
                assert_eq!(reply.headers["www-authenticate"], "Bearer");
            }
            refusals += 1;
        }
    }
    assert!(refusals > 100, "{refusals} refusals");
    assert_eq!(snapshot(&server).await, before, "a refused request changed something");

    // Then every permitted call, each prepared to succeed.
    for (method, template, access) in MATRIX {
        for caller in CALLERS {
            if expected(*access, caller) != 2 {
                continue;
            }
            serial += 1;
            let call = call_for(&server, &tokens, method, template, serial, true).await;
            let headers: Vec<(&str, &str)> =
                call.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let token = tokens.of(&server, caller);
            if template.ends_with("/stream") {
                // A live stream never ends by itself: its status is the answer.
                let status = stream_status(&server, &call.path, token.as_deref()).await;
                assert!(status.is_success(), "{caller:?} {method} {}: {status}", call.path);
                continue;
            }
            let reply = server
                .send(
                    method,
                    &call.path,
                    token.as_deref(),
                    &headers,
                    call.body.map(|b| b.to_string()),
                )
                .await;
            assert!(
                reply.status.is_success(),
                "{caller:?} {method} {}: {} {}",
                call.path,
                reply.status,
                reply.text
            );
        }
    }

    // A merchant lists only its own stores.
    let listed = server.call("GET", "/v1/stores", Some(&tokens.merchant_other), None).await;
    let ids: Vec<&str> = listed.json["stores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [OTHER]);
    // A revoked token stops working at once.
    let (secret, id) = server.issue_token("merchant", &[OWN], &[]).await;
    assert_eq!(
        server.call("GET", "/v1/stores/alpha", Some(&secret), None).await.status.as_u16(),
        200
    );
    assert_eq!(
        server
            .call("DELETE", &format!("/v1/tokens/{id}"), Some(&server.operator), None)
            .await
            .status
            .as_u16(),
        204
    );
    assert_eq!(
        server.call("GET", "/v1/stores/alpha", Some(&secret), None).await.status.as_u16(),
        401
    );
    // The last operator token cannot be revoked.
    let tokens_list = server.operator("GET", "/v1/tokens", None, 200).await;
    assert!(tokens_list.to_string().find("bzr_").is_none(), "secrets are never listed");
    let operator_id =
        tokens_list["tokens"].as_array().unwrap().iter().find(|t| t["role"] == "operator").unwrap()
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    let refused = server
        .call("DELETE", &format!("/v1/tokens/{operator_id}"), Some(&server.operator), None)
        .await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "last_operator_token"));
}
