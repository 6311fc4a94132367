//! Confidant's own access tokens: signed after authorize, checked on every contact call and
//! socket. A token's signature is checked once per process and the result cached by its text
//! (a contact presents the same token on every call; Ed25519 costs ~45 µs); its expiry is
//! checked on every use.

use std::sync::Arc;
use std::time::Duration;

use confidant_core::time_fmt::now_millis;
use confidant_core::{ContactId, ContactScope, MessengerId, SiteId};
use confidant_identity::{AccessClaims, AccessTokens};
use moka::sync::Cache;

use super::contacts::Contacts;
use super::messengers::{CachedMessenger, Messengers};
use crate::error::{ApiError, ApiResult};

const MAX_CACHED: u64 = 100_000;

pub struct Access {
    pub tokens: AccessTokens,
    verified: Cache<Arc<str>, Arc<AccessClaims>>,
}

/// A contact authenticated by an access token: what it may see, and its messenger.
#[derive(Clone)]
pub struct ContactSession {
    pub scope: ContactScope,
    /// Unix seconds.
    pub expires_at: i64,
    pub messenger: Arc<CachedMessenger>,
}

impl Access {
    pub fn new(tokens: AccessTokens, ttl_secs: i64) -> Self {
        Self {
            tokens,
            verified: Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(Duration::from_secs(ttl_secs.max(1).unsigned_abs()))
                .build(),
        }
    }

    /// The claims of a valid, unexpired access token.
    pub fn verify(&self, token: &str) -> Option<Arc<AccessClaims>> {
        let now = now_millis() / 1000;
        if let Some(c) = self.verified.get(token) {
            return (c.exp > now).then_some(c);
        }
        let claims = Arc::new(self.tokens.verify(token, now).ok()?);
        self.verified.insert(Arc::from(token), claims.clone());
        Some(claims)
    }

    /// A contact's session from its access token, with its messenger (which must still exist)
    /// and its contact (which must not have been erased: CONTRACT §14).
    pub async fn contact(
        &self,
        messengers: &Messengers,
        contacts: &Contacts,
        token: &str,
    ) -> ApiResult<ContactSession> {
        let invalid = || ApiError::unauthorized("the access token is invalid or expired");
        let claims = self.verify(token).ok_or_else(invalid)?;
        let contact: ContactId = claims.sub.parse().map_err(|_| invalid())?;
        let messenger_id: MessengerId = claims.messenger_id.parse().map_err(|_| invalid())?;
        let site = SiteId(claims.site_id);
        let messenger = messengers
            .compiled(site, messenger_id)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized("the access token's messenger no longer exists")
            })?;
        if !contacts.live(site, contact).await? {
            return Err(ApiError::unauthorized(
                "the access token's contact no longer exists",
            ));
        }
        Ok(ContactSession {
            scope: ContactScope {
                site,
                contact,
                messenger: messenger_id,
                preview: claims.preview,
            },
            expires_at: claims.exp,
            messenger,
        })
    }
}
