//! The install-time check of a compiled component: what it imports against
//! what it was granted, and what it exports against its extension point.
//!
//! Every import falls in one of four classes:
//!
//! - `bazaar:commerce/types`, `bazaar:commerce/events` and
//!   `bazaar:commerce/device-types`: shared type definitions, no
//!   functions; always allowed.
//! - `bazaar:commerce/log`, `config`, `state`: a [`Capability`] each; allowed
//!   only when granted ([`LoadError::NotGranted`] otherwise).
//! - `wasi:*`: allowed when the linker provides it (deny-all, see
//!   [`crate::host::wasi`]); the linker's own type check decides, and an
//!   interface it does not offer (say `wasi:http`) is
//!   [`LoadError::UnknownImport`].
//! - anything else, including other `bazaar:commerce` interfaces: refused as
//!   [`LoadError::UnknownImport`].
//!
//! Versions are left to the linker, which matches semver-compatibly
//! (`@0.1.0` satisfies an import of `@0.1.1` of the same track when the
//! types agree); grants are matched by interface name without version.
//!
//! Does a component built with wit-bindgen import `state` when its code never
//! calls it? No. wit-bindgen declares an import for every function of the
//! world, but the core module imports only the functions its code reaches
//! (the linker drops the rest), and wit-component builds the component's
//! imports from the core module's, so an interface none of whose functions
//! is called is not imported at all. Measured on the first-party plugins:
//! `risk-guard` (log, config and state in its code) imports all three;
//! `pricing-promotions` imports log and config, `logistics-router` only
//! config; so those two install without the `state` grant. Toolchains
//! that keep every import of the world do need every grant: components
//! from componentize-py and componentize-js import log, config and state
//! whether or not the code calls them.
//!
//! Also measured: a componentize-py component imports WASI's cli, clocks,
//! filesystem, io, random and sockets (all linked, deny-all) and passes; a
//! componentize-js component built with its default features imports
//! `wasi:http/types`, which the host does not provide, and is refused as an
//! unknown import until it is built with `disableFeatures: ["http",
//! "fetch-event"]`.

use std::collections::BTreeSet;

use bazaar_kernel::model::{Capability, PluginKind};
use wasmtime::component::{InstancePre, Linker};

use crate::compile::CompiledComponent;
use crate::error::LoadError;
use crate::store_data::InstanceState;

/// The interfaces of types the worlds use (every world's shared types, the
/// analytics world's events, the device-driver world's device types); they
/// have no functions, so they give no power and need no grant.
const TYPE_INTERFACES: [&str; 3] =
    ["bazaar:commerce/types", "bazaar:commerce/events", "bazaar:commerce/device-types"];
/// The namespace of the standard WASI interfaces.
const WASI_NAMESPACE: &str = "wasi:";

/// What an install-time check found in a component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentReport {
    /// Every import, by its full (versioned) name, in the component's order.
    pub imports: Vec<String>,
    /// Every export, by its full (versioned) name, in the component's order.
    pub exports: Vec<String>,
    /// The capabilities whose interfaces the component imports: what it
    /// can use, which may be less than what it was granted.
    pub capabilities_used: BTreeSet<Capability>,
}

/// What an import is, for the grant check.
enum ImportClass {
    /// Bazaar's shared types or events.
    Types,
    /// One of Bazaar's host interfaces.
    Capability(Capability),
    /// A standard WASI interface.
    Wasi,
    /// Anything the host does not offer.
    Unknown,
}

/// `name` without its `@version`, if any.
fn unversioned(name: &str) -> &str {
    name.split_once('@').map_or(name, |(interface, _)| interface)
}

fn classify(name: &str) -> ImportClass {
    let interface = unversioned(name);
    if TYPE_INTERFACES.contains(&interface) {
        return ImportClass::Types;
    }
    if let Some(capability) = Capability::ALL
        .into_iter()
        .find(|capability| unversioned(capability.interface()) == interface)
    {
        return ImportClass::Capability(capability);
    }
    if interface.starts_with(WASI_NAMESPACE) {
        return ImportClass::Wasi;
    }
    ImportClass::Unknown
}

