//! Conversations (CONTRACT §7): the contact side (access token) and the agent side.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use confidant_core::{ClientMessageId, ConversationId, MessageBody, SiteId};
use confidant_realtime::{Event, Topic};
use confidant_store::{
    ConversationFilter, ConversationRow, SendOutcome, SendRequest, SendTarget, SenderType,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, AppState, now_millis};
use crate::auth::{Contact, Principal, check_contact_origin};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, site_id, uuid_id};
use crate::limits::Action;
use crate::views;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// `after` and `limit` of message lists.
pub fn paging(q: &HashMap<String, String>) -> ApiResult<(i64, i64)> {
    let after = match q.get("after") {
        None => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| ApiError::invalid("after: must be a whole number ≥ 0"))?,
    };
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::invalid("limit: must be a whole number ≥ 1"))?
            .min(MAX_LIMIT),
    };
    Ok((after, limit))
}

/// The nil UUID stands for the operator when it speaks as an agent.
const OPERATOR_ID: uuid::Uuid = uuid::Uuid::nil();

/// Publish a stored message to everyone who may see it (called in commit order by the store).
pub fn publish_message(app: &App, out: &SendOutcome) {
    metrics::counter!("confidant_messages_stored_total").increment(1);
    let frame = json!({"type": "message", "message": views::message(&out.message)}).to_string();
    let event = |frame: String| Event {
        site_id: out.conversation.site_id.0,
        contact_id: out.conversation.contact_id.to_string(),
        conversation_id: out.conversation.conversation_id.to_string(),
        messenger_id: out.conversation.messenger_id.to_string(),
        preview: out.conversation.preview,
        seq: out.message.seq,
        sent_at_ms: now_millis(),
        frame: Arc::from(frame),
    };
    let topics = [
        Topic::Contact(out.conversation.contact_id.to_string()),
        Topic::Site(out.conversation.site_id.0),
    ];
    app.hub.publish(&topics, event(frame));
    if out.opened || !out.conversation.open {
        let frame = json!({"type": "conversation", "conversation": views::conversation(&out.conversation, Some(&out.message))}).to_string();
        app.hub.publish(
            &topics,
            Event {
                seq: 0,
                ..event(frame)
            },
        );
    }
}

/// Publish a non-message event (typing, read) about a conversation.
pub fn publish_other(app: &App, conv: &ConversationRow, frame: Value) {
    let topics = [
        Topic::Contact(conv.contact_id.to_string()),
        Topic::Site(conv.site_id.0),
    ];
    app.hub.publish(
        &topics,
        Event {
            site_id: conv.site_id.0,
            contact_id: conv.contact_id.to_string(),
            conversation_id: conv.conversation_id.to_string(),
            messenger_id: conv.messenger_id.to_string(),
            preview: conv.preview,
            seq: 0,
            sent_at_ms: now_millis(),
            frame: Arc::from(frame.to_string()),
        },
    );
}

#[derive(Deserialize)]
pub struct SendBody {
    #[serde(rename = "clientMessageId")]
    client_message_id: Option<String>,
    body: Option<Value>,
    #[serde(rename = "conversationId")]
    conversation_id: Option<String>,
}

fn parse_send(b: SendBody) -> ApiResult<(String, MessageBody)> {
    let cmid = match b.client_message_id {
        Some(s) => ClientMessageId::parse(s)
            .map_err(|e| ApiError::invalid(format!("clientMessageId: {e}")))?
            .into_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let body = match b.body {
        Some(Value::String(s)) => {
            MessageBody::parse(s).map_err(|e| ApiError::invalid(format!("body: {e}")))?
        }
        _ => {
            return Err(ApiError::invalid(
                "body: must be a string of 1 to 10000 characters",
            ));
        }
    };
    Ok((cmid, body))
}

fn send_answer(out: SendOutcome) -> Response {
    let status = if out.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(views::message(&out.message))).into_response()
}

// ---- contact side ----

#[utoipa::path(get, path = "/api/v1/messenger/conversations", tag = "contact", responses((status = 200, description = "the contact's conversations")))]
pub async fn contact_conversations(
    State(app): State<AppState>,
    c: Contact,
) -> ApiResult<Json<Value>> {
    let list = app
        .store
        .contact_conversations(
            c.site_id,
            c.messenger.row.messenger_id,
            c.contact_id,
            c.claims.preview,
            100,
        )
        .await?;
    let list: Vec<Value> = list
        .iter()
        .map(|(conv, last)| views::conversation(conv, last.as_ref()))
        .collect();
    Ok(Json(json!({"conversations": list})))
}

