//! Property tests: for any sequence of commands, the kernel's invariants
//! hold, refused commands change nothing, purchase limits hold and
//! idempotency keys map to exactly one order.

use bazaar_kernel::model::{
    Address, Adjustment, Coordinates, Customer, CustomerId, CustomerSegment, LineRequest,
    OrderRequest, OrderStatus, PluginId, PluginRef, Product, Router, Shipment, ShipmentLine,
    ShipmentPlan, Sku, StoreId, Warehouse, WarehouseId,
};
use bazaar_kernel::money::Currency;
use bazaar_kernel::{
    Command, IdempotencyCheck, KernelError, Outcome, PLUGINS_PER_STORE_MAX, PlaceOrder,
    PlaceOrderCommand, PluginSettings, PricingRules, Shard,
};
use proptest::prelude::*;

const SKUS: [&str; 3] = ["PHONE", "CASE", "CABLE"];
const WAREHOUSES: [&str; 2] = ["HZ", "SH"];
const CUSTOMERS: [&str; 3] = ["alice", "bob", "carol"];
/// The flash-sale SKU's per-customer limit.
const PHONE_LIMIT: u32 = 2;

fn store() -> StoreId {
    StoreId::new("tmall").unwrap()
}

fn cny() -> Currency {
    Currency::parse("CNY").unwrap()
}

fn setup() -> Shard {
    let mut shard = Shard::new();
    let store = store();
    shard
        .apply(&Command::CreateStore {
            store: store.clone(),
            name: "Tmall".into(),
            currency: cny(),
        })
        .unwrap();
    for (index, sku) in SKUS.iter().enumerate() {
        let product = Product {
            sku: Sku::new(*sku).unwrap(),
            title: sku.to_string(),
            unit_price_minor: 1_000 * (index as i64 + 1),
            purchase_limit_per_customer: (index == 0).then_some(PHONE_LIMIT),
        };
        shard
            .apply(&Command::UpsertProduct { store: store.clone(), product, currency: cny() })
            .unwrap();
    }
    for (index, id) in WAREHOUSES.iter().enumerate() {
        let warehouse = Warehouse {
            id: WarehouseId::new(*id).unwrap(),
            name: id.to_string(),
            location: Coordinates {
                latitude_micro: 30_000_000 + index as i32,
                longitude_micro: 120_000_000,
            },
        };
        shard.apply(&Command::UpsertWarehouse { store: store.clone(), warehouse }).unwrap();
    }
    shard
}

/// One step of a generated scenario.
#[derive(Clone, Debug)]
enum Step {
    Receive { sku: usize, warehouse: usize, quantity: u64 },
    WriteOff { sku: usize, warehouse: usize, quantity: u64 },
    Order { customer: usize, lines: Vec<(usize, u32)>, key: Option<u8>, discount: i64, split: bool },
    Pay(u64),
    Cancel(u64),
    Fulfil(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize, 0..2usize, 0..20u64).prop_map(|(sku, warehouse, quantity)| Step::Receive { sku, warehouse, quantity }),
        1 => (0..3usize, 0..2usize, 0..5u64).prop_map(|(sku, warehouse, quantity)| Step::WriteOff { sku, warehouse, quantity }),
        6 => (
            0..3usize,
            // Mostly distinct SKUs with sensible quantities; sometimes a zero
            // quantity or a repeated SKU, which the kernel must refuse.
            prop::collection::vec((0..3usize, prop_oneof![9 => 1..4u32, 1 => Just(0u32)]), 1..4),
            prop::option::of(0..6u8),
            prop_oneof![3 => Just(0i64), 2 => 1..3_000i64, 1 => -100..60_000i64],
            any::<bool>()
        )
            .prop_map(|(customer, mut lines, key, discount, split)| {
                if discount % 7 != 0 {
                    lines.dedup_by_key(|(sku, _)| *sku);
                }
                Step::Order { customer, lines, key, discount, split }
            }),
        2 => (1..12u64).prop_map(Step::Pay),
        1 => (0..12u64).prop_map(Step::Cancel),
        1 => (1..12u64).prop_map(Step::Fulfil),
    ]
}

fn request(customer: usize, lines: &[(usize, u32)], key: Option<u8>) -> OrderRequest {
    OrderRequest {
        idempotency_key: key.map(|k| format!("key-{k}").into()),
        customer: Customer {
            id: CustomerId::new(CUSTOMERS[customer]).unwrap(),
            segment: CustomerSegment::Regular,
        },
        lines: lines
            .iter()
            .map(|(sku, quantity)| LineRequest {
                sku: Sku::new(SKUS[*sku]).unwrap(),
                quantity: *quantity,
            })
            .collect(),
        coupon_codes: vec![],
        shipping_address: Address::default(),
    }
}

