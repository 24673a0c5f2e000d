//! The forwarding database: a bounded (MAC, VLAN) -> port table with Linux-bridge semantics.
//!
//! No clock here: every call that needs the time takes a [`Timestamp`]. Lookups and refreshes of
//! an existing entry take only a shard read lock (the timestamps and the port are atomics), so the
//! frame path never needs a write lock for a known source. A write lock is taken only to insert a
//! new entry, which happens once per source.
//!
//! Entry kinds follow `bridge fdb`: *learned* entries come from traffic, age out and count toward
//! `max_learned` (Linux `fdb_max_learned`); *dynamic* entries were added by the user, age out but
//! do not count; *static* entries never age but still move when their MAC shows up on another
//! port; *sticky* entries are static and never move; *extern_learn* entries were installed by a
//! controller (an EVPN daemon), never age, and are taken over by local learning when their MAC
//! shows up on another port (Linux `NTF_EXT_LEARNED`). Every table operation that drops or
//! changes state is counted in [`FdbStats`].

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

pub use crate::types::{PortId, Timestamp};
use crate::wire::MacAddr;

/// Table key: MAC and VLAN ID (0 = untagged / VLAN-unaware, as Linux with vlan_filtering off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbKey {
    /// The address.
    pub mac: MacAddr,
    /// The VLAN (0 when VLAN filtering is off).
    pub vlan: u16,
}

impl FdbKey {
    /// A key.
    pub fn new(mac: MacAddr, vlan: u16) -> Self {
        FdbKey { mac, vlan }
    }
}

/// What kind of entry this is; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// From traffic; ages; counts toward the learned limit.
    Learned,
    /// Added by the user; ages; does not count.
    Dynamic,
    /// Added by the user; never ages; moves when the MAC appears on another port.
    Static,
    /// Added by the user; never ages; never moves.
    Sticky,
    /// Installed by a controller (EVPN); never aged by the switch; when its MAC shows up on
    /// another port, local learning takes it over (it becomes a `Dynamic` entry
    /// there, not counted as learned), as in Linux.
    ExternLearn,
}

impl EntryKind {
    /// Whether the entry is removed by ageing.
    pub fn ages(self) -> bool {
        matches!(self, EntryKind::Learned | EntryKind::Dynamic)
    }

    /// Whether a frame from the MAC on another port moves the entry.
    pub fn moves(self) -> bool {
        self != EntryKind::Sticky
    }
}

struct Entry {
    port: AtomicU32,
    /// Last refresh by a frame sourced from this MAC (or creation).
    updated: AtomicU64,
    /// Last use as a destination.
    used: AtomicU64,
    kind: EntryKind,
}

impl Entry {
    fn new(port: PortId, kind: EntryKind, now: Timestamp) -> Self {
        Entry {
            port: AtomicU32::new(port.0),
            updated: AtomicU64::new(now.0),
            used: AtomicU64::new(now.0),
            kind,
        }
    }

    fn port(&self) -> PortId {
        PortId(self.port.load(Relaxed))
    }
}

/// Table counters, monotonic except `entries`/`learned` which are read from the table.
#[derive(Default, Debug)]
pub struct FdbStats {
    /// New learned entries created from traffic.
    pub learned_total: AtomicU64,
    /// Entries that moved to another port.
    pub moved_total: AtomicU64,
    /// Entries removed by ageing.
    pub aged_total: AtomicU64,
    /// Sources not learned because the learned limit was reached.
    pub learn_limit_hits_total: AtomicU64,
    /// Entries removed by flushes (port down, port removed, API).
    pub flushed_total: AtomicU64,
}

/// What learning a source did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LearnOutcome {
    /// A new learned entry.
    Learned,
    /// Existing entry on the same port, timestamp refreshed.
    Refreshed,
    /// Existing entry moved from the given port.
    Moved(PortId),
    /// A sticky entry on another port: not moved (the frame is still forwarded).
    StickyKept,
    /// The learned limit was reached; nothing was learned (the frame is still forwarded).
    LimitReached,
}

/// Why a user operation on the table failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FdbError {
    /// `add` of an entry that exists.
    #[error("entry {mac} vlan {vlan} already exists")]
    Exists {
        /// The address.
        mac: MacAddr,
        /// The VLAN.
        vlan: u16,
    },
    /// [`MAX_USER_ENTRIES`] reached.
    #[error("the table holds {0} user entries, its limit")]
    UserLimit(usize),
    /// User entries are for unicast addresses.
    #[error("'{0}' is not a unicast MAC address")]
    NotUnicast(MacAddr),
}

/// One entry as seen by the API and CLI.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FdbRecord {
    /// The address.
    pub mac: MacAddr,
    /// The VLAN.
    pub vlan: u16,
    /// Where frames to it go.
    pub port: PortId,
    /// How it got there.
    pub kind: EntryKind,
    /// Milliseconds since the entry was last refreshed by its source.
    pub updated_ms_ago: u64,
    /// Milliseconds since the entry was last used as a destination.
    pub used_ms_ago: u64,
}

/// A change of one entry, for whoever follows the table (the event stream, EVPN): reported
/// by the table as it happens, never for a refresh. See [`Fdb::set_watch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbChange {
    /// The entry.
    pub key: FdbKey,
    /// Its port now (or, when removed, the port it was on).
    pub port: PortId,
    /// Its kind now (or when removed).
    pub kind: EntryKind,
    /// What happened.
    pub what: Change,
}

/// What happened to an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// New, or replaced by a user.
    Added,
    /// Moved from another port.
    Moved(PortId),
    /// Removed (aged, flushed, deleted).
    Removed,
}

