//! `bazaar bench http`: a load generator against a real `bazaar serve`.
//!
//! It starts the node as a child process on a free loopback port and a
//! fresh data directory, seeds it through the HTTP API with the operator
//! token the node wrote, then drives it with N persistent HTTP/1.1
//! connections, each sending one order after another (closed loop), for a
//! fixed time per step; an order's latency runs from its request's first
//! byte sent to its response's last byte read, and is also reported up to
//! the moment that last byte arrived at the client's socket (the `arrival`
//! module), since a response may wait for the client to get a core. Two
//! scenarios: a mixed catalogue spread over several stores, and a single
//! hot SKU that every order wants. It reports orders per second, latency
//! percentiles, how far the rate moved within the step (orders per second
//! in its slow and fast 100 ms windows: the machine's speed swings within
//! seconds, and the tail of a step gathers in its slow windows) and the
//! node's memory. The client shares the machine's cores with the node, so
//! it does as little as it can per order (see [`OrderClient`]).
//!
//! To profile the node while the benchmark drives it, name a command to
//! start it under in [`NODE_WRAPPER_ENV`].

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use bazaar_kernel::Command;
use bazaar_kernel::model::{OrderRequest, Sku, StoreId};
use bazaar_node::seed;
use bazaar_server::ORDER_STAGES;
use bazaar_server::order_json::{
    write_coupons_and_address, write_sku_quantities, write_str, write_u64,
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt as _, Interest};

use crate::arrival;
use crate::scratch::{self, ScratchRun};

/// Connection counts measured, as the issue asks.
pub const CONNECTIONS_DEFAULT: [usize; 3] = [64, 256, 1_024];
/// Seconds of load per (scenario, connection count) step.
pub const STEP_SECONDS_DEFAULT: u64 = 10;
/// Seconds of unmeasured load before each step, to warm caches and plugins.
const WARM_UP_SECONDS: u64 = 1;
/// Orders are also counted per window of this length, to show how far the
/// rate moved within a step.
const RATE_WINDOW: Duration = Duration::from_millis(100);
/// Stores of the mixed scenario.
const MIXED_STORES: usize = 4;
/// The store of the hot scenario.
pub(crate) const HOT_STORE: &str = "hot-store";
/// Units of the hot SKU: enough that no step sells out.
pub(crate) const HOT_STOCK: u64 = 100_000_000;
/// How long to wait for the node to start listening: it compiles the
/// first-party plugins first, which takes seconds.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The same under a [`NODE_WRAPPER_ENV`] command: an instruction-counting
/// profiler runs the compiler fifty times slower or more.
const STARTUP_WRAPPED_TIMEOUT: Duration = Duration::from_secs(3_600);
/// How long a stopped node may take to finish in-flight requests and flush
/// its journal before it is killed: the server's own grace, and a margin.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(bazaar_server::SHUTDOWN_GRACE_MS + 5_000);
/// How often to look whether the stopped node has exited.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);
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

/// A `bazaar serve` child process, stopped (see [`Server::stop`]) when
/// dropped.
pub(crate) struct Server {
    /// The process.
    pub(crate) child: Child,
    /// Where it listens.
    pub(crate) address: SocketAddr,
}

impl Server {
    pub(crate) fn start(data_dir: &Path, node_args: &[&str]) -> anyhow::Result<Self> {
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
            .args(node_args)
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

    /// Stops the node as an operator would: SIGTERM, so that it finishes
    /// the requests in flight, flushes its journal and exits through its
    /// own shutdown (an instrumented build writes its profile then, which
    /// `scripts/build-optimised` trains on); killed if it has not exited
    /// within [`SHUTDOWN_WAIT`]. An error says how it ended otherwise.
    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        // A reaped child's pid may be another process's by now: it is
        // signalled only while it has not been waited for.
        let mut status = self.child.try_wait()?;
        if status.is_none() && self.ask_to_stop() {
            let deadline = Instant::now() + SHUTDOWN_WAIT;
            while status.is_none() && Instant::now() < deadline {
                std::thread::sleep(SHUTDOWN_POLL);
                status = self.child.try_wait()?;
            }
        }
        match status {
            Some(status) if status.success() => Ok(()),
            Some(status) => bail!("the node exited with {status} when asked to stop"),
            None => {
                self.child.kill()?;
                self.child.wait()?;
                bail!(
                    "the node had not stopped {} s after SIGTERM and was killed",
                    SHUTDOWN_WAIT.as_secs()
                )
            }
        }
    }

