//! Authorize (CONTRACT §6): a Contact JWT in, Confidant's access token out.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use confidant_core::{ContactAttributes, SiteId};
use serde_json::{Value, json};

use crate::app::{App, AppState, CachedMessenger, now_millis, now_secs};
use crate::auth::check_contact_origin;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::limits::Action;
use crate::views;

fn outcome(code: &'static str) {
    metrics::counter!("confidant_authorize_total", "outcome" => code).increment(1);
}

#[utoipa::path(post, path = "/securemessage/authorize", tag = "authorize",
    responses((status = 200, description = "access token and contact"), (status = 401, description = "the Contact JWT failed a check"),
              (status = 404, description = "messenger_not_found"), (status = 503, description = "jwks_unavailable")))]
pub async fn authorize(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let result = run(&app, peer, &headers, &body).await;
    match &result {
        Ok(_) => outcome("ok"),
        Err(e) => outcome(e.code),
    }
    result.map(Json)
}

async fn run(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &Value,
) -> ApiResult<Value> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("the body must be a JSON object"))?;
    let site = match obj.get("siteId") {
        Some(Value::Number(n)) => n.as_i64().map(SiteId),
        Some(Value::String(s)) => s.parse().ok(),
        None | Some(Value::Null) => return Err(ApiError::invalid("siteId: required")),
        Some(_) => None,
    };
    let messenger_id = match obj.get("messengerId") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => return Err(ApiError::invalid("messengerId: required")),
        Some(_) => return Err(ApiError::messenger_not_found()),
    };
    let token = match obj.get("contactJwt").or_else(|| obj.get("Contact JWT")) {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => return Err(ApiError::invalid("contactJwt: required")),
        Some(_) => return Err(ApiError::invalid("contactJwt: must be a string")),
    };
    let preview = match obj.get("isPreview") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("isPreview: must be true or false")),
    };
    let site = site.ok_or_else(ApiError::messenger_not_found)?;
    let messenger = app
        .messenger(site, messenger_id)
        .await?
        .ok_or_else(ApiError::messenger_not_found)?;
    check_contact_origin(app, headers, &messenger)?;
    app.limits
        .check(Action::Authorize, &peer.ip().to_string())?;
    exchange(app, &messenger, token, preview).await
}

/// Verify a Contact JWT for a messenger, find or create its contact, and sign an access token.
pub async fn exchange(
    app: &App,
    messenger: &CachedMessenger,
    token: &str,
    preview: bool,
) -> ApiResult<Value> {
    let site = messenger.row.site_id;
    let verified = app
        .verifier
        .verify(token, &messenger.method, &messenger.policy)
        .await
        .map_err(|e| {
            let status = if e.is_unavailable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            };
            ApiError::new(status, e.code(), e.to_string())
        })?;

    let update = ContactAttributes::from_claims(&verified.claims);
    let now = now_millis();
    let known = app.contact(site, &verified.identity).await?;
    let contact = match known {
        // A returning contact whose attributes did not change costs no write (and, cached,
        // no read).
        Some(c) if c.attributes.merged(&update).is_none() => c,
        known => {
            let changed = known.is_some();
            let c = app
                .store
                .upsert_contact(site, &verified.identity, &update, known, now)
                .await?;
            app.contact_stored(&c, changed);
            c
        }
    };
    let (access_token, claims) = app.access.sign(
        &contact.contact_id.to_string(),
        site.0,
        &messenger.row.messenger_id.to_string(),
        preview,
        now_secs(),
    );
    Ok(json!({
        "accessToken": access_token,
        "tokenType": "Bearer",
        "expiresIn": claims.exp - claims.iat,
        "contact": views::contact(&contact),
    }))
}
