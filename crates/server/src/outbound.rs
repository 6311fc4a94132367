//! The server's outbound HTTP under the URL rule (CONTRACT §5), shared by everything that
//! fetches or posts to a URL an admin saved (the JWKS fetcher, webhook deliveries).
//!
//! - Before a request: the URL's literal form (`confidant_core::outbound::check`).
//! - At the connection: the host name is resolved once by [`CheckedResolver`], which answers
//!   only when every address it found is public, so the client connects to an address that
//!   was checked (there is no second lookup for a rebinding DNS server to answer differently).
//!   IP literals never reach a resolver; the literal check has judged them.
//! - Redirects: followed only on the host first requested, each hop checked again.
//! - No proxy from the environment: a proxy would resolve the host itself, unchecked.
//!
//! Every refusal is an ordinary error of the request, so a caller cannot tell a refused
//! target from an unreachable one, and neither can whoever reads the caller's answer.

use std::net::SocketAddr;
use std::sync::Arc;

use confidant_core::outbound::{check, is_public};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{ClientBuilder, Url, redirect};

const MAX_REDIRECTS: usize = 5;

/// What the rule allows: everything public, or (`--allow-private-urls on`) private targets
/// and plain http too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlRule {
    pub allow_private: bool,
}

impl UrlRule {
    /// The URL's literal form; the text is for logs.
    pub fn check(self, url: &Url) -> Result<(), String> {
        check(url, self.allow_private).map_err(|e| format!("the URL {e}"))
    }

    /// A client builder that applies the rule at every connection and redirect, resolving
    /// names with the system resolver. Callers add their timeouts and user agent.
    pub fn client(self) -> ClientBuilder {
        self.client_with(Arc::new(SystemResolver))
    }

    /// The same, resolving names with `resolver` (tests make a name resolve to loopback).
    pub fn client_with(self, resolver: Arc<dyn Resolve>) -> ClientBuilder {
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            // `previous()` starts with the URL first requested: stay on its host, and judge
            // the new URL as if it had been the first (an https page may not send us to http).
            let same_host = attempt
                .previous()
                .first()
                .is_some_and(|first| first.host() == attempt.url().host());
            if same_host && self.check(attempt.url()).is_ok() {
                attempt.follow()
            } else {
                // The 3xx itself becomes the answer, which callers report as a failure.
                attempt.stop()
            }
        });
        ClientBuilder::new()
            .no_proxy()
            .https_only(!self.allow_private)
            .redirect(policy)
            .dns_resolver(Arc::new(CheckedResolver {
                inner: resolver,
                rule: self,
            }))
    }
}

/// Resolves with `inner` and answers only when every address is allowed: one private address
/// among public ones refuses the name (else the client could still pick it).
struct CheckedResolver {
    inner: Arc<dyn Resolve>,
    rule: UrlRule,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let inner = self.inner.clone();
        let allow_private = self.rule.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = inner.resolve(name).await?.collect();
            if addrs.is_empty() {
                return Err("the host has no address".into());
            }
            if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err("the host resolves to a non-public address".into());
            }
            let checked: Addrs = Box::new(addrs.into_iter());
            Ok(checked)
        })
    }
}

/// The system's resolver (getaddrinfo on the blocking pool), as reqwest's default is.
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let found: Addrs = Box::new(addrs.into_iter());
            Ok(found)
        })
    }
}

/// An outbound request's error with its sources: reqwest's own text hides why a connection
/// was refused (the resolver's reason sits in the chain), and the log should say it.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
