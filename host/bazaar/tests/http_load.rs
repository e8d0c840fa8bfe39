//! Load over HTTP against a real `bazaar serve` process: a flash sale sells
//! exactly its stock, an overload is refused fast with `Retry-After` and
//! loses no acknowledged order, rate limits answer 429, and a node started
//! under a low soft limit on open files still holds more connections than
//! it. The tests count outcomes and check headers; they never assert on time.

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

/// Open files the node is started with as its soft limit: far below the
/// connections the test holds.
const LOW_OPEN_FILES_SOFT_LIMIT: u32 = 256;
/// Connections held open at once, each with a request in flight.
const CONNECTIONS_HELD: usize = 600;
/// What each of them asks, twice.
const HEALTH_REQUEST: &[u8] = b"GET /v1/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";

#[test]
fn a_node_started_under_a_low_open_files_soft_limit_serves_more_connections_than_it() {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::TcpStream;
    use std::process::{Command, Stdio};

    let data = tempfile::tempdir().expect("a temporary directory");
    // The shell lowers only the soft limit and then becomes the node.
    let mut node = Command::new("bash");
    // Settings from the environment of whoever runs the tests must not
    // leak into the node under test.
    for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("BAZAAR_")) {
        node.env_remove(key);
    }
    let node = node
        .arg("-c")
        .arg(format!("ulimit -Sn {LOW_OPEN_FILES_SOFT_LIMIT} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_bazaar"))
        .args(["serve", "--listen", "127.0.0.1:0", "--mqtt-disabled", "--data-dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start bazaar serve under bash");
    let mut node = KilledOnDrop(node);
    let stdout = node.0.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines.next().expect("the node reports where it listens").expect("a line");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    // The node raised its soft limit to the hard one as it started.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.0.id()))
        .expect("read the node's limits");
    let open_files: Vec<&str> = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("an open files line")
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect();
    assert_eq!(open_files[0], open_files[1], "soft and hard open files limits: {open_files:?}");

    // Every connection is opened and sent its request before any answer
    // is read, so the node holds them all at once. A connection the node
    // could not accept would wait in the listen backlog until the node
    // closed others (after `IDLE_TIMEOUT_MS` of silence): the read timeout
    // turns a long wait into a failure, and the second round finds any
    // connection that was closed to make room.
    let mut connections: Vec<TcpStream> = (0..CONNECTIONS_HELD)
        .map(|_| {
            let stream = TcpStream::connect(&address).expect("connect to the node");
            stream.set_read_timeout(Some(Duration::from_secs(60))).expect("a read timeout");
            stream
        })
        .collect();
    for round in 1..=2 {
        for stream in &mut connections {
            stream.write_all(HEALTH_REQUEST).expect("send a request");
        }
        for (index, stream) in connections.iter_mut().enumerate() {
            let mut head = vec![0u8; 12];
            stream.read_exact(&mut head).unwrap_or_else(|error| {
                panic!(
                    "round {round}: connection {index} of {CONNECTIONS_HELD} got no answer: {error}"
                )
            });
            assert_eq!(&head, b"HTTP/1.1 200", "round {round}: connection {index}");
            // The rest of the answer: its head up to the body's length,
            // then the body.
            let mut answer = head;
            while !answer.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).expect("the answer's head");
                answer.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
            let body_len: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|length| length.trim().parse().ok())
                .expect("a content-length");
            let mut body = vec![0u8; body_len];
            stream.read_exact(&mut body).expect("the answer's body");
        }
    }
    drop(connections);
    let stopped = Command::new("kill")
        .args(["-s", "TERM", &node.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(stopped.success());
    assert!(node.0.wait().expect("wait for the node").success(), "the node stops cleanly");
}

/// A child process killed if the test fails before it stops it.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
