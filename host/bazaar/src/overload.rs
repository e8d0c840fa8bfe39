//! `bazaar bench overload`: a crowd four times what a node admits, against
//! a real `bazaar serve` whose cap is set low, to measure how fast the
//! refused hear so and what the admitted still get.
//!
//! Two steps, each on a fresh node and the one hot SKU: one with the node's
//! connections capped (`--connections-max`), where the crowd past the cap is
//! answered 503 as it connects, and one with its requests in flight capped
//! (`--in-flight-max`), where every client holds a connection and the
//! requests past the cap are answered 503. Every client places one order
//! after another; a refused one waits the `Retry-After` it was given, as a
//! well-behaved client does, and tries again on a new connection. A refusal
//! is timed from the start of its attempt, its connection included, to the
//! last byte of the 503. An attempt that has waited more than
//! [`STALLED_AFTER`] unanswered when the step ends is counted as stalled:
//! a refusal that never comes is the timeout the caps exist to prevent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bazaar_kernel::model::StoreId;
use tokio::sync::watch;

use crate::loadgen::{
    Bench, Connection, HOT_STOCK, HOT_STORE, OrderClient, Scenario, order_paths, percentile_ms,
    seed_stores,
};

/// The cap each step sets, on connections or on requests in flight.
const CAP: usize = 256;
/// Clients in the crowd: four times the cap.
const CLIENTS: usize = 4 * CAP;
/// Seconds of load per step.
const STEP_SECONDS: u64 = 10;
/// An attempt unanswered for longer than this is stalled: an admitted
/// order takes tens of milliseconds, a refusal less.
const STALLED_AFTER: Duration = Duration::from_secs(1);

/// What a step caps.
#[derive(Clone, Copy)]
enum Capped {
    Connections,
    InFlight,
}

impl Capped {
    fn name(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::InFlight => "in_flight",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Self::Connections => "--connections-max",
            Self::InFlight => "--in-flight-max",
        }
    }
}

/// One client's or one step's figures.
#[derive(Default)]
struct Tally {
    /// Acknowledged orders' latency, microseconds.
    placed_us: Vec<u32>,
    /// Refusals' latency (503, connection included), microseconds.
    refused_us: Vec<u32>,
    /// Answers with any other status.
    other: u64,
    /// Attempts whose connection failed or was closed without an answer.
    broken: u64,
    /// Attempts unanswered for over [`STALLED_AFTER`] when the step ended.
    stalled: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.placed_us.extend(other.placed_us);
        self.refused_us.extend(other.refused_us);
        self.other += other.other;
        self.broken += other.broken;
        self.stalled += other.stalled;
    }
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// Runs the benchmark and prints its figures.
pub fn run() -> anyhow::Result<()> {
    println!(
        "a crowd of {CLIENTS} clients ordering the hot SKU for {STEP_SECONDS} s against a node capped at {CAP}; refusals timed from the attempt's start, its connection included"
    );
    println!(
        "{:<12}{:>10}{:>11}{:>8}{:>8}{:>12}{:>8}{:>8}{:>8}{:>12}{:>8}",
        "capped",
        "orders/s",
        "order p50",
        "p99",
        "p99.9",
        "refusals/s",
        "p50",
        "p99",
        "max",
        "stalled",
        "broken"
    );
    for capped in [Capped::Connections, Capped::InFlight] {
        step(capped)?;
    }
    Ok(())
}

