//! The job runner: runs the store's durable queue (confidant_store::jobs) in every server
//! process, and turns the events that the database writes beside each stored message into
//! work for the event sinks (offline notices, webhooks).
//!
//! - Kinds: a `Handler` per job kind gets claimed jobs in batches and answers an `Outcome` per
//!   job: done, retry (exponential backoff with jitter, up to 24 hours after the job was
//!   queued, then dropped with a log line and a count), later (not a failure: a notice that is
//!   not due yet), or give up.
//! - Events: jobs of kind `event` are written by triggers in the transaction that stores a
//!   message or opens or closes a conversation (migration 0006), so none is lost to a crash.
//!   The runner hands them to every `EventSink` in batches; a sink that fails gets the batch
//!   again later (at least once, so sinks turn events into keyed jobs, which dedupe).
//! - Claims lease jobs for `LEASE`: a process killed mid-job leaves them to another process, or
//!   to itself after a restart, when the lease ends.
//! - Nothing here runs inside a request: a slow receiver or a dead SMTP server never slows a
//!   send, it only makes the queue deeper (`confidant_jobs_queued`, `…_oldest_seconds`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use confidant_core::time_fmt::now_millis;
use confidant_core::{ContactId, ConversationId, MessageId, MessengerId, SiteId};
use confidant_store::{Job, JobUpdate, NewJob, Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

/// How long a claim holds a job before another claim may take it.
pub const LEASE: Duration = Duration::from_secs(60);
/// How long a failing job is retried, counted from when it was queued.
pub const RETRY_FOR: Duration = Duration::from_secs(24 * 3600);
/// The longest wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Jobs claimed at once.
const BATCH: i64 = 500;
/// How often an idle runner looks for due jobs that another process (or a trigger) queued.
const POLL: Duration = Duration::from_millis(100);
/// After a batch that was not full, how long the runner lets the next one gather.
const GATHER: Duration = Duration::from_millis(50);
/// The kind of the jobs the triggers write.
pub const EVENT_KIND: &str = "event";

/// What became of a job's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Failed; run again after a backoff (for up to `RETRY_FOR` after it was queued).
    Retry(String),
    /// Run again at this time (Unix ms); not a failure.
    Later(i64),
    /// Failed for good: dropped, with a log line.
    GiveUp(String),
}

/// Runs the jobs of one kind.
#[async_trait]
pub trait Handler: Send + Sync {
    /// One `Outcome` per job, in the order of `jobs`.
    async fn run(&self, jobs: Vec<Job>) -> Vec<Outcome>;
}

/// What happened, for the business's systems (CONTRACT §10's webhook events).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    #[serde(rename = "message.created")]
    MessageCreated,
    #[serde(rename = "conversation.closed")]
    ConversationClosed,
    #[serde(rename = "contact.notified")]
    ContactNotified,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConversationCreated => "conversation.created",
            Self::MessageCreated => "message.created",
            Self::ConversationClosed => "conversation.closed",
            Self::ContactNotified => "contact.notified",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::ConversationCreated,
            Self::MessageCreated,
            Self::ConversationClosed,
            Self::ContactNotified,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// One event. The same event always has the same `id` (derived from what it is about), so a
/// receiver that gets it twice can tell.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub kind: EventType,
    pub site: SiteId,
    pub conversation_id: ConversationId,
    pub messenger_id: MessengerId,
    pub contact_id: ContactId,
    pub message_id: Option<MessageId>,
    pub seq: Option<i64>,
    /// "contact" or "agent", for messages.
    pub sender_type: Option<String>,
    /// When it happened, Unix ms.
    pub at: i64,
    /// Anything else the event carries (e.g. contact.notified's channel and time).
    pub data: serde_json::Value,
}

/// The payload of an `event` job, as the triggers write it (and `Jobs::emit`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventPayload {
    #[serde(rename = "type")]
    kind: String,
    conversation_id: String,
    messenger_id: String,
    contact_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sender_type: Option<String>,
    at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    data: serde_json::Value,
}

