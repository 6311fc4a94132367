//! Properties of every parser of outside input in this crate: the compact JWS and the whole
//! Contact JWT verify path (arbitrary bytes, arbitrary three-part strings, mutated valid
//! tokens, valid tokens), PEM public keys, JWK Sets, and Confidant's own access tokens.
//! `PROPTEST_CASES` cases each (see `confidant_testkit::props`); `scripts/proptest-release`
//! runs 10,000 in release.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use std::sync::LazyLock;

use confidant_identity::{AccessError, AccessTokens, CompiledMethod, Policy, PublicKey};
use confidant_testkit::props::{
    apply, apply_json, config, edits, hostile_text, json_edits, json_object, json_value,
};
use jsonwebtoken::Algorithm;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::common::*;

/// Every code of CONTRACT §6's table, and `jwks_unavailable` (its "other answers").
const CODES: [&str; 12] = [
    "token_malformed",
    "algorithm_not_allowed",
    "key_not_found",
    "signature_invalid",
    "expiry_missing",
    "token_expired",
    "token_not_yet_valid",
    "token_lifetime_too_long",
    "issuer_mismatch",
    "audience_mismatch",
    "identity_missing",
    "jwks_unavailable",
];

const KID: &str = "k";

/// A signer and the method that verifies its tokens.
struct Signer {
    key: TestKey,
    /// The algorithms this signer's key may sign with under the method.
    algs: Vec<Algorithm>,
    method: CompiledMethod,
    jwks: bool,
}

/// The JWK of the JWKS signer, served at `JWKS_URL`.
static JWKS_KEY: LazyLock<TestKey> = LazyLock::new(TestKey::p256);

static SIGNERS: LazyLock<Vec<Signer>> = LazyLock::new(|| {
    use jsonwebtoken::EncodingKey;
    let shared = TestKey {
        encoding: EncodingKey::from_secret(SECRET.as_bytes()),
        alg: Algorithm::HS256,
        jwk: Value::Null,
    };
    let jwks = TestKey {
        encoding: JWKS_KEY.encoding.clone(),
        alg: Algorithm::ES256,
        jwk: JWKS_KEY.jwk.clone(),
    };
    vec![
        Signer {
            key: shared,
            algs: vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
            method: shared_method(),
            jwks: false,
        },
        Signer {
            key: TestKey::pem_fixture("p256.key.pem", Algorithm::ES256),
            algs: vec![Algorithm::ES256],
            method: pem_method(&fixture("p256.pub.pem")),
            jwks: false,
        },
        Signer {
            key: TestKey::pem_fixture("ed25519.key.pem", Algorithm::EdDSA),
            algs: vec![Algorithm::EdDSA],
            method: pem_method(&fixture("ed25519.pub.pem")),
            jwks: false,
        },
        Signer {
            key: TestKey::rsa_fixture(),
            algs: vec![Algorithm::RS256, Algorithm::PS384],
            method: pem_method(&fixture("rsa2048.pub.pem")),
            jwks: false,
        },
        Signer {
            key: jwks,
            algs: vec![Algorithm::ES256],
            method: jwks_method(JWKS_URL),
            jwks: true,
        },
    ]
});

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A harness whose fetcher serves the JWKS signer's key under `KID`.
fn harness() -> Harness {
    let h = Harness::new(NOW);
    h.fetcher.serve(JWKS_URL, vec![JWKS_KEY.jwk(KID)], None);
    h
}

/// The answer to a token under every method: each a refusal with one of the codes, whose
/// message never quotes the token. Returns how many methods accepted it.
fn refusals(
    rt: &tokio::runtime::Runtime,
    h: &Harness,
    token: &str,
) -> Result<usize, TestCaseError> {
    let mut accepted = 0;
    for signer in SIGNERS.iter() {
        match rt.block_on(h.verifier.verify(token, &signer.method, &Policy::default())) {
            Ok(_) => accepted += 1,
            Err(e) => {
                prop_assert!(CODES.contains(&e.code()), "{e:?}");
                if token.len() > 40 {
                    prop_assert!(!e.to_string().contains(token), "{e} quotes the token");
                }
            }
        }
    }
    Ok(accepted)
}

fn alg_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

