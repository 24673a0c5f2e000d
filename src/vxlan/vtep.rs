//! The VTEP of one `vxlan` port: its own table (inner MAC → remote VTEP), its flood list, the
//! receive checks (who may send, what is learned) and the choice of remotes for a frame.
//!
//! As in Linux, the bridge's table keeps saying "MAC → port vx0"; which remote VTEP a frame
//! leaving vx0 goes to is this table's business. A known unicast destination goes to its
//! remote; broadcast, multicast and unknown unicast go to every remote of the flood list (the
//! all-zero-MAC entries, `bridge fdb append 00:00:00:00:00:00 dev vx0 dst IP`): head-end
//! replication.
//!
//! Entry kinds, as `bridge fdb ... self`: `learned` (from traffic; ages; moves to the remote
//! the MAC shows up behind), `dynamic` (user; ages; moves), `static` (user, shown `permanent`;
//! never ages; with learning on, a frame from its MAC behind another remote is dropped, as Linux
//! does), `extern_learn` (a controller's; never aged by the switch; follows its MAC to another
//! remote and stays `extern_learn`, as Linux's VXLAN driver does: the controller owns it). No
//! I/O and no clock: the time is an argument; the sending is done through
//! an [`Underlay`].

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use super::spec::{VxlanSpec, MAX_MTU, MAX_REMOTES};
use super::wire::{self, VxlanError, ENCAP_HLEN, OVERHEAD_V4, OVERHEAD_V6, VXLAN_HLEN};
use crate::fdb::EntryKind;
use crate::offload::{self, Segmenter, VnetHdr, F_NEEDS_CSUM, GSO_NONE};
use crate::types::Timestamp;
use crate::wire::MacAddr;

type Hasher = foldhash::fast::RandomState;

/// Default limit on the learned entries of one VTEP table (`max-learned=N` sets it).
pub const DEFAULT_MAX_LEARNED: usize = 65536;
/// Limit on the user entries (static, dynamic, extern_learn) of one VTEP table.
pub const MAX_USER_ENTRIES: usize = 65536;

/// Why a VXLAN packet was dropped before its inner frame reached the switch. Each variant is a
/// stable metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VxlanDrop {
    /// UDP payload shorter than the VXLAN header (counted per hub: no VNI to go by).
    Short,
    /// A VNI no port of this socket serves (counted per hub).
    UnknownVni,
    /// The I flag is clear.
    NoVniFlag,
    /// Reserved flags or bits set (Linux drops these too).
    ReservedFlags,
    /// The inner frame is shorter than an Ethernet header.
    BadInner,
    /// The sender is not a known remote (flood list, table destination) nor in `accept=`.
    Stranger,
    /// Learning on, and the inner source MAC has a static entry pointing to another remote
    /// (Linux drops these rather than move a static entry).
    StaticMac,
}

impl VxlanDrop {
    /// Every reason, in counter order.
    pub const ALL: [VxlanDrop; 7] = [
        VxlanDrop::Short,
        VxlanDrop::UnknownVni,
        VxlanDrop::NoVniFlag,
        VxlanDrop::ReservedFlags,
        VxlanDrop::BadInner,
        VxlanDrop::Stranger,
        VxlanDrop::StaticMac,
    ];
    /// Reasons counted per port (the others are counted per hub).
    pub const PER_PORT: [VxlanDrop; 5] = [
        VxlanDrop::NoVniFlag,
        VxlanDrop::ReservedFlags,
        VxlanDrop::BadInner,
        VxlanDrop::Stranger,
        VxlanDrop::StaticMac,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            VxlanDrop::Short => "short",
            VxlanDrop::UnknownVni => "unknown_vni",
            VxlanDrop::NoVniFlag => "no_vni_flag",
            VxlanDrop::ReservedFlags => "reserved_flags",
            VxlanDrop::BadInner => "bad_inner",
            VxlanDrop::Stranger => "stranger",
            VxlanDrop::StaticMac => "static_mac",
        }
    }

    /// Index into counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl From<VxlanError> for VxlanDrop {
    fn from(e: VxlanError) -> VxlanDrop {
        match e {
            VxlanError::Short => VxlanDrop::Short,
            VxlanError::NoVniFlag => VxlanDrop::NoVniFlag,
            VxlanError::ReservedFlags => VxlanDrop::ReservedFlags,
            VxlanError::BadInner => VxlanDrop::BadInner,
        }
    }
}

/// Drop counters by [`VxlanDrop::index`].
#[derive(Debug, Default)]
pub struct DropCounters(pub [AtomicU64; VxlanDrop::COUNT]);

impl DropCounters {
    /// Counts one drop.
    pub fn count(&self, r: VxlanDrop) {
        self.0[r.index()].fetch_add(1, Relaxed);
    }
    /// The count of one reason.
    pub fn get(&self, r: VxlanDrop) -> u64 {
        self.0[r.index()].load(Relaxed)
    }
}

/// A remote VTEP and its frame counters.
#[derive(Debug)]
pub struct Remote {
    /// Its underlay address.
    pub ip: IpAddr,
    /// Frames sent to it.
    pub tx_frames: AtomicU64,
    /// Frames received from it (accepted packets).
    pub rx_frames: AtomicU64,
    /// Sends to it that failed.
    pub tx_errors: AtomicU64,
    /// Table entries pointing to it.
    refs: AtomicUsize,
}

impl Remote {
    fn new(ip: IpAddr) -> Arc<Remote> {
        Arc::new(Remote {
            ip,
            tx_frames: AtomicU64::new(0),
            rx_frames: AtomicU64::new(0),
            tx_errors: AtomicU64::new(0),
            refs: AtomicUsize::new(0),
        })
    }
}

/// The remotes at one moment: the flood list and every remote the port knows (flood list and
/// table destinations). Replaced as a whole when it changes (rarely: a remote added, removed
/// or forgotten), read once per packet.
#[derive(Debug, Default)]
pub struct Remotes {
    /// The flood list, in the order remotes were added.
    pub flood: Vec<Arc<Remote>>,
    /// The addresses of the flood list, in its order (one send call reaches them all).
    flood_ips: Vec<IpAddr>,
    known: HashMap<IpAddr, Arc<Remote>, Hasher>,
}

