//! Rollover (CONTRACT §5): the previous validation verifies what the current one refuses for
//! its algorithm, key or signature, only until its end, with the same claim checks; from the
//! attacker's side.

use crate::common::*;
use confidant_identity::{CompiledMethod, PreviousMethod, Signer};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

const UNTIL: i64 = NOW + 60;

fn previous(method: CompiledMethod) -> PreviousMethod {
    PreviousMethod {
        method,
        until: UNTIL,
    }
}

fn old_token(claims: &Value) -> String {
    hs(
        Algorithm::HS256,
        SECRET.as_bytes(),
        &json!({"alg": "HS256", "typ": "JWT"}),
        claims,
    )
}

/// The code `token` gets with `current` and `prev`, and whose key verified it.
async fn outcome(
    h: &Harness,
    token: &str,
    current: &CompiledMethod,
    prev: Option<&PreviousMethod>,
) -> (&'static str, Option<Signer>) {
    let checked = h
        .verifier
        .verify_rollover(token, current, prev, &policy())
        .await;
    let code = match &checked.result {
        Ok(_) => "ok",
        Err(f) => f.error.code(),
    };
    (code, checked.signer)
}

#[tokio::test]
async fn a_shared_token_keeps_verifying_after_a_switch_to_a_public_key_until_its_end() {
    let h = Harness::new(NOW);
    let key = TestKey::ed25519();
    let current = pem_method(&key.pub_pem());
    let prev = previous(shared_method());
    let old = old_token(&claims(NOW));
    let new = key.token(None, &claims(NOW));

    assert_eq!(
        outcome(&h, &old, &current, Some(&prev)).await,
        ("ok", Some(Signer::Previous))
    );
    assert_eq!(
        outcome(&h, &new, &current, Some(&prev)).await,
        ("ok", Some(Signer::Current))
    );
    // Without a rollover the old token is refused for its algorithm, as before.
    assert_eq!(
        outcome(&h, &old, &current, None).await,
        ("algorithm_not_allowed", None)
    );
    // One second before the end it still verifies; at the end it never does again, with the
    // current method's refusal, as any token of a wrong key.
    h.clock.set(UNTIL - 1);
    let old = old_token(&claims(UNTIL - 1));
    assert_eq!(outcome(&h, &old, &current, Some(&prev)).await.0, "ok");
    h.clock.set(UNTIL);
    let old = old_token(&claims(UNTIL));
    assert_eq!(
        outcome(&h, &old, &current, Some(&prev)).await,
        ("algorithm_not_allowed", None)
    );
}

#[tokio::test]
async fn the_claims_of_a_token_of_the_previous_key_are_checked_as_strictly() {
    let h = Harness::new(NOW);
    let current = pem_method(&TestKey::ed25519().pub_pem());
    let prev = previous(shared_method());
    let expired = old_token(&json!({"sub": "a", "exp": NOW - 3600}));
    assert_eq!(
        outcome(&h, &expired, &current, Some(&prev)).await,
        ("token_expired", Some(Signer::Previous))
    );
    let anonymous = old_token(&json!({"exp": NOW + 60}));
    assert_eq!(
        outcome(&h, &anonymous, &current, Some(&prev)).await.0,
        "identity_missing"
    );
    // A malformed token is malformed whichever key would have signed it.
    let crit = hs(
        Algorithm::HS256,
        SECRET.as_bytes(),
        &json!({"alg": "HS256", "crit": ["exp"]}),
        &claims(NOW),
    );
    assert_eq!(
        outcome(&h, &crit, &current, Some(&prev)).await,
        ("token_malformed", None)
    );
    let none = format!("{}.", signing_input(&json!({"alg": "none"}), &claims(NOW)));
    assert_eq!(
        outcome(&h, &none, &current, Some(&prev)).await.0,
        "algorithm_not_allowed"
    );
}

