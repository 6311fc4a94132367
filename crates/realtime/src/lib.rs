//! The live-event hub.
//!
//! Events are published to topics (a site's agents, one contact) and fanned out to every
//! subscriber of the topic. Each subscriber has its own bounded queue (a `broadcast` ring):
//! publishing never waits for a subscriber, and one that falls behind learns how many events
//! it missed (`Recv::Lagged`) so it can resync from the store instead of silently skipping.
//!
//! Agent sessions that end have a channel of their own per session (sessions.rs), apart from
//! the process-wide control notices, so that a logout can never be lost in a crowd.
//!
//! `LocalHub` serves one process; `NatsHub` (nats.rs) carries the same events between processes.

mod nats;
mod sessions;

use std::sync::Arc;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use nats::{BusSettings, NatsHub};
pub use sessions::{SessionNews, SessionWatch};

/// Per-subscriber queue length of a site's agents. A socket this far behind is told to resync.
pub const SUBSCRIBER_QUEUE: usize = 1024;
/// The same for one contact's topic. A topic's ring is allocated whole when its first socket
/// subscribes (~40 bytes a place), and every contact with an open socket has one: at 1,024
/// places that was ~44 KB of each idle contact socket's ~58 KB (session 10). A contact's topic
/// carries only its own conversations' events, pushed as they come; falling 32 behind takes
/// a client that stopped reading for seconds, and then it resyncs as before (message gaps are
/// filled from the store when the next message arrives).
pub const CONTACT_QUEUE: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    /// Everything agents of a site may see.
    Site(i64),
    /// Everything one contact may see.
    Contact(String),
}

/// A live event. `frame` is the JSON text sent to clients, serialized once for all of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub site_id: i64,
    pub contact_id: String,
    pub conversation_id: String,
    /// The conversation's messenger and kind: a contact's socket sees only those of its token.
    #[serde(default)]
    pub messenger_id: String,
    #[serde(default)]
    pub preview: bool,
    /// For message events: the message's seq, so a receiver can see gaps and fill them from
    /// the store. 0 for other events.
    pub seq: i64,
    /// When the event was published (Unix ms), for the send-to-push latency histogram.
    pub sent_at_ms: i64,
    pub frame: Arc<str>,
}

/// Process-wide notices: caches to drop. (Sessions that end have their own channel:
/// [`Hub::end_session`].)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Control {
    /// A messenger's Security settings changed.
    MessengerChanged { messenger_id: String },
    /// A contact's attributes changed: drop cached copies.
    ContactChanged {
        site_id: i64,
        identity: String,
        contact_id: String,
    },
    /// A contact was erased (CONTRACT §14): its access tokens stop working at once.
    ContactErased {
        site_id: i64,
        identity: String,
        contact_id: String,
    },
}

pub enum Recv {
    Event(Arc<Event>),
    /// This many events were dropped for this subscriber: resync from the store.
    Lagged(u64),
    Closed,
}

pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
}

impl Subscription {
    pub async fn recv(&mut self) -> Recv {
        match self.rx.recv().await {
            Ok(e) => Recv::Event(e),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("confidant_ws_resyncs_total").increment(1);
                Recv::Lagged(n)
            }
            Err(broadcast::error::RecvError::Closed) => Recv::Closed,
        }
    }
}

/// The hub as the server sees it.
pub trait Hub: Send + Sync + 'static {
    /// Deliver to every subscriber of the topics (on every process). Never waits.
    fn publish(&self, topics: &[Topic], event: Event);
    fn subscribe(&self, topic: Topic) -> Subscription;
    fn publish_control(&self, control: Control);
    fn subscribe_control(&self) -> broadcast::Receiver<Control>;
    /// An agent session ended (logout, agent deleted): tell its sockets on every process.
    fn end_session(&self, token_hash: &str);
    /// Watch an agent session for its end. The caller checks the store after this call, so
    /// that an end just before it is not missed either.
    fn watch_session(&self, token_hash: &str) -> SessionWatch;
    /// `in-process`, `connected` or `disconnected`, for `/healthz`.
    fn state(&self) -> &'static str;
}

/// The in-process fan-out, also the local half of `NatsHub`.
pub struct LocalHub {
    topics: DashMap<Topic, broadcast::Sender<Arc<Event>>>,
    control: broadcast::Sender<Control>,
    sessions: sessions::Sessions,
}