impl Remotes {
    /// The remote at `ip`, if known.
    pub fn get(&self, ip: &IpAddr) -> Option<&Arc<Remote>> {
        self.known.get(ip)
    }
    /// How many remotes the port knows (flood list and table destinations).
    pub fn len(&self) -> usize {
        self.known.len()
    }
    /// Whether the port knows no remote.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

struct Entry {
    remote: Arc<Remote>,
    kind: EntryKind,
    updated: AtomicU64,
}

impl Entry {
    fn new(remote: Arc<Remote>, kind: EntryKind, now: Timestamp) -> Entry {
        remote.refs.fetch_add(1, Relaxed);
        Entry {
            remote,
            kind,
            updated: AtomicU64::new(now.0),
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.remote.refs.fetch_sub(1, Relaxed);
    }
}

/// Table counters of one VTEP.
#[derive(Debug, Default)]
pub struct VtepStats {
    /// Packets dropped by reason (per-port reasons only).
    pub rx_dropped: DropCounters,
    /// New entries learned from traffic.
    pub learned_total: AtomicU64,
    /// Entries that moved to another remote.
    pub moved_total: AtomicU64,
    /// Entries removed by ageing.
    pub aged_total: AtomicU64,
    /// Sources not learned: the learned limit or [`MAX_REMOTES`] was reached.
    pub learn_limit_hits_total: AtomicU64,
    /// UDP GSO sends (one call, one remote or several, of more than one datagram).
    pub gso_sends_total: AtomicU64,
    /// Datagrams those sends carried.
    pub gso_datagrams_total: AtomicU64,
}

/// One entry as the API shows it (`bridge fdb show ... self`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VtepRecord {
    /// Inner MAC (00:00:00:00:00:00 for a flood-list entry).
    pub mac: MacAddr,
    /// The remote VTEP.
    pub dst: IpAddr,
    /// How it got there (flood-list entries are `static`).
    pub kind: EntryKind,
    /// Milliseconds since its source last refreshed it (0 for flood-list entries).
    pub updated_ms_ago: u64,
}

/// Why a user change to a VTEP table failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VtepError {
    /// The entry exists (`add` without replace, or a remote already in the flood list).
    #[error("entry {mac} dst {dst} already exists")]
    Exists {
        /// MAC.
        mac: MacAddr,
        /// Remote.
        dst: IpAddr,
    },
    /// Only unicast MACs, or the all-zero MAC for the flood list.
    #[error("'{0}' is neither a unicast MAC nor 00:00:00:00:00:00 (the flood list)")]
    NotUnicast(MacAddr),
    /// `dst` is of the other address family than the port's local address, or not unicast.
    #[error("dst {0} is not a unicast address of the port's underlay family")]
    BadDst(IpAddr),
    /// `sticky` is a bridge-table kind.
    #[error("a VTEP entry is static, dynamic or extern_learn (sticky is for bridge entries)")]
    Kind,
    /// `append` of a unicast MAC.
    #[error(
        "append adds to the flood list: use 00:00:00:00:00:00 (and add/replace for a unicast MAC)"
    )]
    AppendUnicast,
    /// Too many user entries or remotes.
    #[error("the VTEP table is full ({0})")]
    Full(&'static str),
}

/// Sends encapsulated packets: the kernel's UDP/IP stack in the switch, a recorder in tests.
pub trait Underlay: Send + Sync + 'static {
    /// Sends one packet to `to`: the UDP and VXLAN headers `head`, then the inner `frame`.
    /// The UDP header's source port says which flow the frame belongs to (an underlay may send
    /// from another port of its own, the same for the same flow).
    fn send(&self, to: IpAddr, head: &[u8; ENCAP_HLEN], frame: &[u8]) -> io::Result<()>;
    /// Sends a batch of equal datagrams to each remote in `to`, with the UDP header `head`
    /// (ports; its length and the VXLAN header are those of the first datagram): `data` is
    /// their UDP payloads (VXLAN header and inner frame) back to back, `seg` bytes each, the
    /// last maybe shorter. Calls `done(i, result)` once per remote `to[i]`. The kernel's
    /// underlay makes this one UDP GSO `sendmmsg`; this default, one [`Underlay::send`] per
    /// datagram and remote.
    fn send_batch(
        &self,
        to: &[IpAddr],
        head: &[u8; ENCAP_HLEN],
        data: &[u8],
        seg: usize,
        done: &mut dyn FnMut(usize, io::Result<()>),
    ) {
        for (i, ip) in to.iter().enumerate() {
            let mut r = Ok(());
            for d in data.chunks(seg.max(VXLAN_HLEN)) {
                let mut h = *head;
                h[4..6].copy_from_slice(&(d.len() as u16 + 8).to_be_bytes());
                h[8..].copy_from_slice(&d[..VXLAN_HLEN.min(d.len())]);
                if let Err(e) = self.send(*ip, &h, &d[VXLAN_HLEN.min(d.len())..]) {
                    r = Err(e);
                    break;
                }
            }
            done(i, r);
        }
    }
    /// Sends one packet (as [`Underlay::send`]) to each remote in `to`, calling
    /// `done(i, result)` once per remote `to[i]` (a flood's copies: the kernel's underlay
    /// makes this one `sendmmsg`).
    fn send_each(
        &self,
        to: &[IpAddr],
        head: &[u8; ENCAP_HLEN],
        frame: &[u8],
        done: &mut dyn FnMut(usize, io::Result<()>),
    ) {
        for (i, ip) in to.iter().enumerate() {
            done(i, self.send(*ip, head, frame));
        }
    }
    /// The most bytes and datagrams one [`Underlay::send_batch`] takes.
    fn batch_limits(&self) -> (usize, usize) {
        (MAX_GSO_BYTES, MAX_GSO_DATAGRAMS)
    }
    /// The IP MTU of the path to `to`, or of the local address's interface when `to` is
    /// `None`; `None` if unknown.
    fn path_mtu(&self, to: Option<IpAddr>) -> Option<u32>;
}

