//! The agent workflow (CONTRACT §16): conversations as agents see them (assignee, unread
//! count) and their lists, assignment with its role rules, the `conversation` frames that tell
//! every agent socket of the site about a change, and the site's canned replies.

use std::sync::Arc;

use confidant_core::time_fmt::now_millis;
use confidant_core::{AgentId, ConversationId, FieldError, Problems, SiteId};
use confidant_realtime::{Event, Hub, Topic};
use confidant_store::{
    AgentConversation, CannedReplyRow, ConversationRow, ListCursor, ListQuery, SendOutcome,
    SenderType, Store, StoreError,
};
use serde_json::json;

use crate::api;
use crate::api::frames::ServerFrame;
use crate::error::{ApiError, ApiResult};
use crate::service::accounts::Principal;
use crate::service::audit::Who;

/// The `next`/`after` cursor of the agents' list: the last conversation's `updatedAt` (Unix
/// ms) and id. Opaque to clients.
pub fn cursor_text(c: &AgentConversation) -> String {
    format!(
        "{}.{}",
        c.conversation.updated_at, c.conversation.conversation_id
    )
}

/// A cursor from `after`; anything this server did not hand out is `400 invalid_request`.
pub fn parse_cursor(s: &str) -> ApiResult<ListCursor> {
    let bad = || ApiError::invalid("after: not a cursor from an earlier page's `next`");
    let (t, id) = s.split_once('.').ok_or_else(bad)?;
    let updated_at: i64 = t.parse().map_err(|_| bad())?;
    let conversation_id: ConversationId = id.parse().map_err(|_| bad())?;
    if updated_at < 0 {
        return Err(bad());
    }
    Ok(ListCursor {
        updated_at,
        conversation_id,
    })
}

/// A new canned reply, checked.
pub struct NewCanned {
    pub shortcut: String,
    pub title: String,
    pub body: String,
}

impl NewCanned {
    /// `shortcut` 1–32 of `[a-z0-9_-]`; `title` 1–200 and `body` 1–10,000 characters, not
    /// blank. Every problem is named in one answer.
    pub fn parse(b: api::NewCannedReply) -> ApiResult<Self> {
        let mut problems = Problems::new();
        let shortcut = b.shortcut.unwrap_or_default();
        if shortcut.is_empty()
            || shortcut.len() > 32
            || !shortcut
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
        {
            problems.push(FieldError::new(
                "shortcut",
                "must be 1 to 32 of a-z, 0-9, _ and - (no spaces, no capitals)",
            ));
        }
        let title = b.title.unwrap_or_default().trim().to_owned();
        if title.is_empty() || title.chars().count() > 200 {
            problems.push(FieldError::new("title", "must be 1 to 200 characters"));
        }
        let body = b.body.unwrap_or_default();
        if body.trim().is_empty() || body.chars().count() > 10_000 {
            problems.push(FieldError::new("body", "must be 1 to 10000 characters"));
        }
        problems.finish()?;
        Ok(Self {
            shortcut,
            title,
            body,
        })
    }
}

pub struct Workflow {
    store: Store,
    hub: Arc<dyn Hub>,
}

impl Workflow {
    pub fn new(store: Store, hub: Arc<dyn Hub>) -> Self {
        Self { store, hub }
    }

    /// A page of the list and the cursor of the next one (asks one more than the page to know).
    pub async fn list(
        &self,
        mut q: ListQuery,
    ) -> ApiResult<(Vec<AgentConversation>, Option<String>)> {
        let page = q.limit;
        q.limit = page + 1;
        let mut rows = self.store.agent_conversations(&q).await?;
        let next = if rows.len() as i64 > page {
            rows.truncate(page as usize);
            rows.last().map(cursor_text)
        } else {
            None
        };
        Ok((rows, next))
    }

    /// One conversation of the site as agents see it, else `404 not_found`.
    pub async fn view(&self, site: SiteId, id: ConversationId) -> ApiResult<AgentConversation> {
        self.store
            .agent_conversation(site, id)
            .await?
            .ok_or_else(|| ApiError::not_found("conversation"))
    }

