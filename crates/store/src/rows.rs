//! Plain rows as the store returns them. The edge turns them into the contract's JSON.

use confidant_core::{ContactAttributes, SiteId};

#[derive(Debug, Clone)]
pub struct SiteRow {
    pub site_id: SiteId,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct AgentRow {
    pub agent_id: String,
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
    pub messenger_id: String,
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
    pub contact_id: String,
    pub site_id: SiteId,
    pub identity: String,
    pub attributes: ContactAttributes,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub conversation_id: String,
    pub site_id: SiteId,
    pub messenger_id: String,
    pub contact_id: String,
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
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub sender_type: SenderType,
    pub sender_id: String,
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
