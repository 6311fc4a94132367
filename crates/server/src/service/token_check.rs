//! The token check (CONTRACT §15): authorize's own verifier run on a messenger's current
//! settings, each of §6's checks reported, and a hint in plain words for the mistakes
//! integrators make most. It stores nothing and creates no contact.
//!
//! The report comes from `ContactVerifier::verify_checked`, the function authorize's `verify`
//! is made of, so the two can never disagree. The hints are this module's own: facts are
//! gathered first (`Facts`: which other secret the token verifies with, what a failing JWKS
//! URL answers), then `hint` chooses words from them without any I/O, so each hint has a unit
//! test.

use confidant_core::security::Encoding;
use confidant_core::time_fmt::{now_millis, rfc3339_seconds};
use confidant_core::{PreviousValidation, Security, Validation};
use confidant_identity::{
    Check, ContactVerifier, Failure, JwksFetcher, Signer, VerifyError, hmac_signs, peek,
};
use serde_json::{Map, Value};

use super::messengers::{CachedMessenger, Messengers};
use crate::error::ApiResult;
use crate::jwks_http::HttpJwksFetcher;
use crate::outbound::UrlRule;

/// One row of the report: `ok` is `None` for a check that did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    pub check: &'static str,
    pub ok: Option<bool>,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct TokenReport {
    pub ok: bool,
    pub code: Option<&'static str>,
    pub checks: Vec<CheckRow>,
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub hint: Option<String>,
}

/// An `exp` above this is milliseconds (10^11 seconds is the year 5138).
const EXP_IN_MILLIS_ABOVE: i64 = 100_000_000_000;

/// What the check uses besides the messenger: authorize's verifier, the site's other
/// messengers (whose secrets a token may have been signed with), and the URL rule for a
/// second look at a failing JWKS URL.
pub struct Deps<'a> {
    pub verifier: &'a ContactVerifier,
    pub messengers: &'a Messengers,
    pub allow_private_urls: bool,
}

/// Run the check for `token` on `messenger`'s current settings.
pub async fn check(
    deps: &Deps<'_>,
    messenger: &CachedMessenger,
    token: &str,
) -> ApiResult<TokenReport> {
    let (previous, previous_method) = messenger.previous.as_ref().map(|(p, m)| (p, m)).unzip();
    let outcome = deps
        .verifier
        .verify_rollover(token, &messenger.method, previous_method, &messenger.policy)
        .await;
    let by_previous = previous.filter(|_| outcome.signer == Some(Signer::Previous));
    let (header, claims) = peek(token);
    let failure = outcome.result.err();
    let mut facts = Facts {
        token,
        header: header.as_ref(),
        claims: claims.as_ref(),
        failure: failure.as_ref(),
        security: &messenger.security,
        now: now_millis() / 1000,
        by_previous,
        pem_text_signs: false,
        other_encoding_signs: None,
        other_messenger_signs: None,
        jwks_answer: None,
    };
    gather(deps, messenger, &mut facts).await?;
    let hint = hint(&facts);
    Ok(TokenReport {
        ok: failure.is_none(),
        code: failure.as_ref().map(|f| f.error.code()),
        checks: rows(failure.as_ref(), &messenger.security, by_previous),
        header: header.clone().unwrap_or_default(),
        claims: claims.clone().unwrap_or_default(),
        hint,
    })
}

/// Each of §6's checks in order: passed before the failure, failed at it, not run after.
/// `by_previous`: the previous validation of a rollover verified the signature.
fn rows(
    failure: Option<&Failure>,
    security: &Security,
    by_previous: Option<&PreviousValidation>,
) -> Vec<CheckRow> {
    let failed_at = failure.map(|f| f.check);
    let mut reached = false;
    Check::ALL
        .iter()
        .map(|&check| {
            let (ok, detail) = if reached {
                (None, "not run".to_owned())
            } else if Some(check) == failed_at {
                reached = true;
                let error = &failure.expect("failed_at is some").error;
                (Some(false), failed_detail(error, security))
            } else {
                (Some(true), passed_detail(check, security, by_previous))
            };
            CheckRow {
                check: check.name(),
                ok,
                detail,
            }
        })
        .collect()
}

fn failed_detail(error: &VerifyError, security: &Security) -> String {
    match (error, &security.validation) {
        (VerifyError::JwksUnavailable(_), Validation::Jwks { jwks_url }) => format!(
            "the JWKS at {jwks_url} could not be fetched, and no usable copy of it is cached"
        ),
        _ => error.to_string(),
    }
}

