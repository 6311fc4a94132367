//! Agent accounts (CONTRACT §12): an admin's changes to an agent, an agent's own TOTP set-up
//! and its sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use confidant_core::time_fmt::{now_millis, rfc3339_millis};
use confidant_core::{AgentId, SiteId};
use serde_json::Value;

use crate::api::{self, AgentAccount, ErrorBody, SessionList, SessionView, TotpSetup};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiPath, ClientIp};
use crate::service::accounts::{AgentChange, Principal};
use crate::service::audit::Who;

/// Passwords are 12 to 1,024 characters (CONTRACT §12).
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// Whether `p` is an acceptable password.
pub fn password_ok(p: &str) -> bool {
    (PASSWORD_MIN_CHARS..=PASSWORD_MAX_CHARS).contains(&p.chars().count())
}

pub const PASSWORD_RULE: &str = "password: must be 12 to 1024 characters";

#[utoipa::path(patch, path = "/api/v1/sites/{siteId}/agents/{agentId}", tag = "admin",
    params(("siteId" = i64, Path), ("agentId" = String, Path, format = Uuid)),
    request_body = api::PatchAgent,
    responses((status = 200, body = AgentAccount),
              (status = 400, body = ErrorBody, description = "names every bad field"),
              (status = 403, body = ErrorBody, description = "not an admin of the site"),
              (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "would disable or demote the site's last enabled admin")))]
pub async fn patch_agent(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath((site, agent)): ApiPath<(SiteId, AgentId)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<AgentAccount>> {
    p.require_admin(site)?;
    let change = agent_change(&body)?;
    let account = app
        .accounts
        .update_agent(site, agent, change, &Who::of(&p, ip))
        .await?;
    Ok(Json(AgentAccount::new(&account, now_millis())))
}

/// The PATCH body, every field checked: all the bad ones are named in one answer.
fn agent_change(body: &Value) -> ApiResult<AgentChange> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid("the body must be a JSON object"));
    };
    let mut bad = Vec::new();
    let mut change = AgentChange::default();
    let flag = |key: &str, bad: &mut Vec<String>| match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            bad.push(format!("{key}: must be true or false"));
            None
        }
    };
    match obj.get("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(n)) if !n.trim().is_empty() && n.trim().chars().count() <= 200 => {
            change.name = Some(n.trim().to_owned());
        }
        Some(_) => bad.push("name: must be 1 to 200 characters".to_owned()),
    }
    match obj.get("role") {
        None | Some(Value::Null) => {}
        Some(Value::String(r)) if r == "admin" => change.role = Some("admin"),
        Some(Value::String(r)) if r == "agent" => change.role = Some("agent"),
        Some(_) => bad.push("role: must be admin or agent".to_owned()),
    }
    change.disabled = flag("disabled", &mut bad);
    match obj.get("password") {
        None | Some(Value::Null) => {}
        Some(Value::String(pw)) if password_ok(pw) => change.password = Some(pw.clone()),
        Some(_) => bad.push(PASSWORD_RULE.to_owned()),
    }
    change.reset_totp = flag("resetTotp", &mut bad).unwrap_or(false);
    change.unlock = flag("unlock", &mut bad).unwrap_or(false);
    if bad.is_empty() {
        Ok(change)
    } else {
        Err(ApiError::invalid(bad.join("; ")))
    }
}

#[utoipa::path(post, path = "/api/v1/auth/totp/setup", tag = "auth",
    responses((status = 200, body = TotpSetup, description = "a new pending secret: confirm it with a code"),
              (status = 403, body = ErrorBody, description = "the operator token"),
              (status = 409, body = ErrorBody, description = "TOTP is on already")))]
pub async fn totp_setup(State(app): State<AppState>, p: Principal) -> ApiResult<Json<TotpSetup>> {
    let (secret, otpauth_url) = app.accounts.totp_setup(&p).await?;
    Ok(Json(TotpSetup {
        secret,
        otpauth_url,
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/totp/confirm", tag = "auth", request_body = api::TotpConfirm,
    responses((status = 204, description = "TOTP is on: logins need a code"),
              (status = 400, body = ErrorBody, description = "a wrong code, or no set-up under way")))]
pub async fn totp_confirm(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<api::TotpConfirm>,
) -> ApiResult<StatusCode> {
    let code = body
        .code
        .ok_or_else(|| ApiError::invalid("code: required, the 6 digits the app shows"))?;
    app.accounts
        .totp_confirm(&p, code.trim(), &Who::of(&p, ip))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth",
    responses((status = 200, body = SessionList, description = "the caller's own sessions, newest first"),
              (status = 403, body = ErrorBody, description = "the operator token")))]
pub async fn list_sessions(
    State(app): State<AppState>,
    p: Principal,
) -> ApiResult<Json<SessionList>> {
    let current = match &p {
        Principal::Agent { token_hash, .. } => token_hash.clone(),
        Principal::Operator => String::new(),
    };
    let sessions = app.accounts.sessions(&p).await?;
    Ok(Json(SessionList {
        sessions: sessions
            .into_iter()
            .map(|s| SessionView {
                current: s.token_hash == current,
                session_id: s.session_id,
                created_at: rfc3339_millis(s.created_at),
                last_seen_at: rfc3339_millis(s.last_seen_at),
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/auth/sessions/{sessionId}", tag = "auth",
    params(("sessionId" = String, Path)),
    responses((status = 204, description = "the session ended; its sockets close with 4401"),
              (status = 404, body = ErrorBody, description = "not one of the caller's sessions")))]
pub async fn end_session(
    State(app): State<AppState>,
    p: Principal,
    ClientIp(ip): ClientIp,
    ApiPath(session_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    if session_id.is_empty() || session_id.len() > 64 {
        return Err(ApiError::not_found("session"));
    }
    app.accounts
        .end_own_session(&p, &session_id, &Who::of(&p, ip))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
