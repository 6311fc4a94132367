//! Retention, export and erasure (CONTRACT §14).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confidant_core::{ContactId, SiteId};

use crate::api::{self, ContactExport, ErrorBody, ExportedConversation, RetentionCounts};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::http::extract::{ApiPath, ClientIp};
use crate::service::accounts::Principal;
use crate::service::audit::Who;

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/retention/run", tag = "admin",
    params(("siteId" = i64, Path)),
    responses((status = 200, body = RetentionCounts, description = "the site's retention pass, run now; recorded as `retention.purged`"),
              (status = 403, body = ErrorBody, description = "not the operator"), (status = 404, body = ErrorBody)))]
pub async fn run_retention(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath(site): ApiPath<SiteId>,
) -> ApiResult<Json<RetentionCounts>> {
    p.require_site(site)?;
    p.require_operator()?;
    let purged = app.lifecycle.run_now(site, &Who::of(&p, ip)).await?;
    Ok(Json(RetentionCounts {
        conversations: purged.conversations,
        messages: purged.messages,
        attachments: purged.attachments,
    }))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/contacts/{contactId}/export", tag = "admin",
    params(("siteId" = i64, Path), ("contactId" = String, Path, format = Uuid)),
    responses((status = 200, body = ContactExport, description = "a download (`Content-Disposition: attachment`); recorded as `contact.exported`"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export_contact(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, ContactId)>,
) -> ApiResult<Response> {
    p.require_admin(site)?;
    let export = app.lifecycle.export(site, id, &Who::of(&p, ip)).await?;
    let body = ContactExport {
        contact: api::Contact::from(&export.contact),
        conversations: export
            .conversations
            .iter()
            .map(|(c, messages)| ExportedConversation {
                conversation: api::Conversation::new(c, messages.last()),
                messages: messages.iter().map(api::Message::from).collect(),
            })
            .collect(),
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"contact-{id}.json\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

#[utoipa::path(delete, path = "/api/v1/sites/{siteId}/contacts/{contactId}", tag = "admin",
    params(("siteId" = i64, Path), ("contactId" = String, Path, format = Uuid)),
    responses((status = 204, description = "erased: the contact, its conversations, messages and attachments are gone, its tokens and sockets end; recorded as `contact.erased`"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn erase_contact(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, ContactId)>,
) -> ApiResult<StatusCode> {
    p.require_admin(site)?;
    app.lifecycle.erase(site, id, &Who::of(&p, ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}
