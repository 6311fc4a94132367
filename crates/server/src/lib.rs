//! The Confidant server as a library, so integration tests start the real thing in-process.
//!
//! Layers (docs/ARCHITECTURE.md): `http` (the edge: extractors, handlers, WebSockets, router)
//! → `service` (the use cases) → the store, the hub, identity and core. `api` holds the
//! contract's JSON shapes, used by the edge and by the services that publish live events.
//! `app` builds the services; `demo` is merged only by `confidant demo`.

pub mod api;
pub mod app;
pub mod blobs;
pub mod config;
pub mod demo;
pub mod error;
pub mod http;
pub mod jobs;
pub mod jwks_http;
pub mod limits;
pub mod notices;
pub mod outbound;
pub mod service;
pub mod socket_caps;
pub mod tokens;
pub mod totp;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

use crate::app::App;
use crate::config::Config;

/// The process-wide metrics recorder (installed once, shared by every app in the process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                // A count, not a time: how many sends one write carried (at most 256).
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("confidant_send_batch_size".to_owned()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                    )
                })
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// A running server: its address, its app, and the switch that stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stop gracefully: sockets are told the server is going away, requests drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let r = self.task.await.context("server task")?;
        self.app.jobs.stopped().await;
        self.app.store.close().await;
        r
    }
}

/// Listen on `config.listen` (port 0 picks a free port) at once, build the app, and serve it.
/// Until the store is open and migrated (a restart after a crash may replay the WAL, or
/// PostgreSQL may not answer yet) the port answers `503 unavailable` with `Retry-After`, and
/// `/healthz` says "starting" (§4), instead of leaving connections waiting; `/livez` is 200.
pub async fn start(mut config: Config, demo: bool) -> anyhow::Result<Running> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    if config.public_url.ends_with(":0") {
        config.public_url = format!("http://{addr}");
        config.secure_cookies = false;
    }
    // aws-lc seeds its random generator on first use (~25 ms of CPU here): the first message
    // sealed would wait for it. Seed it beside the start-up instead, off the async workers.
    tokio::task::spawn_blocking(|| {
        let _ = aws_lc_rs::rand::fill(&mut [0u8; 16]);
    });
    let (stop, stopped) = watch::channel(false);
    let ready = Arc::new(OnceLock::new());
    let ready_for_gate = ready.clone();
    let mut stopped_rx = stopped.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, http::gate::MakeGate::new(ready_for_gate))
            .with_graceful_shutdown(async move {
                let _ = stopped_rx.wait_for(|s| *s).await;
                // Give sockets a moment to send their close frames.
                tokio::time::sleep(Duration::from_millis(200)).await;
            })
            .await
            .context("server error")
    });
    let built = async {
        let app = App::build(config, metrics_handle(), stopped).await?;
        let mut routes = http::api_routes();
        if demo {
            routes = routes.merge(demo::routes(demo::prepare(&app).await?));
        }
        anyhow::Ok((app.clone(), http::service(app, routes)))
    }
    .await;
    let (app, service) = match built {
        Ok(b) => b,
        Err(e) => {
            task.abort();
            return Err(e);
        }
    };
    let _ = ready.set(service);
    Ok(Running {
        addr,
        app,
        stop,
        task,
    })
}
