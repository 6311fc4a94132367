//! Confidant's store: one `Store` over SQLite (the embedded default) or PostgreSQL.
//!
//! Both backends run the same SQL through sqlx's `Any` driver with runtime queries: the schema
//! uses only types both share (BIGINT, TEXT), `$n` placeholders (which SQLite accepts too),
//! `ON CONFLICT` and `RETURNING`. The two migration folders are kept column-for-column equal,
//! and a test checks it. Every method that reads tenant data takes the `SiteId`. Ids are core's
//! types (`MessengerId`, `ContactId`, …) in the API and lowercase hyphenated UUID text in the
//! tables; rows decode through `sqlx::FromRow` (rows.rs).
//!
//! One file per aggregate: sites.rs, agents.rs (with sessions and the login lockout),
//! messengers.rs, keys.rs (access-token signing keys), contacts.rs, conversations.rs (reads,
//! read markers), messages.rs (message pages). Sends: send.rs (what a send is) → writer.rs
//! (the batching queue, the backend's `WriteStrategy`, the one-by-one path) → plan.rs (the
//! rules, pure) and batch.rs (a whole batch in a fixed number of statements). vault.rs: the
//! keys that seal message bodies and secrets at rest (every read of them opens them here, so
//! the rows the store returns hold clear values and the tables sealed ones). jobs.rs: the
//! durable job queue, fed by triggers that turn stored messages into events. webhooks.rs:
//! webhook subscriptions (secrets sealed) and their delivery log. audit.rs: the hash-chained
//! audit log, appended in the transaction of the change it records.

#[macro_use]
mod cols;
mod agents;
mod appearance;
mod attachments;
mod audit;
mod batch;
mod contacts;
mod conversations;
mod jobs;
mod keys;
mod messages;
mod messengers;
mod notices;
mod plan;
mod rows;
mod send;
#[cfg(test)]
mod send_paths;
mod sites;
mod vault;
#[cfg(test)]
mod wal;
mod webhooks;
mod workflow;
mod writer;
// Agent accounts (§12): disabling, TOTP, sessions with their last use.
mod accounts;
pub use accounts::{AccountPatch, AccountRow, LiveSession, LoginAccount, NewSession, SessionInfo};
// Retention, export and erasure (CONTRACT §14).
mod lifecycle;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection as _, Executor};

pub use attachments::NewAttachment;
pub use audit::{
    Actor, AuditEntry, AuditRow, ChainCheck, GENESIS_HASH, append_audit, canonical_json, chain_hash,
};
pub use conversations::ConversationFilter;
pub use jobs::{Job, JobDepth, JobUpdate, NewJob};
pub use lifecycle::{Erased, PURGE_MESSAGES, PurgedBatch};
pub use messengers::Rollover;
pub use notices::{NoticeState, Presence};
pub use rows::*;
pub use send::{SendOutcome, SendRequest, SendTarget};
pub use sites::{DEFAULT_IDLE_MINUTES, SiteSettings};
pub use vault::{
    BLOB_CHUNK_OVERHEAD, BlobKey, MasterKey, SYSTEM_SITE, Vault, VaultError, attachment_name_place,
    place, write_new_private,
};
pub use webhooks::{DELIVERIES_KEPT, DeliveryRow, WebhookRow};
pub use workflow::{AgentConversation, AssigneeFilter, CannedReplyRow, ListCursor, ListQuery};
pub use writer::{CommitHook, FallbackReason};

/// A pooled connection idle this long is pinged before it is handed out again.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write (e.g. an agent email already used on the site).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    #[error("the conversation is closed")]
    Closed,
    /// The database is not answering (the pool timed out or is closed, an I/O error such as a
    /// refused or broken connection). The edge answers 503.
    #[error("the database is not answering: {0}")]
    Unavailable(#[source] std::sync::Arc<sqlx::Error>),
    /// Any other database error, including a stored value that does not decode (e.g. an id
    /// that is not a UUID).
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the store is shutting down")]
    ShuttingDown,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            Self::Unavailable(std::sync::Arc::new(e))
        } else {
            Self::Db(e)
        }
    }
}

