//! The MDB state machine: port groups with filter modes, source lists and timers (RFC 3376
//! §6.4, RFC 3810 §7.4 as Linux's br_multicast.c applies them), router ports, the querier
//! election and the own querier. See the module documentation of [`crate::mcast`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::view::{Filter, FwdGroup, FwdPort};
use super::*;
use crate::wire::igmp::IgmpMessage;
use crate::wire::mld::MldMessage;
use crate::wire::EtherType;
use crate::wire::{is_unsnooped_group, McastFrame, RecordType};

/// One source of a port group.
#[derive(Clone, Debug)]
struct Source {
    addr: IpAddr,
    /// `None`: not running (in exclude mode: blocked).
    timer: Option<Timestamp>,
    /// Group-and-source-specific query retransmissions left.
    rexmit: u32,
    /// Scratch marks of one record's processing (Linux `BR_SGRP_F_DELETE` / `_SEND`).
    del: bool,
    send: bool,
}

/// One port's membership of one (group, VID).
#[derive(Clone, Debug)]
struct PortGroup {
    port: PortId,
    mode: FilterMode,
    /// Group timer; `None`: not running.
    timer: Option<Timestamp>,
    sources: Vec<Source>,
    /// `bridge mdb add ... permanent`: reports, leaves and timers leave it alone.
    permanent: bool,
    /// Added by `mdb add` (permanent or temp).
    is_static: bool,
    /// Group-specific query retransmissions left.
    grp_rexmit: u32,
    /// When the next retransmission is due.
    rexmit_at: Option<Timestamp>,
}

impl PortGroup {
    fn new(port: PortId, mode: FilterMode, is_static: bool, permanent: bool) -> Self {
        PortGroup {
            port,
            mode,
            timer: None,
            sources: Vec::new(),
            permanent,
            is_static,
            grp_rexmit: 0,
            rexmit_at: None,
        }
    }

    fn find(&self, a: &IpAddr) -> Option<usize> {
        self.sources.iter().position(|s| s.addr == *a)
    }

    /// Adds a source with no timer (Linux `br_multicast_new_group_src`): refused when not a
    /// valid source or when the port group holds [`PG_SRC_ENT_LIMIT`] sources.
    fn add_source(&mut self, group: &IpAddr, a: IpAddr, limited: &mut u64) -> Option<usize> {
        if !valid_source(group, &a) {
            return None;
        }
        if self.sources.len() >= PG_SRC_ENT_LIMIT {
            *limited += 1;
            return None;
        }
        self.sources.push(Source {
            addr: a,
            timer: None,
            rexmit: 0,
            del: false,
            send: false,
        });
        Some(self.sources.len() - 1)
    }

    fn find_or_add(&mut self, group: &IpAddr, a: IpAddr, limited: &mut u64) -> Option<usize> {
        self.find(&a).or_else(|| self.add_source(group, a, limited))
    }

    /// What forwarding sees of it: the mode and each source with whether its timer runs.
    fn signature(&self) -> (FilterMode, Vec<(IpAddr, bool)>) {
        let mut s: Vec<(IpAddr, bool)> = self
            .sources
            .iter()
            .map(|s| (s.addr, s.timer.is_some()))
            .collect();
        s.sort();
        (self.mode, s)
    }

    fn is_empty_include(&self) -> bool {
        self.mode == FilterMode::Include && self.sources.is_empty()
    }
}

/// A static (S,G) entry of one port (`bridge mdb add ... src S`).
#[derive(Clone, Debug)]
struct StaticSg {
    port: PortId,
    source: IpAddr,
    /// `None`: permanent.
    expires: Option<Timestamp>,
}

/// One (group, VID): its port groups (sorted by port) and static (S,G) entries.
#[derive(Clone, Debug, Default)]
struct GroupEntry {
    ports: Vec<PortGroup>,
    static_sg: Vec<StaticSg>,
    /// The earliest timer of the entry, kept by [`GroupEntry::recompute`] after every change,
    /// so finding the next deadline does not walk every source of every group.
    next: Option<Timestamp>,
}

impl GroupEntry {
    fn pg(&self, port: PortId) -> Option<&PortGroup> {
        self.ports.iter().find(|p| p.port == port)
    }

    fn pg_mut(&mut self, port: PortId) -> Option<&mut PortGroup> {
        self.ports.iter_mut().find(|p| p.port == port)
    }

    fn is_empty(&self) -> bool {
        self.ports.is_empty() && self.static_sg.is_empty()
    }

    fn recompute(&mut self) {
        let mut d = None;
        for pg in &self.ports {
            d = min_opt(d, pg.timer);
            d = min_opt(d, pg.rexmit_at);
            for s in &pg.sources {
                d = min_opt(d, s.timer);
            }
        }
        for s in &self.static_sg {
            d = min_opt(d, s.expires);
        }
        self.next = d;
    }
}

#[derive(Clone, Debug)]
struct PortState {
    cfg: PortConfig,
    enabled: bool,
    /// Port groups plus static (S,G) entries of this port (for `mcast_max_groups`).
    ngroups: u32,
    /// `mcast_router 3`: a router port in every VLAN until then.
    temp_router_until: Option<Timestamp>,
    /// Start-up general queries of this port, per family: (next, sent).
    startup: [Option<(Timestamp, u32)>; 2],
    stats: McastStats,
}

/// The querier state of one VLAN and family.
#[derive(Clone, Debug, Default)]
struct FamCtx {
    /// Other querier present until (Linux `other_query.timer`).
    other_until: Option<Timestamp>,
    /// A querier only counts from then on (Linux `other_query.delay_time`).
    delay_until: Option<Timestamp>,
    /// The querier followed.
    querier: Option<QuerierInfo>,
    /// Next own general query.
    own_next: Option<Timestamp>,
    /// Own start-up queries sent.
    own_sent: u32,
    /// When the last own general query went out (to every port).
    own_last: Option<Timestamp>,
}

#[derive(Clone, Debug, Default)]
struct VlanCtx {
    fam: [FamCtx; 2],
    /// Added with `add_vlan`: the own querier runs in it.
    registered: bool,
    src_v4: Option<Ipv4Addr>,
    src_v6: Option<Ipv6Addr>,
}

/// A query a port group asks for while a record is applied or a retransmission is due.
struct PgQuery {
    /// Empty: group-specific.
    sources: Vec<IpAddr>,
    s_flag: bool,
}

/// The values one record's processing needs.
struct RecCtx {
    now: Timestamp,
    gmi: u64,
    lmqt: u64,
    lmi: u64,
    lmc: u32,
    /// The switch is the querier (Linux `multicast_querier && !other_query pending`).
    querier: bool,
    /// The port has `mcast_fast_leave`: queries end at once and are not sent.
    fast: bool,
}

impl RecCtx {
    fn at(&self, ms: u64) -> Timestamp {
        Timestamp(self.now.0.saturating_add(ms))
    }

    /// When a last-member query ends: LMQT from now, or now with fast leave.
    fn lmqt_at(&self) -> Timestamp {
        if self.fast {
            self.now
        } else {
            self.at(self.lmqt)
        }
    }
}

// --- RFC 3376 §6.4 / RFC 3810 §7.4 on one port group (Linux __grp_src_* functions) ---

/// IS_IN(B) and ALLOW(B): INCLUDE(A) -> INCLUDE(A+B), (B)=GMI; EXCLUDE(X,Y) -> EXCLUDE(X+A,
/// Y-A), (A)=GMI.
fn isinc_allow(pg: &mut PortGroup, g: &IpAddr, srcs: &[IpAddr], c: &RecCtx, lim: &mut u64) {
    for s in srcs {
        if let Some(i) = pg.find_or_add(g, *s, lim) {
            pg.sources[i].timer = Some(c.at(c.gmi));
        }
    }
}

/// IS_EX: INCLUDE(A) -> EXCLUDE(A*B, B-A), (B-A)=0, delete (A-B);
/// EXCLUDE(X,Y) -> EXCLUDE(A-Y, Y*A), (A-X-Y)=GMI, delete (X-A), (Y-A); group timer = GMI.
fn isexc(pg: &mut PortGroup, g: &IpAddr, srcs: &[IpAddr], c: &RecCtx, lim: &mut u64) {
    for x in &mut pg.sources {
        x.del = true;
    }
    let was_include = pg.mode == FilterMode::Include;
    for s in srcs {
        match pg.find(s) {
            Some(i) => pg.sources[i].del = false,
            None => {
                if let Some(i) = pg.add_source(g, *s, lim) {
                    if !was_include {
                        pg.sources[i].timer = Some(c.at(c.gmi));
                    }
                }
            }
        }
    }
    pg.sources.retain(|x| !x.del);
    pg.mode = FilterMode::Exclude;
    pg.timer = Some(c.at(c.gmi));
}

