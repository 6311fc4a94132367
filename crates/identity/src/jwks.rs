//! JWKS: keys fetched from a messenger's URL and cached per URL (CONTRACT §6).
//!
//! - One entry per URL: a key found under one URL never verifies a token for another URL.
//! - Keys are parsed once per fetch and kept parsed.
//! - A set is fresh for its `Cache-Control: max-age` (5 minutes by default, at most a day);
//!   a stale set is refetched, and while refetching fails the last good set keeps serving for
//!   up to 24 hours after it was fetched.
//! - A token naming a key the set lacks triggers one refetch, at most once per 30 s per URL.
//! - One fetch per URL at a time: concurrent requests wait for it and share its outcome.
//! - Bounded work per token (review finding 3): at most 100 keys are read from a set and at
//!   most 2 are tried for one token, so a hostile set cannot make one anonymous authorize
//!   cost hundreds of signature checks.
//! - Bounded memory (review finding 4): the cache holds at most `MAX_CACHED_KEYS` keys in all
//!   (least used URLs go first), and a URL unused for 24 hours is dropped. A URL that no
//!   messenger names any more is never read again, so it goes within a day; it is not dropped
//!   at once when a messenger moves away from it, because another site's messenger may still
//!   name it and would lose its last good copy (the one that serves it through an outage).
//!
//! No HTTP here: the server provides a `JwksFetcher`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::error::{VerifyError, quote_short};
use crate::keys::{Curve, PublicKey};

const DEFAULT_MAX_AGE: i64 = 5 * 60;
/// A JWKS asking to be cached longer is still refetched daily, so a withdrawn key goes.
const LONGEST_MAX_AGE: i64 = 24 * 3600;
/// How long after its fetch the last good set may serve while its URL fails.
const LAST_GOOD_FOR: i64 = 24 * 3600;
const UNKNOWN_KID_REFRESH_EVERY: i64 = 30;
/// While a usable stale set is served, a failed refetch is not retried sooner than this, so
/// an outage does not make every request wait for the fetcher's timeout.
const RETRY_STALE_AFTER: i64 = 30;
/// A backstop in case a fetcher ignores its own timeout.
const FETCH_DEADLINE: Duration = Duration::from_secs(10);
/// The keys read from one set (CONTRACT §6); the rest of the set is ignored.
pub const MAX_KEYS_READ: usize = 100;
/// The keys tried for one token (CONTRACT §6): the first ones of the set that have its `kid`
/// and fit its algorithm.
pub const MAX_KEYS_TRIED: usize = 2;
/// The cache's bound, in keys (an entry weighs 1 + its keys): about 25 MB of parsed keys
/// at most, or 500 full sets of 100 keys.
pub const MAX_CACHED_KEYS: u64 = 50_000;
/// An entry unused this long is dropped: by then its set could not serve even as the last
/// good copy (`LAST_GOOD_FOR`).
const IDLE_FOR: Duration = Duration::from_secs(LAST_GOOD_FOR as u64);

/// A fetched JWKS document.
#[derive(Debug, Clone)]
pub struct FetchedJwks {
    pub body: Vec<u8>,
    /// From `Cache-Control` (see `parse_max_age`); `None` means the default of 5 minutes.
    pub max_age: Option<Duration>,
}

#[async_trait::async_trait]
pub trait JwksFetcher: Send + Sync + 'static {
    /// Err(text) for any failure (network, status, too large...). The text goes to logs only.
    async fn fetch(&self, url: &str) -> Result<FetchedJwks, String>;
}

/// The cache time a `Cache-Control` header value gives: `max-age=N`, or zero for `no-store` /
/// `no-cache` (the set is then refetched for every token, but still serves as the last good
/// copy). `None` when the header says neither. Directive names are case-insensitive.
pub fn parse_max_age(header: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in header.split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && max_age.is_none()
            && let Some(value) =
                value.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        {
            // Digits only, so the parse fails only on overflow: a huge age is "very long".
            max_age = Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
        }
    }
    max_age
}

