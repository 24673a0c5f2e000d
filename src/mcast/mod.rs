//! IGMP/MLD snooping like the Linux bridge (issue 26): the MDB state machine, router ports,
//! the querier, and the read-mostly forwarding view the frame path asks.
//!
//! # Shape
//!
//! [`McastState`] is owned by one control thread. It is pure: no fds, no clock, no threads;
//! time is an argument ([`Timestamp`], ms). Inputs are frames the frame path copied to it
//! ([`McastState::handle_frame`] / [`McastState::handle_bytes`]), a plain
//! [`McastState::router_seen`], configuration and `bridge mdb`-style static entries, and
//! [`McastState::tick`] at [`McastState::next_deadline`]. Outputs are plain values drained by
//! the caller: [`Action::SendQuery`] (a [`QuerySpec`] that [`QuerySpec::build`] turns into
//! frame bytes), [`Event`]s for the API/event stream, [`McastStats`] counters, and after any
//! change that alters forwarding ([`McastState::is_dirty`]) a fresh immutable
//! [`ForwardingView`] ([`McastState::view`]) for the dataplane to publish (an `Arc` swapped in
//! place). The frame path asks only the view: [`ForwardingView::decide`] is a hash lookup
//! plus slice scans, allocation-free, and returns [`McastDecision::Flood`] (to every port
//! with `mcast_flood`) or [`McastDecision::Deliver`] (a [`PortList`] of member ports whose
//! filter admits the source, merged with the router ports).
//!
//! # Wiring it (for the dataplane, API, metrics and config)
//!
//! - Frame path, per multicast (non-broadcast) frame: `wire::inspect` once; an `Err` is a
//!   drop (count it, and tell the control side with [`McastState::note_parse_error`]); if
//!   [`crate::wire::McastFrame::needs_control`], queue a copy (bytes, ingress port, VID) for
//!   the control thread; forward by `view.decide(vid, &frame)`: `Flood` is today's multicast
//!   flood, `Deliver(list)` sends to `list.iter()` minus the usual egress checks (ingress port
//!   without hairpin, isolation, VLAN membership and tagging, STP state).
//! - Control thread: owns [`McastState`]; calls `handle_bytes` for queued frames, `add_port` /
//!   `set_port_enabled` / `remove_port` with link and STP changes, `add_vlan` / `remove_vlan`
//!   with the VLAN set (VLAN 0 when filtering is off), `tick(now)` at `next_deadline()`; after
//!   each batch: `take_actions` (build each query with [`QuerySpec::build`] and send it on
//!   `port`, or on every port of `vid` when `None`), `take_events` (API event stream), and if
//!   `is_dirty()`, `view()` published for the frame path (e.g. an `ArcSwap<ForwardingView>`).
//! - API/CLI: [`McastState::mdb_add`] / [`McastState::mdb_del`] / [`McastState::mdb`]
//!   (`bridge mdb` shaped), [`McastState::router_ports`], [`McastState::querier_state`].
//! - Metrics: [`McastState::stats`] and [`McastState::port_stats`] (Linux's mcast_stats
//!   names), [`McastState::groups_per_port_vlan`], [`McastState::group_count`].
//! - Config: [`McastConfig`] (bridge-wide, Linux names and defaults, [`McastConfig::validated`])
//!   and [`PortConfig`] (per port), [`McastState::set_config`] / `set_port_config` at run time,
//!   [`McastState::set_query_source`] per VLAN.
//!
//! Cost: the frame path's question is one hash lookup of (group, VID) plus a scan of the
//! member ports and their (at most 32) sources, no allocation. The control side keeps each
//! entry's earliest timer, so `next_deadline` and `tick` walk the groups, not their sources;
//! `view()` rebuilds the whole view (call it once per batch of changes, not per report).
//!
//! # What Linux does, and what is kept (net/bridge/br_multicast.c, br_mdb.c, br_input.c,
//! br_forward.c, net/ipv4/igmp.c `ip_mc_check_igmp`, net/ipv6/mcast_snoop.c)
//!
//! - The forwarding rule: with snooping on, IPv4 traffic to a group outside 224.0.0.0/24 and
//!   IPv6 traffic to any group but ff02::1 is "mrouters only". It is delivered to the MDB
//!   member ports plus the router ports only if a querier exists
//!   (`br_multicast_querier_exists`: another querier was heard within
//!   `mcast_querier_interval`, or our own querier is on, and in both cases the first query was
//!   at least one max-response-time ago); otherwise it is flooded to `mcast_flood` ports.
//!   IGMPv1/v2 and MLDv1 reports go to router ports only under the same condition; queries,
//!   leaves, IGMPv3/MLDv2 reports and 224.0.0.0/24 / ff02::1 always flood. Frames Linux drops
//!   while snooping (a bad IPv4 header or IGMP checksum, a malformed query or report) are
//!   errors of [`crate::wire::inspect`] for the caller to drop and count.
//! - The MDB is keyed by (group, VID) with one port group per port: filter mode
//!   include/exclude, a group timer, a source list with per-source timers (at most 32 per port
//!   group, Linux `PG_SRC_ENT_LIMIT`). IGMPv3/MLDv2 records are processed only with
//!   `mcast_igmp_version 3` / `mcast_mld_version 2`; with the defaults (2 and 1) a record with
//!   sources or an exclude record is a join and TO_IN({})/IS_IN({}) a leave, exactly as Linux.
//!   The RFC 3376 §6.4 / RFC 3810 §7.4 tables are applied as Linux's `__grp_src_*` functions
//!   apply them, including its group timer value GMI = `mcast_membership_interval` and
//!   LMQT = `mcast_last_member_count` x `mcast_last_member_interval`, and that the timers are
//!   lowered by a leave or Q(G)/Q(G,S) even when the switch is not the querier (but not on an
//!   IGMPv2 leave while another querier is present, which then sends the group query).
//! - Forwarding with sources: a port receives (S,G) when its filter admits S (include mode and
//!   S listed, or exclude mode and S not blocked) - what Linux reaches through its (S,G) MDB
//!   entries, the `blocked` flag and the `added_by_star_ex` copies. In IGMPv2/MLDv1 mode every
//!   member port receives every source (Linux does no (S,G) lookup then), static (S,G) entries
//!   included.
//! - Router ports: learned from a general query that wins the querier election, from PIM
//!   hellos and from MRD advertisements, for `mcast_querier_interval`; per-port
//!   `mcast_router` 0 (never), 1 (learn, default), 2 (always) and 3 (temporary: a router for
//!   `mcast_querier_interval`, then back to 1). Router ports are kept per address family as in
//!   Linux.
//! - Querier election: the lowest source address wins; 0.0.0.0 loses to anyone (Linux treats
//!   a zero querier address as none). The own querier (`mcast_querier`) sends
//!   `mcast_startup_query_count` general queries `mcast_startup_query_interval` apart, then one
//!   every `mcast_query_interval`, stops while another querier is present and starts again when
//!   it has been silent for `mcast_querier_interval`. A port coming up gets its own start-up
//!   queries, as Linux's per-port own queries do. Source address: the one configured for the
//!   VLAN, else 0.0.0.0 (Linux without `mcast_query_use_ifaddr`); for MLD the configured one,
//!   else the EUI-64 link-local address of the switch MAC, the address a Linux bridge device has
//!   (an MLD query must come from a link-local address, RFC 3810 §5.1.14).
//! - When the switch is the querier, a leave, TO_IN, TO_EX and BLOCK send group-specific and
//!   group-and-source-specific queries on the port the report came from, and
//!   `mcast_last_member_count` - 1 retransmissions `mcast_last_member_interval` apart.
//! - `mcast_fast_leave`: an IGMPv2 leave / MLDv1 done removes the port group at once.
//! - Bounds: `mcast_hash_max` (group, VID) entries; per-port `mcast_max_groups` (0 = no limit);
//!   32 sources per port group; the event and action queues hold [`OUTPUT_QUEUE_MAX`] items
//!   (more are dropped and counted).
//! - Static entries as `bridge mdb add dev BR port P grp G [src S] [permanent|temp] [vid V]`
//!   makes them: permanent ones are immune to reports, leaves and timers; temp ones age out
//!   after `mcast_membership_interval` like learned ones. `bridge mdb del` removes learned
//!   entries too.
//!
//! # Where tapswitch differs, and why
//!
//! - Group-and-source-specific queries are sent at once (Linux 6.x first sends them one
//!   `mcast_last_member_interval` late: its first pass only looks for sources above LMQT and
//!   returns when there are none); sources with timers above LMQT go in a query with the S flag
//!   set and the others in one without (RFC 3376 §6.6.3.2; Linux sets S on both). A
//!   retransmitted group-specific query carries S only when the group timer is above LMQT
//!   (RFC 3376 §6.6.3.1; Linux always sets it).
//! - An IGMPv2 leave / MLDv1 done when the switch is querier sends the group-specific query to
//!   the group address with `mcast_last_member_count` - 1 retransmissions (RFC 2236 §3); Linux
//!   sends one to 224.0.0.1 and a general query on the port one LMQT later.
//! - `mcast_fast_leave` with IGMPv3/MLDv2: Linux deletes a port group early through explicit
//!   host tracking (not kept here). tapswitch treats a fast-leave port as one host: what a
//!   last-member query would have ended ends at once (TO_IN({}) deletes the port group, BLOCK
//!   drops the sources, TO_EX blocks them), and no query is sent.
//! - `mcast_hash_max` reached: Linux turns snooping off for the whole bridge (so everything
//!   floods); tapswitch refuses the new group, counts it (`mdb_full`) and reports an event, so
//!   one flood of reports cannot change how every other group is forwarded.
//!   `mcast_max_groups` counts (*,G) port groups and static (S,G) entries; Linux also counts
//!   the (S,G) entries it derives from source lists.
//! - An IGMPv3/MLDv2 record leaving a port group in include mode with no source removes it
//!   (Linux leaves an empty include entry after ALLOW({}) until the port goes down).
//! - A report whose records run past its end is rejected whole (Linux applies the records
//!   before the broken one, then drops the frame).
//! - The querier state is kept per VLAN (what Linux does with `mcast_vlan_snooping 1`); with
//!   VLAN filtering off everything is VLAN 0, which is Linux's default.
//! - `mcast_to_unicast` is not implemented here (it needs per-host entries and a MAC rewrite
//!   on the frame path).

