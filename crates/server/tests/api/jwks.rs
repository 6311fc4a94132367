//! JWKS messengers (CONTRACT §6) against a JWKS server on loopback that the test controls:
//! rotation, the unknown-kid refresh limit, outages, per-URL isolation, the caps on keys read
//! and tried, and the URL rule (§5) from the attacker's side. A JWKS on loopback is a private
//! URL: the servers that fetch one run with `--allow-private-urls on` (`private_urls_app`).

use axum::http::StatusCode;
use confidant_testkit::jwt::*;
use confidant_testkit::*;
use serde_json::json;

/// A server that may fetch loopback URLs, as a developer's would.
async fn private_urls_app() -> TestApp {
    TestApp::spawn_with(|s| s.allow_private_urls = true).await
}

async fn jwks_messenger(app: &TestApp, site: i64, url: &str) -> String {
    let m = app
        .create_messenger(
            site,
            json!({"validation": {"method": "jwks", "jwksUrl": url}}),
        )
        .await;
    assert_eq!(m["security"]["validation"]["jwksUrl"], url);
    m["messengerId"].as_str().expect("id").to_owned()
}

async fn code(app: &TestApp, site: i64, m: &str, jwt: &str) -> (u16, String) {
    error_code(app.authorize(site, m, jwt).await).await
}

fn e(status: u16, code: &str) -> (u16, String) {
    (status, code.to_owned())
}

fn ok() -> (u16, String) {
    e(200, "<no error body>")
}

#[tokio::test]
async fn rotation_and_the_unknown_kid_refresh_limit() {
    let app = private_urls_app().await;
    let site = app.create_site("Jwks").await;
    let k1 = TestKey::ed25519();
    let k2 = TestKey::ed25519();
    let server = JwksServer::start(vec![k1.jwk("k1")]).await;
    let m = jwks_messenger(&app, site, &server.url).await;
    assert_eq!(
        server.hits(),
        0,
        "the URL is fetched when a token needs it, not when saved"
    );

    assert_eq!(
        code(&app, site, &m, &k1.token(Some("k1"), &claims("a"))).await,
        ok()
    );
    assert_eq!(server.hits(), 1);
    // Cached: no refetch for a known kid.
    assert_eq!(
        code(&app, site, &m, &k1.token(Some("k1"), &claims("b"))).await,
        ok()
    );
    // No kid: the only key that fits is taken.
    assert_eq!(
        code(&app, site, &m, &k1.token(None, &claims("c"))).await,
        ok()
    );
    assert_eq!(server.hits(), 1);

    // The business rotates: k2 appears. The first token naming it triggers one refetch.
    server.set_keys(vec![k1.jwk("k1"), k2.jwk("k2")]);
    assert_eq!(
        code(&app, site, &m, &k2.token(Some("k2"), &claims("a"))).await,
        ok()
    );
    assert_eq!(server.hits(), 2);
    assert_eq!(
        code(&app, site, &m, &k1.token(Some("k1"), &claims("a"))).await,
        ok()
    );
    // Two keys fit EdDSA now: a token without kid finds none.
    assert_eq!(
        code(&app, site, &m, &k2.token(None, &claims("a"))).await,
        e(401, "key_not_found")
    );

    // Unknown kids within 30 s of that refresh do not reach the JWKS server.
    for i in 0..5 {
        let t = k2.token(Some(&format!("nope-{i}")), &claims("a"));
        assert_eq!(code(&app, site, &m, &t).await, e(401, "key_not_found"));
    }
    assert_eq!(
        server.hits(),
        2,
        "an unknown kid refetched more than once per 30 s"
    );
    // A kid the set has, but a signature by another key.
    assert_eq!(
        code(&app, site, &m, &k2.token(Some("k1"), &claims("a"))).await,
        e(401, "signature_invalid")
    );
    // alg none never reaches the JWKS either.
    let none = with_signature(&json!({"alg": "none", "kid": "k1"}), &claims("a"), b"");
    assert_eq!(
        code(&app, site, &m, &none).await,
        e(401, "algorithm_not_allowed")
    );
    // HS256 keyed with the JWK's text.
    let hs = hs256(&k1.jwk("k1").to_string(), &claims("a"));
    assert_eq!(
        code(&app, site, &m, &hs).await,
        e(401, "algorithm_not_allowed")
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn key_alg_and_use_narrow_what_a_key_verifies() {
    let app = private_urls_app().await;
    let site = app.create_site("Jwks").await;
    let k1 = TestKey::ed25519();
    let mut enc = k1.jwk("enc");
    enc["use"] = json!("enc");
    let mut narrowed = k1.jwk("narrow");
    narrowed["alg"] = json!("Ed25519");
    let server =
        JwksServer::start(vec![enc, narrowed, json!({"kty": "weird", "kid": "weird"})]).await;
    let m = jwks_messenger(&app, site, &server.url).await;
    let (s, c) = code(&app, site, &m, &k1.token(Some("enc"), &claims("a"))).await;
    assert!(
        s == 401 && (c == "key_not_found" || c == "algorithm_not_allowed"),
        "a use=enc key verified: {s} {c}"
    );
    // A key whose own alg is Ed25519 does not verify an EdDSA-labelled token, and does verify Ed25519.
    let (s, c) = code(&app, site, &m, &k1.token(Some("narrow"), &claims("a"))).await;
    assert_eq!((s, c), e(401, "algorithm_not_allowed"));
    let t = k1.sign(&json!({"alg": "Ed25519", "kid": "narrow"}), &claims("a"));
    assert_eq!(code(&app, site, &m, &t).await, ok());
}

#[tokio::test]
async fn outage_is_served_from_the_cache() {
    let app = private_urls_app().await;
    let site = app.create_site("Jwks").await;
    let k1 = TestKey::ed25519();
    let server = JwksServer::start(vec![k1.jwk("k1")]).await;
    // Never fresh: every token goes back to the URL, so the outage is really exercised.
    server.set_cache_control(Some("max-age=0"));
    let m = jwks_messenger(&app, site, &server.url).await;
    assert_eq!(
        code(&app, site, &m, &k1.token(Some("k1"), &claims("a"))).await,
        ok()
    );
    assert_eq!(server.hits(), 1);
    assert_eq!(
        code(&app, site, &m, &k1.token(Some("k1"), &claims("a"))).await,
        ok()
    );
    assert_eq!(server.hits(), 2, "a set with max-age=0 is refetched");

    server.set_status(StatusCode::INTERNAL_SERVER_ERROR);
    for _ in 0..3 {
        assert_eq!(
            code(&app, site, &m, &k1.token(Some("k1"), &claims("a"))).await,
            ok(),
            "the last good set serves during an outage"
        );
    }
    assert_eq!(
        server.hits(),
        3,
        "a failing URL is retried at most once per back-off period"
    );
    // A garbage body is an outage too, not a new (empty) set.
    server.set_status(StatusCode::OK);
    *server.state.body.lock().expect("lock") = "<html>oops</html>".into();
    assert_eq!(
        code(&app, site, &m, &k1.token(Some("k1"), &claims("a"))).await,
        ok()
    );
}

#[tokio::test]
async fn cold_outage_is_jwks_unavailable() {
    let app = private_urls_app().await;
    let site = app.create_site("Jwks").await;
    let k1 = TestKey::ed25519();
    let server = JwksServer::start(vec![k1.jwk("k1")]).await;
    server.set_status(StatusCode::SERVICE_UNAVAILABLE);
    let m = jwks_messenger(&app, site, &server.url).await;
    let r = app
        .authorize(site, &m, &k1.token(Some("k1"), &claims("a")))
        .await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "jwks_unavailable");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("eyJ")
    );
    // A URL where nothing listens at all.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/jwks.json", l.local_addr().expect("addr"))
    };
    let m2 = jwks_messenger(&app, site, &dead).await;
    assert_eq!(
        code(&app, site, &m2, &k1.token(Some("k1"), &claims("a"))).await,
        e(503, "jwks_unavailable")
    );
    // Recovery: once the URL answers, tokens verify.
    server.set_status(StatusCode::OK);
    let mut ok = false;
    for _ in 0..40 {
        if code(&app, site, &m, &k1.token(Some("k1"), &claims("a")))
            .await
            .0
            == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "a messenger whose JWKS came back stays unavailable");
}

