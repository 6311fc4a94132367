//! A JWKS endpoint on loopback whose answer the test controls and whose hits it counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

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