    /// Assign the conversation to `agent` (None: unassign). An `agent` may assign it to itself
    /// (taking it over from anyone) or unassign itself; admins and the operator assign anyone
    /// of the site. Every agent socket of the site hears of the change.
    pub async fn assign(
        &self,
        p: &Principal,
        site: SiteId,
        id: ConversationId,
        agent: Option<AgentId>,
    ) -> ApiResult<AgentConversation> {
        let current = self.view(site, id).await?;
        let target =
            match agent {
                Some(a) => Some(self.store.get_agent(site, a).await?.ok_or_else(|| {
                    ApiError::invalid("agentId: no agent of this site has this id")
                })?),
                None => None,
            };
        if let Principal::Agent { agent: me, .. } = p
            && me.role != "admin"
        {
            let allowed = match &target {
                Some(t) => t.agent_id == me.agent_id,
                None => current
                    .assignee
                    .as_ref()
                    .is_none_or(|(a, _)| *a == me.agent_id),
            };
            if !allowed {
                return Err(ApiError::forbidden(
                    "an agent may assign a conversation only to itself, and unassign only itself",
                ));
            }
        }
        let unchanged = match (&target, &current.assignee) {
            (Some(t), Some((a, _))) => t.agent_id == *a,
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            return Ok(current);
        }
        self.store
            .assign(
                site,
                id,
                target.as_ref().map(|t| (t.agent_id, t.name.as_str())),
            )
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("conversation"),
                other => other.into(),
            })?;
        let after = self.view(site, id).await?;
        self.publish(&after);
        Ok(after)
    }

    /// Tell every agent socket of the site (on every server process) how the conversation is.
    pub fn publish(&self, c: &AgentConversation) {
        publish_view(self.hub.as_ref(), c);
    }

    /// A send opened a conversation: publish it as agents see it, from the send's outcome (in
    /// commit order, before the send is answered, so no socket hears of it late). A new
    /// conversation has no assignee, and all its messages are the contact's; it carries no
    /// `contact` (clients that want it ask `GET …/conversations/{id}`).
    pub fn publish_opened(&self, out: &SendOutcome) {
        let conv = &out.conversation;
        let unread = if out.message.sender_type == SenderType::Contact {
            (conv.last_seq - conv.agent_read_seq).max(0)
        } else {
            0
        };
        let view = api::AgentConversation {
            conversation: api::Conversation::new(conv, Some(&out.message)),
            assignee: None,
            unread_count: unread,
            messenger: None,
        };
        publish_frame(self.hub.as_ref(), conv, &view);
    }

    pub async fn canned_replies(&self, site: SiteId) -> ApiResult<Vec<CannedReplyRow>> {
        Ok(self.store.canned_replies(site).await?)
    }

    /// Store a canned reply with its `canned_reply.created` entry.
    pub async fn create_canned(
        &self,
        site: SiteId,
        new: NewCanned,
        who: &Who,
    ) -> ApiResult<CannedReplyRow> {
        let row = CannedReplyRow {
            canned_reply_id: uuid::Uuid::new_v4(),
            site_id: site,
            shortcut: new.shortcut,
            title: new.title,
            body: new.body,
            created_at: now_millis(),
        };
        let entry = who.entry(
            site,
            "canned_reply.created",
            json!({"cannedReplyId": row.canned_reply_id, "shortcut": row.shortcut}),
        );
        self.store
            .create_canned_reply(&row, &entry)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    ApiError::conflict("shortcut: the site already has a canned reply with it")
                }
                other => other.into(),
            })?;
        Ok(row)
    }

    /// Delete a canned reply of the site with its `canned_reply.deleted` entry.
    pub async fn delete_canned(&self, site: SiteId, id: uuid::Uuid, who: &Who) -> ApiResult<()> {
        self.store
            .delete_canned_reply(site, id, |gone| {
                who.entry(
                    site,
                    "canned_reply.deleted",
                    json!({"cannedReplyId": gone.canned_reply_id, "shortcut": gone.shortcut}),
                )
            })
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("canned reply"),
                other => other.into(),
            })?;
        Ok(())
    }
}

/// `{"type": "conversation", "conversation": …}` to the site's agents only (contacts never see
/// assignees or unread counts).
pub fn publish_view(hub: &dyn Hub, c: &AgentConversation) {
    publish_frame(hub, &c.conversation, &api::AgentConversation::from(c));
}

fn publish_frame(hub: &dyn Hub, conv: &ConversationRow, view: &api::AgentConversation) {
    let frame = ServerFrame::AgentConversation { conversation: view };
    hub.publish(
        &[Topic::Site(conv.site_id.0)],
        Event {
            site_id: conv.site_id.0,
            contact_id: conv.contact_id.to_string(),
            conversation_id: conv.conversation_id.to_string(),
            messenger_id: conv.messenger_id.to_string(),
            preview: conv.preview,
            seq: 0,
            sent_at_ms: now_millis(),
            frame: Arc::from(frame.to_json()),
        },
    );
}
