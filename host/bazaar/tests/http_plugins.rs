//! The plugin platform over HTTP against a real `bazaar serve` process:
//! signed installs and every refusal (each changing nothing), hot swaps and
//! shadow runs visible in the listing and in orders, merchants enabling
//! plugins with a checked configuration and consent, breakers and call
//! counters, and the partner's whole flow through the `bazaar plugin`
//! commands. Packages are the build's test guests with their own
//! manifests, signed in each test with a key generated there.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use bazaar_artifacts::{
    BULK_DISCOUNT_EXAMPLE, CORE_MODULE, FOREIGN_IMPORT, HOSTILE_PRICING, LOGISTICS_ROUTER,
    SPY_PRICING, TAGGED_PRICING_V1, TAGGED_PRICING_V2,
};
use common::{Publisher, Server, order_body, unsigned_package};
use serde_json::{Value, json};

/// The SKU the stores sell.
const SKU: &str = "D11-PHONE";

/// The ids of the plugins the marketplace lists.
fn listed_ids(listing: &Value) -> Vec<String> {
    listing["plugins"]
        .as_array()
        .expect("a plugin list")
        .iter()
        .map(|plugin| plugin["id"].as_str().expect("an id").to_string())
        .collect()
}

/// The codes of an order's adjustments.
fn adjustment_codes(order: &Value) -> Vec<String> {
    order["adjustments"]
        .as_array()
        .expect("adjustments")
        .iter()
        .map(|adjustment| adjustment["code"].as_str().expect("a code").to_string())
        .collect()
}

