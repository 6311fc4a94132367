//! The token check (CONTRACT §15): an admin pastes a Contact JWT and sees each of authorize's
//! checks, the decoded token and a hint. Nothing is stored.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use confidant_core::{MessengerId, SiteId};

use crate::api::{self, ErrorBody, TokenCheck, TokenCheckRow};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath};
use crate::service::accounts::Principal;
use crate::service::token_check::{self, Deps};

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/check-token", tag = "messengers",
    params(("siteId" = i64, Path), ("messengerId" = String, Path, format = Uuid)),
    request_body = api::CheckToken,
    responses((status = 200, body = TokenCheck, description = "the checks of §6 on the messenger's current settings; a refused token is still 200, with ok false"),
              (status = 400, body = ErrorBody, description = "contactJwt is missing or not a string"),
              (status = 403, body = ErrorBody, description = "an agent (the check needs the admin role)"),
              (status = 404, body = ErrorBody, description = "messenger_not_found"),
              (status = 429, body = ErrorBody, description = "rate_limited, as authorize")))]
pub async fn check_token(
    State(app): State<AppState>,
    p: Principal,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiPath((site, id)): ApiPath<(SiteId, MessengerId)>,
    ApiJson(body): ApiJson<api::CheckToken>,
) -> ApiResult<Json<TokenCheck>> {
    p.require_site(site)?;
    // An unknown messenger is 404 before a missing role is 403, as on the Security tab.
    let messenger = app
        .messengers
        .compiled(site, id)
        .await?
        .ok_or_else(ApiError::messenger_not_found)?;
    p.require_admin(site)?;
    let token = body
        .contact_jwt
        .ok_or_else(|| ApiError::invalid("contactJwt: required"))?;
    app.limits.authorize(peer.ip(), &headers)?;
    let deps = Deps {
        verifier: app.authorizer.verifier(),
        messengers: &app.messengers,
        allow_private_urls: app.config.allow_private_urls,
    };
    let report = token_check::check(&deps, &messenger, &token).await?;
    Ok(Json(TokenCheck {
        ok: report.ok,
        code: report.code,
        checks: report
            .checks
            .into_iter()
            .map(|row| TokenCheckRow {
                check: row.check,
                ok: row.ok,
                detail: row.detail,
            })
            .collect(),
        header: report.header,
        claims: report.claims,
        hint: report.hint,
    }))
}
