//! The forwarding decision: no I/O, no clock (time is an argument).
//!
//! [`decide`] takes one received frame and returns a [`Decision`]: forward to one port, flood, or
//! drop with a [`RxDrop`] reason. It is not a pure function: it learns the source into the
//! [`Fdb`] first, as Linux learns before the forwarding decision, even for frames it then drops;
//! the table is its only side effect. Which ports a flood reaches is
//! answered port by port by [`flood_eligible`], so the dataplane walks its port list once without
//! building a set.
//!
//! Rules, with the Linux bridge source they mirror (net/bridge):
//! - a multicast, broadcast or all-zero source is dropped, not learned (`br_handle_frame`);
//! - 01:80:c2:00:00:01 (PAUSE) is dropped; 01:80:c2:00:00:00 is flooded as multicast (tapswitch
//!   runs no STP, like `stp_state 0`); other 01:80:c2:00:00:0X are learned and dropped unless bit X
//!   of `group_fwd_mask` is set (tapswitch accepts every bit 0-15, Linux refuses 0-2);
//! - a `locked` port admits only sources already in the table on that port, and such frames
//!   neither learn nor move entries (`br_handle_frame_finish`);
//! - known unicast goes to its port only; if that is the ingress port the frame is dropped unless
//!   the port has `hairpin`; isolated ports never reach isolated ports (`should_deliver`);
//! - broadcast, multicast and unknown unicast flood to ports with `bcast_flood`, `mcast_flood`
//!   and `flood` respectively, back to the ingress port only with `hairpin` (`br_flood`).
//! - In VEPA mode every frame from a downlink goes to the uplink only; frames from the uplink go
//!   to the downlink owning the destination, or flood to downlinks except the one owning the
//!   source (the reflection filter).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::fdb::{Fdb, FdbKey};
pub use crate::types::{PortId, Timestamp};
use crate::vlan::Protocol;
use crate::wire::{EthernetFrame, MacAddr};

/// Per-port behaviour flags, named as in `bridge link set`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortFlags(pub u32);

impl PortFlags {
    /// Learn source addresses from this port.
    pub const LEARNING: PortFlags = PortFlags(1 << 0);
    /// Receive unknown unicast floods.
    pub const FLOOD: PortFlags = PortFlags(1 << 1);
    /// Receive multicast floods.
    pub const MCAST_FLOOD: PortFlags = PortFlags(1 << 2);
    /// Receive broadcast floods.
    pub const BCAST_FLOOD: PortFlags = PortFlags(1 << 3);
    /// Frames may leave through the port they came in on (reflective relay).
    pub const HAIRPIN: PortFlags = PortFlags(1 << 4);
    /// Never reaches another isolated port.
    pub const ISOLATED: PortFlags = PortFlags(1 << 5);
    /// Admits only sources already in the table for this port.
    pub const LOCKED: PortFlags = PortFlags(1 << 6);
    /// The VEPA uplink.
    pub const UPLINK: PortFlags = PortFlags(1 << 7);
    /// ARP/ND suppression (Linux `neigh_suppress`): requests for known neighbours are
    /// answered by the switch and not flooded to this port (see [`crate::neigh`]).
    pub const NEIGH_SUPPRESS: PortFlags = PortFlags(1 << 8);
    /// No flag.
    pub const NONE: PortFlags = PortFlags(0);

    /// Every flag with its API name, in display order.
    pub const ALL: [(&'static str, PortFlags); 9] = [
        ("learning", Self::LEARNING),
        ("flood", Self::FLOOD),
        ("mcast_flood", Self::MCAST_FLOOD),
        ("bcast_flood", Self::BCAST_FLOOD),
        ("hairpin", Self::HAIRPIN),
        ("isolated", Self::ISOLATED),
        ("locked", Self::LOCKED),
        ("uplink", Self::UPLINK),
        ("neigh_suppress", Self::NEIGH_SUPPRESS),
    ];

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: PortFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with `other` set or cleared.
    pub const fn with(self, other: PortFlags, on: bool) -> PortFlags {
        if on {
            PortFlags(self.0 | other.0)
        } else {
            PortFlags(self.0 & !other.0)
        }
    }

    /// The flag named `name` (API spelling, `-` accepted for `_`).
    pub fn by_name(name: &str) -> Option<PortFlags> {
        let n = name.replace('-', "_");
        Self::ALL.iter().find(|(k, _)| *k == n).map(|(_, f)| *f)
    }
}

impl Default for PortFlags {
    /// Linux defaults for a new bridge port: learning and all three kinds of flooding on.
    fn default() -> Self {
        PortFlags(Self::LEARNING.0 | Self::FLOOD.0 | Self::MCAST_FLOOD.0 | Self::BCAST_FLOOD.0)
    }
}

impl fmt::Debug for PortFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Self::ALL
            .iter()
            .filter(|(_, fl)| self.contains(*fl))
            .map(|(n, _)| *n)
            .collect();
        write!(f, "[{}]", names.join(","))
    }
}

