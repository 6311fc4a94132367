//! Helpers shared by the integration tests: a fake JWKS fetcher, keys, and token builders that
//! let a test write any header an attacker could.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use confidant_identity::{
    CompiledMethod, ContactVerifier, FetchedJwks, JwksCache, JwksFetcher, ManualClock, Policy,
    Verified, VerifyError,
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

/// 2027-01-15T08:00:00Z: the tests' "now".
pub const NOW: i64 = 1_800_000_000;
pub const SECRET: &str = "correct horse battery staple, 32+ bytes long";
pub const JWKS_URL: &str = "https://idp.example.test/.well-known/jwks.json";

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// `BASE64URL(header) '.' BASE64URL(claims)`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

/// A token with the given header and claims, signed by `key` with `alg` (whatever the
/// header says: that is the point of several tests).
pub fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = signing_input(header, claims);
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{signature}")
}

/// A token with the given raw signature bytes.
pub fn with_signature(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}", signing_input(header, claims), b64(signature))
}

pub fn hs(alg: Algorithm, secret: &[u8], header: &Value, claims: &Value) -> String {
    sign(header, claims, &EncodingKey::from_secret(secret), alg)
}

/// Good claims for `now`: identity `sub`, five minutes to live.
pub fn claims(now: i64) -> Value {
    json!({"sub": "mark@example.test", "iat": now, "exp": now + 300})
}

/// Merge `extra` into a JSON object.
pub fn merged(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    for (k, v) in extra.as_object().unwrap() {
        out.as_object_mut().unwrap().insert(k.clone(), v.clone());
    }
    out
}

pub fn policy() -> Policy {
    Policy {
        identity_key: "sub".into(),
        clock_skew: 60,
        max_lifetime: None,
        issuer: None,
        audience: None,
    }
}

pub fn shared_method() -> CompiledMethod {
    CompiledMethod::compile(&confidant_core::Validation::SharedToken {
        secret: SECRET.into(),
        encoding: confidant_core::Encoding::Text,
    })
    .unwrap()
}

pub fn pem_method(pem: &str) -> CompiledMethod {
    CompiledMethod::compile(&confidant_core::Validation::PublicKey {
        public_key: pem.into(),
    })
    .unwrap()
}

pub fn jwks_method(url: &str) -> CompiledMethod {
    CompiledMethod::compile(&confidant_core::Validation::Jwks {
        jwks_url: url.into(),
    })
    .unwrap()
}

/// A test signing key with its public JWK.
pub struct TestKey {
    pub encoding: EncodingKey,
    pub alg: Algorithm,
    pub jwk: Value,
}

impl TestKey {
    pub fn jwk_with(&self, extra: Value) -> Value {
        merged(&self.jwk, extra)
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        sign(header, claims, &self.encoding, self.alg)
    }
}

pub fn new_p256() -> TestKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    TestKey {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        alg: Algorithm::ES256,
        jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}),
    }
}

pub fn new_p384() -> TestKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    TestKey {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        alg: Algorithm::ES384,
        jwk: json!({"kty": "EC", "crv": "P-384", "x": b64(&point[1..49]), "y": b64(&point[49..])}),
    }
}

pub fn new_ed25519() -> TestKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    TestKey {
        encoding: EncodingKey::from_ed_der(pkcs8.as_ref()),
        alg: Algorithm::EdDSA,
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
    }
}

/// The committed 2048-bit RSA fixture (tests/fixtures/rsa2048.*.pem).
pub fn rsa_fixture() -> TestKey {
    let public = pem::parse(fixture("rsa2048.pub.pem")).unwrap();
    let key = aws_lc_rs::rsa::PublicKey::from_der(public.contents()).unwrap();
    let parts = RsaPublicKeyComponents::<Vec<u8>>::from(&key);
    TestKey {
        encoding: EncodingKey::from_rsa_pem(fixture("rsa2048.key.pem").as_bytes()).unwrap(),
        alg: Algorithm::RS256,
        jwk: json!({"kty": "RSA", "n": b64(&parts.n), "e": b64(&parts.e)}),
    }
}

