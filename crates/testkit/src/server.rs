//! Every use the kit makes of the server's (and the store's) internals, in one place, so that a
//! change inside `crates/server/src` is adapted here and nowhere else. The rest of the kit and
//! the tests reach the server from outside: HTTP, WebSockets and the binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use confidant::Running;
use confidant::config::{Config, ServeArgs, Switch};

/// The settings a test may change; everything else is the test default.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--listen` (default `127.0.0.1:0`: a free port).
    pub listen: String,
    /// `--rate-limits on|off`.
    pub rate_limits: bool,
    /// `--public-url`.
    pub public_url: Option<String>,
    /// `--bus-url` (NATS).
    pub bus_url: Option<String>,
    /// `--allow-private-urls on|off`: on for a test that serves a JWKS on loopback.
    pub allow_private_urls: bool,
    /// `--trusted-proxies`.
    pub trusted_proxies: Vec<String>,
    /// `--smtp-url` (with `--smtp-from` [`SMTP_FROM`]): e.g. an [`crate::SmtpSink`]'s URL.
    pub smtp_url: Option<String>,
    /// `--attachments-url` (default: `<data dir>/attachments`).
    pub attachments_url: Option<String>,
}

/// The From address of the test servers that send email.
pub const SMTP_FROM: &str = "Confidant Notices <notices@confidant.test>";

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:0".into(),
            rate_limits: true,
            public_url: None,
            bus_url: None,
            allow_private_urls: false,
            trusted_proxies: Vec::new(),
            smtp_url: None,
            attachments_url: None,
        }
    }
}

/// The server's `Config` for `settings`, a database, a data directory and the operator token.
pub fn server_config(
    settings: &Settings,
    database_url: &str,
    data_dir: PathBuf,
    operator_token: &str,
) -> Config {
    let args = ServeArgs {
        listen: settings.listen.clone(),
        database_url: Some(database_url.to_owned()),
        bus_url: settings.bus_url.clone(),
        bus_creds_file: None,
        bus_tls: Switch::Off,
        public_url: settings.public_url.clone(),
        rate_limits: if settings.rate_limits {
            Switch::On
        } else {
            Switch::Off
        },
        data_dir,
        allow_private_urls: if settings.allow_private_urls {
            Switch::On
        } else {
            Switch::Off
        },
        trusted_proxies: settings.trusted_proxies.clone(),
        master_key_file: None,
        access_token_ttl: 3600,
        smtp_url: settings.smtp_url.clone(),
        smtp_from: settings.smtp_url.as_ref().map(|_| SMTP_FROM.to_owned()),
        attachments_url: settings.attachments_url.clone(),
    };
    let mut config = Config::from_args(&args).expect("test config");
    config.admin_token = Some(operator_token.to_owned().into());
    config
}

/// The server running inside the test process.
pub struct InProcess(Running);

impl InProcess {
    pub async fn start(config: Config) -> InProcess {
        InProcess(confidant::start(config, false).await.expect("start server"))
    }

    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// The app inside (for tests that plug into it, e.g. an event sink on `app().jobs`).
    pub fn app(&self) -> &std::sync::Arc<confidant::app::App> {
        &self.0.app
    }

    /// Stop gracefully (sockets are told, requests drain, the store closes).
    pub async fn stop(self) {
        self.0.stop().await.expect("stop");
    }

    /// The public URL the server settled on (normalised: no trailing slash).
    pub fn public_url(&self) -> String {
        self.0.app.config.public_url.clone()
    }

    /// Close the server's database pool under it (the database "goes away").
    pub async fn close_store(&self) {
        self.0.app.store.close().await;
    }

    /// An access token from the server's own signing key, issued at `issued_at`: (token, exp).
    pub fn sign_access_token(
        &self,
        contact_id: &str,
        site: i64,
        messenger: &str,
        issued_at: i64,
    ) -> (String, i64) {
        let (token, claims) = self
            .0
            .app
            .access
            .tokens
            .sign(contact_id, site, messenger, false, issued_at);
        (token, claims.exp)
    }

    /// The server's signing keys as its store holds them, opened: (kid, PKCS#8 DER).
    pub async fn signing_keys(&self) -> Vec<(String, Vec<u8>)> {
        self.0
            .app
            .store
            .signing_keys()
            .await
            .expect("signing keys")
            .into_iter()
            .map(|k| (k.kid, k.pkcs8))
            .collect()
    }

    /// How many WebSockets the server holds open (upgraded, not yet dropped).
    pub fn open_sockets(&self) -> usize {
        self.0.app.sockets.open()
    }

    /// The directory of a local attachment store (`None` for S3).
    pub fn attachments_dir(&self) -> Option<PathBuf> {
        match &self.0.app.config.attachments {
            confidant::config::AttachmentsUrl::Local(dir) => Some(dir.clone()),
            confidant::config::AttachmentsUrl::S3 { .. } => None,
        }
    }

    /// Run the sweep of unreferenced attachments now, for uploads older than `age`:
    /// (rows deleted, orphaned objects deleted).
    pub async fn sweep_attachments(&self, age: Duration) -> (usize, usize) {
        self.0.app.attachments.sweep(age).await.expect("sweep")
    }

    /// The lifetime of access tokens, in seconds.
    pub fn access_token_ttl(&self) -> i64 {
        self.0.app.access.tokens.ttl_seconds()
    }
}

/// The (table, column) pairs of a database's schema, through the store crate.
pub async fn schema_columns(database_url: &str) -> Vec<(String, String)> {
    confidant_store::Store::schema_columns(database_url, Duration::from_secs(5))
        .await
        .expect("read the schema")
}

/// Run one SQL statement on the test's database directly, as an operator with a database
/// shell would (to age rows, or to tamper with them): `Ok(rows affected)`, or the database's
/// refusal as text.
pub async fn sql(database_url: &str, statement: &str) -> Result<u64, String> {
    use sqlx::Executor as _;
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .map_err(|e| e.to_string())?;
    let done = pool
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())))
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| e.to_string());
    pool.close().await;
    done
}
