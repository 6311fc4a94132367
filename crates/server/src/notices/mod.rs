//! Offline notices by email (CONTRACT §10): a messenger's settings, the contacts' presence,
//! the rule that decides whether a conversation's unread reply is announced, and the mail.
//!
//! The rule, for one conversation (`Notices::run`, called by the `notice` job):
//! - nothing without SMTP, for previews, with the messenger's notices off, or for a contact
//!   without a plausible `email` attribute;
//! - nothing while a socket of the contact is connected (presence.rs);
//! - one notice until the contact reads it or connects again: after a notice for the agent
//!   message `notice_seq`, nothing more while `contact_read_seq < notice_seq` and the contact
//!   was not seen since;
//! - otherwise the first agent message after the read marker (and after the last notice)
//!   written after the contact was last seen is announced `afterSeconds` after it was written.
//!
//! At most one mail per notice: the notice is recorded on the conversation (a conditional
//! update that only one run wins) before the mail goes out, and undone if the mail server
//! fails, so a job that runs twice sends once. The price: a process killed between the record
//! and the mail's end loses that one notice (a duplicate would be the other way round).

pub mod mailer;
pub mod presence;
pub mod queue;

use std::sync::Arc;

use confidant_core::notices::{Notifications, plausible_email};
use confidant_core::time_fmt::{now_millis, rfc3339_millis};
use confidant_core::{ContactId, ConversationId, MessengerId, SiteId};
use confidant_realtime::{Event, Hub, Topic};
use confidant_store::Store;
use serde_json::Value;

use crate::api::frames::ServerFrame;
use crate::error::{ApiError, ApiResult};
use mailer::{Mailer, NoticeMail, SendError};
use presence::{Presence, STALE_AFTER};

/// What a run of the rule did.
#[derive(Debug)]
pub enum Step {
    /// Nothing to send, now or later (read, connected, off, …): the reason, for the log.
    Done(&'static str),
    /// Not due yet: look again at this Unix ms.
    Later(i64),
    /// The mail went out.
    Notified(Notified),
    /// The mail server failed for now: try again later.
    Retry(String),
    /// The mail server refused for good.
    GiveUp(String),
}

/// A notice that went out.
#[derive(Debug, Clone)]
pub struct Notified {
    pub site: SiteId,
    pub conversation_id: ConversationId,
    pub messenger_id: MessengerId,
    pub contact_id: ContactId,
    /// The agent message it announced.
    pub seq: i64,
    pub at: i64,
}

pub struct Notices {
    store: Store,
    hub: Arc<dyn Hub>,
    mailer: Option<Mailer>,
    /// `--allow-private-urls on`: links may be http:// anywhere.
    allow_http: bool,
    pub presence: Arc<Presence>,
}

impl Notices {
    pub fn new(
        store: Store,
        hub: Arc<dyn Hub>,
        mailer: Option<Mailer>,
        allow_http: bool,
    ) -> Notices {
        Notices {
            presence: Presence::start(store.clone()),
            store,
            hub,
            mailer,
            allow_http,
        }
    }

    /// Whether `--smtp-url` is set.
    pub fn smtp_configured(&self) -> bool {
        self.mailer.is_some()
    }

    /// A messenger's settings (the defaults when never set). The messenger must exist.
    pub async fn settings(&self, site: SiteId, messenger: MessengerId) -> ApiResult<Notifications> {
        match self.store.notification_settings(site, messenger).await? {
            Some(json) => serde_json::from_str(&json).map_err(|e| {
                ApiError::internal(&format!(
                    "stored notifications of messenger {messenger}: {e}"
                ))
            }),
            None => Ok(Notifications::default()),
        }
    }

    /// Replace a messenger's settings with a `PUT` body (checked field by field).
    pub async fn put(
        &self,
        site: SiteId,
        messenger: MessengerId,
        body: &Value,
        who: &crate::service::audit::Who,
    ) -> ApiResult<Notifications> {
        let parsed = Notifications::parse(body, self.allow_http)?;
        let json = serde_json::to_string(&parsed).map_err(|e| ApiError::internal(&e))?;
        let entry = who.entry(
            site,
            "notifications.updated",
            serde_json::json!({"messengerId": messenger.to_string(), "emailEnabled": parsed.email.enabled}),
        );
        self.store
            .put_notification_settings(site, messenger, &json, now_millis(), &entry)
            .await
            .map_err(|e| match e {
                confidant_store::StoreError::NotFound => ApiError::messenger_not_found(),
                other => other.into(),
            })?;
        Ok(parsed)
    }