/// One usable key of a set.
struct SetKey {
    kid: Option<String>,
    /// The key's own `alg`, which narrows it to that one algorithm.
    alg: Option<String>,
    key: Arc<PublicKey>,
}

impl SetKey {
    fn fits(&self, alg: &str) -> bool {
        self.key.allows(alg) && self.alg.as_deref().is_none_or(|own| own == alg)
    }
}

struct KeySet {
    keys: Vec<SetKey>,
    fetched_at: i64,
    fresh_until: i64,
}

impl KeySet {
    fn usable_at(&self, now: i64) -> bool {
        now < self.fetched_at.saturating_add(LAST_GOOD_FOR)
    }
}

#[derive(Default)]
struct FetchState {
    /// When the last fetch failed, if the last fetch did fail.
    failed_at: Option<i64>,
    kid_refreshed_at: Option<i64>,
}

/// The cache entry of one URL.
#[derive(Default)]
struct Entry {
    set: Mutex<Option<Arc<KeySet>>>,
    /// Held for the whole of a fetch: this is what makes it one fetch per URL at a time.
    fetch: tokio::sync::Mutex<FetchState>,
    /// Counts finished fetches, so a request that waited for someone else's fetch can tell
    /// and use its outcome instead of fetching again.
    fetches: AtomicU64,
}

impl Entry {
    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.set
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn store(&self, set: Arc<KeySet>) {
        *self.set.lock().unwrap_or_else(PoisonError::into_inner) = Some(set);
    }

    /// The cache's measure of an entry: 1 + its keys.
    fn weight(&self) -> u32 {
        let keys = self.snapshot().map_or(0, |set| set.keys.len());
        u32::try_from(keys).unwrap_or(u32::MAX).saturating_add(1)
    }
}

/// What a set offers for a token.
enum Selection {
    Keys(Vec<Arc<PublicKey>>),
    /// The set has the token's `kid`, but not for the token's algorithm.
    WrongType,
    Missing,
    /// No `kid`, and several keys fit the algorithm.
    Ambiguous,
}

fn select(set: &KeySet, kid: Option<&str>, alg: &str) -> Selection {
    match kid {
        Some(kid) => {
            let named: Vec<&SetKey> = set
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if named.is_empty() {
                return Selection::Missing;
            }
            // Several keys may share a kid (RFC 7517 §4.5, e.g. of different types): the
            // first ones that fit may verify, and no more than that, whatever the set holds.
            let fitting: Vec<_> = named
                .into_iter()
                .filter(|k| k.fits(alg))
                .take(MAX_KEYS_TRIED)
                .map(|k| k.key.clone())
                .collect();
            if fitting.is_empty() {
                Selection::WrongType
            } else {
                Selection::Keys(fitting)
            }
        }
        None => {
            let mut fitting = set.keys.iter().filter(|k| k.fits(alg));
            match (fitting.next(), fitting.next()) {
                (None, _) => Selection::Missing,
                (Some(only), None) => Selection::Keys(vec![only.key.clone()]),
                (Some(_), Some(_)) => Selection::Ambiguous,
            }
        }
    }
}

/// The per-URL JWKS cache.
pub struct JwksCache {
    fetcher: Arc<dyn JwksFetcher>,
    clock: Arc<dyn Clock>,
    /// By URL, weighed by keys (see the module's notes on the bounds).
    entries: moka::sync::Cache<String, Arc<Entry>>,
}

impl JwksCache {
    pub fn new(fetcher: Arc<dyn JwksFetcher>, clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(fetcher, clock, MAX_CACHED_KEYS)
    }

    /// A cache that holds at most `max_keys` keys (and entries) in all.
    pub fn with_capacity(
        fetcher: Arc<dyn JwksFetcher>,
        clock: Arc<dyn Clock>,
        max_keys: u64,
    ) -> Self {
        Self {
            fetcher,
            clock,
            entries: moka::sync::Cache::builder()
                .max_capacity(max_keys)
                .weigher(|_, entry: &Arc<Entry>| entry.weight())
                .time_to_idle(IDLE_FOR)
                .build(),
        }
    }