mod query;
pub mod settings;
mod state;
#[cfg(test)]
mod tests;
mod view;

use std::net::IpAddr;

pub use crate::types::{PortId, Timestamp};
pub use crate::wire::Family;
use crate::wire::MacAddr;

pub use query::{link_local_from_mac, QuerySpec, QueryVersion};
pub use settings::{SettingError, PORT_KEYS, SWITCH_KEYS};
pub use state::McastState;
pub use view::{ForwardingView, McastDecision, PortIter, PortList};

/// At most this many sources per port group (Linux `PG_SRC_ENT_LIMIT`).
pub const PG_SRC_ENT_LIMIT: usize = 32;
/// At most this many undrained actions or events are kept; more are dropped and counted.
pub const OUTPUT_QUEUE_MAX: usize = 4096;
/// Linux `BR_MULTICAST_DEFAULT_HASH_MAX`.
pub const DEFAULT_HASH_MAX: usize = 4096;
/// Linux `BR_MULTICAST_QUERY_INTVL_MIN` and `BR_MULTICAST_STARTUP_QUERY_INTVL_MIN`: shorter
/// query intervals are raised to this (Linux logs and clamps).
pub const QUERY_INTVL_MIN_MS: u64 = 1000;

/// Switch-wide snooping settings, with Linux's names (bridge(8), `ip link add type bridge`)
/// and defaults. Intervals are in milliseconds (Linux takes centiseconds).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct McastConfig {
    /// `mcast_snooping` (default on). Off: every multicast frame floods, nothing is learned.
    pub snooping: bool,
    /// `mcast_querier` (default off): send general queries when no other querier is present.
    pub querier: bool,
    /// `mcast_igmp_version` 2 or 3 (default 2): the queries sent, and whether IGMPv3 source
    /// lists are kept.
    pub igmp_version: u8,
    /// `mcast_mld_version` 1 or 2 (default 1).
    pub mld_version: u8,
    /// `mcast_query_interval` (default 125 s).
    pub query_interval_ms: u64,
    /// `mcast_query_response_interval` (default 10 s).
    pub query_response_interval_ms: u64,
    /// `mcast_membership_interval` (default 260 s): group membership interval (GMI).
    pub membership_interval_ms: u64,
    /// `mcast_querier_interval` (default 255 s): other querier present interval.
    pub querier_interval_ms: u64,
    /// `mcast_startup_query_interval` (default 31.25 s).
    pub startup_query_interval_ms: u64,
    /// `mcast_startup_query_count` (default 2).
    pub startup_query_count: u32,
    /// `mcast_last_member_count` (default 2).
    pub last_member_count: u32,
    /// `mcast_last_member_interval` (default 1 s).
    pub last_member_interval_ms: u64,
    /// `mcast_hash_max` (default 4096): most (group, VID) entries.
    pub hash_max: usize,
    /// The switch's MAC address: the source of its queries and, for MLD, of its default
    /// link-local query source address.
    pub switch_mac: MacAddr,
}

