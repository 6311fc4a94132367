//! A messenger's appearance and availability settings (title, greeting, colour, business hours),
//! stored as JSON that `confidant_core::appearance` parses.

use confidant_core::{MessengerId, SiteId};
use sqlx::Row as _;

use crate::audit::{AuditEntry, append_audit};
use crate::{Result, Store, StoreError};

impl Store {
    /// The stored appearance JSON of a messenger of the site (`None`: never set).
    pub async fn appearance_settings(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT settings FROM messenger_appearance WHERE messenger_id = $1 AND site_id = $2",
        )
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.try_get("settings")).transpose()?)
    }

    /// Replace a messenger's appearance, with its audit entry; `NotFound` when the site has no
    /// such messenger.
    pub async fn put_appearance_settings(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        settings_json: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let exists =
            sqlx::query("SELECT 1 FROM messengers WHERE messenger_id = $1 AND site_id = $2")
                .bind(messenger_id.to_string())
                .bind(site_id.0)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO messenger_appearance (messenger_id, site_id, settings, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (messenger_id) \
             DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
        )
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .bind(settings_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
