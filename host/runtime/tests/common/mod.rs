//! What the runtime's integration tests share: a runtime with test limits,
//! carts, and calls.

use std::sync::Arc;

use bazaar_artifacts::Artifact;
use bazaar_kernel::PluginStateMap;
use bazaar_kernel::model::{
    Address, Cart, CartLine, Coordinates, Customer, CustomerId, CustomerSegment, PluginId,
    PluginRef, Sku, StoreId,
};
use bazaar_kernel::money::Currency;
use bazaar_runtime::{PluginCall, Runtime, RuntimeLimits};

/// The order timestamp of every test call: 2024-11-11 00:00:00 UTC.
pub const NOW_MS: u64 = 1_731_283_200_000;

/// Where test carts ship to: People's Square, Shanghai.
pub const SHANGHAI: Coordinates =
    Coordinates { latitude_micro: 31_230_400, longitude_micro: 121_473_700 };

/// Limits for tests: a deadline generous enough that a busy machine never
/// interrupts a well-behaved call, and a small pool.
pub fn test_limits() -> RuntimeLimits {
    RuntimeLimits {
        call_deadline_ms: 250,
        memory_bytes_max: 32 * 1024 * 1024,
        instances_max: 8,
        ..RuntimeLimits::default()
    }
}

/// A runtime with `limits`.
pub fn runtime(limits: RuntimeLimits) -> Runtime {
    Runtime::new(limits).expect("the test limits are valid")
}

/// The kernel's reference to an artifact's plugin.
pub fn plugin_ref(artifact: &Artifact) -> PluginRef {
    PluginRef {
        id: PluginId::new(artifact.id).expect("artifact ids are valid plugin ids"),
        version: artifact.version.to_owned(),
    }
}

/// A CNY cart of `store` with `(sku, quantity, unit price in fen)` lines,
/// shipping to Shanghai.
pub fn cart(store: &str, lines: &[(&str, u32, i64)]) -> Cart {
    Cart {
        store_id: StoreId::new(store).expect("valid store id"),
        currency: Currency::parse("CNY").expect("valid currency"),
        customer: Customer {
            id: CustomerId::new("customer-1").expect("valid customer id"),
            segment: CustomerSegment::Regular,
        },
        lines: lines
            .iter()
            .map(|&(sku, quantity, unit_price_minor)| CartLine {
                sku: Sku::new(sku).expect("valid sku"),
                quantity,
                unit_price_minor,
            })
            .collect(),
        coupon_codes: Vec::new(),
        shipping_address: Address {
            country: "CN".to_owned(),
            region: "Shanghai".to_owned(),
            city: "Shanghai".to_owned(),
            street: "People's Square 1".to_owned(),
            postal_code: "200000".to_owned(),
            location: SHANGHAI,
        },
        placed_at_ms: NOW_MS,
    }
}

/// A call for `store` with its configuration and state.
pub fn call(store: &str, config_json: Option<&str>, state: Arc<PluginStateMap>) -> PluginCall {
    PluginCall {
        store: StoreId::new(store).expect("valid store id"),
        config_json: config_json.map(Arc::from),
        state,
        now_ms: NOW_MS,
        random_seed: 11,
    }
}
