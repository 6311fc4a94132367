//! The composition root: the services built from the configuration, shared by every handler
//! as `AppState`. Nothing here handles a request.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::FromRef;
use confidant_core::SiteId;
use confidant_identity::{ContactVerifier, JwksCache, SystemClock};
use confidant_realtime::{BusSettings, Control, Hub, LocalHub, NatsHub};
use confidant_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::config::Config;
use crate::jobs::Jobs;
use crate::jwks_http::HttpJwksFetcher;
use crate::limits::RateLimiter;
use crate::notices::Notices;
use crate::notices::mailer::Mailer;
use crate::outbound::UrlRule;
use crate::service::access::Access;
use crate::service::accounts::Accounts;
use crate::service::appearance::Appearances;
use crate::service::attachments::{Attachments, SWEEP_EVERY, UNREFERENCED_AGE};
use crate::service::audit::AuditLog;
use crate::service::authorize::Authorizer;
use crate::service::contacts::Contacts;
use crate::service::conversations::Conversations;
use crate::service::keys;
use crate::service::lifecycle::Lifecycle;
use crate::service::messengers::Messengers;
use crate::service::webhooks::{self, WebhookHandler, WebhookSink, Webhooks};
use crate::service::workflow::Workflow;
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
    /// The messengers' look and business hours.
    pub appearance: Appearances,
    pub contacts: Arc<Contacts>,
    pub access: Arc<Access>,
    pub authorizer: Authorizer,
    pub conversations: Arc<Conversations>,
    pub attachments: Arc<Attachments>,
    /// The durable job queue's runner, and the event sinks (jobs.rs).
    pub jobs: Arc<Jobs>,
    /// Offline notices by email, and the contacts' presence they depend on.
    pub notices: Arc<Notices>,
    pub webhooks: Arc<Webhooks>,
    /// The audit log (§13) and the site settings (§12).
    pub audit: Arc<AuditLog>,
    /// The OpenAPI document of the router serving this app (set when the router is built).
    pub openapi: std::sync::OnceLock<utoipa::openapi::OpenApi>,
    /// Retention, export and erasure (§14).
    pub lifecycle: Arc<Lifecycle>,
    /// Assignment, the agents' lists and canned replies (§16).
    pub workflow: Arc<Workflow>,
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
        prepare_data_dir(&config.data_dir)?;
        let store = Store::connect(
            config.database_url(),
            Duration::from_secs(30),
            &config.master_key_file,
        )
        .await?;
        let hub: Arc<dyn Hub> = match &config.bus_url {
            Some(url) => Arc::new(
                NatsHub::connect(BusSettings {
                    url: url.expose_secret(),
                    creds_file: config.bus_creds_file.as_deref(),
                    require_tls: config.bus_tls,
                })
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
            Arc::new(HttpJwksFetcher::new(UrlRule {
                allow_private: config.allow_private_urls,
            })),
            clock.clone(),
        ));
        let messengers = Arc::new(Messengers::new(
            store.clone(),
            hub.clone(),
            config.allow_private_urls,
        ));
        let contacts = Arc::new(Contacts::new(store.clone(), hub.clone()));
        let blobs = crate::blobs::Blobs::open(&config.attachments)?;
        tracing::info!(store = %blobs.describe, "attachment store");
        let attachments = Arc::new(Attachments::new(store.clone(), blobs));
        attachments.spawn_sweeper(SWEEP_EVERY, UNREFERENCED_AGE);
        let conversations = Arc::new(Conversations::new(
            store.clone(),
            hub.clone(),
            contacts.clone(),
            attachments.clone(),
        ));
        let workflow = Arc::new(Workflow::new(store.clone(), hub.clone()));
        {
            let conversations = Arc::downgrade(&conversations);
            let workflow = Arc::downgrade(&workflow);
            store.on_commit(Arc::new(move |out| {
                if let Some(c) = conversations.upgrade() {
                    c.publish_stored(out);
                }
                // Agents hear of a conversation opened as they see it (§16), in commit order;
                // a close is published by the close call itself (it knows the assignee).
                if out.opened
                    && let Some(w) = workflow.upgrade()
                {
                    w.publish_opened(out);
                }
            }));
        }
        let jobs = Jobs::new(store.clone());
        let mailer = config.smtp.as_ref().map(Mailer::new).transpose()?;
        let notices = Arc::new(Notices::new(
            store.clone(),
            hub.clone(),
            mailer,
            config.allow_private_urls,
        ));
        crate::notices::queue::wire(&jobs, &notices);
        let webhooks = Arc::new(Webhooks::new(
            store.clone(),
            UrlRule {
                allow_private: config.allow_private_urls,
            },
        ));
        let lifecycle = Arc::new(Lifecycle::new(
            store.clone(),
            hub.clone(),
            contacts.clone(),
            attachments.clone(),
        ));
        let app = Arc::new(App {
            audit: Arc::new(AuditLog::new(store.clone())),
            appearance: Appearances::new(store.clone()),
            notices,
            limits: RateLimiter::new(config.rate_limits, config.trusted_proxies.clone()),
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
            attachments,
            jobs,
            webhooks,
            openapi: std::sync::OnceLock::new(),
            lifecycle,
            workflow,
        });
        app.jobs
            .add_sink(Arc::new(WebhookSink(app.webhooks.clone())));
        app.jobs.register(
            webhooks::JOB_KIND,
            Arc::new(WebhookHandler(app.webhooks.clone())),
        );
        app.lifecycle.schedule(&app.jobs).await;
        app.jobs.start(app.shutdown.clone());
        spawn_cache_invalidation(&app);
        app.accounts.spawn_failure_purge();
        app.messengers.spawn_rollover_purge();
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
                Ok(Control::ContactErased {
                    site_id,
                    identity,
                    contact_id,
                }) => match contact_id.parse() {
                    Ok(id) => app.contacts.erased(SiteId(site_id), identity, id),
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
    let token = format!("cop_{}", random_token());
    confidant_store::write_new_private(&path, &token)
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "operator token (printed once, kept in {}): {token}",
        path.display()
    );
    Ok(SecretString::from(token))
}

