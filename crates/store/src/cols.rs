//! Column lists shared by queries, as macros so that each query stays one static string.

macro_rules! agent_cols {
    () => {
        "agent_id, site_id, email, name, role, created_at"
    };
}
macro_rules! messenger_cols {
    () => {
        "messenger_id, site_id, name, security, version, created_at, updated_at"
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
     contact_read_seq, agent_read_seq, created_at, updated_at"
    };
}
macro_rules! msg_cols { () => {
    "message_id, conversation_id, seq, sender_type, sender_id, sender_name, body, client_message_id, created_at"
}; }
/// The message columns with an `m.` prefix.
macro_rules! msg_cols_m { () => {
    "m.message_id, m.conversation_id, m.seq, m.sender_type, m.sender_id, m.sender_name, m.body, \
     m.client_message_id, m.created_at"
}; }
/// The conversation columns with a `c.` prefix, and the contact columns as `k_*` (for joins).
macro_rules! conv_cols_c { () => {
    "c.conversation_id, c.site_id, c.messenger_id, c.contact_id, c.status, c.preview, c.last_seq, \
     c.contact_read_seq, c.agent_read_seq, c.created_at, c.updated_at"
}; }
macro_rules! contact_cols_k {
    () => {
        "k.contact_id AS k_contact_id, k.site_id AS k_site_id, k.identity AS k_identity, \
     k.attributes AS k_attributes, k.created_at AS k_created_at, k.updated_at AS k_updated_at"
    };
}
