//! The Bazaar partner SDK: everything a plugin needs besides its own logic.
//!
//! A plugin is a WebAssembly component for one extension point (a *world* of
//! the `bazaar:commerce` WIT package). This crate hides the generated
//! bindings behind plain Rust:
//!
//! - [`types`]: the WIT records as ordinary structs ([`Cart`],
//!   [`RouteRequest`], [`ShipmentPlan`], [`RiskRequest`], ...), used by
//!   plugin logic on every target;
//! - [`device`]: the device bus's commands, frames and events a driver
//!   plugin translates ([`DeviceCommand`], [`Frame`], [`DeviceEvent`], ...);
//! - [`events`]: the domain events an analytics plugin consumes
//!   ([`Event`], [`EventKind`], ...), and [`query`]: the JSON arguments and
//!   answers of its named queries;
//! - [`money`]: integer money with checked arithmetic and exact decimal
//!   parsing, never floats;
//! - [`config`]: the store's JSON configuration, parsed once into a typed
//!   value and cached while the text is unchanged;
//! - [`log`], `state` (every world but the device driver's): the host
//!   imports; on native targets an in-process stand-in ([`stand_in`]) takes
//!   their place so plugin logic can be unit tested with `cargo test`;
//! - [`geo`]: integer-only distances between coordinates;
//! - [`testing`]: builders that keep a plugin's unit tests short.
//!
//! A pricing plugin in full:
//!
//! ```
//! use bazaar_sdk::{Cart, PluginConfig, PluginError, PriceAdjustment, PricingPlugin};
//!
//! #[derive(Default, serde::Deserialize)]
//! pub struct Config {
//!     /// Minor units taken off every cart.
//!     amount_off_minor: i64,
//! }
//!
//! impl PluginConfig for Config {
//!     // A store that configured nothing gets the defaults (nothing off).
//!     fn when_missing() -> Result<Self, PluginError> {
//!         Ok(Self::default())
//!     }
//! }
//!
//! pub struct FlatDiscount;
//!
//! impl PricingPlugin for FlatDiscount {
//!     type Config = Config;
//!
//!     fn price(cart: &Cart, config: &Config) -> Result<Vec<PriceAdjustment>, PluginError> {
//!         let subtotal = cart.subtotal()?;
//!         let amount_off = subtotal.amount_minor.min(config.amount_off_minor);
//!         if amount_off <= 0 {
//!             return Ok(Vec::new());
//!         }
//!         Ok(vec![PriceAdjustment::whole_cart(
//!             bazaar_sdk::Money::new(amount_off, &subtotal.currency),
//!             "flat",
//!             "A flat discount on every order",
//!         )])
//!     }
//! }
//!
//! // Exports the `pricer` interface when built for wasm32-wasip2; a no-op on
//! // native targets, where tests call `FlatDiscount::price` directly.
//! bazaar_sdk::export_pricing!(FlatDiscount);
//! # fn main() {}
//! ```
//!
//! The plugin crate enables exactly one world feature of this crate
//! (`pricing`, `logistics`, `risk`, `analytics` or `device-driver`): a
//! component embeds the type of one world, and linking two would make it
//! claim exports it does not have.

#[cfg(all(
    target_arch = "wasm32",
    any(
        all(feature = "pricing", feature = "logistics"),
        all(feature = "pricing", feature = "risk"),
        all(feature = "pricing", feature = "analytics"),
        all(feature = "pricing", feature = "device-driver"),
        all(feature = "logistics", feature = "risk"),
        all(feature = "logistics", feature = "analytics"),
        all(feature = "logistics", feature = "device-driver"),
        all(feature = "risk", feature = "analytics"),
        all(feature = "risk", feature = "device-driver"),
        all(feature = "analytics", feature = "device-driver"),
    )
))]
compile_error!(
    "bazaar-sdk: enable exactly one of the features `pricing`, `logistics`, `risk`, \
     `analytics` and `device-driver` for a wasm build; a component implements one world. Build \
     each plugin in its own cargo invocation so features do not unify across plugins."
);

