//! Contact JWT verification from the attacker's side: every check of CONTRACT §6, its
//! boundaries, and the order in which the checks answer.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use crate::common::*;
use confidant_identity::{CompiledMethod, Policy, VerifyError};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

fn hs256(header: &Value, claims: &Value) -> String {
    hs(Algorithm::HS256, SECRET.as_bytes(), header, claims)
}

fn good() -> String {
    hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims(NOW))
}

/// Change one base64url character of the signature (the first, so no trailing-bit subtlety).
fn flip_signature(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let first = if sig.starts_with('A') { 'B' } else { 'A' };
    format!("{input}.{first}{}", &sig[1..])
}

/// Every method, for checks that do not depend on the method.
fn all_methods(h: &Harness) -> Vec<CompiledMethod> {
    h.fetcher.serve(
        JWKS_URL,
        vec![TestKey::p256().jwk_with(json!({"kid": "k"}))],
        None,
    );
    vec![
        shared_method(),
        pem_method(&fixture("p256.pub.pem")),
        jwks_method(JWKS_URL),
    ]
}

#[tokio::test]
async fn a_good_token_of_each_hmac_size_verifies() {
    let h = Harness::new(NOW);
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let header = json!({"alg": format!("{alg:?}")});
        let token = hs(alg, SECRET.as_bytes(), &header, &claims(NOW));
        let verified = h
            .verifier
            .verify(&token, &shared_method(), &policy())
            .await
            .unwrap();
        assert_eq!(verified.identity, "mark@example.test");
        assert_eq!(verified.claims["iat"], NOW);
    }
}

#[tokio::test]
async fn base64url_secrets_use_their_decoded_bytes() {
    let h = Harness::new(NOW);
    let raw = [0xa5u8; 32];
    let method = CompiledMethod::compile(&confidant_core::Validation::SharedToken {
        secret: b64(raw),
        encoding: confidant_core::Encoding::Base64url,
    })
    .unwrap();
    let token = hs(
        Algorithm::HS256,
        &raw,
        &json!({"alg": "HS256"}),
        &claims(NOW),
    );
    assert_eq!(h.code(&token, &method, &policy()).await, "ok");
    // The base64 text itself is not the key.
    let token = hs(
        Algorithm::HS256,
        b64(raw).as_bytes(),
        &json!({"alg": "HS256"}),
        &claims(NOW),
    );
    assert_eq!(
        h.code(&token, &method, &policy()).await,
        "signature_invalid"
    );
}

#[tokio::test]
async fn forged_signatures_are_refused() {
    let h = Harness::new(NOW);
    let m = shared_method();
    let p = policy();
    assert_eq!(
        h.code(&flip_signature(&good()), &m, &p).await,
        "signature_invalid"
    );
    // Another secret.
    let other = hs(
        Algorithm::HS256,
        b"another secret that is long enough!!",
        &json!({"alg": "HS256"}),
        &claims(NOW),
    );
    assert_eq!(h.code(&other, &m, &p).await, "signature_invalid");
    // Claims swapped under a good signature.
    let good = good();
    let parts: Vec<&str> = good.split('.').collect();
    let evil = b64(merged(&claims(NOW), json!({"sub": "admin@example.test"})).to_string());
    assert_eq!(
        h.code(&format!("{}.{evil}.{}", parts[0], parts[2]), &m, &p)
            .await,
        "signature_invalid"
    );
    // Truncated, empty and over-long signatures.
    assert_eq!(
        h.code(
            &format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]),
            &m,
            &p
        )
        .await,
        "signature_invalid"
    );
    assert_eq!(
        h.code(&format!("{}.{}.", parts[0], parts[1]), &m, &p).await,
        "signature_invalid"
    );
    assert_eq!(
        h.code(&format!("{good}AAAA"), &m, &p).await,
        "signature_invalid"
    );
    // An HS512 tag presented as HS256.
    let hs512 = hs(
        Algorithm::HS512,
        SECRET.as_bytes(),
        &json!({"alg": "HS256"}),
        &claims(NOW),
    );
    assert_eq!(h.code(&hs512, &m, &p).await, "signature_invalid");
}

