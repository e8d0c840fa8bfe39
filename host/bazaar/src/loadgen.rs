//! `bazaar bench http`: a load generator against a real `bazaar serve`.
//!
//! It starts the node as a child process on a free loopback port and a
//! fresh data directory, seeds it through the HTTP API with the operator
//! token the node wrote, then drives it with N persistent HTTP/1.1
//! connections, each sending one order after another (closed loop), for a
//! fixed time per step. Two scenarios: a mixed catalogue spread over
//! several stores, and a single hot SKU that every order wants. It reports
//! orders per second, latency percentiles and the node's memory.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bazaar_kernel::Command;
use bazaar_kernel::model::{OrderRequest, Sku, StoreId};
use bazaar_node::seed;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{Value, json};

/// Connection counts measured, as the issue asks.
pub const CONNECTIONS_DEFAULT: [usize; 3] = [64, 256, 1_024];
/// Seconds of load per (scenario, connection count) step.
pub const STEP_SECONDS_DEFAULT: u64 = 10;
/// Seconds of unmeasured load before each step, to warm caches and plugins.
const WARM_UP_SECONDS: u64 = 1;
/// Stores of the mixed scenario.
const MIXED_STORES: usize = 4;
/// Units of the hot SKU: enough that no step sells out.
const HOT_STOCK: u64 = 100_000_000;
/// How long to wait for the node to start listening: it compiles the
/// first-party plugins first, which takes seconds.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The same under a [`NODE_WRAPPER_ENV`] command: an instruction-counting
/// profiler runs the compiler fifty times slower or more.
const STARTUP_WRAPPED_TIMEOUT: Duration = Duration::from_secs(3_600);
/// Environment variable naming a command (split on whitespace) to start the
/// node under, such as `valgrind --tool=callgrind --instr-atstart=no`, to
/// profile the node while the benchmark drives it.
pub const NODE_WRAPPER_ENV: &str = "BAZAAR_BENCH_NODE_WRAPPER";

/// The scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// 1 to 3 ordinary lines, spread over several stores and both shards.
    Mixed,
    /// One unit of the one flash-sale SKU, every order, one store.
    Hot,
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct HttpBenchOptions {
    /// Connection counts, one step each.
    pub connections: Vec<usize>,
    /// Seconds per step.
    pub step_seconds: u64,
    /// Scenarios to run.
    pub scenarios: Vec<Scenario>,
}

/// A `bazaar serve` child process, killed when dropped.
pub(crate) struct Server {
    /// The process.
    pub(crate) child: Child,
    /// Where it listens.
    pub(crate) address: SocketAddr,
}

impl Server {
    pub(crate) fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let node = std::env::current_exe()?;
        let wrapper = std::env::var(NODE_WRAPPER_ENV).unwrap_or_default();
        let mut wrapper = wrapper.split_whitespace();
        let (mut process, startup_timeout) = match wrapper.next() {
            Some(program) => {
                let mut process = Process::new(program);
                process.args(wrapper).arg(node);
                (process, STARTUP_WRAPPED_TIMEOUT)
            }
            None => (Process::new(node), STARTUP_TIMEOUT),
        };
        // The benchmarks order over HTTP and drive no devices: without the
        // device bus, no embedded MQTT broker wants a port (1883 may be
        // taken) or a share of the cores.
        let mut child = process
            .args(["serve", "--listen", "127.0.0.1:0", "--mqtt-disabled", "--data-dir"])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting bazaar serve")?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = sender.send(rest.trim().to_string());
                }
            }
        });
        let address = receiver
            .recv_timeout(startup_timeout)
            .context("bazaar serve did not report where it listens")?
            .parse()
            .context("parsing the listening address")?;
        Ok(Self { child, address })
    }

    /// The node's resident memory now and at its peak, in MiB.
    fn memory_mib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
                .unwrap_or(0)
                / 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A benchmark's node: a `bazaar serve` child on a fresh temporary data
/// directory, the operator's `Authorization` header, and the client's
/// one-thread runtime (the node gets the other core).
pub(crate) struct Bench {
    /// The server; dropped (killed) before its directory.
    pub(crate) server: Server,
    /// `Bearer <operator token>`.
    pub(crate) authorization: Arc<str>,
    /// Runs the clients.
    pub(crate) runtime: tokio::runtime::Runtime,
    /// The node's data directory, removed when the benchmark ends.
    _data_dir: tempfile::TempDir,
}

impl Bench {
    /// Starts the node and reads its operator token.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let server = Server::start(data_dir.path())?;
        let token = std::fs::read_to_string(data_dir.path().join("operator-token"))
            .context("reading the operator token the node wrote")?;
        let authorization: Arc<str> = Arc::from(format!("Bearer {}", token.trim()));
        println!("node: bazaar serve at http://{} (pid {})", server.address, server.child.id());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("starting the client runtime")?;
        Ok(Self { server, authorization, runtime, _data_dir: data_dir })
    }
}

