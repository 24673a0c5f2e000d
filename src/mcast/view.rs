//! The forwarding view: an immutable snapshot of what forwarding needs, built by the control
//! thread after each change ([`McastState::view`](super::McastState::view)) and read by the
//! frame path without locks or allocation.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::types::PortId;
use crate::wire::igmp::IgmpMessage;
use crate::wire::mld::MldMessage;
use crate::wire::{is_unsnooped_group, Family, McastFrame};

type Hasher = foldhash::fast::RandomState;

/// Which sources one member port receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filter {
    /// Every source (IGMPv2/MLDv1 mode).
    All,
    /// Only the sources in `sources[start..start + len]`.
    Include,
    /// Every source but those in `sources[start..start + len]` (the blocked ones).
    Exclude,
}

/// One member port of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FwdPort {
    pub(crate) port: PortId,
    pub(crate) filter: Filter,
    pub(crate) start: u32,
    pub(crate) len: u32,
}

/// The member ports of one (group, VID), sorted by port, with their source lists packed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FwdGroup {
    pub(crate) ports: Box<[FwdPort]>,
    pub(crate) sources: Box<[IpAddr]>,
}

impl FwdGroup {
    fn admits(&self, p: &FwdPort, src: &IpAddr) -> bool {
        let listed = || {
            let s = p.start as usize;
            self.sources
                .get(s..s + p.len as usize)
                .is_some_and(|l| l.contains(src))
        };
        match p.filter {
            Filter::All => true,
            Filter::Include => listed(),
            Filter::Exclude => !listed(),
        }
    }
}

/// What the frame path does with one multicast frame.
#[derive(Clone, Copy, Debug)]
pub enum McastDecision<'a> {
    /// Flood it to every port with `mcast_flood` (the ordinary multicast flood): snooping is
    /// off, no querier exists, or the group is never snooped (224.0.0.0/24, ff02::1), or the
    /// frame is a query, leave or IGMPv3/MLDv2 report.
    Flood,
    /// Deliver it to exactly these ports (member ports whose filter admits the source, and
    /// the router ports). Empty: nobody wants it (count it, send it nowhere). The caller still
    /// applies its per-port egress rules (ingress port, isolation, VLAN, STP state).
    Deliver(PortList<'a>),
}

/// The egress ports of a [`McastDecision::Deliver`], iterated without allocation.
#[derive(Clone, Copy, Debug)]
pub struct PortList<'a> {
    group: Option<&'a FwdGroup>,
    routers: &'a [PortId],
    src: Option<IpAddr>,
}

impl<'a> PortList<'a> {
    /// The ports, ascending, each once.
    pub fn iter(&self) -> PortIter<'a> {
        PortIter {
            group: self.group,
            members: self.group.map_or(&[][..], |g| &g.ports[..]),
            routers: self.routers,
            src: self.src,
        }
    }

    /// Whether no port gets the frame.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Whether the group has an MDB entry (registered) in this VLAN.
    pub fn is_registered(&self) -> bool {
        self.group.is_some()
    }
}

impl<'a> IntoIterator for PortList<'a> {
    type Item = PortId;
    type IntoIter = PortIter<'a>;
    fn into_iter(self) -> PortIter<'a> {
        self.iter()
    }
}

/// Iterator of [`PortList`]: a merge of the admitted members and the routers, both sorted.
#[derive(Clone, Debug)]
pub struct PortIter<'a> {
    group: Option<&'a FwdGroup>,
    members: &'a [FwdPort],
    routers: &'a [PortId],
    src: Option<IpAddr>,
}

impl Iterator for PortIter<'_> {
    type Item = PortId;
    fn next(&mut self) -> Option<PortId> {
        // Skip members whose filter refuses the source.
        while let Some((m, rest)) = self.members.split_first() {
            let admitted = match (self.group, &self.src) {
                (Some(g), Some(s)) => g.admits(m, s),
                // Reports carry no data source: membership alone counts (never used today).
                _ => true,
            };
            if admitted {
                break;
            }
            self.members = rest;
        }
        match (self.members.first(), self.routers.first()) {
            (None, None) => None,
            (Some(m), None) => {
                self.members = &self.members[1..];
                Some(m.port)
            }
            (None, Some(&r)) => {
                self.routers = &self.routers[1..];
                Some(r)
            }
            (Some(m), Some(&r)) => {
                if m.port < r {
                    self.members = &self.members[1..];
                    Some(m.port)
                } else if r < m.port {
                    self.routers = &self.routers[1..];
                    Some(r)
                } else {
                    self.members = &self.members[1..];
                    self.routers = &self.routers[1..];
                    Some(r)
                }
            }
        }
    }
}

