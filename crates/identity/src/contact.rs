//! Contact JWT verification (CONTRACT §6): the checks run in the contract's order and the
//! first failure answers.
//!
//! jsonwebtoken is used only for the signature arithmetic; the header and the claims are
//! checked here, so the order and the error codes are exactly the contract's.

use std::sync::Arc;

use confidant_core::security::{DEFAULT_CLOCK_SKEW, MIN_SECRET_BYTES};
use confidant_core::{Security, Validation};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::error::{VerifyError, quote_short};
use crate::jwks::JwksCache;
use crate::jws;
use crate::keys::{KeyError, PublicKey};

/// The longest identity accepted, in characters.
pub const MAX_IDENTITY_CHARS: usize = 256;

/// An HMAC key (the messenger's shared token). Its `Debug` never shows the bytes.
#[derive(Clone, Debug)]
pub struct SharedSecret(DecodingKey);

impl SharedSecret {
    fn verify(&self, alg: Algorithm, signing_input: &str, signature: &str) -> bool {
        // aws-lc compares HMAC tags in constant time.
        jsonwebtoken::crypto::verify(signature, signing_input.as_bytes(), &self.0, alg)
            .unwrap_or(false)
    }
}

/// A messenger's validation method, ready to verify with. Built once per messenger settings
/// version and cached by the server (never per request).
#[derive(Clone, Debug)]
pub enum CompiledMethod {
    /// HS256, HS384 or HS512 with the shared token.
    SharedSecret(SharedSecret),
    /// The algorithms the key's type fixes.
    PublicKey(PublicKey),
    /// Keys fetched from `url`, chosen by `kid`.
    Jwks { url: String },
}

impl CompiledMethod {
    pub fn compile(v: &Validation) -> Result<CompiledMethod, KeyError> {
        match v {
            Validation::SharedToken { secret, encoding } => {
                let bytes = Validation::secret_bytes(secret, *encoding)
                    .ok_or(KeyError::SharedSecret("is not valid base64url"))?;
                if bytes.len() < MIN_SECRET_BYTES {
                    return Err(KeyError::SharedSecret("is shorter than 32 bytes"));
                }
                Ok(Self::SharedSecret(SharedSecret(DecodingKey::from_secret(
                    &bytes,
                ))))
            }
            Validation::PublicKey { public_key } => {
                PublicKey::from_pem(public_key).map(Self::PublicKey)
            }
            Validation::Jwks { jwks_url } => Ok(Self::Jwks {
                url: jwks_url.clone(),
            }),
        }
    }
}

/// The claim checks of a messenger's Security settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The claim that names the customer: any top-level name, taken literally (`comm100.email`
    /// is one claim, not a path).
    pub identity_key: String,
    pub clock_skew: u32,
    pub max_lifetime: Option<u64>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl Policy {
    pub fn from_security(s: &Security) -> Policy {
        Policy {
            identity_key: s.contact_identity_key.clone(),
            clock_skew: s.clock_skew_seconds,
            max_lifetime: s.max_token_lifetime_seconds,
            issuer: s.issuer.clone(),
            audience: s.audience.clone(),
        }
    }
}

/// The checks of Security settings that leave every claim at its default: the customer is
/// `sub`, the usual clock skew, no lifetime cap, no issuer or audience.
impl Default for Policy {
    fn default() -> Self {
        Policy {
            identity_key: "sub".into(),
            clock_skew: DEFAULT_CLOCK_SKEW,
            max_lifetime: None,
            issuer: None,
            audience: None,
        }
    }
}

/// A Contact JWT that passed every check.
#[derive(Clone, Debug)]
pub struct Verified {
    /// The identity claim as text (an integer identity as its decimal digits).
    pub identity: String,
    /// Every claim, for the contact's optional attributes.
    pub claims: Map<String, Value>,
}

