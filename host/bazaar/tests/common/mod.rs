//! Helpers shared by the HTTP tests: a real `bazaar serve` process on a
//! free loopback port (its embedded MQTT broker on another, so test
//! processes running at once never contend for the standard MQTT port)
//! with a temporary data directory, a client that talks to it over TCP,
//! fixtures built through the API itself, and publishers whose keys are
//! made in the test to sign plugin packages.
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bazaar_registry::PublisherSecret;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Longest wait for the server to print its listening line: a cold start
/// compiles the plugins.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for a graceful stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a single HTTP exchange may take before the test fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The first-party analytics plugin.
pub const ANALYTICS_PLUGIN: &str = "analytics-live";

/// Every route the server registers, as (method, path template). The auth
/// matrix calls each one; the OpenAPI test checks the document lists
/// exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/health"),
    ("GET", "/v1/ready"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/docs"),
    ("POST", "/v1/tokens"),
    ("GET", "/v1/tokens"),
    ("DELETE", "/v1/tokens/{token_id}"),
    ("POST", "/v1/stores"),
    ("GET", "/v1/stores"),
    ("GET", "/v1/stores/{store}"),
    ("GET", "/v1/stores/{store}/products"),
    ("PUT", "/v1/stores/{store}/products/{sku}"),
    ("GET", "/v1/stores/{store}/products/{sku}"),
    ("GET", "/v1/stores/{store}/warehouses"),
    ("PUT", "/v1/stores/{store}/warehouses/{warehouse}"),
    ("POST", "/v1/stores/{store}/stock/receipts"),
    ("POST", "/v1/stores/{store}/stock/write-offs"),
    ("GET", "/v1/stores/{store}/stock"),
    ("GET", "/v1/stores/{store}/stock/{sku}"),
    ("GET", "/v1/stores/{store}/plugins"),
    ("PUT", "/v1/stores/{store}/plugins/{plugin}"),
    ("DELETE", "/v1/stores/{store}/plugins/{plugin}"),
    ("PUT", "/v1/stores/{store}/plugins/{plugin}/config"),
    ("DELETE", "/v1/stores/{store}/plugins/{plugin}/config"),
    ("PUT", "/v1/stores/{store}/pricing-rules"),
    ("POST", "/v1/stores/{store}/orders"),
    ("GET", "/v1/stores/{store}/orders"),
    ("GET", "/v1/stores/{store}/orders/{number}"),
    ("POST", "/v1/stores/{store}/orders/{number}/pay"),
    ("POST", "/v1/stores/{store}/orders/{number}/cancel"),
    ("POST", "/v1/stores/{store}/orders/{number}/fulfil"),
    ("POST", "/v1/stores/{store}/cart/price"),
    ("GET", "/v1/stores/{store}/analytics/{plugin}/{query}"),
    ("GET", "/v1/stores/{store}/analytics/{plugin}/stream"),
    ("PUT", "/v1/publishers/{publisher}"),
    ("GET", "/v1/publishers"),
    ("DELETE", "/v1/publishers/{publisher}"),
    ("POST", "/v1/plugins"),
    ("GET", "/v1/plugins"),
    ("GET", "/v1/plugins/{plugin}"),
    ("POST", "/v1/plugins/{plugin}/activate"),
    ("POST", "/v1/plugins/{plugin}/rollback"),
    ("PUT", "/v1/plugins/{plugin}/shadow"),
    ("GET", "/v1/plugins/{plugin}/shadow"),
    ("DELETE", "/v1/plugins/{plugin}/shadow"),
    ("POST", "/v1/plugins/{plugin}/shadow/promote"),
    ("DELETE", "/v1/plugins/{plugin}/versions/{version}"),
    ("GET", "/v1/plugins/{plugin}/stats"),
    ("GET", "/v1/breakers"),
    ("GET", "/metrics"),
    ("PUT", "/v1/stores/{store}/warehouses/{warehouse}/layout"),
    ("GET", "/v1/stores/{store}/warehouses/{warehouse}/layout"),
    ("GET", "/v1/stores/{store}/devices"),
    ("PUT", "/v1/stores/{store}/devices/{device}"),
    ("GET", "/v1/stores/{store}/devices/{device}"),
    ("DELETE", "/v1/stores/{store}/devices/{device}"),
    ("POST", "/v1/stores/{store}/devices/{device}/release"),
    ("GET", "/v1/stores/{store}/tasks"),
    ("POST", "/v1/stores/{store}/warehouses/{warehouse}/zones/{zone}/emergency-stop"),
    ("POST", "/v1/stores/{store}/warehouses/{warehouse}/zones/{zone}/resume"),
    ("GET", "/v1/devices"),
];

