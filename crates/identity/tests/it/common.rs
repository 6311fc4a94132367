//! Helpers of the identity tests: a fake JWKS fetcher and a manual clock around the verifier,
//! policies and methods, and DER builders for the RFC keys. Keys and token builders (any header
//! an attacker could write) come from the kit's JWT signer, re-exported here.

#![expect(clippy::unwrap_used, reason = "a test fails loudly")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confidant_identity::{
    CompiledMethod, ContactVerifier, FetchedJwks, JwksCache, JwksFetcher, ManualClock, Policy,
};
pub use confidant_testkit::jwt::{
    RSA_ALGS, TestKey, b64, b64_decode, fixture, hs, merged, sign_raw, signing_input,
    with_signature,
};
use serde_json::{Value, json};

/// 2027-01-15T08:00:00Z: the tests' "now".
pub const NOW: i64 = 1_800_000_000;
pub const SECRET: &str = "correct horse battery staple, 32+ bytes long";
pub const JWKS_URL: &str = "https://idp.example.test/.well-known/jwks.json";

/// Good claims for `now`: identity `sub`, five minutes to live.
pub fn claims(now: i64) -> Value {
    json!({"sub": "mark@example.test", "iat": now, "exp": now + 300})
}

pub fn policy() -> Policy {
    Policy::default()
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
    pub cache: Arc<JwksCache>,
    pub verifier: Arc<ContactVerifier>,
}

impl Harness {
    pub fn new(now: i64) -> Self {
        let clock = Arc::new(ManualClock::new(now));
        let fetcher = Arc::new(FakeFetcher::default());
        let cache = Arc::new(JwksCache::new(fetcher.clone(), clock.clone()));
        let verifier = Arc::new(ContactVerifier::new(cache.clone(), clock.clone()));
        Self {
            clock,
            fetcher,
            cache,
            verifier,
        }
    }

    /// The error code a token gets, or "ok".
    pub async fn code(
        &self,
        token: &str,
        method: &CompiledMethod,
        policy: &Policy,
    ) -> &'static str {
        match self.verifier.verify(token, method, policy).await {
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
