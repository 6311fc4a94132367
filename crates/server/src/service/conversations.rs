//! Conversations (CONTRACT §7): sends, closes, read markers and lists, from the contact's side
//! (within its `ContactScope`) and the agents' side (within their site), and the live events
//! each of them publishes.

use std::sync::Arc;

use confidant_core::time_fmt::now_millis;
use confidant_core::{
    AttachmentId, ClientMessageId, ContactScope, ConversationId, MessageBody, SiteId,
};
use confidant_realtime::{Event, Hub, Topic};
use confidant_store::{
    ConversationRow, MessageRow, SendOutcome, SendRequest, SendTarget, SenderType, Store,
    StoreError,
};

use super::attachments::{Attachments, MAX_PER_MESSAGE, SendAs};
use super::contacts::Contacts;
use crate::api::frames::{Party, ServerFrame};
use crate::api::{Conversation, Message};
use crate::error::{ApiError, ApiResult};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// Who looks at a conversation: a contact within its scope, or the agents of a site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    Contact(ContactScope),
    Agents(SiteId),
}

impl Viewer {
    pub fn site(&self) -> SiteId {
        match self {
            Viewer::Contact(s) => s.site,
            Viewer::Agents(site) => *site,
        }
    }

    /// Whether this viewer may see the conversation.
    pub fn may_see(&self, c: &ConversationRow) -> bool {
        match self {
            Viewer::Contact(s) => s.owns(c.site_id, c.contact_id, c.messenger_id, c.preview),
            Viewer::Agents(site) => c.site_id == *site,
        }
    }
}

/// A send as the client asked for it, checked.
pub struct NewMessage {
    pub client_message_id: String,
    /// Empty only when the message carries attachments.
    pub body: String,
    pub attachments: Vec<AttachmentId>,
}

impl NewMessage {
    /// `attachmentIds`: at most 10 distinct attachment ids.
    pub fn attachment_ids(ids: Option<Vec<String>>) -> ApiResult<Vec<AttachmentId>> {
        let ids = ids.unwrap_or_default();
        if ids.len() > MAX_PER_MESSAGE {
            return Err(ApiError::invalid(format!(
                "attachmentIds: at most {MAX_PER_MESSAGE} attachments per message"
            )));
        }
        let mut out: Vec<AttachmentId> = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            let id: AttachmentId = id.parse().map_err(|_| {
                ApiError::invalid(format!("attachmentIds[{i}]: must be an attachment id"))
            })?;
            if out.contains(&id) {
                return Err(ApiError::invalid(format!(
                    "attachmentIds[{i}]: names the same attachment twice"
                )));
            }
            out.push(id);
        }
        Ok(out)
    }

    /// Check a send's fields; a send without `clientMessageId` gets a fresh one (not idempotent).
    /// A message needs a body or an attachment.
    pub fn parse(
        client_message_id: Option<String>,
        body: Option<String>,
        attachments: Vec<AttachmentId>,
    ) -> ApiResult<Self> {
        let client_message_id = match client_message_id {
            Some(s) => ClientMessageId::parse(s)
                .map_err(|e| ApiError::invalid(format!("clientMessageId: {e}")))?
                .into_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let body = match body {
            None if !attachments.is_empty() => String::new(),
            Some(b) if b.is_empty() && !attachments.is_empty() => b,
            body => body
                .ok_or_else(|| ApiError::invalid("body: must be a string of 1 to 10000 characters"))
                .and_then(|b| {
                    MessageBody::parse(b).map_err(|e| ApiError::invalid(format!("body: {e}")))
                })?
                .into_string(),
        };
        Ok(Self {
            client_message_id,
            body,
            attachments,
        })
    }
}

/// A store refusal of a send as the contract words it: an attachment another message took
/// (or the sweep removed) between the check and the insert names the field.
fn send_refused(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict("attachmentIds") => ApiError::invalid(
            "attachmentIds: an attachment is already on another message (or no longer exists)",
        ),
        other => other.into(),
    }
}

/// The stored message and whether this call stored it (`false`: a repeat, answered `200`).
pub struct Sent {
    pub message: MessageRow,
    pub created: bool,
}

pub struct Conversations {
    store: Store,
    hub: Arc<dyn Hub>,
    contacts: Arc<Contacts>,
    attachments: Arc<Attachments>,
}

