//! BPDU codec: Configuration, Topology Change Notification and RST BPDUs (IEEE 802.1D-2004
//! clause 9), carried in 802.3/LLC frames to 01:80:c2:00:00:00.
//!
//! [`Bpdu::decode`] takes the bytes that follow the 14-byte Ethernet header of an untagged
//! 802.3 frame (LLC header `42 42 03`, then the BPDU, then any padding) and applies the
//! format checks of 802.1D-2004 9.3.4. It never panics, whatever the input. The one 9.3.4
//! rule that needs to know the receiving port (a Configuration BPDU carrying our own bridge
//! and port identifiers is ignored) is applied by the state machines, not here.
//!
//! [`Bpdu::encode_frame`] writes a whole Ethernet frame (destination 01:80:c2:00:00:00, the
//! given source, the 802.3 length field, LLC, BPDU, zero padding to the 60-byte minimum)
//! into a caller buffer, without allocating.
//!
//! Timer fields on the wire are in units of 1/256 s ([`TimeField`]); the state machines keep
//! whole seconds (802.1D-2004 17.13).

use std::fmt;

use crate::wire::{be16, be32, MacAddr};

/// The Bridge Group Address every BPDU is sent to.
pub const STP_GROUP: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x00]);
/// LLC header of a BPDU: DSAP 0x42, SSAP 0x42, control 0x03 (UI).
pub const LLC_HEADER: [u8; 3] = [0x42, 0x42, 0x03];
/// Length of a Configuration BPDU (without LLC).
pub const CONFIG_BPDU_LEN: usize = 35;
/// Length of a Topology Change Notification BPDU (without LLC).
pub const TCN_BPDU_LEN: usize = 4;
/// Length of an RST BPDU (without LLC).
pub const RST_BPDU_LEN: usize = 36;
/// Length of every frame [`Bpdu::encode_frame`] writes: the 60-byte Ethernet minimum (no FCS).
pub const BPDU_FRAME_LEN: usize = 60;

const ETH_HLEN: usize = 14;
const LLC_LEN: usize = 3;

/// BPDU type octet of a Configuration BPDU.
pub const TYPE_CONFIG: u8 = 0x00;
/// BPDU type octet of a TCN BPDU.
pub const TYPE_TCN: u8 = 0x80;
/// BPDU type octet of an RST (and MST) BPDU.
pub const TYPE_RST: u8 = 0x02;

/// A Bridge Identifier: 16-bit priority field (4-bit priority, 12-bit system ID extension)
/// followed by the 48-bit bridge MAC address, compared as one unsigned 64-bit number
/// (lower is better).
///
/// Displayed like the Linux bridge's sysfs `bridge_id`: four hex digits of priority, a dot,
/// twelve hex digits of address, e.g. `8000.020000000001`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BridgeId(pub u64);

impl BridgeId {
    /// Builds an identifier from the 16-bit priority field and the bridge address.
    pub fn new(priority: u16, mac: MacAddr) -> BridgeId {
        let mut b = [0u8; 8];
        b[..2].copy_from_slice(&priority.to_be_bytes());
        b[2..].copy_from_slice(&mac.0);
        BridgeId(u64::from_be_bytes(b))
    }

    /// The 16-bit priority field (priority and system ID extension).
    pub fn priority(self) -> u16 {
        (self.0 >> 48) as u16
    }

    /// The bridge address.
    pub fn mac(self) -> MacAddr {
        let b = self.0.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    fn from_wire(b: &[u8; 8]) -> BridgeId {
        BridgeId(u64::from_be_bytes(*b))
    }
}

impl fmt::Display for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}.{:012x}",
            self.priority(),
            self.0 & 0xffff_ffff_ffff
        )
    }
}

impl fmt::Debug for BridgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for BridgeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A Port Identifier: 4-bit port priority (in steps of 16) and 12-bit port number.
///
/// Displayed as four hex digits, e.g. `8001` (priority 128, port 1), as the Linux bridge
/// shows `port_id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct PortIdentifier(pub u16);

