//! The access-token signing keys (process-wide, not per site).

use base64::Engine as _;
use sqlx::Row as _;

use crate::{Result, SigningKeyRow, Store, StoreError};

impl Store {
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
        insert_active(&mut tx, key).await?;
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
            insert_active(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Store `key` as the active signing key (its PKCS#8 as base64 text).
async fn insert_active(tx: &mut sqlx::AnyConnection, key: &SigningKeyRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, pkcs8, created_at, retired_at) VALUES ($1, $2, $3, NULL)",
    )
    .bind(&key.kid)
    .bind(base64::engine::general_purpose::STANDARD.encode(&key.pkcs8))
    .bind(key.created_at)
    .execute(tx)
    .await?;
    Ok(())
}
