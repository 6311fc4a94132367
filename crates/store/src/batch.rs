//! Set-based storing of a batch of sends: a fixed number of statements per batch, whatever
//! its size.
//!
//! Storing sends one by one costs four statements each, and every statement is a round trip
//! (to SQLite's worker thread, or to PostgreSQL over the socket). Here the batch's jobs travel
//! as one JSON array that the database expands itself (`json_each` in SQLite,
//! `json_to_recordset` in PostgreSQL), so a batch is two statements on either backend:
//!
//! 1. One lookup: the conversations the jobs name by id and the open ones by (messenger,
//!    contact, preview), each with the stored messages that jobs repeat in it (a repeated
//!    `clientMessageId`: what a client's outbox sends again after a lost answer or a restart).
//! 2. One write: the fresh messages. On SQLite a trigger moves `last_seq` with the insert, so
//!    the insert is the batch's one write and needs no explicit transaction (this process's
//!    one connection is the only writer). On PostgreSQL the statement also moves each
//!    conversation's `last_seq` from the value read to the new one (a data-modifying CTE,
//!    guarded: it fails whole if another process moved or closed a conversation in between);
//!    no `BEGIN`/`COMMIT`. A batch refused that way is tried once more in a transaction whose
//!    lookup locks the rows in id order (`store_locked`, four round trips).
//!
//! (Measured under load: each statement is a 100–600 µs hop to SQLite's worker thread, the
//! commit's fsync 0.1–1 ms; PostgreSQL's rate is bound by the batch's round trips.)
//!
//! The rules are the planner's (plan.rs), which the one-by-one path uses too: a send to an
//! unknown conversation fails alone, a repeated `clientMessageId` answers the stored message
//! (also when the first one is earlier in the same batch), `seq` stays gapless. The unique
//! indexes stay the last word on repeats: a send that another process stores between the
//! lookup and the write makes the whole write fail (`Fallback::Repeat`; on PostgreSQL the
//! guard sees that send's move of `last_seq` first: `Fallback::Changed`). Closes are not
//! handled here, nor sends into a conversation the plan opens (the batch names them back, and
//! the writer stores them one by one and the others together). In all of these cases, and
//! anything else this path did not expect (a database error, a conversation another process
//! closed under the batch), it returns `Err`, nothing of the batch is committed, and the
//! caller stores the batch (or those sends) another way.

use std::collections::HashMap;

use confidant_core::ConversationId;
use serde_json::json;
use sqlx::{AnyConnection, AnyPool, Connection as _, FromRow as _};

use crate::plan::{self, Known, Plan, Step};
use crate::vault::{Vault, message_place};
use crate::{ConversationRow, MessageRow, Result, SendOutcome, SendRequest, SendTarget};

/// The statements of a batch for one backend; `$1` of a lookup is the batch's jobs
/// (`lookup_jobs`).
pub(crate) struct BatchSql {
    /// Per job, every existing conversation it names or may go to (a contact's open one), each
    /// with the stored message the job repeats there, if any (`m_*` columns, else empty). The
    /// idempotency probes cost a few µs per job (measured 8 jobs: SQLite 17 → 37 µs of CPU,
    /// PostgreSQL 70 → 130 µs with the round trip); a repeat answered here saves the batch.
    lookup: &'static str,
    /// The same, locking the conversations in id order (PostgreSQL's `store_locked`). SQLite's
    /// one writer needs no locks: there it is `lookup`.
    locking: &'static str,
    write: Write,
}