/// The most payload bytes of one UDP GSO send: a UDP length is 16 bits, and over IPv4 the IP
/// total length too (65535 - 20 - 8).
pub const MAX_GSO_BYTES: usize = 65507;
/// The most datagrams of one UDP GSO send: Linux's `UDP_MAX_SEGMENTS` (64 until 6.9, 128
/// since; the smaller works on both).
pub const MAX_GSO_DATAGRAMS: usize = 64;

/// The VTEP of one `vxlan` port; see the module documentation.
pub struct Vtep {
    /// The port's configuration.
    pub spec: VxlanSpec,
    table: DashMap<MacAddr, Entry, Hasher>,
    remotes: RwLock<Arc<Remotes>>,
    /// Serializes changes of `remotes`.
    writer: Mutex<()>,
    learned: crate::fdb::LearnBudget,
    n_user: AtomicUsize,
    mtu: AtomicU32,
    /// Counters.
    pub stats: VtepStats,
}

impl std::fmt::Debug for Vtep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vtep")
            .field("vni", &self.spec.vni)
            .field("entries", &self.table.len())
            .field("remotes", &self.remotes().len())
            .finish()
    }
}

impl Vtep {
    /// A VTEP for a checked spec (see [`VxlanSpec::check`]): its `remote=` values are the flood
    /// list; `mtu` is the port's MTU until [`Vtep::set_mtu`].
    pub fn new(spec: VxlanSpec, mtu: u32) -> Vtep {
        let mut set = Remotes::default();
        for ip in &spec.remotes {
            let r = Remote::new(*ip);
            set.flood.push(r.clone());
            set.known.insert(*ip, r);
        }
        set.flood_ips = spec.remotes.clone();
        Vtep {
            spec,
            table: DashMap::with_hasher(Hasher::default()),
            remotes: RwLock::new(Arc::new(set)),
            writer: Mutex::new(()),
            learned: crate::fdb::LearnBudget::new(DEFAULT_MAX_LEARNED),
            n_user: AtomicUsize::new(0),
            mtu: AtomicU32::new(mtu),
            stats: VtepStats::default(),
        }
    }

    /// The VNI.
    pub fn vni(&self) -> u32 {
        self.spec.vni
    }

    /// The port MTU for an underlay IP MTU: minus 50 bytes over IPv4, 70 over IPv6 (outer
    /// IP, UDP and VXLAN headers and the inner Ethernet header), within 68..=[`MAX_MTU`].
    pub fn mtu_for_path(&self, path_mtu: u32) -> u32 {
        let overhead = match self.spec.local {
            Some(IpAddr::V6(_)) => OVERHEAD_V6,
            _ => OVERHEAD_V4,
        } as u32;
        path_mtu.saturating_sub(overhead).clamp(68, MAX_MTU)
    }

    /// The port's MTU.
    pub fn mtu(&self) -> u32 {
        self.mtu.load(Relaxed)
    }

    /// Sets the port's MTU.
    pub fn set_mtu(&self, mtu: u32) {
        self.mtu.store(mtu.clamp(68, MAX_MTU), Relaxed);
    }

    /// Limits the learned entries (0: the default, [`DEFAULT_MAX_LEARNED`]).
    pub fn set_max_learned(&self, n: usize) {
        let n = if n == 0 { DEFAULT_MAX_LEARNED } else { n };
        self.learned.set_max(n);
    }

