//! The token check (CONTRACT §15): each §6 failure at its place in the list with the code that
//! authorize itself answers for the same token, roles and tenancy, nothing stored, and every
//! hint on a real token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confidant_testkit::jwt::*;
use confidant_testkit::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const CHECKS: [&str; 10] = [
    "format",
    "algorithm",
    "key",
    "signature",
    "expiry",
    "notBefore",
    "lifetime",
    "issuer",
    "audience",
    "identity",
];

fn path(m: &Messenger) -> String {
    format!("/api/v1/sites/{}/messengers/{}/check-token", m.site, m.id)
}

/// The check's answer for `jwt` on `m`, as the operator.
async fn check(m: &Messenger, jwt: &str) -> Value {
    let r = m
        .http
        .post(&path(m), Some(OPERATOR), &json!({"contactJwt": jwt}))
        .await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The hint for `jwt` on `m` (it must have one).
async fn hint(m: &Messenger, jwt: &str) -> String {
    let v = check(m, jwt).await;
    v["hint"]
        .as_str()
        .unwrap_or_else(|| panic!("no hint: {v}"))
        .to_owned()
}

/// Assert the list: passed before `failed`, failed at it, not run after (all passed: None).
fn assert_rows(v: &Value, failed: Option<&str>, what: &str) {
    let rows = v["checks"].as_array().expect("checks");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["check"].as_str().expect("check"))
        .collect();
    assert_eq!(names, CHECKS, "{what}");
    let at = failed.map(|f| CHECKS.iter().position(|c| *c == f).expect("a check name"));
    for (i, row) in rows.iter().enumerate() {
        match at {
            Some(at) if i > at => {
                assert_eq!(row["ok"], Value::Null, "{what}: {row}");
                assert_eq!(row["detail"], "not run", "{what}: {row}");
            }
            Some(at) if i == at => {
                assert_eq!(row["ok"], false, "{what}: {row}");
                assert!(!row["detail"].as_str().expect("detail").is_empty());
            }
            _ => assert_eq!(row["ok"], true, "{what}: {row}"),
        }
    }
    assert_eq!(v["ok"], failed.is_none(), "{what}");
}

/// A shared-token messenger with every claim check configured.
async fn strict(site: &Site) -> Messenger {
    site.messenger(json!({
        "issuer": "https://idp.test",
        "audience": "confidant",
        "maxTokenLifetimeSeconds": 3600,
    }))
    .await
}

fn good_claims() -> Value {
    json!({"sub": "mark@example.test", "exp": now() + 600, "iat": now(),
           "iss": "https://idp.test", "aud": "confidant"})
}

