//! Confidant's domain: the parsed values that the rest of the code relies on.
//!
//! Nothing here knows about HTTP or SQL. A value that passed its checks has its own type
//! (`SiteId`, `Identity`, `MessageBody`, `Security`, …), so later code cannot forget them.

pub mod appearance;
pub mod attributes;
pub mod fields;
pub mod ids;
pub mod message;
pub mod notices;
pub mod outbound;
pub mod scope;
pub mod security;
pub mod time_fmt;
pub mod urls;

pub use attributes::ContactAttributes;
pub use fields::{FieldError, Problems};
pub use ids::{AgentId, AttachmentId, ContactId, ConversationId, MessageId, MessengerId, SiteId};
pub use message::{ClientMessageId, MessageBody};
pub use scope::ContactScope;
pub use security::{
    Attachments, Encoding, PreviousValidation, Security, SecurityInput, Validation,
};
pub use urls::AllowedUrl;
