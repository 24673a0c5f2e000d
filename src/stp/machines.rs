//! The clause-17 state machines, written after the state diagrams of IEEE 802.1D-2004
//! (17.21-17.31), with the corrections 802.1Q-2005/2011 made to the CIST machines
//! (recordDispute sets `disputed`, DESIGNATED_DISCARD on `disputed`, ROOT_SYNCED, the
//! per-role `allSynced`, DESIGNATED_FORWARD sets `agreed = sendRSTP`, PTX reset while the
//! port is disabled, a TCN sets `rcvdTcn` from rcvInfo).
//!
//! | machine | clause | here |
//! |---|---|---|
//! | Port Timers (PTI) | 17.22 | [`Stp::tick_timers`] |
//! | Port Receive (PRX) | 17.23 | [`Stp::prx`] |
//! | Port Protocol Migration (PPM) | 17.24 | [`Stp::ppm`] |
//! | Bridge Detection (BDM) | 17.25 | [`Stp::bdm`] |
//! | Port Transmit (PTX) | 17.26 | [`Stp::ptx`] |
//! | Port Information (PIM) | 17.27 | [`Stp::pim`], [`Stp::rcv_info`] |
//! | Port Role Selection (PRS) | 17.28 | [`Stp::prs`], [`Stp::updt_roles_tree`] |
//! | Port Role Transitions (PRT) | 17.29 | [`Stp::prt`] |
//! | Port State Transition (PST) | 17.30 | [`Stp::pst`] |
//! | Topology Change (TCM) | 17.31 | [`Stp::tcm`] |
//!
//! Each machine is a function that evaluates the exit conditions of its current state
//! (global conditions first); when one holds it enters the new state, runs that state's
//! entry actions and returns `true`. [`Stp::run`] repeats all machines but PTX until none
//! moves, then runs PTX to a fixpoint, so a BPDU is built from settled variables (PTX only
//! writes variables no other machine reads).
//!
//! Deliberate deviations, each small and documented where it is made:
//! - a BPDU of any type whose designated bridge and port identifiers equal the receiving
//!   port's own is ignored (9.3.4 says so for Configuration BPDUs only);
//! - INFERIOR_DESIGNATED also sets `newInfo` when the port is Designated, so a bridge that
//!   starts up claiming root hears the better information at once rather than after up to
//!   one Hello Time (802.1D-1998 8.6.2.3 "reply"); bounded by the transmit hold count;
//! - NOTIFIED_TC on a Designated port toward an 802.1D bridge (sendRSTP false) also sets
//!   `newInfo`, so the TCN is acknowledged at once, as an 802.1D bridge does (8.6.15),
//!   rather than with the next Hello;
//! - root guard is 802.1Q-2011 `restrictedRole`: the port is never selected Root Port and
//!   becomes Alternate (discarding) while it holds superior information.

use std::cmp::Ordering;

use super::bpdu::{
    Bpdu, BpduFlags, BpduKind, BridgeId, ConfigBody, PortIdentifier, RoleFlag, TimeField,
};
use super::{Action, PortConfig, PortCounters, PortRole, PortState, Stp};
use crate::types::PortId;
use crate::wire::MacAddr;

/// 802.1D-2004 17.13.9 Migrate Time, seconds (fixed).
pub(super) const MIGRATE_TIME: u16 = 3;

/// Upper bound on passes of [`Stp::run`]; hitting it is counted, never expected.
const MAX_PASSES: usize = 1000;

/// A spanning tree priority vector (17.6). `bport` is the receiving/transmitting port's
/// identifier, used only to break ties between the root path vectors of two ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) struct Vector {
    pub(super) root: BridgeId,
    pub(super) cost: u32,
    pub(super) dbridge: BridgeId,
    pub(super) dport: PortIdentifier,
    pub(super) bport: PortIdentifier,
}

impl Vector {
    fn key4(&self) -> (u64, u32, u64, u16) {
        (self.root.0, self.cost, self.dbridge.0, self.dport.0)
    }

    /// Compares the first four components (lower is better).
    pub(super) fn cmp4(&self, o: &Vector) -> Ordering {
        self.key4().cmp(&o.key4())
    }

    /// Compares all five components (lower is better).
    pub(super) fn cmp5(&self, o: &Vector) -> Ordering {
        self.cmp4(o).then(self.bport.0.cmp(&o.bport.0))
    }

    fn same4(&self, o: &Vector) -> bool {
        self.cmp4(o) == Ordering::Equal
    }

    /// 17.6: a message priority vector is superior to the port priority vector if it is
    /// better, or if it was sent by the same designated bridge (address) and designated
    /// port (number) as the port priority vector. Here "superior" excludes "same".
    fn superior_to(&self, port: &Vector) -> bool {
        if self.same4(port) {
            return false;
        }
        self.cmp4(port) == Ordering::Less
            || (self.dbridge.mac() == port.dbridge.mac()
                && self.dport.number() == port.dport.number())
    }

    /// betterorsameInfo's comparison: better than or the same as `port`.
    fn better_or_same(&self, port: &Vector) -> bool {
        self.cmp4(port) != Ordering::Greater
    }
}

/// Timer parameter values (17.19.15 msgTimes etc.), whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) struct Times {
    pub(super) message_age: u16,
    pub(super) max_age: u16,
    pub(super) hello: u16,
    pub(super) forward_delay: u16,
}

impl Times {
    fn from_body(b: &ConfigBody) -> Times {
        Times {
            message_age: b.message_age.to_secs_rounded(),
            max_age: b.max_age.to_secs_rounded(),
            hello: b.hello_time.to_secs_rounded(),
            forward_delay: b.forward_delay.to_secs_rounded(),
        }
    }
}

/// 17.19.10 infoIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InfoIs {
    Disabled,
    Aged,
    Mine,
    Received,
}