    /// The remotes now.
    pub fn remotes(&self) -> Arc<Remotes> {
        self.remotes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Entries of the table (unicast entries and flood-list entries).
    pub fn len(&self) -> usize {
        self.table.len() + self.remotes().flood.len()
    }

    /// Whether the table has no entry at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Learned entries.
    pub fn learned_count(&self) -> usize {
        self.learned.count()
    }

    /// Checks a packet received from `src` for this VTEP's VNI (`packet` is the UDP payload:
    /// VXLAN header and inner frame): the header as Linux checks it, the sender, then learning
    /// (`learn`: the switch learns at all, ageing not 0). Returns the inner frame's length (the
    /// frame is `packet[8..]`) or why the packet is dropped; the caller counts the drop.
    pub fn receive(
        &self,
        src: IpAddr,
        packet: &[u8],
        learn: bool,
        now: Timestamp,
    ) -> Result<usize, VxlanDrop> {
        let (_, inner) = wire::parse(packet)?;
        let set = self.remotes();
        let remote = set.get(&src);
        match remote {
            Some(r) => {
                r.rx_frames.fetch_add(1, Relaxed);
            }
            None if self.spec.accept.iter().any(|c| c.contains(src)) => {}
            None => return Err(VxlanDrop::Stranger),
        }
        if learn && self.spec.learning {
            let mut m = [0u8; 6];
            m.copy_from_slice(&inner[6..12]);
            let mac = MacAddr(m);
            if mac.is_valid_source() {
                self.learn(mac, src, remote, now)?;
            }
        }
        Ok(inner.len())
    }

    /// Learns that `mac` is behind `src` (Linux `vxlan_snoop`).
    fn learn(
        &self,
        mac: MacAddr,
        src: IpAddr,
        known: Option<&Arc<Remote>>,
        now: Timestamp,
    ) -> Result<(), VxlanDrop> {
        if let Some(e) = self.table.get(&mac) {
            if e.updated.load(Relaxed) != now.0 {
                e.updated.store(now.0, Relaxed);
            }
            if e.remote.ip == src {
                return Ok(());
            }
            if e.kind == EntryKind::Static {
                return Err(VxlanDrop::StaticMac);
            }
        }
        let remote = match known {
            Some(r) => r.clone(),
            None => match self.add_remote(src) {
                Some(r) => r,
                None => {
                    self.stats.learn_limit_hits_total.fetch_add(1, Relaxed);
                    return Ok(());
                }
            },
        };
        match self.table.entry(mac) {
            MapEntry::Occupied(mut o) => {
                let e = o.get_mut();
                if e.remote.ip == src {
                    return Ok(());
                }
                if e.kind == EntryKind::Static {
                    return Err(VxlanDrop::StaticMac);
                }
                // an extern_learn entry moves and stays the controller's (Linux vxlan_snoop)
                let kind = e.kind;
                *e = Entry::new(remote, kind, now);
                self.stats.moved_total.fetch_add(1, Relaxed);
            }
            MapEntry::Vacant(v) => {
                if !self.learned.reserve() {
                    self.stats.learn_limit_hits_total.fetch_add(1, Relaxed);
                    return Ok(());
                }
                v.insert(Entry::new(remote, EntryKind::Learned, now));
                self.stats.learned_total.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }

    /// The known remote at `ip`, added (with a copy of the set) if new; `None` at
    /// [`MAX_REMOTES`].
    fn add_remote(&self, ip: IpAddr) -> Option<Arc<Remote>> {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.remotes();
        if let Some(r) = cur.get(&ip) {
            return Some(r.clone());
        }
        if cur.known.len() >= MAX_REMOTES {
            return None;
        }
        let r = Remote::new(ip);
        let mut known = cur.known.clone();
        known.insert(ip, r.clone());
        self.publish(Remotes {
            flood_ips: Vec::new(),
            flood: cur.flood.clone(),
            known,
        });
        Some(r)
    }

    fn publish(&self, mut set: Remotes) {
        set.flood_ips = set.flood.iter().map(|r| r.ip).collect();
        *self.remotes.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    /// Forgets remotes that are neither in the flood list nor a table destination any more
    /// (they are strangers again); returns how many. Control work.
    pub fn prune_remotes(&self) -> usize {
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.remotes();
        let idle = |r: &Arc<Remote>| {
            r.refs.load(Relaxed) == 0 && !cur.flood.iter().any(|f| Arc::ptr_eq(f, r))
        };
        let n = cur.known.values().filter(|r| idle(r)).count();
        if n > 0 {
            let known = cur
                .known
                .iter()
                .filter(|(_, r)| !idle(r))
                .map(|(k, r)| (*k, r.clone()))
                .collect();
            self.publish(Remotes {
                flood_ips: Vec::new(),
                flood: cur.flood.clone(),
                known,
            });
        }
        n
    }

    /// The remote a known unicast destination is behind.
    pub fn destination(&self, dst: &MacAddr) -> Option<Arc<Remote>> {
        self.table.get(dst).map(|e| e.remote.clone())
    }

    /// Encapsulates `frame` and sends it: to the remote its destination is behind, or to every
    /// remote of the flood list (broadcast, multicast, unknown unicast). Fails with
    /// `EDESTADDRREQ` when there is nowhere to send it (an empty flood list), and with the last
    /// error when every send failed.
    pub fn transmit<U: Underlay + ?Sized>(&self, frame: &[u8], u: &U) -> io::Result<()> {
        if frame.len() < 14 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let head = self.head(frame, frame.len())?;
        match self.dest(frame) {
            Dest::One(r) => send_one(&r, &head, frame, u),
            Dest::Flood(set) if set.flood.len() == 1 => send_one(&set.flood[0], &head, frame, u),
            Dest::Flood(set) => {
                let mut out = Outcome::default();
                u.send_each(&set.flood_ips, &head, frame, &mut |i, r| {
                    out.add(&set.flood[i], r, 1)
                });
                out.result()
            }
        }
    }

    /// [`Vtep::transmit`] of a frame with a virtio_net_hdr (the `vxlan` port takes offload
    /// frames): a plain frame goes as it is; a partial checksum is completed in `scratch`
    /// first; a GSO frame is cut into its segments, each behind its VXLAN header, back to back
    /// in `scratch`, and sent as few UDP GSO batches ([`Underlay::send_batch`]) as the limits
    /// allow: one for a frame of up to 64 KiB of datagrams, to every remote it goes to. A
    /// segment longer than the port's MTU fails the whole frame with `EMSGSIZE` (counted as
    /// an MTU drop), as each segment would have failed the frame path's MTU check.
    pub fn transmit_offload<U: Underlay + ?Sized>(
        &self,
        hdr: &VnetHdr,
        frame: &[u8],
        scratch: &mut [u8],
        u: &U,
    ) -> io::Result<()> {
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        if hdr.gso() == GSO_NONE {
            if hdr.flags & F_NEEDS_CSUM == 0 {
                return self.transmit(frame, u);
            }
            let out = scratch.get_mut(..frame.len()).ok_or_else(einval)?;
            out.copy_from_slice(frame);
            offload::complete_csum(out, hdr.csum_start.into(), hdr.csum_offset.into())
                .map_err(|_| einval())?;
            return self.transmit(out, u);
        }
        if frame.len() < 14 {
            return Err(einval());
        }
        let segs = Segmenter::new(hdr, frame).map_err(|_| einval())?;
        let first = segs.seg_len(0);
        let tag = if matches!(wire_type(frame), 0x8100 | 0x88a8) {
            4
        } else {
            0
        };
        if first - tag > self.mtu() as usize + 18 {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        let stride = VXLAN_HLEN + first;
        let (max_bytes, max_dgrams) = u.batch_limits();
        let per = (max_bytes.min(scratch.len()) / stride).clamp(1, max_dgrams.max(1));
        if stride > scratch.len() {
            return Err(einval());
        }
        let head = self.head(frame, first)?;
        let dest = self.dest(frame);
        let n = segs.count();
        let mut out = Outcome::default();
        let mut i = 0;
        while i < n {
            let k = per.min(n - i);
            let mut pos = 0;
            for j in i..i + k {
                wire::write_header(self.spec.vni, &mut scratch[pos..]);
                pos += VXLAN_HLEN + segs.write(j, &mut scratch[pos + VXLAN_HLEN..]);
            }
            let data = &scratch[..pos];
            match &dest {
                Dest::One(r) => {
                    u.send_batch(&[r.ip], &head, data, stride, &mut |_, res| {
                        out.add(r, res, k as u64)
                    });
                }
                Dest::Flood(set) => {
                    u.send_batch(&set.flood_ips, &head, data, stride, &mut |x, res| {
                        out.add(&set.flood[x], res, k as u64)
                    });
                }
            }
            if k > 1 {
                self.stats.gso_sends_total.fetch_add(1, Relaxed);
                self.stats.gso_datagrams_total.fetch_add(k as u64, Relaxed);
            }
            i += k;
        }
        out.result()
    }

    /// The UDP and VXLAN headers for a datagram of `inner_len` bytes of `frame`'s flow.
    fn head(&self, frame: &[u8], inner_len: usize) -> io::Result<[u8; ENCAP_HLEN]> {
        let (min, max) = self.spec.srcport;
        let sport = wire::src_port(wire::flow_hash(frame), min, max);
        let mut head = [0u8; ENCAP_HLEN];
        wire::write_encap(
            sport,
            self.spec.dstport,
            self.spec.vni,
            inner_len,
            &mut head,
        )
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EMSGSIZE))?;
        Ok(head)
    }

    /// Where a frame goes: the remote its unicast destination is behind, else the flood list.
    fn dest(&self, frame: &[u8]) -> Dest {
        let mut d = [0u8; 6];
        d.copy_from_slice(&frame[..6]);
        let dst = MacAddr(d);
        if !dst.is_multicast() {
            if let Some(r) = self.destination(&dst) {
                return Dest::One(r);
            }
        }
        Dest::Flood(self.remotes())
    }

    fn check_dst(&self, dst: IpAddr) -> Result<(), VtepError> {
        let same_family = self.spec.local.is_none_or(|l| l.is_ipv4() == dst.is_ipv4());
        if !same_family || dst.is_multicast() || dst.is_unspecified() {
            return Err(VtepError::BadDst(dst));
        }
        Ok(())
    }

    /// `bridge fdb append 00:00:00:00:00:00 dev vx0 dst IP`: adds `dst` to the flood list.
    pub fn append(&self, mac: MacAddr, dst: IpAddr) -> Result<(), VtepError> {
        if !mac.is_zero() {
            return Err(VtepError::AppendUnicast);
        }
        self.check_dst(dst)?;
        let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.remotes();
        if cur.flood.iter().any(|r| r.ip == dst) {
            return Err(VtepError::Exists { mac, dst });
        }
        let r = match cur.get(&dst) {
            Some(r) => r.clone(),
            None if cur.known.len() >= MAX_REMOTES => return Err(VtepError::Full("remotes")),
            None => Remote::new(dst),
        };
        let mut flood = cur.flood.clone();
        flood.push(r.clone());
        let mut known = cur.known.clone();
        known.insert(dst, r);
        self.publish(Remotes {
            flood_ips: Vec::new(),
            flood,
            known,
        });
        Ok(())
    }

    /// `bridge fdb add|replace MAC dev vx0 dst IP [static|dynamic|extern_learn]`: a unicast
    /// entry (a `learned` kind is stored as `dynamic`), or for the all-zero MAC the flood list
    /// (as `add` in Linux: `dst` is added to it).
    pub fn insert_user(
        &self,
        mac: MacAddr,
        dst: IpAddr,
        kind: EntryKind,
        replace: bool,
        now: Timestamp,
    ) -> Result<(), VtepError> {
        if mac.is_zero() {
            return match self.append(mac, dst) {
                Err(VtepError::Exists { .. }) if replace => Ok(()),
                r => r,
            };
        }
        if !mac.is_valid_source() {
            return Err(VtepError::NotUnicast(mac));
        }
        let kind = match kind {
            EntryKind::Sticky => return Err(VtepError::Kind),
            EntryKind::Learned => EntryKind::Dynamic,
            k => k,
        };
        self.check_dst(dst)?;
        let remote = self.add_remote(dst).ok_or(VtepError::Full("remotes"))?;
        match self.table.entry(mac) {
            MapEntry::Occupied(mut o) => {
                if !replace {
                    return Err(VtepError::Exists {
                        mac,
                        dst: o.get().remote.ip,
                    });
                }
                if o.get().kind == EntryKind::Learned {
                    if self.n_user.load(Relaxed) >= MAX_USER_ENTRIES {
                        return Err(VtepError::Full("user entries"));
                    }
                    self.learned.release();
                    self.n_user.fetch_add(1, Relaxed);
                }
                o.insert(Entry::new(remote, kind, now));
            }
            MapEntry::Vacant(v) => {
                if self.n_user.load(Relaxed) >= MAX_USER_ENTRIES {
                    return Err(VtepError::Full("user entries"));
                }
                self.n_user.fetch_add(1, Relaxed);
                v.insert(Entry::new(remote, kind, now));
            }
        }
        Ok(())
    }

    /// `bridge fdb del MAC dev vx0 [dst IP]`: for the all-zero MAC, removes `dst` from the
    /// flood list (or the whole flood list without `dst`); otherwise the entry (only if it
    /// points to `dst`, when given). Returns how many entries went.
    pub fn remove(&self, mac: MacAddr, dst: Option<IpAddr>) -> usize {
        let n = if mac.is_zero() {
            let _w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let cur = self.remotes();
            let flood: Vec<Arc<Remote>> = cur
                .flood
                .iter()
                .filter(|r| dst.is_some_and(|d| d != r.ip))
                .cloned()
                .collect();
            let n = cur.flood.len() - flood.len();
            if n > 0 {
                self.publish(Remotes {
                    flood_ips: Vec::new(),
                    flood,
                    known: cur.known.clone(),
                });
            }
            n
        } else {
            match self
                .table
                .remove_if(&mac, |_, e| dst.is_none_or(|d| d == e.remote.ip))
            {
                Some((_, e)) => {
                    self.uncount(&e);
                    1
                }
                None => 0,
            }
        };
        if n > 0 {
            self.prune_remotes();
        }
        n
    }

    fn uncount(&self, e: &Entry) {
        if e.kind == EntryKind::Learned {
            self.learned.release();
        } else {
            self.n_user.fetch_sub(1, Relaxed);
        }
    }

    /// Removes learned and dynamic entries not refreshed for `ageing_ms`, then forgets the
    /// remotes no longer used; returns how many entries went. Control work.
    pub fn age_out(&self, now: Timestamp, ageing_ms: u64) -> usize {
        let mut n = 0;
        self.table.retain(|_, e| {
            let expired =
                e.kind.ages() && now.since(Timestamp(e.updated.load(Relaxed))) >= ageing_ms;
            if expired {
                self.uncount(e);
                n += 1;
            }
            !expired
        });
        self.stats.aged_total.fetch_add(n as u64, Relaxed);
        self.prune_remotes();
        n
    }

    /// Removes the learned and dynamic entries (Linux flushes them when the device goes down).
    pub fn flush_dynamic(&self) -> usize {
        let mut n = 0;
        self.table.retain(|_, e| {
            if e.kind.ages() {
                self.uncount(e);
                n += 1;
            }
            !e.kind.ages()
        });
        self.prune_remotes();
        n
    }

    /// Every entry: unicast entries by MAC, then the flood list in order. Control work.
    pub fn snapshot(&self, now: Timestamp) -> Vec<VtepRecord> {
        let mut v: Vec<VtepRecord> = self
            .table
            .iter()
            .map(|r| VtepRecord {
                mac: *r.key(),
                dst: r.value().remote.ip,
                kind: r.value().kind,
                updated_ms_ago: now.since(Timestamp(r.value().updated.load(Relaxed))),
            })
            .collect();
        v.sort_by_key(|r| r.mac);
        v.extend(self.remotes().flood.iter().map(|r| VtepRecord {
            mac: MacAddr::ZERO,
            dst: r.ip,
            kind: EntryKind::Static,
            updated_ms_ago: 0,
        }));
        v
    }

    /// One page of the table in (MAC, remote) order (flood-list entries, MAC
    /// 00:00:00:00:00:00, first): at most `limit` entries after `after`. One walk of the
    /// table and memory for one page (see [`crate::page`]).
    pub fn page(
        &self,
        after: Option<(MacAddr, IpAddr)>,
        limit: usize,
        now: Timestamp,
    ) -> Vec<VtepRecord> {
        let mut s = crate::page::Smallest::new(after, limit);
        for r in self.remotes().flood.iter() {
            s.offer((MacAddr::ZERO, r.ip), || VtepRecord {
                mac: MacAddr::ZERO,
                dst: r.ip,
                kind: EntryKind::Static,
                updated_ms_ago: 0,
            });
        }
        for r in self.table.iter() {
            let e = r.value();
            s.offer((*r.key(), e.remote.ip), || VtepRecord {
                mac: *r.key(),
                dst: e.remote.ip,
                kind: e.kind,
                updated_ms_ago: now.since(Timestamp(e.updated.load(Relaxed))),
            });
        }
        s.into_sorted().into_iter().map(|(_, r)| r).collect()
    }
}

/// Where one frame goes.
enum Dest {
    One(Arc<Remote>),
    Flood(Arc<Remotes>),
}

/// The EtherType (or outer tag type) of a frame of at least 14 bytes.
fn wire_type(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[12], frame[13]])
}

/// The outcome of sending one frame to one or more remotes: sent if any remote got it.
#[derive(Default)]
struct Outcome {
    sent: bool,
    last: Option<io::Error>,
}

impl Outcome {
    /// Counts one remote's result (`frames` datagrams).
    fn add(&mut self, r: &Remote, res: io::Result<()>, frames: u64) {
        match res {
            Ok(()) => {
                r.tx_frames.fetch_add(frames, Relaxed);
                self.sent = true;
            }
            Err(e) => {
                r.tx_errors.fetch_add(1, Relaxed);
                self.last = Some(tunnel_error(e));
            }
        }
    }