#[utoipa::path(post, path = "/api/v1/messenger/messages", tag = "contact", responses((status = 201, description = "stored"), (status = 200, description = "a repeat of an earlier send")))]
pub async fn contact_send(
    State(app): State<AppState>,
    c: Contact,
    ApiJson(b): ApiJson<SendBody>,
) -> ApiResult<Response> {
    app.limits.check(Action::Send, &c.claims.sub)?;
    let conversation_id = match b.conversation_id.as_deref() {
        Some(id) => Some(uuid_id(id).ok_or_else(|| ApiError::not_found("conversation"))?),
        None => None,
    };
    let (cmid, body) = parse_send(b)?;
    let name = contact_name(&app, c.site_id, &c.claims.sub).await?;
    let out = app
        .store
        .send(SendRequest {
            site_id: c.site_id,
            target: SendTarget::Contact {
                messenger_id: c.messenger.row.messenger_id,
                contact_id: c.contact_id,
                preview: c.claims.preview,
                conversation_id,
            },
            sender_type: SenderType::Contact,
            sender_id: c.contact_id.0,
            sender_name: name,
            body: body.into_string(),
            client_message_id: Some(cmid),
            now: now_millis(),
        })
        .await
        .map_err(|e| match e {
            confidant_store::StoreError::NotFound => ApiError::not_found("conversation"),
            other => other.into(),
        })?;
    Ok(send_answer(out))
}

