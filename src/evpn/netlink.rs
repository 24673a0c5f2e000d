//! The rtnetlink messages of the EVPN layer, built and read with netlink-packet-route (no
//! hand-written netlink): the shadow devices (bridge, vxlan, veth), the `extern_learn` FDB
//! entries tapswitch writes on the shadow bridge's local port, the MAC+IP neighbours on the
//! shadow bridge, dumps, and the decoding of what the kernel reports (what zebra installed on
//! the shadow vxlan device: remote MACs with `NDA_DST`, the all-zero flood entries). No I/O:
//! the socket is in [`super::shadow`]. Tested against bytes captured from iproute2 and from
//! `bridge monitor fdb` and `ip monitor neigh` (`tests/data/evpn/netlink.txt`,
//! `scripts/evpn_netlink_capture.sh`).

use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, InfoVxlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::wire::MacAddr;

/// A netlink message of the route family.
pub type Msg = NetlinkMessage<RouteNetlinkMessage>;

/// `NTF_SELF`: the entry is the device's own (a vxlan device's remote table).
pub const NTF_SELF: u8 = 0x02;
/// `NTF_MASTER`: the entry is the bridge's (the port's master).
pub const NTF_MASTER: u8 = 0x04;
/// `NTF_ROUTER`: the neighbour is a router.
pub const NTF_ROUTER: u8 = 0x80;
/// `NTF_EXT_LEARNED`: installed by a controller; the bridge never ages it.
pub const NTF_EXT_LEARNED: u8 = 0x10;
/// `NUD_REACHABLE`.
pub const NUD_REACHABLE: u16 = 0x02;
/// `NUD_STALE`.
pub const NUD_STALE: u16 = 0x04;
/// `NUD_FAILED`.
pub const NUD_FAILED: u16 = 0x20;
/// `NUD_NOARP`.
pub const NUD_NOARP: u16 = 0x40;
/// `NUD_VALID`: the states in which a neighbour has a usable MAC (permanent, noarp,
/// reachable, probe, stale, delay).
pub const NUD_VALID: u16 = 0x80 | 0x40 | 0x02 | 0x10 | 0x04 | 0x08;
/// `NUD_PERMANENT`.
pub const NUD_PERMANENT: u16 = 0x80;
/// `RTNLGRP_LINK`.
pub const RTNLGRP_LINK: u32 = 1;
/// `RTNLGRP_NEIGH`.
pub const RTNLGRP_NEIGH: u32 = 3;

fn request(msg: RouteNetlinkMessage, flags: u16) -> Msg {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    m.finalize();
    m
}

/// The bytes of a message, with sequence number `seq`.
pub fn encode(msg: &Msg, seq: u32) -> Vec<u8> {
    let mut m = msg.clone();
    m.header.sequence_number = seq;
    m.finalize();
    let mut buf = vec![0u8; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

const CREATE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;
const SET: u16 = NLM_F_REQUEST | NLM_F_ACK;

fn new_link(name: &str, kind: InfoKind, data: Option<InfoData>) -> Msg {
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    let mut m = LinkMessage::default();
    m.attributes = vec![
        LinkAttribute::IfName(name.to_string()),
        LinkAttribute::LinkInfo(info),
    ];
    request(RouteNetlinkMessage::NewLink(m), CREATE)
}

/// `ip link add NAME type bridge` (STP off, VLAN filtering off: the kernel's defaults).
pub fn add_bridge(name: &str) -> Msg {
    new_link(name, InfoKind::Bridge, None)
}

/// `ip link add NAME type vxlan id VNI local LOCAL dstport PORT nolearning`.
pub fn add_vxlan(name: &str, vni: u32, local: IpAddr, dstport: u16) -> Msg {
    let local = match local {
        IpAddr::V4(a) => InfoVxlan::Local(a),
        IpAddr::V6(a) => InfoVxlan::Local6(a),
    };
    let data = vec![
        InfoVxlan::Id(vni),
        local,
        InfoVxlan::Learning(false),
        InfoVxlan::Port(dstport),
    ];
    new_link(name, InfoKind::Vxlan, Some(InfoData::Vxlan(data)))
}

/// `ip link add NAME type veth peer name PEER`.
pub fn add_veth(name: &str, peer: &str) -> Msg {
    let mut p = LinkMessage::default();
    p.attributes = vec![LinkAttribute::IfName(peer.to_string())];
    new_link(
        name,
        InfoKind::Veth,
        Some(InfoData::Veth(InfoVeth::Peer(p))),
    )
}

fn set_link(index: u32, attributes: Vec<LinkAttribute>) -> Msg {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes = attributes;
    request(RouteNetlinkMessage::NewLink(m), SET)
}

/// `ip link set DEV addrgenmode none`: no IPv6 link-local address, so the device sends no
/// neighbour discovery or MLD of its own.
pub fn addrgenmode_none(index: u32) -> Msg {
    set_link(
        index,
        vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )])],
    )
}

