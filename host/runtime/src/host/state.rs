//! `bazaar:commerce/state`: a plugin's persistent key-value state in the
//! calling store.
//!
//! The host owns the state: each call sees the store's map as it was when
//! the call began (a shared, copy-on-write `Arc` from the kernel) with this
//! call's own writes laid over it. Writes are not applied here; they are
//! collected and handed back with the call's outcome so the kernel can
//! journal them with the order, which keeps replay exact. A call that
//! fails hands back no writes.
//!
//! Sizes follow the kernel's limits. Breaking a limit the WIT can express
//! (key length, value size, key count) is an error returned to the plugin;
//! exceeding the writes one call may make cannot be expressed, so it ends
//! the call.

use std::collections::BTreeMap;
use std::sync::Arc;

use bazaar_kernel::{
    PluginStateMap, STATE_KEY_LEN_MAX, STATE_KEYS_MAX, STATE_VALUE_LEN_MAX,
    STATE_WRITES_PER_ORDER_MAX,
};
use wasmtime::component::{HasData, Linker};

use crate::bindings::state;
use crate::error::GuestLimitExceeded;

/// One pending change: the new value, or `None` for a delete.
pub(crate) type PendingWrite = (String, Option<Vec<u8>>);

/// The state visible to the call under way.
#[derive(Default)]
pub(crate) struct StateCtx {
    /// The store's state of this plugin as the call began; `None` between
    /// calls, so an idle instance pins no copy of any store's state.
    base: Option<Arc<PluginStateMap>>,
    /// This call's writes by key; the last write to a key wins.
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// Keys the plugin holds in the store, counting this call's writes.
    key_count: usize,
}

impl StateCtx {
    /// Makes `base` the state the call that starts now reads from.
    pub(crate) fn begin_call(&mut self, base: Arc<PluginStateMap>) {
        self.key_count = base.len();
        self.base = Some(base);
        self.writes.clear();
    }

    /// Ends the call: releases the store's map and returns the call's
    /// writes in key order.
    pub(crate) fn finish_call(&mut self) -> Vec<PendingWrite> {
        self.base = None;
        self.key_count = 0;
        std::mem::take(&mut self.writes).into_iter().collect()
    }

    /// The value `key` has for the call: its own write, else the base.
    fn current(&self, key: &str) -> Option<&Vec<u8>> {
        match self.writes.get(key) {
            Some(write) => write.as_ref(),
            None => self.base.as_deref().and_then(|base| base.get(key)),
        }
    }

    /// Refuses a write to a key the call has not written yet once the call
    /// has written [`STATE_WRITES_PER_ORDER_MAX`] keys.
    fn check_write_budget(&self, key: &str) -> Result<(), GuestLimitExceeded> {
        if !self.writes.contains_key(key) && self.writes.len() >= STATE_WRITES_PER_ORDER_MAX {
            return Err(GuestLimitExceeded(format!(
                "the plugin wrote more than {STATE_WRITES_PER_ORDER_MAX} state keys in one call"
            )));
        }
        Ok(())
    }
}

/// A limit as the WIT reports it.
fn limit_u32(limit: usize) -> u32 {
    u32::try_from(limit).unwrap_or(u32::MAX)
}

impl state::Host for StateCtx {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(self.current(&key).cloned())
    }

    fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), state::StateError>> {
        if key.len() > STATE_KEY_LEN_MAX {
            return Ok(Err(state::StateError::KeyTooLong(limit_u32(STATE_KEY_LEN_MAX))));
        }
        if value.len() > STATE_VALUE_LEN_MAX {
            return Ok(Err(state::StateError::ValueTooLarge(limit_u32(STATE_VALUE_LEN_MAX))));
        }
        let exists = self.current(&key).is_some();
        if !exists && self.key_count >= STATE_KEYS_MAX {
            return Ok(Err(state::StateError::TooManyKeys(limit_u32(STATE_KEYS_MAX))));
        }
        self.check_write_budget(&key)?;
        if !exists {
            self.key_count += 1;
        }
        self.writes.insert(key, Some(value));
        Ok(Ok(()))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        if self.current(&key).is_none() {
            return Ok(());
        }
        let in_base = self.base.as_deref().is_some_and(|base| base.contains_key(&key));
        if in_base {
            self.check_write_budget(&key)?;
            self.writes.insert(key, None);
        } else {
            // Created and deleted within this call: nothing to journal.
            self.writes.remove(&key);
        }
        self.key_count = self.key_count.saturating_sub(1);
        Ok(())
    }
}

