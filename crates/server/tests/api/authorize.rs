//! Authorize (CONTRACT §6) from the attacker's side and the integrator's: every row of the
//! verification table with its exact code, the access token checked against the published
//! JWKS, and the contact's attributes.

use confidant_testkit::jwt::*;
use confidant_testkit::*;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};

/// Authorize `jwt` at `to` and check the status and error code ("" for none); the body.
async fn expect_code(to: &Messenger, jwt: &str, status: u16, code: &str, what: &str) -> Value {
    let (s, c, body) = answer(to.authorize(jwt).await).await;
    assert_eq!((s, c.as_str()), (status, code), "{what}: {body}");
    body
}

async fn ok(to: &Messenger, jwt: &str, what: &str) -> Value {
    expect_code(to, jwt, 200, "", what).await
}

async fn pk_messenger(app: &TestApp, site: i64, pem: &str) -> Messenger {
    let m = app
        .create_messenger(
            site,
            json!({"validation": {"method": "publicKey", "publicKey": pem}}),
        )
        .await;
    app.messenger_of(site, m["messengerId"].as_str().expect("id"))
}

/// Verify an access token with the key the server publishes for its `kid`; returns its claims.
async fn verified_access_claims(app: &TestApp, token: &str, messenger: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("access token header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    let kid = header.kid.expect("access token has a kid");
    let r = app.get("/.well-known/jwks.json", None).await;
    assert_eq!(r.status(), 200);
    let set: jsonwebtoken::jwk::JwkSet = r.json().await.expect("JWKS");
    let jwk = set.find(&kid).expect("the kid is published");
    let key = DecodingKey::from_jwk(jwk).expect("usable JWK");
    let mut v = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    v.set_audience(&[format!("confidant:{messenger}")]);
    v.set_issuer(&[app.server().public_url()]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("the access token verifies")
        .claims
}

#[tokio::test]
async fn shared_token_attacks_get_their_exact_codes() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let to = app.messenger_of(site, &m);
    let c = claims("mark@example.test");

    ok(&to, &hs256(SECRET, &c), "the right secret").await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let t = sign(alg, None, &EncodingKey::from_secret(SECRET.as_bytes()), &c);
        ok(&to, &t, &format!("{alg:?}")).await;
    }
    expect_code(
        &to,
        &hs256("another-secret-of-enough-length-0123456789", &c),
        401,
        "signature_invalid",
        "forged",
    )
    .await;
    // A valid token with the first character of its signature altered. (Not the last one: its
    // low bits are padding, and a non-canonical last character is token_malformed, not a
    // forgery; altering it made this test fail one time in sixteen.)
    let good = hs256(SECRET, &c);
    let dot = good.rfind('.').expect("three parts") + 1;
    let first = good.as_bytes()[dot];
    let mut forged = good.clone();
    forged.replace_range(dot..dot + 1, if first == b'A' { "B" } else { "A" });
    expect_code(&to, &forged, 401, "signature_invalid", "tampered signature").await;
    // Claims swapped under a valid signature.
    let other = hs256(SECRET, &claims("victim@example.test"));
    let parts: Vec<&str> = good.split('.').collect();
    let spliced = format!(
        "{}.{}.{}",
        parts[0],
        other.split('.').nth(1).expect("claims"),
        parts[2]
    );
    expect_code(&to, &spliced, 401, "signature_invalid", "spliced claims").await;

    for header in [
        json!({"alg": "none"}),
        json!({"alg": "None"}),
        json!({"alg": "NONE", "typ": "JWT"}),
    ] {
        for sig in [&b""[..], b"anything"] {
            let t = with_signature(&header, &c, sig);
            expect_code(
                &to,
                &t,
                401,
                "algorithm_not_allowed",
                &format!("{header} sig {sig:?}"),
            )
            .await;
        }
    }
    expect_code(
        &to,
        &with_signature(&json!({"typ": "JWT"}), &c, b"x"),
        401,
        "algorithm_not_allowed",
        "no alg",
    )
    .await;
    let rs = sign(Algorithm::RS256, None, &private_key("rsa2048"), &c);
    expect_code(
        &to,
        &rs,
        401,
        "algorithm_not_allowed",
        "RS256 on a shared token",
    )
    .await;
    let ed = sign(Algorithm::EdDSA, None, &private_key("ed25519"), &c);
    expect_code(
        &to,
        &ed,
        401,
        "algorithm_not_allowed",
        "EdDSA on a shared token",
    )
    .await;

    // `crit` is checked before anything, even on a correctly signed token.
    let crit = hs(
        Algorithm::HS256,
        SECRET.as_bytes(),
        &json!({"alg": "HS256", "crit": ["exp"], "exp": 1}),
        &c,
    );
    expect_code(&to, &crit, 401, "token_malformed", "crit").await;
    // A correctly signed token over 8 KiB.
    let mut big = c.clone();
    big["pad"] = json!("x".repeat(8 * 1024));
    expect_code(
        &to,
        &hs256(SECRET, &big),
        401,
        "token_malformed",
        "over 8 KiB",
    )
    .await;
    for garbage in [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "....",
        "e30.e30",
        "W10.e30.",
        "e30.W10.",
        "eyJhbGciOiJIUzI1NiJ9.e30.$$$",
    ] {
        expect_code(&to, garbage, 401, "token_malformed", garbage).await;
    }
}

