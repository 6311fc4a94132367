//! Signing helpers for the authorize and JWKS tests: the identity crate's PEM fixtures, fresh
//! Ed25519 keys, their JWKs, and a JWKS server on loopback whose answer the test controls.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The text of a fixture of `crates/identity/tests/fixtures`.
pub fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../identity/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The private key of a fixture pair (`rsa2048`, `p256`, `p384`, `ed25519`) for `alg`.
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

/// Sign `claims` with `key` and `alg`, with an optional `kid`.
pub fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&h, claims, key).expect("sign")
}

/// Sign with a raw header (any members an attacker likes) and an Ed25519 key pair.
pub fn sign_ed_raw(header: &Value, claims: &Value, key: &EdKey) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.pair.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// A fresh Ed25519 key pair.
pub struct EdKey {
    pub pair: Ed25519KeyPair,
    pub encoding: EncodingKey,
}

impl EdKey {
    pub fn generate() -> EdKey {
        let doc = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .expect("generate");
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).expect("parse");
        EdKey {
            pair,
            encoding: EncodingKey::from_ed_der(doc.as_ref()),
        }
    }

    /// The public JWK, with `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
               "x": URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())})
    }

    /// The public key as an SPKI PEM (the fixed Ed25519 SPKI prefix and the 32 key bytes).
    pub fn pub_pem(&self) -> String {
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(self.pair.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
    }

    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut h = json!({"alg": "EdDSA", "typ": "JWT"});
        if let Some(k) = kid {
            h["kid"] = json!(k);
        }
        sign_ed_raw(&h, claims, self)
    }
}

/// What a `JwksServer` answers, changeable while it runs.
pub struct JwksState {
    pub status: Mutex<StatusCode>,
    pub body: Mutex<String>,
    pub cache_control: Mutex<Option<String>>,
    pub hits: AtomicUsize,
}

/// A JWKS endpoint on 127.0.0.1 that counts its hits.
pub struct JwksServer {
    pub url: String,
    pub state: Arc<JwksState>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(keys: Vec<Value>) -> JwksServer {
        let state = Arc::new(JwksState {
            status: Mutex::new(StatusCode::OK),
            body: Mutex::new(json!({"keys": keys}).to_string()),
            cache_control: Mutex::new(None),
            hits: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .route("/jwks.json", axum::routing::get(serve))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        JwksServer { url, state, task }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.state.body.lock().expect("lock") = json!({"keys": keys}).to_string();
    }

    pub fn set_status(&self, status: StatusCode) {
        *self.state.status.lock().expect("lock") = status;
    }

    pub fn set_cache_control(&self, v: Option<&str>) {
        *self.state.cache_control.lock().expect("lock") = v.map(str::to_owned);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(State(s): State<Arc<JwksState>>) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let status = *s.status.lock().expect("lock");
    let body = s.body.lock().expect("lock").clone();
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    let cache_control = s.cache_control.lock().expect("lock").clone();
    if let Some(v) = cache_control.and_then(|cc| HeaderValue::from_str(&cc).ok()) {
        res.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    res
}

/// An HS256 (or HS384/HS512) token over a raw header, for headers jsonwebtoken cannot write.
pub fn hmac_raw(
    alg: &'static aws_lc_rs::hmac::Algorithm,
    header: &Value,
    claims: &Value,
    secret: &[u8],
) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(*alg, secret), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Claims for `identity` valid for ten minutes.
pub fn claims(identity: &str) -> Value {
    let now = super::common::now();
    json!({"sub": identity, "iat": now, "exp": now + 600})
}
