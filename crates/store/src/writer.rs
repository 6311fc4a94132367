//! The batching writer for sends, and the one-by-one path.
//!
//! Durability costs one fsync per commit, so sends that arrive together share one: the writer
//! takes every send waiting in its queue, stores them as one batch and answers them all after
//! the commit, one batch at a time. The next batch gathers while one is being stored, so under
//! load batches grow instead of commits multiplying. (On PostgreSQL, several batches in flight
//! or several writers per process were measured slower: smaller batches cost more round trips
//! and commits per send, and batches sharing a conversation wait on each other's row locks.)
//!
//! A batch goes the set-based way (batch.rs) when it can, repeated `clientMessageId`s
//! included; sends that open a conversation, a batch with a close, a send another process
//! stored after the batch's lookup (caught by a unique index), or a database error go the
//! one-by-one way (counted by reason: `Fallbacks`): each send reads what it needs, is planned
//! on its own by the same planner (plan.rs), and is written with a guarded UPDATE (the
//! `last_seq` it read, still open) or an INSERT of the conversation it opens. A write that
//! finds another process got there first stores nothing, and the send is read and planned
//! again. How much locking that needs is the backend's `WriteStrategy`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use confidant_core::{ConversationId, SiteId};
use sqlx::{AnyConnection, AnyPool, Connection as _, FromRow as _};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::batch::{self, BatchSql, Fallback};
use crate::plan::{self, Known, Step};
use crate::vault::{Vault, message_place};
use crate::{
    ConversationRow, MessageRow, Result, SendOutcome, SendRequest, SendTarget, StoreError,
};

const MAX_BATCH: usize = 256;
const QUEUE: usize = 4096;
/// How often one send is read and planned again after other processes' writes got in first.
const ATTEMPTS: usize = 3;

pub(crate) type Job = (SendRequest, oneshot::Sender<Result<SendOutcome>>);

/// Called with every stored send, in commit order, before the sender hears back.
pub type CommitHook = Arc<dyn Fn(&SendOutcome) + Send + Sync>;

/// How sends are kept gapless and idempotent against other writers; chosen once per backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteStrategy {
    /// SQLite: this process's one connection is the only writer, so nothing changes between
    /// a read and the write after it. A batch needs no locks, and the one-by-one path stores
    /// the whole batch in one transaction without savepoints (if a send fails after writing,
    /// the batch is stored again send by send, each in a savepoint).
    SingleWriter,
    /// PostgreSQL: other processes write at once. The set-based write is guarded (and retried
    /// once under row locks); the one-by-one path locks every conversation the batch may write
    /// to, in id order, before its first send (so two processes never wait on each other in a
    /// cycle), and gives each send a savepoint.
    RowLocks,
}

impl WriteStrategy {
    /// The strategy a backend needs.
    pub(crate) fn of(backend: crate::Backend) -> Self {
        match backend {
            crate::Backend::Sqlite => WriteStrategy::SingleWriter,
            crate::Backend::Postgres => WriteStrategy::RowLocks,
        }
    }

    fn sql(self) -> &'static BatchSql {
        match self {
            WriteStrategy::SingleWriter => &batch::SQLITE,
            WriteStrategy::RowLocks => &batch::POSTGRES,
        }
    }
}

/// Why sends were stored one by one instead of together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// The batch held a close.
    Close,
    /// Sends that open a conversation (a contact's first send); the rest went together.
    Opens,
    /// One of the sends (or another into its conversation) was stored between the batch's
    /// lookup and its write.
    Repeat,
    /// A conversation changed under the batch, also when retried under row locks (PostgreSQL).
    Changed,
    /// A database error.
    Error,
}

impl FallbackReason {
    pub const ALL: [FallbackReason; 5] = [
        Self::Close,
        Self::Opens,
        Self::Repeat,
        Self::Changed,
        Self::Error,
    ];

    /// The `reason` label of `confidant_send_batch_fallbacks_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Opens => "opens",
            Self::Repeat => "repeat",
            Self::Changed => "changed",
            Self::Error => "error",
        }
    }

    fn of(fallback: &Fallback) -> Self {
        match fallback {
            Fallback::Unsupported => Self::Close,
            Fallback::Opens(_) => Self::Opens,
            Fallback::Repeat => Self::Repeat,
            Fallback::Changed => Self::Changed,
            Fallback::Db(_) => Self::Error,
        }
    }
}