/// TO_IN: INCLUDE(A) -> INCLUDE(A+B), (B)=GMI, Q(G,A-B);
/// EXCLUDE(X,Y) -> EXCLUDE(X+A, Y-A), (A)=GMI, Q(G,X-A), Q(G).
fn toin(
    pg: &mut PortGroup,
    g: &IpAddr,
    srcs: &[IpAddr],
    c: &RecCtx,
    lim: &mut u64,
    q: &mut Vec<PgQuery>,
) {
    let include = pg.mode == FilterMode::Include;
    for x in &mut pg.sources {
        x.send = include || x.timer.is_some();
    }
    for s in srcs {
        let i = match pg.find(s) {
            Some(i) => {
                if include || pg.sources[i].timer.is_some() {
                    pg.sources[i].send = false;
                }
                Some(i)
            }
            None => pg.add_source(g, *s, lim),
        };
        if let Some(i) = i {
            pg.sources[i].timer = Some(c.at(c.gmi));
        }
    }
    query_marked(pg, c, q);
    if !include {
        group_query(pg, c, q);
    }
}

/// TO_EX: INCLUDE(A) -> EXCLUDE(A*B, B-A), (B-A)=0, delete (A-B), Q(G,A*B);
/// EXCLUDE(X,Y) -> EXCLUDE(A-Y, Y*A), (A-X-Y)=group timer, delete (X-A), (Y-A), Q(G,A-Y);
/// group timer = GMI.
fn toex(
    pg: &mut PortGroup,
    g: &IpAddr,
    srcs: &[IpAddr],
    c: &RecCtx,
    lim: &mut u64,
    q: &mut Vec<PgQuery>,
) {
    let include = pg.mode == FilterMode::Include;
    let group_timer = pg.timer;
    for x in &mut pg.sources {
        x.del = true;
        x.send = false;
    }
    for s in srcs {
        match pg.find(s) {
            Some(i) => {
                let x = &mut pg.sources[i];
                x.del = false;
                if include || x.timer.is_some() {
                    x.send = true;
                }
            }
            None => {
                if let Some(i) = pg.add_source(g, *s, lim) {
                    if !include {
                        let x = &mut pg.sources[i];
                        x.timer = group_timer;
                        x.send = x.timer.is_some();
                    }
                }
            }
        }
    }
    pg.sources.retain(|x| !x.del);
    query_marked(pg, c, q);
    pg.mode = FilterMode::Exclude;
    pg.timer = Some(c.at(c.gmi));
}

/// BLOCK: INCLUDE(A) -> INCLUDE(A), Q(G,A*B);
/// EXCLUDE(X,Y) -> EXCLUDE(X+(A-Y), Y), (A-X-Y)=group timer, Q(G,A-Y).
fn block(
    pg: &mut PortGroup,
    g: &IpAddr,
    srcs: &[IpAddr],
    c: &RecCtx,
    lim: &mut u64,
    q: &mut Vec<PgQuery>,
) {
    let include = pg.mode == FilterMode::Include;
    let group_timer = pg.timer;
    for x in &mut pg.sources {
        x.send = false;
    }
    for s in srcs {
        let i = if include {
            pg.find(s)
        } else {
            pg.find(s).or_else(|| {
                let i = pg.add_source(g, *s, lim)?;
                pg.sources[i].timer = group_timer;
                Some(i)
            })
        };
        if let Some(i) = i {
            let x = &mut pg.sources[i];
            x.send = x.timer.is_some();
        }
    }
    query_marked(pg, c, q);
}

/// Q(G,S) for the marked sources (RFC 3376 §6.6.3.2, Linux
/// `__grp_src_query_marked_and_rexmit`): their timers drop to LMQT whoever the querier is;
/// the querier sends the query and schedules `mcast_last_member_count` - 1 retransmissions.
fn query_marked(pg: &mut PortGroup, c: &RecCtx, q: &mut Vec<PgQuery>) {
    let lmqt_at = c.lmqt_at();
    let send = c.querier && !c.fast;
    let mut any = false;
    for x in &mut pg.sources {
        if !std::mem::take(&mut x.send) {
            continue;
        }
        any = true;
        if x.timer.is_some_and(|t| t > lmqt_at) {
            if send {
                x.rexmit = c.lmc;
            }
            x.timer = Some(lmqt_at);
        }
    }
    if any && send {
        source_queries(pg, c.now, c.lmqt, q);
        if pg.sources.iter().any(|x| x.rexmit > 0) {
            let at = c.at(c.lmi);
            pg.rexmit_at = Some(pg.rexmit_at.map_or(at, |r| r.min(at)));
        }
    }
}

/// The group-and-source-specific queries for the sources with retransmissions left: those
/// above LMQT with the S flag, the others without (RFC 3376 §6.6.3.2).
fn source_queries(pg: &mut PortGroup, now: Timestamp, lmqt: u64, q: &mut Vec<PgQuery>) {
    let lmqt_at = Timestamp(now.0.saturating_add(lmqt));
    for over in [true, false] {
        let mut sources = Vec::new();
        for x in &mut pg.sources {
            let Some(t) = x.timer else { continue };
            if x.rexmit > 0 && (t > lmqt_at) == over {
                x.rexmit -= 1;
                sources.push(x.addr);
            }
        }
        if !sources.is_empty() {
            q.push(PgQuery {
                sources,
                s_flag: over,
            });
        }
    }
}

/// Q(G) (RFC 3376 §6.6.3.1, Linux `__grp_send_query_and_rexmit`): in exclude mode the group
/// timer drops to LMQT; the querier sends the query and retransmits it.
fn group_query(pg: &mut PortGroup, c: &RecCtx, q: &mut Vec<PgQuery>) {
    if c.querier && !c.fast {
        pg.grp_rexmit = c.lmc.saturating_sub(1);
        q.push(PgQuery {
            sources: Vec::new(),
            s_flag: false,
        });
        let at = c.at(c.lmi);
        pg.rexmit_at = Some(pg.rexmit_at.map_or(at, |r| r.min(at)));
    }
    let lmqt_at = c.lmqt_at();
    if pg.mode == FilterMode::Exclude && pg.timer.is_none_or(|t| t > lmqt_at) {
        pg.timer = Some(lmqt_at);
    }
}

/// A retransmission is due at `t` (Linux `br_multicast_port_group_rexmit`).
fn rexmit(pg: &mut PortGroup, t: Timestamp, querier: bool, c: &RecCtx, q: &mut Vec<PgQuery>) {
    pg.rexmit_at = None;
    if !querier {
        return;
    }
    if pg.grp_rexmit > 0 {
        pg.grp_rexmit -= 1;
        let s_flag = pg.timer.is_some_and(|g| g.0 > t.0.saturating_add(c.lmqt));
        q.push(PgQuery {
            sources: Vec::new(),
            s_flag,
        });
    }
    source_queries(pg, t, c.lmqt, q);
    if pg.grp_rexmit > 0 || pg.sources.iter().any(|x| x.rexmit > 0 && x.timer.is_some()) {
        pg.rexmit_at = Some(Timestamp(t.0.saturating_add(c.lmi)));
    }
}

