//! VLAN filtering core: 802.1Q / 802.1ad with Linux bridge `vlan_filtering 1` semantics.
//!
//! Pure code, no I/O and no allocation on the frame path (only parsing and `Display` allocate).
//! The pieces, in the order a frame meets them:
//!
//! - [`PortVlans`]: a port's VLAN membership, egress-untagged set and PVID, edited with the
//!   semantics of `bridge vlan add/del` (net/bridge/br_vlan.c `nbp_vlan_add`, `__vlan_add_flags`,
//!   `nbp_vlan_delete`) and of the bridge's `vlan_default_pvid` (`nbp_vlan_init`,
//!   `__br_vlan_set_default_pvid`).
//! - [`classify`]: ingress filtering (`__allowed_ingress`): which VLAN a received frame belongs to,
//!   or why it is dropped. A tag whose TPID is not the bridge's [`Protocol`] is payload.
//! - [`egress_allowed`] / [`egress_form`]: `br_allowed_egress` and the untagged flag used by
//!   `br_handle_vlan`.
//! - [`egress_action`] + [`apply_tag_action`] ([`push_tag`], [`pop_tag`], [`set_tci`]): the tag
//!   surgery that turns the bytes as received into the bytes an egress port must send, moving the
//!   `virtio_net_hdr` offsets along so GSO and partial-checksum frames stay valid.
//!
//! The kernel strips the outer tag of the bridge's protocol on receive and keeps it in skb
//! metadata (VID, PCP, DEI); on egress it sends no tag for an untagged VID, otherwise a tag with
//! the bridge's TPID and that metadata. This module never strips eagerly: [`Classified`] records
//! what the received bytes carry at offset 12 and [`egress_action`] says what to change.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::offload::{VnetHdr, F_NEEDS_CSUM};
use crate::wire::{ETH_HLEN, VLAN_TAG_LEN};

/// The lowest usable VLAN ID (0 marks a priority tag).
pub const VID_MIN: u16 = 1;
/// The highest usable VLAN ID (4095 is reserved).
pub const VID_MAX: u16 = 4094;
/// TPID of an 802.1Q customer tag.
pub const TPID_8021Q: u16 = 0x8100;
/// TPID of an 802.1ad service tag.
pub const TPID_8021AD: u16 = 0x88a8;

/// Bytes of destination + source MAC before the EtherType/TPID.
const MACS_LEN: usize = 12;
const WORDS: usize = 4096 / 64;

/// Checks that `vid` is a usable VLAN ID (1..=4094) and returns it.
pub fn check_vid(vid: u16) -> Result<u16, VlanError> {
    if (VID_MIN..=VID_MAX).contains(&vid) {
        Ok(vid)
    } else {
        Err(VlanError::InvalidVid(vid))
    }
}

/// Why a VLAN configuration change is refused (the kernel answers these with `EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VlanError {
    /// A VID outside 1..=4094.
    #[error(
        "VID {0} is not usable: VLAN IDs are 1-4094 (0 marks a priority tag, 4095 is reserved)"
    )]
    InvalidVid(u16),
    /// A range whose end is below its start.
    #[error("VID range {start}-{end} is empty: the end must not be below the start")]
    EmptyRange {
        /// First VID of the range.
        start: u16,
        /// Last VID of the range.
        end: u16,
    },
    /// `pvid` asked for on a range of several VIDs (Linux: "Pvid isn't allowed in a range").
    #[error("pvid cannot be set on a VID range ({start}-{end}): give a single VID")]
    PvidWithRange {
        /// First VID of the range.
        start: u16,
        /// Last VID of the range.
        end: u16,
    },
    /// An untagged VID that is not a member VID.
    #[error("VID {0} is listed as untagged but is not a member VLAN of the port")]
    UntaggedNotMember(u16),
    /// A PVID that is not a member VID.
    #[error("PVID {0} is not a member VLAN of the port")]
    PvidNotMember(u16),
}

// ---------------------------------------------------------------------------------------------
// VlanSet
// ---------------------------------------------------------------------------------------------

/// A set of VLAN IDs (1..=4094) as a 4096-bit map: no allocation, `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanSet {
    words: [u64; WORDS],
}

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet::EMPTY
    }
}

impl VlanSet {
    /// The empty set.
    pub const EMPTY: VlanSet = VlanSet { words: [0; WORDS] };

    /// The empty set.
    pub const fn new() -> VlanSet {
        VlanSet::EMPTY
    }

    /// Every usable VID, 1..=4094.
    pub fn all() -> VlanSet {
        let mut s = VlanSet { words: [!0; WORDS] };
        s.clear_bit(0);
        s.clear_bit(4095);
        s
    }

    /// Sets bit `vid` (callers pass 0..=4095); returns whether it was clear.
    fn set_bit(&mut self, vid: u16) -> bool {
        let bit = 1u64 << (vid % 64);
        match self.words.get_mut(vid as usize / 64) {
            Some(w) => {
                let was = *w & bit != 0;
                *w |= bit;
                !was
            }
            None => false,
        }
    }

    /// Clears bit `vid` (callers pass 0..=4095); returns whether it was set.
    fn clear_bit(&mut self, vid: u16) -> bool {
        let bit = 1u64 << (vid % 64);
        match self.words.get_mut(vid as usize / 64) {
            Some(w) => {
                let was = *w & bit != 0;
                *w &= !bit;
                was
            }
            None => false,
        }
    }

    /// Adds `vid`; returns whether it was new. VIDs outside 1..=4094 are refused.
    pub fn insert(&mut self, vid: u16) -> Result<bool, VlanError> {
        check_vid(vid).map(|v| self.set_bit(v))
    }

    /// Adds every VID of `range` (a VID or an inclusive range, which must lie in 1..=4094 and
    /// not be reversed); nothing is added on error.
    pub fn insert_range(&mut self, range: impl Into<VidRange>) -> Result<(), VlanError> {
        let r = range.into().checked()?;
        for vid in r.start..=r.end {
            self.set_bit(vid);
        }
        Ok(())
    }

    /// Removes `vid`; returns whether it was present.
    pub fn remove(&mut self, vid: u16) -> bool {
        if check_vid(vid).is_err() {
            return false;
        }
        self.clear_bit(vid)
    }

    /// Whether `vid` is in the set (always false for 0 and 4095 and above).
    pub fn contains(&self, vid: u16) -> bool {
        vid <= VID_MAX && self.words[vid as usize / 64] & (1 << (vid % 64)) != 0
    }

    /// Number of VIDs in the set.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// The VIDs in ascending order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            set: self,
            word: 0,
            bits: self.words[0],
        }
    }

    /// The VIDs as maximal ranges of consecutive IDs, ascending (`10;20-29` gives 10..=10, 20..=29).
    pub fn ranges(&self) -> Ranges<'_> {
        Ranges {
            inner: self.iter(),
            pending: None,
        }
    }

    /// The set of the given VIDs; fails on the first one outside 1..=4094.
    pub fn from_vids(vids: impl IntoIterator<Item = u16>) -> Result<VlanSet, VlanError> {
        let mut s = VlanSet::EMPTY;
        for vid in vids {
            s.insert(vid)?;
        }
        Ok(s)
    }

    /// The VIDs in `self` or `other`.
    pub fn union(&self, other: &VlanSet) -> VlanSet {
        let mut out = *self;
        for (a, b) in out.words.iter_mut().zip(other.words.iter()) {
            *a |= *b;
        }
        out
    }

    /// Whether every VID of `self` is in `other`.
    pub fn is_subset(&self, other: &VlanSet) -> bool {
        self.words
            .iter()
            .zip(other.words.iter())
            .all(|(a, b)| a & !b == 0)
    }
}

/// Iterator over the VIDs of a [`VlanSet`], ascending.
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    set: &'a VlanSet,
    word: usize,
    bits: u64,
}

impl Iterator for Iter<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        loop {
            if self.bits != 0 {
                let b = self.bits.trailing_zeros() as usize;
                self.bits &= self.bits - 1;
                return Some((self.word * 64 + b) as u16);
            }
            self.word += 1;
            self.bits = *self.set.words.get(self.word)?;
        }
    }
}

impl<'a> IntoIterator for &'a VlanSet {
    type Item = u16;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the maximal ranges of consecutive VIDs of a [`VlanSet`].
#[derive(Clone, Debug)]
pub struct Ranges<'a> {
    inner: Iter<'a>,
    pending: Option<(u16, u16)>,
}

impl Iterator for Ranges<'_> {
    type Item = RangeInclusive<u16>;

    fn next(&mut self) -> Option<RangeInclusive<u16>> {
        for vid in self.inner.by_ref() {
            match self.pending {
                Some((s, e)) if vid == e + 1 => self.pending = Some((s, vid)),
                Some((s, e)) => {
                    self.pending = Some((vid, vid));
                    return Some(s..=e);
                }
                None => self.pending = Some((vid, vid)),
            }
        }
        self.pending.take().map(|(s, e)| s..=e)
    }
}

impl fmt::Display for VlanSet {
    /// `10;20-29`; the empty set prints as an empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VlanSet(\"{self}\")")
    }
}

/// What is wrong with one item of a VLAN list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VlanItemError {
    /// Nothing between two separators.
    #[error("empty item (two separators in a row, or one at an end)")]
    Empty,
    /// Not a decimal number.
    #[error("not a VLAN ID (expected a number 1-4094 or a range like 20-29)")]
    NotANumber,
    /// VID 0.
    #[error("VID 0 is reserved for priority-tagged frames; VLAN IDs are 1-4094")]
    Zero,
    /// VID 4095.
    #[error("VID 4095 is reserved; VLAN IDs are 1-4094")]
    Reserved,
    /// A number above 4095.
    #[error("out of range; VLAN IDs are 1-4094")]
    OutOfRange,
    /// `29-20`.
    #[error("the range ends ({end}) below its start ({start})")]
    Reversed {
        /// First VID written.
        start: u16,
        /// Last VID written.
        end: u16,
    },
}

/// Why a string is not a VLAN list; names the offending item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad VLAN list item '{item}': {reason}")]
pub struct ParseVlanSetError {
    /// The item as written (trimmed).
    pub item: String,
    /// What is wrong with it.
    pub reason: VlanItemError,
}

fn parse_vid(s: &str) -> Result<u16, VlanItemError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VlanItemError::NotANumber);
    }
    let v = s.bytes().fold(0u32, |acc, b| {
        acc.saturating_mul(10).saturating_add((b - b'0') as u32)
    });
    match v {
        0 => Err(VlanItemError::Zero),
        4095 => Err(VlanItemError::Reserved),
        v if v > 4095 => Err(VlanItemError::OutOfRange),
        v => Ok(v as u16),
    }
}

fn parse_item(item: &str) -> Result<RangeInclusive<u16>, VlanItemError> {
    if item.is_empty() {
        return Err(VlanItemError::Empty);
    }
    match item.split_once('-') {
        None => parse_vid(item).map(|v| v..=v),
        Some((a, b)) => {
            let (start, end) = (parse_vid(a)?, parse_vid(b)?);
            if end < start {
                return Err(VlanItemError::Reversed { start, end });
            }
            Ok(start..=end)
        }
    }
}

impl FromStr for VlanSet {
    type Err = ParseVlanSetError;

    /// Parses `10;20-29` (`,` also separates items; blanks around items are ignored).
    /// An empty or blank string is the empty set.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = VlanSet::EMPTY;
        if s.trim().is_empty() {
            return Ok(set);
        }
        for item in s.split([';', ',']).map(str::trim) {
            let r = parse_item(item).map_err(|reason| ParseVlanSetError {
                item: item.to_string(),
                reason,
            })?;
            for vid in r {
                set.set_bit(vid);
            }
        }
        Ok(set)
    }
}

impl serde::Serialize for VlanSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Accepts a list string (`"10;20-29"`), a single number, or a sequence of either
/// (`[10, "20-29"]`).
impl<'de> serde::Deserialize<'de> for VlanSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SetVisitor { allow_seq: true })
    }
}

