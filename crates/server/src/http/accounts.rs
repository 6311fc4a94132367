//! Sites, agents, login and logout (CONTRACT §5).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confidant_core::{AgentId, SiteId};

use confidant_core::time_fmt::now_millis;

use crate::api::{
    self, Agent, AgentAccount, AgentAccountList, ErrorBody, LoginAnswer, Me, Site, WsTicket,
};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::agent_accounts::{PASSWORD_RULE, password_ok};
use crate::http::auth::{check_own_origin, session_cookie};
use crate::http::extract::{ApiJson, ApiPath, ClientIp, text_field};
use crate::service::accounts::{LoginAttempt, NewAgent, Principal, WS_TICKET_TTL_SECONDS};
use crate::service::audit::Who;

#[utoipa::path(post, path = "/api/v1/sites", tag = "admin", request_body = api::CreateSite,
    responses((status = 201, body = Site), (status = 403, body = ErrorBody, description = "not the operator")))]
pub async fn create_site(
    State(app): State<AppState>,
    p: Principal,
    ApiJson(body): ApiJson<api::CreateSite>,
) -> ApiResult<(StatusCode, Json<Site>)> {
    p.require_operator()?;
    let name = text_field(body.name, "name", 200)?;
    let site = app.accounts.create_site(&name).await?;
    Ok((StatusCode::CREATED, Json(Site::from(&site))))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}", tag = "admin",
    params(("siteId" = i64, Path)),
    responses((status = 200, body = Site), (status = 404, body = ErrorBody)))]
pub async fn get_site(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
) -> ApiResult<Json<Site>> {
    p.require_site(site)?;
    Ok(Json(Site::from(&app.accounts.site(site).await?)))
}

#[utoipa::path(post, path = "/api/v1/sites/{siteId}/agents", tag = "admin",
    params(("siteId" = i64, Path)), request_body = api::CreateAgent,
    responses((status = 201, body = Agent), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "the email is taken")))]
pub async fn create_agent(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath(site): ApiPath<SiteId>,
    ApiJson(body): ApiJson<api::CreateAgent>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    p.require_admin(site)?;
    let email = text_field(body.email, "email", 254)?;
    if !email.contains('@')
        || email.starts_with('@')
        || email.ends_with('@')
        || email.contains(char::is_whitespace)
    {
        return Err(ApiError::invalid("email: must be an email address"));
    }
    let name = text_field(body.name, "name", 200)?;
    let password = body.password.unwrap_or_default();
    if !password_ok(&password) {
        return Err(ApiError::invalid(PASSWORD_RULE));
    }
    let role = match body.role.as_deref() {
        None | Some("agent") => "agent",
        Some("admin") => "admin",
        Some(_) => return Err(ApiError::invalid("role: must be admin or agent")),
    };
    let agent = app
        .accounts
        .create_agent(
            site,
            NewAgent {
                email,
                name,
                password,
                role,
            },
            &Who::of(&p, ip),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(Agent::from(&agent))))
}

#[utoipa::path(get, path = "/api/v1/sites/{siteId}/agents", tag = "admin",
    params(("siteId" = i64, Path)), responses((status = 200, body = AgentAccountList),
        (status = 403, body = ErrorBody, description = "not an admin of the site")))]
pub async fn list_agents(
    State(app): State<AppState>,
    p: Principal,
    ApiPath(site): ApiPath<SiteId>,
) -> ApiResult<Json<AgentAccountList>> {
    p.require_admin(site)?;
    let now = now_millis();
    let agents = app.accounts.accounts(site).await?;
    Ok(Json(AgentAccountList {
        agents: agents.iter().map(|a| AgentAccount::new(a, now)).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/sites/{siteId}/agents/{agentId}", tag = "admin",
    params(("siteId" = i64, Path), ("agentId" = String, Path, format = Uuid)),
    responses((status = 204, description = "deleted; the agent's sessions ended"), (status = 404, body = ErrorBody)))]
pub async fn delete_agent(
    State(app): State<AppState>,
    p: Principal,
    ApiPath((site, agent)): ApiPath<(SiteId, AgentId)>,
) -> ApiResult<StatusCode> {
    p.require_admin(site)?;
    app.accounts.delete_agent(site, agent).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = api::Login,
    responses((status = 200, body = LoginAnswer, description = "the session token, also set as a cookie"),
              (status = 401, body = ErrorBody, description = "wrong credentials (`unauthorized`), or the right password without the TOTP code the agent needs (`totp_required`)"),
              (status = 429, body = ErrorBody, description = "locked out")))]
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::Login>,
) -> ApiResult<Response> {
    // Like every agent call, login takes only the server's own origin (or none): a foreign page
    // must not sign an agent in (login CSRF) nor use the browser to guess passwords.
    check_own_origin(&app, &headers)?;
    app.limits.login(peer.ip(), &headers)?;
    let site = body
        .site_id
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
    let totp = body.totp.filter(|c| !c.trim().is_empty());
    if totp.as_ref().is_some_and(|c| c.len() > 16) {
        return Err(ApiError::invalid("totp: must be the 6-digit code"));
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let attempt = LoginAttempt {
        site,
        email,
        password,
        totp,
        ip,
        user_agent,
    };
    let done = app
        .limits
        .one_login_at_a_time(&account, app.accounts.login(attempt))
        .await?;
    let cookie = session_cookie(Some(&done.token), app.config.secure_cookies);
    let mut res = Json(LoginAnswer {
        token: done.token,
        agent: Agent::from(&done.agent),
        totp_setup_required: done.totp_setup_required,
    })
    .into_response();
    if let Some(v) = cookie {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "the session ended; its sockets close with 4401")))]
pub async fn logout(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
) -> ApiResult<Response> {
    app.accounts.logout(&p, &Who::of(&p, ip)).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = session_cookie(None, app.config.secure_cookies) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Who am I. (It never shows the session token: a page signed in by the HttpOnly cookie asks
/// `POST /api/v1/auth/ws-ticket` for each socket it opens.)
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = Me)))]
pub async fn me(p: Principal) -> Json<Me> {
    Json(match p {
        Principal::Operator => Me::Operator { operator: true },
        Principal::Agent {
            agent,
            totp_enabled,
            setup_only,
            ..
        } => Me::Agent {
            agent: Agent::from(&agent),
            totp_enabled,
            totp_setup_required: setup_only,
        },
    })
}

/// A single-use ticket for the agent socket's auth frame, valid for `expiresIn` seconds, bound
/// to the caller's session (its logout kills it). By the session cookie or bearer token.
#[utoipa::path(post, path = "/api/v1/auth/ws-ticket", tag = "auth",
    responses((status = 200, body = WsTicket),
              (status = 401, body = ErrorBody, description = "no live session"),
              (status = 403, body = ErrorBody, description = "the operator token (it opens no agent socket)")))]
pub async fn ws_ticket(State(app): State<AppState>, p: Principal) -> ApiResult<Json<WsTicket>> {
    let ticket = app.accounts.ws_ticket(&p).await?;
    Ok(Json(WsTicket {
        ticket,
        expires_in: WS_TICKET_TTL_SECONDS,
    }))
}
