//! Webhooks (CONTRACT §10): a site's subscriptions, the signed delivery of its events, the
//! delivery log and the test event.
//!
//! - Saving: the URL obeys the URL rule (§5) by its form (`400`); the secret (`whsec_` and 32
//!   random bytes in base64url) is shown once and sealed at rest.
//! - Delivering: the event sink (`jobs` wiring in `app.rs`) turns each event into one queued
//!   job per subscribed webhook; [`Webhooks::deliver`] runs a batch of them concurrently (at
//!   most [`MAX_IN_FLIGHT`] requests per process, one pooled client) under the URL rule at
//!   connection time, and answers per job: delivered, retry, or dropped (webhook deleted, or
//!   the message gone). A batch waits at most [`BATCH_BUDGET`] for its answers: deliveries to
//!   slow receivers go on detached and their jobs collect the outcome on their next run.
//! - Signing: `Confidant-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`,
//!   keyed with the secret's text exactly as shown (`whsec_…`, UTF-8 bytes).
//! - The log: every attempt goes to a recorder task that writes them in batches (one
//!   transaction per [`LOG_FLUSH_EVERY`] or [`LOG_BATCH`] attempts), so a thousand deliveries
//!   a second are a handful of writes, not a thousand.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use confidant_core::time_fmt::{now_millis, rfc3339_millis};
use confidant_core::{
    ContactId, ConversationId, FieldError, MessageId, MessengerId, Problems, SiteId,
};
use confidant_store::{
    ConversationRow, DeliveryRow, Job, MessageRow, NewJob, Store, StoreError, WebhookRow,
};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::api::{Conversation, Message};
use crate::error::{ApiError, ApiResult};
use crate::jobs::{Event, EventSink, Handler, Outcome};
use crate::outbound::{UrlRule, error_chain};

/// The events a webhook may subscribe to.
pub const EVENT_NAMES: [&str; 4] = [
    "conversation.created",
    "message.created",
    "conversation.closed",
    "contact.notified",
];
/// The type of the test event (never queued, never subscribed to).
pub const TEST_EVENT: &str = "webhook.test";
/// Webhooks per site.
pub const MAX_WEBHOOKS_PER_SITE: i64 = 20;
/// A delivery succeeds on a 2xx within this time (CONTRACT §10).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in flight at once, per process.
pub const MAX_IN_FLIGHT: usize = 64;
/// How long a batch of deliveries waits for its answers; deliveries still running then (a
/// slow or silent receiver) go on in the background, and their jobs come back after
/// [`LATER_MS`] to collect the outcome. So a receiver that takes 10 s to fail holds the job
/// runner (and every other site's deliveries) for 2 s at most.
pub const BATCH_BUDGET: Duration = Duration::from_secs(2);
/// When a job whose delivery outlived the budget runs again: after the request's timeout.
const LATER_MS: i64 = 12_000;
/// Outcomes not collected within this time (the job ran on another process) are forgotten.
const SETTLED_KEPT: Duration = Duration::from_secs(600);
/// The longest URL accepted.
const MAX_URL_LEN: usize = 2048;
/// At most this much of a receiver's answer is read (then the connection is dropped).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The recorder writes its attempts at least this often…
pub const LOG_FLUSH_EVERY: Duration = Duration::from_millis(200);
/// …or as soon as it holds this many.
pub const LOG_BATCH: usize = 2000;
/// Attempts waiting for the recorder; beyond, new ones are dropped from the log (counted in
/// `confidant_webhook_log_dropped_total`), never delaying a delivery.
const LOG_QUEUE: usize = 20_000;

/// The header names.
pub const SIGNATURE_HEADER: &str = "Confidant-Signature";
pub const EVENT_ID_HEADER: &str = "Confidant-Event-Id";

/// An event as a webhook job carries it (the job's payload): enough to build the delivery's
/// `data` when it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    pub id: uuid::Uuid,
    /// `message.created`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub site_id: SiteId,
    /// Unix ms.
    pub at: i64,
    pub conversation_id: ConversationId,
    pub messenger_id: MessengerId,
    pub contact_id: ContactId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// What the event itself carries (contact.notified's channel and time).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

