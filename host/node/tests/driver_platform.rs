//! Device drivers are plugins like every other: installed from a signed
//! package after every check, enabled per store with consent, versioned,
//! and hot-swapped. The swap is checked where it matters, on a running
//! bus: a real node, the embedded MQTT broker, and devices played by an
//! MQTT client publishing on the driver's topics, whose telemetry names
//! the driver version that decoded each frame (the test guest
//! `hostile-driver` answers a `version` frame with its own version as the
//! device's operating mode).

mod common;

use common::{installed_ids, package, signed, tests_publisher};

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bazaar_artifacts::{HOSTILE_DRIVER, HOSTILE_DRIVER_V2, TAGGED_PRICING_V1};
use bazaar_kernel::Command;
use bazaar_kernel::device::{DeviceKind, DeviceSpec};
use bazaar_kernel::model::{
    Capability, Coordinates, DeviceId, PluginId, PluginKind, StoreId, Warehouse, WarehouseId,
    ZoneId,
};
use bazaar_kernel::money::Currency;
use bazaar_node::devices::{BrokerAddress, BusSettings, DeviceBus, DeviceStatus, EmbeddedBroker};
use bazaar_node::node::{Node, NodeConfig};
use bazaar_node::platform::{EnableRequest, Platform, PlatformError};
use bazaar_node::plugins::PluginSet;
use bazaar_registry::Package;
use rumqttc::{Client, MqttOptions, QoS};
use serde_json::json;

/// The test guest's plugin id.
const HOSTILE: &str = "hostile-driver";

/// How long a device may take to show what the test waits for. Generous:
/// the bus rereads the floor every 50 ms, but the machine is shared.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// Frames a pinned device must decode after the swap before its version
/// is checked: enough that a frame decoded by the wrong version would
/// have shown.
const FRAMES_AFTER_SWAP_MIN: u64 = 5;

/// A node with its plugin platform: the bundled first-party plugins, and
/// whatever the test installs.
struct Running {
    node: Arc<Node>,
    platform: Platform,
}

fn open(dir: &Path) -> Running {
    let plugins = PluginSet::none();
    let node = Node::open(NodeConfig::new(dir), plugins.clone()).unwrap();
    let (platform, report) = Platform::open(node.storage().clone(), dir, plugins).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    Running { node: Arc::new(node), platform }
}

fn hostile() -> PluginId {
    PluginId::new(HOSTILE).unwrap()
}

/// The hostile driver's manifest with `from` replaced by `to`, checking
/// that `from` is there, so a change to the manifest cannot make a case
/// test nothing.
fn hostile_manifest_with(from: &str, to: &str) -> String {
    assert!(HOSTILE_DRIVER.manifest.contains(from), "the manifest has {from:?}");
    HOSTILE_DRIVER.manifest.replace(from, to)
}

/// A merchant's request to run the hostile driver well behaved, following
/// the active version or pinned to `version`.
fn echo_request(version: Option<&str>) -> EnableRequest {
    EnableRequest {
        config: json!({"behaviour": "echo"}),
        consent: vec![Capability::Config],
        version: version.map(str::to_owned),
        priority: 0,
        exclusive: false,
    }
}