/// `ip link set DEV master BRIDGE`.
pub fn set_master(index: u32, master: u32) -> Msg {
    set_link(index, vec![LinkAttribute::Controller(master)])
}

/// `ip link set DEV type bridge_slave learning off flood off mcast_flood off bcast_flood
/// off`: a bridge port that nothing is flooded to (the shadow vxlan device: whatever the
/// shadow bridge itself sends never reaches it).
pub fn quiet_port(index: u32) -> Msg {
    use netlink_packet_route::link::{InfoBridgePort, InfoPortData, InfoPortKind};
    set_link(
        index,
        vec![LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![
                InfoBridgePort::Learning(false),
                InfoBridgePort::UnicastFlood(false),
                InfoBridgePort::MulticastFlood(false),
                InfoBridgePort::BroadcastFlood(false),
                InfoBridgePort::MulticastRouter(
                    netlink_packet_route::link::BridgeMulticastRouterType::Disabled,
                ),
            ])),
        ])],
    )
}

/// `ip link set BRIDGE type bridge mcast_snooping 0`: without snooping the bridge has no
/// multicast router ports, so its own multicast follows the ports' flood flags.
pub fn no_snooping(index: u32) -> Msg {
    use netlink_packet_route::link::InfoBridge;
    set_link(
        index,
        vec![LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::MulticastSnooping(false)])),
        ])],
    )
}

/// `ip link set DEV up`.
pub fn set_up(index: u32) -> Msg {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    request(RouteNetlinkMessage::NewLink(m), SET)
}

/// `ip link del DEV`.
pub fn del_link(index: u32) -> Msg {
    let mut m = LinkMessage::default();
    m.header.index = index;
    request(RouteNetlinkMessage::DelLink(m), SET)
}

/// `ip link show NAME`: the kernel answers with the link (or ENODEV).
pub fn get_link(name: &str) -> Msg {
    let mut m = LinkMessage::default();
    m.attributes = vec![LinkAttribute::IfName(name.to_string())];
    request(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST)
}