// The lists of the components' allocator have no lock: compiled only where
// a component has one thread, and for its own tests.
#[cfg(any(
    test,
    all(target_arch = "wasm32", not(target_feature = "atomics"), feature = "allocator")
))]
mod allocator;
pub mod config;
pub mod device;
pub mod events;
pub mod geo;
pub mod log;
pub mod money;
pub mod query;
// The device-driver world imports no `state`: a driver keeps what it must
// remember in the memory the host threads through its calls.
#[cfg(not(all(target_arch = "wasm32", feature = "device-driver")))]
pub mod state;
pub mod testing;
pub mod types;

mod error;

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics"), feature = "allocator"))]
#[global_allocator]
static ALLOCATOR: allocator::SizeClasses = allocator::SizeClasses::new();

#[cfg(all(
    target_arch = "wasm32",
    any(
        feature = "pricing",
        feature = "logistics",
        feature = "risk",
        feature = "analytics",
        feature = "device-driver"
    )
))]
mod host;
#[cfg(not(all(
    target_arch = "wasm32",
    any(
        feature = "pricing",
        feature = "logistics",
        feature = "risk",
        feature = "analytics",
        feature = "device-driver"
    )
)))]
pub mod stand_in;

#[cfg(all(
    target_arch = "wasm32",
    any(
        feature = "pricing",
        feature = "logistics",
        feature = "risk",
        feature = "analytics",
        feature = "device-driver"
    )
))]
#[doc(hidden)]
pub mod __private;

// Where the host imports go: the real host in a component, the stand-in
// everywhere else.
#[cfg(all(
    target_arch = "wasm32",
    any(
        feature = "pricing",
        feature = "logistics",
        feature = "risk",
        feature = "analytics",
        feature = "device-driver"
    )
))]
use host as backend;
#[cfg(not(all(
    target_arch = "wasm32",
    any(
        feature = "pricing",
        feature = "logistics",
        feature = "risk",
        feature = "analytics",
        feature = "device-driver"
    )
)))]
use stand_in as backend;

pub use config::PluginConfig;
pub use device::{
    ActionKind, ActionStatus, ActionUpdate, Battery, ConnectionState, Decoded, DeviceCommand,
    DeviceContext, DeviceError, DeviceEvent, DeviceInfo, DevicePosition, DriverError, Encoded,
    ErrorLevel, Frame, Job, MapNode, NodeReached, Stop, StopAction,
};
pub use error::PluginError;
pub use events::{
    CheckoutRefused, Discount, Event, EventKind, EventLine, OrderPlaced, OrderStatus,
    RefusalReason, StockChanged,
};
pub use money::Money;
pub use types::{
    Address, Cart, CartLine, Coordinates, Customer, CustomerHistory, CustomerSegment, Decision,
    PriceAdjustment, RiskRequest, RiskVerdict, RouteRequest, Shipment, ShipmentLine, ShipmentPlan,
    UnitsHeld, Warehouse,
};

/// A pricing plugin: turns a cart into the price adjustments to apply.
///
/// Implement it on a unit struct and export it with [`export_pricing!`].
pub trait PricingPlugin {
    /// The store's configuration of the plugin, parsed from JSON.
    type Config: PluginConfig;

    /// The adjustments to apply to `cart`, in the order they apply. An empty
    /// list leaves the price unchanged.
    fn price(cart: &Cart, config: &Self::Config) -> Result<Vec<PriceAdjustment>, PluginError>;

    /// Prices `cart` with the calling store's configuration, read through
    /// the `config` import and cached while its text is unchanged. This is
    /// what the exported `price-cart` function runs.
    fn price_with_store_config(cart: &Cart) -> Result<Vec<PriceAdjustment>, PluginError> {
        let config = config::load::<Self::Config>()?;
        Self::price(cart, &config)
    }
}

/// A logistics plugin: decides which warehouses ship an order, with which
/// carrier, at what fee and by when.
///
/// Implement it on a unit struct and export it with [`export_logistics!`].
pub trait LogisticsPlugin {
    /// The store's configuration of the plugin, parsed from JSON.
    type Config: PluginConfig;

