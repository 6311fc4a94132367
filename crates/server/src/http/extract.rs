//! Extractors that speak the contract's errors: a bad body, query string or path parameter is
//! `400 invalid_request` (or `413 payload_too_large`) with the JSON error body, never axum's
//! plain-text rejection, and the message never echoes the value that was sent (it may be a token).

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// `Json<T>` with the contract's error answers.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::invalid(
                "the body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::invalid(format!("unreadable body: {}", e.body_text()))
            }
        })?;
        // Every body of the API is an object; serde would also read a struct from an array.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(match axum::Json::<serde_json::Value>::from_bytes(&bytes) {
                Ok(_) => ApiError::invalid("the body must be a JSON object"),
                Err(_) => ApiError::invalid("the body is not valid JSON"),
            });
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            // JSON has one kind of number: `290.0` is the whole number 290 (JSON Schema says so,
            // and so do encoders that write every number with a point). Only a refused body
            // pays for the second reading.
            Err(e @ JsonRejection::JsonDataError(_)) => match whole_numbers_as_integers(&bytes)
                .map(|fixed| axum::Json::<T>::from_bytes(&fixed))
            {
                Some(Ok(axum::Json(v))) => Ok(ApiJson(v)),
                _ => Err(json_rejection(e)),
            },
            Err(e) => Err(json_rejection(e)),
        }
    }
}

/// `application/json` or any `application/…+json`, as axum's `Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || (sub.ends_with("+json") && !sub.contains('/')))
}

/// `body` with every number that has a point or an exponent but no fraction (`290.0`, `1e3`)
/// written as an integer; `None` when it has none (or is not JSON).
fn whole_numbers_as_integers(body: &[u8]) -> Option<Vec<u8>> {
    fn walk(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                    #[allow(clippy::cast_possible_truncation, reason = "whole and within ±2^53")]
                    let whole = f as i64;
                    *v = serde_json::Value::from(whole);
                    true
                }
                _ => false,
            },
            serde_json::Value::Array(items) => items.iter_mut().fold(false, |c, i| walk(i) | c),
            serde_json::Value::Object(map) => map.values_mut().fold(false, |c, i| walk(i) | c),
            _ => false,
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if !walk(&mut value) {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

fn json_rejection(e: JsonRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::payload_too_large();
    }
    match e {
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::invalid("the body must be JSON (Content-Type: application/json)")
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::invalid("the body is not valid JSON"),
        JsonRejection::JsonDataError(d) => {
            ApiError::invalid(format!(
                "invalid body: {}",
                without_values(d.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                ))
            ))
        }
        other => ApiError::invalid(format!("unreadable body: {}", other.body_text())),
    }
}

/// `Query<T>` with the contract's error answers.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::invalid(format!(
                    "invalid query string: {}",
                    without_values(
                        e.body_text()
                            .trim_start_matches("Failed to deserialize query string: ")
                    )
                )))
            }
            Err(e) => Err(ApiError::invalid(format!(
                "invalid query string: {}",
                e.body_text()
            ))),
        }
    }
}

/// `Path<T>` with the contract's error answers: `/api/v1/sites/abc` is `400`, not a 404 and
/// not plain text.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::invalid(
                format!("invalid path parameter: {}", path_problem(&e.into_kind())),
            )),
            Err(e) => Err(ApiError::invalid(format!(
                "invalid path: {}",
                e.body_text()
            ))),
        }
    }
}

/// A required text field of 1 to `max` characters, trimmed.
pub fn text_field(v: Option<String>, field: &str, max: usize) -> ApiResult<String> {
    match v.as_deref().map(str::trim) {
        Some(s) if !s.is_empty() && s.chars().count() <= max => Ok(s.to_owned()),
        _ => Err(ApiError::invalid(format!(
            "{field}: must be 1 to {max} characters"
        ))),
    }
}

fn path_problem(kind: &axum::extract::path::ErrorKind) -> String {
    use axum::extract::path::ErrorKind;
    match kind {
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => {
            format!("{key}: expected {}", id_word(expected_type))
        }
        ErrorKind::DeserializeError { key, message, .. } => {
            format!("{key}: {}", without_values(message))
        }
        ErrorKind::InvalidUtf8InPathParam { key } => format!("{key}: not valid UTF-8"),
        ErrorKind::ParseError { expected_type, .. }
        | ErrorKind::ParseErrorAtIndex { expected_type, .. } => {
            format!("expected {}", id_word(expected_type))
        }
        other => without_values(&other.to_string()),
    }
}

/// `confidant_core::ids::ConversationId` → `a ConversationId`.
fn id_word(type_name: &str) -> String {
    format!("a {}", type_name.rsplit("::").next().unwrap_or(type_name))
}

/// serde's message without the value it quotes: `invalid type: string "eyJ…", expected …`
/// becomes `invalid type: string, expected …`. Field paths and expectations stay.
fn without_values(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    for marker in ["invalid type: ", "invalid value: ", "unknown variant "] {
        let Some(i) = msg.find(marker) else { continue };
        let (head, rest) = msg.split_at(i + marker.len());
        let (unexpected, tail) = rest.split_at(rest.find(", expected").unwrap_or(rest.len()));
        let kind = unexpected
            .split(['`', '"'])
            .next()
            .unwrap_or_default()
            .trim();
        let kind = if kind.is_empty() { "value" } else { kind };
        return format!("{head}{kind}{tail}");
    }
    msg.to_owned()
}

/// The client's address, for the audit log: the peer's, or the one a trusted proxy forwarded
/// (`--trusted-proxies`). `None` when the server was not given the peer (tests that call the
/// router without a socket).
pub struct ClientIp(pub Option<std::net::IpAddr>);

impl FromRequestParts<crate::app::AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::app::AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(peer.map(|ip| {
            crate::limits::client_addr(ip, &parts.headers, &state.config.trusted_proxies)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::without_values;

    #[test]
    fn serde_messages_lose_the_values() {
        assert_eq!(
            without_values(
                "contactJwt: invalid type: integer `5`, expected a string at line 1 column 9"
            ),
            "contactJwt: invalid type: integer, expected a string"
        );
        assert_eq!(
            without_values(
                "siteId: invalid type: string \"eyJhbGciOi.secret\", expected a site id"
            ),
            "siteId: invalid type: string, expected a site id"
        );
        assert_eq!(
            without_values("isPreview: invalid type: boolean `true`, expected a string"),
            "isPreview: invalid type: boolean, expected a string"
        );
        assert_eq!(
            without_values("missing field `name`"),
            "missing field `name`"
        );
    }
}