/// A plan that takes each line from the warehouses in order (or, with
/// `split`, deliberately from the second warehouse first), as a router
/// would; it may be invalid, which the kernel must refuse.
fn plan(shard: &Shard, request: &OrderRequest, split: bool) -> ShipmentPlan {
    let state = shard.store(&store()).unwrap();
    let mut order: Vec<&str> = WAREHOUSES.to_vec();
    if split {
        order.reverse();
    }
    let mut shipments: Vec<Shipment> = Vec::new();
    for line in &request.lines {
        let mut left = line.quantity;
        for warehouse in &order {
            let warehouse = WarehouseId::new(*warehouse).unwrap();
            let take = left.min(state.stock_level(&line.sku, &warehouse).available as u32);
            if take == 0 {
                continue;
            }
            left -= take;
            let line = ShipmentLine { sku: line.sku.clone(), quantity: take };
            match shipments.iter_mut().find(|s| s.warehouse == warehouse) {
                Some(shipment) => shipment.lines.push(line),
                None => shipments.push(Shipment {
                    warehouse,
                    lines: vec![line],
                    carrier: "test".into(),
                    fee_minor: 500,
                    eta_hours: 24,
                }),
            }
        }
    }
    ShipmentPlan { shipments, routed_by: Router::BuiltIn, fallback_reason: None }
}

fn plugin() -> PluginRef {
    PluginRef { id: PluginId::new("test-pricing").unwrap(), version: "1.0.0".into() }
}

