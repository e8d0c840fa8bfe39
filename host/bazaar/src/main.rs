//! The `bazaar` command: the HTTP service, the demo, the benchmarks and the
//! soak load that the crash test drives.

use std::path::PathBuf;
use std::process::ExitCode;

use bazaar::bench::{self, BenchOptions, Benchmark};
use bazaar::demo::{self, DemoOptions};
use bazaar::loadgen::{HttpBenchOptions, Scenario};
use bazaar::plugin_cli::{self, PluginCommand};
use bazaar::soak::{self, SoakOptions};
use bazaar_server::{LogFormat, Settings};
use bazaar_store::Backend;
use clap::{Parser, Subcommand};

/// Bazaar: a commerce operating system with sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "bazaar", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

/// How `bazaar serve` settings combine, shown by `bazaar serve --help`.
const SERVE_HELP: &str = "\
Configuration: every setting works with no configuration at all. Each one can be
set in a TOML file (--config), in an environment variable, or by a flag; a flag
beats the environment, which beats the file, which beats the default. The names
match: `in_flight_max = 64` in the file, BAZAAR_IN_FLIGHT_MAX=64, --in-flight-max 64.

Tokens: on first start an operator token is generated and written to
<data-dir>/operator-token (mode 0600); use it as `Authorization: Bearer <token>`
and issue narrower tokens with POST /v1/tokens. The API is described at
/v1/openapi.json and browsable at /docs.

Observability: Prometheus metrics at /metrics (an operator token is needed
unless --metrics-public); logs on standard error, as text or, with
--log-format json, one JSON object per line; RUST_LOG sets the level.

