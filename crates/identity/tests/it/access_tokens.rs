//! Confidant's own access tokens: round trip, expiry, key rotation, and forgeries.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use crate::common::*;
use confidant_identity::{AccessError, AccessTokens, StoredSigningKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};

const ISSUER: &str = "https://confidant.example.test";
const MESSENGER: &str = "ea5380a4-77c1-436e-a47a-37fd2c8af550";
const CONTACT: &str = "0190a0a0-0000-7000-8000-000000000001";
const TTL: i64 = 3600;

fn key(created_at: i64) -> StoredSigningKey {
    AccessTokens::generate_key(created_at)
}

fn tokens(keys: Vec<StoredSigningKey>) -> AccessTokens {
    AccessTokens::new(ISSUER.into(), TTL, keys).unwrap()
}

fn parts(token: &str) -> (Value, Value) {
    let p: Vec<&str> = token.split('.').collect();
    assert_eq!(p.len(), 3);
    let decode = |s: &str| serde_json::from_slice::<Value>(&b64_decode(s)).unwrap();
    (decode(p[0]), decode(p[1]))
}

#[test]
fn sign_and_verify_round_trip() {
    let k = key(NOW);
    let at = tokens(vec![k.clone()]);
    assert_eq!(at.ttl_seconds(), TTL);
    let (token, claims) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    assert_eq!(at.verify(&token, NOW).unwrap(), claims);
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.sub, CONTACT);
    assert_eq!(claims.aud, format!("confidant:{MESSENGER}"));
    assert_eq!(
        (claims.site_id, claims.messenger_id.as_str(), claims.preview),
        (10_000, MESSENGER, false)
    );
    assert_eq!((claims.iat, claims.exp), (NOW, NOW + TTL));
    assert_eq!(
        uuid::Uuid::parse_str(&claims.jti)
            .unwrap()
            .get_version_num(),
        4
    );

    let (header, body) = parts(&token);
    assert_eq!(header, json!({"alg": "EdDSA", "typ": "JWT", "kid": k.kid}));
    let mut names: Vec<&String> = body.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "aud",
            "exp",
            "iat",
            "iss",
            "jti",
            "messengerId",
            "preview",
            "siteId",
            "sub"
        ]
    );
    assert_eq!(body["siteId"], 10_000);
    assert_eq!(body["messengerId"], MESSENGER);

    let (preview, claims) = at.sign(CONTACT, 10_000, MESSENGER, true, NOW);
    assert!(claims.preview && at.verify(&preview, NOW).unwrap().preview);
    // Every token gets its own jti.
    assert_ne!(
        at.sign(CONTACT, 1, MESSENGER, false, NOW).1.jti,
        at.sign(CONTACT, 1, MESSENGER, false, NOW).1.jti
    );
}

#[test]
fn expiry_has_no_leeway() {
    let at = tokens(vec![key(NOW)]);
    let (token, _) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    assert!(at.verify(&token, NOW + TTL - 1).is_ok());
    assert_eq!(at.verify(&token, NOW + TTL), Err(AccessError::Expired));
    assert_eq!(at.verify(&token, NOW + 10 * TTL), Err(AccessError::Expired));
}

#[test]
fn tokens_of_another_ring_or_issuer_are_invalid() {
    let at = tokens(vec![key(NOW)]);
    let other = tokens(vec![key(NOW)]);
    let (token, _) = other.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    assert_eq!(at.verify(&token, NOW), Err(AccessError::Invalid));

    let k = key(NOW);
    let a = tokens(vec![k.clone()]);
    let b = AccessTokens::new("https://elsewhere.example.test".into(), TTL, vec![k]).unwrap();
    let (token, _) = b.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    assert_eq!(a.verify(&token, NOW), Err(AccessError::Invalid));
}

#[test]
fn a_wrong_or_missing_kid_is_invalid() {
    let k = key(NOW);
    let at = tokens(vec![k.clone()]);
    let (token, claims) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    let signing = EncodingKey::from_ed_der(&k.pkcs8_der);
    let body = serde_json::to_value(&claims).unwrap();
    // Correctly signed by the ring's key, but naming another kid, or none.
    for header in [
        json!({"alg": "EdDSA", "kid": "other"}),
        json!({"alg": "EdDSA"}),
        json!({"alg": "EdDSA", "kid": 1}),
    ] {
        let forged = sign_raw(&header, &body, &signing, Algorithm::EdDSA);
        assert_eq!(
            at.verify(&forged, NOW),
            Err(AccessError::Invalid),
            "{header}"
        );
    }
    // The same, with the right kid, verifies (the forging helper is sound).
    let same = sign_raw(
        &json!({"alg": "EdDSA", "kid": k.kid}),
        &body,
        &signing,
        Algorithm::EdDSA,
    );
    assert!(at.verify(&same, NOW).is_ok());
    assert!(at.verify(&token, NOW).is_ok());
}

