//! How long data lives, and a contact's rights over it (CONTRACT §14): the retention pass, the
//! export of a contact's data and its erasure.
//!
//! - Retention: a keyed job of kind [`JOB_KIND`] that every process queues at start (keyed
//!   jobs dedupe, so the processes of one database run it once) and that queues itself again
//!   an hour later. Its run starts the pass in a task of its own, so a long pass never holds
//!   up the queue's other jobs. The pass deletes, per site with `retentionDays`, the
//!   conversations closed (by their `updated_at`: the close, or a later change) before that
//!   many days ago, in bounded batches (store/src/lifecycle.rs), and records one
//!   `retention.purged` entry per site that lost something: in the transaction of the site's
//!   last batch, or in its own just after when that batch came out full.
//! - Export: the contact, each conversation with all its messages (bodies opened, attachment
//!   metadata), previews included; `contact.exported` names the contact id only.
//! - Erasure: one transaction (store), then the caches of every process (the contact is
//!   refused at once by the access-token check, [`Contacts::live`]), its sockets on every
//!   process (the hub's session channel under [`contact_session_key`]), and the attachment
//!   bytes. `contact.erased` names the contact id only, never its identity or attributes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use confidant_core::time_fmt::now_millis;
use confidant_core::{ContactId, SiteId};
use confidant_realtime::{Control, Hub};
use confidant_store::{
    ContactRow, ConversationRow, MessageRow, NewJob, PURGE_MESSAGES, PurgedBatch, SYSTEM_SITE,
    Store,
};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::jobs::{Handler, Jobs, Outcome};
use crate::service::attachments::Attachments;
use crate::service::audit::Who;
use crate::service::contacts::Contacts;

/// The job kind of the retention pass.
pub const JOB_KIND: &str = "retention";
/// The key of its one queued job.
const JOB_KEY: &str = "retention";
/// How often the pass runs.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Conversations one retention batch takes at most.
const CONVERSATION_BATCH: i64 = 100;
/// Messages of one conversation read at once for an export.
const EXPORT_PAGE: i64 = 1000;

/// The hub session key under which a contact's sockets, on every process, watch for its erasure.
pub fn contact_session_key(contact: ContactId) -> String {
    format!("contact:{contact}")
}

/// What a retention pass deleted for one site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub conversations: u64,
    pub messages: u64,
    pub attachments: u64,
}

impl Purged {
    fn add(&mut self, b: &PurgedBatch) {
        self.conversations += b.conversations;
        self.messages += b.messages;
        self.attachments += b.attachments;
    }

    fn any(&self) -> bool {
        self.conversations + self.messages + self.attachments > 0
    }
}

/// A contact's data, for its export.
pub struct Export {
    pub contact: ContactRow,
    pub conversations: Vec<(ConversationRow, Vec<MessageRow>)>,
}

pub struct Lifecycle {
    store: Store,
    hub: Arc<dyn Hub>,
    contacts: Arc<Contacts>,
    attachments: Arc<Attachments>,
    /// One retention pass at a time in this process (the hourly one and run-now calls).
    pass: tokio::sync::Mutex<()>,
}