#[tokio::test]
async fn every_key_type_verifies_and_confusions_are_refused() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Keys").await;
    let c = claims("mark@example.test");
    let rsa = pk_messenger(&app, site, &fixture("rsa2048.pub.pem")).await;
    let rsa1 = pk_messenger(&app, site, &fixture("rsa2048.pkcs1.pub.pem")).await;
    let p256 = pk_messenger(&app, site, &fixture("p256.pub.pem")).await;
    let p384 = pk_messenger(&app, site, &fixture("p384.pub.pem")).await;
    let ed = pk_messenger(&app, site, &fixture("ed25519.pub.pem")).await;

    for alg in RSA_ALGS {
        let t = sign(alg, None, &private_key("rsa2048"), &c);
        ok(&rsa, &t, &format!("{alg:?}")).await;
        ok(&rsa1, &t, &format!("{alg:?} PKCS#1 PEM")).await;
    }
    ok(
        &p256,
        &sign(Algorithm::ES256, None, &private_key("p256"), &c),
        "ES256",
    )
    .await;
    ok(
        &p384,
        &sign(Algorithm::ES384, None, &private_key("p384"), &c),
        "ES384",
    )
    .await;
    ok(
        &ed,
        &sign(Algorithm::EdDSA, None, &private_key("ed25519"), &c),
        "EdDSA",
    )
    .await;

    // RFC 9864's name for the same algorithm.
    let mine = TestKey::ed25519();
    let ed2 = pk_messenger(&app, site, &mine.pub_pem()).await;
    ok(
        &ed2,
        &mine.sign(&json!({"alg": "Ed25519"}), &c),
        "alg Ed25519",
    )
    .await;
    ok(&ed2, &mine.token(None, &c), "alg EdDSA").await;

    // HS256 keyed with the public key's PEM text: the classic confusion.
    for (m, pem) in [
        (&rsa, "rsa2048.pub.pem"),
        (&p256, "p256.pub.pem"),
        (&ed, "ed25519.pub.pem"),
    ] {
        let t = sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(fixture(pem).as_bytes()),
            &c,
        );
        expect_code(
            m,
            &t,
            401,
            "algorithm_not_allowed",
            &format!("HS256 with {pem}"),
        )
        .await;
        let trimmed = sign(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(fixture(pem).trim().as_bytes()),
            &c,
        );
        expect_code(
            m,
            &trimmed,
            401,
            "algorithm_not_allowed",
            &format!("HS256 with trimmed {pem}"),
        )
        .await;
    }
    // The wrong curve or family for the messenger's key, and no signature at all.
    for (m, alg, key, what) in [
        (&p384, Algorithm::ES256, "p256", "ES256 on P-384"),
        (&p256, Algorithm::ES384, "p384", "ES384 on P-256"),
        (&rsa, Algorithm::ES256, "p256", "ES256 on RSA"),
        (&ed, Algorithm::RS256, "rsa2048", "RS256 on Ed25519"),
    ] {
        let t = sign(alg, None, &private_key(key), &c);
        expect_code(m, &t, 401, "algorithm_not_allowed", what).await;
    }
    let none = with_signature(&json!({"alg": "none"}), &c, b"");
    expect_code(&rsa, &none, 401, "algorithm_not_allowed", "none on RSA").await;

    // CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify.
    for (m, alg, len) in [(&p256, "ES256", 64), (&p384, "ES384", 96)] {
        let t = with_signature(&json!({"alg": alg}), &c, &vec![0u8; len]);
        expect_code(m, &t, 401, "signature_invalid", &format!("all-zero {alg}")).await;
    }
    // A signature of the right key for other claims.
    let other = sign(
        Algorithm::ES256,
        None,
        &private_key("p256"),
        &claims("victim@example.test"),
    );
    let good = sign(Algorithm::ES256, None, &private_key("p256"), &c);
    let spliced = format!(
        "{}.{}",
        good.rsplit_once('.').expect("dot").0,
        other.rsplit_once('.').expect("dot").1
    );
    expect_code(&p256, &spliced, 401, "signature_invalid", "ES256 spliced").await;
}