/// A job of kind `webhook`: deliver `event` to `webhook_id`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookJob {
    pub webhook_id: uuid::Uuid,
    pub event: WebhookEvent,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Failed: try again later (the reason is for the log).
    Retry(String),
    /// Still running after the batch's budget: run the job again at this Unix ms (its
    /// outcome will be waiting).
    Later(i64),
    /// Nothing to deliver any more (the webhook was deleted or unsubscribed, the message
    /// erased): the job ends.
    Dropped(&'static str),
}

/// One attempt, as the test endpoint answers it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub webhook_id: uuid::Uuid,
    pub event_id: uuid::Uuid,
    pub delivered: bool,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    pub at: i64,
}

/// A new webhook as the admin asked for it.
pub struct NewWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub include_body: Option<bool>,
}

pub struct Webhooks {
    store: Store,
    rule: UrlRule,
    /// `Err` only if the HTTP client could not be built (a TLS set-up failure): every
    /// delivery then fails with that reason and is retried.
    client: Result<Client, String>,
    in_flight: Arc<Semaphore>,
    log: mpsc::Sender<DeliveryRow>,
    /// Outcomes of deliveries that outlived their batch, by (webhook, event), for the job's
    /// next run.
    settled: Arc<Mutex<HashMap<Key, (Delivery, Instant)>>>,
    /// Deliveries under way.
    running: Arc<Mutex<HashSet<Key>>>,
}

