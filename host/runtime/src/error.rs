//! Why a plugin could not be loaded, and why a call produced no result.
//!
//! Each variant names its cause plainly enough for an operator's console:
//! the failure policy of each extension point (pricing fails open,
//! logistics falls back, risk fails closed) is the caller's, but the
//! reason shown with the flagged or refused order comes from here.

use bazaar_kernel::model::Capability;

/// Why a component was refused at load time. Nothing is loaded on error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The binary is over the runtime's size limit.
    #[error("component is {size_bytes} bytes; the limit is {limit_bytes} bytes")]
    TooLarge {
        /// The binary's size.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly binary (no `\\0asm` header)")]
    NotWasm,
    /// A core module where a component is needed.
    #[error(
        "this is a core WebAssembly module, not a component; build the plugin for \
         wasm32-wasip2 or wrap the module with `wasm-tools component new`"
    )]
    CoreModule,
    /// The component failed validation or compilation.
    #[error("component does not compile: {0}")]
    Compile(String),
    /// The component imports something the host does not provide.
    #[error("component imports something the host does not provide: {0}")]
    UnsatisfiedImport(String),
    /// The component does not implement the extension point's world.
    #[error("component does not implement the `{world}` world: {detail}")]
    WrongWorld {
        /// The world it was loaded as.
        world: &'static str,
        /// What is missing or mistyped.
        detail: String,
    },
    /// The component defines more functions than the compiler budget admits.
    #[error("component defines at least {count_at_least} functions; the limit is {limit}")]
    TooManyFunctions {
        /// Functions counted when the limit was passed.
        count_at_least: u32,
        /// The limit.
        limit: u32,
    },
    /// One function body is larger than the compiler budget admits.
    #[error("component has a function of {size_bytes} bytes; the limit is {limit_bytes} bytes")]
    FunctionTooLarge {
        /// The body's size.
        size_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// Compilation did not finish within its budget. It goes on in the
    /// background and holds the compile slot until it ends.
    #[error("component did not compile within {budget_ms} ms")]
    CompileBudgetExceeded {
        /// The budget.
        budget_ms: u64,
    },
    /// Another compilation held the compile slot for the whole budget.
    #[error("the compiler is busy with another component; try again later")]
    CompilerBusy,
    /// The component imports one of Bazaar's interfaces without the grant
    /// for it.
    #[error(
        "component imports `{interface}`, which needs the `{capability}` capability; \
         it was not granted"
    )]
    NotGranted {
        /// The import's name.
        interface: String,
        /// The capability that would allow it.
        capability: Capability,
    },
    /// The component imports an interface the host does not offer at all.
    #[error("component imports `{interface}`, which the host does not provide")]
    UnknownImport {
        /// The import's name.
        interface: String,
    },
    /// A per-plugin limit is above the node's own.
    #[error("plugin limit {limit} = {requested} is above the node's limit of {node}")]
    LimitAboveNode {
        /// The limit's name.
        limit: &'static str,
        /// What the plugin asked for.
        requested: u64,
        /// The node's limit.
        node: u64,
    },
    /// A per-plugin limit is below the least that lets any call succeed.
    #[error("plugin limit {limit} = {requested} is below the minimum of {minimum}")]
    LimitBelowMinimum {
        /// The limit's name.
        limit: &'static str,
        /// What the plugin asked for.
        requested: u64,
        /// The least accepted.
        minimum: u64,
    },
    /// A fuel budget was asked for on a node that does not meter fuel.
    #[error(
        "plugin limit fuel_per_call = {requested} needs fuel metering, which this node runs \
         without; set the node's fuel_per_call (RuntimeLimits::fuel_per_call) to enable it, \
         or drop the plugin's fuel limit"
    )]
    FuelNotMetered {
        /// What the plugin asked for.
        requested: u64,
    },
    /// The compiled component belongs to another runtime's engine.
    #[error("the component was compiled by another runtime; compile it with this one")]
    CompiledElsewhere,
    /// The content hash given with a component is not the SHA-256 of its
    /// bytes in lowercase hex.
    #[error("content hash {given:?} is not the SHA-256 of the component ({actual})")]
    ContentHashMismatch {
        /// The hash given (cut to its first 64 characters).
        given: String,
        /// The component's SHA-256.
        actual: String,
    },
}

/// What a plugin reported through the WIT `plugin-error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    /// The store's configuration of the plugin is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The input is outside what the plugin handles.
    #[error("unsupported input: {0}")]
    Unsupported(String),
    /// Anything else.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a call produced no result. A failed call's state writes are
/// discarded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The call ran past its deadline and was interrupted.
    #[error("plugin exceeded its deadline of {deadline_ms} ms")]
    DeadlineExceeded {
        /// The deadline.
        deadline_ms: u64,
    },
    /// The plugin asked for more memory than its cap and then failed.
    #[error("plugin exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimitExceeded {
        /// The cap.
        limit_bytes: u64,
    },
    /// The plugin recursed past its wasm stack.
    #[error("plugin overflowed its stack")]
    StackOverflow,
    /// The plugin used up its instruction budget.
    #[error("plugin used up its fuel budget")]
    FuelExhausted,
    /// The plugin trapped (or exited) for another reason.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The plugin returned an error of its own.
    #[error("plugin reported an error: {0}")]
    Plugin(#[from] PluginError),
    /// The plugin returned something the runtime does not accept (wrong
    /// currency, a list over its limit, a negative amount, a malformed id),
    /// or broke a limit of a host interface.
    #[error("plugin returned invalid output: {0}")]
    InvalidOutput(String),
    /// No instance could be created (the pool is full, or the component's
    /// initialisation failed).
    #[error("plugin could not be instantiated: {0}")]
    Instantiate(String),
    /// The call's input broke a rule of its extension point (a batch of
    /// events over its size limit or of another store, a query name or
    /// arguments out of shape); the plugin was not called.
    #[error("the call's input was refused: {0}")]
    InvalidInput(String),
    /// The plugin already had as many calls in flight as its limit allows.
    #[error("plugin already has {max} calls in flight, its limit")]
    ConcurrencyLimit {
        /// The limit.
        max: u32,
    },
}

/// Raised inside a host function to end a call whose plugin broke a limit
/// its WIT signature cannot report (for example, too many state writes).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct GuestLimitExceeded(pub(crate) String);