/// Flags that can change at run time, read once per frame.
#[derive(Debug, Default)]
pub struct AtomicPortFlags(AtomicU32);

impl AtomicPortFlags {
    /// Flags starting at `f`.
    pub fn new(f: PortFlags) -> Self {
        AtomicPortFlags(AtomicU32::new(f.0))
    }
    /// The current flags.
    pub fn get(&self) -> PortFlags {
        PortFlags(self.0.load(Relaxed))
    }
    /// Replaces the flags.
    pub fn set(&self, f: PortFlags) {
        self.0.store(f.0, Relaxed)
    }
}

/// How the switch relays frames between its ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// A learning bridge (IEEE 802.1Qbg "VEB"), like the Linux bridge.
    #[default]
    Veb,
    /// An edge relay in VEPA mode: downlinks talk only through the uplink.
    Vepa,
    /// VEPA, and frames reflected back from a local downlink reach no other downlink
    /// (macvlan `private`).
    VepaPrivate,
}

impl Mode {
    fn to_u8(self) -> u8 {
        match self {
            Mode::Veb => 0,
            Mode::Vepa => 1,
            Mode::VepaPrivate => 2,
        }
    }
    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Vepa,
            2 => Mode::VepaPrivate,
            _ => Mode::Veb,
        }
    }
    /// Whether this is one of the VEPA modes.
    pub fn is_vepa(self) -> bool {
        self != Mode::Veb
    }
}

/// Switch-wide settings, changeable at run time; read once per frame into a [`Settings`].
#[derive(Debug)]
pub struct SharedSettings {
    ageing_ms: AtomicU64,
    group_fwd_mask: AtomicU32,
    mode: AtomicU8,
    vepa_flood_unknown: AtomicBool,
    vlan_filtering: AtomicBool,
    vlan_protocol: AtomicU8,
    default_pvid: AtomicU32,
    stp: AtomicBool,
}

/// A copy of the settings for one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Ageing time in ms; 0 disables learning (everything floods), as Linux `ageing_time 0`.
    pub ageing_ms: u64,
    /// Bit X forwards frames to 01:80:c2:00:00:0X.
    pub group_fwd_mask: u16,
    /// Bridge or edge relay.
    pub mode: Mode,
    /// In VEPA mode, flood unknown unicast from the uplink to downlinks instead of dropping it.
    pub vepa_flood_unknown: bool,
    /// VLAN filtering (Linux `vlan_filtering 1`): ports' VLAN membership, PVIDs and egress
    /// tagging apply and the table is per (MAC, VID); off, tags pass untouched in VID 0.
    pub vlan_filtering: bool,
    /// The tag the switch filters on (802.1Q or 802.1ad).
    pub vlan_protocol: Protocol,
    /// The VLAN a new port gets as PVID and egress untagged (0: none), Linux `default_pvid`.
    pub default_pvid: u16,
    /// The Rapid Spanning Tree runs: ports forward only in its forwarding state and BPDUs
    /// are consumed (Linux `stp_state` != 0); off, BPDUs follow `group_fwd_mask`.
    pub stp: bool,
}

/// Linux default ageing time.
pub const DEFAULT_AGEING_SECS: u64 = 300;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ageing_ms: DEFAULT_AGEING_SECS * 1000,
            group_fwd_mask: 0,
            mode: Mode::Veb,
            vepa_flood_unknown: false,
            vlan_filtering: false,
            vlan_protocol: Protocol::Dot1Q,
            default_pvid: 1,
            stp: false,
        }
    }
}

