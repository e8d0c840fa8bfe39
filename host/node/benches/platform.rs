//! The plugin platform's benchmarks: how long a version swap takes to
//! serve, how fast a node with 50 installed plugins is ready again, what a
//! hostile plugin failing on one store costs the others, and what each
//! pricing plugin adds to a store's pipeline. Prints its figures and
//! `RESULT <name> <value> <unit>` lines for BENCHMARKS.md.
//!
//! Run with `cargo bench -p bazaar-node --bench platform`. It uses the test
//! guests (a hostile plugin, a plugin built in two versions), which the
//! production binary does not carry.

use std::path::Path;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bazaar_artifacts::Artifact;
use bazaar_kernel::model::{PluginId, StoreId};
use bazaar_kernel::{Command, PluginSettings};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::platform::Platform;
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;
use bazaar_registry::{Package, PublisherSecret, sign};
use common::{drive, median};

/// Swaps measured.
const SWAPS: usize = 200;
/// Plugins installed for the restart benchmark.
const RESTART_PLUGINS: usize = 50;
/// Orders per throughput run.
const ORDERS_PER_RUN: u64 = 150_000;
/// Rounds of each throughput comparison; the median is reported, and the
/// runs being compared alternate, so a noisy neighbour on the machine
/// weighs on both sides alike.
const ROUNDS: usize = 3;
/// Healthy stores the throughput runs spread orders over.
const STORES: usize = 8;

fn main() -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores, {}", std::env::consts::ARCH);
    swap_latency()?;
    restart_with_many_plugins()?;
    hostile_neighbour()?;
    pricing_plugin_cost()?;
    Ok(())
}

struct Running {
    node: Arc<Node>,
    platform: Platform,
}

fn open(dir: &Path) -> anyhow::Result<Running> {
    let plugins = PluginSet::none();
    let node = Arc::new(Node::open(NodeConfig::new(dir), plugins.clone())?);
    let (platform, report) = Platform::open(node.storage().clone(), dir, plugins)?;
    anyhow::ensure!(report.failed.is_empty(), "plugins failed to load: {:?}", report.failed);
    Ok(Running { node, platform })
}

/// Signs `manifest` + `wasm` with `secret`.
fn package(manifest: String, wasm: Vec<u8>, secret: &PublisherSecret) -> Package {
    let signature = sign(secret, manifest.as_bytes(), &wasm);
    Package { manifest_text: manifest, component: wasm, signature: Some(signature) }
}

/// A trusted key for `publisher`.
fn publisher(platform: &Platform, publisher: &str) -> anyhow::Result<PublisherSecret> {
    let secret = PublisherSecret::generate();
    platform.trust_publisher(publisher, &secret.public_key().to_string())?;
    Ok(secret)
}

/// `artifact` as another plugin: its manifest with id `id`, and its
/// component with a custom section naming `id` appended, so every copy has
/// its own content hash and its own compiled artifact.
fn renamed(artifact: &Artifact, id: &str, secret: &PublisherSecret) -> Package {
    let manifest =
        artifact.manifest.replace(&format!("id = \"{}\"", artifact.id), &format!("id = \"{id}\""));
    let mut wasm = artifact.wasm.to_vec();
    let name = b"bazaar-bench";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(id.as_bytes());
    wasm.push(0); // custom section
    wasm.push(payload.len() as u8); // one LEB128 byte: the payload is short
    wasm.extend_from_slice(&payload);
    package(manifest, wasm, secret)
}

fn configure(node: &Node, store: &StoreId, plugin: &str, config: Option<&str>, priority: u32) {
    let command = Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new(plugin).expect("valid id"),
        config_json: config.map(str::to_string),
        settings: PluginSettings { priority, ..PluginSettings::default() },
    };
    node.execute(command).expect("configured");
}

fn quantiles(mut samples: Vec<u64>) -> (u64, u64, u64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), *samples.last().expect("samples"))
}

