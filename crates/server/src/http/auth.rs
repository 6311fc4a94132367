//! Who is calling, as extractors: an operator or agent (`Principal`, by bearer token or session
//! cookie) or a contact (`ContactCaller`, by access token); and from which browser origin.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use cookie::time::Duration;
use cookie::{Cookie, SameSite};

use crate::app::{App, AppState};
use crate::error::{ApiError, ApiResult};
use crate::service::access::ContactSession;
use crate::service::accounts::{Principal, SESSION_TTL_MS};
use crate::service::messengers::CachedMessenger;

/// The session cookie's name on an http public URL.
pub const SESSION_COOKIE: &str = "confidant_session";
/// Its name on an https public URL: browsers keep a `__Host-` cookie only if it is Secure, has
/// `Path=/` and no `Domain`, so a sibling subdomain or a plain-http page cannot plant one
/// (session fixation by cookie tossing).
pub const HOST_SESSION_COOKIE: &str = "__Host-confidant_session";

/// The session cookie's name for the server's public URL (`secure`: it is https).
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        HOST_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// An agent's token: the bearer token, else the session cookie. Under https only the
/// `__Host-` cookie counts (a plain name could have been planted); under http, either name.
pub fn agent_token(headers: &HeaderMap, secure: bool) -> Option<&str> {
    bearer(headers).or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| {
                (c.name() == HOST_SESSION_COOKIE || (!secure && c.name() == SESSION_COOKIE))
                    && !c.value().is_empty()
            })
            .map(|c| c.value_raw().unwrap_or_default())
    })
}

/// The session cookie that login sets (`None`: the one that logout sets, which clears it).
/// Under https it is `__Host-` prefixed: Secure, `Path=/`, no `Domain`.
pub fn session_cookie(token: Option<&str>, secure: bool) -> Option<HeaderValue> {
    let max_age = match token {
        Some(_) => Duration::milliseconds(SESSION_TTL_MS),
        None => Duration::ZERO,
    };
    let c = Cookie::build((session_cookie_name(secure), token.unwrap_or_default()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(max_age)
        .build();
    HeaderValue::from_str(&c.to_string()).ok()
}

/// The request's `Origin`: `None` without one. An origin that is not readable text (raw UTF-8,
/// Latin-1 bytes) counts as a foreign one, never as none.
pub fn origin(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    match headers.get(header::ORIGIN) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::origin_not_allowed()),
    }
}

/// Agent and admin calls accept only the server's own origin, or none.
pub fn check_own_origin(app: &App, headers: &HeaderMap) -> ApiResult<()> {
    match origin(headers)? {
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
    match origin(headers)? {
        None => Ok(()),
        Some(o) if o == app.config.public_url || messenger.allows_origin(o) => Ok(()),
        Some(_) => Err(ApiError::origin_not_allowed()),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        check_own_origin(app, &parts.headers)?;
        let token = agent_token(&parts.headers, app.config.secure_cookies)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token or session"))?;
        let p = app.accounts.authenticate(token).await?;
        if matches!(
            p,
            Principal::Agent {
                setup_only: true,
                ..
            }
        ) && !SETUP_ONLY_PATHS.contains(&parts.uri.path())
            && !parts.uri.path().starts_with("/api/v1/auth/sessions/")
        {
            return Err(ApiError::forbidden(
                "this site requires two-factor authentication: set it up first (Account → Two-factor authentication)",
            ));
        }
        Ok(p)
    }
}

/// What the session of an agent that must set up TOTP (the site's `requireTotp`) and has not
/// may call: who it is, its sessions, logging out and the set-up itself.
const SETUP_ONLY_PATHS: &[&str] = &[
    "/api/v1/auth/me",
    "/api/v1/auth/logout",
    "/api/v1/auth/totp/setup",
    "/api/v1/auth/totp/confirm",
    "/api/v1/auth/sessions",
];

/// A contact, authenticated by Confidant's access token, calling from an allowed origin.
pub struct ContactCaller(pub ContactSession);

impl FromRequestParts<AppState> for ContactCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)
            .ok_or_else(|| ApiError::unauthorized("missing bearer access token"))?;
        let session = app
            .access
            .contact(&app.messengers, &app.contacts, token)
            .await?;
        check_contact_origin(app, &parts.headers, &session.messenger)?;
        // A request may name the messenger it means; a token of another messenger is refused.
        let mine = session.scope.messenger.to_string();
        let named_in_header = parts
            .headers
            .get("x-confidant-messenger")
            .and_then(|v| v.to_str().ok());
        let named_in_query = parts.uri.query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "messengerId")
                .map(|(_, v)| v.into_owned())
        });
        if named_in_header.is_some_and(|n| n != mine) || named_in_query.is_some_and(|n| n != mine) {
            return Err(ApiError::unauthorized(
                "the access token is for another messenger",
            ));
        }
        Ok(ContactCaller(session))
    }
}