impl SharedSettings {
    /// Settings starting at `s`.
    pub fn new(s: Settings) -> Self {
        let out = SharedSettings {
            ageing_ms: AtomicU64::new(0),
            group_fwd_mask: AtomicU32::new(0),
            mode: AtomicU8::new(0),
            vepa_flood_unknown: AtomicBool::new(false),
            vlan_filtering: AtomicBool::new(false),
            vlan_protocol: AtomicU8::new(0),
            default_pvid: AtomicU32::new(1),
            stp: AtomicBool::new(false),
        };
        out.store(s);
        out
    }
    /// A copy of the current settings.
    pub fn load(&self) -> Settings {
        Settings {
            ageing_ms: self.ageing_ms.load(Relaxed),
            group_fwd_mask: self.group_fwd_mask.load(Relaxed) as u16,
            mode: Mode::from_u8(self.mode.load(Relaxed)),
            vepa_flood_unknown: self.vepa_flood_unknown.load(Relaxed),
            vlan_filtering: self.vlan_filtering.load(Relaxed),
            vlan_protocol: if self.vlan_protocol.load(Relaxed) == 1 {
                Protocol::Dot1ad
            } else {
                Protocol::Dot1Q
            },
            default_pvid: self.default_pvid.load(Relaxed) as u16,
            stp: self.stp.load(Relaxed),
        }
    }
    /// Replaces the settings.
    pub fn store(&self, s: Settings) {
        self.ageing_ms.store(s.ageing_ms, Relaxed);
        self.group_fwd_mask.store(s.group_fwd_mask as u32, Relaxed);
        self.mode.store(s.mode.to_u8(), Relaxed);
        self.vepa_flood_unknown.store(s.vepa_flood_unknown, Relaxed);
        self.vlan_filtering.store(s.vlan_filtering, Relaxed);
        self.vlan_protocol
            .store((s.vlan_protocol == Protocol::Dot1ad) as u8, Relaxed);
        self.default_pvid.store(s.default_pvid as u32, Relaxed);
        self.stp.store(s.stp, Relaxed);
    }
}

/// Which kind of flood; selects the per-port flood flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FloodKind {
    /// To ff:ff:ff:ff:ff:ff.
    Broadcast,
    /// To a group address.
    Multicast,
    /// To a unicast address not in the table.
    UnknownUnicast,
}

impl FloodKind {
    /// Every kind, in counter order.
    pub const ALL: [FloodKind; 3] = [
        FloodKind::Broadcast,
        FloodKind::Multicast,
        FloodKind::UnknownUnicast,
    ];
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            FloodKind::Broadcast => "broadcast",
            FloodKind::Multicast => "multicast",
            FloodKind::UnknownUnicast => "unknown_unicast",
        }
    }
    /// The egress flag that admits this kind of flood.
    pub fn flag(self) -> PortFlags {
        match self {
            FloodKind::Broadcast => PortFlags::BCAST_FLOOD,
            FloodKind::Multicast => PortFlags::MCAST_FLOOD,
            FloodKind::UnknownUnicast => PortFlags::FLOOD,
        }
    }
}

macro_rules! labelled_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident => $l:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $v),+ }
        impl $name {
            /// Every variant, in index order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// Number of variants.
            pub const COUNT: usize = Self::ALL.len();
            /// Metric label value.
            pub fn label(self) -> &'static str {
                match self { $($name::$v => $l),+ }
            }
            /// Dense index for counter arrays.
            pub fn index(self) -> usize {
                self as usize
            }
        }
    };
}

labelled_enum!(
    /// Why a received frame was dropped before reaching any egress port.
    RxDrop {
        /// Shorter than the 14-byte Ethernet header.
        TooShort => "too_short",
        /// An 802.1Q/802.1ad EtherType without the 4 tag bytes.
        TruncatedVlan => "truncated_vlan",
        /// Larger than the switch's receive buffer, or otherwise unreadable.
        Oversized => "oversized",
        /// A virtio_net_hdr with invalid values (offload ports).
        BadVnetHdr => "bad_vnet_hdr",
        /// A GSO frame that would make segments below the minimum TCP segment size or more
        /// than the UDP segment limit, or whose headers contradict its virtio_net_hdr
        /// (`offload::check_gso`); checked once at ingress.
        BadGso => "bad_gso",
        /// Source MAC is multicast, broadcast or all-zero.
        InvalidSource => "invalid_source",
        /// To 01:80:c2:00:00:0X and not enabled in `group_fwd_mask`.
        LinkLocal => "link_local",
        /// Known unicast to the ingress port, which has no `hairpin`.
        SamePort => "same_port",
        /// Known unicast between two isolated ports.
        Isolated => "isolated",
        /// Source not in the table for this `locked` port.
        Locked => "locked",
        /// VEPA: unknown unicast from the uplink (flooding it is off).
        VepaUnknown => "vepa_unknown",
        /// VEPA private: a frame reflected from a local downlink.
        VepaPrivate => "vepa_private",
        /// VEPA: no uplink port to send to.
        NoUplink => "no_uplink",
        /// The destination port went away between lookup and send.
        NoPort => "no_port",
        /// VLAN filtering: tagged with a VLAN the port is not a member of.
        VlanFiltered => "vlan_filtered",
        /// VLAN filtering: untagged or priority-tagged on a port without PVID.
        VlanNoPvid => "vlan_no_pvid",
        /// Spanning tree: the port is not forwarding (discarding or learning).
        StpDiscarding => "stp_discarding",
        /// A BPDU, consumed by the spanning tree (not forwarded while it runs).
        Bpdu => "bpdu",
        /// Storm control: over the port's rate for this kind of flood.
        Storm => "storm",
        /// Read from a mirror output port, which takes no part in forwarding.
        MirrorOutput => "mirror_output",
        /// While snooping: an IGMP or MLD message (or its IP header) the parser refused, which
        /// Linux drops too (`br_multicast_rcv`).
        McastInvalid => "mcast_invalid",
    }
);

