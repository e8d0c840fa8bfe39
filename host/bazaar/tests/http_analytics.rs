//! Observability and analytics over a real `bazaar serve` process: the
//! Prometheus metrics (read with the reference parser of the Prometheus
//! Python client), a store's analytics queries once the event consumer has
//! caught up, the live headline stream, public metrics and JSON logs.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ANALYTICS_PLUGIN, Server};
use serde_json::Value;

/// The flash-sale SKU the seeded promotions know.
const PHONE: &str = "D11-PHONE";
/// Longest wait for the consumer to fold committed orders into the
/// plugin's figures, or for the server to notice a stream's client left:
/// generous, since the machine is shared.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two polls of a figure that is expected to change.
const POLL_PAUSE: Duration = Duration::from_millis(100);

/// Parses Prometheus text with `prometheus_client`'s parser and prints its
/// families as JSON: `[{name, type, samples: [{name, labels, value}]}]`.
const PARSE_METRICS_PY: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = [
    {"name": f.name, "type": f.type,
     "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())
]
print(json.dumps(families))
"#;

/// The families of `text`, as the Prometheus client's parser reads them.
/// Fails the test when the text does not parse.
fn parse_metrics(text: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args(["-c", PARSE_METRICS_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test installs prometheus-client for it)");
    child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("writing metrics");
    let output = child.wait_with_output().expect("the parser finishes");
    assert!(
        output.status.success(),
        "the Prometheus parser refused the metrics (install it with `python3 -m pip install prometheus-client`):\n{}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Value>(&output.stdout)
        .expect("the parser prints JSON")
        .as_array()
        .expect("a list of families")
        .clone()
}

/// The samples named `sample` whose labels include every one of `labels`.
fn samples<'a>(families: &'a [Value], sample: &str, labels: &[(&str, &str)]) -> Vec<&'a Value> {
    families
        .iter()
        .flat_map(|family| family["samples"].as_array().into_iter().flatten())
        .filter(|s| s["name"] == sample)
        .filter(|s| labels.iter().all(|(name, value)| s["labels"][*name] == *value))
        .collect()
}

/// The value of the one sample named `sample` with `labels`.
fn value(families: &[Value], sample: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(families, sample, labels);
    assert_eq!(found.len(), 1, "{sample} {labels:?}: {found:?}");
    found[0]["value"].as_f64().expect("a number")
}

/// `GET /metrics` as the operator: the text, checked for its content type.
async fn scrape(server: &Server) -> String {
    let reply = server.send("GET", "/metrics", Some(&server.operator), &[], None).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let content_type = reply.headers["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    reply.text
}

/// Asks `store`'s analytics plugin `query` (with its query string) as the
/// operator and expects an answer.
async fn ask(server: &Server, store: &str, query: &str) -> Value {
    server
        .operator(
            "GET",
            &format!("/v1/stores/{store}/analytics/{ANALYTICS_PLUGIN}/{query}"),
            None,
            200,
        )
        .await
}

/// Polls `store`'s headline until it counts `orders` orders.
async fn headline_after(server: &Server, store: &str, orders: u64) -> Value {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let headline = ask(server, store, "headline").await;
        if headline["orders"].as_u64() == Some(orders) {
            return headline;
        }
        assert!(Instant::now() < deadline, "the consumer never caught up: {headline}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

/// The total of an order, in minor units.
fn total_minor(order: &Value) -> i64 {
    order["totals"]["total"]["amount_minor"].as_i64().expect("a total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_the_orders_placed_through_the_api() {
    let server = Server::start(&[]);
    server.seed_store("acme", PHONE, 100).await;
    server.configure_plugins("acme").await;
    let orders = 5;
    let body = |customer: &str| common::order_body(customer, PHONE, 1).to_string();
    for n in 0..orders {
        let key = format!("metrics-{n}");
        let reply = server
            .send(
                "POST",
                "/v1/stores/acme/orders",
                Some(&server.operator),
                &[("Idempotency-Key", &key)],
                Some(body(&format!("c{n}"))),
            )
            .await;
        assert_eq!(reply.status.as_u16(), 201, "{}", reply.text);
    }
    // A retry of the first order answers with it, as a duplicate.
    let retried = server
        .send(
            "POST",
            "/v1/stores/acme/orders",
            Some(&server.operator),
            &[("Idempotency-Key", "metrics-0")],
            Some(body("c0")),
        )
        .await;
    assert_eq!(retried.status.as_u16(), 200, "{}", retried.text);
    // More than the stock: refused by the kernel.
    let refused = server
        .call(
            "POST",
            "/v1/stores/acme/orders",
            Some(&server.operator),
            Some(common::order_body("greedy", PHONE, 1_000)),
        )
        .await;
    assert_eq!(refused.status.as_u16(), 409, "{}", refused.text);

    let anonymous = server.send("GET", "/metrics", None, &[], None).await;
    assert_eq!((anonymous.status.as_u16(), anonymous.code()), (401, "unauthorized"));
    let text = scrape(&server).await;
    let families = parse_metrics(&text);

    assert_eq!(value(&families, "bazaar_orders_placed_total", &[]), f64::from(orders));
    assert_eq!(value(&families, "bazaar_orders_duplicate_total", &[]), 1.0);
    assert!(value(&families, "bazaar_commands_refused_total", &[]) >= 1.0);
    let commits = value(&families, "bazaar_journal_commits_total", &[]);
    assert!(commits >= 1.0, "{commits}");
    assert!(value(&families, "bazaar_journal_records_total", &[]) >= commits);
    assert!(value(&families, "bazaar_journal_bytes_total", &[]) > 0.0);
    // Every histogram's buckets are cumulative and end at +Inf = _count.
    let histograms: Vec<&Value> =
        families.iter().filter(|family| family["type"] == "histogram").collect();
    assert!(histograms.len() >= 3, "{histograms:?}");
    for family in histograms {
        let name = family["name"].as_str().unwrap();
        let buckets = samples(&families, &format!("{name}_bucket"), &[]);
        let counts = samples(&families, &format!("{name}_count"), &[]);
        assert!(!counts.is_empty(), "{name} has no _count");
        for count in counts {
            let labels: Vec<(&str, &str)> = count["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            let series: Vec<&&Value> = buckets
                .iter()
                .filter(|b| labels.iter().all(|(k, v)| b["labels"][*k] == *v))
                .collect();
            let values: Vec<f64> = series.iter().map(|b| b["value"].as_f64().unwrap()).collect();
            assert!(values.windows(2).all(|w| w[0] <= w[1]), "{name} {labels:?}: {values:?}");
            assert_eq!(series.last().unwrap()["labels"]["le"], "+Inf", "{name}");
            assert_eq!(values.last().copied(), count["value"].as_f64(), "{name} {labels:?}");
        }
    }
    assert_eq!(
        value(&families, "bazaar_journal_commit_seconds_count", &[]),
        commits + value(&families, "bazaar_journal_commit_failures_total", &[])
    );
    // One queue depth per shard (two by default).
    assert_eq!(samples(&families, "bazaar_shard_queue_depth", &[]).len(), 2);
    // The orders ran the pricing plugin.
    let calls =
        samples(&families, "bazaar_plugin_calls_total", &[("plugin", "pricing-promotions")]);
    assert!(calls.iter().any(|s| s["value"].as_f64().unwrap() >= f64::from(orders)), "{calls:?}");
    // Requests by route template and status.
    let route = [("method", "POST"), ("route", "/v1/stores/{store}/orders")];
    let with_status = |status: &'static str| [route[0], route[1], ("status", status)];
    assert_eq!(
        value(&families, "bazaar_http_requests_total", &with_status("201")),
        f64::from(orders)
    );
    assert_eq!(value(&families, "bazaar_http_requests_total", &with_status("200")), 1.0);
    assert_eq!(value(&families, "bazaar_http_requests_total", &with_status("409")), 1.0);
    assert_eq!(
        value(&families, "bazaar_http_request_seconds_count", &route),
        f64::from(orders) + 2.0
    );
    assert_eq!(
        value(&families, "bazaar_http_requests_total", &[("route", "/metrics"), ("status", "401")]),
        1.0
    );
    // Every order the node placed or found again went through each stage
    // once (the refused one through none); the stages lie within the
    // requests' own time.
    let mut stage_seconds = 0.0;
    for stage in ["shard", "journal", "reply"] {
        let stage = [("stage", stage)];
        assert_eq!(
            value(&families, "bazaar_order_stage_seconds_count", &stage),
            f64::from(orders) + 1.0,
            "{stage:?}"
        );
        stage_seconds += value(&families, "bazaar_order_stage_seconds_sum", &stage);
    }
    assert!(value(&families, "bazaar_order_stage_seconds_sum", &[("stage", "journal")]) > 0.0);
    let request_seconds = value(&families, "bazaar_http_request_seconds_sum", &route);
    assert!(stage_seconds <= request_seconds, "{stage_seconds} > {request_seconds}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_s_analytics_answer_queries_once_the_consumer_has_caught_up() {
    let server = Server::start(&[]);
    for store in ["acme", "plain"] {
        server.seed_store(store, PHONE, 100).await;
        server.configure_plugins(store).await;
    }
    server.enable_analytics("acme", &[PHONE]).await;
    let mut gmv_minor = 0;
    for (customer, quantity) in [("ann", 1), ("bob", 2), ("cat", 3)] {
        gmv_minor += total_minor(&server.place_order("acme", customer, PHONE, quantity).await);
    }

    let headline = headline_after(&server, "acme", 3).await;
    assert_eq!(headline["gmv_minor"].as_i64(), Some(gmv_minor), "{headline}");
    assert_eq!((headline["units"].as_u64(), headline["currency"].as_str()), (Some(6), Some("CNY")));
    // Query-string arguments: `limit` arrives as a number.
    let top = ask(&server, "acme", "top-skus?by=units&limit=1").await;
    assert_eq!(top["by"], "units", "{top}");
    let skus = top["skus"].as_array().unwrap();
    assert_eq!(skus.len(), 1, "{top}");
    assert_eq!((skus[0]["sku"].as_str(), skus[0]["units"].as_u64()), (Some(PHONE), Some(6)));
    let by_revenue = ask(&server, "acme", "top-skus?by=revenue").await;
    assert_eq!(by_revenue["skus"][0]["revenue_minor"].as_i64(), Some(6 * 599_900));
    let sell_through = ask(&server, "acme", "sell-through").await;
    assert_eq!(sell_through["skus"][0]["units"].as_u64(), Some(6), "{sell_through}");
    // The store's merchant may ask too.
    let (merchant, _) = server.issue_token("merchant", &["acme"], &[]).await;
    let path = format!("/v1/stores/acme/analytics/{ANALYTICS_PLUGIN}/headline");
    let asked = server.call("GET", &path, Some(&merchant), None).await;
    assert_eq!((asked.status.as_u16(), asked.json["orders"].as_u64()), (200, Some(3)));

    // Refusals: each says whose fault it is.
    let operator = &server;
    let refused = |path: String| async move {
        let reply = operator.call("GET", &path, Some(&operator.operator), None).await;
        (reply.status.as_u16(), reply.code().to_string(), reply.message().to_string())
    };
    let base = format!("/v1/stores/acme/analytics/{ANALYTICS_PLUGIN}");
    let (status, code, message) = refused(format!("{base}/no-such-query")).await;
    assert_eq!((status, code.as_str()), (502, "plugin_failed"), "{message}");
    assert!(message.contains("no-such-query"), "the plugin's message is passed on: {message}");
    let (status, code, _) = refused(format!("{base}/top-skus?limit=1&limit=2")).await;
    assert_eq!((status, code.as_str()), (400, "invalid_query"));
    let (status, code, _) = refused(format!("{base}/top-skus?x={}", "y".repeat(3_000))).await;
    assert_eq!((status, code.as_str()), (400, "invalid_query"));
    let (status, code, _) =
        refused(format!("/v1/stores/plain/analytics/{ANALYTICS_PLUGIN}/headline")).await;
    assert_eq!((status, code.as_str()), (404, "analytics_not_enabled"));
    let (status, code, _) =
        refused("/v1/stores/acme/analytics/pricing-promotions/headline".to_string()).await;
    assert_eq!((status, code.as_str()), (404, "analytics_not_enabled"));
    let (status, code, _) =
        refused(format!("/v1/stores/nowhere/analytics/{ANALYTICS_PLUGIN}/headline")).await;
    assert_eq!((status, code.as_str()), (404, "analytics_not_enabled"));

    // The consumer's lag is in the metrics, and caught up.
    let families = parse_metrics(&scrape(&server).await);
    let lag = [("store", "acme"), ("plugin", ANALYTICS_PLUGIN)];
    assert_eq!(value(&families, "bazaar_consumer_lag_records", &lag), 0.0);
    // A plugin that keeps up is offered whole batches.
    let whole = bazaar_runtime::EVENTS_PER_BATCH_MAX as f64;
    assert_eq!(value(&families, "bazaar_consumer_batch_events", &lag), whole);
}

/// Reads server-sent events from a streaming response.
struct EventReader {
    /// The response whose body is read.
    response: reqwest::Response,
    /// Text received and not yet split into events.
    pending: String,
}

impl EventReader {
    /// The next event as (name, data), skipping comments (keep-alives).
    async fn next(&mut self, deadline: Instant) -> (String, String) {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim_start().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return (name, data.join("\n"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("an event before the deadline")
                .expect("the stream is readable")
                .expect("the stream is still open");
            self.pending.push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
        }
    }
}

/// Opens the live stream of `store` as the operator with `client`.
async fn open_stream(server: &Server, client: &reqwest::Client, store: &str) -> reqwest::Response {
    client
        .get(format!("{}/v1/stores/{store}/analytics/{ANALYTICS_PLUGIN}/stream", server.base))
        .bearer_auth(&server.operator)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("the server answers")
}

/// Polls the metrics until no live stream is open.
async fn streams_all_closed(server: &Server) {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let text = scrape(server).await;
        if text.lines().any(|line| line == "bazaar_analytics_streams 0") {
            return;
        }
        assert!(Instant::now() < deadline, "streams were left open after their clients left");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_sends_headline_events_whose_gmv_grows_after_an_order() {
    let server = Server::start(&[]);
    server.seed_store("acme", PHONE, 100).await;
    server.configure_plugins("acme").await;
    server.enable_analytics("acme", &[PHONE]).await;
    let first_total = total_minor(&server.place_order("acme", "ann", PHONE, 1).await);
    headline_after(&server, "acme", 1).await;

    // Streams live longer than one request may: a client without the
    // tests' overall request timeout, each read bounded instead.
    let client = reqwest::Client::new();
    let response = open_stream(&server, &client, "acme").await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut events = EventReader { response, pending: String::new() };
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let (name, data) = events.next(deadline).await;
    assert_eq!(name, "headline");
    let first: Value = serde_json::from_str(&data).expect("a headline is JSON");
    assert_eq!(first["gmv_minor"].as_i64(), Some(first_total), "{first}");

    let second_total = total_minor(&server.place_order("acme", "bob", PHONE, 2).await);
    let mut headlines = 1;
    loop {
        let (name, data) = events.next(deadline).await;
        if name != "headline" {
            continue;
        }
        headlines += 1;
        let headline: Value = serde_json::from_str(&data).expect("a headline is JSON");
        let gmv = headline["gmv_minor"].as_i64().expect("a GMV after the first order");
        assert!(gmv >= first_total, "GMV never shrinks without cancellations: {headline}");
        if gmv > first_total {
            assert_eq!(gmv, first_total + second_total, "{headline}");
            break;
        }
    }
    assert!(headlines >= 2, "{headlines}");

    // The streams are bounded: with every place taken, one more is refused.
    let mut open = vec![events.response];
    for _ in 1..bazaar_server::LIVE_STREAMS_MAX {
        let response = open_stream(&server, &client, "acme").await;
        assert_eq!(response.status().as_u16(), 200);
        open.push(response);
    }
    let refused = open_stream(&server, &client, "acme").await;
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    // A stream ends when its client goes, and frees its place.
    drop(open);
    streams_all_closed(&server).await;
    let again = open_stream(&server, &client, "acme").await;
    assert_eq!(again.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_can_serve_public_metrics_and_log_json_lines() {
    let server = Server::start_with(
        &["--log-format", "json"],
        &[("BAZAAR_METRICS_PUBLIC", "true"), ("RUST_LOG", "bazaar_server=debug")],
    );
    let reply = server.send("GET", "/metrics", None, &[], None).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    parse_metrics(&reply.text);
    // Each request is logged at debug level: one JSON object per line.
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let lines = server.errors.lock().unwrap().clone();
        let logged: Vec<Value> = lines
            .iter()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"))
            })
            .collect();
        if logged.iter().any(|entry| entry["message"] == "served" && entry["status"] == 200) {
            assert!(logged.iter().all(|entry| entry["level"].is_string()), "{logged:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no request was logged: {lines:?}");
        tokio::time::sleep(POLL_PAUSE).await;
    }
}