impl Default for McastConfig {
    fn default() -> Self {
        McastConfig {
            snooping: true,
            querier: false,
            igmp_version: 2,
            mld_version: 1,
            query_interval_ms: 125_000,
            query_response_interval_ms: 10_000,
            membership_interval_ms: 260_000,
            querier_interval_ms: 255_000,
            startup_query_interval_ms: 31_250,
            startup_query_count: 2,
            last_member_count: 2,
            last_member_interval_ms: 1_000,
            hash_max: DEFAULT_HASH_MAX,
            switch_mac: MacAddr([0x02, 0, 0, 0, 0, 0x01]),
        }
    }
}

/// A setting Linux would refuse. The text names the setting as bridge(8) does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `mcast_igmp_version` other than 2 or 3.
    #[error("mcast_igmp_version {0} is not supported (2 or 3)")]
    IgmpVersion(u8),
    /// `mcast_mld_version` other than 1 or 2.
    #[error("mcast_mld_version {0} is not supported (1 or 2)")]
    MldVersion(u8),
    /// `mcast_hash_max` 0.
    #[error("mcast_hash_max must be at least 1")]
    HashMax,
    /// A zero interval or count where Linux needs one.
    #[error("{0} must not be 0")]
    Zero(&'static str),
}

impl McastConfig {
    /// Checks the values Linux checks, and raises query intervals below 1 s to 1 s as Linux
    /// does (`br_multicast_set_query_intvl`).
    pub fn validated(mut self) -> Result<McastConfig, ConfigError> {
        if !matches!(self.igmp_version, 2 | 3) {
            return Err(ConfigError::IgmpVersion(self.igmp_version));
        }
        if !matches!(self.mld_version, 1 | 2) {
            return Err(ConfigError::MldVersion(self.mld_version));
        }
        if self.hash_max == 0 {
            return Err(ConfigError::HashMax);
        }
        if self.last_member_count == 0 {
            return Err(ConfigError::Zero("mcast_last_member_count"));
        }
        self.query_interval_ms = self.query_interval_ms.max(QUERY_INTVL_MIN_MS);
        self.startup_query_interval_ms = self.startup_query_interval_ms.max(QUERY_INTVL_MIN_MS);
        Ok(self)
    }