#[tokio::test]
async fn every_failure_is_at_its_place_with_authorizes_own_code() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let m = strict(&site).await;
    let good = good_claims();
    let with = |extra: Value| hs256(SECRET, &merged(&good, extra));
    let without = |claim: &str| {
        let mut c = good.clone();
        c.as_object_mut().expect("object").remove(claim);
        hs256(SECRET, &c)
    };
    let table: Vec<(&str, String, &str, &str)> = vec![
        (
            "three parts",
            "not.a-jwt".into(),
            "format",
            "token_malformed",
        ),
        (
            "crit",
            hs(
                Algorithm::HS256,
                SECRET.as_bytes(),
                &json!({"alg": "HS256", "crit": ["x"]}),
                &good,
            ),
            "format",
            "token_malformed",
        ),
        (
            "alg none",
            with_signature(&json!({"alg": "none"}), &good, b""),
            "algorithm",
            "algorithm_not_allowed",
        ),
        (
            "RS256 on a shared token",
            sign(Algorithm::RS256, None, &private_key("rsa2048"), &good),
            "algorithm",
            "algorithm_not_allowed",
        ),
        (
            "another secret",
            hs256("another-secret-of-enough-length-0123456789", &good),
            "signature",
            "signature_invalid",
        ),
        ("no exp", without("exp"), "expiry", "expiry_missing"),
        (
            "expired",
            with(json!({"exp": now() - 600, "iat": now() - 900})),
            "expiry",
            "token_expired",
        ),
        (
            "nbf ahead",
            with(json!({"nbf": now() + 600})),
            "notBefore",
            "token_not_yet_valid",
        ),
        (
            "nbf not a date",
            with(json!({"nbf": "soon"})),
            "notBefore",
            "token_malformed",
        ),
        (
            "iat not a date",
            with(json!({"iat": "x"})),
            "lifetime",
            "token_malformed",
        ),
        (
            "too long",
            with(json!({"exp": now() + 7200})),
            "lifetime",
            "token_lifetime_too_long",
        ),
        (
            "issuer",
            with(json!({"iss": "https://other.test"})),
            "issuer",
            "issuer_mismatch",
        ),
        (
            "audience",
            with(json!({"aud": ["x"]})),
            "audience",
            "audience_mismatch",
        ),
        (
            "no identity",
            without("sub"),
            "identity",
            "identity_missing",
        ),
    ];
    for (what, jwt, at, code) in &table {
        let (status, authorized, body) = answer(m.authorize(jwt).await).await;
        assert_eq!(
            (status, authorized.as_str()),
            (401, *code),
            "{what}: {body}"
        );
        let v = check(&m, jwt).await;
        assert_eq!(v["code"], *code, "{what}: {v}");
        assert_rows(&v, Some(at), what);
    }

    let ok = hs256(SECRET, &good);
    let v = check(&m, &ok).await;
    assert_rows(&v, None, "good");
    assert_eq!(v["code"], Value::Null);
    assert_eq!(v["hint"], Value::Null);
    assert_eq!(v["header"]["alg"], "HS256");
    assert_eq!(v["claims"]["sub"], "mark@example.test");
    assert_eq!(answer(m.authorize(&ok).await).await.0, 200);
}

#[tokio::test]
async fn jwks_failures_are_the_key_check() {
    let app = TestApp::spawn_with(|s| s.allow_private_urls = true).await;
    let site = app.site("Acme").await;
    let (k1, k2) = (TestKey::rsa_fixture(), TestKey::p256());
    let server = JwksServer::start(vec![
        k1.jwk("k1"),
        k1.jwk_with(json!({"kid": "k1b", "use": "sig"})),
        k2.jwk("k2"),
    ])
    .await;
    let m = site
        .messenger(json!({"validation": {"method": "jwks", "jwksUrl": server.url}}))
        .await;
    let c = claims("mark@example.test");
    // Two RSA keys fit RS256 and the token names none.
    let ambiguous = k1.token(None, &c);
    let (_, code, _) = answer(m.authorize(&ambiguous).await).await;
    assert_eq!(code, "key_not_found");
    let v = check(&m, &ambiguous).await;
    assert_eq!(v["code"], "key_not_found");
    assert_rows(&v, Some("key"), "no kid");
    assert!(v["hint"].as_str().expect("hint").contains("kid"), "{v}");
    let v = check(&m, &k1.token(Some("k1"), &c)).await;
    assert_rows(&v, None, "kid k1");
    let v = check(&m, &k1.token(Some("k2"), &c)).await;
    assert_rows(&v, Some("algorithm"), "an RSA token naming the EC key");

    // A URL that answers an HTML page (a login page, a docs page) is jwks_unavailable.
    let html = JwksServer::start(vec![]).await;
    *html.state.body.lock().expect("lock") =
        "<!doctype html><html><body>Sign in</body></html>".into();
    let m = site
        .messenger(json!({"validation": {"method": "jwks", "jwksUrl": html.url}}))
        .await;
    let jwt = k1.token(Some("k1"), &c);
    let (status, code, _) = answer(m.authorize(&jwt).await).await;
    assert_eq!((status, code.as_str()), (503, "jwks_unavailable"));
    let v = check(&m, &jwt).await;
    assert_eq!(v["code"], "jwks_unavailable");
    assert_rows(&v, Some("key"), "HTML");
    let key_row = &v["checks"][2];
    assert!(
        key_row["detail"]
            .as_str()
            .expect("detail")
            .contains("could not be fetched"),
        "{key_row}"
    );
    assert!(v["hint"].as_str().expect("hint").contains("HTML"), "{v}");

    // JSON that is not a JWK Set (an OpenID configuration).
    *html.state.body.lock().expect("lock") = json!({"issuer": "https://idp.test"}).to_string();
    let m = site
        .messenger(
            json!({"validation": {"method": "jwks", "jwksUrl": format!("{}?openid", html.url)}}),
        )
        .await;
    assert!(hint(&m, &jwt).await.contains("\"keys\""));
}

