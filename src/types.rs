//! Leaf types shared by the table, the decision and the dataplane: a port's identity and a
//! point in time. No dependencies on the rest of the crate.

use std::fmt;

/// A port's identity inside one switch: a slot (low 16 bits) and that slot's generation (high
/// 16 bits), so an id is not reused while table entries may still refer to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct PortId(pub u32);

/// Most ports one switch holds (slots 0..MAX_PORTS of a [`PortId`]); also the most
/// connections or senders one socket listener takes (`max-conns=`).
pub const MAX_PORTS: usize = 4096;

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A point in time, in milliseconds from an origin chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// From whole seconds.
    pub const fn from_secs(s: u64) -> Self {
        Timestamp(s * 1000)
    }

    /// Milliseconds since the origin.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}
