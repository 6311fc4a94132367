//! Messengers and their Security settings (CONTRACT §5): create, read, change; and the
//! compiled form every authorize and contact call uses, cached per process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use confidant_core::security::{Parsed, SecurityInput, rollover_seconds};
use confidant_core::time_fmt::now_millis;
use confidant_core::{AllowedUrl, MessengerId, PreviousValidation, Security, SiteId, Validation};
use confidant_identity::{CompiledMethod, Policy, PreviousMethod, PublicKey};
use confidant_realtime::{Control, Hub};
use confidant_store::{MessengerRow, Rollover, Store};
use moka::sync::Cache;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::service::audit::Who;
use crate::tokens::random_token;

/// A messenger with its settings parsed and its verification key compiled.
pub struct CachedMessenger {
    pub row: MessengerRow,
    pub security: Security,
    pub allowed: Vec<AllowedUrl>,
    pub method: CompiledMethod,
    pub policy: Policy,
    /// During a rollover (CONTRACT §5): the replaced validation, as stored and compiled. Its
    /// end is compared at verify time, so a cached copy never outlives it.
    pub previous: Option<(PreviousValidation, PreviousMethod)>,
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
const RECHECK: Duration = Duration::from_millis(1000);
const MAX_CACHED: u64 = 10_000;

pub struct Messengers {
    store: Store,
    hub: Arc<dyn Hub>,
    allow_private_urls: bool,
    /// By id, with when its version was last checked.
    cache: Cache<MessengerId, (Arc<CachedMessenger>, Instant)>,
}

impl Messengers {
    pub fn new(store: Store, hub: Arc<dyn Hub>, allow_private_urls: bool) -> Self {
        Self {
            store,
            hub,
            allow_private_urls,
            cache: Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// The messenger of a site, compiled, from the cache when it is fresh. `None` when it does
    /// not exist or belongs to another site.
    pub async fn compiled(
        &self,
        site: SiteId,
        id: MessengerId,
    ) -> ApiResult<Option<Arc<CachedMessenger>>> {
        if let Some((hit, checked_at)) = self.cache.get(&id) {
            if hit.row.site_id != site {
                return Ok(None);
            }
            if checked_at.elapsed() < RECHECK {
                return Ok(Some(hit));
            }
            // Stale: a cheap version check decides whether to rebuild.
            match self.store.messenger_version(site, id).await? {
                Some(v) if v == hit.row.version => {
                    self.cache.insert(id, (hit.clone(), Instant::now()));
                    return Ok(Some(hit));
                }
                Some(_) => {}
                None => {
                    self.cache.invalidate(&id);
                    return Ok(None);
                }
            }
        }
        let Some(row) = self.store.get_messenger(site, id).await? else {
            return Ok(None);
        };
        let compiled = Arc::new(compile(row)?);
        self.cache.insert(id, (compiled.clone(), Instant::now()));
        Ok(Some(compiled))
    }

    /// Like `compiled`, for a messenger id as a client sent it: one that is not a UUID names
    /// no messenger.
    pub async fn compiled_by_text(
        &self,
        site: SiteId,
        id: &str,
    ) -> ApiResult<Option<Arc<CachedMessenger>>> {
        match id.parse() {
            Ok(id) => self.compiled(site, id).await,
            Err(_) => Ok(None),
        }
    }

    /// The messenger that a page or client names by `siteId` and `messengerId`, as text;
    /// anything that does not name one is `404 messenger_not_found`.
    pub async fn named(
        &self,
        site: Option<&str>,
        id: Option<&str>,
    ) -> ApiResult<Arc<CachedMessenger>> {
        let site: SiteId = site
            .and_then(|s| s.parse().ok())
            .ok_or_else(ApiError::messenger_not_found)?;
        self.compiled_by_text(site, id.unwrap_or_default())
            .await?
            .ok_or_else(ApiError::messenger_not_found)
    }

    /// Another process changed this messenger (or the bus lagged: `None` forgets them all).
    pub fn forget(&self, id: Option<MessengerId>) {
        match id {
            Some(id) => self.cache.invalidate(&id),
            None => self.cache.invalidate_all(),
        }
    }

    pub async fn create(
        &self,
        site: SiteId,
        name: &str,
        security: &Value,
        who: &Who,
    ) -> ApiResult<(MessengerRow, Parsed)> {
        let parsed = self.parse_security(security, None)?;
        let stored = serde_json::to_string(&parsed.security).map_err(|e| ApiError::internal(&e))?;
        let row = self
            .store
            .create_messenger(
                site,
                name,
                &stored,
                now_millis(),
                Some(who.entry(
                    site,
                    "messenger.created",
                    serde_json::json!({"name": name, "method": parsed.security.validation.method()}),
                )),
            )
            .await?;
        Ok((row, parsed))
    }

    /// The site's messengers with their settings.
    pub async fn list(&self, site: SiteId) -> ApiResult<Vec<(MessengerRow, Security)>> {
        let rows = self.store.list_messengers(site).await?;
        rows.into_iter()
            .map(|m| {
                let s = stored_security(&m)?;
                Ok((m, s))
            })
            .collect()
    }

    /// One messenger of the site with its settings, or `404 messenger_not_found`.
    pub async fn get(&self, site: SiteId, id: MessengerId) -> ApiResult<(MessengerRow, Security)> {
        let row = self
            .store
            .get_messenger(site, id)
            .await?
            .ok_or_else(ApiError::messenger_not_found)?;
        let security = stored_security(&row)?;
        Ok((row, security))
    }

    /// Replace the Security settings of a messenger read with `get` (`previous` are its
    /// current ones); every process uses them within 2 seconds. A changed validation starts a
    /// rollover of the body's `rolloverSeconds` (0: none, and a running one ends); an
    /// unchanged one leaves a running rollover as it is (CONTRACT §5).
    pub async fn put_security(
        &self,
        row: &MessengerRow,
        previous: &Security,
        input: &Value,
        who: &Who,
    ) -> ApiResult<(MessengerRow, Parsed)> {
        let seconds = rollover_seconds(input)?;
        let parsed = self.parse_security(input, Some(previous))?;
        let stored = serde_json::to_string(&parsed.security).map_err(|e| ApiError::internal(&e))?;
        let now = now_millis();
        let changed = previous
            .validation
            .differs_from(&parsed.security.validation);
        let mut target = serde_json::json!({
            "messengerId": row.messenger_id.to_string(),
            "fields": changed_fields(previous, &parsed.security),
            "method": parsed.security.validation.method(),
        });
        let started = changed
            .then(|| PreviousValidation::starting(previous.validation.clone(), now, seconds))
            .flatten();
        let previous_json = started
            .as_ref()
            .map(|p| serde_json::to_string(&p.validation))
            .transpose()
            .map_err(|e| ApiError::internal(&e))?;
        let rollover = match (&started, &previous_json) {
            (Some(p), Some(json)) => Rollover::Start {
                validation_json: json,
                until: p.until,
            },
            _ if changed => Rollover::Clear,
            _ => Rollover::Keep,
        };
        // The rollover as the audit log keeps it: its length, the method it keeps and its end,
        // never a secret.
        if changed && let Some(t) = target.as_object_mut() {
            t.insert("rolloverSeconds".into(), seconds.into());
            if let Some(p) = &started {
                t.insert("previousValidation".into(), p.public_json());
            }
        }
        let entry = who.entry(row.site_id, "security.updated", target);
        let updated = self
            .store
            .update_security(
                row.site_id,
                row.messenger_id,
                &stored,
                rollover,
                now,
                &entry,
            )
            .await?;
        self.changed(row.messenger_id);
        Ok((updated, parsed))
    }

    /// End a messenger's running rollover now: its previous validation stops verifying on
    /// every process within 2 seconds. Nothing changes (and nothing is logged) when none runs.
    pub async fn end_rollover(&self, row: &MessengerRow, who: &Who) -> ApiResult<MessengerRow> {
        let entry = who.entry(
            row.site_id,
            "security.updated",
            serde_json::json!({
                "messengerId": row.messenger_id.to_string(),
                "fields": ["previousValidation"],
                "rolloverEnded": true,
            }),
        );
        let ended = self
            .store
            .end_rollover(row.site_id, row.messenger_id, now_millis(), &entry)
            .await?;
        match ended {
            Some(updated) => {
                self.changed(row.messenger_id);
                Ok(updated)
            }
            None => Ok(row.clone()),
        }
    }

    /// Forget the ended rollovers' previous validations every hour, so that their secrets
    /// leave the database (every reader ignores them after their end already).
    pub fn spawn_rollover_purge(&self) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                match store.purge_ended_rollovers(now_millis() / 1000).await {
                    Ok(n) if n > 0 => tracing::info!(messengers = n, "forgot ended rollovers"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "forgetting ended rollovers failed"),
                }
            }
        });
    }

    /// This process drops the messenger at once; the others hear of it over the bus.
    fn changed(&self, id: MessengerId) {
        self.cache.invalidate(&id);
        self.hub.publish_control(Control::MessengerChanged {
            messenger_id: id.to_string(),
        });
    }

    /// Rename a messenger of the site (`messenger.renamed`); every process shows the new name
    /// within 2 seconds (the frame's config carries it).
    pub async fn rename(
        &self,
        row: &MessengerRow,
        name: &str,
        who: &Who,
    ) -> ApiResult<MessengerRow> {
        let entry = who.entry(
            row.site_id,
            "messenger.renamed",
            serde_json::json!({
                "messengerId": row.messenger_id.to_string(),
                "from": row.name,
                "to": name,
            }),
        );
        let renamed = self
            .store
            .rename_messenger(row.site_id, row.messenger_id, name, now_millis(), &entry)
            .await
            .map_err(|e| match e {
                confidant_store::StoreError::NotFound => ApiError::messenger_not_found(),
                other => other.into(),
            })?;
        self.changed(row.messenger_id);
        Ok(renamed)
    }

    /// Delete a messenger of the site (`messenger.deleted`): from the answer on, authorize,
    /// its config and frame answer `404 messenger_not_found` and its access tokens `401` on
    /// every process within 2 seconds, and its contacts' open sockets close with 4401. Its
    /// conversations stay for agents (retention and erasure govern them). A second delete is
    /// `404 messenger_not_found`.
    pub async fn delete(&self, site: SiteId, id: MessengerId, who: &Who) -> ApiResult<()> {
        self.store
            .delete_messenger(site, id, now_millis(), |gone| {
                who.entry(
                    site,
                    "messenger.deleted",
                    serde_json::json!({"messengerId": id.to_string(), "name": gone.name}),
                )
            })
            .await
            .map_err(|e| match e {
                confidant_store::StoreError::NotFound => ApiError::messenger_not_found(),
                other => other.into(),
            })?;
        self.changed(id);
        self.hub.end_session(&messenger_session_key(id));
        Ok(())
    }

    /// Parse and check a Security object, including its key material.
    fn parse_security(&self, value: &Value, previous: Option<&Security>) -> ApiResult<Parsed> {
        let ctx = SecurityInput {
            previous,
            allow_private_urls: self.allow_private_urls,
        };
        let parsed = Security::parse(value, &ctx, random_token)?;
        if let Validation::PublicKey { public_key } = &parsed.security.validation {
            PublicKey::from_pem(public_key)
                .map_err(|e| ApiError::invalid(format!("validation.publicKey: {e}")))?;
        }
        Ok(parsed)
    }
}

