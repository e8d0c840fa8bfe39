//! The `bazaar` command: the demo, the benchmarks and the soak load that
//! the crash test drives.

use std::path::PathBuf;
use std::process::ExitCode;

use bazaar::bench::{self, BenchOptions, Benchmark};
use bazaar::demo::{self, DemoOptions};
use bazaar::soak::{self, SoakOptions};
use bazaar_store::Backend;
use clap::{Parser, Subcommand};

/// Bazaar: a commerce operating system with sandboxed WebAssembly plugins.
#[derive(Parser)]
#[command(name = "bazaar", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
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
    },
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
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match Cli::parse().command {
        Commands::Demo { data_dir, orders, buyers, hot_stock, backend } => demo::run(DemoOptions {
            data_dir: data_dir.unwrap_or_else(|| PathBuf::from("bazaar-demo-data")),
            orders,
            buyers,
            hot_stock,
            backend,
        }),
        Commands::Bench { benchmark, orders, backend } => {
            bench::run(benchmark, BenchOptions { orders, backend })
        }
        Commands::Soak { data_dir, backend, clients, snapshot_every_commands } => {
            soak::run(SoakOptions { data_dir, backend, clients, snapshot_every_commands })
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