/// The name shown for a contact: its `name` attribute, else its identity.
pub(crate) async fn contact_name(app: &App, site: SiteId, contact_id: &str) -> ApiResult<String> {
    app.contact_name(site, contact_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the contact no longer exists"))
}

/// The contact's own conversation (in the token's messenger), or 404.
async fn own_conversation(app: &App, c: &Contact, id: &str) -> ApiResult<ConversationRow> {
    let id = uuid_id(id).ok_or_else(|| ApiError::not_found("conversation"))?;
    app.store
        .get_conversation(c.site_id, id)
        .await?
        .filter(|conv| {
            conv.contact_id == c.contact_id
                && conv.messenger_id == c.messenger.row.messenger_id
                && conv.preview == c.claims.preview
        })
        .ok_or_else(|| ApiError::not_found("conversation"))
}

#[utoipa::path(get, path = "/api/v1/messenger/conversations/{conversationId}/messages", tag = "contact", responses((status = 200, description = "messages in seq order")))]
pub async fn contact_messages(
    State(app): State<AppState>,
    c: Contact,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let (after, limit) = paging(&q)?;
    let conv = own_conversation(&app, &c, &id).await?;
    let msgs = app
        .store
        .messages(c.site_id, conv.conversation_id, after, limit)
        .await?;
    Ok(Json(
        json!({"messages": msgs.iter().map(views::message).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
pub struct ReadBody {
    seq: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/messenger/conversations/{conversationId}/read", tag = "contact", responses((status = 204, description = "read marker stored")))]
pub async fn contact_read(
    State(app): State<AppState>,
    c: Contact,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReadBody>,
) -> ApiResult<StatusCode> {
    let seq = b
        .seq
        .filter(|s| *s >= 0)
        .ok_or_else(|| ApiError::invalid("seq: must be a whole number ≥ 0"))?;
    let conv = own_conversation(&app, &c, &id).await?;
    mark_read(
        &app,
        c.site_id,
        conv.conversation_id,
        false,
        &c.claims.sub,
        seq,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn mark_read(
    app: &App,
    site: SiteId,
    conv_id: ConversationId,
    by_agent: bool,
    reader_id: &str,
    seq: i64,
) -> ApiResult<()> {
    let conv = app.store.mark_read(site, conv_id, by_agent, seq).await?;
    let now = if by_agent {
        conv.agent_read_seq
    } else {
        conv.contact_read_seq
    };
    let reader = json!({"type": if by_agent { "agent" } else { "contact" }, "id": reader_id});
    publish_other(
        app,
        &conv,
        json!({"type": "read", "conversationId": conv.conversation_id, "reader": reader, "seq": now}),
    );
    Ok(())
}

#[derive(Deserialize)]
pub struct ConfigQuery {
    #[serde(rename = "siteId")]
    site_id: Option<String>,
    #[serde(rename = "messengerId")]
    messenger_id: Option<String>,
}

/// Public facts the loader needs on the business page (the allowed URLs decide where it shows).
#[utoipa::path(get, path = "/api/v1/messenger/config", tag = "contact", responses((status = 200, description = "the messenger's public settings")))]
pub async fn messenger_config(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ConfigQuery>,
) -> ApiResult<Json<Value>> {
    let site: SiteId = q
        .site_id
        .as_deref()
        .and_then(|s| s.parse().ok())
        .ok_or_else(ApiError::messenger_not_found)?;
    let m = app
        .messenger(site, q.messenger_id.as_deref().unwrap_or_default())
        .await?
        .ok_or_else(ApiError::messenger_not_found)?;
    check_contact_origin(&app, &headers, &m)?;
    Ok(Json(
        json!({"siteId": site.0, "messengerId": m.row.messenger_id, "name": m.row.name, "allowedUrls": m.security.allowed_urls}),
    ))
}

// ---- agent side ----

fn agent_sender(p: &Principal) -> (uuid::Uuid, String) {
    match p {
        Principal::Operator => (OPERATOR_ID, "Operator".to_owned()),
        Principal::Agent { agent, .. } => (agent.agent_id.0, agent.name.clone()),
    }
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/conversations", tag = "agent", responses((status = 200, description = "the site's conversations, newest first")))]
pub async fn site_conversations(
    State(app): State<AppState>,
    p: Principal,
    Path(site): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let site = site_id(&site)?;
    p.require_site(site)?;
    let filter = match q.get("status").map(String::as_str) {
        None | Some("open") => ConversationFilter::Open,
        Some("closed") => ConversationFilter::Closed,
        Some("all") => ConversationFilter::All,
        Some(_) => return Err(ApiError::invalid("status: must be open, closed or all")),
    };
    let preview = match q.get("preview").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("preview: must be true or false")),
    };
    let limit = match q.get("limit") {
        None => MAX_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::invalid("limit: must be a whole number ≥ 1"))?
            .min(MAX_LIMIT),
    };
    let rows = app
        .store
        .site_conversations(site, filter, preview, limit)
        .await?;
    let list: Vec<Value> = rows
        .iter()
        .map(|(conv, contact, last)| {
            let mut v = views::conversation(conv, last.as_ref());
            v["contact"] = views::contact(contact);
            v
        })
        .collect();
    Ok(Json(json!({"conversations": list})))
}

async fn site_conversation(
    app: &App,
    p: &Principal,
    site: &str,
    id: &str,
) -> ApiResult<(SiteId, ConversationRow)> {
    let site = site_id(site)?;
    p.require_site(site)?;
    let id = uuid_id(id).ok_or_else(|| ApiError::not_found("conversation"))?;
    let conv = app
        .store
        .get_conversation(site, id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok((site, conv))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/messages", tag = "agent", responses((status = 200, description = "messages in seq order")))]
pub async fn agent_messages(
    State(app): State<AppState>,
    p: Principal,
    Path((site, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let (after, limit) = paging(&q)?;
    let (site, conv) = site_conversation(&app, &p, &site, &id).await?;
    let msgs = app
        .store
        .messages(site, conv.conversation_id, after, limit)
        .await?;
    Ok(Json(
        json!({"messages": msgs.iter().map(views::message).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/messages", tag = "agent", responses((status = 201, description = "stored"), (status = 200, description = "a repeat of an earlier send"), (status = 409, description = "the conversation is closed")))]
pub async fn agent_send(
    State(app): State<AppState>,
    p: Principal,
    Path((site, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<SendBody>,
) -> ApiResult<Response> {
    let (site, conv) = site_conversation(&app, &p, &site, &id).await?;
    let (cmid, body) = parse_send(b)?;
    let (sender_id, sender_name) = agent_sender(&p);
    let out = app
        .store
        .send(SendRequest {
            site_id: site,
            target: SendTarget::Agent {
                conversation_id: conv.conversation_id,
            },
            sender_type: SenderType::Agent,
            sender_id,
            sender_name,
            body: body.into_string(),
            client_message_id: Some(cmid),
            now: now_millis(),
        })
        .await?;
    Ok(send_answer(out))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/close", tag = "agent", responses((status = 200, description = "the conversation")))]
pub async fn close(
    State(app): State<AppState>,
    p: Principal,
    Path((site, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (site, conv) = site_conversation(&app, &p, &site, &id).await?;
    let (sender_id, name) = agent_sender(&p);
    let out = app
        .store
        .send(SendRequest {
            site_id: site,
            target: SendTarget::Close {
                conversation_id: conv.conversation_id,
            },
            sender_type: SenderType::System,
            sender_id,
            sender_name: "System".to_owned(),
            body: format!("{name} closed the conversation."),
            client_message_id: None,
            now: now_millis(),
        })
        .await?;
    Ok(Json(views::conversation(
        &out.conversation,
        Some(&out.message),
    )))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/read", tag = "agent", responses((status = 204, description = "read marker stored")))]
pub async fn agent_read(
    State(app): State<AppState>,
    p: Principal,
    Path((site, id)): Path<(String, String)>,
    ApiJson(b): ApiJson<ReadBody>,
) -> ApiResult<StatusCode> {
    let seq = b
        .seq
        .filter(|s| *s >= 0)
        .ok_or_else(|| ApiError::invalid("seq: must be a whole number ≥ 0"))?;
    let (site, conv) = site_conversation(&app, &p, &site, &id).await?;
    let (reader, _) = agent_sender(&p);
    mark_read(
        &app,
        site,
        conv.conversation_id,
        true,
        &reader.to_string(),
        seq,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/contacts/{contactId}", tag = "agent", responses((status = 200, description = "the contact")))]
pub async fn get_contact(
    State(app): State<AppState>,
    p: Principal,
    Path((site, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let site = site_id(&site)?;
    p.require_site(site)?;
    let id = uuid_id(&id).ok_or_else(|| ApiError::not_found("contact"))?;
    let c = app
        .store
        .get_contact(site, id)
        .await?
        .ok_or_else(|| ApiError::not_found("contact"))?;
    Ok(Json(views::contact(&c)))
}
