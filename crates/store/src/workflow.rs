//! The agent workflow (CONTRACT §16): conversations as agents see them (assignee, unread count),
//! their filtered and paged lists, assignment, and the site's canned replies.
//!
//! A list is one query whatever its filters: the page of conversations is chosen first by the
//! `(updated_at, conversation_id)` key (an index per filter: site + status, site + assignee,
//! contact), then joined with each one's contact, last message and assignee, and each one's
//! unread count is counted by the `(conversation_id, seq)` index from the agents' read marker
//! on, so it costs what is unread, never the whole history.

use confidant_core::{AgentId, ContactId, ConversationId, MessengerId, SiteId};
use sqlx::{FromRow as _, Row as _};

use crate::audit::append_audit;
use crate::{
    AuditEntry, ContactRow, ConversationFilter, ConversationRow, MessageRow, Result, Store,
    StoreError, conflict_or,
};

/// A conversation as agents see it.
#[derive(Debug, Clone)]
pub struct AgentConversation {
    pub conversation: ConversationRow,
    pub contact: ContactRow,
    pub last: Option<MessageRow>,
    /// The assignee's id and name (its current name, or the one it had when assigned if the
    /// agent was deleted since).
    pub assignee: Option<(AgentId, String)>,
    /// The contact's messages after the agents' read marker.
    pub unread: i64,
    /// The messenger's name, and whether it was deleted (its conversations stay readable).
    pub messenger_name: String,
    pub messenger_deleted: bool,
}

/// Whose conversations a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    Anyone,
    Unassigned,
    Agent(AgentId),
}

/// Where a page starts: after this `(updated_at, conversation_id)` in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub updated_at: i64,
    pub conversation_id: ConversationId,
}

/// What an agents' list asks for.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery {
    pub site: SiteId,
    pub status: ConversationFilter,
    pub preview: bool,
    pub assignee: AssigneeFilter,
    pub contact: Option<ContactId>,
    /// Only the conversations of this messenger.
    pub messenger: Option<MessengerId>,
    pub after: Option<ListCursor>,
    pub limit: i64,
}

/// A canned reply of a site.
#[derive(Debug, Clone)]
pub struct CannedReplyRow {
    pub canned_reply_id: uuid::Uuid,
    pub site_id: SiteId,
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub created_at: i64,
}

enum Bind {
    Int(i64),
    Text(String),
}

/// The select list and joins around a page `c` of conversations.
macro_rules! agent_view {
    () => {
        concat!(
            "SELECT ",
            conv_cols_c!(),
            ", c.assignee_id AS assignee_id, COALESCE(a.name, c.assignee_name) AS assignee_now, \
             (SELECT COUNT(*) FROM messages u WHERE u.conversation_id = c.conversation_id \
              AND u.seq > c.agent_read_seq AND u.sender_type = 'contact') AS unread_count, \
             g.name AS messenger_name, g.deleted_at AS messenger_deleted_at, ",
            contact_cols_k!(),
            ", ",
            last_msg_cols_m!(),
            " FROM "
        )
    };
}
macro_rules! agent_view_joins {
    () => {
        concat!(
            " JOIN contacts k ON k.contact_id = c.contact_id ",
            last_message_join!(),
            " LEFT JOIN agents a ON a.agent_id = c.assignee_id AND a.site_id = c.site_id",
            " JOIN messengers g ON g.messenger_id = c.messenger_id"
        )
    };
}

fn agent_row(r: &sqlx::any::AnyRow) -> Result<AgentConversation> {
    let assignee_id: Option<String> = r.try_get("assignee_id")?;
    let assignee = match assignee_id {
        Some(id) => {
            let id: AgentId = id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("assignee_id {id:?}")))?;
            let name: Option<String> = r.try_get("assignee_now")?;
            Some((id, name.unwrap_or_default()))
        }
        None => None,
    };
    Ok(AgentConversation {
        conversation: ConversationRow::from_row(r)?,
        contact: ContactRow::from_prefixed(r, "k_")?,
        last: MessageRow::from_prefixed(r, "m_")?,
        assignee,
        unread: r.try_get("unread_count")?,
        messenger_name: r.try_get("messenger_name")?,
        messenger_deleted: r
            .try_get::<Option<i64>, _>("messenger_deleted_at")?
            .is_some(),
    })
}