impl Conversations {
    pub fn new(
        store: Store,
        hub: Arc<dyn Hub>,
        contacts: Arc<Contacts>,
        attachments: Arc<Attachments>,
    ) -> Self {
        Self {
            store,
            hub,
            contacts,
            attachments,
        }
    }

    /// The conversation if the viewer may see it, else `404 not_found` (whether it exists
    /// elsewhere or not).
    pub async fn visible(&self, viewer: &Viewer, id: ConversationId) -> ApiResult<ConversationRow> {
        self.store
            .get_conversation(viewer.site(), id)
            .await?
            .filter(|c| viewer.may_see(c))
            .ok_or_else(|| ApiError::not_found("conversation"))
    }

    /// A contact's conversations in its scope, newest first, with their last messages.
    pub async fn of_contact(
        &self,
        scope: &ContactScope,
    ) -> ApiResult<Vec<(ConversationRow, Option<MessageRow>)>> {
        Ok(self
            .store
            .contact_conversations(
                scope.site,
                scope.messenger,
                scope.contact,
                scope.preview,
                100,
            )
            .await?)
    }

    /// Messages after `after`, in seq order, of a conversation the viewer may see.
    pub async fn messages(
        &self,
        viewer: &Viewer,
        id: ConversationId,
        after: i64,
        limit: i64,
    ) -> ApiResult<Vec<MessageRow>> {
        self.visible(viewer, id).await?;
        self.messages_unchecked(viewer.site(), id, after, limit)
            .await
    }

    /// Messages of a conversation already known to be visible (a socket filling its gaps).
    pub async fn messages_unchecked(
        &self,
        site: SiteId,
        id: ConversationId,
        after: i64,
        limit: i64,
    ) -> ApiResult<Vec<MessageRow>> {
        Ok(self.store.messages(site, id, after, limit).await?)
    }

