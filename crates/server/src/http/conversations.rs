//! Conversations (CONTRACT §7): the contact side (access token) and the agent side (session).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use confidant_core::{ContactId, ConversationId, MessengerId, SiteId};
use confidant_store::{AssigneeFilter, ConversationFilter, ListQuery};

use crate::api::frames::Party;
use crate::api::{
    self, ConfigQuery, ConversationList, ConversationQuery, ErrorBody, MessageList,
    MessengerConfig, Paging,
};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::{ContactCaller, check_contact_origin};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::accounts::Principal;
use crate::service::conversations::{DEFAULT_LIMIT, MAX_LIMIT, NewMessage, Sent, Viewer};
use crate::service::messengers::CachedMessenger;
use crate::service::workflow::parse_cursor;

/// `after` and `limit` of a message list.
fn paging(p: &Paging) -> ApiResult<(i64, i64)> {
    let after = p.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after: must be a whole number ≥ 0"));
    }
    let limit = limit(p.limit, DEFAULT_LIMIT)?;
    Ok((after, limit))
}

fn limit(asked: Option<i64>, default: i64) -> ApiResult<i64> {
    match asked {
        None => Ok(default),
        Some(n) if n >= 1 => Ok(n.min(MAX_LIMIT)),
        Some(_) => Err(ApiError::invalid("limit: must be a whole number ≥ 1")),
    }
}

/// `201` with a new message, `200` with the stored one for a repeat.
fn sent(s: Sent) -> (StatusCode, Json<api::Message>) {
    let status = if s.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(api::Message::from(&s.message)))
}

/// A conversation id from a body: one that is not a UUID names no conversation.
fn conversation_ref(id: Option<&str>) -> ApiResult<Option<ConversationId>> {
    id.map(|s| s.parse().map_err(|_| ApiError::not_found("conversation")))
        .transpose()
}

fn messages(rows: &[confidant_store::MessageRow]) -> Json<MessageList> {
    Json(MessageList {
        messages: rows.iter().map(api::Message::from).collect(),
    })
}

fn read_seq(body: &api::ReadMarker) -> ApiResult<i64> {
    body.seq
        .filter(|s| *s >= 0)
        .ok_or_else(|| ApiError::invalid("seq: must be a whole number ≥ 0"))
}

// ---- contact side ----

#[utoipa::path(get, path = "/api/v1/messenger/config", tag = "contact", params(ConfigQuery),
    responses((status = 200, body = MessengerConfig), (status = 404, body = ErrorBody, description = "messenger_not_found")))]
pub async fn messenger_config(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> ApiResult<Json<MessengerConfig>> {
    let m = app
        .messengers
        .named(q.site_id.as_deref(), q.messenger_id.as_deref())
        .await?;
    check_contact_origin(&app, &headers, &m)?;
    let appearance = app
        .appearance
        .public(&m, email_notices(&app, &m).await?)
        .await?;
    Ok(Json(MessengerConfig {
        site_id: m.row.site_id,
        messenger_id: m.row.messenger_id,
        name: m.row.name.clone(),
        allowed_urls: m.security.allowed_urls.clone(),
        attachments: (&m.security.attachments).into(),
        appearance,
    }))
}

/// Whether a customer of the messenger gets an email for a reply: its notices are on and
/// the server has a mail server.
pub async fn email_notices(app: &AppState, m: &CachedMessenger) -> ApiResult<bool> {
    if !app.notices.smtp_configured() {
        return Ok(false);
    }
    let n = app
        .notices
        .settings(m.row.site_id, m.row.messenger_id)
        .await?;
    Ok(n.email.enabled)
}

#[utoipa::path(get, path = "/api/v1/messenger/me", tag = "contact",
    responses((status = 200, body = api::Contact, description = "the signed-in contact: identity and profile attributes, as authorize answered them"),
              (status = 401, body = ErrorBody)))]
pub async fn contact_me(
    State(app): State<AppState>,
    ContactCaller(c): ContactCaller,
) -> ApiResult<Json<api::Contact>> {
    let row = app.contacts.get(c.scope.site, c.scope.contact).await?;
    Ok(Json(api::Contact::from(&row)))
}

#[utoipa::path(get, path = "/api/v1/messenger/conversations", tag = "contact",
    responses((status = 200, body = ConversationList, description = "the contact's conversations, newest first")))]