    /// A plan that ships every unit of the request's cart exactly once.
    fn plan(request: &RouteRequest, config: &Self::Config) -> Result<ShipmentPlan, PluginError>;

    /// Plans `request` with the calling store's configuration, read through
    /// the `config` import and cached while its text is unchanged. This is
    /// what the exported `plan-shipment` function runs.
    fn plan_with_store_config(request: &RouteRequest) -> Result<ShipmentPlan, PluginError> {
        let config = config::load::<Self::Config>()?;
        Self::plan(request, &config)
    }
}

/// A risk plugin: judges an order before anything is reserved, approving it
/// or rejecting it with a reason shown to the customer.
///
/// Implement it on a unit struct and export it with [`export_risk!`].
pub trait RiskPlugin {
    /// The store's configuration of the plugin, parsed from JSON.
    type Config: PluginConfig;

    /// Whether the order in `request` may be placed. An error is not a
    /// rejection: the host applies the risk extension point's failure
    /// policy to it.
    fn assess(request: &RiskRequest, config: &Self::Config) -> Result<RiskVerdict, PluginError>;

    /// Assesses `request` with the calling store's configuration, read
    /// through the `config` import and cached while its text is unchanged.
    /// This is what the exported `assess-order` function runs.
    fn assess_with_store_config(request: &RiskRequest) -> Result<RiskVerdict, PluginError> {
        let config = config::load::<Self::Config>()?;
        Self::assess(request, &config)
    }
}

/// An analytics plugin: folds a store's events into its state, batch by
/// batch, and answers named queries from that state alone.
///
/// Implement it on a unit struct and export it with [`export_analytics!`].
/// The host keeps a batch's state writes only if the whole batch succeeds
/// and offers a failed batch again, so [`AnalyticsPlugin::ingest`] may
/// return an error at any point without leaving half a batch behind. A
/// query's state writes are always discarded: a query changes nothing.
pub trait AnalyticsPlugin {
    /// The store's configuration of the plugin, parsed from JSON.
    type Config: PluginConfig;

    /// Folds `events` (one store's, in sequence order) into the plugin's
    /// state.
    fn ingest(events: &[Event], config: &Self::Config) -> Result<(), PluginError>;

    /// Answers the query `name` with the JSON text of its answer.
    /// `arguments_json` is the text of a JSON object, read with
    /// [`query::arguments`]; a name the plugin does not answer is
    /// [`query::unknown`].
    fn query(
        name: &str,
        arguments_json: &str,
        config: &Self::Config,
    ) -> Result<String, PluginError>;

    /// Ingests `events` with the calling store's configuration, read through
    /// the `config` import and cached while its text is unchanged. This is
    /// what the exported `ingest` function runs.
    fn ingest_with_store_config(events: &[Event]) -> Result<(), PluginError> {
        let config = config::load::<Self::Config>()?;
        Self::ingest(events, &config)
    }

    /// Answers a query with the calling store's configuration. This is what
    /// the exported `query` function runs.
    fn query_with_store_config(name: &str, arguments_json: &str) -> Result<String, PluginError> {
        let config = config::load::<Self::Config>()?;
        Self::query(name, arguments_json, &config)
    }
}

/// A device driver: a vendor protocol for robots, conveyors or lockers,
/// as a pure translation between the host's commands and MQTT frames, and
/// between inbound frames and typed device events.
///
/// Implement it on a unit struct and export it with [`export_driver!`].
/// The host owns the transport, retries, timeouts and the device registry;
/// a driver does no input or output. What it must remember about a device
/// between calls (message counters, the current job) goes into the
/// `memory` of its answer, which the host hands back as
/// [`DeviceContext::memory`] on the next call for the same device.
///
/// Bad input is an error, never a panic: an inbound payload that is not a
/// message of the protocol is [`DriverError::Malformed`], a command the
/// device cannot be given is [`DriverError::Unsupported`]. A failed call
/// changes nothing: the host keeps the memory it had.
pub trait DriverPlugin {
    /// The store's configuration of the plugin, parsed from JSON.
    type Config: PluginConfig;