#[tokio::test]
async fn alg_none_is_never_accepted() {
    let h = Harness::new(NOW);
    let p = policy();
    for method in all_methods(&h) {
        for none in ["none", "None", "NONE", "nOnE"] {
            let header = json!({"alg": none});
            let unsigned = format!("{}.", signing_input(&header, &claims(NOW)));
            assert_eq!(
                h.code(&unsigned, &method, &p).await,
                "algorithm_not_allowed",
                "{none}"
            );
            // With a signature part too (an HMAC over the input with the real secret).
            let signed = hs256(&header, &claims(NOW));
            assert_eq!(
                h.code(&signed, &method, &p).await,
                "algorithm_not_allowed",
                "{none}"
            );
        }
    }
    assert_eq!(
        h.fetcher.all_calls(),
        0,
        "alg is judged before any key is fetched"
    );
}

#[tokio::test]
async fn missing_or_odd_alg_is_not_allowed() {
    let h = Harness::new(NOW);
    for method in all_methods(&h) {
        for header in [
            json!({}),
            json!({"typ": "JWT"}),
            json!({"alg": null}),
            json!({"alg": ["HS256"]}),
            json!({"alg": 256}),
            json!({"alg": "hs256"}),
            json!({"alg": "HS256 "}),
            json!({"alg": ""}),
            json!({"alg": "HS1"}),
            json!({"alg": "RSA-OAEP"}),
            json!({"alg": "ES512"}),
            json!({"alg": "Ed448"}),
        ] {
            let token = hs256(&header, &claims(NOW));
            let expected = if method_is_shared(&method) && header["alg"] == "HS256" {
                "ok"
            } else {
                "algorithm_not_allowed"
            };
            assert_eq!(
                h.code(&token, &method, &policy()).await,
                expected,
                "{header}"
            );
        }
    }
}

fn method_is_shared(m: &CompiledMethod) -> bool {
    matches!(m, CompiledMethod::SharedSecret(_))
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    // The classic key-confusion attack: the public key is public, so an HS256 token "signed"
    // with its PEM text (or DER bytes) must be refused by alg, before any signature check.
    let h = Harness::new(NOW);
    let pem_text = fixture("rsa2048.pub.pem");
    let der = pem::parse(&pem_text).unwrap().into_contents();
    h.fetcher.serve(
        JWKS_URL,
        vec![TestKey::rsa_fixture().jwk_with(json!({"kid": "rsa"}))],
        None,
    );
    for method in [pem_method(&pem_text), jwks_method(JWKS_URL)] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            for secret in [pem_text.as_bytes(), pem_text.trim().as_bytes(), &der[..]] {
                let header = json!({"alg": format!("{alg:?}"), "kid": "rsa"});
                let token = hs(alg, secret, &header, &claims(NOW));
                let err = h
                    .verifier
                    .verify(&token, &method, &policy())
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), "algorithm_not_allowed", "{alg:?}");
            }
        }
    }
    // And the other way round: an RS256 token never verifies against a shared token.
    let rs = TestKey::rsa_fixture().sign(&json!({"alg": "RS256"}), &claims(NOW));
    assert_eq!(
        h.code(&rs, &shared_method(), &policy()).await,
        "algorithm_not_allowed"
    );
}