    /// Sends the node SIGTERM; whether it was sent.
    #[cfg(target_os = "linux")]
    fn ask_to_stop(&self) -> bool {
        use rustix::process::{Pid, Signal, kill_process};
        let pid = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw);
        pid.is_some_and(|pid| kill_process(pid, Signal::TERM).is_ok())
    }

    /// No signal to ask with here: the node is killed.
    #[cfg(not(target_os = "linux"))]
    fn ask_to_stop(&self) -> bool {
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A run that failed or was interrupted still stops its node; the
        // error that ended the run is the one reported.
        let _ = self.stop();
    }
}

/// A benchmark's node: a `bazaar serve` child on a fresh temporary data
/// directory, the operator's `Authorization` header, and the client's
/// one-thread runtime (the node gets the other core).
pub(crate) struct Bench {
    /// The server; stopped before its directory is removed.
    pub(crate) server: Server,
    /// `Bearer <operator token>`.
    pub(crate) authorization: Arc<str>,
    /// Runs the clients.
    runtime: tokio::runtime::Runtime,
    /// The node's data directory, removed after the node is stopped; a
    /// signal ends `run` instead of the process.
    _scratch: ScratchRun,
}

impl Bench {
    /// Starts the node with its default settings and reads its operator
    /// token.
    pub(crate) fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// Starts the node with `node_args` added to `bazaar serve`'s.
    pub(crate) fn start_with(node_args: &[&str]) -> anyhow::Result<Self> {
        // `run` below watches for the signal itself.
        let scratch = ScratchRun::new(|| {})?;
        let server = Server::start(scratch.path(), node_args)?;
        let token = std::fs::read_to_string(scratch.path().join("operator-token"))
            .context("reading the operator token the node wrote")?;
        let authorization: Arc<str> = Arc::from(format!("Bearer {}", token.trim()));
        println!("node: bazaar serve at http://{} (pid {})", server.address, server.child.id());
        // Every client runs on the calling thread: one thread, and no
        // wake-ups handed between a worker thread and a blocked caller.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the client runtime")?;
        Ok(Self { server, authorization, runtime, _scratch: scratch })
    }

    /// Stops the node after a run, and says that it stopped cleanly: a node
    /// that cannot shut down after a benchmark fails the benchmark.
    pub(crate) fn finish(mut self) -> anyhow::Result<()> {
        self.server.stop()?;
        println!("node: stopped on SIGTERM, journal flushed");
        Ok(())
    }

