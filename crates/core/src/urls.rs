//! Allowed URLs (CONTRACT §5, §8): an origin or a URL prefix, with `*.` allowed as the leftmost
//! host label. The origin part is enforced by the browser (CSP) and the server (Origin checks);
//! the path prefix decides whether the loader shows the messenger on a page.

use std::fmt;

use thiserror::Error;
use url::Url;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AllowedUrlError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedUrl {
    scheme: String,
    /// Lower-case host without the `*.`; for a wildcard, the suffix that hosts must end with.
    host: String,
    wildcard: bool,
    /// The explicit non-default port, if any.
    port: Option<u16>,
    /// The path prefix, always starting with `/`; `/` when the entry is a bare origin.
    path: String,
}

impl AllowedUrl {
    pub fn parse(input: &str) -> Result<Self, AllowedUrlError> {
        // Said in plain words for the admin who typed it, with the entry quoted.
        let err = |m: &str| AllowedUrlError(format!("“{}” {m}", input.trim()));
        let not_address = || err("is not a web address: it needs https:// or http:// and a host");
        let s = input.trim();
        if s.is_empty() {
            return Err(AllowedUrlError(
                "an empty entry is not a web address: it needs https:// or http:// and a host"
                    .to_owned(),
            ));
        }
        if s.len() > 2048 {
            return Err(AllowedUrlError(
                "an entry is too long: a web address here has at most 2048 characters".to_owned(),
            ));
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(not_address)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(err(
                "is not a web address: it must start with https:// or http://",
            ));
        }
        let (wildcard, rest) = match rest.strip_prefix("*.") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if rest.contains('*') {
            return Err(err(
                "has a * in the wrong place: it may only stand for the first part of the host, as in https://*.example.com",
            ));
        }
        // Let the URL parser validate and normalise the host, port and path.
        let url = Url::parse(&format!("{scheme}://{rest}")).map_err(|e| {
            use url::ParseError as P;
            match e {
                P::EmptyHost => not_address(),
                P::InvalidPort => err("has a port that is not a number from 1 to 65535"),
                P::InvalidIpv4Address | P::InvalidIpv6Address => {
                    err("has an IP address that is not valid")
                }
                P::InvalidDomainCharacter | P::IdnaError => {
                    err("has a host with characters that web addresses cannot have")
                }
                _ => not_address(),
            }
        })?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(err(
                "has a ? or # part: give only the site (https://example.com) or a path prefix (https://example.com/secure/)",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err("must not contain a user name or password"));
        }
        let host = url.host_str().ok_or_else(not_address)?.to_ascii_lowercase();
        // The URL parser lets `;` `,` `'` and other punctuation through in a domain, and the
        // host is written into the frame's CSP header: a `;` there would start a directive.
        // Hosts are DNS names (after IDNA: letters, digits, hyphens, dots), or IP addresses.
        if !host.starts_with('[') && !is_dns_name(&host) {
            return Err(err(
                "has a host with characters other than letters, digits, hyphens and dots",
            ));
        }
        if wildcard
            && (host.starts_with('[')
                || host.parse::<std::net::Ipv4Addr>().is_ok()
                || !host.contains('.'))
        {
            return Err(err(
                "has *. before a host that is not a domain of two parts or more (as in https://*.example.com)",
            ));
        }
        Ok(Self {
            scheme,
            host,
            wildcard,
            port: url.port(),
            path: url.path().to_owned(),
        })
    }

    fn default_port(&self) -> u16 {
        if self.scheme == "https" { 443 } else { 80 }
    }

    /// Whether this entry allows pages of `origin` (`scheme://host[:port]`, as browsers send it).
    pub fn allows_origin(&self, origin: &str) -> bool {
        let Ok(url) = Url::parse(origin) else {
            return false;
        };
        self.matches_origin_of(&url)
    }

    fn matches_origin_of(&self, url: &Url) -> bool {
        if url.scheme() != self.scheme {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        };
        host_ok && url.port_or_known_default() == Some(self.port.unwrap_or(self.default_port()))
    }

    /// Whether the page at `page_url` may show the messenger: its origin matches and its path
    /// starts with this entry's path prefix.
    pub fn allows_page(&self, page_url: &str) -> bool {
        let Ok(url) = Url::parse(page_url) else {
            return false;
        };
        self.matches_origin_of(&url) && url.path().starts_with(&self.path)
    }

