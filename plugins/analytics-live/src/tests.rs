//! The plugin's behaviour through the SDK's stand-in host: events in,
//! answers and state bytes out.

// Prices are written as yuan_fen: 4999_00 is 4999.00 CNY.
#![allow(clippy::inconsistent_digit_grouping)]

use bazaar_sdk::testing::EventStream;
use bazaar_sdk::{AnalyticsPlugin, PluginError, RefusalReason, stand_in};
use serde_json::{Value, json};

use super::*;
use crate::figures::{
    MINUTES_KEPT, SECONDS_KEPT, SKUS_PER_SHARD_MAX, STATE_KEYS_USED, STATE_VALUE_BYTES_MAX,
    STATE_WRITES_PER_CALL_MAX, shard_key, shard_of,
};

const FLASH: &str = r#"{"flash_skus": ["D11-PHONE", "D11-TV"]}"#;

/// A fresh stand-in host with `config`.
fn store(config: Option<&str>) {
    stand_in::reset();
    stand_in::set_config(config);
}

fn ingest(events: &[bazaar_sdk::Event]) -> Result<(), PluginError> {
    AnalyticsLive::ingest_with_store_config(events)
}

fn ask(name: &str, arguments: &str) -> Value {
    let answer = AnalyticsLive::query_with_store_config(name, arguments)
        .unwrap_or_else(|error| panic!("query {name} failed: {error}"));
    serde_json::from_str(&answer).expect("answers are JSON")
}

/// A morning of a flash sale: three orders (one cancelled, one with a
/// discount and shipping), stock changes and refusals.
fn flash_sale() -> EventStream {
    EventStream::new("CNY")
        .order_placed(1, "alice", &[("D11-PHONE", 1, "4999.00"), ("CASE", 2, "49.00")])
        .discount("pricing-promotions", "d11-flash", "500.00")
        .stock_changed("D11-PHONE", "WH-SH", 99, 1, 0)
        .after_ms(1_000)
        .order_placed(2, "bob", &[("D11-PHONE", 2, "4999.00")])
        .shipping("10.00")
        .stock_changed("D11-PHONE", "WH-SH", 97, 3, 0)
        .stock_changed("D11-PHONE", "WH-BJ", 50, 0, 0)
        .checkout_refused("D11-PHONE", 4, 5, RefusalReason::SoldOut)
        .checkout_refused("D11-PHONE", 1, 3, RefusalReason::PurchaseLimit)
        .after_ms(1_000)
        .order_placed(3, "carol", &[("TEA", 3, "129.00")])
        .discount("pricing-promotions", "spend-300-get-50", "50.00")
        .order_paid(1)
        .order_cancelled(2)
        .order_fulfilled(1)
}

#[test]
fn the_headline_counts_gmv_orders_and_the_average_order_value() {
    store(Some(FLASH));
    ingest(&flash_sale().build()).unwrap();
    let headline = ask("headline", "{}");
    // Order 1: 4999.00 + 98.00 - 500.00 = 4597.00; order 2 (cancelled):
    // 9998.00 + 10.00; order 3: 387.00 - 50.00 = 337.00.
    assert_eq!(headline["currency"], "CNY");
    assert_eq!(headline["gmv_minor"], 4597_00 + 337_00);
    assert_eq!(headline["orders"], 2);
    assert_eq!(headline["orders_placed"], 3);
    assert_eq!(headline["orders_cancelled"], 1);
    assert_eq!(headline["orders_paid"], 1);
    assert_eq!(headline["orders_fulfilled"], 1);
    assert_eq!(headline["units"], 1 + 2 + 2 + 3);
    assert_eq!(headline["average_order_value_minor"], (4597_00 + 337_00) / 2);
    assert_eq!(headline["refused_attempts"], 5);
    assert_eq!(headline["events"], 11);
    assert_eq!(headline["last_sequence"], 11);
}

#[test]
fn orders_per_second_averages_the_complete_seconds_before_the_latest() {
    store(None);
    let mut stream = EventStream::new("CNY");
    let mut order = 0;
    // Ten orders a second for six seconds, then one in a seventh second.
    for _ in 0..6 {
        for _ in 0..10 {
            order += 1;
            stream = stream.order_placed_minor(order, "c", &[("TEA", 1, 100)]);
        }
        stream = stream.after_ms(1_000);
    }
    stream = stream.order_placed_minor(order + 1, "c", &[("TEA", 1, 100)]);
    ingest(&stream.build()).unwrap();
    let headline = ask("headline", "");
    assert_eq!(headline["recent_seconds"], 5);
    assert_eq!(headline["recent_orders"], 50);
    assert_eq!(headline["orders_per_second"], 10);
}