pub async fn contact_conversations(
    State(app): State<AppState>,
    ContactCaller(c): ContactCaller,
) -> ApiResult<Json<ConversationList>> {
    let list = app.conversations.of_contact(&c.scope).await?;
    Ok(Json(ConversationList {
        conversations: list
            .iter()
            .map(|(conv, last)| api::Conversation::new(conv, last.as_ref()))
            .collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/messenger/messages", tag = "contact", request_body = api::Send,
    responses((status = 201, body = api::Message, description = "stored"),
              (status = 200, body = api::Message, description = "a repeat of an earlier send"),
              (status = 404, body = ErrorBody, description = "the named conversation is not the contact's")))]
pub async fn contact_send(
    State(app): State<AppState>,
    ContactCaller(c): ContactCaller,
    ApiJson(b): ApiJson<api::Send>,
) -> ApiResult<(StatusCode, Json<api::Message>)> {
    let attachments = NewMessage::attachment_ids(b.attachment_ids)?;
    app.limits.send(c.scope.contact)?;
    let conversation = conversation_ref(b.conversation_id.as_deref())?;
    let m = NewMessage::parse(b.client_message_id, b.body, attachments)?;
    let out = app
        .conversations
        .contact_send(&c.scope, conversation, m)
        .await?;
    Ok(sent(out))
}

#[utoipa::path(get, path = "/api/v1/messenger/conversations/{conversationId}/messages", tag = "contact",
    params(("conversationId" = String, Path, format = Uuid), Paging),
    responses((status = 200, body = MessageList, description = "messages in seq order"), (status = 404, body = ErrorBody)))]
pub async fn contact_messages(
    State(app): State<AppState>,
    ContactCaller(c): ContactCaller,
    ApiPath(id): ApiPath<ConversationId>,
    ApiQuery(q): ApiQuery<Paging>,
) -> ApiResult<Json<MessageList>> {
    let (after, limit) = paging(&q)?;
    let rows = app
        .conversations
        .messages(&Viewer::Contact(c.scope), id, after, limit)
        .await?;
    Ok(messages(&rows))
}

#[utoipa::path(post, path = "/api/v1/messenger/conversations/{conversationId}/read", tag = "contact",
    params(("conversationId" = String, Path, format = Uuid)), request_body = api::ReadMarker,
    responses((status = 204, description = "read marker stored")))]
pub async fn contact_read(
    State(app): State<AppState>,
    ContactCaller(c): ContactCaller,
    ApiPath(id): ApiPath<ConversationId>,
    ApiJson(b): ApiJson<api::ReadMarker>,
) -> ApiResult<StatusCode> {
    let seq = read_seq(&b)?;
    let reader = Party {
        kind: "contact",
        id: c.scope.contact.to_string(),
        name: None,
    };
    app.conversations
        .mark_read(&Viewer::Contact(c.scope), reader, id, seq)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- agent side ----

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/conversations", tag = "agent",
    params(("siteId" = i64, Path), ConversationQuery),
    responses((status = 200, body = api::AgentConversationPage,
                description = "the site's conversations, newest first (`updatedAt`, then id), each with its contact, assignee and unread count; `next` pages on"),
              (status = 400, body = ErrorBody, description = "a bad filter or cursor")))]
pub async fn site_conversations(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
    ApiQuery(q): ApiQuery<ConversationQuery>,
) -> ApiResult<Json<api::AgentConversationPage>> {
    app.accounts.check_site(&p, site).await?;
    let contact = q
        .contact_id
        .as_deref()
        .map(|s| {
            s.parse::<ContactId>()
                .map_err(|_| ApiError::invalid("contactId: must be a contact id"))
        })
        .transpose()?;
    // Another site's messenger names none of this site's conversations: an empty list.
    let messenger = q
        .messenger_id
        .as_deref()
        .map(|s| {
            s.parse::<MessengerId>()
                .map_err(|_| ApiError::invalid("messengerId: must be a messenger id (a UUID)"))
        })
        .transpose()?;
    let status = match q.status.as_deref() {
        // A contact's history is all of it unless a status is asked for.
        None if contact.is_some() => ConversationFilter::All,
        None | Some("open") => ConversationFilter::Open,
        Some("closed") => ConversationFilter::Closed,
        Some("all") => ConversationFilter::All,
        Some(_) => return Err(ApiError::invalid("status: must be open, closed or all")),
    };
    let assignee = match q.assignee.as_deref() {
        None | Some("") => AssigneeFilter::Anyone,
        Some("none") => AssigneeFilter::Unassigned,
        Some("me") => match &p {
            Principal::Agent { agent, .. } => AssigneeFilter::Agent(agent.agent_id),
            Principal::Operator => {
                return Err(ApiError::forbidden(
                    "assignee: `me` needs an agent's session (the operator is no agent)",
                ));
            }
        },
        Some(id) => AssigneeFilter::Agent(
            id.parse()
                .map_err(|_| ApiError::invalid("assignee: must be me, none or an agent id"))?,
        ),
    };
    let after = q.after.as_deref().map(parse_cursor).transpose()?;
    let limit = limit(q.limit, MAX_LIMIT)?;
    let (rows, next) = app
        .workflow
        .list(ListQuery {
            site,
            status,
            preview: q.preview.unwrap_or(false),
            assignee,
            contact,
            messenger,
            after,
            limit,
        })
        .await?;
    Ok(Json(api::AgentConversationPage {
        conversations: rows.iter().map(api::AgentConversation::from).collect(),
        next,
    }))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/messages", tag = "agent",
    params(("siteId" = i64, Path), ("conversationId" = String, Path, format = Uuid), Paging),
    responses((status = 200, body = MessageList, description = "messages in seq order"), (status = 404, body = ErrorBody)))]