    /// The topic prefix all of the device's traffic lies under, ending with
    /// `/`. The host routes inbound frames by it and refuses outbound frames
    /// outside it. A device the driver cannot address gets
    /// [`device::UNROUTABLE_NAMESPACE`].
    fn namespace(device: &DeviceInfo, config: &Self::Config) -> String;

    /// The topics, each under the namespace, that the host subscribes to
    /// for the device.
    fn subscriptions(device: &DeviceInfo, config: &Self::Config) -> Vec<String>;

    /// The frames that carry `command` to the device, and the memory to
    /// keep.
    fn encode(
        context: &DeviceContext,
        command: &DeviceCommand,
        config: &Self::Config,
    ) -> Result<Encoded, DriverError>;

    /// The events an inbound frame on `topic` carries, and the memory to
    /// keep.
    fn decode(
        context: &DeviceContext,
        topic: &str,
        payload: &[u8],
        config: &Self::Config,
    ) -> Result<Decoded, DriverError>;

    /// The namespace with the calling store's configuration. A store whose
    /// configuration is unusable gets [`device::UNROUTABLE_NAMESPACE`]: the
    /// device is then unreachable rather than addressed with settings the
    /// store did not give, and [`DriverPlugin::encode_with_store_config`]
    /// says why. This is what the exported `namespace` function runs.
    fn namespace_with_store_config(device: &DeviceInfo) -> String {
        match config::load::<Self::Config>() {
            Ok(config) => Self::namespace(device, &config),
            Err(_) => device::UNROUTABLE_NAMESPACE.to_owned(),
        }
    }

    /// The subscriptions with the calling store's configuration; none when
    /// it is unusable (see [`DriverPlugin::namespace_with_store_config`]).
    /// This is what the exported `subscriptions` function runs.
    fn subscriptions_with_store_config(device: &DeviceInfo) -> Vec<String> {
        match config::load::<Self::Config>() {
            Ok(config) => Self::subscriptions(device, &config),
            Err(_) => Vec::new(),
        }
    }

    /// Encodes `command` with the calling store's configuration, read
    /// through the `config` import and cached while its text is unchanged;
    /// an unusable configuration is [`DriverError::Unsupported`], naming
    /// the problem. This is what the exported `encode` function runs.
    fn encode_with_store_config(
        context: &DeviceContext,
        command: &DeviceCommand,
    ) -> Result<Encoded, DriverError> {
        let config = config::load::<Self::Config>()?;
        Self::encode(context, command, &config)
    }

    /// Decodes an inbound frame with the calling store's configuration
    /// (an unusable one is [`DriverError::Unsupported`]). This is what the
    /// exported `decode` function runs.
    fn decode_with_store_config(
        context: &DeviceContext,
        topic: &str,
        payload: &[u8],
    ) -> Result<Decoded, DriverError> {
        let config = config::load::<Self::Config>()?;
        Self::decode(context, topic, payload, &config)
    }
}

/// Exports a [`PricingPlugin`] as the component's `pricer` interface.
///
/// Invoke it once, at the top level of the plugin crate. On native targets
/// it expands to nothing, so the same crate also builds as an ordinary
/// library for unit tests and native benchmarks.
#[cfg(feature = "pricing")]
#[macro_export]
macro_rules! export_pricing {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct BazaarPricerExport;

            impl $crate::__private::pricing::exports::bazaar::commerce::pricer::Guest
                for BazaarPricerExport
            {
                fn price_cart(
                    cart: $crate::__private::pricing::bazaar::commerce::types::Cart,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<
                        $crate::__private::pricing::bazaar::commerce::types::PriceAdjustment,
                    >,
                    $crate::__private::pricing::bazaar::commerce::types::PluginError,
                > {
                    $crate::__private::price_cart::<$plugin>(cart)
                }
            }

            $crate::__private::pricing::__bazaar_export_pricing_world!(
                BazaarPricerExport with_types_in $crate::__private::pricing
            );
        };
    };
}

