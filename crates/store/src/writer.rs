//! The batching writer for sends.
//!
//! Durability costs one fsync per commit, so sends that arrive together share one: the writer
//! takes every send waiting in its queue, stores them as one batch and answers them all after
//! the commit, one batch at a time. The next batch gathers while one is being stored, so under
//! load batches grow instead of commits multiplying. (On PostgreSQL, several batches in flight
//! or several writers per process were measured slower: smaller batches cost more round trips
//! and commits per send, and batches sharing a conversation wait on each other's row locks.)
//! Other processes write beside this one; row locks keep `seq` gapless across them.

use std::sync::Arc;

use confidant_core::{ContactId, ConversationId, MessageId, MessengerId};
use sqlx::{AnyConnection, AnyPool, Connection as _};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::batch::{self, Fallback};
use sqlx::FromRow as _;

use crate::conversations::fetch_conversation;
use crate::{
    ConversationRow, MessageRow, Result, SendOutcome, SendRequest, SendTarget, StoreError,
};

const MAX_BATCH: usize = 256;
const QUEUE: usize = 4096;

pub(crate) type Job = (SendRequest, oneshot::Sender<Result<SendOutcome>>);

/// Called with every stored send, in commit order, before the sender hears back.
pub type CommitHook = Arc<dyn Fn(&SendOutcome) + Send + Sync>;

#[derive(Clone)]
pub(crate) struct SendWriter {
    queue: mpsc::Sender<Job>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    hook: Arc<std::sync::OnceLock<CommitHook>>,
}

