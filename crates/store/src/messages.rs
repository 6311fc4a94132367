//! Messages: the pages a client reads. Messages are written only by the send path
//! (send.rs, writer.rs, batch.rs).

use confidant_core::{ConversationId, SiteId};
use sqlx::FromRow as _;

use crate::{MessageRow, Result, Store};

impl Store {
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
        let mut messages = rows
            .iter()
            .map(MessageRow::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for m in &mut messages {
            self.vault.open_message(m).await?;
        }
        Ok(messages)
    }
}