/// Other members of a header or claims, small enough that a token stays under 8 KiB.
fn small_object() -> impl Strategy<Value = Map<String, Value>> {
    json_object().prop_filter("under 2,000 bytes", |o| {
        Value::Object(o.clone()).to_string().len() < 2_000
    })
}

/// A token part: base64url of JSON (an object or anything), base64url of bytes, or text.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => json_object().prop_map(|o| b64(Value::Object(o).to_string())),
        1 => json_value().prop_map(|v| b64(v.to_string())),
        2 => proptest::collection::vec(any::<u8>(), 0..96).prop_map(b64),
        1 => hostile_text(40),
    ]
}

/// A header an attacker might write: an `alg` (good, bad, `none`, wrong case or missing), a
/// `kid`, and anything else (`crit`, `b64`, `jku`...).
fn hostile_header() -> impl Strategy<Value = Map<String, Value>> {
    let alg = proptest::option::of(prop_oneof![
        3 => proptest::sample::select(vec![
            "HS256", "HS384", "HS512", "RS256", "PS384", "ES256", "ES384", "EdDSA", "Ed25519",
            "none", "None", "hs256", "ES512", "RS1",
        ]).prop_map(Value::from),
        1 => json_value(),
    ]);
    let kid = proptest::option::of(prop_oneof![Just(Value::from(KID)), json_value()]);
    (json_object(), alg, kid).prop_map(|(mut header, alg, kid)| {
        if let Some(alg) = alg {
            header.insert("alg".into(), alg);
        }
        if let Some(kid) = kid {
            header.insert("kid".into(), kid);
        }
        header
    })
}