/// How often the writer gave a batch (or some of its sends) to the one-by-one path, by
/// reason, since the store opened. Kept here rather than in the metrics recorder so that a
/// store's own count can be read (the server exports it at each scrape).
#[derive(Debug, Default)]
pub(crate) struct Fallbacks([AtomicU64; FallbackReason::ALL.len()]);

impl Fallbacks {
    fn count(&self, reason: FallbackReason) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, reason: FallbackReason) -> u64 {
        self.0[reason as usize].load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub(crate) struct SendWriter {
    queue: mpsc::Sender<Job>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    hook: Arc<std::sync::OnceLock<CommitHook>>,
    pub(crate) fallbacks: Arc<Fallbacks>,
}

impl SendWriter {
    pub(crate) fn start(pool: AnyPool, strategy: WriteStrategy, vault: Arc<Vault>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let hook = Arc::new(std::sync::OnceLock::new());
        let fallbacks = Arc::new(Fallbacks::default());
        let task = tokio::spawn(run(
            pool,
            rx,
            hook.clone(),
            strategy,
            vault,
            fallbacks.clone(),
        ));
        Self {
            queue,
            task: Arc::new(Mutex::new(Some(task))),
            hook,
            fallbacks,
        }
    }
    /// Set the commit hook (once; later calls are ignored).
    pub(crate) fn set_hook(&self, hook: CommitHook) {
        let _ = self.hook.set(hook);
    }

    pub(crate) async fn submit(&self, req: SendRequest) -> Result<SendOutcome> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((req, tx))
            .await
            .map_err(|_| StoreError::ShuttingDown)?;
        rx.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// Stop taking sends. Sends already queued are answered `ShuttingDown`; acknowledged
    /// ones are stored.
    pub(crate) async fn stop(&self) {
        if let Some(t) = self.task.lock().await.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

async fn run(
    pool: AnyPool,
    mut rx: mpsc::Receiver<Job>,
    hook: Arc<std::sync::OnceLock<CommitHook>>,
    strategy: WriteStrategy,
    vault: Arc<Vault>,
    fallbacks: Arc<Fallbacks>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!("confidant_send_batch_size").record(batch.len() as f64);
        let reqs: Vec<&SendRequest> = batch.iter().map(|(r, _)| r).collect();
        // The sites' data keys are loaded (or made) before a connection is taken: sealing
        // inside the batch then needs no database round trip.
        let mut sites: Vec<SiteId> = batch.iter().map(|(r, _)| r.site_id).collect();
        sites.sort_unstable_by_key(|s| s.0);
        sites.dedup();
        let results = match vault.ensure(&sites).await {
            Ok(()) => store_batch(&pool, &reqs, strategy, &vault, &fallbacks).await,
            Err(e) => {
                tracing::error!(error = %e, "cannot load the data keys of a send batch");
                let text = e.to_string();
                reqs.iter()
                    .map(|_| Err(StoreError::Corrupt(text.clone())))
                    .collect()
            }
        };
        for ((_, reply), result) in batch.drain(..).zip(results) {
            if let (Ok(out), Some(hook)) = (&result, hook.get())
                && out.created
            {
                hook(out);
            }
            let _ = reply.send(result);
        }
    }
}

/// Store every send of the batch; one result per send, in order.
pub(crate) async fn store_batch(
    pool: &AnyPool,
    reqs: &[&SendRequest],
    strategy: WriteStrategy,
    vault: &Vault,
    fallbacks: &Fallbacks,
) -> Vec<Result<SendOutcome>> {
    let opening = match set_based(pool, reqs, strategy, vault).await {
        Ok(results) => return results,
        Err(fallback) => {
            note(fallbacks, &fallback, reqs.len());
            match fallback {
                Fallback::Opens(opening) => opening,
                _ => return one_by_one(pool, reqs, strategy, vault).await,
            }
        }
    };
    // Some sends go to a conversation the batch would open (a contact's first send): those go
    // one by one, and the others still go together. The two groups write to different
    // conversations, so neither group's order depends on the other's.
    let rest: Vec<usize> = (0..reqs.len()).filter(|i| !opening.contains(i)).collect();
    let pick = |idx: &[usize]| idx.iter().map(|&i| reqs[i]).collect::<Vec<_>>();
    let rest_results = together(pool, &pick(&rest), strategy, vault, fallbacks).await;
    let open_results = one_by_one(pool, &pick(&opening), strategy, vault).await;
    let mut results: Vec<Option<Result<SendOutcome>>> = (0..reqs.len()).map(|_| None).collect();
    for (&i, r) in rest
        .iter()
        .zip(rest_results)
        .chain(opening.iter().zip(open_results))
    {
        results[i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(StoreError::ShuttingDown)))
        .collect()
}

/// Sends that open no conversation: together, else one by one.
async fn together(
    pool: &AnyPool,
    reqs: &[&SendRequest],
    strategy: WriteStrategy,
    vault: &Vault,
    fallbacks: &Fallbacks,
) -> Vec<Result<SendOutcome>> {
    if reqs.is_empty() {
        return Vec::new();
    }
    match set_based(pool, reqs, strategy, vault).await {
        Ok(results) => results,
        Err(e) => {
            note(fallbacks, &e, reqs.len());
            one_by_one(pool, reqs, strategy, vault).await
        }
    }
}

/// The set-based path; with row locks, a batch that met another process's write is tried
/// once more with its conversations locked.
async fn set_based(
    pool: &AnyPool,
    reqs: &[&SendRequest],
    strategy: WriteStrategy,
    vault: &Vault,
) -> std::result::Result<Vec<Result<SendOutcome>>, Fallback> {
    let sql = strategy.sql();
    match (batch::store(pool, sql, reqs, vault).await, strategy) {
        (Err(Fallback::Changed), WriteStrategy::RowLocks) => {
            metrics::counter!("confidant_send_batch_conflicts_total").increment(1);
            batch::store_locked(pool, sql, reqs, vault).await
        }
        (other, _) => other,
    }
}

/// Count a fallback, and say why in the log where that helps.
fn note(fallbacks: &Fallbacks, fallback: &Fallback, jobs: usize) {
    fallbacks.count(FallbackReason::of(fallback));
    match fallback {
        Fallback::Unsupported | Fallback::Opens(_) => {}
        Fallback::Repeat => {
            tracing::debug!(
                jobs,
                "another process stored a send of the batch since its lookup; storing it send by send"
            );
        }
        Fallback::Changed => {
            tracing::debug!(
                jobs,
                "a conversation changed under the batch; storing it send by send"
            );
        }
        Fallback::Db(e) => {
            tracing::warn!(error = %e, jobs, "set-based batch failed; storing it send by send");
        }
    }
}

/// The one-by-one path: every send in turn, in one transaction.
pub(crate) async fn one_by_one(
    pool: &AnyPool,
    reqs: &[&SendRequest],
    strategy: WriteStrategy,
    vault: &Vault,
) -> Vec<Result<SendOutcome>> {
    if strategy == WriteStrategy::RowLocks {
        return with_savepoints(pool, reqs, strategy, vault).await;
    }
    match in_one_transaction(pool, reqs, vault).await {
        Ok(results) => results,
        Err(e) => {
            // Something failed after a write: nothing of the batch was committed. Store the
            // sends one by one so that the failure stays with the send that caused it.
            tracing::warn!(error = %e, jobs = reqs.len(), "send batch failed; retrying its sends one by one");
            let mut results = Vec::with_capacity(reqs.len());
            for req in reqs {
                results.extend(
                    with_savepoints(pool, std::slice::from_ref(req), strategy, vault).await,
                );
            }
            results
        }
    }
}

/// One writer: the whole batch in one transaction without savepoints. A send refused (not
/// found, closed) or answered (a repeat) wrote nothing; any failure fails the batch.
async fn in_one_transaction(
    pool: &AnyPool,
    reqs: &[&SendRequest],
    vault: &Vault,
) -> std::result::Result<Vec<Result<SendOutcome>>, Interrupted> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let mut results = Vec::with_capacity(reqs.len());
    for req in reqs {
        results.push(store_one(&mut tx, req, vault).await?);
    }
    tx.commit().await?;
    Ok(results)
}

/// A savepoint per send, so one failure fails alone. With row locks, every conversation the
/// batch may write to is locked first, in id order, as the set-based path does.
async fn with_savepoints(
    pool: &AnyPool,
    reqs: &[&SendRequest],
    strategy: WriteStrategy,
    vault: &Vault,
) -> Vec<Result<SendOutcome>> {
    let attempt = async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        if strategy == WriteStrategy::RowLocks {
            batch::conversations_of(&mut tx, batch::POSTGRES_LOCK, reqs).await?;
        }
        let mut results = Vec::with_capacity(reqs.len());
        for req in reqs {
            let mut tries = 0;
            let result = loop {
                tries += 1;
                let mut sp = tx.begin().await?;
                match store_one(&mut sp, req, vault).await {
                    Ok(result) => {
                        sp.commit().await?;
                        break result;
                    }
                    Err(Interrupted::Raced) if tries < ATTEMPTS => sp.rollback().await?,
                    Err(e) => {
                        sp.rollback().await?;
                        break Err(e.refusal().unwrap_or_else(StoreError::from));
                    }
                }
            };
            results.push(result);
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(results)
    };
    match attempt.await {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, jobs = reqs.len(), "send batch failed");
            // Every send of the batch fails with the one error (which is not `Clone`).
            let text = format!("batch failed: {e}");
            let unavailable = crate::is_unavailable(&e).then(|| Arc::new(e));
            reqs.iter()
                .map(|_| {
                    Err(match &unavailable {
                        Some(e) => StoreError::Unavailable(e.clone()),
                        None => StoreError::Db(sqlx::Error::Protocol(text.clone())),
                    })
                })
                .collect()
        }
    }
}

