//! Column lists shared by queries, as macros so that each query stays one static string.

macro_rules! agent_cols {
    () => {
        "agent_id, site_id, email, name, role, created_at"
    };
}
macro_rules! messenger_cols {
    () => {
        "messenger_id, site_id, name, security, version, created_at, updated_at, \
         previous_validation, previous_until"
    };
}
macro_rules! contact_cols {
    () => {
        "contact_id, site_id, identity, attributes, created_at, updated_at"
    };
}
macro_rules! conv_cols {
    () => {
        "conversation_id, site_id, messenger_id, contact_id, status, preview, last_seq, \
     contact_read_seq, agent_read_seq, created_at, updated_at, noticed_at"
    };
}
macro_rules! msg_cols { () => {
    "message_id, conversation_id, seq, sender_type, sender_id, sender_name, body, client_message_id, created_at, attachments"
}; }
/// The conversation columns with a `c.` prefix, and the contact columns as `k_*` (for joins).
macro_rules! conv_cols_c { () => {
    "c.conversation_id, c.site_id, c.messenger_id, c.contact_id, c.status, c.preview, c.last_seq, \
     c.contact_read_seq, c.agent_read_seq, c.created_at, c.updated_at, c.noticed_at"
}; }
macro_rules! contact_cols_k {
    () => {
        "k.contact_id AS k_contact_id, k.site_id AS k_site_id, k.identity AS k_identity, \
     k.attributes AS k_attributes, k.created_at AS k_created_at, k.updated_at AS k_updated_at"
    };
}
/// The message columns as `m_*`, for a message `m` joined to its conversation `c`.
macro_rules! last_msg_cols_m { () => {
    "m.message_id AS m_message_id, m.conversation_id AS m_conversation_id, m.seq AS m_seq, \
     m.sender_type AS m_sender_type, m.sender_id AS m_sender_id, m.sender_name AS m_sender_name, \
     m.body AS m_body, m.client_message_id AS m_client_message_id, m.created_at AS m_created_at, \
     m.attachments AS m_attachments"
}; }
/// Each conversation `c` with its last message `m`, if it has one.
macro_rules! last_message_join {
    () => {
        "LEFT JOIN messages m ON m.conversation_id = c.conversation_id AND m.seq = c.last_seq"
    };
}