#[test]
fn tampering_is_invalid() {
    let k = key(NOW);
    let at = tokens(vec![k.clone()]);
    let (token, claims) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    let p: Vec<&str> = token.split('.').collect();
    // Claims changed under the signature: another contact, a longer life, preview lifted.
    for change in [
        json!({"sub": "someone-else"}),
        json!({"exp": NOW + 10 * TTL}),
        json!({"siteId": 10_001}),
    ] {
        let body = merged(&serde_json::to_value(&claims).unwrap(), change);
        let forged = format!("{}.{}.{}", p[0], b64(body.to_string()), p[2]);
        assert_eq!(at.verify(&forged, NOW), Err(AccessError::Invalid));
    }
    let flipped = format!(
        "{}.{}.{}{}",
        p[0],
        p[1],
        if p[2].starts_with('A') { "B" } else { "A" },
        &p[2][1..]
    );
    assert_eq!(at.verify(&flipped, NOW), Err(AccessError::Invalid));
    for broken in ["", "a.b", "a.b.c.d", &format!("{token}.")] {
        assert_eq!(at.verify(broken, NOW), Err(AccessError::Invalid));
    }
    // A bad aud, a missing claim or an extra-typed claim, each validly signed with the key.
    let signing = EncodingKey::from_ed_der(&k.pkcs8_der);
    let header = json!({"alg": "EdDSA", "kid": k.kid});
    let good = serde_json::to_value(&claims).unwrap();
    let mut no_jti = good.clone();
    no_jti.as_object_mut().unwrap().remove("jti");
    for body in [
        merged(&good, json!({"aud": "confidant:another-messenger"})),
        merged(&good, json!({"aud": MESSENGER})),
        merged(&good, json!({"preview": "false"})),
        no_jti,
    ] {
        let forged = sign_raw(&header, &body, &signing, Algorithm::EdDSA);
        assert_eq!(at.verify(&forged, NOW), Err(AccessError::Invalid), "{body}");
    }
}

#[test]
fn alg_swaps_are_invalid() {
    let k = key(NOW);
    let at = tokens(vec![k.clone()]);
    let (_, claims) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    let body = serde_json::to_value(&claims).unwrap();
    // HS256 keyed with the public key, as served in the JWKS (raw bytes and base64url text).
    let jwks = at.jwks_json();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    for secret in [b64_decode(&x), x.clone().into_bytes()] {
        for alg in [Algorithm::HS256, Algorithm::HS512] {
            let header = json!({"alg": format!("{alg:?}"), "kid": k.kid});
            let forged = hs(alg, &secret, &header, &body);
            assert_eq!(at.verify(&forged, NOW), Err(AccessError::Invalid));
        }
    }
    // EdDSA-signed, but the header says something else; and alg none.
    let signing = EncodingKey::from_ed_der(&k.pkcs8_der);
    for alg in ["Ed25519", "eddsa", "ES256"] {
        let forged = sign_raw(
            &json!({"alg": alg, "kid": k.kid}),
            &body,
            &signing,
            Algorithm::EdDSA,
        );
        assert_eq!(at.verify(&forged, NOW), Err(AccessError::Invalid), "{alg}");
    }
    let none = format!(
        "{}.",
        signing_input(&json!({"alg": "none", "kid": k.kid}), &body)
    );
    assert_eq!(at.verify(&none, NOW), Err(AccessError::Invalid));
    let crit = sign_raw(
        &json!({"alg": "EdDSA", "kid": k.kid, "crit": ["x"]}),
        &body,
        &signing,
        Algorithm::EdDSA,
    );
    assert_eq!(at.verify(&crit, NOW), Err(AccessError::Invalid));
}

#[test]
fn rotation_keeps_retired_keys_verifying_while_in_the_ring() {
    let old = key(NOW - 1000);
    let at = tokens(vec![old.clone()]);
    let (old_token, _) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);

    let new = key(NOW);
    let retired = StoredSigningKey {
        retired_at: Some(NOW),
        ..old.clone()
    };
    at.set_keys(vec![retired.clone(), new.clone()]).unwrap();
    let (new_token, _) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    assert_eq!(parts(&new_token).0["kid"], new.kid.as_str());
    assert!(
        at.verify(&old_token, NOW).is_ok(),
        "a retired key still verifies"
    );
    assert!(at.verify(&new_token, NOW).is_ok());
    assert_eq!(at.jwks_json()["keys"].as_array().unwrap().len(), 2);

    at.set_keys(vec![new.clone()]).unwrap();
    assert_eq!(
        at.verify(&old_token, NOW),
        Err(AccessError::Invalid),
        "dropped from the ring"
    );
    assert!(at.verify(&new_token, NOW).is_ok());
    // A bad ring is refused and the old one stays.
    assert!(at.set_keys(vec![]).is_err());
    assert!(at.verify(&new_token, NOW).is_ok());
}

