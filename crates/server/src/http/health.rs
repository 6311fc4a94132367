//! Health, liveness, metrics and the access-token JWKS (CONTRACT §4).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::api::{ErrorBody, Health};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, body = Health, description = "the database answers"),
              (status = 503, body = ErrorBody, description = "it does not")))]
pub async fn healthz(State(app): State<AppState>) -> ApiResult<Json<Health>> {
    match tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Health {
            status: "ok",
            database: Some("ok"),
            bus: Some(app.hub.state()),
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database error");
            Err(ApiError::unavailable("the database is not answering"))
        }
        Err(_) => Err(ApiError::unavailable(
            "the database did not answer within 2 seconds",
        )),
    }
}

#[utoipa::path(get, path = "/livez", tag = "health",
    responses((status = 200, body = Health, description = "the process serves requests")))]
pub async fn livez() -> Json<Health> {
    Json(Health {
        status: "ok",
        database: None,
        bus: None,
    })
}

#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format")))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    app.jobs.record_gauges().await;
    record_send_fallbacks(&app.store);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

/// The send writer's fallbacks by reason, as counters: the store counts them (so a store's own
/// count can be read apart from the process-wide recorder), the scrape copies them.
fn record_send_fallbacks(store: &confidant_store::Store) {
    for (reason, n) in store.send_fallbacks() {
        metrics::counter!("confidant_send_batch_fallbacks_total", "reason" => reason.as_str())
            .absolute(n);
    }
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "health",
    responses((status = 200, body = Object, description = "the JWK Set that verifies access tokens")))]
pub async fn jwks(State(app): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(app.access.tokens.jwks_json()),
    )
        .into_response()
}