/// Whether an error says the database is not answering rather than refusing a statement.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
    )
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Reads. SQLite in WAL mode lets these run beside the writer.
    read: AnyPool,
    /// Writes. For SQLite this is one connection: one writer, no lock upgrades, no `SQLITE_BUSY`.
    write: AnyPool,
    backend: Backend,
    sends: writer::SendWriter,
    /// SQLite: the task that checkpoints the WAL beside the writer (see `checkpoints`).
    checkpointer: Option<std::sync::Arc<tokio::task::JoinHandle<()>>>,
    /// The keys that seal message bodies and secrets (vault.rs).
    vault: std::sync::Arc<Vault>,
}

/// Tuning that tests lower; [`Store::connect`] takes the defaults.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// SQLite: the WAL size past which the checkpointer resets the WAL (see `checkpoints`).
    pub wal_limit_bytes: u64,
    /// SQLite: how often the checkpointer runs.
    pub checkpoint_every: Duration,
}

/// 64 MiB: a few seconds of the heaviest send load measured, and what a restart after a crash
/// replays at most (the issue saw 4.3 s of replay at 1 GB).
pub const DEFAULT_WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            wal_limit_bytes: DEFAULT_WAL_LIMIT_BYTES,
            checkpoint_every: Duration::from_secs(1),
        }
    }
}

impl Store {
    /// Connect, wait for the database (up to `wait`), run the embedded migrations, and open
    /// the vault with the master key in `master_key_file` (generated there only when the file
    /// does not exist and the database holds no encrypted data). A key that does not open the
    /// stored data is an error, as is a key file missing over encrypted data.
    pub async fn connect(
        url: &str,
        wait: Duration,
        master_key_file: &Path,
    ) -> anyhow::Result<Store> {
        Self::connect_with(url, wait, master_key_file, StoreOptions::default()).await
    }

    /// [`Store::connect`] with `tuning`.
    pub async fn connect_with(
        url: &str,
        wait: Duration,
        master_key_file: &Path,
        tuning: StoreOptions,
    ) -> anyhow::Result<Store> {
        let (read, write, backend) = Self::open_pools(url, wait, tuning.wal_limit_bytes).await?;
        let master = vault::master_key(master_key_file, &read).await?;
        let vault = std::sync::Arc::new(Vault::new(master, read.clone(), write.clone()));
        vault.check().await?;
        let store = Self::with_vault(read, write, backend, vault, tuning);
        if let Err(e) = store.seal_clear_data().await {
            store.close().await;
            return Err(e);
        }
        Ok(store)
    }

    fn with_vault(
        read: AnyPool,
        write: AnyPool,
        backend: Backend,
        vault: std::sync::Arc<Vault>,
        tuning: StoreOptions,
    ) -> Store {
        let strategy = writer::WriteStrategy::of(backend);
        let sends = writer::SendWriter::start(write.clone(), strategy, vault.clone());
        let checkpointer = (backend == Backend::Sqlite).then(|| {
            std::sync::Arc::new(tokio::spawn(checkpoints(
                read.clone(),
                write.clone(),
                tuning.wal_limit_bytes,
                tuning.checkpoint_every,
            )))
        });
        Store {
            read,
            write,
            backend,
            sends,
            checkpointer,
            vault,
        }
    }

    /// `confidant rotate-master-key`: open the store with `old_key_file`, wrap every data key
    /// under the key in `new_key_file` too (generated there if the file does not exist), and
    /// with `retire`, drop every wrap not under the new key. Returns (new key id, data keys
    /// rewrapped, wraps dropped).
    pub async fn rotate_master_key(
        url: &str,
        wait: Duration,
        old_key_file: &Path,
        new_key_file: &Path,
        retire: bool,
    ) -> anyhow::Result<(String, usize, u64)> {
        let new = match MasterKey::read(new_key_file)? {
            Some(k) => k,
            None => {
                let (key, text) = MasterKey::generate();
                write_new_private(new_key_file, &text).with_context(|| {
                    format!(
                        "cannot write the master key file {}",
                        new_key_file.display()
                    )
                })?;
                key
            }
        };
        let (read, write, _) = Self::open_pools(url, wait, DEFAULT_WAL_LIMIT_BYTES).await?;
        let result = async {
            let old = MasterKey::read(old_key_file)?.with_context(|| {
                format!(
                    "the master key file {} does not exist",
                    old_key_file.display()
                )
            })?;
            let vault = Vault::new(old, read.clone(), write.clone());
            vault.check().await?;
            vault::rotate(&vault, &new, retire).await
        }
        .await;
        write.close().await;
        read.close().await;
        let (rewrapped, dropped) = result?;
        Ok((new.id().to_owned(), rewrapped, dropped))
    }

