//! The HTTP and WebSocket edge: extractors, the route handlers (one module per area), the
//! layers, and the router with its OpenAPI document. Handlers translate requests into service
//! calls and answers back; route modules never import each other.

pub mod accounts;
pub mod agent_accounts;
pub mod appearance;
pub mod assets;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod authorize;
pub mod conversations;
pub mod docs;
pub mod extract;
pub mod gate;
pub mod health;
pub mod layers;
pub mod lifecycle;
pub mod messengers;
pub mod notices;
pub mod openapi;
pub mod token_check;
pub mod webhooks;
pub mod workflow;
pub mod ws;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower::{Service, ServiceBuilder};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::{App, AppState};
use crate::error::ApiError;

/// Request bodies are limited to 256 KiB (CONTRACT §3).
pub const BODY_LIMIT: usize = 256 * 1024;

#[derive(utoipa::OpenApi)]
#[openapi(info(
    title = "Confidant",
    description = "Secure messaging for verified customers. docs/CONTRACT.md is the contract; \
                   every non-2xx answer is {\"error\": {\"code\", \"message\"}}."
))]
struct ApiDoc;

/// Every route of the API, with its OpenAPI operation.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::livez))
        .routes(routes!(health::metrics))
        .routes(routes!(health::jwks))
        .routes(routes!(openapi))
        .routes(routes!(accounts::create_site))
        .routes(routes!(accounts::get_site))
        .routes(routes!(accounts::list_agents, accounts::create_agent))
        .routes(routes!(accounts::delete_agent))
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::ws_ticket))
        .routes(routes!(audit::audit_page))
        .routes(routes!(audit::audit_verify))
        .routes(routes!(audit::get_settings, audit::put_settings))
        .routes(routes!(audit::search_contacts))
        .routes(routes!(
            messengers::list_messengers,
            messengers::create_messenger
        ))
        .routes(routes!(
            messengers::get_messenger,
            messengers::patch_messenger,
            messengers::delete_messenger
        ))
        .routes(routes!(messengers::put_security))
        .routes(routes!(messengers::end_rollover))
        .routes(routes!(messengers::installation_code))
        .routes(routes!(
            notices::get_notifications,
            notices::put_notifications
        ))
        .routes(routes!(notices::test_notification))
        .routes(routes!(
            appearance::get_appearance,
            appearance::put_appearance
        ))
        .routes(routes!(authorize::authorize))
        .routes(routes!(authorize::authorize_v1))
        .routes(routes!(conversations::messenger_config))
        .routes(routes!(conversations::contact_me))
        .routes(routes!(conversations::contact_conversations))
        .routes(routes!(conversations::contact_send))
        .routes(routes!(conversations::contact_messages))
        .routes(routes!(conversations::contact_read))
        .routes(routes!(conversations::site_conversations))
        .routes(routes!(
            conversations::agent_messages,
            conversations::agent_send
        ))
        .routes(routes!(conversations::close))
        .routes(routes!(conversations::reopen))
        .routes(routes!(conversations::agent_read))
        .routes(routes!(conversations::get_contact))
        .routes(routes!(attachments::agent_download))
        .routes(routes!(attachments::contact_download))
        .merge(
            // Uploads take their own body limit (the largest `maxBytes` and the multipart
            // framing; each messenger's limit is enforced as the bytes arrive), not 256 KiB.
            OpenApiRouter::new()
                .routes(routes!(attachments::contact_upload))
                .routes(routes!(attachments::agent_upload))
                .layer(axum::extract::DefaultBodyLimit::max(
                    attachments::UPLOAD_BODY_LIMIT,
                )),
        )
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::delete_webhook))
        .routes(routes!(webhooks::webhook_deliveries))
        .routes(routes!(webhooks::test_webhook))
        .routes(routes!(ws::contact_ws))
        .routes(routes!(ws::agent_ws))
        .routes(routes!(assets::frame))
        .routes(routes!(agent_accounts::patch_agent))
        .routes(routes!(agent_accounts::totp_setup))
        .routes(routes!(agent_accounts::totp_confirm))
        .routes(routes!(agent_accounts::list_sessions))
        .routes(routes!(agent_accounts::end_session))
        .routes(routes!(lifecycle::run_retention))
        .routes(routes!(lifecycle::export_contact))
        .routes(routes!(lifecycle::erase_contact))
        .routes(routes!(workflow::get_conversation))
        .routes(routes!(workflow::assign))
        .routes(routes!(workflow::list_canned, workflow::create_canned))
        .routes(routes!(workflow::delete_canned))
        .routes(routes!(token_check::check_token))
}

/// The OpenAPI document of this server's routes.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health",
    responses((status = 200, body = Object, description = "this document")))]
async fn openapi(State(app): State<AppState>) -> Json<Option<OpenApi>> {
    Json(app.openapi.get().cloned())
}

/// The server's service: the router (`routes`, the API plus the demo's when `confidant demo`
/// runs, with the static pages as fallback) behind the layers every request passes through.
///
/// Request ids and tracing wrap the router as a whole, once, rather than each route (what
/// `Router::layer` does): each request then clones only its own route's short stack. The
/// metrics and CORS layers stay on the routes, because the metrics label is the matched route.
pub fn service(
    app: Arc<App>,
    routes: OpenApiRouter<AppState>,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ Sync
+ 'static {
    ServiceBuilder::new()
        .map_response(IntoResponse::into_response)
        .layer(SetRequestIdLayer::x_request_id(layers::RequestIds::default()))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(router(app, routes))
}

/// The router with its fallbacks and the per-route layers.
fn router(app: Arc<App>, routes: OpenApiRouter<AppState>) -> Router {
    let (routes, mut doc) = routes.split_for_parts();
    openapi::finish(&mut doc);
    // Kept in the state rather than as a request extension: no work on other requests.
    let _ = app.openapi.set(doc);
    routes
        .route("/docs/{page}", axum::routing::get(docs::page))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(assets::static_file)
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(layers::per_route))
        .with_state(AppState(app))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "method not allowed on this path",
    )
}