/// Every link (`ip link show`).
pub fn dump_links() -> Msg {
    request(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

/// Every bridge FDB entry (`bridge fdb show`).
pub fn dump_fdb() -> Msg {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    request(
        RouteNetlinkMessage::GetNeighbour(m),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

/// Every IP neighbour of one family (`ip neigh show`).
pub fn dump_neigh(v6: bool) -> Msg {
    let mut m = NeighbourMessage::default();
    m.header.family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    request(
        RouteNetlinkMessage::GetNeighbour(m),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
}

/// `bridge fdb replace MAC dev PORT master extern_learn` (add) or `bridge fdb del MAC dev PORT
/// master` (remove): a local MAC on the shadow bridge's local port, for zebra to advertise.
pub fn fdb_local(port: u32, mac: MacAddr, add: bool) -> Msg {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = port;
    m.attributes = vec![NeighbourAttribute::LinkLayerAddress(mac.0.to_vec())];
    if add {
        m.header.state = NeighbourState::Other(NUD_NOARP | NUD_PERMANENT);
        m.header.flags = NeighbourFlags::from_bits_retain(NTF_MASTER | NTF_EXT_LEARNED);
        request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE | NLM_F_CREATE,
        )
    } else {
        m.header.state = NeighbourState::Other(NUD_NOARP | NUD_PERMANENT);
        m.header.flags = NeighbourFlags::from_bits_retain(NTF_MASTER);
        request(RouteNetlinkMessage::DelNeighbour(m), SET)
    }
}

/// `ip neigh replace IP lladdr MAC dev BRIDGE nud permanent` (add) or `ip neigh del IP dev
/// BRIDGE`: a *local* MAC+IP binding on the shadow bridge (its SVI), for zebra to advertise
/// with the MAC's type-2 route. zebra 8.4 (`netlink_ipneigh_change`) takes a neighbour without
/// `NTF_EXT_LEARNED` in a valid state as local, and one with it as a remote one of its own;
/// `permanent` never ages out of a bridge that sees no traffic (a `noarp` or `reachable` one
/// can). Deleting it makes the kernel report it in state `failed` first, which zebra reads as
/// the binding's withdrawal.
pub fn neigh_local(dev: u32, ip: IpAddr, mac: MacAddr, add: bool) -> Msg {
    neigh(dev, ip, mac, add, false)
}

/// A permanent MAC+IP binding on `dev` (add) or its removal, with `extern_learn` when
/// `ext_learn` (how zebra installs its remote ones; tapswitch writes only local ones).
fn neigh(dev: u32, ip: IpAddr, mac: MacAddr, add: bool, ext_learn: bool) -> Msg {
    let mut m = NeighbourMessage::default();
    m.header.family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    m.header.ifindex = dev;
    m.header.state = NeighbourState::Permanent;
    m.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::from(ip))];
    if add {
        if ext_learn {
            m.header.flags = NeighbourFlags::from_bits_retain(NTF_EXT_LEARNED);
        }
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        request(
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE | NLM_F_CREATE,
        )
    } else {
        request(RouteNetlinkMessage::DelNeighbour(m), SET)
    }
}

impl NeighEntry {
    /// Installed by a controller (zebra's remote MAC+IP routes).
    pub fn extern_learn(&self) -> bool {
        self.flags & NTF_EXT_LEARNED != 0
    }

    /// In a state with a usable MAC (`NUD_VALID`); an entry leaving it (a delete is first
    /// reported in state `failed`) is gone for zebra.
    pub fn valid(&self) -> bool {
        self.add && self.state & NUD_VALID != 0 && self.mac.is_some()
    }
}

/// A bridge FDB entry as the kernel reports it (`bridge monitor fdb`, `bridge fdb show`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    /// Added (RTM_NEWNEIGH) or removed (RTM_DELNEIGH).
    pub add: bool,
    /// The device it is on (a bridge port, or a vxlan device for `self` entries).
    pub ifindex: u32,
    /// The MAC (00:00:00:00:00:00 for a vxlan flood entry).
    pub mac: MacAddr,
    /// The remote VTEP (`NDA_DST`), for a vxlan device's own entries.
    pub dst: Option<IpAddr>,
    /// The VLAN (`NDA_VLAN`).
    pub vlan: Option<u16>,
    /// The bridge the port belongs to (`NDA_MASTER`), for bridge entries.
    pub master: Option<u32>,
    /// `ndm_flags` (`NTF_*`).
    pub flags: u8,
    /// `ndm_state` (`NUD_*`).
    pub state: u16,
}

impl FdbEntry {
    /// Installed by a controller (`extern_learn`).
    pub fn extern_learn(&self) -> bool {
        self.flags & NTF_EXT_LEARNED != 0
    }
}

/// An IP neighbour (`ip monitor neigh`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighEntry {
    /// Added or removed.
    pub add: bool,
    /// The device (the shadow bridge, for EVPN MAC+IP bindings).
    pub ifindex: u32,
    /// The IP address.
    pub ip: IpAddr,
    /// Its MAC, when the entry has one.
    pub mac: Option<MacAddr>,
    /// `ndm_flags`.
    pub flags: u8,
    /// `ndm_state`.
    pub state: u16,
}

