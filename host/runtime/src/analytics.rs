//! The analytics extension point: a loaded analytics plugin, and the
//! per-worker [`Analyzer`] that feeds it a store's events and asks it
//! named queries.
//!
//! An analytics plugin is never on the order path. The host's event
//! consumer hands it one store's committed events in batches
//! ([`Analyzer::ingest`]) and journals the state writes of each batch that
//! succeeds; a failed batch changes nothing and is offered again later.
//! Dashboards ask it questions ([`Analyzer::query`]) that it answers from
//! its state alone; a query's state writes are dropped, so a query can
//! never change anything.
//!
//! The batch and the query are the host's input, checked here before the
//! plugin sees them ([`CallError::InvalidInput`]); the answer is the
//! plugin's output, checked for size and for being JSON
//! ([`CallError::InvalidOutput`]).

use bazaar_kernel::event::Event;
use bazaar_kernel::model::{ID_LEN_MAX, PluginKind};
use wasmtime::Store;
use wasmtime::component::Func;

use crate::bindings::analytics::{Analytics, AnalyticsPre};
use crate::bindings::types;
use crate::call::{CallOutcome, PluginCall};
use crate::error::CallError;
use crate::event_lowering::{self, BatchLists};
use crate::extension::extension_point;
use crate::store_data::InstanceState;

/// The most events one [`Analyzer::ingest`] call carries. The consumer
/// batches 1,000 to 4,096 events so the cost of a call, and of reading and
/// writing the plugin's state, is shared by many events. 4,096 typical
/// events take well under a megabyte of guest memory and `analytics-live`
/// folds them in about 3 ms (the `analytics` benchmark), inside the
/// default call deadline of 20 ms with room for a slower plugin; a larger
/// batch would risk that deadline and make every retry of a failed batch
/// costlier.
pub const EVENTS_PER_BATCH_MAX: usize = 4096;

/// The longest query name, in bytes: names are short identifiers such as
/// `top-skus`, like every other id of the host.
pub const QUERY_NAME_BYTES_MAX: usize = ID_LEN_MAX;

/// The longest query arguments, in bytes: a query takes a few options (a
/// ranking, a limit, a filter of a few ids); 4 KiB is ample for those and
/// keeps each query's copy into the guest trivial.
pub const QUERY_ARGUMENTS_BYTES_MAX: usize = 4 * 1024;

/// The longest answer to a query, in bytes. A dashboard polls its queries
/// every second or so; `analytics-live`'s largest answer (two series of
/// 120 points) is about 25 KB, and 256 KiB leaves other plugins ten times
/// that while bounding what each poll copies out of the guest and sends.
pub const QUERY_ANSWER_BYTES_MAX: usize = 256 * 1024;

extension_point! {
    /// A compiled and linked analytics plugin at one version. Cheap to
    /// clone and to share between threads; instances come from
    /// [`AnalyticsPlugin::analyzer`].
    plugin AnalyticsPlugin(pre: AnalyticsPre<InstanceState>);

    /// One worker's instance of an analytics plugin: created on the first
    /// call, reused by the next ones, replaced after a trap. Not shared
    /// between threads; each worker makes its own with
    /// [`AnalyticsPlugin::analyzer`].
    worker Analyzer(bindings: AnalyticsInstance), made by analyzer;
}

/// A live instance's exports: the generated bindings, and `ingest` as a
/// plain function, called with the borrowed events of
/// [`event_lowering`] rather than the bindings' owned ones.
pub(crate) struct AnalyticsInstance {
    /// The generated bindings (`query`).
    bindings: Analytics,
    /// The `ingest` export.
    ingest: Func,
}

/// The export `ingest` is under, in the analyzer interface.
const INGEST_EXPORT: &str = "ingest";

/// Instantiates an analytics plugin and finds its exports.
fn instantiate(
    pre: &AnalyticsPre<InstanceState>,
    store: &mut Store<InstanceState>,
) -> wasmtime::Result<AnalyticsInstance> {
    let instance = pre.instance_pre().instantiate(&mut *store)?;
    let bindings = Analytics::new(&mut *store, &instance)?;
    let interface = PluginKind::Analytics.export();
    let ingest = instance
        .get_export_index(&mut *store, None, interface)
        .and_then(|interface| {
            instance.get_export_index(&mut *store, Some(&interface), INGEST_EXPORT)
        })
        .and_then(|ingest| instance.get_func(&mut *store, ingest))
        .ok_or_else(|| wasmtime::Error::msg(format!("no `{INGEST_EXPORT}` in `{interface}`")))?;
    Ok(AnalyticsInstance { bindings, ingest })
}

