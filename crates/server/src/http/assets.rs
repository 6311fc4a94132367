//! The browser parts (web/), embedded in the binary at build time, and the messenger frame
//! page with its per-messenger `frame-ancestors` policy (CONTRACT §8).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use include_dir::{Dir, include_dir};
use serde_json::json;

use crate::api::{ConfigQuery, ErrorBody};
use crate::app::AppState;
use crate::error::ApiError;
use crate::http::extract::ApiQuery;

static WEB: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../web");

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        // TypeScript declarations (messenger/v1/confidant.d.ts): text an editor or a build fetches.
        Some("ts") => "text/plain; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn ws_origin(public_url: &str) -> String {
    public_url
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1)
}

/// The policy of every page: only the server's own scripts, styles and connections.
fn page_csp(public_url: &str, frame_ancestors: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self' {}; frame-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {frame_ancestors}",
        ws_origin(public_url)
    )
}

/// A file of the server's own: its type, checked again on each use, never sniffed.
fn served(body: impl Into<Body>, content_type: &'static str) -> Response {
    let mut res = (StatusCode::OK, body.into()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// A page of the server's own (the admin pages, the console, the guides): framed only by the
/// server itself, with the page policy (no inline script) and no referrer to other sites.
pub fn html_page(public_url: &str, html: impl Into<Body>) -> Response {
    let mut res = served(html, "text/html; charset=utf-8");
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&page_csp(public_url, "'self'")) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// Serve a file of web/, or a folder's index.html. Anything else is a JSON 404.
pub async fn static_file(State(app): State<AppState>, uri: Uri) -> Response {
    let mut path = uri.path().trim_start_matches('/').to_owned();
    if path.is_empty() {
        return axum::response::Redirect::to("/demo/").into_response();
    }
    if path.ends_with('/') {
        path.push_str("index.html");
    }
    let Some(file) = WEB.get_file(&path) else {
        // `/console` → `/console/`.
        if WEB.get_file(format!("{path}/index.html")).is_some() {
            return axum::response::Redirect::permanent(&format!("/{path}/")).into_response();
        }
        return ApiError::not_found("page").into_response();
    };
    if path.ends_with(".html") {
        return html_page(&app.config.public_url, file.contents());
    }
    let mut res = served(file.contents(), content_type(&path));
    let h = res.headers_mut();
    // The loader runs on business pages of other origins.
    if path == "messenger/v1/loader.js" || path == "messenger/v1/confidant.d.ts" {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    res
}

/// `GET /messenger/v1/frame`: the messenger page, which only the messenger's allowed origins
/// (and the server itself, for previews) may frame.
#[utoipa::path(get, path = "/messenger/v1/frame", tag = "embedding", params(ConfigQuery),
    responses((status = 200, content_type = "text/html", body = String, description = "the messenger page, with its frame-ancestors policy"),
              (status = 404, body = ErrorBody, description = "messenger_not_found")))]
pub async fn frame(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> Result<Response, ApiError> {
    let m = app
        .messengers
        .named(q.site_id.as_deref(), q.messenger_id.as_deref())
        .await?;
    let template = WEB
        .get_file("messenger/v1/frame.html")
        .and_then(|f| f.contents_utf8())
        .unwrap_or_default();
    let allowed_origins: Vec<String> = m.allowed.iter().map(|u| u.csp_source()).collect();
    let config = json!({
        "siteId": m.row.site_id,
        "messengerId": m.row.messenger_id,
        "name": m.row.name,
        "serverOrigin": app.config.public_url,
        "allowedOrigins": allowed_origins,
        "attachments": crate::api::AttachmentSettings::from(&m.security.attachments),
        // For the first paint; the frame asks /api/v1/messenger/config again as hours change.
        "appearance": app.appearance.public(&m, crate::http::conversations::email_notices(&app, &m).await?).await?,
    });
    // Escaped so that the JSON cannot end its <script> block.
    let config = config
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let html = template.replace("{{CONFIG}}", &config);
    let mut ancestors = vec![app.config.public_url.clone()];
    for o in allowed_origins {
        if !ancestors.contains(&o) {
            ancestors.push(o);
        }
    }
    let mut res = (StatusCode::OK, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let csp = page_csp(&app.config.public_url, &ancestors.join(" "));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).map_err(|e| ApiError::internal(&e))?,
    );
    Ok(res)
}
