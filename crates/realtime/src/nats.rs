//! The NATS hub: events cross processes over NATS; each process fans them out to its own
//! subscribers through a `LocalHub`.
//!
//! A process delivers its own events locally at once and forwards them to NATS through a
//! bounded queue; events from other processes arrive on one wildcard subscription. NATS is a
//! best-effort carrier: the store is the source of truth, and a socket that sees a gap in a
//! conversation's `seq` fills it from the store, so a lost bus message delays a push but never
//! loses a message. A bus that does not answer at start-up is a start-up error; later outages
//! are ridden out (async-nats reconnects by itself) and `state()` reports the connection.
//!
//! Session ends go on a subject of their own and skip the shared outbox (which drops when
//! full): each is handed to the client at once. A notice lost anyway (the bus was down) is
//! covered by the sockets' re-check of their session in the store, which a reconnect triggers.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::{Control, Event, Hub, LocalHub, SessionWatch, Subscription, Topic};

const EVENTS: &str = "confidant.events";
const CONTROL: &str = "confidant.control";
const SESSIONS: &str = "confidant.sessions";
const OUTBOX: usize = 65_536;

#[derive(Serialize, Deserialize)]
enum Wire {
    Event {
        node: String,
        topics: Vec<Topic>,
        event: Event,
    },
    Control {
        node: String,
        control: Control,
    },
    SessionEnded {
        node: String,
        token_hash: String,
    },
}