Devices: the node embeds an MQTT broker on 127.0.0.1:1883 for its robots
(--mqtt-listen; port 0 picks a free port), or connects to an external one
(--mqtt-broker mqtt://host:port), or runs without a device bus (--mqtt-disabled).

Stop with Ctrl-C or SIGTERM: requests in flight finish and the journal is flushed.";

#[derive(Subcommand)]
enum Commands {
    /// Serve the HTTP JSON API (default: http://127.0.0.1:1111, data in ./bazaar-data).
    #[command(after_long_help = SERVE_HELP)]
    Serve(Box<ServeArgs>),
    /// Run a Double-11 flash sale against a live node and report on it.
    Demo {
        /// Data directory (default: a fresh `bazaar-demo-data` in the working directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Order attempts to make.
        #[arg(long, default_value_t = 200_000)]
        orders: u64,
        /// Concurrent buyers.
        #[arg(long, default_value_t = 256)]
        buyers: u32,
        /// Units of the flash-sale phone in stock.
        #[arg(long, default_value_t = 20_000)]
        hot_stock: u64,
        /// Storage engine.
        #[arg(long, default_value_t = Backend::Redb)]
        backend: Backend,
        /// Simulated VDA 5050 robots that then fulfil paid orders over the
        /// embedded MQTT broker (0 skips the warehouse part).
        #[arg(long, default_value_t = 10)]
        robots: usize,
        /// Paid orders the robots fulfil.
        #[arg(long, default_value_t = 200)]
        robot_orders: u64,
    },
    /// Run a benchmark and print its figures.
    Bench {
        /// Which benchmark.
        #[arg(value_enum)]
        benchmark: Benchmark,
        /// Orders (or calls) to measure.
        #[arg(long)]
        orders: Option<u64>,
        /// Storage engine.
        #[arg(long, default_value_t = Backend::Redb)]
        backend: Backend,
        /// HTTP benchmark: connection counts, one step each.
        #[arg(long, value_delimiter = ',', default_values_t = bazaar::loadgen::CONNECTIONS_DEFAULT)]
        connections: Vec<usize>,
        /// HTTP benchmark: seconds of load per step.
        #[arg(long, default_value_t = bazaar::loadgen::STEP_SECONDS_DEFAULT)]
        seconds: u64,
        /// HTTP benchmark: scenarios to run.
        #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Scenario::Mixed, Scenario::Hot])]
        scenarios: Vec<Scenario>,
    },
    /// Publish and manage plugins: keys, signatures, install, activate, roll back.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Place orders continuously against a node, printing one line per
    /// acknowledged order (`ack <idempotency-key> <order-number>`) until killed.
    Soak {
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// Storage engine.
        #[arg(long, default_value_t = Backend::Redb)]
        backend: Backend,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: u32,
        /// Commands between snapshots of a shard.
        #[arg(long, default_value_t = bazaar_node::node::SNAPSHOT_EVERY_COMMANDS_DEFAULT)]
        snapshot_every_commands: u64,
        /// Keep event records after the consumer read them, so the whole
        /// stream can be recomputed (the crash test compares with that).
        #[arg(long)]
        keep_events: bool,
    },
}

/// Flags of `bazaar serve`; each unset one falls back to its environment
/// variable, then to the configuration file, then to the default.
#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file; its keys are the flag names with underscores.
    #[arg(long, env = "BAZAAR_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:1111]; port 0 picks a free port.
    #[arg(long, env = "BAZAAR_LISTEN")]
    listen: Option<String>,
    /// Data directory: journal, snapshots, tokens [default: ./bazaar-data].
    #[arg(long, env = "BAZAAR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Storage engine: redb, or sled when built with it [default: redb].
    #[arg(long, env = "BAZAAR_BACKEND")]
    backend: Option<String>,
    /// Shards of a new data directory, one writer thread each [default: 2].
    #[arg(long, env = "BAZAAR_SHARDS")]
    shards: Option<u32>,
    /// Requests queued per shard before the node answers 503 [default: 8192].
    #[arg(long, env = "BAZAAR_SHARD_QUEUE_DEPTH")]
    shard_queue_depth: Option<usize>,
    /// Orders the node holds (all in memory) before it refuses new ones
    /// with 507 [default: 4000000, about 6.6 GiB].
    #[arg(long, env = "BAZAAR_ORDERS_HELD_MAX")]
    orders_held_max: Option<u64>,
    /// Requests served at once before the server answers 503 [default: 4096].
    #[arg(long, env = "BAZAAR_IN_FLIGHT_MAX")]
    in_flight_max: Option<usize>,
    /// Open connections at once; more are answered 503 and closed [default: 4096].
    #[arg(long, env = "BAZAAR_CONNECTIONS_MAX")]
    connections_max: Option<usize>,
    /// Requests per second to one store's routes, 0 = no limit [default: 0].
    #[arg(long, env = "BAZAAR_STORE_RATE_PER_SECOND")]
    store_rate_per_second: Option<u32>,
    /// Burst of the per-store limit [default: one second's worth].
    #[arg(long, env = "BAZAAR_STORE_RATE_BURST")]
    store_rate_burst: Option<u32>,
    /// Orders and cart prices per second per customer of a store, 0 = no limit [default: 0].
    #[arg(long, env = "BAZAAR_CUSTOMER_RATE_PER_SECOND")]
    customer_rate_per_second: Option<u32>,
    /// Burst of the per-customer limit [default: one second's worth].
    #[arg(long, env = "BAZAAR_CUSTOMER_RATE_BURST")]
    customer_rate_burst: Option<u32>,
    /// Log format on standard error: text or json [default: text].
    #[arg(long, env = "BAZAAR_LOG_FORMAT")]
    log_format: Option<String>,
    /// Serve GET /metrics without a token, for a Prometheus scraper that
    /// sends none (keep the port to the monitoring network) [default: false].
    #[arg(long, env = "BAZAAR_METRICS_PUBLIC", num_args = 0..=1, default_missing_value = "true")]
    metrics_public: Option<bool>,
    /// Address and port of the embedded MQTT broker robots connect to
    /// [default: 127.0.0.1:1883]; port 0 picks a free port.
    #[arg(long, env = "BAZAAR_MQTT_LISTEN")]
    mqtt_listen: Option<String>,
    /// An external MQTT broker, mqtt://host:port; when set, no broker is
    /// embedded and --mqtt-listen is not used.
    #[arg(long, env = "BAZAAR_MQTT_BROKER")]
    mqtt_broker: Option<String>,
    /// Run without a device bus: devices can be registered, nothing drives
    /// them, emergency stops are refused [default: false].
    #[arg(long, env = "BAZAAR_MQTT_DISABLED", num_args = 0..=1, default_missing_value = "true")]
    mqtt_disabled: Option<bool>,
    /// How often the device bus dispatches tasks to free robots, in ms [default: 50].
    #[arg(long, env = "BAZAAR_BUS_DISPATCH_INTERVAL_MS")]
    bus_dispatch_interval_ms: Option<u64>,
    /// How long a robot's job may report no progress before its task goes
    /// to another robot, in ms [default: 120000].
    #[arg(long, env = "BAZAAR_BUS_JOB_PROGRESS_TIMEOUT_MS")]
    bus_job_progress_timeout_ms: Option<u64>,
    /// Commands per second one device may be sent (pauses and resumes are
    /// never held back) [default: 10].
    #[arg(long, env = "BAZAAR_BUS_DEVICE_COMMANDS_PER_SECOND")]
    bus_device_commands_per_second: Option<u32>,
}

