//! The URL rule (CONTRACT §5) for every URL the server itself fetches or posts to (JWKS now,
//! webhooks later): the pure half, which judges a URL by what it says and an address by its
//! range. The server's outbound HTTP client (`confidant::outbound`) applies the other half
//! when it resolves a host: every address must pass [`is_public`], and the connection goes
//! to the addresses that passed.
//!
//! With `--allow-private-urls on` (development, or a JWKS on the operator's own network) the
//! rule keeps only its shape checks: http(s), a host, no credentials.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;
use url::{Host, Url};

/// Why a URL breaks the rule. The texts suit an admin who saved the URL; a fetch refused at
/// use time reports them to the log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UrlRuleError {
    #[error("must use https:// (http:// only when the server runs with --allow-private-urls on)")]
    Scheme,
    #[error("must name a host and no credentials")]
    Shape,
    #[error(
        "names a loopback, private or otherwise non-public host (allowed only when the server runs with --allow-private-urls on)"
    )]
    NonPublic,
}

/// Check a URL by its literal form: scheme, shape, and a host that is not plainly private (an
/// IP literal outside the public ranges, `localhost` or a name under it). The `url` crate has
/// already read the spellings of an IPv4 address (`127.1`, `2130706433`, `0x7f.1`, full-width
/// digits) as the address they mean, so each is judged as one.
///
/// A host name that passes may still resolve to a private address: the fetch checks that.
pub fn check(url: &Url, allow_private: bool) -> Result<(), UrlRuleError> {
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(UrlRuleError::Scheme),
    }
    let Some(host) = url.host() else {
        return Err(UrlRuleError::Shape);
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRuleError::Shape);
    }
    if allow_private {
        return Ok(());
    }
    let public = match host {
        Host::Ipv4(ip) => is_public(IpAddr::V4(ip)),
        Host::Ipv6(ip) => is_public(IpAddr::V6(ip)),
        Host::Domain(name) => !is_local_name(name),
    };
    if public {
        Ok(())
    } else {
        Err(UrlRuleError::NonPublic)
    }
}

/// `localhost` and every name under it (RFC 6761 §6.3), with or without the final dot. The
/// `url` crate has lower-cased the name and mapped it through IDNA already.
fn is_local_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name == "localhost" || name.ends_with(".localhost")
}