fn canned_row(r: &sqlx::any::AnyRow) -> Result<CannedReplyRow> {
    let id: String = r.try_get("canned_reply_id")?;
    Ok(CannedReplyRow {
        canned_reply_id: id
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("canned_reply_id {id:?}")))?,
        site_id: SiteId(r.try_get("site_id")?),
        shortcut: r.try_get("shortcut")?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        created_at: r.try_get("created_at")?,
    })
}

const CANNED_COLS: &str = "canned_reply_id, site_id, shortcut, title, body, created_at";

impl Store {
    /// A page of a site's conversations for agents, newest first (`updated_at`, then id), with
    /// their contacts, last messages, assignees and unread counts (one query).
    pub async fn agent_conversations(&self, q: &ListQuery) -> Result<Vec<AgentConversation>> {
        let mut binds = vec![Bind::Int(q.site.0), Bind::Int(i64::from(q.preview))];
        let mut sql =
            String::from("SELECT * FROM conversations WHERE site_id = $1 AND preview = $2");
        let arg = |binds: &mut Vec<Bind>, b: Bind| {
            binds.push(b);
            format!("${}", binds.len())
        };
        match q.status {
            ConversationFilter::Open => sql.push_str(" AND status = 'open'"),
            ConversationFilter::Closed => sql.push_str(" AND status = 'closed'"),
            ConversationFilter::All => {}
        }
        match q.assignee {
            AssigneeFilter::Anyone => {}
            AssigneeFilter::Unassigned => sql.push_str(" AND assignee_id IS NULL"),
            AssigneeFilter::Agent(id) => {
                let p = arg(&mut binds, Bind::Text(id.to_string()));
                sql.push_str(&format!(" AND assignee_id = {p}"));
            }
        }
        if let Some(contact) = q.contact {
            let p = arg(&mut binds, Bind::Text(contact.to_string()));
            sql.push_str(&format!(" AND contact_id = {p}"));
        }
        if let Some(messenger) = q.messenger {
            let p = arg(&mut binds, Bind::Text(messenger.to_string()));
            sql.push_str(&format!(" AND messenger_id = {p}"));
        }
        if let Some(after) = q.after {
            let t = arg(&mut binds, Bind::Int(after.updated_at));
            let id = arg(&mut binds, Bind::Text(after.conversation_id.to_string()));
            sql.push_str(&format!(
                " AND (updated_at < {t} OR (updated_at = {t} AND conversation_id < {id}))"
            ));
        }
        let lim = arg(&mut binds, Bind::Int(q.limit));
        let sql = format!(
            "{}({sql} ORDER BY updated_at DESC, conversation_id DESC LIMIT {lim}) c{} \
             ORDER BY c.updated_at DESC, c.conversation_id DESC",
            agent_view!(),
            agent_view_joins!()
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = match b {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.read).await?;
        let mut out = rows.iter().map(agent_row).collect::<Result<Vec<_>>>()?;
        for c in &mut out {
            if let Some(m) = &mut c.last {
                self.vault.open_message(m).await?;
            }
        }
        Ok(out)
    }

    /// One conversation of a site as agents see it.
    pub async fn agent_conversation(
        &self,
        site: SiteId,
        id: ConversationId,
    ) -> Result<Option<AgentConversation>> {
        let row = sqlx::query(concat!(
            agent_view!(),
            "conversations c",
            agent_view_joins!(),
            " WHERE c.conversation_id = $1 AND c.site_id = $2"
        ))
        .bind(id.to_string())
        .bind(site.0)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut c = agent_row(&row)?;
        if let Some(m) = &mut c.last {
            self.vault.open_message(m).await?;
        }
        Ok(Some(c))
    }

    /// Set (or clear) a conversation's assignee. The order of the lists is kept: assigning is
    /// not activity, so `updated_at` does not move.
    pub async fn assign(
        &self,
        site: SiteId,
        id: ConversationId,
        assignee: Option<(AgentId, &str)>,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE conversations SET assignee_id = $3, assignee_name = $4 \
             WHERE conversation_id = $1 AND site_id = $2",
        )
        .bind(id.to_string())
        .bind(site.0)
        .bind(assignee.map(|(a, _)| a.to_string()))
        .bind(assignee.map(|(_, n)| n.to_owned()))
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Reopen a closed conversation of the site with a system message (`body`, from
    /// `sender_id`), in one transaction. `Ok(None)`: it is open already (nothing stored).
    /// `Conflict("open")`: its contact has another open conversation in that messenger (the
    /// partial unique index decides, so two racing opens cannot both win); `NotFound`: the
    /// site has no such conversation.
    pub async fn reopen(
        &self,
        site: SiteId,
        id: ConversationId,
        sender_id: uuid::Uuid,
        body: &str,
        now: i64,
    ) -> Result<Option<crate::SendOutcome>> {
        let message_id = confidant_core::MessageId(uuid::Uuid::new_v4());
        let sealed = self
            .vault
            .seal(
                site,
                &crate::vault::message_place(message_id),
                body.as_bytes(),
            )
            .await?;
        let mut tx = self.write.begin().await?;
        let Some(before) = crate::conversations::fetch_conversation(&mut *tx, site.0, id).await?
        else {
            return Err(StoreError::NotFound);
        };
        if before.open {
            return Ok(None);
        }
        let seq = before.last_seq + 1;
        // Guarded by the status and seq read: nothing else writes to a closed conversation,
        // and a racing reopen of the same one finds it moved.
        let done = sqlx::query(
            "UPDATE conversations SET status = 'open', last_seq = $3, updated_at = $4 \
             WHERE conversation_id = $1 AND site_id = $2 AND status = 'closed' AND last_seq = $5",
        )
        .bind(id.to_string())
        .bind(site.0)
        .bind(seq)
        .bind(now)
        .bind(before.last_seq)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "open"))?;
        if done.rows_affected() != 1 {
            drop(tx);
            return match self.get_conversation(site, id).await? {
                Some(c) if c.open => Ok(None),
                Some(_) => Err(StoreError::Conflict("open")),
                None => Err(StoreError::NotFound),
            };
        }
        sqlx::query(
            "INSERT INTO messages (message_id, conversation_id, seq, sender_type, sender_id, \
             sender_name, body, client_message_id, created_at, attachments) \
             VALUES ($1, $2, $3, 'system', $4, 'System', $5, NULL, $6, NULL)",
        )
        .bind(message_id.to_string())
        .bind(id.to_string())
        .bind(seq)
        .bind(sender_id.to_string())
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let conversation = ConversationRow {
            open: true,
            last_seq: seq,
            updated_at: now,
            ..before
        };
        let message = MessageRow {
            message_id,
            conversation_id: id,
            seq,
            sender_type: crate::SenderType::System,
            sender_id,
            sender_name: "System".to_owned(),
            body: body.to_owned(),
            client_message_id: None,
            created_at: now,
            attachments: Vec::new(),
        };
        Ok(Some(crate::SendOutcome {
            message,
            conversation,
            created: true,
            opened: false,
        }))
    }