impl Event {
    /// The stable id of the event of type `kind` about `subject` (a message id, or a
    /// conversation id, with a discriminator where one subject has several such events).
    pub fn id_for(kind: EventType, subject: &str) -> Uuid {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("confidant.event/{}/{subject}", kind.as_str()).as_bytes(),
        );
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_ref()[..16]);
        uuid::Builder::from_custom_bytes(bytes).into_uuid()
    }

    fn from_job(job: &Job) -> Result<Event, String> {
        let p: EventPayload =
            serde_json::from_value(job.payload.clone()).map_err(|e| e.to_string())?;
        let kind = EventType::parse(&p.kind).ok_or_else(|| format!("unknown event {}", p.kind))?;
        let bad = |what: &str| format!("{what} is not an id");
        let conversation_id: ConversationId = p
            .conversation_id
            .parse()
            .map_err(|_| bad("conversationId"))?;
        let message_id: Option<MessageId> = match &p.message_id {
            Some(m) => Some(m.parse().map_err(|_| bad("messageId"))?),
            None => None,
        };
        let id = p.id.unwrap_or_else(|| match &message_id {
            Some(m) => Event::id_for(kind, &m.to_string()),
            None => Event::id_for(kind, &conversation_id.to_string()),
        });
        Ok(Event {
            id,
            kind,
            site: job.site,
            conversation_id,
            messenger_id: p.messenger_id.parse().map_err(|_| bad("messengerId"))?,
            contact_id: p.contact_id.parse().map_err(|_| bad("contactId"))?,
            message_id,
            seq: p.seq,
            sender_type: p.sender_type,
            at: p.at,
            data: p.data,
        })
    }

    fn to_job(&self) -> NewJob {
        let payload = EventPayload {
            kind: self.kind.as_str().to_owned(),
            conversation_id: self.conversation_id.to_string(),
            messenger_id: self.messenger_id.to_string(),
            contact_id: self.contact_id.to_string(),
            message_id: self.message_id.map(|m| m.to_string()),
            seq: self.seq,
            sender_type: self.sender_type.clone(),
            at: self.at,
            id: Some(self.id),
            data: self.data.clone(),
        };
        NewJob {
            kind: EVENT_KIND.to_owned(),
            site: self.site,
            // An event emitted twice (a job that ran twice) is queued once while queued.
            key: Some(format!("event:{}", self.id)),
            payload: serde_json::to_value(payload).unwrap_or_default(),
            run_at: now_millis(),
        }
    }
}

/// Gets every event, in batches (at least once).
#[async_trait]
pub trait EventSink: Send + Sync {
    async fn on_events(&self, events: &[Event]) -> Result<(), String>;
}

/// The queue's runner and registry. One per process.
pub struct Jobs {
    store: Store,
    handlers: RwLock<HashMap<&'static str, Arc<dyn Handler>>>,
    sinks: RwLock<Vec<Arc<dyn EventSink>>>,
    wake: Notify,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The kinds the gauges have shown.
    gauged: Mutex<Vec<String>>,
}

impl Jobs {
    pub fn new(store: Store) -> Arc<Jobs> {
        Arc::new(Jobs {
            store,
            handlers: RwLock::new(HashMap::new()),
            sinks: RwLock::new(Vec::new()),
            wake: Notify::new(),
            task: Mutex::new(None),
            gauged: Mutex::new(Vec::new()),
        })
    }

    /// Run the jobs of `kind` with `handler`.
    pub fn register(&self, kind: &'static str, handler: Arc<dyn Handler>) {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(kind, handler);
    }

    /// Hand every event to `sink`.
    pub fn add_sink(&self, sink: Arc<dyn EventSink>) {
        self.sinks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(sink);
    }

    /// Queue `jobs` (one statement) and wake the runner.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<(), StoreError> {
        self.store.enqueue(&jobs).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Queue an event that the store does not write itself (e.g. `contact.notified`).
    pub async fn emit(&self, event: Event) -> Result<(), StoreError> {
        self.enqueue(vec![event.to_job()]).await
    }

