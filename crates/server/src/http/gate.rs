//! The starting gate: the listener answers at once, before the store is open, and hands every
//! request to the server's service once it is built.
//!
//! It is a plain tower service rather than a router with a fallback: a router in front of the
//! router routed every request twice and cloned the second one's boxed layer stack per request
//! (issue 15, the edge tax). Each connection gets a `Gate` that knows its peer address, so
//! handlers still read `ConnectInfo<SocketAddr>`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse as _, Response};
use axum::serve::IncomingStream;
use futures_util::future::Either;
use tokio::net::TcpListener;
use tower::Service;

use crate::error::ApiError;

/// Makes one [`Gate`] per accepted connection.
pub struct MakeGate<S> {
    ready: Arc<OnceLock<S>>,
}

impl<S> MakeGate<S> {
    /// A gate that passes requests to what `ready` holds once it is set.
    pub fn new(ready: Arc<OnceLock<S>>) -> Self {
        Self { ready }
    }
}

impl<S> Service<IncomingStream<'_, TcpListener>> for MakeGate<S> {
    type Response = Gate<S>;
    type Error = Infallible;
    type Future = Ready<Result<Gate<S>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'_, TcpListener>) -> Self::Future {
        ready(Ok(Gate {
            ready: self.ready.clone(),
            peer: *stream.remote_addr(),
        }))
    }
}

/// One connection's gate.
pub struct Gate<S> {
    ready: Arc<OnceLock<S>>,
    peer: SocketAddr,
}

impl<S> Clone for Gate<S> {
    fn clone(&self) -> Self {
        Self {
            ready: self.ready.clone(),
            peer: self.peer,
        }
    }
}

impl<S> Service<Request> for Gate<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The server's service (a router behind layers) is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        match self.ready.get() {
            Some(service) => Either::Left(service.clone().call(req)),
            None => Either::Right(ready(Ok(starting(&req)))),
        }
    }
}

/// The answer while the server starts: `/livez` is 200, everything else `503` with
/// `Retry-After` (§4).
fn starting(req: &Request) -> Response {
    if req.uri().path() == "/livez" {
        return axum::Json(serde_json::json!({"status": "ok"})).into_response();
    }
    let mut e = ApiError::unavailable("starting…");
    e.retry_after = Some(1);
    e.into_response()
}
