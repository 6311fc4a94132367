//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use crate::routes::{admin, authorize, conversations, demo, health};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Confidant",
        description = "Secure messaging for verified customers. See CONTRACT.md for the exact contract."
    ),
    paths(
        health::healthz,
        health::livez,
        health::metrics,
        health::jwks,
        serve,
        admin::create_site,
        admin::get_site,
        admin::create_agent,
        admin::list_agents,
        admin::delete_agent,
        admin::login,
        admin::logout,
        admin::me,
        admin::create_messenger,
        admin::list_messengers,
        admin::get_messenger,
        admin::put_security,
        admin::installation_code,
        authorize::authorize,
        authorize_v1,
        conversations::messenger_config,
        conversations::contact_conversations,
        conversations::contact_send,
        conversations::contact_messages,
        conversations::contact_read,
        conversations::site_conversations,
        conversations::agent_messages,
        conversations::agent_send,
        conversations::close,
        conversations::agent_read,
        conversations::get_contact,
        contact_ws,
        agent_ws,
        frame,
        demo::config,
        demo::contact_jwt,
        demo::access_token,
    )
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "health", responses((status = 200, description = "this document")))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

// Routes whose handlers live elsewhere or are shared, documented here.
#[utoipa::path(post, path = "/api/v1/securemessage/authorize", tag = "authorize", responses((status = 200, description = "same as /securemessage/authorize")))]
#[allow(dead_code)]
fn authorize_v1() {}
#[utoipa::path(get, path = "/api/v1/messenger/ws", tag = "contact", responses((status = 101, description = "WebSocket: first frame {\"type\":\"auth\",\"token\"}")))]
#[allow(dead_code)]
fn contact_ws() {}
#[utoipa::path(get, path = "/api/v1/agent/ws", tag = "agent", responses((status = 101, description = "WebSocket: first frame {\"type\":\"auth\",\"token\"}")))]
#[allow(dead_code)]
fn agent_ws() {}
#[utoipa::path(get, path = "/messenger/v1/frame", tag = "embedding", responses((status = 200, description = "the messenger page")))]
#[allow(dead_code)]
fn frame() {}
