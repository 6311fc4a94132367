//! Plain rows as the store returns them, and how each decodes from a query's row
//! (`sqlx::FromRow`). The edge turns them into the contract's JSON.
//!
//! Ids are stored as lowercase hyphenated UUID text; one that does not parse is a decode error
//! of its column, as is an unknown sender type or contact attributes that are not JSON.

use std::borrow::Cow;

use confidant_core::{
    AgentId, AttachmentId, ContactAttributes, ContactId, ConversationId, MessageId, MessengerId,
    SiteId,
};
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row as _};
use uuid::Uuid;

/// A column's name with a prefix (`k_` for the contact, `m_` for the message in joins).
fn col<'a>(prefix: &str, name: &'a str) -> Cow<'a, str> {
    if prefix.is_empty() {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("{prefix}{name}"))
    }
}

/// An id column, parsed.
pub(crate) fn id_col<T>(r: &AnyRow, col: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr<Err = uuid::Error>,
{
    let text: String = r.try_get(col)?;
    text.parse().map_err(|e| decode_error(col, e))
}

fn decode_error(col: &str, e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: Box::new(e),
    }
}

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
    /// During a rollover (CONTRACT §5): the replaced validation's JSON (opened, with its
    /// secret) and the end of its period in Unix seconds. Readers compare the end themselves:
    /// an ended rollover stays here until the hourly purge.
    pub previous_validation: Option<(String, i64)>,
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
    /// When the contact was last notified of an unread reply by email (Unix ms), if ever.
    pub noticed_at: Option<i64>,
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
    /// The files the message carries (CONTRACT §11), in the order the sender named them.
    pub attachments: Vec<AttachmentMeta>,
}

/// What a message shows of one attachment. Read from the database with `filename` sealed;
/// the store opens it before a row leaves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentMeta {
    pub attachment_id: AttachmentId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
}

/// An uploaded attachment (table `attachments`), with its filename opened.
#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub attachment_id: AttachmentId,
    pub site_id: SiteId,
    pub messenger_id: MessengerId,
    /// The contact of the conversation (an agent's upload) or the uploading contact.
    pub contact_id: ContactId,
    /// Set when a message names it (from the start for an agent's upload).
    pub conversation_id: Option<ConversationId>,
    pub message_id: Option<MessageId>,
    /// `contact` or `agent`.
    pub uploader_type: SenderType,
    pub uploader_id: Uuid,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// Hex SHA-256 of the plain bytes.
    pub sha256: String,
    /// Where the sealed bytes are in the attachment store.
    pub object_key: String,
    /// The site's data-key version the bytes are sealed under.
    pub key_version: i64,
    pub created_at: i64,
}

impl AttachmentRow {
    pub fn meta(&self) -> AttachmentMeta {
        AttachmentMeta {
            attachment_id: self.attachment_id,
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.size,
        }
    }
}

impl FromRow<'_, AnyRow> for AttachmentRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        let opt_id = |c: &str| -> Result<Option<Uuid>, sqlx::Error> {
            r.try_get::<Option<String>, _>(c)?
                .map(|t| t.parse().map_err(|e| decode_error(c, e)))
                .transpose()
        };
        let st: String = r.try_get("uploader_type")?;
        Ok(AttachmentRow {
            attachment_id: id_col(r, "attachment_id")?,
            site_id: SiteId(r.try_get("site_id")?),
            messenger_id: id_col(r, "messenger_id")?,
            contact_id: id_col(r, "contact_id")?,
            conversation_id: opt_id("conversation_id")?.map(ConversationId),
            message_id: opt_id("message_id")?.map(MessageId),
            uploader_type: SenderType::parse(&st)
                .ok_or_else(|| decode_error("uploader_type", UnknownSenderType(st.clone())))?,
            uploader_id: id_col(r, "uploader_id")?,
            filename: r.try_get("filename")?,
            content_type: r.try_get("content_type")?,
            size: r.try_get("size")?,
            sha256: r.try_get("sha256")?,
            object_key: r.try_get("object_key")?,
            key_version: r.try_get("key_version")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub pkcs8: Vec<u8>,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// Login lockout state of one `(siteId, email)`.
#[derive(Debug, Clone, Copy, Default, FromRow)]
pub struct LoginFailures {
    pub failures: i64,
    pub locked_until: i64,
}

impl FromRow<'_, AnyRow> for SiteRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(SiteRow {
            site_id: SiteId(r.try_get("site_id")?),
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

impl FromRow<'_, AnyRow> for AgentRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(AgentRow {
            agent_id: id_col(r, "agent_id")?,
            site_id: SiteId(r.try_get("site_id")?),
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            role: r.try_get("role")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

impl FromRow<'_, AnyRow> for MessengerRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(MessengerRow {
            messenger_id: id_col(r, "messenger_id")?,
            site_id: SiteId(r.try_get("site_id")?),
            name: r.try_get("name")?,
            security: r.try_get("security")?,
            version: r.try_get("version")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            previous_validation: match (
                r.try_get::<Option<String>, _>("previous_validation")?,
                r.try_get::<Option<i64>, _>("previous_until")?,
            ) {
                (Some(json), Some(until)) => Some((json, until)),
                _ => None,
            },
        })
    }
}