fn passed_detail(
    check: Check,
    security: &Security,
    by_previous: Option<&PreviousValidation>,
) -> String {
    if let (Check::Algorithm | Check::Key | Check::Signature, Some(p)) = (check, by_previous) {
        return format!(
            "passed with the previous validation ({}), which verifies tokens only until {}",
            p.validation.method(),
            rfc3339_seconds(p.until)
        );
    }
    let text = match check {
        Check::Lifetime if security.max_token_lifetime_seconds.is_none() => "no cap is set",
        Check::Issuer if security.issuer.is_none() => "not configured: any iss is accepted",
        Check::Audience if security.audience.is_none() => "not configured: any aud is accepted",
        _ => "passed",
    };
    text.to_owned()
}

/// What the hints are chosen from. The booleans and names are found by `gather`.
pub struct Facts<'a> {
    /// As pasted (only looked at, never repeated).
    pub token: &'a str,
    pub header: Option<&'a Map<String, Value>>,
    pub claims: Option<&'a Map<String, Value>>,
    pub failure: Option<&'a Failure>,
    pub security: &'a Security,
    /// Unix seconds.
    pub now: i64,
    /// The previous validation of a running rollover, when it (not the current one) verified
    /// the signature.
    pub by_previous: Option<&'a PreviousValidation>,
    /// An HS* token that verifies with the messenger's public key PEM text as its HMAC secret
    /// (as saved, without or with a trailing newline, or with CRLF line ends).
    pub pem_text_signs: bool,
    /// The shared token, taken in this other encoding, verifies the signature.
    pub other_encoding_signs: Option<Encoding>,
    /// Another messenger of the site whose shared token verifies the signature (its name).
    pub other_messenger_signs: Option<String>,
    /// What the JWKS URL answered when it could not be used.
    pub jwks_answer: Option<JwksAnswer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksAnswer {
    Html,
    NotJson,
    NotAKeySet,
    /// A JWK Set now: the failure was earlier or passing.
    KeySet,
    /// No answer at all (the reason, for the hint).
    Failed(String),
}

/// Find the facts that need secrets or I/O; only for a failure they can explain.
async fn gather(
    deps: &Deps<'_>,
    messenger: &CachedMessenger,
    facts: &mut Facts<'_>,
) -> ApiResult<()> {
    let Some(failure) = facts.failure else {
        return Ok(());
    };
    let token = facts.token;
    match (&failure.error, &messenger.security.validation) {
        (VerifyError::AlgorithmNotAllowed(_), Validation::PublicKey { public_key }) => {
            facts.pem_text_signs = pem_variants(public_key)
                .iter()
                .any(|pem| hmac_signs(token, pem.as_bytes()));
        }
        (VerifyError::SignatureInvalid, Validation::SharedToken { secret, encoding }) => {
            let other = match encoding {
                Encoding::Text => Encoding::Base64url,
                Encoding::Base64url => Encoding::Text,
            };
            facts.other_encoding_signs = Validation::secret_bytes(secret, other)
                .filter(|key| hmac_signs(token, key))
                .map(|_| other);
            if facts.other_encoding_signs.is_none() {
                facts.other_messenger_signs =
                    other_messenger(deps.messengers, messenger, token).await?;
            }
        }
        (VerifyError::JwksUnavailable(_), Validation::Jwks { jwks_url }) => {
            let fetcher = HttpJwksFetcher::new(UrlRule {
                allow_private: deps.allow_private_urls,
            });
            facts.jwks_answer = Some(match fetcher.fetch(jwks_url).await {
                Ok(fetched) => classify_jwks(&fetched.body),
                Err(reason) => JwksAnswer::Failed(reason),
            });
        }
        _ => {}
    }
    Ok(())
}

/// The PEM texts an integrator may have used as an HMAC secret: as saved, with and without a
/// trailing newline, with LF or CRLF line ends.
fn pem_variants(pem: &str) -> Vec<String> {
    let lf = pem.replace("\r\n", "\n");
    let body = lf.trim_end_matches('\n');
    let crlf = body.replace('\n', "\r\n");
    vec![
        pem.to_owned(),
        body.to_owned(),
        format!("{body}\n"),
        crlf.clone(),
        format!("{crlf}\r\n"),
    ]
}