/// Claims that pass every check of the default policy: an identity (a string of 1 to 256
/// characters or an integer), `exp` in the future, `nbf` and `iat` not after now, and any
/// other claims.
fn good_claims() -> impl Strategy<Value = (Map<String, Value>, String)> {
    let identity = prop_oneof![
        3 => "\\PC{1,256}".prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
    ];
    (
        small_object(),
        identity,
        1i64..86_400 * 365,
        proptest::option::of(-100_000i64..60),
        proptest::option::of(-100_000i64..=0),
        any::<bool>(),
    )
        .prop_map(|(mut claims, identity, ttl, nbf, iat, float_exp)| {
            let text = match &identity {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            claims.insert("sub".into(), identity);
            let exp = NOW + ttl;
            claims.insert(
                "exp".into(),
                if float_exp {
                    json!(exp as f64 + 0.5)
                } else {
                    json!(exp)
                },
            );
            for (name, offset) in [("nbf", nbf), ("iat", iat)] {
                match offset {
                    Some(offset) => claims.insert(name.into(), json!(NOW + offset)),
                    None => claims.remove(name),
                };
            }
            (claims, text)
        })
}

/// A good header for a signer: its algorithm, its `kid` when the method is a JWKS, and other
/// members that change nothing (not `crit`, `b64`, `alg` or `kid`).
fn good_header(signer: &Signer, alg: Algorithm, extra: Map<String, Value>) -> Value {
    let mut header: Map<String, Value> = extra
        .into_iter()
        .filter(|(name, _)| !matches!(name.as_str(), "alg" | "kid" | "crit" | "b64"))
        .collect();
    header.insert("alg".into(), alg_name(alg).into());
    if signer.jwks {
        header.insert("kid".into(), KID.into());
    }
    Value::Object(header)
}

fn sign_with(signer: &Signer, alg: Algorithm, header: &Value, claims: &Value) -> String {
    sign_raw(header, claims, &signer.key.encoding, alg)
}

/// Real public keys in PEM, of every kind the crate reads (and some it refuses).
fn real_pem() -> impl Strategy<Value = String> {
    proptest::sample::select(vec![
        "ed25519.pub.pem",
        "p256.pub.pem",
        "p384.pub.pem",
        "rsa2048.pub.pem",
        "rsa2048.pkcs1.pub.pem",
        "rsa1024.pub.pem",
        "rsapss.pub.pem",
        "secp256k1.pub.pem",
        "ed448.pub.pem",
        "p256.key.pem",
    ])
    .prop_map(fixture)
}

/// Real public JWKs of every type, with a `kid`.
fn real_jwk() -> impl Strategy<Value = Value> {
    static JWKS: LazyLock<Vec<Value>> = LazyLock::new(|| {
        vec![
            TestKey::p256().jwk("a"),
            TestKey::p384().jwk("b"),
            TestKey::ed25519().jwk("c"),
            TestKey::rsa_fixture().jwk("d"),
            TestKey::rsa_fixture()
                .jwk_with(json!({"kid": "e", "alg": "RS256", "key_ops": ["verify"]})),
        ]
    });
    proptest::sample::select(JWKS.clone())
}

/// A JWK Set body an attacker might serve: bytes, any JSON, or mutated real keys.
fn hostile_set() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => json_value().prop_map(|v| json!({"keys": v}).to_string().into_bytes()),
        4 => proptest::collection::vec((real_jwk(), json_edits()), 0..8).prop_map(|keys| {
            let keys: Vec<Value> = keys.iter().map(|(k, e)| apply_json(k, e)).collect();
            json!({"keys": keys}).to_string().into_bytes()
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn contact_jwt_from_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let (rt, h) = (runtime(), harness());
        let token = String::from_utf8_lossy(&bytes);
        prop_assert_eq!(refusals(&rt, &h, &token)?, 0);
    }

    #[test]
    fn contact_jwt_from_any_three_parts(
        header in prop_oneof![part(), hostile_header().prop_map(|h| b64(Value::Object(h).to_string()))],
        claims in part(),
        signature in prop_oneof![part(), Just(String::new())],
    ) {
        let (rt, h) = (runtime(), harness());
        let token = format!("{header}.{claims}.{signature}");
        prop_assert_eq!(refusals(&rt, &h, &token)?, 0);
    }

    /// Any change to a valid token's text makes a token that no method accepts: base64url is
    /// read canonically, so another text is another header, claims or signature.
    #[test]
    fn mutated_contact_jwts_are_refused(
        which in 0usize..5,
        alg_index in any::<usize>(),
        (claims, _) in good_claims(),
        extra in small_object(),
        changes in edits(),
    ) {
        let (rt, h) = (runtime(), harness());
        let signer = &SIGNERS[which];
        let alg = signer.algs[alg_index % signer.algs.len()];
        let token = sign_with(signer, alg, &good_header(signer, alg, extra), &Value::Object(claims));
        prop_assert!(rt.block_on(h.verifier.verify(&token, &signer.method, &Policy::default())).is_ok());
        let mutated = apply(&token, &changes);
        prop_assume!(mutated != token);
        prop_assert_eq!(refusals(&rt, &h, &mutated)?, 0);
    }

    #[test]
    fn valid_contact_jwts_verify(
        which in 0usize..5,
        alg_index in any::<usize>(),
        (claims, identity) in good_claims(),
        extra in small_object(),
    ) {
        let (rt, h) = (runtime(), harness());
        let signer = &SIGNERS[which];
        let alg = signer.algs[alg_index % signer.algs.len()];
        let claims = Value::Object(claims);
        let token = sign_with(signer, alg, &good_header(signer, alg, extra), &claims);
        let verified = rt.block_on(h.verifier.verify(&token, &signer.method, &Policy::default()));
        prop_assert!(verified.is_ok(), "{:?}", verified.err());
        let verified = verified.unwrap();
        prop_assert_eq!(verified.identity, identity);
        // As serde_json reads them back (its default float parsing may differ in the last bit).
        let read_back: Value = serde_json::from_str(&claims.to_string()).unwrap();
        prop_assert_eq!(Value::Object(verified.claims), read_back);
    }

    #[test]
    fn pem_from_any_text(text in prop_oneof![
        hostile_text(200),
        hostile_text(200).prop_map(|t| format!("-----BEGIN PUBLIC KEY-----\n{t}\n-----END PUBLIC KEY-----\n")),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|der| pem("PUBLIC KEY", der)),
    ]) {
        // Ok or a typed error; an accepted key allows at least one algorithm.
        if let Ok(key) = PublicKey::from_pem(&text) {
            prop_assert!(["RS256", "ES256", "ES384", "EdDSA"].iter().any(|a| key.allows(a)));
        }
    }

    #[test]
    fn pem_from_mutated_real_keys(
        text in real_pem(),
        changes in edits(),
        der_changes in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        in_der in any::<bool>(),
    ) {
        let mutated = if in_der {
            let parsed = ::pem::parse(&text).unwrap();
            let mut der = parsed.contents().to_vec();
            for (at, byte) in der_changes {
                let at = at % der.len();
                der[at] = byte;
            }
            pem(parsed.tag(), der)
        } else {
            apply(&text, &changes)
        };
        let original = PublicKey::from_pem(&text);
        if let Ok(key) = PublicKey::from_pem(&mutated) {
            prop_assert!(["RS256", "ES256", "ES384", "EdDSA"].iter().any(|a| key.allows(a)));
        }
        // The real key itself always gives the same answer.
        prop_assert_eq!(original.is_ok(), PublicKey::from_pem(&text).is_ok());
    }

    #[test]
    fn jwks_from_any_set(body in hostile_set(), which in 0usize..5) {
        let rt = runtime();
        let h = Harness::new(NOW);
        h.fetcher.serve_raw(JWKS_URL, body, None);
        let token = TestKey::p256().token(Some(["a", "b", "c", "d", "e"][which]), &claims(NOW));
        match rt.block_on(h.verifier.verify(&token, &jwks_method(JWKS_URL), &Policy::default())) {
            // A fresh key nobody served cannot verify.
            Ok(_) => prop_assert!(false, "a token of an unserved key verified"),
            Err(e) => prop_assert!(CODES.contains(&e.code()), "{e:?}"),
        }
    }

    /// Broken keys beside the good one are skipped; the good one still verifies.
    #[test]
    fn jwks_skips_broken_keys(junk in proptest::collection::vec((real_jwk(), json_edits()), 0..8)) {
        let rt = runtime();
        let h = Harness::new(NOW);
        let mut keys: Vec<Value> = junk
            .iter()
            .enumerate()
            .map(|(i, (k, e))| {
                let mut k = apply_json(k, e);
                if let Some(k) = k.as_object_mut() {
                    k.insert("kid".into(), json!(format!("junk{i}")));
                }
                k
            })
            .collect();
        keys.insert(keys.len() / 2, JWKS_KEY.jwk(KID));
        h.fetcher.serve(JWKS_URL, keys, None);
        let token = JWKS_KEY.token(Some(KID), &claims(NOW));
        let verified = rt.block_on(h.verifier.verify(&token, &jwks_method(JWKS_URL), &Policy::default()));
        prop_assert!(verified.is_ok(), "{:?}", verified.err());
    }

    #[test]
    fn access_tokens_round_trip(
        sub in "\\PC{0,64}",
        site_id in any::<i64>(),
        messenger_id in "\\PC{0,64}",
        preview in any::<bool>(),
        now in 0i64..4_000_000_000,
    ) {
        let tokens = access_tokens();
        let (token, claims) = tokens.sign(&sub, site_id, &messenger_id, preview, now);
        prop_assert_eq!(tokens.verify(&token, now), Ok(claims.clone()));
        prop_assert_eq!(tokens.verify(&token, claims.exp), Err(AccessError::Expired));
        prop_assert_eq!(claims.sub, sub);
        prop_assert_eq!(claims.messenger_id, messenger_id);
    }

    #[test]
    fn access_tokens_refuse_anything_else(
        text in prop_oneof![
            hostile_text(200),
            (part(), part(), part()).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        ],
        changes in edits(),
        now in 0i64..4_000_000_000,
    ) {
        let tokens = access_tokens();
        prop_assert_eq!(tokens.verify(&text, now), Err(AccessError::Invalid));
        let (token, _) = tokens.sign("contact", 10_000, "messenger", false, now);
        let mutated = apply(&token, &changes);
        prop_assume!(mutated != token);
        prop_assert_eq!(tokens.verify(&mutated, now), Err(AccessError::Invalid));
    }
}

/// One ring for every case (generating a key per case would measure the RNG, not the parser).
fn access_tokens() -> &'static AccessTokens {
    static TOKENS: LazyLock<AccessTokens> = LazyLock::new(|| {
        AccessTokens::new(
            "https://confidant.example.test".into(),
            3600,
            vec![AccessTokens::generate_key(0)],
        )
        .unwrap()
    });
    &TOKENS
}