/// Stands in for the real macro when the `pricing` feature is off: a no-op on
/// native targets (like the real one) and, on wasm, an error that says which
/// feature to enable instead of a confusing missing-module error.
#[cfg(not(feature = "pricing"))]
#[macro_export]
macro_rules! export_pricing {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        ::core::compile_error!(
            "export_pricing! needs the `pricing` feature of bazaar-sdk: \
             bazaar-sdk = { version = \"...\", features = [\"pricing\"] }"
        );
    };
}

/// Exports a [`LogisticsPlugin`] as the component's `router` interface.
///
/// Invoke it once, at the top level of the plugin crate. On native targets
/// it expands to nothing, so the same crate also builds as an ordinary
/// library for unit tests and native benchmarks.
#[cfg(feature = "logistics")]
#[macro_export]
macro_rules! export_logistics {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct BazaarRouterExport;

            impl $crate::__private::logistics::exports::bazaar::commerce::router::Guest
                for BazaarRouterExport
            {
                fn plan_shipment(
                    request: $crate::__private::logistics::bazaar::commerce::types::RouteRequest,
                ) -> ::core::result::Result<
                    $crate::__private::logistics::bazaar::commerce::types::ShipmentPlan,
                    $crate::__private::logistics::bazaar::commerce::types::PluginError,
                > {
                    $crate::__private::plan_shipment::<$plugin>(request)
                }
            }

            $crate::__private::logistics::__bazaar_export_logistics_world!(
                BazaarRouterExport with_types_in $crate::__private::logistics
            );
        };
    };
}

/// Stands in for the real macro when the `logistics` feature is off: a no-op
/// on native targets (like the real one) and, on wasm, an error that says
/// which feature to enable instead of a confusing missing-module error.
#[cfg(not(feature = "logistics"))]
#[macro_export]
macro_rules! export_logistics {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        ::core::compile_error!(
            "export_logistics! needs the `logistics` feature of bazaar-sdk: \
             bazaar-sdk = { version = \"...\", features = [\"logistics\"] }"
        );
    };
}

/// Exports a [`RiskPlugin`] as the component's `risk-assessor` interface.
///
/// Invoke it once, at the top level of the plugin crate. On native targets
/// it expands to nothing, so the same crate also builds as an ordinary
/// library for unit tests and native benchmarks.
#[cfg(feature = "risk")]
#[macro_export]
macro_rules! export_risk {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct BazaarRiskAssessorExport;

            impl $crate::__private::risk::exports::bazaar::commerce::risk_assessor::Guest
                for BazaarRiskAssessorExport
            {
                fn assess_order(
                    request: $crate::__private::risk::bazaar::commerce::types::RiskRequest,
                ) -> ::core::result::Result<
                    $crate::__private::risk::bazaar::commerce::types::RiskVerdict,
                    $crate::__private::risk::bazaar::commerce::types::PluginError,
                > {
                    $crate::__private::assess_order::<$plugin>(request)
                }
            }

            $crate::__private::risk::__bazaar_export_risk_world!(
                BazaarRiskAssessorExport with_types_in $crate::__private::risk
            );
        };
    };
}

/// Stands in for the real macro when the `risk` feature is off: a no-op on
/// native targets (like the real one) and, on wasm, an error that says which
/// feature to enable instead of a confusing missing-module error.
#[cfg(not(feature = "risk"))]
#[macro_export]
macro_rules! export_risk {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        ::core::compile_error!(
            "export_risk! needs the `risk` feature of bazaar-sdk: \
             bazaar-sdk = { version = \"...\", features = [\"risk\"] }"
        );
    };
}

