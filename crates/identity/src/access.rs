//! Confidant's own access tokens (CONTRACT §6): EdDSA (Ed25519) JWTs with a `kid`, signed by
//! the newest key of a ring and verifiable by any key still in it, so keys can rotate without
//! cutting off tokens already handed out. The ring's public half is the JWKS served at
//! `/.well-known/jwks.json`.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::jws;
use crate::keys::{KeyError, PublicKey};

const ALG: &str = "EdDSA";

/// A signing key as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    /// The Ed25519 private key, PKCS#8 DER.
    pub pkcs8_der: Vec<u8>,
    pub created_at: i64,
    /// Set once the key stops signing; it keeps verifying while it stays in the ring.
    pub retired_at: Option<i64>,
}

impl fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("pkcs8_der", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessClaims {
    /// The public URL, without a trailing slash.
    pub iss: String,
    /// The contactId.
    pub sub: String,
    /// `"confidant:" + messengerId`.
    pub aud: String,
    pub site_id: i64,
    pub messenger_id: String,
    pub preview: bool,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl AccessClaims {
    /// The claims as JSON. Built by hand because serialising a struct is fallible in type;
    /// a test checks it matches the serde form exactly.
    fn to_json(&self) -> Value {
        json!({
            "iss": self.iss,
            "sub": self.sub,
            "aud": self.aud,
            "siteId": self.site_id,
            "messengerId": self.messenger_id,
            "preview": self.preview,
            "iat": self.iat,
            "exp": self.exp,
            "jti": self.jti,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Malformed, forged, signed by a key not in the ring, or for another issuer.
    #[error("the access token is invalid")]
    Invalid,
    #[error("the access token has expired")]
    Expired,
}

struct RingKey {
    kid: String,
    created_at: i64,
    pair: Ed25519KeyPair,
    public: PublicKey,
    /// The public key, base64url, as the JWKS shows it.
    x: String,
}

struct Ring {
    /// Newest first.
    keys: Vec<Arc<RingKey>>,
    signer: Arc<RingKey>,
}

impl Ring {
    fn build(stored: Vec<StoredSigningKey>) -> Result<Ring, KeyError> {
        let mut keys = Vec::with_capacity(stored.len());
        let mut signer: Option<Arc<RingKey>> = None;
        for k in stored {
            let pair = Ed25519KeyPair::from_pkcs8(&k.pkcs8_der)
                .map_err(|_| KeyError::SigningKey(k.kid.clone()))?;
            let raw = pair.public_key().as_ref();
            let key = Arc::new(RingKey {
                public: PublicKey::ed25519(raw)?,
                x: jws::encode(raw),
                kid: k.kid,
                created_at: k.created_at,
                pair,
            });
            if k.retired_at.is_none()
                && signer
                    .as_ref()
                    .is_none_or(|s| s.created_at < key.created_at)
            {
                signer = Some(key.clone());
            }
            keys.push(key);
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.created_at));
        Ok(Ring {
            keys,
            signer: signer.ok_or(KeyError::NoSigningKey)?,
        })
    }
}

/// Signs and verifies access tokens. The ring can be replaced while in use (`set_keys`).
pub struct AccessTokens {
    issuer: String,
    ttl_seconds: i64,
    ring: RwLock<Arc<Ring>>,
}

impl AccessTokens {
    /// A new Ed25519 signing key with a random kid.
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails. Nothing secure can be made
    /// without it (uuid's v4 and aws-lc's own key generation make the same choice), and a
    /// server without a signing key cannot start anyway.
    pub fn generate_key(now: i64) -> StoredSigningKey {
        let pkcs8 = match Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()) {
            Ok(pkcs8) => pkcs8,
            Err(_) => panic!("the system random number generator failed"),
        };
        StoredSigningKey {
            kid: Uuid::new_v4().simple().to_string(),
            pkcs8_der: pkcs8.as_ref().to_vec(),
            created_at: now,
            retired_at: None,
        }
    }

    /// Signs with the newest key that is not retired; every key verifies.
    pub fn new(
        issuer: String,
        ttl_seconds: i64,
        keys: Vec<StoredSigningKey>,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            issuer,
            ttl_seconds,
            ring: RwLock::new(Arc::new(Ring::build(keys)?)),
        })
    }

    /// Replaces the ring (after a rotation). On error the old ring stays.
    pub fn set_keys(&self, keys: Vec<StoredSigningKey>) -> Result<(), KeyError> {
        let ring = Arc::new(Ring::build(keys)?);
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = ring;
        Ok(())
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    fn ring(&self) -> Arc<Ring> {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn sign(
        &self,
        sub: &str,
        site_id: i64,
        messenger_id: &str,
        preview: bool,
        now: i64,
    ) -> (String, AccessClaims) {
        let ring = self.ring();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: sub.to_owned(),
            aud: audience(messenger_id),
            site_id,
            messenger_id: messenger_id.to_owned(),
            preview,
            iat: now,
            exp: now.saturating_add(self.ttl_seconds),
            jti: Uuid::new_v4().to_string(),
        };
        let header = json!({"alg": ALG, "typ": "JWT", "kid": ring.signer.kid});
        let signing_input = format!(
            "{}.{}",
            jws::encode(header.to_string().as_bytes()),
            jws::encode(claims.to_json().to_string().as_bytes())
        );
        let signature = ring.signer.pair.sign(signing_input.as_bytes());
        (
            format!("{signing_input}.{}", jws::encode(signature.as_ref())),
            claims,
        )
    }

    /// Checks the signature (alg EdDSA only, by kid, with any key in the ring), `iss`, the
    /// `aud` format and `exp` (> now, no leeway: these tokens are short-lived and refreshed).
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, AccessError> {
        let token = jws::parse(token).map_err(|_| AccessError::Invalid)?;
        let header = &token.header;
        if header.get("alg").and_then(Value::as_str) != Some(ALG) || header.contains_key("crit") {
            return Err(AccessError::Invalid);
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(AccessError::Invalid)?;
        let ring = self.ring();
        let key = ring
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(AccessError::Invalid)?;
        if !key.public.verify(ALG, token.signing_input, token.signature) {
            return Err(AccessError::Invalid);
        }
        let claims: AccessClaims = serde_json::from_value(Value::Object(token.claims))
            .map_err(|_| AccessError::Invalid)?;
        if claims.iss != self.issuer || claims.aud != audience(&claims.messenger_id) {
            return Err(AccessError::Invalid);
        }
        // A token that lives longer than this server issues was not issued by it, whatever key
        // signed it: one signed with a stolen key for a year is refused, not honoured until then.
        if claims.exp.saturating_sub(claims.iat) > self.ttl_seconds.saturating_add(LIFETIME_SKEW)
            || claims.iat > now.saturating_add(LIFETIME_SKEW)
        {
            return Err(AccessError::Invalid);
        }
        if claims.exp <= now {
            return Err(AccessError::Expired);
        }
        Ok(claims)
    }

    /// The public JWKS of every key in the ring, newest first (retired keys stay until the
    /// caller drops them from the ring).
    pub fn jwks_json(&self) -> Value {
        let keys: Vec<Value> = self
            .ring()
            .keys
            .iter()
            .map(|k| {
                json!({"kty": "OKP", "crv": "Ed25519", "x": k.x, "kid": k.kid, "alg": ALG, "use": "sig"})
            })
            .collect();
        json!({ "keys": keys })
    }
}

/// Seconds of leeway on a token's lifetime and issue time (clocks of several processes).
const LIFETIME_SKEW: i64 = 60;

fn audience(messenger_id: &str) -> String {
    format!("confidant:{messenger_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_built_claims_match_serde() {
        let claims = AccessClaims {
            iss: "https://c.example".into(),
            sub: "s".into(),
            aud: "confidant:m".into(),
            site_id: 10_000,
            messenger_id: "m".into(),
            preview: true,
            iat: 1,
            exp: 2,
            jti: "j".into(),
        };
        assert_eq!(claims.to_json(), serde_json::to_value(&claims).unwrap());
    }
}