#[tokio::test]
async fn the_key_type_fixes_the_algorithm() {
    let h = Harness::new(NOW);
    let p = policy();
    let p256 = TestKey::pem_fixture("p256.key.pem", Algorithm::ES256);
    let p384 = TestKey::pem_fixture("p384.key.pem", Algorithm::ES384);
    let ed = TestKey::pem_fixture("ed25519.key.pem", Algorithm::EdDSA);
    let rsa = TestKey::rsa_fixture();
    let p256_pem = pem_method(&fixture("p256.pub.pem"));
    let p384_pem = pem_method(&fixture("p384.pub.pem"));
    let ed_pem = pem_method(&fixture("ed25519.pub.pem"));
    let rsa_pem = pem_method(&fixture("rsa2048.pub.pem"));

    // Each key with its own algorithms.
    assert_eq!(
        h.code(
            &p256.sign(&json!({"alg": "ES256"}), &claims(NOW)),
            &p256_pem,
            &p
        )
        .await,
        "ok"
    );
    assert_eq!(
        h.code(
            &p384.sign(&json!({"alg": "ES384"}), &claims(NOW)),
            &p384_pem,
            &p
        )
        .await,
        "ok"
    );
    assert_eq!(
        h.code(
            &ed.sign(&json!({"alg": "EdDSA"}), &claims(NOW)),
            &ed_pem,
            &p
        )
        .await,
        "ok"
    );
    assert_eq!(
        h.code(
            &ed.sign(&json!({"alg": "Ed25519"}), &claims(NOW)),
            &ed_pem,
            &p
        )
        .await,
        "ok"
    );
    for alg in RSA_ALGS {
        let token = sign_raw(
            &json!({"alg": format!("{alg:?}")}),
            &claims(NOW),
            &rsa.encoding,
            alg,
        );
        assert_eq!(h.code(&token, &rsa_pem, &p).await, "ok", "{alg:?}");
    }

    // An ES256 token against a P-384 key, and the reverse; RSA names against EC keys; etc.
    let es256 = p256.sign(&json!({"alg": "ES256"}), &claims(NOW));
    let es384 = p384.sign(&json!({"alg": "ES384"}), &claims(NOW));
    assert_eq!(h.code(&es256, &p384_pem, &p).await, "algorithm_not_allowed");
    assert_eq!(h.code(&es384, &p256_pem, &p).await, "algorithm_not_allowed");
    assert_eq!(h.code(&es256, &rsa_pem, &p).await, "algorithm_not_allowed");
    assert_eq!(h.code(&es256, &ed_pem, &p).await, "algorithm_not_allowed");
    let eddsa = ed.sign(&json!({"alg": "EdDSA"}), &claims(NOW));
    assert_eq!(h.code(&eddsa, &rsa_pem, &p).await, "algorithm_not_allowed");
    assert_eq!(h.code(&eddsa, &p256_pem, &p).await, "algorithm_not_allowed");
    // A P-256 signature relabelled ES384 is refused by alg against the P-256 key.
    let relabelled = p256.sign(&json!({"alg": "ES384"}), &claims(NOW));
    assert_eq!(
        h.code(&relabelled, &p256_pem, &p).await,
        "algorithm_not_allowed"
    );
    // An RS256 signature relabelled PS256 is a bad signature (the alg is allowed).
    let rs_as_ps = sign_raw(
        &json!({"alg": "PS256"}),
        &claims(NOW),
        &rsa.encoding,
        Algorithm::RS256,
    );
    assert_eq!(h.code(&rs_as_ps, &rsa_pem, &p).await, "signature_invalid");
    // The right alg, the wrong key.
    let other = TestKey::p256().sign(&json!({"alg": "ES256"}), &claims(NOW));
    assert_eq!(h.code(&other, &p256_pem, &p).await, "signature_invalid");
}