impl PortIdentifier {
    /// Builds an identifier from a priority (0..=240; the low 4 bits are dropped) and a port
    /// number (the low 12 bits are kept).
    pub fn new(priority: u8, number: u16) -> PortIdentifier {
        PortIdentifier((u16::from(priority >> 4) << 12) | (number & 0x0fff))
    }

    /// The port priority (a multiple of 16).
    pub fn priority(self) -> u8 {
        ((self.0 >> 12) << 4) as u8
    }

    /// The 12-bit port number.
    pub fn number(self) -> u16 {
        self.0 & 0x0fff
    }
}

impl fmt::Display for PortIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

impl fmt::Debug for PortIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for PortIdentifier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A timer value as carried in a BPDU, in units of 1/256 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct TimeField(pub u16);

impl TimeField {
    /// Whole seconds, encoded (saturating at 255 s).
    pub fn from_secs(secs: u16) -> TimeField {
        TimeField(secs.min(255) * 256)
    }

    /// Rounded to the nearest whole second (802.1D-2004 17.19.21 keeps whole seconds).
    pub fn to_secs_rounded(self) -> u16 {
        ((u32::from(self.0) + 128) / 256) as u16
    }
}

/// The Port Role encoded in bits 3..2 of an RST BPDU's flags (802.1D-2004 9.2.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoleFlag {
    /// 0: unknown; the state machines treat the BPDU like a Configuration BPDU.
    Unknown,
    /// 1: Alternate or Backup port.
    AlternateOrBackup,
    /// 2: Root port.
    Root,
    /// 3: Designated port.
    Designated,
}

/// The flags octet of a Configuration or RST BPDU.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BpduFlags(pub u8);

impl BpduFlags {
    /// Topology Change (bit 1, 0x01).
    pub const TC: u8 = 0x01;
    /// Proposal (bit 2, 0x02), RST only.
    pub const PROPOSAL: u8 = 0x02;
    /// Port Role (bits 3-4, 0x0c), RST only.
    pub const ROLE_MASK: u8 = 0x0c;
    /// Learning (bit 5, 0x10), RST only.
    pub const LEARNING: u8 = 0x10;
    /// Forwarding (bit 6, 0x20), RST only.
    pub const FORWARDING: u8 = 0x20;
    /// Agreement (bit 7, 0x40), RST only.
    pub const AGREEMENT: u8 = 0x40;
    /// Topology Change Acknowledgment (bit 8, 0x80); RSTP bridges send it only in
    /// Configuration BPDUs.
    pub const TC_ACK: u8 = 0x80;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    /// Topology Change flag.
    pub fn tc(self) -> bool {
        self.has(Self::TC)
    }
    /// Proposal flag.
    pub fn proposal(self) -> bool {
        self.has(Self::PROPOSAL)
    }
    /// Learning flag.
    pub fn learning(self) -> bool {
        self.has(Self::LEARNING)
    }
    /// Forwarding flag.
    pub fn forwarding(self) -> bool {
        self.has(Self::FORWARDING)
    }
    /// Agreement flag.
    pub fn agreement(self) -> bool {
        self.has(Self::AGREEMENT)
    }
    /// Topology Change Acknowledgment flag.
    pub fn tc_ack(self) -> bool {
        self.has(Self::TC_ACK)
    }
    /// The Port Role field.
    pub fn role(self) -> RoleFlag {
        match (self.0 & Self::ROLE_MASK) >> 2 {
            1 => RoleFlag::AlternateOrBackup,
            2 => RoleFlag::Root,
            3 => RoleFlag::Designated,
            _ => RoleFlag::Unknown,
        }
    }
    /// These flags with the Port Role field replaced.
    pub fn with_role(self, role: RoleFlag) -> BpduFlags {
        let r = match role {
            RoleFlag::Unknown => 0,
            RoleFlag::AlternateOrBackup => 1,
            RoleFlag::Root => 2,
            RoleFlag::Designated => 3,
        };
        BpduFlags((self.0 & !Self::ROLE_MASK) | (r << 2))
    }
    /// These flags with `bit` set or cleared.
    pub fn with(self, bit: u8, on: bool) -> BpduFlags {
        if on {
            BpduFlags(self.0 | bit)
        } else {
            BpduFlags(self.0 & !bit)
        }
    }
}