/// Seeds each store (with its units of the flash-sale SKU) through the API.
pub(crate) async fn seed_stores(
    admin: &mut Connection,
    stores: &[(StoreId, u64)],
) -> anyhow::Result<()> {
    for (store, hot_stock) in stores {
        for command in seed::flagship_store(store, *hot_stock) {
            let Some((method, path, body)) = seed_call(&command) else { continue };
            let body = Bytes::from(serde_json::to_vec(&body)?);
            let (status, response) = admin.send(method, &path, Some(body), None).await?;
            if !status.is_success() {
                bail!("seeding {path} answered {status}: {}", String::from_utf8_lossy(&response));
            }
        }
    }
    Ok(())
}

/// One HTTP/1.1 connection with the operator token.
pub(crate) struct Connection {
    /// The request half of the connection.
    sender: SendRequest<Full<Bytes>>,
    /// `Bearer <token>`.
    authorization: Arc<str>,
}

impl Connection {
    pub(crate) async fn open(address: SocketAddr, authorization: Arc<str>) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender, authorization })
    }

    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("authorization", &*self.authorization);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Full::new(body)
            }
            None => Full::new(Bytes::new()),
        };
        self.sender.ready().await?;
        let response = self.sender.send_request(request.body(body)?).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }
}

/// The HTTP calls that carry out a seeding command.
fn seed_call(command: &Command) -> Option<(Method, String, Value)> {
    Some(match command {
        Command::CreateStore { store, name, currency } => (
            Method::POST,
            "/v1/stores".into(),
            json!({"id": store.as_str(), "name": name, "currency": currency.as_str()}),
        ),
        Command::UpsertWarehouse { store, warehouse } => (
            Method::PUT,
            format!("/v1/stores/{store}/warehouses/{}", warehouse.id),
            json!({"name": warehouse.name, "location": {
                "latitude_micro": warehouse.location.latitude_micro,
                "longitude_micro": warehouse.location.longitude_micro}}),
        ),
        Command::UpsertProduct { store, product, currency } => (
            Method::PUT,
            format!("/v1/stores/{store}/products/{}", product.sku),
            json!({"title": product.title,
                   "price": {"amount_minor": product.unit_price_minor, "currency": currency.as_str()},
                   "purchase_limit_per_customer": product.purchase_limit_per_customer}),
        ),
        Command::ReceiveStock { store, sku, warehouse, quantity } => (
            Method::POST,
            format!("/v1/stores/{store}/stock/receipts"),
            json!({"sku": sku.as_str(), "warehouse": warehouse.as_str(), "quantity": quantity}),
        ),
        Command::ConfigurePlugin { store, plugin, config_json: Some(config), .. } => (
            Method::PUT,
            format!("/v1/stores/{store}/plugins/{plugin}/config"),
            serde_json::from_str(config).ok()?,
        ),
        _ => return None,
    })
}

/// An order request as the API takes it, encoded straight from the
/// request's own fields: building a `serde_json::Value` tree first cost the
/// load generator a third of its CPU, which it shares with the node.
pub(crate) fn order_body(request: &OrderRequest) -> Bytes {
    #[derive(Serialize)]
    struct Body<'a> {
        customer: Customer<'a>,
        lines: Vec<Line<'a>>,
        coupon_codes: &'a [String],
        shipping_address: Address<'a>,
    }
    #[derive(Serialize)]
    struct Customer<'a> {
        id: &'a str,
    }
    #[derive(Serialize)]
    struct Line<'a> {
        sku: &'a str,
        quantity: u32,
    }
    #[derive(Serialize)]
    struct Address<'a> {
        country: &'a str,
        region: &'a str,
        city: &'a str,
        street: &'a str,
        postal_code: &'a str,
        location: Location,
    }
    #[derive(Serialize)]
    struct Location {
        latitude_micro: i32,
        longitude_micro: i32,
    }
    let address = &request.shipping_address;
    let body = Body {
        customer: Customer { id: request.customer.id.as_str() },
        lines: request
            .lines
            .iter()
            .map(|l| Line { sku: l.sku.as_str(), quantity: l.quantity })
            .collect(),
        coupon_codes: &request.coupon_codes,
        shipping_address: Address {
            country: &address.country,
            region: &address.region,
            city: &address.city,
            street: &address.street,
            postal_code: &address.postal_code,
            location: Location {
                latitude_micro: address.location.latitude_micro,
                longitude_micro: address.location.longitude_micro,
            },
        },
    };
    // Plain strings and integers always encode.
    Bytes::from(serde_json::to_vec(&body).expect("an order body encodes"))
}