/// Verifies Contact JWTs against a messenger's compiled method and policy.
pub struct ContactVerifier {
    jwks: Arc<JwksCache>,
    clock: Arc<dyn Clock>,
    pool: VerifyPool,
}

impl ContactVerifier {
    pub fn new(jwks: Arc<JwksCache>, clock: Arc<dyn Clock>) -> Self {
        Self {
            jwks,
            clock,
            pool: VerifyPool::sized_to_cores(),
        }
    }

    pub async fn verify(
        &self,
        token: &str,
        method: &CompiledMethod,
        policy: &Policy,
    ) -> Result<Verified, VerifyError> {
        self.verify_checked(token, method, policy)
            .await
            .map_err(|failure| failure.error)
    }

    /// `verify`, also saying which of §6's checks failed (the token check, CONTRACT §15, lists
    /// them). One code path, so the check and authorize can never disagree.
    pub async fn verify_checked(
        &self,
        token: &str,
        method: &CompiledMethod,
        policy: &Policy,
    ) -> Result<Verified, Failure> {
        self.verify_rollover(token, method, None, policy)
            .await
            .result
    }

    /// `verify` during a rollover (CONTRACT §5): when `method` refuses the token for its
    /// algorithm, its key or its signature and `previous` has not ended by this verifier's
    /// clock, `previous` is tried with the same token; every other check is the same for both.
    /// When neither verifies, the answer is `method`'s refusal: a token of the previous key
    /// after its end is refused exactly like any other wrong key.
    pub async fn verify_rollover(
        &self,
        token: &str,
        method: &CompiledMethod,
        previous: Option<&PreviousMethod>,
        policy: &Policy,
    ) -> Checked {
        // 1. Shape: three base64url parts, JSON objects, ≤ 8 KiB, no extension we'd ignore.
        let token = match jws::parse(token) {
            Ok(token) => token,
            Err(m) => return Checked::refused(VerifyError::Malformed(m.to_owned())),
        };
        if let Err(e) = check_extensions(&token.header) {
            return Checked::refused(e);
        }
        // 2. The algorithm, judged by the method alone (never by anything else in the header).
        let alg = match header_alg(&token.header) {
            Ok(alg) => alg,
            Err(e) => return Checked::refused(e),
        };
        // 2–4. The key and the signature, by the current method, then by the previous one.
        let signer = match self.signature(method, alg, &token).await {
            Ok(()) => Signer::Current,
            Err(refusal) => {
                let now = self.clock.now();
                let fallback = previous.filter(|p| p.until > now && refusal.may_fall_back());
                match fallback {
                    Some(p) if self.signature(&p.method, alg, &token).await.is_ok() => {
                        Signer::Previous
                    }
                    _ => return Checked::refused(refusal),
                }
            }
        };
        // 5–10. The claims, now that they are known to be the signer's.
        Checked {
            result: checked_claims(token.claims, policy, self.clock.now()),
            signer: Some(signer),
        }
    }

    /// §6's checks 2–4 for one method: the algorithm, the key and the signature. `jku`, `x5u`,
    /// `jwk` and `x5c` are never read.
    async fn signature(
        &self,
        method: &CompiledMethod,
        alg: &str,
        token: &jws::Compact<'_>,
    ) -> Result<(), VerifyError> {
        let signature_ok = match method {
            CompiledMethod::SharedSecret(secret) => {
                let algorithm = hmac_algorithm(alg)?;
                secret.verify(algorithm, token.signing_input, token.signature)
            }
            CompiledMethod::PublicKey(key) => {
                if !key.allows(alg) {
                    return Err(not_allowed(
                        alg,
                        &format!("the messenger's {}", key.describe()),
                    ));
                }
                self.pool.verify_one(key, alg, token).await
            }
            CompiledMethod::Jwks { url } => {
                jwks_algorithm(alg)?;
                let kid = match token.header.get("kid") {
                    None => None,
                    Some(Value::String(kid)) => Some(kid.as_str()),
                    Some(_) => {
                        return Err(VerifyError::KeyNotFound("kid is not a string".into()));
                    }
                };
                let keys = self.jwks.keys_for(url, kid, alg).await?;
                self.pool.verify(keys, alg, token).await
            }
        };
        if signature_ok {
            Ok(())
        } else {
            Err(VerifyError::SignatureInvalid)
        }
    }
}

