//! The one JWT signer of the test suites: HS*, RS*, PS*, ES* and EdDSA tokens over any header
//! an attacker could write, fresh keys with their public JWKs, and the committed PEM fixtures
//! (`crates/identity/tests/fixtures`). Needs no server.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair as _, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The directory of the PEM fixtures.
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../identity/tests/fixtures");

/// The text of a fixture, e.g. `fixture("p256.pub.pem")`.
pub fn fixture(name: &str) -> String {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The private key of a fixture pair (`rsa2048`, `p256`, `p384`, `ed25519`).
pub fn private_key(name: &str) -> EncodingKey {
    let pem = fixture(&format!("{name}.key.pem"));
    match name {
        "rsa2048" => EncodingKey::from_rsa_pem(pem.as_bytes()),
        "p256" | "p384" => EncodingKey::from_ec_pem(pem.as_bytes()),
        "ed25519" => EncodingKey::from_ed_pem(pem.as_bytes()),
        other => panic!("no private fixture {other}"),
    }
    .expect("fixture key")
}

/// The RSA algorithms, PKCS#1 v1.5 and PSS.
pub const RSA_ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Claims for `identity`, issued now, valid for ten minutes.
pub fn claims(identity: &str) -> Value {
    let now = now();
    json!({"sub": identity, "iat": now, "exp": now + 600})
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_else(|e| panic!("base64url {text:?}: {e}"))
}

/// `BASE64URL(header) '.' BASE64URL(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

/// A token with the given raw header and claims, signed by `key` with `alg` (whatever the
/// header says: that is the point of many attacks).
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = signing_input(header, claims);
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("sign");
    format!("{input}.{signature}")
}

/// A token with the given raw signature bytes (none, truncated, garbage).
pub fn with_signature(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}", signing_input(header, claims), b64(signature))
}

/// A token over raw header JSON, HMAC-signed with `secret` by `alg` (HS256/384/512).
pub fn hs(alg: Algorithm, secret: &[u8], header: &Value, claims: &Value) -> String {
    sign_raw(header, claims, &EncodingKey::from_secret(secret), alg)
}

/// Sign `claims` with `key` and `alg` under jsonwebtoken's header (`typ: JWT`), with an
/// optional `kid`.
pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).expect("sign")
}

/// An HS256 token of `secret` (a messenger's shared token).
pub fn hs256(secret: &str, claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(secret.as_bytes()),
        claims,
    )
}

/// Merge the members of `extra` into a copy of the JSON object `base`.
pub fn merged(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Some(out), Some(extra)) = (out.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// A signing key with its algorithm and public JWK.
pub struct TestKey {
    pub encoding: EncodingKey,
    pub alg: Algorithm,
    /// The public JWK without `kid`/`use` (`Null` for a fixture loaded by name only).
    pub jwk: Value,
}

impl TestKey {
    /// A fresh P-256 key (ES256).
    pub fn p256() -> TestKey {
        Self::ecdsa(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            Algorithm::ES256,
            "P-256",
            32,
        )
    }

    /// A fresh P-384 key (ES384).
    pub fn p384() -> TestKey {
        Self::ecdsa(
            &ECDSA_P384_SHA384_FIXED_SIGNING,
            Algorithm::ES384,
            "P-384",
            48,
        )
    }

    fn ecdsa(
        signing: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
        alg: Algorithm,
        crv: &str,
        size: usize,
    ) -> TestKey {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new()).expect("generate");
        let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).expect("parse");
        let point = pair.public_key().as_ref();
        TestKey {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            alg,
            jwk: json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=size]), "y": b64(&point[size + 1..])}),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519() -> TestKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse");
        TestKey {
            encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
            alg: Algorithm::EdDSA,
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// The committed 2048-bit RSA fixture (`rsa2048.*.pem`), RS256, with its JWK.
    pub fn rsa_fixture() -> TestKey {
        let public = pem::parse(fixture("rsa2048.pub.pem")).expect("PEM");
        let key = aws_lc_rs::rsa::PublicKey::from_der(public.contents()).expect("RSA key");
        let parts = RsaPublicKeyComponents::<Vec<u8>>::from(&key);
        TestKey {
            encoding: private_key("rsa2048"),
            alg: Algorithm::RS256,
            jwk: json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)}),
        }
    }

    /// A private PEM fixture by file name, for `alg` (no JWK).
    pub fn pem_fixture(name: &str, alg: Algorithm) -> TestKey {
        let private = fixture(name);
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(private.as_bytes()),
            _ => EncodingKey::from_rsa_pem(private.as_bytes()),
        }
        .expect("fixture key");
        TestKey {
            encoding,
            alg,
            jwk: Value::Null,
        }
    }

    /// The public JWK with more members (`kid`, `use`, `alg`…).
    pub fn jwk_with(&self, extra: Value) -> Value {
        merged(&self.jwk, extra)
    }

    /// The public JWK as a JWKS publishes it: with `kid` and `"use": "sig"`.
    pub fn jwk(&self, kid: &str) -> Value {
        self.jwk_with(json!({"kid": kid, "use": "sig"}))
    }

    /// Sign over a raw header (whatever it says) with this key's algorithm.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        sign_raw(header, claims, &self.encoding, self.alg)
    }

    /// A well-formed token: `{"alg", "typ": "JWT"}` and an optional `kid`.
    pub fn token(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": format!("{:?}", self.alg), "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        self.sign(&header, claims)
    }

    /// The public key as an SPKI PEM (Ed25519 keys: the fixed SPKI prefix and the 32 bytes).
    pub fn pub_pem(&self) -> String {
        assert_eq!(self.jwk["crv"], "Ed25519", "pub_pem is for Ed25519 keys");
        let x = b64_decode(self.jwk["x"].as_str().expect("x"));
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(&x);
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der)
        )
    }
}