    /// Start the runner; it stops when `shutdown` turns true, after its current batch.
    pub fn start(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let weak = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let Some(jobs) = weak.upgrade() else { break };
                let ran = match jobs.run_due().await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "job queue: cannot claim jobs; retrying");
                        0
                    }
                };
                if ran as i64 >= BATCH {
                    continue;
                }
                if ran > 0 {
                    // Under load, let the next batch gather: every claim and every finish is a
                    // commit on the database's writer, beside the sends (on SQLite, the one
                    // writing connection and an fsync each). Measured: looping at once after
                    // each small batch cost sends 39 % on SQLite (bench/events_cost.py).
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
                let wait = jobs.idle_wait().await;
                // Holding `jobs` while asleep delays the end of a dropped app by at most `POLL`.
                let wake = jobs.wake.notified();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = wake => {}
                    _ = shutdown.changed() => {}
                }
            }
        });
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
    }

    /// Wait for the runner to finish its batch after shutdown.
    pub async fn stopped(&self) {
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
    }

    /// How long to sleep when nothing is due: until the next job, at most `POLL`.
    async fn idle_wait(&self) -> Duration {
        match self.store.next_job_at().await {
            Ok(Some(at)) => {
                let ms = (at - now_millis()).clamp(0, POLL.as_millis() as i64);
                Duration::from_millis(ms as u64)
            }
            _ => POLL,
        }
    }

    /// Claim due jobs, run them, and record the outcomes. Returns how many ran.
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        let now = now_millis();
        let lease_until = now + LEASE.as_millis() as i64;
        let claimed = self.store.claim_jobs(now, lease_until, BATCH).await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let count = claimed.len();
        let mut by_kind: HashMap<String, Vec<Job>> = HashMap::new();
        for job in claimed {
            by_kind.entry(job.kind.clone()).or_default().push(job);
        }
        let runs = by_kind.into_values().map(|batch| async move {
            let outcomes = self.run_kind(&batch).await;
            (batch, outcomes)
        });
        let results = futures_util::future::join_all(runs).await;
        let now = now_millis();
        let mut done = Vec::new();
        let mut later = Vec::new();
        for (batch, outcomes) in results {
            for (job, outcome) in batch.iter().zip(outcomes) {
                let kind = job.kind.clone();
                match outcome {
                    Outcome::Done => {
                        metrics::counter!("confidant_jobs_done_total", "kind" => kind).increment(1);
                        done.push((job.id, job.generation));
                    }
                    Outcome::Later(at) => later.push(JobUpdate::RunAt {
                        id: job.id,
                        at,
                        error: None,
                    }),
                    Outcome::Retry(error) => {
                        metrics::counter!("confidant_jobs_failed_total", "kind" => kind.clone())
                            .increment(1);
                        let at = now + backoff(job.attempts).as_millis() as i64;
                        if at > job.created_at + RETRY_FOR.as_millis() as i64 {
                            tracing::warn!(job = job.id, kind = %kind, attempts = job.attempts,
                                error = %error, "job failed for 24 hours; dropped");
                            metrics::counter!("confidant_jobs_dropped_total", "kind" => kind)
                                .increment(1);
                            done.push((job.id, job.generation));
                        } else {
                            tracing::debug!(job = job.id, kind = %kind, error = %error, "job failed; will retry");
                            later.push(JobUpdate::RunAt {
                                id: job.id,
                                at,
                                error: Some(error),
                            });
                        }
                    }
                    Outcome::GiveUp(error) => {
                        tracing::warn!(job = job.id, kind = %kind, error = %error, "job failed for good; dropped");
                        metrics::counter!("confidant_jobs_failed_total", "kind" => kind.clone())
                            .increment(1);
                        metrics::counter!("confidant_jobs_dropped_total", "kind" => kind)
                            .increment(1);
                        done.push((job.id, job.generation));
                    }
                }
            }
        }
        self.store.finish_jobs(&done, now_millis()).await?;
        self.store.reschedule_jobs(&later).await?;
        Ok(count)
    }

    async fn run_kind(&self, batch: &[Job]) -> Vec<Outcome> {
        let kind = batch[0].kind.as_str();
        if kind == EVENT_KIND {
            return self.deliver_events(batch).await;
        }
        let handler = self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kind)
            .cloned();
        match handler {
            Some(h) => {
                let outcomes = h.run(batch.to_vec()).await;
                if outcomes.len() == batch.len() {
                    outcomes
                } else {
                    tracing::error!(kind, "a job handler answered for the wrong number of jobs");
                    vec![Outcome::Retry("handler answered wrongly".into()); batch.len()]
                }
            }
            // Another process (a newer version) may know it; look again in a minute.
            None => {
                tracing::warn!(kind, "no handler for this job kind here");
                vec![Outcome::Later(now_millis() + 60_000); batch.len()]
            }
        }
    }

    /// Hand a batch of events to every sink; a failing sink makes the whole batch retry.
    async fn deliver_events(&self, batch: &[Job]) -> Vec<Outcome> {
        let mut events = Vec::with_capacity(batch.len());
        let mut broken = Vec::new();
        for (i, job) in batch.iter().enumerate() {
            match Event::from_job(job) {
                Ok(e) => events.push(e),
                Err(e) => broken.push((i, e)),
            }
        }
        let sinks = self.sinks.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut failure = None;
        if !events.is_empty() {
            for sink in &sinks {
                if let Err(e) = sink.on_events(&events).await {
                    failure = Some(e);
                }
            }
        }
        let mut outcomes: Vec<Outcome> = match failure {
            Some(e) => vec![Outcome::Retry(e); batch.len()],
            None => vec![Outcome::Done; batch.len()],
        };
        for (i, e) in broken {
            outcomes[i] = Outcome::GiveUp(format!("unreadable event: {e}"));
        }
        outcomes
    }

    /// Queue depth, age and failing jobs per kind, as gauges (read when /metrics is scraped:
    /// one grouped count, and the numbers are those of that moment).
    pub async fn record_gauges(&self) {
        let Ok(depth) = self.store.job_depth().await else {
            return;
        };
        let now = now_millis();
        let mut seen = self.gauged.lock().unwrap_or_else(|e| e.into_inner());
        let kinds: Vec<String> = depth.iter().map(|d| d.0.clone()).collect();
        // A kind whose queue emptied reads 0, not its last depth.
        for kind in seen.iter().filter(|k| !kinds.contains(k)) {
            metrics::gauge!("confidant_jobs_queued", "kind" => kind.clone()).set(0.0);
            metrics::gauge!("confidant_jobs_oldest_seconds", "kind" => kind.clone()).set(0.0);
            metrics::gauge!("confidant_jobs_failing", "kind" => kind.clone()).set(0.0);
        }
        for (kind, queued, oldest, failing) in depth {
            metrics::gauge!("confidant_jobs_queued", "kind" => kind.clone()).set(queued as f64);
            metrics::gauge!("confidant_jobs_oldest_seconds", "kind" => kind.clone())
                .set(((now - oldest).max(0) as f64) / 1000.0);
            metrics::gauge!("confidant_jobs_failing", "kind" => kind.clone()).set(failing as f64);
            if !seen.contains(&kind) {
                seen.push(kind);
            }
        }
    }
}

