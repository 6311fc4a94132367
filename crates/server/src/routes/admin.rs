//! Administration (CONTRACT §5): sites, agents, login and logout, messengers and their Security.

use std::net::SocketAddr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confidant_core::security::{Parsed, SecurityInput};
use confidant_core::{Security, SiteId, Validation};
use confidant_identity::PublicKey;
use confidant_realtime::Control;
use confidant_store::{MessengerRow, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, AppState, now_millis};
use crate::auth::{
    Principal, SESSION_COOKIE, SESSION_TTL_MS, check_own_origin, random_token, token_hash,
};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, site_id, uuid_id};
use crate::limits::Action;
use crate::views;

/// Failed logins in a row before the lockout, and how long it lasts (CONTRACT §5).
const LOCKOUT_AFTER: i64 = 6;
const LOCKOUT_MS: i64 = 15 * 60 * 1000;

fn text_field(v: &Option<String>, field: &str, max: usize) -> ApiResult<String> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() && s.chars().count() <= max => Ok(s.to_owned()),
        _ => Err(ApiError::invalid(format!(
            "{field}: must be 1 to {max} characters"
        ))),
    }
}

// ---- sites ----

#[derive(Deserialize)]
pub struct CreateSite {
    name: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/sites", tag = "admin", responses((status = 201, description = "the site")))]
pub async fn create_site(
    State(app): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<CreateSite>,
) -> ApiResult<Response> {
    p.require_operator()?;
    let name = text_field(&body.name, "name", 200)?;
    let site = app.store.create_site(&name, now_millis()).await?;
    Ok((StatusCode::CREATED, Json(views::site(&site))).into_response())
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}", tag = "admin", responses((status = 200, description = "the site")))]
pub async fn get_site(
    State(app): State<AppState>,
    p: Principal,
    Path(site): Path<String>,
) -> ApiResult<Json<Value>> {
    let site = site_id(&site)?;
    p.require_site(site)?;
    let row = app
        .store
        .get_site(site)
        .await?
        .ok_or_else(|| ApiError::not_found("site"))?;
    Ok(Json(views::site(&row)))
}

async fn existing_site(app: &App, site: SiteId) -> ApiResult<()> {
    app.store
        .get_site(site)
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::not_found("site"))
}

// ---- agents ----