pub async fn agent_messages(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ConversationId)>,
    ApiQuery(q): ApiQuery<Paging>,
) -> ApiResult<Json<MessageList>> {
    let (after, limit) = paging(&q)?;
    p.require_site(site)?;
    let rows = app
        .conversations
        .messages(&Viewer::Agents(site), id, after, limit)
        .await?;
    Ok(messages(&rows))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/messages", tag = "agent",
    params(("siteId" = i64, Path), ("conversationId" = String, Path, format = Uuid)), request_body = api::Send,
    responses((status = 201, body = api::Message, description = "stored"),
              (status = 200, body = api::Message, description = "a repeat of an earlier send"),
              (status = 409, body = ErrorBody, description = "the conversation is closed")))]
pub async fn agent_send(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ConversationId)>,
    ApiJson(b): ApiJson<api::Send>,
) -> ApiResult<(StatusCode, Json<api::Message>)> {
    let attachments = NewMessage::attachment_ids(b.attachment_ids)?;
    p.require_site(site)?;
    let m = NewMessage::parse(b.client_message_id, b.body, attachments)?;
    let out = app
        .conversations
        .agent_send(site, id, p.sender(), m)
        .await?;
    Ok(sent(out))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/close", tag = "agent",
    params(("siteId" = i64, Path), ("conversationId" = String, Path, format = Uuid)),
    responses((status = 200, body = api::AgentConversation, description = "the closed conversation")))]
pub async fn close(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ConversationId)>,
) -> ApiResult<Json<api::AgentConversation>> {
    p.require_site(site)?;
    app.conversations.close(site, id, p.sender()).await?;
    let view = app.workflow.view(site, id).await?;
    // Every agent socket hears of the close (with the assignee) before the answer.
    app.workflow.publish(&view);
    Ok(Json(api::AgentConversation::from(&view)))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/reopen", tag = "agent",
    params(("siteId" = i64, Path), ("conversationId" = String, Path, format = Uuid)),
    responses((status = 200, body = api::AgentConversation, description = "the open conversation (unchanged if it was open)"),
              (status = 404, body = ErrorBody, description = "no such conversation in this site"),
              (status = 409, body = ErrorBody, description = "the contact has another open conversation in this messenger")))]
pub async fn reopen(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ConversationId)>,
) -> ApiResult<Json<api::AgentConversation>> {
    p.require_site(site)?;
    let reopened = app.conversations.reopen(site, id, p.sender()).await?;
    let view = app.workflow.view(site, id).await?;
    if reopened {
        // Every agent socket hears of it before the answer, as with a close.
        app.workflow.publish(&view);
    }
    Ok(Json(api::AgentConversation::from(&view)))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/read", tag = "agent",
    params(("siteId" = i64, Path), ("conversationId" = String, Path, format = Uuid)), request_body = api::ReadMarker,
    responses((status = 204, description = "read marker stored")))]
pub async fn agent_read(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ConversationId)>,
    ApiJson(b): ApiJson<api::ReadMarker>,
) -> ApiResult<StatusCode> {
    let seq = read_seq(&b)?;
    p.require_site(site)?;
    let (reader, _) = p.sender();
    let reader = Party {
        kind: "agent",
        id: reader.to_string(),
        name: None,
    };
    app.conversations
        .mark_read(&Viewer::Agents(site), reader, id, seq)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/contacts/{contactId}", tag = "agent",
    params(("siteId" = i64, Path), ("contactId" = String, Path, format = Uuid)),
    responses((status = 200, body = api::Contact), (status = 404, body = ErrorBody)))]
pub async fn get_contact(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ContactId)>,
) -> ApiResult<Json<api::Contact>> {
    p.require_site(site)?;
    Ok(Json(api::Contact::from(&app.contacts.get(site, id).await?)))
}