/// (webhook id, event id).
type Key = (uuid::Uuid, uuid::Uuid);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Webhooks {
    pub fn new(store: Store, rule: UrlRule) -> Webhooks {
        let client = rule
            .client()
            // No redirect is followed: a 3xx is an answer that is not a 2xx, so a failure.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!(
                "confidant/",
                env!("CARGO_PKG_VERSION"),
                " (webhooks)"
            ))
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "cannot build the webhook HTTP client");
                format!("the HTTP client could not be built: {e}")
            });
        let (log, rx) = mpsc::channel(LOG_QUEUE);
        tokio::spawn(record_attempts(store.clone(), rx));
        Webhooks {
            store,
            rule,
            client,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            log,
            settled: Arc::default(),
            running: Arc::default(),
        }
    }

    // ---- the API ----

    pub async fn create(
        &self,
        site: SiteId,
        new: NewWebhook,
        who: &crate::service::audit::Who,
    ) -> ApiResult<WebhookRow> {
        // Both fields are checked, and the answer names every problem (the form marks each).
        let mut problems = Problems::new();
        let url = problems.or(self.parse_url(new.url), String::new());
        let events = parse_events(new.events, &mut problems);
        problems.finish()?;
        let row = WebhookRow {
            webhook_id: uuid::Uuid::new_v4(),
            site_id: site,
            url,
            events,
            include_body: new.include_body.unwrap_or(false),
            secret: format!("whsec_{}", crate::tokens::random_token()),
            created_at: now_millis(),
        };
        let entry = who.entry(
            site,
            "webhook.created",
            serde_json::json!({"webhookId": row.webhook_id.to_string(), "url": row.url, "events": row.events}),
        );
        self.store
            .create_webhook(&row, MAX_WEBHOOKS_PER_SITE, &entry)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => ApiError::conflict(format!(
                    "a site has at most {MAX_WEBHOOKS_PER_SITE} webhooks; delete one first"
                )),
                other => other.into(),
            })?;
        Ok(row)
    }

    pub async fn list(&self, site: SiteId) -> ApiResult<Vec<WebhookRow>> {
        Ok(self.store.list_webhooks(site).await?)
    }

    /// The site's webhook, or `404 not_found` (another site's included).
    pub async fn get(&self, site: SiteId, id: uuid::Uuid) -> ApiResult<WebhookRow> {
        self.store
            .get_webhook(site, id)
            .await?
            .ok_or_else(|| ApiError::not_found("webhook"))
    }

    pub async fn delete(
        &self,
        site: SiteId,
        id: uuid::Uuid,
        who: &crate::service::audit::Who,
    ) -> ApiResult<()> {
        let entry = who.entry(
            site,
            "webhook.deleted",
            serde_json::json!({"webhookId": id.to_string()}),
        );
        if self.store.delete_webhook(site, id, &entry).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("webhook"))
        }
    }

    pub async fn deliveries(&self, site: SiteId, id: uuid::Uuid) -> ApiResult<Vec<DeliveryRow>> {
        self.get(site, id).await?;
        Ok(self.store.list_deliveries(site, id).await?)
    }

    /// Send a `webhook.test` event to the webhook now, through the same signed path, and
    /// answer with the attempt (also written to the log before this answers).
    pub async fn send_test(&self, site: SiteId, id: uuid::Uuid) -> ApiResult<Attempt> {
        let hook = self.get(site, id).await?;
        let event_id = uuid::Uuid::new_v4();
        let now = now_millis();
        let body = envelope(
            event_id,
            TEST_EVENT,
            now,
            site,
            json!({"webhookId": hook.webhook_id, "message": "a test event from Confidant"}),
        );
        let attempt = self.post(&hook, event_id, &body).await;
        let row = delivery_row(&hook, TEST_EVENT, &attempt);
        if let Err(e) = self.store.record_deliveries(&[row]).await {
            tracing::warn!(error = %e, "cannot record a webhook test attempt");
        }
        Ok(attempt)
    }

    fn parse_url(&self, url: Option<String>) -> Result<String, FieldError> {
        let text = url
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                FieldError::new(
                    "url",
                    "required: the https:// address that receives the events",
                )
            })?;
        if text.len() > MAX_URL_LEN {
            return Err(FieldError::new(
                "url",
                format!("must be at most {MAX_URL_LEN} characters"),
            ));
        }
        let parsed = Url::parse(&text).map_err(|_| {
            FieldError::new(
                "url",
                format!("“{text}” is not a web address: it needs https:// and a host"),
            )
        })?;
        if parsed.fragment().is_some() {
            return Err(FieldError::new("url", "must not have a #fragment"));
        }
        confidant_core::outbound::check(&parsed, self.rule.allow_private)
            .map_err(|e| FieldError::new("url", e.to_string()))?;
        Ok(parsed.to_string())
    }

    // ---- delivery ----

    /// The subscribed webhooks of each event's site, as jobs: (site, job key, payload).
    /// One query for the whole batch of events.
    pub async fn jobs_for(
        &self,
        events: &[WebhookEvent],
    ) -> Result<Vec<(SiteId, String, WebhookJob)>, StoreError> {
        let mut sites: Vec<SiteId> = events.iter().map(|e| e.site_id).collect();
        sites.sort_by_key(|s| s.0);
        sites.dedup();
        let hooks = self.store.webhooks_of_sites(&sites).await?;
        let mut by_site: HashMap<SiteId, Vec<&WebhookRow>> = HashMap::new();
        for h in &hooks {
            by_site.entry(h.site_id).or_default().push(h);
        }
        let mut jobs = Vec::new();
        for e in events {
            for h in by_site.get(&e.site_id).into_iter().flatten() {
                if h.events.contains(&e.kind) {
                    jobs.push((
                        e.site_id,
                        format!("webhook:{}:{}", h.webhook_id, e.id),
                        WebhookJob {
                            webhook_id: h.webhook_id,
                            event: e.clone(),
                        },
                    ));
                }
            }
        }
        Ok(jobs)
    }

    /// Deliver a batch of jobs concurrently; one answer per job, in order. A store error
    /// (reading webhooks, messages) answers `Retry` for the jobs it concerns.
    pub async fn deliver(&self, jobs: Vec<(SiteId, WebhookJob)>) -> Vec<Delivery> {
        let ids: Vec<uuid::Uuid> = {
            let set: HashSet<uuid::Uuid> = jobs.iter().map(|(_, j)| j.webhook_id).collect();
            set.into_iter().collect()
        };
        let hooks: HashMap<uuid::Uuid, WebhookRow> = match self.store.webhooks_by_ids(&ids).await {
            Ok(rows) => rows.into_iter().map(|h| (h.webhook_id, h)).collect(),
            Err(e) => {
                let reason = format!("cannot read webhooks: {e}");
                return jobs
                    .iter()
                    .map(|_| Delivery::Retry(reason.clone()))
                    .collect();
            }
        };
        let data = match self.event_data(&jobs).await {
            Ok(d) => d,
            Err(e) => {
                let reason = format!("cannot read the events' data: {e}");
                return jobs
                    .iter()
                    .map(|_| Delivery::Retry(reason.clone()))
                    .collect();
            }
        };
        let mut answers: Vec<Option<Delivery>> = vec![None; jobs.len()];
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, Attempt)>();
        let mut spawned = 0usize;
        let now = Instant::now();
        {
            let mut settled = lock(&self.settled);
            settled.retain(|_, (_, at)| now.duration_since(*at) < SETTLED_KEPT);
        }
        for (i, (site, job)) in jobs.into_iter().enumerate() {
            let key = (job.webhook_id, job.event.id);
            // A delivery that outlived an earlier run's budget: its outcome, or still running.
            if let Some((outcome, _)) = lock(&self.settled).remove(&key) {
                answers[i] = Some(outcome);
                continue;
            }
            if lock(&self.running).contains(&key) {
                answers[i] = Some(Delivery::Later(now_millis() + LATER_MS));
                continue;
            }
            let Some(hook) = hooks.get(&job.webhook_id).filter(|h| h.site_id == site) else {
                answers[i] = Some(Delivery::Dropped("the webhook was deleted"));
                continue;
            };
            if !hook.events.contains(&job.event.kind) {
                answers[i] = Some(Delivery::Dropped("the webhook no longer takes this event"));
                continue;
            }
            let Some(d) = data.get(&(job.event.id, job.event.kind.clone())) else {
                answers[i] = Some(Delivery::Dropped("the event's data is gone"));
                continue;
            };
            let body = envelope(
                job.event.id,
                &job.event.kind,
                job.event.at,
                site,
                d.for_hook(hook.include_body),
            );
            let hook = hook.clone();
            let client = self.sender();
            let log = self.log.clone();
            let settled = self.settled.clone();
            let running = self.running.clone();
            let done = done_tx.clone();
            lock(&running).insert(key);
            spawned += 1;
            // Detached: a delivery that outlives the batch's budget goes on, and its outcome
            // waits in `settled` for the job's next run.
            tokio::spawn(async move {
                let attempt = client.post(&hook, job.event.id, &body).await;
                if log
                    .try_send(delivery_row(&hook, &job.event.kind, &attempt))
                    .is_err()
                {
                    metrics::counter!("confidant_webhook_log_dropped_total").increment(1);
                }
                let outcome = if attempt.delivered {
                    Delivery::Delivered
                } else {
                    Delivery::Retry(attempt_failure(&attempt))
                };
                lock(&settled).insert(key, (outcome, Instant::now()));
                lock(&running).remove(&key);
                let _ = done.send((i, attempt));
            });
        }
        drop(done_tx);
        let deadline = tokio::time::Instant::now() + BATCH_BUDGET;
        while spawned > 0 {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some((i, attempt))) => {
                    spawned -= 1;
                    let key = (attempt.webhook_id, attempt.event_id);
                    answers[i] = lock(&self.settled).remove(&key).map(|(o, _)| o);
                }
                Ok(None) | Err(_) => break,
            }
        }
        // Deliveries still running: their jobs come back after the request's timeout.
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Delivery::Later(now_millis() + LATER_MS)))
            .collect()
    }

    /// What a spawned delivery needs of `self`.
    fn sender(&self) -> Sender {
        Sender {
            rule: self.rule,
            client: self.client.clone(),
            in_flight: self.in_flight.clone(),
        }
    }

    async fn post(&self, hook: &WebhookRow, event_id: uuid::Uuid, body: &[u8]) -> Attempt {
        self.sender().post(hook, event_id, body).await
    }

    /// Each event's `data`, read in one query per site for messages and one per
    /// conversation for conversation events; events whose subject is gone are missing.
    async fn event_data(
        &self,
        jobs: &[(SiteId, WebhookJob)],
    ) -> Result<HashMap<(uuid::Uuid, String), EventData>, StoreError> {
        let mut out = HashMap::new();
        let mut messages: HashMap<SiteId, Vec<MessageId>> = HashMap::new();
        let mut conversations: HashSet<(SiteId, ConversationId)> = HashSet::new();
        for (site, job) in jobs {
            let e = &job.event;
            match e.kind.as_str() {
                "message.created" => {
                    if let Some(m) = e.message_id {
                        messages.entry(*site).or_default().push(m);
                    }
                }
                "conversation.created" | "conversation.closed" => {
                    conversations.insert((*site, e.conversation_id));
                }
                _ => {
                    out.insert((e.id, e.kind.clone()), EventData::Plain(notified_data(e)));
                }
            }
        }
        let mut found_messages: HashMap<MessageId, (MessageRow, ConversationRow)> = HashMap::new();
        for (site, mut ids) in messages {
            ids.sort_by_key(|m| m.0);
            ids.dedup();
            for (m, c) in self.store.messages_by_ids(site, &ids).await? {
                found_messages.insert(m.message_id, (m, c));
            }
        }
        let mut found_conversations = HashMap::new();
        for (site, id) in conversations {
            if let Some(found) = self.store.conversation_with_last(site, id).await? {
                found_conversations.insert(id, found);
            }
        }
        for (_, job) in jobs {
            let e = &job.event;
            let key = (e.id, e.kind.clone());
            if out.contains_key(&key) {
                continue;
            }
            let data = match e.kind.as_str() {
                "message.created" => e
                    .message_id
                    .and_then(|m| found_messages.get(&m))
                    .map(|(m, c)| EventData::Message(message_data(m, c))),
                _ => found_conversations
                    .get(&e.conversation_id)
                    .map(|(c, last)| EventData::Conversation(conversation_data(c, last.as_ref()))),
            };
            if let Some(d) = data {
                out.insert(key, d);
            }
        }
        Ok(out)
    }
}

