//! Rate limits: token buckets (governor's GCRA) per client and action. The defaults are far
//! above what a person does (a burst of dozens, then several per second), so they only stop
//! floods; `--rate-limits off` lifts them for load tests. The login lockout (§5) is separate,
//! and so is `one_login_at_a_time`, which runs whatever the setting.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::http::HeaderMap;
use confidant_core::ContactId;
use dashmap::DashMap;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use ipnet::IpNet;

use crate::error::{ApiError, ApiResult};

/// Above this many remembered clients, buckets that are full again are forgotten.
const MAX_KEYS: usize = 100_000;

/// One action's buckets, keyed by client.
struct Buckets<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(burst: u32, per_second: u32) -> Self {
        let quota = Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        }
    }

    fn check(&self, key: &K) -> ApiResult<()> {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::rate_limited(wait.as_secs_f64().ceil() as u64)
        })
    }
}

pub struct RateLimiter {
    enabled: bool,
    /// Peers whose `X-Forwarded-For` is believed (`--trusted-proxies`); none by default.
    trusted_proxies: Vec<IpNet>,
    authorize: Buckets<IpAddr>,
    login: Buckets<IpAddr>,
    send: Buckets<ContactId>,
    /// One lock per account being logged into, held only while an attempt runs.
    login_gates: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl RateLimiter {
    pub fn new(enabled: bool, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            enabled,
            trusted_proxies,
            authorize: Buckets::new(120, 20),
            login: Buckets::new(30, 1),
            send: Buckets::new(60, 10),
            login_gates: DashMap::new(),
        }
    }

    /// Authorize calls from one client (see [`RateLimiter::client_key`]).
    pub fn authorize(&self, peer: IpAddr, headers: &HeaderMap) -> ApiResult<()> {
        if self.enabled {
            self.authorize.check(&self.client_key(peer, headers))
        } else {
            Ok(())
        }
    }

    /// Login attempts from one client (see [`RateLimiter::client_key`]).
    pub fn login(&self, peer: IpAddr, headers: &HeaderMap) -> ApiResult<()> {
        if self.enabled {
            self.login.check(&self.client_key(peer, headers))
        } else {
            Ok(())
        }
    }

    /// The bucket a request counts against: its client's address (the peer, or what a trusted
    /// proxy says), IPv6 grouped by /64.
    pub fn client_key(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        limit_key(client_addr(peer, headers, &self.trusted_proxies))
    }

    /// Sends by one contact.
    pub fn send(&self, contact: ContactId) -> ApiResult<()> {
        if self.enabled {
            self.send.check(&contact)
        } else {
            Ok(())
        }
    }

    /// Run one login attempt for `account` at a time in this process, so that parallel guesses
    /// each see the failures counted before them and the lockout cannot be outrun. Independent
    /// of `--rate-limits`, like the lockout itself.
    pub async fn one_login_at_a_time<T>(
        &self,
        account: &str,
        attempt: impl Future<Output = T>,
    ) -> T {
        let gate = self
            .login_gates
            .entry(account.to_owned())
            .or_default()
            .clone();
        let out = {
            let _held = gate.lock().await;
            attempt.await
        };
        // Forget the gate unless another attempt holds or waits on it (the map and `gate` are
        // the only owners then); the check runs under the map's shard lock, as clones do.
        self.login_gates
            .remove_if(account, |_, g| Arc::strong_count(g) <= 2);
        out
    }
}

/// The client's address. The peer's, unless the peer is a trusted proxy: then the right-most
/// `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left were
/// written by the client and prove nothing). An entry that is not an address stops the walk at
/// the last hop that could be believed.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// One bucket per IPv4 address, and per IPv6 /64: a single host is usually given a whole /64,
/// so keying on the full address would give it 2^64 buckets. IPv4-mapped addresses count as
/// IPv4.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_next_call_waits() {
        let limits = RateLimiter::new(true, Vec::new());
        let none = HeaderMap::new();
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..30 {
            assert!(limits.login(ip, &none).is_ok());
        }
        let e = limits.login(ip, &none).expect_err("limited");
        assert_eq!(e.code, "rate_limited");
        assert!(e.retry_after.is_some_and(|s| (1..=2).contains(&s)));
        // Another address has its own bucket.
        assert!(limits.login([127, 0, 0, 2].into(), &none).is_ok());
        // Off lifts them.
        let off = RateLimiter::new(false, Vec::new());
        for _ in 0..100 {
            assert!(off.login(ip, &none).is_ok());
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn ipv6_peers_of_one_64_share_a_bucket() {
        let a = ip("2001:db8:1:2:aaaa::1");
        let b = ip("2001:db8:1:2:ffff:ffff:ffff:ffff");
        let other = ip("2001:db8:1:3::1");
        assert_eq!(limit_key(a), limit_key(b));
        assert_ne!(limit_key(a), limit_key(other));
        assert_eq!(limit_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(limit_key(ip("192.0.2.7")), ip("192.0.2.7"));
        // And the limiter itself: the second address of the /64 finds the bucket empty.
        let limits = RateLimiter::new(true, Vec::new());
        let none = HeaderMap::new();
        for _ in 0..30 {
            assert!(limits.login(a, &none).is_ok());
        }
        assert!(limits.login(b, &none).is_err());
        assert!(limits.login(other, &none).is_ok());
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.1".parse().expect("v"),
        );
        h.append("x-forwarded-for", "10.0.0.2".parse().expect("v"));
        let proxies: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // An untrusted peer: its header is ignored.
        assert_eq!(client_addr(ip("192.0.2.1"), &h, &proxies), ip("192.0.2.1"));
        assert_eq!(client_addr(ip("10.0.0.1"), &h, &[]), ip("10.0.0.1"));
        // A trusted peer: the right-most entry that is not a trusted proxy.
        assert_eq!(
            client_addr(ip("10.0.0.1"), &h, &proxies),
            ip("198.51.100.1")
        );
        // Garbage stops the walk at the last believable hop.
        let mut g = HeaderMap::new();
        g.insert(
            "x-forwarded-for",
            "203.0.113.9, junk, 10.0.0.3".parse().expect("v"),
        );
        assert_eq!(client_addr(ip("10.0.0.1"), &g, &proxies), ip("10.0.0.3"));
        assert_eq!(
            client_addr(ip("10.0.0.1"), &HeaderMap::new(), &proxies),
            ip("10.0.0.1")
        );
    }
}