#[derive(Clone, Copy)]
enum Write {
    /// The messages ($1); a trigger moves the conversations (SQLite, one writer).
    Insert(&'static str),
    /// The messages ($1) and the conversations' moves ($2, $3), guarded (`POSTGRES_WRITE`).
    Guarded(&'static str),
}

// The statements differ per backend in how they expand the JSON array, and PostgreSQL gets
// its lookups as `= ANY (ARRAY(...))` and `LATERAL` subqueries: a join against a set-returning
// function is planned for 100 rows and, on a young table, as a hash join over a sequential scan
// of `messages` (the `LIMIT 1` keeps a lateral subquery from being flattened into that join:
// each lookup is unique anyway). These forms are index lookups per element whatever the
// statistics say. SQLite gets the same from a `CROSS JOIN`, which keeps the jobs as the outer
// loop: with a plain join (or a CTE of the keys), SQLite 3.51 scanned all of `messages`.

/// The stored message that job `$job` (with `s` and `k`) repeats in conversation `c`, as `m`.
macro_rules! repeated_in_c {
    ($job:literal) => {
        concat!(
            " LEFT JOIN LATERAL (SELECT * FROM messages WHERE conversation_id = c.conversation_id \
             AND sender_id = ",
            $job,
            ".s AND client_message_id = ",
            $job,
            ".k LIMIT 1) AS m ON true"
        )
    };
}

/// The messages' columns, as the write inserts them.
macro_rules! message_columns {
    () => {
        "INSERT INTO messages (message_id, conversation_id, seq, sender_type, sender_id, \
         sender_name, body, client_message_id, created_at, attachments) "
    };
}

/// SQLite: `jsonb_each` hands each row over as JSONB, which `->>` reads in place. (With
/// `json_each`, every `->>` turned the row back into text and parsed it again: ten times a
/// row, a third of the process's instructions per send, measured with callgrind.)
const SQLITE_INSERT: &str = concat!(
    message_columns!(),
    "SELECT j.value ->> 'i', j.value ->> 'c', CAST(j.value ->> 'q' AS BIGINT), j.value ->> 't', \
     j.value ->> 's', j.value ->> 'n', j.value ->> 'b', j.value ->> 'k', \
     CAST(j.value ->> 'a' AS BIGINT), j.value ->> 'f' FROM jsonb_each($1) AS j"
);

/// PostgreSQL: the rows as typed columns, parsed once (`->>` on a `json` value parses it
/// again for every field).
macro_rules! postgres_rows {
    () => {
        "SELECT j.i, j.c, j.q, j.t, j.s, j.n, j.b, j.k, j.a, j.f FROM json_to_recordset($1::json) \
         AS j(i text, c text, q bigint, t text, s text, n text, b text, k text, a bigint, f text)"
    };
}

/// PostgreSQL's whole write, as one statement in its own transaction (one round trip, no
/// BEGIN/COMMIT): move each conversation's `last_seq` from the value the batch read ($2: `o`)
/// to its new one (`q`) if it is still open, insert the messages ($1), and fail the statement
/// (a division by zero, so everything is rolled back) unless every conversation ($3 of them)
/// moved. Another process that wrote to or closed one of them in between makes the batch go
/// one by one; a row another process holds locked is waited for, then checked.
const POSTGRES_WRITE: &str = concat!(
    "WITH moves AS MATERIALIZED (SELECT * FROM json_to_recordset($2::json) \
     AS e(c text, o bigint, q bigint, a bigint)), \
     advanced AS (UPDATE conversations SET last_seq = moves.q, updated_at = moves.a FROM moves \
     WHERE conversations.conversation_id = moves.c AND conversations.conversation_id = \
     ANY (ARRAY(SELECT c FROM moves)) AND conversations.last_seq = moves.o \
     AND conversations.status = 'open' RETURNING conversations.conversation_id), \
     inserted AS (",
    message_columns!(),
    postgres_rows!(),
    ") SELECT 1 / (CASE WHEN (SELECT count(*) FROM advanced) = $3 THEN 1 ELSE 0 END) AS moved"
);

/// SQLSTATE division_by_zero: `POSTGRES_WRITE` found a conversation changed.
const CHANGED_UNDER_THE_BATCH: &str = "22012";

/// SQLite's lookup. Each job's conversations are found through both indexes at once (a
/// multi-index OR: a conversation both named and open is one row).
const SQLITE_LOOKUP: &str = concat!(
    "SELECT ",
    conv_cols_c!(),
    ", ",
    last_msg_cols_m!(),
    " FROM jsonb_each($1) AS j CROSS JOIN conversations c ON c.conversation_id = j.value ->> 'c' \
     OR (c.messenger_id = j.value ->> 'm' AND c.contact_id = j.value ->> 't' \
     AND c.preview = j.value ->> 'p' AND c.status = 'open') \
     LEFT JOIN messages m ON m.conversation_id = c.conversation_id \
     AND m.sender_id = j.value ->> 's' AND m.client_message_id = j.value ->> 'k'"
);

pub(crate) const SQLITE: BatchSql = BatchSql {
    lookup: SQLITE_LOOKUP,
    locking: SQLITE_LOOKUP,
    write: Write::Insert(SQLITE_INSERT),
};

/// The jobs (`lookup_jobs`) as typed columns, parsed once.
macro_rules! postgres_jobs {
    () => {
        "json_to_recordset($1::json) AS j(c text, m text, t text, p bigint, s text, k text)"
    };
}

/// PostgreSQL's lookup: per job, its named conversation and (if another) the contact's open one.
const POSTGRES_LOOKUP: &str = concat!(
    "SELECT ",
    conv_cols_c!(),
    ", ",
    last_msg_cols_m!(),
    " FROM ",
    postgres_jobs!(),
    " CROSS JOIN LATERAL (SELECT ",
    conv_cols!(),
    " FROM conversations WHERE conversation_id = j.c UNION ALL (SELECT ",
    conv_cols!(),
    " FROM conversations WHERE messenger_id = j.m AND contact_id = j.t AND preview = j.p \
     AND status = 'open' AND conversation_id IS DISTINCT FROM j.c LIMIT 1)) AS c",
    repeated_in_c!("j")
);

/// The lookup that locks the conversations first, in id order (`ORDER BY` sorts before
/// `FOR UPDATE` locks; the one-by-one path takes these locks too, so that two processes'
/// batches never wait on each other in a cycle). The rows come from the locked versions (a
/// second read of `conversations` would see the statement's older snapshot), joined to the
/// jobs by equality (hash joins: a batch of 256 jobs over 200 conversations stays ~4 ms).
pub(crate) const POSTGRES_LOCK: &str = concat!(
    "WITH j AS (SELECT * FROM ",
    postgres_jobs!(),
    "), c AS MATERIALIZED (SELECT ",
    conv_cols!(),
    " FROM conversations WHERE conversation_id = ANY (ARRAY(SELECT j.c FROM j \
     WHERE j.c IS NOT NULL UNION ALL SELECT o.conversation_id FROM j CROSS JOIN LATERAL \
     (SELECT conversation_id FROM conversations WHERE messenger_id = j.m AND contact_id = j.t \
     AND preview = j.p AND status = 'open' LIMIT 1) AS o)) ORDER BY conversation_id FOR UPDATE), \
     jc AS (SELECT j.s, j.k, c.* FROM j JOIN c ON c.conversation_id = j.c UNION ALL \
     SELECT j.s, j.k, c.* FROM j JOIN c ON c.messenger_id = j.m AND c.contact_id = j.t \
     AND c.preview = j.p AND c.status = 'open' AND c.conversation_id IS DISTINCT FROM j.c) \
     SELECT ",
    conv_cols_c!(),
    ", ",
    last_msg_cols_m!(),
    " FROM jc AS c",
    repeated_in_c!("c")
);

pub(crate) const POSTGRES: BatchSql = BatchSql {
    lookup: POSTGRES_LOOKUP,
    locking: POSTGRES_LOCK,
    write: Write::Guarded(POSTGRES_WRITE),
};

/// Why the set-based path gave the batch back.
pub(crate) enum Fallback {
    /// The batch holds a kind of job this path does not store (a close).
    Unsupported,
    /// A conversation changed under the batch (another process closed it).
    Changed,
    /// These jobs (indexes into the batch) go to a conversation the plan opens: a contact's
    /// first send (or one to a closed conversation when there is no open one), and any send
    /// of the batch into that new conversation.
    Opens(Vec<usize>),
    /// A unique index refused the insert: one of the sends (or another into the same
    /// conversation) was stored between the lookup and the write. Nothing of the batch was
    /// written.
    Repeat,
    Db(sqlx::Error),
}

impl From<crate::VaultError> for Fallback {
    fn from(e: crate::VaultError) -> Self {
        Self::Db(sqlx::Error::Protocol(e.to_string()))
    }
}

impl From<sqlx::Error> for Fallback {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// Store the batch with a fixed number of statements; one result per job, in order.
pub(crate) async fn store(
    pool: &AnyPool,
    sql: &BatchSql,
    batch: &[&SendRequest],
    vault: &Vault,
) -> std::result::Result<Vec<Result<SendOutcome>>, Fallback> {
    if batch
        .iter()
        .any(|r| matches!(r.target, SendTarget::Close { .. }))
    {
        return Err(Fallback::Unsupported);
    }
    // One write statement, so no explicit transaction: on SQLite the lookup cannot go stale
    // before the insert (this writer is the only one), and if it did, the unique indexes
    // would refuse it; on PostgreSQL the write checks that nothing moved (`POSTGRES_WRITE`).
    let mut conn = pool.acquire().await?;
    plan_and_write(&mut conn, sql, batch, false, vault).await
}

/// PostgreSQL, after `store` found a conversation moved by another process: the same in a
/// transaction whose lookup locks the conversations (in id order), so the other process waits
/// instead of both retrying. Four round trips instead of two.
pub(crate) async fn store_locked(
    pool: &AnyPool,
    sql: &BatchSql,
    batch: &[&SendRequest],
    vault: &Vault,
) -> std::result::Result<Vec<Result<SendOutcome>>, Fallback> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let results = plan_and_write(&mut tx, sql, batch, true, vault).await?;
    tx.commit().await?;
    Ok(results)
}

async fn plan_and_write(
    tx: &mut AnyConnection,
    sql: &BatchSql,
    batch: &[&SendRequest],
    lock_rows: bool,
    vault: &Vault,
) -> std::result::Result<Vec<Result<SendOutcome>>, Fallback> {
    let lookup = if lock_rows { sql.locking } else { sql.lookup };
    let known = look_up(tx, lookup, batch, vault).await?;
    // A send into a conversation the plan opens (a contact's first send, or a repeat of it)
    // is stored the one-by-one way, which inserts the conversation before its first message:
    // the batch names them back.
    let plan = plan::plan(&known, batch);
    let opening: Vec<usize> = plan
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.conversation().is_some_and(|c| plan.opened.contains(&c)))
        .map(|(i, _)| i)
        .collect();
    if !opening.is_empty() {
        return Err(Fallback::Opens(opening));
    }
    write(tx, sql.write, &known, &plan, vault).await?;
    Ok(plan.steps.into_iter().map(Step::into_result).collect())
}

/// What the planner needs of the database for the batch, in one statement: the
/// conversations, and the stored messages that jobs repeat (opened).
async fn look_up(
    tx: &mut AnyConnection,
    lookup_sql: &'static str,
    batch: &[&SendRequest],
    vault: &Vault,
) -> std::result::Result<Known, Fallback> {
    let mut known = Known::default();
    for row in conversations_of(tx, lookup_sql, batch).await? {
        known.add_conversation(ConversationRow::from_row(&row)?);
        if let Some(mut m) = MessageRow::from_prefixed(&row, "m_")? {
            vault.open_message(&mut m).await?;
            known.add_earlier(m);
        }
    }
    Ok(known)
}

/// The rows of a lookup (`BatchSql::lookup`): every existing conversation the jobs may write
/// to, with the stored messages they repeat. `POSTGRES_LOCK` locks the conversations too (the
/// one-by-one path runs it for its locks alone).
pub(crate) async fn conversations_of(
    tx: &mut AnyConnection,
    lookup_sql: &'static str,
    batch: &[&SendRequest],
) -> std::result::Result<Vec<sqlx::any::AnyRow>, sqlx::Error> {
    sqlx::query(lookup_sql)
        .bind(lookup_jobs(batch))
        .fetch_all(&mut *tx)
        .await
}

/// The batch's jobs as a lookup reads them ($1): the conversation a job names (`c`), a
/// contact's (messenger, contact, preview) (`m`, `t`, `p`), the sender (`s`) and the
/// `clientMessageId` (`k`).
fn lookup_jobs(batch: &[&SendRequest]) -> String {
    let jobs: Vec<serde_json::Value> = batch
        .iter()
        .map(|req| {
            let mut job = json!({
                "c": named_conversation(req), "s": req.sender_id, "k": req.client_message_id,
            });
            if let SendTarget::Contact {
                messenger_id,
                contact_id,
                preview,
                ..
            } = &req.target
            {
                job["m"] = json!(messenger_id);
                job["t"] = json!(contact_id);
                job["p"] = i64::from(*preview).into();
            }
            job
        })
        .collect();
    serde_json::Value::from(jobs).to_string()
}

/// Every message the plan stores and every conversation's new `last_seq`, in one statement
/// (on SQLite the trigger moves `last_seq`). A unique index refusing it means that another
/// process stored one of the sends after the lookup.
async fn write(
    tx: &mut AnyConnection,
    write: Write,
    known: &Known,
    plan: &Plan,
    vault: &Vault,
) -> std::result::Result<(), Fallback> {
    let mut rows: Vec<serde_json::Value> = Vec::new();
    // The state after the batch of every conversation it stores into.
    let mut moved: HashMap<ConversationId, &ConversationRow> = HashMap::new();
    for step in &plan.steps {
        if let Step::Store(o) = step {
            rows.push(message_row(o, vault)?);
            moved.insert(o.message.conversation_id, &o.conversation);
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let rows = serde_json::Value::from(rows).to_string();
    let written = match write {
        Write::Insert(insert) => sqlx::query(insert).bind(rows).execute(&mut *tx).await,
        Write::Guarded(write) => {
            let moves: Vec<_> = moved
                .values()
                .map(|c| {
                    let read = known
                        .conversations
                        .get(&c.conversation_id)
                        .map_or(0, |r| r.last_seq);
                    json!({
                        "c": c.conversation_id, "o": read, "q": c.last_seq, "a": c.updated_at,
                    })
                })
                .collect();
            sqlx::query(write)
                .bind(rows)
                .bind(serde_json::Value::from(moves).to_string())
                .bind(moved.len() as i64)
                .execute(&mut *tx)
                .await
        }
    };
    match written {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(Fallback::Repeat),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(CHANGED_UNDER_THE_BATCH) => {
            Err(Fallback::Changed)
        }
        Err(e) => Err(e.into()),
    }
}

/// One stored message as a row of the write's JSON array, its body sealed.
fn message_row(o: &SendOutcome, vault: &Vault) -> std::result::Result<serde_json::Value, Fallback> {
    let m = &o.message;
    let site = o.conversation.site_id;
    let body = vault.seal_loaded(site, &message_place(m.message_id), m.body.as_bytes())?;
    let mut row = json!({
        "i": m.message_id, "c": m.conversation_id, "q": m.seq,
        "t": m.sender_type.as_str(), "s": m.sender_id, "n": m.sender_name,
        "b": body, "k": m.client_message_id, "a": m.created_at,
    });
    // Only a message with attachments carries the key: the usual row stays as it was.
    if let Some(f) = crate::attachments::sealed_column(vault, site, &m.attachments)? {
        row["f"] = f.into();
    }
    Ok(row)
}

/// The conversation a job names by id, if any.
fn named_conversation(req: &SendRequest) -> Option<ConversationId> {
    match &req.target {
        SendTarget::Agent {
            conversation_id, ..
        }
        | SendTarget::Close {
            conversation_id, ..
        } => Some(*conversation_id),
        SendTarget::Contact {
            conversation_id, ..
        } => *conversation_id,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The set-based path against a real database, with batches built by hand so that each
    //! rule meets the others in one batch: SQLite always, PostgreSQL when it answers (and
    //! always under `CI=true`).

    use std::time::Duration;

    use confidant_core::{ContactAttributes, SiteId};
    use confidant_core::{ContactId, ConversationId, MessengerId};
    use uuid::Uuid;

    use super::*;
    use crate::{SenderType, Store, StoreError};

    pub(crate) struct Fixture {
        pub(crate) store: Store,
        /// The PostgreSQL database to drop at the end.
        pg: Option<(String, String)>,
        pub(crate) site: SiteId,
        pub(crate) messenger: MessengerId,
        pub(crate) contacts: Vec<ContactId>,
        /// What a test that reopens the store connects with.
        pub(crate) url: String,
        pub(crate) key_file: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    pub(crate) async fn stores() -> Vec<(&'static str, Fixture)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut out = vec![("sqlite", fixture(&url, dir).await)];
        let admin = std::env::var("CONFIDANT_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        sqlx::any::install_default_drivers();
        match AnyConnection::connect(&admin).await {
            Ok(mut c) => {
                let name = format!("confidant_b_{}", Uuid::new_v4().simple());
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut c)
                    .await
                    .expect("create a test database");
                let url = format!("{}/{name}", &admin[..admin.rfind('/').expect("url")]);
                let dir = tempfile::tempdir().expect("tempdir");
                let mut f = fixture(&url, dir).await;
                f.pg = Some((admin, name));
                out.push(("postgres", f));
            }
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("PostgreSQL is required under CI=true: {e}")
            }
            Err(e) => eprintln!("SKIPPED the PostgreSQL half of the batch tests: {e}"),
        }
        out
    }

    /// A site named `name` with one messenger and three contacts ("a", "b", "c").
    pub(crate) async fn seed(store: &Store, name: &str) -> (SiteId, MessengerId, Vec<ContactId>) {
        let site = store.create_site(name, 1).await.expect("site").site_id;
        let messenger = store
            .create_messenger(site, "m", "{}", 1, None)
            .await
            .expect("messenger")
            .messenger_id;
        let mut contacts = Vec::new();
        for who in ["a", "b", "c"] {
            let c = store
                .upsert_contact(site, who, &ContactAttributes::default(), None, 1)
                .await
                .expect("contact");
            contacts.push(c.contact_id);
        }
        (site, messenger, contacts)
    }

    pub(crate) async fn fixture(url: &str, dir: tempfile::TempDir) -> Fixture {
        let key_file = dir.path().join("master.key");
        let store = Store::connect(url, Duration::from_secs(5), &key_file)
            .await
            .expect("open the store");
        let (site, messenger, contacts) = seed(&store, "s").await;
        Fixture {
            store,
            pg: None,
            site,
            messenger,
            contacts,
            url: url.to_owned(),
            key_file,
            _dir: dir,
        }
    }

    pub(crate) async fn finish(f: Fixture) {
        f.store.close().await;
        if let Some((admin, name)) = f.pg {
            let mut c = AnyConnection::connect(&admin).await.expect("connect");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut c)
            .await
            .expect("drop the test database");
        }
    }

    pub(crate) fn sql(store: &Store) -> &'static BatchSql {
        match store.backend() {
            crate::Backend::Sqlite => &SQLITE,
            crate::Backend::Postgres => &POSTGRES,
        }
    }

    pub(crate) fn contact_send(
        f: &Fixture,
        who: usize,
        cmid: &str,
        conv: Option<&ConversationId>,
    ) -> SendRequest {
        SendRequest {
            site_id: f.site,
            target: SendTarget::Contact {
                messenger_id: f.messenger,
                contact_id: f.contacts[who],
                preview: false,
                conversation_id: conv.copied(),
            },
            sender_type: SenderType::Contact,
            sender_id: f.contacts[who].0,
            sender_name: format!("contact {who}"),
            body: format!("body {cmid}"),
            client_message_id: Some(cmid.to_owned()),
            now: 1_000,
            attachments: Vec::new(),
        }
    }

    /// The agent every agent send comes from.
    const AGENT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);

    pub(crate) fn agent_send(site: SiteId, conv: &ConversationId, cmid: &str) -> SendRequest {
        SendRequest {
            site_id: site,
            target: SendTarget::Agent {
                conversation_id: *conv,
            },
            sender_type: SenderType::Agent,
            sender_id: AGENT,
            sender_name: "Agent".into(),
            body: format!("reply {cmid}"),
            client_message_id: Some(cmid.to_owned()),
            now: 2_000,
            attachments: Vec::new(),
        }
    }

    pub(crate) async fn seqs(f: &Fixture, conv: &ConversationId) -> Vec<(i64, String)> {
        f.store
            .messages(f.site, *conv, 0, 100)
            .await
            .expect("messages")
            .into_iter()
            .map(|m| (m.seq, m.client_message_id.unwrap_or_default()))
            .collect()
    }

    #[tokio::test]
    async fn one_batch_applies_every_rule_in_job_order() {
        for (backend, f) in stores().await {
            // Both contacts have a conversation with one message (stored the normal way).
            let a = f
                .store
                .send(contact_send(&f, 0, "a0", None))
                .await
                .expect("a0");
            let b = f
                .store
                .send(contact_send(&f, 1, "b0", None))
                .await
                .expect("b0");
            let (ca, cb) = (
                a.conversation.conversation_id,
                b.conversation.conversation_id,
            );
            let other_site = f.store.create_site("other", 1).await.expect("site").site_id;

            let jobs = [
                contact_send(&f, 0, "a1", None),
                contact_send(&f, 0, "a1", None), // repeated within the batch
                agent_send(f.site, &ca, "r1"),
                agent_send(f.site, &ConversationId::new(), "r2"),
                agent_send(other_site, &ca, "r3"), // another site's agent
                contact_send(&f, 1, "a1", Some(&ca)), // b names a's conversation
                contact_send(&f, 1, "b1", Some(&cb)),
                contact_send(&f, 0, "a2", Some(&ca)),
            ];
            let refs: Vec<&SendRequest> = jobs.iter().collect();
            let Ok(out) = store(&f.store.write, sql(&f.store), &refs, &f.store.vault).await else {
                panic!("{backend}: the batch fell back");
            };
            let ok = |i: usize| out[i].as_ref().expect("stored");
            assert_eq!((ok(0).message.seq, ok(0).created), (2, true), "{backend}");
            assert_eq!(
                ok(1).message.message_id,
                ok(0).message.message_id,
                "{backend}"
            );
            assert!(!ok(1).created, "{backend}");
            assert_eq!((ok(2).message.seq, ok(2).created), (3, true), "{backend}");
            assert!(matches!(out[3], Err(StoreError::NotFound)), "{backend}");
            assert!(matches!(out[4], Err(StoreError::NotFound)), "{backend}");
            assert!(matches!(out[5], Err(StoreError::NotFound)), "{backend}");
            assert_eq!(ok(6).message.seq, 2, "{backend}");
            assert_eq!(ok(7).message.seq, 4, "{backend}");
            assert_eq!(ok(7).conversation.last_seq, 4, "{backend}");

            // What is stored: gapless, each send once, and the conversations moved along.
            assert_eq!(
                seqs(&f, &ca).await,
                [(1, "a0"), (2, "a1"), (3, "r1"), (4, "a2")].map(|(s, k)| (s, k.to_owned())),
                "{backend}"
            );
            assert_eq!(seqs(&f, &cb).await.len(), 2, "{backend}");
            for (conv, last) in [(&ca, 4), (&cb, 2)] {
                let c = f.store.get_conversation(f.site, *conv).await.expect("get");
                let c = c.expect("conversation");
                assert_eq!(c.last_seq, last, "{backend}");
            }
            // A batch that repeats stored sends is stored as one batch too: each repeat is
            // answered with the stored message (opened), the fresh send stored next.
            let r1 = ok(2).message.message_id;
            let jobs = [
                contact_send(&f, 0, "a0", Some(&ca)),
                contact_send(&f, 0, "a9", None),
                agent_send(f.site, &ca, "r1"),
            ];
            let refs: Vec<&SendRequest> = jobs.iter().collect();
            let Ok(out) = store(&f.store.write, sql(&f.store), &refs, &f.store.vault).await else {
                panic!("{backend}: a batch holding repeats fell back");
            };
            let got: Vec<_> = out
                .iter()
                .map(|o| o.as_ref().expect("stored or answered"))
                .map(|o| (o.message.message_id, o.message.seq, o.created))
                .collect();
            assert_eq!(got[0], (a.message.message_id, 1, false), "{backend}");
            assert_eq!((got[1].1, got[1].2), (5, true), "{backend}");
            assert_eq!(got[2], (r1, 3, false), "{backend}");
            let a0 = out[0].as_ref().expect("a0 again");
            assert_eq!(a0.message.body, "body a0", "{backend}");
            assert_eq!(
                seqs(&f, &ca).await.last(),
                Some(&(5, "a9".to_owned())),
                "{backend}"
            );

            // The next send, through the writer, continues from there.
            let next = f
                .store
                .send(contact_send(&f, 0, "a3", None))
                .await
                .expect("a3");
            assert_eq!(next.message.seq, 6, "{backend}");
            finish(f).await;
        }
    }

    #[tokio::test]
    async fn a_send_stored_after_the_lookup_makes_the_whole_write_fail() {
        for (backend, f) in stores().await {
            let a = f
                .store
                .send(contact_send(&f, 0, "a0", None))
                .await
                .expect("a0");
            let ca = a.conversation.conversation_id;
            let jobs = [
                contact_send(&f, 0, "a1", None),
                contact_send(&f, 0, "a2", None),
            ];
            let refs: Vec<&SendRequest> = jobs.iter().collect();
            let sql = sql(&f.store);
            let mut conn = f.store.write.acquire().await.expect("conn");
            let Ok(known) = look_up(&mut conn, sql.lookup, &refs, &f.store.vault).await else {
                panic!("{backend}: the lookup failed");
            };
            drop(conn);
            // Another writer stores a2 between this batch's lookup and its write.
            f.store
                .send(contact_send(&f, 0, "a2", None))
                .await
                .expect("a2");
            let plan = plan::plan(&known, &refs);
            let mut conn = f.store.write.acquire().await.expect("conn");
            let refused = write(&mut conn, sql.write, &known, &plan, &f.store.vault).await;
            drop(conn);
            // (PostgreSQL's guard finds the conversation moved before the index is reached.)
            assert!(
                matches!(refused, Err(Fallback::Repeat | Fallback::Changed)),
                "{backend}"
            );
            assert_eq!(
                seqs(&f, &ca).await,
                [(1, "a0"), (2, "a2")].map(|(s, k)| (s, k.to_owned())),
                "{backend}: nothing of the batch written"
            );
            // Looked up again, the batch answers a2 and stores a1 after it.
            let Ok(out) = store(&f.store.write, sql, &refs, &f.store.vault).await else {
                panic!("{backend}: the batch fell back");
            };
            let got: Vec<_> = out
                .iter()
                .map(|o| o.as_ref().expect("stored or answered"))
                .map(|o| (o.message.seq, o.created))
                .collect();
            assert_eq!(got, [(3, true), (2, false)], "{backend}");
            finish(f).await;
        }
    }

    #[tokio::test]
    async fn postgres_write_refuses_a_conversation_moved_since_it_was_read() {
        for (backend, f) in stores().await {
            if backend != "postgres" {
                continue;
            }
            let a = f
                .store
                .send(contact_send(&f, 0, "a0", None))
                .await
                .expect("a0");
            let ca = a.conversation.conversation_id;
            let write = |read: i64| {
                let id = confidant_core::MessageId::new();
                let body = f
                    .store
                    .vault
                    .seal_loaded(f.site, &message_place(id), b"late")
                    .expect("seal");
                let row = json!([{
                    "i": id, "c": ca, "q": 2, "t": "contact",
                    "s": f.contacts[0], "n": "contact 0", "b": body, "k": format!("w{read}"),
                    "a": 5_000,
                }]);
                let moves = json!([{ "c": ca, "o": read, "q": 2, "a": 5_000 }]);
                sqlx::query(POSTGRES_WRITE)
                    .bind(row.to_string())
                    .bind(moves.to_string())
                    .bind(1_i64)
                    .execute(&f.store.write)
            };
            // Planned on a stale read (last_seq 0, but another writer stored seq 1 since):
            // the statement fails whole and writes nothing.
            match write(0).await {
                Err(sqlx::Error::Database(e)) => {
                    assert_eq!(e.code().as_deref(), Some(CHANGED_UNDER_THE_BATCH));
                }
                other => panic!("a stale batch was written: {other:?}"),
            }
            assert_eq!(seqs(&f, &ca).await.len(), 1);
            let c = f.store.get_conversation(f.site, ca).await.expect("get");
            assert_eq!(c.expect("conversation").last_seq, 1);
            // Planned on the current value: stored, and the conversation moved.
            write(1).await.expect("a fresh batch is written");
            assert_eq!(seqs(&f, &ca).await.len(), 2);
            let c = f.store.get_conversation(f.site, ca).await.expect("get");
            assert_eq!(c.expect("conversation").last_seq, 2);
            // The retry after such a refusal plans under row locks, continues the seqs and
            // answers repeats (of a0 here).
            let jobs = [
                contact_send(&f, 0, "a3", None),
                agent_send(f.site, &ca, "r3"),
                contact_send(&f, 0, "a0", None),
            ];
            let refs: Vec<&SendRequest> = jobs.iter().collect();
            let Ok(out) = store_locked(&f.store.write, &POSTGRES, &refs, &f.store.vault).await
            else {
                panic!("the locked batch fell back");
            };
            let stored: Vec<_> = out
                .iter()
                .flatten()
                .map(|o| (o.message.seq, o.created))
                .collect();
            assert_eq!(stored, [(3, true), (4, true), (1, false)]);
            assert_eq!(seqs(&f, &ca).await.len(), 4);
            finish(f).await;
        }
    }

    #[tokio::test]
    async fn closed_conversations_redirect_contacts_and_refuse_agents() {
        for (backend, f) in stores().await {
            let a = f
                .store
                .send(contact_send(&f, 0, "a0", None))
                .await
                .expect("a0");
            let (ca, a0_id) = (a.conversation.conversation_id, a.message.message_id);
            let close = SendRequest {
                target: SendTarget::Close {
                    conversation_id: ca,
                },
                sender_type: SenderType::System,
                client_message_id: None,
                ..agent_send(f.site, &ca, "close")
            };
            f.store.send(close).await.expect("close");
            // A send that would open a conversation is named back, for the one-by-one way.
            let opening = contact_send(&f, 0, "a1", Some(&ca));
            let fell_back = store(&f.store.write, sql(&f.store), &[&opening], &f.store.vault).await;
            assert!(
                matches!(&fell_back, Err(Fallback::Opens(jobs)) if jobs == &[0]),
                "{backend}"
            );
            // An agent's reply to the closed conversation fails alone, beside a good send.
            f.store
                .send(contact_send(&f, 1, "b0", None))
                .await
                .expect("b0");
            let jobs = [
                agent_send(f.site, &ca, "late"),
                contact_send(&f, 1, "b1", None),
            ];
            let refs: Vec<&SendRequest> = jobs.iter().collect();
            let Ok(out) = store(&f.store.write, sql(&f.store), &refs, &f.store.vault).await else {
                panic!("{backend}: the batch fell back");
            };
            assert!(matches!(out[0], Err(StoreError::Closed)), "{backend}");
            let b1 = out[1].as_ref().expect("b1");
            assert_eq!((b1.message.seq, b1.created), (2, true), "{backend}");
            // A repeat of the send stored in the closed conversation answers it, and opens
            // nothing (the next send below is the one that opens a conversation).
            let repeat = f
                .store
                .send(contact_send(&f, 0, "a0", Some(&ca)))
                .await
                .expect("a0 again");
            assert_eq!(repeat.message.message_id, a0_id, "{backend}");
            assert!(!repeat.created, "{backend}");
            // Through the writer (whichever path it takes), the contact naming the closed
            // conversation lands in a new one, and a repeat lands on that same message.
            let first = f
                .store
                .send(contact_send(&f, 0, "a1", Some(&ca)))
                .await
                .expect("a1");
            assert_ne!(first.conversation.conversation_id, ca, "{backend}");
            assert_eq!((first.message.seq, first.opened), (1, true), "{backend}");
            let again = f
                .store
                .send(contact_send(&f, 0, "a1", Some(&ca)))
                .await
                .expect("a1 again");
            assert_eq!(
                again.message.message_id, first.message.message_id,
                "{backend}"
            );
            assert!(!again.created, "{backend}");
            let late = f.store.send(agent_send(f.site, &ca, "late2")).await;
            assert!(matches!(late, Err(StoreError::Closed)), "{backend}");
            finish(f).await;
        }
    }
}