#[tokio::test]
async fn key_headers_in_the_token_are_never_used() {
    let app = TestApp::spawn().await;
    let site = app.create_site("Headers").await;
    let m = pk_messenger(&app, site, &fixture("ed25519.pub.pem")).await;
    let attacker = TestKey::ed25519();
    let jwks = JwksServer::start(vec![attacker.jwk("evil")]).await;
    let c = claims("victim@example.test");
    for header in [
        json!({"alg": "EdDSA", "jwk": attacker.jwk("evil")}),
        json!({"alg": "EdDSA", "kid": "evil", "jku": jwks.url}),
        json!({"alg": "EdDSA", "kid": "evil", "x5u": jwks.url}),
        json!({"alg": "EdDSA", "x5c": ["MIIBszCCAVmgAwIBAgIUXYZ"]}),
    ] {
        let t = attacker.sign(&header, &c);
        expect_code(&m, &t, 401, "signature_invalid", &header.to_string()).await;
    }
    assert_eq!(jwks.hits(), 0, "a jku/x5u header made the server fetch");
    // The real key still works with the same junk headers present.
    let real = private_key("ed25519");
    let mut h = jsonwebtoken::Header::new(Algorithm::EdDSA);
    h.jku = Some(jwks.url.clone());
    let t = jsonwebtoken::encode(&h, &c, &real).expect("sign");
    ok(&m, &t, "jku on a genuine token").await;
    assert_eq!(jwks.hits(), 0);
}

#[tokio::test]
async fn time_and_lifetime_claims() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let to = app.messenger_of(site, &m);
    let now = now();

    let exp = now - 3600;
    let expired = hs256(SECRET, &json!({"sub": "a", "exp": exp}));
    let body = expect_code(&to, &expired, 401, "token_expired", "expired").await;
    let message = body["error"]["message"].as_str().expect("message");
    let when = time::OffsetDateTime::from_unix_timestamp(exp)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("fmt");
    assert!(message.contains(&when), "{message} should name {when}");
    assert!(
        !message.contains(&expired) && !message.contains(expired.split('.').nth(2).expect("sig")),
        "the message quotes the token"
    );
    // Within the default 60 s of skew it still counts as valid.
    ok(
        &to,
        &hs256(SECRET, &json!({"sub": "a", "exp": now - 20})),
        "expired within skew",
    )
    .await;

    expect_code(
        &to,
        &hs256(SECRET, &json!({"sub": "a"})),
        401,
        "expiry_missing",
        "no exp",
    )
    .await;
    expect_code(
        &to,
        &hs256(SECRET, &json!({"sub": "a", "exp": "soon"})),
        401,
        "expiry_missing",
        "string exp",
    )
    .await;
    let body = expect_code(
        &to,
        &hs256(
            SECRET,
            &json!({"sub": "a", "exp": now + 600, "nbf": now + 3600}),
        ),
        401,
        "token_not_yet_valid",
        "nbf",
    )
    .await;
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("eyJ")
    );
    ok(
        &to,
        &hs256(
            SECRET,
            &json!({"sub": "a", "exp": now + 600, "nbf": now + 30}),
        ),
        "nbf within skew",
    )
    .await;
    // The order: an expired token that is also not yet valid is reported as expired.
    expect_code(
        &to,
        &hs256(SECRET, &json!({"sub": "a", "exp": exp, "nbf": now + 3600})),
        401,
        "token_expired",
        "order",
    )
    .await;

    // Lifetime cap of five minutes.
    let r = app
        .put(&format!("/api/v1/sites/{site}/messengers/{m}/security"), Some(OPERATOR), &json!({"validation": {"method": "sharedToken", "sharedToken": null}, "maxTokenLifetimeSeconds": 300}))
        .await;
    assert_eq!(r.status(), 200);
    expect_code(
        &to,
        &hs256(SECRET, &json!({"sub": "a", "exp": now + 3600})),
        401,
        "token_lifetime_too_long",
        "exp - now",
    )
    .await;
    expect_code(
        &to,
        &hs256(
            SECRET,
            &json!({"sub": "a", "iat": now - 1000, "exp": now + 100}),
        ),
        401,
        "token_lifetime_too_long",
        "exp - iat",
    )
    .await;
    ok(
        &to,
        &hs256(SECRET, &json!({"sub": "a", "iat": now, "exp": now + 290})),
        "within the cap",
    )
    .await;
}

