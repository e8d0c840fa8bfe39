//! What every request goes through before its handler and leaves behind
//! after it: the in-flight cap (for the routes behind it), a `tracing` span
//! around its handling, its status and latency at debug level (quiet
//! unless `RUST_LOG` asks), and both counted in its route's metrics.
//!
//! One plain tower layer rather than `axum::middleware::from_fn` per
//! concern: the router boxes every layer of every route again, and each
//! `from_fn` also clones the inner route and boxes a future, so on the
//! order path two such layers cost about a tenth of an HTTP thread's time.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::{IntoResponse as _, Response};
use tokio::sync::OwnedSemaphorePermit;
use tower::{Layer, Service};
use tracing::Instrument as _;
use tracing::instrument::Instrumented;

use crate::admission::admit_in_flight;
use crate::error::ApiError;
use crate::state::AppState;

/// Adds [`Observed`] around every route of a router.
#[derive(Clone)]
pub struct ObserveLayer {
    state: AppState,
    /// Whether each metrics route (by its number) is behind the in-flight cap.
    capped: Arc<[bool]>,
}

impl ObserveLayer {
    /// `capped` lists the operations behind the in-flight cap, as (method,
    /// path template); every other route is served whatever the load.
    pub fn new(state: AppState, capped: &[(axum::http::Method, String)]) -> Self {
        let metrics = state.http_metrics();
        let mut flags = vec![false; metrics.routes()];
        for (method, template) in capped {
            if let Some(route) = metrics.operation(method, template) {
                flags[route] = true;
            }
        }
        Self { state, capped: flags.into() }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observed { inner, layer: self.clone() }
    }
}

/// A route whose requests are admitted, traced and counted.
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    layer: ObserveLayer,
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
        let state = &self.layer.state;
        let route = state.http_metrics().route(
            request.method(),
            request.extensions().get::<MatchedPath>().map(MatchedPath::as_str),
        );
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
        );
        let capped = self.layer.capped.get(route).copied().unwrap_or(false);
        let handling = match capped.then(|| admit_in_flight(state)).transpose() {
            Ok(permit) => Handling::Admitted { inner: self.inner.call(request), permit },
            Err(refusal) => Handling::Refused { response: Some(refusal.into_response()) },
        };
        ObservedFuture {
            handling: handling.instrument(span),
            route,
            started: Instant::now(),
            state: state.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request being handled, inside its span.
    pub struct ObservedFuture<F> {
        #[pin]
        handling: Instrumented<Handling<F>>,
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
        let Ok(response) = ready!(this.handling.as_mut().poll(cx));
        let latency_us = crate::metrics::whole_micros(this.started.elapsed());
        let status = response.status().as_u16();
        this.state.http_metrics().record(*this.route, status, latency_us);
        this.handling.span().in_scope(|| tracing::debug!(status, latency_us, "served"));
        Poll::Ready(Ok(response))
    }
}

pin_project_lite::pin_project! {
    /// An admitted request (holding its permit when its route is capped),
    /// or the refusal of one over the cap.
    #[project = HandlingProjection]
    pub enum Handling<F> {
        Admitted {
            #[pin]
            inner: F,
            // Given back as soon as the response is ready.
            permit: Option<OwnedSemaphorePermit>,
        },
        Refused {
            response: Option<Response>,
        },
    }
}

impl<F> Future for Handling<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            HandlingProjection::Admitted { inner, permit } => {
                let response = ready!(inner.poll(cx));
                drop(permit.take());
                Poll::Ready(response)
            }
            // Polled again after it completed, which hyper never does: an
            // answer rather than a panic.
            HandlingProjection::Refused { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                    ApiError::internal("a refusal was polled twice").into_response()
                })))
            }
        }
    }
}