/// A link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEntry {
    /// Added/changed (RTM_NEWLINK) or removed (RTM_DELLINK).
    pub add: bool,
    /// Its index.
    pub ifindex: u32,
    /// Its name.
    pub name: String,
    /// Its bridge, if a port.
    pub master: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// Packets sent (`IFLA_STATS64`).
    pub tx_packets: u64,
}

/// What one message from the kernel says, as far as the EVPN layer cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A bridge FDB entry.
    Fdb(FdbEntry),
    /// An IP neighbour.
    Neigh(NeighEntry),
    /// A link.
    Link(LinkEntry),
    /// The answer to request `seq`: 0 is success, otherwise a negative errno.
    Ack {
        /// The request's sequence number.
        seq: u32,
        /// 0 or -errno.
        code: i32,
    },
    /// The end of a dump.
    Done {
        /// The dump request's sequence number.
        seq: u32,
    },
    /// Anything else (other families, routes, ...).
    Other,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
#[error("undecodable netlink message: {0}")]
pub struct DecodeError(String);

fn mac_of(b: &[u8]) -> Option<MacAddr> {
    <[u8; 6]>::try_from(b).ok().map(MacAddr)
}

fn ip_of(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v) => Some(IpAddr::V4(*v)),
        NeighbourAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        // an AF_BRIDGE entry's NDA_DST (a vxlan remote) comes as bytes: 4 or 16 of them
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(&b[..]).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(&b[..]).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

fn neighbour(add: bool, m: &NeighbourMessage) -> Event {
    let h = &m.header;
    let (flags, state) = (h.flags.bits(), u16::from(h.state));
    let mut mac = None;
    let mut dst = None;
    let mut vlan = None;
    let mut master = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(b) => mac = mac_of(b),
            NeighbourAttribute::Destination(d) => dst = ip_of(d),
            NeighbourAttribute::Vlan(v) => vlan = Some(*v),
            NeighbourAttribute::Controller(i) => master = Some(*i),
            _ => {}
        }
    }
    match h.family {
        AddressFamily::Bridge => match mac {
            Some(mac) => Event::Fdb(FdbEntry {
                add,
                ifindex: h.ifindex,
                mac,
                dst,
                vlan,
                master,
                flags,
                state,
            }),
            None => Event::Other,
        },
        AddressFamily::Inet | AddressFamily::Inet6 => match dst {
            Some(ip) => Event::Neigh(NeighEntry {
                add,
                ifindex: h.ifindex,
                ip,
                mac,
                flags,
                state,
            }),
            None => Event::Other,
        },
        _ => Event::Other,
    }
}

fn link(add: bool, m: &LinkMessage) -> Event {
    let mut e = LinkEntry {
        add,
        ifindex: m.header.index,
        name: String::new(),
        master: None,
        up: m.header.flags.contains(LinkFlags::Up),
        tx_packets: 0,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => e.name = n.clone(),
            LinkAttribute::Controller(i) => e.master = Some(*i),
            LinkAttribute::Stats64(s) => e.tx_packets = s.tx_packets,
            _ => {}
        }
    }
    Event::Link(e)
}

/// Reads every message of one datagram from the kernel. A message that does not decode is an
/// error in its place; the others are still read.
pub fn decode(mut buf: &[u8]) -> Vec<Result<Event, DecodeError>> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            out.push(Err(DecodeError(format!(
                "length {len} in a buffer of {}",
                buf.len()
            ))));
            break;
        }
        out.push(decode_one(&buf[..len]));
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

