//! The event consumer feeds a store's analytics plugin every committed
//! event exactly once: its figures match a from-scratch recomputation over
//! the journal, across a restart in the middle of the stream. A failing
//! plugin only falls behind, and a slow one catches up in smaller batches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bazaar_kernel::model::{PluginId, Sku, StoreId};
use bazaar_kernel::{Command, PluginSettings};
use bazaar_node::consumer::{Consumers, ask, recompute};
use bazaar_node::events::EventReader;
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::{Implementation, PluginSet};
use bazaar_node::seed;
use bazaar_runtime::{AnalyticsPlugin, EVENTS_PER_BATCH_MAX};
use serde_json::Value;

const ANALYTICS: &str = "analytics-live";
const CONFIG: &str = r#"{"flash_skus": ["D11-PHONE"]}"#;

fn open(dir: &std::path::Path) -> (Arc<Node>, PluginSet) {
    let plugins = PluginSet::first_party_wasm().unwrap();
    let config = NodeConfig { shard_count: 1, ..NodeConfig::new(dir) };
    (Arc::new(Node::open(config, plugins.clone()).unwrap()), plugins)
}

fn place_orders(node: &Node, store: &StoreId, from: u64, count: u64) {
    let hot = Sku::new(seed::HOT_SKU).unwrap();
    for customer in from..from + count {
        let mut lines =
            vec![(seed::ordinary_sku((customer % 5) as usize), 1 + (customer % 2) as u32)];
        if customer % 3 == 0 {
            lines.push((hot.clone(), 1));
        }
        let coupon = (customer % 4 == 0).then_some("D11-10");
        // Some fail: the phones run out; refusals are events too.
        let _ = node.place_order(store.clone(), seed::order_request(customer, lines, coupon, None));
    }
}

/// Enables analytics plugin `plugin` for `store` with `config`.
fn enable(node: &Node, store: &StoreId, plugin: &str, config: &str) {
    node.execute(Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new(plugin).unwrap(),
        config_json: Some(config.into()),
        settings: PluginSettings::default(),
    })
    .unwrap();
}

/// The active version of analytics plugin `plugin`.
fn active_analytics(plugins: &PluginSet, plugin: &str) -> AnalyticsPlugin {
    let view = plugins.view();
    let installed = &view.plugins[&PluginId::new(plugin).unwrap()];
    let Implementation::Analytics(analytics) =
        installed.versions[installed.active.as_ref().unwrap()].as_ref()
    else {
        panic!("{plugin} is an analytics plugin")
    };
    analytics.clone()
}