    fn result(self) -> io::Result<()> {
        match (self.sent, self.last) {
            (true, _) => Ok(()),
            (false, Some(e)) => Err(e),
            (false, None) => Err(io::Error::from_raw_os_error(libc::EDESTADDRREQ)),
        }
    }
}

fn send_one<U: Underlay + ?Sized>(
    r: &Remote,
    head: &[u8; ENCAP_HLEN],
    frame: &[u8],
    u: &U,
) -> io::Result<()> {
    match u.send(r.ip, head, frame) {
        Ok(()) => {
            r.tx_frames.fetch_add(1, Relaxed);
            Ok(())
        }
        Err(e) => {
            r.tx_errors.fetch_add(1, Relaxed);
            Err(tunnel_error(e))
        }
    }
}

/// A send error as the dataplane should see it: a full socket buffer is a full queue; an
/// unreachable or down underlay is this frame's failure, never the port's link state (the
/// tunnel port stays up: its remotes come and go).
fn tunnel_error(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM) => e,
        Some(libc::EMSGSIZE) => e,
        _ => io::Error::from_raw_os_error(libc::EHOSTUNREACH),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what a VTEP sends.
    #[derive(Default)]
    struct Rec(Mutex<Vec<(IpAddr, Vec<u8>)>>, Option<IpAddr>);

