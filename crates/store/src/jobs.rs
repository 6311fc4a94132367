//! The durable job queue (migration 0006): one table for offline notices, webhook deliveries
//! and the events they come from, on both backends.
//!
//! A job is due when `run_at` has passed. `claim_jobs` takes due jobs and moves their `run_at`
//! forward by a lease in the same statement, so no other claim sees them until the lease ends;
//! a process that dies mid-job leaves its jobs to be claimed again then (at least once). On
//! PostgreSQL the claim skips rows another process is claiming (`FOR UPDATE SKIP LOCKED`), so
//! several processes share the queue without waiting on each other; on SQLite the one writing
//! connection orders the claims. Finishing deletes the job; a retry moves `run_at`.
//!
//! `job_key`, when set, is unique among queued jobs: enqueueing a job whose key is queued adds
//! nothing (a notice for a conversation, a delivery of one event to one webhook), but if that
//! job is running, it runs once more when this run ends (its `generation` moved, so finishing
//! does not delete it): what was queued while it ran is not lost.

use confidant_core::SiteId;
use serde_json::json;
use sqlx::Row as _;

use crate::{Backend, Result, Store};

/// A job to add to the queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub site: SiteId,
    /// Unique among queued jobs, if set: a job whose key is queued is not added again.
    pub key: Option<String>,
    pub payload: serde_json::Value,
    /// When it is due, Unix milliseconds.
    pub run_at: i64,
}

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub site: SiteId,
    pub key: Option<String>,
    pub payload: serde_json::Value,
    /// Runs started, this one included.
    pub attempts: i64,
    /// When it was queued, Unix milliseconds.
    pub created_at: i64,
    /// When this claim's lease ends, Unix milliseconds.
    pub run_at: i64,
    /// Moved by every enqueue of the same key; finishing compares it.
    pub generation: i64,
}

/// What to do with a claimed job after its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobUpdate {
    /// Run it again at this time (Unix ms), noting `error` if it failed; without an error the
    /// run does not count as an attempt.
    RunAt {
        id: i64,
        at: i64,
        error: Option<String>,
    },
}

/// Queue depth per kind: (kind, jobs queued, oldest `created_at`, jobs whose last run failed).
pub type JobDepth = (String, i64, i64, i64);

macro_rules! insert_jobs {
    ($fields:literal, $rows:literal) => {
        concat!(
            "INSERT INTO jobs (kind, site_id, job_key, payload, run_at, attempts, created_at) \
             SELECT ",
            $fields,
            " FROM ",
            $rows,
            " WHERE true ON CONFLICT (job_key) DO UPDATE SET generation = jobs.generation + 1"
        )
    };
}

// The rows come as JSONB on SQLite (`->>` reads it in place) and as typed columns on
// PostgreSQL: `->>` on text JSON parses the row again for every field.
const SQLITE_ENQUEUE: &str = insert_jobs!(
    "j.value ->> 'k', CAST(j.value ->> 's' AS BIGINT), j.value ->> 'u', j.value ->> 'p', \
     CAST(j.value ->> 'r' AS BIGINT), 0, CAST(j.value ->> 'c' AS BIGINT)",
    "jsonb_each($1) AS j"
);
const POSTGRES_ENQUEUE: &str = insert_jobs!(
    "j.k, j.s, j.u, j.p, j.r, 0, j.c",
    "json_to_recordset($1::json) AS j(k text, s bigint, u text, p text, r bigint, c bigint)"
);

macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE jobs SET run_at = $1, attempts = attempts + 1 WHERE job_id IN \
             (SELECT job_id FROM jobs WHERE run_at <= $2 ORDER BY run_at, job_id LIMIT $3 ",
            $lock,
            ") RETURNING job_id, kind, site_id, job_key, payload, attempts, created_at, run_at, generation"
        )
    };
}

const SQLITE_CLAIM: &str = claim!("");
const POSTGRES_CLAIM: &str = claim!("FOR UPDATE SKIP LOCKED");

