//! Load over HTTP against a real `bazaar serve` process: a flash sale sells
//! exactly its stock, an overload is refused fast with `Retry-After` and
//! loses no acknowledged order, and rate limits answer 429. The tests count
//! outcomes and check headers; they never assert on time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Server, order_body};
use tokio::sync::Semaphore;

/// The flash-sale SKU.
const SKU: &str = "D11-PHONE";
/// Most times one attempt is retried after a 503 or 429 before the test
/// gives up on it.
const RETRIES_MAX: usize = 50;

/// What one checkout attempt ended as.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// Placed: the order number.
    Placed(u64),
    /// Refused for want of stock.
    SoldOut,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_checkouts_sell_exactly_the_thousand_units_in_stock() {
    const ATTEMPTS: usize = 10_000;
    const UNITS: u64 = 1_000;
    const CLIENTS_IN_FLIGHT: usize = 256;
    let server = Server::start(&[]);
    server.seed_store("flash", SKU, UNITS).await;
    server.configure_plugins("flash").await;
    let (checkout, _) = server.issue_token("checkout", &["flash"], &[]).await;
    let in_flight = Arc::new(Semaphore::new(CLIENTS_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for attempt in 0..ATTEMPTS {
        let (api, checkout, in_flight) = (server.api(), checkout.clone(), in_flight.clone());
        tasks.spawn(async move {
            let _permit = in_flight.acquire_owned().await.expect("the semaphore stays open");
            let key = format!("flash-{attempt}");
            let body = order_body(&format!("buyer-{attempt}"), SKU, 1).to_string();
            for _ in 0..RETRIES_MAX {
                let reply = api
                    .send(
                        "POST",
                        "/v1/stores/flash/orders",
                        Some(&checkout),
                        &[("Idempotency-Key", &key)],
                        Some(body.clone()),
                    )
                    .await;
                match reply.status.as_u16() {
                    201 | 200 => {
                        return Attempt::Placed(reply.json["number"].as_u64().expect("a number"));
                    }
                    409 => {
                        assert_eq!(reply.code(), "insufficient_stock", "{}", reply.text);
                        return Attempt::SoldOut;
                    }
                    429 | 503 => {
                        let wait = reply.retry_after_s().expect("refusals say when to retry");
                        tokio::time::sleep(Duration::from_secs(wait)).await;
                    }
                    other => panic!("unexpected {other}: {}", reply.text),
                }
            }
            panic!("attempt {attempt} was refused {RETRIES_MAX} times");
        });
    }
    let attempts = tasks.join_all().await;
    let mut placed: Vec<u64> = attempts
        .iter()
        .filter_map(|attempt| match attempt {
            Attempt::Placed(number) => Some(*number),
            Attempt::SoldOut => None,
        })
        .collect();
    assert_eq!(placed.len() as u64, UNITS, "exactly the stock was sold");
    assert_eq!(attempts.len() - placed.len(), ATTEMPTS - UNITS as usize);
    placed.sort_unstable();
    placed.dedup();
    assert_eq!(placed.len() as u64, UNITS, "every sale is its own order");

    let totals = server.stock_totals("flash", SKU).await;
    assert_eq!(totals["available"], 0);
    assert_eq!(totals["reserved"].as_u64().unwrap() + totals["sold"].as_u64().unwrap(), UNITS);
    assert_eq!(totals["on_hand"], UNITS);
    let stock = server.operator("GET", &format!("/v1/stores/flash/stock/{SKU}"), None, 200).await;
    for level in stock["warehouses"].as_array().unwrap() {
        assert_eq!(level["available"], 0, "{level}");
        assert_eq!(level["on_hand"], level["reserved"], "{level}");
    }
    let store = server.operator("GET", "/v1/stores/flash", None, 200).await;
    assert_eq!(store["orders"], UNITS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overload_is_refused_at_once_with_retry_after_and_loses_no_acknowledged_order() {
    const REQUESTS: usize = 3_000;
    const CLIENTS_IN_FLIGHT: usize = 200;
    // A node with room for a handful of requests: the load is many times
    // what it admits.
    let server = Server::start(&["--in-flight-max", "8", "--shard-queue-depth", "4"]);
    server.seed_store("busy", SKU, 1_000_000).await;
    server.configure_plugins("busy").await;
    let in_flight = Arc::new(Semaphore::new(CLIENTS_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for request in 0..REQUESTS {
        let (api, operator, in_flight) = (server.api(), server.operator.clone(), in_flight.clone());
        tasks.spawn(async move {
            let _permit = in_flight.acquire_owned().await.expect("the semaphore stays open");
            let key = format!("busy-{request}");
            let body = order_body(&format!("buyer-{request}"), SKU, 1).to_string();
            let reply = api
                .send(
                    "POST",
                    "/v1/stores/busy/orders",
                    Some(&operator),
                    &[("Idempotency-Key", &key)],
                    Some(body),
                )
                .await;
            (key, reply)
        });
    }
    let replies = tasks.join_all().await;
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for (key, reply) in &replies {
        match reply.status.as_u16() {
            201 => {
                acknowledged.push((key.clone(), reply.json["number"].as_u64().expect("a number")))
            }
            503 => {
                refused += 1;
                assert_eq!(reply.code(), "overloaded", "{}", reply.text);
                assert!(
                    reply.retry_after_s().is_some_and(|s| s >= 1),
                    "no Retry-After: {:?}",
                    reply.headers
                );
            }
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert!(refused > 0, "the overload was never refused");
    assert!(!acknowledged.is_empty(), "nothing was admitted");
    // The server's own cap refused some, before any handler ran (the
    // shard's full queue may refuse others behind it).
    let capped = replies
        .iter()
        .filter(|(_, reply)| reply.status.as_u16() == 503 && reply.text.contains("in flight"))
        .count();
    assert!(capped > 0, "the in-flight cap never refused");

    // Every acknowledged order is there, under its key.
    for (key, number) in &acknowledged {
        let path = format!("/v1/stores/busy/orders/{number}");
        let mut found = None;
        for _ in 0..RETRIES_MAX {
            let reply = server.call("GET", &path, Some(&server.operator), None).await;
            if reply.status.as_u16() == 503 {
                tokio::time::sleep(Duration::from_secs(reply.retry_after_s().unwrap_or(1))).await;
                continue;
            }
            found = Some(reply);
            break;
        }
        let reply = found.expect("the order could be read");
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        assert_eq!(reply.json["idempotency_key"], key.as_str());
    }
    let orders = server.all_orders("busy").await;
    assert_eq!(orders.len(), acknowledged.len(), "only acknowledged orders exist");
    let totals = server.stock_totals("busy", SKU).await;
    assert_eq!(totals["reserved"].as_u64().unwrap(), acknowledged.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_from_the_config_file_and_environment_answer_429_with_retry_after() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "customer_rate_per_second = 1\ncustomer_rate_burst = 50\n")
        .unwrap();
    let config_path = config.path().to_str().unwrap().to_string();
    // The environment's burst beats the file's.
    let server =
        Server::start_with(&["--config", &config_path], &[("BAZAAR_CUSTOMER_RATE_BURST", "2")]);
    server.seed_store("limited", SKU, 100).await;
    let path = "/v1/stores/limited/orders";
    for _ in 0..2 {
        server.operator("POST", path, Some(order_body("greedy", SKU, 1)), 201).await;
    }
    let refused =
        server.call("POST", path, Some(&server.operator), Some(order_body("greedy", SKU, 1))).await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (429, "rate_limited"),
        "{}",
        refused.text
    );
    assert!(refused.retry_after_s().is_some_and(|s| s >= 1));
    assert!(refused.message().contains("greedy"));
    // Another customer has a bucket of their own.
    server.operator("POST", path, Some(order_body("patient", SKU, 1)), 201).await;
    assert_eq!(server.all_orders("limited").await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_orders_held_max_refuses_new_orders_with_507_and_still_serves_its_orders() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut server = Server::start_in(&data_dir, &[], &[("BAZAAR_ORDERS_HELD_MAX", "2")]);
    assert!(server.printed("2 shards, 0 of at most 2 orders held"), "{:?}", server.output);
    server.seed_store("full", SKU, 100).await;
    async fn place(server: &Server, customer: &str, key: &str) -> common::Reply {
        let body = order_body(customer, SKU, 1).to_string();
        let headers = [("Idempotency-Key", key)];
        server
            .send("POST", "/v1/stores/full/orders", Some(&server.operator), &headers, Some(body))
            .await
    }
    let first = place(&server, "first", "key-1").await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(place(&server, "second", "key-2").await.status.as_u16(), 201);

    let refused = place(&server, "third", "key-3").await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (507, "orders_held_full"),
        "{}",
        refused.text
    );
    assert!(refused.message().contains("limit of 2 (orders_held_max)"), "{}", refused.message());
    // A retry of a placed order still gets it, and the orders are served.
    let retry = place(&server, "first", "key-1").await;
    assert_eq!(retry.status.as_u16(), 200, "{}", retry.text);
    assert_eq!(retry.json["number"], first.json["number"]);
    assert_eq!(server.all_orders("full").await.len(), 2);
    let totals = server.stock_totals("full", SKU).await;
    assert_eq!(totals["reserved"], 2, "the refused order reserved nothing");
    let metrics = server.call("GET", "/metrics", Some(&server.operator), None).await;
    for line in ["bazaar_orders_held 2", "bazaar_orders_held_max 2", "status=\"507\"} 1"] {
        assert!(metrics.text.lines().any(|l| l.ends_with(line) || l == line), "no {line:?}");
    }

    // Restarted with room for one more, the node counts the orders it
    // replayed and takes exactly one.
    assert!(server.stop_gracefully().success());
    let server = Server::start_in(&data_dir, &["--orders-held-max", "3"], &[]);
    assert!(server.printed("2 of at most 3 orders held"), "{:?}", server.output);
    assert_eq!(place(&server, "third", "key-3").await.status.as_u16(), 201);
    assert_eq!(place(&server, "fourth", "key-4").await.status.as_u16(), 507);
    assert_eq!(server.all_orders("full").await.len(), 3);
}
