//! `warehouse-sim`: runs a fleet of simulated VDA 5050 vehicles against an
//! MQTT broker, placed on the nodes of a square grid, printing a status line
//! every few seconds until Ctrl-C, then disconnecting gracefully.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use warehouse::{FLEET_VEHICLES_MAX, Fleet, FleetConfig, VehicleStatus, grid_vehicles};

/// Usage text.
const USAGE: &str = "\
warehouse-sim: a fleet of simulated VDA 5050 2.0 vehicles over MQTT

Options (defaults in brackets):
  --broker HOST:PORT                 MQTT broker [127.0.0.1:1883]
  --vehicles N                       number of vehicles [10]
  --speedup K                        time-lapse factor [1]
  --manufacturer M                   manufacturer in topics and headers [BazaarSim]
  --serial-prefix P                  serial numbers are P001, P002, ... [agv-]
  --grid-spacing-mm D                distance between grid nodes [2000]
  --map-id ID                        map of the grid [warehouse]
  --model NAME                       vehicle model [SimCarrier]
  --interface-name NAME              first topic level [uagv]
  --major-version V                  second topic level [v2]
  --speed-mm-per-s S                 cruising speed [1500]
  --action-duration-ms MS            duration of each node action [2000]
  --state-interval-ms MS             periodic state interval [1000]
  --visualization-interval-ms MS     visualization interval, 0 = off [500]
  --status-interval-s S              status line interval [5]
  --help                             this text

Vehicle i stands on grid node n{column}-{row} at (column, row) x spacing.";

/// Longest accepted status interval: a status line at least once an hour.
const STATUS_INTERVAL_S_MAX: u64 = 3600;

/// Everything the command line sets.
#[derive(Debug)]
struct Options {
    /// The fleet's configuration.
    config: FleetConfig,
    /// Number of vehicles.
    vehicles: usize,
    /// Serial number prefix.
    serial_prefix: String,
    /// Grid spacing, mm.
    grid_spacing_mm: i64,
    /// Map id.
    map_id: String,
    /// Vehicle model.
    model: String,
    /// Status line interval, s.
    status_interval_s: u64,
}

/// Parses the command line; `Ok(None)` when help was asked for.
fn parse(arguments: impl Iterator<Item = String>) -> anyhow::Result<Option<Options>> {
    let mut options = Options {
        config: FleetConfig::default(),
        vehicles: 10,
        serial_prefix: "agv-".to_owned(),
        grid_spacing_mm: 2000,
        map_id: "warehouse".to_owned(),
        model: "SimCarrier".to_owned(),
        status_interval_s: 5,
    };
    let mut arguments = arguments;
    while let Some(flag) = arguments.next() {
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let value = arguments.next().with_context(|| format!("{flag} needs a value"))?;
        let number = |what: &str| -> anyhow::Result<u64> {
            value.parse().with_context(|| format!("{what} must be a whole number, not {value:?}"))
        };
        let config = &mut options.config;
        match flag.as_str() {
            "--broker" => {
                let (host, port) = value.rsplit_once(':').context("--broker must be HOST:PORT")?;
                config.broker_host = host.to_owned();
                config.broker_port =
                    port.parse().with_context(|| format!("bad broker port {port:?}"))?;
            }
            "--vehicles" => options.vehicles = usize::try_from(number("--vehicles")?)?,
            "--speedup" => config.speedup = u32::try_from(number("--speedup")?)?,
            "--manufacturer" => config.manufacturer = value,
            "--serial-prefix" => options.serial_prefix = value,
            "--grid-spacing-mm" => {
                options.grid_spacing_mm = i64::try_from(number("--grid-spacing-mm")?)?
            }
            "--map-id" => options.map_id = value,
            "--model" => options.model = value,
            "--interface-name" => config.interface_name = value,
            "--major-version" => config.major_version = value,
            "--speed-mm-per-s" => {
                config.speed_mm_per_s = u32::try_from(number("--speed-mm-per-s")?)?
            }
            "--action-duration-ms" => config.action_duration_ms = number("--action-duration-ms")?,
            "--state-interval-ms" => config.state_interval_ms = number("--state-interval-ms")?,
            "--visualization-interval-ms" => {
                config.visualization_interval_ms = number("--visualization-interval-ms")?;
            }
            "--status-interval-s" => options.status_interval_s = number("--status-interval-s")?,
            other => bail!("unknown option {other} (see --help)"),
        }
    }
    if options.vehicles > FLEET_VEHICLES_MAX {
        bail!("--vehicles must be at most {FLEET_VEHICLES_MAX}");
    }
    if !(1..=STATUS_INTERVAL_S_MAX).contains(&options.status_interval_s) {
        bail!("--status-interval-s must be between 1 and {STATUS_INTERVAL_S_MAX}");
    }
    Ok(Some(options))
}

/// One line summing up the fleet.
fn summary(statuses: &[VehicleStatus]) -> String {
    let count =
        |predicate: fn(&VehicleStatus) -> bool| statuses.iter().filter(|s| predicate(s)).count();
    format!(
        "vehicles {} | connected {} | driving {} | paused {} | loaded {} | orders completed {} | with errors {}",
        statuses.len(),
        count(|status| status.connected),
        count(|status| status.driving),
        count(|status| status.paused),
        count(|status| status.loads > 0),
        statuses.iter().map(|status| status.orders_completed).sum::<u64>(),
        count(|status| !status.errors.is_empty()),
    )
}

/// Runs the fleet until Ctrl-C.
async fn run(options: Options) -> anyhow::Result<()> {
    let vehicles = grid_vehicles(
        options.vehicles,
        &options.serial_prefix,
        options.grid_spacing_mm,
        &options.map_id,
        &options.model,
    );
    let broker = format!("{}:{}", options.config.broker_host, options.config.broker_port);
    let fleet = Fleet::spawn(options.config, vehicles).await?;
    println!("{} vehicles online at {broker}; Ctrl-C to stop", options.vehicles);
    let mut ticker = tokio::time::interval(Duration::from_secs(options.status_interval_s));
    ticker.tick().await;
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal.context("cannot listen for Ctrl-C")?;
                break;
            }
            _ = ticker.tick() => println!("{}", summary(&fleet.status())),
        }
    }
    println!("disconnecting...");
    fleet.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("warehouse-sim: {error:#}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("warehouse-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}
