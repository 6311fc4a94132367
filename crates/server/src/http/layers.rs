//! The layers every request passes through: request ids, tracing, metrics, and the CORS
//! answers of contact calls.
//!
//! Metrics and CORS are one middleware on the routes (each `from_fn` layer costs a boxed
//! future and a clone of the route's service per request; issue 15, the edge tax).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::request_id::{MakeRequestId, RequestId};

fn is_contact_call(path: &str) -> bool {
    path == "/securemessage/authorize"
        || path == "/api/v1/securemessage/authorize"
        || path.starts_with("/api/v1/messenger/")
}

/// The work done on every matched route (and the fallbacks): the answer counted by route,
/// method and status, and the CORS of contact calls.
pub async fn per_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = method_label(req.method());
    let res = contact_cors(req, next).await;
    metrics::counter!("confidant_http_requests_total", "route" => route, "method" => method, "status" => res.status().as_u16().to_string())
        .increment(1);
    res
}

/// CORS for contact calls (CONTRACT §8): a preflight is answered for any origin (it carries no
/// token); the real request is checked by its handler, and its answer echoes the origin so the
/// page can read it, including a `403 origin_not_allowed`.
async fn contact_cors(req: Request, next: Next) -> Response {
    if !is_contact_call(req.uri().path()) {
        return next.run(req).await;
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-confidant-messenger"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    res
}

/// The method as a metrics label; any other method is "other", so a client cannot grow the
/// set of series (each one kept for the life of the process) by inventing methods.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Request ids: a random prefix per process and a counter. Unique across processes like a
/// UUID, without asking the kernel for randomness on every request.
#[derive(Clone)]
pub struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        Self {
            prefix: Arc::from(prefix),
            next: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
