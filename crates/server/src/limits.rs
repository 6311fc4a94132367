//! Rate limits: token buckets (governor's GCRA) per client and action. The defaults are far
//! above what a person does (a burst of dozens, then several per second), so they only stop
//! floods; `--rate-limits off` lifts them for load tests. The login lockout (§5) is separate,
//! and so is `one_login_at_a_time`, which runs whatever the setting.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use confidant_core::ContactId;
use dashmap::DashMap;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

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
    authorize: Buckets<IpAddr>,
    login: Buckets<IpAddr>,
    send: Buckets<ContactId>,
    /// One lock per account being logged into, held only while an attempt runs.
    login_gates: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl RateLimiter {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            authorize: Buckets::new(120, 20),
            login: Buckets::new(30, 1),
            send: Buckets::new(60, 10),
            login_gates: DashMap::new(),
        }
    }

    /// Authorize calls from one address.
    pub fn authorize(&self, peer: IpAddr) -> ApiResult<()> {
        if self.enabled {
            self.authorize.check(&peer)
        } else {
            Ok(())
        }
    }

    /// Login attempts from one address.
    pub fn login(&self, peer: IpAddr) -> ApiResult<()> {
        if self.enabled {
            self.login.check(&peer)
        } else {
            Ok(())
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_next_call_waits() {
        let limits = RateLimiter::new(true);
        let ip: IpAddr = [127, 0, 0, 1].into();
        for _ in 0..30 {
            assert!(limits.login(ip).is_ok());
        }
        let e = limits.login(ip).expect_err("limited");
        assert_eq!(e.code, "rate_limited");
        assert!(e.retry_after.is_some_and(|s| (1..=2).contains(&s)));
        // Another address has its own bucket.
        assert!(limits.login([127, 0, 0, 2].into()).is_ok());
        // Off lifts them.
        let off = RateLimiter::new(false);
        for _ in 0..100 {
            assert!(off.login(ip).is_ok());
        }
    }
}