#[tokio::test]
async fn admins_and_the_operator_may_check_agents_and_other_sites_may_not() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let other = app.site("Other").await;
    let m = site.messenger(json!({})).await;
    let theirs = other.messenger(json!({})).await;
    let admin = site.agent("admin@acme.test", "admin").await;
    let agent = site.agent("agent@acme.test", "agent").await;
    let stranger = other.agent("admin@other.test", "admin").await;
    let jwt = hs256(SECRET, &claims("mark@example.test"));
    let body = json!({"contactJwt": jwt});
    let rest = format!("/messengers/{}/check-token", m.id);

    let r = admin.post(&rest, &body).await;
    let (status, v) = json_of(r).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["ok"], true);
    let (status, code) = error_code(agent.post(&rest, &body).await).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let (status, _) = error_code(stranger.post(&rest, &body).await).await;
    assert_eq!(status, 404);
    let (status, code) = error_code(app.post(&path(&m), None, &body).await).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    // Another site's messenger under this site, and an unknown one.
    for id in [
        theirs.id.clone(),
        "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b".into(),
    ] {
        let (status, code) = error_code(
            app.post(
                &format!("/api/v1/sites/{}/messengers/{id}/check-token", site.id),
                Some(OPERATOR),
                &body,
            )
            .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (404, "messenger_not_found"),
            "{id}"
        );
    }
    let (status, code) = error_code(
        app.post(
            &format!(
                "/api/v1/sites/{}/messengers/not-a-uuid/check-token",
                site.id
            ),
            Some(OPERATOR),
            &body,
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));
    // A missing or non-string token, and the alias authorize accepts.
    for bad in [
        json!({}),
        json!({"contactJwt": 5}),
        json!({"contactJwt": null}),
        json!([]),
    ] {
        let (status, code) = error_code(app.post(&path(&m), Some(OPERATOR), &bad).await).await;
        assert_eq!((status, code.as_str()), (400, "invalid_request"), "{bad}");
    }
    let r = app
        .post(&path(&m), Some(OPERATOR), &json!({"Contact JWT": jwt}))
        .await;
    let (status, v) = json_of(r).await;
    assert_eq!((status, v["ok"].clone()), (200, json!(true)));
}

#[tokio::test]
async fn the_check_stores_nothing_and_never_echoes_the_token_or_a_secret() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let m = site.messenger(json!({})).await;
    let admin = site.agent("admin@acme.test", "admin").await;
    let audit = |token: String| {
        let app = &app;
        async move {
            let r = app
                .get(&format!("/api/v1/sites/{}/audit", site.id), Some(&token))
                .await;
            let (status, v) = json_of(r).await;
            assert_eq!(status, 200, "{v}");
            v["entries"].as_array().expect("entries").len()
        }
    };
    let before = audit(OPERATOR.to_owned()).await;
    let jwt = hs256(
        SECRET,
        &json!({"sub": "mark@example.test", "exp": now() + 600, "comm100.name": "Mark"}),
    );
    let signature = jwt.rsplit('.').next().expect("signature").to_owned();
    for token in [
        jwt.clone(),
        format!("{jwt}x"),
        hs256("x".repeat(40).as_str(), &claims("mark@example.test")),
    ] {
        let r = admin
            .post(
                &format!("/messengers/{}/check-token", m.id),
                &json!({"contactJwt": token}),
            )
            .await;
        let text = r.text().await.expect("body");
        assert!(!text.contains(&token), "the token is echoed");
        assert!(!text.contains(&signature), "the signature is echoed");
        assert!(!text.contains(SECRET), "the secret is shown");
    }
    assert_eq!(
        audit(OPERATOR.to_owned()).await,
        before,
        "an audit entry was written"
    );
    let (status, v) = admin.get("/contacts?query=mark").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["contacts"], json!([]), "a contact was created");
    let v = admin.conversations("").await;
    assert_eq!(v["conversations"], json!([]), "a conversation was created");
    // The same token through authorize does make the contact: the check is the dry run.
    assert_eq!(answer(m.authorize(&jwt).await).await.0, 200);
    let (_, v) = admin.get("/contacts?query=mark").await;
    assert_eq!(v["contacts"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn the_check_is_rate_limited_per_client_like_authorize() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let m = site.messenger(json!({})).await;
    let body = json!({"contactJwt": "x"});
    let mut limited = false;
    for _ in 0..200 {
        let r = app.post(&path(&m), Some(OPERATOR), &body).await;
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            limited = true;
            break;
        }
        assert_eq!(r.status(), 200);
    }
    assert!(limited, "200 checks in a burst were never limited");
}