/// The key that a contact socket watches (with `Hub::watch_session`) to hear that its
/// messenger was deleted, on any process.
pub fn messenger_session_key(id: MessengerId) -> String {
    format!("messenger:{id}")
}

fn stored_security(m: &MessengerRow) -> ApiResult<Security> {
    serde_json::from_str(&m.security).map_err(|e| {
        ApiError::internal(&format!(
            "stored security of messenger {}: {e}",
            m.messenger_id
        ))
    })
}

/// The previous validation of a messenger row while its rollover lasts at `now` (Unix
/// seconds); `None` without one or after its end.
pub fn previous_validation(m: &MessengerRow, now: i64) -> ApiResult<Option<PreviousValidation>> {
    let Some((json, until)) = &m.previous_validation else {
        return Ok(None);
    };
    if *until <= now {
        return Ok(None);
    }
    let validation: Validation = serde_json::from_str(json).map_err(|e| {
        ApiError::internal(&format!(
            "stored previous validation of messenger {}: {e}",
            m.messenger_id
        ))
    })?;
    Ok(Some(PreviousValidation {
        validation,
        until: *until,
    }))
}

/// A messenger's Security as reads show it (CONTRACT §5): never a secret but `shown_secret`
/// (the one a request generated), with `previousValidation` while a rollover lasts.
pub fn public_security(
    m: &MessengerRow,
    security: &Security,
    shown_secret: Option<&str>,
) -> ApiResult<Value> {
    let mut shown = security.public_json(shown_secret);
    let previous = previous_validation(m, now_millis() / 1000)?;
    if let Some(obj) = shown.as_object_mut() {
        obj.insert(
            "previousValidation".into(),
            previous.map_or(Value::Null, |p| p.public_json()),
        );
    }
    Ok(shown)
}

fn compile(row: MessengerRow) -> ApiResult<CachedMessenger> {
    let security = stored_security(&row)?;
    // A rollover that has ended by now is never tried again; one that ends later is dropped
    // at verify time by its `until`.
    let previous = previous_validation(&row, now_millis() / 1000)?.and_then(|p| {
        match CompiledMethod::compile(&p.validation) {
            Ok(method) => {
                let until = p.until;
                Some((p, PreviousMethod { method, until }))
            }
            Err(e) => {
                tracing::error!(messenger = %row.messenger_id, error = %e, "the stored previous validation does not compile; it is not used");
                None
            }
        }
    });
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
        previous,
        security,
        row,
    })
}

/// The names of the top-level Security fields that differ (never their values: the shared
/// token is one of them).
fn changed_fields(before: &Security, after: &Security) -> Vec<String> {
    let (Ok(Value::Object(a)), Ok(Value::Object(b))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}