impl Default for LocalHub {
    fn default() -> Self {
        Self {
            topics: DashMap::new(),
            control: broadcast::channel(256).0,
            sessions: sessions::Sessions::default(),
        }
    }
}

impl LocalHub {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn deliver(&self, topics: &[Topic], event: Arc<Event>) {
        for t in topics {
            let mut drop_topic = false;
            if let Some(tx) = self.topics.get(t) {
                // An error only means nobody listens any more.
                drop_topic = tx.send(event.clone()).is_err();
            }
            if drop_topic {
                self.topics.remove_if(t, |_, tx| tx.receiver_count() == 0);
            }
        }
    }

    /// Whether anyone in this process subscribes to one of the topics. A topic whose last
    /// subscriber left is dropped here, as `deliver` would.
    pub(crate) fn listens(&self, topics: &[Topic]) -> bool {
        let mut listens = false;
        for t in topics {
            let Some(receivers) = self.topics.get(t).map(|tx| tx.receiver_count()) else {
                continue;
            };
            if receivers > 0 {
                listens = true;
            } else {
                self.topics.remove_if(t, |_, tx| tx.receiver_count() == 0);
            }
        }
        listens
    }

    pub(crate) fn deliver_control(&self, c: Control) {
        let _ = self.control.send(c);
    }

    pub(crate) fn deliver_session_end(&self, token_hash: &str) {
        self.sessions.end(token_hash);
    }

    /// Every watched session is re-checked in the store (notices may have been missed).
    pub(crate) fn recheck_sessions(&self) {
        self.sessions.recheck_all();
    }
}

impl Hub for LocalHub {
    fn publish(&self, topics: &[Topic], event: Event) {
        self.deliver(topics, Arc::new(event));
    }

    fn subscribe(&self, topic: Topic) -> Subscription {
        let queue = match topic {
            Topic::Site(_) => SUBSCRIBER_QUEUE,
            Topic::Contact(_) => CONTACT_QUEUE,
        };
        let tx = self
            .topics
            .entry(topic)
            .or_insert_with(|| broadcast::channel(queue).0);
        Subscription { rx: tx.subscribe() }
    }

    fn publish_control(&self, control: Control) {
        self.deliver_control(control);
    }

    fn subscribe_control(&self) -> broadcast::Receiver<Control> {
        self.control.subscribe()
    }

    fn end_session(&self, token_hash: &str) {
        self.deliver_session_end(token_hash);
    }

    fn watch_session(&self, token_hash: &str) -> SessionWatch {
        self.sessions.watch(token_hash)
    }

    fn state(&self) -> &'static str {
        "in-process"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn ev(seq: i64) -> Event {
        Event {
            site_id: 1,
            contact_id: "c".into(),
            conversation_id: "v".into(),
            messenger_id: "m".into(),
            preview: false,
            seq,
            sent_at_ms: 0,
            frame: Arc::from("{}"),
        }
    }

    #[tokio::test]
    async fn fan_out_and_isolation() {
        let hub = LocalHub::new();
        let mut a = hub.subscribe(Topic::Contact("a".into()));
        let mut b = hub.subscribe(Topic::Contact("b".into()));
        let mut site = hub.subscribe(Topic::Site(1));
        hub.publish(&[Topic::Contact("a".into()), Topic::Site(1)], ev(1));
        assert!(matches!(a.recv().await, Recv::Event(e) if e.seq == 1));
        assert!(matches!(site.recv().await, Recv::Event(e) if e.seq == 1));
        let nothing = tokio::time::timeout(std::time::Duration::from_millis(50), b.recv()).await;
        assert!(nothing.is_err(), "a bystander got an event");
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_without_stalling_others() {
        let hub = LocalHub::new();
        let mut slow = hub.subscribe(Topic::Site(1));
        let mut fast = hub.subscribe(Topic::Site(1));
        for i in 0..(SUBSCRIBER_QUEUE as i64 + 10) {
            hub.publish(&[Topic::Site(1)], ev(i));
            assert!(matches!(fast.recv().await, Recv::Event(e) if e.seq == i));
        }
        assert!(matches!(slow.recv().await, Recv::Lagged(10)));
    }
}
