//! `bazaar bench freshness`: how fresh the live dashboard is. Against a
//! real `bazaar serve`, a store with the live analytics plugin takes a
//! steady load of orders over HTTP while a sampler places one order at a
//! time and watches the store's server-sent event stream: the freshness of
//! an order is the time from its acknowledgement to the first `headline`
//! event that counts it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bazaar_kernel::model::StoreId;
use bazaar_node::seed;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::loadgen::{Bench, Connection, Scenario, load_step, seed_stores};

/// The store watched.
const STORE: &str = "mixed-0";
/// Connections of the background load: enough to keep the node busy.
const LOAD_CONNECTIONS: usize = 64;
/// Orders sampled.
const SAMPLES: usize = 200;
/// Pause between samples, so they spread over the stream's intervals.
const SAMPLE_GAP_MS: u64 = 37;

/// Runs the benchmark and prints its figures.
pub fn run() -> anyhow::Result<()> {
    let bench = Bench::start()?;
    let (server, authorization) = (&bench.server, bench.authorization.clone());
    bench.run(async {
        let mut admin = Connection::open(server.address, authorization.clone()).await?;
        let stores: Vec<(StoreId, u64)> = (0..4)
            .map(|i| Ok((StoreId::new(format!("mixed-{i}"))?, 0)))
            .collect::<anyhow::Result<_>>()?;
        seed_stores(&mut admin, &stores).await?;
        let enable = serde_json::json!({
            "config": {"flash_skus": []},
            "consent": ["log", "config", "state"],
        });
        let (status, response) = admin
            .send(
                Method::PUT,
                &format!("/v1/stores/{STORE}/plugins/analytics-live"),
                Some(Bytes::from(serde_json::to_vec(&enable)?)),
                None,
            )
            .await?;
        if !status.is_success() {
            bail!("enabling analytics answered {status}: {}", String::from_utf8_lossy(&response));
        }

        // Counted orders as the stream reports them, with when they arrived.
        let seen: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let stream = tokio::spawn(watch(server.address, authorization.clone(), seen.clone()));
        let load = tokio::spawn(load_step(
            server.address,
            authorization.clone(),
            Scenario::Mixed,
            LOAD_CONNECTIONS,
            (SAMPLES as u64 * SAMPLE_GAP_MS) / 1000 + 5,
            1_000_000_000,
        ));

        let mut sampler = Connection::open(server.address, authorization.clone()).await?;
        let mut acknowledged = BTreeMap::new();
        for sample in 0..SAMPLES as u64 {
            let request = seed::order_request(sample, vec![(seed::ordinary_sku(3), 1)], None, None);
            let body = Bytes::from(serde_json::to_vec(&order_json(&request))?);
            let path = format!("/v1/stores/{STORE}/orders");
            let (status, response) = sampler
                .send(Method::POST, &path, Some(body), Some(&format!("fresh-{sample}")))
                .await?;
            let at = Instant::now();
            if status != StatusCode::CREATED {
                bail!("a sample order answered {status}: {}", String::from_utf8_lossy(&response));
            }
            let order: Value = serde_json::from_slice(&response)?;
            let number = order["number"].as_u64().context("the order's number")?;
            acknowledged.insert(number, at);
            tokio::time::sleep(Duration::from_millis(SAMPLE_GAP_MS)).await;
        }
        let step = load.await??;
        // Let the stream report the last samples.
        tokio::time::sleep(Duration::from_secs(3)).await;
        stream.abort();
        let seen = seen.lock().expect("the stream's record").clone();
        let mut freshness_ms: Vec<f64> = acknowledged
            .iter()
            .filter_map(|(number, at)| {
                let counted = seen.iter().find(|(orders, when)| orders >= number && when >= at)?;
                Some(counted.1.duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect();
        if freshness_ms.len() < acknowledged.len() {
            bail!(
                "the stream never counted {} of {} sampled orders",
                acknowledged.len() - freshness_ms.len(),
                acknowledged.len()
            );
        }
        freshness_ms.sort_by(f64::total_cmp);
        let at = |q: f64| freshness_ms[((freshness_ms.len() - 1) as f64 * q).round() as usize];
        let load_rate = step.placed as f64 / step.elapsed.as_secs_f64();
        println!(
            "{SAMPLES} sampled orders under {load_rate:.0} orders/s of background load: \
             acknowledgement to the dashboard stream p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            at(0.5),
            at(0.99),
            at(1.0)
        );
        println!("RESULT dashboard_freshness_p99 {:.0} ms", at(0.99));
        anyhow::Ok(())
    })?;
    bench.finish()
}

/// The order body the API takes.
fn order_json(request: &bazaar_kernel::model::OrderRequest) -> Value {
    serde_json::from_slice(&crate::loadgen::order_body(request)).unwrap_or(Value::Null)
}

/// Reads the store's live stream, recording each headline's order count.
async fn watch(
    address: std::net::SocketAddr,
    authorization: Arc<str>,
    seen: Arc<Mutex<Vec<(u64, Instant)>>>,
) -> anyhow::Result<()> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/v1/stores/{STORE}/analytics/analytics-live/stream"))
        .header("host", "127.0.0.1")
        .header("accept", "text/event-stream")
        .header("authorization", &*authorization)
        .body(http_body_util::Full::new(Bytes::new()))?;
    let response = sender.send_request(request).await?;
    if response.status() != StatusCode::OK {
        bail!("the stream answered {}", response.status());
    }
    let mut body = response.into_body();
    let mut pending = String::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        let at = Instant::now();
        pending.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(json) = line.trim_end().strip_prefix("data:")
                && let Ok(headline) = serde_json::from_str::<Value>(json.trim())
                && let Some(orders) = headline["orders_placed"].as_u64()
            {
                seen.lock().expect("the stream's record").push((orders, at));
            }
        }
    }
    Ok(())
}
