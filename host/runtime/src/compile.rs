//! Compiling a component: the checks that refuse bad bytes before any
//! compiler work, the code-shape budget that bounds the compiler's memory,
//! and the compile slot that bounds its time.
//!
//! Cranelift's memory grows with the size of the function it is compiling
//! and its total work with the number of functions, so both are counted
//! with `wasmparser` (which only reads section headers and body lengths,
//! in milliseconds even for an interpreter's megabytes) before Cranelift
//! sees the bytes. The numbers admit the interpreted toolchains partners
//! use: a componentize-py component (CPython) and a componentize-js one
//! (StarlingMonkey) were measured for [`FUNCTIONS_PER_COMPONENT_MAX`] and
//! [`FUNCTION_BODY_BYTES_MAX`].
//!
//! Compilation itself runs on a dedicated thread, one at a time per
//! runtime. A caller waits at most the budget for the result; Cranelift
//! cannot be cancelled, so a compile that overruns is answered at once
//! with [`LoadError::CompileBudgetExceeded`] and left to finish in the
//! background, still holding the slot. Hostile uploads therefore cannot
//! pile up compilations: while one runs, the next caller waits at most the
//! budget and then gets [`LoadError::CompilerBusy`].

use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::LoadError;

/// Core functions (bodies to compile) one component may define over all
/// its core modules. Measured: a componentize-py component (CPython and
/// its runtime, 18 MB) defines 13,361, a componentize-js one
/// (StarlingMonkey, 12 MB) 12,701, a Rust plugin a few hundred. 100,000
/// is seven times the largest, room for a bigger interpreter, while the
/// per-function cost of compilation (metadata, trampolines, a task for the
/// compiler's thread pool) stays far below the node's memory.
pub const FUNCTIONS_PER_COMPONENT_MAX: u32 = 100_000;

/// Bytes of one function body. Measured: the largest body of the
/// componentize-py component is 426,843 bytes (CPython's bytecode
/// interpreter loop), of the componentize-js one 171,628 bytes; compiling
/// the whole CPython component peaked at 390 MB of process memory.
/// Cranelift holds one function's whole IR and register-allocation state
/// at once, so this bounds its memory per compiling thread; 1 MiB is two
/// and a half times the largest measured body (wasmparser's own limit is
/// 7.6 MB).
pub const FUNCTION_BODY_BYTES_MAX: usize = 1024 * 1024;

/// The first eight bytes of every WebAssembly binary are `\0asm` and a
/// version; a core module's version is 1 with layer 0, a component's has
/// layer 1.
const WASM_MAGIC: [u8; 4] = *b"\0asm";
/// Bytes 6 and 7 of a core module: layer 0.
const CORE_MODULE_LAYER: [u8; 2] = [0, 0];

/// A component compiled by one [`Runtime`](crate::Runtime), ready to be
/// checked ([`Runtime::check`](crate::Runtime::check)) and loaded
/// ([`Runtime::load`](crate::Runtime::load)) any number of times. Cheap to
/// clone; usable only with the runtime that compiled it (or one sharing
/// its engine).
#[derive(Clone)]
pub struct CompiledComponent {
    /// The compiled code and type information.
    pub(crate) component: Component,
}

impl CompiledComponent {
    /// Wraps a component compiled (or deserialized) by this crate.
    pub(crate) fn new(component: Component) -> Self {
        Self { component }
    }
}

impl fmt::Debug for CompiledComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledComponent").finish_non_exhaustive()
    }
}

/// The code of a component, counted over all the core modules it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CodeShape {
    /// Function bodies to compile.
    pub(crate) functions: u32,
    /// Bytes of the largest function body.
    pub(crate) function_body_bytes_largest: usize,
}

/// The checks that need no compiler: size, header, component layer, and
/// the code-shape budget.
pub(crate) fn check_bytes(wasm: &[u8], component_bytes_max: usize) -> Result<CodeShape, LoadError> {
    if wasm.len() > component_bytes_max {
        return Err(LoadError::TooLarge {
            size_bytes: wasm.len(),
            limit_bytes: component_bytes_max,
        });
    }
    if wasm.len() < 8 || wasm[..4] != WASM_MAGIC {
        return Err(LoadError::NotWasm);
    }
    if wasm[6..8] == CORE_MODULE_LAYER {
        return Err(LoadError::CoreModule);
    }
    code_shape(wasm)
}

