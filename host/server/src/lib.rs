//! The Bazaar HTTP service: a JSON API under `/v1` over a [`Node`] and its
//! plugin platform, with bearer tokens and roles, an OpenAPI document
//! generated from the code, a page to browse it, and bounded admission.
//!
//! [`app`] builds the router over an [`AppState`] (testable without a
//! socket); [`serve`] opens a node from a [`ServeConfig`], listens, and
//! shuts down gracefully on SIGINT or SIGTERM: it stops accepting, lets
//! requests in flight finish, then drops the node, which drains the shard
//! queues and flushes the journal.
//!
//! Handlers never block a tokio worker on the node: every node request is
//! queued with a callback bridged to a `oneshot` channel, and a full queue
//! is an immediate 503.

mod admission;
mod auth;
mod config;
mod dto;
mod error;
mod extract;
mod listener;
mod platform_dto;
mod routes;
mod state;

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bazaar_node::platform::Platform;
use bazaar_node::{Node, NodeConfig, PluginSet};
use tracing::Instrument as _;

pub use admission::{RATE_LIMIT_KEYS_MAX, RATE_PER_SECOND_MAX, Rate};
pub use auth::{Permission, Role, TOKENS_MAX};
pub use config::{
    CONNECTIONS_MAX_DEFAULT, DATA_DIR_DEFAULT, IN_FLIGHT_MAX_DEFAULT, LISTEN_DEFAULT, PORT_DEFAULT,
    ServeConfig, Settings,
};
pub use error::ApiError;
pub use extract::{
    BODY_BYTES_MAX, BODY_READ_TIMEOUT_MS, PLUGIN_UPLOAD_BYTES_MAX, PLUGIN_UPLOAD_READ_TIMEOUT_MS,
};
pub use routes::{IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER, openapi};
pub use state::{AppState, Limits, OPERATOR_TOKEN_FILE, OperatorToken, PLUGIN_UPLOADS_MAX};

/// Longest time a graceful shutdown waits for requests in flight and for
/// the node to let go, before the process stops anyway: a request waits on
/// the node for milliseconds, so anything still running after this is stuck.
pub const SHUTDOWN_GRACE_MS: u64 = 10_000;

/// The router of the API over `state`.
pub fn app(state: AppState) -> axum::Router {
    routes::router(state)
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let node_config = NodeConfig {
        backend: config.backend,
        shard_count: config.shards,
        queue_depth: config.shard_queue_depth,
        ..NodeConfig::new(&config.data_dir)
    };
    let data_dir = config.data_dir.clone();
    // Opening replays the journal, then the platform loads every installed
    // plugin version (compiled artifacts from its cache): blocking work.
    // Replay never calls a plugin, so the node opens with an empty catalogue
    // that the platform fills before anything is served.
    let (node, platform, report) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let plugins = PluginSet::none();
        let node = Node::open(node_config, plugins.clone())
            .with_context(|| format!("opening data directory {}", data_dir.display()))?;
        let (platform, report) = Platform::open(node.storage().clone(), &data_dir, plugins)
            .with_context(|| format!("opening the plugin registry in {}", data_dir.display()))?;
        Ok((node, platform, report))
    })
    .await??;
    let node = Arc::new(node);
    let limits = Limits {
        in_flight_max: config.in_flight_max,
        store_rate: config.store_rate,
        customer_rate: config.customer_rate,
    };
    let data_dir = config.data_dir.clone();
    let (state, operator) = {
        let node = node.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let state = AppState::new(node, limits, platform)?;
            let operator = state.ensure_operator_token(&data_dir)?;
            Ok((state, operator))
        })
        .await??
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        match &operator {
            OperatorToken::Created(path) => writeln!(
                out,
                "operator token: generated and written to {} (read it with `cat {}`)",
                path.display(),
                path.display()
            )?,
            OperatorToken::Existing(path) => writeln!(
                out,
                "operator token: in {} (written when this data directory was created)",
                path.display()
            )?,
        }
        writeln!(
            out,
            "data: {} ({}, {} shards); API docs at http://{address}/docs",
            config.data_dir.display(),
            config.backend,
            node.shard_count()
        )?;
        writeln!(
            out,
            "plugins: {} versions loaded ({} compiled artifacts from the cache) in {} ms",
            report.loaded, report.from_cache, report.elapsed_ms
        )?;
        for failure in &report.failed {
            eprintln!("warning: plugin version not loaded, the node runs without it: {failure}");
        }
        writeln!(out, "listening on http://{address}")?;
        out.flush()?;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let server = {
        let mut stopped = stopped.clone();
        let listener = listener::Bounded::new(listener, config.connections_max);
        tokio::spawn(
            axum::serve(listener, app(state))
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .into_future(),
        )
    };
    let mut server = server;
    tokio::select! {
        result = &mut server => {
            result.context("the server task failed")?.context("serving")?;
            anyhow::bail!("the server stopped on its own");
        }
        signal = shutdown_signal() => {
            signal?;
        }
    }
    println!("stopping: finishing requests in flight");
    let _ = stop.send(true);
    let grace = Duration::from_millis(SHUTDOWN_GRACE_MS);
    let deadline = Instant::now() + grace;
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result.context("the server task failed")?.context("serving")?,
        Err(_) => {
            server.abort();
            eprintln!(
                "warning: requests still in flight after {SHUTDOWN_GRACE_MS} ms were dropped"
            );
        }
    }
    // Connection tasks let go of their copies of the state as they finish;
    // the node is dropped (queues drained, journal flushed) by its last owner.
    let mut node = node;
    let node = loop {
        match Arc::try_unwrap(node) {
            Ok(node) => break Some(node),
            Err(shared) if Instant::now() < deadline => {
                node = shared;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => break None,
        }
    };
    match node {
        Some(node) => {
            tokio::task::spawn_blocking(move || node.shutdown()).await?;
            println!("stopped: journal flushed");
        }
        None => {
            eprintln!("warning: the node was still in use at exit; acknowledged orders are durable")
        }
    }
    Ok(())
}

/// Runs [`serve`] on a multi-threaded runtime of its own.
pub fn serve_blocking(config: ServeConfig) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bazaar-http")
        .build()
        .context("starting the async runtime")?
        .block_on(serve(config))
}

/// Resolves when SIGINT or SIGTERM arrives.
async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// Middleware: one `tracing` span per request, and its status and latency
/// at debug level (quiet unless `RUST_LOG` asks).
async fn trace_request(request: Request, next: Next) -> Response {
    let span = tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move {
        let started = Instant::now();
        let response = next.run(request).await;
        tracing::debug!(
            status = response.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "served"
        );
        response
    }
    .instrument(span)
    .await
}
