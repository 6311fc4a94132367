//! Agent sessions that end: each session with an open socket in this process has its own
//! `watch` channel, so a logout reaches every socket of the session however busy or slow it
//! is. Nothing is shared between sessions, so no ring of notices can overflow and lose one
//! (the fault of the one control broadcast this replaces).
//!
//! An entry lives while a [`SessionWatch`] of it does: the last socket of a session removes it.
//! A session that ends while no socket watches it leaves nothing behind; a socket that starts
//! watching checks the store afterwards (the store is the truth, this is the fast path).

use std::future::pending;
use std::sync::Arc;

use dashmap::DashMap;
use tokio::sync::watch;

#[derive(Default)]
pub(crate) struct Sessions {
    live: Arc<DashMap<String, watch::Sender<bool>>>,
    /// Bumped when notices may have been missed (the bus reconnected): every socket re-checks
    /// its session in the store.
    recheck: Arc<watch::Sender<u64>>,
}

impl Sessions {
    pub(crate) fn watch(&self, token_hash: &str) -> SessionWatch {
        let ended = self
            .live
            .entry(token_hash.to_owned())
            .or_insert_with(|| watch::channel(false).0)
            .subscribe();
        SessionWatch {
            token_hash: token_hash.to_owned(),
            ended,
            recheck: self.recheck.subscribe(),
            live: self.live.clone(),
        }
    }

    /// Tell the sockets of this session (in this process) that it ended.
    pub(crate) fn end(&self, token_hash: &str) {
        if let Some(tx) = self.live.get(token_hash) {
            tx.send_replace(true);
        }
    }

    pub(crate) fn recheck_all(&self) {
        self.recheck.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// One socket's view of its agent session.
pub struct SessionWatch {
    token_hash: String,
    ended: watch::Receiver<bool>,
    recheck: watch::Receiver<u64>,
    live: Arc<DashMap<String, watch::Sender<bool>>>,
}

impl SessionWatch {
    pub fn token_hash(&self) -> &str {
        &self.token_hash
    }

    /// Whether the session has ended (checked before every push).
    pub fn has_ended(&self) -> bool {
        *self.ended.borrow()
    }

    /// Resolves when the session ends. Cancel-safe.
    pub async fn ended(&mut self) {
        let ended = self.ended.wait_for(|ended| *ended).await.is_ok();
        if !ended {
            // The registry keeps the sender while this receiver lives; never reached.
            pending::<()>().await;
        }
    }

    /// Resolves when the hub asks every socket to re-check its session in the store. Cancel-safe.
    pub async fn recheck(&mut self) {
        if self.recheck.changed().await.is_err() {
            pending::<()>().await;
        }
    }

    /// The next news of the session: it ended, or it must be re-checked. Cancel-safe.
    pub async fn news(&mut self) -> SessionNews {
        // The guard `wait_for` returns must not live across an await (it is not `Send`).
        let ended = async { self.ended.wait_for(|ended| *ended).await.is_ok() };
        let recheck = async { self.recheck.changed().await.is_ok() };
        tokio::select! {
            true = ended => SessionNews::Ended,
            true = recheck => SessionNews::Recheck,
            else => pending().await,
        }
    }
}

/// What [`SessionWatch::news`] tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionNews {
    Ended,
    /// Notices may have been missed: look the session up in the store.
    Recheck,
}

impl Drop for SessionWatch {
    fn drop(&mut self) {
        // Under the map's shard lock, like `watch` above: `ended` is still counted here, so
        // one receiver left means this was the session's last socket.
        self.live
            .remove_if(&self.token_hash, |_, tx| tx.receiver_count() <= 1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_end_reaches_every_watcher_and_the_last_one_cleans_up() {
        let sessions = Sessions::default();
        let mut a = sessions.watch("s1");
        let mut b = sessions.watch("s1");
        let other = sessions.watch("s2");
        sessions.end("s1");
        assert!(a.has_ended() && b.has_ended() && !other.has_ended());
        tokio::time::timeout(Duration::from_secs(1), a.ended())
            .await
            .expect("ended");
        tokio::time::timeout(Duration::from_secs(1), b.ended())
            .await
            .expect("ended");
        drop(a);
        assert!(sessions.live.contains_key("s1"));
        drop(b);
        assert!(!sessions.live.contains_key("s1"));
        // Many ends of other sessions never crowd out this one's.
        for i in 0..10_000 {
            sessions.end(&format!("x{i}"));
        }
        let mut c = sessions.watch("s3");
        sessions.end("s3");
        tokio::time::timeout(Duration::from_secs(1), c.ended())
            .await
            .expect("ended");
        drop((c, other));
        assert!(sessions.live.is_empty());
    }

    #[tokio::test]
    async fn a_recheck_reaches_every_watcher() {
        let sessions = Sessions::default();
        let mut a = sessions.watch("s1");
        sessions.recheck_all();
        let news = tokio::time::timeout(Duration::from_secs(1), a.news()).await;
        assert_eq!(news.expect("news"), SessionNews::Recheck);
        sessions.end("s1");
        let news = tokio::time::timeout(Duration::from_secs(1), a.news()).await;
        assert_eq!(news.expect("news"), SessionNews::Ended);
    }
}
