//! The application state shared by every handler, and how it is built.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::FromRef;
use confidant_core::{AllowedUrl, ContactId, MessengerId, Security, SiteId};
use confidant_identity::{
    AccessTokens, CompiledMethod, ContactVerifier, JwksCache, Policy, StoredSigningKey, SystemClock,
};
use confidant_realtime::{Control, Hub, LocalHub, NatsHub};
use confidant_store::{MessengerRow, Store};
use dashmap::DashMap;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;

use crate::config::{Config, Secret};
use crate::error::{ApiError, ApiResult};
use crate::jwks_http::HttpJwksFetcher;
use crate::limits::RateLimiter;

/// A messenger with its settings parsed and its verification key compiled, cached per process.
pub struct CachedMessenger {
    pub row: MessengerRow,
    pub security: Security,
    pub allowed: Vec<AllowedUrl>,
    pub method: CompiledMethod,
    pub policy: Policy,
}

impl CachedMessenger {
    /// Whether browsers on `origin` may use this messenger.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed.iter().any(|u| u.allows_origin(origin))
    }
}

/// How long a cached messenger is trusted before its version is checked again. Changes on this
/// process drop the entry at once; other processes hear of them over the bus, and this bounds
/// the delay when the bus is down (CONTRACT §5: within 2 seconds).
const MESSENGER_RECHECK: Duration = Duration::from_millis(1000);

/// How long a cached contact is trusted without a bus notice (the bus normally makes changes
/// visible at once; this bounds staleness when it is down).
const CONTACT_CACHE_TTL: Duration = Duration::from_secs(5);
const MAX_CACHED_CONTACTS: usize = 200_000;

fn display_name(c: &confidant_store::ContactRow) -> String {
    c.attributes
        .0
        .get("name")
        .cloned()
        .unwrap_or_else(|| c.identity.clone())
}

