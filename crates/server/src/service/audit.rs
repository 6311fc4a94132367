//! The audit log (CONTRACT §13) as the services write and read it, and the site settings
//! (§12) that an admin changes with an entry.
//!
//! Every change an admin, agent or the operator makes is recorded by the store function that
//! makes it, in the same transaction: services build the [`AuditEntry`] with [`Who::entry`]
//! and pass it down. [`Who`] is the caller (from its [`Principal`]) and its address.

use std::net::IpAddr;

use confidant_core::SiteId;
use confidant_core::time_fmt::now_millis;
use confidant_store::{Actor, AuditEntry, AuditRow, ChainCheck, SiteSettings, Store, StoreError};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::service::accounts::Principal;

/// Who does something, and from which address: what an audit entry says of its actor.
#[derive(Debug, Clone)]
pub struct Who {
    pub actor: Actor,
    pub ip: Option<String>,
}

impl Who {
    /// The operator or an agent, calling from `ip`.
    pub fn of(p: &Principal, ip: Option<IpAddr>) -> Self {
        let actor = match p {
            Principal::Operator => Actor::Operator,
            Principal::Agent { agent, .. } => Actor::Agent {
                id: agent.agent_id.to_string(),
                email: agent.email.clone(),
            },
        };
        Self {
            actor,
            ip: ip.map(|ip| ip.to_canonical().to_string()),
        }
    }

    /// The server itself (the retention pass, a lockout, a key rotation).
    pub fn system() -> Self {
        Self {
            actor: Actor::System,
            ip: None,
        }
    }

    /// An entry of `site`'s log, now. `target` names what was acted on: ids, emails, the
    /// names of changed fields; never a secret, a password or a TOTP secret.
    pub fn entry(&self, site: SiteId, action: &'static str, target: Value) -> AuditEntry {
        AuditEntry::new(site, now_millis(), self.actor.clone(), action, target)
            .with_ip(self.ip.clone())
    }
}

/// The most entries one page of the log holds.
pub const AUDIT_PAGE_MAX: i64 = 1000;

pub struct AuditLog {
    store: Store,
}

impl AuditLog {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Append one entry in its own transaction (for events that change nothing else).
    pub async fn record(&self, entry: &AuditEntry) -> ApiResult<AuditRow> {
        Ok(self.store.audit(entry).await?)
    }

    /// Entries after `after` (at most `limit`), and the newest entry's `seq`.
    pub async fn page(
        &self,
        site: SiteId,
        after: i64,
        limit: i64,
    ) -> ApiResult<(Vec<AuditRow>, i64)> {
        self.site_exists(site).await?;
        let rows = self
            .store
            .audit_page(site, after.max(0), limit.clamp(1, AUDIT_PAGE_MAX))
            .await?;
        Ok((rows, self.store.audit_last_seq(site).await?))
    }

    pub async fn verify(&self, site: SiteId) -> ApiResult<ChainCheck> {
        self.site_exists(site).await?;
        Ok(self.store.verify_audit(site).await?)
    }

    pub async fn settings(&self, site: SiteId) -> ApiResult<SiteSettings> {
        self.store
            .site_settings(site)
            .await?
            .ok_or_else(|| ApiError::not_found("site"))
    }

    /// Store the settings `new` over `old` (as read by [`Self::settings`]), with a
    /// `settings.updated` entry naming the fields that changed.
    pub async fn put_settings(
        &self,
        site: SiteId,
        old: SiteSettings,
        new: SiteSettings,
        who: &Who,
    ) -> ApiResult<SiteSettings> {
        let mut changed = Vec::new();
        if old.idle_timeout_minutes != new.idle_timeout_minutes {
            changed.push("idleTimeoutMinutes");
        }
        if old.require_totp != new.require_totp {
            changed.push("requireTotp");
        }
        if old.retention_days != new.retention_days {
            changed.push("retentionDays");
        }
        let entry = who.entry(
            site,
            "settings.updated",
            serde_json::json!({"siteId": site.0, "fields": changed,
                "idleTimeoutMinutes": new.idle_minutes(), "requireTotp": new.require_totp,
                "retentionDays": new.retention_days}),
        );
        self.store
            .put_site_settings(site, new, &entry)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("site"),
                other => other.into(),
            })
    }

    async fn site_exists(&self, site: SiteId) -> ApiResult<()> {
        self.store
            .get_site(site)
            .await?
            .map(|_| ())
            .ok_or_else(|| ApiError::not_found("site"))
    }
}