/// Adds `bazaar:commerce/state` to `linker`, working on the context `get`
/// picks out of the store data.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StateCtx,
) -> wasmtime::Result<()> {
    state::add_to_linker::<T, HasState>(linker, get)
}

struct HasState;

impl HasData for HasState {
    type Data<'a> = &'a mut StateCtx;
}

#[cfg(test)]
mod tests {
    use super::*;
    use state::Host as _;

    fn ctx_with(entries: &[(&str, &[u8])]) -> StateCtx {
        let base: PluginStateMap =
            entries.iter().map(|(key, value)| ((*key).to_owned(), value.to_vec())).collect();
        let mut ctx = StateCtx::default();
        ctx.begin_call(Arc::new(base));
        ctx
    }

    #[test]
    fn reads_see_the_calls_own_writes_over_the_base() {
        let mut ctx = ctx_with(&[("a", b"1"), ("b", b"2")]);
        ctx.set("a".into(), b"9".to_vec()).unwrap().unwrap();
        ctx.delete("b".into()).unwrap();
        assert_eq!(ctx.get("a".into()).unwrap(), Some(b"9".to_vec()));
        assert_eq!(ctx.get("b".into()).unwrap(), None);
        assert_eq!(
            ctx.finish_call(),
            vec![("a".to_owned(), Some(b"9".to_vec())), ("b".to_owned(), None)]
        );
    }

    #[test]
    fn a_key_created_and_deleted_in_one_call_leaves_no_write() {
        let mut ctx = ctx_with(&[]);
        ctx.set("tmp".into(), b"x".to_vec()).unwrap().unwrap();
        ctx.delete("tmp".into()).unwrap();
        ctx.delete("never-there".into()).unwrap();
        assert!(ctx.finish_call().is_empty());
    }

    #[test]
    fn oversized_keys_and_values_are_refused_with_the_limit() {
        let mut ctx = ctx_with(&[]);
        let long_key = "k".repeat(STATE_KEY_LEN_MAX + 1);
        assert!(matches!(
            ctx.set(long_key, vec![]).unwrap(),
            Err(state::StateError::KeyTooLong(limit)) if limit as usize == STATE_KEY_LEN_MAX
        ));
        let big_value = vec![0; STATE_VALUE_LEN_MAX + 1];
        assert!(matches!(
            ctx.set("k".into(), big_value).unwrap(),
            Err(state::StateError::ValueTooLarge(_))
        ));
        assert!(ctx.finish_call().is_empty());
    }

    #[test]
    fn a_full_key_space_refuses_new_keys_but_accepts_updates() {
        let base: PluginStateMap =
            (0..STATE_KEYS_MAX).map(|index| (format!("key-{index}"), vec![1])).collect();
        let mut ctx = StateCtx::default();
        ctx.begin_call(Arc::new(base));
        assert!(matches!(
            ctx.set("one-more".into(), vec![]).unwrap(),
            Err(state::StateError::TooManyKeys(_))
        ));
        assert!(ctx.set("key-0".into(), vec![2]).unwrap().is_ok());
        ctx.delete("key-1".into()).unwrap();
        assert!(ctx.set("one-more".into(), vec![]).unwrap().is_ok());
    }

    #[test]
    fn too_many_writes_in_one_call_end_the_call() {
        let mut ctx = ctx_with(&[]);
        for index in 0..STATE_WRITES_PER_ORDER_MAX {
            ctx.set(format!("key-{index}"), vec![]).unwrap().unwrap();
        }
        // Rewriting a key already written costs nothing more.
        assert!(ctx.set("key-0".into(), vec![1]).is_ok());
        let error = ctx.set("key-extra".into(), vec![]).unwrap_err();
        assert!(error.downcast_ref::<GuestLimitExceeded>().is_some());
    }
}