/// The first-party device driver.
pub const DRIVER_PLUGIN: &str = "driver-vda5050";

/// What the server prints before the address of its embedded MQTT broker.
const MQTT_LINE_PREFIX: &str = "device bus: embedded MQTT broker listening on ";

/// Where a server keeps its data.
enum DataDir<'a> {
    /// The directory named with `--data-dir`.
    Given(&'a Path),
    /// None named: the server's default, under its working directory.
    Default { working_dir: &'a Path },
}

/// The data directory a server uses when none is named, under its working
/// directory.
const DATA_DIR_DEFAULT: &str = "bazaar-data";

/// A running `bazaar serve` child process, killed when dropped (also when
/// a test panics).
pub struct Server {
    /// The process.
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The operator token from the data directory.
    pub operator: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// `mqtt://127.0.0.1:PORT` of the embedded MQTT broker, unless the
    /// test ran the server without one.
    pub mqtt: Option<String>,
    /// Keeps a temporary data directory alive as long as the server.
    _temp: Option<tempfile::TempDir>,
    /// Every line the server printed on stdout.
    pub output: Arc<Mutex<Vec<String>>>,
    /// Every line the server printed on stderr (also passed on to the
    /// test's stderr).
    pub errors: Arc<Mutex<Vec<String>>>,
    /// The HTTP client.
    pub client: reqwest::Client,
}

/// A response: status, headers and the JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON.
    pub json: Value,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message of an error body.
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }

    /// The `Retry-After` header in seconds, if present.
    pub fn retry_after_s(&self) -> Option<u64> {
        self.headers.get("retry-after")?.to_str().ok()?.parse().ok()
    }
}

