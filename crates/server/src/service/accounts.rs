//! Sites, agents and sessions (CONTRACT §5, §12): who may do what, login with its lockout and
//! TOTP, logout, the idle timeout, and an admin's changes to an agent.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use confidant_core::time_fmt::now_millis;
use confidant_core::{AgentId, SiteId};
use confidant_realtime::Hub;
use confidant_store::{
    AccountPatch, AccountRow, Actor, AgentRow, AuditEntry, LiveSession, NewSession, SessionInfo,
    SiteRow, Store, StoreError,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::service::audit::Who;
use crate::tokens::{constant_time_eq, random_token, token_hash};
use crate::totp;

/// Agent sessions last 12 hours.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;
/// How long a WebSocket ticket stays usable, in seconds.
pub const WS_TICKET_TTL_SECONDS: i64 = 60;
/// WebSocket tickets start so; session tokens start with `cfs_`.
const WS_TICKET_PREFIX: &str = "cwt_";
/// Failed logins in a row before the lockout, and how long it lasts (CONTRACT §5).
const LOCKOUT_AFTER: i64 = 6;
const LOCKOUT_MS: i64 = 15 * 60 * 1000;
/// The operator, when it speaks as an agent (sends, closes, reads): the nil UUID.
pub const OPERATOR_ID: uuid::Uuid = uuid::Uuid::nil();

/// An authenticated operator or agent.
#[derive(Debug, Clone)]
pub enum Principal {
    Operator,
    Agent {
        agent: AgentRow,
        token_hash: String,
        /// When the session ends (Unix ms).
        expires_at: i64,
        /// The session's public id (`GET /api/v1/auth/sessions`).
        session_id: String,
        /// When it ends if nothing more happens (Unix ms): its last use plus the site's idle
        /// timeout, as the store knew it.
        idle_deadline: i64,
        /// It logged in while the site required TOTP and the agent had none: until the agent
        /// has TOTP, the session may only set it up.
        setup_only: bool,
        /// The agent has TOTP on.
        totp_enabled: bool,
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

    /// The id and name its messages carry.
    pub fn sender(&self) -> (uuid::Uuid, String) {
        match self {
            Principal::Operator => (OPERATOR_ID, "Operator".to_owned()),
            Principal::Agent { agent, .. } => (agent.agent_id.0, agent.name.clone()),
        }
    }
}

/// A new agent, as the admin asked for it (checked here).
pub struct NewAgent {
    pub email: String,
    pub name: String,
    pub password: String,
    pub role: &'static str,
}

pub struct Accounts {
    store: Store,
    hub: Arc<dyn Hub>,
    operator_token: SecretString,
    hashes: HashGate,
    /// Per session token hash, when this process last wrote its `last_seen_at` (Unix ms):
    /// activity is written at most once per [`TOUCH_EVERY_MS`], never on every request.
    touched: moka::sync::Cache<String, i64>,
}

/// A session's activity is written to the store at most this often (per process).
const TOUCH_EVERY_MS: i64 = 1000;

/// A login, as the edge read it.
pub struct LoginAttempt {
    pub site: SiteId,
    pub email: String,
    pub password: String,
    /// The TOTP code, when the agent gave one.
    pub totp: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// A login that succeeded.
pub struct LoggedIn {
    pub token: String,
    pub agent: AgentRow,
    /// The site requires TOTP and the agent has none yet: the session may only set it up.
    pub totp_setup_required: bool,
}

/// An admin's change to an agent, checked by the edge.
#[derive(Default)]
pub struct AgentChange {
    pub name: Option<String>,
    pub role: Option<&'static str>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
    pub reset_totp: bool,
    pub unlock: bool,
}

/// Why a session ended, as its `session.ended` entry says.
#[derive(Clone, Copy)]
pub enum EndReason {
    Logout,
    Revoked,
    Disabled,
    Idle,
}

impl EndReason {
    fn word(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::Revoked => "revoked",
            EndReason::Disabled => "disabled",
            EndReason::Idle => "idle",
        }
    }
}

/// The `session.ended` entry of one of `agent`'s sessions, without its `sessionId` (the store
/// adds it for each session it ends).
fn session_ended(who: &Who, agent: &AgentRow, reason: EndReason) -> AuditEntry {
    who.entry(
        agent.site_id,
        "session.ended",
        json!({"agentId": agent.agent_id.to_string(), "email": agent.email, "reason": reason.word()}),
    )
}

/// The idle timeout of a session, in ms.
fn idle_ms(s: &LiveSession) -> i64 {
    confidant_store::SiteSettings {
        idle_timeout_minutes: s.idle_timeout_minutes,
        ..Default::default()
    }
    .idle_minutes()
        * 60_000
}

/// How long a login waits for a turn to hash before it answers `503 unavailable`.
const HASH_WAIT: Duration = Duration::from_secs(5);
/// Failure counts untouched this long (and not locked) are purged.
const FAILURES_KEPT_MS: i64 = 24 * 3600 * 1000;

impl Accounts {
    pub fn new(store: Store, hub: Arc<dyn Hub>, operator_token: SecretString) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            store,
            hub,
            operator_token,
            hashes: HashGate::new(cores * 2, HASH_WAIT),
            touched: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
        }
    }

    /// Purge old login failure rows every hour (each unknown email a guesser tries leaves one).
    pub fn spawn_failure_purge(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let now = now_millis();
                match store
                    .purge_login_failures(now - FAILURES_KEPT_MS, now)
                    .await
                {
                    Ok(n) if n > 0 => tracing::info!(rows = n, "purged old login failures"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "purging login failures failed"),
                }
            }
        });
    }

    /// A bearer token (or session cookie) as the operator or an agent session.
    pub async fn authenticate(&self, token: &str) -> ApiResult<Principal> {
        if constant_time_eq(token, self.operator_token.expose_secret()) {
            return Ok(Principal::Operator);
        }
        if token.len() > 256 {
            return Err(ApiError::unauthorized("invalid token"));
        }
        self.session(token_hash(token)).await
    }

    /// The agent session with this token hash, used now: one that has been idle for its
    /// site's timeout ends here (`401`, its sockets close with 4401 on every process).
    async fn session(&self, hash: String) -> ApiResult<Principal> {
        let now = now_millis();
        let ended = || ApiError::unauthorized("the session is invalid or has ended; sign in again");
        let s = self
            .store
            .live_session(&hash, now)
            .await?
            .filter(|s| !s.disabled)
            .ok_or_else(ended)?;
        let idle = idle_ms(&s);
        if now - s.last_seen_at >= idle {
            self.end_idle(&s, &hash, now - idle).await?;
            return Err(ApiError::unauthorized(format!(
                "the session ended after {} minutes without activity; sign in again",
                idle / 60_000
            )));
        }
        self.touch(&hash).await?;
        Ok(Principal::Agent {
            setup_only: s.totp_setup_only && !s.totp_enabled,
            totp_enabled: s.totp_enabled,
            idle_deadline: now + idle,
            session_id: s.session_id,
            expires_at: s.expires_at,
            agent: s.agent,
            token_hash: hash,
        })
    }

    /// End an idle session (unless it was used meanwhile, as another process may have seen).
    async fn end_idle(&self, s: &LiveSession, hash: &str, cutoff: i64) -> ApiResult<()> {
        let entry = session_ended(&Who::system(), &s.agent, EndReason::Idle);
        if self.store.end_idle_session(hash, cutoff, &entry).await? {
            self.hub.end_session(hash);
        }
        self.touched.invalidate(hash);
        Ok(())
    }

    /// The session was used now: its `last_seen_at` is written unless this process wrote it
    /// less than [`TOUCH_EVERY_MS`] ago.
    pub async fn touch(&self, hash: &str) -> ApiResult<()> {
        let now = now_millis();
        if self
            .touched
            .get(hash)
            .is_some_and(|at| now - at < TOUCH_EVERY_MS)
        {
            return Ok(());
        }
        self.touched.insert(hash.to_owned(), now);
        Ok(self.store.touch_session(hash, now).await?)
    }

    /// An agent socket's idle deadline came: when its session now ends if nothing more
    /// happens (Unix ms), or `None` if it has ended (idle here, or elsewhere for any reason).
    pub async fn idle_deadline(&self, hash: &str) -> ApiResult<Option<i64>> {
        let now = now_millis();
        let Some(s) = self
            .store
            .live_session(hash, now)
            .await?
            .filter(|s| !s.disabled)
        else {
            return Ok(None);
        };
        let idle = idle_ms(&s);
        if now - s.last_seen_at >= idle {
            self.end_idle(&s, hash, now - idle).await?;
            return Ok(None);
        }
        Ok(Some(s.last_seen_at + idle))
    }

    /// A single-use ticket that opens one agent socket of this session within
    /// [`WS_TICKET_TTL_SECONDS`]: what a browser page uses instead of the session token, which
    /// it never gets to see (the cookie is HttpOnly). Stored hashed, so any server process
    /// takes it; a logout deletes it with the session.
    pub async fn ws_ticket(&self, p: &Principal) -> ApiResult<String> {
        let Principal::Agent {
            token_hash: session,
            ..
        } = p
        else {
            return Err(ApiError::forbidden(
                "the operator token opens no agent socket; log in as an agent",
            ));
        };
        let ticket = format!("{WS_TICKET_PREFIX}{}", random_token());
        let now = now_millis();
        self.store
            .create_ws_ticket(
                &token_hash(&ticket),
                session,
                now,
                now + WS_TICKET_TTL_SECONDS * 1000,
            )
            .await?;
        Ok(ticket)
    }

    /// An agent socket's auth token: a ticket (used up here) or a session token.
    pub async fn authenticate_socket(&self, token: &str) -> ApiResult<Principal> {
        if !token.starts_with(WS_TICKET_PREFIX) {
            return self.authenticate(token).await;
        }
        if token.len() > 256 {
            return Err(ApiError::unauthorized("invalid ticket"));
        }
        match self
            .store
            .take_ws_ticket(&token_hash(token), now_millis())
            .await?
        {
            Some(session) => self.session(session).await,
            None => Err(ApiError::unauthorized(
                "the ticket is invalid, used or expired",
            )),
        }
    }

    /// Whether the agent session with this token hash is still live: the sockets' re-check
    /// of their session, beside the notices of its end.
    pub async fn session_live(&self, token_hash: &str) -> ApiResult<bool> {
        Ok(self
            .store
            .live_session(token_hash, now_millis())
            .await?
            .is_some_and(|s| !s.disabled))
    }

    pub async fn create_site(&self, name: &str) -> ApiResult<SiteRow> {
        Ok(self.store.create_site(name, now_millis()).await?)
    }

    /// The site, or `404 not_found`.
    pub async fn site(&self, site: SiteId) -> ApiResult<SiteRow> {
        self.store
            .get_site(site)
            .await?
            .ok_or_else(|| ApiError::not_found("site"))
    }

    /// `p` may work the site (`Principal::require_site`), and it exists: the operator, who may
    /// name any site id, gets `404` for one that is not there rather than an empty answer.
    pub async fn check_site(&self, p: &Principal, site: SiteId) -> ApiResult<()> {
        p.require_site(site)?;
        if matches!(p, Principal::Operator) {
            self.site(site).await?;
        }
        Ok(())
    }

    /// As `check_site`, for the calls that need the admin role.
    pub async fn check_admin(&self, p: &Principal, site: SiteId) -> ApiResult<()> {
        p.require_admin(site)?;
        self.check_site(p, site).await
    }

    /// A new agent, with its `agent.created` entry.
    pub async fn create_agent(
        &self,
        site: SiteId,
        new: NewAgent,
        who: &Who,
    ) -> ApiResult<AgentRow> {
        self.site(site).await?;
        let hash = self.hashes.run(|| hash_password(new.password)).await??;
        let entry = who.entry(
            site,
            "agent.created",
            json!({"email": new.email, "name": new.name, "role": new.role}),
        );
        Ok(self
            .store
            .create_agent(
                site,
                &new.email,
                &new.name,
                new.role,
                &hash,
                now_millis(),
                &entry,
            )
            .await?)
    }

    /// The site's agents with their account state.
    pub async fn accounts(&self, site: SiteId) -> ApiResult<Vec<AccountRow>> {
        self.site(site).await?;
        Ok(self.store.list_accounts(site).await?)
    }

    /// Apply an admin's change; disabling or a new password ends the agent's sessions at
    /// once, on every process.
    pub async fn update_agent(
        &self,
        site: SiteId,
        agent: AgentId,
        change: AgentChange,
        who: &Who,
    ) -> ApiResult<AccountRow> {
        let not_found = || ApiError::not_found("agent");
        let current = self
            .store
            .account(site, agent)
            .await?
            .ok_or_else(not_found)?;
        let mut fields = Vec::new();
        if change
            .name
            .as_ref()
            .is_some_and(|n| *n != current.agent.name)
        {
            fields.push("name");
        }
        if change.role.is_some_and(|r| r != current.agent.role) {
            fields.push("role");
        }
        if change.disabled.is_some_and(|d| d != current.disabled) {
            fields.push("disabled");
        }
        if change.password.is_some() {
            fields.push("password");
        }
        if change.reset_totp {
            fields.push("resetTotp");
        }
        if change.unlock {
            fields.push("unlock");
        }
        if fields.is_empty() {
            // Nothing changes (an empty body, or the values it has already): no entry either.
            return Ok(current);
        }
        let password_hash = match change.password {
            Some(p) => Some(self.hashes.run(|| hash_password(p)).await??),
            None => None,
        };
        let reason = if change.disabled == Some(true) {
            Some(EndReason::Disabled)
        } else if password_hash.is_some() {
            Some(EndReason::Revoked)
        } else {
            None
        };
        let entry = who.entry(
            site,
            "agent.updated",
            json!({"agentId": agent.to_string(), "email": current.agent.email, "fields": fields}),
        );
        let ended = reason.map(|r| session_ended(who, &current.agent, r));
        let patch = AccountPatch {
            name: change.name,
            role: change.role,
            disabled: change.disabled,
            password_hash,
            reset_totp: change.reset_totp,
            unlock: change.unlock,
        };
        let hashes = self
            .store
            .update_account(site, agent, &patch, &entry, ended.as_ref())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => not_found(),
                other => other.into(),
            })?;
        for hash in hashes {
            self.hub.end_session(&hash);
            self.touched.invalidate(&hash);
        }
        self.store.account(site, agent).await?.ok_or_else(not_found)
    }

    /// A new pending TOTP secret for the calling agent: `(secret, otpauth URL)`. It takes
    /// effect once a code of it is confirmed.
    pub async fn totp_setup(&self, p: &Principal) -> ApiResult<(String, String)> {
        let agent = own_agent(p)?;
        let state = self
            .store
            .account(agent.site_id, agent.agent_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the session has ended"))?;
        if state.totp_enabled {
            return Err(ApiError::conflict(
                "two-factor authentication is on already; an admin of the site can reset it",
            ));
        }
        let secret = totp::new_secret();
        self.store
            .set_totp_pending(agent.site_id, agent.agent_id, &secret)
            .await?;
        let url = totp::otpauth_url(&agent.email, &secret);
        Ok((secret, url))
    }

    /// Confirm the pending secret with a code of it: TOTP is on (`totp.enabled`).
    pub async fn totp_confirm(&self, p: &Principal, code: &str, who: &Who) -> ApiResult<()> {
        let agent = own_agent(p)?;
        let secret = self
            .store
            .totp_pending(agent.agent_id)
            .await?
            .ok_or_else(|| {
                ApiError::invalid("no set-up under way: call POST /api/v1/auth/totp/setup first")
            })?;
        let step = totp::matching_step(&secret, code, now_millis() / 1000).ok_or_else(|| {
            ApiError::invalid(
                "code: it does not match the new secret (check the 6 digits and the device's clock)",
            )
        })?;
        let entry = who.entry(
            agent.site_id,
            "totp.enabled",
            json!({"agentId": agent.agent_id.to_string(), "email": agent.email}),
        );
        if !self
            .store
            .enable_totp(agent.site_id, agent.agent_id, &secret, step, &entry)
            .await?
        {
            return Err(ApiError::unauthorized("the session has ended"));
        }
        Ok(())
    }

    /// The calling agent's sessions, newest first.
    pub async fn sessions(&self, p: &Principal) -> ApiResult<Vec<SessionInfo>> {
        let agent = own_agent(p)?;
        Ok(self
            .store
            .agent_sessions(agent.agent_id, now_millis())
            .await?)
    }

    /// End one of the calling agent's sessions, on every process (`404`: not one of its own).
    pub async fn end_own_session(
        &self,
        p: &Principal,
        session_id: &str,
        who: &Who,
    ) -> ApiResult<()> {
        let agent = own_agent(p)?;
        let entry = session_ended(who, agent, EndReason::Revoked);
        let hash = self
            .store
            .end_session_by_id(agent.agent_id, session_id, &entry)
            .await?
            .ok_or_else(|| ApiError::not_found("session"))?;
        self.hub.end_session(&hash);
        self.touched.invalidate(&hash);
        Ok(())
    }

    pub async fn agents(&self, site: SiteId) -> ApiResult<Vec<AgentRow>> {
        self.site(site).await?;
        Ok(self.store.list_agents(site).await?)
    }

    /// Delete an agent; its sessions end at once, on every process.
    pub async fn delete_agent(&self, site: SiteId, agent: AgentId) -> ApiResult<()> {
        let ended = self
            .store
            .delete_agent(site, agent)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("agent"),
                other => other.into(),
            })?;
        for token_hash in ended {
            self.hub.end_session(&token_hash);
        }
        Ok(())
    }

    /// Check a login; on success a new session. Run one attempt per account at a time
    /// (`RateLimiter::one_login_at_a_time`), so that the lockout cannot be outrun.
    ///
    /// The password is checked first and every refusal after it says no more than the password
    /// was right: a disabled account (`401 unauthorized`, no count), no TOTP code
    /// (`401 totp_required`, no count), a wrong or replayed code (`401 unauthorized`, counted
    /// toward the lockout).
    pub async fn login(&self, attempt: LoginAttempt) -> ApiResult<LoggedIn> {
        let LoginAttempt {
            site,
            email,
            password,
            totp: code,
            ip,
            user_agent,
        } = attempt;
        let now = now_millis();
        let state = self.store.login_failures(site, &email).await?;
        if state.locked_until > now {
            return Err(ApiError::rate_limited(
                ((state.locked_until - now) / 1000) as u64 + 1,
            ));
        }
        let account = self.store.login_account(site, &email).await?;
        let hash = account.as_ref().map(|a| a.password_hash.clone());
        let anonymous = Who {
            actor: Actor::System,
            ip: ip.map(|ip| ip.to_canonical().to_string()),
        };
        let wrong = || ApiError::unauthorized("wrong site, email or password");
        if !self.hashes.run(|| verify_password(password, hash)).await? {
            self.failed(site, &email, &anonymous, "password", true)
                .await?;
            return Err(wrong());
        }
        let account = account.ok_or_else(wrong)?;
        if account.disabled {
            self.failed(site, &email, &anonymous, "disabled", false)
                .await?;
            return Err(ApiError::unauthorized(
                "this account is disabled; ask an admin of the site to enable it",
            ));
        }
        if let Some(secret) = &account.totp_secret {
            let Some(code) = code.as_deref() else {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "totp_required",
                    "enter the 6-digit code from your authenticator app",
                ));
            };
            let step = totp::matching_step(secret, code.trim(), now / 1000);
            let fresh = match step {
                Some(step) => {
                    self.store
                        .take_totp_step(account.agent.agent_id, step)
                        .await?
                }
                None => false,
            };
            if !fresh {
                let why = if step.is_some() {
                    "totp_replayed"
                } else {
                    "totp"
                };
                self.failed(site, &email, &anonymous, why, true).await?;
                return Err(ApiError::unauthorized(if step.is_some() {
                    "this code was used already; wait for the next one"
                } else {
                    "wrong code"
                }));
            }
        }
        let agent = account.agent;
        let require_totp = self
            .store
            .site_settings(site)
            .await?
            .is_some_and(|s| s.require_totp);
        let totp_setup_only = require_totp && account.totp_secret.is_none();
        let token = format!("cfs_{}", random_token());
        let session = NewSession {
            token_hash: token_hash(&token),
            session_id: uuid::Uuid::new_v4().to_string(),
            ip: anonymous.ip.clone(),
            user_agent: user_agent.map(|u| u.chars().take(512).collect()),
            now,
            expires_at: now + SESSION_TTL_MS,
            totp_setup_only,
        };
        let who = Who {
            actor: Actor::Agent {
                id: agent.agent_id.to_string(),
                email: agent.email.clone(),
            },
            ip: anonymous.ip,
        };
        let entry = who.entry(
            site,
            "login.succeeded",
            json!({"agentId": agent.agent_id.to_string(), "email": agent.email,
                   "sessionId": session.session_id}),
        );
        self.store.open_session(&agent, &session, &entry).await?;
        self.touched.insert(session.token_hash, now);
        Ok(LoggedIn {
            token,
            agent,
            totp_setup_required: totp_setup_only,
        })
    }

    /// A failed login: `login.failed` (and `login.locked` when a lockout starts) if the site
    /// exists; counted toward the lockout when `counts`.
    async fn failed(
        &self,
        site: SiteId,
        email: &str,
        who: &Who,
        reason: &'static str,
        counts: bool,
    ) -> ApiResult<()> {
        let exists = self.store.get_site(site).await?.is_some();
        let failed = who.entry(
            site,
            "login.failed",
            json!({"email": email, "reason": reason}),
        );
        if !counts {
            if exists {
                self.store.audit(&failed).await?;
            }
            return Ok(());
        }
        let locked = who.entry(
            site,
            "login.locked",
            json!({"email": email, "minutes": LOCKOUT_MS / 60_000}),
        );
        self.store
            .login_failed(
                site,
                email,
                now_millis(),
                (LOCKOUT_AFTER, LOCKOUT_MS),
                exists.then_some((&failed, &locked)),
            )
            .await?;
        Ok(())
    }

    /// End the caller's session, on every process (its sockets close with 4401).
    pub async fn logout(&self, p: &Principal, who: &Who) -> ApiResult<()> {
        if let Principal::Agent {
            token_hash, agent, ..
        } = p
        {
            let entry = session_ended(who, agent, EndReason::Logout);
            self.store.end_session(token_hash, &entry).await?;
            self.hub.end_session(token_hash);
            self.touched.invalidate(token_hash);
        }
        Ok(())
    }
}