/// The name of another messenger of the same site whose shared token signed `token`.
async fn other_messenger(
    messengers: &Messengers,
    messenger: &CachedMessenger,
    token: &str,
) -> ApiResult<Option<String>> {
    let others = messengers.list(messenger.row.site_id).await?;
    Ok(others
        .into_iter()
        .filter(|(row, _)| row.messenger_id != messenger.row.messenger_id)
        .find(|(_, security)| match &security.validation {
            Validation::SharedToken { secret, encoding } => {
                Validation::secret_bytes(secret, *encoding).is_some_and(|k| hmac_signs(token, &k))
            }
            _ => false,
        })
        .map(|(row, _)| row.name))
}

fn classify_jwks(body: &[u8]) -> JwksAnswer {
    let text = String::from_utf8_lossy(body);
    let start = text.trim_start();
    if start.starts_with('<') {
        return JwksAnswer::Html;
    }
    match serde_json::from_slice::<Value>(body) {
        Err(_) => JwksAnswer::NotJson,
        Ok(doc) if doc.get("keys").is_some_and(Value::is_array) => JwksAnswer::KeySet,
        Ok(_) => JwksAnswer::NotAKeySet,
    }
}

/// The claims that often hold a customer's identity, in the order they are suggested.
const IDENTITY_LIKE: &[&str] = &[
    "sub",
    "email",
    "comm100.email",
    "user_id",
    "userId",
    "uid",
    "customer_id",
    "customerId",
    "contact_id",
    "preferred_username",
    "username",
    "upn",
    "unique_name",
    "id",
];

/// The hint for these facts, the most specific first; `None` when nothing is wrong or nothing
/// is recognised.
pub fn hint(f: &Facts<'_>) -> Option<String> {
    let failed = f.failure.map(|failure| failure.check);
    let specific = match failed {
        Some(Check::Format) => format_hint(f),
        Some(Check::Algorithm) => algorithm_hint(f),
        Some(Check::Key) => key_hint(f),
        Some(Check::Signature) => signature_hint(f),
        _ => None,
    };
    specific
        .or_else(|| exp_in_millis_hint(f))
        .or_else(|| iat_in_future_hint(f))
        .or_else(|| match failed {
            Some(Check::Expiry) => expiry_hint(f),
            Some(Check::NotBefore) => not_before_hint(f),
            Some(Check::Lifetime) => lifetime_hint(f),
            Some(Check::Issuer) => issuer_hint(f),
            Some(Check::Audience) => audience_hint(f),
            Some(Check::Identity) => identity_hint(f),
            _ => None,
        })
        .or_else(|| previous_hint(f))
}

/// A token that only the previous validation of a rollover verifies works until its end.
fn previous_hint(f: &Facts<'_>) -> Option<String> {
    let p = f.by_previous?;
    Some(format!(
        "The token is signed for the previous validation ({}), which this messenger accepts only \
         until {}: sign with the new {} before then.",
        p.validation.method(),
        rfc3339_seconds(p.until),
        match f.security.validation {
            Validation::SharedToken { .. } => "shared token",
            Validation::PublicKey { .. } =>
                "key (the private key of the Security tab's public key)",
            Validation::Jwks { .. } => "keys of the JWKS",
        }
    ))
}

fn claim<'a>(f: &Facts<'a>, name: &str) -> Option<&'a Value> {
    f.claims.and_then(|c| c.get(name))
}

fn alg<'a>(f: &Facts<'a>) -> Option<&'a str> {
    f.header.and_then(|h| h.get("alg")).and_then(Value::as_str)
}

fn format_hint(f: &Facts<'_>) -> Option<String> {
    let t = f.token;
    let trimmed = t.trim();
    if trimmed
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
    {
        return Some(
            "Remove the \"Bearer \" prefix: paste only the Contact JWT itself (eyJ….….…).".into(),
        );
    }
    if trimmed.starts_with('"') || trimmed.starts_with('\'') {
        return Some(
            "Remove the quotes around the token: the Contact JWT is the text between them.".into(),
        );
    }
    if trimmed.len() != t.len() || t.contains(char::is_whitespace) {
        return Some(
            "Remove the white space or line breaks around or inside the token: a JWT is one \
             line of letters, digits, '-', '_' and two dots."
                .into(),
        );
    }
    let parts = t.split('.').count();
    if parts == 5 {
        return Some(
            "This looks like an encrypted JWT (JWE, five parts): sign the Contact JWT (JWS, \
             three parts) instead of encrypting it."
                .into(),
        );
    }
    if parts != 3 {
        return Some(format!(
            "A JWT has three parts separated by two dots; this one has {parts}: paste the \
             whole token."
        ));
    }
    if t.contains('=') || t.contains('+') || t.contains('/') {
        return Some(
            "Use base64url without padding: '-' and '_' instead of '+' and '/', and no '=' at \
             the end of a part."
                .into(),
        );
    }
    None
}

