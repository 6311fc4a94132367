//! The agent workflow (CONTRACT §16): one conversation as agents see it, assignment, and the
//! site's canned replies. (The filtered list is `conversations::site_conversations`.)

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use confidant_core::{AgentId, ConversationId, SiteId};

use crate::api::{self, ErrorBody};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ClientIp};
use crate::service::accounts::Principal;
use crate::service::audit::Who;
use crate::service::workflow::NewCanned;

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/conversations/{conversationId}", tag = "agent",
    params(("siteId" = i64, Path), ("conversationId" = String, Path, format = Uuid)),
    responses((status = 200, body = api::AgentConversation), (status = 404, body = ErrorBody)))]
pub async fn get_conversation(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ConversationId)>,
) -> ApiResult<Json<api::AgentConversation>> {
    p.require_site(site)?;
    let view = app.workflow.view(site, id).await?;
    Ok(Json(api::AgentConversation::from(&view)))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/assign", tag = "agent",
    params(("siteId" = i64, Path), ("conversationId" = String, Path, format = Uuid)), request_body = api::Assign,
    responses((status = 200, body = api::AgentConversation, description = "the conversation, assigned"),
              (status = 400, body = ErrorBody, description = "`agentId` is not an agent of the site"),
              (status = 403, body = ErrorBody, description = "an agent assigning someone else, or unassigning another"),
              (status = 404, body = ErrorBody)))]
pub async fn assign(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ConversationId)>,
    ApiJson(b): ApiJson<api::Assign>,
) -> ApiResult<Json<api::AgentConversation>> {
    let agent = match b.agent_id {
        None => {
            return Err(ApiError::invalid(
                "agentId: required, an agent id or null to unassign",
            ));
        }
        Some(None) => None,
        Some(Some(s)) => Some(
            s.parse::<AgentId>()
                .map_err(|_| ApiError::invalid("agentId: must be an agent id or null"))?,
        ),
    };
    p.require_site(site)?;
    let view = app.workflow.assign(&p, site, id, agent).await?;
    Ok(Json(api::AgentConversation::from(&view)))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/canned-replies", tag = "agent",
    params(("siteId" = i64, Path)),
    responses((status = 200, body = api::CannedReplyList, description = "by shortcut"), (status = 404, body = ErrorBody)))]
pub async fn list_canned(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
) -> ApiResult<Json<api::CannedReplyList>> {
    app.accounts.check_site(&p, site).await?;
    let rows = app.workflow.canned_replies(site).await?;
    Ok(Json(api::CannedReplyList {
        canned_replies: rows.iter().map(api::CannedReply::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/canned-replies", tag = "admin",
    params(("siteId" = i64, Path)), request_body = api::NewCannedReply,
    responses((status = 201, body = api::CannedReply), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "the shortcut is taken")))]
pub async fn create_canned(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath(site): ApiPath<SiteId>,
    ApiJson(b): ApiJson<api::NewCannedReply>,
) -> ApiResult<(StatusCode, Json<api::CannedReply>)> {
    app.accounts.check_admin(&p, site).await?;
    let new = NewCanned::parse(b)?;
    let row = app
        .workflow
        .create_canned(site, new, &Who::of(&p, ip))
        .await?;
    Ok((StatusCode::CREATED, Json(api::CannedReply::from(&row))))
}

#[utoipa::path(delete, path = "/api/v1/sites/{siteId}/canned-replies/{cannedReplyId}", tag = "admin",
    params(("siteId" = i64, Path), ("cannedReplyId" = String, Path, format = Uuid)),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_canned(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, uuid::Uuid)>,
) -> ApiResult<StatusCode> {
    app.accounts.check_admin(&p, site).await?;
    app.workflow
        .delete_canned(site, id, &Who::of(&p, ip))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