    /// GMI, the timeout of a group or source learned from a report.
    pub fn gmi_ms(&self) -> u64 {
        self.membership_interval_ms
    }

    /// LMQT: `mcast_last_member_count` x `mcast_last_member_interval`.
    pub fn lmqt_ms(&self) -> u64 {
        u64::from(self.last_member_count) * self.last_member_interval_ms
    }

    /// Whether source lists are kept for a family (IGMPv3 / MLDv2 mode; Linux
    /// `br_multicast_should_handle_mode`).
    pub fn handles_sources(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.igmp_version == 3,
            Family::V6 => self.mld_version == 2,
        }
    }
}

/// Per-port `mcast_router` (bridge(8) `bridge link set ... mcast_router N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterMode {
    /// 0: never a router port.
    Disabled,
    /// 1 (default): a router port while queries (PIM hellos, MRD) are heard on it.
    #[default]
    TempQuery,
    /// 2: always a router port.
    Permanent,
    /// 3: a router port for `mcast_querier_interval` (refreshed by queries), then back to 1.
    Temp,
}

impl RouterMode {
    /// From the number bridge(8) uses.
    pub fn from_u8(v: u8) -> Option<RouterMode> {
        Some(match v {
            0 => RouterMode::Disabled,
            1 => RouterMode::TempQuery,
            2 => RouterMode::Permanent,
            3 => RouterMode::Temp,
            _ => return None,
        })
    }

