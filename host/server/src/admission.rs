//! Bounded admission: a global cap on requests in flight and token-bucket
//! rate limits per store and per customer.
//!
//! Nothing here waits. A request that finds the in-flight cap reached is
//! answered 503 with `Retry-After` at once; one over a rate limit gets 429
//! with the time until its bucket refills. The node's bounded shard queues
//! are the second line: a full queue is also an immediate 503. A flash sale
//! therefore turns into fast refusals that clients can retry, never into a
//! queue of requests timing out.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bazaar_kernel::model::{CustomerId, StoreId};
use tokio::sync::OwnedSemaphorePermit;

use crate::error::ApiError;
use crate::state::AppState;

/// Distinct keys (stores, or store and customer pairs) one limiter tracks:
/// each costs about a hundred bytes, so a million is ~100 MB at worst.
/// Buckets that have refilled completely are forgotten first; a limiter
/// still full after that refuses new keys rather than grow.
pub const RATE_LIMIT_KEYS_MAX: usize = 1_000_000;
/// Highest configurable rate, requests per second per key: far above what
/// one node serves, so any real limit fits.
pub const RATE_PER_SECOND_MAX: u32 = 10_000_000;

/// A token-bucket rate: `per_second` tokens refill each second, up to
/// `burst`. A `per_second` of 0 switches the limit off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rate {
    /// Sustained requests per second; 0 = unlimited.
    pub per_second: u32,
    /// Requests allowed at once after a quiet period (at least 1).
    pub burst: u32,
}

impl Rate {
    /// No limit.
    pub const OFF: Rate = Rate { per_second: 0, burst: 0 };

    /// Whether the limit is on.
    pub fn is_on(self) -> bool {
        self.per_second > 0
    }
}

/// One key's bucket, in thousandths of a token so slow rates refill
/// smoothly with integer arithmetic.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens left, in thousandths.
    tokens_milli: u64,
    /// When `tokens_milli` was last brought up to date.
    refilled_at: Instant,
}

/// Token buckets for a set of keys.
pub struct RateLimiter<K> {
    /// The rate of every bucket.
    rate: Rate,
    /// The buckets.
    buckets: Mutex<HashMap<K, Bucket>>,
    /// Most keys tracked.
    keys_max: usize,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter with `rate` for each key.
    pub fn new(rate: Rate, keys_max: usize) -> Self {
        Self { rate, buckets: Mutex::new(HashMap::new()), keys_max }
    }

    /// Takes a token for `key` at `now`; when there is none, the time until
    /// there is one.
    pub fn try_take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if !self.rate.is_on() {
            return Ok(());
        }
        let per_second = u64::from(self.rate.per_second);
        let capacity_milli = u64::from(self.rate.burst.max(1)) * 1000;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(key) && buckets.len() >= self.keys_max {
            // Forget every bucket that is full again: its key is idle.
            buckets.retain(|_, bucket| {
                let elapsed_ms = now.saturating_duration_since(bucket.refilled_at).as_millis();
                let refill =
                    u64::try_from(elapsed_ms).unwrap_or(u64::MAX).saturating_mul(per_second);
                bucket.tokens_milli.saturating_add(refill) < capacity_milli
            });
            if buckets.len() >= self.keys_max {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets
            .entry(key.clone())
            .or_insert(Bucket { tokens_milli: capacity_milli, refilled_at: now });
        let elapsed_ms = now.saturating_duration_since(bucket.refilled_at).as_millis();
        // per_second tokens a second = per_second thousandths a millisecond.
        let refill = u64::try_from(elapsed_ms).unwrap_or(u64::MAX).saturating_mul(per_second);
        if refill > 0 {
            bucket.tokens_milli = bucket.tokens_milli.saturating_add(refill).min(capacity_milli);
            bucket.refilled_at = now;
        }
        if bucket.tokens_milli >= 1000 {
            bucket.tokens_milli -= 1000;
            Ok(())
        } else {
            let missing_milli = 1000 - bucket.tokens_milli;
            Err(Duration::from_millis(missing_milli.div_ceil(per_second)))
        }
    }
}

/// The rate limits of the server.
pub struct RateLimits {
    /// Every request to a store's routes.
    store: RateLimiter<StoreId>,
    /// Orders and cart prices per customer of a store.
    customer: RateLimiter<(StoreId, CustomerId)>,
}

fn retry_after_s(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl RateLimits {
    /// Limits with the given rates.
    pub fn new(store: Rate, customer: Rate) -> Self {
        Self {
            store: RateLimiter::new(store, RATE_LIMIT_KEYS_MAX),
            customer: RateLimiter::new(customer, RATE_LIMIT_KEYS_MAX),
        }
    }

    /// Counts a request to `store`'s routes.
    pub fn admit_store(&self, store: &StoreId) -> Result<(), ApiError> {
        self.store.try_take(store, Instant::now()).map_err(|wait| {
            ApiError::rate_limited(
                format!("store {store} is over its request rate limit; retry later"),
                retry_after_s(wait),
            )
        })
    }

    /// Counts an order or cart price by `customer` of `store`.
    pub fn admit_customer(&self, store: &StoreId, customer: &CustomerId) -> Result<(), ApiError> {
        if !self.customer.rate.is_on() {
            // The common case: no limit, so no key to build.
            return Ok(());
        }
        self.customer.try_take(&(store.clone(), customer.clone()), Instant::now()).map_err(|wait| {
            ApiError::rate_limited(
                format!("customer {customer} of store {store} is over the rate limit; retry later"),
                retry_after_s(wait),
            )
        })
    }
}

/// A permit to serve one request while fewer than the in-flight cap are
/// being served; otherwise the 503 (with `Retry-After`) to answer at once,
/// without waiting. Held until the request's response is ready.
pub fn admit_in_flight(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    state.in_flight().clone().try_acquire_owned().map_err(|_| {
        ApiError::overloaded(format!(
            "the server is at its limit of {} requests in flight; retry shortly",
            state.in_flight_max()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_that_is_off_never_refuses() {
        let limiter = RateLimiter::new(Rate::OFF, 10);
        let now = Instant::now();
        for _ in 0..10_000 {
            assert!(limiter.try_take(&"k", now).is_ok());
        }
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_until_it_refills() {
        let limiter = RateLimiter::new(Rate { per_second: 10, burst: 3 }, 10);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.try_take(&"k", start).is_ok());
        }
        let wait = limiter.try_take(&"k", start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(limiter.try_take(&"k", start + Duration::from_millis(100)).is_ok());
        assert!(limiter.try_take(&"other", start).is_ok(), "keys are independent");
    }

    #[test]
    fn a_full_limiter_forgets_idle_keys_before_refusing_new_ones() {
        let limiter = RateLimiter::new(Rate { per_second: 1, burst: 1 }, 2);
        let start = Instant::now();
        assert!(limiter.try_take(&1, start).is_ok());
        assert!(limiter.try_take(&2, start).is_ok());
        assert!(limiter.try_take(&3, start).is_err(), "both keys are still limited");
        let later = start + Duration::from_secs(2);
        assert!(limiter.try_take(&3, later).is_ok(), "idle keys were forgotten");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_s(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_s(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_s(Duration::from_millis(2001)), 3);
    }
}