#[tokio::test]
async fn issuer_and_audience_when_configured() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let to = app.messenger_of(site, &m);
    let now = now();
    // Not configured: anything goes.
    ok(
        &to,
        &hs256(
            SECRET,
            &json!({"sub": "a", "exp": now + 60, "iss": "whoever", "aud": "x"}),
        ),
        "unchecked",
    )
    .await;
    let r = app
        .put(
            &format!("/api/v1/sites/{site}/messengers/{m}/security"),
            Some(OPERATOR),
            &json!({"validation": {"method": "sharedToken", "sharedToken": null}, "issuer": "https://idp.example.com", "audience": "confidant"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let t = |extra: Value| {
        let mut c = json!({"sub": "a", "exp": now + 60});
        for (k, v) in extra.as_object().expect("obj") {
            c[k] = v.clone();
        }
        hs256(SECRET, &c)
    };
    for (extra, code, what) in [
        (json!({"aud": "confidant"}), "issuer_mismatch", "no iss"),
        (
            json!({"iss": "https://evil.example.com", "aud": "confidant"}),
            "issuer_mismatch",
            "wrong iss",
        ),
        (
            json!({"iss": "https://idp.example.com/", "aud": "confidant"}),
            "issuer_mismatch",
            "iss with slash",
        ),
        (
            json!({"iss": "https://idp.example.com"}),
            "audience_mismatch",
            "no aud",
        ),
        (
            json!({"iss": "https://idp.example.com", "aud": "other"}),
            "audience_mismatch",
            "wrong aud",
        ),
        (
            json!({"iss": "https://idp.example.com", "aud": ["a", "b"]}),
            "audience_mismatch",
            "aud array",
        ),
    ] {
        expect_code(&to, &t(extra), 401, code, what).await;
    }
    for (extra, what) in [
        (
            json!({"iss": "https://idp.example.com", "aud": "confidant"}),
            "aud string",
        ),
        (
            json!({"iss": "https://idp.example.com", "aud": ["x", "confidant"]}),
            "aud array",
        ),
    ] {
        ok(&to, &t(extra), what).await;
    }
    // Identity is checked last: a token with the right iss/aud but no identity.
    expect_code(
        &to,
        &hs256(
            SECRET,
            &json!({"exp": now + 60, "iss": "https://idp.example.com", "aud": "confidant"}),
        ),
        401,
        "identity_missing",
        "last",
    )
    .await;
}

#[tokio::test]
async fn identity_claim_rules() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let to = app.messenger_of(site, &m);
    let exp = now() + 600;
    for (what, c) in [
        ("missing", json!({"exp": exp})),
        ("null", json!({"sub": null, "exp": exp})),
        ("empty", json!({"sub": "", "exp": exp})),
        ("257 chars", json!({"sub": "x".repeat(257), "exp": exp})),
        (
            "257 non-ASCII chars",
            json!({"sub": "é".repeat(257), "exp": exp}),
        ),
        ("bool", json!({"sub": true, "exp": exp})),
        ("float", json!({"sub": 1.5, "exp": exp})),
        ("object", json!({"sub": {"id": 1}, "exp": exp})),
    ] {
        expect_code(&to, &hs256(SECRET, &c), 401, "identity_missing", what).await;
    }
    let long = "é".repeat(256);
    let body = ok(
        &to,
        &hs256(SECRET, &json!({"sub": long, "exp": exp})),
        "256 chars",
    )
    .await;
    assert_eq!(body["contact"]["identity"], long);
    let body = ok(
        &to,
        &hs256(SECRET, &json!({"sub": 12345, "exp": exp})),
        "integer",
    )
    .await;
    assert_eq!(body["contact"]["identity"], "12345");
    // The integer and its text are the same contact.
    let again = ok(
        &to,
        &hs256(SECRET, &json!({"sub": "12345", "exp": exp})),
        "text",
    )
    .await;
    assert_eq!(again["contact"]["contactId"], body["contact"]["contactId"]);

    // `comm100.email` as the identity claim: one claim name, dots and all.
    let m2 = app
        .create_messenger(site, json!({"contactIdentityKey": "comm100.email"}))
        .await;
    let m2 = m2["messengerId"].as_str().expect("id");
    let to2 = app.messenger_of(site, m2);
    let body = ok(
        &to2,
        &hs256(
            SECRET,
            &json!({"sub": "ignored", "comm100.email": "mark@healthify.test", "exp": exp}),
        ),
        "comm100.email",
    )
    .await;
    assert_eq!(body["contact"]["identity"], "mark@healthify.test");
    assert_eq!(
        body["contact"]["attributes"]["email"],
        "mark@healthify.test"
    );
    expect_code(
        &to2,
        &hs256(
            SECRET,
            &json!({"sub": "x", "comm100": {"email": "nested@example.test"}, "exp": exp}),
        ),
        401,
        "identity_missing",
        "nested is not the claim",
    )
    .await;
}

#[tokio::test]
async fn both_paths_both_field_names_and_preview() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let jwt = hs256(SECRET, &claims("mark@example.test"));
    let mut contact_ids = Vec::new();
    for path in [
        "/securemessage/authorize",
        "/api/v1/securemessage/authorize",
    ] {
        for field in ["contactJwt", "Contact JWT"] {
            let mut body = json!({"siteId": site, "messengerId": m});
            body[field] = json!(jwt);
            let (s, _, b) = answer(app.post(path, None, &body).await).await;
            assert_eq!(s, 200, "{path} {field}: {b}");
            assert_eq!(b["tokenType"], "Bearer");
            assert_eq!(b["expiresIn"], 3600);
            let claims =
                verified_access_claims(&app, b["accessToken"].as_str().expect("token"), &m).await;
            assert_eq!(claims["preview"], false, "isPreview defaults to false");
            contact_ids.push(b["contact"]["contactId"].as_str().expect("id").to_owned());
        }
    }
    contact_ids.dedup();
    assert_eq!(
        contact_ids.len(),
        1,
        "a returning contact keeps its contactId"
    );
    // siteId may also arrive as a string.
    let (s, _, b) = answer(
        app.post(
            "/securemessage/authorize",
            None,
            &json!({"siteId": site.to_string(), "messengerId": m, "contactJwt": jwt}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{b}");

    let (s, _, b) = answer(
        app.post(
            "/securemessage/authorize",
            None,
            &json!({"siteId": site, "messengerId": m, "contactJwt": jwt, "isPreview": true}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let claims = verified_access_claims(&app, b["accessToken"].as_str().expect("token"), &m).await;
    assert_eq!(claims["preview"], true);
}

#[tokio::test]
async fn access_token_claims_and_jwks() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let to = app.messenger_of(site, &m);
    assert!(!app.server().public_url().ends_with('/'));
    let before = now();
    let body = ok(
        &to,
        &hs256(SECRET, &claims("mark@example.test")),
        "authorize",
    )
    .await;
    let token = body["accessToken"].as_str().expect("token");
    let c = verified_access_claims(&app, token, &m).await;
    assert_eq!(c["iss"], app.server().public_url());
    assert_eq!(c["sub"], body["contact"]["contactId"]);
    assert_eq!(c["aud"], format!("confidant:{m}"));
    assert_eq!(c["siteId"], site);
    assert_eq!(c["messengerId"], m.as_str());
    assert_eq!(c["preview"], false);
    let iat = c["iat"].as_i64().expect("iat");
    assert!(iat >= before - 1 && iat <= now() + 1);
    assert_eq!(c["exp"].as_i64().expect("exp") - iat, 3600);
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()));
    let contact = &body["contact"];
    assert!(uuid::Uuid::parse_str(contact["contactId"].as_str().expect("id")).is_ok());
    assert_eq!(contact["siteId"], site);
    assert_eq!(contact["identity"], "mark@example.test");
    for k in ["createdAt", "updatedAt"] {
        let t = contact[k].as_str().expect(k);
        assert!(
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok(),
            "{k}: {t}"
        );
    }
    // A second token has its own jti; the published keys carry no private part.
    let body2 = ok(&to, &hs256(SECRET, &claims("mark@example.test")), "again").await;
    let c2 = verified_access_claims(&app, body2["accessToken"].as_str().expect("token"), &m).await;
    assert_ne!(c["jti"], c2["jti"]);
    let jwks: Value = app
        .get("/.well-known/jwks.json", None)
        .await
        .json()
        .await
        .expect("jwks");
    for k in jwks["keys"].as_array().expect("keys") {
        assert!(k.get("d").is_none(), "private key material published: {k}");
    }
    // The access token is not a Contact JWT, and another messenger's audience is refused.
    let other = app.create_messenger(site, json!({})).await;
    let other = other["messengerId"].as_str().expect("id");
    let key_set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).expect("set");
    let kid = jsonwebtoken::decode_header(token)
        .expect("h")
        .kid
        .expect("kid");
    let mut v = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    v.set_audience(&[format!("confidant:{other}")]);
    assert!(
        jsonwebtoken::decode::<Value>(
            token,
            &DecodingKey::from_jwk(key_set.find(&kid).expect("k")).expect("k"),
            &v
        )
        .is_err()
    );
}

#[tokio::test]
async fn attributes_follow_the_claims() {
    let app = TestApp::spawn().await;
    let (site, m) = app.site_with_messenger().await;
    let to = app.messenger_of(site, &m);
    let exp = now() + 600;
    let first = json!({
        "sub": "mark@healthify.test", "exp": exp,
        "comm100.name": "mark tylor", "comm100.email": "healthify@testing.com", "comm100.city": "Vancouver",
        "comm100.mailing_address": "1 Main St", "comm100.zip_address": "V5K 0A1", "comm100.alias": "mt",
        "comm100.title": "Dr", "comm100.company": "Healthify", "comm100.fax": "1", "comm100.phone": "2",
        "comm100.state": "BC", "comm100.country": "CA", "comm100.sms": "3", "comm100.unknown": "nope", "name": "not an attribute",
    });
    let b1 = ok(&to, &hs256(SECRET, &first), "first").await;
    let a = &b1["contact"]["attributes"];
    for (k, v) in [
        ("name", "mark tylor"),
        ("email", "healthify@testing.com"),
        ("city", "Vancouver"),
        ("mailingAddress", "1 Main St"),
        ("zipAddress", "V5K 0A1"),
        ("alias", "mt"),
        ("title", "Dr"),
        ("company", "Healthify"),
        ("fax", "1"),
        ("phone", "2"),
        ("state", "BC"),
        ("country", "CA"),
        ("sms", "3"),
    ] {
        assert_eq!(a[k], v, "{k}: {a}");
    }
    assert_eq!(a.as_object().expect("obj").len(), 13, "{a}");

    // Absent claims keep their value; a non-string or over-long claim is ignored, not fatal.
    let second = json!({
        "sub": "mark@healthify.test", "exp": exp,
        "comm100.name": "Mark Tylor", "comm100.phone": 5551234, "comm100.city": "x".repeat(1025),
        "comm100.country": "y".repeat(1024), "comm100.email": null, "comm100.title": ["Dr"],
    });
    let b2 = ok(&to, &hs256(SECRET, &second), "second").await;
    assert_eq!(b2["contact"]["contactId"], b1["contact"]["contactId"]);
    let a = &b2["contact"]["attributes"];
    assert_eq!(a["name"], "Mark Tylor");
    assert_eq!(a["phone"], "2");
    assert_eq!(a["city"], "Vancouver");
    assert_eq!(a["country"].as_str().map(str::len), Some(1024));
    assert_eq!(a["email"], "healthify@testing.com");
    assert_eq!(a["title"], "Dr");
    assert_eq!(a["zipAddress"], "V5K 0A1");

    // A third visit with no attribute claims changes nothing.
    let b3 = ok(
        &to,
        &hs256(SECRET, &json!({"sub": "mark@healthify.test", "exp": exp})),
        "third",
    )
    .await;
    assert_eq!(b3["contact"]["attributes"], b2["contact"]["attributes"]);
    assert_eq!(b3["contact"]["contactId"], b1["contact"]["contactId"]);
    // The same identity on another site is another contact.
    let (site2, m2) = app.site_with_messenger().await;
    let to2 = app.messenger_of(site2, &m2);
    let b4 = ok(
        &to2,
        &hs256(SECRET, &json!({"sub": "mark@healthify.test", "exp": exp})),
        "other site",
    )
    .await;
    assert_ne!(b4["contact"]["contactId"], b1["contact"]["contactId"]);
    assert_eq!(b4["contact"]["attributes"], json!({}));
}

#[tokio::test]
async fn unknown_and_malformed_messengers() {
    let app = TestApp::spawn().await;
    let (site_a, m_a) = app.site_with_messenger().await;
    let (site_b, m_b) = app.site_with_messenger().await;
    let jwt = hs256(SECRET, &claims("mark@example.test"));
    let random = uuid::Uuid::new_v4().to_string();
    for (site, m, what) in [
        (99_999, m_a.as_str(), "unknown site"),
        (site_a, random.as_str(), "unknown messenger"),
        (site_b, m_a.as_str(), "messenger of another site"),
        (site_a, m_b.as_str(), "messenger of another site (2)"),
    ] {
        expect_code(
            &app.messenger_of(site, m),
            &jwt,
            404,
            "messenger_not_found",
            what,
        )
        .await;
    }
    // A bad token for an unknown messenger still answers messenger_not_found (nothing to verify with).
    expect_code(
        &app.messenger_of(99_999, &m_a),
        "garbage",
        404,
        "messenger_not_found",
        "garbage, unknown site",
    )
    .await;

    let bad_sites = [
        json!("abc"),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(true),
        json!([]),
        json!({}),
        json!(1e40),
        json!(""),
        json!("10000x"),
        json!(u64::MAX),
        json!(i64::MIN),
    ];
    for s in bad_sites {
        let r = app
            .post(
                "/securemessage/authorize",
                None,
                &json!({"siteId": s, "messengerId": m_a, "contactJwt": jwt}),
            )
            .await;
        let (status, code, body) = answer(r).await;
        assert!(
            status == 400 || status == 404,
            "siteId {s}: {status} {body}"
        );
        assert!(!code.is_empty(), "siteId {s}: {body}");
    }
    let bad_ids = [
        json!("nope"),
        json!(""),
        json!(42),
        json!(null),
        json!(["x"]),
        json!("../../etc/passwd"),
        json!(format!("{m_a}x")),
        json!(m_a.to_uppercase()),
        json!("x".repeat(10_000)),
    ];
    for id in bad_ids {
        let r = app
            .post(
                "/securemessage/authorize",
                None,
                &json!({"siteId": site_a, "messengerId": id, "contactJwt": jwt}),
            )
            .await;
        let (status, code, body) = answer(r).await;
        assert!(
            status == 400 || status == 404 || status == 200,
            "messengerId {id}: {status} {body}"
        );
        if status != 200 {
            assert!(!code.is_empty(), "messengerId {id}: {body}");
        }
    }
    for body in [
        json!({"siteId": site_a, "messengerId": m_a}),
        json!({"siteId": site_a, "messengerId": m_a, "contactJwt": 5}),
        json!({"siteId": site_a, "messengerId": m_a, "contactJwt": jwt, "isPreview": "yes"}),
        json!([]),
        json!("x"),
    ] {
        let (status, code, b) =
            answer(app.post("/securemessage/authorize", None, &body).await).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "invalid_request"),
            "{body}: {b}"
        );
    }
}

#[tokio::test]
async fn the_issuer_is_the_configured_public_url() {
    let app =
        TestApp::spawn_with(|s| s.public_url = Some("https://chat.example.com/".into())).await;
    assert_eq!(app.server().public_url(), "https://chat.example.com");
    let (site, m) = app.site_with_messenger().await;
    let to = app.messenger_of(site, &m);
    let body = ok(
        &to,
        &hs256(SECRET, &claims("mark@example.test")),
        "authorize",
    )
    .await;
    let c = verified_access_claims(&app, body["accessToken"].as_str().expect("token"), &m).await;
    assert_eq!(c["iss"], "https://chat.example.com");
    let code: Value = app
        .get(
            &format!("/api/v1/sites/{site}/messengers/{m}/installation-code"),
            Some(OPERATOR),
        )
        .await
        .json()
        .await
        .expect("json");
    assert!(
        code["html"]
            .as_str()
            .expect("html")
            .contains("src=\"https://chat.example.com/messenger/v1/loader.js\""),
        "{code}"
    );
}
