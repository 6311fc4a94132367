//! Authorize (CONTRACT §6): a Contact JWT in, Confidant's access token and the contact out.

use std::sync::Arc;

use confidant_core::ContactAttributes;
use confidant_core::time_fmt::now_millis;
use confidant_identity::{ContactVerifier, Signer};
use confidant_store::ContactRow;

use super::access::Access;
use super::contacts::Contacts;
use super::messengers::CachedMessenger;
use crate::error::{ApiError, ApiResult};

pub struct Authorized {
    pub access_token: String,
    pub expires_in: i64,
    pub contact: ContactRow,
}

pub struct Authorizer {
    verifier: ContactVerifier,
    contacts: Arc<Contacts>,
    access: Arc<Access>,
}

impl Authorizer {
    pub fn new(verifier: ContactVerifier, contacts: Arc<Contacts>, access: Arc<Access>) -> Self {
        Self {
            verifier,
            contacts,
            access,
        }
    }

    /// The verifier authorize uses (the token check, §15, runs the same one).
    pub fn verifier(&self) -> &ContactVerifier {
        &self.verifier
    }

    /// Verify a Contact JWT for a messenger, find or create its contact, sign an access token.
    pub async fn exchange(
        &self,
        messenger: &CachedMessenger,
        token: &str,
        preview: bool,
    ) -> ApiResult<Authorized> {
        let checked = self
            .verifier
            .verify_rollover(
                token,
                &messenger.method,
                messenger.previous.as_ref().map(|(_, method)| method),
                &messenger.policy,
            )
            .await;
        let verified = checked.result.map_err(|failure| {
            let e = failure.error;
            if e.is_unavailable() {
                ApiError::service_unavailable(e.code(), e.to_string())
            } else {
                ApiError::token(e.code(), e.to_string())
            }
        })?;
        if checked.signer == Some(Signer::Previous) {
            // Operators watch this fall to zero before a rollover ends (docs/OPERATING.md).
            metrics::counter!("confidant_rollover_previous_accepted_total").increment(1);
        }
        let update = ContactAttributes::from_claims(&verified.claims);
        let now = now_millis();
        let site = messenger.row.site_id;
        let contact = self
            .contacts
            .verified(site, &verified.identity, &update, now)
            .await?;
        let (access_token, claims) = self.access.tokens.sign(
            &contact.contact_id.to_string(),
            site.0,
            &messenger.row.messenger_id.to_string(),
            preview,
            now / 1000,
        );
        Ok(Authorized {
            access_token,
            expires_in: claims.exp - claims.iat,
            contact,
        })
    }
}