/// Sends a request head announcing a body of `declared_len` bytes without
/// sending the body, and returns the raw answer.
fn declared_only_exchange(base: &str, head: &str) -> String {
    let mut stream = TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                answer.extend_from_slice(&buffer[..read]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_checks_everything_first_and_a_refusal_installs_nothing() {
    let server = Server::start(&[]);
    let operator = server.operator.clone();
    let tests = Publisher::new("bazaar-tests");
    server.trust(&tests).await;

    let first = server.install(&operator, &tests.artifact(&SPY_PRICING)).await;
    assert_eq!(first.status.as_u16(), 201, "{}", first.text);
    assert_eq!(first.headers["location"], "/v1/plugins/spy-pricing");
    assert_eq!(
        (first.json["id"].as_str(), first.json["version"].as_str()),
        (Some("spy-pricing"), Some("0.1.0"))
    );
    assert_eq!(first.json["created"], true);
    assert_eq!(first.json["activated"], true, "a plugin's first version becomes active");
    let again = server.install(&operator, &tests.artifact(&SPY_PRICING)).await;
    assert_eq!(again.status.as_u16(), 200, "{}", again.text);
    assert_eq!(again.json["created"], false);
    let listing = server.operator("GET", "/v1/plugins", None, 200).await;
    let ids = listed_ids(&listing);
    for bundled in ["logistics-router", "pricing-promotions", "risk-guard", "spy-pricing"] {
        assert!(ids.iter().any(|id| id == bundled), "{bundled} is listed: {ids:?}");
    }
    let spy = server.operator("GET", "/v1/plugins/spy-pricing", None, 200).await;
    assert_eq!(spy["active"], "0.1.0");
    assert_eq!(spy["publisher"], "bazaar-tests");
    let capabilities: Vec<&str> = spy["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(capabilities, ["log", "config", "state"]);
    assert!(spy["capabilities"][2]["plain_words"].as_str().unwrap().len() > 10);
    assert_eq!(spy["versions"][0]["signed"], true);

    // (what is sent, status, code, words the message must contain)
    let other_key = Publisher::new("bazaar-tests");
    let acme = Publisher::new("acme");
    let tagged = TAGGED_PRICING_V1.manifest;
    let spy_without_state =
        SPY_PRICING.manifest.replace(r#"version = "0.1.0""#, r#"version = "0.2.0""#).replace(
            r#"capabilities = ["log", "config", "state"]"#,
            r#"capabilities = ["log", "config"]"#,
        );
    let changed_after_signing = {
        let mut body = tests.artifact(&SPY_PRICING);
        body["manifest"] = Value::String(SPY_PRICING.manifest.replace("Spy pricing", "Spy pricer"));
        body
    };
    let mut bad_base64 = tests.artifact(&SPY_PRICING);
    bad_base64["component"] = Value::String("this is not base64!".into());
    let mut bad_signature = tests.artifact(&SPY_PRICING);
    bad_signature["signature"] = Value::String("zz".into());
    let cases: Vec<(&str, Value, u16, &str, Vec<&str>)> = vec![
        (
            "unsigned",
            unsigned_package(SPY_PRICING.manifest, SPY_PRICING.wasm),
            422,
            "signature_missing",
            vec!["signature"],
        ),
        (
            "signed with another key",
            other_key.artifact(&SPY_PRICING),
            422,
            "signature_invalid",
            vec!["signature"],
        ),
        (
            "manifest changed after signing",
            changed_after_signing,
            422,
            "signature_invalid",
            vec!["signature"],
        ),
        (
            "malformed signature",
            bad_signature,
            400,
            "invalid_signature_encoding",
            vec!["signature"],
        ),
        ("component not base64", bad_base64, 400, "invalid_base64", vec!["component"]),
        (
            "untrusted publisher",
            acme.artifact(&BULK_DISCOUNT_EXAMPLE),
            403,
            "publisher_not_trusted",
            vec!["acme"],
        ),
        (
            "a core module",
            tests.package(tagged, CORE_MODULE),
            422,
            "core_module",
            vec!["core WebAssembly module"],
        ),
        (
            "the wrong world",
            tests.package(tagged, LOGISTICS_ROUTER.wasm),
            422,
            "wrong_world",
            vec!["pricing"],
        ),
        (
            "an import not granted",
            tests.package(&spy_without_state, SPY_PRICING.wasm),
            422,
            "import_not_granted",
            vec!["state"],
        ),
        (
            "an unknown import",
            tests.artifact(&FOREIGN_IMPORT),
            422,
            "import_unknown",
            vec!["partner:net/socket"],
        ),
        (
            "an unknown kind",
            tests.package(
                &tagged.replace(r#"kind = "pricing""#, r#"kind = "shipping""#),
                TAGGED_PRICING_V1.wasm,
            ),
            422,
            "manifest_invalid",
            vec!["kind"],
        ),
        (
            "a missing name",
            tests.package(
                &tagged
                    .lines()
                    .filter(|line| !line.starts_with("name ="))
                    .collect::<Vec<_>>()
                    .join("\n"),
                TAGGED_PRICING_V1.wasm,
            ),
            422,
            "manifest_invalid",
            vec!["name"],
        ),
        (
            "a limit above the node's",
            tests.package(
                &format!("{tagged}\n[limits]\nmemory-bytes-max = 1099511627776\n"),
                TAGGED_PRICING_V1.wasm,
            ),
            422,
            "limit_invalid",
            vec!["memory"],
        ),
        (
            "the same version with other bytes",
            tests.package(SPY_PRICING.manifest, HOSTILE_PRICING.wasm),
            409,
            "plugin_conflict",
            vec!["spy-pricing"],
        ),
    ];
    for (what, body, status, code, words) in cases {
        let refused = server.install(&operator, &body).await;
        assert_eq!(
            (refused.status.as_u16(), refused.code()),
            (status, code),
            "{what}: {}",
            refused.text
        );
        for word in words {
            assert!(
                refused.message().contains(word),
                "{what}: {:?} lacks {word:?}",
                refused.message()
            );
        }
        assert_eq!(
            server.operator("GET", "/v1/plugins", None, 200).await,
            listing,
            "{what} changed the listing"
        );
    }

    // Oversize: refused from the declared length, before a byte is read.
    let too_long = bazaar_server::PLUGIN_UPLOAD_BYTES_MAX + 1;
    let head = format!(
        "POST /v1/plugins HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {operator}\r\nContent-Type: application/json\r\nContent-Length: {too_long}\r\n\r\n"
    );
    let answer = declared_only_exchange(&server.base, &head);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
    // Every other route keeps the small limit.
    let padding = "k".repeat(bazaar_server::BODY_BYTES_MAX);
    let large = server
        .call("PUT", "/v1/publishers/big", Some(&operator), Some(json!({"public_key": padding})))
        .await;
    assert_eq!(large.status.as_u16(), 413, "{}", large.text);
    assert_eq!(server.operator("GET", "/v1/plugins", None, 200).await, listing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activation_rollback_and_shadow_runs_swap_versions_for_the_next_order() {
    let server = Server::start(&[]);
    let tests = Publisher::new("bazaar-tests");
    server.trust(&tests).await;
    server.seed_store("alpha", SKU, 100).await;
    for artifact in [&TAGGED_PRICING_V1, &TAGGED_PRICING_V2] {
        let installed = server.install(&server.operator, &tests.artifact(artifact)).await;
        assert_eq!(installed.status.as_u16(), 201, "{}", installed.text);
    }
    let plugin = server.operator("GET", "/v1/plugins/tagged-pricing", None, 200).await;
    assert_eq!(plugin["active"], "1.0.0", "the first version installed stays active");
    let statuses: Vec<&str> = plugin["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "available"]);
    server
        .operator(
            "PUT",
            "/v1/stores/alpha/plugins/tagged-pricing",
            Some(json!({"config": {}, "consent": ["config"]})),
            200,
        )
        .await;
    let order = |customer: &'static str| {
        let server = &server;
        async move {
            let placed = server
                .operator(
                    "POST",
                    "/v1/stores/alpha/orders",
                    Some(order_body(customer, SKU, 1)),
                    201,
                )
                .await;
            adjustment_codes(&placed)
        }
    };
    assert_eq!(order("c1").await, ["tagged-v1"]);

    let swap = server
        .operator(
            "POST",
            "/v1/plugins/tagged-pricing/activate",
            Some(json!({"version": "2.0.0"})),
            200,
        )
        .await;
    assert_eq!((swap["from"].as_str(), swap["to"].as_str()), (Some("1.0.0"), Some("2.0.0")));
    assert!(swap["elapsed_us"].is_u64());
    assert_eq!(
        server.operator("GET", "/v1/plugins/tagged-pricing", None, 200).await["active"],
        "2.0.0"
    );
    assert_eq!(order("c2").await, ["tagged-v2"], "the next order runs the new version");

    let back = server.operator("POST", "/v1/plugins/tagged-pricing/rollback", None, 200).await;
    assert_eq!((back["from"].as_str(), back["to"].as_str()), (Some("2.0.0"), Some("1.0.0")));
    assert_eq!(
        server.operator("GET", "/v1/plugins/tagged-pricing", None, 200).await["active"],
        "1.0.0"
    );
    assert_eq!(order("c3").await, ["tagged-v1"]);

    // A shadow run on every call compares without changing the order.
    let shadow = server
        .operator(
            "PUT",
            "/v1/plugins/tagged-pricing/shadow",
            Some(json!({"version": "2.0.0", "share_percent": 100})),
            200,
        )
        .await;
    assert_eq!((shadow["version"].as_str(), shadow["compared"].as_u64()), (Some("2.0.0"), Some(0)));
    assert_eq!(order("c4").await, ["tagged-v1"], "a shadow's output is thrown away");
    let report = server.operator("GET", "/v1/plugins/tagged-pricing/shadow", None, 200).await;
    assert_eq!(
        (report["compared"].as_u64(), report["different"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
    assert!(report["samples"][0]["shadow"].as_str().unwrap().contains("tagged-v2"), "{report}");
    let listed = server.operator("GET", "/v1/plugins/tagged-pricing", None, 200).await;
    assert_eq!(listed["shadow"], json!({"version": "2.0.0", "share_percent": 100}));
    let refused = server
        .call("DELETE", "/v1/plugins/tagged-pricing/versions/2.0.0", Some(&server.operator), None)
        .await;
    assert_eq!(
        refused.status.as_u16(),
        422,
        "the shadow version cannot be removed: {}",
        refused.text
    );
    let promoted =
        server.operator("POST", "/v1/plugins/tagged-pricing/shadow/promote", None, 200).await;
    assert_eq!(
        (promoted["from"].as_str(), promoted["to"].as_str()),
        (Some("1.0.0"), Some("2.0.0"))
    );
    assert_eq!(order("c5").await, ["tagged-v2"]);
    let none =
        server.call("GET", "/v1/plugins/tagged-pricing/shadow", Some(&server.operator), None).await;
    assert_eq!((none.status.as_u16(), none.code()), (404, "shadow_not_found"));

    // A store that pins a version keeps it whatever the operator activates.
    server
        .operator(
            "PUT",
            "/v1/stores/alpha/plugins/tagged-pricing",
            Some(json!({"config": {}, "consent": ["config"], "version": "1.0.0"})),
            200,
        )
        .await;
    assert_eq!(order("c6").await, ["tagged-v1"]);
    let missing = server
        .call(
            "PUT",
            "/v1/stores/alpha/plugins/tagged-pricing",
            Some(&server.operator),
            Some(json!({"config": {}, "consent": ["config"], "version": "3.0.0"})),
        )
        .await;
    assert_eq!(missing.status.as_u16(), 404, "{}", missing.text);

    // An unpinned version that is neither active nor shadow can go.
    server
        .operator(
            "PUT",
            "/v1/stores/alpha/plugins/tagged-pricing",
            Some(json!({"config": {}, "consent": ["config"]})),
            200,
        )
        .await;
    let active_refused = server
        .call("DELETE", "/v1/plugins/tagged-pricing/versions/2.0.0", Some(&server.operator), None)
        .await;
    assert_eq!(active_refused.status.as_u16(), 422, "{}", active_refused.text);
    server.operator("DELETE", "/v1/plugins/tagged-pricing/versions/1.0.0", None, 204).await;
    let versions: Vec<String> =
        server.operator("GET", "/v1/plugins/tagged-pricing", None, 200).await["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(versions, ["2.0.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_versions_and_the_active_one_survive_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut server = Server::start_in(&dir, &[], &[]);
    let tests = Publisher::new("bazaar-tests");
    server.trust(&tests).await;
    server.seed_store("alpha", SKU, 100).await;
    for artifact in [&TAGGED_PRICING_V1, &TAGGED_PRICING_V2] {
        let installed = server.install(&server.operator, &tests.artifact(artifact)).await;
        assert_eq!(installed.status.as_u16(), 201, "{}", installed.text);
    }
    server
        .operator(
            "POST",
            "/v1/plugins/tagged-pricing/activate",
            Some(json!({"version": "2.0.0"})),
            200,
        )
        .await;
    server
        .operator(
            "PUT",
            "/v1/stores/alpha/plugins/tagged-pricing",
            Some(json!({"config": {}, "consent": ["config"]})),
            200,
        )
        .await;
    let before = server.operator("GET", "/v1/plugins", None, 200).await;
    assert!(server.stop_gracefully().success());
    drop(server);

    let server = Server::start_in(&dir, &[], &[]);
    assert!(server.printed("compiled artifacts from the cache"), "{:?}", server.output);
    assert_eq!(server.operator("GET", "/v1/plugins", None, 200).await, before);
    assert_eq!(
        server.operator("GET", "/v1/publishers", None, 200).await["publishers"][0]["publisher"],
        "bazaar-tests"
    );
    let order = server
        .operator("POST", "/v1/stores/alpha/orders", Some(order_body("c1", SKU, 1)), 201)
        .await;
    assert_eq!(adjustment_codes(&order), ["tagged-v2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_enables_a_plugin_only_with_a_valid_config_and_full_consent() {
    let server = Server::start(&[]);
    let acme = Publisher::new("acme");
    server.trust(&acme).await;
    let installed = server.install(&server.operator, &acme.artifact(&BULK_DISCOUNT_EXAMPLE)).await;
    assert_eq!(installed.status.as_u16(), 201, "{}", installed.text);
    server.seed_store("alpha", SKU, 100).await;
    server.seed_store("beta", SKU, 100).await;
    let (merchant, _) = server.issue_token("merchant", &["alpha"], &[]).await;
    let enable = |body: Value| {
        let (server, merchant) = (&server, merchant.clone());
        async move {
            server
                .call("PUT", "/v1/stores/alpha/plugins/bulk-discount", Some(&merchant), Some(body))
                .await
        }
    };

    let bad_config = enable(
        json!({"config": {"min_units": "two", "percent": 10, "extra": 1}, "consent": ["config"]}),
    )
    .await;
    assert_eq!(
        (bad_config.status.as_u16(), bad_config.code()),
        (422, "plugin_config_invalid"),
        "{}",
        bad_config.text
    );
    assert!(bad_config.message().contains("/min_units"), "{}", bad_config.message());
    assert!(bad_config.message().contains("extra"), "{}", bad_config.message());
    assert_eq!(bad_config.message().matches("does not match").count(), 1, "said once");
    let no_consent = enable(json!({"config": {"min_units": 2, "percent": 10}})).await;
    assert_eq!(
        (no_consent.status.as_u16(), no_consent.code()),
        (422, "consent_missing"),
        "{}",
        no_consent.text
    );
    assert!(no_consent.message().contains("config"), "{}", no_consent.message());
    let unknown_capability =
        enable(json!({"config": {"min_units": 2, "percent": 10}, "consent": ["network"]})).await;
    assert_eq!(unknown_capability.status.as_u16(), 422);
    assert_eq!(unknown_capability.json["error"]["field"], "consent[0]");
    let other_store = server
        .call(
            "PUT",
            "/v1/stores/beta/plugins/bulk-discount",
            Some(&merchant),
            Some(json!({"config": {"min_units": 2, "percent": 10}, "consent": ["config"]})),
        )
        .await;
    assert_eq!((other_store.status.as_u16(), other_store.code()), (403, "forbidden"));
    let listed = server.call("GET", "/v1/stores/alpha/plugins", Some(&merchant), None).await;
    assert_eq!(listed.json["plugins"], json!([]), "no refusal enabled anything");

    let enabled = enable(
        json!({"config": {"min_units": 2, "percent": 10}, "consent": ["config"], "priority": 5}),
    )
    .await;
    assert_eq!(enabled.status.as_u16(), 200, "{}", enabled.text);
    assert_eq!(enabled.json["settings"]["consented"], json!(["config"]));
    assert_eq!(enabled.json["settings"]["priority"], 5);
    assert_eq!(enabled.json["settings"]["version_pin"], Value::Null);
    let order = server
        .call("POST", "/v1/stores/alpha/orders", Some(&merchant), Some(order_body("mei", SKU, 3)))
        .await;
    assert_eq!(order.status.as_u16(), 201, "{}", order.text);
    assert_eq!(order.json["adjustments"][0]["plugin"]["id"], "bulk-discount");
    assert_eq!(order.json["adjustments"][0]["code"], "bulk");
    // 10% of 3 x 5,999.00.
    assert_eq!(order.json["totals"]["discount"]["amount_minor"], 179_970);
    let beta_order = server
        .operator("POST", "/v1/stores/beta/orders", Some(order_body("mei", SKU, 3)), 201)
        .await;
    assert_eq!(beta_order["adjustments"], json!([]), "another store is untouched");

    // The store's pricing rules cap what its plugins take off together.
    let refused = server
        .call(
            "PUT",
            "/v1/stores/alpha/pricing-rules",
            Some(&merchant),
            Some(json!({"discount_cap_percent": 101})),
        )
        .await;
    assert_eq!((refused.status.as_u16(), refused.code()), (422, "invalid_pricing_rules"));
    let rules = server
        .call(
            "PUT",
            "/v1/stores/alpha/pricing-rules",
            Some(&merchant),
            Some(json!({"discount_cap_minor": 10_000})),
        )
        .await;
    assert_eq!(rules.status.as_u16(), 200, "{}", rules.text);
    let capped = server
        .call("POST", "/v1/stores/alpha/orders", Some(&merchant), Some(order_body("lin", SKU, 3)))
        .await;
    assert_eq!(capped.json["totals"]["discount"]["amount_minor"], 10_000, "{}", capped.text);

    let listed = server.call("GET", "/v1/stores/alpha/plugins", Some(&merchant), None).await;
    assert_eq!(listed.json["plugins"][0]["plugin"], "bulk-discount");
    assert_eq!(listed.json["plugins"][0]["config"], json!({"min_units": 2, "percent": 10}));
    assert_eq!(
        listed.json["pricing_rules"],
        json!({"discount_cap_percent": null, "discount_cap_minor": 10_000})
    );
    let beta = server.call("GET", "/v1/stores/beta/plugins", Some(&merchant), None).await;
    assert_eq!(beta.status.as_u16(), 403, "a store sees only its own plugins");

    let disabled = server
        .call("DELETE", "/v1/stores/alpha/plugins/bulk-discount", Some(&merchant), None)
        .await;
    assert_eq!(disabled.status.as_u16(), 204);
    let plain = server
        .call("POST", "/v1/stores/alpha/orders", Some(&merchant), Some(order_body("wei", SKU, 3)))
        .await;
    assert_eq!(plain.json["adjustments"], json!([]), "{}", plain.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_plugin_trips_its_breaker_for_its_store_and_counts_its_failures() {
    let server = Server::start(&[]);
    let tests = Publisher::new("bazaar-tests");
    server.trust(&tests).await;
    let installed = server.install(&server.operator, &tests.artifact(&HOSTILE_PRICING)).await;
    assert_eq!(installed.status.as_u16(), 201, "{}", installed.text);
    server.seed_store("alpha", SKU, 100).await;
    server.seed_store("beta", SKU, 100).await;
    server
        .operator(
            "PUT",
            "/v1/stores/alpha/plugins/hostile-pricing",
            Some(json!({"config": {"behaviour": "trap"}, "consent": ["log", "config", "state"]})),
            200,
        )
        .await;
    for n in 0..6 {
        let order = server
            .operator(
                "POST",
                "/v1/stores/alpha/orders",
                Some(order_body(&format!("c{n}"), SKU, 1)),
                201,
            )
            .await;
        assert_eq!(order["adjustments"], json!([]), "pricing fails open");
    }
    let all = server.operator("GET", "/v1/breakers", None, 200).await;
    let breaker = &all["breakers"][0];
    assert_eq!(
        (breaker["store"].as_str(), breaker["plugin"].as_str()),
        (Some("alpha"), Some("hostile-pricing"))
    );
    assert_eq!(breaker["state"], "open", "{all}");
    let (alpha_merchant, _) = server.issue_token("merchant", &["alpha"], &[]).await;
    let (beta_merchant, _) = server.issue_token("merchant", &["beta"], &[]).await;
    let seen_by_alpha = server.call("GET", "/v1/breakers", Some(&alpha_merchant), None).await;
    assert_eq!(seen_by_alpha.json["breakers"].as_array().unwrap().len(), 1);
    let seen_by_beta = server.call("GET", "/v1/breakers", Some(&beta_merchant), None).await;
    assert_eq!(seen_by_beta.json["breakers"], json!([]), "a merchant sees its own stores only");

    let (publisher, _) = server.issue_token("partner", &[], &["hostile-pricing"]).await;
    let (stranger, _) = server.issue_token("partner", &[], &["bulk-discount"]).await;
    let stats =
        server.call("GET", "/v1/plugins/hostile-pricing/stats", Some(&publisher), None).await;
    assert_eq!(stats.status.as_u16(), 200, "{}", stats.text);
    let counters = &stats.json["versions"][0];
    assert!(counters["failures"].as_u64().unwrap() >= 5, "{}", stats.text);
    assert!(counters["traps"].as_u64().unwrap() >= 5, "{}", stats.text);
    let refused =
        server.call("GET", "/v1/plugins/hostile-pricing/stats", Some(&stranger), None).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (403, "forbidden"));
    let unknown = server.operator("GET", "/v1/plugins/no-such-plugin/stats", None, 404).await;
    assert_eq!(unknown["error"]["code"], "plugin_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_are_trusted_listed_and_distrusted_by_operators() {
    let server = Server::start(&[]);
    let acme = Publisher::new("acme");
    let bad = server
        .call(
            "PUT",
            "/v1/publishers/acme",
            Some(&server.operator),
            Some(json!({"public_key": "abc"})),
        )
        .await;
    assert_eq!(bad.status.as_u16(), 422, "{}", bad.text);
    assert!(bad.message().contains("64"), "{}", bad.message());
    let trusted = server
        .operator("PUT", "/v1/publishers/acme", Some(json!({"public_key": acme.public_key()})), 200)
        .await;
    assert_eq!(trusted["public_key"], acme.public_key());
    let listed = server.operator("GET", "/v1/publishers", None, 200).await;
    assert_eq!(listed["publishers"][0]["publisher"], "acme");
    // A partner may install its own plugin, not another's.
    let (partner, _) = server.issue_token("partner", &[], &["bulk-discount"]).await;
    let (stranger, _) = server.issue_token("partner", &[], &["tagged-pricing"]).await;
    let refused = server.install(&stranger, &acme.artifact(&BULK_DISCOUNT_EXAMPLE)).await;
    assert_eq!((refused.status.as_u16(), refused.code()), (403, "forbidden"), "{}", refused.text);
    let installed = server.install(&partner, &acme.artifact(&BULK_DISCOUNT_EXAMPLE)).await;
    assert_eq!(installed.status.as_u16(), 201, "{}", installed.text);

    server.operator("DELETE", "/v1/publishers/acme", None, 204).await;
    let gone = server.operator("DELETE", "/v1/publishers/acme", None, 404).await;
    assert_eq!(gone["error"]["code"], "publisher_not_found");
    let untrusted = server.install(&partner, &acme.artifact(&BULK_DISCOUNT_EXAMPLE)).await;
    assert_eq!(untrusted.status.as_u16(), 403, "{}", untrusted.text);
    assert_eq!(
        server.operator("GET", "/v1/plugins/bulk-discount", None, 200).await["active"],
        "1.0.0",
        "installed versions stay when their publisher is distrusted"
    );
}

/// Runs `bazaar` with `args` and `env`; returns its output.
fn bazaar(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bazaar"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("BAZAAR_") {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("the bazaar binary runs")
}

/// The standard output of a run that must succeed.
fn succeeded(what: &str, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Writes a package directory of `manifest` and `component`.
fn write_package(dir: &Path, manifest: &str, component: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    std::fs::write(dir.join("plugin.wasm"), component).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_publishes_a_package_with_the_plugin_commands() {
    let server = Server::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("acme.key");
    let key_arg = key.to_str().unwrap();
    let package = work.path().join("bulk-discount");
    let package_arg = package.to_str().unwrap();
    write_package(&package, BULK_DISCOUNT_EXAMPLE.manifest, BULK_DISCOUNT_EXAMPLE.wasm);
    let url = server.base.as_str();
    let operator = server.operator.as_str();

    let made = succeeded("keygen", &bazaar(&["plugin", "keygen", "--out", key_arg], &[]));
    let public_key = made
        .lines()
        .find_map(|line| line.strip_prefix("public key: "))
        .expect("keygen prints the public key")
        .trim()
        .to_string();
    assert_eq!(public_key.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner may read the secret key");
    }
    let again = bazaar(&["plugin", "keygen", "--out", key_arg], &[]);
    assert!(!again.status.success(), "keygen never overwrites a key");

    let unsigned =
        bazaar(&["plugin", "install", package_arg, "--url", url, "--token", operator], &[]);
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("sign"), "{unsigned:?}");

    succeeded("sign", &bazaar(&["plugin", "sign", package_arg, "--key", key_arg], &[]));
    assert_eq!(std::fs::read_to_string(package.join("plugin.sig")).unwrap().trim().len(), 128);

    let untrusted =
        bazaar(&["plugin", "install", package_arg, "--url", url, "--token", operator], &[]);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("403") && stderr.contains("not trusted"), "{stderr}");

    let trusted = succeeded(
        "trust",
        &bazaar(&["plugin", "trust", "acme", &public_key, "--url", url, "--token", operator], &[]),
    );
    assert!(trusted.contains("trusted publisher acme"), "{trusted}");
    let (partner, _) = server.issue_token("partner", &[], &["bulk-discount"]).await;
    // The partner's token from the environment.
    let installed = succeeded(
        "install",
        &bazaar(&["plugin", "install", package_arg, "--url", url], &[("BAZAAR_TOKEN", &partner)]),
    );
    assert!(installed.contains("installed: bulk-discount 1.0.0"), "{installed}");
    let repeated = succeeded(
        "install again",
        &bazaar(&["plugin", "install", package_arg, "--url", url], &[("BAZAAR_TOKEN", &partner)]),
    );
    assert!(repeated.contains("already installed: bulk-discount 1.0.0"), "{repeated}");

    let listed =
        succeeded("list", &bazaar(&["plugin", "list", "--url", url, "--token", operator], &[]));
    let listing: Value = serde_json::from_str(&listed).expect("list prints JSON");
    assert!(listed_ids(&listing).contains(&"bulk-discount".to_string()), "{listed}");
    let activated = succeeded(
        "activate",
        &bazaar(
            &["plugin", "activate", "bulk-discount", "1.0.0", "--url", url, "--token", operator],
            &[],
        ),
    );
    assert!(activated.contains("bulk-discount: 1.0.0 -> 1.0.0"), "{activated}");
    let no_history =
        bazaar(&["plugin", "rollback", "bulk-discount", "--url", url, "--token", operator], &[]);
    assert!(!no_history.status.success(), "there is no earlier version to roll back to");
    assert!(String::from_utf8_lossy(&no_history.stderr).contains("422"), "{no_history:?}");

    // A package changed after signing is refused by the node, by name.
    std::fs::write(package.join("plugin.wasm"), TAGGED_PRICING_V2.wasm).unwrap();
    let tampered =
        bazaar(&["plugin", "install", package_arg, "--url", url, "--token", operator], &[]);
    assert!(!tampered.status.success());
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("signature"), "{tampered:?}");
    let plugin = server.operator("GET", "/v1/plugins/bulk-discount", None, 200).await;
    assert_eq!(plugin["versions"].as_array().unwrap().len(), 1);
}
