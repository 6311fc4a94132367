//! The access-token signing keys (process-wide, not per site), their PKCS#8 sealed under the
//! server's own data key (vault.rs).

use sqlx::Row as _;

use crate::{Result, SigningKeyRow, Store};

impl Store {
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>> {
        let rows = sqlx::query(
            "SELECT kid, pkcs8, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.write)
        .await?;
        let mut keys = Vec::with_capacity(rows.len());
        for r in &rows {
            let sealed: String = r.try_get("pkcs8")?;
            let kid: String = r.try_get("kid")?;
            keys.push(SigningKeyRow {
                pkcs8: self.vault.open(&pkcs8_place(&kid), &sealed).await?,
                kid,
                created_at: r.try_get("created_at")?,
                retired_at: r.try_get("retired_at")?,
            });
        }
        Ok(keys)
    }

    /// Add a signing key and retire the ones before it; drop keys retired before `drop_before`.
    /// Every site's audit log gets a `keys.rotated` entry by `actor` (the keys sign the access
    /// tokens of every site), in the same transaction. `now` is in seconds.
    pub async fn rotate_signing_key(
        &self,
        key: &SigningKeyRow,
        now: i64,
        drop_before: i64,
        actor: crate::Actor,
    ) -> Result<()> {
        let sealed = self.seal_pkcs8(key).await?;
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at < $1")
            .bind(drop_before)
            .execute(&mut *tx)
            .await?;
        insert_active(&mut tx, key, sealed).await?;
        crate::audit::append_audit_to_every_site(
            &mut tx,
            now * 1000,
            &actor,
            "keys.rotated",
            &serde_json::json!({"kid": key.kid, "key": "access-token signing key"}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The key's PKCS#8, sealed under the server's own data key (before a transaction takes
    /// the connection: on SQLite, making the data key needs the one writing connection).
    async fn seal_pkcs8(&self, key: &SigningKeyRow) -> Result<String> {
        Ok(self
            .vault
            .seal(crate::SYSTEM_SITE, &pkcs8_place(&key.kid), &key.pkcs8)
            .await?)
    }

    /// Insert the first key only if there is none yet (several processes may start at once).
    pub async fn ensure_signing_key(&self, key: &SigningKeyRow) -> Result<()> {
        let sealed = self.seal_pkcs8(key).await?;
        let mut tx = self.write.begin().await?;
        let existing = sqlx::query("SELECT kid FROM signing_keys WHERE retired_at IS NULL")
            .fetch_optional(&mut *tx)
            .await?;
        if existing.is_none() {
            insert_active(&mut tx, key, sealed).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn pkcs8_place(kid: &str) -> String {
    crate::place("signing_keys.pkcs8", kid)
}

/// Store `key` as the active signing key (its PKCS#8 `sealed`).
async fn insert_active(
    tx: &mut sqlx::AnyConnection,
    key: &SigningKeyRow,
    sealed: String,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, pkcs8, created_at, retired_at) VALUES ($1, $2, $3, NULL)",
    )
    .bind(&key.kid)
    .bind(sealed)
    .bind(key.created_at)
    .execute(tx)
    .await?;
    Ok(())
}