/// Why one send's write stopped; nothing of it may be kept.
#[derive(Debug)]
enum Interrupted {
    /// Another process wrote to the conversation since it was read: read and plan again.
    Raced,
    Db(sqlx::Error),
    /// A data key or a stored body that does not open.
    Vault(crate::VaultError),
}

impl From<crate::VaultError> for Interrupted {
    fn from(e: crate::VaultError) -> Self {
        Self::Vault(e)
    }
}

impl From<sqlx::Error> for Interrupted {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

impl Interrupted {
    /// A send refused by the attachment claim (migration 0007) is the send's own answer.
    fn refusal(self) -> std::result::Result<StoreError, Interrupted> {
        match self {
            Interrupted::Db(e) if crate::attachments::is_unavailable_attachment(&e) => {
                Ok(StoreError::Conflict("attachmentIds"))
            }
            other => Err(other),
        }
    }
}

impl From<Interrupted> for StoreError {
    fn from(e: Interrupted) -> Self {
        match e {
            Interrupted::Raced => StoreError::Db(sqlx::Error::Protocol(
                "conversation kept changing under the send".to_owned(),
            )),
            Interrupted::Db(e) => e.into(),
            Interrupted::Vault(e) => e.into(),
        }
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupted::Raced => f.write_str("a conversation changed under the send"),
            Interrupted::Db(e) => e.fmt(f),
            Interrupted::Vault(e) => e.fmt(f),
        }
    }
}

