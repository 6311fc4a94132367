//! Contacts: the verified customers of a site, cached so that a returning contact's authorize
//! and its sends' sender names read nothing.

use std::sync::Arc;
use std::time::Duration;

use confidant_core::{ContactAttributes, ContactId, SiteId};
use confidant_realtime::{Control, Hub};
use confidant_store::{ContactRow, Store};
use moka::sync::Cache;

use crate::error::{ApiError, ApiResult};

/// How long a cached contact is trusted without a bus notice (the bus normally makes changes
/// visible at once; this bounds staleness when it is down).
const TTL: Duration = Duration::from_secs(5);
const MAX_CACHED: u64 = 200_000;

/// How long an erased contact is remembered as such: well past [`TTL`], after which no cache
/// holds it any more and the store (where it is gone) answers.
const ERASED_TTL: Duration = Duration::from_secs(600);

/// The most contacts a search answers (CONTRACT §14).
pub const SEARCH_MAX: usize = 50;

pub struct Contacts {
    store: Store,
    hub: Arc<dyn Hub>,
    by_identity: Cache<(SiteId, String), ContactRow>,
    /// Display names by contact id (the sender name of their messages).
    names: Cache<ContactId, Arc<str>>,
    /// Contacts erased lately (here or, told over the bus, on another process): refused at
    /// once, whatever a cache read in flight puts back in `names` meanwhile.
    erased: Cache<ContactId, ()>,
}

/// A contact's display name: its `name` attribute, else its identity.
fn display_name(c: &ContactRow) -> Arc<str> {
    Arc::from(
        c.attributes
            .0
            .get("name")
            .map_or(c.identity.as_str(), String::as_str),
    )
}

impl Contacts {
    pub fn new(store: Store, hub: Arc<dyn Hub>) -> Self {
        Self {
            store,
            hub,
            by_identity: Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(TTL)
                .build(),
            names: Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(TTL)
                .build(),
            erased: Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(ERASED_TTL)
                .build(),
        }
    }

    /// The contact `(site, identity)`, if there is one.
    pub async fn find(&self, site: SiteId, identity: &str) -> ApiResult<Option<ContactRow>> {
        if let Some(hit) = self.by_identity.get(&(site, identity.to_owned())) {
            return Ok(Some(hit));
        }
        let found = self.store.find_contact(site, identity).await?;
        if let Some(c) = &found {
            self.remember(c);
        }
        Ok(found)
    }

    /// Find or create the contact and bring its attributes up to date. A returning contact
    /// whose attributes did not change costs no write (and, cached, no read).
    pub async fn verified(
        &self,
        site: SiteId,
        identity: &str,
        update: &ContactAttributes,
        now: i64,
    ) -> ApiResult<ContactRow> {
        let known = match self.find(site, identity).await? {
            Some(c) if c.attributes.merged(update).is_none() => return Ok(c),
            known => known,
        };
        let changed = known.is_some();
        let c = self
            .store
            .upsert_contact(site, identity, update, known, now)
            .await?;
        self.remember(&c);
        if changed {
            self.hub.publish_control(Control::ContactChanged {
                site_id: c.site_id.0,
                identity: c.identity.clone(),
                contact_id: c.contact_id.to_string(),
            });
        }
        Ok(c)
    }

    /// The site's contact, or `404 not_found`.
    pub async fn get(&self, site: SiteId, id: ContactId) -> ApiResult<ContactRow> {
        self.store
            .get_contact(site, id)
            .await?
            .ok_or_else(|| ApiError::not_found("contact"))
    }

    /// Contacts whose identity or an attribute contains `text` (ignoring case), most recently
    /// updated first, at most [`SEARCH_MAX`] (CONTRACT §14).
    pub async fn search(&self, site: SiteId, text: &str) -> ApiResult<Vec<ContactRow>> {
        Ok(self.store.search_contacts(site, text, SEARCH_MAX).await?)
    }

    /// The name shown for a contact. A contact that no longer exists cannot act: 401.
    pub async fn name(&self, site: SiteId, id: ContactId) -> ApiResult<Arc<str>> {
        if let Some(hit) = self.names.get(&id) {
            return Ok(hit);
        }
        let Some(c) = self.store.get_contact(site, id).await? else {
            return Err(ApiError::unauthorized("the contact no longer exists"));
        };
        self.remember(&c);
        Ok(display_name(&c))
    }

    /// Another process changed a contact (or the bus lagged: `None` forgets them all).
    pub fn forget(&self, changed: Option<(SiteId, String, ContactId)>) {
        match changed {
            Some((site, identity, id)) => {
                self.by_identity.invalidate(&(site, identity));
                self.names.invalidate(&id);
            }
            None => {
                self.by_identity.invalidate_all();
                self.names.invalidate_all();
            }
        }
    }

    fn remember(&self, c: &ContactRow) {
        self.names.insert(c.contact_id, display_name(c));
        self.by_identity
            .insert((c.site_id, c.identity.clone()), c.clone());
    }

    /// Whether the contact still exists: what every use of its access token checks (an erased
    /// contact's tokens stop working at once). Cached like its name.
    pub async fn live(&self, site: SiteId, id: ContactId) -> ApiResult<bool> {
        if self.erased.contains_key(&id) {
            return Ok(false);
        }
        if self.names.contains_key(&id) {
            return Ok(true);
        }
        match self.store.get_contact(site, id).await? {
            Some(c) if !self.erased.contains_key(&id) => {
                self.remember(&c);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The contact was erased (here, or on another process): drop it from every cache and
    /// refuse it from now on.
    pub fn erased(&self, site: SiteId, identity: String, id: ContactId) {
        self.erased.insert(id, ());
        self.by_identity.invalidate(&(site, identity));
        self.names.invalidate(&id);
    }
}
