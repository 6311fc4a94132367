//! Agents, their sessions, and the login lockout per `(siteId, email)`.

use confidant_core::{AgentId, SiteId};
use sqlx::{FromRow as _, Row as _};

use crate::audit::{AuditEntry, append_audit};
use crate::{AgentRow, LoginFailures, Result, Store, StoreError, conflict_or};

impl Store {
    /// A new agent, with its `agent.created` entry in the same transaction.
    #[expect(
        clippy::too_many_arguments,
        reason = "the agent's columns, then its entry"
    )]
    pub async fn create_agent(
        &self,
        site_id: SiteId,
        email: &str,
        name: &str,
        role: &str,
        password_hash: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<AgentRow> {
        let id = AgentId::new().to_string();
        let mut tx = self.write.begin().await?;
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
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "an agent with this email already exists on the site"))?;
        let agent = AgentRow::from_row(&row)?;
        let mut entry = audit.clone();
        if let Some(t) = entry.target.as_object_mut() {
            t.insert("agentId".into(), id.into());
        }
        append_audit(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(agent)
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
        row.map(|r| Ok((AgentRow::from_row(&r)?, r.try_get("password_hash")?)))
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
        Ok(rows
            .iter()
            .map(AgentRow::from_row)
            .collect::<Result<_, _>>()?)
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

    // ---- WebSocket tickets (sessions themselves: accounts.rs) ----

    /// A single-use ticket for the session `token_hash`, until `expires_at`. Expired tickets
    /// are purged on the way.
    pub async fn create_ws_ticket(
        &self,
        ticket_hash: &str,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM ws_tickets WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.write)
            .await?;
        sqlx::query(
            "INSERT INTO ws_tickets (ticket_hash, token_hash, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(ticket_hash)
        .bind(token_hash)
        .bind(expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Use a ticket: it is deleted whatever it holds, and its session's token hash is returned
    /// if it had not expired. Only one caller can ever get it (one `DELETE … RETURNING`).
    pub async fn take_ws_ticket(&self, ticket_hash: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query(
            "DELETE FROM ws_tickets WHERE ticket_hash = $1 RETURNING token_hash, expires_at",
        )
        .bind(ticket_hash)
        .fetch_optional(&self.write)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: i64 = row.try_get("expires_at")?;
        Ok((expires_at > now)
            .then(|| row.try_get("token_hash"))
            .transpose()?)
    }

    // ---- login lockout ----

    pub async fn login_failures(&self, site_id: SiteId, email: &str) -> Result<LoginFailures> {
        let row = sqlx::query_as("SELECT failures, locked_until FROM login_failures WHERE site_id = $1 AND email_key = $2")
            .bind(site_id.0)
            .bind(email_key(email))
            .fetch_optional(&self.write)
            .await?;
        Ok(row.unwrap_or_default())
    }

    /// Forget failure counts last touched before `before` whose lock, if any, has run out by
    /// `now`: a guesser of unknown emails otherwise leaves one row per email for ever.
    /// Returns how many rows went.
    pub async fn purge_login_failures(&self, before: i64, now: i64) -> Result<u64> {
        let r =
            sqlx::query("DELETE FROM login_failures WHERE updated_at < $1 AND locked_until <= $2")
                .bind(before)
                .bind(now)
                .execute(&self.write)
                .await?;
        Ok(r.rows_affected())
    }
}

/// Emails are matched without regard to case or surrounding space.
pub(crate) fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use crate::batch::tests::{finish, stores};

    #[tokio::test]
    async fn old_unlocked_failure_rows_are_purged_and_the_rest_kept() {
        for (backend, f) in stores().await {
            let (store, site) = (&f.store, f.site);
            let lock_ms = 1_000_000_000;
            store
                .login_failed(site, "old@x.test", 1_000, (6, lock_ms), None)
                .await
                .expect("failure");
            for _ in 0..6 {
                store
                    .login_failed(site, "locked@x.test", 1_000, (6, lock_ms), None)
                    .await
                    .expect("failure");
            }
            store
                .login_failed(site, "recent@x.test", 50_000, (6, lock_ms), None)
                .await
                .expect("failure");

            let purged = store
                .purge_login_failures(10_000, 100_000)
                .await
                .expect("purge");
            assert_eq!(purged, 1, "{backend}");
            let count = |email: &'static str| async move {
                store
                    .login_failures(site, email)
                    .await
                    .expect("read")
                    .failures
            };
            assert_eq!(count("old@x.test").await, 0, "{backend}");
            assert_eq!(count("locked@x.test").await, 6, "{backend}: still locked");
            assert_eq!(count("recent@x.test").await, 1, "{backend}: too recent");
            finish(f).await;
        }
    }
}
