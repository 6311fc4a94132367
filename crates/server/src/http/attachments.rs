//! Attachments (CONTRACT §11): uploads (`multipart/form-data`, one part `file`, read as it
//! arrives) and downloads (streamed, with headers that keep a browser from running them).

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest as _, Multipart, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use confidant_core::{AttachmentId, ConversationId, SiteId};
use confidant_store::AttachmentRow;
use futures_util::stream::BoxStream;

use crate::api::{self, ErrorBody};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::auth::ContactCaller;
use crate::http::extract::ApiPath;
use crate::service::accounts::Principal;
use crate::service::attachments::{Owner, Reader, Upload};
use crate::service::conversations::Viewer;

/// The largest upload body: the largest `maxBytes` and room for the multipart framing. Each
/// messenger's own `maxBytes` is enforced on the file's bytes as they arrive.
pub const UPLOAD_BODY_LIMIT: usize =
    confidant_core::security::MAX_ATTACHMENT_BYTES as usize + 64 * 1024;

/// Store the `file` part of a multipart body (parts before it are skipped) for `owner`,
/// reading it as it arrives.
async fn upload_file_part(
    app: &AppState,
    req: Request,
    owner: &Owner,
    settings: &confidant_core::Attachments,
) -> ApiResult<AttachmentRow> {
    let mut form = Multipart::from_request(req, app).await.map_err(|_| {
        ApiError::invalid("the body must be multipart/form-data with a part named file")
    })?;
    loop {
        let field = form
            .next_field()
            .await
            .map_err(multipart_error)?
            .ok_or_else(|| ApiError::invalid("file: the multipart body has no part named file"))?;
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().map(str::to_owned);
        let declared_type = field.content_type().map(str::to_owned);
        let bytes = futures_util::stream::unfold(field, |mut field| async move {
            match field.chunk().await {
                Ok(Some(b)) => Some((Ok(b), field)),
                Ok(None) => None,
                Err(e) => Some((Err(multipart_error(e)), field)),
            }
        });
        let upload = Upload {
            filename,
            declared_type,
            bytes: Box::pin(bytes),
        };
        return app.attachments.upload(owner, settings, upload).await;
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the upload is larger than attachments may be",
        )
    } else {
        ApiError::invalid("the multipart body could not be read")
    }
}

fn created(a: &AttachmentRow) -> (StatusCode, Json<api::Attachment>) {
    (StatusCode::CREATED, Json(api::Attachment::from(a)))
}

#[utoipa::path(post, path = "/api/v1/messenger/attachments", tag = "contact",
    request_body(content_type = "multipart/form-data", description = "one part `file`"),
    responses((status = 201, body = api::Attachment, description = "stored, durably"),
              (status = 403, body = ErrorBody, description = "attachments are off"),
              (status = 413, body = ErrorBody, description = "over the messenger's maxBytes"),
              (status = 415, body = ErrorBody, description = "a type that is not allowed, or not what was declared")))]
pub async fn contact_upload(
    State(app): State<AppState>,
    ContactCaller(c): ContactCaller,
    req: Request,
) -> ApiResult<(StatusCode, Json<api::Attachment>)> {
    app.limits.send(c.scope.contact)?;
    let settings = c.messenger.security.attachments.clone();
    if !settings.enabled {
        return Err(ApiError::forbidden(
            "attachments are turned off for this messenger",
        ));
    }
    let row = upload_file_part(&app, req, &Owner::Contact(c.scope), &settings).await?;
    Ok(created(&row))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/conversations/{conversationId}/attachments", tag = "agent",
    params(("siteId" = i64, Path), ("conversationId" = String, Path, format = Uuid)),
    request_body(content_type = "multipart/form-data", description = "one part `file`"),
    responses((status = 201, body = api::Attachment, description = "stored, durably"),
              (status = 404, body = ErrorBody, description = "no such conversation on the site")))]
pub async fn agent_upload(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, ConversationId)>,
    req: Request,
) -> ApiResult<(StatusCode, Json<api::Attachment>)> {
    p.require_site(site)?;
    let conversation = app.conversations.visible(&Viewer::Agents(site), id).await?;
    let (_, security) = app.messengers.get(site, conversation.messenger_id).await?;
    if !security.attachments.enabled {
        return Err(ApiError::forbidden(
            "attachments are turned off for this messenger",
        ));
    }
    let (agent, _) = p.sender();
    let owner = Owner::Agent {
        site,
        conversation,
        agent,
    };
    let row = upload_file_part(&app, req, &owner, &security.attachments).await?;
    Ok(created(&row))
}

#[utoipa::path(get, path = "/api/v1/messenger/attachments/{attachmentId}", tag = "contact",
    params(("attachmentId" = String, Path, format = Uuid)),
    responses((status = 200, description = "the bytes", content_type = "application/octet-stream"),
              (status = 404, body = ErrorBody)))]
pub async fn contact_download(
    State(app): State<AppState>,
    ContactCaller(c): ContactCaller,
    ApiPath(id): ApiPath<AttachmentId>,
) -> ApiResult<Response> {
    let (a, bytes) = app
        .attachments
        .download(Reader::Contact(c.scope), id)
        .await?;
    Ok(download(&a, bytes))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/attachments/{attachmentId}", tag = "agent",
    params(("siteId" = i64, Path), ("attachmentId" = String, Path, format = Uuid)),
    responses((status = 200, description = "the bytes", content_type = "application/octet-stream"),
              (status = 404, body = ErrorBody)))]
pub async fn agent_download(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, AttachmentId)>,
) -> ApiResult<Response> {
    p.require_site(site)?;
    let (a, bytes) = app.attachments.download(Reader::Agents(site), id).await?;
    Ok(download(&a, bytes))
}

/// The bytes with CONTRACT §11's headers: a download, never shown inline or sniffed, sandboxed
/// if opened, never cached by a shared cache.
fn download(a: &AttachmentRow, bytes: BoxStream<'static, std::io::Result<Bytes>>) -> Response {
    let mut res = Body::from_stream(bytes).into_response();
    let h = res.headers_mut();
    let ct = HeaderValue::from_str(&a.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(a.size as u64));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&a.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    res
}

/// `attachment; filename*=UTF-8''<RFC 5987 percent-encoding>` (RFC 6266).
pub fn content_disposition(filename: &str) -> String {
    let mut out = String::from("attachment; filename*=UTF-8''");
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn content_disposition_percent_encodes_all_but_attr_chars() {
        assert_eq!(
            super::content_disposition("Résumé 2026 (final).pdf"),
            "attachment; filename*=UTF-8''R%C3%A9sum%C3%A9%202026%20%28final%29.pdf"
        );
        assert_eq!(
            super::content_disposition("a\";b.png"),
            "attachment; filename*=UTF-8''a%22%3Bb.png"
        );
    }
}