#[tokio::test]
async fn hints_for_time_claims() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let m = site.messenger(json!({})).await;
    let capped = site
        .messenger(json!({"maxTokenLifetimeSeconds": 3600}))
        .await;
    // exp in milliseconds: passes without a cap, fails with one; the hint says it both times.
    let ms = hs256(SECRET, &json!({"sub": "a", "exp": (now() + 600) * 1000}));
    let v = check(&m, &ms).await;
    assert_eq!(v["ok"], true);
    assert!(
        v["hint"].as_str().expect("hint").contains("milliseconds"),
        "{v}"
    );
    let v = check(&capped, &ms).await;
    assert_eq!(v["code"], "token_lifetime_too_long");
    assert!(
        v["hint"].as_str().expect("hint").contains("milliseconds"),
        "{v}"
    );
    // iat ahead of the clock beyond the skew (60 s), and not beyond it.
    let ahead = hs256(
        SECRET,
        &json!({"sub": "a", "exp": now() + 900, "iat": now() + 600}),
    );
    assert!(hint(&m, &ahead).await.contains("in the future"));
    let near = hs256(
        SECRET,
        &json!({"sub": "a", "exp": now() + 900, "iat": now() + 5}),
    );
    assert_eq!(check(&m, &near).await["hint"], Value::Null);
    // Expired and signed with the wrong secret: the signature fails first; the hint says both.
    let both = hs256(
        "another-secret-of-enough-length-0123456789",
        &json!({"sub": "a", "exp": now() - 3600}),
    );
    let v = check(&m, &both).await;
    assert_eq!(v["code"], "signature_invalid");
    assert!(
        v["hint"]
            .as_str()
            .expect("hint")
            .contains("exp is in the past"),
        "{v}"
    );
}

