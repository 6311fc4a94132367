//! Caps on open WebSockets: per client address (an IPv6 /64 counts as one address), per contact
//! and per agent session. Each socket holds a [`Slot`] per cap; dropping the slot (the socket's
//! task ends, or its upgrade never happens) gives the place back.
//!
//! The numbers are far above what a person meets (a browser tab holds one socket; 20 tabs of
//! one contact or one agent session, 500 sockets behind one office or carrier NAT address), so
//! they only stop one client from holding thousands of tasks and buffers. `--rate-limits off`
//! lifts the per-address cap (a load test opens thousands of sockets from one address) but not
//! the per-contact and per-session caps, which a load test with many contacts never meets.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use confidant_core::ContactId;
use dashmap::DashMap;

/// Open sockets (both kinds) from one client address.
pub const PER_ADDRESS: usize = 500;
/// Open sockets of one contact (any messenger of its site).
pub const PER_CONTACT: usize = 20;
/// Open sockets of one agent session.
pub const PER_SESSION: usize = 20;

#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    /// A client address, IPv6 cut to its /64 (`limits::limit_key`).
    Address(IpAddr),
    Contact(ContactId),
    /// An agent session, by its token hash.
    Session(String),
}

pub struct SocketCaps {
    /// Whether the per-address cap applies (`--rate-limits on`).
    per_address: bool,
    open: Arc<DashMap<Holder, usize>>,
    /// Every open socket of this process (each holds an address slot, capped or not).
    total: Arc<AtomicUsize>,
}

/// One socket's place under one cap.
pub struct Slot {
    holder: Holder,
    open: Arc<DashMap<Holder, usize>>,
    total: Option<Arc<AtomicUsize>>,
}

impl SocketCaps {
    pub fn new(rate_limits: bool) -> Self {
        Self {
            per_address: rate_limits,
            open: Arc::new(DashMap::new()),
            total: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A place for one more socket held by `holder`, or `None` when it holds its cap already.
    pub fn take(&self, holder: Holder) -> Option<Slot> {
        let (cap, total) = match &holder {
            Holder::Address(_) if self.per_address => (PER_ADDRESS, Some(self.total.clone())),
            Holder::Address(_) => (usize::MAX, Some(self.total.clone())),
            Holder::Contact(_) => (PER_CONTACT, None),
            Holder::Session(_) => (PER_SESSION, None),
        };
        {
            // Counted under the entry's shard lock: two sockets cannot both take the last place.
            let mut n = self.open.entry(holder.clone()).or_insert(0);
            if *n >= cap {
                return None;
            }
            *n += 1;
        }
        if let Some(t) = &total {
            t.fetch_add(1, Ordering::Relaxed);
        }
        Some(Slot {
            holder,
            open: self.open.clone(),
            total,
        })
    }

    /// How many sockets are open in this process.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mut n) = self.open.get_mut(&self.holder) {
            *n = n.saturating_sub(1);
        }
        self.open.remove_if(&self.holder, |_, n| *n == 0);
        if let Some(t) = &self.total {
            t.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_holds_and_a_dropped_slot_gives_its_place_back() {
        let caps = SocketCaps::new(true);
        let contact = ContactId::new();
        let slots: Vec<Slot> = (0..PER_CONTACT)
            .map(|_| caps.take(Holder::Contact(contact)).expect("under the cap"))
            .collect();
        assert!(caps.take(Holder::Contact(contact)).is_none());
        assert!(caps.take(Holder::Contact(ContactId::new())).is_some());
        drop(slots);
        assert!(caps.take(Holder::Contact(contact)).is_some());
        assert!(caps.open.is_empty(), "no entry is left behind");
    }

    #[test]
    fn the_address_cap_counts_a_v6_64_as_one_and_lifts_with_rate_limits_off() {
        use crate::limits::limit_key as address_key;
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            address_key(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );

        let caps = SocketCaps::new(true);
        let held: Vec<Slot> = (0..PER_ADDRESS)
            .map(|_| caps.take(Holder::Address(address_key(a))).expect("slot"))
            .collect();
        assert!(caps.take(Holder::Address(address_key(b))).is_none());
        assert!(caps.take(Holder::Address(address_key(c))).is_some());
        assert_eq!(caps.open(), PER_ADDRESS);
        drop(held);
        assert_eq!(caps.open(), 0);

        let off = SocketCaps::new(false);
        let held: Vec<Slot> = (0..PER_ADDRESS + 1)
            .map(|_| off.take(Holder::Address(address_key(a))).expect("no cap"))
            .collect();
        assert_eq!(off.open(), PER_ADDRESS + 1);
        let contact = ContactId::new();
        let _c: Vec<Slot> = (0..PER_CONTACT)
            .map(|_| off.take(Holder::Contact(contact)).expect("slot"))
            .collect();
        assert!(
            off.take(Holder::Contact(contact)).is_none(),
            "off keeps the per-contact cap"
        );
        drop(held);
    }
}
