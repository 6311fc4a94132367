//! Messengers, their Security tab and installation code (CONTRACT §5, §8).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use confidant_core::{MessengerId, SiteId};
use serde_json::{Value, json};

use crate::api::{self, ErrorBody, InstallationCode, Messenger, MessengerList, SecuritySchema};
use crate::app::AppState;
use crate::error::ApiResult;
use crate::http::extract::{ApiJson, ApiPath, ClientIp, text_field};
use crate::service::accounts::Principal;
use crate::service::audit::Who;
use crate::service::messengers::public_security;

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/messengers", tag = "messengers",
    params(("siteId" = i64, Path)), request_body = api::CreateMessenger,
    responses((status = 201, body = Messenger, description = "the messenger; a generated shared token is shown this once"),
              (status = 400, body = ErrorBody)))]
pub async fn create_messenger(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath(site): ApiPath<SiteId>,
    ApiJson(body): ApiJson<api::CreateMessenger>,
) -> ApiResult<(StatusCode, Json<Messenger>)> {
    p.require_admin(site)?;
    app.accounts.site(site).await?;
    let name = text_field(body.name, "name", 200)?;
    let security = body.security.unwrap_or_else(|| json!({}));
    let (row, parsed) = app
        .messengers
        .create(site, &name, &security, &Who::of(&p, ip))
        .await?;
    let shown = public_security(&row, &parsed.security, parsed.generated_secret.as_deref())?;
    Ok((StatusCode::CREATED, Json(Messenger::new(&row, shown))))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/messengers", tag = "messengers",
    params(("siteId" = i64, Path)), responses((status = 200, body = MessengerList)))]
pub async fn list_messengers(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
) -> ApiResult<Json<MessengerList>> {
    p.require_site(site)?;
    app.accounts.site(site).await?;
    let messengers = app.messengers.list(site).await?;
    Ok(Json(MessengerList {
        messengers: messengers
            .iter()
            .map(|(row, security)| Ok(Messenger::new(row, public_security(row, security, None)?)))
            .collect::<ApiResult<_>>()?,
    }))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/messengers/{messengerId}", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    responses((status = 200, body = Messenger), (status = 404, body = ErrorBody, description = "messenger_not_found")))]
pub async fn get_messenger(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
) -> ApiResult<Json<Messenger>> {
    p.require_site(site)?;
    let (row, security) = app.messengers.get(site, id).await?;
    Ok(Json(Messenger::new(
        &row,
        public_security(&row, &security, None)?,
    )))
}

#[utoipa::path(patch, path = "/api/v1/sites/{siteId}/messengers/{messengerId}", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    request_body = api::PatchMessenger,
    responses((status = 200, body = Messenger, description = "the renamed messenger"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody, description = "not an admin"),
              (status = 404, body = ErrorBody, description = "messenger_not_found (deleted ones too)")))]
pub async fn patch_messenger(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
    ApiJson(body): ApiJson<api::PatchMessenger>,
) -> ApiResult<Json<Messenger>> {
    p.require_site(site)?;
    // An unknown messenger is 404 before a missing role is 403.
    let (row, security) = app.messengers.get(site, id).await?;
    p.require_admin(site)?;
    let Some(name) = body.name else {
        return Ok(Json(Messenger::new(&row, security.public_json(None))));
    };
    let name = text_field(Some(name), "name", 200)?;
    if name == row.name {
        return Ok(Json(Messenger::new(&row, security.public_json(None))));
    }
    let renamed = app.messengers.rename(&row, &name, &Who::of(&p, ip)).await?;
    Ok(Json(Messenger::new(&renamed, security.public_json(None))))
}

#[utoipa::path(delete, path = "/api/v1/sites/{siteId}/messengers/{messengerId}", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    responses((status = 204, description = "deleted: it no longer authorizes, its tokens and sockets stop; its conversations stay for agents"),
              (status = 403, body = ErrorBody, description = "not an admin"),
              (status = 404, body = ErrorBody, description = "messenger_not_found (a second delete too)")))]
pub async fn delete_messenger(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
) -> ApiResult<StatusCode> {
    p.require_site(site)?;
    app.messengers.get(site, id).await?;
    p.require_admin(site)?;
    app.messengers.delete(site, id, &Who::of(&p, ip)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/security", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    request_body(content = SecuritySchema, description = "the whole Security object; a body whose \
        validation differs from the current one may add `\"rolloverSeconds\": N` (0 to 604800, \
        default 0): for N seconds the previous validation keeps verifying the tokens the new one \
        refuses for their algorithm, key or signature"),
    responses((status = 200, body = SecuritySchema), (status = 400, body = ErrorBody)))]
pub async fn put_security(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    p.require_site(site)?;
    // An unknown messenger is 404 before a missing role is 403.
    let (row, previous) = app.messengers.get(site, id).await?;
    p.require_admin(site)?;
    let (row, parsed) = app
        .messengers
        .put_security(&row, &previous, &body, &Who::of(&p, ip))
        .await?;
    Ok(Json(public_security(
        &row,
        &parsed.security,
        parsed.generated_secret.as_deref(),
    )?))
}

/// Ends a running rollover early (CONTRACT §5 leaves how to the project): the previous
/// validation stops verifying at once, on every process within 2 seconds.
#[utoipa::path(delete, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/security/previous-validation", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    responses((status = 200, body = SecuritySchema, description = "the Security object, with `previousValidation` null; also when no rollover was running"),
              (status = 403, body = ErrorBody, description = "an agent (ending a rollover needs the admin role)"),
              (status = 404, body = ErrorBody, description = "messenger_not_found")))]
pub async fn end_rollover(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
) -> ApiResult<Json<Value>> {
    p.require_site(site)?;
    let (row, security) = app.messengers.get(site, id).await?;
    p.require_admin(site)?;
    let row = app.messengers.end_rollover(&row, &Who::of(&p, ip)).await?;
    Ok(Json(public_security(&row, &security, None)?))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/installation-code", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    responses((status = 200, body = InstallationCode)))]
pub async fn installation_code(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
) -> ApiResult<Json<InstallationCode>> {
    p.require_site(site)?;
    let (row, _) = app.messengers.get(site, id).await?;
    let public_url = &app.config.public_url;
    let messenger_id = row.messenger_id;
    Ok(Json(InstallationCode {
        html: format!(
            "<div id=\"confidant-messenger\" data-site-id=\"{site}\" data-messenger-id=\"{messenger_id}\"\n     \
             data-contact-jwt=\"\" data-access-token=\"\"></div>\n\
             <script async src=\"{public_url}/messenger/v1/loader.js\"></script>"
        ),
    }))
}
