//! The JWKS cache with a fake fetcher and a manual clock: rotation, rate limits, outages,
//! per-URL isolation, cache times and single-flight fetching.

use std::time::Duration;

use crate::common::*;
use confidant_identity::{Verified, VerifyError};
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;

/// A token from `key` with `kid`, valid at `now`.
fn token(key: &TestKey, kid: Option<&str>, now: i64) -> String {
    let alg = format!("{:?}", key.alg);
    let header = match kid {
        Some(kid) => json!({"alg": alg, "kid": kid}),
        None => json!({"alg": alg}),
    };
    key.sign(&header, &claims(now))
}

fn jwk(key: &TestKey, kid: &str) -> Value {
    key.jwk_with(json!({"kid": kid}))
}

/// The code `t` gets under the JWKS method on `JWKS_URL` and the default policy.
async fn code(h: &Harness, t: &str) -> &'static str {
    h.code(t, &jwks_method(JWKS_URL), &policy()).await
}

#[tokio::test]
async fn a_new_kid_is_found_by_refreshing() {
    let h = Harness::new(NOW);
    let (k1, k2) = (TestKey::p256(), TestKey::p256());
    h.fetcher.serve(JWKS_URL, vec![jwk(&k1, "k1")], None);
    assert_eq!(code(&h, &token(&k1, Some("k1"), NOW)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 1);

    // The issuer rotates; a token with the new kid arrives long before the cache time is up.
    h.clock.advance(5);
    h.fetcher
        .serve(JWKS_URL, vec![jwk(&k1, "k1"), jwk(&k2, "k2")], None);
    assert_eq!(code(&h, &token(&k2, Some("k2"), NOW)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 2);
    // Both keys now come from the cache.
    assert_eq!(code(&h, &token(&k1, Some("k1"), NOW)).await, "ok");
    assert_eq!(code(&h, &token(&k2, Some("k2"), NOW)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 2);
}

#[tokio::test]
async fn unknown_kids_refresh_at_most_every_30_seconds() {
    let h = Harness::new(NOW);
    let k = TestKey::p256();
    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], None);
    // Cold cache with an unknown kid: one fetch, and no second one right after it.
    assert_eq!(
        code(&h, &token(&k, Some("nope-1"), NOW)).await,
        "key_not_found"
    );
    assert_eq!(h.fetcher.calls(JWKS_URL), 1);
    // The first unknown kid on a warm set refreshes …
    h.clock.advance(1);
    assert_eq!(
        code(&h, &token(&k, Some("nope-2"), NOW)).await,
        "key_not_found"
    );
    assert_eq!(h.fetcher.calls(JWKS_URL), 2);
    // … the next ones within 30 s do not.
    for (i, step) in [1, 10, 18].into_iter().enumerate() {
        h.clock.advance(step);
        let kid = format!("nope-{}", i + 3);
        assert_eq!(code(&h, &token(&k, Some(&kid), NOW)).await, "key_not_found");
        assert_eq!(h.fetcher.calls(JWKS_URL), 2, "{kid}");
    }
    // 30 s after the last refresh, another one is allowed.
    h.clock.advance(1);
    assert_eq!(
        code(&h, &token(&k, Some("nope-9"), NOW)).await,
        "key_not_found"
    );
    assert_eq!(h.fetcher.calls(JWKS_URL), 3);
    // A known kid never refreshes.
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 3);
}

#[tokio::test]
async fn the_last_good_set_serves_for_24_hours_of_outage() {
    let h = Harness::new(NOW);
    let k = TestKey::p256();
    let m = jwks_method(JWKS_URL);
    let p = policy();
    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], None);
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW)).await, "ok");
    h.fetcher.fail(JWKS_URL);

    // Stale after 5 minutes: a refetch is tried, fails, and the old set answers.
    h.clock.set(NOW + 300);
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW + 300)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 2);
    // While it fails, retries are spaced 30 s apart so requests do not all wait on it.
    h.clock.set(NOW + 329);
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW + 329)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 2);
    h.clock.set(NOW + 330);
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW + 330)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 3);

    // Up to 24 hours after the good fetch …
    let last_second = NOW + DAY - 1;
    h.clock.set(last_second);
    assert_eq!(code(&h, &token(&k, Some("k1"), last_second)).await, "ok");
    // … and not after.
    h.clock.set(NOW + DAY);
    let err = h
        .verifier
        .verify(&token(&k, Some("k1"), NOW + DAY), &m, &p)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "jwks_unavailable");
    assert!(err.is_unavailable());

    // The URL comes back: the next request fetches and verifies.
    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], None);
    h.clock.set(NOW + DAY + 30);
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW + DAY + 30)).await, "ok");
}