/// Creates `store` with a warehouse, enables the hostile driver for it as
/// the platform allows (`version` pins it), and registers one device,
/// `serial`, driven by it.
fn store_with_device(running: &Running, store: &StoreId, serial: &str, version: Option<&str>) {
    let settings = running.platform.check_enable(&hostile(), &echo_request(version)).unwrap();
    let warehouse = WarehouseId::new("shed").unwrap();
    let commands = [
        Command::CreateStore {
            store: store.clone(),
            name: format!("Store {store}"),
            currency: Currency::parse("CNY").unwrap(),
        },
        Command::UpsertWarehouse {
            store: store.clone(),
            warehouse: Warehouse {
                id: warehouse.clone(),
                name: "Shed".into(),
                location: Coordinates { latitude_micro: 30_000_000, longitude_micro: 120_000_000 },
            },
        },
        Command::ConfigurePlugin {
            store: store.clone(),
            plugin: hostile(),
            config_json: Some(json!({"behaviour": "echo"}).to_string()),
            settings,
        },
        Command::RegisterDevice {
            store: store.clone(),
            device: DeviceSpec {
                id: DeviceId::new(serial).unwrap(),
                kind: DeviceKind::Agv,
                warehouse,
                zone: ZoneId::new("zone-a").unwrap(),
                driver: hostile(),
                manufacturer: "Hostile".into(),
                serial_number: serial.into(),
                model: "any".into(),
            },
            at_ms: 1,
        },
    ];
    for command in commands {
        running.node.execute(command).unwrap();
    }
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `done` holds, panicking with `what` after [`WAIT_LIMIT`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The devices, played by one MQTT client on the broker the bus uses.
struct Devices {
    client: Client,
    pump: Option<std::thread::JoinHandle<()>>,
}

impl Devices {
    fn connect(port: u16) -> Self {
        let options = MqttOptions::new("hostile-devices", "127.0.0.1", port);
        let (client, mut connection) = Client::new(options, 16);
        let pump = std::thread::spawn(move || {
            for event in connection.iter() {
                if event.is_err() {
                    break;
                }
            }
        });
        Self { client, pump: Some(pump) }
    }

    /// Device `serial` says it is online and asks its driver for the
    /// version: what the driver decodes shows in the device's telemetry.
    fn report(&self, serial: &str) {
        for payload in [&b"online"[..], b"version"] {
            self.client
                .publish(format!("hostile/{serial}/state"), QoS::AtLeastOnce, false, payload)
                .unwrap();
        }
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
        if let Some(pump) = self.pump.take() {
            let _ = pump.join();
        }
    }
}

/// The bus's view of device `serial`, once the bus has read it from the
/// floor.
fn find_status(bus: &DeviceBus, serial: &str) -> Option<DeviceStatus> {
    bus.fleet().iter().find(|status| status.device.spec.serial_number == serial).cloned()
}

/// The bus's view of device `serial`, which it must know by now.
fn status(bus: &DeviceBus, serial: &str) -> DeviceStatus {
    find_status(bus, serial).unwrap_or_else(|| panic!("the bus does not know device {serial}"))
}

/// Whether device `serial` is online and its last `version` frame was
/// decoded by driver `version`, the version the bus says drives it.
fn decoded_by(bus: &DeviceBus, serial: &str, version: &str) -> bool {
    find_status(bus, serial).is_some_and(|status| {
        status.device.online
            && status.operating_mode.as_deref() == Some(version)
            && status.driver_version.as_deref() == Some(version)
    })
}

/// Checks that device `serial` is online, unquarantined, and every frame
/// it sent was understood.
fn assert_healthy(bus: &DeviceBus, serial: &str) {
    let status = status(bus, serial);
    assert!(status.device.online, "{serial} is online: {status:?}");
    assert!(status.device.quarantine.is_none(), "{serial} is not quarantined: {status:?}");
    assert_eq!(status.frames_malformed, 0, "{serial}: {status:?}");
}

#[test]
fn a_device_driver_installs_from_a_signed_package_as_a_quarantining_device_driver() {
    let dir = tempfile::tempdir().unwrap();
    let running = open(dir.path());
    let platform = &running.platform;

    // The first-party driver comes bundled, as a device driver.
    let bundled = platform.listing(&PluginId::new("driver-vda5050").unwrap()).unwrap().unwrap();
    assert_eq!(bundled.kind, PluginKind::DeviceDriver);
    assert_eq!(bundled.failure_policy, "quarantine");

    let secret = tests_publisher(platform);
    let first = platform.install(signed(&HOSTILE_DRIVER, &secret)).unwrap();
    assert!(first.created && first.activated, "a new plugin's first version becomes active");
    assert!(first.version.signed);
    let second = platform.install(signed(&HOSTILE_DRIVER_V2, &secret)).unwrap();
    assert!(second.created && !second.activated, "a later version waits for activation");

    let listing = platform.listing(&hostile()).unwrap().unwrap();
    assert_eq!(listing.kind, PluginKind::DeviceDriver);
    assert_eq!(listing.failure_policy, "quarantine");
    assert_eq!(listing.publisher, "bazaar-tests");
    let capabilities: Vec<&str> = listing.capabilities.iter().map(|c| c.name).collect();
    assert_eq!(capabilities, ["config"]);
    assert_eq!(listing.active.as_deref(), Some(HOSTILE_DRIVER.version));
    let versions: Vec<_> =
        listing.versions.iter().map(|v| (v.version.as_str(), v.status)).collect();
    assert_eq!(
        versions,
        [(HOSTILE_DRIVER.version, "active"), (HOSTILE_DRIVER_V2.version, "available")]
    );

    // A pricing component under the driver's id is another kind of plugin.
    let pricing_under_driver_id = TAGGED_PRICING_V1
        .manifest
        .replace(r#"id = "tagged-pricing""#, &format!("id = {HOSTILE:?}"))
        .replace(r#"version = "1.0.0""#, r#"version = "3.0.0""#);
    let conflict = platform
        .install(package(&pricing_under_driver_id, TAGGED_PRICING_V1.wasm, &secret))
        .unwrap_err();
    assert_eq!(conflict.code(), "plugin_conflict", "{conflict}");
    assert!(conflict.to_string().contains("device-driver"), "names the kind: {conflict}");
}

#[test]
fn a_bad_driver_package_is_refused_with_its_reason_and_leaves_nothing_installed() {
    let dir = tempfile::tempdir().unwrap();
    let running = open(dir.path());
    let platform = &running.platform;
    let secret = tests_publisher(platform);
    let before = installed_ids(platform);

    let mut unsigned = signed(&HOSTILE_DRIVER, &secret);
    unsigned.signature = None;
    let declared_pricing =
        hostile_manifest_with(r#"kind = "device-driver""#, r#"kind = "pricing""#)
            .replace(r#"failure-policy = "quarantine""#, "");
    let without_config = hostile_manifest_with(r#"capabilities = ["config"]"#, "capabilities = []");
    let failing_open = hostile_manifest_with(
        r#"failure-policy = "quarantine""#,
        r#"failure-policy = "fail-open""#,
    );
    let cases: Vec<(&str, Package, &str, &str)> = vec![
        ("an unsigned driver", unsigned, "signature_missing", "signature"),
        (
            "a pricing component declared a device driver",
            package(HOSTILE_DRIVER.manifest, TAGGED_PRICING_V1.wasm, &secret),
            "wrong_world",
            "device-driver",
        ),
        (
            "a driver declared a pricing plugin",
            package(&declared_pricing, HOSTILE_DRIVER.wasm, &secret),
            "wrong_world",
            "pricing",
        ),
        (
            "a driver importing config without the grant",
            package(&without_config, HOSTILE_DRIVER.wasm, &secret),
            "import_not_granted",
            "config",
        ),
        (
            "a driver that would fail open",
            package(&failing_open, HOSTILE_DRIVER.wasm, &secret),
            "manifest_invalid",
            "quarantine",
        ),
    ];
    for (what, package, code, named) in cases {
        let error = platform.install(package).expect_err(what);
        assert_eq!(error.code(), code, "{what}: {error}");
        assert!((400..500).contains(&error.status()), "{what}: {}", error.status());
        assert!(error.to_string().contains(named), "{what}: the reason names {named}: {error}");
    }
    assert_eq!(installed_ids(platform), before, "nothing was left half-installed");
    assert!(platform.listing(&hostile()).unwrap().is_none());

    // The good package still installs after the refusals.
    assert!(platform.install(signed(&HOSTILE_DRIVER, &secret)).unwrap().created);
}

#[test]
fn a_merchant_enables_a_driver_only_with_a_valid_configuration_and_consent_to_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let running = open(dir.path());
    let platform = &running.platform;
    let secret = tests_publisher(platform);
    platform.install(signed(&HOSTILE_DRIVER, &secret)).unwrap();
    platform.install(signed(&HOSTILE_DRIVER_V2, &secret)).unwrap();

    let unknown_behaviour =
        EnableRequest { config: json!({"behaviour": "dance"}), ..echo_request(None) };
    let invalid = platform.check_enable(&hostile(), &unknown_behaviour).unwrap_err();
    assert!(matches!(invalid, PlatformError::Config(_)), "{invalid}");
    assert!(invalid.to_string().contains("/behaviour"), "names the pointer: {invalid}");

    let no_consent = EnableRequest { consent: Vec::new(), ..echo_request(None) };
    let refused = platform.check_enable(&hostile(), &no_consent).unwrap_err();
    assert_eq!(refused.code(), "consent_missing");
    assert!(refused.to_string().contains("config"), "{refused}");

    let exclusive = EnableRequest { exclusive: true, ..echo_request(None) };
    assert_eq!(platform.check_enable(&hostile(), &exclusive).unwrap_err().status(), 422);
    let missing_pin = platform.check_enable(&hostile(), &echo_request(Some("9.0.0")));
    assert_eq!(missing_pin.unwrap_err().status(), 404);

    let following = platform.check_enable(&hostile(), &echo_request(None)).unwrap();
    assert_eq!(following.version_pin, None);
    assert_eq!(following.consented, [Capability::Config]);
    let pinned = platform.check_enable(&hostile(), &echo_request(Some("2.0.0"))).unwrap();
    assert_eq!(pinned.version_pin.as_deref(), Some(HOSTILE_DRIVER_V2.version));
}

#[test]
fn a_driver_swap_or_rollback_reaches_running_devices_except_in_a_store_that_pins_a_version() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let running = open(dir.path());
    let platform = &running.platform;
    let secret = tests_publisher(platform);
    platform.install(signed(&HOSTILE_DRIVER, &secret)).unwrap();
    platform.install(signed(&HOSTILE_DRIVER_V2, &secret)).unwrap();
    let (v1, v2) = (HOSTILE_DRIVER.version, HOSTILE_DRIVER_V2.version);

    // One store follows the active version; another pins the first.
    let (follower, pinned) = ("follower-agv", "pinned-agv");
    store_with_device(&running, &StoreId::new("following-store").unwrap(), follower, None);
    store_with_device(&running, &StoreId::new("pinned-store").unwrap(), pinned, Some(v1));

    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let port = EmbeddedBroker::start(address).unwrap().address().port();
    let broker = BrokerAddress { host: "127.0.0.1".into(), port };
    let bus = DeviceBus::start(
        running.node.clone(),
        platform.plugins().clone(),
        &broker,
        BusSettings::default(),
    )
    .unwrap();
    let devices = Devices::connect(port);
    // Frames sent before the bus subscribed are lost, so the devices keep
    // reporting while the test waits.
    let report = || {
        devices.report(follower);
        devices.report(pinned);
    };

    wait_for("both devices to be online and decoded by the first version", || {
        report();
        decoded_by(&bus, follower, v1) && decoded_by(&bus, pinned, v1)
    });

    let swap = platform.activate(&hostile(), v2).unwrap();
    assert_eq!((swap.from.as_deref(), swap.to.as_str()), (Some(v1), v2));
    wait_for("the following device's frames to be decoded by the new version", || {
        report();
        decoded_by(&bus, follower, v2)
    });
    // The pinned device goes on decoding through the first version: frames
    // it sends now, with the new version active, still report it.
    let frames_at_swap = status(&bus, pinned).frames_in;
    wait_for("the pinned device to send more frames", || {
        report();
        status(&bus, pinned).frames_in >= frames_at_swap + FRAMES_AFTER_SWAP_MIN
    });
    assert!(decoded_by(&bus, pinned, v1), "{:?}", status(&bus, pinned));
    assert!(decoded_by(&bus, follower, v2), "{:?}", status(&bus, follower));

    let back = platform.rollback(&hostile()).unwrap();
    assert_eq!((back.from.as_deref(), back.to.as_str()), (Some(v2), v1));
    wait_for("the following device's frames to be decoded by the first version again", || {
        report();
        decoded_by(&bus, follower, v1)
    });
    assert!(decoded_by(&bus, pinned, v1), "{:?}", status(&bus, pinned));

    // Neither swap cost a device its link, its subscription or a frame.
    for serial in [follower, pinned] {
        assert_healthy(&bus, serial);
    }
    let counters = bus.counters();
    assert_eq!(counters.driver_faults.load(Ordering::Relaxed), 0);
    assert_eq!(counters.frames_unrouted.load(Ordering::Relaxed), 0, "every frame found its device");
    assert_eq!(counters.frames_malformed.load(Ordering::Relaxed), 0);
    assert!(bus.is_connected());
    drop(devices);
    bus.shutdown();
}
