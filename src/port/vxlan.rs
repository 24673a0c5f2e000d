//! `vxlan:VNI` ports: one VNI of a VXLAN tunnel endpoint (RFC 7348). Sending encapsulates
//! the frame and hands it to the kernel's UDP/IP stack toward the remote VTEP its destination
//! is behind, or toward every remote of the flood list; the kernel routes it, so the
//! underlay is whatever the host's routing table says. Receiving is not done here: every VNI
//! on one local address and UDP port shares one socket, read by the dataplane's VXLAN hub,
//! which hands each inner frame to the port of its VNI.

use std::io;
use std::net::IpAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;

use super::{sys, Port, PortKind};
use crate::vxlan::vtep::{Underlay, Vtep};
use crate::vxlan::wire::ENCAP_HLEN;

/// The kernel's stack as the underlay: a raw UDP socket bound to the local address.
#[derive(Debug)]
pub struct RawUnderlay {
    fd: OwnedFd,
    local: IpAddr,
}

impl RawUnderlay {
    /// Opens the sending socket (a raw UDP socket: needs CAP_NET_RAW).
    pub fn open(local: IpAddr, ttl: Option<u8>, tos: Option<u8>) -> io::Result<RawUnderlay> {
        Ok(RawUnderlay {
            fd: sys::vxlan::raw_udp_socket(local, ttl, tos)?,
            local,
        })
    }
}

impl Underlay for RawUnderlay {
    fn send(&self, to: IpAddr, head: &[u8; ENCAP_HLEN], frame: &[u8]) -> io::Result<()> {
        sys::vxlan::send_to(&self.fd, to, head, frame)
    }

    fn path_mtu(&self, to: Option<IpAddr>) -> Option<u32> {
        match to {
            Some(r) => sys::vxlan::path_mtu(self.local, r).ok(),
            None => {
                let name = sys::vxlan::interface_of(self.local).ok()??;
                sys::if_mtu(&name).ok()
            }
        }
    }
}

/// A `vxlan` port: a VTEP and the underlay it sends through.
pub struct VxlanPort<U: Underlay = RawUnderlay> {
    vtep: Arc<Vtep>,
    underlay: U,
    fixed_mtu: bool,
}

impl<U: Underlay> VxlanPort<U> {
    /// A port for `vtep`. With `mtu` the port MTU is fixed; otherwise it follows the underlay
    /// (the path MTU toward the first remote of the flood list, or the local interface's MTU,
    /// minus the VXLAN overhead) and is read again on every [`Port::refresh`].
    pub fn new(vtep: Arc<Vtep>, underlay: U, mtu: Option<u32>) -> VxlanPort<U> {
        let p = VxlanPort {
            vtep,
            underlay,
            fixed_mtu: mtu.is_some(),
        };
        match mtu {
            Some(m) => p.vtep.set_mtu(m),
            None => p.refresh(),
        }
        p
    }

    /// The VTEP.
    pub fn vtep(&self) -> &Arc<Vtep> {
        &self.vtep
    }
}

impl<U: Underlay> Port for VxlanPort<U> {
    fn kind(&self) -> PortKind {
        PortKind::Vxlan
    }
    /// Frames from the tunnel arrive on the hub's socket, never here.
    fn recv(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.vtep.transmit(frame, &self.underlay)
    }
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn mtu(&self) -> u32 {
        self.vtep.mtu()
    }
    fn refresh(&self) {
        if self.fixed_mtu {
            return;
        }
        let first = self.vtep.remotes().flood.first().map(|r| r.ip);
        if let Some(m) = self.underlay.path_mtu(first) {
            self.vtep.set_mtu(self.vtep.mtu_for_path(m));
        }
    }
}