fn algorithm_hint(f: &Facts<'_>) -> Option<String> {
    let alg = alg(f)?;
    if alg.eq_ignore_ascii_case("none") {
        return Some(
            "The token is unsigned (alg \"none\"): sign it with the messenger's key or shared \
             token; an unsigned token is never accepted."
                .into(),
        );
    }
    let hmac = alg.starts_with("HS");
    match &f.security.validation {
        Validation::PublicKey { .. } if hmac => Some(if f.pem_text_signs {
            format!(
                "The token is signed with {alg} using the public key's PEM text as an HMAC \
                 secret. Sign it with your private key instead (e.g. RS256 or ES256), and keep \
                 the public key on the Security tab."
            )
        } else {
            format!(
                "{alg} needs a shared secret, but this messenger verifies with a public key: \
                 sign with the matching private key (RS*, PS*, ES* or EdDSA), or switch the \
                 Security tab to a shared token."
            )
        }),
        Validation::PublicKey { public_key } => {
            let key = confidant_identity::PublicKey::from_pem(public_key).ok()?;
            Some(format!(
                "The token is signed with {alg}, but the messenger's public key is {}: paste the \
                 public key of the private key you sign with, or sign with an algorithm of this \
                 key's type.",
                key.describe()
            ))
        }
        Validation::Jwks { .. } if hmac => Some(format!(
            "{alg} needs a shared secret, but this messenger verifies with keys from a JWKS: \
             sign with one of the set's private keys, or switch the Security tab to a shared \
             token."
        )),
        Validation::Jwks { .. } => Some(format!(
            "The JWKS key that the token's kid names does not allow {alg}: check that the kid \
             names the key you sign with, and that its kty (and alg, if it has one) fits {alg}."
        )),
        Validation::SharedToken { .. } => Some(format!(
            "This messenger verifies with a shared token (HS256, HS384 or HS512), but the token \
             is signed with {alg}: sign with HMAC and the shared token, or switch the Security \
             tab to a public key or JWKS."
        )),
    }
}

fn key_hint(f: &Facts<'_>) -> Option<String> {
    let error = &f.failure?.error;
    if let Some(answer) = &f.jwks_answer {
        return Some(match answer {
            JwksAnswer::Html => "The JWKS URL answers an HTML page, not a JWK Set: use the URL \
                                 of the JSON document ({\"keys\": […]}), often …/.well-known/jwks.json."
                .into(),
            JwksAnswer::NotJson => "The JWKS URL does not answer JSON: use the URL of the JWK \
                                    Set document ({\"keys\": […]})."
                .into(),
            JwksAnswer::NotAKeySet => "The JWKS URL answers JSON that is not a JWK Set (it has \
                                       no \"keys\" array): an OpenID configuration names the \
                                       right URL in its jwks_uri."
                .into(),
            JwksAnswer::KeySet => "The JWKS URL answers a JWK Set now; it failed a moment ago. \
                                   Check again in 30 seconds."
                .into(),
            JwksAnswer::Failed(reason) => format!(
                "The JWKS could not be fetched ({}): check that the URL is right and reachable \
                 from the server (https, a public address).",
                reason.chars().take(120).collect::<String>()
            ),
        });
    }
    if let VerifyError::KeyNotFound(_) = error {
        let kid = f.header.and_then(|h| h.get("kid"));
        return Some(match kid {
            None if error.to_string().contains("several") => {
                "The token has no kid and several keys of the JWKS fit its algorithm: put the \
                 kid of the signing key in the token's header."
                    .into()
            }
            None => "The token has no kid and no key of the JWKS fits its algorithm: sign with \
                     a key the set publishes, and put its kid in the header."
                .into(),
            Some(Value::String(_)) => "The JWKS has no key with the token's kid: sign with a \
                                       key the set publishes (a new key is picked up within \
                                       30 seconds of its first use)."
                .into(),
            Some(_) => "The token's kid must be a string.".into(),
        });
    }
    None
}

