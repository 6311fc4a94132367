//! Contacts: one per `(siteId, identity)`.

use confidant_core::{ContactAttributes, ContactId, SiteId};
use sqlx::FromRow as _;

use crate::{ContactRow, Result, Store, StoreError};

fn attrs_json(a: &ContactAttributes) -> String {
    serde_json::to_string(a).unwrap_or_else(|_| "{}".to_owned())
}

impl Store {
    pub async fn find_contact(
        &self,
        site_id: SiteId,
        identity: &str,
    ) -> Result<Option<ContactRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            contact_cols!(),
            " FROM contacts WHERE site_id = $1 AND identity = $2"
        ))
        .bind(site_id.0)
        .bind(identity)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(ContactRow::from_row).transpose()?)
    }

    pub async fn get_contact(
        &self,
        site_id: SiteId,
        contact_id: ContactId,
    ) -> Result<Option<ContactRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            contact_cols!(),
            " FROM contacts WHERE site_id = $1 AND contact_id = $2"
        ))
        .bind(site_id.0)
        .bind(contact_id.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(ContactRow::from_row).transpose()?)
    }

    /// Find or create the contact and apply the token's attributes. Writes only when something
    /// changes; `known` is what the caller already read (saves a read on the common path).
    pub async fn upsert_contact(
        &self,
        site_id: SiteId,
        identity: &str,
        update: &ContactAttributes,
        known: Option<ContactRow>,
        now: i64,
    ) -> Result<ContactRow> {
        let existing = match known {
            Some(c) => Some(c),
            None => {
                let id = ContactId(uuid::Uuid::new_v4()).to_string();
                let inserted = sqlx::query(concat!("INSERT INTO contacts (contact_id, site_id, identity, attributes, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (site_id, identity) DO NOTHING RETURNING ", contact_cols!()))
                .bind(&id)
                .bind(site_id.0)
                .bind(identity)
                .bind(attrs_json(update))
                .bind(now)
                .fetch_optional(&self.write)
                .await?;
                match inserted {
                    Some(row) => return Ok(ContactRow::from_row(&row)?),
                    // Another request created it first.
                    None => {
                        let row = sqlx::query(concat!(
                            "SELECT ",
                            contact_cols!(),
                            " FROM contacts WHERE site_id = $1 AND identity = $2"
                        ))
                        .bind(site_id.0)
                        .bind(identity)
                        .fetch_one(&self.write)
                        .await?;
                        Some(ContactRow::from_row(&row)?)
                    }
                }
            }
        };
        let Some(existing) = existing else {
            return Err(StoreError::NotFound);
        };
        let Some(merged) = existing.attributes.merged(update) else {
            return Ok(existing);
        };
        // Merge in SQL terms is last-writer-wins per contact; the token carries the full truth.
        let row = sqlx::query(concat!("UPDATE contacts SET attributes = $3, updated_at = $4 WHERE site_id = $1 AND contact_id = $2 RETURNING ", contact_cols!()))
        .bind(site_id.0)
        .bind(existing.contact_id.to_string())
        .bind(attrs_json(&merged))
        .bind(now)
        .fetch_one(&self.write)
        .await?;
        Ok(ContactRow::from_row(&row)?)
    }

    /// Contacts of the site whose identity or an attribute value contains `text` (ignoring
    /// case), most recently updated first, at most `limit` (CONTRACT §14).
    pub async fn search_contacts(
        &self,
        site_id: SiteId,
        text: &str,
        limit: usize,
    ) -> Result<Vec<ContactRow>> {
        let needle = text.to_lowercase();
        let pattern = format!(
            "%{}%",
            needle
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        // The LIKE narrows (it also matches attribute names and JSON escapes); the check below
        // decides, on the values alone.
        let rows = sqlx::query(concat!(
            "SELECT ",
            contact_cols!(),
            " FROM contacts WHERE site_id = $1 AND (LOWER(identity) LIKE $2 ESCAPE '\\' \
              OR LOWER(attributes) LIKE $2 ESCAPE '\\') ORDER BY updated_at DESC, contact_id LIMIT $3"
        ))
        .bind(site_id.0)
        .bind(pattern)
        .bind((limit * 10) as i64)
        .fetch_all(&self.read)
        .await?;
        let mut found = Vec::new();
        for row in &rows {
            let c = ContactRow::from_row(row)?;
            let hit = c.identity.to_lowercase().contains(&needle)
                || c.attributes
                    .0
                    .values()
                    .any(|v| v.to_lowercase().contains(&needle));
            if hit {
                found.push(c);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }
}