    /// A contact writes: into `conversation` if named (it must be its own), else into its open
    /// conversation, opening one when there is none.
    pub async fn contact_send(
        &self,
        scope: &ContactScope,
        conversation: Option<ConversationId>,
        m: NewMessage,
    ) -> ApiResult<Sent> {
        let name = self.contacts.name(scope.site, scope.contact).await?;
        let attachments = self
            .attachments
            .for_send(SendAs::Contact(scope), &m.attachments)
            .await?;
        let out = self
            .store
            .send(SendRequest {
                site_id: scope.site,
                target: SendTarget::Contact {
                    messenger_id: scope.messenger,
                    contact_id: scope.contact,
                    preview: scope.preview,
                    conversation_id: conversation,
                },
                sender_type: SenderType::Contact,
                sender_id: scope.contact.0,
                sender_name: name.to_string(),
                body: m.body,
                client_message_id: Some(m.client_message_id),
                now: now_millis(),
                attachments,
            })
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("conversation"),
                other => send_refused(other),
            })?;
        Ok(Sent {
            created: out.created,
            message: out.message,
        })
    }

    /// An agent (or the operator) writes into a conversation of the site.
    pub async fn agent_send(
        &self,
        site: SiteId,
        id: ConversationId,
        (sender_id, sender_name): (uuid::Uuid, String),
        m: NewMessage,
    ) -> ApiResult<Sent> {
        self.visible(&Viewer::Agents(site), id).await?;
        let attachments = self
            .attachments
            .for_send(
                SendAs::Agent {
                    site,
                    conversation: id,
                },
                &m.attachments,
            )
            .await?;
        let out = self
            .store
            .send(SendRequest {
                site_id: site,
                target: SendTarget::Agent {
                    conversation_id: id,
                },
                sender_type: SenderType::Agent,
                sender_id,
                sender_name,
                body: m.body,
                client_message_id: Some(m.client_message_id),
                now: now_millis(),
                attachments,
            })
            .await
            .map_err(send_refused)?;
        Ok(Sent {
            created: out.created,
            message: out.message,
        })
    }

    /// Close a conversation with a system message naming who closed it.
    pub async fn close(
        &self,
        site: SiteId,
        id: ConversationId,
        (closer_id, closer_name): (uuid::Uuid, String),
    ) -> ApiResult<(ConversationRow, MessageRow)> {
        self.visible(&Viewer::Agents(site), id).await?;
        let out = self
            .store
            .send(SendRequest {
                site_id: site,
                target: SendTarget::Close {
                    conversation_id: id,
                },
                sender_type: SenderType::System,
                sender_id: closer_id,
                sender_name: "System".to_owned(),
                body: format!("{closer_name} closed the conversation."),
                client_message_id: None,
                now: now_millis(),
                attachments: Vec::new(),
            })
            .await?;
        Ok((out.conversation, out.message))
    }

    /// Reopen a closed conversation of the site (undoing a close, or taking it up again),
    /// with a system message naming who reopened it; `false` when it was open already. The
    /// message and the conversation reach the contact's sockets as a send's would; the
    /// caller tells the agents (with the assignee). `409 conflict` when the contact has
    /// opened another conversation in that messenger since (CONTRACT §7: one open at most).
    pub async fn reopen(
        &self,
        site: SiteId,
        id: ConversationId,
        (opener_id, opener_name): (uuid::Uuid, String),
    ) -> ApiResult<bool> {
        self.visible(&Viewer::Agents(site), id).await?;
        let out = self
            .store
            .reopen(
                site,
                id,
                opener_id,
                &format!("{opener_name} reopened the conversation."),
                now_millis(),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("conversation"),
                StoreError::Conflict(_) => ApiError::conflict(
                    "the customer has another open conversation in this messenger since; \
                     answer there",
                ),
                other => other.into(),
            })?;
        let Some(out) = out else { return Ok(false) };
        self.publish_stored(&SendOutcome {
            // The contact's side learns the status as when a send opens a conversation.
            opened: true,
            ..out
        });
        Ok(true)
    }

    /// Move the viewer's side's read marker (it never moves back) and tell the other side.
    pub async fn mark_read(
        &self,
        viewer: &Viewer,
        reader: Party,
        id: ConversationId,
        seq: i64,
    ) -> ApiResult<()> {
        if seq < 0 {
            return Err(ApiError::invalid("seq: must be a whole number ≥ 0"));
        }
        self.visible(viewer, id).await?;
        let by_agent = matches!(viewer, Viewer::Agents(_));
        let conv = self
            .store
            .mark_read(viewer.site(), id, by_agent, seq)
            .await?;
        let seq = if by_agent {
            conv.agent_read_seq
        } else {
            conv.contact_read_seq
        };
        let frame = ServerFrame::Read {
            conversation_id: conv.conversation_id,
            reader,
            seq,
        };
        self.publish(&conv, 0, frame.to_json());
        Ok(())
    }

    /// Tell the other side that someone is typing (not stored).
    pub async fn typing(
        &self,
        viewer: &Viewer,
        sender: Party,
        id: ConversationId,
    ) -> ApiResult<()> {
        let conv = self.visible(viewer, id).await?;
        let frame = ServerFrame::Typing {
            conversation_id: conv.conversation_id,
            sender,
        };
        self.publish(&conv, 0, frame.to_json());
        Ok(())
    }

    /// Publish a stored message to everyone who may see it (called in commit order by the
    /// store), and the conversation when the send opened or closed it.
    pub fn publish_stored(&self, out: &SendOutcome) {
        metrics::counter!("confidant_messages_stored_total").increment(1);
        let message = Message::from(&out.message);
        self.publish(
            &out.conversation,
            out.message.seq,
            ServerFrame::Message { message: &message }.to_json(),
        );
        if out.opened || !out.conversation.open {
            // The contact's side; agents get the conversation as they see it (with assignee
            // and unread count) from the workflow service (service/workflow.rs).
            let conversation = Conversation::new(&out.conversation, Some(&out.message));
            let frame = ServerFrame::Conversation {
                conversation: &conversation,
            };
            self.publish_to(
                &[Topic::Contact(out.conversation.contact_id.to_string())],
                &out.conversation,
                0,
                frame.to_json(),
            );
        }
    }

    fn publish(&self, conv: &ConversationRow, seq: i64, frame: String) {
        let topics = [
            Topic::Contact(conv.contact_id.to_string()),
            Topic::Site(conv.site_id.0),
        ];
        self.publish_to(&topics, conv, seq, frame);
    }

    fn publish_to(&self, topics: &[Topic], conv: &ConversationRow, seq: i64, frame: String) {
        self.hub.publish(
            topics,
            Event {
                site_id: conv.site_id.0,
                contact_id: conv.contact_id.to_string(),
                conversation_id: conv.conversation_id.to_string(),
                messenger_id: conv.messenger_id.to_string(),
                preview: conv.preview,
                seq,
                sent_at_ms: now_millis(),
                frame: Arc::from(frame),
            },
        );
    }
}