pub fn pem_fixture_key(name: &str, alg: Algorithm) -> TestKey {
    let private = fixture(name);
    let encoding = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(private.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(private.as_bytes()),
        _ => EncodingKey::from_rsa_pem(private.as_bytes()),
    }
    .unwrap();
    TestKey {
        encoding,
        alg,
        jwk: Value::Null,
    }
}

/// A JWKS fetcher that serves what the test says, counts calls per URL and can be slowed.
#[derive(Default)]
pub struct FakeFetcher {
    replies: Mutex<HashMap<String, Result<FetchedJwks, String>>>,
    calls: Mutex<HashMap<String, usize>>,
    delay: Mutex<Option<Duration>>,
}

impl FakeFetcher {
    pub fn serve(&self, url: &str, keys: Vec<Value>, max_age: Option<u64>) {
        let body = json!({ "keys": keys }).to_string().into_bytes();
        self.serve_raw(url, body, max_age);
    }

    pub fn serve_raw(&self, url: &str, body: Vec<u8>, max_age: Option<u64>) {
        let reply = FetchedJwks {
            body,
            max_age: max_age.map(Duration::from_secs),
        };
        self.replies
            .lock()
            .unwrap()
            .insert(url.to_owned(), Ok(reply));
    }

    pub fn fail(&self, url: &str) {
        self.replies
            .lock()
            .unwrap()
            .insert(url.to_owned(), Err("connection refused".into()));
    }

    pub fn calls(&self, url: &str) -> usize {
        self.calls.lock().unwrap().get(url).copied().unwrap_or(0)
    }

    pub fn all_calls(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    pub fn slow_down(&self, delay: Duration) {
        *self.delay.lock().unwrap() = Some(delay);
    }
}

#[async_trait::async_trait]
impl JwksFetcher for FakeFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedJwks, String> {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(url.to_owned())
            .or_default() += 1;
        let delay = *self.delay.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        let reply = self.replies.lock().unwrap().get(url).cloned();
        reply.unwrap_or_else(|| Err(format!("nothing is served at {url}")))
    }
}

/// A verifier with a manual clock at `now` and a fake fetcher.
pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub fetcher: Arc<FakeFetcher>,
    pub verifier: Arc<ContactVerifier>,
}

impl Harness {
    pub fn new(now: i64) -> Self {
        let clock = Arc::new(ManualClock::new(now));
        let fetcher = Arc::new(FakeFetcher::default());
        let cache = Arc::new(JwksCache::new(fetcher.clone(), clock.clone()));
        let verifier = Arc::new(ContactVerifier::new(cache, clock.clone()));
        Self {
            clock,
            fetcher,
            verifier,
        }
    }

    pub async fn verify(
        &self,
        token: &str,
        method: &CompiledMethod,
        policy: &Policy,
    ) -> Result<Verified, VerifyError> {
        self.verifier.verify(token, method, policy).await
    }

    /// The error code a token gets, or "ok".
    pub async fn code(
        &self,
        token: &str,
        method: &CompiledMethod,
        policy: &Policy,
    ) -> &'static str {
        match self.verify(token, method, policy).await {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }
}

/// Minimal DER, to build PEM keys from the RFCs' published components.
pub fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

pub fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut content = bytes.to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    der(0x02, &content)
}

pub fn pem(tag: &str, der: Vec<u8>) -> String {
    pem::encode(&pem::Pem::new(tag, der))
}

/// PKCS#1 `RSAPublicKey` DER from n and e.
pub fn pkcs1_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    der(0x30, &[der_uint(n), der_uint(e)].concat())
}

/// SubjectPublicKeyInfo DER: algorithm identifier DER (already encoded) and the key bytes.
pub fn spki_der(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let bits = [&[0u8][..], key].concat();
    der(0x30, &[der(0x30, algorithm), der(0x03, &bits)].concat())
}

pub const OID_RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
pub const DER_NULL: &[u8] = &[0x05, 0x00];
pub const OID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
