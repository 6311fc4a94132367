//! Fetches JWKS documents over HTTP for the identity crate's cache (CONTRACT §6): HTTPS only
//! (plain http for loopback hosts, or when the operator allows it), a 5 s timeout, a 256 KiB
//! body cap, redirects only within the same host, any content type.

use std::time::Duration;

use async_trait::async_trait;
use confidant_core::security::is_loopback_host;
use confidant_identity::jwks::{FetchedJwks, JwksFetcher, parse_max_age};
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use reqwest::{Client, Url, redirect};

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_REDIRECTS: usize = 5;

pub struct HttpJwksFetcher {
    /// `Err` only if the HTTP client could not be built (a TLS set-up failure): then every
    /// fetch fails with that reason, and JWKS messengers answer `jwks_unavailable`.
    client: Result<Client, String>,
    allow_http: bool,
}

impl HttpJwksFetcher {
    pub fn new(allow_http: bool) -> Self {
        let redirects = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            // `previous()` starts with the URL first requested: stay on its host, and never
            // step down from https to a plain http the first URL would not have been allowed.
            let same_host = attempt
                .previous()
                .first()
                .is_some_and(|first| first.host_str() == attempt.url().host_str());
            if same_host && scheme_allowed(attempt.url(), allow_http) {
                attempt.follow()
            } else {
                // The 3xx itself becomes the answer, which the fetch reports as a failure.
                attempt.stop()
            }
        });
        let client = Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(redirects)
            .user_agent(concat!(
                "confidant/",
                env!("CARGO_PKG_VERSION"),
                " (JWKS fetcher)"
            ))
            .build()
            .map_err(|e| {
                tracing::error!(error = %e, "cannot build the JWKS HTTP client");
                format!("the HTTP client could not be built: {e}")
            });
        Self { client, allow_http }
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedJwks, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let url = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        if !scheme_allowed(&url, self.allow_http) {
            return Err("only https:// (or plain http for loopback hosts) is fetched".into());
        }
        let mut response = client
            .get(url)
            .header(
                ACCEPT,
                "application/jwk-set+json, application/json;q=0.9, */*;q=0.5",
            )
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered HTTP {status}"));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err("the body is larger than 256 KiB".into());
        }
        let max_age = max_age(response.headers());
        // Read chunk by chunk and stop at the cap: a missing or lying Content-Length cannot
        // make us buffer more than 256 KiB.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err("the body is larger than 256 KiB".into());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchedJwks { body, max_age })
    }
}

/// https always; plain http only for loopback hosts unless the operator allows it.
fn scheme_allowed(url: &Url, allow_http: bool) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => allow_http || is_loopback_host(url),
        _ => false,
    }
}

/// Every `Cache-Control` header line, read as one list of directives.
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let joined: Vec<&str> = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    parse_max_age(&joined.join(","))
}