impl Analyzer {
    /// Folds `events` into the plugin's state in `call.store`: on success
    /// the outcome carries the batch's state writes, for the host to
    /// journal. `events` must be that store's, in strictly increasing
    /// sequence order, at most [`EVENTS_PER_BATCH_MAX`] of them; otherwise
    /// the plugin is not called and the result is
    /// [`CallError::InvalidInput`]. Blocking CPU work: run it on a worker
    /// thread, never on an async reactor.
    pub fn ingest(&mut self, call: PluginCall, events: &[Event]) -> CallOutcome<()> {
        if let Err(refused) = check_batch(&call, events) {
            return CallOutcome::refused(refused);
        }
        let lists = BatchLists::of(events);
        let input = lists.events(events);
        self.plugin.loaded.call(
            &mut self.instance,
            call,
            instantiate,
            |analytics, store| {
                // Checks the borrowed mirrors against the component's own
                // types: microseconds, once per batch.
                let ingest = analytics
                    .ingest
                    .typed::<(&[event_lowering::Event<'_>],), (Result<(), types::PluginError>,)>(
                        &*store,
                    )?;
                let (result,) = ingest.call(&mut *store, (input.as_slice(),))?;
                Ok(result)
            },
            Ok,
        )
    }

    /// Asks the plugin query `name` with `arguments_json` (a JSON object of
    /// at most [`QUERY_ARGUMENTS_BYTES_MAX`] bytes; a name of 1 to
    /// [`QUERY_NAME_BYTES_MAX`] printable bytes) and returns its answer, a
    /// JSON document of at most [`QUERY_ANSWER_BYTES_MAX`] bytes. The
    /// plugin answers from the state in `call`; whatever it writes is
    /// dropped, so the outcome never carries state writes. Blocking CPU
    /// work, like [`Analyzer::ingest`].
    pub fn query(
        &mut self,
        call: PluginCall,
        name: &str,
        arguments_json: &str,
    ) -> CallOutcome<String> {
        if let Err(refused) = check_query(name, arguments_json) {
            return CallOutcome::refused(refused);
        }
        let mut outcome = self.plugin.loaded.call(
            &mut self.instance,
            call,
            instantiate,
            |analytics, store| {
                analytics.bindings.bazaar_commerce_analyzer().call_query(
                    store,
                    name,
                    arguments_json,
                )
            },
            check_answer,
        );
        // A query answers; it never changes the plugin's state.
        outcome.state_writes.clear();
        outcome
    }
}

/// Checks a batch before the plugin sees it.
fn check_batch(call: &PluginCall, events: &[Event]) -> Result<(), CallError> {
    if events.len() > EVENTS_PER_BATCH_MAX {
        return Err(CallError::InvalidInput(format!(
            "a batch of {} events; at most {EVENTS_PER_BATCH_MAX} are accepted per call",
            events.len()
        )));
    }
    let mut previous: Option<u64> = None;
    for event in events {
        if event.store != call.store {
            return Err(CallError::InvalidInput(format!(
                "event {} belongs to store {}, but the call is for store {}",
                event.sequence, event.store, call.store
            )));
        }
        if let Some(previous) = previous
            && event.sequence <= previous
        {
            return Err(CallError::InvalidInput(format!(
                "event {} follows event {previous}; a batch is in strictly increasing sequence \
                 order",
                event.sequence
            )));
        }
        previous = Some(event.sequence);
    }
    Ok(())
}

/// Checks a query before the plugin sees it.
fn check_query(name: &str, arguments_json: &str) -> Result<(), CallError> {
    if name.is_empty() || name.len() > QUERY_NAME_BYTES_MAX {
        return Err(CallError::InvalidInput(format!(
            "a query name is 1 to {QUERY_NAME_BYTES_MAX} bytes long, not {}",
            name.len()
        )));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(CallError::InvalidInput(
            "a query name has no spaces or control characters".to_owned(),
        ));
    }
    if arguments_json.len() > QUERY_ARGUMENTS_BYTES_MAX {
        return Err(CallError::InvalidInput(format!(
            "query arguments of {} bytes; at most {QUERY_ARGUMENTS_BYTES_MAX} are accepted",
            arguments_json.len()
        )));
    }
    match serde_json::from_str::<serde_json::Value>(arguments_json) {
        Ok(arguments) if arguments.is_object() => Ok(()),
        Ok(_) => Err(CallError::InvalidInput("query arguments are a JSON object".to_owned())),
        Err(error) => {
            Err(CallError::InvalidInput(format!("query arguments are not JSON: {error}")))
        }
    }
}

/// Checks a plugin's answer: not too long, and one JSON document.
fn check_answer(answer: String) -> Result<String, CallError> {
    if answer.len() > QUERY_ANSWER_BYTES_MAX {
        return Err(CallError::InvalidOutput(format!(
            "an answer of {} bytes; at most {QUERY_ANSWER_BYTES_MAX} are accepted",
            answer.len()
        )));
    }
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(&answer) {
        return Err(CallError::InvalidOutput(format!("the answer is not JSON: {error}")));
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bazaar_kernel::event::EventKind;
    use bazaar_kernel::model::StoreId;
    use bazaar_kernel::money::Currency;

    use super::*;

    fn call(store: &str) -> PluginCall {
        PluginCall {
            store: StoreId::new(store).unwrap(),
            config_json: None,
            state: Arc::default(),
            now_ms: 0,
            random_seed: 0,
        }
    }

    fn paid(store: &str, sequence: u64) -> Event {
        Event {
            sequence,
            store: StoreId::new(store).unwrap(),
            currency: Currency::parse("CNY").unwrap(),
            at_ms: 1,
            kind: EventKind::OrderPaid { order: 1, total_minor: 100 },
        }
    }

    fn refused_because(result: Result<(), CallError>, fragment: &str) {
        match result {
            Err(CallError::InvalidInput(text)) => {
                assert!(text.contains(fragment), "{text:?} does not mention {fragment:?}")
            }
            other => panic!("expected invalid input mentioning {fragment:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_batch_of_the_calls_store_in_sequence_order_is_accepted() {
        assert!(check_batch(&call("a"), &[paid("a", 3), paid("a", 7)]).is_ok());
        assert!(check_batch(&call("a"), &[]).is_ok());
    }

    #[test]
    fn a_batch_too_large_out_of_order_or_of_another_store_is_refused() {
        let many: Vec<Event> =
            (1..=EVENTS_PER_BATCH_MAX as u64 + 1).map(|n| paid("a", n)).collect();
        refused_because(check_batch(&call("a"), &many), "at most 4096");
        refused_because(check_batch(&call("a"), &[paid("a", 1), paid("b", 2)]), "store b");
        refused_because(check_batch(&call("a"), &[paid("a", 2), paid("a", 2)]), "follows event 2");
    }

    #[test]
    fn queries_need_a_short_name_and_a_small_json_object() {
        assert!(check_query("top-skus", r#"{"limit": 3}"#).is_ok());
        refused_because(check_query("", "{}"), "1 to 64 bytes");
        refused_because(check_query(&"q".repeat(65), "{}"), "1 to 64 bytes");
        refused_because(check_query("top skus", "{}"), "no spaces");
        refused_because(check_query("top-skus", "[1]"), "a JSON object");
        refused_because(check_query("top-skus", "{"), "not JSON");
        let long = format!(r#"{{"pad": "{}"}}"#, "x".repeat(QUERY_ARGUMENTS_BYTES_MAX));
        refused_because(check_query("top-skus", &long), "at most 4096");
    }

    #[test]
    fn answers_must_be_json_within_the_size_limit() {
        assert!(check_answer("{\"gmv_minor\": 1}".to_owned()).is_ok());
        assert!(matches!(check_answer("gmv: 1".to_owned()), Err(CallError::InvalidOutput(_))));
        let long = format!("\"{}\"", "x".repeat(QUERY_ANSWER_BYTES_MAX));
        assert!(matches!(check_answer(long), Err(CallError::InvalidOutput(_))));
    }
}
