//! `TestApp`: the real server on a random loopback port with a fresh database, and typed
//! helpers. The backend is SQLite in a temporary directory, or PostgreSQL when
//! `CONFIDANT_TEST_BACKEND=postgres` (a fresh database on `CONFIDANT_TEST_POSTGRES_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`, created here and dropped after).
#![allow(dead_code)]

use std::time::Duration;

use base64::Engine as _;
use confidant::Running;
use confidant::config::{Config, Secret, ServeArgs};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const OPERATOR: &str = "test-operator-token-0123456789";
pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub struct TestApp {
    pub base: String,
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub running: Option<Running>,
    pub database_url: String,
    pub dir: tempfile::TempDir,
    pg_db: Option<String>,
}

/// The backend the suite runs on.
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

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Start with settings changed by `f` (e.g. `a.rate_limits = "off".into()`).
    pub async fn spawn_with(f: impl FnOnce(&mut ServeArgs)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let (database_url, pg_db) = if backend() == "postgres" {
            let name = format!("confidant_t_{}", uuid::Uuid::new_v4().simple());
            pg_exec(&format!("CREATE DATABASE {name}")).await;
            let base = pg_admin_url();
            let url = match base.rfind('/') {
                Some(i) => format!("{}/{name}", &base[..i]),
                None => panic!("bad CONFIDANT_TEST_POSTGRES_URL"),
            };
            (url, Some(name))
        } else {
            (
                format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
                None,
            )
        };
        Self::start(dir, database_url, pg_db, f).await
    }

    async fn start(
        dir: tempfile::TempDir,
        database_url: String,
        pg_db: Option<String>,
        f: impl FnOnce(&mut ServeArgs),
    ) -> TestApp {
        let mut args = ServeArgs {
            listen: "127.0.0.1:0".into(),
            database_url: Some(database_url.clone()),
            bus_url: None,
            public_url: None,
            rate_limits: "on".into(),
            data_dir: dir.path().to_path_buf(),
            allow_http_jwks: "false".into(),
            access_token_ttl: "3600".into(),
        };
        f(&mut args);
        let mut config = Config::from_args(&args).expect("test config");
        config.admin_token = Some(Secret(OPERATOR.into()));
        let running = confidant::start(config, false).await.expect("start server");
        let addr = running.addr;
        TestApp {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            running: Some(running),
            database_url,
            dir,
            pg_db,
        }
    }

    /// Another server process on the same database (it does not own the database: the
    /// first app drops it). `f` adjusts its settings, e.g. the bus URL.
    pub async fn spawn_peer(&self, f: impl FnOnce(&mut ServeArgs)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start(dir, self.database_url.clone(), None, f).await
    }

    /// Stop gracefully and start again on the same database (and port, if free).
    pub async fn restart(mut self) -> TestApp {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("stop");
        }
        let listen = self.addr.to_string();
        let pg = self.pg_db.take();
        let dir = tempfile::tempdir().expect("tempdir");
        let old = std::mem::replace(&mut self.dir, dir);
        let url = self.database_url.clone();
        let mut app = Self::start(old, url, pg, |a| a.listen = listen).await;
        std::mem::swap(&mut app.dir, &mut self.dir);
        std::mem::swap(&mut app.dir, &mut self.dir);
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.client.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("GET")
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut r = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("POST")
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &Value) -> reqwest::Response {
        let mut r = self.client.put(self.url(path)).json(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().await.expect("PUT")
    }

    pub async fn create_site(&self, name: &str) -> i64 {
        let r = self
            .post("/api/v1/sites", Some(OPERATOR), &json!({"name": name}))
            .await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.expect("site")["siteId"]
            .as_i64()
            .expect("siteId")
    }

    /// A messenger with `security` (merged over a shared-token default that allows the
    /// server's own origin).
    pub async fn create_messenger(&self, site: i64, security: Value) -> Value {
        let mut sec = json!({"validation": {"method": "sharedToken", "sharedToken": SECRET}, "allowedUrls": [self.base]});
        if let (Some(base), Some(over)) = (sec.as_object_mut(), security.as_object()) {
            for (k, v) in over {
                base.insert(k.clone(), v.clone());
            }
        }
        let r = self
            .post(
                &format!("/api/v1/sites/{site}/messengers"),
                Some(OPERATOR),
                &json!({"name": "Support", "security": sec}),
            )
            .await;
        let status = r.status();
        let body: Value = r.json().await.expect("messenger");
        assert_eq!(status, 201, "{body}");
        body
    }

    /// A site with one shared-token messenger: (siteId, messengerId).
    pub async fn site_with_messenger(&self) -> (i64, String) {
        let site = self.create_site("Acme").await;
        let m = self.create_messenger(site, json!({})).await;
        (site, m["messengerId"].as_str().expect("id").to_owned())
    }

    pub async fn authorize(&self, site: i64, messenger: &str, jwt: &str) -> reqwest::Response {
        self.post(
            "/securemessage/authorize",
            None,
            &json!({"siteId": site, "messengerId": messenger, "contactJwt": jwt}),
        )
        .await
    }

    /// Authorize `identity` with an HS256 token of the default secret; returns the access token.
    pub async fn access_token(&self, site: i64, messenger: &str, identity: &str) -> String {
        let jwt = hs256(SECRET, &json!({"sub": identity, "exp": now() + 600}));
        let r = self.authorize(site, messenger, &jwt).await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("authorize")["accessToken"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub async fn create_agent(&self, site: i64, email: &str, role: &str) -> Value {
        let r = self
            .post(&format!("/api/v1/sites/{site}/agents"), Some(OPERATOR), &json!({"email": email, "password": "correct horse battery", "name": email, "role": role}))
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.expect("agent")
    }

    /// Create an agent and log in; returns its session token.
    pub async fn agent_token(&self, site: i64, email: &str, role: &str) -> String {
        self.create_agent(site, email, role).await;
        let r = self
            .post(
                "/api/v1/auth/login",
                None,
                &json!({"siteId": site, "email": email, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.expect("login")["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(name) = self.pg_db.take() {
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

/// Sign claims with HS256.
pub fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A token from raw header and claims JSON with the given signature bytes (for attacks).
pub fn raw_token(header: &Value, claims: &Value, sig: &[u8]) -> String {
    let e = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!(
        "{}.{}.{}",
        e(header.to_string().as_bytes()),
        e(claims.to_string().as_bytes()),
        e(sig)
    )
}

pub async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or("<no error body>")
            .to_owned(),
    )
}

/// Status, error code (or "" on success) and body; panics on a body that is not JSON.
pub async fn answer(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code, body)
}