/// A messenger's previous validation during a rollover (CONTRACT §5), compiled.
#[derive(Clone, Debug)]
pub struct PreviousMethod {
    pub method: CompiledMethod,
    /// Unix seconds: tried only while the verifier's clock is before it.
    pub until: i64,
}

/// Which of a messenger's validations verified a token's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signer {
    Current,
    /// The previous validation, during its rollover.
    Previous,
}

/// The outcome of `verify_rollover`: the verdict, and whose key verified the signature (`None`
/// when no key did; the claims may still have failed after it).
#[derive(Clone, Debug)]
pub struct Checked {
    pub result: Result<Verified, Failure>,
    pub signer: Option<Signer>,
}

impl Checked {
    fn refused(error: VerifyError) -> Checked {
        Checked {
            result: Err(error.into()),
            signer: None,
        }
    }
}

impl VerifyError {
    /// A refusal that a previous validation may overturn: the algorithm, the key (none found,
    /// or the new JWKS cannot be fetched) or the signature. The shape and the claims are the
    /// same whichever key signed.
    fn may_fall_back(&self) -> bool {
        matches!(
            self,
            Self::AlgorithmNotAllowed(_)
                | Self::KeyNotFound(_)
                | Self::SignatureInvalid
                | Self::JwksUnavailable(_)
        )
    }
}

/// §6's checks in their order, as the token check (CONTRACT §15) names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Format,
    Algorithm,
    Key,
    Signature,
    Expiry,
    NotBefore,
    Lifetime,
    Issuer,
    Audience,
    Identity,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::Format,
        Check::Algorithm,
        Check::Key,
        Check::Signature,
        Check::Expiry,
        Check::NotBefore,
        Check::Lifetime,
        Check::Issuer,
        Check::Audience,
        Check::Identity,
    ];

    /// The name CONTRACT §15 gives it.
    pub fn name(self) -> &'static str {
        match self {
            Check::Format => "format",
            Check::Algorithm => "algorithm",
            Check::Key => "key",
            Check::Signature => "signature",
            Check::Expiry => "expiry",
            Check::NotBefore => "notBefore",
            Check::Lifetime => "lifetime",
            Check::Issuer => "issuer",
            Check::Audience => "audience",
            Check::Identity => "identity",
        }
    }

    /// The check an error belongs to, when its kind alone says (a malformed `nbf` or `iat`
    /// does not: it is built with its own check in `checked_claims`).
    fn of(error: &VerifyError) -> Check {
        match error {
            VerifyError::Malformed(_) => Check::Format,
            VerifyError::AlgorithmNotAllowed(_) => Check::Algorithm,
            VerifyError::KeyNotFound(_) | VerifyError::JwksUnavailable(_) => Check::Key,
            VerifyError::SignatureInvalid => Check::Signature,
            VerifyError::ExpiryMissing | VerifyError::Expired { .. } => Check::Expiry,
            VerifyError::NotYetValid { .. } => Check::NotBefore,
            VerifyError::LifetimeTooLong(_) => Check::Lifetime,
            VerifyError::IssuerMismatch => Check::Issuer,
            VerifyError::AudienceMismatch => Check::Audience,
            VerifyError::IdentityMissing(_) => Check::Identity,
        }
    }
}

/// The first check a token failed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub check: Check,
    pub error: VerifyError,
}

impl From<VerifyError> for Failure {
    fn from(error: VerifyError) -> Self {
        Failure {
            check: Check::of(&error),
            error,
        }
    }
}

/// A decoded JOSE header or claims set.
pub type JsonObject = Map<String, Value>;