/// One send: read what the planner needs for it, plan it, write its step. The outer error
/// means the write stopped part-way (the caller rolls back); the inner one is the send's answer.
async fn store_one(
    conn: &mut AnyConnection,
    req: &SendRequest,
    vault: &Vault,
) -> std::result::Result<Result<SendOutcome>, Interrupted> {
    let known = read_for(conn, req, vault).await?;
    let Some(step) = plan::plan(&known, &[req]).steps.pop() else {
        return Ok(Err(StoreError::NotFound));
    };
    if let Step::Store(out) = &step {
        let read = known
            .conversations
            .get(&out.conversation.conversation_id)
            .map(|c| c.last_seq);
        write(conn, out, read, vault).await?;
    }
    Ok(step.into_result())
}

/// What planning one send needs: the conversation it names, the contact's open conversation
/// when the send may go there, the earlier sends with its `clientMessageId` in those, and the
/// last message of a closed conversation a close names.
async fn read_for(
    conn: &mut AnyConnection,
    req: &SendRequest,
    vault: &Vault,
) -> std::result::Result<Known, Interrupted> {
    let site = req.site_id.0;
    let mut known = Known::default();
    let named = match &req.target {
        SendTarget::Agent { conversation_id } | SendTarget::Close { conversation_id } => {
            Some(*conversation_id)
        }
        SendTarget::Contact {
            conversation_id, ..
        } => *conversation_id,
    };
    let named = match named {
        Some(c) => Some(
            sqlx::query(concat!(
                "SELECT ",
                conv_cols!(),
                " FROM conversations WHERE conversation_id = $1 AND site_id = $2"
            ))
            .bind(c.to_string())
            .bind(site)
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| ConversationRow::from_row(&r))
            .transpose()?,
        ),
        None => None,
    };
    let mut candidates: Vec<ConversationId> = Vec::new();
    if let Some(Some(c)) = &named {
        candidates.push(c.conversation_id);
        known.add_conversation(c.clone());
    }
    match &req.target {
        SendTarget::Contact {
            messenger_id,
            contact_id,
            preview,
            ..
        } => {
            // The open conversation matters unless the send names one of its own that is open
            // (or one that is not its own: refused).
            let needs_open = match &named {
                None => true,
                Some(None) => false,
                Some(Some(c)) => plan::owns(c, req) && !c.open,
            };
            if needs_open {
                let open = sqlx::query(concat!(
                    "SELECT ",
                    conv_cols!(),
                    " FROM conversations WHERE messenger_id = $1 AND contact_id = $2 \
                     AND preview = $3 AND status = 'open' AND site_id = $4"
                ))
                .bind(messenger_id.to_string())
                .bind(contact_id.to_string())
                .bind(i64::from(*preview))
                .bind(site)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(r) = open {
                    let c = ConversationRow::from_row(&r)?;
                    candidates.push(c.conversation_id);
                    known.add_conversation(c);
                }
            }
        }
        SendTarget::Close { conversation_id } => {
            if let Some(Some(c)) = &named
                && !c.open
            {
                let last = sqlx::query(concat!(
                    "SELECT ",
                    msg_cols!(),
                    " FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT 1"
                ))
                .bind(conversation_id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(r) = last {
                    let mut m = MessageRow::from_row(&r)?;
                    vault.open_message(&mut m).await?;
                    known.last.insert(*conversation_id, m);
                }
            }
            candidates.clear();
        }
        SendTarget::Agent { .. } => {}
    }
    if let (Some(cmid), Some(&first)) = (&req.client_message_id, candidates.first()) {
        let second = candidates.get(1).copied().unwrap_or(first);
        let rows = sqlx::query(concat!(
            "SELECT ",
            msg_cols!(),
            " FROM messages WHERE conversation_id IN ($1, $2) AND sender_id = $3 \
             AND client_message_id = $4"
        ))
        .bind(first.to_string())
        .bind(second.to_string())
        .bind(req.sender_id.to_string())
        .bind(cmid)
        .fetch_all(&mut *conn)
        .await?;
        for r in &rows {
            let mut m = MessageRow::from_row(r)?;
            vault.open_message(&mut m).await?;
            known.add_earlier(m);
        }
    }
    Ok(known)
}