#[test]
fn the_series_keep_two_minutes_of_seconds_and_two_hours_of_minutes() {
    store(None);
    let start = EventStream::new("CNY").now_ms();
    let mut stream = EventStream::new("CNY");
    // One order of 1.00 every 30 seconds for three hours.
    for order in 0..360 {
        stream =
            stream.at_ms(start + order * 30_000).order_placed_minor(order, "c", &[("TEA", 1, 100)]);
    }
    let stream = stream.order_cancelled(359);
    let latest_ms = stream.now_ms();
    ingest(&stream.build()).unwrap();
    let series = ask("gmv-series", "{}");
    let seconds = series["seconds"].as_array().unwrap();
    let minutes = series["minutes"].as_array().unwrap();
    assert_eq!(seconds.len(), SECONDS_KEPT);
    assert_eq!(minutes.len(), MINUTES_KEPT);
    let last_second = &seconds[SECONDS_KEPT - 1];
    assert_eq!(last_second["start_ms"], latest_ms / 1000 * 1000);
    // The last order and its cancellation fall in the same second.
    assert_eq!(last_second["orders"], 1);
    assert_eq!(last_second["cancelled_orders"], 1);
    assert_eq!(last_second["gmv_minor"], 0);
    // Two orders a minute in every minute kept.
    let orders: Vec<u64> = minutes.iter().map(|point| point["orders"].as_u64().unwrap()).collect();
    assert!(orders.iter().all(|&orders| orders == 2), "{orders:?}");
    // Points are a bucket apart, oldest first.
    for pair in minutes.windows(2) {
        assert_eq!(
            pair[1]["start_ms"].as_u64().unwrap() - pair[0]["start_ms"].as_u64().unwrap(),
            60_000
        );
    }
}

