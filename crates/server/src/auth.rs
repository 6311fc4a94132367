//! Who is calling: the operator, an agent (session token or cookie), or a contact (access token);
//! and from which browser origin.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confidant_core::{ContactId, SiteId};
use confidant_identity::AccessClaims;
use confidant_store::AgentRow;

use crate::app::{App, AppState, CachedMessenger, now_millis};
use crate::error::{ApiError, ApiResult};

pub const SESSION_COOKIE: &str = "confidant_session";
/// Agent sessions last 12 hours.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).unwrap_or_else(|_| unreachable_rng());
    URL_SAFE_NO_PAD.encode(b)
}

#[cold]
fn unreachable_rng() {
    // aws-lc-rs's RNG fails only if the OS has no entropy source; nothing safe can go on.
    std::process::abort();
}

/// Sessions are stored by the SHA-256 of their token, so a database leak yields no live token.
pub fn token_hash(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// An agent's token: the bearer token, else the session cookie.
pub fn agent_token(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| session_cookie(headers))
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == SESSION_COOKIE && !v.is_empty()).then_some(v)
        })
}

/// The `Origin` header, if the request has one.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// Agent and admin calls accept only the server's own origin, or none.
pub fn check_own_origin(app: &App, headers: &HeaderMap) -> ApiResult<()> {
    match origin(headers) {
        Some(o) if o != app.config.public_url => Err(ApiError::origin_not_allowed()),
        _ => Ok(()),
    }
}

/// Contact calls accept the server's own origin, an allowed origin of the messenger, or none.
pub fn check_contact_origin(
    app: &App,
    headers: &HeaderMap,
    messenger: &CachedMessenger,
) -> ApiResult<()> {
    match origin(headers) {
        None => Ok(()),
        Some(o) if o == app.config.public_url || messenger.allows_origin(o) => Ok(()),
        Some(_) => Err(ApiError::origin_not_allowed()),
    }
}

/// An authenticated operator or agent.
#[derive(Debug, Clone)]
pub enum Principal {
    Operator,
    Agent {
        agent: AgentRow,
        token_hash: String,
        /// When the session ends (Unix ms).
        expires_at: i64,
    },
}

impl Principal {
    /// May read and work the site (agents of the site, its admins, the operator).
    /// Another site's data answers 404, as if it did not exist.
    pub fn require_site(&self, site_id: SiteId) -> ApiResult<()> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Agent { agent, .. } if agent.site_id == site_id => Ok(()),
            Principal::Agent { .. } => Err(ApiError::not_found("site")),
        }
    }

    /// May manage the site: its admins and the operator.
    pub fn require_admin(&self, site_id: SiteId) -> ApiResult<()> {
        self.require_site(site_id)?;
        match self {
            Principal::Agent { agent, .. } if agent.role != "admin" => {
                Err(ApiError::forbidden("this needs the admin role"))
            }
            _ => Ok(()),
        }
    }

    pub fn require_operator(&self) -> ApiResult<()> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Agent { .. } => Err(ApiError::forbidden("this needs the operator token")),
        }
    }
}

/// Authenticate a bearer token (or session cookie) as the operator or an agent session.
pub async fn authenticate(app: &App, token: &str) -> ApiResult<Principal> {
    if constant_time_eq(token, &app.operator_token.0) {
        return Ok(Principal::Operator);
    }
    if token.len() > 256 {
        return Err(ApiError::unauthorized("invalid token"));
    }
    let hash = token_hash(token);
    match app.store.get_session(&hash, now_millis()).await? {
        Some(s) => Ok(Principal::Agent {
            agent: s.agent,
            token_hash: hash,
            expires_at: s.expires_at,
        }),
        None => Err(ApiError::unauthorized(
            "the session is invalid or has ended",
        )),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check_own_origin(state, &parts.headers)?;
        let token = agent_token(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token or session"))?;
        authenticate(state, token).await
    }
}

/// A contact, authenticated by Confidant's access token, whose request origin is allowed.
pub struct Contact {
    pub claims: AccessClaims,
    /// The token's contact (`sub`), parsed.
    pub contact_id: ContactId,
    pub site_id: SiteId,
    pub messenger: Arc<CachedMessenger>,
}

pub async fn authenticate_contact(
    app: &App,
    token: &str,
) -> ApiResult<(AccessClaims, Arc<CachedMessenger>)> {
    let claims = app
        .verify_access_token(token)
        .ok_or_else(|| ApiError::unauthorized("the access token is invalid or expired"))?;
    let messenger = app
        .messenger(SiteId(claims.site_id), &claims.messenger_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the access token's messenger no longer exists"))?;
    Ok((claims, messenger))
}

impl FromRequestParts<AppState> for Contact {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing bearer access token"))?;
        let (claims, messenger) = authenticate_contact(state, token).await?;
        check_contact_origin(state, &parts.headers, &messenger)?;
        // A request may name the messenger it means; a token of another messenger is refused.
        if let Some(named) = parts
            .headers
            .get("x-confidant-messenger")
            .and_then(|v| v.to_str().ok())
            && named != claims.messenger_id
        {
            return Err(ApiError::unauthorized(
                "the access token is for another messenger",
            ));
        }
        if let Some(q) = parts.uri.query()
            && let Some(named) = url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "messengerId")
                .map(|(_, v)| v)
            && named != claims.messenger_id
        {
            return Err(ApiError::unauthorized(
                "the access token is for another messenger",
            ));
        }
        let contact_id = claims
            .sub
            .parse()
            .map_err(|_| ApiError::unauthorized("the access token is invalid or expired"))?;
        Ok(Contact {
            contact_id,
            site_id: SiteId(claims.site_id),
            claims,
            messenger,
        })
    }
}