fn signature_hint(f: &Facts<'_>) -> Option<String> {
    let mut hint = if let Some(encoding) = f.other_encoding_signs {
        match encoding {
            Encoding::Base64url => "The token verifies when the shared token is taken as \
                                    base64url (its decoded bytes): set the secret's encoding \
                                    to base64url on the Security tab, or sign with its text."
                .to_owned(),
            Encoding::Text => "The token verifies when the shared token is taken as text (its \
                               UTF-8 bytes): set the secret's encoding to text on the Security \
                               tab, or sign with its decoded bytes."
                .to_owned(),
        }
    } else if let Some(name) = &f.other_messenger_signs {
        format!(
            "The token is signed with the shared token of another messenger of this site, \
             \"{name}\": sign with this messenger's own shared token."
        )
    } else {
        match &f.security.validation {
            Validation::SharedToken { .. } => "The signature does not match this messenger's \
                                               shared token: sign with the exact secret saved \
                                               on the Security tab (a new one replaces the old \
                                               at once)."
                .to_owned(),
            _ => "The signature does not match the messenger's key: sign with the private key \
                  whose public key the Security tab holds, and do not change the token after \
                  signing."
                .to_owned(),
        }
    };
    if claim(f, "exp")
        .and_then(Value::as_i64)
        .is_some_and(|exp| exp < f.now)
    {
        hint.push_str(" Its exp is in the past too, so sign a new one.");
    }
    Some(hint)
}

fn exp_in_millis_hint(f: &Facts<'_>) -> Option<String> {
    let exp = claim(f, "exp")?.as_f64()?;
    (exp > EXP_IN_MILLIS_ABOVE as f64).then(|| {
        "exp looks like milliseconds: JWT times (exp, iat, nbf) are seconds since 1970, so \
         divide by 1000 (Math.floor(Date.now() / 1000) in JavaScript)."
            .into()
    })
}

fn iat_in_future_hint(f: &Facts<'_>) -> Option<String> {
    let iat = claim(f, "iat")?.as_i64()?;
    let ahead = iat - f.now;
    (ahead > i64::from(f.security.clock_skew_seconds)).then(|| {
        format!(
            "iat is {ahead} seconds in the future: the signing server's clock is ahead (or it \
             adds time to iat); sync it with NTP, and set iat to the current time."
        )
    })
}

fn expiry_hint(f: &Facts<'_>) -> Option<String> {
    match claim(f, "exp") {
        None => Some(
            "Add an exp claim: the expiry in seconds since 1970, a few minutes after signing."
                .into(),
        ),
        Some(exp) => match exp.as_i64() {
            Some(exp) => Some(format!(
                "The token expired at {} ({} seconds ago): sign a fresh Contact JWT for each \
                 page load, with a few minutes of life.",
                rfc3339_seconds(exp),
                f.now - exp
            )),
            None if exp.is_number() => None,
            None => Some(
                "exp must be a number of seconds since 1970, not a string or another type.".into(),
            ),
        },
    }
}

fn not_before_hint(f: &Facts<'_>) -> Option<String> {
    match claim(f, "nbf")?.as_i64() {
        Some(nbf) => Some(format!(
            "nbf is {} seconds in the future: the signing server's clock is ahead; sync it \
             with NTP, or raise the clock skew on the Security tab.",
            nbf - f.now
        )),
        None => Some("nbf must be a number of seconds since 1970.".into()),
    }
}

fn lifetime_hint(f: &Facts<'_>) -> Option<String> {
    if claim(f, "iat").is_some_and(|iat| !iat.is_number()) {
        return Some("iat must be a number of seconds since 1970.".into());
    }
    let cap = f.security.max_token_lifetime_seconds?;
    Some(format!(
        "The token lives longer than the messenger allows ({cap} seconds): set exp at most \
         {cap} seconds after iat and after now."
    ))
}

fn issuer_hint(f: &Facts<'_>) -> Option<String> {
    let want = f.security.issuer.as_deref()?;
    Some(match claim(f, "iss") {
        Some(Value::String(iss)) => format!(
            "iss is {iss:?}, but the messenger expects {want:?} exactly (case and trailing \
             slash count): change one to match the other."
        ),
        Some(_) => format!("iss must be the string {want:?}."),
        None => format!("Add an iss claim with the value {want:?}."),
    })
}

fn audience_hint(f: &Facts<'_>) -> Option<String> {
    let want = f.security.audience.as_deref()?;
    Some(match claim(f, "aud") {
        Some(Value::Array(auds)) => {
            let has: Vec<String> = auds.iter().map(Value::to_string).collect();
            format!(
                "aud lists [{}], which does not include {want:?}: add {want:?} to it.",
                has.join(", ")
            )
        }
        Some(Value::String(aud)) => {
            format!("aud is {aud:?}, but the messenger expects {want:?}: change one to match.")
        }
        Some(_) => format!("aud must be the string {want:?} or an array that contains it."),
        None => format!("Add an aud claim with the value {want:?}."),
    })
}

