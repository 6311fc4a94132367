//! Webhooks of a site (CONTRACT §10): create, list, delete, the delivery log and the test
//! event. Every call is for the operator or the site's admins (a webhook URL may carry a
//! receiver's token); an agent of the site gets `403`, anyone of another site `404`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use confidant_core::SiteId;

use crate::api::{
    self, CreatedWebhook, ErrorBody, Webhook, WebhookDelivery, WebhookDeliveryList, WebhookList,
    WebhookTestResult,
};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::http::extract::{ApiJson, ApiPath, ClientIp};
use crate::service::accounts::Principal;
use crate::service::audit::Who;
use crate::service::webhooks::NewWebhook;

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/webhooks", tag = "webhooks",
    params(("siteId" = i64, Path)), request_body = api::CreateWebhook,
    responses((status = 201, body = CreatedWebhook, description = "the webhook, with its secret shown this once"),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "the site has 20 webhooks")))]
pub async fn create_webhook(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath(site): ApiPath<SiteId>,
    ApiJson(body): ApiJson<api::CreateWebhook>,
) -> ApiResult<(StatusCode, Json<CreatedWebhook>)> {
    p.require_admin(site)?;
    app.accounts.site(site).await?;
    let row = app
        .webhooks
        .create(
            site,
            NewWebhook {
                url: body.url,
                events: body.events,
                include_body: body.include_body,
            },
            &Who::of(&p, ip),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: Webhook::from(&row),
            secret: row.secret.clone(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/webhooks", tag = "webhooks",
    params(("siteId" = i64, Path)), responses((status = 200, body = WebhookList)))]
pub async fn list_webhooks(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
) -> ApiResult<Json<WebhookList>> {
    p.require_admin(site)?;
    app.accounts.site(site).await?;
    let rows = app.webhooks.list(site).await?;
    Ok(Json(WebhookList {
        webhooks: rows.iter().map(Webhook::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/sites/{siteId}/webhooks/{webhookId}", tag = "webhooks",
    params(("siteId" = i64, Path), ("webhookId" = String, Path, format = Uuid)),
    responses((status = 204, description = "deleted; its queued deliveries are dropped"),
              (status = 404, body = ErrorBody)))]
pub async fn delete_webhook(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, uuid::Uuid)>,
) -> ApiResult<StatusCode> {
    p.require_admin(site)?;
    app.webhooks.delete(site, id, &Who::of(&p, ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/webhooks/{webhookId}/deliveries", tag = "webhooks",
    params(("siteId" = i64, Path), ("webhookId" = String, Path, format = Uuid)),
    responses((status = 200, body = WebhookDeliveryList), (status = 404, body = ErrorBody)))]
pub async fn webhook_deliveries(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, uuid::Uuid)>,
) -> ApiResult<Json<WebhookDeliveryList>> {
    p.require_admin(site)?;
    let rows = app.webhooks.deliveries(site, id).await?;
    Ok(Json(WebhookDeliveryList {
        deliveries: rows.iter().map(WebhookDelivery::from).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/webhooks/{webhookId}/test", tag = "webhooks",
    params(("siteId" = i64, Path), ("webhookId" = String, Path, format = Uuid)),
    responses((status = 200, body = WebhookTestResult, description = "the attempt, delivered or not"),
              (status = 404, body = ErrorBody)))]
pub async fn test_webhook(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, uuid::Uuid)>,
) -> ApiResult<Json<WebhookTestResult>> {
    p.require_admin(site)?;
    let a = app.webhooks.send_test(site, id).await?;
    Ok(Json(WebhookTestResult {
        delivered: a.delivered,
        status: a.status,
        error: a.error,
        latency_ms: a.latency_ms,
        event_id: a.event_id,
    }))
}