#[tokio::test]
async fn hints_for_keys_and_secrets() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let c = claims("mark@example.test");

    // HS256 over the public key's PEM text: as saved, without its last newline, with CRLF.
    let pem = fixture("rsa2048.pub.pem");
    let pk = site
        .messenger(json!({"validation": {"method": "publicKey", "publicKey": pem}}))
        .await;
    let body = pem.trim_end().to_owned();
    for secret in [
        pem.clone(),
        body.clone(),
        format!("{body}\n"),
        body.replace('\n', "\r\n"),
        format!("{}\r\n", body.replace('\n', "\r\n")),
    ] {
        let jwt = hs(
            Algorithm::HS256,
            secret.as_bytes(),
            &json!({"alg": "HS256"}),
            &c,
        );
        let v = check(&pk, &jwt).await;
        assert_eq!(v["code"], "algorithm_not_allowed");
        assert!(
            v["hint"].as_str().expect("hint").contains("PEM text"),
            "{secret:?}: {v}"
        );
    }
    // RS256 against an EC key: the key type is named.
    let ec = site
        .messenger(
            json!({"validation": {"method": "publicKey", "publicKey": fixture("p256.pub.pem")}}),
        )
        .await;
    let rs = sign(Algorithm::RS256, None, &private_key("rsa2048"), &c);
    assert!(hint(&ec, &rs).await.contains("P-256"));
    // alg none.
    let plain = site.messenger(json!({})).await;
    assert!(
        hint(&plain, &with_signature(&json!({"alg": "none"}), &c, b""))
            .await
            .contains("unsigned")
    );

    // A secret that verifies only as base64url, and one that verifies only as text.
    let random = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let as_text = site
        .messenger(json!({"validation": {"method": "sharedToken", "sharedToken": random, "encoding": "text"}}))
        .await;
    let signed_with_bytes = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(&[7u8; 32]),
        &c,
    );
    let v = check(&as_text, &signed_with_bytes).await;
    assert_eq!(v["code"], "signature_invalid");
    assert!(
        v["hint"].as_str().expect("hint").contains("as base64url"),
        "{v}"
    );
    let as_b64 = site
        .messenger(json!({"validation": {"method": "sharedToken", "sharedToken": random, "encoding": "base64url"}}))
        .await;
    let signed_with_text = hs256(&random, &c);
    assert!(hint(&as_b64, &signed_with_text).await.contains("as text"));

    // Signed with the secret of another messenger of the same site: it is named.
    let other_secret = "billing-secret-0123456789-0123456789-abcdef";
    let r = app
        .post(
            &format!("/api/v1/sites/{}/messengers", site.id),
            Some(OPERATOR),
            &json!({"name": "Billing", "security": {"validation": {"method": "sharedToken", "sharedToken": other_secret}}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let h = hint(&plain, &hs256(other_secret, &c)).await;
    assert!(h.contains("\"Billing\""), "{h}");
    assert!(!h.contains(other_secret));
    // Another site's messenger with that secret is never named.
    let elsewhere = app.site("Elsewhere").await;
    let lone = elsewhere.messenger(json!({})).await;
    let h = hint(&lone, &hs256(other_secret, &c)).await;
    assert!(!h.contains("Billing"), "{h}");
}

#[tokio::test]
async fn hints_for_claims_and_pasting() {
    let app = TestApp::spawn().await;
    let site = app.site("Acme").await;
    let exp = now() + 600;
    // The identity in another claim than contactIdentityKey.
    let m = site
        .messenger(json!({"contactIdentityKey": "customer_id"}))
        .await;
    for claim in ["email", "comm100.email", "user_id", "sub"] {
        let jwt = hs256(SECRET, &json!({"exp": exp, claim: "mark@example.test"}));
        let v = check(&m, &jwt).await;
        assert_eq!(v["code"], "identity_missing");
        let h = v["hint"].as_str().expect("hint");
        assert!(h.contains(&format!("\"{claim}\"")), "{claim}: {h}");
    }
    // An identity that is a float, an object, an array.
    let m = site.messenger(json!({})).await;
    for (value, word) in [
        (json!(12.5), "not an integer"),
        (json!({"id": 1}), "object"),
        (json!(["a"]), "array"),
    ] {
        let jwt = hs256(SECRET, &json!({"exp": exp, "sub": value}));
        assert!(hint(&m, &jwt).await.contains(word), "{word}");
    }
    // An aud array without the configured audience: what it has is listed.
    let aud = site.messenger(json!({"audience": "confidant"})).await;
    let jwt = hs256(
        SECRET,
        &json!({"exp": exp, "sub": "a", "aud": ["portal", "api"]}),
    );
    let h = hint(&aud, &jwt).await;
    assert!(
        h.contains("\"portal\", \"api\"") && h.contains("\"confidant\""),
        "{h}"
    );
    // Pasted with "Bearer ", quotes or white space: the format check fails, the hint says why,
    // and the header and claims are still shown.
    let good = hs256(SECRET, &claims("mark@example.test"));
    for (pasted, word) in [
        (format!("Bearer {good}"), "Bearer"),
        (format!("\"{good}\""), "quotes"),
        (format!("{good}\n"), "white space"),
    ] {
        let v = check(&m, &pasted).await;
        assert_eq!(v["code"], "token_malformed");
        assert_rows(&v, Some("format"), word);
        assert!(v["hint"].as_str().expect("hint").contains(word), "{v}");
        assert_eq!(v["claims"]["sub"], "mark@example.test");
    }
    // Nothing decodes: empty objects.
    let v = check(&m, "garbage").await;
    assert_eq!(
        (v["header"].clone(), v["claims"].clone()),
        (json!({}), json!({}))
    );
}