#[tokio::test]
async fn an_hmac_token_keyed_with_the_new_public_keys_pem_is_never_accepted() {
    let h = Harness::new(NOW);
    let rsa = fixture("rsa2048.pub.pem");
    let current = pem_method(&rsa);
    let prev = previous(shared_method());
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let forged = hs(
            alg,
            rsa.as_bytes(),
            &json!({"alg": format!("{alg:?}")}),
            &claims(NOW),
        );
        assert_eq!(
            outcome(&h, &forged, &current, Some(&prev)).await,
            ("algorithm_not_allowed", None),
            "{alg:?}"
        );
    }
    // Nor the other way round: the old PEM as the new shared token's stand-in.
    let h = Harness::new(NOW);
    let current = shared_method();
    let prev = previous(pem_method(&rsa));
    let forged = hs(
        Algorithm::HS256,
        rsa.as_bytes(),
        &json!({"alg": "HS256"}),
        &claims(NOW),
    );
    assert_eq!(
        outcome(&h, &forged, &current, Some(&prev)).await,
        ("signature_invalid", None)
    );
}

#[tokio::test]
async fn a_public_key_keeps_verifying_after_a_switch_to_a_jwks() {
    let h = Harness::new(NOW);
    let old_key = TestKey::p256();
    let new_key = TestKey::p256();
    h.fetcher
        .serve(JWKS_URL, vec![new_key.jwk("new")], Some(300));
    let old_pem = {
        // The P-256 public key as SPKI PEM, from its JWK.
        let x = b64_decode(old_key.jwk["x"].as_str().unwrap());
        let y = b64_decode(old_key.jwk["y"].as_str().unwrap());
        let alg = [
            der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
            der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
        ]
        .concat();
        pem(
            "PUBLIC KEY",
            spki_der(&alg, &[&[0x04][..], &x, &y].concat()),
        )
    };
    let current = jwks_method(JWKS_URL);
    let prev = previous(pem_method(&old_pem));
    // Without a kid, with a kid the set does not have, and with the new key's kid.
    for kid in [None, Some("old"), Some("new")] {
        let token = old_key.token(kid, &claims(NOW));
        assert_eq!(
            outcome(&h, &token, &current, Some(&prev)).await,
            ("ok", Some(Signer::Previous)),
            "{kid:?}"
        );
    }
    assert_eq!(
        outcome(
            &h,
            &new_key.token(Some("new"), &claims(NOW)),
            &current,
            Some(&prev)
        )
        .await,
        ("ok", Some(Signer::Current))
    );
    // While the new JWKS cannot be fetched, the old key still verifies its tokens; a token
    // that neither verifies keeps the outage's answer.
    let h = Harness::new(NOW);
    h.fetcher.fail(JWKS_URL);
    assert_eq!(
        outcome(
            &h,
            &old_key.token(None, &claims(NOW)),
            &current,
            Some(&prev)
        )
        .await,
        ("ok", Some(Signer::Previous))
    );
    assert_eq!(
        outcome(
            &h,
            &new_key.token(None, &claims(NOW)),
            &current,
            Some(&prev)
        )
        .await,
        ("jwks_unavailable", None)
    );
    h.clock.set(UNTIL);
    assert_eq!(
        outcome(
            &h,
            &old_key.token(None, &claims(UNTIL)),
            &current,
            Some(&prev)
        )
        .await,
        ("jwks_unavailable", None)
    );
}

#[tokio::test]
async fn a_wrong_signature_is_refused_by_both() {
    let h = Harness::new(NOW);
    let current = pem_method(&TestKey::ed25519().pub_pem());
    let prev = previous(shared_method());
    let other = hs(
        Algorithm::HS256,
        b"another secret of at least 32 bytes, not the old one",
        &json!({"alg": "HS256"}),
        &claims(NOW),
    );
    assert_eq!(
        outcome(&h, &other, &current, Some(&prev)).await,
        ("algorithm_not_allowed", None)
    );
    let stranger = TestKey::ed25519().token(None, &claims(NOW));
    assert_eq!(
        outcome(&h, &stranger, &current, Some(&prev)).await,
        ("signature_invalid", None)
    );
}
