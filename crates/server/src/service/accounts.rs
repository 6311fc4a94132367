//! Sites, agents and sessions (CONTRACT §5): who may do what, login with its lockout, logout.

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use confidant_core::time_fmt::now_millis;
use confidant_core::{AgentId, SiteId};
use confidant_realtime::Hub;
use confidant_store::{AgentRow, SiteRow, Store, StoreError};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::{ApiError, ApiResult};
use crate::tokens::{constant_time_eq, random_token, token_hash};

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

    /// The agent session with this token hash.
    async fn session(&self, hash: String) -> ApiResult<Principal> {
        match self.store.get_session(&hash, now_millis()).await? {
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
            .get_session(token_hash, now_millis())
            .await?
            .is_some())
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

    pub async fn create_agent(&self, site: SiteId, new: NewAgent) -> ApiResult<AgentRow> {
        self.site(site).await?;
        let hash = self.hashes.run(|| hash_password(new.password)).await??;
        Ok(self
            .store
            .create_agent(site, &new.email, &new.name, new.role, &hash, now_millis())
            .await?)
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

    /// Check a login; on success a new session `(token, agent)`. Run one attempt per account
    /// at a time (`RateLimiter::one_login_at_a_time`), so that the lockout cannot be outrun.
    pub async fn login(
        &self,
        site: SiteId,
        email: &str,
        password: String,
    ) -> ApiResult<(String, AgentRow)> {
        let now = now_millis();
        let state = self.store.login_failures(site, email).await?;
        if state.locked_until > now {
            return Err(ApiError::rate_limited(
                ((state.locked_until - now) / 1000) as u64 + 1,
            ));
        }
        let (agent, hash) = match self.store.find_agent_for_login(site, email).await? {
            Some((a, h)) => (Some(a), Some(h)),
            None => (None, None),
        };
        let wrong = || ApiError::unauthorized("wrong site, email or password");
        if !self.hashes.run(|| verify_password(password, hash)).await? {
            self.store
                .record_login_failure(site, email, now, LOCKOUT_AFTER, LOCKOUT_MS)
                .await?;
            return Err(wrong());
        }
        let agent = agent.ok_or_else(wrong)?;
        self.store.reset_login_failures(site, email).await?;
        let token = format!("cfs_{}", random_token());
        self.store
            .create_session(&token_hash(&token), &agent, now, now + SESSION_TTL_MS)
            .await?;
        Ok((token, agent))
    }

    /// End the caller's session, on every process (its sockets close with 4401).
    pub async fn logout(&self, p: &Principal) -> ApiResult<()> {
        if let Principal::Agent { token_hash, .. } = p {
            self.store.delete_session(token_hash).await?;
            self.hub.end_session(token_hash);
        }
        Ok(())
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
