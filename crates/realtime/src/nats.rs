//! The NATS hub: events cross processes over NATS subjects; each process fans them out locally.
//! (Implemented in the scale-out work; until then `NatsHub::connect` reports it unsupported.)

use tokio::sync::broadcast;

use crate::{Control, Event, Hub, LocalHub, Subscription, Topic};

pub struct NatsHub {
    local: LocalHub,
}

impl NatsHub {
    pub async fn connect(_url: &str) -> anyhow::Result<NatsHub> {
        anyhow::bail!("the NATS bus is not available in this build yet")
    }
}

impl Hub for NatsHub {
    fn publish(&self, topics: &[Topic], event: Event) {
        self.local.publish(topics, event);
    }
    fn subscribe(&self, topic: Topic) -> Subscription {
        self.local.subscribe(topic)
    }
    fn publish_control(&self, control: Control) {
        self.local.publish_control(control);
    }
    fn subscribe_control(&self) -> broadcast::Receiver<Control> {
        self.local.subscribe_control()
    }
    fn state(&self) -> &'static str {
        "disconnected"
    }
}