/// One step on a fresh node.
fn step(capped: Capped) -> anyhow::Result<()> {
    let cap = CAP.to_string();
    let bench = Bench::start_with(&[capped.flag(), &cap])?;
    let (address, authorization) = (bench.server.address, bench.authorization.clone());
    let mut tally = bench.run(async {
        let mut admin = Connection::open(address, authorization.clone()).await?;
        seed_stores(&mut admin, &[(StoreId::new(HOT_STORE)?, HOT_STOCK)]).await?;
        drop(admin);
        crowd(address, authorization).await
    })?;
    bench.finish()?;
    tally.placed_us.sort_unstable();
    tally.refused_us.sort_unstable();
    let per_second = |count: usize| count as f64 / STEP_SECONDS as f64;
    let name = capped.name();
    println!(
        "{name:<12}{:>10.0}{:>11.2}{:>8.2}{:>8.2}{:>12.0}{:>8.2}{:>8.2}{:>8.2}{:>12}{:>8}",
        per_second(tally.placed_us.len()),
        percentile_ms(&tally.placed_us, 0.5),
        percentile_ms(&tally.placed_us, 0.99),
        percentile_ms(&tally.placed_us, 0.999),
        per_second(tally.refused_us.len()),
        percentile_ms(&tally.refused_us, 0.5),
        percentile_ms(&tally.refused_us, 0.99),
        percentile_ms(&tally.refused_us, 1.0),
        tally.stalled,
        tally.broken + tally.other,
    );
    println!("RESULT overload_{name}_orders_per_s {:.0}", per_second(tally.placed_us.len()));
    println!("RESULT overload_{name}_refusals_per_s {:.0}", per_second(tally.refused_us.len()));
    println!("RESULT overload_{name}_refusal_p99_ms {:.2}", percentile_ms(&tally.refused_us, 0.99));
    println!("RESULT overload_{name}_stalled {}", tally.stalled);
    Ok(())
}

/// Runs the crowd for [`STEP_SECONDS`]; every client's figures together.
async fn crowd(address: SocketAddr, authorization: Arc<str>) -> anyhow::Result<Tally> {
    let (stop, stopped) = watch::channel(false);
    let paths: Arc<[String]> = order_paths(Scenario::Hot).into();
    let mut clients = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let (authorization, paths, stopped) =
            (authorization.clone(), paths.clone(), stopped.clone());
        clients.push(tokio::spawn(async move {
            crowd_client(address, &authorization, &paths, client as u64, stopped).await
        }));
    }
    tokio::time::sleep(Duration::from_secs(STEP_SECONDS)).await;
    stop.send(true).context("stopping the crowd")?;
    let mut total = Tally::default();
    for client in clients {
        total.merge(client.await?);
    }
    Ok(total)
}

/// One client of the crowd, until `stopped`: attempt numbers `first`,
/// `first + CLIENTS`, … so every order has its own key.
async fn crowd_client(
    address: SocketAddr,
    authorization: &str,
    paths: &[String],
    first: u64,
    mut stopped: watch::Receiver<bool>,
) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<OrderClient> = None;
    let mut attempt = first;
    while !*stopped.borrow() {
        let started = Instant::now();
        let answer = async {
            if connection.is_none() {
                connection = Some(OrderClient::open(address, authorization).await?);
            }
            let client = connection.as_mut().context("a connection")?;
            client.order(Scenario::Hot, paths, attempt).await.map(|(status, _)| status)
        };
        let answer = tokio::select! {
            answer = answer => answer,
            _ = stopped.changed() => {
                tally.stalled += u64::from(started.elapsed() > STALLED_AFTER);
                break;
            }
        };
        attempt += CLIENTS as u64;
        match answer {
            Ok(201) => tally.placed_us.push(micros(started.elapsed())),
            Ok(503) => {
                tally.refused_us.push(micros(started.elapsed()));
                // The node may have closed the connection after its answer;
                // the next attempt, after the wait asked for, opens another.
                connection = None;
                let retry_after = Duration::from_secs(bazaar_server::OVERLOAD_RETRY_AFTER_S);
                tokio::select! {
                    () = tokio::time::sleep(retry_after) => {}
                    _ = stopped.changed() => break,
                }
            }
            Ok(_) => tally.other += 1,
            Err(_) => {
                tally.broken += 1;
                connection = None;
            }
        }
    }
    tally
}