    /// Send the messenger's notice, marked as a test, to `to`.
    pub async fn send_test(
        &self,
        site: SiteId,
        messenger: MessengerId,
        to: Option<&str>,
    ) -> ApiResult<()> {
        let to = to
            .map(str::trim)
            .filter(|t| plausible_email(t))
            .ok_or_else(|| ApiError::invalid("to: must be an email address"))?;
        let Some(mailer) = &self.mailer else {
            return Err(ApiError::conflict(
                "no mail server is configured (the operator sets --smtp-url and --smtp-from)",
            ));
        };
        let settings = self.settings(site, messenger).await?;
        let site_row = self
            .store
            .get_site(site)
            .await?
            .ok_or_else(|| ApiError::not_found("site"))?;
        let mail = NoticeMail {
            subject: &settings.email.subject,
            site_name: &site_row.name,
            link_url: settings.email.link_url.as_deref(),
            test: true,
        };
        mailer.send(to, &mail).await.map_err(|e| match e {
            SendError::Invalid(m) => ApiError::invalid(format!("to: {m}")),
            other => {
                tracing::warn!(error = %other, "a test notice did not go out");
                ApiError::unavailable(other.to_string())
            }
        })?;
        metrics::counter!("confidant_notices_test_sent_total").increment(1);
        Ok(())
    }

    /// The rule for one conversation (see the module's doc).
    pub async fn run(&self, site: SiteId, conversation: ConversationId) -> Step {
        match self.decide_and_send(site, conversation).await {
            Ok(step) => step,
            Err(e) => Step::Retry(format!("store: {e}")),
        }
    }

    async fn decide_and_send(
        &self,
        site: SiteId,
        conversation: ConversationId,
    ) -> Result<Step, confidant_store::StoreError> {
        let Some(mailer) = &self.mailer else {
            return Ok(Step::Done("no mail server"));
        };
        let Some(state) = self.store.notice_state(site, conversation).await? else {
            return Ok(Step::Done("no such conversation"));
        };
        if state.preview {
            return Ok(Step::Done("a preview"));
        }
        let settings = match self.settings(site, state.messenger_id).await {
            Ok(s) => s.email,
            Err(_) => return Ok(Step::Done("unreadable settings")),
        };
        let Some(link) = settings.link_url.as_deref().filter(|_| settings.enabled) else {
            return Ok(Step::Done("notices off"));
        };
        let now = now_millis();
        let stale = i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX);
        let presence = self
            .store
            .presence(site, state.contact_id, now - stale)
            .await?;
        if presence.connected {
            return Ok(Step::Done("the contact is connected"));
        }
        let last_seen = presence.last_seen.unwrap_or(0);
        if state.notice_seq > 0
            && state.contact_read_seq < state.notice_seq
            && state.noticed_at.is_some_and(|at| last_seen < at)
        {
            return Ok(Step::Done("notified already; not read or seen since"));
        }
        let after_seq = state.contact_read_seq.max(state.notice_seq);
        let Some((seq, written_at)) = self
            .store
            .first_unread_agent_message(conversation, after_seq, last_seen)
            .await?
        else {
            return Ok(Step::Done("nothing unread"));
        };
        let due = written_at + i64::from(settings.after_seconds) * 1000;
        if now < due {
            return Ok(Step::Later(due));
        }
        let Some(contact) = self.store.get_contact(site, state.contact_id).await? else {
            return Ok(Step::Done("no such contact"));
        };
        let Some(to) = contact
            .attributes
            .0
            .get("email")
            .map(|e| e.trim().to_owned())
            .filter(|e| plausible_email(e))
        else {
            return Ok(Step::Done("no email attribute"));
        };
        let site_name = self
            .store
            .get_site(site)
            .await?
            .map(|s| s.name)
            .unwrap_or_default();
        if !self
            .store
            .claim_notice(site, conversation, seq, now)
            .await?
        {
            return Ok(Step::Done("another run sent this notice"));
        }
        let mail = NoticeMail {
            subject: &settings.subject,
            site_name: &site_name,
            link_url: Some(link),
            test: false,
        };
        let sent = mailer.send(&to, &mail).await;
        if let Err(e) = &sent {
            // The notice did not go out: as if it had never been recorded.
            self.store
                .release_notice(
                    site,
                    conversation,
                    (seq, now),
                    (state.notice_seq, state.noticed_at),
                )
                .await?;
            return Ok(match e {
                SendError::Temporary(m) => {
                    metrics::counter!("confidant_notices_failed_total", "kind" => "temporary")
                        .increment(1);
                    Step::Retry(m.clone())
                }
                SendError::Permanent(m) | SendError::Invalid(m) => {
                    metrics::counter!("confidant_notices_failed_total", "kind" => "permanent")
                        .increment(1);
                    Step::GiveUp(m.clone())
                }
            });
        }
        metrics::counter!("confidant_notices_sent_total").increment(1);
        let notified = Notified {
            site,
            conversation_id: conversation,
            messenger_id: state.messenger_id,
            contact_id: state.contact_id,
            seq,
            at: now,
        };
        self.tell_agents(&notified);
        Ok(Step::Notified(notified))
    }

    /// The agents' consoles show "customer notified by email at …" at once.
    fn tell_agents(&self, n: &Notified) {
        let frame = ServerFrame::Notified {
            conversation_id: n.conversation_id,
            channel: "email",
            notified_at: rfc3339_millis(n.at),
        };
        self.hub.publish(
            &[Topic::Site(n.site.0)],
            Event {
                site_id: n.site.0,
                contact_id: n.contact_id.to_string(),
                conversation_id: n.conversation_id.to_string(),
                messenger_id: n.messenger_id.to_string(),
                preview: false,
                seq: 0,
                sent_at_ms: now_millis(),
                frame: Arc::from(frame.to_json()),
            },
        );
    }
}