    impl Underlay for Rec {
        fn send(&self, to: IpAddr, head: &[u8; ENCAP_HLEN], frame: &[u8]) -> io::Result<()> {
            if Some(to) == self.1 {
                return Err(io::Error::from_raw_os_error(libc::ENETUNREACH));
            }
            let mut p = head.to_vec();
            p.extend_from_slice(frame);
            self.0.lock().unwrap().push((to, p));
            Ok(())
        }
        fn path_mtu(&self, _to: Option<IpAddr>) -> Option<u32> {
            Some(1500)
        }
    }

    impl Rec {
        fn take(&self) -> Vec<(IpAddr, Vec<u8>)> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    fn vtep(words: &[&str]) -> Vtep {
        let mut s = VxlanSpec::new(100);
        s.apply("local=198.18.0.1").unwrap();
        for w in words {
            assert!(s.apply(w).unwrap(), "{w}");
        }
        s.check().unwrap();
        Vtep::new(s, 1450)
    }

    fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
        let mut f = dst.0.to_vec();
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&[0x08, 0x06]);
        f.extend_from_slice(&[0u8; 46]);
        f
    }

    fn packet(vni: u32, inner: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 8];
        wire::write_header(vni, &mut p);
        p.extend_from_slice(inner);
        p
    }

    #[test]
    fn floods_to_every_remote_and_unicasts_to_a_learned_one() {
        let v = vtep(&["remote=198.18.0.2", "remote=198.18.0.3"]);
        let u = Rec::default();
        let bcast = frame(MacAddr::BROADCAST, mac(1));
        v.transmit(&bcast, &u).unwrap();
        let sent = u.take();
        assert_eq!(
            sent.iter().map(|s| s.0).collect::<Vec<_>>(),
            [ip("198.18.0.2"), ip("198.18.0.3")]
        );
        // the same packet to each: UDP to 4789, checksum 0, VXLAN header, the frame
        let (sport, _) = (u16::from_be_bytes([sent[0].1[0], sent[0].1[1]]), 0);
        assert_eq!(
            sport,
            wire::src_port(
                wire::flow_hash(&bcast),
                wire::DEFAULT_SRC_PORT_MIN,
                wire::DEFAULT_SRC_PORT_MAX
            )
        );
        assert_eq!(&sent[0].1[2..8], &[0x12, 0xb5, 0, 16 + 60, 0, 0]);
        assert_eq!(&sent[0].1[8..16], &[8, 0, 0, 0, 0, 0, 100, 0]);
        assert_eq!(&sent[0].1[16..], &bcast[..]);
        assert_eq!(sent[0].1, sent[1].1);
        // unknown unicast floods too; after learning it goes to one remote
        let to5 = frame(mac(5), mac(1));
        v.transmit(&to5, &u).unwrap();
        assert_eq!(u.take().len(), 2);
        let from5 = packet(100, &frame(mac(1), mac(5)));
        assert_eq!(
            v.receive(ip("198.18.0.3"), &from5, true, Timestamp(0)),
            Ok(60)
        );
        assert_eq!(v.learned_count(), 1);
        v.transmit(&to5, &u).unwrap();
        let sent = u.take();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, ip("198.18.0.3"));
        let r3 = v.remotes().get(&ip("198.18.0.3")).unwrap().clone();
        assert_eq!(r3.tx_frames.load(Relaxed), 3);
        assert_eq!(r3.rx_frames.load(Relaxed), 1);
        // multicast always floods, even to a MAC in the table
        v.transmit(&frame(MacAddr([1, 0, 0x5e, 0, 0, 1]), mac(1)), &u)
            .unwrap();
        assert_eq!(u.take().len(), 2);
    }

    #[test]
    fn an_empty_flood_list_is_nowhere_to_send() {
        let v = vtep(&[]);
        let u = Rec::default();
        let e = v
            .transmit(&frame(MacAddr::BROADCAST, mac(1)), &u)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EDESTADDRREQ));
        assert!(v.transmit(&[0u8; 13], &u).is_err());
        // one remote failing: the others still get it, and the frame counts as sent
        let v = vtep(&["remote=198.18.0.2", "remote=198.18.0.3"]);
        let u = Rec(Mutex::default(), Some(ip("198.18.0.2")));
        v.transmit(&frame(MacAddr::BROADCAST, mac(1)), &u).unwrap();
        assert_eq!(u.take().len(), 1);
        let r2 = v.remotes().get(&ip("198.18.0.2")).unwrap().clone();
        assert_eq!(r2.tx_errors.load(Relaxed), 1);
        // every remote failing: the error, never one that takes the port down
        let v = vtep(&["remote=198.18.0.2"]);
        let e = v
            .transmit(&frame(MacAddr::BROADCAST, mac(1)), &u)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EHOSTUNREACH));
    }

    #[test]
    fn strangers_bad_headers_and_accept() {
        let v = vtep(&["remote=198.18.0.2", "accept=198.19.0.0/16"]);
        let good = packet(100, &frame(MacAddr::BROADCAST, mac(7)));
        let t = Timestamp(0);
        assert_eq!(
            v.receive(ip("198.18.0.9"), &good, true, t),
            Err(VxlanDrop::Stranger)
        );
        assert_eq!(v.learned_count(), 0, "a stranger teaches nothing");
        let mut bad = good.clone();
        bad[0] = 0x0C;
        assert_eq!(
            v.receive(ip("198.18.0.2"), &bad, true, t),
            Err(VxlanDrop::ReservedFlags)
        );
        bad[0] = 0;
        assert_eq!(
            v.receive(ip("198.18.0.2"), &bad, true, t),
            Err(VxlanDrop::NoVniFlag)
        );
        assert_eq!(
            v.receive(ip("198.18.0.2"), &good[..20], true, t),
            Err(VxlanDrop::BadInner)
        );
        assert_eq!(v.learned_count(), 0);
        // a sender inside accept= is taken, learned, and becomes a known remote
        assert_eq!(v.receive(ip("198.19.4.4"), &good, true, t), Ok(60));
        assert_eq!(v.destination(&mac(7)).unwrap().ip, ip("198.19.4.4"));
        assert_eq!(v.remotes().len(), 2);
        // once its entries are gone it is a stranger again, unless accept= takes it
        assert_eq!(v.remove(mac(7), None), 1);
        assert_eq!(v.remotes().len(), 1);
    }

    #[test]
    fn learning_moves_static_pins_and_no_learning() {
        let v = vtep(&["remote=198.18.0.2", "remote=198.18.0.3"]);
        let from = |src: MacAddr| packet(100, &frame(MacAddr::BROADCAST, src));
        let t = Timestamp(0);
        v.receive(ip("198.18.0.2"), &from(mac(1)), true, t).unwrap();
        assert_eq!(v.destination(&mac(1)).unwrap().ip, ip("198.18.0.2"));
        v.receive(ip("198.18.0.3"), &from(mac(1)), true, t).unwrap();
        assert_eq!(v.destination(&mac(1)).unwrap().ip, ip("198.18.0.3"));
        assert_eq!(v.stats.moved_total.load(Relaxed), 1);
        // learning off in the switch (ageing 0): nothing learned
        v.receive(ip("198.18.0.2"), &from(mac(2)), false, t)
            .unwrap();
        assert!(v.destination(&mac(2)).is_none());
        // a static entry does not move: the frame is dropped (Linux)
        v.insert_user(mac(3), ip("198.18.0.2"), EntryKind::Static, false, t)
            .unwrap();
        assert_eq!(
            v.receive(ip("198.18.0.3"), &from(mac(3)), true, t),
            Err(VxlanDrop::StaticMac)
        );
        assert_eq!(v.destination(&mac(3)).unwrap().ip, ip("198.18.0.2"));
        // an extern_learn entry follows its MAC and stays the controller's (Linux)
        v.insert_user(mac(4), ip("198.18.0.2"), EntryKind::ExternLearn, false, t)
            .unwrap();
        assert_eq!(v.age_out(Timestamp::from_secs(1000), 300_000), 1, "mac 1");
        assert!(v.destination(&mac(4)).is_some(), "extern_learn never ages");
        let learned = v.learned_count();
        v.receive(ip("198.18.0.3"), &from(mac(4)), true, t).unwrap();
        let s = v.snapshot(t);
        let e4 = s.iter().find(|r| r.mac == mac(4)).unwrap();
        assert_eq!(
            (e4.dst, e4.kind),
            (ip("198.18.0.3"), EntryKind::ExternLearn)
        );
        assert_eq!(v.learned_count(), learned, "not counted as learned");
        // with no-learning nothing is learned, and a static entry pins nothing
        let n = vtep(&["remote=198.18.0.2", "no-learning"]);
        n.receive(ip("198.18.0.2"), &from(mac(1)), true, t).unwrap();
        assert_eq!(n.learned_count(), 0);
    }

    #[test]
    fn limits_and_user_entries() {
        let v = vtep(&["accept=0.0.0.0/0"]);
        v.set_max_learned(2);
        let from = |src: MacAddr| packet(100, &frame(MacAddr::BROADCAST, src));
        let t = Timestamp(0);
        for i in 1..=3 {
            v.receive(ip("203.0.113.1"), &from(mac(i)), true, t)
                .unwrap();
        }
        assert_eq!(v.learned_count(), 2);
        assert_eq!(v.stats.learn_limit_hits_total.load(Relaxed), 1);
        // remotes are bounded too; the idle ones are forgotten
        let w = vtep(&["accept=0.0.0.0/0"]);
        for i in 0..MAX_REMOTES as u32 + 10 {
            let src = IpAddr::V4((0xC633_0000 + i).into());
            w.receive(src, &from(MacAddr([2, 1, 0, 0, 0, 1])), true, t)
                .unwrap();
        }
        assert_eq!(w.remotes().len(), MAX_REMOTES);
        assert_eq!(w.stats.learn_limit_hits_total.load(Relaxed), 10);
        assert_eq!(
            w.prune_remotes(),
            MAX_REMOTES - 1,
            "one entry, one remote in use"
        );
        // user entries: flood list by the zero MAC, unicast by add/replace
        let z = MacAddr::ZERO;
        v.append(z, ip("198.18.0.2")).unwrap();
        assert!(matches!(
            v.append(z, ip("198.18.0.2")),
            Err(VtepError::Exists { .. })
        ));
        assert_eq!(
            v.append(mac(9), ip("198.18.0.2")),
            Err(VtepError::AppendUnicast)
        );
        assert!(v.append(z, ip("2001:db8::1")).is_err(), "other family");
        v.insert_user(z, ip("198.18.0.3"), EntryKind::Static, false, t)
            .unwrap();
        assert_eq!(v.remotes().flood.len(), 2);
        assert!(matches!(
            v.insert_user(mac(9), ip("198.18.0.2"), EntryKind::Sticky, false, t),
            Err(VtepError::Kind)
        ));
        v.insert_user(mac(9), ip("198.18.0.2"), EntryKind::Static, false, t)
            .unwrap();
        assert!(v
            .insert_user(mac(9), ip("198.18.0.3"), EntryKind::Static, false, t)
            .is_err());
        v.insert_user(mac(9), ip("198.18.0.3"), EntryKind::Dynamic, true, t)
            .unwrap();
        assert_eq!(v.destination(&mac(9)).unwrap().ip, ip("198.18.0.3"));
        assert_eq!(v.remove(mac(9), Some(ip("198.18.0.2"))), 0, "wrong dst");
        assert_eq!(v.remove(mac(9), Some(ip("198.18.0.3"))), 1);
        assert_eq!(v.remove(z, Some(ip("198.18.0.2"))), 1);
        assert_eq!(v.remotes().flood.len(), 1);
        assert_eq!(v.remove(z, None), 1);
        assert!(v.remotes().flood.is_empty());
    }

    #[test]
    fn mtu_from_the_path() {
        let v = vtep(&[]);
        assert_eq!(v.mtu_for_path(1500), 1450);
        assert_eq!(v.mtu_for_path(9000), 8950);
        assert_eq!(v.mtu_for_path(100), 68);
        assert_eq!(v.mtu_for_path(65536), MAX_MTU);
        let mut s = VxlanSpec::new(1);
        s.apply("local=2001:2::1").unwrap();
        assert_eq!(Vtep::new(s, 1430).mtu_for_path(1500), 1430);
    }
}