#[test]
fn the_newest_unretired_key_signs() {
    let (a, b, c) = (key(1), key(3), key(2));
    let at = tokens(vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(
        parts(&at.sign(CONTACT, 1, MESSENGER, false, NOW).0).0["kid"],
        b.kid.as_str()
    );
    let b_retired = StoredSigningKey {
        retired_at: Some(5),
        ..b
    };
    let at = tokens(vec![a, b_retired, c.clone()]);
    assert_eq!(
        parts(&at.sign(CONTACT, 1, MESSENGER, false, NOW).0).0["kid"],
        c.kid.as_str()
    );
}

#[test]
fn bad_rings_are_refused() {
    assert!(AccessTokens::new(ISSUER.into(), TTL, vec![]).is_err());
    let retired = StoredSigningKey {
        retired_at: Some(NOW),
        ..key(NOW)
    };
    assert!(AccessTokens::new(ISSUER.into(), TTL, vec![retired]).is_err());
    let garbage = StoredSigningKey {
        pkcs8_der: vec![1, 2, 3],
        ..key(NOW)
    };
    let err = AccessTokens::new(ISSUER.into(), TTL, vec![garbage.clone(), key(NOW)])
        .err()
        .unwrap();
    assert!(err.to_string().contains(&garbage.kid), "{err}");
    // The Debug form never shows the private key.
    let shown = format!("{:?}", key(NOW));
    assert!(
        shown.contains("redacted") && !shown.contains("pkcs8_der: ["),
        "{shown}"
    );
}

#[test]
fn generated_keys_are_distinct_ed25519_keys() {
    let (a, b) = (key(NOW), key(NOW));
    assert_ne!(a.kid, b.kid);
    assert_ne!(a.pkcs8_der, b.pkcs8_der);
    assert_eq!((a.created_at, a.retired_at), (NOW, None));
    assert!(aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&a.pkcs8_der).is_ok());
}

#[tokio::test]
async fn the_jwks_document_verifies_the_tokens() {
    let (old, new) = (key(NOW - 10), key(NOW));
    let at = tokens(vec![old.clone(), new.clone()]);
    let jwks = at.jwks_json();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], new.kid.as_str(), "newest first");
    for k in keys {
        let mut fields: Vec<&String> = k.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["alg", "crv", "kid", "kty", "use", "x"]);
        assert_eq!(
            (&k["kty"], &k["crv"], &k["alg"], &k["use"]),
            (
                &json!("OKP"),
                &json!("Ed25519"),
                &json!("EdDSA"),
                &json!("sig")
            )
        );
        assert_eq!(b64_decode(k["x"].as_str().unwrap()).len(), 32);
    }
    let (token, _) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);

    // A standard library can verify it from the JWKS alone …
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(keys[0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
    validation.set_audience(&[format!("confidant:{MESSENGER}")]);
    validation.set_issuer(&[ISSUER]);
    validation.validate_exp = false;
    let decoded =
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
            .unwrap();
    assert_eq!(decoded.claims["sub"], CONTACT);

    // … and so can this crate's own JWKS path.
    let h = Harness::new(NOW);
    h.fetcher
        .serve_raw(JWKS_URL, jwks.to_string().into_bytes(), None);
    let verified = h
        .verifier
        .verify(&token, &jwks_method(JWKS_URL), &policy())
        .await
        .unwrap();
    assert_eq!(verified.identity, CONTACT);
}

#[test]
fn a_token_living_longer_than_the_ttl_is_refused_even_with_the_right_key() {
    // Someone who copied the signing key mints tokens: one unchanged verifies, but one that
    // lives a year, or one issued in the future, does not (issue 11, finding 2).
    let k = key(NOW);
    let at = tokens(vec![k.clone()]);
    let (token, _) = at.sign(CONTACT, 10_000, MESSENGER, false, NOW);
    let (header, body) = parts(&token);
    let signing = EncodingKey::from_ed_der(&k.pkcs8_der);
    let with = |iat: i64, exp: i64| {
        let mut b = body.clone();
        b["iat"] = json!(iat);
        b["exp"] = json!(exp);
        sign_raw(&header, &b, &signing, Algorithm::EdDSA)
    };
    assert!(at.verify(&with(NOW, NOW + TTL), NOW).is_ok());
    assert!(
        at.verify(&with(NOW, NOW + TTL + 60), NOW).is_ok(),
        "within the skew"
    );
    for (iat, exp) in [
        (NOW, NOW + 365 * 86_400),
        (NOW - 86_400, NOW + 600),
        (NOW + 365 * 86_400, NOW + 365 * 86_400 + TTL),
    ] {
        assert_eq!(
            at.verify(&with(iat, exp), NOW).unwrap_err(),
            AccessError::Invalid,
            "iat {iat} exp {exp}"
        );
    }
}