#[tokio::test]
async fn the_same_kid_under_two_urls_does_not_cross_verify() {
    let app = private_urls_app().await;
    let site = app.create_site("Jwks").await;
    let good = TestKey::ed25519();
    let evil = TestKey::ed25519();
    let server_a = JwksServer::start(vec![good.jwk("shared")]).await;
    let server_b = JwksServer::start(vec![evil.jwk("shared")]).await;
    let m_a = jwks_messenger(&app, site, &server_a.url).await;
    let m_b = jwks_messenger(&app, site, &server_b.url).await;
    // Warm both caches.
    assert_eq!(
        code(&app, site, &m_a, &good.token(Some("shared"), &claims("a"))).await,
        ok()
    );
    assert_eq!(
        code(&app, site, &m_b, &evil.token(Some("shared"), &claims("b"))).await,
        ok()
    );
    // Each messenger's key is useless for the other.
    assert_eq!(
        code(
            &app,
            site,
            &m_a,
            &evil.token(Some("shared"), &claims("victim"))
        )
        .await,
        e(401, "signature_invalid")
    );
    assert_eq!(
        code(
            &app,
            site,
            &m_b,
            &good.token(Some("shared"), &claims("victim"))
        )
        .await,
        e(401, "signature_invalid")
    );
    // The same, for a site of its own (another tenant with its own IdP).
    let site2 = app.create_site("Other").await;
    let m_c = jwks_messenger(&app, site2, &server_b.url).await;
    assert_eq!(
        code(
            &app,
            site2,
            &m_c,
            &good.token(Some("shared"), &claims("victim"))
        )
        .await,
        e(401, "signature_invalid")
    );
    // Switching a messenger's URL (Security change) switches its keys at once.
    let r = app
        .put(
            &format!("/api/v1/sites/{site}/messengers/{m_b}/security"),
            Some(OPERATOR),
            &json!({"validation": {"method": "jwks", "jwksUrl": server_a.url}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        code(&app, site, &m_b, &good.token(Some("shared"), &claims("a"))).await,
        ok()
    );
    assert_eq!(
        code(&app, site, &m_b, &evil.token(Some("shared"), &claims("a"))).await,
        e(401, "signature_invalid")
    );
}

/// The URLs an attacker (a site admin) saved to make the server request internal targets
/// (review finding 5), each refused when saved, on create and on a Security change.
const PRIVATE_SPELLINGS: &[&str] = &[
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/jwks.json",
    "https://[fd00::1]/jwks.json",
    "https://127.0.0.1/jwks.json",
    "https://127.1/jwks.json",
    "https://2130706433/jwks.json",
    "https://0x7f.1/jwks.json",
    "https://0/jwks.json",
    "https://[::1]/jwks.json",
    "https://[::ffff:127.0.0.1]/jwks.json",
    "https://localhost/jwks.json",
    "https://localhost./jwks.json",
    "https://foo.localhost/jwks.json",
    "http://127.0.0.1:9/internal/admin?action=purge",
    "http://localhost:9/jwks.json",
    "http://[::1]:9/jwks.json",
    "http://keys.example.com/jwks.json",
];

#[tokio::test]
async fn jwks_urls_that_break_the_url_rule_are_refused_when_saved() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Jwks").await;
    let existing = app.create_messenger(site, json!({})).await;
    let existing = existing["messengerId"].as_str().expect("id");
    for url in PRIVATE_SPELLINGS.iter().chain(&[
        "ftp://keys.example.com/jwks",
        "not a url",
        "https://user:pw@keys.example.com/jwks",
    ]) {
        let security = json!({"validation": {"method": "jwks", "jwksUrl": url}});
        let r = app
            .post(
                &format!("/api/v1/sites/{site}/messengers"),
                Some(OPERATOR),
                &json!({"name": "x", "security": security}),
            )
            .await;
        assert_eq!(
            error_code(r).await,
            e(400, "invalid_request"),
            "create {url}"
        );
        let r = app
            .put(
                &format!("/api/v1/sites/{site}/messengers/{existing}/security"),
                Some(OPERATOR),
                &security,
            )
            .await;
        assert_eq!(error_code(r).await, e(400, "invalid_request"), "put {url}");
    }
    let r = app
        .post(
            &format!("/api/v1/sites/{site}/messengers"),
            Some(OPERATOR),
            &json!({"name": "x", "security": {"validation": {"method": "jwks", "jwksUrl": "https://keys.example.com/jwks.json"}}}),
        )
        .await;
    assert_eq!(r.status(), 201);

    // The operator's development server allows them all (but never another scheme).
    let dev = private_urls_app().await;
    let site = dev.create_site("Dev").await;
    for url in PRIVATE_SPELLINGS {
        let m = dev
            .create_messenger(
                site,
                json!({"validation": {"method": "jwks", "jwksUrl": url}}),
            )
            .await;
        assert!(m["messengerId"].is_string(), "{url}: {m}");
    }
}

/// The machine's own host name when it resolves to loopback only (as /etc/hosts makes it on
/// most systems): a name that passes the save-time check and leads to the server itself.
async fn a_name_for_loopback() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_owned();
    let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .ok()?
        .collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())).then_some(name)
}

