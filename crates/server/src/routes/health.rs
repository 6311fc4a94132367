//! Health, liveness, metrics and the access-token JWKS (CONTRACT §4).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult};

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "the database answers"), (status = 503, description = "it does not")))]
pub async fn healthz(State(app): State<AppState>) -> ApiResult<Json<Value>> {
    match tokio::time::timeout(Duration::from_secs(2), app.store.ping()).await {
        Ok(Ok(())) => Ok(Json(
            json!({"status": "ok", "database": "ok", "bus": app.hub.state()}),
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database error");
            Err(ApiError::unavailable("the database is not answering"))
        }
        Err(_) => Err(ApiError::unavailable(
            "the database did not answer within 2 seconds",
        )),
    }
}

#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, description = "the process serves requests")))]
pub async fn livez() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(app): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "health", responses((status = 200, description = "keys that verify access tokens")))]
pub async fn jwks(State(app): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(app.access.jwks_json()),
    )
        .into_response()
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request",
        "method not allowed on this path",
    )
}
