//! `TestApp`: the real server on a random loopback port with a fresh database. The backend is
//! SQLite in a temporary directory, or PostgreSQL when `CONFIDANT_TEST_BACKEND=postgres` (a
//! fresh database on `CONFIDANT_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, created here and dropped after).

use std::ops::Deref;

use serde_json::json;

use crate::http::{Agent, Contact, Http, Messenger, Site};
use crate::server::{InProcess, Settings, server_config};

/// The operator token every test server is started with.
pub const OPERATOR: &str = "test-operator-token-0123456789";

/// The backend the suite runs on: "sqlite" or "postgres".
pub fn backend() -> &'static str {
    match std::env::var("CONFIDANT_TEST_BACKEND").as_deref() {
        Ok("postgres") => "postgres",
        _ => "sqlite",
    }
}

fn pg_admin_url() -> String {
    std::env::var("CONFIDANT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg_exec(sql: &str) {
    use sqlx::Connection as _;
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(&pg_admin_url())
        .await
        .expect("connect to PostgreSQL for tests");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut c)
        .await
        .expect("admin SQL");
}

/// A fresh database on the suite's backend, dropped (PostgreSQL) or deleted (SQLite) with it.
pub struct TestDb {
    pub url: String,
    /// The master key of the database's data (every server on it must use the same one).
    pub master_key_file: std::path::PathBuf,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        if backend() == "postgres" {
            let name = format!("confidant_t_{}", uuid::Uuid::new_v4().simple());
            pg_exec(&format!("CREATE DATABASE {name}")).await;
            let base = pg_admin_url();
            let url = match base.rfind('/') {
                Some(i) => format!("{}/{name}", &base[..i]),
                None => panic!("bad CONFIDANT_TEST_POSTGRES_URL"),
            };
            TestDb {
                url,
                master_key_file: dir.path().join("master.key"),
                pg_name: Some(name),
                _dir: dir,
            }
        } else {
            TestDb {
                url: format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
                master_key_file: dir.path().join("master.key"),
                pg_name: None,
                _dir: dir,
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop the database from a thread of its own (Drop cannot await, and the test's
            // runtime is blocked here); FORCE ends the server's pooled connections.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("rt");
                rt.block_on(pg_exec(&format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )));
            })
            .join();
        }
    }
}

/// The server in this process, on a loopback port, and an HTTP client for it (`Deref` to
/// [`Http`]: `app.get(…)`, `app.site(…)`).
pub struct TestApp {
    http: Http,
    pub database_url: String,
    /// The database's master key file (pass it to another server on the same database:
    /// `--master-key-file`).
    pub master_key_file: String,
    running: Option<InProcess>,
    // Dropped after the server: the database outlives it.
    _db: Option<TestDb>,
    _data_dir: tempfile::TempDir,
}

impl Deref for TestApp {
    type Target = Http;
    fn deref(&self) -> &Http {
        &self.http
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Start with settings changed by `f` (e.g. `s.rate_limits = false`).
    pub async fn spawn_with(f: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDb::create().await;
        let url = db.url.clone();
        let key = db.master_key_file.display().to_string();
        Self::start(Some(db), url, key, f).await
    }

    async fn start(
        db: Option<TestDb>,
        database_url: String,
        master_key_file: String,
        f: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = Settings::default();
        f(&mut settings);
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut config = server_config(
            &settings,
            &database_url,
            data_dir.path().to_path_buf(),
            OPERATOR,
        );
        config.master_key_file = master_key_file.clone().into();
        let running = InProcess::start(config).await;
        TestApp {
            http: Http::new(running.addr()),
            database_url,
            master_key_file,
            running: Some(running),
            _db: db,
            _data_dir: data_dir,
        }
    }

    /// Another server process on the same database (it does not own the database: the
    /// first app drops it). `f` adjusts its settings, e.g. the bus URL.
    pub async fn spawn_peer(&self, f: impl FnOnce(&mut Settings)) -> TestApp {
        Self::start(
            None,
            self.database_url.clone(),
            self.master_key_file.clone(),
            f,
        )
        .await
    }

    /// Two server processes on one database, sharing live events over `nats` and one public URL
    /// (as behind one load balancer), rate limits off.
    pub async fn two_nodes(nats: &crate::process::Nats) -> (TestApp, TestApp) {
        let url = nats.url();
        let a = TestApp::spawn_with(|s| {
            s.bus_url = Some(url.clone());
            s.rate_limits = false;
        })
        .await;
        let public = a.base.clone();
        let b = a
            .spawn_peer(|s| {
                s.public_url = Some(public);
                s.bus_url = Some(url.clone());
                s.rate_limits = false;
            })
            .await;
        (a, b)
    }

    /// The in-process server, for what a test cannot see from outside (its settled public
    /// URL, its own signing key, its store): see [`crate::server`].
    pub fn server(&self) -> &InProcess {
        self.running.as_ref().expect("the server is running")
    }

    /// Stop the server gracefully; the database stays (for the real binary to take over).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// The usual cast of a conversation test: site "Acme" with one shared-token messenger
/// (`support`), the contact mark@example.test and the agent agent@example.test, on a server
/// with rate limits off (these tests send in bursts on purpose).
pub struct Desk {
    pub app: TestApp,
    pub site: Site,
    pub support: Messenger,
    pub mark: Contact,
    pub agent: Agent,
}

impl Desk {
    pub async fn open() -> Desk {
        let app = TestApp::spawn_with(|s| s.rate_limits = false).await;
        let site = app.site("Acme").await;
        let support = site.messenger(json!({})).await;
        let mark = support.contact("mark@example.test").await;
        let agent = site.agent("agent@example.test", "agent").await;
        Desk {
            app,
            site,
            support,
            mark,
            agent,
        }
    }
}
