//! Offline notices (CONTRACT §10): a messenger's notice settings, which contacts hold an open
//! socket (per server process), and each conversation's last notice.

use confidant_core::{ContactId, ConversationId, MessengerId, SiteId};
use sqlx::Row as _;

use crate::audit::{AuditEntry, append_audit};
use crate::{Result, Store, StoreError};

/// A contact's sockets across every server process, as the presence rows say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Presence {
    /// A process with a fresh heartbeat holds a socket of the contact now.
    pub connected: bool,
    /// The last time any process saw a socket of the contact open (Unix ms).
    pub last_seen: Option<i64>,
}

/// What the notice rule needs of a conversation, read in one query.
#[derive(Debug, Clone)]
pub struct NoticeState {
    pub messenger_id: MessengerId,
    pub contact_id: ContactId,
    pub preview: bool,
    pub contact_read_seq: i64,
    /// The seq of the agent message the last notice announced (0: none).
    pub notice_seq: i64,
    pub noticed_at: Option<i64>,
}

impl Store {
    /// The stored notice settings JSON of a messenger (`None`: never set).
    pub async fn notification_settings(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT settings FROM messenger_notifications WHERE messenger_id = $1 AND site_id = $2",
        )
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| r.try_get("settings")).transpose()?)
    }

    pub async fn put_notification_settings(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        settings_json: &str,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let exists = sqlx::query(
            "SELECT 1 FROM messengers WHERE messenger_id = $1 AND site_id = $2 \
                 AND deleted_at IS NULL",
        )
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO messenger_notifications (messenger_id, site_id, settings, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (messenger_id) \
             DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
        )
        .bind(messenger_id.to_string())
        .bind(site_id.0)
        .bind(settings_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// This process (`node`) holds `sockets` open sockets of the contact now (0: its last one
    /// closed).
    pub async fn set_presence(
        &self,
        node: &str,
        site_id: SiteId,
        contact_id: ContactId,
        sockets: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            // Only for a contact that still exists: the last socket of an erased contact,
            // closing after the erasure, must not write its presence back.
            "INSERT INTO contact_presence (contact_id, node_id, site_id, sockets, seen_at) \
             SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM contacts WHERE contact_id = $1) \
             ON CONFLICT (contact_id, node_id) \
             DO UPDATE SET sockets = excluded.sockets, seen_at = excluded.seen_at",
        )
        .bind(contact_id.to_string())
        .bind(node)
        .bind(site_id.0)
        .bind(sockets)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The heartbeat of a process: its rows with open sockets are seen now. With
    /// `forget_before`, rows not seen since then are deleted too (processes long gone,
    /// contacts long away).
    pub async fn presence_heartbeat(
        &self,
        node: &str,
        now: i64,
        forget_before: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE contact_presence SET seen_at = $2 WHERE node_id = $1 AND sockets > 0")
            .bind(node)
            .bind(now)
            .execute(&self.write)
            .await?;
        if let Some(before) = forget_before {
            sqlx::query("DELETE FROM contact_presence WHERE seen_at < $1")
                .bind(before)
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    /// A contact's presence: connected when a row holds sockets and was seen after
    /// `fresh_after` (a crashed process's rows go stale).
    pub async fn presence(
        &self,
        site_id: SiteId,
        contact_id: ContactId,
        fresh_after: i64,
    ) -> Result<Presence> {
        let row = sqlx::query(
            "SELECT MAX(seen_at) AS last_seen, \
             COALESCE(SUM(CASE WHEN sockets > 0 AND seen_at > $3 THEN 1 ELSE 0 END), 0) AS live \
             FROM contact_presence WHERE contact_id = $1 AND site_id = $2",
        )
        .bind(contact_id.to_string())
        .bind(site_id.0)
        .bind(fresh_after)
        .fetch_one(&self.read)
        .await?;
        let live: i64 = row.try_get("live")?;
        Ok(Presence {
            connected: live > 0,
            last_seen: row.try_get("last_seen")?,
        })
    }

    /// What the notice rule needs of a conversation of the site.
    pub async fn notice_state(
        &self,
        site_id: SiteId,
        conversation_id: ConversationId,
    ) -> Result<Option<NoticeState>> {
        let row = sqlx::query(
            "SELECT messenger_id, contact_id, preview, contact_read_seq, notice_seq, noticed_at \
             FROM conversations WHERE conversation_id = $1 AND site_id = $2",
        )
        .bind(conversation_id.to_string())
        .bind(site_id.0)
        .fetch_optional(&self.read)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(NoticeState {
            messenger_id: crate::rows::id_col(&r, "messenger_id")?,
            contact_id: crate::rows::id_col(&r, "contact_id")?,
            preview: r.try_get::<i64, _>("preview")? != 0,
            contact_read_seq: r.try_get("contact_read_seq")?,
            notice_seq: r.try_get("notice_seq")?,
            noticed_at: r.try_get("noticed_at")?,
        }))
    }

    /// The first agent message of a conversation after `after_seq` written after
    /// `after_time` (Unix ms): (seq, created_at).
    pub async fn first_unread_agent_message(
        &self,
        conversation_id: ConversationId,
        after_seq: i64,
        after_time: i64,
    ) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT seq, created_at FROM messages WHERE conversation_id = $1 \
             AND sender_type = 'agent' AND seq > $2 AND created_at > $3 ORDER BY seq LIMIT 1",
        )
        .bind(conversation_id.to_string())
        .bind(after_seq)
        .bind(after_time)
        .fetch_optional(&self.read)
        .await?;
        Ok(row
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("created_at")?)))
            .transpose()?)
    }

    /// Record a notice for the agent message `seq`, unless one for it (or a later one) is
    /// recorded already: `true` when this call recorded it (and so must send it).
    pub async fn claim_notice(
        &self,
        site_id: SiteId,
        conversation_id: ConversationId,
        seq: i64,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE conversations SET notice_seq = $3, noticed_at = $4 \
             WHERE conversation_id = $1 AND site_id = $2 AND notice_seq < $3",
        )
        .bind(conversation_id.to_string())
        .bind(site_id.0)
        .bind(seq)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Undo a claim whose email did not go out (the mail server failed): the conversation's
    /// notice is as it was before, if nothing claimed a later one meanwhile.
    pub async fn release_notice(
        &self,
        site_id: SiteId,
        conversation_id: ConversationId,
        (seq, at): (i64, i64),
        (previous_seq, previous_at): (i64, Option<i64>),
    ) -> Result<()> {
        sqlx::query(
            "UPDATE conversations SET notice_seq = $5, noticed_at = $6 \
             WHERE conversation_id = $1 AND site_id = $2 AND notice_seq = $3 AND noticed_at = $4",
        )
        .bind(conversation_id.to_string())
        .bind(site_id.0)
        .bind(seq)
        .bind(at)
        .bind(previous_seq)
        .bind(previous_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
