//! Which contacts hold an open socket, shared by every server process through the store
//! (`contact_presence`): each process writes a row per contact when its first socket there
//! opens and its last one closes, and refreshes its rows with open sockets every
//! [`HEARTBEAT`]. A row that has not been refreshed for [`STALE_AFTER`] belongs to a process
//! that died: its sockets count for nothing, but its `seen_at` still says when the contact was
//! last there. The writes go through one task, in order, off the socket's path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use confidant_core::time_fmt::now_millis;
use confidant_core::{ContactId, SiteId};
use confidant_store::Store;
use tokio::sync::mpsc;

pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Three missed heartbeats.
pub const STALE_AFTER: Duration = Duration::from_secs(45);
/// Rows not seen for this long are deleted (beyond the 24-hour notice window).
const FORGET_AFTER_MS: i64 = 8 * 24 * 3600 * 1000;

struct Change {
    site: SiteId,
    contact: ContactId,
    sockets: usize,
}

pub struct Presence {
    open: Mutex<HashMap<ContactId, usize>>,
    changes: mpsc::UnboundedSender<Change>,
}

/// One open socket of a contact; dropping it counts the socket closed.
pub struct Here {
    presence: Arc<Presence>,
    site: SiteId,
    contact: ContactId,
}

impl Presence {
    pub fn start(store: Store) -> Arc<Presence> {
        let (tx, rx) = mpsc::unbounded_channel();
        // This process, in the presence rows (random per start).
        let node = uuid::Uuid::new_v4().to_string();
        tokio::spawn(write_changes(store, node, rx));
        Arc::new(Presence {
            open: Mutex::new(HashMap::new()),
            changes: tx,
        })
    }

    /// A socket of `contact` opened (not a preview's: previews get no notices).
    pub fn enter(self: &Arc<Self>, site: SiteId, contact: ContactId) -> Here {
        self.count(site, contact, true);
        Here {
            presence: self.clone(),
            site,
            contact,
        }
    }

    fn count(&self, site: SiteId, contact: ContactId, opened: bool) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(contact).or_insert(0);
        let before = *n;
        *n = if opened {
            before + 1
        } else {
            before.saturating_sub(1)
        };
        let now = *n;
        if now == 0 {
            open.remove(&contact);
        }
        // Only the first open and the last close change what other processes must know;
        // sent under the lock, so the writer sees them in order.
        if (before == 0) != (now == 0) {
            let _ = self.changes.send(Change {
                site,
                contact,
                sockets: now,
            });
        }
    }
}

impl Drop for Here {
    fn drop(&mut self) {
        self.presence.count(self.site, self.contact, false);
    }
}

async fn write_changes(store: Store, node: String, mut rx: mpsc::UnboundedReceiver<Change>) {
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut beats: u64 = 0;
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = rx.recv() => {
                let Some(c) = change else { break };
                let sockets = i64::try_from(c.sockets).unwrap_or(i64::MAX);
                if let Err(e) = store.set_presence(&node, c.site, c.contact, sockets, now_millis()).await {
                    tracing::warn!(error = %e, "cannot record a contact's presence");
                }
            }
            _ = beat.tick() => {
                let now = now_millis();
                // The clean-up scans the table: once an hour is enough.
                let forget = beats.is_multiple_of(240).then_some(now - FORGET_AFTER_MS);
                beats += 1;
                if let Err(e) = store.presence_heartbeat(&node, now, forget).await {
                    tracing::debug!(error = %e, "presence heartbeat failed");
                }
            }
        }
    }
}
