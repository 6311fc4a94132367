//! The rules of a send, as one pure function: the conversations as read, the earlier messages
//! idempotency needs, and the sends in; what each send does out. No database access.
//!
//! Both ways of storing sends plan with it: the set-based batch (batch.rs) plans the whole
//! batch and writes it with a fixed number of statements; the one-by-one path (writer.rs)
//! plans each send on its own, after reading what that send needs. The rules, in job order:
//! - an agent's send goes to the named conversation of the site: a repeat of a stored
//!   `clientMessageId` is answered with the stored message, else a closed conversation refuses
//!   it (`Closed`);
//! - a contact's send goes to the conversation it names if that is theirs (else `NotFound`) and
//!   open (a repeat there is answered, also when it is closed); otherwise to the contact's open
//!   conversation in the messenger (a repeat there is answered), else to a new one;
//! - a close adds a system message and closes the conversation; a close of a closed one is
//!   answered with its last message;
//! - `seq` goes up by one per stored message; a send is a repeat also of one earlier in the
//!   same plan.

use std::collections::{HashMap, HashSet};

use confidant_core::{ContactId, ContactScope, ConversationId, MessageId, MessengerId};
use uuid::Uuid;

use crate::{ConversationRow, MessageRow, SendOutcome, SendRequest, SendTarget, StoreError};

/// A contact's open conversation is found by (messenger, contact, preview).
pub(crate) type OpenKey = (MessengerId, ContactId, bool);
/// An earlier send is found by (conversation, sender, clientMessageId).
pub(crate) type SendKey = (ConversationId, Uuid, String);

/// What the planner is told: the database as read, as far as the sends need it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Known {
    /// The conversations the sends name, and the open ones of their contacts.
    pub conversations: HashMap<ConversationId, ConversationRow>,
    /// Stored sends with the sends' `clientMessageId`s in those conversations. One that is
    /// missing (stored by another process after the read) is planned as a fresh send, and the
    /// idempotency index refuses its write.
    pub earlier: HashMap<SendKey, MessageRow>,
    /// The last message of each closed conversation a close names.
    pub last: HashMap<ConversationId, MessageRow>,
}

impl Known {
    pub(crate) fn add_conversation(&mut self, c: ConversationRow) {
        self.conversations.insert(c.conversation_id, c);
    }

    pub(crate) fn add_earlier(&mut self, m: MessageRow) {
        if let Some(k) = &m.client_message_id {
            self.earlier
                .insert((m.conversation_id, m.sender_id, k.clone()), m);
        }
    }
}

/// Why a send stored nothing and answered an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    NotFound,
    Closed,
}

impl From<Refusal> for StoreError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound => StoreError::NotFound,
            Refusal::Closed => StoreError::Closed,
        }
    }
}

/// What one send does.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Refused(Refusal),
    /// Answered by a stored message (a repeat, or a close of a closed conversation).
    Answered(SendOutcome),
    /// Store `outcome.message`; `outcome.conversation` is the conversation after it (new when
    /// `outcome.opened`, closed when the send closes it).
    Store(SendOutcome),
}

impl Step {
    /// The conversation the send went to, if any.
    pub(crate) fn conversation(&self) -> Option<ConversationId> {
        match self {
            Step::Refused(_) => None,
            Step::Answered(o) | Step::Store(o) => Some(o.conversation.conversation_id),
        }
    }

    pub(crate) fn into_result(self) -> crate::Result<SendOutcome> {
        match self {
            Step::Refused(r) => Err(r.into()),
            Step::Answered(o) | Step::Store(o) => Ok(o),
        }
    }
}

pub(crate) struct Plan {
    /// One step per send, in order.
    pub steps: Vec<Step>,
    /// The conversations this plan opens.
    pub opened: HashSet<ConversationId>,
}

/// Plan the sends, in order, against what is known.
pub(crate) fn plan(known: &Known, sends: &[&SendRequest]) -> Plan {
    let mut state = State {
        open: known
            .conversations
            .values()
            .filter(|c| c.open)
            .map(|c| ((c.messenger_id, c.contact_id, c.preview), c.conversation_id))
            .collect(),
        known: known.clone(),
        opened: HashSet::new(),
    };
    let steps = sends.iter().map(|req| state.step(req)).collect();
    Plan {
        steps,
        opened: state.opened,
    }
}

struct State {
    /// What was read, updated by each step.
    known: Known,
    open: HashMap<OpenKey, ConversationId>,
    opened: HashSet<ConversationId>,
}