/// The order of attempt `n` of a scenario: (path, body).
fn scenario_order(scenario: Scenario, n: u64) -> (String, Bytes) {
    match scenario {
        Scenario::Mixed => {
            let (store, request) = crate::load::mixed_order(n, MIXED_STORES);
            (format!("/v1/stores/mixed-{store}/orders"), order_body(&request))
        }
        Scenario::Hot => {
            // A new customer every order, so the purchase limit never refuses.
            let lines = vec![(Sku::new(seed::HOT_SKU).expect("valid"), 1)];
            (
                "/v1/stores/hot-store/orders".into(),
                order_body(&seed::order_request(n, lines, None, None)),
            )
        }
    }
}

/// The figures of one step.
pub(crate) struct Step {
    /// Orders acknowledged (201).
    pub(crate) placed: u64,
    /// Responses by any other status.
    other: u64,
    /// Latency of each acknowledged order, microseconds, sorted.
    latencies_us: Vec<u32>,
    /// Measured time.
    pub(crate) elapsed: Duration,
}

impl Step {
    fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[index]) / 1000.0
    }
}

/// Runs `connections` closed-loop clients for `seconds`; attempts are
/// numbered from `first_attempt` so every order has a fresh key.
pub(crate) async fn load_step(
    address: SocketAddr,
    authorization: Arc<str>,
    scenario: Scenario,
    connections: usize,
    seconds: u64,
    first_attempt: u64,
) -> anyhow::Result<Step> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(connections);
    for client in 0..connections {
        let mut connection = Connection::open(address, authorization.clone()).await?;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut step =
                Step { placed: 0, other: 0, latencies_us: Vec::new(), elapsed: Duration::ZERO };
            let mut attempt = first_attempt + client as u64;
            while !stop.load(Ordering::Relaxed) {
                let (path, body) = scenario_order(scenario, attempt);
                let key = format!("lg-{attempt}");
                let started = Instant::now();
                let (status, _) =
                    connection.send(Method::POST, &path, Some(body), Some(&key)).await?;
                if status == StatusCode::CREATED {
                    step.placed += 1;
                    step.latencies_us
                        .push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    step.other += 1;
                }
                attempt += connections as u64;
            }
            anyhow::Ok(step)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total =
        Step { placed: 0, other: 0, latencies_us: Vec::new(), elapsed: started.elapsed() };
    for task in tasks {
        let step = task.await??;
        total.placed += step.placed;
        total.other += step.other;
        total.latencies_us.extend(step.latencies_us);
    }
    total.latencies_us.sort_unstable();
    Ok(total)
}

/// Runs the benchmark and prints its figures.
pub fn run(options: HttpBenchOptions) -> anyhow::Result<()> {
    let bench = Bench::start()?;
    let (server, authorization) = (&bench.server, bench.authorization.clone());
    bench.runtime.block_on(async {
        let mut admin = Connection::open(server.address, authorization.clone()).await?;
        let mut stores: Vec<(StoreId, u64)> =
            (0..MIXED_STORES).map(|i| (StoreId::new(format!("mixed-{i}")).expect("valid"), 0)).collect();
        stores.push((StoreId::new("hot-store").expect("valid"), HOT_STOCK));
        seed_stores(&mut admin, &stores).await?;
        let (rss, _) = server.memory_mib();
        println!("seeded {} stores; node RSS {rss} MiB\n", stores.len());
        println!("{:<8}{:>12}{:>14}{:>10}{:>10}{:>10}{:>10}{:>12}", "scenario", "connections", "orders/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", "RSS MiB");
        let mut attempt = 0u64;
        for scenario in &options.scenarios {
            for &connections in &options.connections {
                load_step(server.address, authorization.clone(), *scenario, connections, WARM_UP_SECONDS, attempt).await?;
                attempt += 10_000_000;
                let step = load_step(
                    server.address,
                    authorization.clone(),
                    *scenario,
                    connections,
                    options.step_seconds,
                    attempt,
                )
                .await?;
                attempt += 100_000_000;
                let rate = step.placed as f64 / step.elapsed.as_secs_f64();
                let (rss, peak) = server.memory_mib();
                let name = format!("{scenario:?}").to_lowercase();
                println!(
                    "{name:<8}{connections:>12}{rate:>14.0}{:>10.2}{:>10.2}{:>10.2}{:>10}{rss:>8} ({peak})",
                    step.percentile_ms(0.5),
                    step.percentile_ms(0.99),
                    step.percentile_ms(0.999),
                    step.other,
                );
                println!("RESULT http_{name}_{connections}_orders_per_s {rate:.0}");
                println!("RESULT http_{name}_{connections}_p99_ms {:.2}", step.percentile_ms(0.99));
            }
        }
        let (rss, peak) = server.memory_mib();
        println!("RESULT http_node_rss_mib {rss}");
        println!("RESULT http_node_peak_rss_mib {peak}");
        anyhow::Ok(())
    })
}
