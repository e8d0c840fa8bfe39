//! A loaded plugin of any extension point, as
//! [`Runtime::load`](crate::Runtime::load) returns it: one type for the
//! registries and hot-swap pointers that hold plugins of every kind.

use bazaar_kernel::model::{PluginKind, PluginRef};

use crate::analytics::AnalyticsPlugin;
use crate::call::CallCounters;
use crate::driver::DriverPlugin;
use crate::logistics::LogisticsPlugin;
use crate::pricing::PricingPlugin;
use crate::risk::RiskPlugin;

/// A compiled, checked and linked plugin of one extension point. Cheap to
/// clone and to share between threads.
#[derive(Clone, Debug)]
pub enum LoadedPlugin {
    /// A pricing plugin.
    Pricing(PricingPlugin),
    /// A logistics plugin.
    Logistics(LogisticsPlugin),
    /// A risk plugin.
    Risk(RiskPlugin),
    /// An analytics plugin.
    Analytics(AnalyticsPlugin),
    /// A device-driver plugin.
    Driver(DriverPlugin),
}

impl LoadedPlugin {
    /// Which plugin and version this is.
    pub fn plugin_ref(&self) -> &PluginRef {
        match self {
            LoadedPlugin::Pricing(plugin) => plugin.plugin_ref(),
            LoadedPlugin::Logistics(plugin) => plugin.plugin_ref(),
            LoadedPlugin::Risk(plugin) => plugin.plugin_ref(),
            LoadedPlugin::Analytics(plugin) => plugin.plugin_ref(),
            LoadedPlugin::Driver(plugin) => plugin.plugin_ref(),
        }
    }

    /// The extension point it implements.
    pub fn kind(&self) -> PluginKind {
        match self {
            LoadedPlugin::Pricing(_) => PluginKind::Pricing,
            LoadedPlugin::Logistics(_) => PluginKind::Logistics,
            LoadedPlugin::Risk(_) => PluginKind::Risk,
            LoadedPlugin::Analytics(_) => PluginKind::Analytics,
            LoadedPlugin::Driver(_) => PluginKind::DeviceDriver,
        }
    }

    /// Calls, failures, traps and instantiations so far, over every worker
    /// of the plugin.
    pub fn counters(&self) -> CallCounters {
        match self {
            LoadedPlugin::Pricing(plugin) => plugin.counters(),
            LoadedPlugin::Logistics(plugin) => plugin.counters(),
            LoadedPlugin::Risk(plugin) => plugin.counters(),
            LoadedPlugin::Analytics(plugin) => plugin.counters(),
            LoadedPlugin::Driver(plugin) => plugin.counters(),
        }
    }
}