/// $1: `[[id, generation], …]`. Deletes the jobs still at the generation claimed. Both
/// subqueries are uncorrelated, so the array is read once each, whatever the number of jobs
/// (a correlated `EXISTS` read the whole array again for every job).
macro_rules! finish {
    ($ids:literal, $pairs:literal) => {
        concat!(
            "DELETE FROM jobs WHERE job_id ",
            $ids,
            " AND (job_id, generation) IN (",
            $pairs,
            ")"
        )
    };
}
const SQLITE_FINISH: &str = finish!(
    "IN (SELECT CAST(e.value ->> 0 AS BIGINT) FROM jsonb_each($1) AS e)",
    "SELECT CAST(e.value ->> 0 AS BIGINT), CAST(e.value ->> 1 AS BIGINT) FROM jsonb_each($1) AS e"
);
const POSTGRES_FINISH: &str = finish!(
    "= ANY (ARRAY(SELECT CAST(e.value ->> 0 AS BIGINT) FROM json_array_elements($1::json) AS e))",
    "SELECT CAST(e.value ->> 0 AS BIGINT), CAST(e.value ->> 1 AS BIGINT) \
     FROM json_array_elements($1::json) AS e"
);
/// The jobs of $1 that `FINISH` left (queued again while they ran): due at once ($2).
const SQLITE_REARM: &str = "UPDATE jobs SET run_at = $2 WHERE job_id IN (SELECT CAST(e.value ->> 0 AS BIGINT) FROM json_each($1) AS e)";
const POSTGRES_REARM: &str = "UPDATE jobs SET run_at = $2 WHERE job_id = ANY (ARRAY(SELECT \
     CAST(e.value ->> 0 AS BIGINT) FROM json_array_elements($1::json) AS e))";