    /// One agent of the site, by id.
    pub async fn get_agent(&self, site: SiteId, id: AgentId) -> Result<Option<crate::AgentRow>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            agent_cols!(),
            " FROM agents WHERE agent_id = $1 AND site_id = $2"
        ))
        .bind(id.to_string())
        .bind(site.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.as_ref().map(crate::AgentRow::from_row).transpose()?)
    }

    /// A site's canned replies, by shortcut.
    pub async fn canned_replies(&self, site: SiteId) -> Result<Vec<CannedReplyRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CANNED_COLS} FROM canned_replies WHERE site_id = $1 ORDER BY shortcut"
        )))
        .bind(site.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(canned_row).collect()
    }

    /// Store a canned reply with its audit entry, in one transaction; a shortcut the site
    /// already has is a `Conflict`.
    pub async fn create_canned_reply(&self, c: &CannedReplyRow, audit: &AuditEntry) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO canned_replies (canned_reply_id, site_id, shortcut, title, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.canned_reply_id.to_string())
        .bind(c.site_id.0)
        .bind(&c.shortcut)
        .bind(&c.title)
        .bind(&c.body)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict_or(e, "shortcut"))?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete a canned reply of the site with its audit entry (built from the deleted row by
    /// `entry`), in one transaction. `NotFound` if the site has no such reply.
    pub async fn delete_canned_reply(
        &self,
        site: SiteId,
        id: uuid::Uuid,
        entry: impl FnOnce(&CannedReplyRow) -> AuditEntry,
    ) -> Result<CannedReplyRow> {
        let mut tx = self.write.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM canned_replies WHERE canned_reply_id = $1 AND site_id = $2 \
             RETURNING {CANNED_COLS}"
        )))
        .bind(id.to_string())
        .bind(site.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound);
        };
        let gone = canned_row(&row)?;
        append_audit(&mut tx, &entry(&gone)).await?;
        tx.commit().await?;
        Ok(gone)
    }
}
