//! Fetches JWKS documents over HTTP for the identity crate's cache (CONTRACT §6): under the
//! URL rule of §5 (`crate::outbound`), a 5 s timeout, a 256 KiB body cap, redirects only
//! within the same host, any content type.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use confidant_identity::jwks::{FetchedJwks, JwksFetcher, parse_max_age};
use reqwest::dns::Resolve;
use reqwest::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use reqwest::{Client, ClientBuilder, Url};

use crate::outbound::{UrlRule, error_chain};

const TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY_BYTES: usize = 256 * 1024;

pub struct HttpJwksFetcher {
    /// `Err` only if the HTTP client could not be built (a TLS set-up failure): then every
    /// fetch fails with that reason, and JWKS messengers answer `jwks_unavailable`.
    client: Result<Client, String>,
    rule: UrlRule,
}

impl HttpJwksFetcher {
    pub fn new(rule: UrlRule) -> Self {
        Self::build(rule, rule.client())
    }

    /// A fetcher whose host names resolve through `resolver` (tests).
    pub fn with_resolver(rule: UrlRule, resolver: Arc<dyn Resolve>) -> Self {
        Self::build(rule, rule.client_with(resolver))
    }

    fn build(rule: UrlRule, builder: ClientBuilder) -> Self {
        let client = builder
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
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
        Self { client, rule }
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedJwks, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let url = Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        self.rule.check(&url)?;
        let mut response = client
            .get(url)
            .header(
                ACCEPT,
                "application/jwk-set+json, application/json;q=0.9, */*;q=0.5",
            )
            .send()
            .await
            .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
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

/// Every `Cache-Control` header line, read as one list of directives.
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let joined: Vec<&str> = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    parse_max_age(&joined.join(","))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use reqwest::dns::{Addrs, Name, Resolve, Resolving};

    use super::*;

    /// A resolver under the attacker's control: every name is 127.0.0.1 (a rebinding DNS
    /// server, or a name like `localtest.me`).
    struct ToLoopback;

    impl Resolve for ToLoopback {
        fn resolve(&self, _: Name) -> Resolving {
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
            let addrs: Addrs = Box::new(std::iter::once(addr));
            Box::pin(async move { Ok(addrs) })
        }
    }

    /// A TCP port on loopback that counts the connections it accepts (and answers none).
    async fn listener() -> (u16, Arc<AtomicUsize>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = l.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        (port, accepted)
    }

    /// An HTTP server on loopback: `/jwks.json` serves an empty set, `/away` redirects to
    /// `location`; it counts its requests.
    async fn http_server(location: String) -> (u16, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let (h1, h2) = (hits.clone(), hits.clone());
        let router = axum::Router::new()
            .route(
                "/jwks.json",
                axum::routing::get(move || async move {
                    h1.fetch_add(1, Ordering::SeqCst);
                    r#"{"keys": []}"#
                }),
            )
            .route(
                "/away",
                axum::routing::get(move || async move {
                    h2.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(l, router).await });
        (port, hits)
    }

    const PUBLIC_ONLY: UrlRule = UrlRule {
        allow_private: false,
    };
    const PRIVATE_TOO: UrlRule = UrlRule {
        allow_private: true,
    };

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_never_connected_to() {
        let (port, accepted) = listener().await;
        let fetcher = HttpJwksFetcher::with_resolver(PUBLIC_ONLY, Arc::new(ToLoopback));
        for url in [
            format!("https://jwks.attacker.test:{port}/jwks.json"),
            format!("https://jwks.attacker.test.:{port}/jwks.json"),
        ] {
            let error = fetcher.fetch(&url).await.expect_err(&url);
            assert!(error.contains("non-public"), "{url}: {error}");
        }
        // IP literals skip the resolver: the literal check refuses them.
        for url in [
            format!("https://127.0.0.1:{port}/jwks.json"),
            format!("https://127.1:{port}/jwks.json"),
            format!("https://[::ffff:127.0.0.1]:{port}/jwks.json"),
            format!("http://127.0.0.1:{port}/jwks.json"),
            format!("https://localhost:{port}/jwks.json"),
        ] {
            assert!(fetcher.fetch(&url).await.is_err(), "{url}");
        }
        tokio::task::yield_now().await;
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "a connection was made");
    }

    #[tokio::test]
    async fn with_private_urls_allowed_a_loopback_jwks_is_fetched() {
        let (port, hits) = http_server(String::new()).await;
        let fetcher = HttpJwksFetcher::with_resolver(PRIVATE_TOO, Arc::new(ToLoopback));
        for url in [
            format!("http://127.0.0.1:{port}/jwks.json"),
            format!("http://jwks.attacker.test:{port}/jwks.json"),
        ] {
            let fetched = fetcher.fetch(&url).await.expect(&url);
            assert_eq!(fetched.body, br#"{"keys": []}"#);
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn redirects_off_the_checked_host_are_not_followed() {
        let (target_port, target_hits) = http_server(String::new()).await;
        for location in [
            format!("http://localhost:{target_port}/jwks.json"),
            format!("http://[::ffff:127.0.0.1]:{target_port}/jwks.json"),
            format!("http://169.254.169.254:{target_port}/jwks.json"),
            format!("http://0x7f.2:{target_port}/jwks.json"),
        ] {
            let (port, hits) = http_server(location.clone()).await;
            let fetcher = HttpJwksFetcher::new(PRIVATE_TOO);
            let url = format!("http://127.0.0.1:{port}/away");
            let error = fetcher.fetch(&url).await.expect_err(&location);
            assert!(error.contains("302"), "{location}: {error}");
            assert_eq!(hits.load(Ordering::SeqCst), 1);
        }
        assert_eq!(
            target_hits.load(Ordering::SeqCst),
            0,
            "a redirect was followed"
        );
        // On the same host it is followed.
        let (port, _) = http_server(String::new()).await;
        let (away, _) = http_server(format!("http://127.0.0.1:{port}/jwks.json")).await;
        let fetcher = HttpJwksFetcher::new(PRIVATE_TOO);
        assert!(
            fetcher
                .fetch(&format!("http://127.0.0.1:{away}/away"))
                .await
                .is_ok()
        );
    }
}
