//! Offline notices on the job queue: a sink that turns agent replies into `notice` jobs, and
//! the handler that runs the rule for each (see the module above).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use confidant_core::ConversationId;
use confidant_store::{Job, NewJob};
use serde_json::json;

use super::{Notices, Notified, Step};
use crate::jobs::{Event, EventSink, EventType, Handler, Jobs, Outcome};

pub const KIND: &str = "notice";

/// `notice:<conversationId>`: one queued notice job per conversation (the earliest is kept).
fn key(conversation: ConversationId) -> String {
    format!("notice:{conversation}")
}

/// Agent replies → `notice` jobs due `afterSeconds` later.
pub struct NoticeSink {
    pub notices: Arc<Notices>,
    pub jobs: std::sync::Weak<Jobs>,
}

#[async_trait]
impl EventSink for NoticeSink {
    async fn on_events(&self, events: &[Event]) -> Result<(), String> {
        let Some(jobs) = self.jobs.upgrade() else {
            return Ok(());
        };
        let mut after = HashMap::new();
        let mut new = Vec::new();
        for e in events {
            if e.kind != EventType::MessageCreated || e.sender_type.as_deref() != Some("agent") {
                continue;
            }
            let delay = match after.get(&e.messenger_id) {
                Some(d) => *d,
                None => {
                    let d = match self.notices.settings(e.site, e.messenger_id).await {
                        Ok(n) if n.email.enabled => Some(i64::from(n.email.after_seconds) * 1000),
                        Ok(_) => None,
                        Err(e) => return Err(format!("notice settings: {}", e.message)),
                    };
                    after.insert(e.messenger_id, d);
                    d
                }
            };
            let Some(delay) = delay else { continue };
            new.push(NewJob {
                kind: KIND.to_owned(),
                site: e.site,
                key: Some(key(e.conversation_id)),
                payload: json!({"conversationId": e.conversation_id.to_string()}),
                run_at: e.at + delay,
            });
        }
        if new.is_empty() {
            return Ok(());
        }
        jobs.enqueue(new).await.map_err(|e| e.to_string())
    }
}

/// Runs the rule for each `notice` job.
pub struct NoticeHandler {
    pub notices: Arc<Notices>,
    pub jobs: std::sync::Weak<Jobs>,
}

#[async_trait]
impl Handler for NoticeHandler {
    async fn run(&self, jobs: Vec<Job>) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let conversation = job.payload["conversationId"]
                .as_str()
                .and_then(|s| s.parse::<ConversationId>().ok());
            let Some(conversation) = conversation else {
                out.push(Outcome::GiveUp("no conversationId in the payload".into()));
                continue;
            };
            out.push(match self.notices.run(job.site, conversation).await {
                Step::Done(why) => {
                    tracing::debug!(%conversation, why, "no notice");
                    Outcome::Done
                }
                Step::Later(at) => Outcome::Later(at),
                Step::Notified(n) => {
                    self.emit(&n).await;
                    Outcome::Done
                }
                Step::Retry(why) => {
                    tracing::info!(%conversation, attempt = job.attempts, error = %why, "notice not sent; will retry");
                    Outcome::Retry(why)
                }
                Step::GiveUp(why) => {
                    tracing::warn!(%conversation, error = %why, "the mail server refused a notice; given up");
                    Outcome::GiveUp(why)
                }
            });
        }
        out
    }
}

impl NoticeHandler {
    /// `contact.notified` for the business's systems (webhooks): when and how, never to whom.
    async fn emit(&self, n: &Notified) {
        let Some(jobs) = self.jobs.upgrade() else {
            return;
        };
        let event = Event {
            id: Event::id_for(
                EventType::ContactNotified,
                &format!("{}/{}", n.conversation_id, n.seq),
            ),
            kind: EventType::ContactNotified,
            site: n.site,
            conversation_id: n.conversation_id,
            messenger_id: n.messenger_id,
            contact_id: n.contact_id,
            message_id: None,
            seq: Some(n.seq),
            sender_type: None,
            at: n.at,
            data: json!({"channel": "email", "notifiedAt": confidant_core::time_fmt::rfc3339_millis(n.at)}),
        };
        if let Err(e) = jobs.emit(event).await {
            tracing::warn!(error = %e, "the contact.notified event was not recorded");
        }
    }
}

/// Register the `notice` handler (always: jobs queued under an earlier configuration drain) and,
/// with a mail server, the sink that queues notices.
pub fn wire(jobs: &Arc<Jobs>, notices: &Arc<Notices>) {
    jobs.register(
        KIND,
        Arc::new(NoticeHandler {
            notices: notices.clone(),
            jobs: Arc::downgrade(jobs),
        }),
    );
    if notices.smtp_configured() {
        jobs.add_sink(Arc::new(NoticeSink {
            notices: notices.clone(),
            jobs: Arc::downgrade(jobs),
        }));
    }
}