impl ContactRow {
    /// A contact from columns named with `prefix` (`k_` in joins).
    pub(crate) fn from_prefixed(r: &AnyRow, prefix: &str) -> Result<Self, sqlx::Error> {
        let attributes = col(prefix, "attributes");
        let text: String = r.try_get(&*attributes)?;
        Ok(ContactRow {
            contact_id: id_col(r, &col(prefix, "contact_id"))?,
            site_id: SiteId(r.try_get(&*col(prefix, "site_id"))?),
            identity: r.try_get(&*col(prefix, "identity"))?,
            attributes: serde_json::from_str(&text).map_err(|e| decode_error(&attributes, e))?,
            created_at: r.try_get(&*col(prefix, "created_at"))?,
            updated_at: r.try_get(&*col(prefix, "updated_at"))?,
        })
    }
}

impl FromRow<'_, AnyRow> for ContactRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Self::from_prefixed(r, "")
    }
}

impl FromRow<'_, AnyRow> for ConversationRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
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
            noticed_at: r.try_get("noticed_at")?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown sender type {0:?}")]
struct UnknownSenderType(String);

impl MessageRow {
    /// A message from columns named with `prefix` (`m_` in joins); `None` when the message
    /// side of an outer join is empty.
    pub(crate) fn from_prefixed(r: &AnyRow, prefix: &str) -> Result<Option<Self>, sqlx::Error> {
        let Some(message_id) = r.try_get::<Option<String>, _>(&*col(prefix, "message_id"))? else {
            return Ok(None);
        };
        let sender_type = col(prefix, "sender_type");
        let st: String = r.try_get(&*sender_type)?;
        Ok(Some(MessageRow {
            message_id: message_id
                .parse()
                .map_err(|e| decode_error(&col(prefix, "message_id"), e))?,
            conversation_id: id_col(r, &col(prefix, "conversation_id"))?,
            seq: r.try_get(&*col(prefix, "seq"))?,
            sender_type: SenderType::parse(&st)
                .ok_or_else(|| decode_error(&sender_type, UnknownSenderType(st.clone())))?,
            sender_id: id_col(r, &col(prefix, "sender_id"))?,
            sender_name: r.try_get(&*col(prefix, "sender_name"))?,
            body: r.try_get(&*col(prefix, "body"))?,
            client_message_id: r.try_get(&*col(prefix, "client_message_id"))?,
            created_at: r.try_get(&*col(prefix, "created_at"))?,
            attachments: {
                let c = col(prefix, "attachments");
                match r.try_get::<Option<String>, _>(&*c)? {
                    None => Vec::new(),
                    Some(text) => serde_json::from_str(&text).map_err(|e| decode_error(&c, e))?,
                }
            },
        }))
    }
}

impl FromRow<'_, AnyRow> for MessageRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Self::from_prefixed(r, "")?.ok_or_else(|| sqlx::Error::ColumnNotFound("message_id".into()))
    }
}