/// Runs `bazaar serve`: flags and environment over the file over the defaults.
fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let given = Settings {
        listen: args.listen,
        data_dir: args.data_dir,
        backend: args.backend,
        shards: args.shards,
        shard_queue_depth: args.shard_queue_depth,
        orders_held_max: args.orders_held_max,
        in_flight_max: args.in_flight_max,
        connections_max: args.connections_max,
        store_rate_per_second: args.store_rate_per_second,
        store_rate_burst: args.store_rate_burst,
        customer_rate_per_second: args.customer_rate_per_second,
        customer_rate_burst: args.customer_rate_burst,
        log_format: args.log_format,
        metrics_public: args.metrics_public,
        mqtt_listen: args.mqtt_listen,
        mqtt_broker: args.mqtt_broker,
        mqtt_disabled: args.mqtt_disabled,
        bus_dispatch_interval_ms: args.bus_dispatch_interval_ms,
        bus_job_progress_timeout_ms: args.bus_job_progress_timeout_ms,
        bus_device_commands_per_second: args.bus_device_commands_per_second,
    };
    let config = given.over(file).resolve()?;
    init_logging(config.log_format);
    bazaar_server::serve_blocking(config)
}

/// Sends `tracing` events to standard error in `format`, at the level
/// `RUST_LOG` asks (warnings by default). The embedded MQTT broker logs
/// every ordinary client disconnect as an error, so its own lines are off
/// unless `RUST_LOG` names them (`RUST_LOG=warn,rumqttd=info`); the bus
/// reports what matters to the node itself.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "warn,rumqttd=off".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        // Fields at the top level of each object, as log collectors index them.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
}

/// The node allocates and frees many small strings per order (ids, JSON,
/// plugin inputs); mimalloc's thread-local free lists make that markedly
/// cheaper than the system allocator under load (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process. mimalloc asks for
/// them on its arenas, and it returns freed memory to the system; a batch's
/// short-lived buffers touched again then fault in a whole 2 MiB page,
/// zeroed, for a few kilobytes. Profiles of checkout under load showed a
/// tenth of the shard writer's time in that zeroing, and the 256-connection
/// HTTP benchmark's p99 fell by a sixth without it (see BENCHMARKS.md).
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("warning: could not turn transparent huge pages off: {error}");
    }
}

/// Raises this process's soft limit on open files to its hard limit. A
/// node holds a socket per connection (up to `connections_max`, 4,096 by
/// default) beside its data files, and `bench http` opens 1,024
/// connections at once; the soft limit many systems start processes with,
/// 1,024, would refuse accepts and connects well before either. The hard
/// limit stays the operator's to set.
fn open_files_up_to_the_hard_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        // An unlimited hard limit cannot be the soft one for open files
        // (the kernel caps it at `fs.nr_open`): the soft limit then stays.
        if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
            && current < maximum
        {
            let raised = Rlimit { current: Some(maximum), maximum: Some(maximum) };
            if let Err(error) = setrlimit(Resource::Nofile, raised) {
                eprintln!("warning: could not raise the open files limit: {error}");
            }
        }
    }
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    open_files_up_to_the_hard_limit();
    let command = Cli::parse().command;
    // `serve` sets up its logs once its configuration says in which format.
    if !matches!(command, Commands::Serve(_)) {
        init_logging(LogFormat::Text);
    }
    let result = match command {
        Commands::Serve(args) => serve(*args),
        Commands::Demo { data_dir, orders, buyers, hot_stock, backend, robots, robot_orders } => {
            demo::run(DemoOptions {
                data_dir: data_dir.unwrap_or_else(|| PathBuf::from("bazaar-demo-data")),
                orders,
                buyers,
                hot_stock,
                backend,
                robots,
                robot_orders,
            })
        }
        Commands::Bench { benchmark, orders, backend, connections, seconds, scenarios } => {
            let http = HttpBenchOptions { connections, step_seconds: seconds, scenarios };
            bench::run(benchmark, BenchOptions { orders, backend, http })
        }
        Commands::Plugin(command) => plugin_cli::run(command),
        Commands::Soak { data_dir, backend, clients, snapshot_every_commands, keep_events } => {
            soak::run(SoakOptions {
                data_dir,
                backend,
                clients,
                snapshot_every_commands,
                keep_events,
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