impl fmt::Debug for BpduFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BpduFlags({:#04x}", self.0)?;
        for (bit, name) in [
            (Self::TC, " tc"),
            (Self::PROPOSAL, " proposal"),
            (Self::LEARNING, " learning"),
            (Self::FORWARDING, " forwarding"),
            (Self::AGREEMENT, " agreement"),
            (Self::TC_ACK, " tc_ack"),
        ] {
            if self.has(bit) {
                f.write_str(name)?;
            }
        }
        write!(f, " role={:?})", self.role())
    }
}

/// The body shared by Configuration and RST BPDUs (octets 5..=35 of 802.1D-2004 9.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConfigBody {
    /// Flags octet.
    pub flags: BpduFlags,
    /// Root Identifier.
    pub root: BridgeId,
    /// Root Path Cost.
    pub root_path_cost: u32,
    /// Bridge Identifier of the transmitting (designated) bridge.
    pub bridge: BridgeId,
    /// Port Identifier of the transmitting port.
    pub port: PortIdentifier,
    /// Message Age.
    pub message_age: TimeField,
    /// Max Age.
    pub max_age: TimeField,
    /// Hello Time.
    pub hello_time: TimeField,
    /// Forward Delay.
    pub forward_delay: TimeField,
}

/// A decoded BPDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bpdu {
    /// Configuration BPDU (type 0x00; any protocol version, as 9.3.4 a) says).
    Config(ConfigBody),
    /// Topology Change Notification BPDU (type 0x80).
    Tcn,
    /// RST BPDU (type 0x02, version 2 or more; an MST BPDU decodes as its CIST part).
    /// Encoded with version 2 and a Version 1 Length of 0.
    Rst(ConfigBody),
}

/// The kind of a BPDU, for counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BpduKind {
    /// Configuration BPDU.
    Config,
    /// TCN BPDU.
    Tcn,
    /// RST BPDU.
    Rst,
}

/// Why bytes are not a BPDU this implementation accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BpduError {
    /// Fewer bytes than an LLC header plus the 4-octet BPDU header.
    #[error("BPDU too short: {0} bytes after the Ethernet header, need at least 7")]
    TooShort(usize),
    /// The LLC header is not `42 42 03`.
    #[error("not a spanning tree LLC header (DSAP {dsap:#04x}, SSAP {ssap:#04x}, control {control:#04x})")]
    NotStpLlc {
        /// DSAP octet.
        dsap: u8,
        /// SSAP octet.
        ssap: u8,
        /// Control octet.
        control: u8,
    },
    /// The Protocol Identifier is not 0.
    #[error("unknown BPDU protocol identifier {0:#06x}")]
    UnknownProtocol(u16),
    /// Shorter than its type requires.
    #[error("{kind:?} BPDU truncated: {len} bytes, need {need}")]
    Truncated {
        /// The type the header announced.
        kind: BpduKind,
        /// BPDU bytes present (after LLC).
        len: usize,
        /// BPDU bytes that type needs.
        need: usize,
    },
    /// A Configuration BPDU whose Message Age is not less than its Max Age (9.3.4 a).
    #[error(
        "configuration BPDU message age {message_age}/256 s is not below max age {max_age}/256 s"
    )]
    MessageAgeExceeded {
        /// Message Age in 1/256 s.
        message_age: u16,
        /// Max Age in 1/256 s.
        max_age: u16,
    },
    /// A type/version combination 9.3.4 does not decode.
    #[error("unknown BPDU type {bpdu_type:#04x} with protocol version {version}")]
    UnknownType {
        /// BPDU Type octet.
        bpdu_type: u8,
        /// Protocol Version Identifier octet.
        version: u8,
    },
    /// The caller's buffer cannot hold a BPDU frame.
    #[error("buffer of {0} bytes is too small for a {BPDU_FRAME_LEN}-byte BPDU frame")]
    BufferTooSmall(usize),
}

fn bid(b: &[u8], at: usize) -> BridgeId {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    BridgeId::from_wire(&a)
}

