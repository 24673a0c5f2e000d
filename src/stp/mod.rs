//! Rapid Spanning Tree Protocol (IEEE 802.1D-2004 clause 17) for one bridge, with 802.1D
//! (legacy STP) interoperation by protocol migration. Pure: no I/O, no clock, no threads.
//!
//! # Model
//!
//! [`Stp`] holds the bridge and its ports. Every call takes `now` (milliseconds from an
//! origin the caller chooses). Inputs are BPDUs ([`Stp::receive`]), link and configuration
//! changes, and the passage of time ([`Stp::tick`]); outputs are [`Action`]s the switch
//! applies, collected with [`Stp::take_actions`]:
//!
//! - [`Action::SetState`]: the port's forwarding state. `Discarding`: drop every frame
//!   received on or destined to the port (except BPDUs, which still go to [`Stp::receive`])
//!   and do not learn; `Learning`: learn source addresses, forward nothing; `Forwarding`:
//!   normal. A port starts `Discarding`; the switch should assume that until told otherwise.
//! - [`Action::Flush`]: remove the learned (dynamic) FDB entries of that port.
//! - [`Action::Transmit`]: send the frame (a complete, untagged, 60-byte Ethernet frame) on
//!   that port, whatever the port's state.
//! - [`Action::BpduGuard`]: a BPDU arrived on a port with BPDU guard; the port is now
//!   disabled for STP (role disabled, state discarding) until [`Stp::set_port_enabled`]
//!   with `up = true` or [`Stp::set_port_config`]. Log it; the switch may also take the
//!   link down administratively.
//! - [`Action::RootChanged`], [`Action::TopologyChange`]: events for logs and metrics.
//!
//! Within one batch, SetState and Flush come before the Transmits produced by the same
//! event, so a port is discarding in the data plane before a BPDU tells a peer it may
//! forward. Apply actions in order.
//!
//! # Time
//!
//! The 802.1D timers tick once a second (17.22). [`Stp::tick`] counts the whole seconds
//! elapsed since the last counted second and runs one tick for each (catching up at most
//! [`MAX_CATCH_UP_SECS`]). Call it every 100 ms to 1 s; calling more often is harmless.
//! BPDUs are processed as they arrive, between ticks.
//!
//! # Wiring (for the switch)
//!
//! - Frames to 01:80:c2:00:00:00 are never forwarded while STP runs. For an untagged 802.3
//!   frame to that address, [`bpdu::bpdu_payload`] gives the bytes to pass to
//!   [`Stp::receive`]. A tagged frame to that address is not a BPDU of this bridge: drop it.
//! - Link up/down and admin up/down: [`Stp::set_port_enabled`]. Down makes the port
//!   discarding (SetState) and flushes it (Flush); the switch should flush it anyway.
//! - The frame path reads only the per-port state, best mirrored from SetState actions into
//!   the port's own atomic; [`Stp::port_state`] is the authoritative value.
//! - Ports are added enabled (link up); call `set_port_enabled(id, false, now)` for a port
//!   whose link is down.
//!
//! # Identities and defaults
//!
//! - Bridge identifier: priority (4 bits, multiple of 4096) + system ID extension 0 +
//!   bridge MAC, shown like Linux sysfs: `8000.020000000001` ([`BridgeId`]).
//! - Port identifier: priority (multiple of 16) + 12-bit port number, shown `8001`.
//! - Path cost when none is configured: 20,000,000 / speed in Mb/s (802.1D-2004 Table 17-3);
//!   unknown speed (TAPs, sockets) gets 20,000, the value for 1 Gb/s.
//! - BPDU source MAC of port number N: the bridge MAC with the locally administered bit
//!   set, the group bit clear, and N XORed into octets 1-2 ([`Stp::port_bpdu_mac`]).
//! - `P2p::Auto` counts as point-to-point: every tapswitch port is one link to one peer.
//! - Root guard follows 802.1Q-2011 `restrictedRole`: a port with root guard is never root
//!   port; while it holds superior information it is Alternate/discarding and reported
//!   `root_inconsistent`, until that information ages out (3 × hello after the superior
//!   BPDUs stop) or is replaced by inferior information from the same sender.
//! - With `force_version` 0 the bridge sends only Configuration and TCN BPDUs and uses the
//!   802.1D timer-based transitions (17.4, "STP compatibility"); a topology change flushes
//!   at once rather than by shortened ageing.
//!
//! # Layout
//!
//! - `bpdu`: the wire codec ([`Bpdu`], [`BridgeId`], [`PortIdentifier`], [`bpdu::bpdu_payload`]).
//! - `machines` (private): the per-port variables and the clause-17 state machines, one
//!   function each (PTI, PRX, PPM, BDM, PTX, PIM, PRS, PRT, PST, TCM; its module doc has the
//!   table and the few deliberate deviations from the standard's text).
//! - this file: configuration, the public API, status and errors.
//! - `tests` and `sim` (test only): unit tests, and a simulated network of bridges.
//!
//! # Timings to expect (simulated, see `sim`)
//!
//! Point-to-point RSTP links converge by proposal/agreement, within a BPDU round trip per
//! hop. A designated port that gets no agreement (shared segment, `P2p::No`, or a silent
//! peer with auto-edge off) forwards after fdWhile (Max Age after BEGIN) plus twice Hello
//! Time; toward an 802.1D bridge after about 2 × Forward Delay (30-35 s with defaults).
//! A part of the network that loses its root bridge counts to infinity until the stale
//! information exceeds Max Age (about 10-15 s with defaults), as RSTP does.