/// From `activate` to a call running the new version, with the component
/// precompiled (installed earlier).
fn swap_latency() -> anyhow::Result<()> {
    println!("\n== swap latency: {SWAPS} activations of a precompiled version ==");
    let dir = tempfile::tempdir()?;
    let running = open(dir.path())?;
    let secret = publisher(&running.platform, "bazaar-tests")?;
    for artifact in [&bazaar_artifacts::TAGGED_PRICING_V1, &bazaar_artifacts::TAGGED_PRICING_V2] {
        running.platform.install(package(
            artifact.manifest.into(),
            artifact.wasm.to_vec(),
            &secret,
        ))?;
    }
    let store = StoreId::new("swap")?;
    seed::seed_flagship_store(&running.node, &store, 0)?;
    configure(&running.node, &store, "pricing-promotions", None, 0);
    configure(&running.node, &store, "tagged-pricing", Some("{}"), 0);
    let tagged = PluginId::new("tagged-pricing")?;
    let request = seed::order_request(1, vec![(seed::ordinary_sku(0), 1)], None, None);
    let preview_version = || -> anyhow::Result<String> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        running.node.submit_preview(
            store.clone(),
            request.clone(),
            Box::new(move |preview| {
                let _ = sender.send(preview);
            }),
        )?;
        let preview = receiver.recv()??;
        Ok(preview.outputs.adjustments[0].plugin.version.clone())
    };
    preview_version()?;
    let (mut activate_us, mut served_us) = (Vec::new(), Vec::new());
    for swap in 0..SWAPS {
        let version = if swap % 2 == 0 { "2.0.0" } else { "1.0.0" };
        let started = Instant::now();
        running.platform.activate(&tagged, version)?;
        activate_us.push(started.elapsed().as_micros() as u64);
        let served = preview_version()?;
        served_us.push(started.elapsed().as_micros() as u64);
        anyhow::ensure!(served == version, "served {served} after activating {version}");
    }
    let (p50, p99, max) = quantiles(activate_us);
    println!(
        "activate (registry write + catalogue swap): p50 {p50} us, p99 {p99} us, max {max} us"
    );
    let (p50, p99, max) = quantiles(served_us);
    println!("activate -> first call on the new version: p50 {p50} us, p99 {p99} us, max {max} us");
    println!("RESULT swap_to_serving_p99 {:.2} ms", p99 as f64 / 1000.0);
    println!("RESULT swap_to_serving_max {:.2} ms", max as f64 / 1000.0);
    Ok(())
}

/// A node with 50 installed plugins restarts: node open plus platform
/// open, artifacts from the cache.
fn restart_with_many_plugins() -> anyhow::Result<()> {
    println!("\n== restart with {RESTART_PLUGINS} installed plugins (artifacts cached) ==");
    let dir = tempfile::tempdir()?;
    {
        let running = open(dir.path())?;
        let secret = publisher(&running.platform, "acme")?;
        let started = Instant::now();
        for index in 0..RESTART_PLUGINS {
            let id = format!("bulk-{index:02}");
            running.platform.install(renamed(
                &bazaar_artifacts::BULK_DISCOUNT_EXAMPLE,
                &id,
                &secret,
            ))?;
        }
        println!(
            "installed {RESTART_PLUGINS} plugins (each compiled once) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        match Arc::try_unwrap(running.node) {
            Ok(node) => node.shutdown(),
            Err(_) => anyhow::bail!("the node is still shared"),
        }
    }
    let mut ready_ms = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let plugins = PluginSet::none();
        let node = Node::open(NodeConfig::new(dir.path()), plugins.clone())?;
        let (_platform, report) = Platform::open(node.storage().clone(), dir.path(), plugins)?;
        let elapsed = started.elapsed().as_millis() as u64;
        println!(
            "ready in {elapsed} ms: {} versions loaded, {} from the cache, platform {} ms",
            report.loaded, report.from_cache, report.elapsed_ms
        );
        anyhow::ensure!(report.from_cache == report.loaded, "a restart compiled something");
        ready_ms.push(elapsed);
        node.shutdown();
    }
    println!("RESULT restart_50_plugins_ready {} ms", ready_ms.iter().max().expect("runs"));
    Ok(())
}

fn healthy_stores(node: &Node, prefix: &str) -> anyhow::Result<Vec<StoreId>> {
    let stores: Vec<StoreId> =
        (0..STORES).map(|i| StoreId::new(format!("{prefix}-{i}"))).collect::<Result<_, _>>()?;
    for store in &stores {
        seed::seed_flagship_store(node, store, 0)?;
    }
    Ok(stores)
}