/// Offsets inside the BPDU (after LLC), 802.1D-2004 9.3.
mod off {
    pub const PROTOCOL: usize = 0;
    pub const VERSION: usize = 2;
    pub const TYPE: usize = 3;
    pub const FLAGS: usize = 4;
    pub const ROOT: usize = 5;
    pub const COST: usize = 13;
    pub const BRIDGE: usize = 17;
    pub const PORT: usize = 25;
    pub const MESSAGE_AGE: usize = 27;
    pub const MAX_AGE: usize = 29;
    pub const HELLO: usize = 31;
    pub const FORWARD_DELAY: usize = 33;
    pub const V1_LEN: usize = 35;
}

impl ConfigBody {
    /// Caller guarantees `b.len() >= CONFIG_BPDU_LEN`.
    fn read(b: &[u8]) -> ConfigBody {
        ConfigBody {
            flags: BpduFlags(b[off::FLAGS]),
            root: bid(b, off::ROOT),
            root_path_cost: be32(b, off::COST),
            bridge: bid(b, off::BRIDGE),
            port: PortIdentifier(be16(b, off::PORT)),
            message_age: TimeField(be16(b, off::MESSAGE_AGE)),
            max_age: TimeField(be16(b, off::MAX_AGE)),
            hello_time: TimeField(be16(b, off::HELLO)),
            forward_delay: TimeField(be16(b, off::FORWARD_DELAY)),
        }
    }

    /// Caller guarantees `b.len() >= CONFIG_BPDU_LEN`.
    fn write(&self, b: &mut [u8]) {
        b[off::FLAGS] = self.flags.0;
        b[off::ROOT..off::ROOT + 8].copy_from_slice(&self.root.0.to_be_bytes());
        b[off::COST..off::COST + 4].copy_from_slice(&self.root_path_cost.to_be_bytes());
        b[off::BRIDGE..off::BRIDGE + 8].copy_from_slice(&self.bridge.0.to_be_bytes());
        b[off::PORT..off::PORT + 2].copy_from_slice(&self.port.0.to_be_bytes());
        for (at, t) in [
            (off::MESSAGE_AGE, self.message_age),
            (off::MAX_AGE, self.max_age),
            (off::HELLO, self.hello_time),
            (off::FORWARD_DELAY, self.forward_delay),
        ] {
            b[at..at + 2].copy_from_slice(&t.0.to_be_bytes());
        }
    }
}

impl Bpdu {
    /// Decodes the bytes after the Ethernet header of an 802.3 frame: LLC header, BPDU,
    /// and any trailing padding (ignored). Applies 802.1D-2004 9.3.4 a)-c) except the
    /// receiving-port rule. Never panics.
    pub fn decode(llc_payload: &[u8]) -> Result<Bpdu, BpduError> {
        if llc_payload.len() < LLC_LEN + TCN_BPDU_LEN {
            return Err(BpduError::TooShort(llc_payload.len()));
        }
        let (llc, b) = llc_payload.split_at(LLC_LEN);
        if llc != LLC_HEADER {
            return Err(BpduError::NotStpLlc {
                dsap: llc[0],
                ssap: llc[1],
                control: llc[2],
            });
        }
        let protocol = be16(b, off::PROTOCOL);
        if protocol != 0 {
            return Err(BpduError::UnknownProtocol(protocol));
        }
        let version = b[off::VERSION];
        let bpdu_type = b[off::TYPE];
        match bpdu_type {
            TYPE_CONFIG => {
                if b.len() < CONFIG_BPDU_LEN {
                    return Err(BpduError::Truncated {
                        kind: BpduKind::Config,
                        len: b.len(),
                        need: CONFIG_BPDU_LEN,
                    });
                }
                let body = ConfigBody::read(b);
                if body.message_age >= body.max_age {
                    return Err(BpduError::MessageAgeExceeded {
                        message_age: body.message_age.0,
                        max_age: body.max_age.0,
                    });
                }
                Ok(Bpdu::Config(body))
            }
            TYPE_TCN => Ok(Bpdu::Tcn),
            TYPE_RST if version >= 2 => {
                if b.len() < RST_BPDU_LEN {
                    return Err(BpduError::Truncated {
                        kind: BpduKind::Rst,
                        len: b.len(),
                        need: RST_BPDU_LEN,
                    });
                }
                Ok(Bpdu::Rst(ConfigBody::read(b)))
            }
            _ => Err(BpduError::UnknownType { bpdu_type, version }),
        }
    }