/// Counts the function bodies of every core module in `wasm`, refusing as
/// soon as a budget is broken.
fn code_shape(wasm: &[u8]) -> Result<CodeShape, LoadError> {
    let mut shape = CodeShape::default();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|error| LoadError::Compile(error.to_string()))?;
        match payload {
            wasmparser::Payload::CodeSectionStart { count, .. } => {
                shape.functions = shape.functions.saturating_add(count);
                if shape.functions > FUNCTIONS_PER_COMPONENT_MAX {
                    return Err(LoadError::TooManyFunctions {
                        count_at_least: shape.functions,
                        limit: FUNCTIONS_PER_COMPONENT_MAX,
                    });
                }
            }
            wasmparser::Payload::CodeSectionEntry(body) => {
                let size_bytes = body.range().len();
                if size_bytes > FUNCTION_BODY_BYTES_MAX {
                    return Err(LoadError::FunctionTooLarge {
                        size_bytes,
                        limit_bytes: FUNCTION_BODY_BYTES_MAX,
                    });
                }
                shape.function_body_bytes_largest =
                    shape.function_body_bytes_largest.max(size_bytes);
            }
            _ => {}
        }
    }
    Ok(shape)
}

/// The one compilation a runtime runs at a time.
#[derive(Default)]
pub(crate) struct CompileSlot {
    /// Whether a compilation holds the slot.
    busy: Mutex<bool>,
    /// Signalled when the slot is released.
    released: Condvar,
}

/// Holds the compile slot; releases it when dropped, which happens on the
/// compile thread when Cranelift is done (or has panicked).
pub(crate) struct SlotHeld(Arc<CompileSlot>);

impl CompileSlot {
    /// Takes the slot, waiting at most `wait` for a running compilation to
    /// release it; `None` if it is still busy then.
    pub(crate) fn acquire(slot: &Arc<Self>, wait: Duration) -> Option<SlotHeld> {
        let busy = slot.lock();
        let (mut busy, _) = slot
            .released
            .wait_timeout_while(busy, wait, |busy| *busy)
            .unwrap_or_else(PoisonError::into_inner);
        if *busy {
            return None;
        }
        *busy = true;
        Some(SlotHeld(Arc::clone(slot)))
    }

    /// The flag, also after a panic elsewhere: it is a plain bool, always
    /// consistent.
    fn lock(&self) -> MutexGuard<'_, bool> {
        self.busy.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for SlotHeld {
    fn drop(&mut self) {
        *self.0.lock() = false;
        self.0.released.notify_one();
    }
}

/// Compiles `wasm` with `engine` on a new thread that holds `slot`,
/// waiting at most `budget_ms` for it.
pub(crate) fn compile_in_slot(
    engine: &Engine,
    wasm: &[u8],
    slot: SlotHeld,
    budget_ms: u64,
) -> Result<Component, LoadError> {
    let (sender, receiver) = mpsc::sync_channel(1);
    let engine = engine.clone();
    let wasm = wasm.to_vec();
    thread::Builder::new()
        .name("bazaar-compile".to_owned())
        .spawn(move || {
            let compiled = Component::new(&engine, &wasm)
                .map_err(|error| LoadError::Compile(format!("{error:#}")));
            // Free the slot before answering, so a caller that retries as
            // soon as it has the answer finds the slot free.
            drop(slot);
            // The caller may have stopped waiting; the result is then
            // dropped with the thread.
            let _ = sender.send(compiled);
        })
        .map_err(|error| LoadError::Compile(format!("no compile thread: {error}")))?;
    match receiver.recv_timeout(Duration::from_millis(budget_ms)) {
        Ok(compiled) => compiled,
        Err(RecvTimeoutError::Timeout) => Err(LoadError::CompileBudgetExceeded { budget_ms }),
        Err(RecvTimeoutError::Disconnected) => {
            Err(LoadError::Compile("the compiler stopped without an answer".to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_slot_turns_the_next_caller_away_and_a_released_one_admits_it() {
        let slot = Arc::new(CompileSlot::default());
        let held = CompileSlot::acquire(&slot, Duration::ZERO).expect("the slot starts free");
        assert!(CompileSlot::acquire(&slot, Duration::from_millis(1)).is_none());
        drop(held);
        assert!(CompileSlot::acquire(&slot, Duration::ZERO).is_some());
    }

    #[test]
    fn a_waiting_caller_gets_the_slot_when_the_holder_releases_it() {
        let slot = Arc::new(CompileSlot::default());
        let held = CompileSlot::acquire(&slot, Duration::ZERO).expect("the slot starts free");
        let waiter = thread::spawn({
            let slot = Arc::clone(&slot);
            move || CompileSlot::acquire(&slot, Duration::from_secs(60)).is_some()
        });
        drop(held);
        assert!(waiter.join().expect("the waiter does not panic"));
    }

    #[test]
    fn a_truncated_component_is_refused_before_compiling() {
        // A component header followed by a section that claims more bytes
        // than there are.
        let truncated = b"\0asm\x0d\0\x01\0\x01\xff\x01";
        assert!(matches!(check_bytes(truncated, 1024), Err(LoadError::Compile(_))));
    }
}