impl State {
    fn step(&mut self, req: &SendRequest) -> Step {
        match &req.target {
            SendTarget::Agent { conversation_id } => {
                let c = *conversation_id;
                let Some(conv) = self.conversation(c, |c| c.site_id == req.site_id) else {
                    return Step::Refused(Refusal::NotFound);
                };
                if let Some(answer) = self.repeat(c, req) {
                    return answer;
                }
                if !conv.open {
                    return Step::Refused(Refusal::Closed);
                }
                self.store(c, req, false)
            }
            SendTarget::Contact {
                messenger_id,
                contact_id,
                preview,
                conversation_id,
            } => {
                if let Some(c) = *conversation_id {
                    let Some(conv) = self.conversation(c, |c| owns(c, req)) else {
                        return Step::Refused(Refusal::NotFound);
                    };
                    if let Some(answer) = self.repeat(c, req) {
                        return answer;
                    }
                    if conv.open {
                        return self.store(c, req, false);
                    }
                    // A closed conversation: the send goes to the contact's open one, or a new one.
                }
                let key = (*messenger_id, *contact_id, *preview);
                let c = match self.open.get(&key) {
                    Some(&c) => {
                        if let Some(answer) = self.repeat(c, req) {
                            return answer;
                        }
                        c
                    }
                    None => self.open_new(key, req),
                };
                self.store(c, req, false)
            }
            SendTarget::Close { conversation_id } => {
                let c = *conversation_id;
                let Some(conv) = self.conversation(c, |c| c.site_id == req.site_id) else {
                    return Step::Refused(Refusal::NotFound);
                };
                if conv.open {
                    return self.store(c, req, true);
                }
                match self.known.last.get(&c) {
                    Some(m) => Step::Answered(SendOutcome {
                        message: m.clone(),
                        conversation: conv,
                        created: false,
                        opened: false,
                    }),
                    None => Step::Refused(Refusal::NotFound),
                }
            }
        }
    }

    fn conversation(
        &self,
        c: ConversationId,
        visible: impl Fn(&ConversationRow) -> bool,
    ) -> Option<ConversationRow> {
        self.known
            .conversations
            .get(&c)
            .filter(|c| visible(c))
            .cloned()
    }

    /// The answer to a repeat of a send stored in conversation `c`.
    fn repeat(&self, c: ConversationId, req: &SendRequest) -> Option<Step> {
        let cmid = req.client_message_id.as_ref()?;
        let message = self.known.earlier.get(&(c, req.sender_id, cmid.clone()))?;
        Some(Step::Answered(SendOutcome {
            message: message.clone(),
            conversation: self.known.conversations.get(&c)?.clone(),
            created: false,
            opened: false,
        }))
    }

    fn open_new(&mut self, key: OpenKey, req: &SendRequest) -> ConversationId {
        let (messenger_id, contact_id, preview) = key;
        let c = ConversationRow {
            conversation_id: ConversationId::new(),
            site_id: req.site_id,
            messenger_id,
            contact_id,
            open: true,
            preview,
            last_seq: 0,
            contact_read_seq: 0,
            agent_read_seq: 0,
            created_at: req.now,
            updated_at: req.now,
            noticed_at: None,
        };
        let id = c.conversation_id;
        self.open.insert(key, id);
        self.opened.insert(id);
        self.known.add_conversation(c);
        id
    }

    /// Store the send as the next message of `c` (which is open), closing it if `closes`.
    fn store(&mut self, c: ConversationId, req: &SendRequest, closes: bool) -> Step {
        let Some(conv) = self.known.conversations.get_mut(&c) else {
            return Step::Refused(Refusal::NotFound);
        };
        conv.last_seq += 1;
        conv.updated_at = req.now;
        let opened = conv.last_seq == 1 && self.opened.contains(&c);
        if closes {
            conv.open = false;
            self.open
                .remove(&(conv.messenger_id, conv.contact_id, conv.preview));
        }
        let conversation = conv.clone();
        let message = MessageRow {
            message_id: MessageId::new(),
            conversation_id: c,
            seq: conversation.last_seq,
            sender_type: req.sender_type,
            sender_id: req.sender_id,
            sender_name: req.sender_name.clone(),
            body: req.body.clone(),
            client_message_id: req.client_message_id.clone(),
            created_at: req.now,
            attachments: req.attachments.clone(),
        };
        self.known.add_earlier(message.clone());
        self.known.last.insert(c, message.clone());
        Step::Store(SendOutcome {
            message,
            conversation,
            created: true,
            opened,
        })
    }
}

