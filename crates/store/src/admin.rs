//! Sites, agents, sessions, the login lockout, messengers and signing keys.

use base64::Engine as _;
use confidant_core::{AgentId, MessengerId, SiteId};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use crate::{
    AgentRow, MessengerRow, Result, SessionRow, SigningKeyRow, SiteRow, Store, StoreError,
    conflict_or, id_col,
};

fn site(r: &AnyRow) -> Result<SiteRow> {
    Ok(SiteRow {
        site_id: SiteId(r.try_get("site_id")?),
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
    })
}

fn agent(r: &AnyRow) -> Result<AgentRow> {
    Ok(AgentRow {
        agent_id: id_col(r, "agent_id")?,
        site_id: SiteId(r.try_get("site_id")?),
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        created_at: r.try_get("created_at")?,
    })
}

fn messenger(r: &AnyRow) -> Result<MessengerRow> {
    Ok(MessengerRow {
        messenger_id: id_col(r, "messenger_id")?,
        site_id: SiteId(r.try_get("site_id")?),
        name: r.try_get("name")?,
        security: r.try_get("security")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Login lockout state of one `(siteId, email)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginFailures {
    pub failures: i64,
    pub locked_until: i64,
}

impl Store {
    // ---- sites ----

    /// Create a site with the next id (10000 for the first).
    pub async fn create_site(&self, name: &str, now: i64) -> Result<SiteRow> {
        // MAX+1 under the one writer (SQLite); PostgreSQL retries if two nodes race.
        for _ in 0..5 {
            let r = sqlx::query(
                "INSERT INTO sites (site_id, name, created_at) \
                 SELECT COALESCE(MAX(site_id) + 1, 10000), $1, $2 FROM sites \
                 RETURNING site_id, name, created_at",
            )
            .bind(name)
            .bind(now)
            .fetch_one(&self.write)
            .await;
            match r {
                Ok(row) => return site(&row),
                Err(e) => match conflict_or(e, "site") {
                    StoreError::Conflict(_) => continue,
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Conflict("site id"))
    }

    pub async fn get_site(&self, site_id: SiteId) -> Result<Option<SiteRow>> {
        let row = sqlx::query("SELECT site_id, name, created_at FROM sites WHERE site_id = $1")
            .bind(site_id.0)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(site).transpose()
    }

    // ---- agents ----

    pub async fn create_agent(
        &self,
        site_id: SiteId,
        email: &str,
        name: &str,
        role: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<AgentRow> {
        let id = AgentId::new().to_string();
        let row = sqlx::query(concat!("INSERT INTO agents (agent_id, site_id, email, email_key, name, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ", agent_cols!()))
        .bind(&id)
        .bind(site_id.0)
        .bind(email)
        .bind(email_key(email))
        .bind(name)
        .bind(role)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(|e| conflict_or(e, "an agent with this email already exists on the site"))?;
        agent(&row)
    }

    /// The agent with this email on this site, with its password hash.
    pub async fn find_agent_for_login(
        &self,
        site_id: SiteId,
        email: &str,
    ) -> Result<Option<(AgentRow, String)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            agent_cols!(),
            ", password_hash FROM agents WHERE site_id = $1 AND email_key = $2"
        ))
        .bind(site_id.0)
        .bind(email_key(email))
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| Ok((agent(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    pub async fn list_agents(&self, site_id: SiteId) -> Result<Vec<AgentRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            agent_cols!(),
            " FROM agents WHERE site_id = $1 ORDER BY created_at"
        ))
        .bind(site_id.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(agent).collect()
    }

    /// Delete an agent and its sessions. Returns the session hashes that ended.
    pub async fn delete_agent(&self, site_id: SiteId, agent_id: AgentId) -> Result<Vec<String>> {
        let agent_id = agent_id.to_string();
        let mut tx = self.write.begin().await?;
        let hashes: Vec<String> =
            sqlx::query("SELECT token_hash FROM sessions WHERE agent_id = $1 AND site_id = $2")
                .bind(&agent_id)
                .bind(site_id.0)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get("token_hash"))
                .collect::<Result<_, _>>()?;
        sqlx::query("DELETE FROM sessions WHERE agent_id = $1 AND site_id = $2")
            .bind(&agent_id)
            .bind(site_id.0)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM agents WHERE agent_id = $1 AND site_id = $2")
            .bind(agent_id)
            .bind(site_id.0)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(hashes)
    }

    // ---- sessions ----

    pub async fn create_session(
        &self,
        token_hash: &str,
        agent: &AgentRow,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, agent_id, site_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(agent.agent_id.to_string())
            .bind(agent.site_id.0)
            .bind(now)
            .bind(expires_at)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// A live session by its token hash, with its agent.
    pub async fn get_session(&self, token_hash: &str, now: i64) -> Result<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT a.agent_id, a.site_id, a.email, a.name, a.role, a.created_at, s.expires_at \
             FROM sessions s JOIN agents a ON a.agent_id = s.agent_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(SessionRow {
                agent: agent(&r)?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// End a session. Returns whether one existed.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    // ---- login lockout ----

    pub async fn login_failures(&self, site_id: SiteId, email: &str) -> Result<LoginFailures> {
        let row = sqlx::query("SELECT failures, locked_until FROM login_failures WHERE site_id = $1 AND email_key = $2")
            .bind(site_id.0)
            .bind(email_key(email))
            .fetch_optional(&self.write)
            .await?;
        Ok(match row {
            Some(r) => LoginFailures {
                failures: r.try_get("failures")?,
                locked_until: r.try_get("locked_until")?,
            },
            None => LoginFailures::default(),
        })
    }

    /// Count one failed login; after `limit` in a row, lock until `now + lock_ms`.
    pub async fn record_login_failure(
        &self,
        site_id: SiteId,
        email: &str,
        now: i64,
        limit: i64,
        lock_ms: i64,
    ) -> Result<LoginFailures> {
        let row = sqlx::query(
            "INSERT INTO login_failures (site_id, email_key, failures, locked_until) VALUES ($1, $2, 1, 0) \
             ON CONFLICT (site_id, email_key) DO UPDATE SET failures = login_failures.failures + 1 \
             RETURNING failures, locked_until",
        )
        .bind(site_id.0)
        .bind(email_key(email))
        .fetch_one(&self.write)
        .await?;
        let mut state = LoginFailures {
            failures: row.try_get("failures")?,
            locked_until: row.try_get("locked_until")?,
        };
        if state.failures >= limit && state.locked_until <= now {
            state.locked_until = now + lock_ms;
            sqlx::query(
                "UPDATE login_failures SET locked_until = $3 WHERE site_id = $1 AND email_key = $2",
            )
            .bind(site_id.0)
            .bind(email_key(email))
            .bind(state.locked_until)
            .execute(&self.write)
            .await?;
        }
        Ok(state)
    }

    pub async fn reset_login_failures(&self, site_id: SiteId, email: &str) -> Result<()> {
        sqlx::query("DELETE FROM login_failures WHERE site_id = $1 AND email_key = $2")
            .bind(site_id.0)
            .bind(email_key(email))
            .execute(&self.write)
            .await?;
        Ok(())
    }

    // ---- messengers ----

    pub async fn create_messenger(
        &self,
        site_id: SiteId,
        name: &str,
        security_json: &str,
        now: i64,
    ) -> Result<MessengerRow> {
        let id = MessengerId(uuid::Uuid::new_v4()).to_string();
        let row = sqlx::query(concat!("INSERT INTO messengers (messenger_id, site_id, name, security, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING ", messenger_cols!()))
        .bind(&id)
        .bind(site_id.0)
        .bind(name)
        .bind(security_json)
        .bind(now)
        .fetch_one(&self.write)
        .await?;
        messenger(&row)
    }

    pub async fn get_messenger(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
    ) -> Result<Option<MessengerRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            messenger_cols!(),
            " FROM messengers WHERE messenger_id = $1 AND site_id = $2"
        ))
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(messenger).transpose()
    }

    /// The current version of a messenger's settings (a cheap freshness check for caches).
    pub async fn messenger_version(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
    ) -> Result<Option<i64>> {
        let row =
            sqlx::query("SELECT version FROM messengers WHERE messenger_id = $1 AND site_id = $2")
                .bind(messenger_id.to_string())
                .bind(site_id.0)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|r| r.try_get("version")).transpose()?)
    }

    pub async fn list_messengers(&self, site_id: SiteId) -> Result<Vec<MessengerRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            messenger_cols!(),
            " FROM messengers WHERE site_id = $1 ORDER BY created_at, messenger_id"
        ))
        .bind(site_id.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(messenger).collect()
    }

    pub async fn update_security(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        security_json: &str,
        now: i64,
    ) -> Result<MessengerRow> {
        let row = sqlx::query(concat!(
            "UPDATE messengers SET security = $3, version = version + 1, updated_at = $4 \
             WHERE messenger_id = $1 AND site_id = $2 RETURNING ",
            messenger_cols!()
        ))
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .bind(security_json)
        .bind(now)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref()
            .map(messenger)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    // ---- signing keys ----

    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>> {
        let rows = sqlx::query(
            "SELECT kid, pkcs8, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| {
                let b64: String = r.try_get("pkcs8")?;
                Ok(SigningKeyRow {
                    kid: r.try_get("kid")?,
                    pkcs8: base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| StoreError::Corrupt(format!("signing key: {e}")))?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Add a signing key and retire the ones before it; drop keys retired before `drop_before`.
    pub async fn rotate_signing_key(
        &self,
        key: &SigningKeyRow,
        now: i64,
        drop_before: i64,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
            .bind(drop_before)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO signing_keys (kid, pkcs8, created_at, retired_at) VALUES ($1, $2, $3, NULL)")
            .bind(&key.kid)
            .bind(base64::engine::general_purpose::STANDARD.encode(&key.pkcs8))
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Insert the first key only if there is none yet (several processes may start at once).
    pub async fn ensure_signing_key(&self, key: &SigningKeyRow) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let existing = sqlx::query("SELECT kid FROM signing_keys WHERE retired_at IS NULL")
            .fetch_optional(&mut *tx)
            .await?;
        if existing.is_none() {
            sqlx::query("INSERT INTO signing_keys (kid, pkcs8, created_at, retired_at) VALUES ($1, $2, $3, NULL)")
                .bind(&key.kid)
                .bind(base64::engine::general_purpose::STANDARD.encode(&key.pkcs8))
                .bind(key.created_at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Emails are matched without regard to case or surrounding space.
fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}