struct SetVisitor {
    allow_seq: bool,
}

struct SeqItem(VlanSet);

impl<'de> serde::Deserialize<'de> for SeqItem {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SetVisitor { allow_seq: false })
            .map(SeqItem)
    }
}

impl<'de> serde::de::Visitor<'de> for SetVisitor {
    type Value = VlanSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a VLAN ID 1-4094, a list like \"10;20-29\", or an array of those")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<VlanSet, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<VlanSet, E> {
        let mut s = VlanSet::EMPTY;
        let vid = u16::try_from(v)
            .map_err(|_| E::custom(format!("VID {v} is not usable: VLAN IDs are 1-4094")))?;
        s.insert(vid).map_err(E::custom)?;
        Ok(s)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<VlanSet, E> {
        let v = u64::try_from(v).map_err(|_| E::custom(format!("VID {v} is negative")))?;
        self.visit_u64(v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<VlanSet, A::Error> {
        if !self.allow_seq {
            return Err(serde::de::Error::custom("nested arrays are not VLAN lists"));
        }
        let mut s = VlanSet::EMPTY;
        while let Some(SeqItem(item)) = seq.next_element()? {
            s = s.union(&item);
        }
        Ok(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Protocol
// ---------------------------------------------------------------------------------------------

/// The bridge's VLAN protocol (Linux `vlan_protocol`): which TPID is a tag, anything else is payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// 802.1Q customer tags, TPID 0x8100 (the Linux default).
    #[default]
    Dot1Q,
    /// 802.1ad service tags, TPID 0x88a8.
    Dot1ad,
}

impl Protocol {
    /// The tag protocol identifier.
    pub const fn tpid(self) -> u16 {
        match self {
            Protocol::Dot1Q => TPID_8021Q,
            Protocol::Dot1ad => TPID_8021AD,
        }
    }

    /// The protocol whose TPID is `tpid`.
    pub const fn from_tpid(tpid: u16) -> Option<Protocol> {
        match tpid {
            TPID_8021Q => Some(Protocol::Dot1Q),
            TPID_8021AD => Some(Protocol::Dot1ad),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Dot1Q => "802.1Q",
            Protocol::Dot1ad => "802.1ad",
        })
    }
}

/// Why a string is not a VLAN protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a VLAN protocol (expected 802.1Q or 802.1ad)")]
pub struct ParseProtocolError(pub String);

impl FromStr for Protocol {
    type Err = ParseProtocolError;

    /// `802.1Q`, `802.1ad`, `8021q`, `8021ad`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("802.1q") || t.eq_ignore_ascii_case("8021q") {
            Ok(Protocol::Dot1Q)
        } else if t.eq_ignore_ascii_case("802.1ad") || t.eq_ignore_ascii_case("8021ad") {
            Ok(Protocol::Dot1ad)
        } else {
            Err(ParseProtocolError(s.to_string()))
        }
    }
}

impl serde::Serialize for Protocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Protocol {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// PortVlans
// ---------------------------------------------------------------------------------------------

/// A VID or an inclusive VID range, as `bridge vlan add vid 10` / `vid 20-29` takes it.
/// Checked when used: both ends in 1..=4094, end not below start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VidRange {
    /// First VID.
    pub start: u16,
    /// Last VID (equal to `start` for a single VID).
    pub end: u16,
}

impl VidRange {
    fn checked(self) -> Result<VidRange, VlanError> {
        check_vid(self.start)?;
        check_vid(self.end)?;
        if self.end < self.start {
            return Err(VlanError::EmptyRange {
                start: self.start,
                end: self.end,
            });
        }
        Ok(self)
    }
}

impl From<u16> for VidRange {
    fn from(vid: u16) -> Self {
        VidRange {
            start: vid,
            end: vid,
        }
    }
}

impl From<RangeInclusive<u16>> for VidRange {
    fn from(r: RangeInclusive<u16>) -> Self {
        VidRange {
            start: *r.start(),
            end: *r.end(),
        }
    }
}

/// A port's VLAN configuration (Linux `struct net_bridge_vlan_group` of a bridge port):
/// member VIDs, the egress-untagged subset, and the PVID.
///
/// Invariants, kept by every method: `untagged ⊆ members`, `pvid ∈ members`.
#[derive(Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "PortVlansRepr")]
pub struct PortVlans {
    pvid: Option<u16>,
    members: VlanSet,
    untagged: VlanSet,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PortVlansRepr {
    #[serde(default)]
    pvid: Option<u16>,
    members: VlanSet,
    #[serde(default)]
    untagged: VlanSet,
}

impl TryFrom<PortVlansRepr> for PortVlans {
    type Error = VlanError;

    fn try_from(r: PortVlansRepr) -> Result<Self, VlanError> {
        PortVlans::from_parts(r.pvid, r.members, r.untagged)
    }
}

impl fmt::Debug for PortVlans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortVlans")
            .field("pvid", &self.pvid)
            .field("members", &self.members)
            .field("untagged", &self.untagged)
            .finish()
    }
}

impl PortVlans {
    /// A port with no VLANs: every frame it receives is dropped and it is sent nothing.
    pub const fn none() -> PortVlans {
        PortVlans {
            pvid: None,
            members: VlanSet::EMPTY,
            untagged: VlanSet::EMPTY,
        }
    }

    /// What a port gets when it joins a bridge (`nbp_vlan_init`): VID `default_pvid` as PVID
    /// and egress untagged. A `default_pvid` of 0 (or any unusable VID, which Linux refuses to
    /// set with `EINVAL`) gives a port with no VLANs.
    pub fn new_default(default_pvid: u16) -> PortVlans {
        let mut p = PortVlans::none();
        if check_vid(default_pvid).is_ok() {
            p.members.set_bit(default_pvid);
            p.untagged.set_bit(default_pvid);
            p.pvid = Some(default_pvid);
        }
        p
    }

    /// An access port: member of `vid` only, which is its PVID and egress untagged.
    pub fn access(vid: u16) -> Result<PortVlans, VlanError> {
        let mut p = PortVlans::none();
        p.add(vid, true, true)?;
        Ok(p)
    }

    /// A trunk port: member of `tagged` (egress tagged, no PVID), plus `native` as PVID and
    /// egress untagged if given (if `native` is also in `tagged`, it becomes untagged: the later
    /// add replaces the flags, as `bridge vlan add` does).
    pub fn trunk(tagged: &VlanSet, native: Option<u16>) -> Result<PortVlans, VlanError> {
        let mut p = PortVlans::none();
        p.members = *tagged;
        if let Some(n) = native {
            p.add(n, true, true)?;
        }
        Ok(p)
    }

    /// Builds a port from explicit sets, checking `untagged ⊆ members` and `pvid ∈ members`.
    pub fn from_parts(
        pvid: Option<u16>,
        members: VlanSet,
        untagged: VlanSet,
    ) -> Result<PortVlans, VlanError> {
        if let Some(v) = untagged.iter().find(|v| !members.contains(*v)) {
            return Err(VlanError::UntaggedNotMember(v));
        }
        if let Some(p) = pvid {
            check_vid(p)?;
            if !members.contains(p) {
                return Err(VlanError::PvidNotMember(p));
            }
        }
        Ok(PortVlans {
            pvid,
            members,
            untagged,
        })
    }

    /// The PVID: the VLAN of untagged and priority-tagged frames received on this port.
    pub fn pvid(&self) -> Option<u16> {
        self.pvid
    }

    /// The member VIDs.
    pub fn members(&self) -> &VlanSet {
        &self.members
    }

    /// The member VIDs sent untagged.
    pub fn untagged(&self) -> &VlanSet {
        &self.untagged
    }

    /// Whether the port is a member of `vid`.
    pub fn is_member(&self, vid: u16) -> bool {
        self.members.contains(vid)
    }

    /// Whether `vid` leaves this port untagged (false for non-member VIDs).
    pub fn is_untagged(&self, vid: u16) -> bool {
        self.untagged.contains(vid)
    }

    /// `bridge vlan add dev P vid VIDS [pvid] [untagged]` (`nbp_vlan_add` + `__vlan_add_flags`).
    ///
    /// Adds each VID as a member. On every VID of the command, new or already present, the
    /// flags are *replaced*, not merged: without `pvid` a VID that is the current PVID stops
    /// being it (the port is left with no PVID); without `untagged` the VID becomes egress
    /// tagged. With `pvid`, the VID becomes the PVID (the previous PVID VID stays a member with
    /// its flags). `pvid` on a range of more than one VID is refused, as by the kernel.
    /// Returns whether anything changed. Nothing changes on error.
    pub fn add(
        &mut self,
        vids: impl Into<VidRange>,
        pvid: bool,
        untagged: bool,
    ) -> Result<bool, VlanError> {
        let r = vids.into().checked()?;
        if pvid && r.start != r.end {
            return Err(VlanError::PvidWithRange {
                start: r.start,
                end: r.end,
            });
        }
        let mut changed = false;
        for vid in r.start..=r.end {
            changed |= self.members.set_bit(vid);
            if pvid {
                changed |= self.pvid.replace(vid) != Some(vid);
            } else if self.pvid == Some(vid) {
                self.pvid = None;
                changed = true;
            }
            changed |= if untagged {
                self.untagged.set_bit(vid)
            } else {
                self.untagged.clear_bit(vid)
            };
        }
        Ok(changed)
    }

    /// `bridge vlan del dev P vid VIDS` (`nbp_vlan_delete` / `__vlan_del`): removes the VIDs;
    /// deleting the PVID's VID leaves the port with no PVID. VIDs the port is not a member of are
    /// skipped. Returns whether anything changed.
    pub fn del(&mut self, vids: impl Into<VidRange>) -> Result<bool, VlanError> {
        let r = vids.into().checked()?;
        let mut changed = false;
        for vid in r.start..=r.end {
            if self.members.clear_bit(vid) {
                changed = true;
                self.untagged.clear_bit(vid);
                if self.pvid == Some(vid) {
                    self.pvid = None;
                }
            }
        }
        Ok(changed)
    }

    /// Whether `vid` is this port's PVID *and* egress untagged: what Linux calls a default PVID
    /// left as the bridge configured it (`vlan_default_pvid()` in br_vlan.c).
    pub fn has_default_pvid(&self, vid: u16) -> bool {
        self.pvid == Some(vid) && self.untagged.contains(vid)
    }

    /// Applies a change of the bridge's `vlan_default_pvid` from `old` to `new` to this port,
    /// as `__br_vlan_set_default_pvid` / `br_vlan_disable_default_pvid` do for each port:
    ///
    /// - `new` = 0: VID `old` is deleted if it is still this port's PVID and untagged.
    /// - otherwise the port is left alone if its PVID was reconfigured by the user (`old` is set
    ///   but no longer PVID+untagged here) or if it is already a member of `new`; else `new` is
    ///   added as PVID+untagged and `old` is deleted.
    ///
    /// `new` above 4094 is refused (Linux: `EINVAL`). Returns whether the port changed.
    pub fn apply_default_pvid(&mut self, old: u16, new: u16) -> Result<bool, VlanError> {
        if new > VID_MAX {
            return Err(VlanError::InvalidVid(new));
        }
        if new == old {
            return Ok(false);
        }
        if new == 0 {
            if old != 0 && self.has_default_pvid(old) {
                return self.del(old);
            }
            return Ok(false);
        }
        if (old != 0 && !self.has_default_pvid(old)) || self.is_member(new) {
            return Ok(false);
        }
        self.add(new, true, true)?;
        if check_vid(old).is_ok() {
            self.del(old)?;
        }
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------------
// Ingress classification and egress decisions
// ---------------------------------------------------------------------------------------------

/// What the received bytes carry at offset 12, relative to the bridge's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagState {
    /// No tag of the bridge's TPID (a tag of another TPID counts as payload).
    Untagged,
    /// A tag of the bridge's TPID with the frame's VID.
    Tagged,
    /// A tag of the bridge's TPID with VID 0 (802.1p priority tag).
    PriorityTagged,
}

/// What ingress made of a frame (Linux `br_allowed_ingress`): the VLAN it belongs to, the
/// priority bits the kernel keeps in skb metadata, and the tag as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Classified {
    /// The VLAN the frame belongs to (1..=4094); also the FDB's VID for learning and lookup.
    pub vid: u16,
    /// Priority code point as received (0 for frames that had no tag of the bridge's TPID).
    pub pcp: u8,
    /// Drop eligible indicator as received (false for untagged frames).
    pub dei: bool,
    /// Whether the received bytes carry a tag of the bridge's protocol at offset 12.
    pub tag: TagState,
}

