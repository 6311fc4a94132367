//! Sites (tenants): ids from 10000 up.

use confidant_core::SiteId;
use sqlx::FromRow as _;

use crate::audit::{AuditEntry, append_audit};
use crate::{Result, SiteRow, Store, StoreError, conflict_or};

impl Store {
    /// Create a site with the next id (10000 for the first).
    pub async fn create_site(&self, name: &str, now: i64) -> Result<SiteRow> {
        self.insert_site(name, now, false).await
    }

    /// Create the demo's site, marked as the demo's in the same transaction (CONTRACT §9).
    pub async fn create_demo_site(&self, name: &str, now: i64) -> Result<SiteRow> {
        self.insert_site(name, now, true).await
    }

    /// How many sites `confidant demo` did not make.
    pub async fn count_sites_not_made_by_demo(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sites WHERE site_id NOT IN (SELECT site_id FROM demo_sites)",
        )
        .fetch_one(&self.write)
        .await?;
        Ok(n)
    }

    async fn insert_site(&self, name: &str, now: i64, demo: bool) -> Result<SiteRow> {
        // MAX+1 under the one writer (SQLite); PostgreSQL retries if two nodes race.
        for _ in 0..5 {
            let mut tx = self.write.begin().await?;
            let r = sqlx::query(
                "INSERT INTO sites (site_id, name, created_at) \
                 SELECT COALESCE(MAX(site_id) + 1, 10000), $1, $2 FROM sites \
                 RETURNING site_id, name, created_at",
            )
            .bind(name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await;
            match r {
                Ok(row) => {
                    let site = SiteRow::from_row(&row)?;
                    if demo {
                        sqlx::query("INSERT INTO demo_sites (site_id) VALUES ($1)")
                            .bind(site.site_id.0)
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    return Ok(site);
                }
                Err(e) => match conflict_or(e, "site") {
                    // Another process took this id at the same moment: try the next one.
                    StoreError::Conflict(_) => {}
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
        Ok(row.as_ref().map(SiteRow::from_row).transpose()?)
    }
}

/// A site's settings (CONTRACT §12). `None` idle timeout: the default, [`DEFAULT_IDLE_MINUTES`];
/// `None` retention: keep everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SiteSettings {
    pub idle_timeout_minutes: Option<i64>,
    pub require_totp: bool,
    pub retention_days: Option<i64>,
}

/// An agent session idle this long ends (CONTRACT §12), unless the site says otherwise.
pub const DEFAULT_IDLE_MINUTES: i64 = 60;

impl SiteSettings {
    /// The idle timeout in force, in minutes.
    pub fn idle_minutes(&self) -> i64 {
        self.idle_timeout_minutes.unwrap_or(DEFAULT_IDLE_MINUTES)
    }
}

impl Store {
    /// The site's settings; `None`: no such site.
    pub async fn site_settings(&self, site_id: SiteId) -> Result<Option<SiteSettings>> {
        let row: Option<(Option<i64>, i64, Option<i64>)> = sqlx::query_as(
            "SELECT idle_timeout_minutes, require_totp, retention_days FROM sites WHERE site_id = $1",
        )
        .bind(site_id.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|(idle, totp, retention)| SiteSettings {
            idle_timeout_minutes: idle,
            require_totp: totp != 0,
            retention_days: retention,
        }))
    }

    /// Every site with a retention period, with it (for the retention pass).
    pub async fn sites_with_retention(&self) -> Result<Vec<(SiteId, i64)>> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT site_id, retention_days FROM sites WHERE retention_days IS NOT NULL ORDER BY site_id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(s, d)| (SiteId(s), d)).collect())
    }

    /// Store the site's settings with their audit entry, in one transaction.
    pub async fn put_site_settings(
        &self,
        site_id: SiteId,
        settings: SiteSettings,
        audit: &AuditEntry,
    ) -> Result<SiteSettings> {
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "UPDATE sites SET idle_timeout_minutes = $2, require_totp = $3, retention_days = $4 \
             WHERE site_id = $1",
        )
        .bind(site_id.0)
        .bind(settings.idle_timeout_minutes)
        .bind(i64::from(settings.require_totp))
        .bind(settings.retention_days)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(settings)
    }
}
