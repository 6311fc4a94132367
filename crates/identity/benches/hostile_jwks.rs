//! Finding 3 of the security review: what one authorize costs when the messenger's JWKS is
//! hostile (1,821 P-256 keys that share one `kid`) beside a normal one-key set. The token is
//! signed by a key the set lacks, so every key the verifier is willing to try fails: the worst
//! case an anonymous caller can force. `cargo bench -p confidant-identity --bench hostile_jwks`
//! (add `--profile dev` for a quick figure: the crypto dependencies are optimised there too).

use std::sync::Arc;

use async_trait::async_trait;
use confidant_identity::{
    CompiledMethod, ContactVerifier, FetchedJwks, JwksCache, JwksFetcher, Policy, SystemClock,
};
use confidant_testkit::jwt::TestKey;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

const URL: &str = "https://idp.example.test/jwks.json";

/// Serves one set from memory, cached for a day.
struct Serve(Vec<u8>);

#[async_trait]
impl JwksFetcher for Serve {
    async fn fetch(&self, _: &str) -> Result<FetchedJwks, String> {
        Ok(FetchedJwks {
            body: self.0.clone(),
            max_age: Some(std::time::Duration::from_secs(86_400)),
        })
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn set(keys: usize) -> Vec<u8> {
    let keys: Vec<Value> = (0..keys).map(|_| TestKey::p256().jwk("k")).collect();
    json!({ "keys": keys }).to_string().into_bytes()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let claims = json!({"sub": "mark@bench.test", "exp": now() + 3600});
    let outsider = TestKey::p256().token(Some("k"), &claims);
    let method = CompiledMethod::Jwks { url: URL.into() };
    let policy = Policy::default();
    for (name, keys) in [("normal_1_key", 1), ("hostile_1821_keys", 1821)] {
        let clock = Arc::new(SystemClock);
        let verifier = ContactVerifier::new(
            Arc::new(JwksCache::new(Arc::new(Serve(set(keys))), clock.clone())),
            clock,
        );
        c.bench_function(&format!("jwks_authorize/{name}"), |b| {
            b.iter(|| {
                let outcome = rt.block_on(verifier.verify(&outsider, &method, &policy));
                assert!(outcome.is_err());
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
