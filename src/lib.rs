//! tapswitch: a userspace MAC-learning Ethernet switch over TAP interfaces.
//!
//! Layers, from the bottom:
//! - [`wire`]: packet views (Ethernet with VLAN tags, IP, IGMP, MLD). No I/O.
//! - [`fdb`]: the bounded forwarding table; time is an argument. No I/O, no clock.
//! - [`forwarding`]: the forwarding decision ([`forwarding::decide`]) and port flags.
//! - [`port`]: the [`port::Port`] trait with TAP and in-memory implementations; `port::sys` is
//!   the only module with `unsafe` (ioctls).
//! - [`dataplane`]: the switch at run time: its ports, counters, the receive loops and the
//!   only per-frame syscalls.
//! - [`config`], [`api`], [`metrics`], [`cli`]: configuration, the HTTP endpoint and the
//!   command line.
//! - [`wire`]: checked, borrowed packet views (IPv4/IPv6, IGMP, MLD). No I/O.
//! - [`mcast`]: IGMP/MLD snooping: the MDB state machine, querier, router ports and the
//!   read-mostly forwarding view the frame path asks. No I/O, no clock.
//! - [`capture`]: live packet capture (pcapng/pcap streams) and port mirroring; the frame
//!   path's side of it is in [`dataplane`].
//!
//! Invariants: a frame never leaves through its ingress port unless that port has `hairpin`;
//! no port receives one frame twice; the table never holds more learned entries than its limit;
//! nothing on the frame path panics or allocates.

pub mod api;
pub mod buf;
pub mod capture;
pub mod cli;
pub mod client;
pub mod config;
pub mod conn_cap;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod demo;
pub mod fdb;
pub mod forwarding;
pub mod mcast;
pub mod metrics;
pub mod offload;
pub mod page;
pub mod port;
pub mod stp;
pub mod types;
pub mod validate;
pub mod vlan;
pub mod vxlan;
pub mod wire;

/// An error with its sources, `outer: inner: innermost`, as users should read it (the
/// errors of this crate keep a wrapped error as a source instead of repeating its text).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