/// Exports an [`AnalyticsPlugin`] as the component's `analyzer` interface.
///
/// Invoke it once, at the top level of the plugin crate. On native targets
/// it expands to nothing, so the same crate also builds as an ordinary
/// library for unit tests and native benchmarks.
#[cfg(feature = "analytics")]
#[macro_export]
macro_rules! export_analytics {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct BazaarAnalyzerExport;

            impl $crate::__private::analytics::exports::bazaar::commerce::analyzer::Guest
                for BazaarAnalyzerExport
            {
                fn ingest(
                    events: ::std::vec::Vec<
                        $crate::__private::analytics::bazaar::commerce::events::Event,
                    >,
                ) -> ::core::result::Result<
                    (),
                    $crate::__private::analytics::bazaar::commerce::types::PluginError,
                > {
                    $crate::__private::ingest::<$plugin>(events)
                }

                fn query(
                    name: ::std::string::String,
                    arguments: ::std::string::String,
                ) -> ::core::result::Result<
                    ::std::string::String,
                    $crate::__private::analytics::bazaar::commerce::types::PluginError,
                > {
                    $crate::__private::query::<$plugin>(&name, &arguments)
                }
            }

            $crate::__private::analytics::__bazaar_export_analytics_world!(
                BazaarAnalyzerExport with_types_in $crate::__private::analytics
            );
        };
    };
}

/// Stands in for the real macro when the `analytics` feature is off: a
/// no-op on native targets (like the real one) and, on wasm, an error that
/// says which feature to enable instead of a confusing missing-module error.
#[cfg(not(feature = "analytics"))]
#[macro_export]
macro_rules! export_analytics {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        ::core::compile_error!(
            "export_analytics! needs the `analytics` feature of bazaar-sdk: \
             bazaar-sdk = { version = \"...\", features = [\"analytics\"] }"
        );
    };
}

/// Exports a [`DriverPlugin`] as the component's `driver` interface.
///
/// Invoke it once, at the top level of the plugin crate. On native targets
/// it expands to nothing, so the same crate also builds as an ordinary
/// library for unit tests and native benchmarks.
#[cfg(feature = "device-driver")]
#[macro_export]
macro_rules! export_driver {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct BazaarDriverExport;

            impl $crate::__private::device_driver::exports::bazaar::commerce::driver::Guest
                for BazaarDriverExport
            {
                fn namespace(
                    device: $crate::__private::device_driver::bazaar::commerce::device_types::DeviceInfo,
                ) -> ::std::string::String {
                    $crate::__private::driver_namespace::<$plugin>(device)
                }

                fn subscriptions(
                    device: $crate::__private::device_driver::bazaar::commerce::device_types::DeviceInfo,
                ) -> ::std::vec::Vec<::std::string::String> {
                    $crate::__private::driver_subscriptions::<$plugin>(device)
                }

                fn encode(
                    context: $crate::__private::device_driver::bazaar::commerce::device_types::DeviceContext,
                    command: $crate::__private::device_driver::bazaar::commerce::device_types::DeviceCommand,
                ) -> ::core::result::Result<
                    $crate::__private::device_driver::bazaar::commerce::device_types::Encoded,
                    $crate::__private::device_driver::bazaar::commerce::device_types::DriverError,
                > {
                    $crate::__private::driver_encode::<$plugin>(context, command)
                }

                fn decode(
                    context: $crate::__private::device_driver::bazaar::commerce::device_types::DeviceContext,
                    topic: ::std::string::String,
                    payload: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<
                    $crate::__private::device_driver::bazaar::commerce::device_types::Decoded,
                    $crate::__private::device_driver::bazaar::commerce::device_types::DriverError,
                > {
                    $crate::__private::driver_decode::<$plugin>(context, &topic, &payload)
                }
            }

            $crate::__private::device_driver::__bazaar_export_device_driver_world!(
                BazaarDriverExport with_types_in $crate::__private::device_driver
            );
        };
    };
}

/// Stands in for the real macro when the `device-driver` feature is off: a
/// no-op on native targets (like the real one) and, on wasm, an error that
/// says which feature to enable instead of a confusing missing-module error.
#[cfg(not(feature = "device-driver"))]
#[macro_export]
macro_rules! export_driver {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        ::core::compile_error!(
            "export_driver! needs the `device-driver` feature of bazaar-sdk: \
             bazaar-sdk = { version = \"...\", features = [\"device-driver\"] }"
        );
    };
}