    /// The kind of this BPDU.
    pub fn kind(&self) -> BpduKind {
        match self {
            Bpdu::Config(_) => BpduKind::Config,
            Bpdu::Tcn => BpduKind::Tcn,
            Bpdu::Rst(_) => BpduKind::Rst,
        }
    }

    /// Length of the BPDU itself (without LLC or Ethernet header).
    pub fn len(&self) -> usize {
        match self {
            Bpdu::Config(_) => CONFIG_BPDU_LEN,
            Bpdu::Tcn => TCN_BPDU_LEN,
            Bpdu::Rst(_) => RST_BPDU_LEN,
        }
    }

    /// Always false; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the BPDU (no LLC) into `b`, which must hold [`Bpdu::len`] bytes.
    fn write_bpdu(&self, b: &mut [u8]) {
        b[off::PROTOCOL] = 0;
        b[off::PROTOCOL + 1] = 0;
        match self {
            Bpdu::Config(body) => {
                b[off::VERSION] = 0;
                b[off::TYPE] = TYPE_CONFIG;
                body.write(b);
            }
            Bpdu::Tcn => {
                b[off::VERSION] = 0;
                b[off::TYPE] = TYPE_TCN;
            }
            Bpdu::Rst(body) => {
                b[off::VERSION] = 2;
                b[off::TYPE] = TYPE_RST;
                body.write(b);
                b[off::V1_LEN] = 0;
            }
        }
    }

    /// Writes a whole Ethernet frame carrying this BPDU into `buf`: destination
    /// 01:80:c2:00:00:00, source `src`, 802.3 length (LLC + BPDU), LLC `42 42 03`, the
    /// BPDU, zero padding to [`BPDU_FRAME_LEN`]. Returns the frame length (always 60).
    pub fn encode_frame(&self, src: MacAddr, buf: &mut [u8]) -> Result<usize, BpduError> {
        if buf.len() < BPDU_FRAME_LEN {
            return Err(BpduError::BufferTooSmall(buf.len()));
        }
        let frame = &mut buf[..BPDU_FRAME_LEN];
        frame.fill(0);
        frame[0..6].copy_from_slice(&STP_GROUP.0);
        frame[6..12].copy_from_slice(&src.0);
        let len = (LLC_LEN + self.len()) as u16;
        frame[12..14].copy_from_slice(&len.to_be_bytes());
        frame[ETH_HLEN..ETH_HLEN + LLC_LEN].copy_from_slice(&LLC_HEADER);
        self.write_bpdu(&mut frame[ETH_HLEN + LLC_LEN..]);
        Ok(BPDU_FRAME_LEN)
    }

    /// [`Bpdu::encode_frame`] into a new `Vec` (control path only).
    pub fn to_frame(&self, src: MacAddr) -> Vec<u8> {
        let mut v = vec![0u8; BPDU_FRAME_LEN];
        // The buffer is exactly BPDU_FRAME_LEN bytes, so this cannot fail.
        let n = self.encode_frame(src, &mut v).unwrap_or(0);
        v.truncate(n);
        v
    }
}

/// For a whole Ethernet frame: if it is an untagged 802.3 frame to 01:80:c2:00:00:00, the
/// bytes after the Ethernet header (what [`Bpdu::decode`] and `Stp::receive` take), trimmed
/// to the 802.3 length field when that is shorter than what follows (padding removed).
///
/// Returns `None` for frames to other addresses, Ethernet II frames (type field >= 0x0600),
/// and 802.1Q-tagged frames: BPDUs are sent untagged, so a tagged frame to the bridge group
/// address is not a BPDU of this bridge (drop it; never flood it while STP runs).
pub fn bpdu_payload(frame: &[u8]) -> Option<&[u8]> {
    if frame.len() < ETH_HLEN || frame[0..6] != STP_GROUP.0 {
        return None;
    }
    let len = usize::from(be16(frame, 12));
    if len >= 0x0600 {
        return None;
    }
    let rest = &frame[ETH_HLEN..];
    Some(&rest[..len.min(rest.len())])
}