#[tokio::test]
async fn all_zero_ecdsa_signatures_are_invalid() {
    // CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify.
    let h = Harness::new(NOW);
    h.fetcher.serve(
        JWKS_URL,
        vec![
            TestKey::p256().jwk_with(json!({"kid": "p256"})),
            TestKey::p384().jwk_with(json!({"kid": "p384"})),
        ],
        None,
    );
    let p256_pem = pem_method(&fixture("p256.pub.pem"));
    let p384_pem = pem_method(&fixture("p384.pub.pem"));
    let cases = [
        (json!({"alg": "ES256"}), 64, &p256_pem),
        (json!({"alg": "ES384"}), 96, &p384_pem),
        (
            json!({"alg": "ES256", "kid": "p256"}),
            64,
            &jwks_method(JWKS_URL),
        ),
        (
            json!({"alg": "ES384", "kid": "p384"}),
            96,
            &jwks_method(JWKS_URL),
        ),
    ];
    for (header, len, method) in cases {
        let token = with_signature(&header, &claims(NOW), &vec![0u8; len]);
        assert_eq!(
            h.code(&token, method, &policy()).await,
            "signature_invalid",
            "{header}"
        );
    }
    // A DER-encoded ECDSA signature (not the JWS fixed r||s form) is not accepted either.
    let der_sig = der(0x30, &[der(0x02, &[1]), der(0x02, &[1])].concat());
    let token = with_signature(&json!({"alg": "ES256"}), &claims(NOW), &der_sig);
    assert_eq!(
        h.code(&token, &p256_pem, &policy()).await,
        "signature_invalid"
    );
}

#[tokio::test]
async fn an_embedded_jwk_header_is_never_trusted() {
    let h = Harness::new(NOW);
    let victim = pem_method(&fixture("p256.pub.pem"));
    let attacker = TestKey::p256();
    // The attacker signs with its own key and ships the public half in the header.
    let header = json!({"alg": "ES256", "jwk": attacker.jwk});
    let token = attacker.sign(&header, &claims(NOW));
    assert_eq!(
        h.code(&token, &victim, &policy()).await,
        "signature_invalid"
    );

    // With a JWKS: kid-less, the set's one P-256 key is chosen, not the header's.
    h.fetcher.serve(
        JWKS_URL,
        vec![TestKey::p256().jwk_with(json!({"kid": "real"}))],
        None,
    );
    assert_eq!(
        h.code(&token, &jwks_method(JWKS_URL), &policy()).await,
        "signature_invalid"
    );
    // Naming the attacker's own kid finds nothing.
    let header =
        json!({"alg": "ES256", "kid": "evil", "jwk": attacker.jwk_with(json!({"kid": "evil"}))});
    let token = attacker.sign(&header, &claims(NOW));
    assert_eq!(
        h.code(&token, &jwks_method(JWKS_URL), &policy()).await,
        "key_not_found"
    );
}

#[tokio::test]
async fn jku_x5u_and_x5c_are_ignored() {
    let h = Harness::new(NOW);
    let real = TestKey::p256();
    let attacker = TestKey::p256();
    const EVIL: &str = "https://evil.example.test/jwks.json";
    h.fetcher
        .serve(JWKS_URL, vec![real.jwk_with(json!({"kid": "k1"}))], None);
    h.fetcher
        .serve(EVIL, vec![attacker.jwk_with(json!({"kid": "k1"}))], None);
    let header = json!({
        "alg": "ES256", "kid": "k1", "jku": EVIL, "x5u": "https://evil.example.test/cert.pem",
        "x5c": [b64(b"not a certificate")],
    });
    let forged = attacker.sign(&header, &claims(NOW));
    assert_eq!(
        h.code(&forged, &jwks_method(JWKS_URL), &policy()).await,
        "signature_invalid"
    );
    assert_eq!(
        h.fetcher.calls(EVIL),
        0,
        "the header's URL is never fetched"
    );
    // A genuine token that happens to carry them still verifies: they are simply not read.
    let genuine = real.sign(&header, &claims(NOW));
    assert_eq!(
        h.code(&genuine, &jwks_method(JWKS_URL), &policy()).await,
        "ok"
    );
    assert_eq!(h.fetcher.calls(EVIL), 0);
}