/// The snapshot the frame path reads.
#[derive(Clone, Debug)]
pub struct ForwardingView {
    pub(crate) snooping: bool,
    /// One bit per VID and family: a querier exists.
    pub(crate) querier: [Box<[u64; 64]>; 2],
    pub(crate) routers: HashMap<(u16, Family), Box<[PortId]>, Hasher>,
    /// Router ports of every VLAN (`mcast_router` 2, 3), for VLANs without learned ones.
    pub(crate) global_routers: [Box<[PortId]>; 2],
    pub(crate) groups: HashMap<(IpAddr, u16), FwdGroup, Hasher>,
}

impl Default for ForwardingView {
    /// Snooping off: everything floods.
    fn default() -> Self {
        ForwardingView {
            snooping: false,
            querier: [Box::new([0; 64]), Box::new([0; 64])],
            routers: HashMap::default(),
            global_routers: [Box::new([]), Box::new([])],
            groups: HashMap::default(),
        }
    }
}

impl ForwardingView {
    /// Whether a querier exists for `vid` and `family` (Linux `br_multicast_querier_exists`).
    pub fn querier_exists(&self, vid: u16, family: Family) -> bool {
        let v = usize::from(vid & 0x0fff);
        self.querier[family.index()][v / 64] & (1 << (v % 64)) != 0
    }

    fn routers(&self, vid: u16, family: Family) -> &[PortId] {
        self.routers
            .get(&(vid, family))
            .map_or(&self.global_routers[family.index()][..], |r| &r[..])
    }

    /// The decision for multicast data from `src` to `dst` in `vid`.
    pub fn decide_data(&self, vid: u16, dst: IpAddr, src: IpAddr) -> McastDecision<'_> {
        if !self.snooping || is_unsnooped_group(&dst) {
            return McastDecision::Flood;
        }
        let family = Family::of(&dst);
        if !self.querier_exists(vid, family) {
            return McastDecision::Flood;
        }
        McastDecision::Deliver(PortList {
            group: self.groups.get(&(dst, vid)),
            routers: self.routers(vid, family),
            src: Some(src),
        })
    }

    /// Router ports only (how IGMPv1/v2 and MLDv1 reports travel) if a querier exists,
    /// otherwise flood.
    pub fn decide_report(&self, vid: u16, family: Family) -> McastDecision<'_> {
        if !self.snooping || !self.querier_exists(vid, family) {
            return McastDecision::Flood;
        }
        McastDecision::Deliver(PortList {
            group: None,
            routers: self.routers(vid, family),
            src: None,
        })
    }

    /// The decision for a frame [`crate::wire::inspect`] classified, in `vid`: data as
    /// [`ForwardingView::decide_data`], IGMPv1/v2 and MLDv1 reports as
    /// [`ForwardingView::decide_report`], every other IGMP/MLD message and non-IP frames
    /// flood (Linux `br_handle_frame_finish` with `BR_INPUT_SKB_CB(skb)->mrouters_only`).
    pub fn decide(&self, vid: u16, frame: &McastFrame<'_>) -> McastDecision<'_> {
        match frame {
            McastFrame::NotIp => McastDecision::Flood,
            McastFrame::Data { src, dst, .. } => self.decide_data(vid, *dst, *src),
            McastFrame::Igmp {
                msg: IgmpMessage::ReportV1 { .. } | IgmpMessage::ReportV2 { .. },
                ..
            } => self.decide_report(vid, Family::V4),
            McastFrame::Mld {
                msg: MldMessage::ReportV1 { .. },
                ..
            } => self.decide_report(vid, Family::V6),
            McastFrame::Igmp { .. } | McastFrame::Mld { .. } => McastDecision::Flood,
        }
    }

    /// Number of (group, VID) entries.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Whether snooping is on.
    pub fn snooping(&self) -> bool {
        self.snooping
    }
}