#[derive(Deserialize)]
pub struct CreateAgent {
    email: Option<String>,
    password: Option<String>,
    name: Option<String>,
    role: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/agents", tag = "admin", responses((status = 201, description = "the agent")))]
pub async fn create_agent(
    State(app): State<AppState>,
    p: Principal,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<CreateAgent>,
) -> ApiResult<Response> {
    let site = site_id(&site)?;
    p.require_admin(site)?;
    existing_site(&app, site).await?;
    let email = text_field(&body.email, "email", 254)?;
    if !email.contains('@')
        || email.starts_with('@')
        || email.ends_with('@')
        || email.contains(char::is_whitespace)
    {
        return Err(ApiError::invalid("email: must be an email address"));
    }
    let name = text_field(&body.name, "name", 200)?;
    let password = body.password.unwrap_or_default();
    if password.chars().count() < 8 || password.len() > 1024 {
        return Err(ApiError::invalid("password: must be 8 to 1024 characters"));
    }
    let role = match body.role.as_deref() {
        None => "agent",
        Some("agent") => "agent",
        Some("admin") => "admin",
        Some(_) => return Err(ApiError::invalid("role: must be admin or agent")),
    };
    let hash = hash_password(password).await?;
    let agent = app
        .store
        .create_agent(site, &email, &name, role, &hash, now_millis())
        .await?;
    Ok((StatusCode::CREATED, Json(views::agent(&agent))).into_response())
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/agents", tag = "admin", responses((status = 200, description = "the site's agents")))]
pub async fn list_agents(
    State(app): State<AppState>,
    p: Principal,
    Path(site): Path<String>,
) -> ApiResult<Json<Value>> {
    let site = site_id(&site)?;
    p.require_admin(site)?;
    existing_site(&app, site).await?;
    let agents = app.store.list_agents(site).await?;
    Ok(Json(
        json!({"agents": agents.iter().map(views::agent).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(delete, path = "/api/v1/sites/{siteId}/agents/{agentId}", tag = "admin", responses((status = 204, description = "deleted")))]
pub async fn delete_agent(
    State(app): State<AppState>,
    p: Principal,
    Path((site, agent)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let site = site_id(&site)?;
    p.require_admin(site)?;
    let agent = uuid_id(&agent).ok_or_else(|| ApiError::not_found("agent"))?;
    let ended = app
        .store
        .delete_agent(site, agent)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("agent"),
            other => other.into(),
        })?;
    for token_hash in ended {
        app.hub
            .publish_control(Control::SessionEnded { token_hash });
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn hash_password(password: String) -> ApiResult<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| "no randomness".to_owned())?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| ApiError::internal(&e))
}

/// Check a password against a stored hash; with no hash, spend the same time and fail, so the
/// answer's timing does not tell whether the agent exists.
async fn verify_password(password: String, hash: Option<String>) -> bool {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Yh2nbqEHdS8Mn5BsXdHnJ4t0Xl5YTcyWwHZbV8N4qGc";
    tokio::task::spawn_blocking(move || {
        let exists = hash.is_some();
        let h = hash.unwrap_or_else(|| DUMMY.to_owned());
        let ok = PasswordHash::new(&h)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        ok && exists
    })
    .await
    .unwrap_or(false)
}

// ---- login / logout ----

#[derive(Deserialize)]
pub struct Login {
    #[serde(rename = "siteId")]
    site_id: Option<Value>,
    email: Option<String>,
    password: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", responses((status = 200, description = "token and agent"), (status = 401, description = "wrong credentials"), (status = 429, description = "locked out")))]
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<Response> {
    // Like every agent call, login takes only the server's own origin (or none): a foreign page
    // must not sign an agent in (login CSRF) nor use the browser to guess passwords.
    check_own_origin(&app, &headers)?;
    app.limits.check(Action::Login, &peer.ip().to_string())?;
    let site = match &body.site_id {
        Some(Value::Number(n)) => n.as_i64().map(SiteId),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiError::invalid("siteId: must be a site id such as 10000"))?;
    let email = body
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty() && e.len() <= 254)
        .ok_or_else(|| ApiError::invalid("email: required"))?
        .to_owned();
    let password = body
        .password
        .filter(|p| !p.is_empty() && p.len() <= 1024)
        .ok_or_else(|| ApiError::invalid("password: required"))?;

    let account = format!("{}/{}", site.0, email.to_lowercase());
    app.limits
        .one_login_at_a_time(&account, attempt_login(&app, site, email, password))
        .await
}

async fn attempt_login(
    app: &App,
    site: SiteId,
    email: String,
    password: String,
) -> ApiResult<Response> {
    let now = now_millis();
    let state = app.store.login_failures(site, &email).await?;
    if state.locked_until > now {
        return Err(ApiError::rate_limited(
            ((state.locked_until - now) / 1000) as u64 + 1,
        ));
    }
    let found = app.store.find_agent_for_login(site, &email).await?;
    let (agent, hash) = match found {
        Some((a, h)) => (Some(a), Some(h)),
        None => (None, None),
    };
    if !verify_password(password, hash).await {
        app.store
            .record_login_failure(site, &email, now, LOCKOUT_AFTER, LOCKOUT_MS)
            .await?;
        return Err(ApiError::unauthorized("wrong site, email or password"));
    }
    let Some(agent) = agent else {
        return Err(ApiError::unauthorized("wrong site, email or password"));
    };
    app.store.reset_login_failures(site, &email).await?;
    let token = format!("cfs_{}", random_token());
    app.store
        .create_session(&token_hash(&token), &agent, now, now + SESSION_TTL_MS)
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL_MS / 1000,
        if app.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut res = Json(json!({"token": token, "agent": views::agent(&agent)})).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204, description = "the session ended")))]
pub async fn logout(State(app): State<AppState>, p: Principal) -> ApiResult<Response> {
    if let Principal::Agent { token_hash, .. } = &p {
        app.store.delete_session(token_hash).await?;
        app.hub.publish_control(Control::SessionEnded {
            token_hash: token_hash.clone(),
        });
    }
    let clear = format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if app.config.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&clear) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Who am I. For an agent signed in by cookie, `wsToken` is the session token, which the
/// console needs for the WebSocket's auth frame (the cookie itself is HttpOnly).
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, description = "the caller")))]
pub async fn me(p: Principal, headers: HeaderMap) -> ApiResult<Json<Value>> {
    match p {
        Principal::Operator => Ok(Json(json!({"operator": true}))),
        Principal::Agent { agent, .. } => {
            let token = crate::auth::agent_token(&headers);
            Ok(Json(
                json!({"agent": views::agent(&agent), "wsToken": token}),
            ))
        }
    }
}

// ---- messengers ----

pub fn messenger_json(m: &MessengerRow, security: &Security, shown_secret: Option<&str>) -> Value {
    json!({
        "messengerId": m.messenger_id,
        "siteId": m.site_id.0,
        "name": m.name,
        "security": security.public_json(shown_secret),
        "createdAt": confidant_core::time_fmt::rfc3339_millis(m.created_at),
    })
}

fn stored_security(m: &MessengerRow) -> ApiResult<Security> {
    serde_json::from_str(&m.security)
        .map_err(|e| ApiError::internal(&format!("stored security: {e}")))
}

