//! Authorize (CONTRACT §6): a Contact JWT in, Confidant's access token out.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;

use crate::api::{self, AuthorizeAnswer, Contact, ErrorBody};
use crate::app::{App, AppState};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::check_contact_origin;
use crate::http::extract::ApiJson;

#[utoipa::path(post, path = "/securemessage/authorize", tag = "authorize", request_body = api::Authorize,
    responses((status = 200, body = AuthorizeAnswer),
              (status = 400, body = ErrorBody, description = "a field is missing or of the wrong type"),
              (status = 401, body = ErrorBody, description = "the Contact JWT failed a check (token_malformed, signature_invalid, …)"),
              (status = 403, body = ErrorBody, description = "origin_not_allowed"),
              (status = 404, body = ErrorBody, description = "messenger_not_found"),
              (status = 503, body = ErrorBody, description = "jwks_unavailable")))]
pub async fn authorize(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::Authorize>,
) -> ApiResult<Json<AuthorizeAnswer>> {
    let result = run(&app, peer, &headers, body).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.code,
    };
    metrics::counter!("confidant_authorize_total", "outcome" => outcome).increment(1);
    result.map(Json)
}

/// The same call under the API prefix.
#[utoipa::path(post, path = "/api/v1/securemessage/authorize", tag = "authorize", request_body = api::Authorize,
    responses((status = 200, body = AuthorizeAnswer), (status = 401, body = ErrorBody)))]
pub async fn authorize_v1(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: ApiJson<api::Authorize>,
) -> ApiResult<Json<AuthorizeAnswer>> {
    authorize(state, peer, headers, body).await
}

async fn run(
    app: &App,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: api::Authorize,
) -> ApiResult<AuthorizeAnswer> {
    let site = body
        .site_id
        .ok_or_else(|| ApiError::invalid("siteId: required"))?;
    let messenger_id = body
        .messenger_id
        .ok_or_else(|| ApiError::invalid("messengerId: required"))?;
    let token = body
        .contact_jwt
        .ok_or_else(|| ApiError::invalid("contactJwt: required"))?;
    let messenger = app
        .messengers
        .compiled_by_text(site, &messenger_id)
        .await?
        .ok_or_else(ApiError::messenger_not_found)?;
    check_contact_origin(app, headers, &messenger)?;
    app.limits.authorize(peer.ip(), headers)?;
    let out = app
        .authorizer
        .exchange(&messenger, &token, body.is_preview.unwrap_or(false))
        .await?;
    Ok(AuthorizeAnswer {
        access_token: out.access_token,
        token_type: "Bearer",
        expires_in: out.expires_in,
        contact: Contact::from(&out.contact),
    })
}