pub mod bpdu;
mod machines;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;

use crate::types::{PortId, Timestamp};
use crate::wire::MacAddr;

pub use bpdu::{Bpdu, BpduError, BpduKind, BridgeId, PortIdentifier};
use machines::{Port, PrsState, RcvdBpdu, Times, Vector};

/// At most this many one-second ticks are run by one [`Stp::tick`] call; a longer gap
/// (a suspended process) skips the rest.
pub const MAX_CATCH_UP_SECS: u64 = 300;

/// Bridge-wide configuration (802.1D-2004 17.13, Table 17-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BridgeConfig {
    /// Bridge priority, 0..=61440 in steps of 4096 (default 32768).
    pub priority: u16,
    /// Hello Time, 1..=10 s (default 2).
    pub hello_time: u8,
    /// Forward Delay, 4..=30 s (default 15).
    pub forward_delay: u8,
    /// Max Age, 6..=40 s (default 20).
    pub max_age: u8,
    /// Bridge address (a unicast MAC).
    pub mac: MacAddr,
    /// Transmit Hold Count, 1..=10 BPDUs per second per port (default 6).
    pub tx_hold_count: u8,
    /// 2 = RSTP (default); 0 = STP-compatible (Configuration and TCN BPDUs only).
    pub force_version: u8,
}

impl BridgeConfig {
    /// The defaults of 802.1D-2004 Table 17-1 for bridge address `mac`.
    pub fn new(mac: MacAddr) -> BridgeConfig {
        BridgeConfig {
            priority: 32768,
            hello_time: 2,
            forward_delay: 15,
            max_age: 20,
            mac,
            tx_hold_count: 6,
            force_version: 2,
        }
    }

    /// Checks ranges and 2 × (Forward Delay − 1) ≥ Max Age ≥ 2 × (Hello Time + 1).
    pub fn validate(&self) -> Result<(), StpConfigError> {
        if self.priority % 4096 != 0 || self.priority > 61440 {
            return Err(StpConfigError::Priority(self.priority));
        }
        if !(1..=10).contains(&self.hello_time) {
            return Err(StpConfigError::HelloTime(self.hello_time));
        }
        if !(4..=30).contains(&self.forward_delay) {
            return Err(StpConfigError::ForwardDelay(self.forward_delay));
        }
        if !(6..=40).contains(&self.max_age) {
            return Err(StpConfigError::MaxAge(self.max_age));
        }
        let (fd, ma, hello) = (
            u16::from(self.forward_delay),
            u16::from(self.max_age),
            u16::from(self.hello_time),
        );
        if 2 * (fd - 1) < ma || ma < 2 * (hello + 1) {
            return Err(StpConfigError::TimerRelation {
                forward_delay: self.forward_delay,
                max_age: self.max_age,
                hello_time: self.hello_time,
            });
        }
        if !(1..=10).contains(&self.tx_hold_count) {
            return Err(StpConfigError::TxHoldCount(self.tx_hold_count));
        }
        if self.force_version != 0 && self.force_version != 2 {
            return Err(StpConfigError::ForceVersion(self.force_version));
        }
        if !self.mac.is_valid_source() {
            return Err(StpConfigError::Mac(self.mac));
        }
        Ok(())
    }
}

