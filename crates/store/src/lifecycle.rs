//! Data lifecycle (CONTRACT §14): a contact's conversations for its export, the erasure of a
//! contact, and the retention pass's deletes.
//!
//! - Erasure is one transaction: the contact, its conversations, their messages, every
//!   attachment row of the contact or of its conversations, its presence rows, and every
//!   queued job whose key or payload names the contact or one of its conversations (event,
//!   webhook and notice jobs carry those ids), then the audit entry. The caller deletes the
//!   attachment bytes after the commit (the attachment sweep removes bytes no row names, should
//!   the process die in between). On PostgreSQL the transaction locks the contact's
//!   conversations and then the contact itself before deleting: a send racing the erasure
//!   either commits first (and its message or new conversation is deleted with the rest) or
//!   waits and then fails its foreign key (a message needs its conversation, a conversation its
//!   contact), so no orphan is left. SQLite's one writer serializes the two the same way.
//! - Retention deletes in bounded batches, each its own short transaction (the SQLite writer
//!   is shared with every send): messages [`PURGE_MESSAGES`] at a time, then the conversations
//!   with their attachment rows and jobs. Each batch re-checks that its conversations are
//!   still closed and old.

use confidant_core::{ContactId, ConversationId, SiteId};
use sqlx::{AnyConnection, FromRow as _, Row as _};

use crate::audit::{AuditEntry, append_audit};
use crate::{Backend, ConversationRow, Result, Store, StoreError};

/// Messages one retention batch deletes at most.
pub const PURGE_MESSAGES: i64 = 2_000;

/// What an erasure removed.
#[derive(Debug, Clone, Default)]
pub struct Erased {
    pub conversations: u64,
    pub messages: u64,
    pub attachments: u64,
    pub jobs: u64,
    /// The identity the contact had (for the callers' caches; never logged or audited).
    pub identity: String,
    /// The attachment objects whose bytes the caller deletes now.
    pub object_keys: Vec<String>,
}

/// What one retention batch of conversations removed.
#[derive(Debug, Clone, Default)]
pub struct PurgedBatch {
    pub conversations: u64,
    pub messages: u64,
    pub attachments: u64,
    pub object_keys: Vec<String>,
}

/// `$n` as a list of ids, from a JSON array of strings bound there.
/// `before` + the ids in the JSON array `$n` + `after`, in the SQL of the backend (`pg`).
macro_rules! in_ids {
    ($pg:expr, $before:literal, $n:literal $(, $after:literal)?) => {
        if $pg {
            concat!($before, id_list!(postgres, $n) $(, $after)?)
        } else {
            concat!($before, id_list!(sqlite, $n) $(, $after)?)
        }
    };
}

macro_rules! id_list {
    (sqlite, $n:literal) => {
        concat!("(SELECT j.value FROM json_each(", $n, ") AS j)")
    };
    (postgres, $n:literal) => {
        concat!(
            "(SELECT j FROM json_array_elements_text(",
            $n,
            "::json) AS j)"
        )
    };
}

/// Jobs of site $1 whose key or payload holds one of the ids in $2.
macro_rules! jobs_naming {
    (sqlite) => {
        "DELETE FROM jobs WHERE site_id = $1 AND EXISTS (SELECT 1 FROM json_each($2) AS j \
         WHERE instr(jobs.payload, j.value) > 0 OR instr(COALESCE(jobs.job_key, ''), j.value) > 0)"
    };
    (postgres) => {
        "DELETE FROM jobs WHERE site_id = $1 AND EXISTS (SELECT 1 FROM \
         json_array_elements_text($2::json) AS j WHERE strpos(jobs.payload, j) > 0 \
         OR strpos(COALESCE(jobs.job_key, ''), j) > 0)"
    };
}