labelled_enum!(
    /// Why a frame was not sent out of one egress port.
    TxDrop {
        /// Longer than the egress MTU + 18 (outer VLAN tag not counted).
        Mtu => "mtu",
        /// The egress interface is down or gone.
        PortDown => "port_down",
        /// The egress queue is full (the peer is not reading).
        QueueFull => "queue_full",
        /// A GSO frame that could not be segmented for a port without offloads.
        Offload => "offload",
        /// A tunnel port with nowhere to send the frame (a `vxlan` port's empty flood list).
        NoRemote => "no_remote",
        /// Any other send error.
        Error => "error",
        /// VLAN filtering: known unicast toward a port that is not a member of its VLAN.
        VlanNotMember => "vlan_not_member",
        /// Spanning tree: known unicast toward a port that is not forwarding.
        StpDiscarding => "stp_discarding",
        /// Known unicast toward a mirror output port, which takes no part in forwarding.
        MirrorOutput => "mirror_output",
    }
);

/// The verdict for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Send out of exactly this port.
    Forward(PortId),
    /// Send out of every port for which [`flood_eligible`] holds; `except` never gets it.
    Flood {
        /// Which flood flag selects the egress ports.
        kind: FloodKind,
        /// A port left out (the VEPA reflection filter).
        except: Option<PortId>,
    },
    /// Send nowhere.
    Drop(RxDrop),
}

/// What `decide` needs to know about other ports.
pub trait PortDirectory {
    /// Current flags of a port, `None` if there is no such port.
    fn flags_of(&self, id: PortId) -> Option<PortFlags>;
    /// The port carrying the `uplink` flag (VEPA).
    fn uplink(&self) -> Option<PortId>;
}

