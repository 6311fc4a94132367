//! A messenger's offline notices (CONTRACT §10): the settings and a test email.

use axum::Json;
use axum::extract::State;
use confidant_core::{MessengerId, SiteId};
use serde_json::Value;

use crate::api::{ErrorBody, NotificationsSchema, TestEmail, TestEmailSent};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::http::extract::{ApiJson, ApiPath, ClientIp};
use crate::service::accounts::Principal;
use crate::service::audit::Who;

/// The messenger must exist on the site (404 first), then the caller must be its admin.
async fn admin_of(app: &AppState, p: &Principal, site: SiteId, id: MessengerId) -> ApiResult<()> {
    p.require_site(site)?;
    app.messengers.get(site, id).await?;
    p.require_admin(site)
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/notifications", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    responses((status = 200, body = NotificationsSchema), (status = 404, body = ErrorBody, description = "messenger_not_found")))]
pub async fn get_notifications(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
) -> ApiResult<Json<NotificationsSchema>> {
    admin_of(&app, &p, site, id).await?;
    let n = app.notices.settings(site, id).await?;
    Ok(Json(NotificationsSchema::new(
        &n,
        app.notices.smtp_configured(),
    )))
}

#[utoipa::path(put, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/notifications", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    request_body = NotificationsSchema,
    responses((status = 200, body = NotificationsSchema), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "messenger_not_found")))]
pub async fn put_notifications(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<NotificationsSchema>> {
    admin_of(&app, &p, site, id).await?;
    let n = app.notices.put(site, id, &body, &Who::of(&p, ip)).await?;
    tracing::info!(site = site.0, messenger = %id, enabled = n.email.enabled, "notifications updated");
    Ok(Json(NotificationsSchema::new(
        &n,
        app.notices.smtp_configured(),
    )))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/notifications/test", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    request_body = TestEmail,
    responses((status = 200, body = TestEmailSent, description = "the mail server took the test notice"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "conflict: no mail server configured"),
              (status = 503, body = ErrorBody, description = "unavailable: the mail server failed or refused")))]
pub async fn test_notification(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
    ApiJson(body): ApiJson<TestEmail>,
) -> ApiResult<Json<TestEmailSent>> {
    admin_of(&app, &p, site, id).await?;
    app.notices.send_test(site, id, body.to.as_deref()).await?;
    Ok(Json(TestEmailSent { sent: true }))
}