/// The part of [`Webhooks`] a delivery task takes along.
struct Sender {
    rule: UrlRule,
    client: Result<Client, String>,
    in_flight: Arc<Semaphore>,
}

impl Sender {
    /// One signed POST; never fails, the attempt says how it went.
    async fn post(&self, hook: &WebhookRow, event_id: uuid::Uuid, body: &[u8]) -> Attempt {
        // The semaphore is never closed; without a permit there is nothing to wait for.
        let _permit = self.in_flight.acquire().await.ok();
        let at = now_millis();
        let started = Instant::now();
        let result = self.try_post(hook, event_id, body).await;
        let latency = started.elapsed();
        metrics::histogram!("confidant_webhook_delivery_seconds").record(latency.as_secs_f64());
        let latency_ms = i64::try_from(latency.as_millis()).unwrap_or(i64::MAX);
        let (delivered, status, error) = match result {
            Ok(status) => (
                (200..300).contains(&status),
                Some(status),
                (!(200..300).contains(&status)).then(|| format!("answered HTTP {status}")),
            ),
            Err(e) => (false, None, Some(e)),
        };
        metrics::counter!("confidant_webhook_deliveries_total",
            "result" => if delivered { "delivered" } else { "failed" })
        .increment(1);
        Attempt {
            webhook_id: hook.webhook_id,
            event_id,
            delivered,
            status,
            error,
            latency_ms,
            at,
        }
    }

