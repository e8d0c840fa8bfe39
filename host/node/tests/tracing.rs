//! An order is traceable end to end: its plugin calls' log lines and its
//! acknowledgement after the journal commit are recorded inside one span
//! that carries the store and the order number.

use std::io::Write;
use std::sync::{Arc, Mutex};

use bazaar_kernel::model::{PluginId, StoreId};
use bazaar_kernel::{Command, PluginSettings};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::plugins::PluginSet;
use bazaar_node::seed;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_orders_plugin_logs_and_its_durable_acknowledgement_carry_its_number() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let dir = tempfile::tempdir().unwrap();
    let plugins = PluginSet::first_party_wasm().unwrap();
    plugins.add_artifact(&bazaar_artifacts::SPY_PRICING).unwrap();
    let node = Node::open(NodeConfig::new(dir.path()), plugins).unwrap();
    let store = StoreId::new("traced").unwrap();
    seed::seed_flagship_store(&node, &store, 0).unwrap();
    node.execute(Command::ConfigurePlugin {
        store: store.clone(),
        plugin: PluginId::new("spy-pricing").unwrap(),
        config_json: Some("{}".into()),
        settings: PluginSettings::default(),
    })
    .unwrap();
    for customer in 0..3 {
        let request = seed::order_request(customer, vec![(seed::ordinary_sku(0), 1)], None, None);
        node.place_order(store.clone(), request).unwrap();
    }
    node.shutdown();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().filter(|line| line.contains("order=3")).collect();
    assert!(
        lines.iter().any(|line| line.contains("first-config=")),
        "the plugin's log line of order 3 is in its span:\n{text}"
    );
    assert!(
        lines.iter().any(|line| line.contains("durable") && line.contains("journal_sequence")),
        "order 3's acknowledgement names its journal record:\n{text}"
    );
}