    /// The number bridge(8) uses.
    pub fn as_u8(self) -> u8 {
        match self {
            RouterMode::Disabled => 0,
            RouterMode::TempQuery => 1,
            RouterMode::Permanent => 2,
            RouterMode::Temp => 3,
        }
    }
}

/// Per-port snooping settings (`mcast_flood` and `mcast_to_unicast` are the dataplane's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct PortConfig {
    /// `mcast_router`.
    pub router: RouterMode,
    /// `mcast_fast_leave` (default off).
    pub fast_leave: bool,
    /// `mcast_max_groups` (default 0 = no limit but `mcast_hash_max`).
    pub max_groups: u32,
}

/// Include or exclude filter mode of a port group (RFC 3376 §6.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterMode {
    /// Only the listed sources are wanted.
    Include,
    /// All sources but the blocked ones are wanted.
    Exclude,
}

/// Why a request to the state machine was refused. The text is what the API/CLI shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum McastError {
    /// The port was never added with [`McastState::add_port`].
    #[error("port {0} is not known to multicast snooping")]
    UnknownPort(PortId),
    /// Not a multicast group address.
    #[error("{0} is not a multicast group address")]
    NotMulticast(IpAddr),
    /// 224.0.0.0/24 or ff02::1: Linux refuses MDB entries for these (always flooded).
    #[error("{0} is a link-local group that is always flooded")]
    UnsnoopedGroup(IpAddr),
    /// A source that is not a unicast address of the group's family.
    #[error("{0} is not a valid source for this group")]
    BadSource(IpAddr),
    /// VLAN ID above 4094.
    #[error("vid {0} is out of range (0-4094)")]
    BadVid(u16),
    /// `bridge mdb add` of an entry that exists.
    #[error("an MDB entry for this port, group, source and vid already exists")]
    Exists,
    /// `bridge mdb del` of an entry that does not exist.
    #[error("no such MDB entry")]
    NotFound,
    /// `mcast_hash_max` entries exist.
    #[error("the MDB is full (mcast_hash_max {0})")]
    MdbFull(usize),
    /// The bytes are not a packet snooping can use (count it as a parse error).
    #[error("malformed packet: {0}")]
    Parse(#[from] crate::wire::WireError),
    /// The port is a member of `mcast_max_groups` groups.
    #[error("port {port} is already a member of mcast_max_groups {max} groups")]
    PortMaxGroups {
        /// The port.
        port: PortId,
        /// Its limit.
        max: u32,
    },
}

