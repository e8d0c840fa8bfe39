//! Host bindings of the `bazaar:commerce` worlds, generated from the WIT
//! files at build time.
//!
//! Every world imports the same host interfaces (log, config, state, or a
//! subset of them) and uses the same `types`; the other worlds' bindings
//! reuse the pricing ones for those, so the host implements each interface
//! once and the linker holds it once. The device-driver world's own
//! vocabulary (`device-types`) is generated with it, since no other world
//! uses it. Every import is trappable: a host function may end the call
//! when a plugin breaks a limit that its WIT signature cannot express.

pub(crate) mod pricing {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "pricing",
        imports: { default: trappable },
    });
}

pub(crate) mod logistics {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "logistics",
        imports: { default: trappable },
        with: {
            "bazaar:commerce/types": crate::bindings::pricing::bazaar::commerce::types,
            "bazaar:commerce/log": crate::bindings::pricing::bazaar::commerce::log,
            "bazaar:commerce/config": crate::bindings::pricing::bazaar::commerce::config,
            "bazaar:commerce/state": crate::bindings::pricing::bazaar::commerce::state,
        },
    });
}

pub(crate) mod risk {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "risk",
        imports: { default: trappable },
        with: {
            "bazaar:commerce/types": crate::bindings::pricing::bazaar::commerce::types,
            "bazaar:commerce/log": crate::bindings::pricing::bazaar::commerce::log,
            "bazaar:commerce/config": crate::bindings::pricing::bazaar::commerce::config,
            "bazaar:commerce/state": crate::bindings::pricing::bazaar::commerce::state,
        },
    });
}

pub(crate) mod analytics {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "analytics",
        imports: { default: trappable },
        with: {
            "bazaar:commerce/types": crate::bindings::pricing::bazaar::commerce::types,
            "bazaar:commerce/log": crate::bindings::pricing::bazaar::commerce::log,
            "bazaar:commerce/config": crate::bindings::pricing::bazaar::commerce::config,
            "bazaar:commerce/state": crate::bindings::pricing::bazaar::commerce::state,
        },
    });
}

pub(crate) mod device_driver {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "device-driver",
        imports: { default: trappable },
        with: {
            "bazaar:commerce/log": crate::bindings::pricing::bazaar::commerce::log,
            "bazaar:commerce/config": crate::bindings::pricing::bazaar::commerce::config,
        },
    });
}

pub(crate) use pricing::bazaar::commerce::{config, log, state, types};