/// Follows the table's changes. Called on the frame path for a new source or a move (once
/// per source, never per frame between known hosts) and on the control thread for ageing and
/// flushes: it must not block.
pub trait FdbWatch: Send + Sync {
    /// One change.
    fn changed(&self, c: FdbChange);
}

/// Which entries a flush removes.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlushFilter {
    /// Only this port's entries.
    pub port: Option<PortId>,
    /// Only this VLAN's entries.
    pub vlan: Option<u16>,
    /// Keep static and sticky entries (Linux on port down).
    pub dynamic_only: bool,
}

/// Default limit on learned entries.
pub const DEFAULT_MAX_LEARNED: usize = 65536;
/// Upper bound for the learned limit (keeps memory bounded: about 100 bytes an entry).
pub const MAX_MAX_LEARNED: usize = 16 * 1024 * 1024;
/// Limit on user-added entries (static, sticky, dynamic).
pub const MAX_USER_ENTRIES: usize = 65536;

type Hasher = foldhash::fast::RandomState;

/// Shards of the table (a power of two): with the largest table (16 M entries), 16 K entries a
/// shard.
const FDB_SHARDS: usize = 1024;

/// Learned entries of one port and that port's limit (0 = only the switch-wide limit).
#[derive(Default, Debug)]
struct PortCount {
    n: AtomicUsize,
    max: AtomicUsize,
}

/// A count of learned entries held under a limit (the bridge table's `fdb_max_learned`, a
/// VTEP table's `max-learned`): a place is reserved before a learned entry is inserted, so
/// threads learning at once never overshoot, and given back when a learned entry goes. The
/// one learning budget of the crate, shared by [`Fdb`] and `vxlan::vtep::Vtep`.
#[derive(Debug)]
pub struct LearnBudget {
    n: AtomicUsize,
    max: AtomicUsize,
}

impl LearnBudget {
    /// An empty budget of `max` entries.
    pub const fn new(max: usize) -> LearnBudget {
        LearnBudget {
            n: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        }
    }
    /// Entries counted.
    pub fn count(&self) -> usize {
        self.n.load(Relaxed)
    }
    /// The limit.
    pub fn max(&self) -> usize {
        self.max.load(Relaxed)
    }
    /// Changes the limit; entries above a lowered one stay, but none is added until the count
    /// is below it again (as Linux does).
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Relaxed);
    }
    /// Takes a place; false at the limit.
    pub fn reserve(&self) -> bool {
        let max = self.max();
        self.n
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok()
    }
    /// Gives a place back (an entry went, or a reservation was not used).
    pub fn release(&self) {
        let _ = self.n.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
    }
}

/// The bounded forwarding table.
pub struct Fdb {
    map: DashMap<FdbKey, Entry, Hasher>,
    per_port: DashMap<PortId, PortCount, Hasher>,
    learned: LearnBudget,
    n_user: AtomicUsize,
    watch: std::sync::OnceLock<std::sync::Arc<dyn FdbWatch>>,
    /// What the table did.
    pub stats: FdbStats,
}

impl std::fmt::Debug for Fdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fdb")
            .field("entries", &self.len())
            .field("learned", &self.learned_count())
            .finish()
    }
}

impl Fdb {
    /// An empty table that learns at most `max_learned` entries.
    pub fn new(max_learned: usize) -> Self {
        Fdb {
            // Many small shards: whoever walks the table (a page of the API, ageing, a flush)
            // holds each shard's lock only briefly, so learning a new source on the frame path
            // never waits long behind it.
            map: DashMap::with_hasher_and_shard_amount(Hasher::default(), FDB_SHARDS),
            per_port: DashMap::with_hasher(Hasher::default()),
            learned: LearnBudget::new(max_learned),
            n_user: AtomicUsize::new(0),
            watch: std::sync::OnceLock::new(),
            stats: FdbStats::default(),
        }
    }

    /// Reports every change of an entry to `w` from now on (one watcher, set once).
    pub fn set_watch(&self, w: std::sync::Arc<dyn FdbWatch>) {
        let _ = self.watch.set(w);
    }

    fn note(&self, key: FdbKey, port: PortId, kind: EntryKind, what: Change) {
        if let Some(w) = self.watch.get() {
            w.changed(FdbChange {
                key,
                port,
                kind,
                what,
            });
        }
    }

    /// Entries of every kind.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Learned entries (Linux `fdb_n_learned`).
    pub fn learned_count(&self) -> usize {
        self.learned.count()
    }

    /// The learned limit.
    pub fn max_learned(&self) -> usize {
        self.learned.max()
    }

    /// Changes the learned limit; entries above a lowered limit stay until they age
    /// (as Linux does), but no new source is learned until the count drops below it.
    pub fn set_max_learned(&self, n: usize) {
        self.learned.set_max(n);
    }

    /// Limits the learned entries of one port (port security); 0 removes the limit. Entries
    /// above a lowered limit stay until they age.
    pub fn set_port_limit(&self, port: PortId, max: usize) {
        self.per_port
            .entry(port)
            .or_default()
            .max
            .store(max, Relaxed);
    }

    /// The learned entries of a port and its limit (0 = none).
    pub fn port_learned(&self, port: PortId) -> (usize, usize) {
        self.per_port
            .get(&port)
            .map(|c| (c.n.load(Relaxed), c.max.load(Relaxed)))
            .unwrap_or((0, 0))
    }

    /// Forgets a detached port's count and limit (its entries are flushed separately).
    pub fn forget_port(&self, port: PortId) {
        self.per_port.remove(&port);
    }