    /// Runs `work` on the client runtime until it ends, or until SIGINT or
    /// SIGTERM arrives (also if it came while the node started). Either way
    /// the caller then drops the bench, which stops the node and removes
    /// its data directory.
    pub(crate) fn run<T>(
        &self,
        work: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        self.runtime.block_on(async {
            tokio::select! {
                result = work => result,
                () = scratch::interrupted() => {
                    bail!("interrupted: the node is stopped and its data directory removed")
                }
            }
        })
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

/// An order request as the API takes it.
pub(crate) fn order_body(request: &OrderRequest) -> Bytes {
    let mut body = Vec::new();
    write_order_body(&mut body, request);
    Bytes::from(body)
}

/// Appends an order request as the API takes it. The field names are
/// written as they are and only the values go through the JSON encoder:
/// building a `serde_json::Value` tree first cost the load generator a
/// third of its CPU, which it shares with the node, and escaping every
/// field name again was most of what encoding then cost.
fn write_order_body(out: &mut Vec<u8>, request: &OrderRequest) {
    out.extend_from_slice(b"{\"customer\":{\"id\":");
    write_str(out, request.customer.id.as_str());
    out.extend_from_slice(b"},\"lines\":");
    write_sku_quantities(out, request.lines.iter().map(|line| (line.sku.as_str(), line.quantity)));
    write_coupons_and_address(out, request);
    out.push(b'}');
}

/// Where a scenario's orders go, by the store index of [`scenario_order`].
pub(crate) fn order_paths(scenario: Scenario) -> Vec<String> {
    match scenario {
        Scenario::Mixed => {
            (0..MIXED_STORES).map(|store| format!("/v1/stores/mixed-{store}/orders")).collect()
        }
        Scenario::Hot => vec![format!("/v1/stores/{HOT_STORE}/orders")],
    }
}

/// The order of attempt `n` of a scenario: its store's index among
/// [`order_paths`], with its body appended to `body`.
fn scenario_order(scenario: Scenario, n: u64, body: &mut Vec<u8>) -> usize {
    match scenario {
        Scenario::Mixed => {
            let (store, request) = crate::load::mixed_order(n, MIXED_STORES);
            write_order_body(body, &request);
            store
        }
        Scenario::Hot => {
            // A new customer every order, so the purchase limit never refuses.
            let lines = vec![(Sku::new(seed::HOT_SKU).expect("valid"), 1)];
            write_order_body(body, &seed::order_request(n, lines, None, None));
            0
        }
    }
}

/// Longest response head the load generator reads: the API's are a few
/// hundred bytes, so anything longer is not an answer to an order.
const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Largest response body it reads: an order is under 2 KiB; the same bound
/// as the API's own request bodies.
const RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024;
/// Bytes a read asks for at least: a whole answer to an order.
const READ_CHUNK_BYTES: usize = 4 * 1024;

/// One closed-loop client: a persistent HTTP/1.1 connection on which it
/// writes each order's request and reads the whole response before the
/// next. Requests and responses are written and read by hand into buffers
/// kept for the connection's life: a general HTTP client's request
/// builder, header map, body channel and connection task cost about as
/// many instructions per order as the rest of the client, on the cores the
/// node needs.
pub(crate) struct OrderClient {
    /// The connection.
    stream: tokio::net::TcpStream,
    /// The request head up to the idempotency key's value, the same for
    /// every order but the path: `host`, `authorization`, `content-type`.
    head_tail: Vec<u8>,
    /// The request being sent.
    request: Vec<u8>,
    /// The order's body being built.
    body: Vec<u8>,
    /// Room for the response being read; it only grows, so the bytes a
    /// read lands in are zeroed once, not for every read.
    response: Vec<u8>,
    /// How much of `response` the response read so far fills.
    response_len: usize,
    /// When the last bytes read arrived, as the kernel stamped them.
    arrived: Option<SystemTime>,
}

/// How long one order took, from its first byte sent.
pub(crate) struct Latency {
    /// Until the client read the response's last byte.
    read: Duration,
    /// Until that byte arrived at the client's socket; the same as `read`
    /// where the kernel did not stamp it (elsewhere than on Linux, or just
    /// after a step's connections asked for stamps).
    arrived: Duration,
}

impl OrderClient {
    /// Connects to the node, with Nagle's algorithm off so each request
    /// leaves at once.
    pub(crate) async fn open(address: SocketAddr, authorization: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        arrival::enable(&stream).context("asking for arrival times")?;
        let head_tail = format!(
            " HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {authorization}\r\ncontent-type: application/json\r\nidempotency-key: "
        )
        .into_bytes();
        Ok(Self {
            stream,
            head_tail,
            request: Vec::new(),
            body: Vec::new(),
            response: Vec::new(),
            response_len: 0,
            arrived: None,
        })
    }

    /// Builds attempt `attempt`'s order, then sends it and reads the whole
    /// response; its status, and how long it took.
    pub(crate) async fn order(
        &mut self,
        scenario: Scenario,
        paths: &[String],
        attempt: u64,
    ) -> anyhow::Result<(u16, Latency)> {
        self.body.clear();
        let store = scenario_order(scenario, attempt, &mut self.body);
        self.request.clear();
        self.request.extend_from_slice(b"POST ");
        self.request.extend_from_slice(paths[store].as_bytes());
        self.request.extend_from_slice(&self.head_tail);
        self.request.extend_from_slice(b"lg-");
        write_u64(&mut self.request, attempt);
        self.request.extend_from_slice(b"\r\ncontent-length: ");
        write_u64(&mut self.request, self.body.len() as u64);
        self.request.extend_from_slice(b"\r\n\r\n");
        self.request.extend_from_slice(&self.body);
        self.arrived = None;
        let (started, sent_at) = (Instant::now(), SystemTime::now());
        self.stream.write_all(&self.request).await?;
        let status = self.read_response().await?;
        let read = started.elapsed();
        // The wall clock may step between the two readings; a stamp that is
        // not between sending and reading is not used.
        let arrived = self
            .arrived
            .and_then(|arrived| arrived.duration_since(sent_at).ok())
            .filter(|arrived| *arrived <= read)
            .unwrap_or(read);
        Ok((status, Latency { read, arrived }))
    }

    /// Reads one response with a `Content-Length` body; its status.
    async fn read_response(&mut self) -> anyhow::Result<u16> {
        self.response_len = 0;
        let head_len = loop {
            let received = &self.response[..self.response_len];
            if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
                break end + 4;
            }
            if received.len() > RESPONSE_HEAD_BYTES_MAX {
                bail!("a response head is longer than {RESPONSE_HEAD_BYTES_MAX} bytes");
            }
            self.read_more().await?;
        };
        let (status, body_len) = response_head(&self.response[..head_len])?;
        while self.response_len < head_len + body_len {
            self.read_more().await?;
        }
        if self.response_len > head_len + body_len {
            bail!("the node sent more than the one response asked for");
        }
        Ok(status)
    }

    /// Reads what has arrived, and when; an error if the node closed the
    /// connection.
    async fn read_more(&mut self) -> anyhow::Result<()> {
        let filled = self.response_len;
        if self.response.len() < filled + READ_CHUNK_BYTES {
            self.response.resize(filled + READ_CHUNK_BYTES, 0);
        }
        let socket = self.stream.as_raw_fd();
        let received = loop {
            self.stream.readable().await?;
            let buffer = &mut self.response[filled..];
            let room = buffer.len();
            // A read that leaves room in the buffer has emptied the socket.
            // It is reported to tokio as "would block", its bytes kept
            // aside, so that tokio forgets the readiness it saw and the
            // next response is waited for without first costing a read
            // that finds nothing: one `recvmsg` per response instead of
            // two. tokio forgets only the readiness it saw before the
            // read, so bytes that arrived meanwhile still wake the wait.
            let mut emptied = None;
            let read = self.stream.try_io(Interest::READABLE, || {
                let (read, arrived) = arrival::receive(socket, buffer)?;
                if read > 0 && read < room {
                    emptied = Some((read, arrived));
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                Ok((read, arrived))
            });
            match (read, emptied) {
                (_, Some(received)) => break Ok(received),
                (Err(error), None) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                (read, None) => break read,
            }
        };
        let (read, arrived) = received?;
        self.response_len += read;
        if read == 0 {
            bail!("the node closed the connection in the middle of a response");
        }
        self.arrived = arrived.or(self.arrived);
        Ok(())
    }
}

/// The status and body length of an HTTP/1.1 response head (its lines end
/// in CR LF, the last one empty).
fn response_head(head: &[u8]) -> anyhow::Result<(u16, usize)> {
    let head = std::str::from_utf8(head).context("a response head that is not text")?;
    let mut lines = head.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line));
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("a response with the status line {status_line:?}"))?;
    let mut body_len = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("content-length") {
            body_len = Some(value.trim().parse::<usize>().context("a malformed Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("a response with Transfer-Encoding: every answer to an order has a length");
        }
    }
    let body_len = body_len.context("a response without Content-Length")?;
    if body_len > RESPONSE_BODY_BYTES_MAX {
        bail!("a response body of {body_len} bytes, over {RESPONSE_BODY_BYTES_MAX}");
    }
    Ok((status, body_len))
}