/// A name that resolves to 127.0.0.1 is accepted when saved (names are judged when used) and
/// never connected to; the answer is the one an unreachable URL gets, word for word, so the
/// answers are no oracle for what listens inside. (The fetcher's own tests do the same with a
/// resolver they control, wherever the suite runs.)
#[tokio::test]
async fn a_jwks_name_that_resolves_to_loopback_is_never_requested() {
    let Some(name) = a_name_for_loopback().await else {
        eprintln!("skipped: this machine's host name does not resolve to loopback");
        return;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let app = TestApp::spawn().await;
    let site = app.create_site("Jwks").await;
    let inside = jwks_messenger(
        &app,
        site,
        &format!("https://{name}:{port}/internal/admin?action=purge"),
    )
    .await;
    let nowhere = jwks_messenger(&app, site, "https://jwks.invalid/jwks.json").await;
    let key = TestKey::ed25519();
    let t = key.token(Some("k1"), &claims("a"));
    let refused = app.authorize(site, &inside, &t).await;
    assert_eq!(refused.status(), 503);
    let refused: serde_json::Value = refused.json().await.expect("json");
    let unreachable = app.authorize(site, &nowhere, &t).await;
    assert_eq!(unreachable.status(), 503);
    let unreachable: serde_json::Value = unreachable.json().await.expect("json");
    assert_eq!(refused["error"]["code"], "jwks_unavailable");
    assert_eq!(refused, unreachable, "the answers differ: an oracle");
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the server connected to {name}:{port} (loopback)"
    );
}
