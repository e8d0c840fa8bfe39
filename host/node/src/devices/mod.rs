//! The device bus: the node's robots (and, by the same model, conveyors and
//! lockers), driven the way pricing is. The host owns the transport (MQTT),
//! safety, the registry and every decision; a sandboxed driver plugin owns
//! the vendor protocol and nothing else.
//!
//! - `broker`: the MQTT broker `bazaar serve` embeds by default.
//! - `mqtt`: the node's one MQTT connection, with reconnection.
//! - `core`: the bus worker: decodes frames through drivers, keeps
//!   telemetry, turns device reports into journaled task steps, assigns
//!   pending tasks to the nearest free robot, and handles emergency stops.
//!
//! The kernel holds what is decided (devices, online, quarantine, tasks,
//! held zones; see `bazaar_kernel::device`); the bus holds what is merely
//! observed (positions, battery, errors), which a restart forgets and the
//! devices' next messages restore.

mod broker;
mod core;
mod mqtt;

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use bazaar_kernel::model::{StoreId, WarehouseId, ZoneId};
use crossbeam_channel::Sender;

pub use self::broker::{BROKER_CONNECTIONS_MAX, BROKER_PAYLOAD_BYTES_MAX, EmbeddedBroker};
use self::core::{BusCore, Control};
pub use self::core::{
    BusCounters, BusSettings, DeviceStatus, INBOUND_QUEUE_FRAMES_MAX, Inbound,
    PENDING_TASKS_READ_MAX,
};
pub use self::mqtt::{BrokerAddress, MqttLink, OUTBOUND_QUEUE_MAX, PACKET_BYTES_MAX};
use crate::node::{Node, NodeError};
use crate::plugins::PluginSet;

/// Emergency-stop and resume requests queued for the worker before the
/// API answers 503: a few operators pressing buttons, never thousands.
const CONTROL_QUEUE_MAX: usize = 64;

/// A running device bus.
pub struct DeviceBus {
    /// Requests to the worker.
    control: Sender<Control>,
    /// The worker thread.
    worker: Option<JoinHandle<()>>,
    /// The MQTT connection.
    link: MqttLink,
    /// The fleet as the worker last published it.
    published: Arc<Mutex<Arc<Vec<DeviceStatus>>>>,
    /// Counters.
    counters: Arc<BusCounters>,
}

impl std::fmt::Debug for DeviceBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBus").finish_non_exhaustive()
    }
}

impl DeviceBus {
    /// Connects to `broker` and starts the worker over `node`'s devices,
    /// with the driver plugins of `plugins`.
    pub fn start(
        node: Arc<Node>,
        plugins: PluginSet,
        broker: &BrokerAddress,
        settings: BusSettings,
    ) -> std::io::Result<Self> {
        let (inbound_sender, inbound) = crossbeam_channel::bounded(INBOUND_QUEUE_FRAMES_MAX);
        let (control, control_rx) = crossbeam_channel::bounded(CONTROL_QUEUE_MAX);
        // One client id per node process, so two nodes on one broker do not
        // take each other's session.
        let client_id = format!("bazaar-node-{}", std::process::id());
        let link = MqttLink::connect(broker, &client_id, inbound_sender)?;
        let counters = Arc::new(BusCounters::default());
        let published = Arc::new(Mutex::new(Arc::new(Vec::new())));
        let core = BusCore::new(
            node,
            plugins,
            link.clone(),
            settings,
            counters.clone(),
            published.clone(),
        );
        let worker = std::thread::Builder::new()
            .name("device-bus".into())
            .spawn(move || core.run(inbound, control_rx))?;
        Ok(Self { control, worker: Some(worker), link, published, counters })
    }

    /// Every device the bus knows, with its telemetry.
    pub fn fleet(&self) -> Arc<Vec<DeviceStatus>> {
        self.published.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The bus's counters.
    pub fn counters(&self) -> &BusCounters {
        &self.counters
    }

    /// Whether the MQTT connection is up.
    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// Emergency stop (`stopped`): pauses every device of `zone` at once
    /// (the pause is published before anything else happens), then
    /// journals that the zone is held, so no task starts there until it is
    /// freed the same way (`stopped` false), which resumes its devices.
    /// `reply` gets the number of devices commanded once the change is
    /// durable. Refused at once when the worker's queue is full.
    pub fn set_zone(
        &self,
        store: StoreId,
        warehouse: WarehouseId,
        zone: ZoneId,
        stopped: bool,
        reply: Box<dyn FnOnce(Result<usize, NodeError>) + Send>,
    ) -> Result<(), NodeError> {
        self.control
            .try_send(Control::Zone { store, warehouse, zone, stopped, reply })
            .map_err(|_| NodeError::Overloaded { shard: 0, depth: CONTROL_QUEUE_MAX })
    }

    /// [`DeviceBus::set_zone`], waiting until the change is journaled;
    /// returns the number of devices commanded.
    pub fn set_zone_and_wait(
        &self,
        store: StoreId,
        warehouse: WarehouseId,
        zone: ZoneId,
        stopped: bool,
    ) -> Result<usize, NodeError> {
        let (sender, receiver) = crossbeam_channel::bounded(1);
        let reply = Box::new(move |result| {
            let _ = sender.send(result);
        });
        self.set_zone(store, warehouse, zone, stopped, reply)?;
        receiver.recv().unwrap_or(Err(NodeError::ShuttingDown))
    }

    /// Stops the worker and disconnects.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        self.link.close();
    }
}

impl Drop for DeviceBus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Decodes `frames` (topic, payload) through their devices' drivers and
/// applies them on the calling thread, as the bus worker does with frames
/// from the broker, after reading the floor once; returns how long the
/// frames took. The telemetry benchmark's way in: it measures the drivers
/// and the registry without the broker in between. The link is only used
/// for the devices' subscriptions.
pub fn ingest_frames(
    node: Arc<Node>,
    plugins: PluginSet,
    broker: &BrokerAddress,
    frames: &[(String, Vec<u8>)],
) -> std::io::Result<(std::time::Duration, Arc<BusCounters>)> {
    let (inbound_sender, _inbound) = crossbeam_channel::bounded(INBOUND_QUEUE_FRAMES_MAX);
    let link = MqttLink::connect(
        broker,
        &format!("bazaar-ingest-{}", std::process::id()),
        inbound_sender,
    )?;
    let counters = Arc::new(BusCounters::default());
    let mut core = BusCore::new(
        node,
        plugins,
        link.clone(),
        BusSettings::default(),
        counters.clone(),
        Arc::new(Mutex::new(Arc::new(Vec::new()))),
    );
    core.round();
    let started = std::time::Instant::now();
    for (topic, payload) in frames {
        core.handle_frame(topic, payload);
    }
    let elapsed = started.elapsed();
    link.close();
    Ok((elapsed, counters))
}