/// The figures of one step.
pub(crate) struct Step {
    /// Orders acknowledged (201).
    pub(crate) placed: u64,
    /// Responses by any other status.
    other: u64,
    /// Latency of each acknowledged order until the client read it,
    /// microseconds, sorted.
    latencies_us: Vec<u32>,
    /// The same until the response arrived at the client's socket.
    arrival_latencies_us: Vec<u32>,
    /// Orders acknowledged in each [`RATE_WINDOW`] from the step's start.
    window_orders: Vec<u32>,
    /// Measured time.
    pub(crate) elapsed: Duration,
}

impl Step {
    fn new(elapsed: Duration) -> Self {
        Self {
            placed: 0,
            other: 0,
            latencies_us: Vec::new(),
            arrival_latencies_us: Vec::new(),
            window_orders: Vec::new(),
            elapsed,
        }
    }

    /// Counts one order's answer, read `since_start` into the step.
    fn record(&mut self, status: u16, latency: &Latency, since_start: Duration) {
        if status != StatusCode::CREATED.as_u16() {
            self.other += 1;
            return;
        }
        let window = (since_start.as_micros() / RATE_WINDOW.as_micros()) as usize;
        if self.window_orders.len() <= window {
            self.window_orders.resize(window + 1, 0);
        }
        self.window_orders[window] += 1;
        let micros = |duration: Duration| duration.as_micros().min(u128::from(u32::MAX)) as u32;
        self.placed += 1;
        self.latencies_us.push(micros(latency.read));
        self.arrival_latencies_us.push(micros(latency.arrived));
    }