/// The header and the claims of a token as far as they decode, trusting nothing (for showing
/// them to an admin): each is `None` when its part is absent or not base64url of a JSON object.
/// White space, surrounding quotes and a `Bearer ` prefix are looked through, since a person
/// pasted it.
pub fn peek(token: &str) -> (Option<JsonObject>, Option<JsonObject>) {
    let token = token.trim().trim_matches(|c| c == '"' || c == '\'').trim();
    let token = token
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map_or(token, |_| token[7..].trim());
    let mut parts = token.split('.');
    let mut object = || {
        parts
            .next()
            .and_then(jws::decode)
            .and_then(|bytes| match serde_json::from_slice(&bytes) {
                Ok(Value::Object(map)) => Some(map),
                _ => None,
            })
    };
    let header = object();
    let claims = object();
    (header, claims)
}

/// Whether `token` is an HS256/384/512 token whose signature `key` makes (a diagnosis aid for
/// the token check: which secret the integrator signed with). No other check is made.
pub fn hmac_signs(token: &str, key: &[u8]) -> bool {
    let Ok(token) = jws::parse(token) else {
        return false;
    };
    let Some(Ok(alg)) = token
        .header
        .get("alg")
        .and_then(Value::as_str)
        .map(hmac_algorithm)
    else {
        return false;
    };
    SharedSecret(DecodingKey::from_secret(key)).verify(alg, token.signing_input, token.signature)
}

/// The costly public-key checks run here, off the async workers: a P-384 check (about 215 µs),
/// an RSA key over 4096 bits, or several candidate keys from a JWKS without a `kid` is more
/// CPU than a worker thread may spend while other requests wait on it. At most one check per
/// core runs at once; more wait their turn without holding a thread.
///
/// A single cheap key ([`PublicKey::cheap_to_verify`], and HMAC at about a microsecond) is
/// checked inline instead: the hop to a blocking thread and back (two wake-ups) cost about
/// 25 µs of CPU per check, as much as the RS256 check itself (docs/PERFORMANCE.md, session 10).
struct VerifyPool {
    permits: Arc<tokio::sync::Semaphore>,
}

impl VerifyPool {
    fn sized_to_cores() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }

    /// Whether `key` verifies the token's signature for `alg` (a messenger's own key: it is
    /// copied for the pool only when it goes there).
    async fn verify_one(&self, key: &PublicKey, alg: &str, token: &jws::Compact<'_>) -> bool {
        if key.cheap_to_verify() {
            return key.verify(alg, token.signing_input, token.signature);
        }
        self.verify(vec![Arc::new(key.clone())], alg, token).await
    }

    /// Whether one of `keys` verifies the token's signature for `alg`.
    async fn verify(&self, keys: Vec<Arc<PublicKey>>, alg: &str, token: &jws::Compact<'_>) -> bool {
        if let [key] = keys.as_slice()
            && key.cheap_to_verify()
        {
            return key.verify(alg, token.signing_input, token.signature);
        }
        // The permit moves into the task: a request that gives up waiting (its client went
        // away) does not free a core that is still busy with its check.
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false; // never closed
        };
        let (alg, input, signature) = (
            alg.to_owned(),
            token.signing_input.to_owned(),
            token.signature.to_owned(),
        );
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            keys.iter().any(|key| key.verify(&alg, &input, &signature))
        })
        .await;
        checked.unwrap_or_else(|e| {
            tracing::error!(error = %e, "a signature check failed to run");
            false
        })
    }
}

/// `crit` lists extensions the token's signer requires the verifier to understand (RFC 7515
/// §4.1.11). This verifier understands none, so any `crit` refuses the token, and `b64: false`
/// (RFC 7797 unencoded payloads) is never honoured.
fn check_extensions(header: &Map<String, Value>) -> Result<(), VerifyError> {
    if let Some(crit) = header.get("crit") {
        let names = crit
            .as_array()
            .filter(|a| !a.is_empty() && a.iter().all(Value::is_string));
        return Err(VerifyError::Malformed(match names {
            Some(_) => "crit names an extension the server does not understand".to_owned(),
            None => "crit must be a non-empty array of header names".to_owned(),
        }));
    }
    if header
        .get("b64")
        .is_some_and(|b64| b64 != &Value::Bool(true))
    {
        return Err(VerifyError::Malformed(
            "unencoded payloads (b64) are not supported".into(),
        ));
    }
    Ok(())
}

