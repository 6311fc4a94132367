//! Plain rows as the store returns them. The edge turns them into the contract's JSON.

use confidant_core::{
    AgentId, ContactAttributes, ContactId, ConversationId, MessageId, MessengerId, SiteId,
};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct SiteRow {
    pub site_id: SiteId,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct AgentRow {
    pub agent_id: AgentId,
    pub site_id: SiteId,
    pub email: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub agent: AgentRow,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct MessengerRow {
    pub messenger_id: MessengerId,
    pub site_id: SiteId,
    pub name: String,
    /// The stored Security JSON (with its secret): parse with `serde_json` into `Security`.
    pub security: String,
    /// Bumped on every Security change; caches key on it.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct ContactRow {
    pub contact_id: ContactId,
    pub site_id: SiteId,
    pub identity: String,
    pub attributes: ContactAttributes,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub conversation_id: ConversationId,
    pub site_id: SiteId,
    pub messenger_id: MessengerId,
    pub contact_id: ContactId,
    pub open: bool,
    pub preview: bool,
    pub last_seq: i64,
    pub contact_read_seq: i64,
    pub agent_read_seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderType {
    Contact,
    Agent,
    System,
}

impl SenderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contact => "contact",
            Self::Agent => "agent",
            Self::System => "system",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "contact" => Some(Self::Contact),
            "agent" => Some(Self::Agent),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct MessageRow {
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub seq: i64,
    pub sender_type: SenderType,
    /// The agent's or the contact's id (the nil UUID for the operator); for a system
    /// message, whoever caused it.
    pub sender_id: Uuid,
    pub sender_name: String,
    pub body: String,
    pub client_message_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub pkcs8: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}
