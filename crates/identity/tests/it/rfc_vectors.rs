//! Published test vectors, verified with their published keys: RFC 7515 A.2 (RS256) and A.3
//! (ES256), RFC 8037 A.4 (Ed25519).

use crate::common::*;
use aws_lc_rs::signature::Ed25519KeyPair;
use confidant_identity::{Policy, VerifyError};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Value, json};

// RFC 7515 A.2: RSASSA-PKCS1-v1_5 with SHA-256.
const A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
const A2_E: &str = "AQAB";
const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

// RFC 7515 A.3: ECDSA P-256 with SHA-256 (same payload as A.2).
const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

/// Both A.2 and A.3 carry `"exp": 1300819380` (2011-03-22T18:43:00Z).
const RFC7515_EXP: i64 = 1_300_819_380;
const BEFORE_EXP: i64 = RFC7515_EXP - 3600;

// RFC 8037 A.1 key and A.4 signature. The payload is the text "Example of Ed25519 signing".
const ED_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const ED_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/// The RFC 7515 examples name no customer claim beyond `iss`, so `iss` is the identity.
fn joe_policy() -> Policy {
    Policy {
        identity_key: "iss".into(),
        clock_skew: 0,
        ..policy()
    }
}

fn a2_spki_pem() -> String {
    let pkcs1 = pkcs1_der(&b64_decode(A2_N), &b64_decode(A2_E));
    pem(
        "PUBLIC KEY",
        spki_der(&[OID_RSA_ENCRYPTION, DER_NULL].concat(), &pkcs1),
    )
}

fn a3_spki_pem() -> String {
    let point = [&[4u8][..], &b64_decode(A3_X), &b64_decode(A3_Y)].concat();
    pem(
        "PUBLIC KEY",
        spki_der(&[OID_EC_PUBLIC_KEY, OID_P256].concat(), &point),
    )
}

fn ed_spki_pem() -> String {
    pem("PUBLIC KEY", spki_der(OID_ED25519, &b64_decode(ED_X)))
}

fn assert_joe(verified: confidant_identity::Verified) {
    assert_eq!(verified.identity, "joe");
    assert_eq!(verified.claims["exp"], RFC7515_EXP);
    assert_eq!(verified.claims["http://example.com/is_root"], true);
}