/// Parse and check a Security object, including its key material.
fn parse_security(app: &App, value: &Value, previous: Option<&Security>) -> ApiResult<Parsed> {
    let ctx = SecurityInput {
        previous,
        allow_http_jwks: app.config.allow_http_jwks,
    };
    let parsed =
        Security::parse(value, &ctx, random_token).map_err(|e| ApiError::invalid(e.to_string()))?;
    if let Validation::PublicKey { public_key } = &parsed.security.validation {
        PublicKey::from_pem(public_key)
            .map_err(|e| ApiError::invalid(format!("validation.publicKey: {e}")))?;
    }
    Ok(parsed)
}

#[derive(Deserialize)]
pub struct CreateMessenger {
    name: Option<String>,
    security: Option<Value>,
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/messengers", tag = "messengers", responses((status = 201, description = "the messenger")))]
pub async fn create_messenger(
    State(app): State<AppState>,
    p: Principal,
    Path(site): Path<String>,
    ApiJson(body): ApiJson<CreateMessenger>,
) -> ApiResult<Response> {
    let site = site_id(&site)?;
    p.require_admin(site)?;
    existing_site(&app, site).await?;
    let name = text_field(&body.name, "name", 200)?;
    let parsed = parse_security(&app, body.security.as_ref().unwrap_or(&json!({})), None)?;
    let stored = serde_json::to_string(&parsed.security).map_err(|e| ApiError::internal(&e))?;
    let m = app
        .store
        .create_messenger(site, &name, &stored, now_millis())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(messenger_json(
            &m,
            &parsed.security,
            parsed.generated_secret.as_deref(),
        )),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/messengers", tag = "messengers", responses((status = 200, description = "the site's messengers")))]
pub async fn list_messengers(
    State(app): State<AppState>,
    p: Principal,
    Path(site): Path<String>,
) -> ApiResult<Json<Value>> {
    let site = site_id(&site)?;
    p.require_site(site)?;
    existing_site(&app, site).await?;
    let rows = app.store.list_messengers(site).await?;
    let list = rows
        .iter()
        .map(|m| Ok(messenger_json(m, &stored_security(m)?, None)))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(json!({"messengers": list})))
}

async fn site_messenger(
    app: &App,
    p: &Principal,
    site: &str,
    messenger: &str,
) -> ApiResult<(SiteId, MessengerRow)> {
    let site = site_id(site)?;
    p.require_site(site)?;
    let messenger = uuid_id(messenger).ok_or_else(ApiError::messenger_not_found)?;
    let m = app
        .store
        .get_messenger(site, messenger)
        .await?
        .ok_or_else(ApiError::messenger_not_found)?;
    Ok((site, m))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/messengers/{messengerId}", tag = "messengers", responses((status = 200, description = "the messenger")))]
pub async fn get_messenger(
    State(app): State<AppState>,
    p: Principal,
    Path((site, messenger)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (_, m) = site_messenger(&app, &p, &site, &messenger).await?;
    Ok(Json(messenger_json(&m, &stored_security(&m)?, None)))
}

#[utoipa::path(put, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/security", tag = "messengers", responses((status = 200, description = "the security settings")))]
pub async fn put_security(
    State(app): State<AppState>,
    p: Principal,
    Path((site, messenger)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let (site, m) = site_messenger(&app, &p, &site, &messenger).await?;
    p.require_admin(site)?;
    let previous = stored_security(&m)?;
    let parsed = parse_security(&app, &body, Some(&previous))?;
    let stored = serde_json::to_string(&parsed.security).map_err(|e| ApiError::internal(&e))?;
    app.store
        .update_security(site, m.messenger_id, &stored, now_millis())
        .await?;
    app.messenger_changed(&m.messenger_id.to_string());
    Ok(Json(
        parsed
            .security
            .public_json(parsed.generated_secret.as_deref()),
    ))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/messengers/{messengerId}/installation-code", tag = "messengers", responses((status = 200, description = "the HTML snippet")))]
pub async fn installation_code(
    State(app): State<AppState>,
    p: Principal,
    Path((site, messenger)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let (site, m) = site_messenger(&app, &p, &site, &messenger).await?;
    Ok(Json(
        json!({"html": installation_html(&app.config.public_url, site, &m.messenger_id.to_string())}),
    ))
}

pub fn installation_html(public_url: &str, site: SiteId, messenger_id: &str) -> String {
    format!(
        "<div id=\"confidant-messenger\" data-site-id=\"{site}\" data-messenger-id=\"{messenger_id}\"\n     \
         data-contact-jwt=\"\" data-access-token=\"\"></div>\n\
         <script async src=\"{public_url}/messenger/v1/loader.js\"></script>"
    )
}
