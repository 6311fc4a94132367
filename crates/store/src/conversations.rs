//! Conversations and messages. Sends and closes go through the batching writer (writer.rs);
//! reads go straight to the read pool.

use confidant_core::{ContactId, ConversationId, MessengerId, SiteId};
use sqlx::Row as _;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::{
    ContactRow, ConversationRow, MessageRow, Result, SenderType, Store, StoreError, id_col,
};

pub(crate) fn conversation(r: &AnyRow) -> Result<ConversationRow> {
    let status: String = r.try_get("status")?;
    Ok(ConversationRow {
        conversation_id: id_col(r, "conversation_id")?,
        site_id: SiteId(r.try_get("site_id")?),
        messenger_id: id_col(r, "messenger_id")?,
        contact_id: id_col(r, "contact_id")?,
        open: status == "open",
        preview: r.try_get::<i64, _>("preview")? != 0,
        last_seq: r.try_get("last_seq")?,
        contact_read_seq: r.try_get("contact_read_seq")?,
        agent_read_seq: r.try_get("agent_read_seq")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(crate) fn message(r: &AnyRow) -> Result<MessageRow> {
    let st: String = r.try_get("sender_type")?;
    Ok(MessageRow {
        message_id: id_col(r, "message_id")?,
        conversation_id: id_col(r, "conversation_id")?,
        seq: r.try_get("seq")?,
        sender_type: SenderType::parse(&st)
            .ok_or_else(|| StoreError::Corrupt(format!("sender type {st:?}")))?,
        sender_id: id_col::<Uuid>(r, "sender_id")?,
        sender_name: r.try_get("sender_name")?,
        body: r.try_get("body")?,
        client_message_id: r.try_get("client_message_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// One conversation of a site, through a pool or (in the writer) a transaction's connection.
pub(crate) async fn fetch_conversation<'e>(
    ex: impl sqlx::Executor<'e, Database = sqlx::Any>,
    site: i64,
    conversation_id: ConversationId,
) -> Result<Option<ConversationRow>> {
    let row = sqlx::query(concat!(
        "SELECT ",
        conv_cols!(),
        " FROM conversations WHERE conversation_id = $1 AND site_id = $2"
    ))
    .bind(conversation_id.to_string())
    .bind(site)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(conversation).transpose()
}

/// Where a send goes.
#[derive(Debug, Clone)]
pub enum SendTarget {
    /// A contact's send: the named conversation if it is theirs and open, else their open
    /// conversation in the messenger, else a new one.
    Contact {
        messenger_id: MessengerId,
        contact_id: ContactId,
        preview: bool,
        conversation_id: Option<ConversationId>,
    },
    /// An agent's send into an open conversation of the site.
    Agent { conversation_id: ConversationId },
    /// Close a conversation, adding a system message with `body`.
    Close { conversation_id: ConversationId },
}

#[derive(Debug, Clone)]
pub struct SendRequest {
    pub site_id: SiteId,
    pub target: SendTarget,
    pub sender_type: SenderType,
    /// The agent's or the contact's id (the nil UUID for the operator).
    pub sender_id: Uuid,
    pub sender_name: String,
    pub body: String,
    /// `None` only for system messages.
    pub client_message_id: Option<String>,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub message: MessageRow,
    pub conversation: ConversationRow,
    /// False when an earlier send with the same `clientMessageId` answered (nothing stored),
    /// or when a close found the conversation already closed.
    pub created: bool,
    /// True when this send opened the conversation.
    pub opened: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationFilter {
    Open,
    Closed,
    All,
}

impl Store {
    /// Store a message (or close a conversation); answers after the commit.
    pub async fn send(&self, req: SendRequest) -> Result<SendOutcome> {
        self.sends.submit(req).await
    }

    pub async fn get_conversation(
        &self,
        site_id: SiteId,
        conversation_id: ConversationId,
    ) -> Result<Option<ConversationRow>> {
        fetch_conversation(&self.read, site_id.0, conversation_id).await
    }

    /// A contact's conversations in one messenger, newest first.
    pub async fn contact_conversations(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        contact_id: ContactId,
        preview: bool,
        limit: i64,
    ) -> Result<Vec<(ConversationRow, Option<MessageRow>)>> {
        let rows = sqlx::query(concat!("SELECT ", conv_cols!(), " FROM conversations WHERE site_id = $1 AND messenger_id = $2 AND contact_id = $3 AND preview = $4 \
             ORDER BY updated_at DESC, conversation_id DESC LIMIT $5"))
        .bind(site_id.0)
        .bind(messenger_id.to_string())
        .bind(contact_id.to_string())
        .bind(i64::from(preview))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let c = conversation(r)?;
            let last = self.last_message(&c).await?;
            out.push((c, last));
        }
        Ok(out)
    }

    /// A site's conversations for agents, newest first, with their contacts.
    pub async fn site_conversations(
        &self,
        site_id: SiteId,
        filter: ConversationFilter,
        preview: bool,
        limit: i64,
    ) -> Result<Vec<(ConversationRow, ContactRow, Option<MessageRow>)>> {
        macro_rules! q {
            ($status:literal) => {
                concat!(
                    "SELECT ",
                    conv_cols_c!(),
                    ", ",
                    contact_cols_k!(),
                    " FROM conversations c JOIN contacts k ON k.contact_id = c.contact_id \
                 WHERE c.site_id = $1 AND c.preview = $2 ",
                    $status,
                    " ORDER BY c.updated_at DESC, c.conversation_id DESC LIMIT $3"
                )
            };
        }
        let sql = match filter {
            ConversationFilter::Open => q!("AND c.status = 'open'"),
            ConversationFilter::Closed => q!("AND c.status = 'closed'"),
            ConversationFilter::All => q!(""),
        };
        let rows = sqlx::query(sql)
            .bind(site_id.0)
            .bind(i64::from(preview))
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let c = conversation(r)?;
            let k = crate::contacts::contact_named(r, &crate::contacts::JOINED_COLUMNS)?;
            let last = self.last_message(&c).await?;
            out.push((c, k, last));
        }
        Ok(out)
    }

    async fn last_message(&self, c: &ConversationRow) -> Result<Option<MessageRow>> {
        if c.last_seq == 0 {
            return Ok(None);
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            msg_cols!(),
            " FROM messages WHERE conversation_id = $1 AND seq = $2"
        ))
        .bind(c.conversation_id.to_string())
        .bind(c.last_seq)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(message).transpose()
    }

    /// Messages after `after`, in seq order. The conversation must belong to the site.
    pub async fn messages(
        &self,
        site_id: SiteId,
        conversation_id: ConversationId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<MessageRow>> {
        let rows = sqlx::query(concat!("SELECT ", msg_cols!(), " FROM messages WHERE conversation_id = $1 AND seq > $2 \
             AND EXISTS (SELECT 1 FROM conversations c WHERE c.conversation_id = $1 AND c.site_id = $3) \
             ORDER BY seq LIMIT $4"))
        .bind(conversation_id.to_string())
        .bind(after)
        .bind(site_id.0)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(message).collect()
    }

    /// Move a read marker forward (never back, never past the last message). Returns the
    /// conversation as it is after.
    pub async fn mark_read(
        &self,
        site_id: SiteId,
        conversation_id: ConversationId,
        by_agent: bool,
        seq: i64,
    ) -> Result<ConversationRow> {
        macro_rules! q {
            ($col:literal) => {
                concat!(
                    "UPDATE conversations SET ",
                    $col,
                    " = CASE WHEN $3 > last_seq THEN last_seq ELSE $3 END \
                WHERE conversation_id = $1 AND site_id = $2 AND ",
                    $col,
                    " < $3 AND ",
                    $col,
                    " < last_seq RETURNING ",
                    conv_cols!()
                )
            };
        }
        let sql = if by_agent {
            q!("agent_read_seq")
        } else {
            q!("contact_read_seq")
        };
        let row = sqlx::query(sql)
            .bind(conversation_id.to_string())
            .bind(site_id.0)
            .bind(seq)
            .fetch_optional(&self.write)
            .await?;
        match row {
            Some(r) => conversation(&r),
            None => self
                .get_conversation(site_id, conversation_id)
                .await?
                .ok_or(StoreError::NotFound),
        }
    }
}
