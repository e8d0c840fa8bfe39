//! Circuit breakers, one per plugin per store.
//!
//! A plugin that keeps failing for a store (hanging until its deadline,
//! trapping, returning nonsense) would otherwise cost every order of that
//! store, and of every other store on the same shard, a full call deadline.
//! After a run of failures the breaker opens: the plugin is skipped (and
//! its extension point's failure policy applies) until a backoff has passed;
//! then one call probes it; success closes the breaker, failure reopens it
//! with twice the backoff. Breakers live on the shard writer that owns the
//! store, so they need no lock; their states are published for operators.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use bazaar_kernel::model::{PluginId, StoreId};

/// Consecutive failures that open a breaker: enough to ignore a one-off
/// fault, few enough that a broken plugin costs a store only a handful of
/// deadlines.
pub const FAILURES_TO_OPEN: u32 = 5;
/// How long a breaker first stays open.
pub const BACKOFF_MS_INITIAL: u64 = 1_000;
/// The longest a breaker stays open before probing again.
pub const BACKOFF_MS_MAX: u64 = 60_000;

/// A breaker's state, as operators see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; this many have failed in a row.
    Closed {
        /// Consecutive failures so far.
        consecutive_failures: u32,
    },
    /// Calls are skipped until `until_ms`.
    Open {
        /// When the next probe may go through, milliseconds since the epoch.
        until_ms: u64,
        /// The backoff that led here.
        backoff_ms: u64,
    },
    /// One probe call is going through.
    HalfOpen {
        /// The backoff to use if the probe fails.
        backoff_ms: u64,
    },
}

/// Every breaker's state that is not plain closed, by (store, plugin).
pub type PublishedBreakers = Arc<Mutex<BTreeMap<(StoreId, PluginId), BreakerState>>>;

/// One shard's breakers.
#[derive(Default)]
pub struct Breakers {
    /// Breakers that have seen a failure; a missing one is closed and clean.
    states: HashMap<StoreId, HashMap<PluginId, BreakerState>>,
    /// Where state changes are published.
    published: PublishedBreakers,
}

impl Breakers {
    /// Breakers that publish to `published`.
    pub fn new(published: PublishedBreakers) -> Self {
        Self { states: HashMap::new(), published }
    }

    /// Whether a call to `plugin` for `store` may go through at `now_ms`.
    /// An open breaker whose backoff has passed lets one probe through.
    pub fn allow(&mut self, store: &StoreId, plugin: &PluginId, now_ms: u64) -> bool {
        let Some(state) = self.states.get_mut(store).and_then(|s| s.get_mut(plugin)) else {
            return true;
        };
        match *state {
            BreakerState::Closed { .. } | BreakerState::HalfOpen { .. } => true,
            BreakerState::Open { until_ms, backoff_ms } => {
                if now_ms < until_ms {
                    return false;
                }
                *state = BreakerState::HalfOpen { backoff_ms };
                let state = *state;
                self.publish(store, plugin, state);
                true
            }
        }
    }

    /// Records how a call that [`Breakers::allow`]ed went.
    pub fn record(&mut self, store: &StoreId, plugin: &PluginId, now_ms: u64, succeeded: bool) {
        if succeeded {
            // The common case: a clean breaker stays absent.
            if let Some(plugins) = self.states.get_mut(store)
                && plugins.remove(plugin).is_some()
            {
                self.unpublish(store, plugin);
            }
            return;
        }
        let plugins = self.states.entry(store.clone()).or_default();
        let state = plugins
            .entry(plugin.clone())
            .or_insert(BreakerState::Closed { consecutive_failures: 0 });
        let next = match *state {
            BreakerState::Closed { consecutive_failures }
                if consecutive_failures + 1 < FAILURES_TO_OPEN =>
            {
                BreakerState::Closed { consecutive_failures: consecutive_failures + 1 }
            }
            BreakerState::Closed { .. } => BreakerState::Open {
                until_ms: now_ms + BACKOFF_MS_INITIAL,
                backoff_ms: BACKOFF_MS_INITIAL,
            },
            BreakerState::HalfOpen { backoff_ms } | BreakerState::Open { backoff_ms, .. } => {
                let backoff_ms = (backoff_ms * 2).min(BACKOFF_MS_MAX);
                BreakerState::Open { until_ms: now_ms + backoff_ms, backoff_ms }
            }
        };
        *state = next;
        self.publish(store, plugin, next);
    }

    fn publish(&self, store: &StoreId, plugin: &PluginId, state: BreakerState) {
        let mut published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
        published.insert((store.clone(), plugin.clone()), state);
    }

    fn unpublish(&self, store: &StoreId, plugin: &PluginId) {
        let mut published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
        published.remove(&(store.clone(), plugin.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (StoreId, PluginId) {
        (StoreId::new("shop").unwrap(), PluginId::new("flaky").unwrap())
    }

    #[test]
    fn a_breaker_opens_after_repeated_failures_and_probes_after_its_backoff() {
        let published = PublishedBreakers::default();
        let mut breakers = Breakers::new(published.clone());
        let (store, plugin) = ids();
        for _ in 0..FAILURES_TO_OPEN {
            assert!(breakers.allow(&store, &plugin, 0));
            breakers.record(&store, &plugin, 0, false);
        }
        assert!(!breakers.allow(&store, &plugin, BACKOFF_MS_INITIAL - 1));
        assert_eq!(
            published.lock().unwrap().get(&(store.clone(), plugin.clone())),
            Some(&BreakerState::Open {
                until_ms: BACKOFF_MS_INITIAL,
                backoff_ms: BACKOFF_MS_INITIAL
            })
        );
        // The probe fails: open again, for twice as long.
        assert!(breakers.allow(&store, &plugin, BACKOFF_MS_INITIAL));
        breakers.record(&store, &plugin, BACKOFF_MS_INITIAL, false);
        assert!(!breakers.allow(&store, &plugin, 2 * BACKOFF_MS_INITIAL));
        // The next probe succeeds: closed and clean.
        assert!(breakers.allow(&store, &plugin, 3 * BACKOFF_MS_INITIAL));
        breakers.record(&store, &plugin, 3 * BACKOFF_MS_INITIAL, true);
        assert!(breakers.allow(&store, &plugin, 3 * BACKOFF_MS_INITIAL));
        assert!(published.lock().unwrap().is_empty());
    }

    #[test]
    fn a_success_clears_a_run_of_failures_and_other_stores_are_untouched() {
        let mut breakers = Breakers::default();
        let (store, plugin) = ids();
        let other = StoreId::new("other").unwrap();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            breakers.record(&store, &plugin, 0, false);
        }
        breakers.record(&store, &plugin, 0, true);
        breakers.record(&store, &plugin, 0, false);
        assert!(breakers.allow(&store, &plugin, 0), "the run restarted after the success");
        for _ in 0..FAILURES_TO_OPEN {
            breakers.record(&store, &plugin, 0, false);
        }
        assert!(!breakers.allow(&store, &plugin, 0));
        assert!(breakers.allow(&other, &plugin, 0));
    }

    #[test]
    fn backoff_never_exceeds_its_maximum() {
        let mut breakers = Breakers::default();
        let (store, plugin) = ids();
        let mut now = 0;
        for _ in 0..40 {
            breakers.allow(&store, &plugin, now);
            breakers.record(&store, &plugin, now, false);
            now += BACKOFF_MS_MAX;
        }
        let state = breakers.states[&store][&plugin];
        assert!(
            matches!(state, BreakerState::Open { backoff_ms: BACKOFF_MS_MAX, .. }),
            "{state:?}"
        );
    }
}
