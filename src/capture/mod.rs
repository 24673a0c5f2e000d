//! Live packet capture and port mirroring.
//!
//! - [`pcap`]: the pcapng / classic pcap writer and reader (pure, no I/O).
//! - [`filter`]: what a capture keeps (directions, VLAN, MAC, EtherType).
//! - [`ring`]: the bounded double buffer between the frame path and a capture's reader.
//! - [`mirror`]: mirror specs, their rules and counters.
//! - [`session`]: a running capture: its request, registration, and the task that turns its
//!   ring into a pcapng or pcap stream.
//!
//! Everything the frame path needs lives in [`Taps`], part of the copy-on-write port registry
//! snapshot each batch reads: the running captures, the mirrors and, per port slot, which
//! mirrors select it and whether it is a mirror output. One flag, [`Taps::armed`], tells the
//! frame path whether any of it applies; while no capture runs and no mirror exists it is the
//! only thing the frame path looks at.
//!
//! This module never reaches into the dataplane: the dataplane owns the [`Taps`] it reads
//! (and calls the frame-path hooks in `dataplane/taps.rs`), and a capture session asks the
//! running switch for what it needs through the small [`Host`] trait the dataplane implements.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::types::PortId;

/// What captures and mirrors ask of the running switch; `dataplane::Switch` implements it.
pub trait Host: Send + Sync + 'static {
    /// Runs `f` on the taps the frame path reads, with a lookup of attached ports by name, and
    /// publishes the result for the next batch. Returns what `f` returned.
    fn update_taps<R>(&self, f: impl FnOnce(&mut Taps, &dyn Fn(&str) -> Option<PortId>) -> R) -> R;
    /// Every attached port: its id and name, in the order they were attached.
    fn port_names(&self) -> Vec<(PortId, String)>;
    /// The switch-wide capture totals.
    fn capture_totals(&self) -> &Totals;
}

impl<T: Host> Host for Arc<T> {
    fn update_taps<R>(&self, f: impl FnOnce(&mut Taps, &dyn Fn(&str) -> Option<PortId>) -> R) -> R {
        (**self).update_taps(f)
    }
    fn port_names(&self) -> Vec<(PortId, String)> {
        (**self).port_names()
    }
    fn capture_totals(&self) -> &Totals {
        (**self).capture_totals()
    }
}

pub mod filter;
pub mod mirror;
pub mod pcap;
pub mod ring;
pub mod session;

pub use filter::{Directions, Filter};
pub use mirror::{Mirror, MirrorError, MirrorSpec, MAX_MIRRORS};
pub use pcap::{Direction, Format};

/// Nanoseconds since the Unix epoch, from the realtime clock (a vDSO call).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

/// One running capture as the frame path sees it: which ports, what it keeps, and its ring.
#[derive(Debug)]
pub struct Capture {
    /// Unique within the switch's life.
    pub id: u64,
    /// The ports captured; `None`: every port, also ports attached later.
    pub ports: Option<Vec<PortId>>,
    /// What is kept.
    pub filter: Filter,
    /// Bytes kept of each frame.
    pub snaplen: usize,
    /// The buffer the reader drains.
    pub ring: ring::Ring,
    /// Frames dropped (ring full or contended), by port slot.
    dropped_by_slot: Box<[AtomicU64]>,
}

impl Capture {
    /// A capture with a ring of `ring_bytes` per buffer.
    pub fn new(
        id: u64,
        ports: Option<Vec<PortId>>,
        filter: Filter,
        snaplen: usize,
        ring_bytes: usize,
    ) -> Capture {
        Capture {
            id,
            ports,
            filter,
            snaplen,
            ring: ring::Ring::new(ring_bytes),
            dropped_by_slot: (0..crate::types::MAX_PORTS)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Offers one frame seen on `port` going `dir`; `ts` is the frame's timestamp, read from
    /// the clock on first need (0: not read yet). Never blocks or allocates.
    #[inline]
    pub fn offer(&self, port: PortId, dir: Direction, ts: &mut u64, frame: &[u8]) {
        if let Some(p) = &self.ports {
            if !p.contains(&port) {
                return;
            }
        }
        if !self.filter.matches(dir, frame) {
            return;
        }
        if *ts == 0 {
            *ts = now_ns();
        }
        if !self.ring.push(port, dir, *ts, frame, self.snaplen) {
            if let Some(c) = self.dropped_by_slot.get(port_slot(port)) {
                c.fetch_add(1, Relaxed);
            }
        }
    }

    /// Frames dropped on the port in `slot`.
    pub fn dropped_on(&self, slot: usize) -> u64 {
        self.dropped_by_slot
            .get(slot)
            .map_or(0, |c| c.load(Relaxed))
    }

    /// Slots with drops.
    pub fn slots_with_drops(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.dropped_by_slot
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
    }
}

/// The slot of a port id (its low 16 bits; see [`PortId`]).
pub fn port_slot(id: PortId) -> usize {
    (id.0 & 0xffff) as usize
}

/// Switch-wide capture totals: what ended captures counted (running ones are added at scrape
/// time), and the id counter.
#[derive(Debug, Default)]
pub struct Totals {
    /// Frames captured by captures that ended.
    pub frames: AtomicU64,
    /// Frames dropped by captures that ended.
    pub dropped: AtomicU64,
    next_id: AtomicU64,
}

impl Totals {
    /// A fresh capture id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed) + 1
    }

    /// Adds an ended capture's counts.
    pub fn retire(&self, c: &Capture) {
        self.frames.fetch_add(c.ring.frames.load(Relaxed), Relaxed);
        self.dropped
            .fetch_add(c.ring.dropped.load(Relaxed), Relaxed);
    }
}

/// Captures and mirrors as the frame path reads them (a part of the registry snapshot).
#[derive(Clone, Debug, Default)]
pub struct Taps {
    armed: bool,
    captures: Vec<Arc<Capture>>,
    mirrors: Vec<Arc<Mirror>>,
    /// The output port of each mirror (same order), if attached.
    outputs: Vec<Option<PortId>>,
    /// By port slot: mirrors (bit i = `mirrors[i]`) copying frames received on the port.
    src: Vec<u32>,
    /// By port slot: mirrors copying frames sent to the port.
    dst: Vec<u32>,
    /// By port slot: the port is a mirror output.
    output: Vec<bool>,
}

impl Taps {
    /// Whether any capture runs or any mirror has its output attached: the one thing the
    /// frame path reads when nothing does.
    #[inline]
    pub fn armed(&self) -> bool {
        self.armed
    }