/// The calling agent (the operator has no account of its own here: `403`).
fn own_agent(p: &Principal) -> ApiResult<&AgentRow> {
    match p {
        Principal::Agent { agent, .. } => Ok(agent),
        Principal::Operator => Err(ApiError::forbidden(
            "the operator token has no agent account; log in as an agent",
        )),
    }
}

/// Caps the password hashes (Argon2: 19 MiB and tens of ms of CPU each) that run at once, so a
/// burst of logins for unknown emails cannot fill the blocking pool and memory. A call that
/// finds no turn within `wait` answers `503 unavailable` (the server is busy, not the caller
/// wrong; nothing is counted against the account).
pub struct HashGate {
    permits: tokio::sync::Semaphore,
    wait: Duration,
}

impl HashGate {
    pub fn new(max: usize, wait: Duration) -> Self {
        Self {
            permits: tokio::sync::Semaphore::new(max.max(1)),
            wait,
        }
    }

    /// Run `hash` when a turn is free; the `confidant_password_hashes_running` gauge shows how
    /// many run.
    pub async fn run<F: Future>(&self, hash: impl FnOnce() -> F) -> ApiResult<F::Output> {
        let _turn = tokio::time::timeout(self.wait, self.permits.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                let mut e = ApiError::unavailable("too many logins at once; try again");
                e.retry_after = Some(1);
                e
            })?;
        let _running = HashRunning::new();
        Ok(hash().await)
    }

    /// Turns free now (for tests).
    pub fn free(&self) -> usize {
        self.permits.available_permits()
    }
}