#[tokio::test]
async fn crit_and_b64_are_malformed() {
    let h = Harness::new(NOW);
    for header in [
        json!({"alg": "HS256", "crit": ["exp"]}),
        json!({"alg": "HS256", "crit": ["b64"], "b64": false}),
        json!({"alg": "HS256", "crit": ["b64"], "b64": true}),
        json!({"alg": "HS256", "crit": ["http://example.com/ext"], "http://example.com/ext": 1}),
        json!({"alg": "HS256", "crit": []}),
        json!({"alg": "HS256", "crit": "exp"}),
        json!({"alg": "HS256", "crit": [1]}),
        json!({"alg": "HS256", "crit": null}),
        json!({"alg": "HS256", "b64": false}),
        // crit is judged before alg.
        json!({"alg": "none", "crit": ["exp"]}),
    ] {
        // Correctly signed: only the header's demands are wrong.
        let token = hs256(&header, &claims(NOW));
        let err = h
            .verifier
            .verify(&token, &shared_method(), &policy())
            .await
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::Malformed(_)),
            "{header}: {err:?}"
        );
    }
    let explicit_b64 = hs256(&json!({"alg": "HS256", "b64": true}), &claims(NOW));
    assert_eq!(
        h.code(&explicit_b64, &shared_method(), &policy()).await,
        "ok"
    );
}

#[tokio::test]
async fn tokens_over_8_kib_are_malformed() {
    let h = Harness::new(NOW);
    let header = json!({"alg": "HS256"});
    let sized = |pad: usize| {
        hs256(
            &header,
            &merged(&claims(NOW), json!({"pad": "x".repeat(pad)})),
        )
    };
    let base = sized(0).len();
    // Find the largest padding that stays within 8192 bytes.
    let mut pad = (8192 - base) * 3 / 4;
    while sized(pad + 1).len() <= 8192 {
        pad += 1;
    }
    while sized(pad).len() > 8192 {
        pad -= 1;
    }
    assert!(sized(pad).len() <= 8192 && sized(pad + 1).len() > 8192);
    assert_eq!(h.code(&sized(pad), &shared_method(), &policy()).await, "ok");
    assert_eq!(
        h.code(&sized(pad + 1), &shared_method(), &policy()).await,
        "token_malformed"
    );
    assert_eq!(
        h.code(&sized(100_000), &shared_method(), &policy()).await,
        "token_malformed"
    );
}

#[tokio::test]
async fn bad_shapes_and_encodings_are_malformed() {
    let h = Harness::new(NOW);
    let good = good();
    let (hd, rest) = good.split_once('.').unwrap();
    let (cl, sig) = rest.split_once('.').unwrap();
    let std_b64 = |s: &str| s.replace('-', "+").replace('_', "/");
    let cases = vec![
        String::new(),
        ".".into(),
        "..".into(),
        format!("{hd}.{cl}"),
        format!("{good}.{sig}"),
        format!("{hd}.{cl}.{sig}.{sig}.{sig}"), // JWE shape
        format!("{hd}=.{cl}.{sig}"),
        format!("{hd}.{cl}.{sig}="),
        format!("{}.{}.{}", std_b64(hd), std_b64(cl), std_b64(sig)) + "+/",
        format!(" {good}"),
        format!("{good}\n"),
        format!("{hd}.{cl}.{}", &sig[..sig.len() - 1]) + "!",
        format!("{hd}.{}.{sig}", b64("not json")),
        format!("{}.{cl}.{sig}", b64("[\"HS256\"]")),
        format!("{}.{cl}.{sig}", b64("\"HS256\"")),
        format!("{}.{cl}.{sig}", b64("null")),
        format!("{hd}.{}.{sig}", b64("[]")),
        format!("{hd}.{}.{sig}", b64("1")),
        format!("{hd}.{}.{sig}", b64("\"claims\"")),
        format!("{}.{cl}.{sig}", b64([0xff, 0xfe, b'{', b'}'])), // not UTF-8
        "eyJhbGciOiJub25lIn0".into(),
    ];
    for token in cases {
        for method in all_methods(&h) {
            assert_eq!(
                h.code(&token, &method, &policy()).await,
                "token_malformed",
                "{token:?}"
            );
        }
    }
}

