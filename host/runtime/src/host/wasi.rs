//! The WASI environment of a plugin: linked in full so that components
//! from any toolchain load, but deny-all and deterministic.
//!
//! Toolchains such as componentize-py and jco import the standard WASI
//! interfaces (cli, io, clocks, random, filesystem, sockets) whether or not
//! the plugin uses them. They are all linked, with a context that grants
//! nothing: no preopened directories, empty environment and arguments, no
//! network (TCP, UDP and name lookup off), an empty stdin, and stdout and
//! stderr that go nowhere.
//!
//! Time and randomness come from the host and are set per call, because
//! one instance serves many calls: both clocks are frozen at the order's
//! timestamp, and both random streams are derived from the call's seed (so
//! "secure" randomness is as predictable as the seed; plugins must not
//! mint secrets). Timers fire at once: with time frozen, a sleep would
//! otherwise block a worker thread in host code where no deadline can
//! reach it.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand_core::TryRng;
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiView};

/// Largest request to `get-random-bytes` (and its insecure twin): plugins
/// need a few bytes for ids or hash seeds; WASI's own default of 64 MiB
/// would let one call make the host allocate that much.
pub(crate) const RANDOM_BYTES_PER_REQUEST_MAX: u64 = 64 * 1024;

/// Mixed into the call's seed for the insecure stream, so the two streams
/// differ even though they share a seed.
const INSECURE_STREAM_SALT: u64 = 0x5851_f42d_4c95_7f2d;

/// The value `wasi:random/insecure-seed` returns: fixed, because hash-map
/// seeding that changes from call to call would break determinism.
const INSECURE_SEED: u128 = 0x0b5e_55ed_0b5e_55ed_0b5e_55ed_0b5e_55ed;

/// The host's handles on the time and randomness one instance sees.
pub(crate) struct CallEnvironment {
    /// Milliseconds since the Unix epoch at which both clocks stand.
    now_ms: Arc<AtomicU64>,
    /// State of the generator behind `wasi:random/random`.
    secure_state: Arc<AtomicU64>,
    /// State of the generator behind `wasi:random/insecure`.
    insecure_state: Arc<AtomicU64>,
}

impl CallEnvironment {
    /// A deny-all WASI context whose clocks and random streams are steered
    /// by the returned environment.
    pub(crate) fn new() -> (Self, WasiCtx) {
        let environment = Self {
            now_ms: Arc::new(AtomicU64::new(0)),
            secure_state: Arc::new(AtomicU64::new(0)),
            insecure_state: Arc::new(AtomicU64::new(0)),
        };
        let mut builder = WasiCtxBuilder::new();
        builder
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FrozenClock(Arc::clone(&environment.now_ms)))
            .monotonic_clock(FrozenClock(Arc::clone(&environment.now_ms)))
            .secure_random(SeededStream(Arc::clone(&environment.secure_state)))
            .insecure_random(SeededStream(Arc::clone(&environment.insecure_state)))
            .insecure_random_seed(INSECURE_SEED)
            .max_random_size(RANDOM_BYTES_PER_REQUEST_MAX);
        (environment, builder.build())
    }

    /// Freezes the clocks at `now_ms` and reseeds both random streams for
    /// the call that starts now.
    pub(crate) fn begin_call(&self, now_ms: u64, random_seed: u64) {
        self.now_ms.store(now_ms, Ordering::Relaxed);
        self.secure_state.store(random_seed, Ordering::Relaxed);
        self.insecure_state.store(random_seed ^ INSECURE_STREAM_SALT, Ordering::Relaxed);
    }

    /// Nanoseconds since the Unix epoch at which the monotonic clock stands.
    fn monotonic_now_ns(&self) -> u64 {
        self.now_ms.load(Ordering::Relaxed).saturating_mul(NANOS_PER_MILLI)
    }
}

const NANOS_PER_MILLI: u64 = 1_000_000;

/// A clock standing still at the call's timestamp.
struct FrozenClock(Arc<AtomicU64>);

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Relaxed))
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        NANOS_PER_MILLI
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed).saturating_mul(NANOS_PER_MILLI)
    }
}

/// A SplitMix64 stream whose state the host resets per call: small, fast,
/// and fully determined by the seed.
struct SeededStream(Arc<AtomicU64>);

impl SeededStream {
    fn next(&self) -> u64 {
        const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut z = self.0.fetch_add(GAMMA, Ordering::Relaxed).wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl TryRng for SeededStream {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, bytes: &mut [u8]) -> Result<(), Infallible> {
        for chunk in bytes.chunks_mut(8) {
            let word = self.next().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        Ok(())
    }
}

/// Links every WASI 0.2 interface into `linker`, then replaces the
/// monotonic clock's timers with ones that are already due (see the module
/// header). `timers` picks the call environment and the resource table out
/// of the store data.
pub(crate) fn add_to_linker<T: WasiView + 'static>(
    linker: &mut Linker<T>,
    timers: fn(&mut T) -> FrozenTimers<'_>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let shadowed = monotonic_clock::add_to_linker::<T, HasFrozenTimers>(linker, timers);
    linker.allow_shadowing(false);
    shadowed
}

/// The monotonic clock of one instance: frozen time, timers already due.
pub(crate) struct FrozenTimers<'a> {
    /// Where the clock stands.
    pub(crate) environment: &'a CallEnvironment,
    /// Where the timers' pollables live.
    pub(crate) table: &'a mut ResourceTable,
}

struct HasFrozenTimers;

impl HasData for HasFrozenTimers {
    type Data<'a> = FrozenTimers<'a>;
}

/// A timer that has already fired.
struct AlreadyDue;

#[wasmtime_wasi::async_trait]
impl Pollable for AlreadyDue {
    async fn ready(&mut self) {}
}

fn already_due(table: &mut ResourceTable) -> wasmtime::Result<Resource<DynPollable>> {
    let timer = table.push(AlreadyDue)?;
    subscribe(table, timer)
}

impl monotonic_clock::Host for FrozenTimers<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        Ok(self.environment.monotonic_now_ns())
    }

    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        Ok(NANOS_PER_MILLI)
    }

    fn subscribe_instant(
        &mut self,
        _when: monotonic_clock::Instant,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        already_due(self.table)
    }

    fn subscribe_duration(
        &mut self,
        _duration: monotonic_clock::Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        already_due(self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_random_stream() {
        let (environment, _ctx) = CallEnvironment::new();
        let mut stream = SeededStream(Arc::clone(&environment.secure_state));
        environment.begin_call(1_700_000_000_000, 42);
        let first: Vec<u64> = (0..4).map(|_| stream.try_next_u64().unwrap()).collect();
        environment.begin_call(1_700_000_000_000, 42);
        let again: Vec<u64> = (0..4).map(|_| stream.try_next_u64().unwrap()).collect();
        environment.begin_call(1_700_000_000_000, 43);
        let other: Vec<u64> = (0..4).map(|_| stream.try_next_u64().unwrap()).collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn clocks_stand_at_the_calls_timestamp() {
        let (environment, _ctx) = CallEnvironment::new();
        environment.begin_call(1_700_000_000_123, 0);
        let clock = FrozenClock(Arc::clone(&environment.now_ms));
        assert_eq!(HostWallClock::now(&clock), Duration::from_millis(1_700_000_000_123));
        assert_eq!(HostMonotonicClock::now(&clock), 1_700_000_000_123 * NANOS_PER_MILLI);
    }
}