#[tokio::test]
async fn a_cold_outage_is_jwks_unavailable_until_the_url_answers() {
    let h = Harness::new(NOW);
    let k = TestKey::p256();
    let m = jwks_method(JWKS_URL);
    h.fetcher.fail(JWKS_URL);
    let err = h
        .verifier
        .verify(&token(&k, Some("k1"), NOW), &m, &policy())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::JwksUnavailable(_)));
    assert!(
        !err.to_string().contains("connection refused"),
        "fetch errors go to logs only"
    );
    // No backoff without a usable copy: as soon as the URL answers, tokens verify.
    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], None);
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW)).await, "ok");
}

#[tokio::test]
async fn a_body_that_is_not_a_jwk_set_is_a_failed_fetch() {
    let h = Harness::new(NOW);
    let k = TestKey::p256();
    for body in [&b"<html>oops</html>"[..], b"{\"keys\": {}}", b"[]", b""] {
        h.fetcher.serve_raw(JWKS_URL, body.to_vec(), None);
        assert_eq!(
            code(&h, &token(&k, Some("k1"), NOW)).await,
            "jwks_unavailable"
        );
    }
    // With a good set cached, a broken body later keeps the good set.
    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], None);
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW)).await, "ok");
    h.fetcher.serve_raw(JWKS_URL, b"not json".to_vec(), None);
    h.clock.advance(301);
    assert_eq!(code(&h, &token(&k, Some("k1"), NOW + 301)).await, "ok");
}

#[tokio::test]
async fn one_url_never_vouches_for_another() {
    let h = Harness::new(NOW);
    let (a, b) = (TestKey::p256(), TestKey::p256());
    const URL_A: &str = "https://a.example.test/jwks";
    const URL_B: &str = "https://b.example.test/jwks";
    h.fetcher.serve(URL_A, vec![jwk(&a, "shared-kid")], None);
    h.fetcher.serve(URL_B, vec![jwk(&b, "shared-kid")], None);
    let token_a = token(&a, Some("shared-kid"), NOW);
    let token_b = token(&b, Some("shared-kid"), NOW);
    assert_eq!(h.code(&token_a, &jwks_method(URL_A), &policy()).await, "ok");
    assert_eq!(h.code(&token_b, &jwks_method(URL_B), &policy()).await, "ok");
    assert_eq!(
        h.code(&token_a, &jwks_method(URL_B), &policy()).await,
        "signature_invalid"
    );
    assert_eq!(
        h.code(&token_b, &jwks_method(URL_A), &policy()).await,
        "signature_invalid"
    );
    // A kid only URL_A knows is not found under URL_B.
    h.fetcher
        .serve(URL_A, vec![jwk(&a, "shared-kid"), jwk(&a, "only-a")], None);
    h.clock.advance(301);
    assert_eq!(
        h.code(
            &token(&a, Some("only-a"), NOW),
            &jwks_method(URL_A),
            &policy()
        )
        .await,
        "ok"
    );
    assert_eq!(
        h.code(
            &token(&a, Some("only-a"), NOW),
            &jwks_method(URL_B),
            &policy()
        )
        .await,
        "key_not_found"
    );
}