/// Whether an address may be reached from the server: outside every special-purpose range
/// that leads to the server itself, its network or its cloud's metadata service (the IANA
/// special-purpose registries, without the few globally reachable exceptions: refusing them
/// costs nothing a JWKS or webhook needs).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(a == 0 // "this network", and the unspecified 0.0.0.0
        || a == 10 // private
        || (a == 100 && (64..128).contains(&b)) // shared (CGNAT); holds 100.100.100.200, a metadata address
        || a == 127 // loopback
        || (a == 169 && b == 254) // link-local; holds 169.254.169.254, the metadata address
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168) // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224) // multicast, reserved and the broadcast address
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    // Forms that carry an IPv4 address are judged by it: mapped (::ffff:a.b.c.d), the
    // deprecated compatible form (::a.b.c.d; `::` and `::1` fall in 0.0.0.0/8 that way) and
    // NAT64 (64:ff9b::a.b.c.d), through which a gateway would reach that IPv4 address.
    let embedded = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if s[..5] == [0; 5] && (s[5] == 0 || s[5] == 0xffff) || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_public_v4(embedded);
    }
    !((s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || (s[0] == 0x100 && s[1..4] == [0; 3]) // discard-only
        || (s[0] == 0x2001 && s[1] < 0x200) // IETF protocol assignments (Teredo among them)
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || s[0] == 0x2002 // 6to4, which carries any IPv4 address
        || (s[0] & 0xfff0) == 0x3ff0 // documentation (3fff::/20)
        || (s[0] & 0xfe00) == 0xfc00 // unique-local; holds fd00:ec2::254, a metadata address
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00) // multicast
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(url: &str, allow_private: bool) -> Result<(), UrlRuleError> {
        check(&Url::parse(url).expect(url), allow_private)
    }

    /// Every spelling of a loopback or private target an attacker tried, refused by its form.
    #[test]
    fn private_spellings_are_refused() {
        for url in [
            "https://127.0.0.1/jwks",
            "https://127.1/jwks",
            "https://2130706433/jwks",
            "https://0x7f.1/jwks",
            "https://0x7f000001/jwks",
            "https://017700000001/jwks",
            "https://0177.0.0.1/jwks",
            "https://127.000.000.001/jwks",
            "https://\u{ff11}\u{ff12}\u{ff17}.0.0.1/jwks",
            "https://0/jwks",
            "https://0.0.0.0/jwks",
            "https://[::1]/jwks",
            "https://[0:0:0:0:0:0:0:1]/jwks",
            "https://[::]/jwks",
            "https://[::ffff:127.0.0.1]/jwks",
            "https://[::ffff:7f00:1]/jwks",
            "https://[::127.0.0.1]/jwks",
            "https://[64:ff9b::127.0.0.1]/jwks",
            "https://[::ffff:169.254.169.254]/jwks",
            "https://[fe80::1]/jwks",
            "https://[fd00::1]/jwks",
            "https://[fd00:ec2::254]/jwks",
            "https://[ff02::1]/jwks",
            "https://[2002:7f00:1::]/jwks",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.100.100.200/jwks",
            "https://10.0.0.1/jwks",
            "https://172.16.0.1/jwks",
            "https://172.31.255.255/jwks",
            "https://192.168.1.1/jwks",
            "https://100.64.0.1/jwks",
            "https://224.0.0.1/jwks",
            "https://255.255.255.255/jwks",
            "https://192.0.2.1/jwks",
            "https://localhost/jwks",
            "https://LOCALHOST/jwks",
            "https://localhost./jwks",
            "https://foo.localhost/jwks",
            "https://foo.localhost./jwks",
            "https://\u{ff4c}\u{ff4f}\u{ff43}\u{ff41}\u{ff4c}\u{ff48}\u{ff4f}\u{ff53}\u{ff54}/jwks",
        ] {
            assert_eq!(
                judged(url, false),
                Err(UrlRuleError::NonPublic),
                "{url} was not refused"
            );
            assert_eq!(judged(url, true), Ok(()), "{url} with the flag on");
        }
    }

    #[test]
    fn scheme_and_shape() {
        for url in [
            "http://keys.example.com/jwks",
            "http://127.0.0.1:9/jwks",
            "ftp://keys.example.com/jwks",
            "file:///etc/passwd",
            "gopher://keys.example.com/",
        ] {
            assert_eq!(judged(url, false), Err(UrlRuleError::Scheme), "{url}");
        }
        assert_eq!(
            judged("ftp://127.0.0.1/jwks", true),
            Err(UrlRuleError::Scheme)
        );
        assert_eq!(judged("http://127.0.0.1:9/jwks", true), Ok(()));
        assert_eq!(judged("http://keys.example.com/jwks", true), Ok(()));
        for url in [
            "https://user:pw@keys.example.com/jwks",
            "https://user@keys.example.com/jwks",
        ] {
            assert_eq!(judged(url, false), Err(UrlRuleError::Shape), "{url}");
            assert_eq!(judged(url, true), Err(UrlRuleError::Shape), "{url}");
        }
    }

    #[test]
    fn public_hosts_pass() {
        for url in [
            "https://keys.example.com/.well-known/jwks.json",
            "https://keys.example.com:8443/jwks",
            "https://8.8.8.8/jwks",
            "https://172.32.0.1/jwks",
            "https://100.128.0.1/jwks",
            "https://[2606:4700::1111]/jwks",
            "https://[::ffff:8.8.8.8]/jwks",
            "https://[64:ff9b::8.8.8.8]/jwks",
            "https://localhost.example.com/jwks",
            "https://mylocalhost/jwks",
        ] {
            assert_eq!(judged(url, false), Ok(()), "{url}");
        }
    }

    #[test]
    fn address_ranges() {
        let public = |s: &str| is_public(s.parse().expect(s));
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "10.1.2.3",
            "169.254.169.254",
            "198.18.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::ffff:0.0.0.0",
            "fc00::1",
            "fe80::1",
            "febf::1",
            "ff00::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
            "64:ff9b:1::1",
            "3fff::1",
        ] {
            assert!(!public(ip), "{ip} counted as public");
        }
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2a00:1450:4001::200e",
            "::ffff:1.1.1.1",
        ] {
            assert!(public(ip), "{ip} counted as non-public");
        }
    }
}
