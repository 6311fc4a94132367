//! Messengers and their stored Security settings.

use confidant_core::{MessengerId, SiteId};
use sqlx::{FromRow as _, Row as _};

use crate::{MessengerRow, Result, Store, StoreError};

impl Store {
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
        Ok(MessengerRow::from_row(&row)?)
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
        Ok(row.as_ref().map(MessengerRow::from_row).transpose()?)
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
        Ok(rows
            .iter()
            .map(MessengerRow::from_row)
            .collect::<Result<_, _>>()?)
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
            .map(MessengerRow::from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }
}
