//! The router: every route, its layers, and the list the OpenAPI test checks.

use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::app::{App, AppState};
use crate::routes::{admin, assets, authorize, conversations, demo, health};
use crate::ws;

pub const BODY_LIMIT: usize = 256 * 1024;

/// Routes, with their methods, as registered (for the OpenAPI test).
pub struct Routes {
    router: Router<AppState>,
    pub list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add(
        mut self,
        path: &'static str,
        methods: &[&'static str],
        r: MethodRouter<AppState>,
    ) -> Self {
        for m in methods {
            self.list.push((m, path));
        }
        self.router = self.router.route(path, r);
        self
    }
}

pub fn routes() -> Routes {
    Routes {
        router: Router::new(),
        list: Vec::new(),
    }
    .add("/healthz", &["get"], get(health::healthz))
    .add("/livez", &["get"], get(health::livez))
    .add("/metrics", &["get"], get(health::metrics))
    .add("/.well-known/jwks.json", &["get"], get(health::jwks))
    .add("/api/v1/openapi.json", &["get"], get(crate::openapi::serve))
    .add("/api/v1/sites", &["post"], post(admin::create_site))
    .add("/api/v1/sites/{siteId}", &["get"], get(admin::get_site))
    .add(
        "/api/v1/sites/{siteId}/agents",
        &["get", "post"],
        get(admin::list_agents).post(admin::create_agent),
    )
    .add(
        "/api/v1/sites/{siteId}/agents/{agentId}",
        &["delete"],
        delete(admin::delete_agent),
    )
    .add("/api/v1/auth/login", &["post"], post(admin::login))
    .add("/api/v1/auth/logout", &["post"], post(admin::logout))
    .add("/api/v1/auth/me", &["get"], get(admin::me))
    .add(
        "/api/v1/sites/{siteId}/messengers",
        &["get", "post"],
        get(admin::list_messengers).post(admin::create_messenger),
    )
    .add(
        "/api/v1/sites/{siteId}/messengers/{messengerId}",
        &["get"],
        get(admin::get_messenger),
    )
    .add(
        "/api/v1/sites/{siteId}/messengers/{messengerId}/security",
        &["put"],
        put(admin::put_security),
    )
    .add(
        "/api/v1/sites/{siteId}/messengers/{messengerId}/installation-code",
        &["get"],
        get(admin::installation_code),
    )
    .add(
        "/securemessage/authorize",
        &["post"],
        post(authorize::authorize),
    )
    .add(
        "/api/v1/securemessage/authorize",
        &["post"],
        post(authorize::authorize),
    )
    .add(
        "/api/v1/messenger/config",
        &["get"],
        get(conversations::messenger_config),
    )
    .add(
        "/api/v1/messenger/conversations",
        &["get"],
        get(conversations::contact_conversations),
    )
    .add(
        "/api/v1/messenger/messages",
        &["post"],
        post(conversations::contact_send),
    )
    .add(
        "/api/v1/messenger/conversations/{conversationId}/messages",
        &["get"],
        get(conversations::contact_messages),
    )
    .add(
        "/api/v1/messenger/conversations/{conversationId}/read",
        &["post"],
        post(conversations::contact_read),
    )
    .add(
        "/api/v1/sites/{siteId}/conversations",
        &["get"],
        get(conversations::site_conversations),
    )
    .add(
        "/api/v1/sites/{siteId}/conversations/{conversationId}/messages",
        &["get", "post"],
        get(conversations::agent_messages).post(conversations::agent_send),
    )
    .add(
        "/api/v1/sites/{siteId}/conversations/{conversationId}/close",
        &["post"],
        post(conversations::close),
    )
    .add(
        "/api/v1/sites/{siteId}/conversations/{conversationId}/read",
        &["post"],
        post(conversations::agent_read),
    )
    .add(
        "/api/v1/sites/{siteId}/contacts/{contactId}",
        &["get"],
        get(conversations::get_contact),
    )
    .add("/api/v1/messenger/ws", &["get"], get(ws::contact_ws))
    .add("/api/v1/agent/ws", &["get"], get(ws::agent_ws))
    .add("/messenger/v1/frame", &["get"], get(assets::frame))
    .add("/demo/api/config", &["get"], get(demo::config))
    .add("/demo/api/contact-jwt", &["post"], post(demo::contact_jwt))
    .add(
        "/demo/api/access-token",
        &["post"],
        post(demo::access_token),
    )
}

pub fn build(app: Arc<App>) -> Router {
    let state = AppState(app);
    routes()
        .router
        .method_not_allowed_fallback(health::method_not_allowed)
        .fallback(assets::static_file)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(contact_cors))
        .layer(middleware::from_fn(record_metrics))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
        .with_state(state)
}

fn is_contact_call(path: &str) -> bool {
    path == "/securemessage/authorize"
        || path == "/api/v1/securemessage/authorize"
        || path.starts_with("/api/v1/messenger/")
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

async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "other".to_owned());
    let method = method_label(req.method());
    let res = next.run(req).await;
    metrics::counter!("confidant_http_requests_total", "route" => route, "method" => method, "status" => res.status().as_u16().to_string())
        .increment(1);
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
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
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