/// The wait before run `attempts + 1`: 1 s, 2 s, 4 s, … up to an hour, each between half and
/// the whole of that (jitter, so that a receiver that comes back is not hit by every retry at once).
pub fn backoff(attempts: i64) -> Duration {
    let exp = attempts.clamp(1, 20) - 1;
    let base = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
    let jitter = 0.5 + rand_unit() * 0.5;
    base.mul_f64(jitter)
}

fn rand_unit() -> f64 {
    let mut b = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return 1.0;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops_growing_at_an_hour() {
        for attempts in 1..=30 {
            let full = Duration::from_secs(1u64 << (attempts.min(20) - 1)).min(MAX_BACKOFF);
            let b = backoff(attempts);
            assert!(
                b >= full / 2 && b <= full,
                "attempt {attempts}: {b:?} vs {full:?}"
            );
        }
        // Jitter: ten draws at the same attempt are not all equal.
        let draws: std::collections::HashSet<_> = (0..10).map(|_| backoff(10)).collect();
        assert!(draws.len() > 1);
    }

    #[test]
    fn event_ids_are_stable_and_distinct_per_type() {
        let m = "0190f0b8-6a51-7c7e-9f0e-0a1b2c3d4e5f";
        assert_eq!(
            Event::id_for(EventType::MessageCreated, m),
            Event::id_for(EventType::MessageCreated, m)
        );
        assert_ne!(
            Event::id_for(EventType::ConversationCreated, m),
            Event::id_for(EventType::ConversationClosed, m)
        );
    }
}