    /// The origin this entry stands for, as it is written in a CSP source list
    /// (`https://*.example.org` for a wildcard).
    pub fn csp_source(&self) -> String {
        let star = if self.wildcard { "*." } else { "" };
        match self.port {
            Some(p) => format!("{}://{star}{}:{p}", self.scheme, self.host),
            None => format!("{}://{star}{}", self.scheme, self.host),
        }
    }
}

impl fmt::Display for AllowedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path == "/" { "" } else { &self.path };
        write!(f, "{}{path}", self.csp_source())
    }
}

/// Whether `host` (lower-case ASCII, after IDNA) is dot-separated labels of letters, digits and
/// hyphens, none empty.
fn is_dns_name(host: &str) -> bool {
    host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

/// Normalise an `Origin` header value; `None` for `null` or anything that is not an origin.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let url = Url::parse(origin).ok()?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let u = AllowedUrl::parse("https://Portal.Example.com").unwrap();
        assert_eq!(u.to_string(), "https://portal.example.com");
        let u = AllowedUrl::parse("https://www.example.com/secure/").unwrap();
        assert_eq!(u.to_string(), "https://www.example.com/secure/");
        assert_eq!(u.csp_source(), "https://www.example.com");
        let u = AllowedUrl::parse("http://127.0.0.1:8081").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8081");
        let u = AllowedUrl::parse("https://example.com:443").unwrap();
        assert_eq!(u.to_string(), "https://example.com");
        let u = AllowedUrl::parse("https://пример.example.org").unwrap();
        assert_eq!(u.to_string(), "https://xn--e1afmkfd.example.org");
        let u = AllowedUrl::parse("https://*.Пример.example:8443").unwrap();
        assert_eq!(u.csp_source(), "https://*.xn--e1afmkfd.example:8443");
        assert!(AllowedUrl::parse("https://[::1]:8443").is_ok());
        for bad in [
            "",
            "example.com",
            "ftp://x.com",
            "https://a.*.com",
            "https://*.com",
            "https://x.com/?q=1",
            "https://u:p@x.com",
            "https://*.127.0.0.1",
            "https://a;b.example.com",
            "https://a,b.example.com",
            "https://a'b.example.com",
            "https://*.x;script-src.example.com",
            "https://a!b.example.com",
            "https://a..b.example.com",
        ] {
            assert!(AllowedUrl::parse(bad).is_err(), "{bad}");
        }
    }

    /// Found by the property `allowed_url_from_url_like_text`: these hosts reached the CSP
    /// header as they were.
    #[test]
    fn hosts_that_would_break_the_csp_header_are_refused() {
        for bad in [
            "https://a;b.example.com",
            "https://a,b.example.com",
            "https://a'b.example.com",
            "https://*.a;script-src.example.com",
            "https://a_b.example.com",
        ] {
            assert!(AllowedUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_matching() {
        let u = AllowedUrl::parse("https://portal.example.com").unwrap();
        assert!(u.allows_origin("https://portal.example.com"));
        assert!(u.allows_origin("https://portal.example.com:443"));
        assert!(!u.allows_origin("http://portal.example.com"));
        assert!(!u.allows_origin("https://portal.example.com:8443"));
        assert!(!u.allows_origin("https://evil-portal.example.com"));
        assert!(!u.allows_origin("https://portal.example.com.evil.net"));
        let w = AllowedUrl::parse("https://*.example.org").unwrap();
        assert!(w.allows_origin("https://a.example.org"));
        assert!(w.allows_origin("https://a.b.c.example.org"));
        assert!(!w.allows_origin("https://example.org"));
        assert!(!w.allows_origin("https://badexample.org"));
        assert!(!w.allows_origin("null"));
    }

    #[test]
    fn page_prefix() {
        let u = AllowedUrl::parse("https://www.example.com/secure/").unwrap();
        assert!(u.allows_page("https://www.example.com/secure/inbox?x=1"));
        assert!(!u.allows_page("https://www.example.com/public/"));
        assert!(!u.allows_page("https://www.example.com/secure"));
        assert!(u.allows_origin("https://www.example.com"));
    }
}