impl Server {
    /// Starts a server on a fresh temporary data directory with `args`
    /// added to `serve --listen 127.0.0.1:0 --mqtt-listen 127.0.0.1:0
    /// --data-dir <temp>` (a test may add `--mqtt-disabled`).
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(args, &[])
    }

    /// Like [`Server::start`], with extra environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_temporary(&[], args, env)
    }

    /// Like [`Server::start`], with the server's command line run by
    /// `wrapper`: a program and its arguments that end by running the
    /// command line appended to them in the same process, such as `bash -c
    /// 'ulimit -Sn 256 && exec "$0" "$@"'`.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Server {
        Self::start_temporary(wrapper, args, &[])
    }

    /// Starts a server on `data_dir` (which the caller keeps).
    pub fn start_in(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(&[], DataDir::Given(data_dir), args, env)
    }

    /// Starts a server in `working_dir` without naming a data directory,
    /// so that it uses its default one there.
    pub fn start_with_default_data_dir(working_dir: &Path) -> Server {
        Self::launch(&[], DataDir::Default { working_dir }, &[], &[])
    }

    /// Starts a server on a fresh temporary data directory that lives as
    /// long as it.
    fn start_temporary(wrapper: &[&str], args: &[&str], env: &[(&str, &str)]) -> Server {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let dir = temp.path().join("data");
        let mut server = Self::launch(wrapper, DataDir::Given(&dir), args, env);
        server._temp = Some(temp);
        server
    }

    fn launch(
        wrapper: &[&str],
        data_dir: DataDir<'_>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let bazaar = env!("CARGO_BIN_EXE_bazaar");
        let mut command = match wrapper {
            [] => Command::new(bazaar),
            [program, wrapper_args @ ..] => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(bazaar);
                command
            }
        };
        command.args(["serve", "--listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"]);
        let data_dir = match data_dir {
            DataDir::Given(data_dir) => {
                command.arg("--data-dir").arg(data_dir);
                data_dir.to_path_buf()
            }
            DataDir::Default { working_dir } => {
                command.current_dir(working_dir);
                working_dir.join(DATA_DIR_DEFAULT)
            }
        };
        command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        // Settings from the environment of whoever runs the tests must not
        // leak into the server under test.
        for (key, _) in std::env::vars() {
            if key.starts_with("BAZAAR_") {
                command.env_remove(key);
            }
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the bazaar binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let errors = Arc::new(Mutex::new(Vec::new()));
        {
            let errors = errors.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("{line}");
                    errors.lock().unwrap().push(line);
                }
            });
        }
        let output = Arc::new(Mutex::new(Vec::new()));
        let (listening, address) = std::sync::mpsc::channel();
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // The broker's line comes first, so it is recorded when
                    // the listening line arrives.
                    output.lock().unwrap().push(line.clone());
                    if let Some(base) = line.strip_prefix("listening on ") {
                        let _ = listening.send(base.trim().to_string());
                    }
                }
            });
        }
        let base = match address.recv_timeout(STARTUP_TIMEOUT) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not start; it printed {:?}", output.lock().unwrap());
            }
        };
        let operator = std::fs::read_to_string(data_dir.join("operator-token"))
            .expect("the operator token file exists")
            .trim()
            .to_string();
        let mqtt = output
            .lock()
            .unwrap()
            .iter()
            .find_map(|line| line.strip_prefix(MQTT_LINE_PREFIX))
            .map(|address| address.trim().to_string());
        // No idle connections are kept: the server may end a connection
        // after refusing a request whose body it did not read (401, 403,
        // 413), and a pooled connection reused in that instant fails with
        // "connection closed before message completed": the client's race,
        // not the server's answer. A fresh loopback connection costs
        // microseconds.
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        Server { child, base, operator, data_dir, mqtt, _temp: None, output, errors, client }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop_gracefully(&mut self) -> ExitStatus {
        self.ask_to_stop();
        self.wait_for_exit()
    }

    /// Sends SIGTERM, as an operator stopping the node does.
    pub fn ask_to_stop(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit after [`Server::ask_to_stop`].
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the server") {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server printed a line containing `text`.
    pub fn printed(&self, text: &str) -> bool {
        self.output.lock().unwrap().iter().any(|line| line.contains(text))
    }

    /// A cloneable handle for requests from spawned tasks.
    pub fn api(&self) -> Api {
        Api { client: self.client.clone(), base: self.base.clone() }
    }

    /// Sends a request with optional bearer token, extra headers and raw body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        self.api().send(method, path, token, headers, body).await
    }

    /// Sends a request with a JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send(method, path, token, &[], body.map(|b| b.to_string())).await
    }

    /// Sends a request as the operator and asserts the status.
    pub async fn operator(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let reply = self.call(method, path, Some(&self.operator), body).await;
        assert_eq!(reply.status.as_u16(), expect, "{method} {path}: {}", reply.text);
        reply.json
    }

    /// Issues a token as the operator; returns (secret, id).
    pub async fn issue_token(
        &self,
        role: &str,
        stores: &[&str],
        plugins: &[&str],
    ) -> (String, String) {
        let body = json!({"role": role, "stores": stores, "plugins": plugins, "label": format!("{role} for tests")});
        let issued = self.operator("POST", "/v1/tokens", Some(body), 201).await;
        (
            issued["secret"].as_str().expect("a secret").to_string(),
            issued["token"]["id"].as_str().expect("an id").to_string(),
        )
    }

    /// Creates a store in CNY with warehouses HGH (Hangzhou) and PEK
    /// (Beijing), and `sku` at 5,999.00 with `units` split 60/40 between them.
    pub async fn seed_store(&self, store: &str, sku: &str, units: u64) {
        self.operator(
            "POST",
            "/v1/stores",
            Some(json!({"id": store, "name": format!("{store} shop"), "currency": "CNY"})),
            201,
        )
        .await;
        for (id, name, latitude, longitude) in [
            ("HGH", "Hangzhou", 30_274_100, 120_155_100),
            ("PEK", "Beijing", 39_904_200, 116_407_400),
        ] {
            self.operator(
                "PUT",
                &format!("/v1/stores/{store}/warehouses/{id}"),
                Some(json!({"name": name, "location": {"latitude_micro": latitude, "longitude_micro": longitude}})),
                200,
            )
            .await;
        }
        self.operator(
            "PUT",
            &format!("/v1/stores/{store}/products/{sku}"),
            Some(json!({"title": "Double 11 phone", "price": {"amount_minor": 599_900, "currency": "CNY"}})),
            200,
        )
        .await;
        let hangzhou = units * 6 / 10;
        for (warehouse, quantity) in [("HGH", hangzhou), ("PEK", units - hangzhou)] {
            if quantity > 0 {
                self.operator(
                    "POST",
                    &format!("/v1/stores/{store}/stock/receipts"),
                    Some(json!({"sku": sku, "warehouse": warehouse, "quantity": quantity})),
                    200,
                )
                .await;
            }
        }
    }

    /// Configures the first-party plugins of `store` with the Double-11
    /// promotions and carriers.
    pub async fn configure_plugins(&self, store: &str) {
        for (plugin, config) in [
            ("pricing-promotions", bazaar_node::seed::PROMOTIONS_CONFIG),
            ("logistics-router", bazaar_node::seed::ROUTER_CONFIG),
        ] {
            let config: Value = serde_json::from_str(config).expect("seed configs are JSON");
            self.operator(
                "PUT",
                &format!("/v1/stores/{store}/plugins/{plugin}/config"),
                Some(config),
                200,
            )
            .await;
        }
    }

    /// Enables the first-party analytics plugin for `store`, following
    /// the sell-through of `flash_skus`.
    pub async fn enable_analytics(&self, store: &str, flash_skus: &[&str]) {
        self.operator(
            "PUT",
            &format!("/v1/stores/{store}/plugins/{ANALYTICS_PLUGIN}"),
            Some(json!({
                "config": {"flash_skus": flash_skus},
                "consent": ["log", "config", "state"],
            })),
            200,
        )
        .await;
    }

    /// Places an order of `quantity` of `sku` for `customer` as the
    /// operator; returns the order.
    pub async fn place_order(
        &self,
        store: &str,
        customer: &str,
        sku: &str,
        quantity: u32,
    ) -> Value {
        self.operator(
            "POST",
            &format!("/v1/stores/{store}/orders"),
            Some(order_body(customer, sku, quantity)),
            201,
        )
        .await
    }

    /// The stock of `sku` in `store` (totals), as the operator sees it.
    pub async fn stock_totals(&self, store: &str, sku: &str) -> Value {
        self.operator("GET", &format!("/v1/stores/{store}/stock/{sku}"), None, 200).await["totals"]
            .clone()
    }

    /// Every order of `store`, following the pagination.
    pub async fn all_orders(&self, store: &str) -> Vec<Value> {
        let mut orders = Vec::new();
        let mut after: Option<u64> = None;
        loop {
            let path = match after {
                Some(after) => format!("/v1/stores/{store}/orders?limit=100&after={after}"),
                None => format!("/v1/stores/{store}/orders?limit=100"),
            };
            let page = self.operator("GET", &path, None, 200).await;
            orders.extend(page["orders"].as_array().expect("orders").iter().cloned());
            match page["next_after"].as_u64() {
                Some(next) => after = Some(next),
                None => return orders,
            }
        }
    }
}

