//! Conversations: reads and read markers. Sends and closes go through the batching writer
//! (send.rs, writer.rs); reads go straight to the read pool. A list is one query whatever its
//! length: the page of conversations is chosen first, then joined with each one's contact and
//! its last message (by the unique `(conversation_id, seq)` index).

use confidant_core::{ContactId, ConversationId, MessengerId, SiteId};
use sqlx::FromRow as _;

use crate::{ConversationRow, MessageRow, Result, Store, StoreError};

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
    Ok(row.as_ref().map(ConversationRow::from_row).transpose()?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationFilter {
    Open,
    Closed,
    All,
}

impl Store {
    pub async fn get_conversation(
        &self,
        site_id: SiteId,
        conversation_id: ConversationId,
    ) -> Result<Option<ConversationRow>> {
        fetch_conversation(&self.read, site_id.0, conversation_id).await
    }

    /// A contact's conversations in one messenger, newest first, with their last messages
    /// (one query).
    pub async fn contact_conversations(
        &self,
        site_id: SiteId,
        messenger_id: MessengerId,
        contact_id: ContactId,
        preview: bool,
        limit: i64,
    ) -> Result<Vec<(ConversationRow, Option<MessageRow>)>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            conv_cols_c!(),
            ", ",
            last_msg_cols_m!(),
            " FROM (SELECT * FROM conversations WHERE site_id = $1 AND messenger_id = $2 \
             AND contact_id = $3 AND preview = $4 ORDER BY updated_at DESC, conversation_id DESC \
             LIMIT $5) c ",
            last_message_join!(),
            " ORDER BY c.updated_at DESC, c.conversation_id DESC"
        ))
        .bind(site_id.0)
        .bind(messenger_id.to_string())
        .bind(contact_id.to_string())
        .bind(i64::from(preview))
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok((
                    ConversationRow::from_row(r)?,
                    MessageRow::from_prefixed(r, "m_")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        for (_, m) in &mut out {
            if let Some(m) = m {
                self.vault.open_message(m).await?;
            }
        }
        Ok(out)
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
            Some(r) => Ok(ConversationRow::from_row(&r)?),
            None => self
                .get_conversation(site_id, conversation_id)
                .await?
                .ok_or(StoreError::NotFound),
        }
    }
}
