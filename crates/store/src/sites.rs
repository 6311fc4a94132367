//! Sites (tenants): ids from 10000 up.

use confidant_core::SiteId;
use sqlx::FromRow as _;

use crate::{Result, SiteRow, Store, StoreError, conflict_or};

impl Store {
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
                Ok(row) => return Ok(SiteRow::from_row(&row)?),
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
