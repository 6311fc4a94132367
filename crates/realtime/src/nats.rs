//! The NATS hub: events cross processes over NATS; each process fans them out to its own
//! subscribers through a `LocalHub`.
//!
//! A process delivers its own events locally at once and forwards them to NATS through a
//! bounded queue; events from other processes arrive on one wildcard subscription. NATS is a
//! best-effort carrier: the store is the source of truth, and a socket that sees a gap in a
//! conversation's `seq` fills it from the store, so a lost bus message delays a push but never
//! loses a message. A bus that does not answer at start-up is a start-up error; later outages
//! are ridden out (async-nats reconnects by itself) and `state()` reports the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::{Control, Event, Hub, LocalHub, Subscription, Topic};

const EVENTS: &str = "confidant.events";
const CONTROL: &str = "confidant.control";
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
}

pub struct NatsHub {
    local: Arc<LocalHub>,
    node: String,
    outbox: mpsc::Sender<(&'static str, Vec<u8>)>,
    connected: Arc<AtomicBool>,
}

impl NatsHub {
    pub async fn connect(url: &str) -> anyhow::Result<NatsHub> {
        let connected = Arc::new(AtomicBool::new(false));
        let flag = connected.clone();
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |e| {
                let flag = flag.clone();
                async move {
                    match e {
                        async_nats::Event::Connected => flag.store(true, Ordering::Relaxed),
                        async_nats::Event::Disconnected => {
                            tracing::warn!("bus disconnected; live events between processes pause until it returns");
                            flag.store(false, Ordering::Relaxed)
                        }
                        _ => {}
                    }
                }
            })
            .connect(url)
            .await
            .with_context(|| format!("cannot reach the bus at {}", url.split('@').next_back().unwrap_or("?")))?;
        connected.store(true, Ordering::Relaxed);
        let local = Arc::new(LocalHub::new());
        let node = uuid::Uuid::new_v4().to_string();

        let mut events = client.subscribe(EVENTS).await.context("bus subscribe")?;
        let mut controls = client.subscribe(CONTROL).await.context("bus subscribe")?;
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
                if let Ok(Wire::Event {
                    node,
                    topics,
                    event,
                }) = serde_json::from_slice(&msg.payload)
                    && node != n1
                {
                    l1.deliver(&topics, Arc::new(event));
                }
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
        Ok(NatsHub {
            local,
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
    fn state(&self) -> &'static str {
        if self.connected.load(Ordering::Relaxed) {
            "connected"
        } else {
            "disconnected"
        }
    }
}