/// What is sent: the multicast state machine's output to the dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Transmit this query (build the frame with [`QuerySpec::build`]). `port: None` means
    /// every port that is a member of the VLAN; the dataplane applies its egress rules
    /// (VLAN membership and tagging, STP state) as for any frame the switch sends.
    SendQuery(QuerySpec),
}

/// Why a port group went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveReason {
    /// Its timers ran out (no report after a leave or a query, or GMI without reports).
    Expired,
    /// An IGMPv3/MLDv2 record emptied it, or fast leave.
    Left,
    /// Deleted with `mdb del`.
    Deleted,
    /// The port went down or left the switch.
    PortDown,
    /// Its VLAN was removed.
    VlanRemoved,
}

/// The querier the switch currently follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QuerierInfo {
    /// Its source address (0.0.0.0 / the switch's own address for the own querier).
    pub address: IpAddr,
    /// The port it was heard on; `None` for the switch itself.
    pub port: Option<PortId>,
}

/// A change the API's event stream shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A port joined a group (learned or static).
    GroupAdded {
        /// VLAN.
        vid: u16,
        /// Group.
        group: IpAddr,
        /// Source of a static (S,G) entry.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<IpAddr>,
        /// Port.
        port: PortId,
        /// Added by `mdb add`.
        #[serde(rename = "static")]
        is_static: bool,
    },
    /// A port group's filter mode or source list changed.
    GroupChanged {
        /// VLAN.
        vid: u16,
        /// Group.
        group: IpAddr,
        /// Port.
        port: PortId,
        /// New filter mode.
        filter_mode: FilterMode,
    },
    /// A port left a group.
    GroupRemoved {
        /// VLAN.
        vid: u16,
        /// Group.
        group: IpAddr,
        /// Source of a static (S,G) entry.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<IpAddr>,
        /// Port.
        port: PortId,
        /// Why.
        reason: RemoveReason,
    },
    /// A new group or port group was refused by a limit.
    GroupRefused {
        /// VLAN.
        vid: u16,
        /// Group.
        group: IpAddr,
        /// Port.
        port: PortId,
        /// `mdb_full` or `port_max_groups`.
        reason: &'static str,
    },
    /// A port became a multicast router port (`vid: None`: in every VLAN, by `mcast_router`).
    RouterAdded {
        /// Port.
        port: PortId,
        /// VLAN, or every VLAN.
        vid: Option<u16>,
        /// IGMP or MLD.
        family: Family,
    },
    /// A port stopped being a router port.
    RouterRemoved {
        /// Port.
        port: PortId,
        /// VLAN, or every VLAN.
        vid: Option<u16>,
        /// IGMP or MLD.
        family: Family,
    },
    /// The querier of a VLAN changed (`querier: None`: none any more).
    QuerierChanged {
        /// VLAN.
        vid: u16,
        /// IGMP or MLD.
        family: Family,
        /// The querier now followed.
        querier: Option<QuerierInfo>,
    },
}

/// IGMP/MLD message counts by type and version, with Linux's names (`ip -s -d link show`,
/// `bridge -s link`: igmp_v1queries, ..., mld_leaves).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct McastCounts {
    /// IGMPv1 queries.
    pub igmp_v1queries: u64,
    /// IGMPv2 queries.
    pub igmp_v2queries: u64,
    /// IGMPv3 queries.
    pub igmp_v3queries: u64,
    /// IGMPv2 leaves.
    pub igmp_leaves: u64,
    /// IGMPv1 reports.
    pub igmp_v1reports: u64,
    /// IGMPv2 reports.
    pub igmp_v2reports: u64,
    /// IGMPv3 reports.
    pub igmp_v3reports: u64,
    /// MLDv1 queries.
    pub mld_v1queries: u64,
    /// MLDv2 queries.
    pub mld_v2queries: u64,
    /// MLDv1 dones.
    pub mld_leaves: u64,
    /// MLDv1 reports.
    pub mld_v1reports: u64,
    /// MLDv2 reports.
    pub mld_v2reports: u64,
}

