//! A messenger's appearance and availability: `GET`/`PUT …/messengers/{id}/appearance`. Agents
//! read it (the console may show the hours); the operator and the site's admins change it.

use axum::Json;
use axum::extract::State;
use confidant_core::appearance::Appearance;
use confidant_core::{MessengerId, SiteId};
use serde_json::Value;

use crate::api::{AppearanceSchema, ErrorBody};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::http::extract::{ApiJson, ApiPath, ClientIp};
use crate::service::accounts::Principal;
use crate::service::audit::Who;

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/appearance", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    responses((status = 200, body = AppearanceSchema, description = "the settings (defaults when never set)"),
              (status = 404, body = ErrorBody, description = "messenger_not_found")))]
pub async fn get_appearance(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
) -> ApiResult<Json<Appearance>> {
    p.require_site(site)?;
    app.messengers.get(site, id).await?;
    Ok(Json(app.appearance.get(site, id).await?))
}

#[utoipa::path(put, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/appearance", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    request_body = AppearanceSchema,
    responses((status = 200, body = AppearanceSchema, description = "the settings as stored"),
              (status = 400, body = ErrorBody, description = "a field that is wrong, named with the reason"),
              (status = 403, body = ErrorBody, description = "an agent without the admin role"),
              (status = 404, body = ErrorBody, description = "messenger_not_found")))]
pub async fn put_appearance(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Appearance>> {
    p.require_site(site)?;
    // An unknown messenger is 404 before a missing role is 403.
    app.messengers.get(site, id).await?;
    p.require_admin(site)?;
    let a = app
        .appearance
        .put(site, id, &body, &Who::of(&p, ip))
        .await?;
    Ok(Json(a))
}