/// The live consumer's answer to `query` once it equals the recomputation
/// over the journal (polling while the consumer catches up).
fn settled(
    node: &Node,
    plugins: &PluginSet,
    consumers: &Consumers,
    store: &StoreId,
    query: &str,
) -> Value {
    let plugin = PluginId::new(ANALYTICS).unwrap();
    let analytics = &active_analytics(plugins, ANALYTICS);
    let reader = EventReader::new(node.storage().clone());
    let config: Option<Arc<str>> = Some(CONFIG.into());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Recomputed each time: a refused order is answered at once, and
        // its event is committed with its batch a moment later.
        let expected = recompute(&reader, 0, store, analytics, config.clone()).unwrap();
        let expected: Value = serde_json::from_str(
            &ask(analytics, store, config.clone(), expected, query, "{}").unwrap(),
        )
        .unwrap();
        let live: Value =
            serde_json::from_str(&consumers.query(store, &plugin, query, "{}").unwrap()).unwrap();
        if live == expected {
            return live;
        }
        assert!(Instant::now() < deadline, "live {live} never matched recomputed {expected}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn analytics_match_a_recomputation_over_the_journal_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreId::new("dashboarded").unwrap();
    {
        let (node, plugins) = open(dir.path());
        seed::seed_flagship_store(&node, &store, 20).unwrap();
        enable(&node, &store, ANALYTICS, CONFIG);
        let consumers = Consumers::start(node.clone(), plugins).unwrap();
        place_orders(&node, &store, 0, 60);
        // Stopped with events still unconsumed, most likely.
        consumers.stop();
        Arc::try_unwrap(node).ok().unwrap().shutdown();
    }
    let (node, plugins) = open(dir.path());
    let consumers = Consumers::start(node.clone(), plugins.clone()).unwrap();
    place_orders(&node, &store, 60, 60);
    let headline = settled(&node, &plugins, &consumers, &store, "headline");
    for query in ["sell-through", "discounts", "gmv-series"] {
        settled(&node, &plugins, &consumers, &store, query);
    }

    // And the figures are the orders' own.
    let totals: Vec<i64> = node
        .read(&store, {
            let store = store.clone();
            move |shard| {
                shard.store(&store).unwrap().orders().iter().map(|o| o.totals.total_minor).collect()
            }
        })
        .unwrap();
    assert_eq!(headline["orders_placed"], totals.len());
    assert_eq!(headline["gmv_minor"], totals.iter().sum::<i64>());
    assert!(headline["refused_attempts"].as_u64().unwrap() > 0, "{headline}");
    let lag = consumers.lag();
    assert!(lag.iter().any(|l| l.store == store.as_str() && l.plugin == ANALYTICS), "{lag:?}");
}

#[test]
fn a_failing_consumer_only_falls_behind_and_its_lag_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (node, plugins) = open(dir.path());
    plugins.add_artifact(&bazaar_artifacts::HOSTILE_ANALYTICS).unwrap();
    let store = StoreId::new("watched").unwrap();
    seed::seed_flagship_store(&node, &store, 20).unwrap();
    for (plugin, config) in [(ANALYTICS, CONFIG), ("hostile-analytics", r#"{"behaviour":"fail"}"#)]
    {
        enable(&node, &store, plugin, config);
    }
    let consumers = Consumers::start(node.clone(), plugins.clone()).unwrap();
    for customer in 0..50 {
        let request = seed::order_request(customer, vec![(seed::ordinary_sku(0), 1)], None, None);
        node.place_order(store.clone(), request).expect("checkout never waits for a consumer");
    }
    // The healthy plugin of the same store keeps up.
    let headline = settled(&node, &plugins, &consumers, &store, "headline");
    assert_eq!(headline["orders_placed"], 50);
    // The failing one stays at the start, and says how far behind it is.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lag = consumers.lag();
        let hostile = lag.iter().find(|l| l.plugin == "hostile-analytics");
        if let Some(hostile) = hostile {
            assert_eq!(hostile.consumed_through, 0);
            if hostile.records_behind > 0 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the failing consumer's lag was never reported: {lag:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_failing_consumer_never_holds_back_another_stores_consumer_on_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let (node, plugins) = open(dir.path());
    plugins.add_artifact(&bazaar_artifacts::HOSTILE_ANALYTICS).unwrap();
    let (stuck, healthy) = (StoreId::new("stuck").unwrap(), StoreId::new("healthy").unwrap());
    for (store, plugin, config) in
        [(&stuck, "hostile-analytics", r#"{"behaviour":"fail"}"#), (&healthy, ANALYTICS, CONFIG)]
    {
        seed::seed_flagship_store(&node, store, 0).unwrap();
        enable(&node, store, plugin, config);
    }
    let consumers = Consumers::start(node.clone(), plugins.clone()).unwrap();
    // More event records than one read returns, all before the healthy
    // store's orders: a consumer reading behind the stuck one would never
    // reach them.
    let records = bazaar_node::events::RECORDS_PER_READ_MAX as u64 + 50;
    place_orders(&node, &stuck, 0, records);
    place_orders(&node, &healthy, 0, 10);
    let headline = settled(&node, &plugins, &consumers, &healthy, "headline");
    assert!(headline["orders_placed"].as_u64().unwrap() > 0, "{headline}");
}

#[test]
fn a_plugin_enabled_after_the_consumer_passed_unwatched_events_still_gets_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let (node, plugins) = open(dir.path());
    let store = StoreId::new("late").unwrap();
    seed::seed_flagship_store(&node, &store, 20).unwrap();
    let consumers = Consumers::start(node.clone(), plugins.clone()).unwrap();
    // With no analytics plugin on the shard the consumer moves past these
    // events without reading them.
    place_orders(&node, &store, 0, 40);
    std::thread::sleep(Duration::from_millis(3 * bazaar_node::consumer::POLL_INTERVAL_MS));
    enable(&node, &store, ANALYTICS, CONFIG);
    place_orders(&node, &store, 40, 20);
    let headline = settled(&node, &plugins, &consumers, &store, "headline");
    let placed = node
        .read(&store, {
            let store = store.clone();
            move |shard| shard.store(&store).unwrap().orders().len()
        })
        .unwrap();
    assert_eq!(headline["orders_placed"], placed, "{headline}");
    assert!(placed > 40, "orders from before the plugin was enabled count too");
}

#[test]
fn a_plugin_too_slow_for_a_whole_batch_catches_up_in_smaller_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (node, plugins) = open(dir.path());
    plugins.add_artifact(&bazaar_artifacts::HOSTILE_ANALYTICS).unwrap();
    let store = StoreId::new("slow-dashboard").unwrap();
    seed::seed_flagship_store(&node, &store, 20).unwrap();
    // About 200 µs of work per event: the hundreds of events waiting when
    // the consumer starts take far longer than the 20 ms deadline in one
    // call, a few dozen fit easily, and a single event fits a hundred
    // times over.
    let slow = r#"{"behaviour": "spin", "spin_iterations": 400000}"#;
    enable(&node, &store, "hostile-analytics", slow);
    place_orders(&node, &store, 0, 300);
    let reader = EventReader::new(node.storage().clone());
    let mut last_event = 0;
    while let Some(event) = reader.read(0, last_event).unwrap().last() {
        last_event = event.sequence;
    }
    assert!(last_event > 0);

    let consumers = Consumers::start(node.clone(), plugins.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let caught_up = loop {
        let lag = consumers.lag();
        let slow = lag.iter().find(|l| l.plugin == "hostile-analytics").cloned();
        if let Some(slow) = slow.filter(|slow| slow.records_behind == 0) {
            break slow;
        }
        assert!(Instant::now() < deadline, "the slow consumer never caught up: {lag:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let consumed = node
        .read(&store, {
            let store = store.clone();
            move |shard| {
                let plugin = PluginId::new("hostile-analytics").unwrap();
                shard.store(&store).unwrap().consumed_through(&plugin)
            }
        })
        .unwrap();
    assert!(consumed >= last_event, "consumed through {consumed}, events up to {last_event}");
    assert!(
        caught_up.batch_events < EVENTS_PER_BATCH_MAX,
        "its batches were cut down, and the cut is reported: {caught_up:?}"
    );

    // The reference recomputation batches the same way, so it succeeds too.
    let hostile = active_analytics(&plugins, "hostile-analytics");
    recompute(&reader, 0, &store, &hostile, Some(slow.into())).unwrap();
}

#[test]
fn a_consumer_switched_off_is_no_longer_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (node, plugins) = open(dir.path());
    let store = StoreId::new("switched").unwrap();
    seed::seed_flagship_store(&node, &store, 20).unwrap();
    enable(&node, &store, ANALYTICS, CONFIG);
    let consumers = Consumers::start(node.clone(), plugins.clone()).unwrap();
    place_orders(&node, &store, 0, 20);
    settled(&node, &plugins, &consumers, &store, "headline");
    let reported = |consumers: &Consumers| {
        consumers.lag().iter().any(|l| l.store == store.as_str() && l.plugin == ANALYTICS)
    };
    assert!(reported(&consumers));

    node.execute(Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new(ANALYTICS).unwrap(),
        config_json: None,
        settings: PluginSettings::default(),
    })
    .unwrap();
    place_orders(&node, &store, 20, 5);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reported(&consumers) {
        assert!(Instant::now() < deadline, "still reported: {:?}", consumers.lag());
        std::thread::sleep(Duration::from_millis(20));
    }
}