impl Lifecycle {
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
            pass: tokio::sync::Mutex::new(()),
        }
    }

    // ---- retention ----

    /// Register the pass on the job queue and queue it (a no-op when another process has).
    pub async fn schedule(self: &Arc<Self>, jobs: &Jobs) {
        jobs.register(JOB_KIND, Arc::new(RetentionHandler(self.clone())));
        let job = NewJob {
            kind: JOB_KIND.to_owned(),
            site: SYSTEM_SITE,
            key: Some(JOB_KEY.to_owned()),
            payload: json!({}),
            run_at: now_millis(),
        };
        if let Err(e) = jobs.enqueue(vec![job]).await {
            tracing::warn!(error = %e, "cannot queue the retention pass; the next start queues it");
        }
    }

    /// The pass over every site with a retention period.
    pub async fn pass(&self) -> anyhow::Result<()> {
        for (site, days) in self.store.sites_with_retention().await? {
            match self
                .purge_site(site, Some(days), &Who::system(), false)
                .await
            {
                Ok(p) if p.any() => tracing::info!(
                    site = site.0,
                    conversations = p.conversations,
                    messages = p.messages,
                    attachments = p.attachments,
                    "retention: purged"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(site = site.0, error = %e.message, "retention pass failed for a site; it runs again within the hour")
                }
            }
        }
        Ok(())
    }

    /// `POST …/retention/run`: the pass for one site now, its entry written even when nothing
    /// was deleted.
    pub async fn run_now(&self, site: SiteId, who: &Who) -> ApiResult<Purged> {
        let settings = self
            .store
            .site_settings(site)
            .await?
            .ok_or_else(|| ApiError::not_found("site"))?;
        self.purge_site(site, settings.retention_days, who, true)
            .await
    }

    /// Delete the site's conversations closed more than `days` days ago (`None`: keep all).
    async fn purge_site(
        &self,
        site: SiteId,
        days: Option<i64>,
        who: &Who,
        always_audit: bool,
    ) -> ApiResult<Purged> {
        let _one = self.pass.lock().await;
        let mut total = Purged::default();
        let wants_entry = |p: &Purged| always_audit || p.any();
        let entry = |p: &Purged| {
            who.entry(
                site,
                "retention.purged",
                json!({"conversations": p.conversations, "messages": p.messages,
                       "attachments": p.attachments, "retentionDays": days}),
            )
        };
        let mut audited = false;
        if let Some(days) = days {
            let cutoff = now_millis() - days.max(0) * 86_400_000;
            loop {
                let ids = self
                    .store
                    .retention_candidates(site, cutoff, CONVERSATION_BATCH)
                    .await?;
                if ids.is_empty() {
                    break;
                }
                loop {
                    let n = self.store.purge_messages(site, &ids, cutoff).await?;
                    total.messages += n;
                    if (n as i64) < PURGE_MESSAGES {
                        break;
                    }
                    // Let the sends waiting for the writer in between.
                    tokio::task::yield_now().await;
                }
                let last = (ids.len() as i64) < CONVERSATION_BATCH;
                let before = total;
                let audit = |b: &PurgedBatch| {
                    let mut after = before;
                    after.add(b);
                    (last && wants_entry(&after)).then(|| entry(&after))
                };
                let batch = self
                    .store
                    .purge_conversations(site, &ids, cutoff, &audit)
                    .await?;
                total.add(&batch);
                audited = last && wants_entry(&total);
                self.delete_bytes(&batch.object_keys).await;
                if last {
                    break;
                }
            }
        }
        if !audited && wants_entry(&total) {
            self.store.audit(&entry(&total)).await?;
        }
        Ok(total)
    }

    /// Delete attachment bytes whose rows are gone (the attachment sweep deletes any left
    /// behind, bytes no row names).
    async fn delete_bytes(&self, keys: &[String]) {
        for k in keys {
            if let Err(e) = self.attachments.blobs().delete(k).await {
                tracing::warn!(error = %e, "could not delete the bytes of a deleted attachment; the sweep will");
            }
        }
    }

    // ---- export and erasure ----

    /// Everything the site holds of the contact; recorded as `contact.exported`.
    pub async fn export(&self, site: SiteId, contact: ContactId, who: &Who) -> ApiResult<Export> {
        let row = self.contacts.get(site, contact).await?;
        let mut conversations = Vec::new();
        for c in self.store.contact_conversations_all(site, contact).await? {
            let mut messages = Vec::new();
            let mut after = 0;
            loop {
                let page = self
                    .store
                    .messages(site, c.conversation_id, after, EXPORT_PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                let full = page.len() as i64 == EXPORT_PAGE;
                messages.extend(page);
                if !full {
                    break;
                }
            }
            conversations.push((c, messages));
        }
        let entry = who.entry(
            site,
            "contact.exported",
            json!({"contactId": contact.to_string()}),
        );
        self.store.audit(&entry).await?;
        Ok(Export {
            contact: row,
            conversations,
        })
    }

    /// Erase the contact and everything of it; its tokens and sockets stop working at once
    /// on every process. `404` when the site has no such contact.
    pub async fn erase(&self, site: SiteId, contact: ContactId, who: &Who) -> ApiResult<()> {
        let entry = who.entry(
            site,
            "contact.erased",
            json!({"contactId": contact.to_string()}),
        );
        let erased = self
            .store
            .erase_contact(site, contact, &entry)
            .await?
            .ok_or_else(|| ApiError::not_found("contact"))?;
        self.contacts.erased(site, erased.identity.clone(), contact);
        self.hub.publish_control(Control::ContactErased {
            site_id: site.0,
            identity: erased.identity,
            contact_id: contact.to_string(),
        });
        self.hub.end_session(&contact_session_key(contact));
        self.delete_bytes(&erased.object_keys).await;
        tracing::info!(
            site = site.0,
            contact = %contact,
            conversations = erased.conversations,
            messages = erased.messages,
            attachments = erased.attachments,
            jobs = erased.jobs,
            "contact erased"
        );
        Ok(())
    }
}

/// Runs the retention job: starts the pass beside the queue and comes back in an hour.
struct RetentionHandler(Arc<Lifecycle>);

#[async_trait]
impl Handler for RetentionHandler {
    async fn run(&self, jobs: Vec<confidant_store::Job>) -> Vec<Outcome> {
        let lifecycle = self.0.clone();
        tokio::spawn(async move {
            if let Err(e) = lifecycle.pass().await {
                tracing::warn!(error = %e, "the retention pass failed; it runs again within the hour");
            }
        });
        let next = now_millis() + RETENTION_EVERY.as_millis() as i64;
        jobs.iter().map(|_| Outcome::Later(next)).collect()
    }
}