/// Timers of one port group that are due at `t`: an expired source is deleted (include) or
/// blocked (exclude); an expired group timer switches to include mode and deletes the
/// blocked sources (Linux `br_multicast_group_src_expired`, `br_multicast_port_group_expired`).
fn expire(pg: &mut PortGroup, t: Timestamp) {
    if pg.permanent {
        return;
    }
    let include = pg.mode == FilterMode::Include;
    for x in &mut pg.sources {
        if x.timer.is_some_and(|x| x <= t) {
            x.timer = None;
            x.del = include;
        }
    }
    pg.sources.retain(|x| !x.del);
    if pg.timer.is_some_and(|g| g <= t) {
        pg.timer = None;
        pg.mode = FilterMode::Include;
        pg.sources.retain(|x| x.timer.is_some());
    }
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn remaining(t: Option<Timestamp>, now: Timestamp) -> u64 {
    t.map_or(0, |t| t.since(now))
}

/// The multicast snooping state of one switch. See the module documentation.
#[derive(Clone, Debug)]
pub struct McastState {
    cfg: McastConfig,
    groups: BTreeMap<(IpAddr, u16), GroupEntry>,
    ports: BTreeMap<PortId, PortState>,
    /// Learned router ports: (port, VID, family) -> expiry.
    routers: BTreeMap<(PortId, u16, Family), Timestamp>,
    vlans: BTreeMap<u16, VlanCtx>,
    stats: McastStats,
    actions: Vec<Action>,
    events: Vec<Event>,
    dirty: bool,
}

impl McastState {
    /// A state machine with these settings (see [`McastConfig::validated`]), no ports and no
    /// VLANs. Add VLAN 0 with [`McastState::add_vlan`] when VLAN filtering is off, so the own
    /// querier (if on) has somewhere to query.
    pub fn new(cfg: McastConfig) -> Result<Self, ConfigError> {
        Ok(McastState {
            cfg: cfg.validated()?,
            groups: BTreeMap::new(),
            ports: BTreeMap::new(),
            routers: BTreeMap::new(),
            vlans: BTreeMap::new(),
            stats: McastStats::default(),
            actions: Vec::new(),
            events: Vec::new(),
            dirty: true,
        })
    }

    /// The settings in force.
    pub fn config(&self) -> &McastConfig {
        &self.cfg
    }

    // ----- outputs -----

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= OUTPUT_QUEUE_MAX {
            self.stats.output_dropped += 1;
        } else {
            self.events.push(e);
        }
    }

    fn send_query(&mut self, spec: QuerySpec) {
        let count = |c: &mut McastCounts| match spec.version {
            QueryVersion::IgmpV2 => c.igmp_v2queries += 1,
            QueryVersion::IgmpV3 => c.igmp_v3queries += 1,
            QueryVersion::MldV1 => c.mld_v1queries += 1,
            QueryVersion::MldV2 => c.mld_v2queries += 1,
        };
        if self.actions.len() >= OUTPUT_QUEUE_MAX {
            self.stats.output_dropped += 1;
            return;
        }
        count(&mut self.stats.tx);
        if let Some(ps) = spec.port.and_then(|p| self.ports.get_mut(&p)) {
            count(&mut ps.stats.tx);
        }
        self.actions.push(Action::SendQuery(spec));
    }

    /// Takes the queries to send.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// Takes the events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Whether forwarding changed since the last [`McastState::view`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Switch-wide counters.
    pub fn stats(&self) -> &McastStats {
        &self.stats
    }

    /// A port's counters.
    pub fn port_stats(&self, port: PortId) -> Option<&McastStats> {
        self.ports.get(&port).map(|p| &p.stats)
    }

    /// Counts a frame the frame path dropped because [`crate::wire::inspect`] refused it
    /// (Linux `igmp_parse_errors` / `mld_parse_errors`).
    pub fn note_parse_error(&mut self, port: PortId, family: Family) {
        let bump = |s: &mut McastStats| match family {
            Family::V4 => s.igmp_parse_errors += 1,
            Family::V6 => s.mld_parse_errors += 1,
        };
        bump(&mut self.stats);
        if let Some(ps) = self.ports.get_mut(&port) {
            bump(&mut ps.stats);
        }
    }

    // ----- querier state -----

    fn ctx_mut(&mut self, vid: u16, now: Timestamp) -> &mut VlanCtx {
        let querier = self.cfg.querier;
        let qri = self.cfg.query_response_interval_ms;
        self.vlans.entry(vid).or_insert_with(|| {
            let mut v = VlanCtx::default();
            if querier {
                for f in &mut v.fam {
                    f.delay_until = Some(Timestamp(now.0 + qri));
                }
            }
            v
        })
    }

    fn fam(&self, vid: u16, family: Family) -> Option<&FamCtx> {
        self.vlans.get(&vid).map(|v| &v.fam[family.index()])
    }

    /// Whether the own querier runs in `vid`.
    fn own_enabled(&self, vid: u16) -> bool {
        self.cfg.snooping && self.cfg.querier && self.vlans.get(&vid).is_some_and(|v| v.registered)
    }

    fn other_present(&self, vid: u16, family: Family) -> bool {
        self.fam(vid, family)
            .is_some_and(|f| f.other_until.is_some())
    }

    /// The switch is the querier of `vid` (Linux `multicast_querier && !other_query pending`).
    fn is_querier(&self, vid: u16, family: Family) -> bool {
        self.own_enabled(vid) && !self.other_present(vid, family)
    }

    /// Linux `br_multicast_querier_exists`.
    fn querier_exists(&self, vid: u16, family: Family) -> bool {
        let Some(f) = self.fam(vid, family) else {
            return false;
        };
        f.delay_until.is_none() && (self.own_enabled(vid) || f.other_until.is_some())
    }

    /// The own query source address of `vid`.
    fn own_address(&self, vid: u16, family: Family) -> IpAddr {
        let v = self.vlans.get(&vid);
        match family {
            Family::V4 => IpAddr::V4(v.and_then(|v| v.src_v4).unwrap_or(Ipv4Addr::UNSPECIFIED)),
            Family::V6 => IpAddr::V6(
                v.and_then(|v| v.src_v6)
                    .unwrap_or_else(|| link_local_from_mac(self.cfg.switch_mac)),
            ),
        }
    }

    fn query_version(&self, family: Family) -> QueryVersion {
        match family {
            Family::V4 if self.cfg.igmp_version == 3 => QueryVersion::IgmpV3,
            Family::V4 => QueryVersion::IgmpV2,
            Family::V6 if self.cfg.mld_version == 2 => QueryVersion::MldV2,
            Family::V6 => QueryVersion::MldV1,
        }
    }

    fn query_spec(
        &self,
        vid: u16,
        port: Option<PortId>,
        family: Family,
        group: Option<IpAddr>,
        sources: Vec<IpAddr>,
        s_flag: bool,
    ) -> QuerySpec {
        QuerySpec {
            vid,
            port,
            version: self.query_version(family),
            src: self.own_address(vid, family),
            max_resp_ms: if group.is_some() {
                self.cfg.last_member_interval_ms
            } else {
                self.cfg.query_response_interval_ms
            },
            group,
            sources,
            s_flag,
            qqi_secs: u32::try_from(self.cfg.query_interval_ms / 1000).unwrap_or(u32::MAX),
            qrv: 2,
        }
    }

    fn set_querier(&mut self, vid: u16, family: Family, q: Option<QuerierInfo>) {
        let Some(v) = self.vlans.get_mut(&vid) else {
            return;
        };
        let f = &mut v.fam[family.index()];
        if f.querier != q {
            f.querier = q;
            self.push_event(Event::QuerierChanged {
                vid,
                family,
                querier: q,
            });
        }
    }

    /// Linux `br_multicast_start_querier`: the own querier starts (again) with start-up
    /// queries.
    fn start_querier(&mut self, vid: u16, family: Family, now: Timestamp) {
        if !self.own_enabled(vid) {
            return;
        }
        if let Some(v) = self.vlans.get_mut(&vid) {
            let f = &mut v.fam[family.index()];
            f.own_sent = 0;
            f.own_next = Some(now);
        }
    }

    /// The own general query is due (Linux `br_multicast_query_expired` + `_send_query`).
    fn fire_own_query(&mut self, vid: u16, family: Family, t: Timestamp) {
        let enabled = self.own_enabled(vid);
        let other = self.other_present(vid, family);
        let count = self.cfg.startup_query_count;
        let (startup, regular) = (
            self.cfg.startup_query_interval_ms,
            self.cfg.query_interval_ms,
        );
        let Some(v) = self.vlans.get_mut(&vid) else {
            return;
        };
        let f = &mut v.fam[family.index()];
        if !enabled || other {
            f.own_next = None;
            return;
        }
        if f.own_sent < count {
            f.own_sent += 1;
        }
        let next = if f.own_sent < count { startup } else { regular };
        f.own_next = Some(Timestamp(t.0.saturating_add(next)));
        f.own_last = Some(t);
        let own = QuerierInfo {
            address: self.own_address(vid, family),
            port: None,
        };
        self.set_querier(vid, family, Some(own));
        let spec = self.query_spec(vid, None, family, None, Vec::new(), false);
        self.send_query(spec);
    }

    /// Linux `br_multicast_select_querier`: whether a general query from `saddr` on `port`
    /// wins the election.
    fn select_querier(&mut self, vid: u16, family: Family, saddr: IpAddr, port: PortId) -> bool {
        let Some(f) = self.fam(vid, family) else {
            return false;
        };
        let cur = f.querier.map(|q| q.address);
        let lower = match (saddr, cur) {
            (_, None) => family == Family::V4 || saddr.is_unspecified(),
            (IpAddr::V4(s), Some(IpAddr::V4(c))) => c.is_unspecified() || s <= c,
            (IpAddr::V6(s), Some(IpAddr::V6(c))) => s <= c,
            _ => false,
        };
        let update = lower || (f.own_next.is_none() && f.other_until.is_none());
        if update {
            self.set_querier(
                vid,
                family,
                Some(QuerierInfo {
                    address: saddr,
                    port: Some(port),
                }),
            );
        }
        update
    }

    // ----- router ports -----

    /// Linux `br_multicast_mark_router`: a query, PIM hello or MRD advertisement on `port`.
    fn mark_router(&mut self, port: PortId, vid: u16, family: Family, now: Timestamp) {
        let qi = self.cfg.querier_interval_ms;
        let Some(ps) = self.ports.get_mut(&port) else {
            return;
        };
        if !ps.enabled {
            return;
        }
        match ps.cfg.router {
            RouterMode::Disabled | RouterMode::Permanent => return,
            RouterMode::Temp => ps.temp_router_until = Some(Timestamp(now.0 + qi)),
            RouterMode::TempQuery => {}
        }
        let new = self
            .routers
            .insert((port, vid, family), Timestamp(now.0 + qi))
            .is_none();
        if new {
            self.dirty = true;
            self.push_event(Event::RouterAdded {
                port,
                vid: Some(vid),
                family,
            });
        }
    }

    /// A multicast router was seen on `port` in `vid` (a PIM hello or an MRD advertisement
    /// found by other means than [`McastState::handle_frame`]).
    pub fn router_seen(&mut self, port: PortId, vid: u16, family: Family, now: Timestamp) {
        self.run_timers(now);
        if self.cfg.snooping {
            self.mark_router(port, vid, family, now);
        }
        self.run_timers(now);
    }

    fn drop_learned_routers(&mut self, port: PortId) {
        let keys: Vec<_> = self
            .routers
            .keys()
            .filter(|k| k.0 == port)
            .copied()
            .collect();
        for k in keys {
            self.routers.remove(&k);
            self.dirty = true;
            self.push_event(Event::RouterRemoved {
                port,
                vid: Some(k.1),
                family: k.2,
            });
        }
    }

    fn global_router_events(&mut self, port: PortId, added: bool) {
        for family in Family::ALL {
            self.push_event(if added {
                Event::RouterAdded {
                    port,
                    vid: None,
                    family,
                }
            } else {
                Event::RouterRemoved {
                    port,
                    vid: None,
                    family,
                }
            });
        }
        self.dirty = true;
    }

    // ----- ports -----

    /// A port joins the switch, up (Linux `br_multicast_add_port` + `_enable_port`): with the
    /// own querier on it gets start-up queries; `mcast_router 2` makes it a router port.
    pub fn add_port(&mut self, port: PortId, cfg: PortConfig, now: Timestamp) {
        self.run_timers(now);
        if self.ports.contains_key(&port) {
            let _ = self.set_port_config(port, cfg, now);
            return;
        }
        self.ports.insert(
            port,
            PortState {
                cfg: PortConfig {
                    router: RouterMode::TempQuery,
                    ..cfg
                },
                enabled: true,
                ngroups: 0,
                temp_router_until: None,
                startup: [None; 2],
                stats: McastStats::default(),
            },
        );
        let _ = self.set_port_config(port, cfg, now);
        self.port_startup(port, now);
        self.run_timers(now);
    }

    fn port_startup(&mut self, port: PortId, now: Timestamp) {
        if !(self.cfg.snooping && self.cfg.querier) {
            return;
        }
        if let Some(ps) = self.ports.get_mut(&port) {
            ps.startup = [Some((now, 0)); 2];
        }
    }

    /// Changes a port's `mcast_router`, `mcast_fast_leave`, `mcast_max_groups` (Linux
    /// `br_multicast_set_port_router` for the first).
    pub fn set_port_config(
        &mut self,
        port: PortId,
        cfg: PortConfig,
        now: Timestamp,
    ) -> Result<(), McastError> {
        self.run_timers(now);
        let qi = self.cfg.querier_interval_ms;
        let ps = self
            .ports
            .get_mut(&port)
            .ok_or(McastError::UnknownPort(port))?;
        let old = ps.cfg.router;
        let was_global = matches!(old, RouterMode::Permanent)
            || (old == RouterMode::Temp && ps.temp_router_until.is_some());
        ps.cfg = cfg;
        let enabled = ps.enabled;
        match cfg.router {
            RouterMode::Disabled | RouterMode::TempQuery => {
                ps.temp_router_until = None;
                if was_global && enabled {
                    self.global_router_events(port, false);
                }
                self.drop_learned_routers(port);
            }
            RouterMode::Permanent => {
                ps.temp_router_until = None;
                self.drop_learned_routers(port);
                if !was_global && enabled {
                    self.global_router_events(port, true);
                }
            }
            RouterMode::Temp => {
                ps.temp_router_until = Some(Timestamp(now.0 + qi));
                if !was_global && enabled {
                    self.global_router_events(port, true);
                }
            }
        }
        self.dirty = true;
        self.run_timers(now);
        Ok(())
    }

    /// The port went down or stopped forwarding (link, STP): its learned and temp entries and
    /// its router-port state go (Linux `br_multicast_disable_port`); up again, it gets
    /// start-up queries (Linux `br_multicast_enable_port`).
    pub fn set_port_enabled(
        &mut self,
        port: PortId,
        enabled: bool,
        now: Timestamp,
    ) -> Result<(), McastError> {
        self.run_timers(now);
        let ps = self
            .ports
            .get_mut(&port)
            .ok_or(McastError::UnknownPort(port))?;
        if ps.enabled == enabled {
            return Ok(());
        }
        ps.enabled = enabled;
        let mode = ps.cfg.router;
        let global = mode == RouterMode::Permanent
            || (mode == RouterMode::Temp && ps.temp_router_until.is_some());
        if enabled {
            if global {
                self.global_router_events(port, true);
            }
            self.port_startup(port, now);
        } else {
            ps.startup = [None; 2];
            if mode == RouterMode::Temp {
                ps.temp_router_until = None;
                ps.cfg.router = RouterMode::TempQuery;
            }
            if global {
                self.global_router_events(port, false);
            }
            self.drop_learned_routers(port);
            self.remove_port_entries(port, false, RemoveReason::PortDown);
        }
        self.dirty = true;
        self.run_timers(now);
        Ok(())
    }

    /// The port leaves the switch: every entry of it goes, permanent ones too.
    pub fn remove_port(&mut self, port: PortId) {
        let Some(ps) = self.ports.get(&port) else {
            return;
        };
        let global = ps.enabled
            && (ps.cfg.router == RouterMode::Permanent || ps.temp_router_until.is_some());
        if global {
            self.global_router_events(port, false);
        }
        self.drop_learned_routers(port);
        self.remove_port_entries(port, true, RemoveReason::PortDown);
        self.ports.remove(&port);
        for v in self.vlans.values_mut() {
            for f in &mut v.fam {
                if f.querier.is_some_and(|q| q.port == Some(port)) {
                    // The querier stays present until its timer runs out, as in Linux; only
                    // the port reference goes.
                    if let Some(q) = &mut f.querier {
                        q.port = None;
                    }
                }
            }
        }
        self.dirty = true;
    }

    fn remove_port_entries(&mut self, port: PortId, permanent_too: bool, reason: RemoveReason) {
        let keys: Vec<(IpAddr, u16)> = self.groups.keys().copied().collect();
        for key in keys {
            let entry = self.groups.get_mut(&key).expect("key listed above");
            let mut removed = Vec::new();
            entry.ports.retain(|pg| {
                let go = pg.port == port && (permanent_too || !pg.permanent);
                if go {
                    removed.push(None);
                }
                !go
            });
            entry.static_sg.retain(|s| {
                let go = s.port == port && (permanent_too || s.expires.is_some());
                if go {
                    removed.push(Some(s.source));
                }
                !go
            });
            entry.recompute();
            if entry.is_empty() {
                self.groups.remove(&key);
            }
            for source in removed {
                self.group_gone(key, port, source, reason);
            }
        }
    }

    fn group_gone(
        &mut self,
        key: (IpAddr, u16),
        port: PortId,
        source: Option<IpAddr>,
        reason: RemoveReason,
    ) {
        if let Some(ps) = self.ports.get_mut(&port) {
            ps.ngroups = ps.ngroups.saturating_sub(1);
        }
        self.dirty = true;
        self.push_event(Event::GroupRemoved {
            vid: key.1,
            group: key.0,
            source,
            port,
            reason,
        });
    }

    fn remove_pg(&mut self, key: (IpAddr, u16), port: PortId, reason: RemoveReason) {
        let Some(entry) = self.groups.get_mut(&key) else {
            return;
        };
        let before = entry.ports.len();
        entry.ports.retain(|p| p.port != port);
        if entry.ports.len() == before {
            return;
        }
        entry.recompute();
        if entry.is_empty() {
            self.groups.remove(&key);
        }
        self.group_gone(key, port, None, reason);
    }

    // ----- VLANs -----

    /// Registers a VLAN: the own querier (if on) queries in it. With VLAN filtering off, add
    /// VLAN 0.
    pub fn add_vlan(&mut self, vid: u16, now: Timestamp) {
        self.run_timers(now);
        let qri = self.cfg.query_response_interval_ms;
        let querier = self.cfg.querier;
        let v = self.ctx_mut(vid, now);
        if v.registered {
            return;
        }
        v.registered = true;
        if querier {
            for f in &mut v.fam {
                if f.other_until.is_none() {
                    f.delay_until = Some(Timestamp(now.0 + qri));
                }
            }
        }
        for family in Family::ALL {
            self.start_querier(vid, family, now);
        }
        self.dirty = true;
        self.run_timers(now);
    }

    /// Forgets a VLAN: its querier state, router ports and MDB entries.
    pub fn remove_vlan(&mut self, vid: u16) {
        self.vlans.remove(&vid);
        let keys: Vec<_> = self
            .routers
            .keys()
            .filter(|k| k.1 == vid)
            .copied()
            .collect();
        for k in keys {
            self.routers.remove(&k);
            self.push_event(Event::RouterRemoved {
                port: k.0,
                vid: Some(vid),
                family: k.2,
            });
        }
        let keys: Vec<_> = self.groups.keys().filter(|k| k.1 == vid).copied().collect();
        for key in keys {
            if let Some(entry) = self.groups.remove(&key) {
                for pg in entry.ports {
                    self.group_gone(key, pg.port, None, RemoveReason::VlanRemoved);
                }
                for s in entry.static_sg {
                    self.group_gone(key, s.port, Some(s.source), RemoveReason::VlanRemoved);
                }
            }
        }
        self.dirty = true;
    }

    /// The source addresses of the switch's queries in `vid` (Linux: the bridge's address
    /// with `mcast_query_use_ifaddr`, else 0.0.0.0; for MLD its link-local address).
    pub fn set_query_source(
        &mut self,
        vid: u16,
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
        now: Timestamp,
    ) {
        let v = self.ctx_mut(vid, now);
        v.src_v4 = v4;
        v.src_v6 = v6;
    }

    // ----- configuration -----

    /// Changes the switch-wide settings (Linux `br_multicast_toggle`, `_set_querier`, ...).
    pub fn set_config(&mut self, cfg: McastConfig, now: Timestamp) -> Result<(), ConfigError> {
        let cfg = cfg.validated()?;
        self.run_timers(now);
        let old = std::mem::replace(&mut self.cfg, cfg);
        let querier_was = old.snooping && old.querier;
        let querier_is = self.cfg.snooping && self.cfg.querier;
        let vids: Vec<u16> = self.vlans.keys().copied().collect();
        if querier_is && !querier_was {
            let qri = self.cfg.query_response_interval_ms;
            for &vid in &vids {
                for family in Family::ALL {
                    if let Some(v) = self.vlans.get_mut(&vid) {
                        let f = &mut v.fam[family.index()];
                        if f.other_until.is_none() {
                            f.delay_until = Some(Timestamp(now.0 + qri));
                        }
                    }
                    self.start_querier(vid, family, now);
                }
            }
        } else if querier_was && !querier_is {
            for &vid in &vids {
                for family in Family::ALL {
                    if let Some(v) = self.vlans.get_mut(&vid) {
                        v.fam[family.index()].own_next = None;
                    }
                    if self
                        .fam(vid, family)
                        .and_then(|f| f.querier)
                        .is_some_and(|q| q.port.is_none())
                    {
                        self.set_querier(vid, family, None);
                    }
                }
            }
        }
        self.dirty = true;
        self.run_timers(now);
        Ok(())
    }

    // ----- input -----

    /// Parses an Ethernet frame received on `port` in `vid` and applies it. A frame the
    /// parser refuses is counted as a parse error and returned as [`McastError::Parse`].
    pub fn handle_bytes(
        &mut self,
        port: PortId,
        vid: u16,
        frame: &[u8],
        now: Timestamp,
    ) -> Result<(), McastError> {
        match crate::wire::inspect_frame(frame) {
            Ok(f) => self.handle_frame(port, vid, &f, now),
            Err(e) => {
                let eth = crate::wire::EthernetFrame::new_checked(frame).ok();
                let family = match eth.map(|e| e.inner_ethertype()) {
                    Some(EtherType::Ipv6) => Family::V6,
                    _ => Family::V4,
                };
                if self.cfg.snooping {
                    self.note_parse_error(port, family);
                }
                Err(McastError::Parse(e))
            }
        }
    }

    /// Applies a frame [`crate::wire::inspect`] classified, received on `port` in `vid`
    /// (Linux `br_multicast_rcv`). Data frames only matter as PIM hellos / MRD
    /// advertisements.
    pub fn handle_frame(
        &mut self,
        port: PortId,
        vid: u16,
        frame: &McastFrame<'_>,
        now: Timestamp,
    ) -> Result<(), McastError> {
        if vid > 4094 {
            return Err(McastError::BadVid(vid));
        }
        let ps = self.ports.get(&port).ok_or(McastError::UnknownPort(port))?;
        if !self.cfg.snooping || !ps.enabled {
            return Ok(());
        }
        self.run_timers(now);
        let r = match frame {
            McastFrame::NotIp => Ok(()),
            McastFrame::Data {
                router_advert: true,
                src,
                ..
            } => {
                self.mark_router(port, vid, Family::of(src), now);
                Ok(())
            }
            McastFrame::Data { .. } => Ok(()),
            McastFrame::Igmp { src, msg, .. } => self.handle_igmp(port, vid, *src, msg, now),
            McastFrame::Mld { src, msg, .. } => self.handle_mld(port, vid, *src, msg, now),
        };
        self.run_timers(now);
        r
    }

    fn count_rx(&mut self, port: PortId, f: impl Fn(&mut McastCounts)) {
        f(&mut self.stats.rx);
        if let Some(ps) = self.ports.get_mut(&port) {
            f(&mut ps.stats.rx);
        }
    }

    fn handle_igmp(
        &mut self,
        port: PortId,
        vid: u16,
        src: Ipv4Addr,
        msg: &IgmpMessage<'_>,
        now: Timestamp,
    ) -> Result<(), McastError> {
        match msg {
            IgmpMessage::QueryV12 {
                max_resp_code,
                group,
            } => {
                if *max_resp_code == 0 {
                    self.count_rx(port, |c| c.igmp_v1queries += 1);
                    self.query_received(port, vid, Family::V4, src.into(), None, 10_000, now);
                } else {
                    self.count_rx(port, |c| c.igmp_v2queries += 1);
                    let g = (!group.is_unspecified()).then_some(IpAddr::V4(*group));
                    let md = u64::from(*max_resp_code) * 100;
                    self.query_received(port, vid, Family::V4, src.into(), g, md, now);
                }
                Ok(())
            }
            IgmpMessage::QueryV3(q) => {
                self.count_rx(port, |c| c.igmp_v3queries += 1);
                let group = q.group();
                if q.num_sources() != 0
                    || (self.cfg.igmp_version == 3 && !group.is_unspecified() && q.s_flag())
                {
                    return Ok(());
                }
                let md = if q.max_resp_code() == 0 {
                    1
                } else {
                    q.max_resp_ms()
                };
                let g = (!group.is_unspecified()).then_some(IpAddr::V4(group));
                self.query_received(port, vid, Family::V4, src.into(), g, md, now);
                Ok(())
            }
            IgmpMessage::ReportV1 { group } => {
                self.count_rx(port, |c| c.igmp_v1reports += 1);
                self.add_group_v2(port, vid, IpAddr::V4(*group), now)
            }
            IgmpMessage::ReportV2 { group } => {
                self.count_rx(port, |c| c.igmp_v2reports += 1);
                self.add_group_v2(port, vid, IpAddr::V4(*group), now)
            }
            IgmpMessage::Leave { group } => {
                self.count_rx(port, |c| c.igmp_leaves += 1);
                self.leave_group(port, vid, IpAddr::V4(*group), now);
                Ok(())
            }
            IgmpMessage::ReportV3(r) => {
                self.count_rx(port, |c| c.igmp_v3reports += 1);
                for rec in r.records() {
                    let srcs: Vec<IpAddr> = rec.sources().map(IpAddr::V4).collect();
                    let group = IpAddr::V4(rec.group());
                    self.record(port, vid, rec.record_type(), group, &srcs, now)?;
                }
                Ok(())
            }
            IgmpMessage::Other { .. } => Ok(()),
        }
    }

    fn handle_mld(
        &mut self,
        port: PortId,
        vid: u16,
        src: Ipv6Addr,
        msg: &MldMessage<'_>,
        now: Timestamp,
    ) -> Result<(), McastError> {
        match msg {
            MldMessage::QueryV1 {
                max_delay_ms,
                group,
            } => {
                self.count_rx(port, |c| c.mld_v1queries += 1);
                // Linux ignores an MLDv1 query with a zero delay.
                if *max_delay_ms != 0 {
                    let g = (!group.is_unspecified()).then_some(IpAddr::V6(*group));
                    let md = u64::from(*max_delay_ms);
                    self.query_received(port, vid, Family::V6, src.into(), g, md, now);
                }
                Ok(())
            }
            MldMessage::QueryV2(q) => {
                self.count_rx(port, |c| c.mld_v2queries += 1);
                let group = q.group();
                if q.num_sources() != 0
                    || (self.cfg.mld_version == 2 && !group.is_unspecified() && q.s_flag())
                {
                    return Ok(());
                }
                let md = q.max_resp_ms().max(1);
                let g = (!group.is_unspecified()).then_some(IpAddr::V6(group));
                self.query_received(port, vid, Family::V6, src.into(), g, md, now);
                Ok(())
            }
            MldMessage::ReportV1 { group } => {
                self.count_rx(port, |c| c.mld_v1reports += 1);
                self.add_group_v2(port, vid, IpAddr::V6(*group), now)
            }
            MldMessage::Done { group } => {
                self.count_rx(port, |c| c.mld_leaves += 1);
                self.leave_group(port, vid, IpAddr::V6(*group), now);
                Ok(())
            }
            MldMessage::ReportV2(r) => {
                self.count_rx(port, |c| c.mld_v2reports += 1);
                for rec in r.records() {
                    let srcs: Vec<IpAddr> = rec.sources().map(IpAddr::V6).collect();
                    let group = IpAddr::V6(rec.group());
                    self.record(port, vid, rec.record_type(), group, &srcs, now)?;
                }
                Ok(())
            }
            MldMessage::Other { .. } => Ok(()),
        }
    }

    /// A query from another router (Linux `br_ip4_multicast_query` / `br_ip6_...`).
    #[expect(
        clippy::too_many_arguments,
        reason = "the fields of one query, kept flat"
    )]
    fn query_received(
        &mut self,
        port: PortId,
        vid: u16,
        family: Family,
        saddr: IpAddr,
        group: Option<IpAddr>,
        max_delay_ms: u64,
        now: Timestamp,
    ) {
        let Some(group) = group else {
            self.ctx_mut(vid, now);
            if !self.select_querier(vid, family, saddr, port) {
                return;
            }
            let qi = self.cfg.querier_interval_ms;
            let f = &mut self.ctx_mut(vid, now).fam[family.index()];
            if f.other_until.is_none() {
                f.delay_until = Some(Timestamp(now.0 + max_delay_ms));
            }
            f.other_until = Some(Timestamp(now.0 + qi));
            self.dirty = true;
            self.mark_router(port, vid, family, now);
            return;
        };
        let v2mode = !self.cfg.handles_sources(family);
        let t = Timestamp(now.0 + max_delay_ms * u64::from(self.cfg.last_member_count));
        if let Some(entry) = self.groups.get_mut(&(group, vid)) {
            for pg in entry.ports.iter_mut().filter(|p| !p.permanent) {
                match pg.timer {
                    Some(x) if x > t => pg.timer = Some(t),
                    Some(_) => {}
                    None if v2mode || pg.mode == FilterMode::Exclude => pg.timer = Some(t),
                    None => {}
                }
            }
            entry.recompute();
        }
    }

    /// Creates the (group, VID) entry and the port group if missing, within the limits.
    fn ensure_pg(
        &mut self,
        port: PortId,
        key: (IpAddr, u16),
        mode: FilterMode,
        is_static: bool,
        permanent: bool,
    ) -> Result<bool, McastError> {
        if let Some(e) = self.groups.get(&key) {
            if e.pg(port).is_some() {
                return Ok(false);
            }
        } else if self.groups.len() >= self.cfg.hash_max {
            self.refuse(port, key, "mdb_full");
            return Err(McastError::MdbFull(self.cfg.hash_max));
        }
        self.charge_group(port, key)?;
        let entry = self.groups.entry(key).or_default();
        let at = entry.ports.partition_point(|p| p.port < port);
        entry
            .ports
            .insert(at, PortGroup::new(port, mode, is_static, permanent));
        self.dirty = true;
        self.push_event(Event::GroupAdded {
            vid: key.1,
            group: key.0,
            source: None,
            port,
            is_static,
        });
        Ok(true)
    }

    /// Counts one more group of `port`, or refuses it (`mcast_max_groups`).
    fn charge_group(&mut self, port: PortId, key: (IpAddr, u16)) -> Result<(), McastError> {
        let ps = self
            .ports
            .get_mut(&port)
            .ok_or(McastError::UnknownPort(port))?;
        let max = ps.cfg.max_groups;
        if max != 0 && ps.ngroups >= max {
            self.refuse(port, key, "port_max_groups");
            return Err(McastError::PortMaxGroups { port, max });
        }
        ps.ngroups += 1;
        Ok(())
    }

    fn refuse(&mut self, port: PortId, key: (IpAddr, u16), reason: &'static str) {
        let bump = |s: &mut McastStats| match reason {
            "mdb_full" => s.mdb_full += 1,
            _ => s.port_max_groups += 1,
        };
        bump(&mut self.stats);
        if let Some(ps) = self.ports.get_mut(&port) {
            bump(&mut ps.stats);
        }
        self.push_event(Event::GroupRefused {
            vid: key.1,
            group: key.0,
            port,
            reason,
        });
    }

    /// An IGMPv1/v2 or MLDv1 report, or an IGMPv3/MLDv2 record in IGMPv2/MLDv1 mode (Linux
    /// `br_ip4_multicast_add_group` with `igmpv2`): exclude mode, group timer GMI.
    fn add_group_v2(
        &mut self,
        port: PortId,
        vid: u16,
        group: IpAddr,
        now: Timestamp,
    ) -> Result<(), McastError> {
        if is_unsnooped_group(&group) || !group.is_multicast() {
            return Ok(());
        }
        let key = (group, vid);
        self.ensure_pg(port, key, FilterMode::Exclude, false, false)?;
        let gmi = self.cfg.membership_interval_ms;
        if let Some(pg) = self.groups.get_mut(&key).and_then(|e| e.pg_mut(port)) {
            if !pg.permanent {
                pg.timer = Some(Timestamp(now.0 + gmi));
            }
        }
        self.touch(key);
        Ok(())
    }

    /// An IGMPv2 leave / MLDv1 done, or TO_IN({}) in IGMPv2/MLDv1 mode (Linux
    /// `br_multicast_leave_group`).
    fn leave_group(&mut self, port: PortId, vid: u16, group: IpAddr, now: Timestamp) {
        if is_unsnooped_group(&group) {
            return;
        }
        let key = (group, vid);
        let family = Family::of(&group);
        let Some(entry) = self.groups.get(&key) else {
            return;
        };
        let has_pg = entry.pg(port).is_some_and(|p| !p.permanent);
        let fast = self.ports.get(&port).is_some_and(|p| p.cfg.fast_leave);
        if fast {
            if has_pg {
                self.remove_pg(key, port, RemoveReason::Left);
            }
            return;
        }
        if self.other_present(vid, family) {
            return;
        }
        let querier = self.is_querier(vid, family);
        let (lmqt, lmi, lmc) = (
            self.cfg.lmqt_ms(),
            self.cfg.last_member_interval_ms,
            self.cfg.last_member_count,
        );
        if let Some(pg) = self.groups.get_mut(&key).and_then(|e| e.pg_mut(port)) {
            if !pg.permanent {
                if querier {
                    pg.grp_rexmit = lmc.saturating_sub(1);
                    let at = Timestamp(now.0 + lmi);
                    pg.rexmit_at = Some(pg.rexmit_at.map_or(at, |r| r.min(at)));
                }
                let t = Timestamp(now.0 + lmqt);
                if pg.timer.is_none_or(|x| x > t) {
                    pg.timer = Some(t);
                }
            }
        }
        self.touch(key);
        if querier {
            let spec = self.query_spec(vid, Some(port), family, Some(group), Vec::new(), false);
            self.send_query(spec);
        }
    }

    /// Refreshes the cached earliest timer of an entry after a change.
    fn touch(&mut self, key: (IpAddr, u16)) {
        if let Some(e) = self.groups.get_mut(&key) {
            e.recompute();
        }
    }

    fn rec_ctx(&self, port: PortId, vid: u16, family: Family, now: Timestamp) -> RecCtx {
        RecCtx {
            now,
            gmi: self.cfg.gmi_ms(),
            lmqt: self.cfg.lmqt_ms(),
            lmi: self.cfg.last_member_interval_ms,
            lmc: self.cfg.last_member_count,
            querier: self.is_querier(vid, family),
            fast: self.ports.get(&port).is_some_and(|p| p.cfg.fast_leave),
        }
    }

    /// One IGMPv3 group record / MLDv2 address record (Linux `br_ip4_multicast_igmp3_report`
    /// for one record).
    fn record(
        &mut self,
        port: PortId,
        vid: u16,
        rtype: RecordType,
        group: IpAddr,
        srcs: &[IpAddr],
        now: Timestamp,
    ) -> Result<(), McastError> {
        use RecordType::*;
        if matches!(rtype, Unknown(_)) {
            return Ok(());
        }
        let family = Family::of(&group);
        let empty_in = srcs.is_empty() && matches!(rtype, ChangeToInclude | ModeIsInclude);
        if !self.cfg.handles_sources(family) {
            if empty_in {
                self.leave_group(port, vid, group, now);
                return Ok(());
            }
            return self.add_group_v2(port, vid, group, now);
        }
        if is_unsnooped_group(&group) || !group.is_multicast() {
            return Ok(());
        }
        let key = (group, vid);
        let created = !empty_in && self.ensure_pg(port, key, FilterMode::Include, false, false)?;
        let c = self.rec_ctx(port, vid, family, now);
        let mut limited = 0u64;
        let mut queries = Vec::new();
        let Some(pg) = self.groups.get_mut(&key).and_then(|e| e.pg_mut(port)) else {
            return Ok(());
        };
        if pg.permanent {
            return Ok(());
        }
        let before = pg.signature();
        match rtype {
            ModeIsInclude | AllowNewSources => isinc_allow(pg, &group, srcs, &c, &mut limited),
            ModeIsExclude => isexc(pg, &group, srcs, &c, &mut limited),
            ChangeToInclude => toin(pg, &group, srcs, &c, &mut limited, &mut queries),
            ChangeToExclude => toex(pg, &group, srcs, &c, &mut limited, &mut queries),
            BlockOldSources => block(pg, &group, srcs, &c, &mut limited, &mut queries),
            Unknown(_) => {}
        }
        let after = pg.signature();
        let mode = pg.mode;
        let empty = pg.is_empty_include();
        self.touch(key);
        if limited > 0 {
            self.stats.source_limit += limited;
            if let Some(ps) = self.ports.get_mut(&port) {
                ps.stats.source_limit += limited;
            }
        }
        if empty {
            self.remove_pg(key, port, RemoveReason::Left);
        } else if before != after {
            self.dirty = true;
            if created {
                return self.emit_queries(vid, port, family, group, queries);
            }
            self.push_event(Event::GroupChanged {
                vid,
                group,
                port,
                filter_mode: mode,
            });
        }
        self.emit_queries(vid, port, family, group, queries)
    }

    fn emit_queries(
        &mut self,
        vid: u16,
        port: PortId,
        family: Family,
        group: IpAddr,
        queries: Vec<PgQuery>,
    ) -> Result<(), McastError> {
        for q in queries {
            let spec = self.query_spec(vid, Some(port), family, Some(group), q.sources, q.s_flag);
            self.send_query(spec);
        }
        Ok(())
    }

    // ----- static entries -----

    /// `bridge mdb add dev BR port P grp G [src S] [permanent|temp] [vid V]`.
    pub fn mdb_add(&mut self, e: &StaticEntry, now: Timestamp) -> Result<(), McastError> {
        self.run_timers(now);
        if !self.ports.contains_key(&e.port) {
            return Err(McastError::UnknownPort(e.port));
        }
        if e.vid > 4094 {
            return Err(McastError::BadVid(e.vid));
        }
        if !e.group.is_multicast() {
            return Err(McastError::NotMulticast(e.group));
        }
        if is_unsnooped_group(&e.group) {
            return Err(McastError::UnsnoopedGroup(e.group));
        }
        let key = (e.group, e.vid);
        let expires = (!e.permanent).then(|| Timestamp(now.0 + self.cfg.membership_interval_ms));
        match e.source {
            None => {
                if !self.ensure_pg(e.port, key, FilterMode::Exclude, true, e.permanent)? {
                    return Err(McastError::Exists);
                }
                if let Some(pg) = self.groups.get_mut(&key).and_then(|g| g.pg_mut(e.port)) {
                    pg.timer = expires;
                }
                self.touch(key);
            }
            Some(s) => {
                if !valid_source(&e.group, &s) {
                    return Err(McastError::BadSource(s));
                }
                if let Some(entry) = self.groups.get(&key) {
                    if entry
                        .static_sg
                        .iter()
                        .any(|x| x.port == e.port && x.source == s)
                    {
                        return Err(McastError::Exists);
                    }
                } else if self.groups.len() >= self.cfg.hash_max {
                    self.refuse(e.port, key, "mdb_full");
                    return Err(McastError::MdbFull(self.cfg.hash_max));
                }
                self.charge_group(e.port, key)?;
                self.groups
                    .entry(key)
                    .or_default()
                    .static_sg
                    .push(StaticSg {
                        port: e.port,
                        source: s,
                        expires,
                    });
                self.touch(key);
                self.dirty = true;
                self.push_event(Event::GroupAdded {
                    vid: e.vid,
                    group: e.group,
                    source: Some(s),
                    port: e.port,
                    is_static: true,
                });
            }
        }
        self.run_timers(now);
        Ok(())
    }

    /// `bridge mdb del dev BR port P grp G [src S] [vid V]`: removes a static or learned
    /// entry; with `src`, a static (S,G) entry or a learned source of the port group.
    pub fn mdb_del(
        &mut self,
        port: PortId,
        vid: u16,
        group: IpAddr,
        source: Option<IpAddr>,
    ) -> Result<(), McastError> {
        let key = (group, vid);
        let entry = self.groups.get_mut(&key).ok_or(McastError::NotFound)?;
        match source {
            None => {
                if entry.pg(port).is_none() {
                    return Err(McastError::NotFound);
                }
                self.remove_pg(key, port, RemoveReason::Deleted);
            }
            Some(s) => {
                if let Some(i) = entry
                    .static_sg
                    .iter()
                    .position(|x| x.port == port && x.source == s)
                {
                    entry.static_sg.remove(i);
                    entry.recompute();
                    if entry.is_empty() {
                        self.groups.remove(&key);
                    }
                    self.group_gone(key, port, Some(s), RemoveReason::Deleted);
                } else {
                    let pg = entry.pg_mut(port).ok_or(McastError::NotFound)?;
                    let i = pg.find(&s).ok_or(McastError::NotFound)?;
                    pg.sources.remove(i);
                    let mode = pg.mode;
                    let empty = pg.is_empty_include();
                    entry.recompute();
                    if empty {
                        self.remove_pg(key, port, RemoveReason::Deleted);
                    } else {
                        self.push_event(Event::GroupChanged {
                            vid,
                            group,
                            port,
                            filter_mode: mode,
                        });
                    }
                    self.dirty = true;
                }
            }
        }
        Ok(())
    }

    // ----- time -----

    /// When [`McastState::tick`] has something to do next.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let mut d = None;
        for v in self.vlans.values() {
            for f in &v.fam {
                d = min_opt(d, f.other_until);
                d = min_opt(d, f.delay_until);
                d = min_opt(d, f.own_next);
            }
        }
        for ps in self.ports.values() {
            d = min_opt(d, ps.temp_router_until);
            for s in ps.startup.iter().flatten() {
                d = min_opt(d, Some(s.0));
            }
        }
        for t in self.routers.values() {
            d = min_opt(d, Some(*t));
        }
        for e in self.groups.values() {
            d = min_opt(d, e.next);
        }
        d
    }

    /// Runs every timer due at or before `now`, in time order.
    pub fn tick(&mut self, now: Timestamp) {
        self.run_timers(now);
    }

    fn run_timers(&mut self, now: Timestamp) {
        // Each pass handles every timer due at the earliest deadline; a pass can only
        // schedule later deadlines, so this ends (the bound is a second guard).
        for _ in 0..1_000_000 {
            match self.next_deadline() {
                Some(t) if t <= now => self.expire_at(t),
                _ => return,
            }
        }
    }

    fn expire_at(&mut self, t: Timestamp) {
        let due = |x: Option<Timestamp>| x.is_some_and(|x| x <= t);
        // Querier contexts.
        let vids: Vec<u16> = self.vlans.keys().copied().collect();
        for &vid in &vids {
            for family in Family::ALL {
                let Some(v) = self.vlans.get_mut(&vid) else {
                    continue;
                };
                let f = &mut v.fam[family.index()];
                if due(f.delay_until) {
                    f.delay_until = None;
                    self.dirty = true;
                }
                if due(f.other_until) {
                    f.other_until = None;
                    self.dirty = true;
                    self.set_querier(vid, family, None);
                    self.start_querier(vid, family, t);
                }
                if self.fam(vid, family).is_some_and(|f| due(f.own_next)) {
                    self.fire_own_query(vid, family, t);
                }
            }
        }
        // Ports: temporary router mode, start-up queries.
        let ports: Vec<PortId> = self.ports.keys().copied().collect();
        for port in ports {
            let Some(ps) = self.ports.get_mut(&port) else {
                continue;
            };
            if due(ps.temp_router_until) {
                ps.temp_router_until = None;
                ps.cfg.router = RouterMode::TempQuery;
                let enabled = ps.enabled;
                if enabled {
                    self.global_router_events(port, false);
                }
            }
            for family in Family::ALL {
                let Some(ps) = self.ports.get_mut(&port) else {
                    continue;
                };
                let Some((next, sent)) = ps.startup[family.index()] else {
                    continue;
                };
                if next > t {
                    continue;
                }
                let sent = sent + 1;
                ps.startup[family.index()] = (sent < self.cfg.startup_query_count.max(1))
                    .then(|| Timestamp(t.0 + self.cfg.startup_query_interval_ms))
                    .map(|n| (n, sent));
                let vids: Vec<u16> = self
                    .vlans
                    .iter()
                    .filter(|(_, v)| v.registered)
                    .map(|(k, _)| *k)
                    .collect();
                for vid in vids {
                    // While the VLAN's own start-up queries run, or when one just went out,
                    // they reach this port too.
                    let in_startup = self.fam(vid, family).is_some_and(|f| {
                        (f.own_next.is_some() && f.own_sent < self.cfg.startup_query_count)
                            || f.own_last == Some(t)
                    });
                    if self.is_querier(vid, family) && !in_startup {
                        let spec =
                            self.query_spec(vid, Some(port), family, None, Vec::new(), false);
                        self.send_query(spec);
                    }
                }
            }
        }
        // Learned router ports.
        let gone: Vec<_> = self
            .routers
            .iter()
            .filter(|(_, e)| **e <= t)
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            self.routers.remove(&k);
            self.dirty = true;
            self.push_event(Event::RouterRemoved {
                port: k.0,
                vid: Some(k.1),
                family: k.2,
            });
        }
        // Port groups, sources, static (S,G) entries, retransmissions.
        let mut removals = Vec::new();
        let mut changes = Vec::new();
        let mut queries = Vec::new();
        let keys: Vec<(IpAddr, u16)> = self
            .groups
            .iter()
            .filter(|(_, e)| due(e.next))
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            let family = Family::of(&key.0);
            let querier = self.is_querier(key.1, family);
            let c = self.rec_ctx(PortId(u32::MAX), key.1, family, t);
            let entry = self.groups.get_mut(&key).expect("key listed above");
            for pg in &mut entry.ports {
                if due(pg.rexmit_at) {
                    let mut q = Vec::new();
                    rexmit(pg, t, querier, &c, &mut q);
                    queries.extend(q.into_iter().map(|q| (key, pg.port, q)));
                }
                let timers_due = due(pg.timer) || pg.sources.iter().any(|s| due(s.timer));
                if timers_due {
                    let before = pg.signature();
                    expire(pg, t);
                    if pg.is_empty_include() {
                        removals.push((key, pg.port, None));
                    } else if before != pg.signature() {
                        changes.push((key, pg.port, pg.mode));
                    }
                }
            }
            for s in &entry.static_sg {
                if due(s.expires) {
                    removals.push((key, s.port, Some(s.source)));
                }
            }
            entry.static_sg.retain(|s| !due(s.expires));
            entry.recompute();
        }
        for (key, port, source) in removals {
            match source {
                None => self.remove_pg(key, port, RemoveReason::Expired),
                Some(s) => {
                    if self.groups.get(&key).is_some_and(|e| e.is_empty()) {
                        self.groups.remove(&key);
                    }
                    self.group_gone(key, port, Some(s), RemoveReason::Expired);
                }
            }
        }
        for (key, port, mode) in changes {
            self.dirty = true;
            self.push_event(Event::GroupChanged {
                vid: key.1,
                group: key.0,
                port,
                filter_mode: mode,
            });
        }
        for ((group, vid), port, q) in queries {
            let spec = self.query_spec(
                vid,
                Some(port),
                Family::of(&group),
                Some(group),
                q.sources,
                q.s_flag,
            );
            self.send_query(spec);
        }
    }

    // ----- forwarding view -----

    /// Builds the forwarding view of the current state and clears [`McastState::is_dirty`].
    /// Allocates; run it on the control thread and publish the result. Timers are applied by
    /// the calls that take `now` and by [`McastState::tick`]; call `tick(now)` first when
    /// time passed since the last of them.
    pub fn view(&mut self) -> ForwardingView {
        self.dirty = false;
        let mut v = ForwardingView {
            snooping: self.cfg.snooping,
            ..ForwardingView::default()
        };
        for &vid in self.vlans.keys() {
            for family in Family::ALL {
                if self.querier_exists(vid, family) {
                    let i = usize::from(vid & 0x0fff);
                    v.querier[family.index()][i / 64] |= 1 << (i % 64);
                }
            }
        }
        // Router ports of every VLAN (mcast_router 2, 3) and learned ones per VLAN.
        let global: Vec<PortId> = self
            .ports
            .iter()
            .filter(|(_, p)| {
                p.enabled
                    && (p.cfg.router == RouterMode::Permanent || p.temp_router_until.is_some())
            })
            .map(|(k, _)| *k)
            .collect();
        for family in Family::ALL {
            v.global_routers[family.index()] = global.clone().into_boxed_slice();
        }
        let mut learned: BTreeMap<(u16, Family), Vec<PortId>> = BTreeMap::new();
        for &(port, vid, family) in self.routers.keys() {
            if self.ports.get(&port).is_some_and(|p| p.enabled) {
                learned.entry((vid, family)).or_default().push(port);
            }
        }
        for (k, mut ports) in learned {
            ports.extend_from_slice(&global);
            ports.sort();
            ports.dedup();
            v.routers.insert(k, ports.into_boxed_slice());
        }
        for (&(group, vid), entry) in &self.groups {
            let handles = self.cfg.handles_sources(Family::of(&group));
            let mut ports: Vec<FwdPort> = Vec::new();
            let mut sources: Vec<IpAddr> = Vec::new();
            let mut push =
                |port: PortId, filter: Filter, list: &mut dyn Iterator<Item = IpAddr>| {
                    let start = sources.len() as u32;
                    sources.extend(list);
                    ports.push(FwdPort {
                        port,
                        filter,
                        start,
                        len: sources.len() as u32 - start,
                    });
                };
            let statics = |port: PortId| {
                entry
                    .static_sg
                    .iter()
                    .filter(move |s| s.port == port)
                    .map(|s| s.source)
            };
            let mut seen: Vec<PortId> = Vec::new();
            for pg in &entry.ports {
                seen.push(pg.port);
                if !handles {
                    push(pg.port, Filter::All, &mut std::iter::empty());
                    continue;
                }
                match pg.mode {
                    FilterMode::Include => {
                        let mut l = pg
                            .sources
                            .iter()
                            .filter(|s| s.timer.is_some())
                            .map(|s| s.addr)
                            .chain(statics(pg.port));
                        push(pg.port, Filter::Include, &mut l);
                    }
                    FilterMode::Exclude => {
                        let st: Vec<IpAddr> = statics(pg.port).collect();
                        let mut l = pg
                            .sources
                            .iter()
                            .filter(|s| s.timer.is_none() && !st.contains(&s.addr))
                            .map(|s| s.addr);
                        push(pg.port, Filter::Exclude, &mut l);
                    }
                }
            }
            if handles {
                let mut only: Vec<PortId> = entry
                    .static_sg
                    .iter()
                    .map(|s| s.port)
                    .filter(|p| !seen.contains(p))
                    .collect();
                only.sort();
                only.dedup();
                for port in only {
                    push(port, Filter::Include, &mut statics(port));
                }
            }
            if ports.is_empty() {
                continue;
            }
            ports.sort_by_key(|p| p.port);
            v.groups.insert(
                (group, vid),
                FwdGroup {
                    ports: ports.into_boxed_slice(),
                    sources: sources.into_boxed_slice(),
                },
            );
        }
        v
    }

    // ----- introspection -----

    /// `bridge -d -s mdb show`, one row per (*,G) port group, (S,G) source (IGMPv3/MLDv2
    /// mode) and static (S,G) entry.
    pub fn mdb(&self, now: Timestamp) -> Vec<MdbRow> {
        let mut rows = Vec::new();
        for (&(grp, vid), entry) in &self.groups {
            let handles = self.cfg.handles_sources(Family::of(&grp));
            for pg in &entry.ports {
                let state = if pg.permanent { "permanent" } else { "temp" };
                let protocol = if pg.is_static { "static" } else { "kernel" };
                rows.push(MdbRow {
                    port: pg.port,
                    grp,
                    src: None,
                    vid,
                    state,
                    flags: Vec::new(),
                    filter_mode: Some(pg.mode),
                    source_list: pg
                        .sources
                        .iter()
                        .map(|s| MdbSource {
                            address: s.addr,
                            timer_ms: remaining(s.timer, now),
                        })
                        .collect(),
                    protocol,
                    timer_ms: remaining(pg.timer, now),
                });
                if handles {
                    for s in &pg.sources {
                        let blocked = pg.mode == FilterMode::Exclude && s.timer.is_none();
                        rows.push(MdbRow {
                            port: pg.port,
                            grp,
                            src: Some(s.addr),
                            vid,
                            state: "temp",
                            flags: if blocked { vec!["blocked"] } else { Vec::new() },
                            filter_mode: None,
                            source_list: Vec::new(),
                            protocol: "kernel",
                            timer_ms: remaining(s.timer, now),
                        });
                    }
                }
            }
            for s in &entry.static_sg {
                rows.push(MdbRow {
                    port: s.port,
                    grp,
                    src: Some(s.source),
                    vid,
                    state: if s.expires.is_none() {
                        "permanent"
                    } else {
                        "temp"
                    },
                    flags: Vec::new(),
                    filter_mode: None,
                    source_list: Vec::new(),
                    protocol: "static",
                    timer_ms: remaining(s.expires, now),
                });
            }
        }
        rows
    }

    /// The router ports (`bridge -d mdb show` "router ports").
    pub fn router_ports(&self, now: Timestamp) -> Vec<RouterRow> {
        let mut rows: Vec<RouterRow> = self
            .routers
            .iter()
            .map(|(&(port, vid, family), &t)| RouterRow {
                port,
                vid: Some(vid),
                family,
                timer_ms: t.since(now),
            })
            .collect();
        for (&port, ps) in &self.ports {
            if !ps.enabled {
                continue;
            }
            let timer_ms = match (ps.cfg.router, ps.temp_router_until) {
                (RouterMode::Permanent, _) => 0,
                (_, Some(t)) => t.since(now),
                _ => continue,
            };
            for family in Family::ALL {
                rows.push(RouterRow {
                    port,
                    vid: None,
                    family,
                    timer_ms,
                });
            }
        }
        rows
    }

    /// The VLANs the querier state is kept for (those the switch has seen or been told of),
    /// with 0 always first.
    pub fn querier_vlans(&self) -> Vec<u16> {
        let mut v: Vec<u16> = std::iter::once(0)
            .chain(self.vlans.keys().copied())
            .collect();
        v.dedup();
        v
    }

    /// The querier of `vid` for `family`.
    pub fn querier_state(&self, vid: u16, family: Family, now: Timestamp) -> QuerierState {
        let f = self.fam(vid, family);
        QuerierState {
            querier: f.and_then(|f| f.querier),
            other_timer_ms: remaining(f.and_then(|f| f.other_until), now),
            exists: self.querier_exists(vid, family),
        }
    }

    /// Number of groups each port is a member of, per VLAN (the metric "groups per port and
    /// VLAN"): port groups plus static (S,G) entries.
    pub fn groups_per_port_vlan(&self) -> BTreeMap<(PortId, u16), u64> {
        let mut m = BTreeMap::new();
        for (&(_, vid), e) in &self.groups {
            for pg in &e.ports {
                *m.entry((pg.port, vid)).or_insert(0) += 1;
            }
            for s in &e.static_sg {
                *m.entry((s.port, vid)).or_insert(0) += 1;
            }
        }
        m
    }

    /// Number of (group, VID) entries.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
}

/// Test view of a port group: (mode, group timer, sorted [(source, timer)]).
#[cfg(test)]
pub(crate) type PgState = (
    FilterMode,
    Option<Timestamp>,
    Vec<(IpAddr, Option<Timestamp>)>,
);

#[cfg(test)]
impl McastState {
    /// Test access: the (mode, [(source, timer)]) of a port group.
    pub(crate) fn pg_state(&self, port: PortId, vid: u16, group: IpAddr) -> Option<PgState> {
        let pg = self.groups.get(&(group, vid))?.pg(port)?;
        let mut s: Vec<_> = pg.sources.iter().map(|s| (s.addr, s.timer)).collect();
        s.sort();
        Some((pg.mode, pg.timer, s))
    }
}