    /// The running captures.
    pub fn captures(&self) -> &[Arc<Capture>] {
        &self.captures
    }

    /// The mirrors, in the order they were added.
    pub fn mirrors(&self) -> &[Arc<Mirror>] {
        &self.mirrors
    }

    /// The mirror named `name`.
    pub fn mirror(&self, name: &str) -> Option<&Arc<Mirror>> {
        self.mirrors.iter().find(|m| m.spec.name == name)
    }

    /// The output port of mirror `i`, if attached.
    pub fn output_of(&self, i: usize) -> Option<PortId> {
        self.outputs.get(i).copied().flatten()
    }

    /// Mirrors copying frames received on `port`.
    #[inline]
    pub fn src_mask(&self, port: PortId) -> u32 {
        self.src.get(port_slot(port)).copied().unwrap_or(0)
    }

    /// Mirrors copying frames sent to `port`.
    #[inline]
    pub fn dst_mask(&self, port: PortId) -> u32 {
        self.dst.get(port_slot(port)).copied().unwrap_or(0)
    }

    /// Whether `port` is a mirror output (takes no part in forwarding).
    #[inline]
    pub fn is_output(&self, port: PortId) -> bool {
        self.output.get(port_slot(port)).copied().unwrap_or(false)
    }

    /// Adds a capture (the caller checks the limit).
    pub fn add_capture(&mut self, c: Arc<Capture>) {
        self.captures.push(c);
    }

    /// Removes a capture; returns whether it was there.
    pub fn remove_capture(&mut self, id: u64) -> bool {
        let n = self.captures.len();
        self.captures.retain(|c| c.id != id);
        n != self.captures.len()
    }

    /// Adds or replaces (by name) a mirror.
    pub fn put_mirror(&mut self, m: Arc<Mirror>) {
        match self.mirrors.iter().position(|x| x.spec.name == m.spec.name) {
            Some(i) => self.mirrors[i] = m,
            None => self.mirrors.push(m),
        }
    }

    /// Removes a mirror by name.
    pub fn remove_mirror(&mut self, name: &str) -> Option<Arc<Mirror>> {
        let i = self.mirrors.iter().position(|m| m.spec.name == name)?;
        Some(self.mirrors.remove(i))
    }

    /// Resolves the mirrors' port names against the attached ports (`slots` port slots) and
    /// recomputes [`Taps::armed`]. Called whenever the ports, the mirrors or the captures
    /// change. A mirror whose output is not attached copies nothing; selected ports that are
    /// not attached are skipped (they count again once attached under that name).
    pub fn rebuild<'a>(
        &mut self,
        ports: impl Iterator<Item = (PortId, &'a str)> + Clone,
        slots: usize,
    ) {
        self.src.clear();
        self.src.resize(slots, 0);
        self.dst.clear();
        self.dst.resize(slots, 0);
        self.output.clear();
        self.output.resize(slots, false);
        let by_name = |n: &str| ports.clone().find(|(_, name)| *name == n).map(|(id, _)| id);
        self.outputs = self
            .mirrors
            .iter()
            .map(|m| by_name(&m.spec.output))
            .collect();
        for o in self.outputs.iter().flatten() {
            if let Some(x) = self.output.get_mut(port_slot(*o)) {
                *x = true;
            }
        }
        for (i, m) in self.mirrors.iter().enumerate().take(MAX_MIRRORS) {
            if self.outputs[i].is_none() {
                continue;
            }
            let bit = 1u32 << i;
            for (id, name) in ports.clone() {
                let s = port_slot(id);
                if s >= slots || self.output[s] {
                    continue;
                }
                if m.spec.select_all || m.spec.select_src.iter().any(|n| n == name) {
                    self.src[s] |= bit;
                }
                if m.spec.select_all || m.spec.select_dst.iter().any(|n| n == name) {
                    self.dst[s] |= bit;
                }
            }
        }
        self.armed = !self.captures.is_empty() || self.outputs.iter().any(Option::is_some);
    }
}