    async fn try_post(
        &self,
        hook: &WebhookRow,
        event_id: uuid::Uuid,
        body: &[u8],
    ) -> Result<u16, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let url = Url::parse(&hook.url).map_err(|_| "the URL does not parse".to_owned())?;
        // Checked again at use: the flag may have been turned off since it was saved.
        self.rule.check(&url)?;
        let t = now_millis().div_euclid(1000);
        let mut answer = client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, event_id.to_string())
            .header(SIGNATURE_HEADER, signature_header(&hook.secret, t, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| {
                tracing::debug!(webhook = %hook.webhook_id, error = %error_chain(&e), "webhook delivery failed");
                describe(&e)
            })?;
        let status = answer.status().as_u16();
        // Read (a little of) the answer so the connection can serve the next delivery.
        let mut read = 0;
        while let Ok(Some(chunk)) = answer.chunk().await {
            read += chunk.len();
            if read > MAX_ANSWER_BYTES {
                break;
            }
        }
        Ok(status)
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, keyed with the secret's UTF-8 bytes.
pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The delivery's JSON body: `{"id","type","createdAt","siteId","data"}`.
fn envelope(id: uuid::Uuid, kind: &str, at: i64, site: SiteId, data: Value) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope<'a> {
        id: uuid::Uuid,
        #[serde(rename = "type")]
        kind: &'a str,
        created_at: String,
        site_id: SiteId,
        data: Value,
    }
    serde_json::to_vec(&Envelope {
        id,
        kind,
        created_at: rfc3339_millis(at),
        site_id: site,
        data,
    })
    .unwrap_or_default()
}

/// An event's `data` before a webhook's `includeBody` is applied.
#[derive(Clone)]
enum EventData {
    /// A message (with `body`), plus its conversation's messenger and contact.
    Message(Value),
    /// A conversation whose `lastMessage` may carry a body.
    Conversation(Value),
    Plain(Value),
}