/// A missing or non-string `alg` is reported as a refused algorithm: it is the `alg` check
/// that fails, whatever the rest of the header says.
fn header_alg(header: &Map<String, Value>) -> Result<&str, VerifyError> {
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg.as_str(),
        _ => {
            return Err(VerifyError::AlgorithmNotAllowed(
                "the header names no alg".into(),
            ));
        }
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(VerifyError::AlgorithmNotAllowed(
            "alg \"none\" (an unsigned token) is never accepted".into(),
        ));
    }
    Ok(alg)
}

fn hmac_algorithm(alg: &str) -> Result<Algorithm, VerifyError> {
    match alg {
        "HS256" => Ok(Algorithm::HS256),
        "HS384" => Ok(Algorithm::HS384),
        "HS512" => Ok(Algorithm::HS512),
        _ => Err(not_allowed(
            alg,
            "a messenger with a shared token allows HS256, HS384 or HS512",
        )),
    }
}

/// The algorithms any JWKS key could verify. Whether the chosen key fits is decided with it.
fn jwks_algorithm(alg: &str) -> Result<(), VerifyError> {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" | "ES256" | "ES384" | "EdDSA"
        | "Ed25519" => Ok(()),
        _ => Err(not_allowed(
            alg,
            "a messenger with a JWKS allows RS*, PS*, ES256, ES384, EdDSA or Ed25519",
        )),
    }
}

fn not_allowed(alg: &str, why: &str) -> VerifyError {
    VerifyError::AlgorithmNotAllowed(format!("{why}, not {}", quote_short(alg)))
}

/// A NumericDate (RFC 7519 §2): an integer or a float, floored; out-of-range values saturate.
fn numeric_date(v: &Value) -> Option<i64> {
    let n = v.as_number()?;
    if let Some(i) = n.as_i64() {
        Some(i)
    } else if n.is_u64() {
        Some(i64::MAX)
    } else {
        // `as` saturates, so 1e300 is i64::MAX rather than a wrapped value.
        n.as_f64().map(|f| f.floor() as i64)
    }
}

#[cfg(test)]
fn check_claims(
    claims: Map<String, Value>,
    policy: &Policy,
    now: i64,
) -> Result<Verified, VerifyError> {
    checked_claims(claims, policy, now).map_err(|failure| failure.error)
}

fn checked_claims(
    claims: Map<String, Value>,
    policy: &Policy,
    now: i64,
) -> Result<Verified, Failure> {
    let skew = i64::from(policy.clock_skew);
    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(VerifyError::ExpiryMissing)?;
    if exp.saturating_add(skew) <= now {
        return Err(VerifyError::Expired { exp }.into());
    }
    // A present `nbf` or `iat` that is not a NumericDate is a malformed claim, reported at its
    // own place in the order (after the signature), since the code names no better failure.
    if let Some(nbf) = claims.get("nbf") {
        let nbf = numeric_date(nbf).ok_or_else(|| Failure {
            check: Check::NotBefore,
            error: VerifyError::Malformed("nbf is not a NumericDate".into()),
        })?;
        if nbf.saturating_sub(skew) > now {
            return Err(VerifyError::NotYetValid { nbf }.into());
        }
    }
    if let Some(cap) = policy.max_lifetime {
        let cap = i64::try_from(cap).unwrap_or(i64::MAX);
        if let Some(iat) = claims.get("iat") {
            let iat = numeric_date(iat).ok_or_else(|| Failure {
                check: Check::Lifetime,
                error: VerifyError::Malformed("iat is not a NumericDate".into()),
            })?;
            let lifetime = exp.saturating_sub(iat);
            if lifetime > cap {
                return Err(VerifyError::LifetimeTooLong(format!(
                    "exp - iat is {lifetime} seconds; at most {cap} are allowed"
                ))
                .into());
            }
        }
        let remaining = exp.saturating_sub(now);
        if remaining > cap {
            return Err(VerifyError::LifetimeTooLong(format!(
                "it expires in {remaining} seconds; at most {cap} are allowed"
            ))
            .into());
        }
    }
    if let Some(issuer) = &policy.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
    {
        return Err(VerifyError::IssuerMismatch.into());
    }
    if let Some(audience) = &policy.audience {
        let named = match claims.get("aud") {
            Some(Value::String(aud)) => aud == audience,
            Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(audience.as_str())),
            _ => false,
        };
        if !named {
            return Err(VerifyError::AudienceMismatch.into());
        }
    }
    let identity = identity(&claims, &policy.identity_key)?;
    Ok(Verified { identity, claims })
}

