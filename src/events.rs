//! The table event stream: every change of the forwarding table (and, through the same bus,
//! of ports, the multicast database and the spanning tree), for whoever follows the switch without polling: the
//! `GET /api/v1/events` stream, `tapswitch monitor`, the EVPN service.
//!
//! One bounded broadcast ring ([`EVENTS_CAPACITY`] events): publishing never blocks, and a
//! table event never allocates (it names its port by id; a port event carries the name, the
//! port being possibly gone when it is read); a reader that falls behind by
//! more than the ring loses the oldest events and is told how many
//! (`RecvError::Lagged`), after which it re-reads the state it follows (the EVPN service dumps
//! the table again; the HTTP stream sends a `lagged` line). With no reader, publishing is one
//! check.

use tokio::sync::broadcast;

use crate::fdb::{Change, EntryKind, FdbChange, FdbWatch};
use crate::types::PortId;
use crate::wire::MacAddr;

/// Events the ring holds for a slow reader.
pub const EVENTS_CAPACITY: usize = 8192;

/// One change of the switch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A forwarding-table entry was added, moved or removed.
    Fdb {
        /// The address.
        mac: MacAddr,
        /// The VLAN (0 with VLAN filtering off).
        vlan: u16,
        /// Its port (the one it was on, when removed).
        port: PortId,
        /// Its kind.
        kind: EntryKind,
        /// What happened.
        what: Change,
    },
    /// The EVPN mobility sequence number of an entry changed (RFC 7432 section 15; see
    /// `evpn::sync`).
    FdbSeq {
        /// The address.
        mac: MacAddr,
        /// The VLAN.
        vlan: u16,
        /// Its port now.
        port: PortId,
        /// The number now.
        seq: u32,
    },
    /// A port was attached or removed, or its link state changed.
    Port {
        /// The port.
        port: PortId,
        /// Its name.
        name: std::sync::Arc<str>,
        /// `attached`, `up`, `down`, `gone` (its interface or peer went away) or `removed`.
        state: &'static str,
    },
    /// A change of the multicast database (IGMP/MLD snooping): a port group added, changed
    /// or removed, a router port, a querier.
    Mdb(crate::mcast::Event),
    /// A port's spanning-tree state changed.
    Stp {
        /// The port.
        port: PortId,
        /// Its name.
        name: std::sync::Arc<str>,
        /// Its state (`discarding`, `learning`, `forwarding`, ...).
        state: &'static str,
    },
}

/// The bus; see the module documentation.
#[derive(Debug)]
pub struct Events {
    tx: broadcast::Sender<Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(EVENTS_CAPACITY).0,
        }
    }
}

impl Events {
    /// Publishes one event (dropped when nobody listens).
    pub fn publish(&self, e: Event) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(e);
        }
    }

    /// A new reader, which sees the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl FdbWatch for Events {
    fn changed(&self, c: FdbChange) {
        self.publish(Event::Fdb {
            mac: c.key.mac,
            vlan: c.key.vlan,
            port: c.port,
            kind: c.kind,
            what: c.what,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdb::{Fdb, FdbKey};
    use crate::types::Timestamp;
    use std::sync::Arc;

    #[test]
    fn the_table_reports_learning_moves_and_removals() {
        let bus = Arc::new(Events::default());
        let fdb = Fdb::new(100);
        fdb.set_watch(bus.clone());
        let mut rx = bus.subscribe();
        let k = FdbKey::new(MacAddr([2, 0, 0, 0, 0, 1]), 10);
        fdb.learn(k, PortId(1), Timestamp(0));
        fdb.learn(k, PortId(1), Timestamp(5)); // a refresh: no event
        fdb.learn(k, PortId(2), Timestamp(6));
        fdb.age_out(Timestamp(1_000_000), 300_000);
        let what: Vec<(PortId, Change)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| match e {
                Event::Fdb { port, what, .. } => (port, what),
                e => panic!("{e:?}"),
            })
            .collect();
        assert_eq!(
            what,
            [
                (PortId(1), Change::Added),
                (PortId(2), Change::Moved(PortId(1))),
                (PortId(2), Change::Removed)
            ]
        );
        // an extern_learn entry taken over by local learning is a move
        fdb.insert_user(k, PortId(9), EntryKind::ExternLearn, true, Timestamp(0))
            .unwrap();
        fdb.learn(k, PortId(1), Timestamp(1));
        assert!(matches!(
            rx.try_recv().unwrap(),
            Event::Fdb {
                kind: EntryKind::ExternLearn,
                what: Change::Added,
                ..
            }
        ));
        assert!(matches!(
            rx.try_recv().unwrap(),
            Event::Fdb {
                kind: EntryKind::Dynamic,
                what: Change::Moved(PortId(9)),
                ..
            }
        ));
    }

    #[test]
    fn a_slow_reader_is_told_it_lagged() {
        let bus = Events::default();
        let mut rx = bus.subscribe();
        for i in 0..EVENTS_CAPACITY + 5 {
            bus.publish(Event::Port {
                port: PortId(i as u32),
                name: "p".into(),
                state: "up",
            });
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
    }
}
