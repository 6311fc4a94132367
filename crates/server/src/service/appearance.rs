//! A messenger's appearance and availability (title, greeting, colour, business hours, away
//! message, reply time): read and replaced by its admins, shown by the frame. Whether the
//! business is open now is computed here, by the zone's rules, never by the browser's clock.

use confidant_core::appearance::{Appearance, Availability};
use confidant_core::time_fmt::{now_millis, rfc3339_millis};
use confidant_core::{MessengerId, SiteId};
use confidant_store::{Store, StoreError};
use serde_json::Value;

use crate::api::PublicAppearance;
use crate::error::{ApiError, ApiResult};
use crate::service::audit::Who;
use crate::service::messengers::CachedMessenger;

pub struct Appearances {
    store: Store,
}

impl Appearances {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// A messenger's settings (the defaults when never set). The caller checked that the
    /// messenger is the site's.
    pub async fn get(&self, site: SiteId, messenger: MessengerId) -> ApiResult<Appearance> {
        let Some(json) = self.store.appearance_settings(site, messenger).await? else {
            return Ok(Appearance::default());
        };
        let stored: Value = serde_json::from_str(&json).map_err(|e| {
            ApiError::internal(&format!("stored appearance of messenger {messenger}: {e}"))
        })?;
        Appearance::parse(&stored).map_err(|e| {
            ApiError::internal(&format!("stored appearance of messenger {messenger}: {e}"))
        })
    }

    /// Replace a messenger's settings with a `PUT` body, checked field by field; the audit
    /// entry `appearance.updated` names the fields that changed.
    pub async fn put(
        &self,
        site: SiteId,
        messenger: MessengerId,
        body: &Value,
        who: &Who,
    ) -> ApiResult<Appearance> {
        let parsed = Appearance::parse(body)?;
        let previous = self.get(site, messenger).await?;
        let json = serde_json::to_value(&parsed).map_err(|e| ApiError::internal(&e))?;
        let before = serde_json::to_value(&previous).map_err(|e| ApiError::internal(&e))?;
        let fields: Vec<&str> = json
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, v)| before.get(k.as_str()) != Some(*v))
                    .map(|(k, _)| k.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let entry = who.entry(
            site,
            "appearance.updated",
            serde_json::json!({"messengerId": messenger.to_string(), "fields": fields}),
        );
        self.store
            .put_appearance_settings(site, messenger, &json.to_string(), now_millis(), &entry)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::messenger_not_found(),
                other => other.into(),
            })?;
        Ok(parsed)
    }

    /// What the loader and the frame show of a messenger now: its look, whether it is open,
    /// and whether a customer gets an email for a reply (`email_notices`: the messenger's
    /// offline notices are on and the server has a mail server).
    pub async fn public(
        &self,
        m: &CachedMessenger,
        email_notices: bool,
    ) -> ApiResult<PublicAppearance> {
        let a = self.get(m.row.site_id, m.row.messenger_id).await?;
        let now =
            jiff::Timestamp::from_millisecond(now_millis()).map_err(|e| ApiError::internal(&e))?;
        let Availability {
            open,
            next_open,
            next_close,
        } = a.availability(now);
        let rfc3339 = |t: jiff::Timestamp| rfc3339_millis(t.as_millisecond());
        Ok(PublicAppearance {
            title: a.title.clone().unwrap_or_else(|| m.row.name.clone()),
            greeting: a.greeting.clone(),
            color: a.color.clone(),
            away_message: a.away_message.clone(),
            reply_time: a.reply_time.clone(),
            business_hours: match &a.business_hours {
                Some(h) => Some(serde_json::to_value(h).map_err(|e| ApiError::internal(&e))?),
                None => None,
            },
            open,
            next_open: next_open.map(rfc3339),
            next_close: next_close.map(rfc3339),
            email_notices,
        })
    }
}