    fn port_add(&self, port: PortId, delta: isize) {
        if delta > 0 {
            self.per_port
                .entry(port)
                .or_default()
                .n
                .fetch_add(1, Relaxed);
        } else if let Some(c) = self.per_port.get(&port) {
            let _ = c.n.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
        }
    }

    fn port_full(&self, port: PortId) -> bool {
        self.per_port.get(&port).is_some_and(|c| {
            let max = c.max.load(Relaxed);
            max != 0 && c.n.load(Relaxed) >= max
        })
    }

    /// The port a key is on, without marking it used (for locked-port checks and the
    /// VEPA reflection filter).
    pub fn port_of(&self, key: &FdbKey) -> Option<PortId> {
        self.map.get(key).map(|e| e.port())
    }

    /// Destination lookup: the port, marking the entry used.
    pub fn lookup(&self, key: &FdbKey, now: Timestamp) -> Option<PortId> {
        let e = self.map.get(key)?;
        // Store only when it changes, so hot entries do not bounce a cache line per frame.
        if e.used.load(Relaxed) != now.0 {
            e.used.store(now.0, Relaxed);
        }
        Some(e.port())
    }

    /// Learns `key` on `port` (Linux `br_fdb_update`).
    pub fn learn(&self, key: FdbKey, port: PortId, now: Timestamp) -> LearnOutcome {
        if let Some(e) = self.map.get(&key) {
            if e.kind != EntryKind::ExternLearn || e.port() == port {
                let (out, kind) = (self.refresh(&e, port, now), e.kind);
                drop(e);
                if let LearnOutcome::Moved(old) = out {
                    self.note(key, port, kind, Change::Moved(old));
                }
                return out;
            }
            drop(e);
            return self.take_over(key, port, now);
        }
        if self.port_full(port) {
            self.stats.learn_limit_hits_total.fetch_add(1, Relaxed);
            return LearnOutcome::LimitReached;
        }
        // Reserve a place under the limit before taking the shard write lock.
        if !self.learned.reserve() {
            self.stats.learn_limit_hits_total.fetch_add(1, Relaxed);
            return LearnOutcome::LimitReached;
        }
        match self.map.entry(key) {
            MapEntry::Vacant(v) => {
                v.insert(Entry::new(port, EntryKind::Learned, now));
                self.port_add(port, 1);
                self.stats.learned_total.fetch_add(1, Relaxed);
                self.note(key, port, EntryKind::Learned, Change::Added);
                LearnOutcome::Learned
            }
            MapEntry::Occupied(o) => {
                // Another thread inserted it first: give the reservation back.
                self.learned.release();
                self.refresh(o.get(), port, now)
            }
        }
    }

    /// An `extern_learn` entry seen on another port: local learning takes it over. Linux's
    /// `br_fdb_update` only clears `BR_FDB_ADDED_BY_EXT_LEARN`: the entry keeps
    /// `BR_FDB_ADDED_BY_USER`, never gets `BR_FDB_DYNAMIC_LEARNED` (only `fdb_create` sets it),
    /// so it ages but `fdb_n_learned` stays as it was. Here it becomes an ageing `dynamic`
    /// entry of the new port, which counts toward neither the learned limit nor the port's.
    fn take_over(&self, key: FdbKey, port: PortId, now: Timestamp) -> LearnOutcome {
        let Some(mut e) = self.map.get_mut(&key) else {
            return self.learn(key, port, now);
        };
        if e.kind != EntryKind::ExternLearn {
            return self.refresh(&e, port, now);
        }
        let old = e.port();
        *e = Entry::new(port, EntryKind::Dynamic, now);
        if old == port {
            return LearnOutcome::Refreshed;
        }
        self.stats.moved_total.fetch_add(1, Relaxed);
        drop(e);
        self.note(key, port, EntryKind::Dynamic, Change::Moved(old));
        LearnOutcome::Moved(old)
    }

    fn refresh(&self, e: &Entry, port: PortId, now: Timestamp) -> LearnOutcome {
        if e.updated.load(Relaxed) != now.0 {
            e.updated.store(now.0, Relaxed);
        }
        let old = e.port();
        if old == port {
            LearnOutcome::Refreshed
        } else if e.kind.moves() {
            // swap, so two threads moving one MAC account each move once
            let old = PortId(e.port.swap(port.0, Relaxed));
            if old == port {
                return LearnOutcome::Refreshed;
            }
            if e.kind == EntryKind::Learned {
                self.port_add(old, -1);
                self.port_add(port, 1);
            }
            self.stats.moved_total.fetch_add(1, Relaxed);
            LearnOutcome::Moved(old)
        } else {
            LearnOutcome::StickyKept
        }
    }

    /// Adds a user entry (`bridge fdb add` with `replace == false`, `replace` otherwise).
    /// A `Learned` kind is stored as `Dynamic`: user entries never count toward the limit.
    pub fn insert_user(
        &self,
        key: FdbKey,
        port: PortId,
        kind: EntryKind,
        replace: bool,
        now: Timestamp,
    ) -> Result<(), FdbError> {
        if !key.mac.is_valid_source() {
            return Err(FdbError::NotUnicast(key.mac));
        }
        let kind = if kind == EntryKind::Learned {
            EntryKind::Dynamic
        } else {
            kind
        };
        match self.map.entry(key) {
            MapEntry::Occupied(mut o) => {
                if !replace {
                    return Err(FdbError::Exists {
                        mac: key.mac,
                        vlan: key.vlan,
                    });
                }
                if o.get().kind == EntryKind::Learned {
                    if self.n_user.load(Relaxed) >= MAX_USER_ENTRIES {
                        return Err(FdbError::UserLimit(MAX_USER_ENTRIES));
                    }
                    self.learned.release();
                    self.port_add(o.get().port(), -1);
                    self.n_user.fetch_add(1, Relaxed);
                }
                o.insert(Entry::new(port, kind, now));
            }
            MapEntry::Vacant(v) => {
                if self.n_user.load(Relaxed) >= MAX_USER_ENTRIES {
                    return Err(FdbError::UserLimit(MAX_USER_ENTRIES));
                }
                self.n_user.fetch_add(1, Relaxed);
                v.insert(Entry::new(port, kind, now));
            }
        }
        self.note(key, port, kind, Change::Added);
        Ok(())
    }

