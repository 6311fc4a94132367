//! The floor program (bench/): what an authorize costs when it does nothing but the crypto it
//! cannot avoid — parse the JSON body, verify the Contact JWT, sign an access token, answer
//! JSON. Confidant's authorize is measured against it, algorithm by algorithm.
//!
//! `confidant-floor serve ALG PORT` serves `POST /authorize`;
//! `confidant-floor token ALG SUB` prints a Contact JWT signed with the fixture key of ALG;
//! `confidant-floor token-kid ALG SUB KID` the same with a `kid` header;
//! `confidant-floor pem ALG` prints the public key PEM (for Confidant's Security tab);
//! `confidant-floor raw ALG` prints raw verifications per second on one core.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use confidant_identity::AccessTokens;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

const SECRET: &[u8] = b"bench-shared-secret-0123456789abcdef0123";
const RSA_KEY: &str = include_str!("../../../crates/identity/tests/fixtures/rsa2048.key.pem");
const RSA_PUB: &str = include_str!("../../../crates/identity/tests/fixtures/rsa2048.pub.pem");
const P256_KEY: &str = include_str!("../../../crates/identity/tests/fixtures/p256.key.pem");
const P256_PUB: &str = include_str!("../../../crates/identity/tests/fixtures/p256.pub.pem");
const P384_KEY: &str = include_str!("../../../crates/identity/tests/fixtures/p384.key.pem");
const P384_PUB: &str = include_str!("../../../crates/identity/tests/fixtures/p384.pub.pem");
const ED_KEY: &str = include_str!("../../../crates/identity/tests/fixtures/ed25519.key.pem");
const ED_PUB: &str = include_str!("../../../crates/identity/tests/fixtures/ed25519.pub.pem");

fn alg(name: &str) -> Algorithm {
    match name {
        "HS256" => Algorithm::HS256,
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        other => fail(&format!("unknown algorithm {other}")),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("confidant-floor: {msg}");
    std::process::exit(2)
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| fail(&e.to_string()))
}

fn keys(a: Algorithm) -> (EncodingKey, DecodingKey, &'static str) {
    match a {
        Algorithm::HS256 => (
            EncodingKey::from_secret(SECRET),
            DecodingKey::from_secret(SECRET),
            "",
        ),
        Algorithm::RS256 | Algorithm::PS256 => (
            ok(EncodingKey::from_rsa_pem(RSA_KEY.as_bytes())),
            ok(DecodingKey::from_rsa_pem(RSA_PUB.as_bytes())),
            RSA_PUB,
        ),
        Algorithm::ES256 => (
            ok(EncodingKey::from_ec_pem(P256_KEY.as_bytes())),
            ok(DecodingKey::from_ec_pem(P256_PUB.as_bytes())),
            P256_PUB,
        ),
        Algorithm::ES384 => (
            ok(EncodingKey::from_ec_pem(P384_KEY.as_bytes())),
            ok(DecodingKey::from_ec_pem(P384_PUB.as_bytes())),
            P384_PUB,
        ),
        Algorithm::EdDSA => (
            ok(EncodingKey::from_ed_pem(ED_KEY.as_bytes())),
            ok(DecodingKey::from_ed_pem(ED_PUB.as_bytes())),
            ED_PUB,
        ),
        _ => fail("unsupported algorithm"),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn token(a: Algorithm, sub: &str) -> String {
    let (enc, _, _) = keys(a);
    ok(jsonwebtoken::encode(
        &Header::new(a),
        &json!({"sub": sub, "exp": now() + 3600, "iat": now()}),
        &enc,
    ))
}

struct Floor {
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
    access: AccessTokens,
}

/// What Confidant's `GET /livez` answers, with no layer around it.
async fn livez() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn authorize(State(f): State<Arc<Floor>>, Json(body): Json<Value>) -> Json<Value> {
    let jwt = body["contactJwt"].as_str().unwrap_or_default();
    let claims = jsonwebtoken::decode::<Value>(jwt, &f.key, &f.validation)
        .map(|d| d.claims)
        .unwrap_or(Value::Null);
    let sub = claims["sub"].as_str().unwrap_or("nobody");
    let (token, _) = f.access.sign(
        sub,
        10000,
        "00000000-0000-0000-0000-000000000001",
        false,
        now(),
    );
    let _ = f.alg;
    Json(json!({"accessToken": token, "tokenType": "Bearer", "expiresIn": 3600}))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| fail("usage: serve ALG PORT | token ALG SUB | pem ALG | raw ALG"))
    };
    match arg(1) {
        "token" => println!("{}", token(alg(arg(2)), arg(3))),
        // A token whose header names a key id (for the JWKS rotation run).
        "token-kid" => {
            let a = alg(arg(2));
            let mut h = Header::new(a);
            h.kid = Some(arg(4).to_owned());
            let claims = json!({"sub": arg(3), "exp": now() + 3600, "iat": now()});
            println!("{}", ok(jsonwebtoken::encode(&h, &claims, &keys(a).0)));
        }
        "pem" => print!("{}", keys(alg(arg(2))).2),
        "raw" => {
            let a = alg(arg(2));
            let t = token(a, "raw@bench.test");
            let (_, dec, _) = keys(a);
            let (message, sig) = t.rsplit_once('.').unwrap_or_else(|| fail("token"));
            let n = 20_000;
            let start = std::time::Instant::now();
            for _ in 0..n {
                if !ok(jsonwebtoken::crypto::verify(
                    sig,
                    message.as_bytes(),
                    &dec,
                    a,
                )) {
                    fail("verification failed");
                }
            }
            println!("{:.0}", f64::from(n) / start.elapsed().as_secs_f64());
        }
        "raw-sign" => {
            let access = ok(AccessTokens::new(
                "http://floor".into(),
                3600,
                vec![AccessTokens::generate_key(now())],
            ));
            let n = 20_000;
            let start = std::time::Instant::now();
            for _ in 0..n {
                let _ = access.sign("sub", 10000, "m", false, now());
            }
            println!("{:.0}", f64::from(n) / start.elapsed().as_secs_f64());
        }
        "serve" => {
            let a = alg(arg(2));
            let port: u16 = ok(arg(3).parse());
            let mut validation = Validation::new(a);
            validation.required_spec_claims.clear();
            let access = ok(AccessTokens::new(
                "http://floor".into(),
                3600,
                vec![AccessTokens::generate_key(now())],
            ));
            let floor = Arc::new(Floor {
                alg: a,
                key: keys(a).1,
                validation,
                access,
            });
            let rt = ok(tokio::runtime::Runtime::new());
            rt.block_on(async move {
                // `/livez`: the bare axum no-op route the edge tax is measured against.
                let app = Router::new()
                    .route("/authorize", post(authorize))
                    .route("/livez", get(livez))
                    .with_state(floor);
                let listener = ok(tokio::net::TcpListener::bind(("127.0.0.1", port)).await);
                ok(axum::serve(listener, app).await);
            });
        }
        other => fail(&format!("unknown command {other}")),
    }
}
