//! The composition root: the services built from the configuration, shared by every handler
//! as `AppState`. Nothing here handles a request.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::FromRef;
use confidant_core::SiteId;
use confidant_identity::{ContactVerifier, JwksCache, SystemClock};
use confidant_realtime::{Control, Hub, LocalHub, NatsHub};
use confidant_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::config::Config;
use crate::jwks_http::HttpJwksFetcher;
use crate::limits::RateLimiter;
use crate::service::access::Access;
use crate::service::accounts::Accounts;
use crate::service::authorize::Authorizer;
use crate::service::contacts::Contacts;
use crate::service::conversations::Conversations;
use crate::service::keys;
use crate::service::messengers::Messengers;
use crate::socket_caps::SocketCaps;
use crate::tokens::random_token;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub hub: Arc<dyn Hub>,
    pub limits: RateLimiter,
    /// The caps on open WebSockets, and their count.
    pub sockets: SocketCaps,
    pub metrics: PrometheusHandle,
    pub shutdown: watch::Receiver<bool>,
    pub accounts: Accounts,
    pub messengers: Arc<Messengers>,
    pub contacts: Arc<Contacts>,
    pub access: Arc<Access>,
    pub authorizer: Authorizer,
    pub conversations: Arc<Conversations>,
    /// The OpenAPI document of the router serving this app (set when the router is built).
    pub openapi: std::sync::OnceLock<utoipa::openapi::OpenApi>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl FromRef<AppState> for Arc<App> {
    fn from_ref(s: &AppState) -> Arc<App> {
        s.0.clone()
    }
}

impl App {
    pub async fn build(
        config: Config,
        metrics: PrometheusHandle,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<App>> {
        let store = Store::connect(config.database_url(), Duration::from_secs(30)).await?;
        let hub: Arc<dyn Hub> = match &config.bus_url {
            Some(url) => Arc::new(
                NatsHub::connect(url.expose_secret())
                    .await
                    .context("cannot connect to the bus")?,
            ),
            None => Arc::new(LocalHub::new()),
        };
        let operator_token = operator_token(&config)?;
        let tokens = keys::load(&store, config.public_url.clone(), config.access_token_ttl).await?;
        let access = Arc::new(Access::new(tokens, config.access_token_ttl));
        keys::spawn_refresh(
            store.clone(),
            Arc::downgrade(&access),
            config.access_token_ttl,
        );
        let clock = Arc::new(SystemClock);
        let jwks = Arc::new(JwksCache::new(
            Arc::new(HttpJwksFetcher::new(config.allow_http_jwks)),
            clock.clone(),
        ));
        let messengers = Arc::new(Messengers::new(
            store.clone(),
            hub.clone(),
            config.allow_http_jwks,
        ));
        let contacts = Arc::new(Contacts::new(store.clone(), hub.clone()));
        let conversations = Arc::new(Conversations::new(
            store.clone(),
            hub.clone(),
            contacts.clone(),
        ));
        {
            let conversations = Arc::downgrade(&conversations);
            store.on_commit(Arc::new(move |out| {
                if let Some(c) = conversations.upgrade() {
                    c.publish_stored(out);
                }
            }));
        }
        let app = Arc::new(App {
            limits: RateLimiter::new(config.rate_limits),
            sockets: SocketCaps::new(config.rate_limits),
            accounts: Accounts::new(store.clone(), hub.clone(), operator_token),
            authorizer: Authorizer::new(
                ContactVerifier::new(jwks, clock),
                contacts.clone(),
                access.clone(),
            ),
            config,
            store,
            hub,
            metrics,
            shutdown,
            messengers,
            contacts,
            access,
            conversations,
            openapi: std::sync::OnceLock::new(),
        });
        spawn_cache_invalidation(&app);
        Ok(app)
    }
}

/// Drop cached messengers and contacts that another process changed.
fn spawn_cache_invalidation(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    let mut rx = app.hub.subscribe_control();
    tokio::spawn(async move {
        loop {
            let msg = rx.recv().await;
            let Some(app) = weak.upgrade() else { break };
            match msg {
                Ok(Control::MessengerChanged { messenger_id }) => {
                    if let Ok(id) = messenger_id.parse() {
                        app.messengers.forget(Some(id));
                    }
                }
                Ok(Control::ContactChanged {
                    site_id,
                    identity,
                    contact_id,
                }) => match contact_id.parse() {
                    Ok(id) => app.contacts.forget(Some((SiteId(site_id), identity, id))),
                    Err(_) => app.contacts.forget(None),
                },
                Err(RecvError::Lagged(_)) => {
                    app.messengers.forget(None);
                    app.contacts.forget(None);
                }
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// The operator token: from `CONFIDANT_ADMIN_TOKEN`, else the one kept in the data directory,
/// else a new one, written there and printed once.
fn operator_token(config: &Config) -> anyhow::Result<SecretString> {
    if let Some(t) = &config.admin_token {
        return Ok(t.clone());
    }
    let path = config.data_dir.join("operator-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim();
        if !t.is_empty() {
            return Ok(SecretString::from(t));
        }
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let token = format!("cop_{}", random_token());
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "operator token (printed once, kept in {}): {token}",
        path.display()
    );
    Ok(SecretString::from(token))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")
}

/// `confidant rotate-keys`: a new signing key now; the old one stays published until every
/// token it signed has expired.
pub async fn rotate_keys(config: &Config) -> anyhow::Result<String> {
    let store = Store::connect(config.database_url(), Duration::from_secs(30)).await?;
    let kid = keys::rotate_now(&store, config.access_token_ttl).await;
    store.close().await;
    kid
}
