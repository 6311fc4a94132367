//! Rate limits: token buckets per client and action. The defaults are far above what a
//! person does (a burst of dozens, then several per second), so they only stop floods;
//! `--rate-limits off` lifts them for load tests. The login lockout (§5) is separate.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Authorize,
    Login,
    Send,
}

impl Action {
    /// (burst, refill per second)
    fn budget(self) -> (f64, f64) {
        match self {
            Action::Authorize => (120.0, 20.0),
            Action::Login => (30.0, 1.0),
            Action::Send => (60.0, 10.0),
        }
    }
}

pub struct RateLimiter {
    enabled: bool,
    buckets: DashMap<(Action, String), (f64, Instant)>,
    /// One lock per account being logged into, held only while an attempt runs.
    login_gates: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl RateLimiter {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            buckets: DashMap::new(),
            login_gates: DashMap::new(),
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

    /// Take one token for `key` doing `action`, or answer 429 with how long to wait.
    pub fn check(&self, action: Action, key: &str) -> ApiResult<()> {
        if !self.enabled {
            return Ok(());
        }
        let (burst, rate) = action.budget();
        let now = Instant::now();
        if self.buckets.len() > 100_000 {
            // Bounded memory under a flood of distinct keys: forget idle buckets.
            self.buckets
                .retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let mut e = self
            .buckets
            .entry((action, key.to_owned()))
            .or_insert((burst, now));
        let (tokens, last) = *e;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(burst);
        if tokens >= 1.0 {
            *e = (tokens - 1.0, now);
            Ok(())
        } else {
            *e = (tokens, now);
            Err(ApiError::rate_limited(((1.0 - tokens) / rate).ceil() as u64))
        }
    }
}