/// A stable bridge address derived from the switch name when `--stp-mac` is not given: a
/// locally administered unicast address 02:xx:xx:xx:xx:xx whose last five bytes are the
/// first five of the 64-bit FNV-1a hash of the name.
pub fn derived_mac(name: &str) -> MacAddr {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    MacAddr([0x02, b[0], b[1], b[2], b[3], b[4]])
}

/// Whether a port's link is point-to-point (operPointToPointMAC, 6.4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum P2p {
    /// Decide automatically: point-to-point for every tapswitch port.
    #[default]
    Auto,
    /// Point-to-point.
    Yes,
    /// Shared medium: no proposal/agreement handshake on this port.
    No,
}

/// Per-port configuration (802.1D-2004 17.13, Table 17-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortConfig {
    /// Port priority, 0..=240 in steps of 16 (default 128).
    pub priority: u8,
    /// Port path cost, 1..=200,000,000; `None` derives it from the link speed.
    pub path_cost: Option<u32>,
    /// AdminEdge: forwarding at once; a received BPDU makes the port non-edge.
    pub admin_edge: bool,
    /// AutoEdge: become edge when no BPDU is heard while proposing (default true).
    pub auto_edge: bool,
    /// Point-to-point link.
    pub p2p: P2p,
    /// Disable the port when any BPDU arrives on it.
    pub bpdu_guard: bool,
    /// Never let the port become root port (802.1Q restrictedRole).
    pub root_guard: bool,
}

impl Default for PortConfig {
    fn default() -> PortConfig {
        PortConfig {
            priority: 128,
            path_cost: None,
            admin_edge: false,
            auto_edge: true,
            p2p: P2p::Auto,
            bpdu_guard: false,
            root_guard: false,
        }
    }
}

impl PortConfig {
    /// Checks the priority and path cost ranges.
    pub fn validate(&self) -> Result<(), StpPortError> {
        if self.priority % 16 != 0 || self.priority > 240 {
            return Err(StpPortError::Priority(self.priority));
        }
        if let Some(c) = self.path_cost {
            if !(1..=200_000_000).contains(&c) {
                return Err(StpPortError::PathCost(c));
            }
        }
        Ok(())
    }
}

/// What the switch must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this complete Ethernet frame (a BPDU) on the port, whatever its state.
    Transmit {
        /// Egress port.
        port: PortId,
        /// The frame: 60 bytes, untagged, to 01:80:c2:00:00:00.
        frame: Vec<u8>,
    },
    /// Apply this forwarding state to the port.
    SetState {
        /// The port.
        port: PortId,
        /// Its new state.
        state: PortState,
    },
    /// Remove the learned FDB entries of this port (topology change, or port blocked).
    Flush {
        /// The port.
        port: PortId,
    },
    /// BPDU guard tripped on this port: it is disabled for STP until re-enabled.
    BpduGuard {
        /// The port.
        port: PortId,
    },
    /// The root bridge changed.
    RootChanged,
    /// A topology change began (the bridge's topology change flag went up).
    TopologyChange,
}

/// A port's forwarding state (802.1D-2004 7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortState {
    /// Neither learn nor forward.
    #[default]
    Discarding,
    /// Learn source addresses, do not forward.
    Learning,
    /// Learn and forward.
    Forwarding,
}

impl PortState {
    /// `discarding`, `learning` or `forwarding`.
    pub fn as_str(self) -> &'static str {
        match self {
            PortState::Discarding => "discarding",
            PortState::Learning => "learning",
            PortState::Forwarding => "forwarding",
        }
    }
}

/// A port's role (802.1D-2004 17.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PortRole {
    /// Best path to the root.
    Root,
    /// Forwards toward the LAN on behalf of this bridge.
    Designated,
    /// Alternate path to the root (discarding).
    Alternate,
    /// Backup for a designated port of this bridge on the same LAN (discarding).
    Backup,
    /// Not taking part (link down, BPDU guard).
    Disabled,
}

impl PortRole {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PortRole::Root => "root",
            PortRole::Designated => "designated",
            PortRole::Alternate => "alternate",
            PortRole::Backup => "backup",
            PortRole::Disabled => "disabled",
        }
    }
}

/// The BPDU format a port sends (sendRSTP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// RST BPDUs.
    Rstp,
    /// Configuration and TCN BPDUs (an 802.1D bridge is on the link, or force_version 0).
    Stp,
}

