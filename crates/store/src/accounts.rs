//! Agent accounts (CONTRACT §12): disabling, TOTP secrets (sealed by the vault), sessions with
//! their id, address and last use (the idle timeout's truth), and the audit entries of each
//! change, written in the change's transaction.

use confidant_core::{AgentId, SiteId};
use sqlx::{AnyConnection, FromRow as _, Row as _};

use crate::agents::email_key;
use crate::audit::{AuditEntry, append_audit};
use crate::{AgentRow, LoginFailures, Result, Store, StoreError};

/// An agent as the admin pages see it.
#[derive(Debug, Clone)]
pub struct AccountRow {
    pub agent: AgentRow,
    pub disabled: bool,
    pub totp_enabled: bool,
    /// The login lockout of its `(site, email)` runs until then (Unix ms; 0: none).
    pub locked_until: i64,
    pub last_login_at: Option<i64>,
}

/// What a login needs to know of an agent.
#[derive(Debug, Clone)]
pub struct LoginAccount {
    pub agent: AgentRow,
    pub password_hash: String,
    pub disabled: bool,
    /// The confirmed TOTP secret (base32), opened.
    pub totp_secret: Option<String>,
}

/// A live session by its token hash, with its agent and its site's settings that govern it.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub agent: AgentRow,
    pub session_id: String,
    pub expires_at: i64,
    pub last_seen_at: i64,
    pub disabled: bool,
    pub totp_enabled: bool,
    /// The site's idle timeout (`None`: the default).
    pub idle_timeout_minutes: Option<i64>,
    /// It logged in while its site required TOTP and the agent had none.
    pub totp_setup_only: bool,
}

/// One of an agent's sessions, as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub session_id: String,
    pub token_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A session to open.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_hash: String,
    pub session_id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub now: i64,
    pub expires_at: i64,
    /// The site requires TOTP and the agent has none: the session may only set it up.
    pub totp_setup_only: bool,
}

/// An admin's change to an agent; `None`/`false`: leave as is.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub role: Option<&'static str>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
    pub reset_totp: bool,
    pub unlock: bool,
}

/// The place a TOTP secret is sealed at.
fn totp_place(column: &str, agent: &str) -> String {
    crate::place(&format!("agents.{column}"), agent)
}

/// The select of an agent with its account state (a macro, so that queries stay literals).
macro_rules! account_select {
    () => { "SELECT a.agent_id, a.site_id, a.email, a.name, a.role, a.created_at, \
     a.disabled, CAST(CASE WHEN a.totp_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS totp_on, \
     a.last_login_at, COALESCE(f.locked_until, 0) AS locked_until \
     FROM agents a LEFT JOIN login_failures f ON f.site_id = a.site_id AND f.email_key = a.email_key "
    };
}

fn account_row(r: &sqlx::any::AnyRow) -> Result<AccountRow> {
    Ok(AccountRow {
        agent: AgentRow::from_row(r)?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        totp_enabled: r.try_get::<i64, _>("totp_on")? != 0,
        locked_until: r.try_get("locked_until")?,
        last_login_at: r.try_get("last_login_at")?,
    })
}

/// The copy of `proto` (a `session.ended` entry) that names `session_id`.
fn ended_entry(proto: &AuditEntry, session_id: &str) -> AuditEntry {
    let mut e = proto.clone();
    if let Some(t) = e.target.as_object_mut() {
        t.insert("sessionId".into(), session_id.into());
    }
    e
}

/// Delete every session of `agent`, each with its `session.ended` entry. Returns their token
/// hashes.
async fn end_agent_sessions(
    conn: &mut AnyConnection,
    site: SiteId,
    agent: &str,
    ended: &AuditEntry,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "DELETE FROM sessions WHERE agent_id = $1 AND site_id = $2 \
         RETURNING token_hash, COALESCE(session_id, '') AS session_id",
    )
    .bind(agent)
    .bind(site.0)
    .fetch_all(&mut *conn)
    .await?;
    let mut hashes = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = r.try_get("session_id")?;
        append_audit(&mut *conn, &ended_entry(ended, &id)).await?;
        hashes.push(r.try_get("token_hash")?);
    }
    Ok(hashes)
}