impl EventData {
    fn for_hook(&self, include_body: bool) -> Value {
        match self {
            EventData::Message(v) => {
                let mut v = v.clone();
                if !include_body && let Some(o) = v.as_object_mut() {
                    o.remove("body");
                }
                v
            }
            EventData::Conversation(v) => {
                let mut v = v.clone();
                if !include_body
                    && let Some(last) = v.get_mut("lastMessage").and_then(Value::as_object_mut)
                {
                    last.remove("body");
                }
                v
            }
            EventData::Plain(v) => v.clone(),
        }
    }
}

/// A message as the REST API shows it, with its conversation's messenger and contact.
fn message_data(m: &MessageRow, c: &ConversationRow) -> Value {
    let mut v = serde_json::to_value(Message::from(m)).unwrap_or(Value::Null);
    without_contact_name(&mut v);
    if let Some(o) = v.as_object_mut() {
        o.insert("messengerId".into(), json!(c.messenger_id));
        o.insert("contactId".into(), json!(c.contact_id));
    }
    v
}

/// A contact's message names its sender with the contact's name (an attribute, or its
/// identity): deliveries carry neither, only `contactId` (agents' names stay).
fn without_contact_name(message: &mut Value) {
    if let Some(sender) = message.get_mut("sender").and_then(Value::as_object_mut)
        && sender.get("type").and_then(Value::as_str) == Some("contact")
    {
        sender.remove("name");
    }
}

/// A conversation as the REST API shows it (never the contact's attributes).
fn conversation_data(c: &ConversationRow, last: Option<&MessageRow>) -> Value {
    let mut v = serde_json::to_value(Conversation::new(c, last)).unwrap_or(Value::Null);
    if let Some(last) = v.get_mut("lastMessage") {
        without_contact_name(last);
    }
    v
}

/// contact.notified: `{conversationId, contactId, channel, notifiedAt}`.
fn notified_data(e: &WebhookEvent) -> Value {
    let channel = e
        .data
        .get("channel")
        .and_then(Value::as_str)
        .unwrap_or("email");
    let notified_at = e
        .data
        .get("notifiedAt")
        .and_then(Value::as_str)
        .map_or_else(|| rfc3339_millis(e.at), str::to_owned);
    json!({
        "conversationId": e.conversation_id,
        "contactId": e.contact_id,
        "channel": channel,
        "notifiedAt": notified_at,
    })
}

/// The events without repeats; a missing list and each unknown name are noted in `problems`.
fn parse_events(events: Option<Vec<String>>, problems: &mut Problems) -> Vec<String> {
    let events = events.unwrap_or_default();
    if events.is_empty() {
        problems.push(FieldError::new(
            "events",
            format!("choose at least one of {}", EVENT_NAMES.join(", ")),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        if !EVENT_NAMES.contains(&e.as_str()) {
            problems.push(FieldError::new(
                format!("events[{i}]"),
                format!("not an event; use {}", EVENT_NAMES.join(", ")),
            ));
        } else if !out.contains(&e) {
            out.push(e);
        }
    }
    out
}

fn delivery_row(hook: &WebhookRow, kind: &str, a: &Attempt) -> DeliveryRow {
    DeliveryRow {
        delivery_id: uuid::Uuid::now_v7(),
        webhook_id: hook.webhook_id,
        site_id: hook.site_id,
        event_id: a.event_id,
        event_type: kind.to_owned(),
        at: a.at,
        status: a.status.map(i64::from),
        error: a.error.clone(),
        latency_ms: a.latency_ms,
        delivered: a.delivered,
    }
}

fn attempt_failure(a: &Attempt) -> String {
    a.error
        .clone()
        .unwrap_or_else(|| "the delivery failed".to_owned())
}

/// A short reason for the delivery log. Connection failures, including a host refused by the
/// URL rule when it resolved, read alike ("could not connect"): the log must not tell an
/// admin which internal names resolve to private addresses. The server's log has the cause.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_builder() {
        "the request could not be made".to_owned()
    } else {
        "the connection failed before an answer".to_owned()
    }
}

/// The recorder: attempts arrive on `rx` and are written in batches.
async fn record_attempts(store: Store, mut rx: mpsc::Receiver<DeliveryRow>) {
    let mut batch = Vec::with_capacity(LOG_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LOG_FLUSH_EVERY;
        while batch.len() < LOG_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(row)) => batch.push(row),
                Ok(None) | Err(_) => break,
            }
        }
        if let Err(e) = store.record_deliveries(&batch).await {
            tracing::warn!(error = %e, attempts = batch.len(), "cannot record webhook attempts");
        }
        batch.clear();
    }
}