/// Checks `compiled` for an extension point `kind` with `granted`
/// capabilities, and pre-links it with `linker` for the world check, which
/// `check_world` performs.
pub(crate) fn check(
    linker: &Linker<InstanceState>,
    compiled: &CompiledComponent,
    kind: PluginKind,
    granted: &BTreeSet<Capability>,
    check_world: impl FnOnce(InstancePre<InstanceState>) -> Result<(), LoadError>,
) -> Result<ComponentReport, LoadError> {
    let engine = linker.engine();
    let component_type = compiled.component.component_type();
    let imports: Vec<String> =
        component_type.imports(engine).map(|(name, _)| name.to_owned()).collect();
    let exports: Vec<String> =
        component_type.exports(engine).map(|(name, _)| name.to_owned()).collect();

    let mut capabilities_used = BTreeSet::new();
    for name in &imports {
        match classify(name) {
            ImportClass::Types | ImportClass::Wasi => {}
            ImportClass::Capability(capability) => {
                if !granted.contains(&capability) {
                    return Err(LoadError::NotGranted { interface: name.clone(), capability });
                }
                capabilities_used.insert(capability);
            }
            ImportClass::Unknown => {
                return Err(LoadError::UnknownImport { interface: name.clone() });
            }
        }
    }

    let instance_pre = pre_link(linker, compiled)?;
    let export = unversioned(kind.export());
    if !exports.iter().any(|name| unversioned(name) == export) {
        return Err(LoadError::WrongWorld {
            world: kind.world(),
            detail: format!(
                "it does not export `{}`; its exports are: {}",
                kind.export(),
                exports.join(", ")
            ),
        });
    }
    check_world(instance_pre)?;
    Ok(ComponentReport { imports, exports, capabilities_used })
}

/// Links `compiled` against every host interface. When the linker cannot
/// satisfy an import, wasmtime's error names it in backquotes; a WASI
/// import named so is one the host does not provide (or provides with
/// other types), and is reported as unknown.
pub(crate) fn pre_link(
    linker: &Linker<InstanceState>,
    compiled: &CompiledComponent,
) -> Result<InstancePre<InstanceState>, LoadError> {
    linker.instantiate_pre(&compiled.component).map_err(|error| {
        let outermost = error.to_string();
        let component_type = compiled.component.component_type();
        let unprovided_wasi = component_type.imports(linker.engine()).find(|(name, _)| {
            matches!(classify(name), ImportClass::Wasi) && outermost.contains(&format!("`{name}`"))
        });
        match unprovided_wasi {
            Some((name, _)) => LoadError::UnknownImport { interface: name.to_owned() },
            None => LoadError::UnsatisfiedImport(format!("{error:#}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_classified_by_interface_whatever_their_version() {
        assert!(matches!(classify("bazaar:commerce/types@0.2.0"), ImportClass::Types));
        assert!(matches!(classify("bazaar:commerce/events@0.2.0"), ImportClass::Types));
        assert!(matches!(classify("bazaar:commerce/device-types@0.2.0"), ImportClass::Types));
        assert!(matches!(classify("bazaar:commerce/driver@0.2.0"), ImportClass::Unknown));
        assert!(matches!(
            classify("bazaar:commerce/state@0.1.3"),
            ImportClass::Capability(Capability::State)
        ));
        assert!(matches!(
            classify("bazaar:commerce/log"),
            ImportClass::Capability(Capability::Log)
        ));
        assert!(matches!(classify("wasi:io/streams@0.2.6"), ImportClass::Wasi));
        assert!(matches!(classify("bazaar:commerce/pricer@0.2.0"), ImportClass::Unknown));
        assert!(matches!(classify("bazaar:commerce/analyzer@0.2.0"), ImportClass::Unknown));
        assert!(matches!(classify("acme:tools/shell@1.0.0"), ImportClass::Unknown));
        assert!(matches!(classify("wasix:io/streams"), ImportClass::Unknown));
    }
}