/// What a receiver reads of a `Wire::Event` first: who sent it and where it goes. Decoding
/// the event itself (its frame is JSON inside a JSON string) is most of a receipt's cost, and
/// a process with no subscriber for any of the topics would throw the event away. The
/// serializer writes the fields in order (`{"Event":{"node":…,"topics":…,"event":…}}`), so
/// the head is read from the front and the event is not even scanned; anything else (another
/// layout) is decoded whole.
fn event_head(payload: &[u8]) -> Option<(&[u8], Vec<Topic>)> {
    let rest = payload.strip_prefix(br#"{"Event":{"node":""#)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    let (node, rest) = (&rest[..end], &rest[end..]);
    let rest = rest.strip_prefix(br#"","topics":"#)?;
    let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Vec<Topic>>();
    let topics = values.next()?.ok()?;
    rest[values.byte_offset()..]
        .starts_with(br#","event":"#)
        .then_some((node, topics))
}

/// Deliver an event received from the bus, unless it is this process's own or nobody here
/// listens to its topics. Returns whether it was delivered.
fn receive(local: &LocalHub, own_node: &str, payload: &[u8]) -> bool {
    if let Some((node, topics)) = event_head(payload)
        && (node == own_node.as_bytes() || !local.listens(&topics))
    {
        return false;
    }
    match serde_json::from_slice(payload) {
        Ok(Wire::Event {
            node,
            topics,
            event,
        }) if node != own_node => {
            local.deliver(&topics, Arc::new(event));
            true
        }
        _ => false,
    }
}

pub struct NatsHub {
    local: Arc<LocalHub>,
    client: async_nats::Client,
    node: String,
    outbox: mpsc::Sender<(&'static str, Vec<u8>)>,
    connected: Arc<AtomicBool>,
}

/// How to reach and authenticate to the bus.
#[derive(Clone, Copy)]
pub struct BusSettings<'a> {
    /// `nats://` or `tls://`, with `user:password@` or `token@` when the server asks for them.
    pub url: &'a str,
    /// A NATS credentials file (user JWT and NKey seed), for servers run in operator mode.
    pub creds_file: Option<&'a Path>,
    /// Refuse a connection that is not TLS (also implied by a `tls://` URL).
    pub require_tls: bool,
}

/// What the bus URL itself authenticates with.
#[derive(Debug, PartialEq, Eq)]
enum UrlAuth {
    None,
    UserPassword(String, String),
    /// `nats://token@host`: a lone user part is the server's authorization token.
    Token(String),
}

/// async-nats reads no credentials from the URL, so they are taken out of it here; what is
/// left is the address, which is safe to show. An error never quotes the URL.
fn split_url(raw: &str) -> anyhow::Result<(UrlAuth, String)> {
    let mut url =
        url::Url::parse(raw).map_err(|e| anyhow::anyhow!("the bus URL does not parse ({e})"))?;
    if !matches!(url.scheme(), "nats" | "tls") || url.host_str().is_none() {
        anyhow::bail!("the bus URL must be nats://host:port or tls://host:port");
    }
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let user = decode(url.username());
    let password = url.password().map(decode);
    let auth = match (user.is_empty(), password) {
        (true, None) => UrlAuth::None,
        (true, Some(_)) => anyhow::bail!("the bus URL has a password but no user name"),
        (false, Some(password)) => UrlAuth::UserPassword(user, password),
        (false, None) => UrlAuth::Token(user),
    };
    // Cannot fail: the URL has a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((auth, url.to_string()))
}

async fn connect_options(
    settings: BusSettings<'_>,
) -> anyhow::Result<(async_nats::ConnectOptions, String)> {
    let (auth, address) = split_url(settings.url)?;
    let mut options = async_nats::ConnectOptions::new();
    match auth {
        UrlAuth::None => {}
        _ if settings.creds_file.is_some() => anyhow::bail!(
            "give the bus either credentials in its URL or a credentials file, not both"
        ),
        UrlAuth::UserPassword(user, password) => {
            options = options.user_and_password(user, password);
        }
        UrlAuth::Token(token) => options = options.token(token),
    }
    if let Some(path) = settings.creds_file {
        options = options
            .credentials_file(path)
            .await
            .with_context(|| format!("cannot read the bus credentials file {}", path.display()))?;
    }
    if settings.require_tls || address.starts_with("tls://") {
        options = options.require_tls(true);
    }
    Ok((options, address))
}

impl NatsHub {
    pub async fn connect(settings: BusSettings<'_>) -> anyhow::Result<NatsHub> {
        let (options, address) = connect_options(settings).await?;
        let connected = Arc::new(AtomicBool::new(false));
        let flag = connected.clone();
        let local = Arc::new(LocalHub::new());
        let l0 = local.clone();
        let client = options
            // A process delivers its own events locally at once: the bus need not send them
            // back (each would be read, decoded and dropped).
            .no_echo()
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |e| {
                let (flag, local) = (flag.clone(), l0.clone());
                async move {
                    match e {
                        // Session ends published while the bus was away are lost: re-check.
                        async_nats::Event::Connected if !flag.swap(true, Ordering::Relaxed) => {
                            local.recheck_sessions();
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("bus disconnected; live events between processes pause until it returns");
                            flag.store(false, Ordering::Relaxed)
                        }
                        _ => {}
                    }
                }
            })
            .connect(address.as_str())
            .await
            .with_context(|| format!("cannot reach the bus at {address}"))?;
        connected.store(true, Ordering::Relaxed);
        let node = uuid::Uuid::new_v4().to_string();

        let mut events = client.subscribe(EVENTS).await.context("bus subscribe")?;
        let mut controls = client.subscribe(CONTROL).await.context("bus subscribe")?;
        let mut sessions = client.subscribe(SESSIONS).await.context("bus subscribe")?;
        let (outbox, mut rx) = mpsc::channel::<(&'static str, Vec<u8>)>(OUTBOX);
        let publisher = client.clone();
        tokio::spawn(async move {
            while let Some((subject, bytes)) = rx.recv().await {
                if let Err(e) = publisher.publish(subject, bytes.into()).await {
                    tracing::debug!(error = %e, "bus publish failed");
                }
            }
        });
        let (l1, n1) = (local.clone(), node.clone());
        tokio::spawn(async move {
            while let Some(msg) = events.next().await {
                receive(&l1, &n1, &msg.payload);
            }
        });
        let (l2, n2) = (local.clone(), node.clone());
        tokio::spawn(async move {
            while let Some(msg) = controls.next().await {
                if let Ok(Wire::Control { node, control }) = serde_json::from_slice(&msg.payload)
                    && node != n2
                {
                    l2.deliver_control(control);
                }
            }
        });
        let (l3, n3) = (local.clone(), node.clone());
        tokio::spawn(async move {
            while let Some(msg) = sessions.next().await {
                if let Ok(Wire::SessionEnded { node, token_hash }) =
                    serde_json::from_slice(&msg.payload)
                    && node != n3
                {
                    l3.deliver_session_end(&token_hash);
                }
            }
        });
        Ok(NatsHub {
            local,
            client,
            node,
            outbox,
            connected,
        })
    }

    fn forward(&self, subject: &'static str, wire: &Wire) {
        match serde_json::to_vec(wire) {
            // A full outbox drops the bus copy; receivers fill gaps from the store.
            Ok(bytes) => {
                if self.outbox.try_send((subject, bytes)).is_err() {
                    metrics::counter!("confidant_bus_dropped_total").increment(1);
                }
            }
            Err(e) => tracing::error!(error = %e, "bus encode failed"),
        }
    }
}

impl Hub for NatsHub {
    fn publish(&self, topics: &[Topic], event: Event) {
        let wire = Wire::Event {
            node: self.node.clone(),
            topics: topics.to_vec(),
            event,
        };
        self.forward(EVENTS, &wire);
        if let Wire::Event { event, .. } = wire {
            self.local.deliver(topics, Arc::new(event));
        }
    }
    fn subscribe(&self, topic: Topic) -> Subscription {
        self.local.subscribe(topic)
    }
    fn publish_control(&self, control: Control) {
        self.forward(
            CONTROL,
            &Wire::Control {
                node: self.node.clone(),
                control: control.clone(),
            },
        );
        self.local.deliver_control(control);
    }
    fn subscribe_control(&self) -> broadcast::Receiver<Control> {
        self.local.subscribe_control()
    }
    fn end_session(&self, token_hash: &str) {
        self.local.deliver_session_end(token_hash);
        let wire = Wire::SessionEnded {
            node: self.node.clone(),
            token_hash: token_hash.to_owned(),
        };
        match serde_json::to_vec(&wire) {
            Ok(bytes) => {
                let client = self.client.clone();
                tokio::spawn(async move {
                    if let Err(e) = client.publish(SESSIONS, bytes.into()).await {
                        tracing::warn!(error = %e, "bus publish of a session end failed; other processes re-check sessions periodically");
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, "bus encode failed"),
        }
    }
    fn watch_session(&self, token_hash: &str) -> SessionWatch {
        self.local.watch_session(token_hash)
    }
    fn state(&self) -> &'static str {
        if self.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_event(node: &str, topics: Vec<Topic>, seq: i64) -> Vec<u8> {
        serde_json::to_vec(&Wire::Event {
            node: node.into(),
            topics,
            event: Event {
                frame: Arc::from(r#"{"type":"message","body":"a \"quoted\" \\ word"}"#),
                ..crate::tests::ev(seq)
            },
        })
        .unwrap()
    }

    #[test]
    fn the_head_of_an_event_is_read_without_the_event() {
        let topics = vec![Topic::Contact("c\"1".into()), Topic::Site(7)];
        let payload = wire_event("node-a", topics.clone(), 3);
        let (node, head) = event_head(&payload).expect("the serializer's layout");
        assert_eq!((node, head), (&b"node-a"[..], topics));
        // Another layout is not misread: it is decoded whole instead.
        assert!(event_head(br#"{"Event":{"topics":[],"node":"x","event":{}}}"#).is_none());
        assert!(event_head(br#"{"Event":{"node":"x\"y","topics":[],"event":{}}}"#).is_none());
        assert!(event_head(br#"{"Event":{"node":"x","topics":[],"other":{}}}"#).is_none());
    }

    #[tokio::test]
    async fn events_are_received_only_where_someone_listens() {
        let local = LocalHub::new();
        let here = Topic::Contact("here".into());
        let payload = |node: &str, seq| wire_event(node, vec![here.clone(), Topic::Site(1)], seq);
        // Nobody listens yet: not decoded, not delivered.
        assert!(!receive(&local, "me", &payload("other", 1)));
        let mut sub = local.subscribe(here.clone());
        assert!(receive(&local, "me", &payload("other", 2)));
        assert!(
            matches!(sub.recv().await, crate::Recv::Event(e) if e.seq == 2 && e.frame.contains("quoted"))
        );
        // Its own events a process has delivered already.
        assert!(!receive(&local, "me", &payload("me", 3)));
        // A subscriber gone: its topic is dropped on the next receipt.
        drop(sub);
        assert!(!receive(&local, "me", &payload("other", 4)));
        assert!(local.topics.is_empty());
    }

    #[test]
    fn credentials_leave_the_url() {
        let (auth, address) =
            split_url("nats://confidant:p%40ss%3Aword@bus.internal:4222").unwrap();
        assert_eq!(
            auth,
            UrlAuth::UserPassword("confidant".into(), "p@ss:word".into())
        );
        assert_eq!(address, "nats://bus.internal:4222");
        let (auth, address) = split_url("tls://s3cr3t-token@bus.internal").unwrap();
        assert_eq!(auth, UrlAuth::Token("s3cr3t-token".into()));
        assert_eq!(address, "tls://bus.internal");
        let (auth, _) = split_url("nats://127.0.0.1:4222").unwrap();
        assert_eq!(auth, UrlAuth::None);
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_them() {
        for bad in [
            "nats://:hunter2-secret@bus.internal",
            "redis://user:hunter2-secret@bus.internal",
            "nats://user:hunter2-secret@",
            "hunter2-secret",
        ] {
            let e = format!("{:#}", split_url(bad).unwrap_err());
            assert!(!e.contains("hunter2-secret"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_creds_file_excludes_url_credentials_and_must_exist() {
        let both = BusSettings {
            url: "nats://user:hunter2-secret@127.0.0.1:4222",
            creds_file: Some(Path::new("/nonexistent/confidant.creds")),
            require_tls: false,
        };
        let e = format!("{:#}", connect_options(both).await.err().unwrap());
        assert!(
            e.contains("not both") && !e.contains("hunter2-secret"),
            "{e}"
        );
        let missing = BusSettings {
            url: "nats://127.0.0.1:4222",
            ..both
        };
        let e = format!("{:#}", connect_options(missing).await.err().unwrap());
        assert!(e.contains("/nonexistent/confidant.creds"), "{e}");
    }
}
