//! The HTTP API end to end against a real `bazaar serve` process over TCP:
//! the merchant walk-through (and the README's, run with curl as written),
//! graceful shutdown and restart, idempotent
//! retries, malformed and hostile requests, the device bus's routes (maps,
//! devices, tasks, emergency stops, with and without a bus), and the
//! OpenAPI document.

mod common;

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use common::{DRIVER_PLUGIN, ROUTES, Reply, Server, order_body};
use serde_json::{Value, json};

/// The flash-sale SKU the seeded promotions know.
const PHONE: &str = "D11-PHONE";

/// The README's walk-through, run as written by bash and curl against a
/// real server in a fresh working directory. Only the port differs: a test
/// must not take the fixed default.
#[test]
fn the_readme_walk_through_runs_as_written() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("the README");
    let section = readme.split("\n## Walk-through\n").nth(1).expect("a walk-through section");
    let script = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a sh block in the walk-through");
    let work_dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(&work_dir.path().join("bazaar-data"), &["--mqtt-disabled"], &[]);
    assert!(script.contains("http://127.0.0.1:1111"), "the walk-through names the default port");
    let script = script.replace("http://127.0.0.1:1111", &server.base);
    let run = std::process::Command::new("bash")
        .args(["-e", "-c", &script])
        .current_dir(work_dir.path())
        .output()
        .expect("bash runs");
    let output = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{output}\n{}", String::from_utf8_lossy(&run.stderr));
    let answers: Vec<Value> = output
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    for answer in &answers {
        assert!(answer.get("error").is_none(), "a step was refused: {answer}");
    }
    let order = answers.iter().find(|answer| answer.get("number").is_some()).expect("the order");
    assert_eq!((order["number"].as_u64(), order["status"].as_str()), (Some(1), Some("reserved")));
    let reason = order["adjustments"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("20.00 CNY off"), "the promotion applied: {order}");
    let stock: Vec<(u64, u64)> = answers
        .iter()
        .filter(|answer| answer["sku"] == "LONGJING-250G" && answer.get("totals").is_some())
        .map(|answer| {
            let totals = &answer["totals"];
            (totals["available"].as_u64().unwrap(), totals["reserved"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(stock.last(), Some(&(10, 0)), "cancelled: every unit available again: {stock:?}");
    assert!(stock.contains(&(7, 3)), "the order reserved 3 of 10: {stock:?}");
}

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
            &[("Idempotency-Key", "walk-1"), ("Content-Type", "application/json; charset=utf-8")],
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
    // A body sent with no Content-Type is read as JSON: the retry is the
    // same order again.
    let retry = server
        .api()
        .client
        .post(format!("{}/v1/stores/acme/orders", server.base))
        .bearer_auth(&server.operator)
        .header("Idempotency-Key", "walk-1")
        .body(cart.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status().as_u16(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
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
    // Tokens are kept as digests: the merchant's secret is in no file.
    let mut directories = vec![dir.clone()];
    while let Some(directory) = directories.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                directories.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let found =
                    bytes.windows(merchant.len()).any(|window| window == merchant.as_bytes());
                assert!(!found, "{} holds the merchant's secret", path.display());
            }
        }
    }

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
async fn a_node_given_no_data_directory_keeps_its_data_in_bazaar_data_where_it_runs() {
    let working_dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_default_data_dir(working_dir.path());
    assert!(server.printed("data: bazaar-data ("), "{:?}", server.output);
    assert!(working_dir.path().join("bazaar-data").join("operator-token").is_file());
    // The first-party plugins are there, and take part in orders.
    let listing = server.operator("GET", "/v1/plugins", None, 200).await;
    let listed: BTreeSet<&str> = listing["plugins"]
        .as_array()
        .expect("a plugin list")
        .iter()
        .filter_map(|plugin| plugin["id"].as_str())
        .collect();
    for first_party in ["pricing-promotions", "logistics-router", "risk-guard", "analytics-live"] {
        assert!(listed.contains(first_party), "{first_party} missing from {listed:?}");
    }
    server.seed_store("acme", PHONE, 10).await;
    server.configure_plugins("acme").await;
    let order = server
        .operator("POST", "/v1/stores/acme/orders", Some(order_body("erin", PHONE, 1)), 201)
        .await;
    assert_eq!(order["shipment_plan"]["routed_by"]["plugin"]["id"], "logistics-router", "{order}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_stream_of_orders_answers_the_orders_it_took_and_keeps_exactly_those() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// Clients each sending one order after another until the node stops.
    const CLIENTS: usize = 32;
    /// Orders acknowledged before the signal.
    const ACKNOWLEDGED_BEFORE_SIGNAL: usize = 300;
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut server = Server::start_in(&dir, &[], &[]);
    server.seed_store("acme", PHONE, 1_000_000).await;
    server.configure_plugins("acme").await;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..CLIENTS {
        let (api, operator, acknowledged) =
            (server.api(), server.operator.clone(), acknowledged.clone());
        clients.spawn(async move {
            // (key, when its 201 arrived) of each acknowledged order; the
            // first answer that is not a 201 ends the client.
            let mut placed = Vec::new();
            for order in 0.. {
                let key = format!("stream-{client}-{order}");
                let body = order_body(&format!("buyer-{client}"), PHONE, 1).to_string();
                let headers = [("Idempotency-Key", key.as_str())];
                let sent = api
                    .try_send(
                        "POST",
                        "/v1/stores/acme/orders",
                        Some(&operator),
                        &headers,
                        Some(body),
                    )
                    .await;
                match sent {
                    Ok(reply) if reply.status.as_u16() == 201 => {
                        placed.push((key, Instant::now()));
                        acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => {
                        assert_eq!(reply.status.as_u16(), 503, "{}", reply.text);
                        break;
                    }
                    // No server any more, or a connection it closed before
                    // reading the request.
                    Err(_) => break,
                }
            }
            placed
        });
    }
    while acknowledged.load(Ordering::Relaxed) < ACKNOWLEDGED_BEFORE_SIGNAL {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.ask_to_stop();
    let signalled = Instant::now();
    let placed: Vec<(String, Instant)> = clients.join_all().await.into_iter().flatten().collect();
    let status = tokio::task::block_in_place(|| server.wait_for_exit());
    assert!(status.success(), "exit status {status}");
    assert!(server.printed("stopped: journal flushed"));
    // Orders under way when the signal came were finished and answered,
    // not dropped.
    let answered_after_signal = placed.iter().filter(|(_, at)| *at > signalled).count();
    assert!(answered_after_signal > 0, "no order in flight at the signal was answered");
    drop(server);

    // The restarted node holds exactly the acknowledged orders: none lost,
    // and none placed whose answer was cut off by the stop.
    let server = Server::start_in(&dir, &[], &[]);
    let kept: BTreeSet<String> = server
        .all_orders("acme")
        .await
        .iter()
        .map(|order| order["idempotency_key"].as_str().expect("a key").to_string())
        .collect();
    let acknowledged: BTreeSet<String> = placed.into_iter().map(|(key, _)| key).collect();
    assert!(acknowledged.len() >= ACKNOWLEDGED_BEFORE_SIGNAL);
    assert_eq!(kept, acknowledged);
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
    // A body declared as something else than JSON: 415, whatever it holds.
    let valid = order_body("frank", PHONE, 1).to_string();
    for declared in ["application/x-www-form-urlencoded", "text/plain"] {
        let headers = [("content-type", declared)];
        let reply = server.send("POST", orders, operator, &headers, Some(valid.clone())).await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (415, "unsupported_media_type"),
            "{}",
            reply.text
        );
        assert!(reply.message().contains(declared), "{}", reply.message());
    }
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
    // A client's own text is quoted back in part, not whole.
    let long_id = "s".repeat(20_000);
    let reply = server.call("GET", &format!("/v1/stores/{long_id}/orders"), operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (404, "store_not_found"));
    assert!(reply.message().contains("(20000 bytes)"), "{}", reply.message());
    assert!(reply.text.len() < 1_000, "{} bytes", reply.text.len());
    let reply = server.call("GET", &format!("/v1/no/{long_id}"), operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (404, "no_route"));
    assert!(reply.text.len() < 1_000, "{} bytes", reply.text.len());
    let reply = server.call("PATCH", &format!("/v1/stores/{long_id}"), operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (405, "method_not_allowed"));
    assert!(reply.text.len() < 1_000, "{} bytes", reply.text.len());
    let reply = server.call("GET", "/v1/stores/acme/orders/999", operator, None).await;
    assert_eq!((reply.status.as_u16(), reply.code()), (404, "order_not_found"));
    let reply = server.call("GET", "/v1/stores/acme/orders/abc", operator, None).await;
    assert_eq!(reply.status.as_u16(), 404);
    // A path parameter that is not UTF-8 names nothing that could exist,
    // whichever extractor reads it: a store's, an order's or a plugin's.
    for path in [
        "/v1/stores/%FF/stock",
        "/v1/stores/%FF/orders/1",
        "/v1/stores/acme/orders/%FF",
        "/v1/plugins/%FF/stats",
        "/v1/plugins/%FF/shadow",
    ] {
        let reply = server.call("GET", path, operator, None).await;
        assert_eq!(reply.status.as_u16(), 404, "{path}: {}", reply.text);
        assert!(reply.message().contains("UTF-8"), "{path}: {}", reply.text);
    }
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
    for schema in [
        "Order",
        "OrderInput",
        "Money",
        "ErrorBody",
        "CartPrice",
        "SkuStock",
        "Layout",
        "DeviceInput",
        "DeviceView",
        "TaskList",
        "ZoneChange",
        "Fleet",
    ] {
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

/// A small floor map `map_id` where `PHONE` is picked at node `A1`.
fn layout(map_id: &str) -> Value {
    json!({
        "map_id": map_id,
        "nodes": [
            {"id": "dock", "x_mm": 0, "y_mm": 0},
            {"id": "A1", "x_mm": 12_000, "y_mm": 3_500},
            {"id": "pack", "x_mm": 2_000, "y_mm": -15_000}
        ],
        "pick_locations": {PHONE: "A1"},
        "pack_station": "pack"
    })
}

/// A registration of an AGV in `warehouse`'s `zone` with serial `serial`.
fn agv(warehouse: &str, zone: &str, driver: &str, serial: &str) -> Value {
    json!({
        "kind": "agv", "warehouse": warehouse, "zone": zone, "driver": driver,
        "manufacturer": "acme-robotics", "serial_number": serial, "model": "T1"
    })
}

/// Sends `method path` with `token` and an optional body.
async fn as_caller(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Reply {
    server.call(method, path, Some(token), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_maps_a_warehouse_registers_devices_and_stops_a_zone() {
    let server = Server::start(&[]);
    let broker = server.mqtt.clone().expect("the server embeds an MQTT broker");
    assert!(broker.starts_with("mqtt://127.0.0.1:") && !broker.ends_with(":0"), "{broker}");
    server.seed_store("acme", PHONE, 10).await;
    let (merchant, _) = server.issue_token("merchant", &["acme"], &[]).await;
    let merchant = merchant.as_str();

    // A map, refused while it makes no sense, then stored and read back.
    let missing =
        as_caller(&server, merchant, "GET", "/v1/stores/acme/warehouses/HGH/layout", None).await;
    assert_eq!((missing.status.as_u16(), missing.code()), (404, "layout_not_found"));
    let mut nonsense = layout("hgh-1");
    nonsense["pack_station"] = json!("nowhere");
    let refused = as_caller(
        &server,
        merchant,
        "PUT",
        "/v1/stores/acme/warehouses/HGH/layout",
        Some(nonsense),
    )
    .await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (422, "invalid_layout"),
        "{}",
        refused.text
    );
    assert!(refused.message().contains("pack station nowhere is not a node"), "{}", refused.text);
    let mut bad_id = layout("hgh-1");
    bad_id["nodes"][1]["id"] = json!("A 1");
    let refused =
        as_caller(&server, merchant, "PUT", "/v1/stores/acme/warehouses/HGH/layout", Some(bad_id))
            .await;
    assert_eq!(refused.status.as_u16(), 422, "{}", refused.text);
    assert_eq!(refused.json["error"]["field"], "nodes[1].id");
    let missing =
        as_caller(&server, merchant, "GET", "/v1/stores/acme/warehouses/HGH/layout", None).await;
    assert_eq!(missing.status.as_u16(), 404, "refused maps change nothing");
    for (warehouse, map) in [("HGH", "hgh-1"), ("PEK", "pek-1")] {
        let path = format!("/v1/stores/acme/warehouses/{warehouse}/layout");
        let stored = as_caller(&server, merchant, "PUT", &path, Some(layout(map))).await;
        assert_eq!(stored.status.as_u16(), 200, "{}", stored.text);
        assert_eq!(stored.json["layout"], layout(map));
        let read = as_caller(&server, merchant, "GET", &path, None).await;
        assert_eq!(read.json, stored.json);
    }
    let unknown = as_caller(
        &server,
        merchant,
        "PUT",
        "/v1/stores/acme/warehouses/NOPE/layout",
        Some(layout("x")),
    )
    .await;
    assert_eq!((unknown.status.as_u16(), unknown.code()), (404, "warehouse_not_found"));
    // Maps beyond the API's usual 64 KiB are taken on this route.
    let mut large = layout("hgh-large");
    let nodes = large["nodes"].as_array_mut().unwrap();
    for index in 0..3_000 {
        nodes.push(json!({"id": format!("aisle-{index}"), "x_mm": index * 1_000, "y_mm": 7_500}));
    }
    assert!(large.to_string().len() > 64 * 1024);
    let stored =
        server.operator("PUT", "/v1/stores/acme/warehouses/PEK/layout", Some(large), 200).await;
    assert_eq!(stored["layout"]["nodes"].as_array().unwrap().len(), 3_003);

    // Devices need an enabled device-driver plugin and a warehouse.
    let path = "/v1/stores/acme/devices/agv-1";
    let not_enabled =
        as_caller(&server, merchant, "PUT", path, Some(agv("HGH", "north", DRIVER_PLUGIN, "S1")))
            .await;
    assert_eq!((not_enabled.status.as_u16(), not_enabled.code()), (422, "invalid_device"));
    assert!(not_enabled.message().contains("has not enabled"), "{}", not_enabled.text);
    let not_a_driver = as_caller(
        &server,
        merchant,
        "PUT",
        path,
        Some(agv("HGH", "north", "pricing-promotions", "S1")),
    )
    .await;
    assert_eq!(not_a_driver.status.as_u16(), 422, "{}", not_a_driver.text);
    assert!(not_a_driver.message().contains("not a device driver"), "{}", not_a_driver.text);
    assert_eq!(not_a_driver.json["error"]["field"], "driver");
    let enabled = as_caller(
        &server,
        merchant,
        "PUT",
        &format!("/v1/stores/acme/plugins/{DRIVER_PLUGIN}"),
        Some(json!({"config": {}, "consent": ["log", "config"]})),
    )
    .await;
    assert_eq!(enabled.status.as_u16(), 200, "{}", enabled.text);
    let nowhere =
        as_caller(&server, merchant, "PUT", path, Some(agv("NOPE", "north", DRIVER_PLUGIN, "S1")))
            .await;
    assert_eq!((nowhere.status.as_u16(), nowhere.code()), (404, "warehouse_not_found"));
    assert_eq!(nowhere.json["error"]["field"], "warehouse");
    assert!(nowhere.message().contains("NOPE"), "{}", nowhere.text);
    let listed = as_caller(&server, merchant, "GET", "/v1/stores/acme/devices", None).await;
    assert_eq!(listed.json["devices"], json!([]), "refused registrations change nothing");

    let created =
        as_caller(&server, merchant, "PUT", path, Some(agv("HGH", "north", DRIVER_PLUGIN, "S1")))
            .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.text);
    assert_eq!(created.headers["location"], path);
    let device = &created.json;
    assert_eq!(
        (device["id"].as_str(), device["kind"].as_str(), device["online"].as_bool()),
        (Some("agv-1"), Some("agv"), Some(false))
    );
    assert_eq!((device["quarantine"].clone(), device["task"].clone()), (Value::Null, Value::Null));
    assert_eq!(device["zone_stopped"], false);
    let mut changed = agv("HGH", "north", DRIVER_PLUGIN, "S1");
    changed["model"] = json!("T2");
    let replaced = as_caller(&server, merchant, "PUT", path, Some(changed)).await;
    assert_eq!((replaced.status.as_u16(), replaced.json["model"].as_str()), (200, Some("T2")));
    let twin = as_caller(
        &server,
        merchant,
        "PUT",
        "/v1/stores/acme/devices/agv-2",
        Some(agv("HGH", "north", DRIVER_PLUGIN, "S1")),
    )
    .await;
    assert_eq!((twin.status.as_u16(), twin.code()), (422, "invalid_device"));
    assert!(twin.message().contains("serial number S1"), "{}", twin.text);
    let second = as_caller(
        &server,
        merchant,
        "PUT",
        "/v1/stores/acme/devices/agv-2",
        Some(agv("HGH", "north", DRIVER_PLUGIN, "S2")),
    )
    .await;
    assert_eq!(second.status.as_u16(), 201, "{}", second.text);

    let listed = as_caller(&server, merchant, "GET", "/v1/stores/acme/devices", None).await;
    let ids: Vec<&str> = listed.json["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["agv-1", "agv-2"]);
    assert_eq!(listed.json["bus"]["enabled"], true);
    assert_eq!(listed.json["stopped_zones"], json!([]));
    let first = as_caller(&server, merchant, "GET", "/v1/stores/acme/devices?limit=1", None).await;
    assert_eq!(first.json["next_after"], "agv-1");
    let rest =
        as_caller(&server, merchant, "GET", "/v1/stores/acme/devices?after=agv-1", None).await;
    assert_eq!(
        (rest.json["devices"][0]["id"].as_str(), rest.json["next_after"].clone()),
        (Some("agv-2"), Value::Null)
    );
    let too_many =
        as_caller(&server, merchant, "GET", "/v1/stores/acme/devices?limit=201", None).await;
    assert_eq!((too_many.status.as_u16(), too_many.code()), (400, "invalid_query"));
    let one = as_caller(&server, merchant, "GET", path, None).await;
    assert_eq!((one.status.as_u16(), one.json["model"].as_str()), (200, Some("T2")));
    let ghost = as_caller(&server, merchant, "GET", "/v1/stores/acme/devices/ghost", None).await;
    assert_eq!((ghost.status.as_u16(), ghost.code()), (404, "device_not_found"));

    // A paid order of a mapped SKU becomes a robot task; the robots are
    // offline, so it waits.
    server.operator("POST", "/v1/stores/acme/orders", Some(order_body("ann", PHONE, 2)), 201).await;
    server.operator("POST", "/v1/stores/acme/orders/1/pay", None, 200).await;
    let tasks = as_caller(&server, merchant, "GET", "/v1/stores/acme/tasks", None).await;
    assert_eq!(tasks.status.as_u16(), 200, "{}", tasks.text);
    let task = &tasks.json["tasks"][0];
    assert_eq!(
        (task["order"].as_u64(), task["sku"].as_str(), task["quantity"].as_u64()),
        (Some(1), Some(PHONE), Some(2))
    );
    assert_eq!((task["status"].as_str(), task["device"].clone()), (Some("pending"), Value::Null));
    assert_eq!(task["pick"]["id"], "A1");
    assert_eq!(task["pack_station"]["id"], "pack");
    assert_eq!(tasks.json["next_after"], Value::Null);
    let bad_cursor =
        as_caller(&server, merchant, "GET", "/v1/stores/acme/tasks?after=first", None).await;
    assert_eq!((bad_cursor.status.as_u16(), bad_cursor.code()), (400, "invalid_query"));

    // Releasing a device that is not quarantined changes nothing.
    let released =
        as_caller(&server, merchant, "POST", "/v1/stores/acme/devices/agv-1/release", None).await;
    assert_eq!((released.status.as_u16(), released.json["quarantine"].clone()), (200, Value::Null));
    let ghost =
        as_caller(&server, merchant, "POST", "/v1/stores/acme/devices/ghost/release", None).await;
    assert_eq!((ghost.status.as_u16(), ghost.code()), (404, "device_not_found"));

    // An emergency stop of a zone with no devices holds it all the same.
    server.wait_for_bus().await;
    let stop = "/v1/stores/acme/warehouses/HGH/zones/south/emergency-stop";
    let stopped = as_caller(&server, merchant, "POST", stop, None).await;
    assert_eq!(stopped.status.as_u16(), 200, "{}", stopped.text);
    assert_eq!(
        stopped.json,
        json!({"warehouse": "HGH", "zone": "south", "stopped": true, "devices_commanded": 0})
    );
    let listed = as_caller(&server, merchant, "GET", "/v1/stores/acme/devices", None).await;
    assert_eq!(listed.json["stopped_zones"], json!([{"warehouse": "HGH", "zone": "south"}]));
    assert_eq!(listed.json["devices"][0]["zone_stopped"], false, "agv-1 works in north");
    let held = as_caller(
        &server,
        merchant,
        "POST",
        "/v1/stores/acme/warehouses/HGH/zones/north/emergency-stop",
        None,
    )
    .await;
    assert_eq!((held.status.as_u16(), held.json["stopped"].as_bool()), (200, Some(true)));
    let one = as_caller(&server, merchant, "GET", path, None).await;
    assert_eq!(one.json["zone_stopped"], true);
    for zone in ["north", "south"] {
        let resumed = as_caller(
            &server,
            merchant,
            "POST",
            &format!("/v1/stores/acme/warehouses/HGH/zones/{zone}/resume"),
            None,
        )
        .await;
        assert_eq!(resumed.status.as_u16(), 200, "{}", resumed.text);
        assert_eq!(
            (resumed.json["zone"].as_str(), resumed.json["stopped"].as_bool()),
            (Some(zone), Some(false))
        );
    }
    let listed = as_caller(&server, merchant, "GET", "/v1/stores/acme/devices", None).await;
    assert_eq!(listed.json["stopped_zones"], json!([]));
    let nowhere = as_caller(
        &server,
        merchant,
        "POST",
        "/v1/stores/acme/warehouses/NOPE/zones/north/emergency-stop",
        None,
    )
    .await;
    assert_eq!((nowhere.status.as_u16(), nowhere.code()), (404, "warehouse_not_found"));
    let bad_zone = as_caller(
        &server,
        merchant,
        "POST",
        "/v1/stores/acme/warehouses/HGH/zones/no%20zone/emergency-stop",
        None,
    )
    .await;
    assert_eq!((bad_zone.status.as_u16(), bad_zone.code()), (404, "zone_not_found"));

    // The operator sees the node's fleet, the bus and its figures.
    let fleet = server.operator("GET", "/v1/devices", None, 200).await;
    assert_eq!(
        (fleet["bus"]["enabled"].as_bool(), fleet["bus"]["connected"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        (fleet["broker"].as_str(), fleet["embedded_broker"].as_bool()),
        (Some(broker.as_str()), Some(true))
    );
    assert!(fleet["counters"]["frames_in"].is_u64(), "{fleet}");
    let listed: Vec<String> = fleet["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}/{}", d["store"].as_str().unwrap(), d["id"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, ["acme/agv-1", "acme/agv-2"]);
    let page = server.operator("GET", "/v1/devices?limit=1&after=acme/agv-1", None, 200).await;
    assert_eq!(
        (page["devices"][0]["id"].as_str(), page["next_after"].clone()),
        (Some("agv-2"), Value::Null)
    );
    let metrics = server.send("GET", "/metrics", Some(&server.operator), &[], None).await;
    for line in ["bazaar_device_bus_enabled 1", "bazaar_device_bus_connected 1"] {
        assert!(metrics.text.lines().any(|l| l == line), "{line} is missing:\n{}", metrics.text);
    }
    for family in [
        "bazaar_device_frames_in_total",
        "bazaar_device_tasks_assigned_total",
        "bazaar_devices_quarantined",
    ] {
        assert!(metrics.text.contains(&format!("# TYPE {family} ")), "{family} is missing");
    }

    // Removing a device.
    let removed =
        as_caller(&server, merchant, "DELETE", "/v1/stores/acme/devices/agv-2", None).await;
    assert_eq!(removed.status.as_u16(), 204, "{}", removed.text);
    let again = as_caller(&server, merchant, "DELETE", "/v1/stores/acme/devices/agv-2", None).await;
    assert_eq!((again.status.as_u16(), again.code()), (404, "device_not_found"));
    let listed = as_caller(&server, merchant, "GET", "/v1/stores/acme/devices", None).await;
    assert_eq!(listed.json["devices"].as_array().unwrap().len(), 1);

    // Twenty registrations of one new device racing each other: one is
    // told it created the device, the others that they replaced it.
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (api, merchant) = (server.api(), merchant.to_owned());
        let body = agv("HGH", "north", DRIVER_PLUGIN, "S3").to_string();
        racing.spawn(async move {
            api.send("PUT", "/v1/stores/acme/devices/agv-3", Some(&merchant), &[], Some(body)).await
        });
    }
    let mut statuses: Vec<u16> =
        racing.join_all().await.iter().map(|reply| reply.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [[200; 19].as_slice(), &[201]].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_device_bus_registers_devices_but_refuses_emergency_stops() {
    let server = Server::start(&["--mqtt-disabled"]);
    assert!(server.printed("device bus: disabled"));
    assert_eq!(server.mqtt, None, "no broker is embedded");
    server.seed_store("acme", PHONE, 10).await;
    server.enable_driver("acme").await;
    server
        .operator(
            "PUT",
            "/v1/stores/acme/devices/agv-1",
            Some(agv("HGH", "north", DRIVER_PLUGIN, "S1")),
            201,
        )
        .await;
    let refused = server
        .call(
            "POST",
            "/v1/stores/acme/warehouses/HGH/zones/north/emergency-stop",
            Some(&server.operator),
            None,
        )
        .await;
    assert_eq!((refused.status.as_u16(), refused.code()), (409, "device_bus_disabled"));
    assert!(refused.message().contains("without a device bus"), "{}", refused.text);
    let listed = server.operator("GET", "/v1/stores/acme/devices", None, 200).await;
    assert_eq!(listed["stopped_zones"], json!([]), "a refused stop holds nothing");
    assert_eq!(listed["bus"], json!({"enabled": false, "connected": false}));
    assert_eq!(listed["devices"][0]["telemetry"], Value::Null);
    let fleet = server.operator("GET", "/v1/devices", None, 200).await;
    assert_eq!((fleet["broker"].clone(), fleet["counters"].clone()), (Value::Null, Value::Null));
    let metrics = server.send("GET", "/metrics", Some(&server.operator), &[], None).await;
    assert!(metrics.text.lines().any(|l| l == "bazaar_device_bus_enabled 0"), "{}", metrics.text);
}