impl Classified {
    /// The TCI a tagged egress sends: PCP and DEI as received, VID = the classified VLAN.
    pub fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }

    /// The classification of the bytes after `action` was applied to them in place, for a
    /// dataplane that edits one buffer for several egress ports in turn.
    pub fn after(self, action: TagAction) -> Classified {
        let tag = match action {
            TagAction::None => self.tag,
            TagAction::Pop => TagState::Untagged,
            TagAction::Push { .. } | TagAction::Rewrite { .. } => TagState::Tagged,
        };
        Classified { tag, ..self }
    }
}

/// Why ingress VLAN filtering drops a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum VlanDrop {
    /// Tagged with a VID the port is not a member of (or with the reserved VID 4095).
    #[error("tagged with a VLAN the port is not a member of")]
    Filtered,
    /// Untagged or priority-tagged, and the port has no PVID.
    #[error("untagged or priority-tagged and the port has no PVID")]
    NoPvid,
    /// Shorter than an Ethernet header, or than the tag its EtherType announces.
    /// ([`crate::wire::EthernetFrame::new_checked`] refuses these first.)
    #[error("frame too short for its Ethernet header or VLAN tag")]
    Truncated,
}

impl VlanDrop {
    /// A short stable name, for metric labels.
    pub const fn label(self) -> &'static str {
        match self {
            VlanDrop::Filtered => "vlan_filtered",
            VlanDrop::NoPvid => "vlan_no_pvid",
            VlanDrop::Truncated => "vlan_truncated",
        }
    }
}

/// Ingress VLAN filtering for a frame received on `port` of a bridge speaking `proto`
/// (Linux `__allowed_ingress`):
///
/// - a tag of `proto`'s TPID with a member VID ⇒ that VLAN; with another VID (4095 included)
///   ⇒ [`VlanDrop::Filtered`];
/// - a tag with VID 0 (priority tag) ⇒ the PVID, PCP and DEI kept;
/// - no tag, or a tag of the other TPID (payload: an 802.1ad frame on an 802.1Q bridge, a
///   C-tagged frame on an 802.1ad bridge) ⇒ the PVID with PCP 0;
/// - untagged or priority-tagged on a port without PVID ⇒ [`VlanDrop::NoPvid`].
pub fn classify(frame: &[u8], proto: Protocol, port: &PortVlans) -> Result<Classified, VlanDrop> {
    let et = match frame.get(MACS_LEN..ETH_HLEN) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => return Err(VlanDrop::Truncated),
    };
    if et != proto.tpid() {
        return match port.pvid {
            Some(pvid) => Ok(Classified {
                vid: pvid,
                pcp: 0,
                dei: false,
                tag: TagState::Untagged,
            }),
            None => Err(VlanDrop::NoPvid),
        };
    }
    let tci = match frame.get(ETH_HLEN..ETH_HLEN + 4) {
        Some(b) => u16::from_be_bytes([b[0], b[1]]),
        None => return Err(VlanDrop::Truncated),
    };
    let pcp = (tci >> 13) as u8;
    let dei = tci & 0x1000 != 0;
    let vid = tci & 0x0fff;
    if vid == 0 {
        return match port.pvid {
            Some(pvid) => Ok(Classified {
                vid: pvid,
                pcp,
                dei,
                tag: TagState::PriorityTagged,
            }),
            None => Err(VlanDrop::NoPvid),
        };
    }
    if port.is_member(vid) {
        Ok(Classified {
            vid,
            pcp,
            dei,
            tag: TagState::Tagged,
        })
    } else {
        Err(VlanDrop::Filtered)
    }
}

/// Whether a frame of VLAN `vid` may leave through `port` (Linux `br_allowed_egress`):
/// the port must be a member of the VLAN.
pub fn egress_allowed(port: &PortVlans, vid: u16) -> bool {
    port.is_member(vid)
}

/// Whether an egress port sends a VLAN untagged or tagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EgressForm {
    /// No tag of the bridge's protocol (a priority tag is removed too).
    Untagged,
    /// A tag of the bridge's TPID carrying the VLAN and the received PCP/DEI.
    Tagged,
}

/// How `port` sends VLAN `vid` (`br_handle_vlan`: untagged iff the VID's untagged flag is set).
/// Meaningful only where [`egress_allowed`] is true; non-members answer `Tagged`.
pub fn egress_form(port: &PortVlans, vid: u16) -> EgressForm {
    if port.is_untagged(vid) {
        EgressForm::Untagged
    } else {
        EgressForm::Tagged
    }
}

/// The change to make to the bytes as received so that they are what an egress wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagAction {
    /// Send the bytes as they are.
    None,
    /// Remove the tag at offset 12 ([`pop_tag`]).
    Pop,
    /// Insert a tag with the bridge's TPID and this TCI at offset 12 ([`push_tag`]); a tag of
    /// the other TPID already there ends up inside it.
    Push {
        /// The TCI to write.
        tci: u16,
    },
    /// Overwrite the TCI of the tag at offset 12 ([`set_tci`]): a priority tag gets the VID.
    Rewrite {
        /// The TCI to write.
        tci: u16,
    },
}

/// What to do to frame `c` (as received) for an egress port wanting `form`.
///
/// | received \ egress | Untagged | Tagged |
/// |---|---|---|
/// | Untagged | None | Push(tci) |
/// | PriorityTagged | Pop | Rewrite(tci) |
/// | Tagged | Pop | None |
///
/// where tci = received PCP/DEI + classified VID ([`Classified::tci`]).
pub fn egress_action(c: &Classified, form: EgressForm) -> TagAction {
    match (form, c.tag) {
        (EgressForm::Untagged, TagState::Untagged) => TagAction::None,
        (EgressForm::Untagged, TagState::Tagged | TagState::PriorityTagged) => TagAction::Pop,
        (EgressForm::Tagged, TagState::Untagged) => TagAction::Push { tci: c.tci() },
        (EgressForm::Tagged, TagState::PriorityTagged) => TagAction::Rewrite { tci: c.tci() },
        (EgressForm::Tagged, TagState::Tagged) => TagAction::None,
    }
}

// ---------------------------------------------------------------------------------------------
// Tag surgery
// ---------------------------------------------------------------------------------------------

/// Why tag surgery cannot be done on a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    /// `start + len` runs past the buffer.
    #[error("frame at {start}+{len} runs past its {buf_len}-byte buffer")]
    OutOfBounds {
        /// Frame start.
        start: usize,
        /// Frame length.
        len: usize,
        /// Buffer length.
        buf_len: usize,
    },
    /// Fewer than 4 bytes before the frame.
    #[error(
        "no headroom for a VLAN tag: the frame starts at byte {0} of its buffer, 4 are needed"
    )]
    NoHeadroom(usize),
    /// Too short for the operation (push needs 14 bytes, pop and rewrite 18).
    #[error("frame of {0} bytes is too short for this VLAN tag operation")]
    TooShort(usize),
    /// A virtio_net_hdr offset points into the removed tag or would overflow 16 bits.
    #[error("virtio_net_hdr offsets (csum_start {csum_start}, hdr_len {hdr_len}) do not survive the tag change")]
    HdrOffset {
        /// `csum_start` of the header.
        csum_start: u16,
        /// `hdr_len` of the header.
        hdr_len: u16,
    },
}

fn frame_end(buf: &[u8], start: usize, len: usize) -> Result<usize, TagError> {
    start
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or(TagError::OutOfBounds {
            start,
            len,
            buf_len: buf.len(),
        })
}

/// The header after inserting (`grow`) or removing 4 bytes at offset 12: offsets at or past
/// 12 move; an offset inside a removed tag is an error.
fn shift_hdr(hdr: &VnetHdr, grow: bool) -> Result<VnetHdr, TagError> {
    let err = TagError::HdrOffset {
        csum_start: hdr.csum_start,
        hdr_len: hdr.hdr_len,
    };
    let shift = |off: u16| -> Result<u16, TagError> {
        let m = MACS_LEN as u16;
        let t = VLAN_TAG_LEN as u16;
        if off < m {
            Ok(off)
        } else if grow {
            off.checked_add(t).ok_or(err)
        } else if off < m + t {
            Err(err)
        } else {
            Ok(off - t)
        }
    };
    let mut out = *hdr;
    if hdr.flags & F_NEEDS_CSUM != 0 {
        out.csum_start = shift(hdr.csum_start)?;
    }
    if hdr.hdr_len != 0 {
        out.hdr_len = shift(hdr.hdr_len)?;
    }
    Ok(out)
}

/// Inserts a tag (`tpid`, `tci`) after the MAC addresses of the frame `buf[start..start + len]`,
/// using 4 bytes of headroom: the 12 MAC bytes move back 4 and the tag is written after them.
/// `hdr`'s `csum_start` (when `F_NEEDS_CSUM`) and `hdr_len` (when nonzero) move with the L3
/// header. Returns the new `(start, len)`. Nothing is changed on error.
pub fn push_tag(
    buf: &mut [u8],
    start: usize,
    len: usize,
    tpid: u16,
    tci: u16,
    hdr: &mut VnetHdr,
) -> Result<(usize, usize), TagError> {
    frame_end(buf, start, len)?;
    if start < VLAN_TAG_LEN {
        return Err(TagError::NoHeadroom(start));
    }
    if len < ETH_HLEN {
        return Err(TagError::TooShort(len));
    }
    let new_hdr = shift_hdr(hdr, true)?;
    let ns = start - VLAN_TAG_LEN;
    buf.copy_within(start..start + MACS_LEN, ns);
    buf[ns + MACS_LEN..ns + MACS_LEN + 2].copy_from_slice(&tpid.to_be_bytes());
    buf[ns + MACS_LEN + 2..ns + MACS_LEN + 4].copy_from_slice(&tci.to_be_bytes());
    *hdr = new_hdr;
    Ok((ns, len + VLAN_TAG_LEN))
}

/// Removes the tag after the MAC addresses of the frame `buf[start..start + len]`: the 12 MAC
/// bytes move forward 4. The tag's TPID is not checked (the caller's [`Classified`] says there
/// is one). `hdr` offsets move as in [`push_tag`]. Returns the new `(start, len)`.
pub fn pop_tag(
    buf: &mut [u8],
    start: usize,
    len: usize,
    hdr: &mut VnetHdr,
) -> Result<(usize, usize), TagError> {
    frame_end(buf, start, len)?;
    if len < ETH_HLEN + VLAN_TAG_LEN {
        return Err(TagError::TooShort(len));
    }
    let new_hdr = shift_hdr(hdr, false)?;
    buf.copy_within(start..start + MACS_LEN, start + VLAN_TAG_LEN);
    *hdr = new_hdr;
    Ok((start + VLAN_TAG_LEN, len - VLAN_TAG_LEN))
}

/// Overwrites the TCI of the tag of the frame starting at `buf[start]` (bytes 14..16), e.g. to
/// give a priority tag the PVID while keeping its PCP/DEI (build `tci` with [`Classified::tci`]).
pub fn set_tci(buf: &mut [u8], start: usize, tci: u16) -> Result<(), TagError> {
    let end = start.checked_add(ETH_HLEN + VLAN_TAG_LEN);
    match end.and_then(|e| buf.get_mut(start + ETH_HLEN..e)) {
        Some(b) => {
            b[..2].copy_from_slice(&tci.to_be_bytes());
            Ok(())
        }
        None => Err(TagError::TooShort(buf.len().saturating_sub(start))),
    }
}