pub struct App {
    pub config: Config,
    pub store: Store,
    pub hub: Arc<dyn Hub>,
    pub verifier: ContactVerifier,
    pub access: AccessTokens,
    pub limits: RateLimiter,
    pub operator_token: Secret,
    pub metrics: PrometheusHandle,
    pub shutdown: watch::Receiver<bool>,
    /// Set once by `confidant demo` after it prepared its site.
    pub demo: std::sync::OnceLock<crate::routes::demo::DemoState>,
    /// Access tokens already verified, by their exact text: a contact presents the same token
    /// on every call, and its signature check (Ed25519, ~45 µs) need not run each time.
    verified_tokens: DashMap<String, confidant_identity::AccessClaims>,
    /// Contacts by (site, identity), so that a returning contact's authorize reads nothing.
    /// Changes here update it; changes elsewhere arrive over the bus; entries also age out.
    contacts: DashMap<(i64, String), (confidant_store::ContactRow, Instant)>,
    /// Contacts' display names by contact id (the sender name of their messages).
    contact_names: DashMap<String, (String, Instant)>,
    /// Messengers by id, with when their version was last checked.
    messengers: DashMap<String, (Arc<CachedMessenger>, Instant)>,
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

pub fn now_secs() -> i64 {
    confidant_core::time_fmt::now_millis() / 1000
}

pub fn now_millis() -> i64 {
    confidant_core::time_fmt::now_millis()
}

impl App {
    pub async fn build(
        config: Config,
        metrics: PrometheusHandle,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Arc<App>> {
        let store = Store::connect(&config.database_url, Duration::from_secs(30)).await?;
        let hub: Arc<dyn Hub> = match &config.bus_url {
            Some(url) => Arc::new(
                NatsHub::connect(url)
                    .await
                    .context("cannot connect to the bus")?,
            ),
            None => Arc::new(LocalHub::new()),
        };
        let operator_token = operator_token(&config)?;
        let access = load_signing_keys(&store, &config).await?;
        let clock = Arc::new(SystemClock);
        let jwks = Arc::new(JwksCache::new(
            Arc::new(HttpJwksFetcher::new(config.allow_http_jwks)),
            clock.clone(),
        ));
        let app = Arc::new(App {
            limits: RateLimiter::new(config.rate_limits),
            verifier: ContactVerifier::new(jwks, clock),
            config,
            store,
            hub,
            access,
            operator_token,
            metrics,
            shutdown,
            demo: std::sync::OnceLock::new(),
            messengers: DashMap::new(),
            verified_tokens: DashMap::new(),
            contacts: DashMap::new(),
            contact_names: DashMap::new(),
        });
        app.spawn_control_listener();
        Ok(app)
    }

    /// Drop cached messengers that another process changed.
    fn spawn_control_listener(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let mut rx = self.hub.subscribe_control();
        tokio::spawn(async move {
            loop {
                let msg = rx.recv().await;
                let Some(app) = weak.upgrade() else { break };
                match msg {
                    Ok(Control::MessengerChanged { messenger_id }) => {
                        app.messengers.remove(&messenger_id);
                    }
                    Ok(Control::ContactChanged {
                        site_id,
                        identity,
                        contact_id,
                    }) => {
                        app.contacts.remove(&(site_id, identity));
                        app.contact_names.remove(&contact_id);
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        app.messengers.clear();
                        app.contacts.clear();
                        app.contact_names.clear();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    /// The messenger of a site, from the cache when it is fresh. `None` when the messenger does
    /// not exist or belongs to another site.
    pub async fn messenger(
        &self,
        site_id: SiteId,
        messenger_id: &str,
    ) -> ApiResult<Option<Arc<CachedMessenger>>> {
        let Some(id) = crate::extract::uuid_id::<MessengerId>(messenger_id) else {
            return Ok(None);
        };
        if let Some((hit, checked_at)) = self.messengers.get(messenger_id).map(|e| e.clone()) {
            if hit.row.site_id != site_id {
                return Ok(None);
            }
            if checked_at.elapsed() < MESSENGER_RECHECK {
                return Ok(Some(hit));
            }
            // Stale: a cheap version check decides whether to rebuild.
            match self.store.messenger_version(site_id, id).await? {
                Some(v) if v == hit.row.version => {
                    self.messengers
                        .insert(messenger_id.to_owned(), (hit.clone(), Instant::now()));
                    return Ok(Some(hit));
                }
                Some(_) => {}
                None => {
                    self.messengers.remove(messenger_id);
                    return Ok(None);
                }
            }
        }
        let Some(row) = self.store.get_messenger(site_id, id).await? else {
            return Ok(None);
        };
        let cached = Arc::new(compile_messenger(row)?);
        self.messengers
            .insert(messenger_id.to_owned(), (cached.clone(), Instant::now()));
        Ok(Some(cached))
    }

    /// The claims of a valid, unexpired access token. Tokens are cached by their exact text
    /// after the first full check; the expiry is checked on every use.
    pub fn verify_access_token(&self, token: &str) -> Option<confidant_identity::AccessClaims> {
        const MAX_CACHED: usize = 100_000;
        let now = now_secs();
        if let Some(c) = self.verified_tokens.get(token)
            && c.exp > now
        {
            return Some(c.clone());
        }
        let claims = self.access.verify(token, now).ok()?;
        if self.verified_tokens.len() >= MAX_CACHED {
            self.verified_tokens.retain(|_, c| c.exp > now);
            if self.verified_tokens.len() >= MAX_CACHED {
                self.verified_tokens.clear();
            }
        }
        self.verified_tokens
            .insert(token.to_owned(), claims.clone());
        Some(claims)
    }

    /// The contact `(site, identity)`, from the cache while it is fresh.
    pub async fn contact(
        &self,
        site: SiteId,
        identity: &str,
    ) -> ApiResult<Option<confidant_store::ContactRow>> {
        let key = (site.0, identity.to_owned());
        if let Some(hit) = self.contacts.get(&key)
            && hit.1.elapsed() < CONTACT_CACHE_TTL
        {
            return Ok(Some(hit.0.clone()));
        }
        let found = self.store.find_contact(site, identity).await?;
        if let Some(c) = &found {
            self.cache_contact(c);
        }
        Ok(found)
    }

    /// A contact's display name: its `name` attribute, else its identity.
    pub async fn contact_name(&self, site: SiteId, contact_id: &str) -> ApiResult<Option<String>> {
        if let Some(hit) = self.contact_names.get(contact_id)
            && hit.1.elapsed() < CONTACT_CACHE_TTL
        {
            return Ok(Some(hit.0.clone()));
        }
        let Ok(id) = contact_id.parse::<ContactId>() else {
            return Ok(None);
        };
        let Some(c) = self.store.get_contact(site, id).await? else {
            return Ok(None);
        };
        self.cache_contact(&c);
        Ok(Some(display_name(&c)))
    }

    fn cache_contact(&self, c: &confidant_store::ContactRow) {
        if self.contacts.len() >= MAX_CACHED_CONTACTS {
            self.contacts.clear();
            self.contact_names.clear();
        }
        let now = Instant::now();
        self.contact_names
            .insert(c.contact_id.to_string(), (display_name(c), now));
        self.contacts
            .insert((c.site_id.0, c.identity.clone()), (c.clone(), now));
    }

    /// A contact was created or changed here: cache it, and tell the other processes.
    pub fn contact_stored(&self, c: &confidant_store::ContactRow, changed: bool) {
        self.cache_contact(c);
        if changed {
            self.hub.publish_control(Control::ContactChanged {
                site_id: c.site_id.0,
                identity: c.identity.clone(),
                contact_id: c.contact_id.to_string(),
            });
        }
    }

    /// A messenger's settings changed here: forget it now, and tell the other processes.
    pub fn messenger_changed(&self, messenger_id: &str) {
        self.messengers.remove(messenger_id);
        self.hub.publish_control(Control::MessengerChanged {
            messenger_id: messenger_id.to_owned(),
        });
    }
}

pub fn compile_messenger(row: MessengerRow) -> ApiResult<CachedMessenger> {
    let security: Security = serde_json::from_str(&row.security).map_err(|e| {
        ApiError::internal(&format!(
            "stored security of messenger {}: {e}",
            row.messenger_id
        ))
    })?;
    let method = CompiledMethod::compile(&security.validation).map_err(|e| {
        ApiError::internal(&format!(
            "stored key of messenger {}: {e}",
            row.messenger_id
        ))
    })?;
    Ok(CachedMessenger {
        allowed: security.allowed(),
        policy: Policy::from_security(&security),
        method,
        security,
        row,
    })
}

/// The operator token: from `CONFIDANT_ADMIN_TOKEN`, else the one kept in the data directory,
/// else a new one, written there and printed once.
fn operator_token(config: &Config) -> anyhow::Result<Secret> {
    if let Some(t) = &config.admin_token {
        return Ok(t.clone());
    }
    let path = config.data_dir.join("operator-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok(Secret(t));
        }
    }
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let token = format!("cop_{}", crate::auth::random_token());
    write_private(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "operator token (printed once, kept in {}): {token}",
        path.display()
    );
    Ok(Secret(token))
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

/// Signing keys rotate every 30 days; a retired key stays published until every token it
/// signed has expired.
pub const KEY_ROTATION_SECS: i64 = 30 * 86_400;

/// The key ring as the store has it, after creating the first key or rotating an old one when
/// due. Every process runs this at start and every 30 seconds.
async fn current_signing_keys(store: &Store, ttl: i64) -> anyhow::Result<Vec<StoredSigningKey>> {
    let now = now_secs();
    let keys = store.signing_keys().await?;
    let newest_active = keys
        .iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.created_at)
        .max();
    let keys = match newest_active {
        None => {
            store
                .ensure_signing_key(&to_row(&AccessTokens::generate_key(now)))
                .await?;
            store.signing_keys().await?
        }
        Some(created) if now - created > KEY_ROTATION_SECS => {
            let k = AccessTokens::generate_key(now);
            store
                .rotate_signing_key(&to_row(&k), now, retired_keys_end(now, ttl))
                .await?;
            tracing::info!(kid = %k.kid, "rotated the access-token signing key");
            store.signing_keys().await?
        }
        Some(_) => keys,
    };
    Ok(keys
        .into_iter()
        .map(|k| StoredSigningKey {
            kid: k.kid,
            pkcs8_der: k.pkcs8,
            created_at: k.created_at,
            retired_at: k.retired_at,
        })
        .collect())
}

/// Keys retired before this moment signed only tokens that have expired (with 5 minutes' margin).
fn retired_keys_end(now: i64, ttl: i64) -> i64 {
    now - ttl - 300
}

async fn load_signing_keys(store: &Store, config: &Config) -> anyhow::Result<AccessTokens> {
    let keys = current_signing_keys(store, config.access_token_ttl).await?;
    AccessTokens::new(config.public_url.clone(), config.access_token_ttl, keys)
        .context("stored signing keys do not load")
}

pub fn to_row(k: &StoredSigningKey) -> confidant_store::SigningKeyRow {
    confidant_store::SigningKeyRow {
        kid: k.kid.clone(),
        pkcs8: k.pkcs8_der.clone(),
        created_at: k.created_at,
        retired_at: k.retired_at,
    }
}

/// Keep the key ring current: rotate when the active key is 30 days old, and pick up keys that
/// other processes (or `confidant rotate-keys`) added.
pub fn spawn_key_rotation(app: &Arc<App>) {
    let weak = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { break };
            if let Err(e) = rotate_if_due(&app).await {
                tracing::warn!(error = %e, "signing key refresh failed");
            }
        }
    });
}

async fn rotate_if_due(app: &App) -> anyhow::Result<()> {
    let keys = current_signing_keys(&app.store, app.config.access_token_ttl).await?;
    app.access.set_keys(keys)?;
    Ok(())
}

/// `confidant rotate-keys`: a new signing key now; the old one stays published until every
/// token it signed has expired.
pub async fn rotate_keys(config: &Config) -> anyhow::Result<String> {
    let store = Store::connect(&config.database_url, Duration::from_secs(30)).await?;
    let now = now_secs();
    let k = AccessTokens::generate_key(now);
    store
        .rotate_signing_key(
            &to_row(&k),
            now,
            retired_keys_end(now, config.access_token_ttl),
        )
        .await?;
    store.close().await;
    Ok(k.kid)
}