/// One running hash on the gauge, also when the login is dropped half-way.
struct HashRunning(metrics::Gauge);

impl HashRunning {
    fn new() -> Self {
        let g = metrics::gauge!("confidant_password_hashes_running");
        g.increment(1.0);
        Self(g)
    }
}

impl Drop for HashRunning {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_of_hashes_never_runs_more_than_the_cap() {
        let gate = Arc::new(HashGate::new(3, Duration::from_secs(30)));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let burst: Vec<_> = (0..40)
            .map(|_| {
                let (gate, now, peak) = (gate.clone(), now.clone(), peak.clone());
                tokio::spawn(async move {
                    gate.run(|| async {
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(n, Ordering::SeqCst);
                        // A real verify of an unknown email: Argon2 on the blocking pool.
                        let _ = verify_password("guess".into(), None).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for b in burst {
            assert!(b.await.expect("task").is_ok());
        }
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(gate.free(), 3);
    }

    #[tokio::test]
    async fn no_turn_within_the_wait_is_a_503_with_retry_after() {
        let gate = HashGate::new(1, Duration::from_millis(50));
        let held = gate.permits.acquire().await.expect("permit");
        let e = gate.run(|| async {}).await.expect_err("busy");
        assert_eq!((e.status.as_u16(), e.code), (503, "unavailable"));
        assert_eq!(e.retry_after, Some(1));
        drop(held);
        assert!(gate.run(|| async {}).await.is_ok());
    }
}