/// Performs `action` on the frame `buf[start..start + len]` for a bridge speaking `proto`
/// (pushes use `proto`'s TPID). Returns the new `(start, len)`.
pub fn apply_tag_action(
    buf: &mut [u8],
    start: usize,
    len: usize,
    proto: Protocol,
    action: TagAction,
    hdr: &mut VnetHdr,
) -> Result<(usize, usize), TagError> {
    match action {
        TagAction::None => frame_end(buf, start, len).map(|_| (start, len)),
        TagAction::Pop => pop_tag(buf, start, len, hdr),
        TagAction::Push { tci } => push_tag(buf, start, len, proto.tpid(), tci, hdr),
        TagAction::Rewrite { tci } => {
            frame_end(buf, start, len)?;
            if len < ETH_HLEN + VLAN_TAG_LEN {
                return Err(TagError::TooShort(len));
            }
            set_tci(buf, start, tci).map(|_| (start, len))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::{finish, GSO_NONE, GSO_TCPV4, GSO_TCPV6, SEG_BUF};

    const DST: [u8; 6] = [0xde, 0xad, 0xbe, 0xef, 0x13, 0x37];
    const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    /// A frame from SRC to DST whose bytes from offset 12 on are `rest`.
    fn eth(rest: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(12 + rest.len());
        f.extend_from_slice(&DST);
        f.extend_from_slice(&SRC);
        f.extend_from_slice(rest);
        f
    }

    /// `frame` with a tag inserted after the MACs, built independently of push_tag.
    fn with_tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
        let mut f = frame[..12].to_vec();
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
        f.extend_from_slice(&frame[12..]);
        f
    }

    /// `frame` placed after `headroom` bytes of 0xee.
    fn in_buf(frame: &[u8], headroom: usize) -> Vec<u8> {
        let mut b = vec![0xee; headroom];
        b.extend_from_slice(frame);
        b
    }

    fn set(s: &str) -> VlanSet {
        s.parse().unwrap()
    }

    // ---- VlanSet ---------------------------------------------------------------------------

    #[test]
    fn vlanset_parses_and_prints_compact_ranges() {
        let s = set("10;20-29");
        assert_eq!(s.len(), 11);
        assert!(s.contains(10) && s.contains(20) && s.contains(29));
        assert!(!s.contains(11) && !s.contains(19) && !s.contains(30));
        assert_eq!(s.to_string(), "10;20-29");
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![10..=10, 20..=29]);
        // ',' separates too, blanks are ignored, order and overlap do not matter
        assert_eq!(set(" 5 , 3;4 ").to_string(), "3-5");
        assert_eq!(set("1-10;5-15;16").to_string(), "1-16");
        assert_eq!(set("20 - 22").to_string(), "20-22");
        assert_eq!(set("007").to_string(), "7");
        // two adjacent VIDs print as a range
        assert_eq!(set("7;8").to_string(), "7-8");
        // extremes
        assert_eq!(set("1;4094").to_string(), "1;4094");
        let all = set("1-4094");
        assert_eq!(all.len(), 4094);
        assert_eq!(all, VlanSet::all());
        assert_eq!(all.to_string(), "1-4094");
        // empty
        assert!(set("").is_empty());
        assert!(set("  ").is_empty());
        assert_eq!(VlanSet::new().to_string(), "");
        assert_eq!(VlanSet::new().ranges().count(), 0);
        // display parses back to the same set
        let odd = VlanSet::from_vids([1, 3, 5, 6, 7, 64, 65, 127, 128, 4093, 4094]).unwrap();
        assert_eq!(odd.to_string(), "1;3;5-7;64-65;127-128;4093-4094");
        assert_eq!(set(&odd.to_string()), odd);
        assert_eq!(
            format!("{odd:?}"),
            "VlanSet(\"1;3;5-7;64-65;127-128;4093-4094\")"
        );
    }

    #[test]
    fn vlanset_parse_errors_name_the_item() {
        let err = |s: &str| s.parse::<VlanSet>().unwrap_err();
        let e = err("10;0");
        assert_eq!((e.item.as_str(), e.reason), ("0", VlanItemError::Zero));
        assert!(e.to_string().contains("'0'"), "{e}");
        assert!(e.to_string().contains("priority"), "{e}");
        let e = err("4095");
        assert_eq!(e.reason, VlanItemError::Reserved);
        assert!(e.to_string().contains("4095 is reserved"), "{e}");
        assert_eq!(err("10;4090-4095").item, "4090-4095");
        assert_eq!(err("10;4090-4095").reason, VlanItemError::Reserved);
        assert_eq!(err("5000").reason, VlanItemError::OutOfRange);
        assert_eq!(err("99999999999999").reason, VlanItemError::OutOfRange);
        assert_eq!(err("1;abc").item, "abc");
        assert_eq!(err("1;abc").reason, VlanItemError::NotANumber);
        assert_eq!(err("+5").reason, VlanItemError::NotANumber);
        assert_eq!(err("-5").reason, VlanItemError::NotANumber);
        assert_eq!(err("10-").reason, VlanItemError::NotANumber);
        assert_eq!(err("1-2-3").reason, VlanItemError::NotANumber);
        assert_eq!(err("10;;20").reason, VlanItemError::Empty);
        assert_eq!(err("10;").reason, VlanItemError::Empty);
        assert_eq!(err("0-10").reason, VlanItemError::Zero);
        let e = err("29-20");
        assert_eq!(e.reason, VlanItemError::Reversed { start: 29, end: 20 });
        assert_eq!(
            e.to_string(),
            "bad VLAN list item '29-20': the range ends (20) below its start (29)"
        );
    }

    #[test]
    fn vlanset_operations() {
        let mut s = VlanSet::new();
        assert_eq!(s.insert(0), Err(VlanError::InvalidVid(0)));
        assert_eq!(s.insert(4095), Err(VlanError::InvalidVid(4095)));
        assert_eq!(s.insert(u16::MAX), Err(VlanError::InvalidVid(u16::MAX)));
        assert_eq!(s.insert(4094), Ok(true));
        assert_eq!(s.insert(4094), Ok(false));
        assert_eq!(s.insert(1), Ok(true));
        assert!(!s.contains(0) && !s.contains(4095) && !s.contains(u16::MAX));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1, 4094]);
        assert_eq!((&s).into_iter().count(), 2);
        assert!(!s.remove(0) && !s.remove(4095) && !s.remove(u16::MAX));
        assert!(s.remove(1));
        assert!(!s.remove(1));
        assert_eq!(s.len(), 1);
        assert!(s.insert_range(100..=163).is_ok());
        assert_eq!(s.len(), 65);
        assert_eq!(
            s.insert_range(VidRange { start: 10, end: 5 }),
            Err(VlanError::EmptyRange { start: 10, end: 5 })
        );
        assert_eq!(
            s.insert_range(4000..=4095),
            Err(VlanError::InvalidVid(4095))
        );
        assert_eq!(s.len(), 65, "a refused range inserts nothing");
        let a = set("1-10");
        let b = set("5-20");
        assert_eq!(a.union(&b), set("1-20"));
        assert!(set("2-3").is_subset(&a));
        assert!(!b.is_subset(&a));
        assert!(VlanSet::new().is_subset(&a));
        assert_eq!(
            VlanSet::from_vids([1, 0]),
            Err(VlanError::InvalidVid(0)),
            "from_vids refuses VID 0"
        );
        assert_eq!(VlanSet::all().iter().next(), Some(1));
        assert_eq!(VlanSet::all().iter().last(), Some(4094));
        // the set is plain data: Copy, no allocation
        let c = a;
        assert_eq!(c, a);
    }

    #[test]
    fn vlanset_serde() {
        let de = |j: &str| serde_json::from_str::<VlanSet>(j);
        assert_eq!(de("\"10;20-29\"").unwrap(), set("10;20-29"));
        assert_eq!(de("10").unwrap(), set("10"));
        assert_eq!(de("[10, \"20-29\", \"30,31\"]").unwrap(), set("10;20-31"));
        assert_eq!(de("[]").unwrap(), VlanSet::new());
        assert!(de("0").is_err());
        assert!(de("4095").is_err());
        let e = de("70000").unwrap_err().to_string();
        assert!(e.contains("VID 70000 is not usable"), "{e}");
        assert!(de("-1").is_err());
        assert!(de("[[1]]").is_err());
        let e = de("\"10;x\"").unwrap_err().to_string();
        assert!(e.contains("'x'"), "{e}");
        assert_eq!(
            serde_json::to_string(&set("10;20-29")).unwrap(),
            "\"10;20-29\""
        );
    }

    // ---- Protocol --------------------------------------------------------------------------

    #[test]
    fn protocol_parse_print_serde() {
        for (s, p) in [
            ("802.1Q", Protocol::Dot1Q),
            ("802.1q", Protocol::Dot1Q),
            ("8021Q", Protocol::Dot1Q),
            ("8021q", Protocol::Dot1Q),
            ("802.1ad", Protocol::Dot1ad),
            ("802.1AD", Protocol::Dot1ad),
            ("8021ad", Protocol::Dot1ad),
            (" 8021AD ", Protocol::Dot1ad),
        ] {
            assert_eq!(s.parse::<Protocol>(), Ok(p), "{s}");
        }
        let e = "802.1x".parse::<Protocol>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "'802.1x' is not a VLAN protocol (expected 802.1Q or 802.1ad)"
        );
        assert_eq!(Protocol::Dot1Q.to_string(), "802.1Q");
        assert_eq!(Protocol::Dot1ad.to_string(), "802.1ad");
        assert_eq!(Protocol::default(), Protocol::Dot1Q);
        assert_eq!(Protocol::Dot1Q.tpid(), 0x8100);
        assert_eq!(Protocol::Dot1ad.tpid(), 0x88a8);
        assert_eq!(Protocol::from_tpid(0x88a8), Some(Protocol::Dot1ad));
        assert_eq!(Protocol::from_tpid(0x0800), None);
        assert_eq!(
            serde_json::to_string(&Protocol::Dot1ad).unwrap(),
            "\"802.1ad\""
        );
        assert_eq!(
            serde_json::from_str::<Protocol>("\"802.1Q\"").unwrap(),
            Protocol::Dot1Q
        );
        assert_eq!(
            serde_json::from_str::<Protocol>("\"8021ad\"").unwrap(),
            Protocol::Dot1ad
        );
        assert!(serde_json::from_str::<Protocol>("\"qinq\"").is_err());
    }

    // ---- PortVlans -------------------------------------------------------------------------

    fn port(pvid: Option<u16>, members: &str, untagged: &str) -> PortVlans {
        PortVlans::from_parts(pvid, set(members), set(untagged)).unwrap()
    }

    #[test]
    fn nbp_vlan_init_gives_default_pvid_untagged() {
        // V1: on join a port gets default_pvid as PVID + egress untagged
        let p = PortVlans::new_default(1);
        assert_eq!(p, port(Some(1), "1", "1"));
        assert!(p.is_member(1) && p.is_untagged(1) && p.has_default_pvid(1));
        // vlan_default_pvid 0: nothing
        assert_eq!(PortVlans::new_default(0), PortVlans::none());
        assert_eq!(PortVlans::new_default(4095), PortVlans::none());
        assert_eq!(PortVlans::default(), PortVlans::none());
        assert_eq!(PortVlans::new_default(10).pvid(), Some(10));
    }

    #[test]
    fn vlan_add_flags_without_pvid_clears_the_pvid() {
        // __vlan_add_flags: no BRIDGE_VLAN_INFO_PVID => __vlan_delete_pvid(vg, vid)
        let mut p = PortVlans::new_default(1);
        assert_eq!(p.add(1, false, true), Ok(true));
        assert_eq!(p, port(None, "1", "1"));
        // adding another VID without pvid leaves the PVID alone (it is not that VID)
        let mut p = PortVlans::new_default(1);
        assert_eq!(p.add(10, false, false), Ok(true));
        assert_eq!(p, port(Some(1), "1;10", "1"));
    }

    #[test]
    fn vlan_add_flags_without_untagged_makes_it_tagged() {
        // __vlan_add_flags: no BRIDGE_VLAN_INFO_UNTAGGED => v->flags &= ~UNTAGGED
        let mut p = PortVlans::new_default(1);
        assert_eq!(p.add(1, true, false), Ok(true));
        assert_eq!(p, port(Some(1), "1", ""));
        assert_eq!(
            p.add(1, true, false),
            Ok(false),
            "same flags: nothing changed"
        );
        assert_eq!(p.add(1, true, true), Ok(true));
        assert_eq!(p, port(Some(1), "1", "1"));
    }

    #[test]
    fn vlan_add_pvid_moves_the_pvid_and_keeps_the_old_vid() {
        // __vlan_add_pvid sets vg->pvid; the old PVID VLAN keeps membership and flags
        let mut p = PortVlans::new_default(1);
        assert_eq!(p.add(10, true, false), Ok(true));
        assert_eq!(p, port(Some(10), "1;10", "1"));
        assert!(!p.has_default_pvid(1));
    }

    #[test]
    fn vlan_add_range_rules() {
        // br_vlan_valid_range: "Pvid isn't allowed in a range" (EINVAL); nothing changes
        let mut p = PortVlans::new_default(1);
        assert_eq!(
            p.add(10..=20, true, false),
            Err(VlanError::PvidWithRange { start: 10, end: 20 })
        );
        assert_eq!(p, PortVlans::new_default(1));
        // a one-VID range is a single VID
        assert_eq!(p.add(30..=30, true, true), Ok(true));
        assert_eq!(p.pvid(), Some(30));
        // flags are replaced on every VID of the range, including the PVID's
        let mut p = PortVlans::new_default(1);
        assert_eq!(p.add(1..=10, false, false), Ok(true));
        assert_eq!(p, port(None, "1-10", ""));
        assert_eq!(p.add(5..=6, false, true), Ok(true));
        assert_eq!(p, port(None, "1-10", "5-6"));
        // "End vlan id is less than or equal to start", invalid VIDs
        assert_eq!(
            p.add(VidRange { start: 20, end: 10 }, false, false),
            Err(VlanError::EmptyRange { start: 20, end: 10 })
        );
        assert_eq!(p.add(0, false, false), Err(VlanError::InvalidVid(0)));
        assert_eq!(p.add(4095, false, false), Err(VlanError::InvalidVid(4095)));
        assert_eq!(
            p.add(4000..=4095, false, false),
            Err(VlanError::InvalidVid(4095))
        );
        assert_eq!(p, port(None, "1-10", "5-6"), "refused adds change nothing");
    }

    #[test]
    fn vlan_del_of_the_pvid_clears_the_pvid() {
        // __vlan_del: __vlan_delete_pvid(vg, v->vid)
        let mut p = PortVlans::new_default(1);
        p.add(10..=12, false, false).unwrap();
        assert_eq!(p.del(1), Ok(true));
        assert_eq!(p, port(None, "10-12", ""));
        // deleting a VID the port does not have is not an error and changes nothing
        assert_eq!(p.del(99), Ok(false));
        assert_eq!(p.del(11..=20), Ok(true));
        assert_eq!(p, port(None, "10", ""));
        assert_eq!(p.del(0), Err(VlanError::InvalidVid(0)));
        // deleting another VID keeps the PVID
        let mut p = PortVlans::access(5).unwrap();
        p.add(6, false, false).unwrap();
        p.del(6).unwrap();
        assert_eq!(p, PortVlans::access(5).unwrap());
    }

    #[test]
    fn access_and_trunk_shorthands() {
        let a = PortVlans::access(10).unwrap();
        assert_eq!(a, port(Some(10), "10", "10"));
        assert_eq!(PortVlans::access(0), Err(VlanError::InvalidVid(0)));
        assert_eq!(PortVlans::access(4095), Err(VlanError::InvalidVid(4095)));

        let t = PortVlans::trunk(&set("10;20-29"), None).unwrap();
        assert_eq!(t, port(None, "10;20-29", ""));
        let t = PortVlans::trunk(&set("10;20-29"), Some(1)).unwrap();
        assert_eq!(t, port(Some(1), "1;10;20-29", "1"));
        // native inside the list: untagged + PVID wins, like a later `bridge vlan add`
        let t = PortVlans::trunk(&set("10;20-29"), Some(20)).unwrap();
        assert_eq!(t, port(Some(20), "10;20-29", "20"));
        assert_eq!(
            PortVlans::trunk(&set("10"), Some(4095)),
            Err(VlanError::InvalidVid(4095))
        );
    }

    #[test]
    fn from_parts_keeps_the_invariants_and_serde() {
        assert_eq!(
            PortVlans::from_parts(None, set("10"), set("10;11")),
            Err(VlanError::UntaggedNotMember(11))
        );
        assert_eq!(
            PortVlans::from_parts(Some(5), set("10"), set("")),
            Err(VlanError::PvidNotMember(5))
        );
        assert_eq!(
            PortVlans::from_parts(Some(0), set("10"), set("")),
            Err(VlanError::InvalidVid(0))
        );
        let p = port(Some(1), "1;10;20-29", "1");
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(j, r#"{"pvid":1,"members":"1;10;20-29","untagged":"1"}"#);
        assert_eq!(serde_json::from_str::<PortVlans>(&j).unwrap(), p);
        let t: PortVlans = serde_json::from_str(r#"{"members":[10,"20-29"]}"#).unwrap();
        assert_eq!(t, PortVlans::trunk(&set("10;20-29"), None).unwrap());
        let e = serde_json::from_str::<PortVlans>(r#"{"pvid":5,"members":"10"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("PVID 5 is not a member"), "{e}");
        assert!(format!("{p:?}").contains("\"1;10;20-29\""));
    }

    #[test]
    fn br_vlan_set_default_pvid_updates_only_untouched_ports() {
        // __br_vlan_set_default_pvid, per port
        let mut untouched = PortVlans::new_default(1);
        let mut moved = PortVlans::new_default(1);
        moved.add(5, true, true).unwrap(); // user moved the PVID
        let mut tagged1 = PortVlans::new_default(1);
        tagged1.add(1, true, false).unwrap(); // user made VID 1 tagged
        let mut has_new = PortVlans::new_default(1);
        has_new.add(10, false, false).unwrap(); // already a member of the new default

        assert_eq!(untouched.apply_default_pvid(1, 10), Ok(true));
        assert_eq!(untouched, port(Some(10), "10", "10"));
        assert_eq!(moved.apply_default_pvid(1, 10), Ok(false));
        assert_eq!(moved, port(Some(5), "1;5", "1;5"));
        assert_eq!(tagged1.apply_default_pvid(1, 10), Ok(false));
        assert_eq!(tagged1, port(Some(1), "1", ""));
        assert_eq!(has_new.apply_default_pvid(1, 10), Ok(false));
        assert_eq!(has_new, port(Some(1), "1;10", "1"));

        // br_vlan_disable_default_pvid: new 0 deletes the old default where still default
        let mut p = PortVlans::new_default(1);
        assert_eq!(p.apply_default_pvid(1, 0), Ok(true));
        assert_eq!(p, PortVlans::none());
        let mut t = tagged1.clone();
        assert_eq!(t.apply_default_pvid(1, 0), Ok(false));
        assert_eq!(t, tagged1);

        // from no default (0): ports without the new VID get it, others are left alone
        let mut empty = PortVlans::none();
        assert_eq!(empty.apply_default_pvid(0, 1), Ok(true));
        assert_eq!(empty, PortVlans::new_default(1));
        let mut trunk = PortVlans::trunk(&set("10"), None).unwrap();
        assert_eq!(trunk.apply_default_pvid(0, 1), Ok(true));
        assert_eq!(trunk, port(Some(1), "1;10", "1"));
        let mut mem = port(None, "1", "");
        assert_eq!(mem.apply_default_pvid(0, 1), Ok(false));

        // same value, invalid value
        let mut p = PortVlans::new_default(1);
        assert_eq!(p.apply_default_pvid(1, 1), Ok(false));
        assert_eq!(
            p.apply_default_pvid(1, 4095),
            Err(VlanError::InvalidVid(4095))
        );
        assert_eq!(p, PortVlans::new_default(1));
    }

    // ---- classify --------------------------------------------------------------------------

    const IPV4: [u8; 2] = [0x08, 0x00];

    fn untagged_frame() -> Vec<u8> {
        eth(&[0x08, 0x00, 0x45, 0, 0, 20, 1, 2, 3, 4, 5, 6])
    }

    fn tci(pcp: u16, dei: bool, vid: u16) -> u16 {
        (pcp << 13) | ((dei as u16) << 12) | vid
    }

    #[test]
    fn classify_untagged_gets_the_pvid() {
        let p = PortVlans::new_default(1);
        assert_eq!(
            classify(&untagged_frame(), Protocol::Dot1Q, &p),
            Ok(Classified {
                vid: 1,
                pcp: 0,
                dei: false,
                tag: TagState::Untagged
            })
        );
    }

    #[test]
    fn classify_tagged_member_and_non_member() {
        let p = PortVlans::trunk(&set("10;20"), Some(1)).unwrap();
        let f = with_tag(&untagged_frame(), 0x8100, tci(5, true, 10));
        assert_eq!(
            classify(&f, Protocol::Dot1Q, &p),
            Ok(Classified {
                vid: 10,
                pcp: 5,
                dei: true,
                tag: TagState::Tagged
            })
        );
        // V3: tagged with a VID not configured on the port => dropped
        let f = with_tag(&untagged_frame(), 0x8100, tci(0, false, 30));
        assert_eq!(classify(&f, Protocol::Dot1Q, &p), Err(VlanDrop::Filtered));
        // a tagged member frame is accepted on a port without PVID
        let t = PortVlans::trunk(&set("10"), None).unwrap();
        let f = with_tag(&untagged_frame(), 0x8100, tci(0, false, 10));
        assert_eq!(classify(&f, Protocol::Dot1Q, &t).map(|c| c.vid), Ok(10));
    }

    #[test]
    fn classify_priority_tagged_gets_the_pvid_and_keeps_pcp() {
        // __allowed_ingress: "We update only VID field and preserve PCP field."
        let p = PortVlans::new_default(1);
        let f = with_tag(&untagged_frame(), 0x8100, tci(6, true, 0));
        assert_eq!(
            classify(&f, Protocol::Dot1Q, &p),
            Ok(Classified {
                vid: 1,
                pcp: 6,
                dei: true,
                tag: TagState::PriorityTagged
            })
        );
    }

    #[test]
    fn classify_without_pvid_drops_untagged_and_priority_tagged() {
        // V2: no PVID => dropped
        let t = PortVlans::trunk(&set("1-100"), None).unwrap();
        assert_eq!(
            classify(&untagged_frame(), Protocol::Dot1Q, &t),
            Err(VlanDrop::NoPvid)
        );
        let f = with_tag(&untagged_frame(), 0x8100, tci(3, false, 0));
        assert_eq!(classify(&f, Protocol::Dot1Q, &t), Err(VlanDrop::NoPvid));
        assert_eq!(
            classify(&untagged_frame(), Protocol::Dot1Q, &PortVlans::none()),
            Err(VlanDrop::NoPvid)
        );
    }

    #[test]
    fn classify_other_tpid_is_payload() {
        // V3: an 802.1ad frame on an 802.1Q bridge is untagged => PVID, PCP 0
        let p = PortVlans::trunk(&set("3;5"), Some(1)).unwrap();
        let qinq = eth(&[
            0x88, 0xa8, 0xe0, 0x03, 0x81, 0x00, 0xa0, 0x05, 0x08, 0x00, 0xaa,
        ]);
        assert_eq!(
            classify(&qinq, Protocol::Dot1Q, &p),
            Ok(Classified {
                vid: 1,
                pcp: 0,
                dei: false,
                tag: TagState::Untagged
            })
        );
        // a C-tagged frame on an 802.1ad bridge is untagged => PVID, PCP 0
        let ctag = with_tag(&untagged_frame(), 0x8100, tci(7, true, 5));
        assert_eq!(
            classify(&ctag, Protocol::Dot1ad, &p),
            Ok(Classified {
                vid: 1,
                pcp: 0,
                dei: false,
                tag: TagState::Untagged
            })
        );
        // and an S-tag is a tag on an 802.1ad bridge
        assert_eq!(
            classify(&qinq, Protocol::Dot1ad, &p),
            Ok(Classified {
                vid: 3,
                pcp: 7,
                dei: false,
                tag: TagState::Tagged
            })
        );
    }

    #[test]
    fn classify_vid_4095_is_filtered() {
        let p = PortVlans::trunk(&VlanSet::all(), Some(1)).unwrap();
        let f = with_tag(&untagged_frame(), 0x8100, 0x0fff);
        assert_eq!(classify(&f, Protocol::Dot1Q, &p), Err(VlanDrop::Filtered));
    }

    #[test]
    fn classify_truncated_frames_do_not_panic() {
        let p = PortVlans::new_default(1);
        for n in 0..14 {
            assert_eq!(
                classify(&vec![0u8; n], Protocol::Dot1Q, &p),
                Err(VlanDrop::Truncated)
            );
        }
        let f = with_tag(&untagged_frame(), 0x8100, 10);
        for n in 14..18 {
            assert_eq!(
                classify(&f[..n], Protocol::Dot1Q, &p),
                Err(VlanDrop::Truncated)
            );
        }
        // a short tag of the other protocol is just payload
        assert_eq!(
            classify(&f[..16], Protocol::Dot1ad, &p).map(|c| c.vid),
            Ok(1)
        );
        assert_eq!(VlanDrop::NoPvid.label(), "vlan_no_pvid");
        assert_eq!(VlanDrop::Filtered.label(), "vlan_filtered");
    }

    // ---- egress ----------------------------------------------------------------------------

    #[test]
    fn egress_membership_and_form() {
        // V4: egress only to members; untagged flag decides the form
        let p = PortVlans::trunk(&set("10;20"), Some(1)).unwrap();
        assert!(egress_allowed(&p, 1) && egress_allowed(&p, 10));
        assert!(!egress_allowed(&p, 30) && !egress_allowed(&p, 0) && !egress_allowed(&p, 4095));
        assert_eq!(egress_form(&p, 1), EgressForm::Untagged);
        assert_eq!(egress_form(&p, 10), EgressForm::Tagged);
    }

    #[test]
    fn egress_action_table() {
        let c = |tag| Classified {
            vid: 10,
            pcp: 5,
            dei: true,
            tag,
        };
        let t = tci(5, true, 10);
        use EgressForm as F;
        use TagState as S;
        assert_eq!(egress_action(&c(S::Untagged), F::Untagged), TagAction::None);
        assert_eq!(egress_action(&c(S::Tagged), F::Untagged), TagAction::Pop);
        assert_eq!(
            egress_action(&c(S::PriorityTagged), F::Untagged),
            TagAction::Pop
        );
        assert_eq!(
            egress_action(&c(S::Untagged), F::Tagged),
            TagAction::Push { tci: t }
        );
        assert_eq!(egress_action(&c(S::Tagged), F::Tagged), TagAction::None);
        assert_eq!(
            egress_action(&c(S::PriorityTagged), F::Tagged),
            TagAction::Rewrite { tci: t }
        );
        // untagged frames get PCP 0 from classify
        let p = PortVlans::new_default(7);
        let u = classify(&untagged_frame(), Protocol::Dot1Q, &p).unwrap();
        assert_eq!(egress_action(&u, F::Tagged), TagAction::Push { tci: 7 });
    }

    /// Runs the egress pipeline on a copy of `frame` with 4 bytes of headroom.
    fn egress_bytes(
        frame: &[u8],
        proto: Protocol,
        ingress: &PortVlans,
        egress: &PortVlans,
    ) -> Option<Vec<u8>> {
        let c = classify(frame, proto, ingress).ok()?;
        if !egress_allowed(egress, c.vid) {
            return None;
        }
        let a = egress_action(&c, egress_form(egress, c.vid));
        let mut buf = in_buf(frame, 4);
        let mut h = VnetHdr::default();
        let (s, l) = apply_tag_action(&mut buf, 4, frame.len(), proto, a, &mut h).unwrap();
        Some(buf[s..s + l].to_vec())
    }

    #[test]
    fn egress_bytes_per_case() {
        let access1 = PortVlans::new_default(1);
        let trunk = PortVlans::trunk(&set("1;10"), None).unwrap();
        let u = untagged_frame();
        // untagged in, untagged out: unchanged
        assert_eq!(
            egress_bytes(&u, Protocol::Dot1Q, &access1, &access1),
            Some(u.clone())
        );
        // untagged in, tagged out: a tag with VID 1, PCP 0
        assert_eq!(
            egress_bytes(&u, Protocol::Dot1Q, &access1, &trunk),
            Some(with_tag(&u, 0x8100, 1))
        );
        // tagged in, untagged out: popped
        let t = with_tag(&u, 0x8100, tci(3, false, 1));
        assert_eq!(
            egress_bytes(&t, Protocol::Dot1Q, &trunk, &access1),
            Some(u.clone())
        );
        // tagged in, tagged out: unchanged, PCP/DEI as received
        let t = with_tag(&u, 0x8100, tci(3, true, 10));
        assert_eq!(
            egress_bytes(&t, Protocol::Dot1Q, &trunk, &trunk),
            Some(t.clone())
        );
        // tagged VID 10 to an access port of VID 1: not a member
        assert_eq!(egress_bytes(&t, Protocol::Dot1Q, &trunk, &access1), None);
        // priority-tagged in, tagged out: VID rewritten, PCP/DEI kept
        let pt = with_tag(&u, 0x8100, tci(6, true, 0));
        assert_eq!(
            egress_bytes(&pt, Protocol::Dot1Q, &access1, &trunk),
            Some(with_tag(&u, 0x8100, tci(6, true, 1)))
        );
        // priority-tagged in, untagged out: the priority tag is removed
        assert_eq!(
            egress_bytes(&pt, Protocol::Dot1Q, &access1, &access1),
            Some(u.clone())
        );
        // 802.1ad bridge: a C-tagged frame egressing tagged gets the S-tag outside the C-tag
        let ctag = with_tag(&u, 0x8100, tci(7, false, 5));
        assert_eq!(
            egress_bytes(&ctag, Protocol::Dot1ad, &access1, &trunk),
            Some(with_tag(&ctag, 0x88a8, 1))
        );
        // ... and untagged it leaves as received, C-tag and all
        assert_eq!(
            egress_bytes(&ctag, Protocol::Dot1ad, &access1, &access1),
            Some(ctag.clone())
        );
        // 802.1Q bridge: an S-tagged frame egressing tagged gets a C-tag outside it
        let stag = with_tag(&u, 0x88a8, 3);
        assert_eq!(
            egress_bytes(&stag, Protocol::Dot1Q, &access1, &trunk),
            Some(with_tag(&stag, 0x8100, 1))
        );
    }

    #[test]
    fn one_buffer_for_several_egress_ports_via_after() {
        // a flood to [untagged, tagged, untagged] editing one buffer in turn
        let access1 = PortVlans::new_default(1);
        let trunk = PortVlans::trunk(&set("1"), None).unwrap();
        let u = untagged_frame();
        let mut c = classify(&u, Protocol::Dot1Q, &access1).unwrap();
        let mut buf = in_buf(&u, 4);
        let (mut s, mut l) = (4, u.len());
        let mut h = VnetHdr::default();
        for (egress, want) in [
            (&access1, u.clone()),
            (&trunk, with_tag(&u, 0x8100, 1)),
            (&access1, u.clone()),
            (&trunk, with_tag(&u, 0x8100, 1)),
        ] {
            let a = egress_action(&c, egress_form(egress, c.vid));
            (s, l) = apply_tag_action(&mut buf, s, l, Protocol::Dot1Q, a, &mut h).unwrap();
            c = c.after(a);
            assert_eq!(buf[s..s + l], want[..]);
        }
    }

    // ---- tag surgery -----------------------------------------------------------------------

    #[test]
    fn push_and_pop_are_byte_exact() {
        let f = untagged_frame();
        let mut buf = in_buf(&f, 8);
        let mut h = VnetHdr::default();
        let (s, l) = push_tag(&mut buf, 8, f.len(), 0x8100, 0xa00a, &mut h).unwrap();
        assert_eq!((s, l), (4, f.len() + 4));
        assert_eq!(buf[s..s + l], with_tag(&f, 0x8100, 0xa00a)[..]);
        assert_eq!(buf[..4], [0xee; 4], "nothing written before the new start");
        assert_eq!(h, VnetHdr::default());
        // a second tag goes outside the first (QinQ)
        let (s2, l2) = push_tag(&mut buf, s, l, 0x88a8, 0x0003, &mut h).unwrap();
        assert_eq!((s2, l2), (0, f.len() + 8));
        assert_eq!(
            buf[..],
            with_tag(&with_tag(&f, 0x8100, 0xa00a), 0x88a8, 3)[..]
        );
        let (s3, l3) = pop_tag(&mut buf, s2, l2, &mut h).unwrap();
        assert_eq!((s3, l3), (s, l));
        assert_eq!(buf[s3..s3 + l3], with_tag(&f, 0x8100, 0xa00a)[..]);
        let (s4, l4) = pop_tag(&mut buf, s3, l3, &mut h).unwrap();
        assert_eq!((s4, l4), (8, f.len()));
        assert_eq!(buf[s4..s4 + l4], f[..]);
        // set_tci rewrites only the TCI
        let mut t = with_tag(&f, 0x8100, tci(6, false, 0));
        set_tci(&mut t, 0, tci(6, false, 42)).unwrap();
        assert_eq!(t, with_tag(&f, 0x8100, tci(6, false, 42)));
    }

    #[test]
    fn push_pop_roundtrip_many_lengths() {
        for len in [14usize, 15, 18, 60, 61, 1514, 1518, 9000] {
            let f: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            for headroom in [4usize, 5, 64] {
                let mut buf = in_buf(&f, headroom);
                buf.extend_from_slice(&[0x55; 3]); // tailroom must stay untouched
                let mut h = VnetHdr {
                    flags: F_NEEDS_CSUM,
                    csum_start: 34,
                    csum_offset: 16,
                    hdr_len: 54,
                    ..Default::default()
                };
                let h0 = h;
                let (s, l) = push_tag(&mut buf, headroom, len, 0x8100, 0x1234, &mut h).unwrap();
                assert_eq!(buf[s..s + l], with_tag(&f, 0x8100, 0x1234)[..]);
                let (s, l) = pop_tag(&mut buf, s, l, &mut h).unwrap();
                assert_eq!((s, l), (headroom, len));
                assert_eq!(buf[s..s + l], f[..]);
                assert_eq!(h, h0);
                assert_eq!(buf[buf.len() - 3..], [0x55; 3]);
            }
        }
    }

    #[test]
    fn surgery_errors_change_nothing() {
        let f = untagged_frame();
        let mut h = VnetHdr::default();
        let mut buf = in_buf(&f, 3);
        let before = buf.clone();
        assert_eq!(
            push_tag(&mut buf, 3, f.len(), 0x8100, 1, &mut h),
            Err(TagError::NoHeadroom(3))
        );
        assert_eq!(
            push_tag(&mut buf, 3, f.len() + 1, 0x8100, 1, &mut h),
            Err(TagError::OutOfBounds {
                start: 3,
                len: f.len() + 1,
                buf_len: buf.len()
            })
        );
        assert!(matches!(
            push_tag(&mut buf, usize::MAX, 2, 0x8100, 1, &mut h),
            Err(TagError::OutOfBounds { .. })
        ));
        assert_eq!(
            push_tag(&mut buf, 4, 13, 0x8100, 1, &mut h),
            Err(TagError::TooShort(13))
        );
        assert_eq!(
            pop_tag(&mut buf, 3, 17, &mut h),
            Err(TagError::TooShort(17))
        );
        assert!(matches!(
            pop_tag(&mut buf, 3, 1000, &mut h),
            Err(TagError::OutOfBounds { .. })
        ));
        assert!(set_tci(&mut buf[..17], 0, 1).is_err());
        assert!(set_tci(&mut buf, usize::MAX - 2, 1).is_err());
        assert_eq!(
            apply_tag_action(
                &mut buf,
                3,
                17,
                Protocol::Dot1Q,
                TagAction::Rewrite { tci: 1 },
                &mut h
            ),
            Err(TagError::TooShort(17))
        );
        assert_eq!(buf, before);
        // header offsets that cannot move
        let mut buf = in_buf(&f, 4);
        let before = buf.clone();
        let mut big = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: u16::MAX - 1,
            ..Default::default()
        };
        assert!(matches!(
            push_tag(&mut buf, 4, f.len(), 0x8100, 1, &mut big),
            Err(TagError::HdrOffset { .. })
        ));
        assert_eq!(big.csum_start, u16::MAX - 1);
        let mut big_len = VnetHdr {
            hdr_len: u16::MAX,
            ..Default::default()
        };
        assert!(push_tag(&mut buf, 4, f.len(), 0x8100, 1, &mut big_len).is_err());
        assert_eq!(buf, before);
        let t = with_tag(&f, 0x8100, 1);
        let mut buf = t.clone();
        let mut inside = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 14,
            ..Default::default()
        };
        assert!(matches!(
            pop_tag(&mut buf, 0, t.len(), &mut inside),
            Err(TagError::HdrOffset { csum_start: 14, .. })
        ));
        assert_eq!(buf, t);
    }

    #[test]
    fn header_offsets_move_only_when_meaningful() {
        let f = eth(&[0u8; 100]);
        // csum_start moves only with NEEDS_CSUM; hdr_len only when nonzero
        let mut h = VnetHdr {
            flags: 0,
            csum_start: 34,
            hdr_len: 0,
            ..Default::default()
        };
        let mut buf = in_buf(&f, 4);
        push_tag(&mut buf, 4, f.len(), 0x8100, 1, &mut h).unwrap();
        assert_eq!((h.csum_start, h.hdr_len), (34, 0));
        let mut h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 6,
            hdr_len: 42,
            ..Default::default()
        };
        let mut buf = in_buf(&f, 4);
        let (s, l) = push_tag(&mut buf, 4, f.len(), 0x8100, 1, &mut h).unwrap();
        assert_eq!((h.csum_start, h.csum_offset, h.hdr_len), (38, 6, 46));
        pop_tag(&mut buf, s, l, &mut h).unwrap();
        assert_eq!((h.csum_start, h.csum_offset, h.hdr_len), (34, 6, 42));
    }

    // ---- GSO and partial checksums through crate::offload::finish -------------------------

    /// Ones' complement sum over the concatenation of `parts` (each even-length but the last),
    /// written independently of crate::offload.
    fn ones_sum(parts: &[&[u8]]) -> u16 {
        let mut acc: u64 = 0;
        for p in parts {
            for c in p.chunks(2) {
                let hi = c[0] as u64;
                let lo = c.get(1).copied().unwrap_or(0) as u64;
                acc += (hi << 8) | lo;
            }
        }
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// The L4 checksum of the IPv4/IPv6 TCP or UDP frame whose L3 header starts at `l3`,
    /// verified over the pseudo-header.
    fn l4_csum_ok(seg: &[u8], l3: usize) -> bool {
        let v6 = seg[l3] >> 4 == 6;
        let (l4, proto) = if v6 {
            (l3 + 40, seg[l3 + 6])
        } else {
            (l3 + (seg[l3] & 0x0f) as usize * 4, seg[l3 + 9])
        };
        let l4_len = (seg.len() - l4) as u32;
        let mut pseudo = Vec::new();
        if v6 {
            pseudo.extend_from_slice(&seg[l3 + 8..l3 + 40]);
            pseudo.extend_from_slice(&l4_len.to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
        } else {
            pseudo.extend_from_slice(&seg[l3 + 12..l3 + 20]);
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(l4_len as u16).to_be_bytes());
        }
        ones_sum(&[&pseudo, &seg[l4..]]) == 0xffff
    }

    /// Checks an IPv4/IPv6 TCP or UDP frame whose L3 header starts at `l3`: IP header checksum
    /// (v4), IP and UDP length fields, L4 checksum. Returns the L4 offset.
    fn check_l3_l4(seg: &[u8], l3: usize) -> usize {
        let v6 = seg[l3] >> 4 == 6;
        let (l4, proto) = if v6 {
            assert_eq!(
                be16(seg, l3 + 4) as usize,
                seg.len() - l3 - 40,
                "IPv6 payload length"
            );
            (l3 + 40, seg[l3 + 6])
        } else {
            let ihl = (seg[l3] & 0x0f) as usize * 4;
            assert_eq!(
                ones_sum(&[&seg[l3..l3 + ihl]]),
                0xffff,
                "IPv4 header checksum"
            );
            assert_eq!(
                be16(seg, l3 + 2) as usize,
                seg.len() - l3,
                "IPv4 total length"
            );
            (l3 + ihl, seg[l3 + 9])
        };
        if proto == 17 {
            assert_eq!(be16(seg, l4 + 4) as usize, seg.len() - l4, "UDP length");
        }
        assert!(l4_csum_ok(seg, l3), "L4 checksum");
        l4
    }

    /// An IPv4 TCP GSO super-frame (untagged) with `n` payload bytes and its virtio_net_hdr.
    fn tcp4_gso(n: usize, mss: u16) -> (Vec<u8>, VnetHdr) {
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((40 + n) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
        let c = !ones_sum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&0xfffff000u32.to_be_bytes()); // wraps during the run
        tcp[8..12].copy_from_slice(&7u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18; // PSH|ACK
        tcp[14..16].copy_from_slice(&512u16.to_be_bytes());
        // partial checksum: the pseudo-header sum, as a NEEDS_CSUM sender leaves it
        let ps = ones_sum(&[&ip[12..20], &[0, 6], &((20 + n) as u16).to_be_bytes()]);
        tcp[16..18].copy_from_slice(&ps.to_be_bytes());
        let mut rest = IPV4.to_vec();
        rest.extend_from_slice(&ip);
        rest.extend_from_slice(&tcp);
        rest.extend((0..n).map(|i| (i % 251) as u8));
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: mss,
            csum_start: 34,
            csum_offset: 16,
        };
        (eth(&rest), h)
    }

    /// An IPv6 TCP GSO super-frame (untagged) with `n` payload bytes and its virtio_net_hdr.
    fn tcp6_gso(n: usize, mss: u16) -> (Vec<u8>, VnetHdr) {
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((20 + n) as u16).to_be_bytes());
        ip[6] = 6;
        ip[7] = 64;
        ip[8..24].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        ip[24..40].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        let mut tcp = vec![0u8; 32];
        tcp[0..2].copy_from_slice(&40001u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&5201u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[12] = 8 << 4; // 12 bytes of options
        tcp[13] = 0x10;
        tcp[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP TS
        let ps = ones_sum(&[&ip[8..40], &((32 + n) as u32).to_be_bytes(), &[0, 0, 0, 6]]);
        tcp[16..18].copy_from_slice(&ps.to_be_bytes());
        let mut rest = vec![0x86, 0xdd];
        rest.extend_from_slice(&ip);
        rest.extend_from_slice(&tcp);
        rest.extend((0..n).map(|i| (i % 253) as u8));
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 14 + 40 + 32,
            gso_size: mss,
            csum_start: 54,
            csum_offset: 16,
        };
        (eth(&rest), h)
    }

    /// Segments `frame` with `finish` and returns copies of the segments.
    fn segments(h: &VnetHdr, frame: &[u8]) -> Vec<Vec<u8>> {
        let mut scratch = vec![0u8; SEG_BUF];
        let mut out = Vec::new();
        finish(h, frame, &mut scratch, |s| -> Result<(), ()> {
            out.push(s.to_vec());
            Ok(())
        })
        .unwrap()
        .unwrap();
        out
    }

    /// Checks segments of a TCP GSO frame: each starts with `prefix` (MACs + tags), is at most
    /// l4 + TCP header + mss long, has valid checksums and lengths; sequence numbers follow,
    /// and the payloads add up to `payload`.
    fn check_tcp_segments(
        segs: &[Vec<u8>],
        prefix: &[u8],
        l3: usize,
        mss: usize,
        payload: &[u8],
        seq0: u32,
    ) {
        assert_eq!(segs.len(), payload.len().div_ceil(mss));
        let mut got = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(s[..prefix.len()], prefix[..], "segment {i} headers/tag");
            let l4 = check_l3_l4(s, l3);
            let thl = (s[l4 + 12] >> 4) as usize * 4;
            assert!(s.len() - l4 - thl <= mss, "segment {i} payload above mss");
            let seq = u32::from_be_bytes([s[l4 + 4], s[l4 + 5], s[l4 + 6], s[l4 + 7]]);
            assert_eq!(seq, seq0.wrapping_add((i * mss) as u32), "segment {i} seq");
            got.extend_from_slice(&s[l4 + thl..]);
        }
        assert_eq!(got, payload);
    }

    #[test]
    fn push_tag_on_tcp4_gso_then_segment() {
        let (f, h0) = tcp4_gso(5000, 1448);
        let mut buf = in_buf(&f, 4);
        let mut h = h0;
        let tag_tci = tci(5, false, 100);
        let (s, l) = push_tag(&mut buf, 4, f.len(), 0x8100, tag_tci, &mut h).unwrap();
        assert_eq!(buf[s..s + l], with_tag(&f, 0x8100, tag_tci)[..]);
        assert_eq!((h.csum_start, h.hdr_len), (38, 58));
        assert_eq!(
            (h.csum_offset, h.gso_size, h.gso_type, h.flags),
            (16, 1448, GSO_TCPV4, F_NEEDS_CSUM)
        );
        let segs = segments(&h, &buf[s..s + l]);
        assert_eq!(segs.len(), 4);
        let prefix = with_tag(&eth(&IPV4), 0x8100, tag_tci);
        check_tcp_segments(&segs, &prefix, 18, 1448, &f[54..], 0xfffff000);
        for s in &segs {
            assert!(s.len() <= 18 + 40 + 1448);
        }
        // each segment's IPv4 header: IDs count up
        for (i, s) in segs.iter().enumerate() {
            assert_eq!(be16(s, 18 + 4), 0x1234 + i as u16);
        }
    }

    #[test]
    fn push_tag_on_tcp6_gso_then_segment() {
        let (f, h0) = tcp6_gso(4000, 1200);
        let mut buf = in_buf(&f, 16);
        let mut h = h0;
        let (s, l) = push_tag(&mut buf, 16, f.len(), 0x88a8, 42, &mut h).unwrap();
        assert_eq!(buf[s..s + l], with_tag(&f, 0x88a8, 42)[..]);
        assert_eq!((h.csum_start, h.hdr_len), (58, 90));
        let segs = segments(&h, &buf[s..s + l]);
        let prefix = with_tag(&eth(&[0x86, 0xdd]), 0x88a8, 42);
        check_tcp_segments(&segs, &prefix, 18, 1200, &f[86..], 1000);
        assert_eq!(segs.len(), 4);
    }

    #[test]
    fn pop_tag_on_tagged_tcp4_gso_then_segment() {
        // a tagged super-frame as a guest on a trunk would send it
        let (f, mut h) = tcp4_gso(3000, 1000);
        let tagged = with_tag(&f, 0x8100, tci(3, false, 10));
        h.csum_start += 4;
        h.hdr_len += 4;
        let mut buf = tagged.clone();
        let (s, l) = pop_tag(&mut buf, 0, tagged.len(), &mut h).unwrap();
        assert_eq!(buf[s..s + l], f[..]);
        assert_eq!((h.csum_start, h.hdr_len), (34, 54));
        let segs = segments(&h, &buf[s..s + l]);
        assert_eq!(segs.len(), 3);
        check_tcp_segments(&segs, &eth(&IPV4), 14, 1000, &f[54..], 0xfffff000);
    }

    #[test]
    fn pop_tag_on_tagged_tcp6_gso_then_segment() {
        let (f, mut h) = tcp6_gso(2500, 1000);
        let tagged = with_tag(&f, 0x8100, 20);
        h.csum_start += 4;
        h.hdr_len += 4;
        let mut buf = tagged.clone();
        let (s, l) = pop_tag(&mut buf, 0, tagged.len(), &mut h).unwrap();
        assert_eq!(buf[s..s + l], f[..]);
        let segs = segments(&h, &buf[s..s + l]);
        check_tcp_segments(&segs, &eth(&[0x86, 0xdd]), 14, 1000, &f[86..], 1000);
    }

    /// A non-GSO IPv4 UDP frame with a partial checksum (NEEDS_CSUM).
    fn udp4_partial(n: usize) -> (Vec<u8>, VnetHdr) {
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((28 + n) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
        let c = !ones_sum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut udp = vec![0u8; 8];
        udp[0..2].copy_from_slice(&5353u16.to_be_bytes());
        udp[2..4].copy_from_slice(&53u16.to_be_bytes());
        udp[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
        let ps = ones_sum(&[&ip[12..20], &[0, 17], &((8 + n) as u16).to_be_bytes()]);
        udp[6..8].copy_from_slice(&ps.to_be_bytes());
        let mut rest = IPV4.to_vec();
        rest.extend_from_slice(&ip);
        rest.extend_from_slice(&udp);
        rest.extend((0..n).map(|i| (i * 13 + 1) as u8));
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_NONE,
            hdr_len: 0,
            gso_size: 0,
            csum_start: 34,
            csum_offset: 6,
        };
        (eth(&rest), h)
    }

    #[test]
    fn push_and_pop_tag_on_partial_checksum_udp() {
        let (f, h0) = udp4_partial(301);
        let mut buf = in_buf(&f, 4);
        let mut h = h0;
        let (s, l) = push_tag(&mut buf, 4, f.len(), 0x8100, 7, &mut h).unwrap();
        assert_eq!((h.csum_start, h.csum_offset, h.hdr_len), (38, 6, 0));
        let segs = segments(&h, &buf[s..s + l]);
        assert_eq!(segs.len(), 1);
        let out = &segs[0];
        assert_eq!(out.len(), f.len() + 4);
        assert_eq!(out[..18], with_tag(&eth(&IPV4), 0x8100, 7)[..]);
        check_l3_l4(out, 18);
        assert_eq!(out[46..], f[42..], "payload unchanged");
        // a stale csum_start would have summed from the wrong offset: the check above would fail
        let wrong = segments(&h0, &buf[s..s + l]);
        assert!(!l4_csum_ok(&wrong[0], 18));

        // and popping it again
        let (s, l) = pop_tag(&mut buf, s, l, &mut h).unwrap();
        assert_eq!(h, h0);
        let segs = segments(&h, &buf[s..s + l]);
        check_l3_l4(&segs[0], 14);
        assert_eq!(segs[0].len(), f.len());
    }

    // ---- tools/testing/selftests/net/forwarding/bridge_vlan_aware.sh ----------------------

    /// A two-port model of the selftest topology: h1 -- swp1 [br0] swp2 -- h2.
    struct Bridge {
        proto: Protocol,
        default_pvid: u16,
        ports: Vec<PortVlans>,
    }

    const SWP1: usize = 0;
    const SWP2: usize = 1;

    impl Bridge {
        /// `ip link add br0 type bridge vlan_filtering 1`; `ip link set swpN master br0`.
        fn new() -> Bridge {
            let mut b = Bridge {
                proto: Protocol::Dot1Q,
                default_pvid: 1,
                ports: Vec::new(),
            };
            b.join();
            b.join();
            b
        }

        fn join(&mut self) -> usize {
            self.ports.push(PortVlans::new_default(self.default_pvid));
            self.ports.len() - 1
        }

        /// `ip link set br0 type bridge vlan_default_pvid N`.
        fn set_default_pvid(&mut self, new: u16) {
            for p in &mut self.ports {
                p.apply_default_pvid(self.default_pvid, new).unwrap();
            }
            self.default_pvid = new;
        }

        /// `ip link set swpN nomaster; ip link set swpN master br0`.
        fn rejoin(&mut self, port: usize) {
            self.ports[port] = PortVlans::new_default(self.default_pvid);
        }

        /// What the host behind `egress` receives when `frame` enters `ingress`, and the VLAN
        /// the FDB learns the source in.
        fn send(
            &self,
            ingress: usize,
            egress: usize,
            frame: &[u8],
        ) -> Result<(u16, Vec<u8>), String> {
            let c = classify(frame, self.proto, &self.ports[ingress])
                .map_err(|d| d.label().to_string())?;
            let out = &self.ports[egress];
            if !egress_allowed(out, c.vid) {
                return Err("egress not member".into());
            }
            let a = egress_action(&c, egress_form(out, c.vid));
            let mut buf = in_buf(frame, 4);
            let mut h = VnetHdr::default();
            let (s, l) = apply_tag_action(&mut buf, 4, frame.len(), self.proto, a, &mut h)
                .map_err(|e| e.to_string())?;
            Ok((c.vid, buf[s..s + l].to_vec()))
        }

        /// ping_ipv4 / ping_ipv6: untagged frames get through both ways unchanged.
        fn ping_ok(&self) -> bool {
            let f = untagged_frame();
            self.send(SWP1, SWP2, &f).ok().map(|r| r.1) == Some(f.clone())
                && self.send(SWP2, SWP1, &f).ok().map(|r| r.1) == Some(f)
        }

        /// 8021p_do: `$MZ -q $h1 -c 1 -b $mac -a own "81:00 00:00 08:00 aa-aa-..."` is
        /// received by h2.
        fn dot1p_received(&self) -> bool {
            let mut rest = vec![0x81, 0x00, 0x00, 0x00, 0x08, 0x00];
            rest.extend_from_slice(&[0xaa; 9]);
            let f = eth(&rest);
            self.send(SWP1, SWP2, &f).is_ok()
        }
    }

    #[test]
    fn selftest_vlan_deletion() {
        // "Test that the deletion of a VLAN on a bridge port does not affect the PVID VLAN"
        let mut br = Bridge::new();
        assert!(br.ping_ok());
        br.ports[SWP1].add(10, false, false).unwrap(); // bridge vlan add vid 10 dev $swp1
        br.ports[SWP1].del(10).unwrap(); // bridge vlan del vid 10 dev $swp1
        assert_eq!(br.ports[SWP1], PortVlans::new_default(1));
        assert!(br.ping_ok()); // ping_ipv4, ping_ipv6
    }

    #[test]
    fn selftest_other_tpid() {
        // "packets with TPID 802.1ad VID 3 + TPID 802.1Q VID 5 are classified as untagged by a
        // bridge with vlan_protocol 802.1Q, and are processed in the PVID of the ingress port
        // (here 1). Not VID 3, and not VID 5."
        let mut br = Bridge::new();
        let f = eth(&[
            0x88, 0xa8, 0x00, 0x03, 0x81, 0x00, 0x00, 0x05, 0x08, 0x00, 0xaa, 0xaa, 0xaa, 0xaa,
            0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        ]);
        // "FDB entry in PVID for VLAN-tagged with other TPID": learned in VLAN 1
        // "Reception of VLAN with other TPID as untagged": h2 gets it, as sent
        assert_eq!(br.send(SWP1, SWP2, &f), Ok((1, f.clone())));
        // bridge vlan del dev $swp1 vid 1
        br.ports[SWP1].del(1).unwrap();
        // "Reception of VLAN with other TPID as untagged (no PVID)": not forwarded
        assert_eq!(br.send(SWP1, SWP2, &f), Err("vlan_no_pvid".to_string()));
        // bridge vlan add dev $swp1 vid 1 pvid untagged
        br.ports[SWP1].add(1, true, true).unwrap();
        assert_eq!(br.send(SWP1, SWP2, &f), Ok((1, f)));
    }

    #[test]
    fn selftest_8021p() {
        let mut br = Bridge::new();
        // "with the default_pvid, 1, packets tagged with VID 0 are accepted"
        assert!(br.dot1p_received());
        // h2 (untagged member of VID 1) receives it with the priority tag removed
        let mut rest = vec![0x81, 0x00, 0x00, 0x00, 0x08, 0x00];
        rest.extend_from_slice(&[0xaa; 9]);
        let mut plain = vec![0x08, 0x00];
        plain.extend_from_slice(&[0xaa; 9]);
        assert_eq!(br.send(SWP1, SWP2, &eth(&rest)), Ok((1, eth(&plain))));
        // "packets tagged with VID 0 are still accepted after changing the default_pvid"
        br.set_default_pvid(10);
        assert_eq!(br.ports[SWP1], PortVlans::new_default(10));
        assert_eq!(br.ports[SWP2], PortVlans::new_default(10));
        assert!(br.dot1p_received());
        assert_eq!(br.send(SWP1, SWP2, &eth(&rest)), Ok((10, eth(&plain))));
    }

    #[test]
    fn selftest_drop_untagged() {
        let mut br = Bridge::new();
        br.set_default_pvid(10); // as left by the 8021p test
                                 // "Test that with no PVID, untagged and 802.1p-tagged traffic is dropped."
        br.set_default_pvid(1);
        assert!(br.ping_ok() && br.dot1p_received());

        // "First we reconfigure the default_pvid, 1, as a non-PVID VLAN."
        br.ports[SWP1].add(1, false, true).unwrap(); // bridge vlan add dev $swp1 vid 1 untagged
        assert!(!br.ping_ok() && !br.dot1p_received()); // send_untagged_and_8021p
        br.ports[SWP1].add(1, true, true).unwrap(); // ... vid 1 pvid untagged
        assert!(br.ping_ok() && br.dot1p_received());

        // "Next we try to delete VID 1 altogether"
        br.ports[SWP1].del(1).unwrap();
        assert!(!br.ping_ok() && !br.dot1p_received());
        br.ports[SWP1].add(1, true, true).unwrap();
        assert!(br.ping_ok() && br.dot1p_received());

        // "Set up the bridge without a default_pvid" (port down/up changes nothing here: the
        // 8021q module's VID 0 filter entry it probes has no counterpart in this switch)
        br.set_default_pvid(0);
        assert_eq!(br.ports[SWP1], PortVlans::none());
        assert!(!br.ping_ok() && !br.dot1p_received());

        // "Remove swp1 as a bridge port and let it rejoin the bridge while it has no
        // default_pvid."
        br.rejoin(SWP1);
        assert_eq!(br.ports[SWP1], PortVlans::none());
        assert!(!br.ping_ok() && !br.dot1p_received());

        // "Restore settings"
        br.set_default_pvid(1);
        assert_eq!(br.ports[SWP1], PortVlans::new_default(1));
        assert_eq!(br.ports[SWP2], PortVlans::new_default(1));
        assert!(br.ping_ok() && br.dot1p_received());
    }
}
