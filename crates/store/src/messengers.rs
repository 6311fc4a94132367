//! Messengers and their stored Security settings.

use confidant_core::{MessengerId, SiteId};
use sqlx::{FromRow as _, Row as _};

use crate::audit::{AuditEntry, append_audit};
use crate::{MessengerRow, Result, Store, StoreError};

impl Store {
    /// Create a messenger; `audit` (its target gets the new `messengerId`) is appended in the
    /// same transaction.
    pub async fn create_messenger(
        &self,
        site_id: SiteId,
        name: &str,
        security_json: &str,
        now: i64,
        audit: Option<AuditEntry>,
    ) -> Result<MessengerRow> {
        let id = MessengerId(uuid::Uuid::new_v4()).to_string();
        let sealed = self
            .vault
            .seal_text(site_id, &security_place(&id), security_json)
            .await?;
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(concat!("INSERT INTO messengers (messenger_id, site_id, name, security, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING ", messenger_cols!()))
        .bind(&id)
        .bind(site_id.0)
        .bind(name)
        .bind(sealed)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let mut row = MessengerRow::from_row(&row)?;
        if let Some(mut entry) = audit {
            if let Some(target) = entry.target.as_object_mut() {
                target.insert("messengerId".into(), id.clone().into());
            }
            append_audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        row.security = security_json.to_owned();
        Ok(row)
    }

    pub async fn get_messenger(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
    ) -> Result<Option<MessengerRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            messenger_cols!(),
            " FROM messengers WHERE messenger_id = $1 AND site_id = $2 AND deleted_at IS NULL"
        ))
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .fetch_optional(&self.read)
        .await?;
        match row.as_ref().map(MessengerRow::from_row).transpose()? {
            Some(m) => Ok(Some(self.open_security(m).await?)),
            None => Ok(None),
        }
    }

    /// The current version of a messenger's settings (a cheap freshness check for caches).
    pub async fn messenger_version(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
    ) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT version FROM messengers WHERE messenger_id = $1 AND site_id = $2 \
             AND deleted_at IS NULL",
        )
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
            " FROM messengers WHERE site_id = $1 AND deleted_at IS NULL \
             ORDER BY created_at, messenger_id"
        ))
        .bind(site_id.0)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.open_security(MessengerRow::from_row(r)?).await?);
        }
        Ok(out)
    }

    /// Replace a messenger's Security JSON and apply `rollover` to its previous validation,
    /// with `audit`, in one transaction; the version moves on so every cache rebuilds.
    pub async fn update_security(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        security_json: &str,
        rollover: Rollover<'_>,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<MessengerRow> {
        let sealed = self
            .vault
            .seal_text(site_id, &security_place(&messenger_id), security_json)
            .await?;
        let previous = match rollover {
            Rollover::Start {
                validation_json,
                until,
            } => Some((
                self.vault
                    .seal_text(site_id, &previous_place(&messenger_id), validation_json)
                    .await?,
                until,
            )),
            Rollover::Keep | Rollover::Clear => None,
        };
        let mut tx = self.write.begin().await?;
        let sql = match (&rollover, &previous) {
            (Rollover::Keep, _) => concat!(
                "UPDATE messengers SET security = $3, version = version + 1, updated_at = $4 \
                 WHERE messenger_id = $1 AND site_id = $2 RETURNING ",
                messenger_cols!()
            ),
            (_, None) => concat!(
                "UPDATE messengers SET security = $3, version = version + 1, updated_at = $4, \
                 previous_validation = NULL, previous_until = NULL \
                 WHERE messenger_id = $1 AND site_id = $2 RETURNING ",
                messenger_cols!()
            ),
            (_, Some(_)) => concat!(
                "UPDATE messengers SET security = $3, version = version + 1, updated_at = $4, \
                 previous_validation = $5, previous_until = $6 \
                 WHERE messenger_id = $1 AND site_id = $2 RETURNING ",
                messenger_cols!()
            ),
        };
        let mut query = sqlx::query(sql)
            .bind(messenger_id.to_string())
            .bind(site_id.0)
            .bind(sealed)
            .bind(now);
        if let Some((sealed_previous, until)) = previous {
            query = query.bind(sealed_previous).bind(until);
        }
        let row = query.fetch_optional(&mut *tx).await?;
        self.audited(tx, row, audit)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// End a messenger's rollover now (its previous validation stops verifying), with `audit`;
    /// `None` when none is running at `now_secs`.
    pub async fn end_rollover(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<Option<MessengerRow>> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(concat!(
            "UPDATE messengers SET previous_validation = NULL, previous_until = NULL, \
             version = version + 1, updated_at = $3 \
             WHERE messenger_id = $1 AND site_id = $2 AND previous_until > $4 RETURNING ",
            messenger_cols!()
        ))
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .bind(now)
        .bind(now.div_euclid(1000))
        .fetch_optional(&mut *tx)
        .await?;
        self.audited(tx, row, audit).await
    }

    /// Forget the previous validations whose rollover ended before `now_secs` (their secrets
    /// leave the database). Readers already ignore them, so the version stays.
    pub async fn purge_ended_rollovers(&self, now_secs: i64) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE messengers SET previous_validation = NULL, previous_until = NULL \
             WHERE previous_until <= $1",
        )
        .bind(now_secs)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Rename a live messenger of the site, with its audit entry, in one transaction. The
    /// version moves, so cached copies (the frame's config shows the name) are rebuilt.
    /// `NotFound` if the site has no such messenger (or it was deleted).
    pub async fn rename_messenger(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        name: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<MessengerRow> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(concat!(
            "UPDATE messengers SET name = $3, version = version + 1, updated_at = $4 \
             WHERE messenger_id = $1 AND site_id = $2 AND deleted_at IS NULL RETURNING ",
            messenger_cols!()
        ))
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .bind(name)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        self.audited(tx, row, audit)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The end of an audited messenger update: the row its `UPDATE … RETURNING` gave (`None`:
    /// nothing matched, and the transaction rolls back), its audit entry in the same
    /// transaction, the commit, and the row with its Security opened.
    async fn audited(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        row: Option<sqlx::any::AnyRow>,
        audit: &AuditEntry,
    ) -> Result<Option<MessengerRow>> {
        let Some(row) = row.as_ref().map(MessengerRow::from_row).transpose()? else {
            return Ok(None);
        };
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(self.open_security(row).await?))
    }

    /// Delete a live messenger of the site, with its audit entry (built from the row as it
    /// was), in one transaction: the row stays for its conversations, marked deleted, with its
    /// Security JSON (and so its shared secret) overwritten and its notice settings gone.
    /// `NotFound` if the site has no such messenger (or it was deleted already).
    pub async fn delete_messenger(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        now: i64,
        entry: impl FnOnce(&MessengerRow) -> AuditEntry,
    ) -> Result<MessengerRow> {
        let wiped = self
            .vault
            .seal_text(site_id, &security_place(&messenger_id), "{}")
            .await?;
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(concat!(
            "SELECT ",
            messenger_cols!(),
            " FROM messengers WHERE messenger_id = $1 AND site_id = $2 AND deleted_at IS NULL"
        ))
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let row = row
            .as_ref()
            .map(MessengerRow::from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)?;
        // Guarded again: of two racing deletes, one finds nothing to delete.
        let done = sqlx::query(
            "UPDATE messengers SET deleted_at = $3, security = $4, version = version + 1, \
             updated_at = $3 WHERE messenger_id = $1 AND site_id = $2 AND deleted_at IS NULL",
        )
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .bind(now)
        .bind(wiped)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM messenger_notifications WHERE messenger_id = $1 AND site_id = $2")
            .bind(messenger_id.to_string())
            .bind(site_id.0)
            .execute(&mut *tx)
            .await?;
        append_audit(&mut tx, &entry(&row)).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// A messenger row as read, with its Security JSON opened (it holds the shared secret, so
    /// it is stored sealed as a whole).
    async fn open_security(&self, mut m: MessengerRow) -> Result<MessengerRow> {
        m.security = self
            .vault
            .open_text(&security_place(&m.messenger_id), &m.security)
            .await?;
        if let Some((sealed, until)) = m.previous_validation.take() {
            let json = self
                .vault
                .open_text(&previous_place(&m.messenger_id), &sealed)
                .await?;
            m.previous_validation = Some((json, until));
        }
        Ok(m)
    }
}

/// What a Security change does to the messenger's previous validation (CONTRACT §5).
#[derive(Debug, Clone, Copy)]
pub enum Rollover<'a> {
    /// The validation is unchanged: a running rollover goes on as it was.
    Keep,
    /// A new validation without a rollover: the previous one stops at once.
    Clear,
    /// A new validation with a rollover: `validation_json` (the replaced validation) verifies
    /// until `until` (Unix seconds).
    Start {
        validation_json: &'a str,
        until: i64,
    },
}

fn security_place(messenger_id: &impl std::fmt::Display) -> String {
    crate::place("messengers.security", messenger_id)
}

fn previous_place(messenger_id: &impl std::fmt::Display) -> String {
    crate::place("messengers.previous_validation", messenger_id)
}
