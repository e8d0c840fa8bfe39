//! The web console end to end, in a real headless Chromium against a real
//! `bazaar serve` process. This test prepares the node through the API (a
//! store with stock, the analytics plugin following a flash-sale SKU, a
//! merchant token, orders, and a plugin installed in two versions), then
//! runs the JavaScript driver `tests/console/e2e.mjs` (playwright-core),
//! which signs in as the merchant, watches the live dashboard move as
//! orders arrive, pays an order, enables a plugin in the marketplace after
//! seeing an invalid configuration refused, sees its robot on the fleet
//! page and stops and resumes its zone, then signs in as the operator and
//! rolls a plugin back. Screenshots of each step go to
//! `target/console-screenshots/`.
//!
//! `scripts/test` installs what the driver needs (Debian's `chromium` and
//! `npm ci` in `tests/console`); without them this test fails and says
//! what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bazaar_artifacts::{TAGGED_PRICING_V1, TAGGED_PRICING_V2};
use common::{DRIVER_PLUGIN, Publisher, Server, order_body};
use serde_json::json;

/// Where Debian's chromium package installs the browser the driver launches.
const CHROMIUM: &str = "/usr/bin/chromium";
/// The store the console is driven on.
const STORE: &str = "double11-flagship";
/// A SKU with plenty of stock.
const SKU: &str = "D11-PHONE";
/// A flash-sale SKU whose whole stock is ordered before the page opens.
const SOLD_OUT_SKU: &str = "D11-TV";
/// Units of `SOLD_OUT_SKU` in stock, all ordered.
const SOLD_OUT_UNITS: u32 = 2;
/// The robot registered in the warehouse.
const DEVICE: &str = "agv-1";
/// Its zone.
const ZONE: &str = "north";

/// The directory of the driver and its `node_modules`.
fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("console")
}

/// `target/console-screenshots`, beside the build's other outputs.
fn screenshot_dir() -> PathBuf {
    let temporary = Path::new(env!("CARGO_TARGET_TMPDIR"));
    temporary.parent().unwrap_or(temporary).join("console-screenshots")
}