#[tokio::test]
async fn time_checks_at_their_boundaries() {
    let h = Harness::new(NOW);
    let m = shared_method();
    let p = policy(); // skew 60
    let header = json!({"alg": "HS256"});
    let t = |c: Value| hs256(&header, &c);

    // exp + skew must be > now.
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": NOW - 60})), &m, &p)
            .await,
        "token_expired"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": NOW - 59})), &m, &p)
            .await,
        "ok"
    );
    let err = h
        .verifier
        .verify(&t(json!({"sub": "a", "exp": NOW - 1000})), &m, &p)
        .await
        .unwrap_err();
    assert_eq!(err, VerifyError::Expired { exp: NOW - 1000 });
    assert_eq!(
        err.to_string(),
        "the Contact JWT expired at 2027-01-15T07:43:20Z"
    );
    // Float exp is floored; exp as a string or missing is expiry_missing.
    assert_eq!(
        h.code(
            &t(json!({"sub": "a", "exp": (NOW - 59) as f64 + 0.999})),
            &m,
            &p
        )
        .await,
        "ok"
    );
    assert_eq!(
        h.code(
            &t(json!({"sub": "a", "exp": (NOW - 60) as f64 + 0.999})),
            &m,
            &p
        )
        .await,
        "token_expired"
    );
    assert_eq!(
        h.code(
            &t(json!({"sub": "a", "exp": (NOW + 100).to_string()})),
            &m,
            &p
        )
        .await,
        "expiry_missing"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a"})), &m, &p).await,
        "expiry_missing"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": null})), &m, &p).await,
        "expiry_missing"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": true})), &m, &p).await,
        "expiry_missing"
    );

    // nbf - skew must be <= now.
    let exp = NOW + 300;
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": exp, "nbf": NOW + 60})), &m, &p)
            .await,
        "ok"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": exp, "nbf": NOW + 61})), &m, &p)
            .await,
        "token_not_yet_valid"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": exp, "nbf": "later"})), &m, &p)
            .await,
        "token_malformed"
    );

    // Zero skew.
    let strict = Policy {
        clock_skew: 0,
        ..policy()
    };
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": NOW})), &m, &strict)
            .await,
        "token_expired"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": NOW + 1})), &m, &strict)
            .await,
        "ok"
    );
    assert_eq!(
        h.code(
            &t(json!({"sub": "a", "exp": exp, "nbf": NOW + 1})),
            &m,
            &strict
        )
        .await,
        "token_not_yet_valid"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": exp, "nbf": NOW})), &m, &strict)
            .await,
        "ok"
    );

    // The lifetime cap: exp - iat and exp - now, each at most the cap.
    let capped = Policy {
        max_lifetime: Some(600),
        ..policy()
    };
    assert_eq!(
        h.code(
            &t(json!({"sub": "a", "iat": NOW, "exp": NOW + 600})),
            &m,
            &capped
        )
        .await,
        "ok"
    );
    assert_eq!(
        h.code(
            &t(json!({"sub": "a", "iat": NOW, "exp": NOW + 601})),
            &m,
            &capped
        )
        .await,
        "token_lifetime_too_long"
    );
    assert_eq!(
        h.code(
            &t(json!({"sub": "a", "iat": NOW - 100, "exp": NOW + 550})),
            &m,
            &capped
        )
        .await,
        "token_lifetime_too_long"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": NOW + 600})), &m, &capped)
            .await,
        "ok"
    );
    assert_eq!(
        h.code(&t(json!({"sub": "a", "exp": NOW + 601})), &m, &capped)
            .await,
        "token_lifetime_too_long"
    );
    // An iat set in the future cannot stretch the window.
    assert_eq!(
        h.code(
            &t(json!({"sub": "a", "iat": NOW + 3000, "exp": NOW + 3500})),
            &m,
            &capped
        )
        .await,
        "token_lifetime_too_long"
    );
}