    /// How many URLs the cache holds now (after its pending evictions).
    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// The keys of `url`'s set that may verify a token with this `kid` and `alg` (an alg
    /// some JWKS key could verify).
    pub(crate) async fn keys_for(
        &self,
        url: &str,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<Vec<Arc<PublicKey>>, VerifyError> {
        let entry = self.entries.get_with_by_ref(url, Arc::default);
        let (set, fetched_now) = self.current(&entry, url).await?;
        let mut selection = select(&set, kid, alg);
        // A key the set lacks may be a new one: look again, unless the set is brand new.
        if matches!(selection, Selection::Missing)
            && !fetched_now
            && let Some(newer) = self.refresh_for_missing_key(&entry, url).await
        {
            selection = select(&newer, kid, alg);
        }
        match selection {
            Selection::Keys(keys) => Ok(keys),
            // The token names the key, so the problem is its algorithm, not a missing key.
            Selection::WrongType => Err(VerifyError::AlgorithmNotAllowed(format!(
                "the JWKS key {} does not allow {}",
                quote_short(kid.unwrap_or_default()),
                quote_short(alg)
            ))),
            Selection::Missing => Err(VerifyError::KeyNotFound(match kid {
                Some(kid) => format!(
                    "the JWKS has no key {} for {}",
                    quote_short(kid),
                    quote_short(alg)
                ),
                None => format!(
                    "the token has no kid and no JWKS key fits {}",
                    quote_short(alg)
                ),
            })),
            Selection::Ambiguous => Err(VerifyError::KeyNotFound(format!(
                "the token has no kid and several JWKS keys fit {}",
                quote_short(alg)
            ))),
        }
    }

    /// A usable set for `url`, fetching when there is none or it is stale. The flag says
    /// whether this call fetched it.
    async fn current(
        &self,
        entry: &Arc<Entry>,
        url: &str,
    ) -> Result<(Arc<KeySet>, bool), VerifyError> {
        if let Some(set) = entry.snapshot()
            && self.clock.now() < set.fresh_until
        {
            metrics::counter!("confidant_jwks_cache_total", "result" => "hit").increment(1);
            return Ok((set, false));
        }
        let seen = entry.fetches.load(Ordering::SeqCst);
        let mut state = entry.fetch.lock().await;
        let now = self.clock.now();
        let cached = entry.snapshot();
        if let Some(set) = &cached
            && now < set.fresh_until
        {
            // Someone else's fetch, finished while this request waited.
            metrics::counter!("confidant_jwks_cache_total", "result" => "hit").increment(1);
            return Ok((set.clone(), false));
        }
        let result = if cached.is_some() { "stale" } else { "miss" };
        metrics::counter!("confidant_jwks_cache_total", "result" => result).increment(1);
        let last_good = cached.filter(|set| set.usable_at(now));
        // A fetch that finished while this request waited failed (else the set would be
        // fresh): share its outcome rather than queue another.
        let just_failed = entry.fetches.load(Ordering::SeqCst) != seen;
        let backing_off = last_good.is_some()
            && state
                .failed_at
                .is_some_and(|at| now - at < RETRY_STALE_AFTER);
        if !just_failed
            && !backing_off
            && let Some(set) = self.fetch_locked(entry, &mut state, url).await
        {
            return Ok((set, true));
        }
        last_good.map(|set| (set, false)).ok_or_else(|| {
            VerifyError::JwksUnavailable(
                "the JWKS cannot be fetched and no usable copy of it is cached".into(),
            )
        })
    }

    /// Refetch because a token names a key the set lacks; `None` when rate-limited or failed.
    async fn refresh_for_missing_key(&self, entry: &Arc<Entry>, url: &str) -> Option<Arc<KeySet>> {
        let seen = entry.fetches.load(Ordering::SeqCst);
        let mut state = entry.fetch.lock().await;
        if entry.fetches.load(Ordering::SeqCst) != seen {
            // A fetch finished while this request waited: its set is as new as one gets.
            return entry.snapshot();
        }
        let now = self.clock.now();
        if state
            .kid_refreshed_at
            .is_some_and(|at| now - at < UNKNOWN_KID_REFRESH_EVERY)
        {
            return None;
        }
        state.kid_refreshed_at = Some(now);
        self.fetch_locked(entry, &mut state, url).await
    }

    /// Fetch and parse; on success the new set replaces the old. The caller holds the lock.
    async fn fetch_locked(
        &self,
        entry: &Arc<Entry>,
        state: &mut FetchState,
        url: &str,
    ) -> Option<Arc<KeySet>> {
        let outcome = match tokio::time::timeout(FETCH_DEADLINE, self.fetcher.fetch(url)).await {
            Ok(Ok(fetched)) => parse_set(&fetched.body).map(|keys| (keys, fetched.max_age)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the fetch timed out".to_owned()),
        };
        entry.fetches.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now();
        match outcome {
            Ok((keys, max_age)) => {
                metrics::counter!("confidant_jwks_fetches_total", "outcome" => "ok").increment(1);
                let max_age = max_age.map_or(DEFAULT_MAX_AGE, |age| {
                    i64::try_from(age.as_secs())
                        .unwrap_or(i64::MAX)
                        .min(LONGEST_MAX_AGE)
                });
                tracing::debug!(url, keys = keys.len(), max_age, "JWKS fetched");
                let set = Arc::new(KeySet {
                    keys,
                    fetched_at: now,
                    fresh_until: now + max_age,
                });
                entry.store(set.clone());
                // Again, so that the cache weighs the entry with its new keys.
                self.entries.insert(url.to_owned(), entry.clone());
                state.failed_at = None;
                Some(set)
            }
            Err(error) => {
                metrics::counter!("confidant_jwks_fetches_total", "outcome" => "error")
                    .increment(1);
                tracing::warn!(url, %error, "JWKS fetch failed");
                state.failed_at = Some(now);
                None
            }
        }
    }
}

/// A JWK Set's usable keys. A body that is not a JWK Set is an error (a failed fetch); a key
/// that cannot be used is skipped and logged.
fn parse_set(body: &[u8]) -> Result<Vec<SetKey>, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("the body is not a JWK Set (no \"keys\" array)")?;
    if keys.len() > MAX_KEYS_READ {
        tracing::warn!(
            keys = keys.len(),
            read = MAX_KEYS_READ,
            "the JWKS has more keys than are read; the rest are ignored"
        );
    }
    let mut usable = Vec::with_capacity(keys.len().min(MAX_KEYS_READ));
    for (index, jwk) in keys.iter().take(MAX_KEYS_READ).enumerate() {
        match parse_jwk(jwk) {
            Ok(key) => usable.push(key),
            Err(reason) => {
                let kid = jwk.get("kid").and_then(Value::as_str).map(quote_short);
                tracing::info!(index, ?kid, %reason, "JWKS key skipped");
            }
        }
    }
    Ok(usable)
}

fn parse_jwk(jwk: &Value) -> Result<SetKey, String> {
    let jwk = jwk.as_object().ok_or("not an object")?;
    let kid = text(jwk, "kid")?;
    // A key for encryption, or meant only for operations other than verifying, never verifies.
    if let Some(usage) = text(jwk, "use")?
        && usage != "sig"
    {
        return Err(format!("use is {}, not sig", quote_short(&usage)));
    }
    if let Some(ops) = jwk.get("key_ops")
        && !ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"))
    {
        return Err("key_ops does not include verify".to_owned());
    }
    let alg = text(jwk, "alg")?;
    let kty = text(jwk, "kty")?.ok_or("no kty")?;
    let key = match kty.as_str() {
        "RSA" => PublicKey::rsa(&bytes(jwk, "n")?, &bytes(jwk, "e")?),
        "EC" => {
            let curve = match text(jwk, "crv")?.as_deref() {
                Some("P-256") => Curve::P256,
                Some("P-384") => Curve::P384,
                other => return Err(format!("unsupported EC curve {other:?}")),
            };
            PublicKey::ec(curve, &bytes(jwk, "x")?, &bytes(jwk, "y")?)
        }
        "OKP" => match text(jwk, "crv")?.as_deref() {
            Some("Ed25519") => PublicKey::ed25519(&bytes(jwk, "x")?),
            other => return Err(format!("unsupported OKP curve {other:?}")),
        },
        // "oct" included: a shared secret published in a JWKS is never a verification key.
        other => return Err(format!("unsupported kty {}", quote_short(other))),
    }
    .map_err(|e| e.to_string())?;
    if let Some(alg) = &alg
        && !key.allows(alg)
    {
        return Err(format!(
            "its alg {} does not fit its key type",
            quote_short(alg)
        ));
    }
    Ok(SetKey {
        kid,
        alg,
        key: Arc::new(key),
    })
}

fn text(jwk: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{name} is not a string")),
    }
}

