//! The HTTP API end to end against a real `bazaar serve` process over TCP:
//! the merchant walk-through, graceful shutdown and restart, idempotent
//! retries, malformed and hostile requests, and the OpenAPI document.

mod common;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use common::{ROUTES, Server, order_body};
use serde_json::{Value, json};

/// The flash-sale SKU the seeded promotions know.
const PHONE: &str = "D11-PHONE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_walks_through_store_stock_and_orders() {
    let server = Server::start(&[]);
    server.seed_store("acme", PHONE, 15).await;
    server
        .operator(
            "PUT",
            "/v1/stores/acme/products/CASE",
            Some(
                json!({"title": "Phone case", "price": {"amount_minor": 1_990, "currency": "CNY"}}),
            ),
            200,
        )
        .await;
    server
        .operator(
            "POST",
            "/v1/stores/acme/stock/receipts",
            Some(json!({"sku": "CASE", "warehouse": "HGH", "quantity": 100})),
            200,
        )
        .await;
    let after_write_off = server
        .operator(
            "POST",
            "/v1/stores/acme/stock/write-offs",
            Some(json!({"sku": "CASE", "warehouse": "HGH", "quantity": 1})),
            200,
        )
        .await;
    assert_eq!(after_write_off["totals"]["on_hand"], 99);
    assert_eq!(after_write_off["totals"]["available"], 99);
    server.configure_plugins("acme").await;

    let stores = server.operator("GET", "/v1/stores", None, 200).await;
    assert_eq!(stores["stores"][0]["id"], "acme");
    let store = server.operator("GET", "/v1/stores/acme", None, 200).await;
    assert_eq!((store["currency"].as_str(), store["products"].as_u64()), (Some("CNY"), Some(2)));
    assert_eq!(store["plugins"].as_array().unwrap().len(), 2);
    let products = server.operator("GET", "/v1/stores/acme/products", None, 200).await;
    let skus: Vec<&str> = products["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["CASE", PHONE]);
    let warehouses = server.operator("GET", "/v1/stores/acme/warehouses", None, 200).await;
    assert_eq!(warehouses["warehouses"].as_array().unwrap().len(), 2);
    let phone =
        server.operator("GET", &format!("/v1/stores/acme/products/{PHONE}"), None, 200).await;
    assert_eq!(phone["price"], json!({"amount_minor": 599_900, "currency": "CNY"}));
    let stock = server.stock_totals("acme", PHONE).await;
    assert_eq!((stock["on_hand"].as_u64(), stock["available"].as_u64()), (Some(15), Some(15)));

    // The cart price shows who contributed what.
    let mut cart = order_body("alice", PHONE, 2);
    cart["lines"].as_array_mut().unwrap().push(json!({"sku": "CASE", "quantity": 1}));
    let priced =
        server.operator("POST", "/v1/stores/acme/cart/price", Some(cart.clone()), 200).await;
    let contribution = &priced["contributions"][0];
    assert_eq!(contribution["plugin"]["id"], "pricing-promotions");
    assert!(contribution["discount"]["amount_minor"].as_i64().unwrap() > 0, "{priced}");
    assert!(!contribution["adjustments"][0]["reason"].as_str().unwrap().is_empty());
    assert_eq!(priced["shipment_plan"]["routed_by"]["plugin"]["id"], "logistics-router");
    assert_eq!(server.stock_totals("acme", PHONE).await["reserved"], 0, "pricing reserves nothing");

    // Place an order.
    let reply = server
        .send(
            "POST",
            "/v1/stores/acme/orders",
            Some(&server.operator),
            &[("Idempotency-Key", "walk-1")],
            Some(cart.to_string()),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    assert_eq!(reply.headers["location"], "/v1/stores/acme/orders/1");
    let order = reply.json;
    assert_eq!((order["number"].as_u64(), order["status"].as_str()), (Some(1), Some("reserved")));
    assert_eq!(order["idempotency_key"], "walk-1");
    assert_eq!(order["adjustments"][0]["plugin"]["id"], "pricing-promotions");
    assert!(order["adjustments"][0]["plugin"]["version"].is_string());
    let totals = &order["totals"];
    let amount = |name: &str| totals[name]["amount_minor"].as_i64().unwrap();
    assert_eq!(amount("total"), amount("subtotal") - amount("discount") + amount("shipping"));
    assert_eq!(totals, &priced["totals"], "the order costs what the cart price said");
    assert!(order["placed_at_ms"].as_u64().unwrap() > 0);
    let stock = server.stock_totals("acme", PHONE).await;
    assert_eq!((stock["available"].as_u64(), stock["reserved"].as_u64()), (Some(13), Some(2)));
    let fetched = server.operator("GET", "/v1/stores/acme/orders/1", None, 200).await;
    assert_eq!(fetched, order);

    // Two more orders, then the list in pages of two.
    for customer in ["bob", "carol"] {
        server
            .operator("POST", "/v1/stores/acme/orders", Some(order_body(customer, PHONE, 1)), 201)
            .await;
    }
    let first = server.operator("GET", "/v1/stores/acme/orders?limit=2", None, 200).await;
    let numbers = |page: &Value| -> Vec<u64> {
        page["orders"].as_array().unwrap().iter().map(|o| o["number"].as_u64().unwrap()).collect()
    };
    assert_eq!((numbers(&first), first["next_after"].as_u64()), (vec![1, 2], Some(2)));
    let second = server.operator("GET", "/v1/stores/acme/orders?limit=2&after=2", None, 200).await;
    assert_eq!((numbers(&second), second["next_after"].clone()), (vec![3], Value::Null));
    let stock = server.stock_totals("acme", PHONE).await;
    assert_eq!((stock["available"].as_u64(), stock["reserved"].as_u64()), (Some(11), Some(4)));

    // Pay the first, cancel the second, ship the first.
    let paid = server.operator("POST", "/v1/stores/acme/orders/1/pay", None, 200).await;
    assert_eq!(paid["status"], "paid");
    let stock = server.stock_totals("acme", PHONE).await;
    assert_eq!((stock["reserved"].as_u64(), stock["sold"].as_u64()), (Some(2), Some(2)));
    let cancelled = server.operator("POST", "/v1/stores/acme/orders/2/cancel", None, 200).await;
    assert_eq!(cancelled["status"], "cancelled");
    let stock = server.stock_totals("acme", PHONE).await;
    assert_eq!((stock["available"].as_u64(), stock["reserved"].as_u64()), (Some(12), Some(1)));
    let fulfilled = server.operator("POST", "/v1/stores/acme/orders/1/fulfil", None, 200).await;
    assert_eq!(fulfilled["status"], "fulfilled");
    assert!(fulfilled["updated_at_ms"].as_u64() >= fulfilled["placed_at_ms"].as_u64());
    let stock = server.stock_totals("acme", PHONE).await;
    assert_eq!(
        (stock["on_hand"].as_u64(), stock["sold"].as_u64(), stock["shipped"].as_u64()),
        (Some(13), Some(0), Some(2))
    );
    assert_eq!(
        stock["on_hand"].as_u64().unwrap(),
        stock["available"].as_u64().unwrap()
            + stock["reserved"].as_u64().unwrap()
            + stock["sold"].as_u64().unwrap()
    );

    // What the state forbids is refused and says why.
    let refused =
        server.call("POST", "/v1/stores/acme/orders/1/cancel", Some(&server.operator), None).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "invalid_transition"));
    let refused = server
        .call(
            "POST",
            "/v1/stores/acme/stock/write-offs",
            Some(&server.operator),
            Some(json!({"sku": PHONE, "warehouse": "HGH", "quantity": 1000})),
        )
        .await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "insufficient_stock"));
    let refused = server
        .call(
            "POST",
            "/v1/stores",
            Some(&server.operator),
            Some(json!({"id": "acme", "name": "again", "currency": "CNY"})),
        )
        .await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "store_exists"));

    // Switching a plugin off.
    let reply = server
        .call(
            "DELETE",
            "/v1/stores/acme/plugins/pricing-promotions/config",
            Some(&server.operator),
            None,
        )
        .await;
    assert_eq!(reply.status.as_u16(), 204);
    let store = server.operator("GET", "/v1/stores/acme", None, 200).await;
    assert_eq!(store["plugins"].as_array().unwrap().len(), 1);
    let unknown = server
        .call("PUT", "/v1/stores/acme/plugins/nope/config", Some(&server.operator), Some(json!({})))
        .await;
    assert_eq!((unknown.status.as_u16(), unknown.code()), (404, "plugin_not_found"));

    let ready = server.call("GET", "/v1/ready", None, None).await;
    assert_eq!((ready.status.as_u16(), ready.json["ready"].as_bool()), (200, Some(true)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_cleanly_and_a_restart_keeps_orders_and_tokens() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut server = Server::start_in(&dir, &[], &[]);
    assert!(server.printed("operator token: generated"));
    server.seed_store("acme", PHONE, 10).await;
    let (merchant, _) = server.issue_token("merchant", &["acme"], &[]).await;
    let order = server
        .send(
            "POST",
            "/v1/stores/acme/orders",
            Some(&merchant),
            &[("Idempotency-Key", "before-restart")],
            Some(order_body("dave", PHONE, 3).to_string()),
        )
        .await;
    assert_eq!(order.status.as_u16(), 201);
    let status = server.stop_gracefully();
    assert!(status.success(), "exit status {status}");
    assert!(server.printed("stopped: journal flushed"));
    let operator = server.operator.clone();
    drop(server);

    let server = Server::start_in(&dir, &[], &[]);
    assert!(server.printed("operator token: in"), "no second token is generated");
    assert_eq!(server.operator, operator);
    let again = server.call("GET", "/v1/stores/acme/orders/1", Some(&merchant), None).await;
    assert_eq!(again.status.as_u16(), 200, "the merchant token survives the restart");
    assert_eq!(again.json, order.json);
    let stock = server.stock_totals("acme", PHONE).await;
    assert_eq!(stock["reserved"], 3);
    let replay = server
        .send(
            "POST",
            "/v1/stores/acme/orders",
            Some(&merchant),
            &[("Idempotency-Key", "before-restart")],
            Some(order_body("dave", PHONE, 3).to_string()),
        )
        .await;
    assert_eq!(replay.status.as_u16(), 200, "the key is remembered across restarts");
    assert_eq!(replay.json["number"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_retries_of_one_key_create_exactly_one_order() {
    let server = Server::start(&[]);
    server.seed_store("acme", PHONE, 100).await;
    server.configure_plugins("acme").await;
    let (checkout, _) = server.issue_token("checkout", &["acme"], &[]).await;
    let body = order_body("erin", PHONE, 2).to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (api, checkout, body) = (server.api(), checkout.clone(), body.clone());
        tasks.spawn(async move {
            api.send(
                "POST",
                "/v1/stores/acme/orders",
                Some(&checkout),
                &[("Idempotency-Key", "retry-me")],
                Some(body),
            )
            .await
        });
    }
    let replies = tasks.join_all().await;
    let created = replies.iter().filter(|r| r.status.as_u16() == 201).count();
    let replayed = replies.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!(
        (created, replayed),
        (1, 99),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for reply in &replies {
        assert_eq!(reply.json["number"], 1);
        assert_eq!(reply.json["totals"], replies[0].json["totals"]);
    }
    assert!(
        replies
            .iter()
            .filter(|r| r.status.as_u16() == 200)
            .all(|r| r.headers["idempotent-replayed"] == "true")
    );
    assert_eq!(server.all_orders("acme").await.len(), 1);
    assert_eq!(server.stock_totals("acme", PHONE).await["reserved"], 2);

    let other_body = order_body("erin", PHONE, 1).to_string();
    let conflict = server
        .send(
            "POST",
            "/v1/stores/acme/orders",
            Some(&checkout),
            &[("Idempotency-Key", "retry-me")],
            Some(other_body),
        )
        .await;
    assert_eq!((conflict.status.as_u16(), conflict.code()), (409, "idempotency_conflict"));
    assert!(conflict.message().contains("retry-me"), "{}", conflict.message());
    assert_eq!(server.all_orders("acme").await.len(), 1);
}

/// Sends `head` then `body_len` bytes of body over a raw socket (the
/// writes may fail once the server has answered and closed) and returns
/// what the server answered.
fn raw_exchange(base: &str, head: &str, body_len: usize, chunked: bool) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'7'; 64 * 1024];
        let mut sent = 0;
        while sent < body_len {
            let result = if chunked {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .and_then(|()| writer.write_all(&chunk))
                    .and_then(|()| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(&chunk)
            };
            if result.is_err() {
                return sent;
            }
            sent += chunk.len();
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
        sent
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                answer.extend_from_slice(&buffer[..read]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_requests_are_refused_clearly_and_change_nothing() {
    let server = Server::start(&[]);
    server.seed_store("acme", PHONE, 10).await;
    let (checkout, _) = server.issue_token("checkout", &["acme"], &[]).await;
    server
        .operator("POST", "/v1/stores/acme/orders", Some(order_body("frank", PHONE, 1)), 201)
        .await;
    let snapshot = || async {
        (
            server.operator("GET", "/v1/stores/acme", None, 200).await,
            server.operator("GET", "/v1/stores/acme/stock", None, 200).await,
            server.operator("GET", "/v1/stores/acme/products", None, 200).await,
            server.all_orders("acme").await,
        )
    };
    let before = snapshot().await;
    let orders = "/v1/stores/acme/orders";
    let operator = Some(server.operator.as_str());
    let with_line = |line: Value| {
        let mut body = order_body("frank", PHONE, 1);
        body["lines"][0] = line;
        body.to_string()
    };

    // Truncated JSON: 400 with the position.
    let reply = server
        .send(
            "POST",
            orders,
            operator,
            &[],
            Some("{\"customer\": {\"id\": \"x\"},\n \"lines\": [".into()),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.code()), (400, "malformed_json"), "{}", reply.text);
    assert_eq!(reply.json["error"]["line"], 2);
    assert!(reply.json["error"]["column"].as_u64().unwrap() > 0);
    // Empty body.
    let reply = server.send("POST", orders, operator, &[], Some(String::new())).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (400, "malformed_json"));
    // Wrong types: 422 naming the field.
    let reply = server
        .send(
            "POST",
            orders,
            operator,
            &[],
            Some(with_line(json!({"sku": PHONE, "quantity": "two"}))),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.code()), (422, "invalid_body"), "{}", reply.text);
    assert_eq!(reply.json["error"]["field"], "lines[0].quantity");
    let reply =
        server.send("POST", orders, operator, &[], Some(r#"{"customer": "frank"}"#.into())).await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["error"]["field"].as_str()),
        (422, Some("customer"))
    );
    // Huge numbers.
    for quantity in ["1e30", "99999999999999999999999999", "4294967296"] {
        let body = with_line(json!({"sku": PHONE, "quantity": 1}))
            .replace("\"quantity\":1", &format!("\"quantity\":{quantity}"));
        let reply = server.send("POST", orders, operator, &[], Some(body)).await;
        assert_eq!(reply.status.as_u16(), 422, "quantity {quantity}: {}", reply.text);
        assert_eq!(reply.json["error"]["field"], "lines[0].quantity");
    }
    let reply =
        server.call("PUT", &format!("/v1/stores/acme/products/{PHONE}"), operator, None).await;
    assert_eq!(reply.status.as_u16(), 400, "a missing body is malformed");
    let huge_price =
        r#"{"title": "x", "price": {"amount_minor": 99999999999999999999, "currency": "CNY"}}"#;
    let reply = server
        .send(
            "PUT",
            &format!("/v1/stores/acme/products/{PHONE}"),
            operator,
            &[],
            Some(huge_price.into()),
        )
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["error"]["field"].as_str()),
        (422, Some("price.amount_minor"))
    );
    let too_big_price =
        r#"{"title": "x", "price": {"amount_minor": 9000000000000000000, "currency": "CNY"}}"#;
    let reply = server
        .send(
            "PUT",
            &format!("/v1/stores/acme/products/{PHONE}"),
            operator,
            &[],
            Some(too_big_price.into()),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.text);
    // Unknown fields.
    let mut body = order_body("frank", PHONE, 1);
    body["discount_minor"] = json!(100_000);
    let reply = server.call("POST", orders, operator, Some(body)).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (422, "invalid_body"));
    assert!(reply.message().contains("discount_minor"), "{}", reply.message());
    // Zero and negative quantities.
    let reply = server.call("POST", orders, operator, Some(order_body("frank", PHONE, 0))).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (422, "invalid_quantity"), "{}", reply.text);
    let reply = server
        .send("POST", orders, operator, &[], Some(with_line(json!({"sku": PHONE, "quantity": -1}))))
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["error"]["field"].as_str()),
        (422, Some("lines[0].quantity"))
    );
    let reply = server
        .call(
            "POST",
            "/v1/stores/acme/stock/receipts",
            operator,
            Some(json!({"sku": PHONE, "warehouse": "HGH", "quantity": 0})),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.code()), (422, "invalid_quantity"));
    let reply = server
        .call(
            "PUT",
            "/v1/stores/acme/products/NEG",
            operator,
            Some(json!({"title": "x", "price": {"amount_minor": -1, "currency": "CNY"}})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 422, "{}", reply.text);
    // Unknown SKU, warehouse, store, order.
    let reply =
        server.call("POST", orders, operator, Some(order_body("frank", "NO-SUCH-SKU", 1))).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (404, "sku_not_found"));
    assert!(reply.message().contains("NO-SUCH-SKU"));
    let reply = server
        .call(
            "POST",
            "/v1/stores/acme/stock/receipts",
            operator,
            Some(json!({"sku": PHONE, "warehouse": "NOPE", "quantity": 1})),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.code()), (404, "warehouse_not_found"));
    let reply = server.call("GET", "/v1/stores/nope/orders/1", operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (404, "store_not_found"));
    let reply = server.call("GET", "/v1/stores/acme/orders/999", operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (404, "order_not_found"));
    let reply = server.call("GET", "/v1/stores/acme/orders/abc", operator, None).await;
    assert_eq!(reply.status.as_u16(), 404);
    let reply = server.call("GET", "/v1/no/such/route", operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (404, "no_route"));
    let reply = server.call("PATCH", "/v1/stores/acme", operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (405, "method_not_allowed"));
    assert!(reply.headers.contains_key("allow"));
    // Currency mismatch, in an order and in a price.
    let mut body = order_body("frank", PHONE, 1);
    body["currency"] = json!("USD");
    let reply = server.call("POST", orders, operator, Some(body)).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (422, "currency_mismatch"), "{}", reply.text);
    assert!(reply.message().contains("CNY"));
    let reply = server
        .call(
            "PUT",
            &format!("/v1/stores/acme/products/{PHONE}"),
            operator,
            Some(json!({"title": "x", "price": {"amount_minor": 100, "currency": "USD"}})),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.code()), (422, "currency_mismatch"));
    let reply = server
        .call(
            "PUT",
            &format!("/v1/stores/acme/products/{PHONE}"),
            operator,
            Some(json!({"title": "x", "price": {"amount_minor": 100, "currency": "cny"}})),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 422);
    // Identifiers, idempotency keys, purchase quantities the stock cannot cover.
    let reply = server
        .call("POST", orders, operator, Some(order_body("no spaces allowed", PHONE, 1)))
        .await;
    assert_eq!(
        (reply.status.as_u16(), reply.json["error"]["field"].as_str()),
        (422, Some("customer.id"))
    );
    let reply =
        server.call("POST", orders, Some(&checkout), Some(order_body("frank", PHONE, 1))).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (400, "idempotency_key_required"));
    let long_key = "k".repeat(129);
    let reply = server
        .send(
            "POST",
            orders,
            Some(&checkout),
            &[("Idempotency-Key", &long_key)],
            Some(order_body("frank", PHONE, 1).to_string()),
        )
        .await;
    assert_eq!((reply.status.as_u16(), reply.code()), (400, "invalid_idempotency_key"));
    let reply = server.call("POST", orders, operator, Some(order_body("frank", PHONE, 1000))).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (409, "insufficient_stock"));
    let reply = server.call("GET", "/v1/stores/acme/orders?limit=101", operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (400, "invalid_query"));
    let reply = server.call("GET", "/v1/stores/acme/orders?after=minus", operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (400, "invalid_query"));
    let reply = server
        .call(
            "PUT",
            "/v1/stores/acme/plugins/logistics-router/config",
            operator,
            Some(json!([1, 2])),
        )
        .await;
    assert_eq!(reply.status.as_u16(), 422);

    // 10 MB bodies, declared and chunked, are refused without being read.
    let token = &server.operator;
    let ten_mb = 10 * 1024 * 1024;
    let head = format!(
        "POST /v1/stores/acme/orders HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {ten_mb}\r\n\r\n"
    );
    let answer = raw_exchange(&server.base, &head, ten_mb, false);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large") && answer.contains("65536"), "{answer}");
    let head = format!(
        "POST /v1/stores/acme/orders HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let answer = raw_exchange(&server.base, &head, ten_mb, true);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    assert_eq!(snapshot().await, before, "refused requests changed the store");
    let ready = server.call("GET", "/v1/health", None, None).await;
    assert_eq!(ready.status.as_u16(), 200, "the server is still up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_with_its_schemas() {
    let server = Server::start(&[]);
    let reply = server.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(reply.status.as_u16(), 200);
    let document = reply.json;
    assert!(document["openapi"].as_str().unwrap().starts_with("3."), "{}", document["openapi"]);
    assert_eq!(document["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let mut listed = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            listed.insert((method.to_uppercase(), path.clone()));
            assert!(
                operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            for name in path.split('{').skip(1).map(|rest| rest.split('}').next().unwrap()) {
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{method} {path} does not declare path parameter {name}");
            }
        }
    }
    let served: BTreeSet<(String, String)> =
        ROUTES.iter().map(|(method, path)| (method.to_string(), path.to_string())).collect();
    assert_eq!(listed, served);
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for schema in ["Order", "OrderInput", "Money", "ErrorBody", "CartPrice", "SkuStock"] {
        assert!(schemas.contains_key(schema), "schema {schema} is missing");
    }
    assert_eq!(schemas["OrderInput"]["additionalProperties"], false);

    let page = server.send("GET", "/docs", None, &[], None).await;
    assert_eq!(page.status.as_u16(), 200);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(page.text.contains("/v1/openapi.json"));
    assert!(
        !page.text.contains("<script src") && !page.text.contains("<link"),
        "the page loads nothing external"
    );
}
