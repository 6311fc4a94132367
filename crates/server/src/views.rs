//! The contract's JSON shapes, built from store rows.

use confidant_core::time_fmt::rfc3339_millis;
use confidant_store::{AgentRow, ContactRow, ConversationRow, MessageRow, SiteRow};
use serde_json::{Value, json};

pub fn site(s: &SiteRow) -> Value {
    json!({"siteId": s.site_id.0, "name": s.name, "createdAt": rfc3339_millis(s.created_at)})
}

pub fn agent(a: &AgentRow) -> Value {
    json!({"agentId": a.agent_id, "siteId": a.site_id.0, "email": a.email, "name": a.name, "role": a.role,
           "createdAt": rfc3339_millis(a.created_at)})
}

pub fn contact(c: &ContactRow) -> Value {
    json!({"contactId": c.contact_id, "siteId": c.site_id.0, "identity": c.identity, "attributes": c.attributes,
           "createdAt": rfc3339_millis(c.created_at), "updatedAt": rfc3339_millis(c.updated_at)})
}

pub fn message(m: &MessageRow) -> Value {
    json!({
        "messageId": m.message_id,
        "conversationId": m.conversation_id,
        "seq": m.seq,
        "sender": {"type": m.sender_type.as_str(), "id": m.sender_id, "name": m.sender_name},
        "body": m.body,
        "clientMessageId": m.client_message_id,
        "createdAt": rfc3339_millis(m.created_at),
    })
}

pub fn conversation(c: &ConversationRow, last: Option<&MessageRow>) -> Value {
    json!({
        "conversationId": c.conversation_id,
        "messengerId": c.messenger_id,
        "siteId": c.site_id.0,
        "contactId": c.contact_id,
        "status": if c.open { "open" } else { "closed" },
        "preview": c.preview,
        "lastMessage": last.map(message),
        "lastSeq": c.last_seq,
        "contactReadSeq": c.contact_read_seq,
        "agentReadSeq": c.agent_read_seq,
        "createdAt": rfc3339_millis(c.created_at),
        "updatedAt": rfc3339_millis(c.updated_at),
    })
}