/// A base64url member. Padding is tolerated here: some publishers add it, and a key's
/// encoding is not attacker-chosen the way a token's is.
fn bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let encoded = text(jwk, name)?.ok_or_else(|| format!("no {name}"))?;
    crate::jws::decode(encoded.trim_end_matches('='))
        .ok_or_else(|| format!("{name} is not base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        let s = Duration::from_secs;
        assert_eq!(parse_max_age("max-age=600"), Some(s(600)));
        assert_eq!(
            parse_max_age("public, max-age=60, must-revalidate"),
            Some(s(60))
        );
        assert_eq!(parse_max_age("Max-Age = \"120\""), Some(s(120)));
        assert_eq!(parse_max_age("no-cache"), Some(s(0)));
        assert_eq!(parse_max_age("max-age=600, no-store"), Some(s(0)));
        assert_eq!(parse_max_age("NO-CACHE=\"Set-Cookie\""), Some(s(0)));
        assert_eq!(
            parse_max_age("max-age=99999999999999999999999"),
            Some(s(u64::MAX))
        );
        assert_eq!(parse_max_age("s-maxage=60"), None);
        assert_eq!(parse_max_age("max-age=-1"), None);
        assert_eq!(parse_max_age("max-age=1h"), None);
        assert_eq!(parse_max_age("max-age="), None);
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age(""), None);
    }

    #[test]
    fn jwk_rules() {
        let ed = |extra: Value| {
            let mut jwk = serde_json::json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            });
            jwk.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            parse_jwk(&jwk)
        };
        use serde_json::json;
        assert!(ed(json!({})).is_ok());
        assert!(ed(json!({"use": "sig", "alg": "EdDSA", "kid": "k"})).is_ok());
        assert!(ed(json!({"key_ops": ["verify"]})).is_ok());
        assert!(ed(json!({"use": "enc"})).is_err());
        assert!(ed(json!({"use": 1})).is_err());
        assert!(ed(json!({"key_ops": ["sign"]})).is_err());
        assert!(ed(json!({"alg": "ES256"})).is_err());
        assert!(ed(json!({"crv": "Ed448"})).is_err());
        assert!(ed(json!({"kty": "oct", "k": "c2VjcmV0"})).is_err());
        assert!(ed(json!({"kty": "unknown"})).is_err());
        assert!(ed(json!({"x": "not base64!"})).is_err());
        assert!(ed(json!({"kid": 7})).is_err());
        assert!(parse_set(br#"{"keys": 1}"#).is_err());
        assert!(parse_set(br#"[]"#).is_err());
        assert!(parse_set(b"<html>").is_err());
        assert_eq!(
            parse_set(br#"{"keys": [{"kty": "nope"}, 5]}"#)
                .unwrap()
                .len(),
            0
        );
    }
}
