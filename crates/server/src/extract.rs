//! Request extraction that speaks the contract's errors: a bad body is `400 invalid_request`
//! (or `413 payload_too_large`), never axum's plain-text rejection.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use confidant_core::SiteId;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` with the contract's error answers.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_rejection(e)),
        }
    }
}

pub fn json_rejection(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::payload_too_large();
    }
    match e {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("the body must be JSON (Content-Type: application/json)")
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::invalid("the body is not valid JSON"),
        // serde's message names the field and the expected type, never a value.
        JsonRejection::JsonDataError(d) => ApiError::invalid(format!(
            "invalid body: {}",
            d.body_text()
                .trim_start_matches("Failed to deserialize the JSON body into the target type: ")
        )),
        other => ApiError::invalid(format!("unreadable body: {}", other.body_text())),
    }
}

/// A UUID id (messenger, contact, conversation, agent) as the store keeps it: lowercase and
/// hyphenated. Any other spelling names nothing, as when ids were looked up as text.
pub fn uuid_id<T: std::str::FromStr>(raw: &str) -> Option<T> {
    if raw.len() != 36 || raw.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    raw.parse().ok()
}

/// A site id from a path: anything that is not one names no site (404).
pub fn site_id(raw: &str) -> Result<SiteId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("site"))
}