/// Counters of one port or of the whole switch. `tx` counts the queries the state machine
/// asked to send (a `port: None` query counts once in the switch total).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct McastStats {
    /// Messages received (only while snooping is on, as in Linux).
    pub rx: McastCounts,
    /// Queries sent.
    pub tx: McastCounts,
    /// IGMP messages refused by the parser (Linux `igmp_parse_errors`).
    pub igmp_parse_errors: u64,
    /// MLD messages refused by the parser (Linux `mld_parse_errors`).
    pub mld_parse_errors: u64,
    /// New groups refused because `mcast_hash_max` entries exist.
    pub mdb_full: u64,
    /// New port groups refused by `mcast_max_groups`.
    pub port_max_groups: u64,
    /// Sources not kept because a port group has 32.
    pub source_limit: u64,
    /// Events and actions dropped because nobody drained them ([`OUTPUT_QUEUE_MAX`]).
    pub output_dropped: u64,
}

/// A `bridge mdb add` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticEntry {
    /// `port P`.
    pub port: PortId,
    /// `grp G`.
    pub group: IpAddr,
    /// `src S`: an (S,G) entry.
    pub source: Option<IpAddr>,
    /// `permanent` (true) or `temp` (false; ages out after `mcast_membership_interval`).
    pub permanent: bool,
    /// `vid V` (0 when VLAN filtering is off).
    pub vid: u16,
}

/// One line of `bridge -d -s mdb show` (JSON field names as iproute2 prints them).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MdbRow {
    /// Port.
    pub port: PortId,
    /// Group.
    pub grp: IpAddr,
    /// Source of an (S,G) row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// VLAN.
    pub vid: u16,
    /// "permanent" or "temp".
    pub state: &'static str,
    /// "blocked" for an (S,G) row of a blocked source; "added_by_star_ex" is not used.
    pub flags: Vec<&'static str>,
    /// Filter mode of a (*,G) row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_mode: Option<FilterMode>,
    /// Source list of a (*,G) row.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_list: Vec<MdbSource>,
    /// "kernel" (learned) or "static".
    pub protocol: &'static str,
    /// Milliseconds left on the timer (0: not running).
    pub timer_ms: u64,
}

/// One source of a (*,G) row's source list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MdbSource {
    /// Source address.
    pub address: IpAddr,
    /// Milliseconds left (0: not running, blocked in exclude mode).
    pub timer_ms: u64,
}

/// A router port as `bridge -d mdb show` lists it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RouterRow {
    /// Port.
    pub port: PortId,
    /// VLAN (`None`: every VLAN, from `mcast_router` 2 or 3).
    pub vid: Option<u16>,
    /// IGMP or MLD.
    pub family: Family,
    /// Milliseconds left (0: permanent).
    pub timer_ms: u64,
}

/// The querier state of one VLAN and family (`ip -d link show` `mcast_querier_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QuerierState {
    /// The querier followed, if any.
    pub querier: Option<QuerierInfo>,
    /// Milliseconds left of the other-querier-present timer (0: none heard).
    pub other_timer_ms: u64,
    /// Whether forwarding treats a querier as present (`br_multicast_querier_exists`).
    pub exists: bool,
}

/// Whether `source` can be a source of `group`: same family, unicast, not unspecified
/// (Linux `br_multicast_new_group_src`).
pub fn valid_source(group: &IpAddr, source: &IpAddr) -> bool {
    match (group, source) {
        (IpAddr::V4(_), IpAddr::V4(s)) => {
            !s.is_unspecified() && !s.is_multicast() && s.octets()[0] != 0
        }
        (IpAddr::V6(_), IpAddr::V6(s)) => !s.is_unspecified() && !s.is_multicast(),
        _ => false,
    }
}
