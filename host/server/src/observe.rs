//! What every request leaves behind: a `tracing` span around its handling,
//! its status and latency at debug level (quiet unless `RUST_LOG` asks),
//! and both counted in its route's metrics.
//!
//! A plain tower layer rather than `axum::middleware::from_fn`: that one
//! clones the inner route and boxes two futures per request, which on the
//! order path cost about a tenth of an HTTP thread's time. Here the inner
//! future is wrapped in place.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::instrument::Instrumented;

use crate::state::AppState;

/// Adds [`Observed`] around every route of a router.
#[derive(Clone)]
pub struct ObserveLayer {
    state: AppState,
}

impl ObserveLayer {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed { inner, state: self.state.clone() }
    }
}

/// A route whose requests are traced and counted.
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    state: AppState,
}

impl<S> Service<Request> for Observed<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObservedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = self.state.http_metrics().route(
            request.method(),
            request.extensions().get::<MatchedPath>().map(MatchedPath::as_str),
        );
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
        );
        let inner = self.inner.call(request).instrument(span);
        ObservedFuture { inner, route, started: Instant::now(), state: self.state.clone() }
    }
}

pin_project_lite::pin_project! {
    /// A request being handled, inside its span.
    pub struct ObservedFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        route: usize,
        started: Instant,
        state: AppState,
    }
}

impl<F> Future for ObservedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Ok(response) = ready!(this.inner.as_mut().poll(cx));
        let latency_us = u64::try_from(this.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let status = response.status().as_u16();
        this.state.http_metrics().record(*this.route, status, latency_us);
        this.inner.span().in_scope(|| tracing::debug!(status, latency_us, "served"));
        Poll::Ready(Ok(response))
    }
}