/// Write one planned message: the conversation it opens, or the move of the one it goes to
/// (guarded: still at the `last_seq` read, still open), then the message.
async fn write(
    conn: &mut AnyConnection,
    out: &SendOutcome,
    read_last_seq: Option<i64>,
    vault: &Vault,
) -> std::result::Result<(), Interrupted> {
    let c = &out.conversation;
    let status = if c.open { "open" } else { "closed" };
    let written = match read_last_seq {
        // The partial unique index makes a racing second insert (another process) do nothing.
        None => sqlx::query(
            "INSERT INTO conversations (conversation_id, site_id, messenger_id, contact_id, status, \
             preview, last_seq, contact_read_seq, agent_read_seq, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, $9) \
             ON CONFLICT (messenger_id, contact_id, preview) WHERE status = 'open' DO NOTHING",
        )
        .bind(c.conversation_id.to_string())
        .bind(c.site_id.0)
        .bind(c.messenger_id.to_string())
        .bind(c.contact_id.to_string())
        .bind(status)
        .bind(i64::from(c.preview))
        .bind(c.last_seq)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&mut *conn)
        .await?,
        // On PostgreSQL the UPDATE locks the row until commit (waiting for another writer's
        // commit first, then checking the row as that writer left it).
        Some(read) => sqlx::query(
            "UPDATE conversations SET last_seq = $2, updated_at = $3, status = $4 \
             WHERE conversation_id = $1 AND last_seq = $5 AND status = 'open'",
        )
        .bind(c.conversation_id.to_string())
        .bind(c.last_seq)
        .bind(c.updated_at)
        .bind(status)
        .bind(read)
        .execute(&mut *conn)
        .await?,
    };
    if written.rows_affected() != 1 {
        return Err(Interrupted::Raced);
    }
    let m = &out.message;
    let body = vault.seal_loaded(c.site_id, &message_place(m.message_id), m.body.as_bytes())?;
    let attachments = crate::attachments::sealed_column(vault, c.site_id, &m.attachments)?;
    let inserted = sqlx::query(
        "INSERT INTO messages (message_id, conversation_id, seq, sender_type, sender_id, \
         sender_name, body, client_message_id, created_at, attachments) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(m.message_id.to_string())
    .bind(m.conversation_id.to_string())
    .bind(m.seq)
    .bind(m.sender_type.as_str())
    .bind(m.sender_id.to_string())
    .bind(&m.sender_name)
    .bind(body)
    .bind(m.client_message_id.clone())
    .bind(m.created_at)
    .bind(attachments)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(Interrupted::Raced),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use confidant_core::{ConversationId, SiteId};

    use super::*;
    use crate::SenderType;
    use crate::batch::tests::{finish, stores};

    fn send(site: SiteId, f: &batch::tests::Fixture, cmid: &str) -> SendRequest {
        SendRequest {
            site_id: site,
            target: SendTarget::Contact {
                messenger_id: f.messenger,
                contact_id: f.contacts[0],
                preview: false,
                conversation_id: None,
            },
            sender_type: SenderType::Contact,
            sender_id: f.contacts[0].0,
            sender_name: "contact 0".into(),
            body: cmid.into(),
            client_message_id: Some(cmid.into()),
            now: 1_000,
            attachments: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_write_planned_on_a_stale_read_stores_nothing_and_the_send_is_planned_again() {
        for (backend, f) in stores().await {
            let first = f.store.send(send(f.site, &f, "a0")).await.expect("a0");
            let c = first.conversation.clone();
            let mut conn = f.store.write.acquire().await.expect("conn");
            // Planned as if the conversation were still empty (another writer stored a0 since).
            let stale = SendOutcome {
                message: MessageRow {
                    message_id: confidant_core::MessageId::new(),
                    seq: 1,
                    ..first.message.clone()
                },
                conversation: c.clone(),
                created: true,
                opened: false,
            };
            let raced = write(&mut conn, &stale, Some(0), &f.store.vault).await;
            assert!(matches!(raced, Err(Interrupted::Raced)), "{backend}");
            // Planned as a first send while the contact has an open conversation.
            let opening = SendOutcome {
                conversation: ConversationRow {
                    conversation_id: ConversationId::new(),
                    last_seq: 1,
                    ..c.clone()
                },
                ..stale.clone()
            };
            let raced = write(&mut conn, &opening, None, &f.store.vault).await;
            assert!(matches!(raced, Err(Interrupted::Raced)), "{backend}");
            drop(conn);
            let stored = f.store.messages(f.site, c.conversation_id, 0, 10).await;
            assert_eq!(
                stored.expect("messages").len(),
                1,
                "{backend}: nothing written"
            );
            // Read and planned again, the send lands after a0, and a repeat of a0 is answered.
            let reqs = [send(f.site, &f, "a1"), send(f.site, &f, "a0")];
            let refs: Vec<&SendRequest> = reqs.iter().collect();
            let out = with_savepoints(
                &f.store.write,
                &refs,
                WriteStrategy::of(f.store.backend()),
                &f.store.vault,
            )
            .await;
            let a1 = out[0].as_ref().expect("a1");
            assert_eq!((a1.message.seq, a1.created), (2, true), "{backend}");
            let a0 = out[1].as_ref().expect("a0 again");
            assert_eq!(
                (a0.message.message_id, a0.created),
                (first.message.message_id, false),
                "{backend}"
            );
            finish(f).await;
        }
    }

    #[tokio::test]
    async fn a_batch_holding_repeats_is_stored_as_one_batch() {
        for (backend, f) in stores().await {
            let send = |who: usize, cmid: &str| batch::tests::contact_send(&f, who, cmid, None);
            let a0 = f.store.send(send(0, "a0")).await.expect("a0");
            let b0 = f.store.send(send(1, "b0")).await.expect("b0");
            let before = f.store.send_fallbacks();
            // Queued together, so the writer takes the four as one batch: half of them repeat
            // a stored send, as a client's outbox does after a lost answer.
            let (a0_again, a1, b0_again, b1) = tokio::join!(
                f.store.send(send(0, "a0")),
                f.store.send(send(0, "a1")),
                f.store.send(send(1, "b0")),
                f.store.send(send(1, "b1")),
            );
            assert_eq!(
                f.store.send_fallbacks(),
                before,
                "{backend}: nothing went one by one"
            );
            let answer = |r: &Result<SendOutcome>| {
                let o = r.as_ref().expect("stored or answered");
                (o.message.message_id, o.message.seq, o.created)
            };
            assert_eq!(
                answer(&a0_again),
                (a0.message.message_id, 1, false),
                "{backend}"
            );
            assert_eq!(
                answer(&b0_again),
                (b0.message.message_id, 1, false),
                "{backend}"
            );
            assert_eq!((answer(&a1).1, answer(&a1).2), (2, true), "{backend}");
            assert_eq!((answer(&b1).1, answer(&b1).2), (2, true), "{backend}");
            for (conv, want) in [(&a0, ["a0", "a1"]), (&b0, ["b0", "b1"])] {
                let stored = batch::tests::seqs(&f, &conv.conversation.conversation_id).await;
                assert_eq!(
                    stored,
                    [(1, want[0].to_owned()), (2, want[1].to_owned())],
                    "{backend}"
                );
            }
            // The count is live: a contact's first send still goes one by one.
            f.store.send(send(2, "c0")).await.expect("c0");
            let opens = |counts: &[(FallbackReason, u64)]| {
                counts
                    .iter()
                    .find(|(r, _)| *r == FallbackReason::Opens)
                    .map(|(_, n)| *n)
            };
            assert_eq!(
                opens(&f.store.send_fallbacks()),
                opens(&before).map(|n| n + 1),
                "{backend}"
            );
            finish(f).await;
        }
    }

    #[tokio::test]
    async fn first_sends_go_one_by_one_and_the_rest_of_their_batch_together() {
        for (backend, f) in stores().await {
            let a = f
                .store
                .send(batch::tests::contact_send(&f, 0, "a0", None))
                .await
                .expect("a0");
            let ca = a.conversation.conversation_id;
            // Contact 2 has no conversation yet: its send and the repeat of it open one.
            let jobs = [
                batch::tests::contact_send(&f, 0, "a1", None),
                batch::tests::contact_send(&f, 2, "c0", None),
                batch::tests::agent_send(f.site, &ca, "r1"),
                batch::tests::contact_send(&f, 2, "c0", None),
                batch::tests::contact_send(&f, 0, "a2", Some(&ca)),
            ];
            let refs: Vec<&SendRequest> = jobs.iter().collect();
            let Err(Fallback::Opens(opening)) = batch::store(
                &f.store.write,
                batch::tests::sql(&f.store),
                &refs,
                &f.store.vault,
            )
            .await
            else {
                panic!("{backend}: the batch did not name its opening sends");
            };
            assert_eq!(opening, [1, 3], "{backend}");
            let out = store_batch(
                &f.store.write,
                &refs,
                WriteStrategy::of(f.store.backend()),
                &f.store.vault,
                &Fallbacks::default(),
            )
            .await;
            let ok = |i: usize| out[i].as_ref().expect("stored");
            assert_eq!(
                [0, 2, 4].map(|i| (ok(i).message.seq, ok(i).created)),
                [(2, true), (3, true), (4, true)],
                "{backend}"
            );
            assert!(ok(1).opened && ok(1).created, "{backend}");
            assert_eq!(ok(1).message.seq, 1, "{backend}");
            assert_eq!(
                ok(3).message.message_id,
                ok(1).message.message_id,
                "{backend}"
            );
            assert!(!ok(3).created, "{backend}");
            assert_eq!(batch::tests::seqs(&f, &ca).await.len(), 4, "{backend}");
            let cc = &ok(1).conversation.conversation_id;
            assert_eq!(
                batch::tests::seqs(&f, cc).await,
                [(1, "c0".to_owned())],
                "{backend}"
            );
            finish(f).await;
        }
    }
}