#[tokio::test]
async fn rfc7515_a2_rs256_with_its_published_key() {
    let h = Harness::new(BEFORE_EXP);
    // As a JWKS (kid-less token, the only key fits) …
    h.fetcher.serve(
        JWKS_URL,
        vec![json!({"kty": "RSA", "n": A2_N, "e": A2_E})],
        None,
    );
    assert_joe(
        h.verifier
            .verify(A2_TOKEN, &jwks_method(JWKS_URL), &joe_policy())
            .await
            .unwrap(),
    );
    // … as an SPKI PEM, and as a PKCS#1 "RSA PUBLIC KEY" PEM.
    assert_joe(
        h.verifier
            .verify(A2_TOKEN, &pem_method(&a2_spki_pem()), &joe_policy())
            .await
            .unwrap(),
    );
    let pkcs1 = pem(
        "RSA PUBLIC KEY",
        pkcs1_der(&b64_decode(A2_N), &b64_decode(A2_E)),
    );
    assert_joe(
        h.verifier
            .verify(A2_TOKEN, &pem_method(&pkcs1), &joe_policy())
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn rfc7515_a3_es256_with_its_published_key() {
    let h = Harness::new(BEFORE_EXP);
    h.fetcher.serve(
        JWKS_URL,
        vec![json!({"kty": "EC", "crv": "P-256", "x": A3_X, "y": A3_Y})],
        None,
    );
    assert_joe(
        h.verifier
            .verify(A3_TOKEN, &jwks_method(JWKS_URL), &joe_policy())
            .await
            .unwrap(),
    );
    assert_joe(
        h.verifier
            .verify(A3_TOKEN, &pem_method(&a3_spki_pem()), &joe_policy())
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn rfc7515_examples_expire_at_their_exp() {
    let h = Harness::new(RFC7515_EXP);
    let expired = VerifyError::Expired { exp: RFC7515_EXP };
    assert_eq!(
        h.verifier
            .verify(A2_TOKEN, &pem_method(&a2_spki_pem()), &joe_policy())
            .await
            .unwrap_err(),
        expired
    );
    assert_eq!(
        h.verifier
            .verify(A3_TOKEN, &pem_method(&a3_spki_pem()), &joe_policy())
            .await
            .unwrap_err(),
        expired
    );
    assert_eq!(
        expired.to_string(),
        "the Contact JWT expired at 2011-03-22T18:43:00Z"
    );
}

#[tokio::test]
async fn rfc7515_examples_refuse_one_changed_bit() {
    let h = Harness::new(BEFORE_EXP);
    // Swap the payload's "joe" for "jof": the signature no longer covers it.
    let forged_payload =
        b64(b"{\"iss\":\"jof\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");
    for (token, method) in [
        (A2_TOKEN, pem_method(&a2_spki_pem())),
        (A3_TOKEN, pem_method(&a3_spki_pem())),
    ] {
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(
            h.code(&forged, &method, &joe_policy()).await,
            "signature_invalid"
        );
    }
}

#[tokio::test]
async fn rfc8037_a4_ed25519() {
    let (input, signature) = ED_TOKEN.rsplit_once('.').unwrap();

    // The crypto layer: the published signature verifies under the published key, and not
    // over anything else.
    let key = DecodingKey::from_ed_components(ED_X).unwrap();
    assert!(
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), &key, Algorithm::EdDSA).unwrap()
    );
    let other_input = format!("{input}x");
    assert!(
        !jsonwebtoken::crypto::verify(signature, other_input.as_bytes(), &key, Algorithm::EdDSA)
            .unwrap()
    );

    // Ed25519 is deterministic: the RFC's private key reproduces the RFC's signature, so the
    // key pair below is exactly the RFC's.
    let pair =
        Ed25519KeyPair::from_seed_and_public_key(&b64_decode(ED_D), &b64_decode(ED_X)).unwrap();
    assert_eq!(b64(pair.sign(input.as_bytes())), signature);

    // The full verifier: the payload is text, not a JSON claims object, so the token is
    // malformed even though its signature is good (shape is checked first).
    let h = Harness::new(NOW);
    let pem_key = pem_method(&ed_spki_pem());
    h.fetcher.serve(
        JWKS_URL,
        vec![json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X})],
        None,
    );
    for method in [&pem_key, &jwks_method(JWKS_URL)] {
        assert!(matches!(
            h.verifier.verify(ED_TOKEN, method, &policy()).await,
            Err(VerifyError::Malformed(_))
        ));
    }

    // The same RFC key signing JSON claims: without exp the token is refused for that (so the
    // signature passed), and with exp it verifies, under both "EdDSA" and RFC 9864's "Ed25519".
    let pkcs8_sign = |header: &Value, claims: &Value| {
        let input = signing_input(header, claims);
        format!("{input}.{}", b64(pair.sign(input.as_bytes())))
    };
    let no_exp = pkcs8_sign(&json!({"alg": "EdDSA"}), &json!({"sub": "ed"}));
    assert_eq!(
        h.verifier
            .verify(&no_exp, &pem_key, &policy())
            .await
            .unwrap_err(),
        VerifyError::ExpiryMissing
    );
    for alg in ["EdDSA", "Ed25519"] {
        let token = pkcs8_sign(&json!({"alg": alg}), &claims(NOW));
        assert_eq!(
            h.verifier
                .verify(&token, &pem_key, &policy())
                .await
                .unwrap()
                .identity,
            "mark@example.test"
        );
        assert_eq!(
            h.code(&token, &jwks_method(JWKS_URL), &policy()).await,
            "ok"
        );
    }
    // A JWK whose own alg is "EdDSA" does not verify an "Ed25519" token (a key's alg narrows
    // it to exactly that name).
    let h = Harness::new(NOW);
    h.fetcher.serve(
        JWKS_URL,
        vec![json!({"kty": "OKP", "crv": "Ed25519", "x": ED_X, "alg": "EdDSA"})],
        None,
    );
    let token = pkcs8_sign(&json!({"alg": "Ed25519"}), &claims(NOW));
    assert_ne!(
        h.code(&token, &jwks_method(JWKS_URL), &policy()).await,
        "ok"
    );
}