// ---- on the job queue ----

/// The job kind of one delivery.
pub const JOB_KIND: &str = "webhook";

impl From<&Event> for WebhookEvent {
    fn from(e: &Event) -> Self {
        WebhookEvent {
            id: e.id,
            kind: e.kind.as_str().to_owned(),
            site_id: e.site,
            at: e.at,
            conversation_id: e.conversation_id,
            messenger_id: e.messenger_id,
            contact_id: e.contact_id,
            message_id: e.message_id,
            data: e.data.clone(),
        }
    }
}

/// Turns each batch of events into one `webhook` job per subscribed webhook (one query for
/// the webhooks, one statement to queue the jobs). The job's key, `webhook:<id>:<event id>`,
/// keeps an event handed over twice from being queued twice while the first is queued.
pub struct WebhookSink(pub Arc<Webhooks>);

#[async_trait::async_trait]
impl EventSink for WebhookSink {
    async fn on_events(&self, events: &[Event]) -> Result<(), String> {
        let events: Vec<WebhookEvent> = events.iter().map(WebhookEvent::from).collect();
        let jobs = self.0.jobs_for(&events).await.map_err(|e| e.to_string())?;
        if jobs.is_empty() {
            return Ok(());
        }
        let now = now_millis();
        let jobs: Vec<NewJob> = jobs
            .into_iter()
            .map(|(site, key, job)| NewJob {
                kind: JOB_KIND.to_owned(),
                site,
                key: Some(key),
                payload: serde_json::to_value(job).unwrap_or_default(),
                run_at: now,
            })
            .collect();
        self.0
            .store
            .enqueue(&jobs)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Runs `webhook` jobs: a whole batch of deliveries at once.
pub struct WebhookHandler(pub Arc<Webhooks>);

#[async_trait::async_trait]
impl Handler for WebhookHandler {
    async fn run(&self, jobs: Vec<Job>) -> Vec<Outcome> {
        let mut parsed = Vec::with_capacity(jobs.len());
        let mut bad = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            match serde_json::from_value::<WebhookJob>(job.payload.clone()) {
                Ok(w) => parsed.push((i, job.site, w)),
                Err(e) => bad.push((i, e.to_string())),
            }
        }
        let mut outcomes: Vec<Outcome> = vec![Outcome::Done; jobs.len()];
        for (i, reason) in bad {
            outcomes[i] = Outcome::GiveUp(format!("not a webhook job: {reason}"));
        }
        let (index, batch): (Vec<usize>, Vec<(SiteId, WebhookJob)>) = parsed
            .into_iter()
            .map(|(i, site, w)| (i, (site, w)))
            .unzip();
        for (i, d) in index.into_iter().zip(self.0.deliver(batch).await) {
            outcomes[i] = match d {
                Delivery::Delivered | Delivery::Dropped(_) => Outcome::Done,
                Delivery::Retry(reason) => Outcome::Retry(reason),
                Delivery::Later(at) => Outcome::Later(at),
            };
        }
        outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A known answer, computed independently (Python: hmac.new(b"whsec_test", b"1700000000.{}",
    /// hashlib.sha256).hexdigest()).
    #[test]
    fn the_signature_is_hmac_sha256_of_t_dot_body() {
        assert_eq!(
            signature_header("whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    /// The events and the problems found, as the answer would name them.
    fn events(list: Option<Vec<&str>>) -> (Vec<String>, Result<(), String>) {
        let mut problems = Problems::new();
        let events = parse_events(
            list.map(|l| l.into_iter().map(str::to_owned).collect()),
            &mut problems,
        );
        (events, problems.finish().map_err(|e| e.to_string()))
    }

    #[test]
    fn events_are_checked_and_deduplicated() {
        assert!(events(None).1.is_err());
        assert!(events(Some(vec![])).1.is_err());
        let (_, e) = events(Some(vec!["message.created", "bogus", "nope"]));
        assert_eq!(
            e.expect_err("bogus").matches("not an event").count(),
            2,
            "each bad one is named"
        );
        let (list, e) = events(Some(vec![
            "message.created",
            "message.created",
            "conversation.closed",
        ]));
        assert_eq!(
            (list, e),
            (
                vec![
                    "message.created".to_owned(),
                    "conversation.closed".to_owned()
                ],
                Ok(())
            )
        );
    }
}