    fn mean_ms(&self) -> f64 {
        let sum_us: u64 = self.latencies_us.iter().map(|&us| u64::from(us)).sum();
        sum_us as f64 / 1000.0 / self.latencies_us.len().max(1) as f64
    }

    fn percentile_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies_us, q)
    }

    fn arrival_percentile_ms(&self, q: f64) -> f64 {
        percentile_ms(&self.arrival_latencies_us, q)
    }

    /// Adds another connection's figures; latencies stay unsorted.
    fn merge(&mut self, other: Step) {
        self.placed += other.placed;
        self.other += other.other;
        self.latencies_us.extend(other.latencies_us);
        self.arrival_latencies_us.extend(other.arrival_latencies_us);
        if self.window_orders.len() < other.window_orders.len() {
            self.window_orders.resize(other.window_orders.len(), 0);
        }
        for (total, orders) in self.window_orders.iter_mut().zip(other.window_orders) {
            *total += orders;
        }
    }

    /// The `q` quantile of the orders per second over the step's whole
    /// windows (the answers to orders in flight when the step ended fall
    /// past its end and are left out).
    fn window_rate_quantile(&self, q: f64) -> f64 {
        let whole = (self.elapsed.as_micros() / RATE_WINDOW.as_micros()) as usize;
        let mut rates: Vec<u32> = self.window_orders.iter().take(whole).copied().collect();
        rates.resize(whole, 0);
        if rates.is_empty() {
            return 0.0;
        }
        rates.sort_unstable();
        f64::from(rates[quantile_index(rates.len(), q)]) / RATE_WINDOW.as_secs_f64()
    }
}

/// The `q` quantile of sorted microseconds, in milliseconds.
pub(crate) fn percentile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    f64::from(sorted_us[quantile_index(sorted_us.len(), q)]) / 1000.0
}