/// 17.19.26 rcvdInfo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RcvdInfo {
    SuperiorDesignated,
    RepeatedDesignated,
    InferiorDesignated,
    InferiorRootAlternate,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PrxState {
    Discard,
    Receive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PpmState {
    CheckingRstp,
    SelectingStp,
    Sensing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BdmState {
    Edge,
    NotEdge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PtxState {
    TransmitInit,
    Idle,
    Periodic,
    Config,
    Tcn,
    Rstp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PimState {
    Disabled,
    Aged,
    Update,
    Current,
    Receive,
    Other,
    NotDesignated,
    InferiorDesignated,
    RepeatedDesignated,
    SuperiorDesignated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PrtState {
    InitPort,
    DisablePort,
    DisabledPort,
    RootPort,
    RootProposed,
    RootAgreed,
    RootSynced,
    Reroot,
    RootForward,
    RootLearn,
    Rerooted,
    DesignatedPort,
    DesignatedPropose,
    DesignatedSynced,
    DesignatedRetired,
    DesignatedForward,
    DesignatedLearn,
    DesignatedDiscard,
    BlockPort,
    AlternatePort,
    AlternateProposed,
    AlternateAgreed,
    BackupPort,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PstState {
    Discarding,
    Learning,
    Forwarding,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TcmState {
    Inactive,
    Learning,
    Detected,
    Active,
    NotifiedTcn,
    NotifiedTc,
    Propagating,
    Acknowledged,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PrsState {
    InitBridge,
    RoleSelection,
}

/// A received BPDU as the machines see it (the "received BPDU buffer").
#[derive(Clone, Copy, Debug)]
pub(super) struct RcvdBpdu {
    pub(super) kind: BpduKind,
    /// Effective role: Designated for a Configuration BPDU and for an RST BPDU whose role
    /// is Unknown (9.2.9 note: treated like a Configuration BPDU).
    pub(super) role: RoleFlag,
    /// Effective flags: only TC and TCA for Configuration-like BPDUs.
    pub(super) flags: BpduFlags,
    pub(super) priority: Vector,
    pub(super) times: Times,
}

impl RcvdBpdu {
    pub(super) fn from_bpdu(b: &Bpdu) -> RcvdBpdu {
        let cfg_like = |body: &ConfigBody, kind| RcvdBpdu {
            kind,
            role: RoleFlag::Designated,
            flags: BpduFlags(body.flags.0 & (BpduFlags::TC | BpduFlags::TC_ACK)),
            priority: Vector {
                root: body.root,
                cost: body.root_path_cost,
                dbridge: body.bridge,
                dport: body.port,
                bport: PortIdentifier(0),
            },
            times: Times::from_body(body),
        };
        match b {
            Bpdu::Tcn => RcvdBpdu {
                kind: BpduKind::Tcn,
                role: RoleFlag::Unknown,
                flags: BpduFlags(0),
                priority: Vector::default(),
                times: Times::default(),
            },
            Bpdu::Config(body) => cfg_like(body, BpduKind::Config),
            Bpdu::Rst(body) => {
                let mut r = cfg_like(body, BpduKind::Rst);
                if body.flags.role() != RoleFlag::Unknown {
                    r.role = body.flags.role();
                    r.flags = body.flags;
                }
                r
            }
        }
    }
}

/// One bridge port: configuration, the 17.19 per-port variables, 17.17 timers, and the
/// current state of each per-port machine.
#[derive(Clone, Debug)]
pub(super) struct Port {
    pub(super) id: PortId,
    pub(super) port_no: u16,
    pub(super) cfg: PortConfig,
    pub(super) speed_mbps: Option<u32>,
    pub(super) port_id: PortIdentifier,
    pub(super) path_cost: u32,
    pub(super) src_mac: MacAddr,
    pub(super) link_up: bool,
    pub(super) guard_tripped: bool,
    pub(super) guard_trips: u64,
    pub(super) root_inconsistent: bool,
    pub(super) counters: PortCounters,
    /// Last state reported through [`Action::SetState`].
    pub(super) reported_state: PortState,
    pub(super) flush_pending: bool,

    // 17.17 timers, seconds.
    pub(super) edge_delay_while: u16,
    pub(super) fd_while: u16,
    pub(super) hello_when: u16,
    pub(super) mdelay_while: u16,
    pub(super) rb_while: u16,
    pub(super) rcvd_info_while: u16,
    pub(super) rr_while: u16,
    pub(super) tc_while: u16,
    pub(super) tx_count: u16,

    // 17.19 variables.
    pub(super) agree: bool,
    pub(super) agreed: bool,
    pub(super) designated_priority: Vector,
    pub(super) designated_times: Times,
    pub(super) disputed: bool,
    pub(super) fdb_flush: bool,
    pub(super) forward: bool,
    pub(super) forwarding: bool,
    pub(super) info_is: InfoIs,
    pub(super) learn: bool,
    pub(super) learning: bool,
    pub(super) mcheck: bool,
    pub(super) msg_priority: Vector,
    pub(super) msg_times: Times,
    pub(super) new_info: bool,
    pub(super) oper_edge: bool,
    pub(super) port_enabled: bool,
    pub(super) port_priority: Vector,
    pub(super) port_times: Times,
    pub(super) proposed: bool,
    pub(super) proposing: bool,
    pub(super) rcvd_bpdu: bool,
    pub(super) rcvd_info: RcvdInfo,
    pub(super) rcvd_msg: bool,
    pub(super) rcvd_rstp: bool,
    pub(super) rcvd_stp: bool,
    pub(super) rcvd_tc: bool,
    pub(super) rcvd_tc_ack: bool,
    pub(super) rcvd_tcn: bool,
    pub(super) re_root: bool,
    pub(super) reselect: bool,
    pub(super) role: PortRole,
    pub(super) selected: bool,
    pub(super) selected_role: PortRole,
    pub(super) send_rstp: bool,
    pub(super) sync: bool,
    pub(super) synced: bool,
    pub(super) tc_ack: bool,
    pub(super) tc_prop: bool,
    pub(super) updt_info: bool,
    pub(super) rcvd: Option<RcvdBpdu>,

    // Machine states.
    pub(super) prx: PrxState,
    pub(super) ppm: PpmState,
    pub(super) bdm: BdmState,
    pub(super) ptx: PtxState,
    pub(super) pim: PimState,
    pub(super) prt: PrtState,
    pub(super) pst: PstState,
    pub(super) tcm: TcmState,
}

/// 802.1D-2004 Table 17-3: 20,000,000 / speed in Mb/s, within 1..=200,000,000. Unknown
/// speed (TAPs, sockets): 20,000, the value for 1 Gb/s.
pub(super) fn default_path_cost(speed_mbps: Option<u32>) -> u32 {
    match speed_mbps {
        Some(s) if s > 0 => (20_000_000 / s).clamp(1, 200_000_000),
        _ => 20_000,
    }
}

/// The source MAC of BPDUs sent on port number `port_no`: the bridge address with the
/// locally-administered bit set, the group bit cleared, and the port number XORed into
/// octets 1-2. Distinct for every port number of one bridge (a peer Linux bridge with STP
/// off learns BPDU sources, so two ports must not share one), never a universally
/// administered address, and stable across restarts.
pub(super) fn port_mac(bridge: MacAddr, port_no: u16) -> MacAddr {
    let mut m = bridge.0;
    m[0] = (m[0] | 0x02) & !0x01;
    let pn = port_no.to_be_bytes();
    m[1] ^= pn[0];
    m[2] ^= pn[1];
    MacAddr(m)
}

impl Port {
    pub(super) fn new(
        id: PortId,
        port_no: u16,
        cfg: PortConfig,
        speed_mbps: Option<u32>,
        bridge_mac: MacAddr,
    ) -> Port {
        let port_id = PortIdentifier::new(cfg.priority, port_no);
        let path_cost = cfg
            .path_cost
            .unwrap_or_else(|| default_path_cost(speed_mbps));
        Port {
            id,
            port_no,
            cfg,
            speed_mbps,
            port_id,
            path_cost,
            src_mac: port_mac(bridge_mac, port_no),
            link_up: true,
            guard_tripped: false,
            guard_trips: 0,
            root_inconsistent: false,
            counters: PortCounters::default(),
            reported_state: PortState::Discarding,
            flush_pending: false,
            edge_delay_while: 0,
            fd_while: 0,
            hello_when: 0,
            mdelay_while: 0,
            rb_while: 0,
            rcvd_info_while: 0,
            rr_while: 0,
            tc_while: 0,
            tx_count: 0,
            agree: false,
            agreed: false,
            designated_priority: Vector::default(),
            designated_times: Times::default(),
            disputed: false,
            fdb_flush: false,
            forward: false,
            forwarding: false,
            info_is: InfoIs::Disabled,
            learn: false,
            learning: false,
            mcheck: false,
            msg_priority: Vector::default(),
            msg_times: Times::default(),
            new_info: false,
            oper_edge: false,
            port_enabled: false,
            port_priority: Vector::default(),
            port_times: Times::default(),
            proposed: false,
            proposing: false,
            rcvd_bpdu: false,
            rcvd_info: RcvdInfo::Other,
            rcvd_msg: false,
            rcvd_rstp: false,
            rcvd_stp: false,
            rcvd_tc: false,
            rcvd_tc_ack: false,
            rcvd_tcn: false,
            re_root: false,
            reselect: false,
            role: PortRole::Disabled,
            selected: false,
            selected_role: PortRole::Disabled,
            send_rstp: false,
            sync: false,
            synced: false,
            tc_ack: false,
            tc_prop: false,
            updt_info: false,
            rcvd: None,
            prx: PrxState::Discard,
            ppm: PpmState::CheckingRstp,
            bdm: BdmState::NotEdge,
            ptx: PtxState::TransmitInit,
            pim: PimState::Disabled,
            prt: PrtState::InitPort,
            pst: PstState::Discarding,
            tcm: TcmState::Inactive,
        }
    }

    /// The port state the forwarding process must apply.
    pub(super) fn state(&self) -> PortState {
        if self.forwarding {
            PortState::Forwarding
        } else if self.learning {
            PortState::Learning
        } else {
            PortState::Discarding
        }
    }

    /// 17.20.4 EdgeDelay.
    fn edge_delay(&self) -> u16 {
        if self.oper_p2p() {
            MIGRATE_TIME
        } else {
            self.designated_times.max_age
        }
    }

    /// 17.20.6 FwdDelay.
    fn fwd_delay(&self) -> u16 {
        self.designated_times.forward_delay
    }

    /// 17.20.7 HelloTime.
    fn hello_time(&self) -> u16 {
        self.designated_times.hello
    }

    /// 17.20.8 MaxAge.
    fn max_age(&self) -> u16 {
        self.designated_times.max_age
    }

    /// 17.20.5 forwardDelay: HelloTime when sending RST BPDUs, else FwdDelay.
    fn forward_delay(&self) -> u16 {
        if self.send_rstp {
            self.hello_time()
        } else {
            self.fwd_delay()
        }
    }

    /// operPointToPointMAC (6.4.3): `P2p::Auto` is point-to-point (every tapswitch port
    /// is a single link to one peer).
    pub(super) fn oper_p2p(&self) -> bool {
        !matches!(self.cfg.p2p, super::P2p::No)
    }

    fn role_is_active(&self) -> bool {
        matches!(self.role, PortRole::Root | PortRole::Designated)
    }

    /// 17.19.8 recordAgreement.
    fn record_agreement(&mut self, rstp_version: bool) {
        let flag = self.rcvd.is_some_and(|m| m.flags.agreement());
        if rstp_version && self.oper_p2p() && flag {
            self.agreed = true;
            self.proposing = false;
        } else {
            self.agreed = false;
        }
    }

    /// 17.21.10 recordDispute, as corrected by 802.1Q-2005 13.26.10: an RST BPDU with the
    /// Learning flag sets `disputed` and clears `agreed`.
    fn record_dispute(&mut self) {
        if let Some(m) = self.rcvd {
            if m.kind == BpduKind::Rst && m.flags.learning() {
                self.disputed = true;
                self.agreed = false;
            }
        }
    }

    /// 17.21.11 recordProposal.
    fn record_proposal(&mut self) {
        if let Some(m) = self.rcvd {
            if m.role == RoleFlag::Designated && m.flags.proposal() {
                self.proposed = true;
            }
        }
    }

    /// 17.21.12 recordPriority.
    fn record_priority(&mut self) {
        self.port_priority = Vector {
            bport: self.port_id,
            ..self.msg_priority
        };
    }

    /// 17.21.13 recordTimes (Hello Time of at least 1 s, as 802.1Q-2011 13.26.13 says).
    fn record_times(&mut self) {
        self.port_times = self.msg_times;
        self.port_times.hello = self.port_times.hello.max(1);
    }

    /// 17.21.17 setTcFlags (TCN handled in rcvInfo).
    fn set_tc_flags(&mut self) {
        if let Some(m) = self.rcvd {
            if m.kind != BpduKind::Tcn {
                if m.flags.tc() {
                    self.rcvd_tc = true;
                }
                if m.flags.tc_ack() {
                    self.rcvd_tc_ack = true;
                }
            }
        }
    }

    /// 17.21.22 updtBPDUVersion.
    fn updt_bpdu_version(&mut self) {
        match self.rcvd.map(|m| m.kind) {
            Some(BpduKind::Config | BpduKind::Tcn) => self.rcvd_stp = true,
            Some(BpduKind::Rst) => self.rcvd_rstp = true,
            None => {}
        }
    }

    /// 17.21.23 updtRcvdInfoWhile.
    fn updt_rcvd_info_while(&mut self) {
        let t = self.port_times;
        self.rcvd_info_while = if t.message_age.saturating_add(1) <= t.max_age {
            t.hello.saturating_mul(3)
        } else {
            0
        };
    }

    /// 17.21.1 betterorsameInfo.
    fn betterorsame_info(&self, new_info_is: InfoIs) -> bool {
        match new_info_is {
            InfoIs::Received => {
                self.info_is == InfoIs::Received
                    && self.msg_priority.better_or_same(&self.port_priority)
            }
            InfoIs::Mine => {
                self.info_is == InfoIs::Mine
                    && self.designated_priority.better_or_same(&self.port_priority)
            }
            _ => false,
        }
    }

    /// Per-port BEGIN: every machine to its initial state, with the entry actions that the
    /// BEGIN transitions run.
    pub(super) fn begin(&mut self, rstp_version: bool) {
        // PRX DISCARD
        self.prx = PrxState::Discard;
        self.rcvd_bpdu = false;
        self.rcvd_rstp = false;
        self.rcvd_stp = false;
        self.rcvd_msg = false;
        self.rcvd = None;
        self.edge_delay_while = MIGRATE_TIME;
        // PPM CHECKING_RSTP
        self.ppm = PpmState::CheckingRstp;
        self.mcheck = false;
        self.send_rstp = rstp_version;
        self.mdelay_while = MIGRATE_TIME;
        // BDM
        if self.cfg.admin_edge {
            self.bdm = BdmState::Edge;
            self.oper_edge = true;
        } else {
            self.bdm = BdmState::NotEdge;
            self.oper_edge = false;
        }
        // PTX TRANSMIT_INIT
        self.ptx = PtxState::TransmitInit;
        self.new_info = true;
        self.tx_count = 0;
        // PIM DISABLED
        self.pim = PimState::Disabled;
        self.proposing = false;
        self.proposed = false;
        self.agree = false;
        self.agreed = false;
        self.rcvd_info_while = 0;
        self.info_is = InfoIs::Disabled;
        self.reselect = true;
        self.selected = false;
        self.updt_info = false;
        self.disputed = false;
        // PRT INIT_PORT
        self.prt = PrtState::InitPort;
        self.role = PortRole::Disabled;
        self.selected_role = PortRole::Disabled;
        self.learn = false;
        self.forward = false;
        self.synced = false;
        self.sync = true;
        self.re_root = true;
        self.rr_while = self.fwd_delay();
        self.fd_while = self.max_age();
        self.rb_while = 0;
        // PST DISCARDING
        self.pst = PstState::Discarding;
        self.learning = false;
        self.forwarding = false;
        // TCM INACTIVE
        self.tcm = TcmState::Inactive;
        // INACTIVE sets fdbFlush; the flush is reported as an Action and counts as done.
        self.fdb_flush = false;
        self.flush_pending = true;
        self.tc_while = 0;
        self.tc_ack = false;
        self.tc_prop = false;
        self.rcvd_tc = false;
        self.rcvd_tcn = false;
        self.rcvd_tc_ack = false;
        self.root_inconsistent = false;
    }
}

impl Stp {
    fn rstp_version(&self) -> bool {
        self.cfg.force_version >= 2
    }

    /// Runs every machine until none moves, then PTX, then turns what changed into
    /// [`Action`]s.
    pub(super) fn run(&mut self) {
        let mut passes = 0;
        loop {
            let mut moved = self.prs();
            for i in 0..self.ports.len() {
                moved |= self.prx(i);
                moved |= self.ppm(i);
                moved |= self.bdm(i);
                moved |= self.pim(i);
                moved |= self.prt(i);
                moved |= self.pst(i);
                moved |= self.tcm(i);
            }
            passes += 1;
            if !moved {
                break;
            }
            if passes >= MAX_PASSES {
                self.iteration_limit_hits += 1;
                break;
            }
        }
        for i in 0..self.ports.len() {
            let mut n = 0;
            while self.ptx(i) && n < MAX_PASSES {
                n += 1;
            }
        }
        self.emit_changes();
    }

    /// SetState and Flush actions for what the last run changed; they are queued before
    /// the run's Transmit actions so the data plane discards before a peer is told it may
    /// forward.
    fn emit_changes(&mut self) {
        let mut head = Vec::new();
        for p in &mut self.ports {
            let s = p.state();
            if s != p.reported_state {
                p.reported_state = s;
                head.push(Action::SetState {
                    port: p.id,
                    state: s,
                });
            }
        }
        for p in &mut self.ports {
            if p.flush_pending {
                p.flush_pending = false;
                head.push(Action::Flush { port: p.id });
            }
        }
        let tail = std::mem::take(&mut self.run_out);
        self.actions.extend(head);
        self.actions.extend(tail);
        let ev = std::mem::take(&mut self.run_events);
        if ev.root_changed {
            self.actions.push(Action::RootChanged);
        }
        if ev.topology_change {
            self.actions.push(Action::TopologyChange);
        }
    }

    /// 17.22 Port Timers: one tick of one second for every port.
    pub(super) fn tick_timers(&mut self) {
        fn dec(t: &mut u16) {
            *t = t.saturating_sub(1);
        }
        for p in &mut self.ports {
            dec(&mut p.hello_when);
            dec(&mut p.tc_while);
            dec(&mut p.fd_while);
            dec(&mut p.rcvd_info_while);
            dec(&mut p.rr_while);
            dec(&mut p.rb_while);
            dec(&mut p.mdelay_while);
            dec(&mut p.edge_delay_while);
            dec(&mut p.tx_count);
        }
    }

    // ---------------------------------------------------------------- PRX 17.23

    pub(super) fn prx(&mut self, i: usize) -> bool {
        let p = &mut self.ports[i];
        if (p.rcvd_bpdu || p.edge_delay_while != MIGRATE_TIME) && !p.port_enabled {
            p.prx = PrxState::Discard;
            p.rcvd_bpdu = false;
            p.rcvd_rstp = false;
            p.rcvd_stp = false;
            p.rcvd_msg = false;
            p.edge_delay_while = MIGRATE_TIME;
            return true;
        }
        let go = match p.prx {
            PrxState::Discard => p.rcvd_bpdu && p.port_enabled,
            PrxState::Receive => p.rcvd_bpdu && p.port_enabled && !p.rcvd_msg,
        };
        if go {
            p.prx = PrxState::Receive;
            p.updt_bpdu_version();
            p.oper_edge = false;
            p.rcvd_bpdu = false;
            p.rcvd_msg = true;
            p.edge_delay_while = MIGRATE_TIME;
        }
        go
    }

    // ---------------------------------------------------------------- PPM 17.24

    pub(super) fn ppm(&mut self, i: usize) -> bool {
        let rstp = self.rstp_version();
        let p = &mut self.ports[i];
        let next = match p.ppm {
            PpmState::CheckingRstp => {
                if p.mdelay_while == 0 {
                    Some(PpmState::Sensing)
                } else if p.mdelay_while != MIGRATE_TIME && !p.port_enabled {
                    Some(PpmState::CheckingRstp)
                } else {
                    None
                }
            }
            PpmState::SelectingStp => {
                if p.mdelay_while == 0 || !p.port_enabled || p.mcheck {
                    Some(PpmState::Sensing)
                } else {
                    None
                }
            }
            PpmState::Sensing => {
                if !p.port_enabled || p.mcheck || (rstp && !p.send_rstp && p.rcvd_rstp) {
                    Some(PpmState::CheckingRstp)
                } else if p.send_rstp && p.rcvd_stp {
                    Some(PpmState::SelectingStp)
                } else {
                    None
                }
            }
        };
        let Some(next) = next else { return false };
        p.ppm = next;
        match next {
            PpmState::CheckingRstp => {
                p.mcheck = false;
                p.send_rstp = rstp;
                p.mdelay_while = MIGRATE_TIME;
            }
            PpmState::SelectingStp => {
                p.send_rstp = false;
                p.mdelay_while = MIGRATE_TIME;
            }
            PpmState::Sensing => {
                p.rcvd_rstp = false;
                p.rcvd_stp = false;
            }
        }
        true
    }

    // ---------------------------------------------------------------- BDM 17.25

    pub(super) fn bdm(&mut self, i: usize) -> bool {
        let p = &mut self.ports[i];
        match p.bdm {
            BdmState::Edge => {
                if (!p.port_enabled && !p.cfg.admin_edge) || !p.oper_edge {
                    p.bdm = BdmState::NotEdge;
                    p.oper_edge = false;
                    return true;
                }
            }
            BdmState::NotEdge => {
                if (!p.port_enabled && p.cfg.admin_edge)
                    || (p.edge_delay_while == 0 && p.cfg.auto_edge && p.send_rstp && p.proposing)
                {
                    p.bdm = BdmState::Edge;
                    p.oper_edge = true;
                    return true;
                }
            }
        }
        false
    }

    // ---------------------------------------------------------------- PTX 17.26

    pub(super) fn ptx(&mut self, i: usize) -> bool {
        let hold = u16::from(self.cfg.tx_hold_count);
        let bridge_hello = u16::from(self.cfg.hello_time);
        let p = &mut self.ports[i];
        // 802.1Q-2011 13.32: held in TRANSMIT_INIT while the port is disabled.
        if !p.port_enabled {
            if p.ptx != PtxState::TransmitInit || !p.new_info || p.tx_count != 0 {
                p.ptx = PtxState::TransmitInit;
                p.new_info = true;
                p.tx_count = 0;
                return true;
            }
            return false;
        }
        let next = match p.ptx {
            PtxState::TransmitInit
            | PtxState::Periodic
            | PtxState::Config
            | PtxState::Tcn
            | PtxState::Rstp => Some(PtxState::Idle),
            PtxState::Idle => {
                let ready = p.selected && !p.updt_info && p.role != PortRole::Disabled;
                if !ready {
                    None
                } else if p.hello_when == 0 {
                    Some(PtxState::Periodic)
                } else if p.new_info && p.tx_count < hold {
                    if p.send_rstp {
                        Some(PtxState::Rstp)
                    } else if p.role == PortRole::Root {
                        Some(PtxState::Tcn)
                    } else if p.role == PortRole::Designated {
                        Some(PtxState::Config)
                    } else {
                        None
                    }
                } else {
                    None
                }
            }
        };
        let Some(next) = next else { return false };
        p.ptx = next;
        match next {
            PtxState::TransmitInit => {}
            PtxState::Idle => p.hello_when = bridge_hello,
            PtxState::Periodic => {
                p.new_info = p.new_info
                    || p.role == PortRole::Designated
                    || (p.role == PortRole::Root && p.tc_while != 0);
            }
            PtxState::Config => {
                p.new_info = false;
                self.tx_config(i);
                let p = &mut self.ports[i];
                p.tx_count += 1;
                p.tc_ack = false;
            }
            PtxState::Tcn => {
                p.new_info = false;
                self.transmit(i, Bpdu::Tcn);
                self.ports[i].tx_count += 1;
            }
            PtxState::Rstp => {
                p.new_info = false;
                self.tx_rstp(i);
                let p = &mut self.ports[i];
                p.tx_count += 1;
                p.tc_ack = false;
            }
        }
        true
    }

    fn body(&self, i: usize, flags: BpduFlags) -> ConfigBody {
        let p = &self.ports[i];
        let v = p.designated_priority;
        let t = p.designated_times;
        ConfigBody {
            flags,
            root: v.root,
            root_path_cost: v.cost,
            bridge: v.dbridge,
            port: v.dport,
            message_age: TimeField::from_secs(t.message_age),
            max_age: TimeField::from_secs(t.max_age),
            hello_time: TimeField::from_secs(t.hello),
            forward_delay: TimeField::from_secs(t.forward_delay),
        }
    }

    /// 17.21.19 txConfig.
    fn tx_config(&mut self, i: usize) {
        let p = &self.ports[i];
        let flags = BpduFlags(0)
            .with(BpduFlags::TC, p.tc_while != 0)
            .with(BpduFlags::TC_ACK, p.tc_ack);
        let body = self.body(i, flags);
        self.transmit(i, Bpdu::Config(body));
    }

    /// 17.21.20 txRstp.
    fn tx_rstp(&mut self, i: usize) {
        let p = &self.ports[i];
        let role = match p.role {
            PortRole::Root => RoleFlag::Root,
            PortRole::Designated => RoleFlag::Designated,
            PortRole::Alternate | PortRole::Backup => RoleFlag::AlternateOrBackup,
            PortRole::Disabled => RoleFlag::Unknown,
        };
        let flags = BpduFlags(0)
            .with_role(role)
            .with(BpduFlags::AGREEMENT, p.agree)
            .with(BpduFlags::PROPOSAL, p.proposing)
            .with(BpduFlags::TC, p.tc_while != 0)
            .with(BpduFlags::LEARNING, p.learning)
            .with(BpduFlags::FORWARDING, p.forwarding);
        let body = self.body(i, flags);
        self.transmit(i, Bpdu::Rst(body));
    }

    fn transmit(&mut self, i: usize, bpdu: Bpdu) {
        let p = &mut self.ports[i];
        match bpdu.kind() {
            BpduKind::Config => p.counters.tx_config += 1,
            BpduKind::Tcn => p.counters.tx_tcn += 1,
            BpduKind::Rst => p.counters.tx_rst += 1,
        }
        let frame = bpdu.to_frame(p.src_mac);
        let port = p.id;
        self.run_out.push(Action::Transmit { port, frame });
    }

    // ---------------------------------------------------------------- PIM 17.27

    pub(super) fn pim(&mut self, i: usize) -> bool {
        let rstp = self.rstp_version();
        let p = &mut self.ports[i];
        if !p.port_enabled && p.info_is != InfoIs::Disabled {
            self.enter_pim(i, PimState::Disabled, rstp);
            return true;
        }
        let next = match p.pim {
            PimState::Disabled => {
                if p.port_enabled {
                    Some(PimState::Aged)
                } else if p.rcvd_msg {
                    Some(PimState::Disabled)
                } else {
                    None
                }
            }
            PimState::Aged => (p.selected && p.updt_info).then_some(PimState::Update),
            PimState::Update
            | PimState::Other
            | PimState::NotDesignated
            | PimState::InferiorDesignated
            | PimState::RepeatedDesignated
            | PimState::SuperiorDesignated => Some(PimState::Current),
            PimState::Current => {
                if p.rcvd_msg && !p.updt_info {
                    Some(PimState::Receive)
                } else if p.selected && p.updt_info {
                    Some(PimState::Update)
                } else if p.info_is == InfoIs::Received
                    && p.rcvd_info_while == 0
                    && !p.updt_info
                    && !p.rcvd_msg
                {
                    Some(PimState::Aged)
                } else {
                    None
                }
            }
            PimState::Receive => Some(match p.rcvd_info {
                RcvdInfo::SuperiorDesignated => PimState::SuperiorDesignated,
                RcvdInfo::RepeatedDesignated => PimState::RepeatedDesignated,
                RcvdInfo::InferiorDesignated => PimState::InferiorDesignated,
                RcvdInfo::InferiorRootAlternate => PimState::NotDesignated,
                RcvdInfo::Other => PimState::Other,
            }),
        };
        let Some(next) = next else { return false };
        self.enter_pim(i, next, rstp);
        true
    }

    fn enter_pim(&mut self, i: usize, s: PimState, rstp: bool) {
        self.ports[i].pim = s;
        match s {
            PimState::Disabled => {
                let p = &mut self.ports[i];
                p.rcvd_msg = false;
                p.proposing = false;
                p.proposed = false;
                p.agree = false;
                p.agreed = false;
                p.rcvd_info_while = 0;
                p.info_is = InfoIs::Disabled;
                p.reselect = true;
                p.selected = false;
            }
            PimState::Aged => {
                let p = &mut self.ports[i];
                p.info_is = InfoIs::Aged;
                p.reselect = true;
                p.selected = false;
            }
            PimState::Update => {
                let p = &mut self.ports[i];
                p.proposing = false;
                p.proposed = false;
                p.agreed = p.agreed && p.betterorsame_info(InfoIs::Mine);
                p.synced = p.synced && p.agreed;
                p.port_priority = p.designated_priority;
                p.port_times = p.designated_times;
                p.updt_info = false;
                p.info_is = InfoIs::Mine;
                p.new_info = true;
            }
            PimState::Current => {}
            PimState::Receive => {
                let r = self.rcv_info(i);
                self.ports[i].rcvd_info = r;
            }
            PimState::Other => self.ports[i].rcvd_msg = false,
            PimState::NotDesignated => {
                let p = &mut self.ports[i];
                p.record_agreement(rstp);
                p.set_tc_flags();
                p.rcvd_msg = false;
            }
            PimState::InferiorDesignated => {
                let p = &mut self.ports[i];
                p.record_dispute();
                p.rcvd_msg = false;
                // Deviation (see module doc): answer a peer that claims better than it is.
                if p.role == PortRole::Designated {
                    p.new_info = true;
                }
            }
            PimState::RepeatedDesignated => {
                let p = &mut self.ports[i];
                p.record_proposal();
                p.set_tc_flags();
                p.record_agreement(rstp);
                p.updt_rcvd_info_while();
                p.rcvd_msg = false;
            }
            PimState::SuperiorDesignated => {
                let p = &mut self.ports[i];
                p.agreed = false;
                p.proposing = false;
                p.record_proposal();
                p.set_tc_flags();
                p.agree = p.agree && p.betterorsame_info(InfoIs::Received);
                p.record_agreement(rstp);
                p.synced = p.synced && p.agreed;
                p.record_priority();
                p.record_times();
                p.updt_rcvd_info_while();
                p.info_is = InfoIs::Received;
                p.reselect = true;
                p.selected = false;
                p.rcvd_msg = false;
            }
        }
    }

    /// 17.21.8 rcvInfo. A TCN BPDU sets rcvdTcn and is OtherInfo (802.1Q-2011 13.26.6).
    pub(super) fn rcv_info(&mut self, i: usize) -> RcvdInfo {
        let p = &mut self.ports[i];
        let Some(m) = p.rcvd else {
            return RcvdInfo::Other;
        };
        if m.kind == BpduKind::Tcn {
            p.rcvd_tcn = true;
            return RcvdInfo::Other;
        }
        p.msg_priority = Vector {
            bport: p.port_id,
            ..m.priority
        };
        p.msg_times = m.times;
        let msg = p.msg_priority;
        let same = msg.same4(&p.port_priority);
        let superior = msg.superior_to(&p.port_priority);
        match m.role {
            RoleFlag::Designated => {
                if superior || (same && p.msg_times != p.port_times) {
                    RcvdInfo::SuperiorDesignated
                } else if same {
                    RcvdInfo::RepeatedDesignated
                } else {
                    RcvdInfo::InferiorDesignated
                }
            }
            RoleFlag::Root | RoleFlag::AlternateOrBackup => {
                if superior {
                    RcvdInfo::Other
                } else {
                    RcvdInfo::InferiorRootAlternate
                }
            }
            RoleFlag::Unknown => RcvdInfo::Other,
        }
    }

    // ---------------------------------------------------------------- PRS 17.28

    pub(super) fn prs(&mut self) -> bool {
        let go = match self.prs {
            PrsState::InitBridge => true,
            PrsState::RoleSelection => self.ports.iter().any(|p| p.reselect),
        };
        if go {
            self.prs = PrsState::RoleSelection;
            for p in &mut self.ports {
                p.reselect = false; // clearReselectTree
            }
            self.updt_roles_tree();
            // setSelectedTree: reselect is FALSE for every port at this point.
            for p in &mut self.ports {
                p.selected = true;
            }
        }
        go
    }

    /// 17.21.25 updtRolesTree, with 802.1Q-2011 restrictedRole for root guard.
    pub(super) fn updt_roles_tree(&mut self) {
        let my_mac = self.bridge_id.mac();
        let bridge_vec = Vector {
            root: self.bridge_id,
            cost: 0,
            dbridge: self.bridge_id,
            dport: PortIdentifier(0),
            bport: PortIdentifier(0),
        };
        let root_path = |p: &Port| Vector {
            cost: p.port_priority.cost.saturating_add(p.path_cost),
            bport: p.port_id,
            ..p.port_priority
        };
        // a), b): the best of the bridge priority vector and every root path priority
        // vector not derived from our own information.
        let mut best = bridge_vec;
        let mut best_port: Option<usize> = None;
        for (i, p) in self.ports.iter().enumerate() {
            if p.info_is != InfoIs::Received
                || p.port_priority.dbridge.mac() == my_mac
                || p.cfg.root_guard
            {
                continue;
            }
            let cand = root_path(p);
            if cand.cmp5(&best) == Ordering::Less {
                best = cand;
                best_port = Some(i);
            }
        }
        // c) rootTimes.
        let root_times = match best_port {
            Some(i) => {
                let mut t = self.ports[i].port_times;
                t.message_age = t.message_age.saturating_add(1);
                t
            }
            None => self.bridge_times,
        };
        let old_root = self.root_priority.root;
        self.root_priority = best;
        self.root_times = root_times;
        let new_root_port = best_port.map(|i| self.ports[i].id);
        if best.root != old_root {
            self.root_changes += 1;
            self.run_events.root_changed = true;
        }
        self.root_port = new_root_port;
        let bridge_id = self.bridge_id;
        let hello = self.bridge_times.hello;
        for (i, p) in self.ports.iter_mut().enumerate() {
            // d), e)
            p.designated_priority = Vector {
                root: best.root,
                cost: best.cost,
                dbridge: bridge_id,
                dport: p.port_id,
                bport: p.port_id,
            };
            p.designated_times = Times {
                hello,
                ..root_times
            };
            p.root_inconsistent = p.cfg.root_guard
                && p.info_is == InfoIs::Received
                && p.port_priority.dbridge.mac() != my_mac
                && root_path(p).cmp5(&best) == Ordering::Less;
            // f) - l)
            match p.info_is {
                InfoIs::Disabled => p.selected_role = PortRole::Disabled,
                InfoIs::Aged => {
                    p.selected_role = PortRole::Designated;
                    p.updt_info = true;
                }
                InfoIs::Mine => {
                    p.selected_role = PortRole::Designated;
                    if !p.port_priority.same4(&p.designated_priority)
                        || p.port_times != p.designated_times
                    {
                        p.updt_info = true;
                    }
                }
                InfoIs::Received => {
                    if best_port == Some(i) {
                        p.selected_role = PortRole::Root;
                        p.updt_info = false;
                    } else if p.designated_priority.cmp4(&p.port_priority) != Ordering::Less {
                        p.selected_role = if p.port_priority.dbridge.mac() != my_mac {
                            PortRole::Alternate
                        } else {
                            PortRole::Backup
                        };
                        p.updt_info = false;
                    } else {
                        p.selected_role = PortRole::Designated;
                        p.updt_info = true;
                    }
                }
            }
        }
    }

    // ---------------------------------------------------------------- PRT 17.29

    /// allSynced as 802.1Q-2011 13.25.1 defines it for the CIST.
    fn all_synced(&self, i: usize) -> bool {
        let me = &self.ports[i];
        for (j, q) in self.ports.iter().enumerate() {
            if !q.selected || q.role != q.selected_role || q.updt_info {
                return false;
            }
            match me.role {
                PortRole::Root | PortRole::Alternate => {
                    if q.role != PortRole::Root && !q.synced {
                        return false;
                    }
                }
                PortRole::Designated => {
                    if j != i && !q.synced {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// 17.20.10 reRooted: no other port has rrWhile running.
    fn re_rooted(&self, i: usize) -> bool {
        self.ports
            .iter()
            .enumerate()
            .all(|(j, q)| j == i || q.rr_while == 0)
    }

    pub(super) fn prt(&mut self, i: usize) -> bool {
        use PrtState as S;
        let rstp = self.rstp_version();
        let p = &self.ports[i];
        // Global transitions on a role change.
        if p.role != p.selected_role && p.selected && !p.updt_info {
            let s = match p.selected_role {
                PortRole::Disabled => S::DisablePort,
                PortRole::Root => S::RootPort,
                PortRole::Designated => S::DesignatedPort,
                PortRole::Alternate | PortRole::Backup => S::BlockPort,
            };
            self.enter_prt(i, s);
            return true;
        }
        let ready = p.selected && !p.updt_info;
        let next = match p.prt {
            S::InitPort => Some(S::DisablePort),
            S::DisablePort => (ready && !p.learning && !p.forwarding).then_some(S::DisabledPort),
            S::DisabledPort => (ready
                && (p.fd_while != p.max_age() || p.sync || p.re_root || !p.synced))
                .then_some(S::DisabledPort),
            S::RootProposed
            | S::RootAgreed
            | S::RootSynced
            | S::Reroot
            | S::RootForward
            | S::RootLearn
            | S::Rerooted => Some(S::RootPort),
            S::RootPort => {
                if !ready {
                    None
                } else if p.proposed && !p.agree {
                    Some(S::RootProposed)
                } else if (self.all_synced(i) && !p.agree) || (p.proposed && p.agree) {
                    Some(S::RootAgreed)
                } else if (p.agreed && !p.synced) || (p.sync && p.synced) {
                    Some(S::RootSynced)
                } else if !p.forward && !p.re_root {
                    Some(S::Reroot)
                } else if p.rr_while != p.fwd_delay() {
                    Some(S::RootPort)
                } else if p.re_root && p.forward {
                    Some(S::Rerooted)
                } else if p.fd_while == 0 || (self.re_rooted(i) && p.rb_while == 0 && rstp) {
                    if !p.learn {
                        Some(S::RootLearn)
                    } else if !p.forward {
                        Some(S::RootForward)
                    } else {
                        None
                    }
                } else {
                    None
                }
            }
            S::DesignatedPropose
            | S::DesignatedSynced
            | S::DesignatedRetired
            | S::DesignatedForward
            | S::DesignatedLearn
            | S::DesignatedDiscard => Some(S::DesignatedPort),
            S::DesignatedPort => {
                let edge = p.oper_edge;
                if !ready {
                    None
                } else if !p.forward && !p.agreed && !p.proposing && !edge {
                    Some(S::DesignatedPropose)
                } else if (!p.learning && !p.forwarding && !p.synced)
                    || (p.agreed && !p.synced)
                    || (edge && !p.synced)
                    || (p.sync && p.synced)
                {
                    Some(S::DesignatedSynced)
                } else if p.re_root && p.rr_while == 0 {
                    Some(S::DesignatedRetired)
                } else if ((p.sync && !p.synced) || (p.re_root && p.rr_while != 0) || p.disputed)
                    && !edge
                    && (p.learn || p.forward)
                {
                    Some(S::DesignatedDiscard)
                } else if (p.fd_while == 0 || p.agreed || edge)
                    && (p.rr_while == 0 || !p.re_root)
                    && !p.sync
                {
                    if !p.learn {
                        Some(S::DesignatedLearn)
                    } else if !p.forward {
                        Some(S::DesignatedForward)
                    } else {
                        None
                    }
                } else {
                    None
                }
            }
            S::BlockPort => (ready && !p.learning && !p.forwarding).then_some(S::AlternatePort),
            S::AlternateProposed | S::AlternateAgreed | S::BackupPort => Some(S::AlternatePort),
            S::AlternatePort => {
                if !ready {
                    None
                } else if p.proposed && !p.agree {
                    Some(S::AlternateProposed)
                } else if (self.all_synced(i) && !p.agree) || (p.proposed && p.agree) {
                    Some(S::AlternateAgreed)
                } else if p.rb_while != 2 * p.hello_time() && p.role == PortRole::Backup {
                    Some(S::BackupPort)
                } else if p.fd_while != p.forward_delay() || p.sync || p.re_root || !p.synced {
                    Some(S::AlternatePort)
                } else {
                    None
                }
            }
        };
        let Some(next) = next else { return false };
        self.enter_prt(i, next);
        true
    }

    fn enter_prt(&mut self, i: usize, s: PrtState) {
        use PrtState as S;
        self.ports[i].prt = s;
        match s {
            S::InitPort => {}
            S::DisablePort => {
                let p = &mut self.ports[i];
                p.role = p.selected_role;
                p.learn = false;
                p.forward = false;
            }
            S::DisabledPort => {
                let p = &mut self.ports[i];
                p.fd_while = p.max_age();
                p.synced = true;
                p.rr_while = 0;
                p.sync = false;
                p.re_root = false;
            }
            S::RootPort => {
                let p = &mut self.ports[i];
                p.role = PortRole::Root;
                p.rr_while = p.fwd_delay();
            }
            S::RootProposed => {
                self.set_sync_tree();
                self.ports[i].proposed = false;
            }
            S::RootAgreed => {
                let p = &mut self.ports[i];
                p.proposed = false;
                p.sync = false;
                p.agree = true;
                p.new_info = true;
            }
            S::RootSynced => {
                let p = &mut self.ports[i];
                p.synced = true;
                p.sync = false;
            }
            S::Reroot => self.set_re_root_tree(),
            S::RootForward => {
                let p = &mut self.ports[i];
                p.fd_while = 0;
                p.forward = true;
            }
            S::RootLearn => {
                let p = &mut self.ports[i];
                p.fd_while = p.forward_delay();
                p.learn = true;
            }
            S::Rerooted => self.ports[i].re_root = false,
            S::DesignatedPort => self.ports[i].role = PortRole::Designated,
            S::DesignatedPropose => {
                let p = &mut self.ports[i];
                p.proposing = true;
                p.edge_delay_while = p.edge_delay();
                p.new_info = true;
            }
            S::DesignatedSynced => {
                let p = &mut self.ports[i];
                p.rr_while = 0;
                p.synced = true;
                p.sync = false;
            }
            S::DesignatedRetired => self.ports[i].re_root = false,
            S::DesignatedForward => {
                let p = &mut self.ports[i];
                p.forward = true;
                p.fd_while = 0;
                p.agreed = p.send_rstp;
            }
            S::DesignatedLearn => {
                let p = &mut self.ports[i];
                p.learn = true;
                p.fd_while = p.forward_delay();
            }
            S::DesignatedDiscard => {
                let p = &mut self.ports[i];
                p.learn = false;
                p.forward = false;
                p.disputed = false;
                p.fd_while = p.forward_delay();
            }
            S::BlockPort => {
                let p = &mut self.ports[i];
                p.role = p.selected_role;
                p.learn = false;
                p.forward = false;
            }
            S::AlternatePort => {
                let p = &mut self.ports[i];
                p.fd_while = p.forward_delay();
                p.synced = true;
                p.rr_while = 0;
                p.sync = false;
                p.re_root = false;
            }
            S::AlternateProposed => {
                self.set_sync_tree();
                self.ports[i].proposed = false;
            }
            S::AlternateAgreed => {
                let p = &mut self.ports[i];
                p.proposed = false;
                p.agree = true;
                p.new_info = true;
            }
            S::BackupPort => {
                let p = &mut self.ports[i];
                p.rb_while = 2 * p.hello_time();
            }
        }
    }

    /// 17.21.14 setSyncTree.
    fn set_sync_tree(&mut self) {
        for p in &mut self.ports {
            p.sync = true;
        }
    }

    /// 17.21.15 setReRootTree.
    fn set_re_root_tree(&mut self) {
        for p in &mut self.ports {
            p.re_root = true;
        }
    }

    /// 17.21.18 setTcPropTree: every port but `i`.
    fn set_tc_prop_tree(&mut self, i: usize) {
        for (j, p) in self.ports.iter_mut().enumerate() {
            if j != i {
                p.tc_prop = true;
            }
        }
    }

    // ---------------------------------------------------------------- PST 17.30

    pub(super) fn pst(&mut self, i: usize) -> bool {
        let p = &mut self.ports[i];
        let next = match p.pst {
            PstState::Discarding => p.learn.then_some(PstState::Learning),
            PstState::Learning => {
                if !p.learn {
                    Some(PstState::Discarding)
                } else if p.forward {
                    Some(PstState::Forwarding)
                } else {
                    None
                }
            }
            PstState::Forwarding => (!p.forward).then_some(PstState::Discarding),
        };
        let Some(next) = next else { return false };
        p.pst = next;
        match next {
            PstState::Discarding => {
                p.learning = false;
                p.forwarding = false;
            }
            PstState::Learning => p.learning = true,
            PstState::Forwarding => p.forwarding = true,
        }
        true
    }

    // ---------------------------------------------------------------- TCM 17.31

    pub(super) fn tcm(&mut self, i: usize) -> bool {
        use TcmState as S;
        let p = &self.ports[i];
        let any_rcvd = p.rcvd_tc || p.rcvd_tcn || p.rcvd_tc_ack || p.tc_prop;
        let next = match p.tcm {
            S::Inactive => (p.learn && !p.fdb_flush).then_some(S::Learning),
            S::Learning => {
                if p.role_is_active() && p.forward && !p.oper_edge {
                    Some(S::Detected)
                } else if any_rcvd {
                    Some(S::Learning)
                } else if !(p.role_is_active() || p.learn || p.learning) {
                    Some(S::Inactive)
                } else {
                    None
                }
            }
            S::Detected | S::NotifiedTc | S::Propagating | S::Acknowledged => Some(S::Active),
            S::NotifiedTcn => Some(S::NotifiedTc),
            S::Active => {
                if !p.role_is_active() || p.oper_edge {
                    Some(S::Learning)
                } else if p.rcvd_tcn {
                    Some(S::NotifiedTcn)
                } else if p.rcvd_tc {
                    Some(S::NotifiedTc)
                } else if p.tc_prop && !p.oper_edge {
                    Some(S::Propagating)
                } else if p.rcvd_tc_ack {
                    Some(S::Acknowledged)
                } else {
                    None
                }
            }
        };
        let Some(next) = next else { return false };
        self.ports[i].tcm = next;
        match next {
            S::Inactive => {
                let p = &mut self.ports[i];
                p.fdb_flush = true;
                p.tc_while = 0;
                p.tc_ack = false;
            }
            S::Learning => {
                let p = &mut self.ports[i];
                p.rcvd_tc = false;
                p.rcvd_tcn = false;
                p.rcvd_tc_ack = false;
                p.tc_prop = false;
            }
            S::Detected => {
                self.new_tc_while(i);
                self.set_tc_prop_tree(i);
                self.ports[i].new_info = true;
            }
            S::Active => {}
            S::NotifiedTcn => self.new_tc_while(i),
            S::NotifiedTc => {
                let p = &mut self.ports[i];
                p.rcvd_tcn = false;
                p.rcvd_tc = false;
                if p.role == PortRole::Designated {
                    p.tc_ack = true;
                    // Deviation (see module doc): acknowledge an 802.1D peer's TCN now.
                    if !p.send_rstp {
                        p.new_info = true;
                    }
                }
                self.set_tc_prop_tree(i);
            }
            S::Propagating => {
                self.new_tc_while(i);
                let p = &mut self.ports[i];
                p.fdb_flush = true;
                p.tc_prop = false;
            }
            S::Acknowledged => {
                let p = &mut self.ports[i];
                p.tc_while = 0;
                p.rcvd_tc_ack = false;
            }
        }
        // fdbFlush: the filtering database removes the port's entries at once (rstpVersion;
        // with force_version 0 too, instead of rapid ageing), reported as Action::Flush.
        let p = &mut self.ports[i];
        if p.fdb_flush {
            p.fdb_flush = false;
            p.flush_pending = true;
        }
        true
    }

    /// 17.21.7 newTcWhile; also keeps the bridge-wide topology change bookkeeping.
    fn new_tc_while(&mut self, i: usize) {
        if self.ports[i].tc_while != 0 {
            return;
        }
        let was_active = self.ports.iter().any(|p| p.tc_while != 0);
        let hello = self.bridge_times.hello;
        let root_times = self.root_times;
        let p = &mut self.ports[i];
        if p.send_rstp {
            p.tc_while = hello + 1;
            p.new_info = true;
        } else {
            p.tc_while = root_times.max_age + root_times.forward_delay;
        }
        self.last_tc = Some(self.now);
        self.last_tc_port = Some(self.ports[i].id);
        if !was_active {
            self.tc_count += 1;
            self.run_events.topology_change = true;
        }
    }
}