#[tokio::test]
async fn issuer_and_audience() {
    let h = Harness::new(NOW);
    let m = shared_method();
    let header = json!({"alg": "HS256"});
    let t = |extra: Value| hs256(&header, &merged(&claims(NOW), extra));
    let p = Policy {
        issuer: Some("https://idp.example.test".into()),
        audience: Some("confidant".into()),
        ..policy()
    };
    let ok = json!({"iss": "https://idp.example.test", "aud": "confidant"});
    assert_eq!(h.code(&t(ok.clone()), &m, &p).await, "ok");
    assert_eq!(
        h.code(
            &t(merged(&ok, json!({"aud": ["other", "confidant"]}))),
            &m,
            &p
        )
        .await,
        "ok"
    );
    for iss in [
        json!("https://idp.example.test/"),
        json!("https://IDP.example.test"),
        json!(null),
        json!(["https://idp.example.test"]),
    ] {
        assert_eq!(
            h.code(&t(merged(&ok, json!({"iss": iss}))), &m, &p).await,
            "issuer_mismatch",
            "{iss}"
        );
    }
    for aud in [
        json!("other"),
        json!(["other"]),
        json!([]),
        json!("confidant "),
        json!(null),
        json!([["confidant"]]),
    ] {
        assert_eq!(
            h.code(&t(merged(&ok, json!({"aud": aud}))), &m, &p).await,
            "audience_mismatch",
            "{aud}"
        );
    }
    // Unconfigured: neither claim is looked at.
    assert_eq!(
        h.code(&t(json!({"iss": 5, "aud": {"x": 1}})), &m, &policy())
            .await,
        "ok"
    );
}

#[tokio::test]
async fn the_identity_claim() {
    let h = Harness::new(NOW);
    let m = shared_method();
    let header = json!({"alg": "HS256"});
    let p = Policy {
        identity_key: "comm100.email".into(),
        ..policy()
    };
    let with = |v: Value| hs256(&header, &merged(&claims(NOW), json!({"comm100.email": v})));

    let verified = h
        .verifier
        .verify(&with(json!("mark@healthify.test")), &m, &p)
        .await
        .unwrap();
    assert_eq!(verified.identity, "mark@healthify.test");
    assert_eq!(
        h.verifier
            .verify(&with(json!(123456789)), &m, &p)
            .await
            .unwrap()
            .identity,
        "123456789"
    );
    assert_eq!(
        h.verifier
            .verify(&with(json!(-7)), &m, &p)
            .await
            .unwrap()
            .identity,
        "-7"
    );
    // 256 characters (multi-byte, so bytes ≠ characters) is fine; 257 is not.
    let at_limit = "é".repeat(256);
    assert_eq!(
        h.verifier
            .verify(&with(json!(at_limit)), &m, &p)
            .await
            .unwrap()
            .identity,
        at_limit
    );
    assert_eq!(
        h.code(&with(json!("é".repeat(257))), &m, &p).await,
        "identity_missing"
    );
    for bad in [
        json!(""),
        json!(true),
        json!(false),
        json!(1.5),
        json!(2.0),
        json!({"email": "x"}),
        json!(["x"]),
        json!(null),
    ] {
        let err = h
            .verifier
            .verify(&with(bad.clone()), &m, &p)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "identity_missing", "{bad}");
        assert!(err.to_string().contains("comm100.email"), "{err}");
    }
    // Missing entirely, including as a nested path.
    let nested = hs256(
        &header,
        &merged(&claims(NOW), json!({"comm100": {"email": "x@y"}})),
    );
    assert_eq!(h.code(&nested, &m, &p).await, "identity_missing");
    // The default key `sub`, present in claims(NOW).
    assert_eq!(
        h.verifier
            .verify(&good(), &m, &policy())
            .await
            .unwrap()
            .identity,
        "mark@example.test"
    );
}

