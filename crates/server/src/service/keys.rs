//! The key ring that signs access tokens: created on first start, rotated every 30 days (and by
//! `confidant rotate-keys`); a retired key stays published until every token it signed expired.

use std::sync::Weak;
use std::time::Duration;

use anyhow::Context as _;
use confidant_core::time_fmt::now_millis;
use confidant_identity::{AccessTokens, StoredSigningKey};
use confidant_store::{SigningKeyRow, Store};

use super::access::Access;

/// Signing keys rotate every 30 days.
pub const ROTATION_SECS: i64 = 30 * 86_400;

fn now_secs() -> i64 {
    now_millis() / 1000
}

/// The key ring as the store has it, after creating the first key or rotating an old one when
/// due. Every process runs this at start and every 30 seconds.
pub async fn current(store: &Store, ttl: i64) -> anyhow::Result<Vec<StoredSigningKey>> {
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
        Some(created) if now - created > ROTATION_SECS => {
            let k = AccessTokens::generate_key(now);
            store
                .rotate_signing_key(
                    &to_row(&k),
                    now,
                    retired_keys_end(now, ttl),
                    confidant_store::Actor::System,
                )
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

fn to_row(k: &StoredSigningKey) -> SigningKeyRow {
    SigningKeyRow {
        kid: k.kid.clone(),
        pkcs8: k.pkcs8_der.clone(),
        created_at: k.created_at,
        retired_at: k.retired_at,
    }
}

/// The signer for this process, from the stored ring.
pub async fn load(store: &Store, issuer: String, ttl: i64) -> anyhow::Result<AccessTokens> {
    let keys = current(store, ttl).await?;
    AccessTokens::new(issuer, ttl, keys).context("stored signing keys do not load")
}

/// Keep the ring current: rotate when the active key is 30 days old, and pick up keys that
/// other processes (or `confidant rotate-keys`) added.
pub fn spawn_refresh(store: Store, access: Weak<Access>, ttl: i64) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(access) = access.upgrade() else {
                break;
            };
            let refreshed = current(&store, ttl)
                .await
                .and_then(|keys| Ok(access.tokens.set_keys(keys)?));
            if let Err(e) = refreshed {
                tracing::warn!(error = %e, "signing key refresh failed");
            }
        }
    });
}

/// `confidant rotate-keys`: a new signing key now.
pub async fn rotate_now(store: &Store, ttl: i64) -> anyhow::Result<String> {
    let now = now_secs();
    let k = AccessTokens::generate_key(now);
    store
        .rotate_signing_key(
            &to_row(&k),
            now,
            retired_keys_end(now, ttl),
            confidant_store::Actor::Operator,
        )
        .await?;
    Ok(k.kid)
}