    /// The vault, for other secrets to seal (`vault.seal(site, place, bytes)`).
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    async fn open_pools(
        url: &str,
        wait: Duration,
        wal_limit: u64,
    ) -> anyhow::Result<(AnyPool, AnyPool, Backend)> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("unsupported database URL scheme (use sqlite:// or postgres://)");
        };
        if backend == Backend::Sqlite {
            prepare_sqlite_file(url)?;
        }
        let options = AnyConnectOptions::from_str(url).context("invalid database URL")?;
        let (read_max, write_max) = match backend {
            Backend::Sqlite => (8, 1),
            Backend::Postgres => (16, 16),
        };
        let pool = |max: u32, writer: bool| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(if backend == Backend::Sqlite { 1 } else { 0 })
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings every connection it hands out (a round trip to PostgreSQL, a hop
                // to SQLite's worker thread): one more round trip per send batch and per
                // request that reads. Only a connection that sat idle may have been dropped
                // by the server or the network; one in use a moment ago is taken as it is
                // (a query on a broken one fails like a ping would, a moment later).
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= IDLE_BEFORE_PING {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // synchronous=FULL: a send is acknowledged only once it survives a crash.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA cache_size = -16384; PRAGMA mmap_size = 268435456;",
                            )
                            .await?;
                            // After a checkpoint resets the WAL, SQLite truncates the file
                            // to this size instead of leaving it at its largest.
                            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                                "PRAGMA journal_size_limit = {wal_limit};"
                            )))
                            .execute(&mut *conn)
                            .await?;
                            if writer {
                                // The WAL is checkpointed by `checkpoints`, not by the commit
                                // that crosses the threshold: otherwise every few hundred
                                // sends one waits for the checkpoint's writes and fsync.
                                conn.execute("PRAGMA wal_autocheckpoint = 0;").await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let deadline = tokio::time::Instant::now() + wait;
        let write = loop {
            match pool(write_max, true).connect_with(options.clone()).await {
                Ok(p) => break p,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "database not answering yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e).context("cannot connect to the database"),
            }
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&write)
            .await
            .context("database migrations failed")?;
        let read = match backend {
            Backend::Sqlite => pool(read_max, false)
                .connect_with(options)
                .await
                .context("cannot open read connections")?,
            Backend::Postgres => write.clone(),
        };
        Ok((read, write, backend))
    }

    /// Run `hook` for every stored send, in commit order (used to publish live events in the
    /// order of `seq`).
    pub fn on_commit(&self, hook: CommitHook) {
        self.sends.set_hook(hook);
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Table and column names of a database's schema (migrated first), for the test that both
    /// backends agree. Needs no master key.
    pub async fn schema_columns(
        url: &str,
        wait: Duration,
    ) -> anyhow::Result<Vec<(String, String)>> {
        use sqlx::Row;
        let (read, write, backend) = Self::open_pools(url, wait, DEFAULT_WAL_LIMIT_BYTES).await?;
        let sql = match backend {
            Backend::Sqlite => {
                "SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%' ORDER BY 1, 2"
            }
            Backend::Postgres => {
                "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%' ORDER BY 1, 2"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&read).await;
        write.close().await;
        read.close().await;
        Ok(rows?
            .iter()
            .map(|r| Ok((r.try_get("t")?, r.try_get("c")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    pub async fn close(&self) {
        if let Some(task) = &self.checkpointer {
            task.abort();
        }
        self.sends.stop().await;
        self.write.close().await;
        self.read.close().await;
    }
}

/// SQLite: copy the WAL's committed pages into the database file once a second, from a read
/// connection. By default SQLite checkpoints inside the commit that takes the WAL past 1,000
/// pages, so every few hundred sends one of them waited for the checkpoint's writes and fsync.
/// A passive checkpoint never blocks the writer or the readers (it stops at the oldest snapshot
/// still read and catches up next time), so commits pay only their own fsync. Once a second
/// rather than more often: each checkpoint's fsync of the database file can slow the commits
/// that meet it. On the last close SQLite checkpoints and removes the WAL itself; after a crash
/// it replays the WAL on open.
///
/// A passive checkpoint alone does not bound the WAL: SQLite starts writing the WAL from its
/// beginning again only when a write begins while no reader still uses an old snapshot, and
/// under steady reads and writes that moment never came (the WAL reached 2.5 GB in 200 s, and a
/// restart after a crash replayed it for seconds). So when the WAL holds more than `limit`
/// bytes, a RESTART checkpoint follows on the write pool's one connection: it waits for the
/// batch that holds the connection (in the pool's queue, not SQLite's busy handler), then for
/// readers of older snapshots (busy_timeout, up to 10 s), copies the rest and makes the next
/// commit write the WAL from its start. Sends wait meanwhile: a pause of one checkpoint's copy
/// and fsync once per `limit` bytes written, the price of a bounded WAL and a bounded replay
/// after a crash. The file keeps its length (`journal_size_limit` trims it to `limit` at the
/// first commit after the reset), so its size on disk stays bounded too.
///
/// Session 10 measured the former way, a TRUNCATE checkpoint from a read connection: 30–90 ms
/// each (most of it the truncation of a 64–100 MB file; the busy handler's growing sleeps on
/// both sides added the rest), once every second or two at 1,000 sends a second (each commit
/// of one send writes ~60 KB of WAL), which made the live p99 ~60–120 ms. A RESTART on the
/// write connection: 1–12 ms.
async fn checkpoints(read: AnyPool, write: AnyPool, limit: u64, every: Duration) {
    use sqlx::Row as _;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut page_size: Option<u64> = None;
    loop {
        tick.tick().await;
        let passive = async {
            let page = match page_size {
                Some(p) => p,
                None => {
                    let p: i64 = sqlx::query("PRAGMA page_size")
                        .fetch_one(&read)
                        .await?
                        .try_get(0)?;
                    *page_size.insert(p.max(512) as u64)
                }
            };
            // (busy, frames in the WAL, frames checkpointed)
            let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&read)
                .await?;
            let frames: i64 = row.try_get(1)?;
            Ok::<u64, sqlx::Error>(frames.max(0) as u64 * (page + 24))
        };
        let wal_bytes = match passive.await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                continue;
            }
        };
        if wal_bytes > limit {
            let r = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                .fetch_one(&write)
                .await
                .and_then(|r| r.try_get::<i64, _>(0));
            match r {
                Ok(0) => tracing::debug!(wal_bytes, "WAL reset"),
                Ok(_) => tracing::warn!(
                    wal_bytes,
                    "WAL could not be reset (readers or the writer held on); retrying"
                ),
                Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; retrying"),
            }
        }
    }
}

/// The database file of a SQLite URL, if it names one.
fn sqlite_file(url: &str) -> Option<&Path> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(Path::new(path))
}

/// Create the database's directory (0700) and file (0600) if they are missing. SQLite gives
/// the `-wal` and `-shm` files it creates the mode of the database file, so they are 0600 too
/// (the binary also sets the umask to 0o077, for anything else created beside it).
fn prepare_sqlite_file(url: &str) -> anyhow::Result<()> {
    let Some(file) = sqlite_file(url) else {
        return Ok(());
    };
    if let Some(dir) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        private_dir(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    match opts.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", file.display())),
    }
}

/// Create `dir` and its missing parents with mode 0700 (an existing directory is left as it is).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Map a unique-constraint failure to `Conflict`, anything else as `From<sqlx::Error>` does.
pub(crate) fn conflict_or(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
        _ => e.into(),
    }
}
