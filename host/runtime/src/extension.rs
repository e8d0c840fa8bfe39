//! The two public types every extension point has, declared once.
//!
//! Each extension point exposes a loaded plugin (compiled and linked at one
//! version, cheap to clone, shared by every worker thread) and a per-worker
//! holder of its live instance. Between extension points only the names,
//! the generated bindings and the call itself differ; the call is written by
//! hand in each world's module on top of the shared driver in
//! [`crate::call`], and [`extension_point!`] declares the rest.

/// Declares an extension point's loaded-plugin type and its per-worker
/// instance holder:
///
/// ```text
/// extension_point! {
///     /// docs of the plugin type
///     plugin PricingPlugin(pre: PricingPre<InstanceState>);
///     /// docs of the worker type
///     worker Pricer(bindings: Pricing), made by pricer;
/// }
/// ```
///
/// The plugin type gets `plugin_ref`, `counters`, the worker constructor
/// and `Debug`; the worker type gets `plugin` and `Debug`, and keeps its
/// instance in a field named `instance` for the hand-written call. A worker
/// declared with `kept input: T` after its bindings also has a field
/// `input: Option<T>`, where the call keeps its WIT input to refill next
/// time.
macro_rules! extension_point {
    (
        $(#[$plugin_doc:meta])*
        plugin $plugin:ident(pre: $pre:ty);
        $(#[$worker_doc:meta])*
        worker $worker:ident(bindings: $bindings:ty $(, kept input: $input:ty)?), made by $make_worker:ident;
    ) => {
        $(#[$plugin_doc])*
        #[derive(Clone)]
        pub struct $plugin {
            /// The plugin, shared with every worker made from it.
            loaded: ::std::sync::Arc<$crate::call::Loaded<$pre>>,
        }

        impl $plugin {
            pub(crate) fn new(
                plugin: ::bazaar_kernel::model::PluginRef,
                pre: $pre,
                runtime: ::std::sync::Arc<$crate::runtime::RuntimeShared>,
                limits: $crate::limits::EffectiveLimits,
            ) -> Self {
                Self {
                    loaded: ::std::sync::Arc::new($crate::call::Loaded::new(
                        plugin, pre, runtime, limits,
                    )),
                }
            }

            /// Which plugin and version this is.
            pub fn plugin_ref(&self) -> &::bazaar_kernel::model::PluginRef {
                &self.loaded.plugin
            }

            #[doc = concat!(
                "Calls, failures, traps and instantiations so far, over every [`",
                stringify!($worker),
                "`] of this plugin."
            )]
            pub fn counters(&self) -> $crate::call::CallCounters {
                self.loaded.counters()
            }

            /// A holder for one worker's instance of the plugin.
            pub fn $make_worker(&self) -> $worker {
                $worker { plugin: self.clone(), instance: None, $(input: None::<$input>)? }
            }
        }

        impl ::std::fmt::Debug for $plugin {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($plugin))
                    .field("plugin", &self.loaded.plugin)
                    .field("counters", &self.loaded.counters())
                    .finish_non_exhaustive()
            }
        }

        $(#[$worker_doc])*
        pub struct $worker {
            /// The plugin it runs.
            plugin: $plugin,
            /// The live instance, if any.
            instance: ::std::option::Option<$crate::call::LiveInstance<$bindings>>,
            $(
            /// The input of the last call, refilled for the next one so
            /// that its strings and lists are not allocated again.
            input: ::std::option::Option<$input>,
            )?
        }

        impl $worker {
            /// The plugin it runs.
            pub fn plugin(&self) -> &$plugin {
                &self.plugin
            }
        }

        impl ::std::fmt::Debug for $worker {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($worker))
                    .field("plugin", &self.plugin.loaded.plugin)
                    .field("warm", &self.instance.is_some())
                    .finish()
            }
        }
    };
}

pub(crate) use extension_point;