#[tokio::test]
async fn max_age_is_honoured() {
    let h = Harness::new(NOW);
    let k = TestKey::p256();
    let ok = |at: i64| token(&k, Some("k1"), at);

    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], Some(60));
    assert_eq!(code(&h, &ok(NOW)).await, "ok");
    h.clock.set(NOW + 59);
    assert_eq!(code(&h, &ok(NOW)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 1);
    h.clock.set(NOW + 60);
    assert_eq!(code(&h, &ok(NOW)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 2);

    // Without Cache-Control: 5 minutes.
    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], None);
    h.clock.set(NOW + 120);
    assert_eq!(code(&h, &ok(NOW)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 3);
    h.clock.set(NOW + 120 + 299);
    assert_eq!(code(&h, &ok(NOW + 120)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 3);
    h.clock.set(NOW + 120 + 300);
    assert_eq!(code(&h, &ok(NOW + 120)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 4);

    // max-age 0 (no-store / no-cache): every token refetches, and a withdrawn key stops at once.
    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], Some(0));
    h.clock.advance(300);
    let now = NOW + 720;
    assert_eq!(code(&h, &ok(now)).await, "ok");
    assert_eq!(code(&h, &ok(now)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 6);
    h.fetcher.serve(JWKS_URL, vec![], Some(0));
    assert_eq!(code(&h, &ok(now)).await, "key_not_found");

    // A very long max-age is cut to a day.
    let h = Harness::new(NOW);
    h.fetcher
        .serve(JWKS_URL, vec![jwk(&k, "k1")], Some(365 * DAY as u64));
    assert_eq!(code(&h, &ok(NOW)).await, "ok");
    h.clock.set(NOW + DAY);
    assert_eq!(code(&h, &ok(NOW + DAY)).await, "ok");
    assert_eq!(h.fetcher.calls(JWKS_URL), 2);
}

/// 32 verifications of `t` on their own tasks at once, against a fetcher slowed to 100 ms so
/// that they all arrive while the first fetch is under way.
async fn verify_at_once(h: &Harness, t: &str) -> Vec<Result<Verified, VerifyError>> {
    h.fetcher.slow_down(Duration::from_millis(100));
    let m = jwks_method(JWKS_URL);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (verifier, m, t) = (h.verifier.clone(), m.clone(), t.to_owned());
        tasks.spawn(async move { verifier.verify(&t, &m, &policy()).await });
    }
    tasks.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_fetch() {
    let h = Harness::new(NOW);
    let k = TestKey::p256();
    h.fetcher.serve(JWKS_URL, vec![jwk(&k, "k1")], None);
    for result in verify_at_once(&h, &token(&k, Some("k1"), NOW)).await {
        assert_eq!(result.unwrap().identity, "mark@example.test");
    }
    assert_eq!(h.fetcher.calls(JWKS_URL), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_one_failure() {
    let h = Harness::new(NOW);
    let k = TestKey::p256();
    h.fetcher.fail(JWKS_URL);
    for result in verify_at_once(&h, &token(&k, Some("k1"), NOW)).await {
        assert_eq!(result.unwrap_err().code(), "jwks_unavailable");
    }
    // The ones that queued behind the first fetch took its outcome. (A task scheduled only
    // after that fetch finished may try once more; with 100 ms per fetch, none should.)
    assert_eq!(h.fetcher.calls(JWKS_URL), 1);
}

#[tokio::test]
async fn kidless_tokens_take_the_only_fitting_key() {
    let h = Harness::new(NOW);
    let m = jwks_method(JWKS_URL);
    let (ec, rsa, ed) = (TestKey::p256(), TestKey::rsa_fixture(), TestKey::ed25519());
    h.fetcher.serve(
        JWKS_URL,
        vec![jwk(&ec, "ec"), jwk(&rsa, "rsa"), jwk(&ed, "ed")],
        None,
    );
    for key in [&ec, &rsa, &ed] {
        assert_eq!(
            code(&h, &token(key, None, NOW)).await,
            "ok",
            "{:?}",
            key.alg
        );
    }
    // Two keys fit ES256: a kid-less token finds none, a token with a kid finds its own.
    let ec2 = TestKey::p256();
    h.fetcher
        .serve(JWKS_URL, vec![jwk(&ec, "ec"), jwk(&ec2, "ec2")], None);
    h.clock.advance(300);
    let err = h
        .verifier
        .verify(&token(&ec, None, NOW), &m, &policy())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "key_not_found");
    assert!(err.to_string().contains("several"), "{err}");
    assert_eq!(code(&h, &token(&ec2, Some("ec2"), NOW)).await, "ok");
    // No key fits: the set is refreshed once, then key_not_found.
    let calls = h.fetcher.calls(JWKS_URL);
    assert_eq!(
        code(&h, &token(&TestKey::p384(), None, NOW)).await,
        "key_not_found"
    );
    assert_eq!(h.fetcher.calls(JWKS_URL), calls + 1);
}

#[tokio::test]
async fn keys_that_may_not_verify_are_never_used() {
    let h = Harness::new(NOW);
    let (k, rsa) = (TestKey::p256(), TestKey::rsa_fixture());
    h.fetcher.serve(
        JWKS_URL,
        vec![
            k.jwk_with(json!({"kid": "enc", "use": "enc"})),
            k.jwk_with(json!({"kid": "ops", "key_ops": ["encrypt"]})),
            json!({"kid": "odd", "kty": "XYZ", "x": "AA"}),
            json!({"kid": "oct", "kty": "oct", "k": b64(SECRET)}),
            k.jwk_with(json!({"kid": "p384-claim", "crv": "P-384"})),
            rsa.jwk_with(json!({"kid": "rs512", "alg": "RS512"})),
            k.jwk_with(json!({"kid": "good", "use": "sig", "alg": "ES256"})),
        ],
        None,
    );
    for kid in ["enc", "ops", "odd", "oct", "p384-claim"] {
        let t = token(&k, Some(kid), NOW);
        assert_eq!(code(&h, &t).await, "key_not_found", "{kid}");
    }
    // The key's own alg narrows it: an RS256 token cannot use an RS512 key …
    let rs256 = token(&rsa, Some("rs512"), NOW);
    assert_eq!(code(&h, &rs256).await, "algorithm_not_allowed");
    // … but an RS512 one can.
    let rs512 = sign_raw(
        &json!({"alg": "RS512", "kid": "rs512"}),
        &claims(NOW),
        &rsa.encoding,
        jsonwebtoken::Algorithm::RS512,
    );
    assert_eq!(code(&h, &rs512).await, "ok");
    // The usable key of the same set still verifies.
    assert_eq!(code(&h, &token(&k, Some("good"), NOW)).await, "ok");
    // An HS256 token signed with a published "oct" key is refused by alg, before any fetch.
    let hs = hs(
        jsonwebtoken::Algorithm::HS256,
        SECRET.as_bytes(),
        &json!({"alg": "HS256", "kid": "oct"}),
        &claims(NOW),
    );
    assert_eq!(code(&h, &hs).await, "algorithm_not_allowed");
}

#[tokio::test]
async fn a_kid_naming_a_key_of_another_type_is_algorithm_not_allowed() {
    let h = Harness::new(NOW);
    let (ec, rsa) = (TestKey::p256(), TestKey::rsa_fixture());
    h.fetcher
        .serve(JWKS_URL, vec![jwk(&rsa, "rsa"), jwk(&ec, "ec")], None);
    // ES256 signed by the EC key, but naming the RSA key's kid.
    let t = token(&ec, Some("rsa"), NOW);
    assert_eq!(code(&h, &t).await, "algorithm_not_allowed");
    assert_eq!(
        h.fetcher.calls(JWKS_URL),
        1,
        "a known kid does not trigger a refresh"
    );
    // A non-string kid is not a key name.
    let t = ec.sign(&json!({"alg": "ES256", "kid": 5}), &claims(NOW));
    assert_eq!(code(&h, &t).await, "key_not_found");
}

#[tokio::test]
async fn keys_sharing_a_kid_across_types() {
    // RFC 7517 allows one kid for keys of different types; the token's alg picks among them.
    let h = Harness::new(NOW);
    let (ec, ed) = (TestKey::p256(), TestKey::ed25519());
    h.fetcher
        .serve(JWKS_URL, vec![jwk(&ec, "same"), jwk(&ed, "same")], None);
    assert_eq!(code(&h, &token(&ec, Some("same"), NOW)).await, "ok");
    assert_eq!(code(&h, &token(&ed, Some("same"), NOW)).await, "ok");
}

/// Review finding 3: a set of 1,821 P-256 keys that share one kid made every key be tried for
/// one anonymous token. Only the first 2 keys with the token's kid that fit its algorithm
/// are tried now, so a valid token signed by key #500 of such a set is refused
/// `signature_invalid` (the set has its kid; no key that was tried verifies it).
#[tokio::test]
async fn a_set_of_1821_keys_sharing_a_kid_is_tried_on_its_first_two_keys_only() {
    let h = Harness::new(NOW);
    let keys: Vec<TestKey> = (0..1821).map(|_| TestKey::p256()).collect();
    h.fetcher.serve(
        JWKS_URL,
        keys.iter().map(|k| jwk(k, "k")).collect(),
        Some(3600),
    );
    assert_eq!(
        code(&h, &token(&keys[499], Some("k"), NOW)).await,
        "signature_invalid",
        "key #500 of the set verified: every key sharing the kid was tried"
    );
    assert_eq!(
        code(&h, &token(&keys[2], Some("k"), NOW)).await,
        "signature_invalid"
    );
    assert_eq!(code(&h, &token(&keys[0], Some("k"), NOW)).await, "ok");
    assert_eq!(code(&h, &token(&keys[1], Some("k"), NOW)).await, "ok");
    // A key that does not fit the token's algorithm does not use up one of the two tries.
    let p384 = TestKey::p384();
    let es256 = TestKey::p256();
    h.fetcher.serve(
        "https://idp.example.test/mixed",
        vec![jwk(&p384, "k"), jwk(&keys[0], "k"), jwk(&es256, "k")],
        None,
    );
    let mixed = jwks_method("https://idp.example.test/mixed");
    let t = token(&es256, Some("k"), NOW);
    assert_eq!(h.code(&t, &mixed, &policy()).await, "ok");
}

/// At most 100 keys are read from a set: key #101 is not found, whatever its kid.
#[tokio::test]
async fn only_the_first_100_keys_of_a_set_are_read() {
    let h = Harness::new(NOW);
    let keys: Vec<TestKey> = (0..150).map(|_| TestKey::ed25519()).collect();
    h.fetcher.serve(
        JWKS_URL,
        keys.iter()
            .enumerate()
            .map(|(i, k)| jwk(k, &format!("k{i}")))
            .collect(),
        Some(3600),
    );
    assert_eq!(code(&h, &token(&keys[99], Some("k99"), NOW)).await, "ok");
    assert_eq!(
        code(&h, &token(&keys[100], Some("k100"), NOW)).await,
        "key_not_found"
    );
    assert_eq!(
        code(&h, &token(&keys[149], Some("k149"), NOW)).await,
        "key_not_found"
    );
}

/// Review finding 4: a site admin who keeps changing a messenger's JWKS URL (and makes one
/// authorize per URL) filled the cache without end. 1,000 URLs, each serving a set of 100
/// keys: the cache keeps what its bound allows (`MAX_CACHED_KEYS` keys in all), not 1,000 sets.
#[tokio::test]
async fn the_cache_stays_bounded_however_many_urls_are_used() {
    use confidant_identity::jwks::{MAX_CACHED_KEYS, MAX_KEYS_READ};
    let h = Harness::new(NOW);
    let keys: Vec<Value> = (0..MAX_KEYS_READ)
        .map(|i| jwk(&TestKey::ed25519(), &format!("k{i}")))
        .collect();
    let signer = TestKey::ed25519();
    let t = token(&signer, Some("k0"), NOW);
    for i in 0..1000 {
        let url = format!("https://idp.example.test/{i}/jwks.json");
        h.fetcher.serve(&url, keys.clone(), Some(3600));
        assert_eq!(
            h.code(&t, &jwks_method(&url), &policy()).await,
            "signature_invalid"
        );
    }
    assert_eq!(h.fetcher.all_calls(), 1000);
    let most = MAX_CACHED_KEYS / (MAX_KEYS_READ as u64 + 1) + 1;
    let held = h.cache.entry_count();
    assert!(held <= most, "{held} sets cached, at most {most} expected");
    assert!(held > 0);
}