fn command_for(shard: &Shard, step: &Step) -> Command {
    let store = store();
    let sku = |i: usize| Sku::new(SKUS[i]).unwrap();
    let warehouse = |i: usize| WarehouseId::new(WAREHOUSES[i]).unwrap();
    match step {
        Step::Receive { sku: s, warehouse: w, quantity } => Command::ReceiveStock {
            store,
            sku: sku(*s),
            warehouse: warehouse(*w),
            quantity: *quantity,
        },
        Step::WriteOff { sku: s, warehouse: w, quantity } => Command::WriteOffStock {
            store,
            sku: sku(*s),
            warehouse: warehouse(*w),
            quantity: *quantity,
        },
        Step::Order { customer, lines, key, discount, split } => {
            let request = request(*customer, lines, *key);
            let shipment_plan = plan(shard, &request, *split);
            let adjustments = if *discount == 0 {
                vec![]
            } else {
                vec![Adjustment {
                    line_index: None,
                    amount_off_minor: *discount,
                    code: "test".into(),
                    reason: "generated".into(),
                    plugin: plugin(),
                }]
            };
            Command::PlaceOrder(Box::new(PlaceOrder {
                store,
                request,
                placed_at_ms: 1,
                adjustments,
                pricing_failures: vec![],
                risk_checks: vec![],
                shipment_plan,
                state_writes: vec![],
            }))
        }
        Step::Pay(order) => Command::PayOrder { store, order: *order, at_ms: 2 },
        Step::Cancel(order) => Command::CancelOrder { store, order: *order, at_ms: 2 },
        Step::Fulfil(order) => Command::FulfilOrder { store, order: *order, at_ms: 2 },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_and_refused_commands_change_nothing(steps in prop::collection::vec(step(), 1..80)) {
        let mut shard = setup();
        for step in &steps {
            let command = command_for(&shard, step);
            let before = shard.digest();
            let idempotency = match &command {
                Command::PlaceOrder(place) => Some(shard.check_idempotency(&place.store, &place.request)),
                _ => None,
            };
            let orders_before = shard.store(&store()).unwrap().orders().len();
            match shard.apply(&command) {
                Ok(Outcome::OrderPlaced { order, duplicate, .. }) => {
                    // Idempotency: a duplicate is exactly the earlier order and adds none.
                    match idempotency {
                        Some(Ok(IdempotencyCheck::Duplicate(earlier))) => {
                            prop_assert!(duplicate);
                            prop_assert_eq!(order, earlier);
                            prop_assert_eq!(shard.digest(), before);
                        }
                        Some(Ok(IdempotencyCheck::New)) => {
                            prop_assert!(!duplicate);
                            prop_assert_eq!(shard.store(&store()).unwrap().orders().len(), orders_before + 1);
                        }
                        other => prop_assert!(false, "placed an order whose idempotency check was {:?}", other),
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    prop_assert_eq!(shard.digest(), before, "refused command changed state: {}", error);
                    if let Some(Ok(IdempotencyCheck::Duplicate(_))) = idempotency {
                        prop_assert!(false, "a duplicate request was refused: {}", error);
                    }
                    if let Some(Err(expected)) = idempotency {
                        prop_assert_eq!(error, expected);
                    }
                }
            }
            if let Err(violation) = shard.check_invariants() {
                prop_assert!(false, "after {:?}: {}", step, violation);
            }
            let state = shard.store(&store()).unwrap();
            for customer in CUSTOMERS {
                let held = state.limit_holding(&CustomerId::new(customer).unwrap(), &Sku::new("PHONE").unwrap());
                prop_assert!(held <= PHONE_LIMIT, "{customer} holds {held} phones");
            }
        }
        // Replaying the accepted commands from scratch rebuilds the same state.
        let bytes = shard.encode();
        prop_assert_eq!(Shard::decode(&bytes).unwrap().digest(), shard.digest());
        // A snapshot's copy leaves the look-ups out and rebuilds them: the
        // same bytes.
        let written = shard.snapshot_copy().write_to(Vec::new()).unwrap();
        prop_assert!(written == bytes, "a snapshot copy encodes differently");
    }

    #[test]
    fn replaying_accepted_commands_rebuilds_an_identical_state(steps in prop::collection::vec(step(), 1..60)) {
        let mut shard = setup();
        let mut accepted = Vec::new();
        for step in &steps {
            let command = command_for(&shard, step);
            if shard.apply(&command).is_ok() {
                accepted.push(command);
            }
        }
        let mut replayed = setup();
        for command in &accepted {
            replayed.apply(command).unwrap();
        }
        prop_assert_eq!(replayed.digest(), shard.digest());
    }

    #[test]
    fn an_order_moved_in_leaves_what_its_command_applied_leaves(steps in prop::collection::vec(step(), 1..60)) {
        let mut applied = setup();
        let mut moved = setup();
        for step in &steps {
            let command = command_for(&applied, step);
            let by_reference = applied.apply(&command);
            let by_value = match &command {
                Command::PlaceOrder(place) => {
                    // The writer journals the order by reference, once it
                    // is accepted.
                    let mut journaled = None;
                    let placed = moved.place_owned_order(place.clone(), |accepted| {
                        journaled = Some(postcard::to_allocvec(&PlaceOrderCommand(accepted)).unwrap());
                    });
                    match &placed {
                        Ok(_) => prop_assert_eq!(journaled, Some(postcard::to_allocvec(&command).unwrap())),
                        Err((_, refused)) => {
                            prop_assert!(journaled.is_none(), "a refused order reached the journal");
                            prop_assert_eq!(refused, place);
                        }
                    }
                    placed.map_err(|(error, _)| error)
                }
                command => moved.apply(command),
            };
            prop_assert_eq!(by_value, by_reference);
            prop_assert_eq!(moved.digest(), applied.digest());
        }
    }
}

fn place(shard: &Shard, customer: usize, lines: &[(usize, u32)], key: Option<u8>) -> Command {
    command_for(
        shard,
        &Step::Order { customer, lines: lines.to_vec(), key, discount: 0, split: false },
    )
}

fn stocked() -> Shard {
    let mut shard = setup();
    for sku in 0..3 {
        shard
            .apply(&command_for(&shard, &Step::Receive { sku, warehouse: 0, quantity: 10 }))
            .unwrap();
    }
    shard
}

#[test]
fn the_same_key_with_another_body_is_refused() {
    let mut shard = stocked();
    shard.apply(&place(&shard, 0, &[(1, 1)], Some(1))).unwrap();
    let error = shard.apply(&place(&shard, 0, &[(1, 2)], Some(1))).unwrap_err();
    assert!(matches!(error, KernelError::IdempotencyConflict { order: 1, .. }), "{error}");
}

#[test]
fn a_purchase_limit_counts_live_orders_and_returns_units_on_cancel() {
    let mut shard = stocked();
    shard.apply(&place(&shard, 0, &[(0, 2)], None)).unwrap();
    let error = shard.apply(&place(&shard, 0, &[(0, 1)], None)).unwrap_err();
    assert!(matches!(error, KernelError::PurchaseLimitExceeded { held: 2, .. }), "{error}");
    shard.apply(&Command::CancelOrder { store: store(), order: 1, at_ms: 5 }).unwrap();
    shard.apply(&place(&shard, 0, &[(0, 2)], None)).unwrap();
    shard.check_invariants().unwrap();
}

#[test]
fn an_order_moves_stock_through_reserved_sold_and_shipped() {
    let mut shard = stocked();
    shard.apply(&place(&shard, 1, &[(2, 3)], None)).unwrap();
    let level = |shard: &Shard| {
        shard
            .store(&store())
            .unwrap()
            .stock_level(&Sku::new("CABLE").unwrap(), &WarehouseId::new("HZ").unwrap())
    };
    assert_eq!((level(&shard).available, level(&shard).reserved), (7, 3));
    shard.apply(&Command::PayOrder { store: store(), order: 1, at_ms: 2 }).unwrap();
    assert_eq!((level(&shard).reserved, level(&shard).sold), (0, 3));
    shard.apply(&Command::FulfilOrder { store: store(), order: 1, at_ms: 3 }).unwrap();
    assert_eq!((level(&shard).on_hand, level(&shard).sold, level(&shard).shipped), (7, 0, 3));
    let order = shard.store(&store()).unwrap().order(1).unwrap();
    assert_eq!(order.status, OrderStatus::Fulfilled);
    let error =
        shard.apply(&Command::CancelOrder { store: store(), order: 1, at_ms: 4 }).unwrap_err();
    assert!(matches!(error, KernelError::InvalidTransition { .. }), "{error}");
}

#[test]
fn a_discount_larger_than_the_price_is_refused_and_changes_nothing() {
    let mut shard = stocked();
    let before = shard.digest();
    let command = command_for(
        &shard,
        &Step::Order { customer: 0, lines: vec![(1, 1)], key: None, discount: 2_001, split: false },
    );
    let error = shard.apply(&command).unwrap_err();
    assert!(matches!(error, KernelError::InvalidAdjustment { .. }), "{error}");
    assert_eq!(shard.digest(), before);
}

#[test]
fn a_product_priced_in_another_currency_is_refused() {
    let mut shard = setup();
    let product = Product {
        sku: Sku::new("X").unwrap(),
        title: "x".into(),
        unit_price_minor: 1,
        purchase_limit_per_customer: None,
    };
    let usd = Currency::parse("USD").unwrap();
    let error = shard
        .apply(&Command::UpsertProduct { store: store(), product, currency: usd })
        .unwrap_err();
    assert!(matches!(error, KernelError::CurrencyMismatch { .. }), "{error}");
}

#[test]
fn zero_and_unknown_quantities_and_skus_are_refused_with_clear_errors() {
    let mut shard = stocked();
    let error = shard.apply(&place(&shard, 0, &[(1, 0)], None)).unwrap_err();
    assert_eq!(error.to_string(), "invalid quantity 0 for sku CASE: must be 1 to 10000");
    let mut request = request(0, &[(1, 1)], None);
    request.lines[0].sku = Sku::new("NOPE").unwrap();
    let error = shard.prepare_cart(&store(), &request, 0).unwrap_err();
    assert_eq!(error.to_string(), "unknown sku NOPE");
    let error = shard.apply(&place(&shard, 0, &[(1, 11)], None)).unwrap_err();
    assert_eq!(error.to_string(), "insufficient stock for sku CASE: requested 11, available 10");
}

#[test]
fn discounts_over_the_stores_cap_are_refused_and_change_nothing() {
    let mut shard = stocked();
    // CASE costs 2,000; a 10 % cap allows 200 off.
    let rules = PricingRules { discount_cap_percent: Some(10), discount_cap_minor: None };
    shard.apply(&Command::SetPricingRules { store: store(), rules }).unwrap();
    let before = shard.digest();
    let over = command_for(
        &shard,
        &Step::Order { customer: 0, lines: vec![(1, 1)], key: None, discount: 201, split: false },
    );
    let error = shard.apply(&over).unwrap_err();
    assert!(
        matches!(error, KernelError::DiscountOverCap { discount_minor: 201, cap_minor: 200 }),
        "{error}"
    );
    assert_eq!(shard.digest(), before);
    let at_cap = command_for(
        &shard,
        &Step::Order { customer: 0, lines: vec![(1, 1)], key: None, discount: 200, split: false },
    );
    shard.apply(&at_cap).unwrap();
}

#[test]
fn pricing_rules_out_of_range_are_refused() {
    let mut shard = stocked();
    for rules in [
        PricingRules { discount_cap_percent: Some(101), discount_cap_minor: None },
        PricingRules { discount_cap_percent: None, discount_cap_minor: Some(-1) },
    ] {
        let error = shard.apply(&Command::SetPricingRules { store: store(), rules }).unwrap_err();
        assert!(matches!(error, KernelError::InvalidPricingRules(_)), "{error}");
    }
}

#[test]
fn the_cap_is_the_lower_of_percentage_and_amount() {
    let both = PricingRules { discount_cap_percent: Some(50), discount_cap_minor: Some(300) };
    assert_eq!(both.discount_cap(1_000), Some(300));
    assert_eq!(both.discount_cap(400), Some(200));
    assert_eq!(PricingRules::default().discount_cap(1_000), None);
    // Rounds down: 33 % of 10 is 3.3, and the cap never exceeds the share.
    let third = PricingRules { discount_cap_percent: Some(33), discount_cap_minor: None };
    assert_eq!(third.discount_cap(10), Some(3));
}

#[test]
fn a_store_configures_at_most_the_plugin_limit() {
    let mut shard = stocked();
    for index in 0..PLUGINS_PER_STORE_MAX {
        let plugin = PluginId::new(format!("plugin-{index}")).unwrap();
        let command = Command::ConfigurePlugin {
            store: store(),
            plugin,
            config_json: Some("{}".into()),
            settings: PluginSettings::default(),
        };
        shard.apply(&command).unwrap();
    }
    let before = shard.digest();
    let one_more = Command::ConfigurePlugin {
        store: store(),
        plugin: PluginId::new("plugin-extra").unwrap(),
        config_json: Some("{}".into()),
        settings: PluginSettings::default(),
    };
    let error = shard.apply(&one_more).unwrap_err();
    assert!(matches!(error, KernelError::TooMany { .. }), "{error}");
    assert_eq!(shard.digest(), before);
}

#[test]
fn an_order_yields_its_placement_and_stock_events_and_a_duplicate_yields_none() {
    use bazaar_kernel::event::{EventKind, derive_events};
    let mut shard = stocked();
    let command = command_for(
        &shard,
        &Step::Order {
            customer: 1,
            lines: vec![(2, 3)],
            key: Some(7),
            discount: 100,
            split: false,
        },
    );
    let outcome = shard.apply(&command).unwrap();
    let events = derive_events(&shard, &command, &outcome);
    let EventKind::OrderPlaced { order, lines, totals, discounts, .. } = &events[0] else {
        panic!("first event: {:?}", events[0]);
    };
    assert_eq!((*order, lines[0].quantity, lines[0].unit_price_minor), (1, 3, 3_000));
    assert_eq!((totals.subtotal_minor, totals.discount_minor), (9_000, 100));
    assert_eq!(discounts[0].amount_minor, 100);
    let placed_total = totals.total_minor;
    let EventKind::StockChanged { level, .. } = &events[1] else { panic!("{:?}", events[1]) };
    assert_eq!((level.available, level.reserved), (7, 3));
    assert_eq!(events.len(), 2);

    let again = shard.apply(&command).unwrap();
    assert!(derive_events(&shard, &command, &again).is_empty(), "a duplicate changes nothing");

    let cancel = Command::CancelOrder { store: store(), order: 1, at_ms: 9 };
    let outcome = shard.apply(&cancel).unwrap();
    let events = derive_events(&shard, &cancel, &outcome);
    assert_eq!(events[0], EventKind::OrderCancelled { order: 1, total_minor: placed_total });
    let EventKind::StockChanged { level, .. } = &events[1] else { panic!("{:?}", events[1]) };
    assert_eq!((level.available, level.reserved), (10, 0));
}

#[test]
fn a_refused_order_moved_in_comes_back_whole_and_never_reaches_the_journal() {
    let mut shard = stocked();
    // Ten units are stocked of each SKU: eleven cannot be reserved.
    let Command::PlaceOrder(order) = place(&shard, 0, &[(1, 11)], Some(3)) else {
        panic!("an order step makes a PlaceOrder command");
    };
    let before = shard.digest();
    let mut journaled = false;
    let (error, refused) =
        shard.place_owned_order(order.clone(), |_| journaled = true).unwrap_err();
    assert!(matches!(error, KernelError::InsufficientStock { .. }), "{error}");
    assert!(!journaled);
    assert_eq!(refused, order);
    assert_eq!(shard.digest(), before);
}

#[test]
fn an_order_moved_in_is_held_without_the_spare_capacity_it_was_built_with() {
    let mut shard = stocked();
    let Command::PlaceOrder(mut order) = place(&shard, 0, &[(1, 1)], Some(4)) else {
        panic!("an order step makes a PlaceOrder command");
    };
    order.request.lines.reserve(16);
    order.request.shipping_address.street.reserve(100);
    let Outcome::OrderPlaced { order: number, .. } =
        shard.place_owned_order(order, |_| {}).unwrap()
    else {
        panic!("a new order is placed");
    };
    let held = &shard.store(&store()).unwrap().order(number).unwrap().request;
    assert_eq!(held.lines.capacity(), held.lines.len());
    let street = &held.shipping_address.street;
    assert_eq!(street.capacity(), street.len());
}