/// Per-port BPDU counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct PortCounters {
    /// Configuration BPDUs received.
    pub rx_config: u64,
    /// RST BPDUs received.
    pub rx_rst: u64,
    /// TCN BPDUs received.
    pub rx_tcn: u64,
    /// Frames to the bridge group address that did not decode as a BPDU.
    pub rx_invalid: u64,
    /// Valid BPDUs not processed: port disabled, or our own BPDU looped back.
    pub rx_ignored: u64,
    /// Configuration BPDUs sent.
    pub tx_config: u64,
    /// RST BPDUs sent.
    pub tx_rst: u64,
    /// TCN BPDUs sent.
    pub tx_tcn: u64,
}

/// Bridge-wide status, for the API and metrics.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BridgeStatus {
    /// This bridge's identifier.
    pub bridge_id: BridgeId,
    /// The root bridge's identifier.
    pub designated_root: BridgeId,
    /// Whether this bridge is the root.
    pub is_root: bool,
    /// The root port, if this bridge is not the root.
    pub root_port: Option<PortId>,
    /// Cost of the path to the root.
    pub root_path_cost: u32,
    /// Max Age in force (from the root), seconds.
    pub max_age: u16,
    /// Hello Time in force (from the root), seconds.
    pub hello_time: u16,
    /// Forward Delay in force (from the root), seconds.
    pub forward_delay: u16,
    /// Configured Max Age, seconds.
    pub bridge_max_age: u8,
    /// Configured Hello Time, seconds.
    pub bridge_hello_time: u8,
    /// Configured Forward Delay, seconds.
    pub bridge_forward_delay: u8,
    /// Transmit hold count.
    pub tx_hold_count: u8,
    /// `rstp` or `stp` (force_version 0).
    pub protocol: Protocol,
    /// A topology change is under way (some port's tcWhile is running).
    pub topology_change: bool,
    /// Topology changes seen (rising edges of `topology_change`).
    pub topology_change_count: u64,
    /// Seconds since a port last started a topology change timer, as of the latest `now`.
    pub time_since_topology_change: Option<u64>,
    /// The port that last started a topology change timer.
    pub topology_change_port: Option<PortId>,
    /// Times the root bridge identifier changed.
    pub root_changes: u64,
}

/// Per-port status, for the API and metrics.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortStatus {
    /// The switch's port.
    pub port: PortId,
    /// 802.1D port number.
    pub port_no: u16,
    /// Port identifier (priority and number).
    pub port_id: PortIdentifier,
    /// portEnabled: link up and not tripped by BPDU guard.
    pub enabled: bool,
    /// Role.
    pub role: PortRole,
    /// Forwarding state.
    pub state: PortState,
    /// Path cost in use.
    pub path_cost: u32,
    /// Root bridge of the port priority vector.
    pub designated_root: BridgeId,
    /// Root path cost of the port priority vector.
    pub designated_cost: u32,
    /// Designated bridge of the port priority vector.
    pub designated_bridge: BridgeId,
    /// Designated port of the port priority vector.
    pub designated_port: PortIdentifier,
    /// AdminEdge.
    pub admin_edge: bool,
    /// AutoEdge.
    pub auto_edge: bool,
    /// operEdge.
    pub oper_edge: bool,
    /// operPointToPointMAC.
    pub point_to_point: bool,
    /// BPDU format sent (sendRSTP).
    pub protocol: Protocol,
    /// Seconds left on the topology change timer (tcWhile).
    pub tc_while: u16,
    /// Root guard configured.
    pub root_guard: bool,
    /// Root guard is holding superior information off.
    pub root_inconsistent: bool,
    /// BPDU guard configured.
    pub bpdu_guard: bool,
    /// BPDU guard has disabled the port.
    pub bpdu_guard_tripped: bool,
    /// Times BPDU guard tripped on this port.
    pub bpdu_guard_trips: u64,
    /// Source MAC of the BPDUs this port sends.
    pub bpdu_src_mac: MacAddr,
    /// BPDU counters.
    pub counters: PortCounters,
}