fn json_ids<T: ToString>(ids: &[T]) -> Result<String> {
    let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
    serde_json::to_string(&list).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Whether PostgreSQL gave up a transaction to break a deadlock (worth one more try).
fn is_deadlock(e: &StoreError) -> bool {
    matches!(e, StoreError::Db(sqlx::Error::Database(d)) if d.code().as_deref() == Some("40P01"))
}

impl Store {
    /// A transaction that reads and then writes. SQLite: `BEGIN IMMEDIATE` takes the write lock
    /// first (waiting under `busy_timeout`); a deferred one would fail at its first write with
    /// `SQLITE_BUSY_SNAPSHOT` whenever another connection (another process on the same file)
    /// wrote after its first read.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.write.begin().await?,
        })
    }

    /// Every conversation of the contact (all messengers, open and closed, previews too),
    /// oldest first.
    pub async fn contact_conversations_all(
        &self,
        site: SiteId,
        contact: ContactId,
    ) -> Result<Vec<ConversationRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            conv_cols!(),
            " FROM conversations WHERE site_id = $1 AND contact_id = $2 \
             ORDER BY created_at, conversation_id"
        ))
        .bind(site.0)
        .bind(contact.to_string())
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(ConversationRow::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Erase the contact and everything of it (see the module's doc), with `audit`, in one
    /// transaction. `None`: the site has no such contact.
    pub async fn erase_contact(
        &self,
        site: SiteId,
        contact: ContactId,
        audit: &AuditEntry,
    ) -> Result<Option<Erased>> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.erase_once(site, contact, audit).await {
                Err(e) if tries < 3 && is_deadlock(&e) => {
                    tracing::info!("erasure met a deadlock with a send; trying again");
                }
                other => return other,
            }
        }
    }

    async fn erase_once(
        &self,
        site: SiteId,
        contact: ContactId,
        audit: &AuditEntry,
    ) -> Result<Option<Erased>> {
        let pg = self.backend == Backend::Postgres;
        let id = contact.to_string();
        let mut tx = self.begin_write().await?;
        // PostgreSQL: the conversations first (in id order, as the send path locks them), then
        // the contact (no new conversation of it from now on), then any conversation opened
        // in between.
        let conversations_sql = if pg {
            "SELECT conversation_id FROM conversations WHERE site_id = $1 AND contact_id = $2 \
             ORDER BY conversation_id FOR UPDATE"
        } else {
            "SELECT conversation_id FROM conversations WHERE site_id = $1 AND contact_id = $2 \
             ORDER BY conversation_id"
        };
        if pg {
            sqlx::query(conversations_sql)
                .bind(site.0)
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
        }
        let found = sqlx::query(if pg {
            "SELECT identity FROM contacts WHERE site_id = $1 AND contact_id = $2 FOR UPDATE"
        } else {
            "SELECT identity FROM contacts WHERE site_id = $1 AND contact_id = $2"
        })
        .bind(site.0)
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(found) = found else {
            return Ok(None);
        };
        let identity: String = found.try_get("identity")?;
        let conversations: Vec<String> = sqlx::query(conversations_sql)
            .bind(site.0)
            .bind(&id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("conversation_id"))
            .collect::<Result<_, _>>()?;
        let list = json_ids(&conversations)?;

        let messages = sqlx::query(in_ids!(
            pg,
            "DELETE FROM messages WHERE conversation_id IN ",
            "$1"
        ))
        .bind(&list)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let object_keys: Vec<String> = sqlx::query(in_ids!(
            pg,
            "DELETE FROM attachments WHERE site_id = $1 AND (contact_id = $2 \
                 OR conversation_id IN ",
            "$3",
            ") RETURNING object_key"
        ))
        .bind(site.0)
        .bind(&id)
        .bind(&list)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("object_key"))
        .collect::<Result<_, _>>()?;
        let mut named = conversations.clone();
        named.push(id.clone());
        let jobs = delete_jobs_naming(&mut tx, self.backend, site, &json_ids(&named)?).await?;
        sqlx::query("DELETE FROM contact_presence WHERE contact_id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM conversations WHERE site_id = $1 AND contact_id = $2")
            .bind(site.0)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM contacts WHERE site_id = $1 AND contact_id = $2")
            .bind(site.0)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(Erased {
            conversations: gone,
            messages,
            attachments: object_keys.len() as u64,
            jobs,
            identity,
            object_keys,
        }))
    }

    /// Up to `limit` conversations of the site closed before `cutoff` (Unix ms, by their
    /// `updated_at`: the close, or a later change), oldest first.
    pub async fn retention_candidates(
        &self,
        site: SiteId,
        cutoff: i64,
        limit: i64,
    ) -> Result<Vec<ConversationId>> {
        let rows = sqlx::query(
            "SELECT conversation_id FROM conversations WHERE site_id = $1 AND status = 'closed' \
             AND updated_at < $2 ORDER BY updated_at, conversation_id LIMIT $3",
        )
        .bind(site.0)
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| crate::rows::id_col(r, "conversation_id").map_err(Into::into))
            .collect()
    }

    /// Delete at most [`PURGE_MESSAGES`] messages of those of `conversations` that are still
    /// closed before `cutoff`; how many were deleted.
    pub async fn purge_messages(
        &self,
        site: SiteId,
        conversations: &[ConversationId],
        cutoff: i64,
    ) -> Result<u64> {
        macro_rules! purge {
            ($b:ident) => {
                concat!(
                    "DELETE FROM messages WHERE message_id IN (SELECT m.message_id FROM messages m \
                     JOIN conversations c ON c.conversation_id = m.conversation_id \
                     WHERE c.site_id = $1 AND c.status = 'closed' AND c.updated_at < $2 \
                     AND c.conversation_id IN ",
                    id_list!($b, "$3"),
                    " LIMIT $4)"
                )
            };
        }
        let sql = match self.backend {
            Backend::Sqlite => purge!(sqlite),
            Backend::Postgres => purge!(postgres),
        };
        Ok(sqlx::query(sql)
            .bind(site.0)
            .bind(cutoff)
            .bind(json_ids(conversations)?)
            .bind(PURGE_MESSAGES)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    /// Delete those of `conversations` that are still closed before `cutoff`, with their
    /// remaining messages, their attachment rows and the jobs that name them, in one
    /// transaction. The entry `audit` makes of what this batch deleted, if any, is appended in
    /// it too.
    pub async fn purge_conversations(
        &self,
        site: SiteId,
        conversations: &[ConversationId],
        cutoff: i64,
        audit: &(dyn Fn(&PurgedBatch) -> Option<AuditEntry> + Send + Sync),
    ) -> Result<PurgedBatch> {
        let pg = self.backend == Backend::Postgres;
        let mut tx = self.begin_write().await?;
        let confirmed: Vec<String> = sqlx::query(if pg {
            concat!(
                "SELECT conversation_id FROM conversations WHERE site_id = $1 AND \
                 status = 'closed' AND updated_at < $2 AND conversation_id IN ",
                id_list!(postgres, "$3"),
                " ORDER BY conversation_id FOR UPDATE"
            )
        } else {
            concat!(
                "SELECT conversation_id FROM conversations WHERE site_id = $1 AND \
                 status = 'closed' AND updated_at < $2 AND conversation_id IN ",
                id_list!(sqlite, "$3"),
                " ORDER BY conversation_id"
            )
        })
        .bind(site.0)
        .bind(cutoff)
        .bind(json_ids(conversations)?)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("conversation_id"))
        .collect::<Result<_, _>>()?;
        let mut batch = PurgedBatch::default();
        if !confirmed.is_empty() {
            let list = json_ids(&confirmed)?;
            batch.messages = sqlx::query(in_ids!(
                pg,
                "DELETE FROM messages WHERE conversation_id IN ",
                "$1"
            ))
            .bind(&list)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            batch.object_keys = sqlx::query(in_ids!(
                pg,
                "DELETE FROM attachments WHERE site_id = $1 AND conversation_id IN ",
                "$2",
                " RETURNING object_key"
            ))
            .bind(site.0)
            .bind(&list)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("object_key"))
            .collect::<Result<_, _>>()?;
            batch.attachments = batch.object_keys.len() as u64;
            delete_jobs_naming(&mut tx, self.backend, site, &list).await?;
            batch.conversations = sqlx::query(in_ids!(
                pg,
                "DELETE FROM conversations WHERE site_id = $1 AND conversation_id IN ",
                "$2"
            ))
            .bind(site.0)
            .bind(&list)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if let Some(entry) = audit(&batch) {
            append_audit(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(batch)
    }
}

/// Delete the site's queued jobs whose key or payload holds one of `ids` (a JSON array).
async fn delete_jobs_naming(
    conn: &mut AnyConnection,
    backend: Backend,
    site: SiteId,
    ids: &str,
) -> Result<u64> {
    let sql = match backend {
        Backend::Sqlite => jobs_naming!(sqlite),
        Backend::Postgres => jobs_naming!(postgres),
    };
    Ok(sqlx::query(sql)
        .bind(site.0)
        .bind(ids)
        .execute(conn)
        .await?
        .rows_affected())
}
