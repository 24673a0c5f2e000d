//! EVPN (RFC 7432, RFC 8365) through FRR: tapswitch as a VTEP in a BGP EVPN fabric whose
//! control plane is an existing routing daemon (zebra and bgpd), joined through a *shadow*
//! kernel bridge per VNI, the pattern of SONiC's fdbsyncd and OVN's EVPN support.
//!
//! For each VNI (each `vxlan` port, or each entry of a port's `vni-map`):
//! - a silent kernel bridge (`addrgenmode none`, STP off);
//! - a kernel vxlan device with the VNI and the local VTEP address, `nolearning`, and a UDP
//!   port other than tapswitch's ([`SHADOW_DSTPORT`]), so it never carries traffic: zebra
//!   sees an L2 VNI and installs its remote MACs and flood list there;
//! - one end of a veth pair as the bridge's local port (this kernel has no `dummy`), where
//!   tapswitch writes its local MACs as `extern_learn` entries for zebra to advertise.
//!
//! [`netlink`] builds and reads the messages (netlink-packet-route), [`sync`] is the pure
//! engine deciding what to write where, [`shadow`] owns the sockets and the threads.

pub mod netlink;
pub mod shadow;
pub mod sync;

/// The UDP port of the shadow vxlan devices: not tapswitch's, so they never receive; and
/// nothing enters the shadow bridges, so they never send.
pub const SHADOW_DSTPORT: u16 = 47890;