    /// Adds a user entry for `mac` on `port` as `bridge fdb add|replace` does: in VLAN `vlan`,
    /// or, when `vlan` is 0 (no VLAN given), in VLAN 0 and in every VLAN of `port_vids`, the
    /// port's VLANs (Linux `br_fdb_add`: "add/update entry for every vlan on this port").
    /// Adding (`replace == false`) is all or nothing: if one of those entries exists, or the
    /// user-entry limit would be passed, nothing is added (Linux stops at the first error and
    /// keeps what it added before).
    #[expect(
        clippy::too_many_arguments,
        reason = "the arguments of `bridge fdb add`: MAC, VLAN, the port and its VLANs, kind, replace, time"
    )]
    pub fn insert_user_vids(
        &self,
        mac: MacAddr,
        vlan: u16,
        port_vids: &crate::vlan::VlanSet,
        port: PortId,
        kind: EntryKind,
        replace: bool,
        now: Timestamp,
    ) -> Result<(), FdbError> {
        let keys: Vec<FdbKey> = std::iter::once(vlan)
            .chain(Self::port_vlans_if_untagged(vlan, port_vids).iter())
            .map(|v| FdbKey::new(mac, v))
            .collect();
        if !mac.is_valid_source() {
            return Err(FdbError::NotUnicast(mac));
        }
        if !replace {
            if let Some(k) = keys.iter().find(|k| self.map.contains_key(k)) {
                return Err(FdbError::Exists { mac, vlan: k.vlan });
            }
        }
        let new_user = keys
            .iter()
            .filter(|k| self.kind_of(k).is_none_or(|old| old == EntryKind::Learned))
            .count();
        if self.n_user.load(Relaxed) + new_user > MAX_USER_ENTRIES {
            return Err(FdbError::UserLimit(MAX_USER_ENTRIES));
        }
        for (i, k) in keys.iter().enumerate() {
            if let Err(e) = self.insert_user(*k, port, kind, replace, now) {
                if !replace {
                    // each of those was new (an existing one fails `add`): take them back
                    for k in &keys[..i] {
                        self.remove(k);
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Removes the entries of `mac` on `port` as `bridge fdb del MAC dev PORT` does: in VLAN
    /// `vlan`, or, when `vlan` is 0, in VLAN 0 and every VLAN of `port_vids` (Linux
    /// `br_fdb_delete`); an entry of the MAC on another port stays. Returns how many went.
    pub fn remove_on_port(
        &self,
        mac: MacAddr,
        vlan: u16,
        port_vids: &crate::vlan::VlanSet,
        port: PortId,
    ) -> usize {
        std::iter::once(vlan)
            .chain(Self::port_vlans_if_untagged(vlan, port_vids).iter())
            .filter(|v| {
                let key = FdbKey::new(mac, *v);
                self.map
                    .remove_if(&key, |_, e| e.port() == port)
                    .map(|(_, e)| {
                        self.uncount(&e);
                        self.note(key, port, e.kind, Change::Removed);
                    })
                    .is_some()
            })
            .count()
    }

    /// The port's VLANs when no VLAN was given (`vlan == 0`), none otherwise.
    fn port_vlans_if_untagged(
        vlan: u16,
        port_vids: &crate::vlan::VlanSet,
    ) -> &crate::vlan::VlanSet {
        const NONE: crate::vlan::VlanSet = crate::vlan::VlanSet::EMPTY;
        if vlan == 0 {
            port_vids
        } else {
            &NONE
        }
    }

    /// Removes one entry of any kind; returns whether it existed.
    pub fn remove(&self, key: &FdbKey) -> bool {
        match self.map.remove(key) {
            Some((_, e)) => {
                self.uncount(&e);
                self.note(*key, e.port(), e.kind, Change::Removed);
                true
            }
            None => false,
        }
    }

    fn uncount(&self, e: &Entry) {
        if e.kind == EntryKind::Learned {
            self.learned.release();
            self.port_add(e.port(), -1);
        } else {
            self.n_user.fetch_sub(1, Relaxed);
        }
    }

    /// Removes entries matching `f`; returns how many.
    pub fn flush(&self, f: FlushFilter) -> usize {
        let mut n = 0;
        self.map.retain(|k, e| {
            let hit = f.port.is_none_or(|p| e.port() == p)
                && f.vlan.is_none_or(|v| k.vlan == v)
                && (!f.dynamic_only || e.kind.ages());
            if hit {
                self.uncount(e);
                self.note(*k, e.port(), e.kind, Change::Removed);
                n += 1;
            }
            !hit
        });
        self.stats.flushed_total.fetch_add(n as u64, Relaxed);
        n
    }

    /// Removes the learned and dynamic entries of `port` in the VLANs of `vids`, in one pass:
    /// a VLAN deleted from a port. Linux `nbp_vlan_delete` calls
    /// `br_fdb_delete_by_port(br, p, vid, 0)`, which keeps static entries (sticky and
    /// permanent ones are static too) and `extern_learn` ones (unless offloaded, which a
    /// userspace switch never is).
    pub fn flush_port_vlans(&self, port: PortId, vids: &crate::vlan::VlanSet) -> usize {
        let mut n = 0;
        self.map.retain(|k, e| {
            let hit = e.port() == port && e.kind.ages() && vids.contains(k.vlan);
            if hit {
                self.uncount(e);
                self.note(*k, e.port(), e.kind, Change::Removed);
                n += 1;
            }
            !hit
        });
        self.stats.flushed_total.fetch_add(n as u64, Relaxed);
        n
    }

    /// Removes the dynamic entries (learned and user-dynamic) of a port, as Linux does when
    /// a port goes down.
    pub fn flush_port_dynamic(&self, port: PortId) -> usize {
        self.flush(FlushFilter {
            port: Some(port),
            vlan: None,
            dynamic_only: true,
        })
    }

    /// Removes every entry of a port, as Linux does when a port leaves the bridge.
    pub fn flush_port(&self, port: PortId) -> usize {
        self.flush(FlushFilter {
            port: Some(port),
            ..FlushFilter::default()
        })
    }

    /// Removes ageing entries not refreshed for `ageing_ms`; returns how many.
    pub fn age_out(&self, now: Timestamp, ageing_ms: u64) -> usize {
        let mut n = 0;
        self.map.retain(|k, e| {
            let expired =
                e.kind.ages() && now.since(Timestamp(e.updated.load(Relaxed))) >= ageing_ms;
            if expired {
                self.uncount(e);
                self.note(*k, e.port(), e.kind, Change::Removed);
                n += 1;
            }
            !expired
        });
        self.stats.aged_total.fetch_add(n as u64, Relaxed);
        n
    }

    /// A copy of every entry, sorted by port, VLAN and MAC.
    pub fn snapshot(&self, now: Timestamp) -> Vec<FdbRecord> {
        let mut v: Vec<FdbRecord> = self
            .map
            .iter()
            .map(|r| Self::record_of(r.key(), r.value(), now))
            .collect();
        v.sort_by_key(|r| (r.port, r.vlan, r.mac));
        v
    }

    /// One page of the table in (VLAN, MAC) order: at most `limit` entries with keys after
    /// `after` that `keep` accepts (it sees the key and the port). One walk of the table and
    /// memory for one page (see [`crate::page`]); no copy or sort of the whole table.
    pub fn page(
        &self,
        after: Option<FdbKey>,
        limit: usize,
        keep: impl Fn(&FdbKey, PortId) -> bool,
        now: Timestamp,
    ) -> Vec<FdbRecord> {
        let mut s = crate::page::Smallest::new(after.map(|k| (k.vlan, k.mac)), limit);
        for r in self.map.iter() {
            let (k, e) = (r.key(), r.value());
            let key = (k.vlan, k.mac);
            if s.wants(&key) && keep(k, e.port()) {
                s.offer(key, || Self::record_of(k, e, now));
            }
        }
        s.into_sorted().into_iter().map(|(_, r)| r).collect()
    }

    /// One entry, as [`Fdb::snapshot`] would show it.
    pub fn record(&self, key: &FdbKey, now: Timestamp) -> Option<FdbRecord> {
        self.map
            .get(key)
            .map(|r| Self::record_of(r.key(), r.value(), now))
    }

    fn record_of(key: &FdbKey, e: &Entry, now: Timestamp) -> FdbRecord {
        FdbRecord {
            mac: key.mac,
            vlan: key.vlan,
            port: e.port(),
            kind: e.kind,
            updated_ms_ago: now.since(Timestamp(e.updated.load(Relaxed))),
            used_ms_ago: now.since(Timestamp(e.used.load(Relaxed))),
        }
    }

    /// Entries of every kind per port, in one pass.
    pub fn entries_by_port(&self) -> std::collections::HashMap<PortId, usize> {
        let mut m = std::collections::HashMap::new();
        for r in self.map.iter() {
            *m.entry(r.value().port()).or_insert(0) += 1;
        }
        m
    }

    /// Entries of every kind on one port.
    pub fn entries_of(&self, port: PortId) -> usize {
        self.map.iter().filter(|r| r.value().port() == port).count()
    }

    /// The kind of an entry, if present.
    pub fn kind_of(&self, key: &FdbKey) -> Option<EntryKind> {
        self.map.get(key).map(|e| e.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_learn_budget_never_overshoots_under_concurrent_reservations() {
        let b = std::sync::Arc::new(LearnBudget::new(1000));
        let taken: usize = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..1000).filter(|_| b.reserve()).count())
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(taken, 1000);
        assert_eq!(b.count(), 1000);
        assert!(!b.reserve());
        b.release();
        assert!(b.reserve());
        b.set_max(10);
        assert!(!b.reserve(), "above a lowered limit nothing new");
        for _ in 0..2000 {
            b.release();
        }
        assert_eq!(b.count(), 0, "never below zero");
    }

    fn key(last: u8) -> FdbKey {
        FdbKey::new(MacAddr([2, 0, 0, 0, 0, last]), 0)
    }
    const P1: PortId = PortId(1);
    const P2: PortId = PortId(2);

    #[test]
    fn learn_refresh_lookup() {
        let t = Fdb::new(10);
        assert_eq!(t.learn(key(1), P1, Timestamp(0)), LearnOutcome::Learned);
        assert_eq!(t.learn(key(1), P1, Timestamp(5)), LearnOutcome::Refreshed);
        assert_eq!(t.lookup(&key(1), Timestamp(6)), Some(P1));
        assert_eq!(t.lookup(&key(2), Timestamp(6)), None);
        assert_eq!(t.learned_count(), 1);
        assert_eq!(t.stats.learned_total.load(Relaxed), 1);
        let s = t.snapshot(Timestamp(10));
        assert_eq!(s[0].updated_ms_ago, 5);
        assert_eq!(s[0].used_ms_ago, 4);
    }

    #[test]
    fn vlan_is_part_of_the_key() {
        let t = Fdb::new(10);
        let k0 = key(1);
        let k1 = FdbKey { vlan: 1, ..k0 };
        t.learn(k0, P1, Timestamp(0));
        t.learn(k1, P2, Timestamp(0));
        assert_eq!(t.lookup(&k0, Timestamp(0)), Some(P1));
        assert_eq!(t.lookup(&k1, Timestamp(0)), Some(P2));
        assert_eq!(
            t.flush(FlushFilter {
                vlan: Some(1),
                ..Default::default()
            }),
            1
        );
        assert_eq!(
            t.lookup(&k0, Timestamp(0)),
            Some(P1),
            "vlan=1 flush keeps vlan 0"
        );
    }

    #[test]
    fn move_is_immediate_and_counted() {
        let t = Fdb::new(10);
        t.learn(key(1), P1, Timestamp(0));
        assert_eq!(t.learn(key(1), P2, Timestamp(1)), LearnOutcome::Moved(P1));
        assert_eq!(t.lookup(&key(1), Timestamp(1)), Some(P2));
        assert_eq!(t.stats.moved_total.load(Relaxed), 1);
        assert_eq!(t.learned_count(), 1);
    }

    #[test]
    fn static_moves_sticky_does_not() {
        let t = Fdb::new(10);
        t.insert_user(key(1), P1, EntryKind::Static, false, Timestamp(0))
            .unwrap();
        t.insert_user(key(2), P1, EntryKind::Sticky, false, Timestamp(0))
            .unwrap();
        assert_eq!(t.learn(key(1), P2, Timestamp(1)), LearnOutcome::Moved(P1));
        assert_eq!(t.learn(key(2), P2, Timestamp(1)), LearnOutcome::StickyKept);
        assert_eq!(t.port_of(&key(1)), Some(P2));
        assert_eq!(t.port_of(&key(2)), Some(P1));
        assert_eq!(
            t.kind_of(&key(1)),
            Some(EntryKind::Static),
            "a moved static stays static"
        );
        assert_eq!(t.learned_count(), 0);
    }

    /// Linux `br_fdb_update` on an `extern_learn` entry seen on another port: the entry moves
    /// and only loses its extern_learn flag; it stays a user entry (`BR_FDB_ADDED_BY_USER`),
    /// so it ages but `fdb_n_learned` does not count it, at the limit or not.
    #[test]
    fn extern_learn_never_ages_and_local_learning_takes_it_over() {
        let t = Fdb::new(10);
        t.insert_user(key(1), P1, EntryKind::ExternLearn, false, Timestamp(0))
            .unwrap();
        assert_eq!(t.age_out(Timestamp::from_secs(10_000), 300_000), 0);
        assert_eq!(t.learn(key(1), P1, Timestamp(5)), LearnOutcome::Refreshed);
        assert_eq!(t.kind_of(&key(1)), Some(EntryKind::ExternLearn));
        assert_eq!(t.learned_count(), 0);
        // the MAC shows up behind another port: a dynamic entry there now, and it ages
        assert_eq!(t.learn(key(1), P2, Timestamp(6)), LearnOutcome::Moved(P1));
        assert_eq!(t.kind_of(&key(1)), Some(EntryKind::Dynamic));
        assert_eq!(t.port_of(&key(1)), Some(P2));
        assert_eq!(t.learned_count(), 0, "fdb_n_learned stays as it was");
        assert_eq!(t.port_learned(P2).0, 0, "nor does the port's count grow");
        assert_eq!(t.stats.moved_total.load(Relaxed), 1);
        // a learned source still fits under a limit of 1: the taken-over entry took no place
        let t1 = Fdb::new(1);
        t1.insert_user(key(1), P1, EntryKind::ExternLearn, false, Timestamp(0))
            .unwrap();
        t1.learn(key(1), P2, Timestamp(1));
        assert_eq!(t1.learn(key(2), P2, Timestamp(1)), LearnOutcome::Learned);
        assert_eq!(t1.learned_count(), 1);
        // it ages like any dynamic entry, and its removal leaves the count alone
        assert_eq!(t.age_out(Timestamp::from_secs(10_000), 300_000), 1);
        assert!(t.is_empty());
        assert_eq!(t.learned_count(), 0);
        // at the learned limit the same happens
        let t = Fdb::new(1);
        t.learn(key(9), P1, Timestamp(0));
        t.insert_user(key(1), P1, EntryKind::ExternLearn, false, Timestamp(0))
            .unwrap();
        assert_eq!(t.learn(key(1), P2, Timestamp(6)), LearnOutcome::Moved(P1));
        assert_eq!(t.kind_of(&key(1)), Some(EntryKind::Dynamic));
        assert_eq!(t.learned_count(), 1);
    }

    /// Linux `br_fdb_add` without a VLAN adds the VLAN-0 entry and one per VLAN of the port;
    /// `br_fdb_delete` without a VLAN removes them again, and only the port's own.
    #[test]
    fn user_entry_without_vlan_covers_every_vlan_of_the_port() {
        use crate::vlan::VlanSet;
        let t = Fdb::new(10);
        let m = MacAddr([2, 0, 0, 0, 0, 1]);
        let vids = VlanSet::from_vids([1, 10, 20]).unwrap();
        t.insert_user_vids(m, 0, &vids, P1, EntryKind::Static, false, Timestamp(0))
            .unwrap();
        // (the snapshot is sorted by port, VLAN and MAC)
        let got: Vec<(u16, PortId, EntryKind)> = t
            .snapshot(Timestamp(0))
            .iter()
            .map(|r| (r.vlan, r.port, r.kind))
            .collect();
        assert_eq!(
            got,
            [0, 1, 10, 20].map(|v| (v, P1, EntryKind::Static)).to_vec()
        );
        // a VLAN given: that entry alone
        let m2 = MacAddr([2, 0, 0, 0, 0, 2]);
        t.insert_user_vids(m2, 10, &vids, P1, EntryKind::Static, false, Timestamp(0))
            .unwrap();
        assert_eq!(t.len(), 5);
        // add is all or nothing: VLAN 20 of m3 exists (learned), so nothing is added
        let m3 = MacAddr([2, 0, 0, 0, 0, 3]);
        t.learn(FdbKey::new(m3, 20), P2, Timestamp(0));
        assert_eq!(
            t.insert_user_vids(m3, 0, &vids, P1, EntryKind::Static, false, Timestamp(0)),
            Err(FdbError::Exists { mac: m3, vlan: 20 })
        );
        assert_eq!(t.len(), 6);
        assert_eq!(t.kind_of(&FdbKey::new(m3, 0)), None);
        // replace takes the learned one over and frees its place
        t.insert_user_vids(m3, 0, &vids, P1, EntryKind::Static, true, Timestamp(0))
            .unwrap();
        assert_eq!(t.learned_count(), 0);
        assert_eq!(t.port_of(&FdbKey::new(m3, 20)), Some(P1));
        assert_eq!(t.len(), 9);
        // delete without VLAN: VLAN 0 and the port's VLANs, only where the entry is the port's
        t.learn(FdbKey::new(m, 30), P2, Timestamp(0));
        t.insert_user(
            FdbKey::new(m, 10),
            P2,
            EntryKind::Static,
            true,
            Timestamp(0),
        )
        .unwrap();
        assert_eq!(t.remove_on_port(m, 0, &vids, P1), 3, "0, 1 and 20");
        assert_eq!(t.port_of(&FdbKey::new(m, 10)), Some(P2));
        assert_eq!(t.port_of(&FdbKey::new(m, 30)), Some(P2));
        assert_eq!(t.remove_on_port(m, 0, &vids, P1), 0);
        assert_eq!(t.remove_on_port(m, 30, &vids, P2), 1, "one VLAN given");
        assert_eq!(t.learned_count(), 0);
        // no VLANs on the port (VLAN filtering data absent): the VLAN-0 entry only
        let m4 = MacAddr([2, 0, 0, 0, 0, 4]);
        t.insert_user_vids(
            m4,
            0,
            &VlanSet::new(),
            P2,
            EntryKind::Static,
            false,
            Timestamp(0),
        )
        .unwrap();
        assert_eq!(t.kind_of(&FdbKey::new(m4, 0)), Some(EntryKind::Static));
        assert_eq!(t.kind_of(&FdbKey::new(m4, 1)), None);
        assert!(t
            .insert_user_vids(
                MacAddr::BROADCAST,
                0,
                &vids,
                P1,
                EntryKind::Static,
                true,
                Timestamp(0)
            )
            .is_err());
    }

    /// Linux `nbp_vlan_delete` -> `br_fdb_delete_by_port(br, p, vid, 0)`: only the port's
    /// learned and dynamic entries in that VLAN go; static, sticky and extern_learn stay.
    #[test]
    fn vlan_delete_flushes_only_dynamic_entries_of_the_port_in_it() {
        use crate::vlan::VlanSet;
        let t = Fdb::new(10);
        let k = |i: u8, vlan: u16| FdbKey::new(MacAddr([2, 0, 0, 0, 0, i]), vlan);
        t.learn(k(1, 10), P1, Timestamp(0));
        t.insert_user(k(2, 10), P1, EntryKind::Dynamic, false, Timestamp(0))
            .unwrap();
        t.insert_user(k(3, 10), P1, EntryKind::Static, false, Timestamp(0))
            .unwrap();
        t.insert_user(k(4, 10), P1, EntryKind::Sticky, false, Timestamp(0))
            .unwrap();
        t.insert_user(k(5, 10), P1, EntryKind::ExternLearn, false, Timestamp(0))
            .unwrap();
        t.learn(k(6, 20), P1, Timestamp(0)); // another VLAN
        t.learn(k(7, 10), P2, Timestamp(0)); // another port
        let n = t.flush_port_vlans(P1, &VlanSet::from_vids([10]).unwrap());
        assert_eq!(n, 2);
        for (i, vlan, kept) in [
            (1, 10, false),
            (2, 10, false),
            (3, 10, true),
            (4, 10, true),
            (5, 10, true),
            (6, 20, true),
            (7, 10, true),
        ] {
            assert_eq!(
                t.kind_of(&k(i, vlan)).is_some(),
                kept,
                "mac {i} vlan {vlan}"
            );
        }
        assert_eq!(t.learned_count(), 2);
        assert_eq!(t.port_learned(P1).0, 1);
    }

    #[test]
    fn ageing_with_injected_time() {
        let t = Fdb::new(10);
        t.learn(key(1), P1, Timestamp::from_secs(0));
        t.insert_user(key(2), P1, EntryKind::Static, false, Timestamp(0))
            .unwrap();
        t.insert_user(key(3), P1, EntryKind::Dynamic, false, Timestamp(0))
            .unwrap();
        t.learn(key(1), P1, Timestamp::from_secs(100)); // refreshed by its source
        t.lookup(&key(1), Timestamp::from_secs(350)); // use as destination does not refresh
        assert_eq!(
            t.age_out(Timestamp::from_secs(300), 300_000),
            1,
            "dynamic user entry ages"
        );
        assert_eq!(t.age_out(Timestamp::from_secs(399), 300_000), 0);
        assert_eq!(t.age_out(Timestamp::from_secs(400), 300_000), 1);
        assert_eq!(t.len(), 1, "static never ages");
        assert_eq!(t.learned_count(), 0);
        assert_eq!(t.stats.aged_total.load(Relaxed), 2);
    }

    #[test]
    fn limit_counts_only_learned_and_traffic_unaffected() {
        let t = Fdb::new(2);
        t.insert_user(key(10), P1, EntryKind::Static, false, Timestamp(0))
            .unwrap();
        t.insert_user(key(11), P1, EntryKind::Dynamic, false, Timestamp(0))
            .unwrap();
        assert_eq!(t.learn(key(1), P1, Timestamp(0)), LearnOutcome::Learned);
        assert_eq!(t.learn(key(2), P1, Timestamp(0)), LearnOutcome::Learned);
        assert_eq!(
            t.learn(key(3), P1, Timestamp(0)),
            LearnOutcome::LimitReached
        );
        assert_eq!(
            t.learn(key(1), P2, Timestamp(0)),
            LearnOutcome::Moved(P1),
            "known still moves"
        );
        assert_eq!(t.stats.learn_limit_hits_total.load(Relaxed), 1);
        assert_eq!(t.learned_count(), 2);
        assert_eq!(t.len(), 4);
        // static entries can still be added at the learned limit
        t.insert_user(key(12), P1, EntryKind::Static, false, Timestamp(0))
            .unwrap();
        t.remove(&key(1));
        assert_eq!(t.learn(key(3), P1, Timestamp(0)), LearnOutcome::Learned);
    }

    #[test]
    fn replacing_learned_with_static_frees_a_place() {
        let t = Fdb::new(1);
        t.learn(key(1), P1, Timestamp(0));
        assert!(matches!(
            t.insert_user(key(1), P2, EntryKind::Static, false, Timestamp(0)),
            Err(FdbError::Exists { .. })
        ));
        t.insert_user(key(1), P2, EntryKind::Static, true, Timestamp(0))
            .unwrap();
        assert_eq!(t.learned_count(), 0);
        assert_eq!(t.learn(key(2), P1, Timestamp(0)), LearnOutcome::Learned);
        assert!(t
            .insert_user(
                FdbKey::new(MacAddr::BROADCAST, 0),
                P1,
                EntryKind::Static,
                true,
                Timestamp(0)
            )
            .is_err());
    }

    #[test]
    fn flush_port_down_keeps_static() {
        let t = Fdb::new(10);
        t.learn(key(1), P1, Timestamp(0));
        t.learn(key(2), P2, Timestamp(0));
        t.insert_user(key(3), P1, EntryKind::Static, false, Timestamp(0))
            .unwrap();
        assert_eq!(t.flush_port_dynamic(P1), 1);
        assert_eq!(t.port_of(&key(3)), Some(P1));
        assert_eq!(t.flush_port(P1), 1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.learned_count(), 1);
        assert_eq!(t.flush(FlushFilter::default()), 1);
        assert!(t.is_empty());
        assert_eq!(t.stats.flushed_total.load(Relaxed), 3);
    }

    #[test]
    fn per_port_limit() {
        let t = Fdb::new(100);
        t.set_port_limit(P1, 2);
        assert_eq!(t.learn(key(1), P1, Timestamp(0)), LearnOutcome::Learned);
        assert_eq!(t.learn(key(2), P1, Timestamp(0)), LearnOutcome::Learned);
        assert_eq!(
            t.learn(key(3), P1, Timestamp(0)),
            LearnOutcome::LimitReached
        );
        assert_eq!(
            t.learn(key(3), P2, Timestamp(0)),
            LearnOutcome::Learned,
            "other ports unaffected"
        );
        assert_eq!(t.port_learned(P1), (2, 2));
        // a move frees a place on the old port
        assert_eq!(t.learn(key(1), P2, Timestamp(0)), LearnOutcome::Moved(P1));
        assert_eq!(t.port_learned(P1), (1, 2));
        assert_eq!(t.port_learned(P2), (2, 0));
        assert_eq!(t.learn(key(4), P1, Timestamp(0)), LearnOutcome::Learned);
        t.flush_port(P1);
        assert_eq!(t.port_learned(P1), (0, 2));
        t.age_out(Timestamp::from_secs(1000), 1000);
        assert_eq!(t.port_learned(P2), (0, 0));
        assert_eq!(t.learned_count(), 0);
    }

    #[test]
    fn concurrent_learning_respects_the_limit() {
        let t = std::sync::Arc::new(Fdb::new(1000));
        let hs: Vec<_> = (0..4u8)
            .map(|th| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..2000u32 {
                        let b = i.to_be_bytes();
                        let k = FdbKey::new(MacAddr([2, th, b[0], b[1], b[2], b[3]]), 0);
                        t.learn(k, PortId(th as u32), Timestamp(0));
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(t.len(), 1000);
        assert_eq!(t.learned_count(), 1000);
    }
}
