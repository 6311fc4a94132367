//! The contract's JSON shapes (CONTRACT §4–§8), as types: requests are deserialized into
//! them (a wrong type is `400 invalid_request` before any lookup), answers are serialized
//! from them, and the OpenAPI document takes its schemas from them. `frames` holds the
//! WebSocket frames. This module imports nothing else of the crate: the HTTP edge and the
//! services (which publish live events) both use it.

pub mod frames;

use std::collections::BTreeMap;

use confidant_core::time_fmt::rfc3339_millis;
use confidant_core::{
    AgentId, AttachmentId, ContactId, ConversationId, MessageId, MessengerId, SiteId,
};
use confidant_store::{
    AgentRow, AttachmentMeta, AttachmentRow, ContactRow, ConversationRow, DeliveryRow, MessageRow,
    MessengerRow, SiteRow, WebhookRow,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

// ---- answers ----

/// `{"error": {"code", "message"}}`: every non-2xx answer (CONTRACT §3).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case word, e.g. `token_expired`.
    pub code: &'static str,
    /// For humans; never a secret or a whole token.
    pub message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    #[schema(value_type = i64, example = 10000)]
    pub site_id: SiteId,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&SiteRow> for Site {
    fn from(s: &SiteRow) -> Self {
        Self {
            site_id: s.site_id,
            name: s.name.clone(),
            created_at: rfc3339_millis(s.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    #[schema(value_type = String, format = Uuid)]
    pub agent_id: AgentId,
    #[schema(value_type = i64)]
    pub site_id: SiteId,
    pub email: String,
    pub name: String,
    /// `admin` or `agent`.
    pub role: String,
    pub created_at: String,
}

impl From<&AgentRow> for Agent {
    fn from(a: &AgentRow) -> Self {
        Self {
            agent_id: a.agent_id,
            site_id: a.site_id,
            email: a.email.clone(),
            name: a.name.clone(),
            role: a.role.clone(),
            created_at: rfc3339_millis(a.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    #[schema(value_type = String, format = Uuid)]
    pub contact_id: ContactId,
    #[schema(value_type = i64)]
    pub site_id: SiteId,
    /// The value of the messenger's identity claim.
    pub identity: String,
    /// Profile attributes from the `comm100.*` claims.
    pub attributes: BTreeMap<String, String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ContactRow> for Contact {
    fn from(c: &ContactRow) -> Self {
        Self {
            contact_id: c.contact_id,
            site_id: c.site_id,
            identity: c.identity.clone(),
            attributes: c.attributes.0.clone(),
            created_at: rfc3339_millis(c.created_at),
            updated_at: rfc3339_millis(c.updated_at),
        }
    }
}

/// Who wrote a message.
#[derive(Serialize, ToSchema)]
pub struct Sender {
    /// `contact`, `agent` or `system`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[schema(value_type = String, format = Uuid)]
    pub message_id: MessageId,
    #[schema(value_type = String, format = Uuid)]
    pub conversation_id: ConversationId,
    /// 1, 2, 3, … within the conversation, without gaps.
    pub seq: i64,
    pub sender: Sender,
    pub body: String,
    pub client_message_id: Option<String>,
    pub created_at: String,
    /// The files the message carries (CONTRACT §11); absent when it carries none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRef>,
}

/// An attachment as a message shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRef {
    #[schema(value_type = String, format = Uuid)]
    pub attachment_id: AttachmentId,
    pub filename: String,
    /// What the bytes are (their signature).
    pub content_type: String,
    /// Bytes.
    pub size: i64,
}

impl From<&AttachmentMeta> for AttachmentRef {
    fn from(a: &AttachmentMeta) -> Self {
        Self {
            attachment_id: a.attachment_id,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
        }
    }
}

/// The answer to an upload.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[schema(value_type = String, format = Uuid)]
    pub attachment_id: AttachmentId,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

impl From<&AttachmentRow> for Attachment {
    fn from(a: &AttachmentRow) -> Self {
        Self {
            attachment_id: a.attachment_id,
            filename: a.filename.clone(),
            content_type: a.content_type.clone(),
            size: a.size,
            sha256: a.sha256.clone(),
        }
    }
}

impl From<&MessageRow> for Message {
    fn from(m: &MessageRow) -> Self {
        Self {
            message_id: m.message_id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            sender: Sender {
                kind: m.sender_type.as_str(),
                id: m.sender_id.to_string(),
                name: m.sender_name.clone(),
            },
            body: m.body.clone(),
            client_message_id: m.client_message_id.clone(),
            created_at: rfc3339_millis(m.created_at),
            attachments: m.attachments.iter().map(AttachmentRef::from).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageList {
    pub messages: Vec<Message>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    #[schema(value_type = String, format = Uuid)]
    pub conversation_id: ConversationId,
    #[schema(value_type = String, format = Uuid)]
    pub messenger_id: MessengerId,
    #[schema(value_type = i64)]
    pub site_id: SiteId,
    #[schema(value_type = String, format = Uuid)]
    pub contact_id: ContactId,
    /// `open` or `closed`.
    pub status: &'static str,
    pub preview: bool,
    pub last_message: Option<Message>,
    pub last_seq: i64,
    pub contact_read_seq: i64,
    pub agent_read_seq: i64,
    pub created_at: String,
    pub updated_at: String,
    /// When the contact was last told by email that a reply waits (CONTRACT §10), if ever.
    pub notified_at: Option<String>,
    /// In the agents' list: the contact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Contact>,
}

impl Conversation {
    pub fn new(c: &ConversationRow, last: Option<&MessageRow>) -> Self {
        Self {
            conversation_id: c.conversation_id,
            messenger_id: c.messenger_id,
            site_id: c.site_id,
            contact_id: c.contact_id,
            status: if c.open { "open" } else { "closed" },
            preview: c.preview,
            last_message: last.map(Message::from),
            last_seq: c.last_seq,
            contact_read_seq: c.contact_read_seq,
            agent_read_seq: c.agent_read_seq,
            created_at: rfc3339_millis(c.created_at),
            updated_at: rfc3339_millis(c.updated_at),
            notified_at: c.noticed_at.map(rfc3339_millis),
            contact: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
}

/// The Security tab (CONTRACT §5), as reads show it: never a shared token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySchema {
    /// `{"method": "sharedToken", "sharedToken": null, "sharedTokenSet": true, "encoding":
    /// "text"|"base64url"}`, `{"method": "publicKey", "publicKey": "PEM"}` or
    /// `{"method": "jwks", "jwksUrl": "https://…"}`.
    validation: Value,
    contact_identity_key: String,
    allowed_urls: Vec<String>,
    clock_skew_seconds: u32,
    max_token_lifetime_seconds: Option<u64>,
    issuer: Option<String>,
    audience: Option<String>,
    attachments: AttachmentSettings,
    /// During a rollover (CONTRACT §5): the validation a change replaced, which keeps
    /// verifying until `until`; `null` otherwise. Never a secret.
    previous_validation: Option<PreviousValidationSchema>,
}

/// The validation that a `PUT …/security` with `rolloverSeconds` replaced (CONTRACT §5).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousValidationSchema {
    /// `sharedToken`, `publicKey` or `jwks`.
    method: String,
    /// RFC 3339: the previous validation verifies Contact JWTs until then, never after.
    until: String,
}

/// A messenger's attachment settings (CONTRACT §11), in its security object.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentSettings {
    /// Default false.
    pub enabled: bool,
    /// 1 to 26214400; default 10485760.
    pub max_bytes: u64,
    /// MIME types, by the files' signatures; default image/png, image/jpeg, application/pdf.
    pub allowed_types: Vec<String>,
}

impl From<&confidant_core::Attachments> for AttachmentSettings {
    fn from(a: &confidant_core::Attachments) -> Self {
        Self {
            enabled: a.enabled,
            max_bytes: a.max_bytes,
            allowed_types: a.allowed_types.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Messenger {
    #[schema(value_type = String, format = Uuid)]
    pub messenger_id: MessengerId,
    #[schema(value_type = i64)]
    pub site_id: SiteId,
    pub name: String,
    #[schema(value_type = SecuritySchema)]
    pub security: Value,
    pub created_at: String,
}

impl Messenger {
    pub fn new(m: &MessengerRow, security: Value) -> Self {
        Self {
            messenger_id: m.messenger_id,
            site_id: m.site_id,
            name: m.name.clone(),
            security,
            created_at: rfc3339_millis(m.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessengerList {
    pub messengers: Vec<Messenger>,
}

/// A messenger's offline notices (CONTRACT §10), as `GET`/`PUT …/notifications` answer them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationsSchema {
    pub email: EmailNoticeSchema,
    /// Whether the server has a mail server (`--smtp-url`); without one nothing is sent.
    pub smtp_configured: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailNoticeSchema {
    pub enabled: bool,
    /// 0 to 86400 (default 300).
    pub after_seconds: u32,
    /// https:// (http:// on localhost); required when enabled.
    pub link_url: Option<String>,
    /// One line, at most 200 characters (default "You have a new secure message").
    pub subject: String,
}

impl NotificationsSchema {
    pub fn new(n: &confidant_core::notices::Notifications, smtp_configured: bool) -> Self {
        Self {
            email: EmailNoticeSchema {
                enabled: n.email.enabled,
                after_seconds: n.email.after_seconds,
                link_url: n.email.link_url.clone(),
                subject: n.email.subject.clone(),
            },
            smtp_configured,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TestEmailSent {
    pub sent: bool,
}

#[derive(Serialize, ToSchema)]
pub struct InstallationCode {
    pub html: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginAnswer {
    /// The session token (also set as an HttpOnly cookie).
    pub token: String,
    pub agent: Agent,
    /// The site requires TOTP and the agent has none: this session may only set it up
    /// (`POST /api/v1/auth/totp/setup`).
    pub totp_setup_required: bool,
}

/// Who is calling.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Me {
    Operator {
        operator: bool,
    },
    #[serde(rename_all = "camelCase")]
    Agent {
        agent: Agent,
        /// The agent has two-factor authentication (TOTP) on.
        totp_enabled: bool,
        /// The site requires TOTP and the agent has none: this session may only set it up.
        totp_setup_required: bool,
    },
}

/// A single-use ticket for the agent socket's auth frame.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WsTicket {
    pub ticket: String,
    /// Seconds.
    pub expires_in: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeAnswer {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    pub contact: Contact,
}

/// What the loader needs on the business's page.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessengerConfig {
    #[schema(value_type = i64)]
    pub site_id: SiteId,
    #[schema(value_type = String, format = Uuid)]
    pub messenger_id: MessengerId,
    pub name: String,
    pub allowed_urls: Vec<String>,
    /// Whether the frame offers attachments, and their limits.
    pub attachments: AttachmentSettings,
    /// The look and the business hours, with whether the business is open now.
    #[serde(flatten)]
    pub appearance: PublicAppearance,
}

/// A messenger's appearance and availability (`GET`/`PUT …/appearance`). A `PUT` replaces the
/// whole: an absent or null field takes its default; unknown fields are refused.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppearanceSchema {
    /// The frame's heading, one line of at most 80 characters (null: the messenger's name).
    pub title: Option<String>,
    /// Shown to a customer who has not written yet; at most 1,000 characters.
    pub greeting: Option<String>,
    /// `#RRGGBB` (read back in lower case); default `#1f5fbf`.
    pub color: String,
    /// Shown outside business hours; at most 1,000 characters.
    pub away_message: Option<String>,
    /// The expected reply time shown outside business hours, e.g. "within one business day";
    /// one line of at most 100 characters.
    pub reply_time: Option<String>,
    /// null: no hours, always open.
    pub business_hours: Option<BusinessHoursSchema>,
}

/// Opening hours in the business's time zone.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusinessHoursSchema {
    /// An IANA time zone name, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Per day (`mon` … `sun`; a day left out or `[]` is closed), up to 8 intervals
    /// `["HH:MM", "HH:MM"]` of wall-clock time, the end after the start (`"24:00"` for
    /// midnight), not overlapping. Reads list all seven days, intervals sorted, touching ones
    /// joined.
    #[schema(example = json!({"mon": [["09:00", "17:00"]], "tue": [["09:00", "12:00"], ["13:00", "17:00"]]}))]
    pub weekly: BTreeMap<String, Vec<[String; 2]>>,
}

/// What the loader and the frame show: the look, and whether the business is open now
/// (computed by the server in the business's time zone).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicAppearance {
    /// The title that is set, else the messenger's name.
    pub title: String,
    pub greeting: Option<String>,
    /// `#rrggbb`.
    pub color: String,
    pub away_message: Option<String>,
    pub reply_time: Option<String>,
    #[schema(value_type = Option<BusinessHoursSchema>)]
    pub business_hours: Option<Value>,
    /// Now within business hours (always true without hours).
    pub open: bool,
    /// While closed: the next opening (RFC 3339), null when no hours open within a week.
    pub next_open: Option<String>,
    /// While open: the next closing (RFC 3339), null around the clock or without hours.
    pub next_close: Option<String>,
    /// Offline notices by email are on for this messenger and the server can send mail: a
    /// customer with an email attribute hears of a reply by email.
    pub email_notices: bool,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<&'static str>,
    /// `in-process`, `connected` or `disconnected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<&'static str>,
}

/// A webhook (CONTRACT §10), as lists show it: never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    #[schema(value_type = String, format = Uuid)]
    pub webhook_id: uuid::Uuid,
    pub url: String,
    /// Event names: `conversation.created`, `message.created`, `conversation.closed`,
    /// `contact.notified`.
    pub events: Vec<String>,
    /// Whether message events carry the message's `body`.
    pub include_body: bool,
    pub created_at: String,
}

impl From<&WebhookRow> for Webhook {
    fn from(w: &WebhookRow) -> Self {
        Self {
            webhook_id: w.webhook_id,
            url: w.url.clone(),
            events: w.events.clone(),
            include_body: w.include_body,
            created_at: rfc3339_millis(w.created_at),
        }
    }
}

/// A webhook just created: with its secret, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: the HMAC key of `Confidant-Signature` is this text's UTF-8 bytes.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDelivery {
    #[schema(value_type = String, format = Uuid)]
    pub delivery_id: uuid::Uuid,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: uuid::Uuid,
    /// The event type (`message.created`, …, or `webhook.test`).
    #[serde(rename = "type")]
    pub kind: String,
    /// When the attempt started.
    pub at: String,
    /// The receiver's HTTP status; null when no answer came.
    pub status: Option<i64>,
    /// Why it failed (`answered HTTP 500`, `no answer within 10 s`, `could not connect`, …).
    pub error: Option<String>,
    pub latency_ms: i64,
    /// A 2xx within 10 seconds.
    pub delivered: bool,
}

impl From<&DeliveryRow> for WebhookDelivery {
    fn from(d: &DeliveryRow) -> Self {
        Self {
            delivery_id: d.delivery_id,
            event_id: d.event_id,
            kind: d.event_type.clone(),
            at: rfc3339_millis(d.at),
            status: d.status,
            error: d.error.clone(),
            latency_ms: d.latency_ms,
            delivered: d.delivered,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookDeliveryList {
    /// Newest first, at most 100.
    pub deliveries: Vec<WebhookDelivery>,
}

/// The outcome of a test event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTestResult {
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    #[schema(value_type = String, format = Uuid)]
    pub event_id: uuid::Uuid,
}

// ---- requests ----

/// A site id in a body: a number, or a string of digits (`"siteId": "10000"` is common in HTML
/// data attributes); up to 2^53 − 1, the largest integer every JSON reader holds exactly.
pub struct SiteIdSchema;

/// The largest site id (`SiteId::MAX`).
pub const SITE_ID_MAX: i64 = SiteId::MAX.0;

impl utoipa::PartialSchema for SiteIdSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .maximum(Some(SITE_ID_MAX)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]{1,16}$")),
            )
            .description(Some(
                "a site id such as 10000, as a number or a string of digits",
            ))
            .into()
    }
}

impl ToSchema for SiteIdSchema {}

/// A webhook event.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: the service reads the names as text"
)]
pub enum WebhookEventName {
    #[schema(rename = "conversation.created")]
    ConversationCreated,
    #[schema(rename = "message.created")]
    MessageCreated,
    #[schema(rename = "conversation.closed")]
    ConversationClosed,
    #[schema(rename = "contact.notified")]
    ContactNotified,
}

/// An attachment's id (a UUID).
pub struct AttachmentIdSchema;

impl utoipa::PartialSchema for AttachmentIdSchema {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .pattern(Some(UUID_PATTERN))
            .into()
    }
}

impl ToSchema for AttachmentIdSchema {}

/// What the document's UUIDs match (any version, either case).
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// An agent's role.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "a schema only: handlers read the role as text")]
pub enum RoleName {
    Admin,
    Agent,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateSite {
    /// 1–200 characters (not only spaces).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateAgent {
    /// An email address, at most 254 characters.
    #[schema(value_type = String, required = true, max_length = 254, pattern = r"^\s*[^@\s]+@[^@\s]*[^@\s]\s*$")]
    pub email: Option<String>,
    /// 12–1,024 characters.
    #[schema(value_type = String, required = true, min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    /// 1–200 characters (not only spaces).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    /// `admin` or `agent` (default).
    #[schema(value_type = Option<RoleName>)]
    pub role: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Login {
    /// A site id, as a number or a string of digits.
    #[schema(value_type = SiteIdSchema, required = true)]
    pub site_id: Option<SiteId>,
    #[schema(value_type = String, required = true, max_length = 254, pattern = r"\S")]
    pub email: Option<String>,
    #[schema(value_type = String, required = true, min_length = 1, max_length = 1024)]
    pub password: Option<String>,
    /// The 6-digit TOTP code, for an agent with two-factor authentication on (CONTRACT §12).
    #[schema(max_length = 16)]
    pub totp: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateMessenger {
    /// 1–200 characters (not only spaces).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    /// The Security object; every field has a default.
    #[schema(value_type = Option<SecuritySchema>)]
    pub security: Option<Value>,
}

/// `PATCH …/messengers/{messengerId}`: what to change (the name, for now).
#[derive(Deserialize, ToSchema)]
pub struct PatchMessenger {
    /// 1–200 characters, as on create.
    pub name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorize {
    /// A site id, as a number or a string of digits.
    #[schema(value_type = SiteIdSchema, required = true)]
    pub site_id: Option<SiteId>,
    #[schema(value_type = String, required = true)]
    pub messenger_id: Option<String>,
    /// Also accepted under the name `"Contact JWT"`.
    #[serde(alias = "Contact JWT")]
    #[schema(value_type = String, required = true)]
    pub contact_jwt: Option<String>,
    pub is_preview: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Send {
    /// Makes the send idempotent: a repeat answers `200` with the stored message. 1–128
    /// characters, no control characters.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub client_message_id: Option<String>,
    /// 1 to 10000 characters, not only spaces, no control characters but tab and line breaks;
    /// may be absent when `attachmentIds` names at least one.
    #[schema(value_type = String, required = false, min_length = 1, max_length = 10000, pattern = r"^(?=[\s\S]*\S)[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$")]
    pub body: Option<String>,
    /// Contacts: the conversation to write in (default: the open one, or a new one).
    pub conversation_id: Option<String>,
    /// Uploaded attachments to carry (at most 10), each the sender's own and on no other message.
    #[schema(max_items = 10, value_type = Option<Vec<AttachmentIdSchema>>)]
    pub attachment_ids: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
pub struct TestEmail {
    /// Where the test notice goes.
    pub to: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct ReadMarker {
    /// Read up to this seq (a marker never moves back).
    #[schema(value_type = i64, required = true, minimum = 0)]
    pub seq: Option<i64>,
}

/// `after` and `limit` of message lists.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Messages after this seq (default 0).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many (default 50; more counts as 200).
    #[param(minimum = 1)]
    pub limit: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    /// `open` (default), `closed` or `all`.
    #[param(pattern = "^(open|closed|all)$")]
    pub status: Option<String>,
    /// `true`: test conversations from previews instead of real ones.
    pub preview: Option<bool>,
    /// At most this many (default and most 200).
    #[param(minimum = 1)]
    pub limit: Option<i64>,
    /// `me`, `none` or an agent's id (CONTRACT §16).
    #[param(
        pattern = r"^(|me|none|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    pub assignee: Option<String>,
    /// One contact's whole history (every status unless `status` is given).
    #[serde(rename = "contactId")]
    #[param(format = Uuid, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub contact_id: Option<String>,
    /// Only the conversations of this messenger of the site (another site's: none).
    #[serde(rename = "messengerId")]
    pub messenger_id: Option<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ConfigQuery {
    pub site_id: Option<String>,
    pub messenger_id: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhook {
    /// `https://…` (`http://` and private hosts only with `--allow-private-urls on`).
    #[schema(value_type = String, required = true, pattern = "^[hH][tT][tT][pP][sS]?://[^/?#]")]
    pub url: Option<String>,
    /// One or more of `conversation.created`, `message.created`, `conversation.closed`,
    /// `contact.notified`.
    #[schema(value_type = Vec<WebhookEventName>, required = true, min_items = 1)]
    pub events: Option<Vec<String>>,
    /// Message events carry the message's `body` (default false).
    pub include_body: Option<bool>,
}

// ---- audit log and site settings (§12, §13), contact search (§14) ----

/// One audit entry (CONTRACT §13). `hash` is the hex SHA-256 of the previous entry's `hash`
/// (64 zeros before the first) followed by this entry's canonical JSON: the entry without
/// `hash`, object keys sorted at every level, no white space.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// `{"type": "agent"|"operator"|"system", "id"?, "email"?}`.
    #[schema(value_type = Object)]
    pub actor: Value,
    /// `login.succeeded`, `security.updated`, …
    pub action: String,
    /// What was acted on (ids, emails, names of changed fields; never a secret).
    #[schema(value_type = Object)]
    pub target: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub hash: String,
}

impl From<&confidant_store::AuditRow> for AuditEntry {
    fn from(r: &confidant_store::AuditRow) -> Self {
        Self {
            seq: r.seq,
            at: rfc3339_millis(r.at),
            actor: r.actor.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            ip: r.ip.clone(),
            hash: r.hash.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The `seq` of the site's newest entry (0 when the log is empty): where a reader that
    /// shows the newest entries first starts.
    pub last_seq: i64,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries after this `seq` (default 0).
    pub after: Option<i64>,
    /// At most this many (default 100; counted as 1 to 1000).
    pub limit: Option<i64>,
}

/// `ok`: every entry's hash matches its content and its predecessor, with no entry missing.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerify {
    pub ok: bool,
    /// Entries read.
    pub entries: i64,
    /// The first entry that was altered or is missing; null when `ok`.
    pub broken_seq: Option<i64>,
}

/// A site's settings (CONTRACT §12).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SiteSettings {
    /// An agent session with no request and no socket activity this long ends (1–1,440).
    pub idle_timeout_minutes: i64,
    /// Agents must use TOTP; one without it can log in only to set it up.
    pub require_totp: bool,
    /// Closed conversations older than this are deleted; null keeps them.
    pub retention_days: Option<i64>,
}

impl From<confidant_store::SiteSettings> for SiteSettings {
    fn from(s: confidant_store::SiteSettings) -> Self {
        Self {
            idle_timeout_minutes: s.idle_minutes(),
            require_totp: s.require_totp,
            retention_days: s.retention_days,
        }
    }
}

/// A change of the settings: an absent field stays as it is; `idleTimeoutMinutes: null` is
/// the default (60), `retentionDays: null` keeps conversations forever.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(
    clippy::option_option,
    reason = "absent, null and a value are three different asks"
)]
pub struct PutSiteSettings {
    /// 1–1,440 (null: 60).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 1440)]
    pub idle_timeout_minutes: Option<Option<i64>>,
    pub require_totp: Option<bool>,
    /// 0–3,650 (null: keep everything).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 3650)]
    pub retention_days: Option<Option<i64>>,
}

/// A field that is present (`Some`, its value possibly null) or absent (`None`, by `default`).
#[allow(
    clippy::option_option,
    reason = "absent, null and a value are three different asks"
)]
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactQuery {
    /// Text that the identity or an attribute contains (ignoring case); 1–256 characters.
    #[param(required = true, min_length = 1, max_length = 256)]
    #[schema(required = true, min_length = 1, max_length = 256)]
    pub query: Option<String>,
}

// ---- agent accounts (CONTRACT §12) ----

/// An agent with its account state, as admins see it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentAccount {
    /// The agent as everywhere else (`agentId`, `siteId`, `email`, `name`, `role`, `createdAt`).
    #[serde(flatten)]
    pub agent: Agent,
    pub totp_enabled: bool,
    pub disabled: bool,
    /// The login lockout (CONTRACT §5) is in force for the agent's email.
    pub locked: bool,
    /// RFC 3339, or null before the first login.
    pub last_login_at: Option<String>,
}

impl AgentAccount {
    /// `now` (Unix ms) decides `locked`.
    pub fn new(a: &confidant_store::AccountRow, now: i64) -> Self {
        Self {
            agent: Agent::from(&a.agent),
            totp_enabled: a.totp_enabled,
            disabled: a.disabled,
            locked: a.locked_until > now,
            last_login_at: a.last_login_at.map(rfc3339_millis),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AgentAccountList {
    pub agents: Vec<AgentAccount>,
}

/// An admin's change to an agent: any of the fields; absent ones stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchAgent {
    /// 1–200 characters (not only spaces).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    /// `admin` or `agent`.
    #[schema(value_type = Option<RoleName>)]
    pub role: Option<String>,
    /// `true` ends the agent's sessions at once and refuses its logins.
    pub disabled: Option<bool>,
    /// A new password (12–1,024 characters); ends the agent's sessions.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    /// `true` turns the agent's TOTP off.
    pub reset_totp: Option<bool>,
    /// `true` lifts the login lockout.
    pub unlock: Option<bool>,
}

/// A new TOTP secret, shown once: the agent adds it to an authenticator app.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpSetup {
    /// Base32 (RFC 4648, no padding).
    pub secret: String,
    /// `otpauth://totp/Confidant:<email>?secret=…&issuer=Confidant…`
    pub otpauth_url: String,
}

#[derive(Deserialize, ToSchema)]
pub struct TotpConfirm {
    /// A 6-digit code of the new secret.
    #[schema(value_type = String, required = true, pattern = r"^\s*[0-9]{6}\s*$")]
    pub code: Option<String>,
}

/// One of the calling agent's sessions.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub session_id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The session of this request.
    pub current: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

// ---- retention, export and erasure (CONTRACT §14) ----

/// What a retention pass deleted.
#[derive(Serialize, ToSchema)]
pub struct RetentionCounts {
    pub conversations: u64,
    pub messages: u64,
    pub attachments: u64,
}

/// A conversation in a contact's export: the conversation as agents see it, with every message
/// (bodies in clear, in `seq` order, each with its attachments' metadata).
#[derive(Serialize, ToSchema)]
pub struct ExportedConversation {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub messages: Vec<Message>,
}

/// Everything the site holds of a contact (GDPR art. 15): the contact and each of its
/// conversations, previews included (marked `"preview": true`).
#[derive(Serialize, ToSchema)]
pub struct ContactExport {
    pub contact: Contact,
    pub conversations: Vec<ExportedConversation>,
}

// ---- agent workflow (CONTRACT §16) ----

/// Who a conversation is assigned to.
#[derive(Serialize, ToSchema, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Assignee {
    #[schema(value_type = String, format = Uuid)]
    pub agent_id: AgentId,
    pub name: String,
}

/// A conversation as agents see it: with its contact, assignee and unread count.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentConversation {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub assignee: Option<Assignee>,
    /// The contact's messages after the agents' read marker.
    pub unread_count: i64,
    /// The messenger it came from (absent in the frame of a conversation just opened: the
    /// console knows the site's messengers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messenger: Option<MessengerRef>,
}

/// Which messenger a conversation came from, as agents see it: a deleted messenger's
/// conversations stay readable and say so.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessengerRef {
    #[schema(value_type = String, format = Uuid)]
    pub messenger_id: MessengerId,
    pub name: String,
    pub deleted: bool,
}

impl From<&confidant_store::AgentConversation> for AgentConversation {
    fn from(c: &confidant_store::AgentConversation) -> Self {
        Self {
            conversation: Conversation {
                contact: Some(Contact::from(&c.contact)),
                ..Conversation::new(&c.conversation, c.last.as_ref())
            },
            assignee: c.assignee.as_ref().map(|(id, name)| Assignee {
                agent_id: *id,
                name: name.clone(),
            }),
            unread_count: c.unread,
            messenger: Some(MessengerRef {
                messenger_id: c.conversation.messenger_id,
                name: c.messenger_name.clone(),
                deleted: c.messenger_deleted,
            }),
        }
    }
}

/// A page of the agents' list; `next` is the cursor of the following page (`after`), null at
/// the end.
#[derive(Serialize, ToSchema)]
pub struct AgentConversationPage {
    pub conversations: Vec<AgentConversation>,
    pub next: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Assign {
    /// An agent of the site, or null to unassign.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Uuid, required = true, pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub agent_id: Option<Option<String>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CannedReply {
    #[schema(value_type = String, format = Uuid)]
    pub canned_reply_id: uuid::Uuid,
    pub shortcut: String,
    pub title: String,
    pub body: String,
    pub created_at: String,
}

impl From<&confidant_store::CannedReplyRow> for CannedReply {
    fn from(c: &confidant_store::CannedReplyRow) -> Self {
        Self {
            canned_reply_id: c.canned_reply_id,
            shortcut: c.shortcut.clone(),
            title: c.title.clone(),
            body: c.body.clone(),
            created_at: rfc3339_millis(c.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CannedReplyList {
    pub canned_replies: Vec<CannedReply>,
}

#[derive(Deserialize, ToSchema)]
pub struct NewCannedReply {
    /// 1–32 of `a-z 0-9 _ -`, unique within the site.
    #[schema(value_type = String, required = true, pattern = "^[a-z0-9_-]{1,32}$")]
    pub shortcut: Option<String>,
    /// 1–200 characters (not only spaces).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"\S")]
    pub title: Option<String>,
    /// 1–10,000 characters (not only spaces).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 10000, pattern = r"\S")]
    pub body: Option<String>,
}

/// The token check's request (CONTRACT §15).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckToken {
    /// Also accepted under the name `"Contact JWT"`, as authorize does.
    #[serde(alias = "Contact JWT")]
    #[schema(value_type = String, required = true)]
    pub contact_jwt: Option<String>,
}

/// The token check's answer (CONTRACT §15).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCheck {
    /// Whether authorize would accept the token now.
    pub ok: bool,
    /// The §6 error code of the first failing check; null when `ok`.
    pub code: Option<&'static str>,
    /// All ten checks, in §6's order.
    pub checks: Vec<TokenCheckRow>,
    /// The token's decoded header, whatever its signature says (`{}` when it does not decode).
    #[schema(value_type = Object)]
    pub header: serde_json::Map<String, Value>,
    /// The token's decoded claims, whatever its signature says (`{}` when they do not decode).
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, Value>,
    /// What the integrator most likely did wrong, in plain words; null when nothing is.
    pub hint: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCheckRow {
    /// `format`, `algorithm`, `key`, `signature`, `expiry`, `notBefore`, `lifetime`, `issuer`,
    /// `audience` or `identity`.
    pub check: &'static str,
    /// true passed, false failed, null not run (after the first failure).
    pub ok: Option<bool>,
    pub detail: String,
}