/// Decides what to do with one frame received on `ingress` in VLAN `vid` (0 when VLAN
/// filtering is off; ingress filtering has already passed), learning its source first.
#[expect(
    clippy::too_many_arguments,
    reason = "the per-frame context, kept flat for speed"
)]
pub fn decide<D: PortDirectory + ?Sized>(
    settings: &Settings,
    fdb: &Fdb,
    ingress: PortId,
    in_flags: PortFlags,
    frame: &EthernetFrame<&[u8]>,
    vid: u16,
    ports: &D,
    now: Timestamp,
) -> Decision {
    let src = frame.src();
    let dst = frame.dst();
    if !src.is_valid_source() {
        return Decision::Drop(RxDrop::InvalidSource);
    }
    // VLAN-unaware: every frame uses VLAN 0, tags pass unchanged (Linux vlan_filtering 0);
    // with filtering, the VLAN ingress classified it into.
    let src_key = FdbKey::new(src, vid);

    let link_local_drop = match dst.link_local_group() {
        Some(1) if settings.group_fwd_mask & (1 << 1) == 0 => {
            // PAUSE: dropped before learning (br_handle_frame `goto drop`).
            return Decision::Drop(RxDrop::LinkLocal);
        }
        Some(0) => false, // no STP: the bridge group address floods like multicast
        Some(g) => settings.group_fwd_mask & (1 << g) == 0,
        None => false,
    };

    if in_flags.contains(PortFlags::LOCKED) && fdb.port_of(&src_key) != Some(ingress) {
        return Decision::Drop(RxDrop::Locked);
    }

    let from_uplink = settings.mode.is_vepa() && in_flags.contains(PortFlags::UPLINK);
    // In VEPA mode the uplink carries our own downlinks' frames reflected back: learning them
    // there would move the downlinks' entries away.
    if settings.ageing_ms != 0 && in_flags.contains(PortFlags::LEARNING) && !from_uplink {
        fdb.learn(src_key, ingress, now);
    }
    if link_local_drop {
        return Decision::Drop(RxDrop::LinkLocal);
    }

    if settings.mode.is_vepa() {
        return decide_vepa(
            settings,
            fdb,
            ingress,
            from_uplink,
            src_key,
            dst,
            ports,
            now,
        );
    }

    if dst.is_broadcast() {
        return Decision::Flood {
            kind: FloodKind::Broadcast,
            except: None,
        };
    }
    if dst.is_multicast() {
        return Decision::Flood {
            kind: FloodKind::Multicast,
            except: None,
        };
    }
    // With ageing 0 nothing is learned, but user entries still forward (as in Linux).
    let dst_key = FdbKey::new(dst, vid);
    if let Some(out) = fdb.lookup(&dst_key, now) {
        if out == ingress && !in_flags.contains(PortFlags::HAIRPIN) {
            return Decision::Drop(RxDrop::SamePort);
        }
        match ports.flags_of(out) {
            // An entry left behind by a port that just went away: forget it and flood.
            None => {
                fdb.remove(&dst_key);
            }
            Some(of) if isolated_pair(in_flags, of) => return Decision::Drop(RxDrop::Isolated),
            Some(_) => return Decision::Forward(out),
        }
    }
    Decision::Flood {
        kind: FloodKind::UnknownUnicast,
        except: None,
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the VEPA half of decide, split for reading"
)]
fn decide_vepa<D: PortDirectory + ?Sized>(
    settings: &Settings,
    fdb: &Fdb,
    ingress: PortId,
    from_uplink: bool,
    src_key: FdbKey,
    dst: MacAddr,
    ports: &D,
    now: Timestamp,
) -> Decision {
    if !from_uplink {
        // E6: everything from a downlink goes to the uplink, once.
        return match ports.uplink() {
            Some(u) if u != ingress => Decision::Forward(u),
            _ => Decision::Drop(RxDrop::NoUplink),
        };
    }
    // The downlink that sent this frame, if it was reflected back to us (E8).
    let source_downlink = fdb.port_of(&src_key).filter(|p| *p != ingress);
    let private = settings.mode == Mode::VepaPrivate;
    if private && source_downlink.is_some() {
        return Decision::Drop(RxDrop::VepaPrivate);
    }
    let kind = if dst.is_broadcast() {
        FloodKind::Broadcast
    } else if dst.is_multicast() {
        FloodKind::Multicast
    } else {
        match fdb.lookup(&FdbKey::new(dst, src_key.vlan), now) {
            Some(out) if out != ingress => return Decision::Forward(out),
            _ if settings.vepa_flood_unknown => FloodKind::UnknownUnicast,
            _ => return Decision::Drop(RxDrop::VepaUnknown),
        }
    };
    Decision::Flood {
        kind,
        except: source_downlink,
    }
}

/// Whether two ports are both `isolated` (no frame passes between them).
pub fn isolated_pair(a: PortFlags, b: PortFlags) -> bool {
    a.contains(PortFlags::ISOLATED) && b.contains(PortFlags::ISOLATED)
}

/// Whether a flood of `kind` received on `ingress` goes out of `egress` (Linux `br_flood` +
/// `should_deliver`; in VEPA mode, floods from the uplink reach only downlinks).
pub fn flood_eligible(
    mode: Mode,
    ingress: PortId,
    in_flags: PortFlags,
    egress: PortId,
    out_flags: PortFlags,
    kind: FloodKind,
    except: Option<PortId>,
) -> bool {
    if except == Some(egress) {
        return false;
    }
    if mode.is_vepa() && out_flags.contains(PortFlags::UPLINK) {
        return false;
    }
    if egress == ingress && !in_flags.contains(PortFlags::HAIRPIN) {
        return false;
    }
    out_flags.contains(kind.flag()) && !isolated_pair(in_flags, out_flags)
}

/// The egress length limit: MTU + 14 (header) + 4 (one tag); the outer tag is not counted.
pub fn exceeds_mtu(frame: &EthernetFrame<&[u8]>, mtu: u32) -> bool {
    frame.mtu_len() > mtu as usize + 18
}

#[cfg(test)]
mod tests;
