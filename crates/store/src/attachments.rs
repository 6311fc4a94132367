//! Attachments (CONTRACT §11): the rows that say whose the sealed bytes in the attachment store
//! are. The bytes themselves are the server's business (`confidant::attachments`); a message
//! claims its attachments with a trigger as it is inserted (migration 0007).

use confidant_core::{AttachmentId, ContactId, ConversationId, MessengerId, SiteId};
use sqlx::FromRow as _;
use uuid::Uuid;

use crate::vault::attachment_name_place;
use crate::{AttachmentMeta, AttachmentRow, Result, SenderType, Store, StoreError};

macro_rules! attachment_cols {
    () => {
        "attachment_id, site_id, messenger_id, contact_id, conversation_id, message_id, \
         uploader_type, uploader_id, filename, content_type, size, sha256, object_key, \
         key_version, created_at"
    };
}

/// An upload whose bytes are stored, to be recorded.
#[derive(Debug, Clone)]
pub struct NewAttachment {
    pub attachment_id: AttachmentId,
    pub site_id: SiteId,
    pub messenger_id: MessengerId,
    pub contact_id: ContactId,
    pub conversation_id: Option<ConversationId>,
    pub uploader_type: SenderType,
    pub uploader_id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub object_key: String,
    pub key_version: i64,
    pub created_at: i64,
}

/// The message column's form of a message's attachments: JSON with each filename sealed.
pub(crate) fn sealed_column(
    vault: &crate::Vault,
    site: SiteId,
    list: &[AttachmentMeta],
) -> std::result::Result<Option<String>, crate::VaultError> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut sealed = Vec::with_capacity(list.len());
    for a in list {
        sealed.push(AttachmentMeta {
            filename: vault.seal_loaded(
                site,
                &attachment_name_place(a.attachment_id),
                a.filename.as_bytes(),
            )?,
            ..a.clone()
        });
    }
    Ok(Some(serde_json::to_string(&sealed).map_err(|e| {
        crate::VaultError::DoesNotOpen(format!("attachments do not serialize: {e}"))
    })?))
}

/// Whether a database error is the claim trigger refusing an attachment (missing or taken).
pub(crate) fn is_unavailable_attachment(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("confidant_attachment_unavailable"))
}

impl Store {
    /// Record an upload whose bytes are durably stored.
    pub async fn insert_attachment(&self, a: &NewAttachment) -> Result<AttachmentRow> {
        let filename = self
            .vault
            .seal_text(
                a.site_id,
                &attachment_name_place(a.attachment_id),
                &a.filename,
            )
            .await?;
        sqlx::query(
            "INSERT INTO attachments (attachment_id, site_id, messenger_id, contact_id, \
             conversation_id, message_id, uploader_type, uploader_id, filename, content_type, \
             size, sha256, object_key, key_version, created_at) \
             VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(a.attachment_id.to_string())
        .bind(a.site_id.0)
        .bind(a.messenger_id.to_string())
        .bind(a.contact_id.to_string())
        .bind(a.conversation_id.map(|c| c.to_string()))
        .bind(a.uploader_type.as_str())
        .bind(a.uploader_id.to_string())
        .bind(filename)
        .bind(&a.content_type)
        .bind(a.size)
        .bind(&a.sha256)
        .bind(&a.object_key)
        .bind(a.key_version)
        .bind(a.created_at)
        .execute(&self.write)
        .await?;
        Ok(AttachmentRow {
            attachment_id: a.attachment_id,
            site_id: a.site_id,
            messenger_id: a.messenger_id,
            contact_id: a.contact_id,
            conversation_id: a.conversation_id,
            message_id: None,
            uploader_type: a.uploader_type,
            uploader_id: a.uploader_id,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
            object_key: a.object_key.clone(),
            key_version: a.key_version,
            created_at: a.created_at,
        })
    }

    /// The site's attachments with these ids (those that exist), filenames opened.
    pub async fn attachments(
        &self,
        site: SiteId,
        ids: &[AttachmentId],
    ) -> Result<Vec<AttachmentRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let json = serde_json::to_string(&list).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = match self.backend {
            crate::Backend::Sqlite => concat!(
                "SELECT ",
                attachment_cols!(),
                " FROM attachments WHERE site_id = $1 AND attachment_id IN \
                 (SELECT j.value FROM json_each($2) AS j)"
            ),
            crate::Backend::Postgres => concat!(
                "SELECT ",
                attachment_cols!(),
                " FROM attachments WHERE site_id = $1 AND attachment_id = ANY \
                 (ARRAY(SELECT j FROM json_array_elements_text($2::json) AS j))"
            ),
        };
        let rows = sqlx::query(sql)
            .bind(site.0)
            .bind(json)
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut a = AttachmentRow::from_row(r)?;
            a.filename = self
                .vault
                .open_text(&attachment_name_place(a.attachment_id), &a.filename)
                .await?;
            out.push(a);
        }
        Ok(out)
    }

    /// One attachment of the site.
    pub async fn attachment(
        &self,
        site: SiteId,
        id: AttachmentId,
    ) -> Result<Option<AttachmentRow>> {
        Ok(self.attachments(site, &[id]).await?.pop())
    }

    /// Delete the rows of attachments no message names that were uploaded before `cutoff`
    /// (Unix ms), at most `limit` of them; their object keys, for the caller to delete the
    /// bytes. A message that claims one at the same moment either wins (the row stays) or
    /// finds it gone (its send is refused).
    pub async fn delete_unreferenced_attachments(
        &self,
        cutoff: i64,
        limit: i64,
    ) -> Result<Vec<String>> {
        use sqlx::Row as _;
        let rows = sqlx::query(
            "DELETE FROM attachments WHERE attachment_id IN (SELECT attachment_id FROM \
             attachments WHERE message_id IS NULL AND created_at < $1 ORDER BY created_at \
             LIMIT $2) AND message_id IS NULL RETURNING object_key",
        )
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.write)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("object_key").map_err(Into::into))
            .collect()
    }

    /// Which of these object keys no attachment row names (bytes left behind by a crash
    /// between storing the bytes and recording them, or between deleting the row and the bytes).
    pub async fn unknown_object_keys(&self, keys: &[String]) -> Result<Vec<String>> {
        use sqlx::Row as _;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let json = serde_json::to_string(keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = match self.backend {
            crate::Backend::Sqlite => {
                "SELECT j.value AS k FROM json_each($1) AS j WHERE NOT EXISTS \
                 (SELECT 1 FROM attachments a WHERE a.object_key = j.value)"
            }
            crate::Backend::Postgres => {
                "SELECT j AS k FROM json_array_elements_text($1::json) AS j WHERE NOT EXISTS \
                 (SELECT 1 FROM attachments a WHERE a.object_key = j)"
            }
        };
        let rows = sqlx::query(sql).bind(json).fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("k").map_err(Into::into))
            .collect()
    }
}