/// Longest wait for the device bus to connect to the embedded broker.
const BUS_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Server {
    /// Enables the first-party device driver for `store` as the operator.
    pub async fn enable_driver(&self, store: &str) {
        self.operator(
            "PUT",
            &format!("/v1/stores/{store}/plugins/{DRIVER_PLUGIN}"),
            Some(json!({"config": {}, "consent": ["log", "config"]})),
            200,
        )
        .await;
    }

    /// Waits until the device bus is connected to its broker.
    pub async fn wait_for_bus(&self) {
        let deadline = Instant::now() + BUS_CONNECT_TIMEOUT;
        loop {
            let fleet = self.operator("GET", "/v1/devices", None, 200).await;
            if fleet["bus"]["connected"] == true {
                return;
            }
            assert!(Instant::now() < deadline, "the device bus did not connect: {fleet}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A cloneable client of one server.
#[derive(Clone)]
pub struct Api {
    /// The HTTP client (shares its connection pool between clones).
    pub client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Api {
    /// Sends a request with optional bearer token, extra headers and raw body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        self.try_send(method, path, token, headers, body).await.expect("the server answers")
    }

    /// Like [`Api::send`], for a test that expects some requests to find
    /// no server (one that is stopping, say).
    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Reply, reqwest::Error> {
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            // JSON unless the test declares the body's type itself.
            if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
                request = request.header("content-type", "application/json");
            }
            request = request.body(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, headers, json, text })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plugin publisher with a key pair generated for one test.
pub struct Publisher {
    /// The publisher id, as in its manifests.
    pub id: String,
    /// Its secret key.
    pub secret: PublisherSecret,
}

impl Publisher {
    /// A publisher `id` with a fresh key.
    pub fn new(id: &str) -> Self {
        Self { id: id.to_string(), secret: PublisherSecret::generate() }
    }

    /// Its public key, hex.
    pub fn public_key(&self) -> String {
        self.secret.public_key().to_string()
    }

    /// The install body of a package of `manifest` and `component`, signed
    /// with this publisher's key.
    pub fn package(&self, manifest: &str, component: &[u8]) -> Value {
        let signature = bazaar_registry::sign(&self.secret, manifest.as_bytes(), component);
        let mut body = unsigned_package(manifest, component);
        body["signature"] = Value::String(signature.to_string());
        body
    }

    /// The install body of a built artifact, signed with this key.
    pub fn artifact(&self, artifact: &bazaar_artifacts::Artifact) -> Value {
        self.package(artifact.manifest, artifact.wasm)
    }
}

/// The install body of a package without a signature.
pub fn unsigned_package(manifest: &str, component: &[u8]) -> Value {
    json!({
        "manifest": manifest,
        "component": base64::engine::general_purpose::STANDARD.encode(component),
    })
}

impl Server {
    /// Trusts `publisher`'s key as the operator.
    pub async fn trust(&self, publisher: &Publisher) {
        self.operator(
            "PUT",
            &format!("/v1/publishers/{}", publisher.id),
            Some(json!({"public_key": publisher.public_key()})),
            200,
        )
        .await;
    }

    /// Posts an install body with `token`.
    pub async fn install(&self, token: &str, package: &Value) -> Reply {
        self.call("POST", "/v1/plugins", Some(token), Some(package.clone())).await
    }
}

/// An order body for `customer` buying `quantity` of `sku`, shipped to
/// Hangzhou.
pub fn order_body(customer: &str, sku: &str, quantity: u32) -> Value {
    json!({
        "customer": {"id": customer, "segment": "regular"},
        "lines": [{"sku": sku, "quantity": quantity}],
        "shipping_address": {
            "country": "CN",
            "region": "Zhejiang",
            "city": "Hangzhou",
            "street": "1 Double Eleven Road",
            "postal_code": "310000",
            "location": {"latitude_micro": 30_274_100, "longitude_micro": 120_155_100}
        }
    })
}
