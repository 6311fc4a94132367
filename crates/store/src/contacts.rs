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
}