/// Reads one message.
pub fn decode_one(b: &[u8]) -> Result<Event, DecodeError> {
    let m = Msg::deserialize(b).map_err(|e| DecodeError(e.to_string()))?;
    let seq = m.header.sequence_number;
    Ok(match m.payload {
        NetlinkPayload::InnerMessage(i) => match i {
            RouteNetlinkMessage::NewNeighbour(n) => neighbour(true, &n),
            RouteNetlinkMessage::DelNeighbour(n) => neighbour(false, &n),
            RouteNetlinkMessage::NewLink(l) => link(true, &l),
            RouteNetlinkMessage::DelLink(l) => link(false, &l),
            _ => Event::Other,
        },
        NetlinkPayload::Error(e) => Event::Ack {
            seq,
            code: e.raw_code(),
        },
        NetlinkPayload::Done(_) => Event::Done { seq },
        _ => Event::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of `tests/data/evpn/netlink.txt`, by name.
    fn vector(name: &str) -> Vec<u8> {
        let text = include_str!("../../tests/data/evpn/netlink.txt");
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no vector {name}"));
        let hex = line.split_whitespace().nth(1).unwrap();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    /// Our bytes decode to the same message as iproute2's (attribute by attribute).
    fn same_message(ours: &Msg, name: &str) {
        let theirs = Msg::deserialize(&vector(name)).unwrap();
        let ours = Msg::deserialize(&encode(ours, 0)).unwrap();
        assert_eq!(
            ours.header.message_type, theirs.header.message_type,
            "{name}"
        );
        assert_eq!(ours.header.flags, theirs.header.flags, "{name}");
        assert_eq!(ours.payload, theirs.payload, "{name}");
    }

    #[test]
    fn fdb_and_neighbour_requests_are_iproute2s_bytes() {
        // ifindex 7 is tsl1010 and 4 tsb1010 in the capture's namespace
        let ours = encode(&fdb_local(7, mac("02:00:5e:10:00:01"), true), 0);
        assert_eq!(ours, vector("fdb_local_add"));
        let ours = encode(&fdb_local(7, mac("02:00:5e:10:00:01"), false), 0);
        let theirs = vector("fdb_local_del");
        // iproute2 sends a state and no flags but NTF_MASTER on delete; the kernel reads
        // neither: compare all but the state
        assert_eq!(ours[..20], theirs[..20]);
        assert_eq!(ours[22..], theirs[22..]);
        let ip: IpAddr = "198.18.1.5".parse().unwrap();
        let ours = encode(&neigh(4, ip, mac("02:00:5e:20:00:05"), true, true), 0);
        assert_eq!(ours, vector("neigh_bridge_add"));
        let ip: IpAddr = "2001:2::5".parse().unwrap();
        let ours = encode(&neigh(4, ip, mac("02:00:5e:20:00:05"), true, true), 0);
        assert_eq!(ours, vector("neigh_bridge_add6"));
    }

    #[test]
    fn local_neighbour_requests_are_iproute2s_bytes() {
        let m = mac("02:00:5e:10:00:07");
        let ip: IpAddr = "198.18.1.7".parse().unwrap();
        assert_eq!(
            encode(&neigh_local(4, ip, m, true), 0),
            vector("neigh_local_add")
        );
        assert_eq!(
            encode(&neigh_local(4, ip, m, false), 0),
            vector("neigh_local_del")
        );
        let ip6: IpAddr = "2001:2::7".parse().unwrap();
        assert_eq!(
            encode(&neigh_local(4, ip6, m, true), 0),
            vector("neigh_local_add6")
        );
    }

    #[test]
    fn kernel_neighbour_events_decode() {
        let one = |name: &str| {
            let v = decode(&vector(name));
            assert_eq!(v.len(), 1, "{name}");
            match v.into_iter().next().unwrap().unwrap() {
                Event::Neigh(n) => n,
                e => panic!("{name}: {e:?}"),
            }
        };
        let (ours, theirs) = (mac("02:00:5e:10:00:07"), mac("02:00:5e:20:00:05"));
        // what tapswitch writes comes back permanent, not extern_learn: zebra's local
        let l = one("nev_local_add");
        assert_eq!(
            (l.add, l.ifindex, l.ip, l.mac, l.state),
            (
                true,
                4,
                "198.18.1.7".parse().unwrap(),
                Some(ours),
                NUD_PERMANENT
            )
        );
        assert!(l.valid() && !l.extern_learn());
        let l6 = one("nev_local_add6");
        assert_eq!(l6.ip, "2001:2::7".parse::<IpAddr>().unwrap());
        assert!(l6.valid() && !l6.extern_learn());
        // a delete: first a new state `failed` (no MAC), then the removal
        let f = one("nev_local_fail");
        assert!(f.add && !f.valid() && f.state == NUD_FAILED, "{f:?}");
        assert!(!one("nev_local_del").add);
        // what zebra installs for a remote MAC+IP route: extern_learn, noarp
        let r = one("nev_remote_add");
        assert_eq!(
            (r.ip, r.mac, r.state),
            ("198.18.1.5".parse().unwrap(), Some(theirs), NUD_NOARP)
        );
        assert!(r.valid() && r.extern_learn());
        let r6 = one("nev_remote_add6");
        assert!(r6.valid() && r6.extern_learn() && r6.ip.is_ipv6());
        assert!(!one("nev_remote_fail").valid());
        let d = one("nev_remote_del");
        assert!(!d.add && !d.valid());
    }

    #[test]
    fn link_requests_match_iproute2() {
        let local: IpAddr = "198.18.0.1".parse().unwrap();
        same_message(&add_bridge("tsb1010"), "link_add_bridge");
        same_message(&add_vxlan("tsx1010", 1010, local, 47890), "link_add_vxlan");
        same_message(&add_veth("tsl1010", "tsp1010"), "link_add_veth");
        same_message(&addrgenmode_none(4), "link_addrgenmode_none");
        same_message(&set_master(5, 4), "link_set_master");
    }

    #[test]
    fn kernel_fdb_events_decode() {
        let one = |name: &str| {
            let v = decode(&vector(name));
            assert_eq!(v.len(), 1, "{name}");
            match v.into_iter().next().unwrap().unwrap() {
                Event::Fdb(f) => f,
                e => panic!("{name}: {e:?}"),
            }
        };
        let b: IpAddr = "198.18.0.2".parse().unwrap();
        // what tapswitch writes, as the kernel reports it: on the port, master 4, not
        // permanent (the bridge takes extern_learn entries as REACHABLE)
        let l = one("ev_local_add");
        assert_eq!(
            (l.add, l.ifindex, l.mac, l.master, l.dst),
            (true, 7, mac("02:00:5e:10:00:01"), Some(4), None)
        );
        assert!(l.extern_learn());
        assert_eq!(l.state, NUD_REACHABLE);
        // what zebra installs on the vxlan device: a remote MAC, self, with its VTEP
        let r = one("ev_remote_add");
        assert_eq!(
            (r.add, r.ifindex, r.mac, r.dst),
            (true, 5, mac("02:00:5e:20:00:02"), Some(b))
        );
        assert!(r.extern_learn() && r.flags & NTF_SELF != 0);
        // the flood list: the zero MAC with a dst, permanent
        let f = one("ev_flood_add");
        assert_eq!((f.add, f.mac, f.dst), (true, MacAddr::ZERO, Some(b)));
        assert_eq!(f.state & NUD_PERMANENT, NUD_PERMANENT);
        assert!(!one("ev_remote_del").add);
        assert!(!one("ev_flood_del").add);
        assert!(!one("ev_local_del").add);
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error_not_a_panic() {
        let v = vector("ev_remote_add");
        for cut in [0, 3, 15, 16, 20, 30, v.len() - 1] {
            let out = decode(&v[..cut]);
            assert!(out.iter().all(|r| r.is_err()), "cut {cut}: {out:?}");
        }
        let mut bad = v.clone();
        bad[0] = 0xff;
        assert!(decode(&bad)[0].is_err());
        // two messages in one datagram
        let mut two = vector("ev_flood_add");
        two.extend(vector("ev_flood_del"));
        let out = decode(&two);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.is_ok()));
    }
}
