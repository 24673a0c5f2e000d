//! VXLAN tunnel ports (RFC 7348): the wire format ([`wire`]), the `vxlan` port spec
//! ([`spec`]) and the VTEP of a port, its own table of remote VTEPs and its flood list
//! ([`vtep`]). No I/O here: the port and its sockets are in [`crate::port::vxlan`] and
//! `port::sys`, the shared receive sockets (hubs) in [`crate::dataplane::vxlan`].

pub mod gro;
pub mod spec;
pub mod vtep;
pub mod wire;
