//! The pure functions on the authorize path, one core: Contact JWT verification per algorithm
//! (the full check order, keys compiled once) beside the raw signature check of the crypto
//! library, and the signing of an access token. `cargo bench -p confidant-identity`.

use std::sync::Arc;

use async_trait::async_trait;
use confidant_core::Security;
use confidant_core::security::SecurityInput;
use confidant_identity::{
    AccessTokens, CompiledMethod, ContactVerifier, FetchedJwks, JwksCache, JwksFetcher, Policy,
    SystemClock,
};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::json;

struct NoFetch;
#[async_trait]
impl JwksFetcher for NoFetch {
    async fn fetch(&self, _: &str) -> Result<FetchedJwks, String> {
        Err("no network in benches".into())
    }
}

const SECRET: &str = "bench-shared-secret-0123456789abcdef0123";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn case(alg: Algorithm) -> (String, serde_json::Value, DecodingKey) {
    let (enc, dec, validation) = match alg {
        Algorithm::HS256 => (
            EncodingKey::from_secret(SECRET.as_bytes()),
            DecodingKey::from_secret(SECRET.as_bytes()),
            json!({"method": "sharedToken", "sharedToken": SECRET}),
        ),
        Algorithm::RS256 | Algorithm::PS256 => (
            EncodingKey::from_rsa_pem(fixture("rsa2048.key.pem").as_bytes()).expect("key"),
            DecodingKey::from_rsa_pem(fixture("rsa2048.pub.pem").as_bytes()).expect("key"),
            json!({"method": "publicKey", "publicKey": fixture("rsa2048.pub.pem")}),
        ),
        Algorithm::ES256 => (
            EncodingKey::from_ec_pem(fixture("p256.key.pem").as_bytes()).expect("key"),
            DecodingKey::from_ec_pem(fixture("p256.pub.pem").as_bytes()).expect("key"),
            json!({"method": "publicKey", "publicKey": fixture("p256.pub.pem")}),
        ),
        Algorithm::ES384 => (
            EncodingKey::from_ec_pem(fixture("p384.key.pem").as_bytes()).expect("key"),
            DecodingKey::from_ec_pem(fixture("p384.pub.pem").as_bytes()).expect("key"),
            json!({"method": "publicKey", "publicKey": fixture("p384.pub.pem")}),
        ),
        _ => (
            EncodingKey::from_ed_pem(fixture("ed25519.key.pem").as_bytes()).expect("key"),
            DecodingKey::from_ed_pem(fixture("ed25519.pub.pem").as_bytes()).expect("key"),
            json!({"method": "publicKey", "publicKey": fixture("ed25519.pub.pem")}),
        ),
    };
    let token = jsonwebtoken::encode(
        &Header::new(alg),
        &json!({"sub": "mark@bench.test", "exp": now() + 3600}),
        &enc,
    )
    .expect("sign");
    (token, validation, dec)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let clock = Arc::new(SystemClock);
    let verifier = ContactVerifier::new(
        Arc::new(JwksCache::new(Arc::new(NoFetch), clock.clone())),
        clock,
    );
    for (name, alg) in [
        ("HS256", Algorithm::HS256),
        ("RS256", Algorithm::RS256),
        ("PS256", Algorithm::PS256),
        ("ES256", Algorithm::ES256),
        ("ES384", Algorithm::ES384),
        ("EdDSA", Algorithm::EdDSA),
    ] {
        let (token, validation, dec) = case(alg);
        let security = Security::parse(
            &json!({"validation": validation}),
            &SecurityInput {
                previous: None,
                allow_private_urls: false,
            },
            String::new,
        )
        .expect("security")
        .security;
        let method = CompiledMethod::compile(&security.validation).expect("compile");
        let policy = Policy::from_security(&security);
        let (message, sig) = token.rsplit_once('.').expect("token");
        c.bench_function(&format!("raw_verify/{name}"), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(sig, message.as_bytes(), &dec, alg).expect("verify")
            })
        });
        c.bench_function(&format!("contact_verify/{name}"), |b| {
            b.iter(|| {
                rt.block_on(verifier.verify(&token, &method, &policy))
                    .expect("verify")
            })
        });
    }
    let access = AccessTokens::new(
        "http://bench".into(),
        3600,
        vec![AccessTokens::generate_key(now())],
    )
    .expect("ring");
    c.bench_function("access_token/sign", |b| {
        b.iter(|| access.sign("sub", 10000, "m", false, now()))
    });
    let (t, _) = access.sign("sub", 10000, "m", false, now());
    c.bench_function("access_token/verify", |b| {
        b.iter(|| access.verify(&t, now()).expect("verify"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