fn identity(claims: &Map<String, Value>, key: &str) -> Result<String, VerifyError> {
    let missing = |why: &str| {
        Err(VerifyError::IdentityMissing(format!(
            "the claim {key:?} {why}"
        )))
    };
    match claims.get(key) {
        None | Some(Value::Null) => missing("is missing"),
        Some(Value::String(s)) if s.is_empty() => missing("is empty"),
        Some(Value::String(s)) if s.chars().count() > MAX_IDENTITY_CHARS => {
            missing("is longer than 256 characters")
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(_) => missing("must be a string or an integer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn check(v: Value, p: &Policy, now: i64) -> Result<Verified, VerifyError> {
        check_claims(claims(v), p, now)
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(&json!(5)), Some(5));
        assert_eq!(numeric_date(&json!(-5)), Some(-5));
        assert_eq!(numeric_date(&json!(5.9)), Some(5));
        assert_eq!(numeric_date(&json!(-0.5)), Some(-1));
        assert_eq!(numeric_date(&json!(u64::MAX)), Some(i64::MAX));
        assert_eq!(numeric_date(&json!(1e300)), Some(i64::MAX));
        assert_eq!(numeric_date(&json!(-1e300)), Some(i64::MIN));
        assert_eq!(numeric_date(&json!("5")), None);
        assert_eq!(numeric_date(&json!(true)), None);
        assert_eq!(numeric_date(&json!(null)), None);
    }

    #[test]
    fn expiry_boundaries() {
        let p = Policy::default(); // skew 60
        let now = 1_000_000;
        assert_eq!(
            check(json!({"sub": "a"}), &p, now).unwrap_err(),
            VerifyError::ExpiryMissing
        );
        assert_eq!(
            check(json!({"sub": "a", "exp": "2000000"}), &p, now).unwrap_err(),
            VerifyError::ExpiryMissing
        );
        // exp + skew == now: expired; one second later than that: valid.
        assert_eq!(
            check(json!({"sub": "a", "exp": now - 60}), &p, now).unwrap_err(),
            VerifyError::Expired { exp: now - 60 }
        );
        assert!(check(json!({"sub": "a", "exp": now - 59}), &p, now).is_ok());
        // A float exp is floored: now - 59.9 floors to now - 60, which is expired.
        assert_eq!(
            check(json!({"sub": "a", "exp": (now as f64) - 59.9}), &p, now).unwrap_err(),
            VerifyError::Expired { exp: now - 60 }
        );
        let zero_skew = Policy {
            clock_skew: 0,
            ..Policy::default()
        };
        assert!(check(json!({"sub": "a", "exp": now}), &zero_skew, now).is_err());
        assert!(check(json!({"sub": "a", "exp": now + 1}), &zero_skew, now).is_ok());
    }

    #[test]
    fn not_before_boundaries() {
        let p = Policy::default();
        let now = 1_000_000;
        let exp = now + 600;
        assert!(check(json!({"sub": "a", "exp": exp, "nbf": now + 60}), &p, now).is_ok());
        assert_eq!(
            check(json!({"sub": "a", "exp": exp, "nbf": now + 61}), &p, now).unwrap_err(),
            VerifyError::NotYetValid { nbf: now + 61 }
        );
        assert!(matches!(
            check(json!({"sub": "a", "exp": exp, "nbf": "soon"}), &p, now),
            Err(VerifyError::Malformed(_))
        ));
        // Expiry is checked before nbf.
        assert_eq!(
            check(
                json!({"sub": "a", "exp": now - 100, "nbf": now + 100}),
                &p,
                now
            )
            .unwrap_err(),
            VerifyError::Expired { exp: now - 100 }
        );
    }

    #[test]
    fn lifetime_cap() {
        let p = Policy {
            max_lifetime: Some(300),
            ..Policy::default()
        };
        let now = 1_000_000;
        // exp - iat exactly at the cap passes; one more second fails.
        assert!(
            check(
                json!({"sub": "a", "iat": now - 10, "exp": now + 290}),
                &p,
                now
            )
            .is_ok()
        );
        assert!(matches!(
            check(
                json!({"sub": "a", "iat": now - 11, "exp": now + 290}),
                &p,
                now
            ),
            Err(VerifyError::LifetimeTooLong(_))
        ));
        // Without iat only exp - now counts: at the cap passes, beyond fails.
        assert!(check(json!({"sub": "a", "exp": now + 300}), &p, now).is_ok());
        assert!(matches!(
            check(json!({"sub": "a", "exp": now + 301}), &p, now),
            Err(VerifyError::LifetimeTooLong(_))
        ));
        // A backdated iat cannot hide a far exp: exp - now still counts.
        assert!(matches!(
            check(
                json!({"sub": "a", "iat": now + 200, "exp": now + 400}),
                &p,
                now
            ),
            Err(VerifyError::LifetimeTooLong(_))
        ));
        assert!(matches!(
            check(json!({"sub": "a", "iat": "x", "exp": now + 10}), &p, now),
            Err(VerifyError::Malformed(_))
        ));
        // Without a cap, iat is not looked at.
        assert!(
            check(
                json!({"sub": "a", "iat": "x", "exp": now + 10_000}),
                &Policy::default(),
                now
            )
            .is_ok()
        );
    }

    #[test]
    fn issuer_and_audience() {
        let now = 1_000_000;
        let exp = now + 100;
        let p = Policy {
            issuer: Some("https://idp".into()),
            ..Policy::default()
        };
        assert!(
            check(
                json!({"sub": "a", "exp": exp, "iss": "https://idp"}),
                &p,
                now
            )
            .is_ok()
        );
        for iss in [
            json!("https://idp/"),
            json!(null),
            json!(["https://idp"]),
            json!(1),
        ] {
            assert_eq!(
                check(json!({"sub": "a", "exp": exp, "iss": iss}), &p, now).unwrap_err(),
                VerifyError::IssuerMismatch
            );
        }
        assert_eq!(
            check(json!({"sub": "a", "exp": exp}), &p, now).unwrap_err(),
            VerifyError::IssuerMismatch
        );
        let p = Policy {
            audience: Some("confidant".into()),
            ..Policy::default()
        };
        for aud in [
            json!("confidant"),
            json!(["x", "confidant"]),
            json!(["confidant"]),
        ] {
            assert!(check(json!({"sub": "a", "exp": exp, "aud": aud}), &p, now).is_ok());
        }
        for aud in [
            json!("Confidant"),
            json!([]),
            json!(["x"]),
            json!({"confidant": 1}),
            json!(null),
        ] {
            assert_eq!(
                check(json!({"sub": "a", "exp": exp, "aud": aud}), &p, now).unwrap_err(),
                VerifyError::AudienceMismatch
            );
        }
        // Issuer is checked before audience.
        let both = Policy {
            issuer: Some("i".into()),
            audience: Some("a".into()),
            ..Policy::default()
        };
        assert_eq!(
            check(json!({"sub": "a", "exp": exp}), &both, now).unwrap_err(),
            VerifyError::IssuerMismatch
        );
    }

    #[test]
    fn identity_claim() {
        let now = 1_000_000;
        let exp = now + 100;
        let p = Policy {
            identity_key: "comm100.email".into(),
            ..Policy::default()
        };
        let ok =
            |v: Value| check(json!({"exp": exp, "comm100.email": v}), &p, now).map(|v| v.identity);
        assert_eq!(ok(json!("mark@x.test")).unwrap(), "mark@x.test");
        assert_eq!(ok(json!(42)).unwrap(), "42");
        assert_eq!(ok(json!(-42)).unwrap(), "-42");
        assert_eq!(ok(json!(u64::MAX)).unwrap(), u64::MAX.to_string());
        assert_eq!(ok(json!("é".repeat(256))).unwrap(), "é".repeat(256));
        for bad in [
            json!(""),
            json!("x".repeat(257)),
            json!(true),
            json!(1.5),
            json!(1.0),
            json!({"a": 1}),
            json!(["a"]),
            json!(null),
        ] {
            assert!(
                matches!(ok(bad.clone()), Err(VerifyError::IdentityMissing(_))),
                "{bad}"
            );
        }
        // The dotted name is one claim, not a path into {"comm100": {"email": …}}.
        let nested = check(json!({"exp": exp, "comm100": {"email": "a@b"}}), &p, now);
        assert!(matches!(nested, Err(VerifyError::IdentityMissing(_))));
    }

    #[test]
    fn a_malformed_nbf_or_iat_fails_at_its_own_check() {
        let now = 1_000_000;
        let capped = Policy {
            max_lifetime: Some(600),
            ..Policy::default()
        };
        let at = |v: Value, p: &Policy| checked_claims(claims(v), p, now).unwrap_err().check;
        let nbf = json!({"sub": "a", "exp": now + 10, "nbf": "soon"});
        assert_eq!(at(nbf, &Policy::default()), Check::NotBefore);
        let iat = json!({"sub": "a", "exp": now + 10, "iat": [1]});
        assert_eq!(at(iat, &capped), Check::Lifetime);
        assert_eq!(
            at(json!({"exp": now + 10}), &Policy::default()),
            Check::Identity
        );
        assert_eq!(Check::ALL.map(Check::name)[5], "notBefore");
    }

    #[test]
    fn peek_decodes_what_a_person_pasted() {
        let token = format!(
            "{}.{}.sig",
            jws::encode(br#"{"alg":"HS256"}"#),
            jws::encode(br#"{"sub":"a"}"#)
        );
        for pasted in [
            token.clone(),
            format!("Bearer {token}"),
            format!("\"{token}\"\n"),
        ] {
            let (h, c) = peek(&pasted);
            assert_eq!(h.unwrap()["alg"], "HS256", "{pasted}");
            assert_eq!(c.unwrap()["sub"], "a");
        }
        assert_eq!(peek("x.y"), (None, None));
        assert!(!hmac_signs(&token, b"secret"));
    }

    #[test]
    fn codes_and_messages() {
        let e = VerifyError::Expired { exp: 1_795_514_400 };
        assert_eq!(e.code(), "token_expired");
        assert_eq!(
            e.to_string(),
            "the Contact JWT expired at 2026-11-24T10:00:00Z"
        );
        assert!(!e.is_unavailable());
        assert!(VerifyError::JwksUnavailable("x".into()).is_unavailable());
        assert_eq!(
            quote_short(&"a".repeat(100)),
            format!("{:?}…", "a".repeat(32))
        );
        assert_eq!(quote_short("HS256"), "\"HS256\"");
    }
}
