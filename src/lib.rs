//! tapswitch: a userspace MAC-learning Ethernet switch over TAP interfaces.
//!
//! Layers, from the bottom. The pure core (no fds, no clock, no threads, no HTTP; time is an
//! argument; `tests/layers.rs` checks it imports nothing else):
//! - [`types`], [`buf`]: port ids, timestamps, limits; page-aligned frame buffers.
//! - [`wire`]: every packet view: Ethernet with VLAN tags, IP, TCP/UDP through smoltcp's views,
//!   IGMP, MLD, the Internet checksum.
//! - [`fdb`]: the bounded forwarding table and the learning budget VTEP tables share.
//! - [`forwarding`]: the forwarding decision ([`forwarding::decide`], which learns into the
//!   table) and port flags; [`vlan`]: VLAN membership, classification and tag surgery.
//! - [`offload`]: virtio_net_hdr, GSO bounds, software segmentation and checksum completion.
//! - [`stp`]: RSTP (802.1D-2004 clause 17) state machines and BPDUs.
//! - [`vxlan`]: the VXLAN codec, GRO and the VTEP table; [`mcast`]: IGMP/MLD snooping (the MDB,
//!   querier, router ports and the forwarding view the frame path asks).
//! - [`neigh`]: the MAC+IP table and the rules of ARP/ND suppression.
//! - [`validate`], [`page`]: value ranges; bounded pages of table listings.
//!
//! Around it:
//! - [`port`]: the [`port::Port`] trait and its kinds (TAP, packet, stream, dgram, vhost-user,
//!   vxlan, in-memory); `port::sys` is the only module with `unsafe`.
//! - [`dataplane`]: the running [`dataplane::Switch`], its workers and the only per-frame
//!   syscalls; captures, mirrors and the spanning tree attach through hooks it owns.
//! - [`capture`]: captures (pcapng/pcap) and mirrors, through [`capture::Host`].
//! - [`control`]: attaching ports, reloads and the control thread.
//! - [`config`] (grammar, file, resolve), [`api`] (one file per resource), [`metrics`],
//!   [`client`] (the HTTP client and one file per command family), [`cli`], [`daemon`],
//!   [`demo`], [`conn_cap`].
//!
//! Invariants: a frame never leaves through its ingress port unless that port has `hairpin`;
//! no port receives one frame twice; the table never holds more learned entries than its limit;
//! nothing on the frame path panics.
//!
//! Where the frame path allocates (everything else it uses is allocated at start or when a
//! port is attached): the forwarding table and a VTEP table grow their hash tables when a new
//! source is learned; a VTEP copies its map of remotes when it learns a new remote; a stream
//! port's backpressure queue grows while its peer does not read (bounded per port); the
//! datagram hub adds a port (a new registry snapshot) for a new sender. Each is bounded by a
//! limit (`fdb_max`, `max-learned`, the number of remotes, `max-conns`), and none happens for a
//! frame between known hosts. `tests/no_alloc.rs` checks that forwarding between known hosts,
//! VLAN tag changes, segmentation, captures and mirrors allocate nothing.

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
pub mod events;
pub mod evpn;
pub mod fdb;
pub mod forwarding;
pub mod mcast;
pub mod metrics;
pub mod neigh;
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