fn identity_hint(f: &Facts<'_>) -> Option<String> {
    let key = f.security.contact_identity_key.as_str();
    let claims = f.claims?;
    match claims.get(key) {
        None | Some(Value::Null) => {}
        Some(Value::Number(_)) => {
            return Some(format!(
                "The identity claim {key:?} is a number that is not an integer (a fraction, \
                 or written like 12.0): use a string, or a whole number."
            ));
        }
        Some(Value::Object(_)) => {
            return Some(format!(
                "The identity claim {key:?} is an object: use a string, such as the customer's \
                 email or id."
            ));
        }
        Some(Value::Array(_)) => {
            return Some(format!(
                "The identity claim {key:?} is an array: use one string, such as the \
                 customer's email or id."
            ));
        }
        Some(Value::Bool(_)) => {
            return Some(format!(
                "The identity claim {key:?} must be a string, not true/false."
            ));
        }
        Some(Value::String(s)) if s.is_empty() => {
            return Some(format!(
                "The identity claim {key:?} is empty: fill in the customer's identity."
            ));
        }
        Some(Value::String(_)) => {
            return Some(format!(
                "The identity claim {key:?} is longer than 256 characters: use a shorter \
                 stable id."
            ));
        }
    }
    if let Some((outer, inner)) = key.split_once('.')
        && claims.get(outer).and_then(|o| o.get(inner)).is_some()
    {
        return Some(format!(
            "{key:?} is one claim whose name contains a dot, not {inner:?} inside {outer:?}: \
             put the identity in a top-level claim named {key:?}."
        ));
    }
    let found = IDENTITY_LIKE.iter().find(|name| {
        **name != key
            && claims
                .get(**name)
                .is_some_and(|v| v.is_string() || v.is_i64() || v.is_u64())
    });
    Some(match found {
        Some(name) => format!(
            "The messenger reads the identity from the claim {key:?}, which the token lacks, \
             but the token has {name:?}: set the contact identity key to {name:?} on the \
             Security tab, or put the identity in {key:?}."
        ),
        None => format!(
            "The messenger reads the identity from the claim {key:?}, which the token lacks: \
             add it, or change the contact identity key on the Security tab."
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn security(validation: Value, extra: Value) -> Security {
        let mut s = json!({
            "validation": validation,
            "contactIdentityKey": "sub",
            "allowedUrls": [],
            "clockSkewSeconds": 60,
            "maxTokenLifetimeSeconds": null,
            "issuer": null,
            "audience": null,
        });
        if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(extra.clone());
        }
        serde_json::from_value(s).expect("a stored security")
    }

    fn shared() -> Security {
        security(
            json!({"method": "sharedToken", "secret": "s".repeat(32), "encoding": "text"}),
            json!({}),
        )
    }

    fn failed(error: VerifyError) -> Failure {
        Failure::from(error)
    }

    struct Case {
        token: String,
        header: Map<String, Value>,
        claims: Map<String, Value>,
        failure: Option<Failure>,
        security: Security,
    }

    impl Case {
        fn new(header: Value, claims: Value, failure: Option<Failure>, security: Security) -> Self {
            Case {
                token: "eyJh.eyJz.c2ln".into(),
                header: header.as_object().cloned().expect("object"),
                claims: claims.as_object().cloned().expect("object"),
                failure,
                security,
            }
        }

        fn facts(&self) -> Facts<'_> {
            Facts {
                token: &self.token,
                header: Some(&self.header),
                claims: Some(&self.claims),
                failure: self.failure.as_ref(),
                security: &self.security,
                now: NOW,
                by_previous: None,
                pem_text_signs: false,
                other_encoding_signs: None,
                other_messenger_signs: None,
                jwks_answer: None,
            }
        }

        fn hint(&self) -> String {
            hint(&self.facts()).expect("a hint")
        }
    }

    #[test]
    fn nothing_wrong_no_hint() {
        let c = Case::new(
            json!({"alg": "HS256"}),
            json!({"sub": "a", "exp": NOW + 60, "iat": NOW}),
            None,
            shared(),
        );
        assert_eq!(hint(&c.facts()), None);
    }

    #[test]
    fn exp_in_milliseconds_whether_it_passes_or_fails() {
        let claims = json!({"sub": "a", "exp": (NOW + 60) * 1000});
        let passing = Case::new(json!({"alg": "HS256"}), claims.clone(), None, shared());
        assert!(
            passing.hint().contains("milliseconds"),
            "{}",
            passing.hint()
        );
        let capped = Case::new(
            json!({"alg": "HS256"}),
            claims,
            Some(failed(VerifyError::LifetimeTooLong("x".into()))),
            shared(),
        );
        assert!(capped.hint().contains("milliseconds"));
    }

    #[test]
    fn hs_signed_with_the_pem_text() {
        let pk = security(
            json!({"method": "publicKey", "publicKey": "-----BEGIN PUBLIC KEY-----\nx\n-----END PUBLIC KEY-----\n"}),
            json!({}),
        );
        let c = Case::new(
            json!({"alg": "HS256"}),
            json!({"sub": "a"}),
            Some(failed(VerifyError::AlgorithmNotAllowed("x".into()))),
            pk,
        );
        let mut facts = c.facts();
        facts.pem_text_signs = true;
        let h = hint(&facts).expect("hint");
        assert!(h.contains("PEM text"), "{h}");
        assert!(c.hint().contains("needs a shared secret"));
    }

    #[test]
    fn pem_variants_cover_newlines_and_crlf() {
        let v = pem_variants("A\nB\n");
        for want in ["A\nB\n", "A\nB", "A\r\nB", "A\r\nB\r\n"] {
            assert!(v.iter().any(|p| p == want), "{want:?}");
        }
    }

    #[test]
    fn identity_in_another_claim() {
        let mut s = shared();
        s.contact_identity_key = "customer_ref".into();
        let c = Case::new(
            json!({"alg": "HS256"}),
            json!({"exp": NOW + 60, "email": "a@b.test"}),
            Some(failed(VerifyError::IdentityMissing("x".into()))),
            s.clone(),
        );
        assert!(c.hint().contains("\"email\""), "{}", c.hint());
        let c = Case::new(
            json!({"alg": "HS256"}),
            json!({"exp": NOW + 60, "comm100.email": "a@b.test"}),
            Some(failed(VerifyError::IdentityMissing("x".into()))),
            s,
        );
        assert!(c.hint().contains("\"comm100.email\""));
    }

    #[test]
    fn identity_of_the_wrong_type() {
        for (value, word) in [
            (json!(1.0), "not an integer"),
            (json!({"id": 1}), "object"),
            (json!(["a"]), "array"),
        ] {
            let c = Case::new(
                json!({"alg": "HS256"}),
                json!({"exp": NOW + 60, "sub": value}),
                Some(failed(VerifyError::IdentityMissing("x".into()))),
                shared(),
            );
            assert!(c.hint().contains(word), "{}", c.hint());
        }
    }

    #[test]
    fn the_other_encoding_and_the_other_messenger() {
        let c = Case::new(
            json!({"alg": "HS256"}),
            json!({"sub": "a", "exp": NOW + 60}),
            Some(failed(VerifyError::SignatureInvalid)),
            shared(),
        );
        let mut facts = c.facts();
        facts.other_encoding_signs = Some(Encoding::Base64url);
        assert!(hint(&facts).expect("hint").contains("as base64url"));
        facts.other_encoding_signs = Some(Encoding::Text);
        assert!(hint(&facts).expect("hint").contains("as text"));
        facts.other_encoding_signs = None;
        facts.other_messenger_signs = Some("Billing".into());
        assert!(hint(&facts).expect("hint").contains("\"Billing\""));
        // Nothing recognised: still what to change, and an old exp is mentioned.
        let mut expired = Case::new(
            json!({"alg": "HS256"}),
            json!({"sub": "a", "exp": NOW - 600}),
            Some(failed(VerifyError::SignatureInvalid)),
            shared(),
        );
        expired.token = "x".into();
        let h = expired.hint();
        assert!(
            h.contains("exact secret") && h.contains("exp is in the past"),
            "{h}"
        );
    }

    #[test]
    fn iat_in_the_future() {
        let c = Case::new(
            json!({"alg": "HS256"}),
            json!({"sub": "a", "exp": NOW + 900, "iat": NOW + 300}),
            None,
            shared(),
        );
        assert!(c.hint().contains("300 seconds in the future"));
        let within_skew = Case::new(
            json!({"alg": "HS256"}),
            json!({"sub": "a", "exp": NOW + 900, "iat": NOW + 30}),
            None,
            shared(),
        );
        assert_eq!(hint(&within_skew.facts()), None);
    }

    #[test]
    fn jwks_answers() {
        let jwks = security(
            json!({"method": "jwks", "jwksUrl": "https://idp.test/jwks"}),
            json!({}),
        );
        let c = Case::new(
            json!({"alg": "RS256"}),
            json!({}),
            Some(failed(VerifyError::JwksUnavailable("x".into()))),
            jwks.clone(),
        );
        let mut facts = c.facts();
        for (answer, word) in [
            (JwksAnswer::Html, "HTML"),
            (JwksAnswer::NotJson, "does not answer JSON"),
            (JwksAnswer::NotAKeySet, "no \"keys\" array"),
        ] {
            facts.jwks_answer = Some(answer);
            assert!(hint(&facts).expect("hint").contains(word), "{word}");
        }
        assert_eq!(classify_jwks(b"  <!doctype html><html>"), JwksAnswer::Html);
        assert_eq!(
            classify_jwks(b"{\"issuer\": \"x\"}"),
            JwksAnswer::NotAKeySet
        );
        assert_eq!(classify_jwks(b"{\"keys\": []}"), JwksAnswer::KeySet);
        assert_eq!(classify_jwks(b"nope"), JwksAnswer::NotJson);
        let ambiguous = Case::new(
            json!({"alg": "RS256"}),
            json!({}),
            Some(failed(VerifyError::KeyNotFound(
                "the token has no kid and several JWKS keys fit \"RS256\"".into(),
            ))),
            jwks,
        );
        assert!(ambiguous.hint().contains("put the kid"));
    }

    #[test]
    fn audience_array_lists_what_it_has() {
        let s = security(
            json!({"method": "sharedToken", "secret": "s".repeat(32), "encoding": "text"}),
            json!({"audience": "confidant"}),
        );
        let c = Case::new(
            json!({"alg": "HS256"}),
            json!({"sub": "a", "exp": NOW + 60, "aud": ["portal", "api"]}),
            Some(failed(VerifyError::AudienceMismatch)),
            s,
        );
        let h = c.hint();
        assert!(
            h.contains("\"portal\", \"api\"") && h.contains("\"confidant\""),
            "{h}"
        );
    }

    #[test]
    fn alg_none_and_the_wrong_key_type() {
        let c = Case::new(
            json!({"alg": "none"}),
            json!({}),
            Some(failed(VerifyError::AlgorithmNotAllowed("x".into()))),
            shared(),
        );
        assert!(c.hint().contains("unsigned"));
        let rs_on_shared = Case::new(
            json!({"alg": "RS256"}),
            json!({}),
            Some(failed(VerifyError::AlgorithmNotAllowed("x".into()))),
            shared(),
        );
        assert!(rs_on_shared.hint().contains("shared token"));
    }

    #[test]
    fn pasted_with_bearer_quotes_or_spaces() {
        for (token, word) in [
            ("Bearer eyJh.eyJz.c2ln", "Bearer"),
            ("\"eyJh.eyJz.c2ln\"", "quotes"),
            (" eyJh.eyJz.c2ln\n", "white space"),
            ("eyJh.eyJz", "three parts"),
            ("a.b.c.d.e", "JWE"),
        ] {
            let c = pasted(token);
            assert!(c.hint().contains(word), "{token:?}: {}", c.hint());
        }
    }

    /// A token that does not parse, as pasted.
    fn pasted(token: &str) -> Case {
        let mut c = Case::new(
            json!({}),
            json!({}),
            Some(failed(VerifyError::Malformed("x".into()))),
            shared(),
        );
        c.token = token.into();
        c
    }

    #[test]
    fn a_paste_with_characters_of_several_bytes_gets_a_hint() {
        // Schemathesis found this one: the first seven bytes ended inside a character.
        for token in ["00\u{80}\u{10000}", "Bearé eyJh", "ü", "日本語のトークン"] {
            assert!(!pasted(token).hint().is_empty(), "{token:?}");
        }
    }

    #[test]
    fn rows_pass_fail_and_not_run() {
        let s = shared();
        let failure = Failure {
            check: Check::NotBefore,
            error: VerifyError::Malformed("nbf is not a NumericDate".into()),
        };
        let rows = rows(Some(&failure), &s, None);
        let names: Vec<_> = rows.iter().map(|r| r.check).collect();
        assert_eq!(
            names,
            [
                "format",
                "algorithm",
                "key",
                "signature",
                "expiry",
                "notBefore",
                "lifetime",
                "issuer",
                "audience",
                "identity"
            ]
        );
        let oks: Vec<_> = rows.iter().map(|r| r.ok).collect();
        assert_eq!(&oks[..5], &[Some(true); 5]);
        assert_eq!(oks[5], Some(false));
        assert!(rows[5].detail.contains("nbf"));
        assert!(
            rows[6..]
                .iter()
                .all(|r| r.ok.is_none() && r.detail == "not run")
        );
        assert!(
            self::rows(None, &s, None)
                .iter()
                .all(|r| r.ok == Some(true))
        );
    }
}
