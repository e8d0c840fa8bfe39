//! Load over HTTP against a real `bazaar serve` process: a flash sale sells
//! exactly its stock, an overload is refused fast with `Retry-After` and
//! loses no acknowledged order, rate limits answer 429, and a node started
//! under a low soft limit on open files still holds more connections than
//! it. The tests count outcomes and check headers; they never assert on time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Server, order_body};
use tokio::sync::{Barrier, Semaphore};

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
    // Every attempt has a connection of its own (the test client keeps
    // none idle), and each end of one is a file descriptor.
    open_files_up_to_the_hard_limit(ATTEMPTS + 1_000);
    // With its default settings: attempts past its 4,096 connections are
    // answered 503 with `Retry-After` and come back.
    let server = Server::start(&[]);
    server.seed_store("flash", SKU, UNITS).await;
    server.configure_plugins("flash").await;
    let (checkout, _) = server.issue_token("checkout", &["flash"], &[]).await;
    // All attempts start together, as a flash sale's opening second does.
    let start = Arc::new(Barrier::new(ATTEMPTS));
    let mut tasks = tokio::task::JoinSet::new();
    for attempt in 0..ATTEMPTS {
        let (api, checkout, start) = (server.api(), checkout.clone(), start.clone());
        tasks.spawn(async move {
            start.wait().await;
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
async fn a_per_store_rate_limit_refuses_the_busy_store_with_429_and_leaves_the_others_alone() {
    // One request a second after a burst of 20: seeding a store takes 5 of
    // its burst, and the loop below asks more than the rest at once.
    const BURST: usize = 20;
    let server = Server::start(&["--store-rate-per-second", "1", "--store-rate-burst", "20"]);
    server.seed_store("busy", SKU, 10).await;
    server.seed_store("quiet", SKU, 10).await;
    let stock = |store: &str| format!("/v1/stores/{store}/stock/{SKU}");
    let mut answered = 0;
    let refused = loop {
        let reply = server.call("GET", &stock("busy"), Some(&server.operator), None).await;
        if reply.status.as_u16() != 200 {
            break reply;
        }
        answered += 1;
        assert!(answered <= BURST, "the store's burst was never used up");
    };
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (429, "rate_limited"),
        "{}",
        refused.text
    );
    assert!(refused.retry_after_s().is_some_and(|s| s >= 1), "{:?}", refused.headers);
    assert!(refused.message().contains("store busy"), "{}", refused.message());
    // Orders to the busy store are refused too, and place nothing.
    let order = order_body("late", SKU, 1);
    let order =
        server.call("POST", "/v1/stores/busy/orders", Some(&server.operator), Some(order)).await;
    assert_eq!(order.status.as_u16(), 429, "{}", order.text);
    // Another store has a bucket of its own.
    server.operator("GET", &stock("quiet"), None, 200).await;
    server.operator("POST", "/v1/stores/quiet/orders", Some(order_body("calm", SKU, 1)), 201).await;
    // Routes outside any store are not counted against one.
    server.operator("GET", "/v1/stores", None, 200).await;
    // Once the bucket has refilled, the busy store answers again.
    tokio::time::sleep(Duration::from_secs(order.retry_after_s().expect("a Retry-After"))).await;
    let busy = server.operator("GET", "/v1/stores/busy", None, 200).await;
    assert_eq!(busy["orders"], 0, "{busy}");
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
    use std::io::Write as _;
    use std::net::TcpStream;

    // The shell lowers only the soft limit and then becomes the node.
    let lower_the_limit = format!("ulimit -Sn {LOW_OPEN_FILES_SOFT_LIMIT} && exec \"$0\" \"$@\"");
    let mut node = Server::start_wrapped(&["bash", "-c", &lower_the_limit], &["--mqtt-disabled"]);
    let address = node.base.strip_prefix("http://").expect("an http address").to_string();

    // The node raised its soft limit to the hard one as it started.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", node.pid()))
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
            let (head, _) = read_answer(stream).unwrap_or_else(|error| {
                panic!(
                    "round {round}: connection {index} of {CONNECTIONS_HELD} got no answer: {error}"
                )
            });
            assert!(head.starts_with("http/1.1 200"), "round {round}: connection {index}: {head}");
        }
    }
    drop(connections);
    assert!(node.stop_gracefully().success(), "the node stops cleanly");
}