/// Whether a contact's send may name this conversation: the one rule of `ContactScope`.
pub(crate) fn owns(c: &ConversationRow, req: &SendRequest) -> bool {
    match &req.target {
        SendTarget::Contact {
            messenger_id,
            contact_id,
            preview,
            ..
        } => ContactScope {
            site: req.site_id,
            contact: *contact_id,
            messenger: *messenger_id,
            preview: *preview,
        }
        .owns(c.site_id, c.contact_id, c.messenger_id, c.preview),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use confidant_core::{ContactId, ConversationId, MessengerId, SiteId};

    use super::*;
    use crate::SenderType;

    const SITE: SiteId = SiteId(10_000);

    fn conversation(messenger: MessengerId, contact: ContactId, open: bool) -> ConversationRow {
        ConversationRow {
            conversation_id: ConversationId::new(),
            site_id: SITE,
            messenger_id: messenger,
            contact_id: contact,
            open,
            preview: false,
            last_seq: 3,
            contact_read_seq: 0,
            agent_read_seq: 0,
            created_at: 1,
            updated_at: 1,
            noticed_at: None,
        }
    }

    fn contact_send(
        messenger: MessengerId,
        contact: ContactId,
        named: Option<ConversationId>,
        cmid: &str,
    ) -> SendRequest {
        SendRequest {
            site_id: SITE,
            target: SendTarget::Contact {
                messenger_id: messenger,
                contact_id: contact,
                preview: false,
                conversation_id: named,
            },
            sender_type: SenderType::Contact,
            sender_id: contact.0,
            sender_name: "c".into(),
            body: cmid.into(),
            client_message_id: Some(cmid.into()),
            now: 50,
            attachments: Vec::new(),
        }
    }

    fn target(req: &SendRequest, target: SendTarget, cmid: Option<&str>) -> SendRequest {
        SendRequest {
            target,
            client_message_id: cmid.map(str::to_owned),
            ..req.clone()
        }
    }

    fn stored(step: &Step) -> (ConversationId, i64, bool, bool) {
        match step {
            Step::Store(o) => (
                o.conversation.conversation_id,
                o.message.seq,
                o.opened,
                o.conversation.open,
            ),
            other => panic!("not stored: {other:?}"),
        }
    }

    #[test]
    fn sends_continue_the_seq_and_repeats_in_the_plan_are_answered() {
        let (m, k) = (MessengerId::new(), ContactId::new());
        let open = conversation(m, k, true);
        let mut known = Known::default();
        known.add_conversation(open.clone());
        let a = contact_send(m, k, None, "a");
        let b = contact_send(m, k, Some(open.conversation_id), "b");
        let plan = plan(&known, &[&a, &b, &a]);
        assert_eq!(
            stored(&plan.steps[0]),
            (open.conversation_id, 4, false, true)
        );
        assert_eq!(
            stored(&plan.steps[1]),
            (open.conversation_id, 5, false, true)
        );
        let Step::Answered(repeat) = &plan.steps[2] else {
            panic!("a repeat is answered");
        };
        assert_eq!((repeat.message.seq, repeat.created), (4, false));
        assert!(plan.opened.is_empty());
    }

    #[test]
    fn a_closed_conversation_redirects_contacts_refuses_agents_and_answers_repeats() {
        let (m, k) = (MessengerId::new(), ContactId::new());
        let closed = conversation(m, k, false);
        let c = closed.conversation_id;
        let mut known = Known::default();
        known.add_conversation(closed.clone());
        let first = contact_send(m, k, Some(c), "old");
        let mut earlier = MessageRow {
            message_id: MessageId::new(),
            conversation_id: c,
            seq: 2,
            sender_type: SenderType::Contact,
            sender_id: k.0,
            sender_name: "c".into(),
            body: "old".into(),
            client_message_id: Some("old".into()),
            created_at: 1,
            attachments: Vec::new(),
        };
        known.add_earlier(earlier.clone());
        earlier.seq = 3;
        known.last.insert(c, earlier);
        let new = contact_send(m, k, Some(c), "new");
        let agent = target(&new, SendTarget::Agent { conversation_id: c }, Some("r"));
        let close = target(&new, SendTarget::Close { conversation_id: c }, None);
        let other = contact_send(m, ContactId::new(), Some(c), "x");
        let plan = plan(&known, &[&first, &new, &new, &agent, &close, &other]);
        let Step::Answered(repeat) = &plan.steps[0] else {
            panic!("a repeat into the closed conversation is answered");
        };
        assert_eq!(repeat.message.seq, 2);
        let (opened, seq, is_new, open) = stored(&plan.steps[1]);
        assert_ne!(opened, c);
        assert_eq!((seq, is_new, open), (1, true, true));
        assert!(plan.opened.contains(&opened));
        assert!(matches!(&plan.steps[2], Step::Answered(o) if o.message.seq == 1));
        assert!(matches!(plan.steps[3], Step::Refused(Refusal::Closed)));
        assert!(matches!(&plan.steps[4], Step::Answered(o) if o.message.seq == 3));
        assert!(matches!(plan.steps[5], Step::Refused(Refusal::NotFound)));
    }

    #[test]
    fn a_close_closes_and_the_next_contact_send_opens_a_new_conversation() {
        let (m, k) = (MessengerId::new(), ContactId::new());
        let open = conversation(m, k, true);
        let c = open.conversation_id;
        let mut known = Known::default();
        known.add_conversation(open);
        let send = contact_send(m, k, None, "a");
        let close = target(&send, SendTarget::Close { conversation_id: c }, None);
        let plan = plan(&known, &[&close, &close, &send]);
        assert_eq!(stored(&plan.steps[0]), (c, 4, false, false));
        assert!(matches!(&plan.steps[1], Step::Answered(o) if o.message.seq == 4 && !o.created));
        let (next, seq, opened, _) = stored(&plan.steps[2]);
        assert_ne!(next, c);
        assert_eq!((seq, opened), (1, true));
    }
}
