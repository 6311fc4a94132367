//! Sites (tenants): ids from 10000 up.

use confidant_core::SiteId;
use sqlx::FromRow as _;

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