impl Store {
    /// Add `jobs` to the queue in one statement. A job whose key is already queued is not
    /// added; if that job is running, it runs once more when its run ends. Returns how many
    /// rows were added or re-armed.
    pub async fn enqueue(&self, jobs: &[NewJob]) -> Result<u64> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let now = confidant_core::time_fmt::now_millis();
        let rows: Vec<serde_json::Value> = jobs
            .iter()
            .map(|j| {
                json!({
                    "k": j.kind, "s": j.site.0, "u": j.key,
                    // Stored as JSON text; `->>` of a string gives the text back.
                    "p": j.payload.to_string(), "r": j.run_at, "c": now,
                })
            })
            .collect();
        let sql = match self.backend {
            Backend::Sqlite => SQLITE_ENQUEUE,
            Backend::Postgres => POSTGRES_ENQUEUE,
        };
        let done = sqlx::query(sql)
            .bind(serde_json::Value::Array(rows).to_string())
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    /// Claim up to `limit` jobs due at `now`, leasing them until `lease_until` (Unix ms).
    pub async fn claim_jobs(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<Job>> {
        let sql = match self.backend {
            Backend::Sqlite => SQLITE_CLAIM,
            Backend::Postgres => POSTGRES_CLAIM,
        };
        let rows = sqlx::query(sql)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.write)
            .await?;
        let mut jobs = Vec::with_capacity(rows.len());
        for r in &rows {
            let payload: String = r.try_get("payload")?;
            jobs.push(Job {
                id: r.try_get("job_id")?,
                kind: r.try_get("kind")?,
                site: SiteId(r.try_get("site_id")?),
                key: r.try_get("job_key")?,
                payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
                attempts: r.try_get("attempts")?,
                created_at: r.try_get("created_at")?,
                run_at: r.try_get("run_at")?,
                generation: r.try_get("generation")?,
            });
        }
        // RETURNING has no order; the queue's order (run_at, id) is the claim's, not the batch's.
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// The earliest `run_at` of any queued job (for the runner's sleep).
    pub async fn next_job_at(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(run_at) AS next FROM jobs")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("next")?)
    }

    /// Delete finished (or abandoned) jobs: `(id, generation claimed)`. A job whose key was
    /// queued again while it ran is not deleted but made due at `now`, to run once more.
    pub async fn finish_jobs(&self, done: &[(i64, i64)], now: i64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let (finish, rearm) = match self.backend {
            Backend::Sqlite => (SQLITE_FINISH, SQLITE_REARM),
            Backend::Postgres => (POSTGRES_FINISH, POSTGRES_REARM),
        };
        let list = serde_json::to_string(done).unwrap_or_default();
        let deleted = sqlx::query(finish)
            .bind(&list)
            .execute(&self.write)
            .await?
            .rows_affected();
        if deleted < done.len() as u64 {
            sqlx::query(rearm)
                .bind(&list)
                .bind(now)
                .execute(&self.write)
                .await?;
        }
        Ok(())
    }

    /// Move jobs to their next run (a retry, or a job that asked to run later).
    pub async fn reschedule_jobs(&self, updates: &[JobUpdate]) -> Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for JobUpdate::RunAt { id, at, error } in updates {
            // A run that asked to run later did not fail: it does not count as an attempt
            // (attempts set the backoff of the next failure).
            sqlx::query(
                "UPDATE jobs SET run_at = $1, last_error = $2, attempts = attempts - $3 \
                 WHERE job_id = $4",
            )
            .bind(*at)
            .bind(error.as_deref().map(|e| truncate(e, 500)))
            .bind(i64::from(error.is_none()))
            .bind(*id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Jobs queued per kind, for /metrics.
    pub async fn job_depth(&self) -> Result<Vec<JobDepth>> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS queued, MIN(created_at) AS oldest, \
             CAST(SUM(CASE WHEN last_error IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS failing \
             FROM jobs GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((
                r.try_get("kind")?,
                r.try_get("queued")?,
                r.try_get("oldest")?,
                r.try_get("failing")?,
            ));
        }
        Ok(out)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::tests::{agent_send, contact_send, finish, stores};
    use crate::{SendRequest, SendTarget, SenderType};

    /// Every queued event: (type, conversation, message, sender) in queue order.
    async fn events(store: &Store) -> Vec<(String, String, Option<String>, Option<String>)> {
        let jobs = store
            .claim_jobs(i64::MAX - 1, i64::MAX, 1000)
            .await
            .expect("claim");
        let out = jobs
            .iter()
            .filter(|j| j.kind == "event")
            .map(|j| {
                let p = &j.payload;
                let s = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_owned);
                (
                    s("type").unwrap_or_default(),
                    s("conversationId").unwrap_or_default(),
                    s("messageId"),
                    s("senderType"),
                )
            })
            .collect();
        let ids: Vec<(i64, i64)> = jobs.iter().map(|j| (j.id, j.generation)).collect();
        store.finish_jobs(&ids, 0).await.expect("finish");
        out
    }

    #[tokio::test]
    async fn stored_messages_and_conversations_become_events_in_their_transaction() {
        for (backend, f) in stores().await {
            let first = f
                .store
                .send(contact_send(&f, 0, "c1", None))
                .await
                .expect("c1");
            let conv = first.conversation.conversation_id;
            let reply = f
                .store
                .send(agent_send(f.site, &conv, "a1"))
                .await
                .expect("a1");
            // A repeat of a send stores nothing and so makes no event.
            f.store
                .send(agent_send(f.site, &conv, "a1"))
                .await
                .expect("repeat");
            let closed = f
                .store
                .send(SendRequest {
                    target: SendTarget::Close {
                        conversation_id: conv,
                    },
                    sender_type: SenderType::System,
                    client_message_id: None,
                    body: "closed".into(),
                    ..agent_send(f.site, &conv, "close")
                })
                .await
                .expect("close");
            let c = conv.to_string();
            let got = events(&f.store).await;
            let m = |id: &confidant_core::MessageId| Some(id.to_string());
            assert_eq!(
                got,
                vec![
                    ("conversation.created".into(), c.clone(), None, None),
                    (
                        "message.created".into(),
                        c.clone(),
                        m(&first.message.message_id),
                        Some("contact".into())
                    ),
                    (
                        "message.created".into(),
                        c.clone(),
                        m(&reply.message.message_id),
                        Some("agent".into())
                    ),
                    // A close moves the status, then stores its system message.
                    ("conversation.closed".into(), c.clone(), None, None),
                    (
                        "message.created".into(),
                        c.clone(),
                        m(&closed.message.message_id),
                        Some("system".into())
                    ),
                ],
                "{backend}"
            );

            // Previews make none.
            let mut preview = contact_send(&f, 1, "p1", None);
            if let SendTarget::Contact { preview: p, .. } = &mut preview.target {
                *p = true;
            }
            f.store.send(preview).await.expect("preview");
            assert_eq!(events(&f.store).await, vec![], "{backend}: previews");
            finish(f).await;
        }
    }

    fn job(key: Option<&str>, run_at: i64) -> NewJob {
        NewJob {
            kind: "test".into(),
            site: SiteId(1),
            key: key.map(str::to_owned),
            payload: json!({"n": run_at}),
            run_at,
        }
    }

    #[tokio::test]
    async fn claims_lease_jobs_and_keys_dedupe_queued_jobs() {
        for (backend, f) in stores().await {
            let s = &f.store;
            // Drain the seed's events.
            events(s).await;
            assert_eq!(
                s.enqueue(&[job(Some("k"), 100), job(None, 200)])
                    .await
                    .expect("enqueue"),
                2
            );
            // Same key while queued: not added (its run_at stays); no key: always added.
            s.enqueue(&[job(Some("k"), 50), job(None, 300)])
                .await
                .expect("again");
            assert_eq!(s.job_depth().await.expect("depth")[0].1, 3, "{backend}");
            assert_eq!(s.next_job_at().await.expect("next"), Some(100), "{backend}");

            // Nothing is due before its time.
            assert!(
                s.claim_jobs(99, 10_000, 10)
                    .await
                    .expect("claim")
                    .is_empty()
            );
            let got = s.claim_jobs(250, 10_000, 10).await.expect("claim");
            assert_eq!(got.len(), 2, "{backend}");
            assert_eq!(got[0].payload, json!({"n": 100}));
            assert_eq!((got[0].attempts, got[0].run_at), (1, 10_000));
            // Leased: not claimable again until the lease ends (a process that died).
            assert!(s.claim_jobs(9_999, 20_000, 10).await.expect("claim").len() == 1);
            let again = s
                .claim_jobs(10_000, 30_000, 10)
                .await
                .expect("after the lease");
            assert_eq!(again.len(), 2, "{backend}");
            assert_eq!(again[0].attempts, 2);

            // Finished jobs go; their key may be queued again. A retry moves run_at.
            s.finish_jobs(&[(again[0].id, again[0].generation)], 10_000)
                .await
                .expect("finish");
            s.reschedule_jobs(&[JobUpdate::RunAt {
                id: again[1].id,
                at: 40_000,
                error: Some("boom".into()),
            }])
            .await
            .expect("reschedule");
            assert_eq!(
                s.enqueue(&[job(Some("k"), 60_000)]).await.expect("requeue"),
                1
            );
            let depth = s.job_depth().await.expect("depth");
            assert_eq!(depth.len(), 1);
            assert_eq!(
                (depth[0].1, depth[0].3),
                (3, 1),
                "{backend}: 3 queued, 1 failing"
            );
            let due = s.claim_jobs(50_000, 90_000, 10).await.expect("claim");
            let mut ns: Vec<_> = due.iter().map(|j| j.payload["n"].as_i64()).collect();
            ns.sort();
            assert_eq!(ns, vec![Some(200), Some(300)], "{backend}");
            finish(f).await;
        }
    }

    #[tokio::test]
    async fn a_key_queued_again_while_its_job_runs_runs_once_more() {
        for (backend, f) in stores().await {
            let s = &f.store;
            events(s).await;
            s.enqueue(&[job(Some("notice:x"), 100)])
                .await
                .expect("enqueue");
            let running = s.claim_jobs(100, 60_100, 10).await.expect("claim");
            assert_eq!(running.len(), 1);
            // A new reply while the job runs: its key is queued (running), so nothing is added...
            s.enqueue(&[job(Some("notice:x"), 500)])
                .await
                .expect("while running");
            assert_eq!(s.job_depth().await.expect("depth")[0].1, 1, "{backend}");
            // ...but finishing this run leaves the job, due at once, to run again.
            s.finish_jobs(&[(running[0].id, running[0].generation)], 700)
                .await
                .expect("finish");
            assert_eq!(s.next_job_at().await.expect("next"), Some(700), "{backend}");
            let again = s.claim_jobs(700, 60_700, 10).await.expect("claim again");
            assert_eq!(again.len(), 1, "{backend}");
            s.finish_jobs(&[(again[0].id, again[0].generation)], 800)
                .await
                .expect("finish");
            assert_eq!(s.next_job_at().await.expect("next"), None, "{backend}");
            finish(f).await;
        }
    }
}