/// Create the data directory (0700) if it is missing. One that exists is left as the operator
/// made it, but a directory other users can read or write is reported in the log: it holds the
/// database and the master key (CONTRACT §2 Files).
pub fn prepare_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    confidant_store::private_dir(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir)
            .with_context(|| format!("cannot read the data directory {}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory is open to other users (group or others may read or enter it); \
                 run `chmod 700` on it"
            );
        }
    }
    Ok(())
}

/// `confidant rotate-keys`: a new signing key now; the old one stays published until every
/// token it signed has expired.
pub async fn rotate_keys(config: &Config) -> anyhow::Result<String> {
    let store = Store::connect(
        config.database_url(),
        Duration::from_secs(30),
        &config.master_key_file,
    )
    .await?;
    let kid = keys::rotate_now(&store, config.access_token_ttl).await;
    store.close().await;
    kid
}

/// `confidant rotate-master-key`: wrap every data key under the key in `new_key_file` as well
/// (generated there if missing); with `retire`, drop the wraps under any other key. Running
/// servers keep their unwrapped data keys, so nothing stops. Returns a line for the operator.
pub async fn rotate_master_key(
    config: &Config,
    new_key_file: &std::path::Path,
    retire: bool,
) -> anyhow::Result<String> {
    let (id, rewrapped, dropped) = Store::rotate_master_key(
        config.database_url(),
        Duration::from_secs(30),
        &config.master_key_file,
        new_key_file,
        retire,
    )
    .await?;
    Ok(if retire {
        format!(
            "data keys wrapped under master key {id} ({rewrapped} new wraps); {dropped} wraps \
             under other keys dropped: only {} opens the data now",
            new_key_file.display()
        )
    } else {
        format!(
            "data keys wrapped under master key {id} too ({rewrapped} new wraps); restart every \
             process with --master-key-file {}, then run this again with --retire-old",
            new_key_file.display()
        )
    })
}
