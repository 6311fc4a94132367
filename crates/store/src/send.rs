//! What a send is (`SendRequest`, `SendTarget`) and what it answers (`SendOutcome`).
//! `Store::send` hands it to the batching writer (writer.rs), which answers after the commit.

use confidant_core::{ContactId, ConversationId, MessengerId, SiteId};
use uuid::Uuid;

use crate::writer::FallbackReason;
use crate::{ConversationRow, MessageRow, Result, SenderType, Store};

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
    /// The attachments the message carries (checked by the caller; the insert claims them and
    /// fails if one is missing or already claimed).
    pub attachments: Vec<crate::AttachmentMeta>,
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

impl Store {
    /// Store a message (or close a conversation); answers after the commit.
    pub async fn send(&self, req: SendRequest) -> Result<SendOutcome> {
        self.sends.submit(req).await
    }

    /// How often the writer stored sends one by one instead of as one batch, by reason, since
    /// the store opened (for `confidant_send_batch_fallbacks_total`).
    pub fn send_fallbacks(&self) -> Vec<(FallbackReason, u64)> {
        FallbackReason::ALL
            .into_iter()
            .map(|r| (r, self.sends.fallbacks.get(r)))
            .collect()
    }
}