/// Raises this process's soft limit on open files to its hard limit, which
/// must allow `needed`.
fn open_files_up_to_the_hard_limit(needed: usize) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.map_or(usize::MAX, |hard| usize::try_from(hard).unwrap_or(usize::MAX));
    assert!(hard >= needed, "the hard limit on open files is {hard}; this test needs {needed}");
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).expect("raise the soft limit on open files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_beyond_connections_max_is_answered_503_at_once_and_closed() {
    use std::io::Write as _;
    use std::net::TcpStream;

    const CONNECTIONS_MAX: usize = 4;
    const REFUSED: usize = 20;
    let server = Server::start(&["--connections-max", &CONNECTIONS_MAX.to_string()]);
    let address = server.base.strip_prefix("http://").expect("an http address").to_string();
    // The kernel queues a crowd's connections before the node accepts
    // them: the listen backlog is the node's own, within the system's cap
    // (`ss` reports a listening socket's backlog as its send queue).
    let port = address.rsplit(':').next().expect("a port");
    let listening = std::process::Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("run ss");
    let listening = String::from_utf8_lossy(&listening.stdout);
    let backlog: u32 = listening
        .split_whitespace()
        .nth(2)
        .and_then(|backlog| backlog.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket on port {port}: {listening:?}"));
    let system_cap: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("read somaxconn")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(backlog, bazaar_server::LISTEN_BACKLOG.min(system_cap));
    // Every slot is held by a keep-alive connection that has been served,
    // so the node has surely accepted it.
    let mut held: Vec<TcpStream> = (0..CONNECTIONS_MAX)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).expect("connect to the node");
            stream.set_read_timeout(Some(Duration::from_secs(60))).expect("a read timeout");
            stream.write_all(HEALTH_REQUEST).expect("send a request");
            let (head, _) = read_answer(&mut stream).expect("an answer");
            assert!(head.starts_with("http/1.1 200"), "{head}");
            stream
        })
        .collect();

    // One more connection gets the API's 503 and is closed: the answer is
    // whole, not cut off by a reset, whatever the client had sent.
    let mut extra = TcpStream::connect(&address).expect("connect to the node");
    extra.set_read_timeout(Some(Duration::from_secs(60))).expect("a read timeout");
    extra.write_all(HEALTH_REQUEST).expect("send a request");
    let (head, body) = read_answer(&mut extra).expect("an answer");
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("retry-after: 1\r\n"), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains("4 open connections"), "{message}");
    let mut rest = Vec::new();
    assert_eq!(
        std::io::Read::read_to_end(&mut extra, &mut rest).expect("the node closes cleanly"),
        0
    );
    // So does an ordinary HTTP client, every time.
    for _ in 1..REFUSED {
        let reply = server.call("GET", "/v1/health", None, None).await;
        assert_eq!((reply.status.as_u16(), reply.code()), (503, "overloaded"), "{}", reply.text);
        assert_eq!(reply.retry_after_s(), Some(1));
    }

    // Once a held connection closes, its slot serves again.
    held.pop();
    let served = loop {
        let reply = server.call("GET", "/metrics", Some(&server.operator), None).await;
        if reply.status.as_u16() != 503 {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(served.status.as_u16(), 200, "{}", served.text);
    let refused: u64 = served
        .text
        .lines()
        .find_map(|line| line.strip_prefix("bazaar_http_connections_refused_total "))
        .and_then(|count| count.parse().ok())
        .expect("the refused connections' counter");
    assert!(refused >= REFUSED as u64, "{refused} connections counted as refused");
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body: its head, in
/// lower case, and its body.
fn read_answer(stream: &mut std::net::TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    use std::io::Read as _;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let body_len: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|length| length.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no content-length in {head}")))?;
    let mut body = vec![0u8; body_len];
    stream.read_exact(&mut body)?;
    Ok((head, body))
}