/// Healthy stores' throughput alone, then while one store's pricing plugin
/// loops until its deadline on every call it gets.
fn hostile_neighbour() -> anyhow::Result<()> {
    println!("\n== throughput beside a hostile plugin ({ORDERS_PER_RUN} orders per run) ==");
    let dir = tempfile::tempdir()?;
    let running = open(dir.path())?;
    let secret = publisher(&running.platform, "bazaar-tests")?;
    let hostile = &bazaar_artifacts::HOSTILE_PRICING;
    running.platform.install(package(hostile.manifest.into(), hostile.wasm.to_vec(), &secret))?;
    let stores = healthy_stores(&running.node, "healthy")?;
    let victim = StoreId::new("hostile")?;
    seed::seed_flagship_store(&running.node, &victim, 0)?;
    configure(
        &running.node,
        &victim,
        "hostile-pricing",
        Some(r#"{"behaviour": "loop-forever"}"#),
        0,
    );

    drive(&running.node, &stores, ORDERS_PER_RUN)?; // warm-up
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    let mut attempts = 0;
    for _ in 0..ROUNDS {
        alone.push(drive(&running.node, &stores, ORDERS_PER_RUN)?.orders_per_second());
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = {
            let (node, stop, victim) = (running.node.clone(), stop.clone(), victim.clone());
            std::thread::spawn(move || {
                let mut attempts = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    attempts += 1;
                    let lines = vec![(seed::ordinary_sku(1), 1)];
                    let request = seed::order_request(attempts, lines, None, None);
                    let _ = node.place_order(victim.clone(), request);
                }
                attempts
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        beside.push(drive(&running.node, &stores, ORDERS_PER_RUN)?.orders_per_second());
        stop.store(true, Ordering::Relaxed);
        attempts += attacker.join().expect("attacker thread");
    }
    let (alone, beside) = (median(alone), median(beside));
    let counters = running.platform.call_counters(Some(&PluginId::new("hostile-pricing")?));
    let calls: u64 = counters.iter().map(|c| c.calls).sum();
    println!("undisturbed: {alone:.0} orders/s (median of {ROUNDS})");
    println!(
        "beside a looping plugin: {beside:.0} orders/s ({:.1}% of undisturbed); the hostile \
         store placed {attempts} orders, its plugin was called {calls} times (the breaker \
         skipped the rest)",
        100.0 * beside / alone
    );
    println!("RESULT throughput_beside_hostile_plugin {:.1} %", 100.0 * beside / alone);
    Ok(())
}

/// Orders/s on stores whose pipeline has 0, 1, 2 and 4 pricing plugins
/// (copies of the example partner plugin, each its own instance).
fn pricing_plugin_cost() -> anyhow::Result<()> {
    println!("\n== cost of each pricing plugin ({ORDERS_PER_RUN} orders per run) ==");
    let dir = tempfile::tempdir()?;
    let running = open(dir.path())?;
    let secret = publisher(&running.platform, "acme")?;
    for index in 0..4 {
        let id = format!("bulk-{index}");
        running.platform.install(renamed(
            &bazaar_artifacts::BULK_DISCOUNT_EXAMPLE,
            &id,
            &secret,
        ))?;
    }
    let bulk = r#"{"min_units": 2, "percent": "5"}"#;
    let mut store_sets = Vec::new();
    for count in [0usize, 1, 2, 4] {
        let stores = healthy_stores(&running.node, &format!("pipeline{count}"))?;
        for store in &stores {
            // Promotions off, so the count is the number of pricing plugins.
            configure(&running.node, store, "pricing-promotions", None, 0);
            for index in 0..count {
                configure(&running.node, store, &format!("bulk-{index}"), Some(bulk), index as u32);
            }
        }
        drive(&running.node, &stores, ORDERS_PER_RUN)?; // warm-up: instances per store
        store_sets.push((count, stores, Vec::new()));
    }
    for _ in 0..ROUNDS {
        for (_, stores, rates) in &mut store_sets {
            rates.push(drive(&running.node, stores, ORDERS_PER_RUN)?.orders_per_second());
        }
    }
    let mut baseline = None;
    for (count, _, rates) in store_sets {
        let rate = median(rates);
        let base = *baseline.get_or_insert(rate);
        println!(
            "{count} pricing plugin(s): {rate:.0} orders/s ({:.1}% of none, median of {ROUNDS})",
            100.0 * rate / base
        );
        println!("RESULT orders_per_second_with_{count}_pricing_plugins {rate:.0} orders/s");
    }
    Ok(())
}