impl Store {
    /// The site's agents with their account state, oldest first.
    pub async fn list_accounts(&self, site: SiteId) -> Result<Vec<AccountRow>> {
        let rows = sqlx::query(concat!(
            account_select!(),
            "WHERE a.site_id = $1 ORDER BY a.created_at, a.agent_id"
        ))
        .bind(site.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(account_row).collect()
    }

    /// One agent of the site with its account state.
    pub async fn account(&self, site: SiteId, agent: AgentId) -> Result<Option<AccountRow>> {
        let row = sqlx::query(concat!(
            account_select!(),
            "WHERE a.site_id = $1 AND a.agent_id = $2"
        ))
        .bind(site.0)
        .bind(agent.to_string())
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(account_row).transpose()
    }

    /// The agent with this email on this site, as a login needs it.
    pub async fn login_account(&self, site: SiteId, email: &str) -> Result<Option<LoginAccount>> {
        let row = sqlx::query(
            "SELECT agent_id, site_id, email, name, role, created_at, password_hash, disabled, \
             totp_secret FROM agents WHERE site_id = $1 AND email_key = $2",
        )
        .bind(site.0)
        .bind(email_key(email))
        .fetch_optional(&self.write)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let agent = AgentRow::from_row(&r)?;
        let sealed: Option<String> = r.try_get("totp_secret")?;
        let totp_secret = match sealed {
            Some(s) => Some(
                self.vault
                    .open_text(&totp_place("totp_secret", &agent.agent_id.to_string()), &s)
                    .await?,
            ),
            None => None,
        };
        Ok(Some(LoginAccount {
            password_hash: r.try_get("password_hash")?,
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            totp_secret,
            agent,
        }))
    }

    /// Take the TOTP step `step` for `agent`: `true` once, `false` if that step or a later one
    /// was taken already (a replayed code).
    pub async fn take_totp_step(&self, agent: AgentId, step: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE agents SET totp_last_step = $2 WHERE agent_id = $1 AND totp_last_step < $2",
        )
        .bind(agent.to_string())
        .bind(step)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A successful login: the failure count goes, the session opens, the agent's last login
    /// is now, and `audit` (`login.succeeded`) is appended, in one transaction.
    pub async fn open_session(
        &self,
        agent: &AgentRow,
        s: &NewSession,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("DELETE FROM login_failures WHERE site_id = $1 AND email_key = $2")
            .bind(agent.site_id.0)
            .bind(email_key(&agent.email))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_hash, agent_id, site_id, created_at, expires_at, \
             session_id, ip, user_agent, last_seen_at, totp_setup_only) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $4, $9)",
        )
        .bind(&s.token_hash)
        .bind(agent.agent_id.to_string())
        .bind(agent.site_id.0)
        .bind(s.now)
        .bind(s.expires_at)
        .bind(&s.session_id)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .bind(i64::from(s.totp_setup_only))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE agents SET last_login_at = $2 WHERE agent_id = $1")
            .bind(agent.agent_id.to_string())
            .bind(s.now)
            .execute(&mut *tx)
            .await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Count one failed login for `(site, email)`; after `limit` in a row, lock until
    /// `now + lock_ms`. With `audit` (the site exists): its `login.failed` entry, and its
    /// `login.locked` entry when this failure starts a lockout, in the same transaction.
    pub async fn login_failed(
        &self,
        site: SiteId,
        email: &str,
        now: i64,
        (limit, lock_ms): (i64, i64),
        audit: Option<(&AuditEntry, &AuditEntry)>,
    ) -> Result<LoginFailures> {
        let mut tx = self.write.begin().await?;
        let mut state: LoginFailures = sqlx::query_as(
            "INSERT INTO login_failures (site_id, email_key, failures, locked_until, updated_at) VALUES ($1, $2, 1, 0, $3) \
             ON CONFLICT (site_id, email_key) DO UPDATE SET failures = login_failures.failures + 1, updated_at = $3 \
             RETURNING failures, locked_until",
        )
        .bind(site.0)
        .bind(email_key(email))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let locks = state.failures >= limit && state.locked_until <= now;
        if locks {
            state.locked_until = now + lock_ms;
            sqlx::query(
                "UPDATE login_failures SET locked_until = $3 WHERE site_id = $1 AND email_key = $2",
            )
            .bind(site.0)
            .bind(email_key(email))
            .bind(state.locked_until)
            .execute(&mut *tx)
            .await?;
        }
        if let Some((failed, locked)) = audit {
            append_audit(&mut tx, failed).await?;
            if locks {
                append_audit(&mut tx, locked).await?;
            }
        }
        tx.commit().await?;
        Ok(state)
    }

    /// The session with this token hash, unexpired, with what governs it.
    pub async fn live_session(&self, token_hash: &str, now: i64) -> Result<Option<LiveSession>> {
        let row = sqlx::query(
            "SELECT a.agent_id, a.site_id, a.email, a.name, a.role, a.created_at, a.disabled, \
             CAST(CASE WHEN a.totp_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS totp_on, \
             COALESCE(s.session_id, '') AS session_id, s.expires_at, s.last_seen_at, \
             s.totp_setup_only, st.idle_timeout_minutes \
             FROM sessions s JOIN agents a ON a.agent_id = s.agent_id \
             JOIN sites st ON st.site_id = a.site_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(LiveSession {
            agent: AgentRow::from_row(&r)?,
            session_id: r.try_get("session_id")?,
            expires_at: r.try_get("expires_at")?,
            last_seen_at: r.try_get("last_seen_at")?,
            disabled: r.try_get::<i64, _>("disabled")? != 0,
            totp_enabled: r.try_get::<i64, _>("totp_on")? != 0,
            idle_timeout_minutes: r.try_get("idle_timeout_minutes")?,
            totp_setup_only: r.try_get::<i64, _>("totp_setup_only")? != 0,
        }))
    }

    /// The session was used at `now` (never moves backwards).
    pub async fn touch_session(&self, token_hash: &str, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1 AND last_seen_at < $2",
        )
        .bind(token_hash)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// End the session if it was last used before `cutoff`, with its `session.ended` entry
    /// (`ended` gets the session id). `true`: it ended here (another process may have
    /// ended it first, or seen it used meanwhile).
    pub async fn end_idle_session(
        &self,
        token_hash: &str,
        cutoff: i64,
        ended: &AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "DELETE FROM sessions WHERE token_hash = $1 AND last_seen_at < $2 \
             RETURNING COALESCE(session_id, '') AS session_id",
        )
        .bind(token_hash)
        .bind(cutoff)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = row else { return Ok(false) };
        let id: String = r.try_get("session_id")?;
        append_audit(&mut tx, &ended_entry(ended, &id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// End a session by its token hash with its `session.ended` entry. `false`: it was gone.
    pub async fn end_session(&self, token_hash: &str, ended: &AuditEntry) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "DELETE FROM sessions WHERE token_hash = $1 \
             RETURNING COALESCE(session_id, '') AS session_id",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = row else { return Ok(false) };
        let id: String = r.try_get("session_id")?;
        append_audit(&mut tx, &ended_entry(ended, &id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// End `agent`'s session `session_id`, with its entry. Its token hash, or `None` if the
    /// agent has no such session.
    pub async fn end_session_by_id(
        &self,
        agent: AgentId,
        session_id: &str,
        ended: &AuditEntry,
    ) -> Result<Option<String>> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(
            "DELETE FROM sessions WHERE agent_id = $1 AND session_id = $2 RETURNING token_hash",
        )
        .bind(agent.to_string())
        .bind(session_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = row else { return Ok(None) };
        append_audit(&mut tx, &ended_entry(ended, session_id)).await?;
        tx.commit().await?;
        Ok(Some(r.try_get("token_hash")?))
    }

    /// The agent's unexpired sessions, newest first.
    pub async fn agent_sessions(&self, agent: AgentId, now: i64) -> Result<Vec<SessionInfo>> {
        let rows = sqlx::query(
            "SELECT COALESCE(session_id, '') AS session_id, token_hash, created_at, last_seen_at, \
             ip, user_agent FROM sessions WHERE agent_id = $1 AND expires_at > $2 \
             ORDER BY created_at DESC, session_id",
        )
        .bind(agent.to_string())
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionInfo {
                    session_id: r.try_get("session_id")?,
                    token_hash: r.try_get("token_hash")?,
                    created_at: r.try_get("created_at")?,
                    last_seen_at: r.try_get("last_seen_at")?,
                    ip: r.try_get("ip")?,
                    user_agent: r.try_get("user_agent")?,
                })
            })
            .collect()
    }

    /// Keep `secret` (base32) as the agent's pending TOTP secret, sealed.
    pub async fn set_totp_pending(&self, site: SiteId, agent: AgentId, secret: &str) -> Result<()> {
        let id = agent.to_string();
        let sealed = self
            .vault
            .seal_text(site, &totp_place("totp_pending", &id), secret)
            .await?;
        let done =
            sqlx::query("UPDATE agents SET totp_pending = $3 WHERE agent_id = $1 AND site_id = $2")
                .bind(&id)
                .bind(site.0)
                .bind(sealed)
                .execute(&self.write)
                .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The agent's pending TOTP secret, opened.
    pub async fn totp_pending(&self, agent: AgentId) -> Result<Option<String>> {
        let id = agent.to_string();
        let sealed: Option<Option<String>> =
            sqlx::query_scalar("SELECT totp_pending FROM agents WHERE agent_id = $1")
                .bind(&id)
                .fetch_optional(&self.write)
                .await?;
        match sealed.flatten() {
            Some(s) => Ok(Some(
                self.vault
                    .open_text(&totp_place("totp_pending", &id), &s)
                    .await?,
            )),
            None => Ok(None),
        }
    }

    /// Turn TOTP on with `secret` (the pending one just confirmed by a code of `step`, which
    /// is taken), with `audit` (`totp.enabled`). `false`: no such agent.
    pub async fn enable_totp(
        &self,
        site: SiteId,
        agent: AgentId,
        secret: &str,
        step: i64,
        audit: &AuditEntry,
    ) -> Result<bool> {
        let id = agent.to_string();
        let sealed = self
            .vault
            .seal_text(site, &totp_place("totp_secret", &id), secret)
            .await?;
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE agents SET totp_secret = $3, totp_pending = NULL, totp_last_step = $4 \
             WHERE agent_id = $1 AND site_id = $2",
        )
        .bind(&id)
        .bind(site.0)
        .bind(sealed)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Apply an admin's change to an agent with its `agent.updated` entry. When `end_sessions`
    /// is given (a `session.ended` entry without its session id), every session of the agent
    /// ends, each with its entry; their token hashes are returned. Refuses (`Conflict`) to
    /// disable or demote the site's last enabled admin; `NotFound`: no such agent on the site.
    pub async fn update_account(
        &self,
        site: SiteId,
        agent: AgentId,
        patch: &AccountPatch,
        audit: &AuditEntry,
        end_sessions: Option<&AuditEntry>,
    ) -> Result<Vec<String>> {
        let id = agent.to_string();
        let mut tx = self.write.begin().await?;
        // The entry first: appending takes the site's chain head, which on PostgreSQL holds a
        // row lock to the commit, so two changes of one site's admins cannot both pass the
        // last-admin check below.
        append_audit(&mut tx, audit).await?;
        let current = sqlx::query(
            "SELECT role, disabled, email FROM agents WHERE agent_id = $1 AND site_id = $2",
        )
        .bind(&id)
        .bind(site.0)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let role: String = current.try_get("role")?;
        let disabled = current.try_get::<i64, _>("disabled")? != 0;
        let email: String = current.try_get("email")?;
        let demotes = patch.role.is_some_and(|r| r != "admin");
        let disables = patch.disabled == Some(true);
        if role == "admin" && !disabled && (demotes || disables) {
            let others: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM agents WHERE site_id = $1 AND agent_id <> $2 \
                 AND role = 'admin' AND disabled = 0",
            )
            .bind(site.0)
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
            if others == 0 {
                return Err(StoreError::Conflict(
                    "this is the site's last enabled admin: make another agent admin first",
                ));
            }
        }
        if let Some(name) = &patch.name {
            set_text(
                &mut tx,
                "UPDATE agents SET name = $2 WHERE agent_id = $1",
                &id,
                name,
            )
            .await?;
        }
        if let Some(role) = patch.role {
            set_text(
                &mut tx,
                "UPDATE agents SET role = $2 WHERE agent_id = $1",
                &id,
                role,
            )
            .await?;
        }
        if let Some(hash) = &patch.password_hash {
            set_text(
                &mut tx,
                "UPDATE agents SET password_hash = $2 WHERE agent_id = $1",
                &id,
                hash,
            )
            .await?;
        }
        if let Some(d) = patch.disabled {
            sqlx::query("UPDATE agents SET disabled = $2 WHERE agent_id = $1")
                .bind(&id)
                .bind(i64::from(d))
                .execute(&mut *tx)
                .await?;
        }
        if patch.reset_totp {
            sqlx::query(
                "UPDATE agents SET totp_secret = NULL, totp_pending = NULL WHERE agent_id = $1",
            )
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        }
        if patch.unlock {
            sqlx::query("DELETE FROM login_failures WHERE site_id = $1 AND email_key = $2")
                .bind(site.0)
                .bind(email_key(&email))
                .execute(&mut *tx)
                .await?;
        }
        let hashes = match end_sessions {
            Some(ended) => end_agent_sessions(&mut tx, site, &id, ended).await?,
            None => Vec::new(),
        };
        tx.commit().await?;
        Ok(hashes)
    }
}

/// One `UPDATE agents SET … = $2 WHERE agent_id = $1` with a text value.
async fn set_text(
    conn: &mut AnyConnection,
    sql: &'static str,
    agent: &str,
    value: &str,
) -> Result<()> {
    sqlx::query(sql)
        .bind(agent)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