/// Invalid bridge configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StpConfigError {
    /// Priority not a multiple of 4096 in 0..=61440.
    #[error("bridge priority {0} is not a multiple of 4096 in 0..=61440")]
    Priority(u16),
    /// Hello Time out of range.
    #[error("hello time {0} s is outside 1..=10")]
    HelloTime(u8),
    /// Forward Delay out of range.
    #[error("forward delay {0} s is outside 4..=30")]
    ForwardDelay(u8),
    /// Max Age out of range.
    #[error("max age {0} s is outside 6..=40")]
    MaxAge(u8),
    /// The timers break 2 × (Forward Delay − 1) ≥ Max Age ≥ 2 × (Hello Time + 1).
    #[error("timers break 2*(forward_delay-1) >= max_age >= 2*(hello_time+1): forward delay {forward_delay} s, max age {max_age} s, hello time {hello_time} s")]
    TimerRelation {
        /// Forward Delay.
        forward_delay: u8,
        /// Max Age.
        max_age: u8,
        /// Hello Time.
        hello_time: u8,
    },
    /// Transmit hold count out of range.
    #[error("transmit hold count {0} is outside 1..=10")]
    TxHoldCount(u8),
    /// Unsupported protocol version.
    #[error("force version {0} is neither 0 (STP-compatible) nor 2 (RSTP)")]
    ForceVersion(u8),
    /// The bridge address is group or zero.
    #[error("bridge address {0} is not a unicast address")]
    Mac(MacAddr),
}

/// A port operation that cannot be done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StpPortError {
    /// No such port.
    #[error("no spanning tree port {0:?}")]
    UnknownPort(PortId),
    /// The port is already there.
    #[error("spanning tree port {0:?} already exists")]
    DuplicatePort(PortId),
    /// Another port has this port number.
    #[error("spanning tree port number {0} is already in use")]
    DuplicatePortNumber(u16),
    /// Port number outside 1..=4095.
    #[error("spanning tree port number {0} is outside 1..=4095")]
    PortNumber(u16),
    /// Port priority not a multiple of 16 in 0..=240.
    #[error("port priority {0} is not a multiple of 16 in 0..=240")]
    Priority(u8),
    /// Path cost outside 1..=200,000,000.
    #[error("port path cost {0} is outside 1..=200000000")]
    PathCost(u32),
}

/// Why a received frame was not processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RxError {
    /// No such port.
    #[error("BPDU on unknown spanning tree port {0:?}")]
    UnknownPort(PortId),
    /// Not a valid BPDU (counted in `rx_invalid`).
    #[error(transparent)]
    Bpdu(#[from] BpduError),
}

/// Events of one run, turned into actions at its end.
#[derive(Clone, Copy, Debug, Default)]
struct RunEvents {
    root_changed: bool,
    topology_change: bool,
}

/// One RSTP bridge. See the module documentation.
#[derive(Clone, Debug)]
pub struct Stp {
    cfg: BridgeConfig,
    bridge_id: BridgeId,
    bridge_times: Times,
    root_priority: Vector,
    root_times: Times,
    root_port: Option<PortId>,
    prs: PrsState,
    /// Sorted by `id`.
    ports: Vec<Port>,
    /// Transmits of the run in progress.
    run_out: Vec<Action>,
    run_events: RunEvents,
    /// Actions waiting for [`Stp::take_actions`].
    actions: Vec<Action>,
    now: Timestamp,
    last_tick: Timestamp,
    tc_count: u64,
    last_tc: Option<Timestamp>,
    last_tc_port: Option<PortId>,
    root_changes: u64,
    iteration_limit_hits: u64,
}

impl Stp {
    /// A bridge with no ports, its machines at BEGIN.
    pub fn new(cfg: BridgeConfig, now: Timestamp) -> Result<Stp, StpConfigError> {
        cfg.validate()?;
        let bridge_id = BridgeId::new(cfg.priority, cfg.mac);
        let bridge_times = Self::times_of(&cfg);
        let mut stp = Stp {
            cfg,
            bridge_id,
            bridge_times,
            root_priority: Vector {
                root: bridge_id,
                dbridge: bridge_id,
                ..Vector::default()
            },
            root_times: bridge_times,
            root_port: None,
            prs: PrsState::InitBridge,
            ports: Vec::new(),
            run_out: Vec::new(),
            run_events: RunEvents::default(),
            actions: Vec::new(),
            now,
            last_tick: now,
            tc_count: 0,
            last_tc: None,
            last_tc_port: None,
            root_changes: 0,
            iteration_limit_hits: 0,
        };
        stp.run();
        Ok(stp)
    }

    fn times_of(cfg: &BridgeConfig) -> Times {
        Times {
            message_age: 0,
            max_age: u16::from(cfg.max_age),
            hello: u16::from(cfg.hello_time),
            forward_delay: u16::from(cfg.forward_delay),
        }
    }