/// Fails the test, saying how to install what is missing, unless node,
/// Chromium and playwright-core are there.
fn require_browser_tools() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|output| output.status.success()),
        "node is missing: the console end-to-end test runs its driver with Node.js; \
         install it (apt-get install -y nodejs npm) or run scripts/test, which does ({node:?})"
    );
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the console end-to-end test drives Debian's Chromium; \
         run scripts/test, which installs it (apt-get install -y chromium)"
    );
    let playwright = driver_dir().join("node_modules").join("playwright-core");
    assert!(
        playwright.exists(),
        "{} is missing: run `npm ci` in {} (scripts/test does)",
        playwright.display(),
        driver_dir().display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_and_an_operator_run_the_console_in_a_real_browser() {
    require_browser_tools();
    let server = Server::start(&[]);

    // The store, with the analytics plugin following the flash-sale SKU
    // before any stock or order exists, so it sees every event.
    server
        .operator(
            "POST",
            "/v1/stores",
            Some(json!({"id": STORE, "name": "Double 11 flagship", "currency": "CNY"})),
            201,
        )
        .await;
    server
        .operator(
            "PUT",
            &format!("/v1/stores/{STORE}/plugins/analytics-live/config"),
            Some(json!({"flash_skus": [SKU, SOLD_OUT_SKU]})),
            200,
        )
        .await;
    server
        .operator(
            "PUT",
            &format!("/v1/stores/{STORE}/warehouses/HGH"),
            Some(json!({"name": "Hangzhou", "location": {"latitude_micro": 30_274_100, "longitude_micro": 120_155_100}})),
            200,
        )
        .await;
    for (sku, title, price_minor, units) in [
        (SKU, "Double 11 phone", 599_900, 1_000),
        (SOLD_OUT_SKU, "Double 11 television", 1_299_900, SOLD_OUT_UNITS),
    ] {
        server
            .operator(
                "PUT",
                &format!("/v1/stores/{STORE}/products/{sku}"),
                Some(json!({"title": title, "price": {"amount_minor": price_minor, "currency": "CNY"}})),
                200,
            )
            .await;
        server
            .operator(
                "POST",
                &format!("/v1/stores/{STORE}/stock/receipts"),
                Some(json!({"sku": sku, "warehouse": "HGH", "quantity": units})),
                200,
            )
            .await;
    }
    let (merchant, _) = server.issue_token("merchant", &[STORE], &[]).await;
    for (customer, sku, quantity) in
        [("mei", SKU, 1), ("lei", SKU, 2), ("jun", SOLD_OUT_SKU, SOLD_OUT_UNITS)]
    {
        let placed = server
            .call(
                "POST",
                &format!("/v1/stores/{STORE}/orders"),
                Some(&merchant),
                Some(order_body(customer, sku, quantity)),
            )
            .await;
        assert_eq!(placed.status.as_u16(), 201, "{}", placed.text);
    }
    let stock = server.stock_totals(STORE, SOLD_OUT_SKU).await;
    assert_eq!(stock["available"], 0, "the flash-sale SKU is sold out: {stock}");

    // A plugin in two versions, the newer one active, for the rollback.
    let tests = Publisher::new("bazaar-tests");
    server.trust(&tests).await;
    for artifact in [&TAGGED_PRICING_V1, &TAGGED_PRICING_V2] {
        let installed = server.install(&server.operator, &tests.artifact(artifact)).await;
        assert_eq!(installed.status.as_u16(), 201, "{}", installed.text);
    }
    server
        .operator(
            "POST",
            "/v1/plugins/tagged-pricing/activate",
            Some(json!({"version": TAGGED_PRICING_V2.version})),
            200,
        )
        .await;

    // A map of the warehouse and a robot in it, for the fleet page.
    server
        .operator(
            "PUT",
            &format!("/v1/stores/{STORE}/warehouses/HGH/layout"),
            Some(json!({
                "map_id": "hgh-1",
                "nodes": [
                    {"id": "A1", "x_mm": 12_000, "y_mm": 3_500},
                    {"id": "pack", "x_mm": 0, "y_mm": 0}
                ],
                "pick_locations": {SKU: "A1"},
                "pack_station": "pack"
            })),
            200,
        )
        .await;
    server.enable_driver(STORE).await;
    server
        .operator(
            "PUT",
            &format!("/v1/stores/{STORE}/devices/{DEVICE}"),
            Some(json!({
                "kind": "agv", "warehouse": "HGH", "zone": ZONE, "driver": DRIVER_PLUGIN,
                "manufacturer": "acme-robotics", "serial_number": "E2E-1", "model": "T1"
            })),
            201,
        )
        .await;
    server.wait_for_bus().await;

    let screenshots = screenshot_dir();
    let mut driver = Command::new("node");
    driver
        .arg(driver_dir().join("e2e.mjs"))
        .current_dir(driver_dir())
        .env("BAZAAR_URL", &server.base)
        .env("BAZAAR_OPERATOR_TOKEN", &server.operator)
        .env("BAZAAR_MERCHANT_TOKEN", &merchant)
        .env("BAZAAR_STORE", STORE)
        .env("BAZAAR_SKU", SKU)
        .env("BAZAAR_SOLD_OUT_SKU", SOLD_OUT_SKU)
        .env("BAZAAR_PLUGIN", "tagged-pricing")
        .env("BAZAAR_ROLLBACK_FROM", TAGGED_PRICING_V2.version)
        .env("BAZAAR_ROLLBACK_TO", TAGGED_PRICING_V1.version)
        .env("BAZAAR_DEVICE", DEVICE)
        .env("BAZAAR_ZONE", ZONE)
        .env("BAZAAR_SCREENSHOTS", &screenshots);
    // The driver waits on the page with its own timeouts and exits non-zero
    // on the first step that does not show what it should.
    let status = tokio::task::spawn_blocking(move || driver.status())
        .await
        .expect("the driver's thread")
        .expect("node starts the driver");
    assert!(
        status.success(),
        "the console driver failed ({status}); its output above names the step, and {} holds a screenshot of each step",
        screenshots.display()
    );

    // What the browser did is in the node.
    let enabled = server.operator("GET", &format!("/v1/stores/{STORE}/plugins"), None, 200).await;
    let promotions = enabled["plugins"]
        .as_array()
        .expect("a plugin list")
        .iter()
        .find(|plugin| plugin["plugin"] == "pricing-promotions")
        .unwrap_or_else(|| panic!("pricing-promotions is enabled: {enabled}"));
    assert_eq!(promotions["config"]["spend_thresholds"][0]["every"], "200.00");
    let plugin = server.operator("GET", "/v1/plugins/tagged-pricing", None, 200).await;
    assert_eq!(plugin["active"], TAGGED_PRICING_V1.version);
    let paid =
        server.all_orders(STORE).await.iter().filter(|order| order["status"] == "paid").count();
    assert_eq!(paid, 1, "the driver paid one order");
    let devices = server.operator("GET", &format!("/v1/stores/{STORE}/devices"), None, 200).await;
    assert_eq!(devices["stopped_zones"], json!([]), "the driver resumed the zone it stopped");
}