#[test]
fn an_event_older_than_the_window_counts_in_the_totals_but_not_the_series() {
    store(None);
    let start = EventStream::new("CNY").now_ms();
    let events = EventStream::new("CNY")
        .at_ms(start + 3 * 3_600_000)
        .order_placed_minor(1, "c", &[("TEA", 1, 100)])
        .at_ms(start)
        .order_placed_minor(2, "c", &[("TEA", 1, 200)])
        .build();
    ingest(&events).unwrap();
    assert_eq!(ask("headline", "{}")["gmv_minor"], 300);
    let series = ask("gmv-series", "{}");
    let minute_gmv: i64 = series["minutes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| point["gmv_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(minute_gmv, 100);
    assert_eq!(ask("headline", "{}")["as_of_ms"], start + 3 * 3_600_000);
}

#[test]
fn top_skus_rank_by_units_or_revenue_with_ties_in_byte_order() {
    store(None);
    let events = EventStream::new("CNY")
        .order_placed(1, "a", &[("TEA", 5, "10.00"), ("CUP", 5, "20.00")])
        .order_placed(2, "b", &[("PHONE", 1, "4999.00"), ("TEA", 1, "10.00")])
        .order_placed(3, "c", &[("BAG", 6, "1.00")])
        .build();
    ingest(&events).unwrap();
    let by_units = ask("top-skus", r#"{"limit": 3}"#);
    let names = |answer: &Value| -> Vec<String> {
        answer["skus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|sku| sku["sku"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&by_units), ["BAG", "TEA", "CUP"]);
    assert_eq!(
        by_units["skus"][1],
        json!({"rank": 2, "sku": "TEA", "units": 6, "revenue_minor": 60_00})
    );
    assert_eq!(by_units["tracked_skus"], 4);
    let by_revenue = ask("top-skus", r#"{"by": "revenue"}"#);
    assert_eq!(names(&by_revenue), ["PHONE", "CUP", "TEA", "BAG"]);
    assert_eq!(by_revenue["by"], "revenue");
}

#[test]
fn top_skus_refuse_a_limit_out_of_range_or_an_unknown_ranking() {
    store(None);
    for arguments in
        [r#"{"limit": 0}"#, r#"{"limit": 101}"#, r#"{"by": "margin"}"#, r#"{"top": 3}"#]
    {
        let error = AnalyticsLive::query_with_store_config("top-skus", arguments).unwrap_err();
        assert!(matches!(error, PluginError::Unsupported(_)), "{arguments}: {error:?}");
    }
}

#[test]
fn skus_beyond_a_full_shard_are_counted_as_untracked() {
    store(None);
    // More SKUs than one shard holds, all in shard 0.
    let skus: Vec<String> = (0..)
        .map(|index| format!("SKU-{index}"))
        .filter(|sku| shard_of(sku) == 0)
        .take(SKUS_PER_SHARD_MAX + 3)
        .collect();
    let mut stream = EventStream::new("CNY");
    for (order, sku) in skus.iter().enumerate() {
        stream = stream.order_placed_minor(order as u64, "c", &[(sku, 2, 100)]);
    }
    ingest(&stream.build()).unwrap();
    let top = ask("top-skus", r#"{"limit": 1}"#);
    assert_eq!(top["tracked_skus"], SKUS_PER_SHARD_MAX);
    assert_eq!(top["untracked_units"], 6);
    assert_eq!(top["untracked_revenue_minor"], 600);
    let shard = stand_in::state_entries().remove(&shard_key(0)).unwrap();
    assert!(shard.len() <= STATE_VALUE_BYTES_MAX);
}

#[test]
fn sell_through_counts_attempts_successes_refusals_and_stock_per_warehouse() {
    store(Some(FLASH));
    ingest(&flash_sale().build()).unwrap();
    let answer = ask("sell-through", "{}");
    let phone = &answer["skus"][0];
    assert_eq!(phone["sku"], "D11-PHONE");
    assert_eq!(phone["orders"], 2);
    assert_eq!(phone["units"], 3);
    assert_eq!(phone["refused_attempts"], 5);
    assert_eq!(phone["refused_units"], 8);
    assert_eq!(phone["attempts"], 7);
    assert_eq!(
        phone["refused"],
        json!({"sold-out": 4, "purchase-limit": 1, "risk": 0, "other": 0})
    );
    assert_eq!(phone["available"], 97 + 50);
    assert_eq!(
        phone["warehouses"],
        json!([{"warehouse": "WH-BJ", "available": 50}, {"warehouse": "WH-SH", "available": 97}])
    );
    assert_eq!(phone["success_rate_bp"], 2 * 10_000 / 7);
    assert_eq!(phone["sell_through_bp"], 3 * 10_000 / (3 + 147));
    // A listed SKU nobody asked for yet shows zeros.
    assert_eq!(answer["skus"][1]["sku"], "D11-TV");
    assert_eq!(answer["skus"][1]["attempts"], 0);
    assert_eq!(answer["skus"][1]["success_rate_bp"], 0);
}

#[test]
fn an_order_with_a_flash_sku_on_two_lines_is_one_order_of_it() {
    store(Some(FLASH));
    let events = EventStream::new("CNY")
        .order_placed(1, "a", &[("D11-PHONE", 1, "4999.00"), ("D11-PHONE", 1, "4999.00")])
        .build();
    ingest(&events).unwrap();
    let phone = &ask("sell-through", "{}")["skus"][0];
    assert_eq!(phone["orders"], 1);
    assert_eq!(phone["units"], 2);
}

#[test]
fn discount_spend_is_kept_per_plugin_and_rule_largest_first() {
    store(None);
    let events = flash_sale()
        .order_placed(4, "dave", &[("TEA", 3, "129.00")])
        .discount("pricing-promotions", "spend-300-get-50", "50.00")
        .discount("acme-coupons", "WELCOME", "5.00")
        .build();
    ingest(&events).unwrap();
    let answer = ask("discounts", "{}");
    assert_eq!(answer["total_minor"], 500_00 + 2 * 50_00 + 5_00);
    assert_eq!(
        answer["rules"],
        json!([
            {"plugin_id": "pricing-promotions", "code": "d11-flash", "uses": 1, "amount_minor": 500_00},
            {"plugin_id": "pricing-promotions", "code": "spend-300-get-50", "uses": 2, "amount_minor": 100_00},
            {"plugin_id": "acme-coupons", "code": "WELCOME", "uses": 1, "amount_minor": 5_00},
        ])
    );
    assert_eq!(answer["other"], json!({"uses": 0, "amount_minor": 0}));
}

#[test]
fn the_same_events_give_the_same_state_bytes_however_they_are_batched() {
    let events = flash_sale().build();
    store(Some(FLASH));
    ingest(&events).unwrap();
    let whole = stand_in::state_entries();
    for batch_size in [1, 2, 5] {
        store(Some(FLASH));
        for batch in events.chunks(batch_size) {
            ingest(batch).unwrap();
        }
        assert_eq!(stand_in::state_entries(), whole, "batches of {batch_size}");
    }
}

#[test]
fn a_restart_from_the_journaled_state_gives_the_same_answers() {
    store(Some(FLASH));
    ingest(&flash_sale().build()).unwrap();
    let answers: Vec<Value> = queries::NAMES.iter().map(|name| ask(name, "{}")).collect();
    let state = stand_in::state_entries();
    store(Some(FLASH));
    stand_in::set_state_entries(state);
    let again: Vec<Value> = queries::NAMES.iter().map(|name| ask(name, "{}")).collect();
    assert_eq!(again, answers);
    assert!(stand_in::take_written_keys().is_empty(), "queries write nothing");
}

#[test]
fn a_batch_writes_only_the_parts_it_changed() {
    store(Some(FLASH));
    ingest(&flash_sale().build()).unwrap();
    stand_in::take_written_keys();

    let next = flash_sale().build().last().unwrap().sequence + 1;
    let stream = EventStream::new("CNY").skip_sequences(next - 1);
    ingest(&stream.clone().stock_changed("CASE", "WH-SH", 5, 0, 0).build()).unwrap();
    assert_eq!(stand_in::take_written_keys(), ["totals"]);

    let stream = stream.skip_sequences(1);
    ingest(&stream.clone().order_placed_minor(9, "e", &[("CASE", 1, 100)]).build()).unwrap();
    let shard = shard_key(shard_of("CASE"));
    assert_eq!(stand_in::take_written_keys(), ["minutes", "seconds", shard.as_str(), "totals"]);

    let stream = stream.skip_sequences(1);
    ingest(&stream.checkout_refused("D11-TV", 1, 1, RefusalReason::Risk).build()).unwrap();
    assert_eq!(stand_in::take_written_keys(), ["flash", "totals"]);

    ingest(&[]).unwrap();
    assert!(stand_in::take_written_keys().is_empty());
}

#[test]
fn a_batch_offered_again_counts_once() {
    store(Some(FLASH));
    let events = flash_sale().build();
    ingest(&events).unwrap();
    let state = stand_in::state_entries();
    stand_in::take_written_keys();
    ingest(&events).unwrap();
    ingest(&events[3..7]).unwrap();
    assert_eq!(stand_in::state_entries(), state);
    assert!(stand_in::take_written_keys().is_empty());
}

#[test]
fn an_amount_in_another_currency_fails_the_batch_and_changes_nothing() {
    store(None);
    ingest(&EventStream::new("CNY").order_placed(1, "a", &[("TEA", 1, "1.00")]).build()).unwrap();
    let state = stand_in::state_entries();
    stand_in::take_written_keys();
    let mixed = EventStream::new("USD")
        .skip_sequences(1)
        .order_placed(2, "a", &[("TEA", 1, "1.00")])
        .build();
    let error = ingest(&mixed).unwrap_err();
    assert!(
        matches!(&error, PluginError::Unsupported(message) if message.contains("USD")),
        "{error:?}"
    );
    assert_eq!(stand_in::state_entries(), state);
    assert!(stand_in::take_written_keys().is_empty());
}

#[test]
fn a_damaged_state_value_is_logged_and_started_afresh() {
    store(None);
    ingest(&flash_sale().build()).unwrap();
    let mut state = stand_in::state_entries();
    state.insert("discounts".to_owned(), vec![1, 0xff]);
    stand_in::set_state_entries(state);
    let answer = ask("discounts", "{}");
    assert_eq!(answer["rules"], json!([]));
    let warnings = stand_in::log_lines();
    assert!(
        warnings.iter().any(|line| line.message.contains("\"discounts\" is damaged")),
        "{warnings:?}"
    );
    // The other parts are untouched.
    assert_eq!(ask("headline", "{}")["orders_placed"], 3);
}

#[test]
fn unknown_queries_and_unexpected_arguments_are_unsupported() {
    store(None);
    let error = AnalyticsLive::query_with_store_config("revenue", "{}").unwrap_err();
    assert!(
        error.message().contains("headline, gmv-series, top-skus, sell-through, discounts"),
        "{error}"
    );
    let error = AnalyticsLive::query_with_store_config("headline", r#"{"since": 1}"#).unwrap_err();
    assert!(matches!(error, PluginError::Unsupported(_)), "{error:?}");
}

#[test]
fn a_store_without_figures_answers_with_zeros_and_no_currency() {
    store(None);
    let headline = ask("headline", "{}");
    assert_eq!(headline["currency"], Value::Null);
    assert_eq!(headline["gmv_minor"], 0);
    assert_eq!(headline["average_order_value_minor"], 0);
    assert_eq!(ask("gmv-series", "{}")["seconds"], json!([]));
    assert_eq!(ask("top-skus", "{}")["skus"], json!([]));
    assert_eq!(ask("sell-through", "{}")["skus"], json!([]));
}

#[test]
fn configurations_are_validated_with_the_field_named() {
    assert_eq!(Config::from_json("{}").unwrap().flash_skus(), [] as [String; 0]);
    let too_many = format!(
        r#"{{"flash_skus": [{}]}}"#,
        (0..=FLASH_SKUS_MAX).map(|index| format!("\"S{index}\"")).collect::<Vec<_>>().join(",")
    );
    for (json, fragment) in [
        (too_many.as_str(), "at most 32"),
        (r#"{"flash_skus": ["A", "A"]}"#, "twice"),
        (r#"{"flash_skus": [""]}"#, "1 to 64 bytes"),
        (r#"{"flash_sku": ["A"]}"#, "flash_sku"),
    ] {
        let error = Config::from_json(json).unwrap_err();
        assert!(
            matches!(&error, PluginError::InvalidConfig(message) if message.contains(fragment)),
            "{json}: {error:?}"
        );
    }
}

#[test]
fn a_sku_dropped_from_the_configuration_loses_its_figures_at_the_next_flash_batch() {
    store(Some(FLASH));
    ingest(&flash_sale().build()).unwrap();
    stand_in::set_config(Some(r#"{"flash_skus": ["D11-TV"]}"#));
    let events = EventStream::new("CNY")
        .skip_sequences(100)
        .checkout_refused("D11-TV", 1, 1, RefusalReason::Other)
        .build();
    ingest(&events).unwrap();
    stand_in::set_config(Some(FLASH));
    let answer = ask("sell-through", "{}");
    assert_eq!(answer["skus"][0]["attempts"], 0);
    assert_eq!(answer["skus"][1]["attempts"], 1);
}

// The plugin's keys fit the kernel's limit on keys per plugin and store.
const _: () = assert!(STATE_KEYS_USED <= bazaar_kernel::STATE_KEYS_MAX);

#[test]
fn the_state_limits_the_plugin_is_sized_for_are_the_kernels() {
    assert_eq!(STATE_VALUE_BYTES_MAX, bazaar_kernel::STATE_VALUE_LEN_MAX);
    assert_eq!(STATE_WRITES_PER_CALL_MAX, bazaar_kernel::STATE_WRITES_PER_ORDER_MAX);
}

#[test]
fn a_large_catalogue_stays_within_every_state_limit() {
    store(Some(FLASH));
    let mut stream = EventStream::new("CNY");
    for order in 0..20_000_u64 {
        let sku = format!("{:0>64}", order % 10_000);
        stream = stream.order_placed_minor(order, "c", &[(&sku, 1, 100)]);
        stream = stream.discount("pricing-promotions", &format!("{:0>64}", order % 400), "0.01");
    }
    ingest(&stream.build()).unwrap();
    let state = stand_in::state_entries();
    assert!(state.len() <= STATE_KEYS_USED);
    assert!(state.values().all(|value| value.len() <= STATE_VALUE_BYTES_MAX));
    let top = ask("top-skus", r#"{"limit": 100}"#);
    assert_eq!(top["skus"].as_array().unwrap().len(), 100);
    let tracked = top["tracked_skus"].as_u64().unwrap();
    assert_eq!(tracked * 2 + top["untracked_units"].as_u64().unwrap(), 20_000);
}