    fn advance(&mut self, now: Timestamp) {
        self.now = self.now.max(now);
    }

    fn idx(&self, id: PortId) -> Option<usize> {
        self.ports.binary_search_by_key(&id, |p| p.id).ok()
    }

    fn idx_or_err(&self, id: PortId) -> Result<usize, StpPortError> {
        self.idx(id).ok_or(StpPortError::UnknownPort(id))
    }

    fn reselect_all(&mut self) {
        for p in &mut self.ports {
            p.reselect = true;
            p.selected = false;
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BridgeConfig {
        &self.cfg
    }

    /// Changes the bridge configuration. A new address or protocol version restarts every
    /// machine (BEGIN: all ports discarding, then reconverging); priority and timer changes
    /// trigger role reselection only (17.13).
    pub fn set_config(&mut self, cfg: BridgeConfig, now: Timestamp) -> Result<(), StpConfigError> {
        cfg.validate()?;
        self.advance(now);
        let old = self.cfg;
        self.cfg = cfg;
        self.bridge_id = BridgeId::new(cfg.priority, cfg.mac);
        self.bridge_times = Self::times_of(&cfg);
        if old.mac != cfg.mac || old.force_version != cfg.force_version {
            self.prs = PrsState::InitBridge;
            let rstp = cfg.force_version >= 2;
            for p in &mut self.ports {
                p.src_mac = machines::port_mac(cfg.mac, p.port_no);
                p.begin(rstp);
            }
        } else if old != cfg {
            if old.tx_hold_count != cfg.tx_hold_count {
                for p in &mut self.ports {
                    p.tx_count = 0;
                }
            }
            self.reselect_all();
        }
        self.run();
        Ok(())
    }

    /// Adds a port, link up, at BEGIN (discarding). `port_no` is the 802.1D port number
    /// (1..=4095, unique in this bridge); `speed_mbps` feeds the automatic path cost.
    pub fn add_port(
        &mut self,
        id: PortId,
        port_no: u16,
        cfg: PortConfig,
        speed_mbps: Option<u32>,
        now: Timestamp,
    ) -> Result<(), StpPortError> {
        cfg.validate()?;
        if !(1..=4095).contains(&port_no) {
            return Err(StpPortError::PortNumber(port_no));
        }
        let pos = match self.ports.binary_search_by_key(&id, |p| p.id) {
            Ok(_) => return Err(StpPortError::DuplicatePort(id)),
            Err(pos) => pos,
        };
        if self.ports.iter().any(|p| p.port_no == port_no) {
            return Err(StpPortError::DuplicatePortNumber(port_no));
        }
        self.advance(now);
        let mut port = Port::new(id, port_no, cfg, speed_mbps, self.cfg.mac);
        port.designated_times = self.root_times;
        port.begin(self.cfg.force_version >= 2);
        port.port_enabled = true;
        self.ports.insert(pos, port);
        self.run();
        Ok(())
    }

    /// Removes a port. The rest of the bridge reacts as if its link went down; actions
    /// already queued for the port are dropped.
    pub fn remove_port(&mut self, id: PortId, now: Timestamp) -> Result<(), StpPortError> {
        let i = self.idx_or_err(id)?;
        self.advance(now);
        self.ports[i].link_up = false;
        self.ports[i].port_enabled = false;
        self.run();
        self.actions.retain(|a| match a {
            Action::Transmit { port, .. }
            | Action::SetState { port, .. }
            | Action::Flush { port }
            | Action::BpduGuard { port } => *port != id,
            Action::RootChanged | Action::TopologyChange => true,
        });
        let i = self.idx_or_err(id)?;
        self.ports.remove(i);
        if self.root_port == Some(id) {
            self.root_port = None;
        }
        self.reselect_all();
        self.run();
        Ok(())
    }

    /// Changes a port's configuration. Also clears a BPDU guard trip. Priority, path cost
    /// and root guard changes trigger role reselection; an AdminEdge change takes effect at
    /// once (operEdge follows it).
    pub fn set_port_config(
        &mut self,
        id: PortId,
        cfg: PortConfig,
        now: Timestamp,
    ) -> Result<(), StpPortError> {
        cfg.validate()?;
        let i = self.idx_or_err(id)?;
        self.advance(now);
        let p = &mut self.ports[i];
        let old = p.cfg;
        p.cfg = cfg;
        p.port_id = PortIdentifier::new(cfg.priority, p.port_no);
        p.path_cost = cfg
            .path_cost
            .unwrap_or_else(|| machines::default_path_cost(p.speed_mbps));
        if old.admin_edge != cfg.admin_edge {
            p.oper_edge = cfg.admin_edge;
            p.bdm = if cfg.admin_edge {
                machines::BdmState::Edge
            } else {
                machines::BdmState::NotEdge
            };
        }
        p.guard_tripped = false;
        p.port_enabled = p.link_up;
        if old.priority != cfg.priority
            || old.path_cost != cfg.path_cost
            || old.root_guard != cfg.root_guard
        {
            p.reselect = true;
            p.selected = false;
        }
        self.run();
        Ok(())
    }

    /// Tells the bridge a port's link speed changed (for the automatic path cost).
    pub fn set_port_speed(
        &mut self,
        id: PortId,
        speed_mbps: Option<u32>,
        now: Timestamp,
    ) -> Result<(), StpPortError> {
        let i = self.idx_or_err(id)?;
        self.advance(now);
        let p = &mut self.ports[i];
        p.speed_mbps = speed_mbps;
        let cost = p
            .cfg
            .path_cost
            .unwrap_or_else(|| machines::default_path_cost(speed_mbps));
        if cost != p.path_cost {
            p.path_cost = cost;
            p.reselect = true;
            p.selected = false;
            self.run();
        }
        Ok(())
    }

    /// Link (or admin) up/down. `up = true` also clears a BPDU guard trip.
    pub fn set_port_enabled(
        &mut self,
        id: PortId,
        up: bool,
        now: Timestamp,
    ) -> Result<(), StpPortError> {
        let i = self.idx_or_err(id)?;
        self.advance(now);
        let p = &mut self.ports[i];
        p.link_up = up;
        if up {
            p.guard_tripped = false;
        }
        p.port_enabled = p.link_up && !p.guard_tripped;
        self.run();
        Ok(())
    }

    /// mcheck (17.19.13): make the port try RST BPDUs again, e.g. after an 802.1D bridge
    /// was removed from its link.
    pub fn mcheck(&mut self, id: PortId, now: Timestamp) -> Result<(), StpPortError> {
        let i = self.idx_or_err(id)?;
        self.advance(now);
        if self.cfg.force_version >= 2 {
            self.ports[i].mcheck = true;
            self.run();
        }
        Ok(())
    }

    /// Processes a frame received on `id` addressed to 01:80:c2:00:00:00: `llc_payload`
    /// is everything after the 14-byte Ethernet header (LLC, BPDU, padding). Returns the
    /// BPDU's kind; an undecodable frame is counted and reported as an error.
    pub fn receive(
        &mut self,
        id: PortId,
        llc_payload: &[u8],
        now: Timestamp,
    ) -> Result<BpduKind, RxError> {
        let i = self.idx(id).ok_or(RxError::UnknownPort(id))?;
        self.advance(now);
        let bpdu = match Bpdu::decode(llc_payload) {
            Ok(b) => b,
            Err(e) => {
                self.ports[i].counters.rx_invalid += 1;
                return Err(e.into());
            }
        };
        let my_mac = self.bridge_id.mac();
        let p = &mut self.ports[i];
        let kind = bpdu.kind();
        match kind {
            BpduKind::Config => p.counters.rx_config += 1,
            BpduKind::Rst => p.counters.rx_rst += 1,
            BpduKind::Tcn => p.counters.rx_tcn += 1,
        }
        if !p.port_enabled {
            p.counters.rx_ignored += 1;
            return Ok(kind);
        }
        if p.cfg.bpdu_guard {
            p.guard_tripped = true;
            p.guard_trips += 1;
            p.port_enabled = false;
            self.actions.push(Action::BpduGuard { port: id });
            self.run();
            return Ok(kind);
        }
        if let Bpdu::Config(b) | Bpdu::Rst(b) = &bpdu {
            // 9.3.4: our own BPDU (same bridge address and port number) is ignored.
            if b.bridge.mac() == my_mac && b.port.number() == p.port_no {
                p.counters.rx_ignored += 1;
                return Ok(kind);
            }
        }
        p.rcvd = Some(RcvdBpdu::from_bpdu(&bpdu));
        p.rcvd_bpdu = true;
        self.run();
        Ok(kind)
    }

    /// Advances time: runs one 802.1D timer tick per whole second elapsed since the last
    /// counted second (at most [`MAX_CATCH_UP_SECS`] per call).
    pub fn tick(&mut self, now: Timestamp) {
        self.advance(now);
        if now < self.last_tick {
            self.last_tick = now;
            return;
        }
        let secs = now.since(self.last_tick) / 1000;
        if secs == 0 {
            return;
        }
        self.last_tick = Timestamp(self.last_tick.0 + secs * 1000);
        for _ in 0..secs.min(MAX_CATCH_UP_SECS) {
            self.tick_timers();
            self.run();
        }
    }

    /// Moves the pending actions to the end of `out`, oldest first.
    pub fn take_actions(&mut self, out: &mut Vec<Action>) {
        out.append(&mut self.actions);
    }

    /// The forwarding state of a port; `Discarding` for an unknown port.
    pub fn port_state(&self, id: PortId) -> PortState {
        self.idx(id)
            .map_or(PortState::Discarding, |i| self.ports[i].state())
    }

    /// The role of a port, if it exists.
    pub fn port_role(&self, id: PortId) -> Option<PortRole> {
        self.idx(id).map(|i| self.ports[i].role)
    }

    /// The source MAC this bridge uses for BPDUs on a port.
    pub fn port_bpdu_mac(&self, id: PortId) -> Option<MacAddr> {
        self.idx(id).map(|i| self.ports[i].src_mac)
    }

    /// The ports, in `PortId` order.
    pub fn port_ids(&self) -> impl Iterator<Item = PortId> + '_ {
        self.ports.iter().map(|p| p.id)
    }

    /// This bridge's identifier.
    pub fn bridge_id(&self) -> BridgeId {
        self.bridge_id
    }

    /// Times the internal fixpoint loop hit its bound (a bug if ever non-zero).
    pub fn iteration_limit_hits(&self) -> u64 {
        self.iteration_limit_hits
    }

    /// Bridge-wide status.
    pub fn status(&self) -> BridgeStatus {
        let tc_active = self.ports.iter().any(|p| p.tc_while != 0);
        BridgeStatus {
            bridge_id: self.bridge_id,
            designated_root: self.root_priority.root,
            is_root: self.root_priority.root == self.bridge_id,
            root_port: self.root_port,
            root_path_cost: self.root_priority.cost,
            max_age: self.root_times.max_age,
            hello_time: self.root_times.hello,
            forward_delay: self.root_times.forward_delay,
            bridge_max_age: self.cfg.max_age,
            bridge_hello_time: self.cfg.hello_time,
            bridge_forward_delay: self.cfg.forward_delay,
            tx_hold_count: self.cfg.tx_hold_count,
            protocol: if self.cfg.force_version >= 2 {
                Protocol::Rstp
            } else {
                Protocol::Stp
            },
            topology_change: tc_active,
            topology_change_count: self.tc_count,
            time_since_topology_change: self.last_tc.map(|t| self.now.since(t) / 1000),
            topology_change_port: self.last_tc_port,
            root_changes: self.root_changes,
        }
    }

    /// Status of one port.
    pub fn port_status(&self, id: PortId) -> Option<PortStatus> {
        let p = &self.ports[self.idx(id)?];
        Some(PortStatus {
            port: p.id,
            port_no: p.port_no,
            port_id: p.port_id,
            enabled: p.port_enabled,
            role: p.role,
            state: p.state(),
            path_cost: p.path_cost,
            designated_root: p.port_priority.root,
            designated_cost: p.port_priority.cost,
            designated_bridge: p.port_priority.dbridge,
            designated_port: p.port_priority.dport,
            admin_edge: p.cfg.admin_edge,
            auto_edge: p.cfg.auto_edge,
            oper_edge: p.oper_edge,
            point_to_point: p.oper_p2p(),
            protocol: if p.send_rstp {
                Protocol::Rstp
            } else {
                Protocol::Stp
            },
            tc_while: p.tc_while,
            root_guard: p.cfg.root_guard,
            root_inconsistent: p.root_inconsistent,
            bpdu_guard: p.cfg.bpdu_guard,
            bpdu_guard_tripped: p.guard_tripped,
            bpdu_guard_trips: p.guard_trips,
            bpdu_src_mac: p.src_mac,
            counters: p.counters,
        })
    }

    /// Status of every port, in `PortId` order.
    pub fn port_statuses(&self) -> Vec<PortStatus> {
        self.ports
            .iter()
            .filter_map(|p| self.port_status(p.id))
            .collect()
    }
}