/// Where the `q` quantile of `len` sorted values (`len` > 0) sits.
fn quantile_index(len: usize, q: f64) -> usize {
    ((len - 1) as f64 * q).round() as usize
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
    let paths: Arc<[String]> = order_paths(scenario).into();
    let mut connections_open = Vec::with_capacity(connections);
    for _ in 0..connections {
        connections_open.push(OrderClient::open(address, &authorization).await?);
    }
    // The clients start on this thread's next await, the sleep below.
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for (client, mut connection) in connections_open.into_iter().enumerate() {
        let (stop, paths) = (stop.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut step = Step::new(Duration::ZERO);
            let mut attempt = first_attempt + client as u64;
            while !stop.load(Ordering::Relaxed) {
                let (status, latency) = connection.order(scenario, &paths, attempt).await?;
                step.record(status, &latency, started.elapsed());
                attempt += connections as u64;
            }
            anyhow::Ok(step)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Step::new(started.elapsed());
    for task in tasks {
        total.merge(task.await??);
    }
    total.latencies_us.sort_unstable();
    total.arrival_latencies_us.sort_unstable();
    Ok(total)
}

/// The node's running totals of the time its placed orders spent in each
/// of [`ORDER_STAGES`]: seconds summed and orders counted, per stage.
#[derive(Debug, Default)]
struct StageTotals([(f64, f64); ORDER_STAGES.len()]);

impl StageTotals {
    /// The totals in a `GET /metrics` text; a stage the text lacks is an
    /// error, since the node always writes all of them.
    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut totals = Self::default();
        for (stage, (seconds, orders)) in ORDER_STAGES.iter().zip(&mut totals.0) {
            let read = |series: &str| -> anyhow::Result<f64> {
                let prefix = format!("bazaar_order_stage_seconds_{series}{{stage=\"{stage}\"}} ");
                let value = text
                    .lines()
                    .find_map(|line| line.strip_prefix(&prefix))
                    .with_context(|| format!("the node's metrics have no {prefix}"))?;
                value.parse().with_context(|| format!("{prefix}{value} is not a number"))
            };
            *seconds = read("sum")?;
            *orders = read("count")?;
        }
        Ok(totals)
    }

    /// The node's totals now.
    async fn scrape(admin: &mut Connection) -> anyhow::Result<Self> {
        let (status, body) = admin.send(Method::GET, "/metrics", None, None).await?;
        if !status.is_success() {
            bail!("GET /metrics answered {status}");
        }
        Self::parse(std::str::from_utf8(&body).context("the metrics are not UTF-8")?)
    }

    /// Each stage's mean in milliseconds over the orders placed between
    /// `earlier` and these totals.
    fn mean_ms_since(&self, earlier: &Self) -> [f64; ORDER_STAGES.len()] {
        std::array::from_fn(|stage| {
            let (seconds, orders) = self.0[stage];
            let (seconds_before, orders_before) = earlier.0[stage];
            let orders = orders - orders_before;
            if orders > 0.0 { (seconds - seconds_before) * 1000.0 / orders } else { 0.0 }
        })
    }
}

/// Runs the benchmark and prints its figures.
pub fn run(options: HttpBenchOptions) -> anyhow::Result<()> {
    let bench = Bench::start()?;
    let (server, authorization) = (&bench.server, bench.authorization.clone());
    bench.run(async {
        let mut admin = Connection::open(server.address, authorization.clone()).await?;
        let mut stores: Vec<(StoreId, u64)> =
            (0..MIXED_STORES).map(|i| (StoreId::new(format!("mixed-{i}")).expect("valid"), 0)).collect();
        stores.push((StoreId::new(HOT_STORE).expect("valid"), HOT_STOCK));
        seed_stores(&mut admin, &stores).await?;
        let (rss, _) = server.memory_mib();
        println!("seeded {} stores; node RSS {rss} MiB\n", stores.len());
        println!("latency from the first byte sent until the client read the last byte, and (arrived) until that byte arrived at its socket;");
        println!("orders/s within the step: its slow (p10) and fast (p90) 100 ms windows");
        println!("{:<8}{:>12}{:>11}{:>8}{:>8}{:>10}{:>10}{:>10}{:>8}{:>10}{:>10}{:>12}", "scenario", "connections", "orders/s", "p50 ms", "p99 ms", "p99.9 ms", "arrived", "arrived", "errors", "slow", "fast", "RSS MiB");
        println!("{:>67}{:>10}{:>18}{:>10}", "p50 ms", "p99 ms", "orders/s", "orders/s");
        let mut attempt = 0u64;
        for scenario in &options.scenarios {
            for &connections in &options.connections {
                load_step(server.address, authorization.clone(), *scenario, connections, WARM_UP_SECONDS, attempt).await?;
                attempt += 10_000_000;
                let stages_before = StageTotals::scrape(&mut admin).await?;
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
                    "{name:<8}{connections:>12}{rate:>11.0}{:>8.2}{:>8.2}{:>10.2}{:>10.2}{:>10.2}{:>8}{:>10.0}{:>10.0}{rss:>8} ({peak})",
                    step.percentile_ms(0.5),
                    step.percentile_ms(0.99),
                    step.percentile_ms(0.999),
                    step.arrival_percentile_ms(0.5),
                    step.arrival_percentile_ms(0.99),
                    step.other,
                    step.window_rate_quantile(0.1),
                    step.window_rate_quantile(0.9),
                );
                let stages_ms =
                    StageTotals::scrape(&mut admin).await?.mean_ms_since(&stages_before);
                let client_ms = step.mean_ms();
                let in_node_ms: f64 = stages_ms.iter().sum();
                let stages = ORDER_STAGES
                    .iter()
                    .zip(stages_ms)
                    .map(|(stage, ms)| format!("{stage} {ms:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                println!(
                    "{:>8}mean ms: {:.2} as the client saw it; in the node {stages}; the rest {:.2}",
                    "",
                    client_ms,
                    client_ms - in_node_ms
                );
                println!("RESULT http_{name}_{connections}_orders_per_s {rate:.0}");
                println!("RESULT http_{name}_{connections}_p99_ms {:.2}", step.percentile_ms(0.99));
                println!(
                    "RESULT http_{name}_{connections}_arrived_p99_ms {:.2}",
                    step.arrival_percentile_ms(0.99)
                );
            }
        }
        let (rss, peak) = server.memory_mib();
        println!("RESULT http_node_rss_mib {rss}");
        println!("RESULT http_node_peak_rss_mib {peak}");
        anyhow::Ok(())
    })?;
    bench.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_within_a_step_counts_whole_windows_of_every_connection() {
        let latency = Latency { read: Duration::from_millis(5), arrived: Duration::from_millis(4) };
        let at = |window: u64| RATE_WINDOW * window as u32 + Duration::from_millis(1);
        // Two connections over a step of ten windows: window w holds w
        // orders of the first and one of the second, except window 3,
        // which nobody answered in; window 10 is past the step's end.
        let (mut first, mut second) = (Step::new(Duration::ZERO), Step::new(Duration::ZERO));
        for window in (0..=10).filter(|&window| window != 3) {
            for _ in 0..window {
                first.record(201, &latency, at(window));
            }
            second.record(201, &latency, at(window));
        }
        second.record(409, &latency, at(4));
        let mut total = Step::new(RATE_WINDOW * 10 + Duration::from_millis(50));
        total.merge(first);
        total.merge(second);
        assert_eq!(total.placed, 52 + 10);
        assert_eq!(total.other, 1);
        // Whole windows hold 1, 2, 3, 0, 5, 6, 7, 8, 9, 10 orders.
        let per_second = |orders: f64| orders / RATE_WINDOW.as_secs_f64();
        assert_eq!(total.window_rate_quantile(0.0), per_second(0.0));
        assert_eq!(total.window_rate_quantile(0.1), per_second(1.0));
        assert_eq!(total.window_rate_quantile(0.9), per_second(9.0));
        assert_eq!(total.window_rate_quantile(1.0), per_second(10.0));
        assert_eq!(Step::new(Duration::from_millis(50)).window_rate_quantile(0.5), 0.0);
    }

    #[test]
    fn an_order_body_is_the_json_the_api_takes_for_the_request() {
        let mut request = seed::order_request(
            7,
            vec![(Sku::new(seed::HOT_SKU).unwrap(), 1), (seed::ordinary_sku(3), 2)],
            Some("D11-10"),
            None,
        );
        request.shipping_address.street = "1 \"Double\" Eleven Road\n".into();
        request.shipping_address.location.latitude_micro = -30_274_100;
        let body: Value = serde_json::from_slice(&order_body(&request)).unwrap();
        let address = &request.shipping_address;
        let expected = json!({
            "customer": {"id": request.customer.id.as_str()},
            "lines": [
                {"sku": seed::HOT_SKU, "quantity": 1},
                {"sku": seed::ordinary_sku(3).as_str(), "quantity": 2},
            ],
            "coupon_codes": ["D11-10"],
            "shipping_address": {
                "country": address.country, "region": address.region, "city": address.city,
                "street": address.street, "postal_code": address.postal_code,
                "location": {"latitude_micro": -30_274_100,
                             "longitude_micro": address.location.longitude_micro},
            },
        });
        assert_eq!(body, expected);
    }

    #[test]
    fn a_response_head_gives_its_status_and_body_length_whatever_the_case_of_its_names() {
        let head = b"HTTP/1.1 201 Created\r\nlocation: /v1/stores/s/orders/1\r\nContent-Length: 1234\r\n\r\n";
        assert_eq!(response_head(head).unwrap(), (201, 1234));
        let head =
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\n\r\n";
        assert_eq!(response_head(head).unwrap(), (503, 0));
    }

    #[test]
    fn the_stage_means_are_read_from_two_scrapes_of_the_node_s_metrics() {
        let scrape = |sums: [&str; 3], counts: [u32; 3]| {
            let mut text = String::from("bazaar_orders_placed_total 9\n");
            for ((stage, sum), count) in ORDER_STAGES.iter().zip(sums).zip(counts) {
                text += &format!(
                    "bazaar_order_stage_seconds_bucket{{stage=\"{stage}\",le=\"+Inf\"}} {count}\n"
                );
                text += &format!("bazaar_order_stage_seconds_sum{{stage=\"{stage}\"}} {sum}\n");
                text += &format!("bazaar_order_stage_seconds_count{{stage=\"{stage}\"}} {count}\n");
            }
            StageTotals::parse(&text).unwrap()
        };
        let before = scrape(["1", "0.5", "0"], [100, 100, 100]);
        let after = scrape(["1.003", "0.52", "0.0015"], [102, 102, 102]);
        let means = after.mean_ms_since(&before);
        let expected = [1.5, 10.0, 0.75];
        for (mean, expected) in means.iter().zip(expected) {
            assert!((mean - expected).abs() < 1e-9, "{means:?}");
        }
        // No orders between the scrapes: no mean, rather than a division by zero.
        assert_eq!(after.mean_ms_since(&after), [0.0; 3]);
        // A node without the stages is an error that names the missing series.
        let error = StageTotals::parse("bazaar_orders_placed_total 9\n").unwrap_err();
        assert!(error.to_string().contains("bazaar_order_stage_seconds_sum"), "{error}");
    }

    #[test]
    fn a_response_head_without_a_usable_length_is_refused() {
        for head in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999\r\n\r\n",
            b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n",
            b"garbage\r\n\r\n",
        ] {
            assert!(response_head(head).is_err(), "{}", String::from_utf8_lossy(head));
        }
    }
}