#[tokio::test]
async fn the_first_failing_check_answers() {
    let h = Harness::new(NOW);
    let m = shared_method();
    let p = Policy {
        issuer: Some("i".into()),
        audience: Some("a".into()),
        max_lifetime: Some(60),
        ..policy()
    };
    let everything_wrong =
        json!({"exp": NOW - 1000, "nbf": NOW + 1000, "iat": 0, "iss": "x", "aud": "y"});
    // alg before signature before claims.
    let none = format!(
        "{}.",
        signing_input(&json!({"alg": "none"}), &everything_wrong)
    );
    assert_eq!(h.code(&none, &m, &p).await, "algorithm_not_allowed");
    let bad_sig = flip_signature(&hs256(&json!({"alg": "HS256"}), &everything_wrong));
    assert_eq!(h.code(&bad_sig, &m, &p).await, "signature_invalid");
    // Then the claims, in the contract's order.
    let t = |c: Value| hs256(&json!({"alg": "HS256"}), &c);
    let steps = [
        (
            json!({"nbf": NOW + 1000, "iat": 0, "iss": "x", "aud": "y"}),
            "expiry_missing",
        ),
        (everything_wrong.clone(), "token_expired"),
        (
            json!({"exp": NOW + 30, "nbf": NOW + 1000, "iat": 0, "iss": "x", "aud": "y"}),
            "token_not_yet_valid",
        ),
        (
            json!({"exp": NOW + 30, "iat": 0, "iss": "x", "aud": "y"}),
            "token_lifetime_too_long",
        ),
        (
            json!({"exp": NOW + 30, "iat": NOW, "iss": "x", "aud": "y"}),
            "issuer_mismatch",
        ),
        (
            json!({"exp": NOW + 30, "iat": NOW, "iss": "i", "aud": "y"}),
            "audience_mismatch",
        ),
        (
            json!({"exp": NOW + 30, "iat": NOW, "iss": "i", "aud": "a"}),
            "identity_missing",
        ),
        (
            json!({"exp": NOW + 30, "iat": NOW, "iss": "i", "aud": "a", "sub": "s"}),
            "ok",
        ),
    ];
    for (claims, code) in steps {
        assert_eq!(h.code(&t(claims.clone()), &m, &p).await, code, "{claims}");
    }
}

#[tokio::test]
async fn messages_never_echo_the_token_or_the_secret() {
    let h = Harness::new(NOW);
    let long_alg = "X".repeat(500);
    let tokens = [
        flip_signature(&good()),
        hs256(&json!({"alg": long_alg}), &claims(NOW)),
        hs256(&json!({"alg": "HS256"}), &json!({"exp": NOW - 1000})),
        hs256(
            &json!({"alg": "HS256"}),
            &json!({"exp": NOW + 10, "sub": ""}),
        ),
        format!("{}x", good()),
    ];
    for token in tokens {
        let err = h
            .verifier
            .verify(&token, &shared_method(), &policy())
            .await
            .unwrap_err();
        let text = err.to_string();
        let (_, signature) = token.rsplit_once('.').unwrap();
        assert!(
            !text.contains(&token) && !text.contains(signature) && !text.contains(SECRET),
            "{text}"
        );
        assert!(text.len() < 300, "{text}");
    }
}

#[tokio::test]
async fn compiled_methods_refuse_bad_settings() {
    use confidant_core::{Encoding, Validation};
    let short = Validation::SharedToken {
        secret: "x".repeat(31),
        encoding: Encoding::Text,
    };
    assert!(CompiledMethod::compile(&short).is_err());
    let bad_b64 = Validation::SharedToken {
        secret: "!".repeat(60),
        encoding: Encoding::Base64url,
    };
    assert!(CompiledMethod::compile(&bad_b64).is_err());
    let short_b64 = Validation::SharedToken {
        secret: "A".repeat(42),
        encoding: Encoding::Base64url,
    };
    assert!(CompiledMethod::compile(&short_b64).is_err());
    let bad_pem = Validation::PublicKey {
        public_key: "nope".into(),
    };
    assert!(CompiledMethod::compile(&bad_pem).is_err());
    let jwks = Validation::Jwks {
        jwks_url: JWKS_URL.into(),
    };
    assert!(
        matches!(CompiledMethod::compile(&jwks).unwrap(), CompiledMethod::Jwks { url } if url == JWKS_URL)
    );
    // The Debug form of a compiled shared secret shows no secret bytes.
    let shown = format!("{:?}", shared_method());
    assert!(
        !shown.contains("correct horse") && !shown.contains("99, 111"),
        "{shown}"
    );
}