impl SendWriter {
    /// `single_writer`: the database has one writer (SQLite), so batches need no locks and no
    /// savepoints.
    pub(crate) fn start(pool: AnyPool, single_writer: bool) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let hook = Arc::new(std::sync::OnceLock::new());
        let task = tokio::spawn(run(pool, rx, hook.clone(), single_writer));
        Self {
            queue,
            task: Arc::new(Mutex::new(Some(task))),
            hook,
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
    single_writer: bool,
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
        let results = store_batch(&pool, &batch, single_writer).await;
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

/// Store every job of the batch in one transaction; one result per job, in order.
pub(crate) async fn store_batch(
    pool: &AnyPool,
    batch: &[Job],
    single_writer: bool,
) -> Vec<Result<SendOutcome>> {
    let sql = if single_writer {
        &batch::SQLITE
    } else {
        &batch::POSTGRES
    };
    let reqs: Vec<&SendRequest> = batch.iter().map(|(r, _)| r).collect();
    let opening = match set_based(pool, sql, &reqs, single_writer).await {
        Ok(results) => return results,
        Err(Fallback::Opens(opening)) => opening,
        Err(other) => {
            explain(&other, reqs.len());
            return one_by_one(pool, &reqs, single_writer).await;
        }
    };
    // Some sends open a conversation (a contact's first send): those go one by one, and the
    // others still go together. The two groups write to different conversations (a send is in
    // the first group exactly when its contact has no open conversation to go to), so neither
    // group's order depends on the other's.
    let rest: Vec<usize> = (0..reqs.len()).filter(|i| !opening.contains(i)).collect();
    let pick = |idx: &[usize]| idx.iter().map(|&i| reqs[i]).collect::<Vec<_>>();
    let rest_results = together(pool, sql, &pick(&rest), single_writer).await;
    let open_results = one_by_one(pool, &pick(&opening), single_writer).await;
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
    sql: &batch::BatchSql,
    reqs: &[&SendRequest],
    single_writer: bool,
) -> Vec<Result<SendOutcome>> {
    if reqs.is_empty() {
        return Vec::new();
    }
    match set_based(pool, sql, reqs, single_writer).await {
        Ok(results) => results,
        Err(e) => {
            explain(&e, reqs.len());
            one_by_one(pool, reqs, single_writer).await
        }
    }
}

/// The set-based path; on PostgreSQL, a batch that met another process's write is tried
/// once more with its conversations locked.
async fn set_based(
    pool: &AnyPool,
    sql: &batch::BatchSql,
    reqs: &[&SendRequest],
    single_writer: bool,
) -> std::result::Result<Vec<Result<SendOutcome>>, Fallback> {
    match batch::store(pool, sql, reqs).await {
        Err(Fallback::Changed) if !single_writer => {
            metrics::counter!("confidant_send_batch_conflicts_total").increment(1);
            batch::store_locked(pool, sql, reqs).await
        }
        other => other,
    }
}

fn explain(fallback: &Fallback, jobs: usize) {
    match fallback {
        Fallback::Unsupported | Fallback::Opens(_) => {}
        Fallback::Repeat => {
            tracing::debug!(
                jobs,
                "the batch repeats a stored send; storing it send by send"
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
async fn one_by_one(
    pool: &AnyPool,
    reqs: &[&SendRequest],
    single_writer: bool,
) -> Vec<Result<SendOutcome>> {
    if !single_writer {
        return store_batch_savepoints(pool, reqs, true).await;
    }
    match store_batch_plain(pool, reqs).await {
        Ok(results) => results,
        Err(e) => {
            // Something failed after a write: nothing of the batch was committed. Store the
            // sends one by one so that the failure stays with the send that caused it.
            tracing::warn!(error = %e, jobs = reqs.len(), "send batch failed; retrying its sends one by one");
            let mut results = Vec::with_capacity(reqs.len());
            for req in reqs {
                results
                    .extend(store_batch_savepoints(pool, std::slice::from_ref(req), false).await);
            }
            results
        }
    }
}

/// One writer (SQLite): the whole batch in one transaction without savepoints. A send refused
/// before it wrote anything (not found, closed) fails alone; a database error fails the batch.
async fn store_batch_plain(
    pool: &AnyPool,
    batch: &[&SendRequest],
) -> Result<Vec<Result<SendOutcome>>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for req in batch {
        match store_one(&mut tx, req, false).await {
            Err(StoreError::Db(e)) => return Err(e),
            other => results.push(other),
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// A savepoint per send, so one failure fails alone. `lock_first` (PostgreSQL): lock every
/// conversation the batch may write to in id order before the first send, as the set-based
/// path does, so that two processes' batches never wait on each other in a cycle.
async fn store_batch_savepoints(
    pool: &AnyPool,
    batch: &[&SendRequest],
    lock_first: bool,
) -> Vec<Result<SendOutcome>> {
    let attempt = async {
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        if lock_first {
            batch::conversations_of(&mut tx, batch::POSTGRES_LOCK, batch).await?;
        }
        let mut results = Vec::with_capacity(batch.len());
        for req in batch {
            let mut sp = tx.begin().await?;
            match store_one(&mut sp, req, true).await {
                Ok(out) => {
                    sp.commit().await?;
                    results.push(Ok(out));
                }
                Err(StoreError::Duplicate(found)) => {
                    sp.rollback().await?;
                    let (message, conversation) = *found;
                    results.push(Ok(SendOutcome {
                        message,
                        conversation,
                        created: false,
                        opened: false,
                    }));
                }
                Err(e) => {
                    sp.rollback().await?;
                    results.push(Err(e));
                }
            }
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(results)
    };
    match attempt.await {
        Ok(results) => results,
        Err(e) => {
            tracing::error!(error = %e, jobs = batch.len(), "send batch failed");
            // Every send of the batch fails with the one error (which is not `Clone`).
            let text = format!("batch failed: {e}");
            let unavailable = crate::is_unavailable(&e).then(|| Arc::new(e));
            batch
                .iter()
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

/// `locked` is true when other writers may race (PostgreSQL): idempotency is then checked
/// again after the conversation row is locked. With one writer (SQLite) the check before the
/// write is enough, and a batch needs no savepoints.
async fn store_one(
    conn: &mut AnyConnection,
    req: &SendRequest,
    locked: bool,
) -> Result<SendOutcome> {
    let site = req.site_id.0;
    match &req.target {
        SendTarget::Contact {
            messenger_id,
            contact_id,
            preview,
            conversation_id,
        } => {
            if let Some(cid) = conversation_id {
                let named = fetch_conversation(&mut *conn, site, *cid)
                    .await?
                    .filter(|c| batch::owns(c, req))
                    .ok_or(StoreError::NotFound)?;
                if let Some(m) = find_idempotent(conn, *cid, req).await? {
                    return Ok(SendOutcome {
                        message: m,
                        conversation: named,
                        created: false,
                        opened: false,
                    });
                }
                if named.open {
                    return append(conn, req, named, false, locked).await;
                }
                // A closed conversation: the send goes to the contact's open one, or a new one.
            }
            let (conv, opened) =
                open_conversation(conn, req, *messenger_id, *contact_id, *preview).await?;
            // The other paths checked idempotency already; here, with one writer, this check
            // is the only one (with several, `append` checks under the row lock). A conversation
            // opened just now has no messages.
            if !locked
                && !opened
                && let Some(m) = find_idempotent(conn, conv.conversation_id, req).await?
            {
                return Ok(SendOutcome {
                    message: m,
                    conversation: conv,
                    created: false,
                    opened: false,
                });
            }
            append(conn, req, conv, opened, locked).await
        }
        SendTarget::Agent {
            conversation_id, ..
        } => {
            let conv = fetch_conversation(&mut *conn, site, *conversation_id)
                .await?
                .ok_or(StoreError::NotFound)?;
            if let Some(m) = find_idempotent(conn, *conversation_id, req).await? {
                return Ok(SendOutcome {
                    message: m,
                    conversation: conv,
                    created: false,
                    opened: false,
                });
            }
            if !conv.open {
                return Err(StoreError::Closed);
            }
            append(conn, req, conv, false, locked).await
        }
        SendTarget::Close {
            conversation_id, ..
        } => {
            let conv = fetch_conversation(&mut *conn, site, *conversation_id)
                .await?
                .ok_or(StoreError::NotFound)?;
            if !conv.open {
                let last = sqlx::query(concat!(
                    "SELECT ",
                    msg_cols!(),
                    " FROM messages WHERE conversation_id = $1 ORDER BY seq DESC LIMIT 1"
                ))
                .bind(conversation_id.to_string())
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(StoreError::NotFound)?;
                return Ok(SendOutcome {
                    message: MessageRow::from_row(&last)?,
                    conversation: conv,
                    created: false,
                    opened: false,
                });
            }
            let out = append(conn, req, conv, false, locked).await?;
            let row = sqlx::query(concat!("UPDATE conversations SET status = 'closed' WHERE conversation_id = $1 AND site_id = $2 RETURNING ", conv_cols!()))
            .bind(conversation_id.to_string())
            .bind(site)
            .fetch_one(&mut *conn)
            .await?;
            Ok(SendOutcome {
                conversation: ConversationRow::from_row(&row)?,
                ..out
            })
        }
    }
}

async fn find_idempotent(
    conn: &mut AnyConnection,
    conversation_id: ConversationId,
    req: &SendRequest,
) -> Result<Option<MessageRow>> {
    let Some(cmid) = &req.client_message_id else {
        return Ok(None);
    };
    let row = sqlx::query(concat!(
        "SELECT ",
        msg_cols!(),
        " FROM messages WHERE conversation_id = $1 AND sender_id = $2 AND client_message_id = $3"
    ))
    .bind(conversation_id.to_string())
    .bind(req.sender_id.to_string())
    .bind(cmid)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(MessageRow::from_row).transpose()?)
}

/// The contact's open conversation in the messenger, opening one if there is none.
async fn open_conversation(
    conn: &mut AnyConnection,
    req: &SendRequest,
    messenger_id: MessengerId,
    contact_id: ContactId,
    preview: bool,
) -> Result<(ConversationRow, bool)> {
    let (messenger_id, contact_id) = (messenger_id.to_string(), contact_id.to_string());
    const FIND: &str = concat!(
        "SELECT ",
        conv_cols!(),
        " FROM conversations WHERE messenger_id = $1 AND contact_id = $2 AND preview = $3 AND status = 'open' AND site_id = $4"
    );
    let existing = sqlx::query(FIND)
        .bind(&messenger_id)
        .bind(&contact_id)
        .bind(i64::from(preview))
        .bind(req.site_id.0)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(row) = existing {
        return Ok((ConversationRow::from_row(&row)?, false));
    }
    // The partial unique index makes a racing second insert (another process) do nothing.
    let inserted = sqlx::query(concat!("INSERT INTO conversations (conversation_id, site_id, messenger_id, contact_id, status, preview, last_seq, \
         contact_read_seq, agent_read_seq, created_at, updated_at) VALUES ($1, $2, $3, $4, 'open', $5, 0, 0, 0, $6, $6) \
         ON CONFLICT (messenger_id, contact_id, preview) WHERE status = 'open' DO NOTHING RETURNING ", conv_cols!()))
    .bind(ConversationId::new().to_string())
    .bind(req.site_id.0)
    .bind(&messenger_id)
    .bind(&contact_id)
    .bind(i64::from(preview))
    .bind(req.now)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = inserted {
        return Ok((ConversationRow::from_row(&row)?, true));
    }
    let row = sqlx::query(FIND)
        .bind(&messenger_id)
        .bind(&contact_id)
        .bind(i64::from(preview))
        .bind(req.site_id.0)
        .fetch_one(&mut *conn)
        .await?;
    Ok((ConversationRow::from_row(&row)?, false))
}

/// Take the next seq (the UPDATE locks the conversation row until commit), check idempotency
/// again under that lock, and store the message.
async fn append(
    conn: &mut AnyConnection,
    req: &SendRequest,
    conv: ConversationRow,
    opened: bool,
    locked: bool,
) -> Result<SendOutcome> {
    let row = sqlx::query(concat!("UPDATE conversations SET last_seq = last_seq + 1, updated_at = $2 WHERE conversation_id = $1 RETURNING ", conv_cols!()))
    .bind(conv.conversation_id.to_string())
    .bind(req.now)
    .fetch_one(&mut *conn)
    .await?;
    let next = ConversationRow::from_row(&row)?;
    if locked && let Some(m) = find_idempotent(conn, conv.conversation_id, req).await? {
        // Another process stored it while we waited for the lock; our seq is rolled back
        // with the savepoint.
        return Err(StoreError::Duplicate(Box::new((m, conv))));
    }
    let conv = next;
    let id = MessageId::new().to_string();
    let row = sqlx::query(concat!("INSERT INTO messages (message_id, conversation_id, seq, sender_type, sender_id, sender_name, body, client_message_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ", msg_cols!()))
    .bind(&id)
    .bind(conv.conversation_id.to_string())
    .bind(conv.last_seq)
    .bind(req.sender_type.as_str())
    .bind(req.sender_id.to_string())
    .bind(&req.sender_name)
    .bind(&req.body)
    .bind(req.client_message_id.clone())
    .bind(req.now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(SendOutcome {
        message: MessageRow::from_row(&row)?,
        conversation: conv,
        created: true,
        opened,
    })
}
