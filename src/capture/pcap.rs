//! Capture files and streams: a pcapng / classic pcap writer and an incremental reader.
//!
//! The [`Writer`] turns captured frames into bytes appended to a caller-owned `Vec<u8>` that the
//! caller reuses, so the frame path allocates nothing of its own (the vector only grows until it
//! reaches the largest batch it has held). It is pure: no fd, no clock; the caller passes
//! timestamps in nanoseconds since the Unix epoch.
//!
//! # pcapng (draft-ietf-opsawg-pcapng)
//!
//! A stream is one section: a Section Header Block (byte-order magic `0x1A2B3C4D`, version 1.0,
//! section length -1 = unknown, `shb_userappl` = `"tapswitch <crate version>"`), then one
//! Interface Description Block per port (link type 1 = Ethernet, the writer's snaplen, `if_name`,
//! `if_tsresol` = 9, so timestamps are nanoseconds), then Enhanced Packet Blocks carrying
//! `epb_flags` with the direction in bits 0-1 (1 = inbound, 2 = outbound), and Interface
//! Statistics Blocks with `isb_ifrecv` / `isb_ifdrop`. An IDB may come at any point, as long as it
//! precedes the first block that names its interface (a port added while a capture runs). Every
//! block is padded to 32 bits and repeats its length at its end; every option list ends with
//! `opt_endofopt`. The writer always writes little-endian (the spec lets a writer pick its byte
//! order; the reader reads both).
//!
//! # Classic pcap
//!
//! A 24-byte global header with the **nanosecond** magic `0xA1B23C4D` (libpcap, tcpdump and
//! Wireshark all read it; it keeps the same resolution as the pcapng output), version 2.4, link
//! type 1, then a 16-byte record header per frame. Classic pcap has no interfaces, directions or
//! statistics: [`Writer::interface`] writes nothing (it still hands out ids, so callers treat both
//! formats alike), port names and directions are lost, and [`Writer::stats`] writes nothing.
//! Timestamps wrap in 2106 (32-bit seconds).
//!
//! # What tools show
//!
//! `tshark -T fields -e frame.interface_name -e frame.packet_flags_direction -e frame.p2p_dir`
//! shows the IDB name and the EPB direction (`frame.packet_flags_direction`: 1 inbound,
//! 2 outbound; `frame.p2p_dir`: 1 received, 0 sent). `tcpdump -r -` reads the stream from a pipe.
//!
//! # Reading
//!
//! [`Reader`] takes arbitrary chunks ([`Reader::feed`]) and yields [`Event`]s ([`Reader::next`]).
//! It reads both formats in both byte orders, refuses blocks longer than [`MAX_BLOCK_LEN`], and
//! never panics on garbage: a malformed stream yields a typed [`PcapError`], which is sticky.
//!
//! [`summary`] renders one frame as a one-line, tcpdump-like text for a CLI.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::wire::be16;

/// Largest pcapng block, or classic pcap record, that [`Reader`] accepts: 16 MiB.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;

/// Largest snapshot length the [`Writer`] uses, and the one it uses when given 0: libpcap's
/// maximum for Ethernet (262144). libpcap refuses classic pcap records longer than this.
pub const MAX_SNAPLEN: u32 = 262_144;

/// Link type of every interface the writer describes: `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u16 = 1;

/// Most interfaces one pcapng section may describe before [`Reader`] gives up.
pub const MAX_INTERFACES: usize = 65_536;

const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 0x0000_0001;
const BT_PB: u32 = 0x0000_0002; // obsolete Packet Block, still read
const BT_SPB: u32 = 0x0000_0003;
const BT_ISB: u32 = 0x0000_0005;
const BT_EPB: u32 = 0x0000_0006;

const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const PCAP_MAGIC_US: u32 = 0xA1B2_C3D4;
const PCAP_MAGIC_NS: u32 = 0xA1B2_3C4D;

const OPT_ENDOFOPT: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;
const EPB_FLAGS: u16 = 2; // also the obsolete Packet Block's pack_flags
const ISB_IFRECV: u16 = 4;
const ISB_IFDROP: u16 = 5;

/// `shb_userappl` written in every section header.
const USERAPPL: &str = concat!("tapswitch ", env!("CARGO_PKG_VERSION"));
/// `if_name` values are cut to this many bytes (at a character boundary).
const MAX_IF_NAME: usize = 255;
/// if_tsresol 9: timestamps count nanoseconds.
const TSRESOL_NS: u8 = 9;
/// The resolution a pcapng reader assumes when an IDB has no if_tsresol: microseconds.
const TSRESOL_DEFAULT: u8 = 6;

const NS_PER_SEC: u64 = 1_000_000_000;

/// Output format of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// pcapng: port names, directions and drop statistics included.
    Pcapng,
    /// Classic pcap with nanosecond timestamps: frames only.
    Pcap,
}

impl Format {
    /// The name accepted by [`FromStr`]: `"pcapng"` or `"pcap"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pcapng => "pcapng",
            Format::Pcap => "pcap",
        }
    }

    /// HTTP media type for a stream in this format (`application/vnd.tcpdump.pcap` is the
    /// IANA-registered type for pcap; pcapng has none, `application/x-pcapng` is customary).
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Pcapng => "application/x-pcapng",
            Format::Pcap => "application/vnd.tcpdump.pcap",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A capture format name that is neither `pcapng` nor `pcap`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capture format {0:?}: expected \"pcapng\" or \"pcap\"")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pcapng" => Ok(Format::Pcapng),
            "pcap" => Ok(Format::Pcap),
            other => Err(UnknownFormat(other.to_owned())),
        }
    }
}

/// Direction of a captured frame, from the switch's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received by the switch on the port (pcapng `epb_flags` direction 1).
    Inbound,
    /// Sent by the switch out of the port (pcapng `epb_flags` direction 2).
    Outbound,
}

impl Direction {
    /// `"in"` or `"out"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
        }
    }

    fn epb_bits(self) -> u32 {
        match self {
            Direction::Inbound => 1,
            Direction::Outbound => 2,
        }
    }

    fn from_epb_flags(flags: u32) -> Option<Direction> {
        match flags & 0b11 {
            1 => Some(Direction::Inbound),
            2 => Some(Direction::Outbound),
            _ => None,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Writer

/// Encodes a capture stream into a caller-owned buffer.
///
/// Call [`header`](Writer::header) once, [`interface`](Writer::interface) once per port (at any
/// time, before that port's first packet), then [`packet`](Writer::packet) and
/// [`stats`](Writer::stats) as often as needed. Apart from growing `out`, no method allocates.
#[derive(Debug, Clone)]
pub struct Writer {
    format: Format,
    snaplen: u32,
    next_iface: u32,
}

impl Writer {
    /// A writer for `format` that keeps at most `snaplen` bytes of each frame. A `snaplen` of 0,
    /// or one above [`MAX_SNAPLEN`], means [`MAX_SNAPLEN`].
    pub fn new(format: Format, snaplen: u32) -> Writer {
        let snaplen = if snaplen == 0 || snaplen > MAX_SNAPLEN {
            MAX_SNAPLEN
        } else {
            snaplen
        };
        Writer {
            format,
            snaplen,
            next_iface: 0,
        }
    }

    /// The format being written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The effective snapshot length (after the adjustment described in [`Writer::new`]).
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Appends the stream header: a pcapng Section Header Block or the 24-byte pcap header.
    pub fn header(&self, out: &mut Vec<u8>) {
        match self.format {
            Format::Pcapng => {
                let start = begin_block(out, BT_SHB);
                put_u32(out, BYTE_ORDER_MAGIC);
                put_u16(out, 1); // major version
                put_u16(out, 0); // minor version
                put_u64(out, u64::MAX); // section length -1: not specified
                put_option(out, SHB_USERAPPL, USERAPPL.as_bytes());
                put_u32(out, 0); // opt_endofopt
                end_block(out, start);
            }
            Format::Pcap => {
                put_u32(out, PCAP_MAGIC_NS);
                put_u16(out, 2); // version major
                put_u16(out, 4); // version minor
                put_u32(out, 0); // thiszone
                put_u32(out, 0); // sigfigs
                put_u32(out, self.snaplen);
                put_u32(out, u32::from(LINKTYPE_ETHERNET));
            }
        }
    }

    /// Describes a new interface (a switch port) named `name` and returns its id for
    /// [`packet`](Writer::packet) and [`stats`](Writer::stats). Ids count from 0 in call order.
    ///
    /// pcapng: appends an Interface Description Block (link type Ethernet, the snaplen,
    /// `if_name` = `name` cut to 255 bytes, `if_tsresol` = 9). It may be written mid-stream.
    /// Classic pcap: appends nothing (the format has no interfaces) and only hands out the id.
    pub fn interface(&mut self, name: &str, out: &mut Vec<u8>) -> u32 {
        let id = self.next_iface;
        self.next_iface = self.next_iface.saturating_add(1);
        if self.format == Format::Pcapng {
            let start = begin_block(out, BT_IDB);
            put_u16(out, LINKTYPE_ETHERNET);
            put_u16(out, 0); // reserved
            put_u32(out, self.snaplen);
            put_option(out, IF_NAME, truncate_str(name, MAX_IF_NAME).as_bytes());
            put_option(out, IF_TSRESOL, &[TSRESOL_NS]);
            put_u32(out, 0); // opt_endofopt
            end_block(out, start);
        }
        id
    }

    /// Appends one frame seen on interface `iface` at `ts_ns` (nanoseconds since the Unix epoch).
    ///
    /// At most the snaplen of `data` is kept. `orig_len` is the frame's length on the wire; a
    /// value smaller than the captured length is raised to it (the spec requires
    /// original >= captured). pcapng: an Enhanced Packet Block with `epb_flags` carrying `dir`.
    /// Classic pcap: a record; `iface` and `dir` are not representable and are dropped.
    /// `iface` must be an id returned by [`interface`](Writer::interface) (readers reject others).
    pub fn packet(
        &self,
        out: &mut Vec<u8>,
        iface: u32,
        ts_ns: u64,
        dir: Direction,
        data: &[u8],
        orig_len: u32,
    ) {
        let caplen = data.len().min(self.snaplen as usize);
        let data = &data[..caplen];
        // caplen <= MAX_SNAPLEN, so it fits in u32.
        let caplen32 = caplen as u32;
        let orig_len = orig_len.max(caplen32);
        match self.format {
            Format::Pcapng => {
                let start = begin_block(out, BT_EPB);
                put_u32(out, iface);
                put_u32(out, (ts_ns >> 32) as u32);
                put_u32(out, ts_ns as u32);
                put_u32(out, caplen32);
                put_u32(out, orig_len);
                out.extend_from_slice(data);
                put_padding(out, caplen);
                put_option(out, EPB_FLAGS, &dir.epb_bits().to_le_bytes());
                put_u32(out, 0); // opt_endofopt
                end_block(out, start);
            }
            Format::Pcap => {
                put_u32(out, (ts_ns / NS_PER_SEC) as u32);
                put_u32(out, (ts_ns % NS_PER_SEC) as u32);
                put_u32(out, caplen32);
                put_u32(out, orig_len);
                out.extend_from_slice(data);
            }
        }
    }

    /// Appends capture statistics for `iface` at `ts_ns`: `received` frames seen so far and
    /// `dropped` frames this capture lost (for instance because its reader was too slow).
    ///
    /// pcapng: an Interface Statistics Block with `isb_ifrecv` and `isb_ifdrop`.
    /// Classic pcap: nothing (the format has no statistics).
    pub fn stats(&self, out: &mut Vec<u8>, iface: u32, ts_ns: u64, received: u64, dropped: u64) {
        if self.format != Format::Pcapng {
            return;
        }
        let start = begin_block(out, BT_ISB);
        put_u32(out, iface);
        put_u32(out, (ts_ns >> 32) as u32);
        put_u32(out, ts_ns as u32);
        put_option(out, ISB_IFRECV, &received.to_le_bytes());
        put_option(out, ISB_IFDROP, &dropped.to_le_bytes());
        put_u32(out, 0); // opt_endofopt
        end_block(out, start);
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Zero bytes that bring `len` up to a multiple of 4.
fn pad_len(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn put_padding(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&[0u8; 3][..pad_len(len)]);
}

/// One option TLV, value padded to 32 bits. Callers keep `value` under 64 KiB.
fn put_option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    put_u16(out, code);
    put_u16(out, value.len() as u16);
    out.extend_from_slice(value);
    put_padding(out, value.len());
}

/// Writes the block type and a placeholder length; returns where the block starts.
fn begin_block(out: &mut Vec<u8>, block_type: u32) -> usize {
    let start = out.len();
    put_u32(out, block_type);
    put_u32(out, 0);
    start
}

/// Writes the trailing length and patches the leading one. The body is already 32-bit aligned.
fn end_block(out: &mut Vec<u8>, start: usize) {
    // Blocks are bounded by MAX_SNAPLEN plus a few dozen bytes: the length fits in u32.
    let len = (out.len() - start + 4) as u32;
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    put_u32(out, len);
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---------------------------------------------------------------------------------------------
// Reader

/// What a capture stream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An interface was described (pcapng IDB). A classic pcap stream yields one, with id 0 and
    /// no name, right after its header. A new pcapng section restarts ids at 0.
    Interface {
        /// Interface id within the section, as used by `Packet` and `Stats`.
        id: u32,
        /// `if_name`, if present (invalid UTF-8 replaced).
        name: Option<String>,
        /// Link type (1 = Ethernet).
        linktype: u16,
    },
    /// A captured frame.
    Packet {
        /// Interface id (0 for classic pcap and Simple Packet Blocks).
        iface: u32,
        /// Nanoseconds since the Unix epoch (0 for Simple Packet Blocks, which carry none).
        ts_ns: u64,
        /// Direction from `epb_flags`, if recorded.
        dir: Option<Direction>,
        /// The captured bytes.
        data: Vec<u8>,
        /// Length on the wire.
        orig_len: u32,
    },
    /// Interface statistics (pcapng ISB).
    Stats {
        /// Interface id.
        iface: u32,
        /// `isb_ifrecv`: frames received since the capture started.
        received: Option<u64>,
        /// `isb_ifdrop`: frames dropped since the capture started.
        dropped: Option<u64>,
    },
}

/// Why a capture stream could not be read. Once returned, [`Reader::next`] keeps returning it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    /// The stream starts with neither a pcapng section header nor a pcap magic.
    #[error("not a pcap or pcapng stream (starts with {0:#010x})")]
    BadMagic(u32),
    /// A section header's byte-order magic is neither 0x1A2B3C4D nor its byte swap.
    #[error("pcapng section header has a bad byte-order magic {0:#010x}")]
    BadByteOrderMagic(u32),
    /// A pcapng section of a major version other than 1.
    #[error("unsupported pcapng version {major}.{minor}")]
    UnsupportedVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A block length below 12 or not a multiple of 4.
    #[error("pcapng block of type {block_type:#x} has an invalid length {len}")]
    BadBlockLength {
        /// Block type.
        block_type: u32,
        /// Block total length.
        len: u32,
    },
    /// A block or record longer than [`MAX_BLOCK_LEN`].
    #[error("capture block or record of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The length at the end of a block differs from the one at its start.
    #[error("pcapng block of type {block_type:#x}: trailing length {trailing} differs from leading length {leading}")]
    LengthMismatch {
        /// Block type.
        block_type: u32,
        /// Leading block total length.
        leading: u32,
        /// Trailing block total length.
        trailing: u32,
    },
    /// A block too short for its fixed fields or its packet data.
    #[error("pcapng block of type {block_type:#x} is too short for its contents")]
    Truncated {
        /// Block type.
        block_type: u32,
    },
    /// An option runs past the end of its block.
    #[error("pcapng block of type {block_type:#x} has a malformed option list")]
    BadOption {
        /// Block type.
        block_type: u32,
    },
    /// A block refers to an interface with no Interface Description Block before it.
    #[error("pcapng block refers to interface {0}, which was not described")]
    UnknownInterface(u32),
    /// Too many Interface Description Blocks in one section.
    #[error("more than {0} interfaces in one pcapng section")]
    TooManyInterfaces(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let a = [b[at], b[at + 1]];
        match self {
            Order::Little => u16::from_le_bytes(a),
            Order::Big => u16::from_be_bytes(a),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match self {
            Order::Little => u32::from_le_bytes(a),
            Order::Big => u32::from_be_bytes(a),
        }
    }

    fn u64(self, b: &[u8], at: usize) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[at..at + 8]);
        match self {
            Order::Little => u64::from_le_bytes(a),
            Order::Big => u64::from_be_bytes(a),
        }
    }

    /// A pcapng timestamp: high 32 bits then low 32 bits.
    fn ts(self, b: &[u8], at: usize) -> u64 {
        (u64::from(self.u32(b, at)) << 32) | u64::from(self.u32(b, at + 4))
    }
}

#[derive(Debug, Clone, Copy)]
struct IfaceInfo {
    tsresol: u8,
    tsoffset_s: i64,
    snaplen: u32,
}

#[derive(Debug)]
enum State {
    /// Nothing read yet.
    Start,
    /// Inside a pcapng stream; `order` is set by each section header.
    Pcapng {
        order: Order,
        ifaces: Vec<IfaceInfo>,
    },
    /// Inside a classic pcap stream.
    Pcap { order: Order, nanos: bool },
}

/// Incremental reader of pcapng and classic pcap streams, in either byte order.
///
/// ```
/// # use tapswitch::capture::pcap::{Reader, Event};
/// let mut reader = Reader::new();
/// # let chunk: &[u8] = &[];
/// reader.feed(chunk);
/// while let Some(event) = reader.next()? {
///     println!("{event:?}");
/// }
/// # Ok::<(), tapswitch::capture::pcap::PcapError>(())
/// ```
#[derive(Debug)]
pub struct Reader {
    buf: Vec<u8>,
    pos: usize,
    state: State,
    failed: Option<PcapError>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader::new()
    }
}

enum Step {
    /// Need more bytes.
    More,
    /// Consumed a block that yields no event.
    Skip(usize),
    /// Consumed `usize` bytes and produced an event.
    Emit(usize, Event),
}

impl Reader {
    /// An empty reader expecting the start of a stream.
    pub fn new() -> Reader {
        Reader {
            buf: Vec::new(),
            pos: 0,
            state: State::Start,
            failed: None,
        }
    }

    /// Appends bytes from the stream, in chunks of any size.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes fed but not yet consumed (part of a block). Non-zero at end of stream means the
    /// stream was cut inside a block.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next event, `Ok(None)` if more bytes are needed, or the error that stopped the stream
    /// (returned again on every later call).
    #[expect(
        clippy::should_implement_trait,
        reason = "Ok(None) means \"feed more bytes\", not the end: Iterator's contract does not fit"
    )]
    pub fn next(&mut self) -> Result<Option<Event>, PcapError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        loop {
            let step = match self.step() {
                Ok(step) => step,
                Err(err) => {
                    self.failed = Some(err.clone());
                    return Err(err);
                }
            };
            match step {
                Step::More => return Ok(None),
                Step::Skip(n) => self.pos += n,
                Step::Emit(n, event) => {
                    self.pos += n;
                    return Ok(Some(event));
                }
            }
        }
    }

    fn step(&mut self) -> Result<Step, PcapError> {
        let Reader {
            buf, pos, state, ..
        } = self;
        let avail = &buf[*pos..];
        match state {
            State::Start => {
                if avail.len() < 4 {
                    return Ok(Step::More);
                }
                let magic = u32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]);
                if magic == BT_SHB {
                    *state = State::Pcapng {
                        order: Order::Little,
                        ifaces: Vec::new(),
                    };
                    // The section header itself is read by the pcapng branch.
                    return Ok(Step::Skip(0));
                }
                let (order, nanos) = match magic {
                    PCAP_MAGIC_US => (Order::Big, false),
                    PCAP_MAGIC_NS => (Order::Big, true),
                    m if m == PCAP_MAGIC_US.swap_bytes() => (Order::Little, false),
                    m if m == PCAP_MAGIC_NS.swap_bytes() => (Order::Little, true),
                    other => return Err(PcapError::BadMagic(other)),
                };
                if avail.len() < 24 {
                    return Ok(Step::More);
                }
                // Upper bits of the link type field may carry FCS information.
                let linktype = (order.u32(avail, 20) & 0xFFFF) as u16;
                *state = State::Pcap { order, nanos };
                Ok(Step::Emit(
                    24,
                    Event::Interface {
                        id: 0,
                        name: None,
                        linktype,
                    },
                ))
            }
            State::Pcap { order, nanos } => {
                if avail.len() < 16 {
                    return Ok(Step::More);
                }
                let caplen = order.u32(avail, 8);
                if caplen > MAX_BLOCK_LEN {
                    return Err(PcapError::TooLarge {
                        len: caplen,
                        max: MAX_BLOCK_LEN,
                    });
                }
                let total = 16 + caplen as usize;
                if avail.len() < total {
                    return Ok(Step::More);
                }
                let secs = u64::from(order.u32(avail, 0));
                let frac = u64::from(order.u32(avail, 4));
                // Both fit: secs * 10^9 < 2^62 and frac * 1000 < 2^42.
                let frac_ns = if *nanos { frac } else { frac * 1000 };
                let ts_ns = secs * NS_PER_SEC + frac_ns;
                Ok(Step::Emit(
                    total,
                    Event::Packet {
                        iface: 0,
                        ts_ns,
                        dir: None,
                        data: avail[16..total].to_vec(),
                        orig_len: order.u32(avail, 12),
                    },
                ))
            }
            State::Pcapng { order, ifaces } => {
                if avail.len() < 8 {
                    return Ok(Step::More);
                }
                let is_shb = avail[..4] == BT_SHB.to_be_bytes();
                if is_shb {
                    // The byte order of a section is only known from its byte-order magic.
                    if avail.len() < 12 {
                        return Ok(Step::More);
                    }
                    let magic = Order::Little.u32(avail, 8);
                    *order = if magic == BYTE_ORDER_MAGIC {
                        Order::Little
                    } else if magic == BYTE_ORDER_MAGIC.swap_bytes() {
                        Order::Big
                    } else {
                        return Err(PcapError::BadByteOrderMagic(magic.swap_bytes()));
                    };
                }
                let order = *order;
                let block_type = order.u32(avail, 0);
                let len = order.u32(avail, 4);
                if len > MAX_BLOCK_LEN {
                    return Err(PcapError::TooLarge {
                        len,
                        max: MAX_BLOCK_LEN,
                    });
                }
                if len < 12 || len % 4 != 0 {
                    return Err(PcapError::BadBlockLength { block_type, len });
                }
                let len = len as usize;
                if avail.len() < len {
                    return Ok(Step::More);
                }
                let trailing = order.u32(avail, len - 4);
                if trailing as usize != len {
                    return Err(PcapError::LengthMismatch {
                        block_type,
                        leading: len as u32,
                        trailing,
                    });
                }
                let body = &avail[8..len - 4];
                let event = pcapng_block(order, ifaces, block_type, body)?;
                Ok(match event {
                    Some(event) => Step::Emit(len, event),
                    None => Step::Skip(len),
                })
            }
        }
    }
}

/// Decodes one pcapng block body (between the leading length and the trailing length).
fn pcapng_block(
    order: Order,
    ifaces: &mut Vec<IfaceInfo>,
    block_type: u32,
    body: &[u8],
) -> Result<Option<Event>, PcapError> {
    let truncated = PcapError::Truncated { block_type };
    match block_type {
        BT_SHB => {
            if body.len() < 16 {
                return Err(truncated);
            }
            let major = order.u16(body, 4);
            let minor = order.u16(body, 6);
            if major != 1 {
                return Err(PcapError::UnsupportedVersion { major, minor });
            }
            ifaces.clear();
            Ok(None)
        }
        BT_IDB => {
            if body.len() < 8 {
                return Err(truncated);
            }
            if ifaces.len() >= MAX_INTERFACES {
                return Err(PcapError::TooManyInterfaces(MAX_INTERFACES));
            }
            let linktype = order.u16(body, 0);
            let snaplen = order.u32(body, 4);
            let mut name = None;
            let mut info = IfaceInfo {
                tsresol: TSRESOL_DEFAULT,
                tsoffset_s: 0,
                snaplen,
            };
            for_each_option(order, block_type, &body[8..], |code, value| match code {
                IF_NAME => name = Some(option_string(value)),
                IF_TSRESOL if value.len() == 1 => info.tsresol = value[0],
                IF_TSOFFSET if value.len() == 8 => info.tsoffset_s = order.u64(value, 0) as i64,
                _ => {}
            })?;
            let id = ifaces.len() as u32;
            ifaces.push(info);
            Ok(Some(Event::Interface { id, name, linktype }))
        }
        BT_EPB | BT_PB => {
            if body.len() < 20 {
                return Err(truncated);
            }
            let iface = if block_type == BT_EPB {
                order.u32(body, 0)
            } else {
                u32::from(order.u16(body, 0))
            };
            let info = *ifaces
                .get(iface as usize)
                .ok_or(PcapError::UnknownInterface(iface))?;
            let ts = order.ts(body, 4);
            let caplen = order.u32(body, 12) as usize;
            let orig_len = order.u32(body, 16);
            if caplen > body.len() - 20 {
                return Err(truncated);
            }
            let data_end = 20 + caplen;
            // body.len() is a multiple of 4, so the padded end of the data is within it.
            let opts_start = (data_end + pad_len(caplen)).min(body.len());
            let mut dir = None;
            for_each_option(order, block_type, &body[opts_start..], |code, value| {
                if code == EPB_FLAGS && value.len() == 4 {
                    dir = Direction::from_epb_flags(order.u32(value, 0));
                }
            })?;
            Ok(Some(Event::Packet {
                iface,
                ts_ns: ts_to_ns(ts, info),
                dir,
                data: body[20..data_end].to_vec(),
                orig_len,
            }))
        }
        BT_SPB => {
            if body.len() < 4 {
                return Err(truncated);
            }
            let info = *ifaces.first().ok_or(PcapError::UnknownInterface(0))?;
            let orig_len = order.u32(body, 0);
            let mut caplen = (orig_len as usize).min(body.len() - 4);
            if info.snaplen != 0 {
                caplen = caplen.min(info.snaplen as usize);
            }
            Ok(Some(Event::Packet {
                iface: 0,
                ts_ns: 0,
                dir: None,
                data: body[4..4 + caplen].to_vec(),
                orig_len,
            }))
        }
        BT_ISB => {
            if body.len() < 12 {
                return Err(truncated);
            }
            let iface = order.u32(body, 0);
            if iface as usize >= ifaces.len() {
                return Err(PcapError::UnknownInterface(iface));
            }
            let mut received = None;
            let mut dropped = None;
            for_each_option(order, block_type, &body[12..], |code, value| match code {
                ISB_IFRECV if value.len() == 8 => received = Some(order.u64(value, 0)),
                ISB_IFDROP if value.len() == 8 => dropped = Some(order.u64(value, 0)),
                _ => {}
            })?;
            Ok(Some(Event::Stats {
                iface,
                received,
                dropped,
            }))
        }
        // Name resolution, decryption secrets, custom and unknown blocks: skipped.
        _ => Ok(None),
    }
}

/// Calls `f(code, value)` for each option until `opt_endofopt` or the end of `opts`.
fn for_each_option(
    order: Order,
    block_type: u32,
    mut opts: &[u8],
    mut f: impl FnMut(u16, &[u8]),
) -> Result<(), PcapError> {
    while opts.len() >= 4 {
        let code = order.u16(opts, 0);
        if code == OPT_ENDOFOPT {
            break;
        }
        let len = usize::from(order.u16(opts, 2));
        let total = 4 + len + pad_len(len);
        if total > opts.len() {
            return Err(PcapError::BadOption { block_type });
        }
        f(code, &opts[4..4 + len]);
        opts = &opts[total..];
    }
    Ok(())
}

/// A pcapng string option: up to the first NUL, invalid UTF-8 replaced.
fn option_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// Converts a pcapng timestamp in the interface's units to nanoseconds since the epoch,
/// saturating at 0 and `u64::MAX`.
fn ts_to_ns(ts: u64, info: IfaceInfo) -> u64 {
    let exp = u32::from(info.tsresol & 0x7F);
    let units_per_sec: Option<u128> = if info.tsresol & 0x80 == 0 {
        10u128.checked_pow(exp)
    } else {
        1u128.checked_shl(exp)
    };
    let ns = match units_per_sec {
        Some(units) if units > 0 => u128::from(ts) * u128::from(NS_PER_SEC) / units,
        _ => 0,
    };
    let ns = ns as i128 + i128::from(info.tsoffset_s) * i128::from(NS_PER_SEC);
    ns.clamp(0, i128::from(u64::MAX)) as u64
}

// ---------------------------------------------------------------------------------------------
// One-line summary

/// One line describing `frame`, seen on `port` going `dir` at `ts_ns` (nanoseconds since the
/// Unix epoch), for a CLI:
///
/// `HH:MM:SS.uuuuuu PORT in|out SRC > DST [vlan VID] TYPE len N[: L3 tail]`
///
/// TYPE is `ipv4`, `arp`, `ipv6`, `lldp`, `lacp`, `slow` (other slow protocols), `stp` or
/// `llc` (802.3 length field), else `0xNNNN`. The tail names addresses and the protocol for
/// IPv4 and IPv6 (`198.18.0.1 > 198.18.0.2 ICMP echo request`, ports for TCP/UDP/SCTP) and ARP.
/// Never panics: a short frame is reported as truncated.
pub fn summary(ts_ns: u64, port: &str, dir: Direction, frame: &[u8]) -> String {
    let mut s = String::with_capacity(128);
    let secs = ts_ns / NS_PER_SEC;
    let day = secs % 86_400;
    let micros = (ts_ns % NS_PER_SEC) / 1_000;
    let _ = write!(
        s,
        "{:02}:{:02}:{:02}.{:06} {} {} ",
        day / 3600,
        day % 3600 / 60,
        day % 60,
        micros,
        port,
        dir
    );
    if frame.len() < 14 {
        let _ = write!(s, "truncated frame len {}", frame.len());
        return s;
    }
    push_mac(&mut s, &frame[6..12]);
    s.push_str(" > ");
    push_mac(&mut s, &frame[0..6]);
    let mut ethertype = be16(frame, 12);
    let mut off = 14;
    // Up to two tags (802.1ad outer, 802.1Q inner).
    for _ in 0..2 {
        if ethertype != 0x8100 && ethertype != 0x88A8 {
            break;
        }
        if frame.len() < off + 4 {
            let _ = write!(s, " vlan truncated len {}", frame.len());
            return s;
        }
        let tci = be16(frame, off);
        let _ = write!(s, " vlan {}", tci & 0x0FFF);
        if tci >> 13 != 0 {
            let _ = write!(s, " pcp {}", tci >> 13);
        }
        ethertype = be16(frame, off + 2);
        off += 4;
    }
    let payload = &frame[off..];
    let name = match ethertype {
        0x0800 => "ipv4",
        0x0806 => "arp",
        0x86DD => "ipv6",
        0x88CC => "lldp",
        0x8100 | 0x88A8 => "vlan",
        0x8809 if payload.first() == Some(&1) => "lacp",
        0x8809 => "slow",
        t if t <= 1500 => {
            if payload.len() >= 2 && payload[0] == 0x42 && payload[1] == 0x42 {
                "stp"
            } else {
                "llc"
            }
        }
        _ => "",
    };
    if name.is_empty() {
        let _ = write!(s, " {ethertype:#06x}");
    } else {
        s.push(' ');
        s.push_str(name);
    }
    let _ = write!(s, " len {}", frame.len());
    match ethertype {
        0x0800 => ipv4_tail(&mut s, payload),
        0x86DD => ipv6_tail(&mut s, payload),
        0x0806 => arp_tail(&mut s, payload),
        _ => {}
    }
    s
}

fn push_mac(s: &mut String, mac: &[u8]) {
    for (i, byte) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{byte:02x}");
    }
}

fn ip_proto_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        1 => "ICMP",
        2 => "IGMP",
        6 => "TCP",
        17 => "UDP",
        58 => "ICMP6",
        132 => "SCTP",
        _ => return None,
    })
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

/// `": SRC > DST PROTO"`, with ports where `l4` holds them.
fn l3_tail(
    s: &mut String,
    src: &dyn std::fmt::Display,
    dst: &dyn std::fmt::Display,
    bracket: bool,
    proto: u8,
    l4: Option<&[u8]>,
) {
    let ports = l4.filter(|l4| has_ports(proto) && l4.len() >= 4);
    match ports {
        Some(l4) if bracket => {
            let _ = write!(s, ": [{src}]:{} > [{dst}]:{}", be16(l4, 0), be16(l4, 2));
        }
        Some(l4) => {
            let _ = write!(s, ": {src}:{} > {dst}:{}", be16(l4, 0), be16(l4, 2));
        }
        None => {
            let _ = write!(s, ": {src} > {dst}");
        }
    }
    match ip_proto_name(proto) {
        Some(name) => {
            s.push(' ');
            s.push_str(name);
        }
        None => {
            let _ = write!(s, " proto {proto}");
        }
    }
    // ICMP / ICMPv6 echo.
    if let Some(l4) = l4.filter(|l4| !l4.is_empty()) {
        let kind = match (proto, l4[0]) {
            (1, 8) | (58, 128) => Some("echo request"),
            (1, 0) | (58, 129) => Some("echo reply"),
            _ => None,
        };
        if let Some(kind) = kind {
            s.push(' ');
            s.push_str(kind);
        }
    }
}

fn ipv4_tail(s: &mut String, p: &[u8]) {
    if p.len() < 20 || p[0] >> 4 != 4 {
        s.push_str(": truncated ipv4");
        return;
    }
    let ihl = usize::from(p[0] & 0x0F) * 4;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let fragment = be16(p, 6) & 0x3FFF != 0;
    let first_fragment = be16(p, 6) & 0x1FFF == 0;
    let l4 = if ihl >= 20 && p.len() >= ihl && first_fragment {
        Some(&p[ihl..])
    } else {
        None
    };
    l3_tail(s, &src, &dst, false, p[9], l4);
    if fragment {
        s.push_str(" frag");
    }
}

fn ipv6_tail(s: &mut String, p: &[u8]) {
    if p.len() < 40 || p[0] >> 4 != 6 {
        s.push_str(": truncated ipv6");
        return;
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&p[8..24]);
    let src = Ipv6Addr::from(a);
    a.copy_from_slice(&p[24..40]);
    let dst = Ipv6Addr::from(a);
    l3_tail(s, &src, &dst, true, p[6], Some(&p[40..]));
}

fn arp_tail(s: &mut String, p: &[u8]) {
    // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
    if p.len() < 28 || be16(p, 0) != 1 || be16(p, 2) != 0x0800 || p[4] != 6 || p[5] != 4 {
        return;
    }
    let spa = Ipv4Addr::new(p[14], p[15], p[16], p[17]);
    let tpa = Ipv4Addr::new(p[24], p[25], p[26], p[27]);
    match be16(p, 6) {
        1 => {
            let _ = write!(s, ": who-has {tpa} tell {spa}");
        }
        2 => {
            let _ = write!(s, ": {spa} is-at ");
            push_mac(s, &p[8..14]);
        }
        op => {
            let _ = write!(s, ": op {op} {spa} > {tpa}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Little-endian helpers for writing expected bytes by hand.
    fn le32(v: u32) -> [u8; 4] {
        v.to_le_bytes()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Event>, PcapError> {
        let mut reader = Reader::new();
        reader.feed(bytes);
        let mut events = Vec::new();
        while let Some(event) = reader.next()? {
            events.push(event);
        }
        assert_eq!(reader.buffered(), 0, "stream ends inside a block");
        Ok(events)
    }

    /// Feeds one byte at a time: the reader must produce the same events.
    fn read_bytewise(bytes: &[u8]) -> Result<Vec<Event>, PcapError> {
        let mut reader = Reader::new();
        let mut events = Vec::new();
        for b in bytes {
            reader.feed(std::slice::from_ref(b));
            while let Some(event) = reader.next()? {
                events.push(event);
            }
        }
        assert_eq!(reader.buffered(), 0);
        Ok(events)
    }

    const TS: u64 = 0x0102_0304_0506_0708;

    #[test]
    fn pcapng_blocks_are_byte_exact() {
        let mut w = Writer::new(Format::Pcapng, 65535);
        let mut out = Vec::new();

        // Section Header Block.
        w.header(&mut out);
        let appl = USERAPPL.as_bytes();
        assert_eq!(USERAPPL, concat!("tapswitch ", env!("CARGO_PKG_VERSION")));
        let appl_padded = appl.len().div_ceil(4) * 4;
        let shb_len = (24 + 4 + appl_padded + 4 + 4) as u32;
        let mut shb = Vec::new();
        shb.extend_from_slice(&[0x0A, 0x0D, 0x0D, 0x0A]);
        shb.extend_from_slice(&le32(shb_len));
        shb.extend_from_slice(&[0x4D, 0x3C, 0x2B, 0x1A]); // byte-order magic, little-endian
        shb.extend_from_slice(&[1, 0, 0, 0]); // version 1.0
        shb.extend_from_slice(&[0xFF; 8]); // section length -1
        shb.extend_from_slice(&[4, 0, appl.len() as u8, 0]); // shb_userappl
        shb.extend_from_slice(appl);
        shb.resize(shb.len() + appl_padded - appl.len(), 0);
        shb.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        shb.extend_from_slice(&le32(shb_len));
        assert_eq!(out, shb);
        out.clear();

        // Interface Description Block.
        assert_eq!(w.interface("p1", &mut out), 0);
        #[rustfmt::skip]
        let idb: &[u8] = &[
            0x01, 0x00, 0x00, 0x00, // block type 1
            0x28, 0x00, 0x00, 0x00, // total length 40
            0x01, 0x00, 0x00, 0x00, // link type 1 (Ethernet), reserved
            0xFF, 0xFF, 0x00, 0x00, // snaplen 65535
            0x02, 0x00, 0x02, 0x00, b'p', b'1', 0x00, 0x00, // if_name "p1", padded
            0x09, 0x00, 0x01, 0x00, 0x09, 0x00, 0x00, 0x00, // if_tsresol 9, padded
            0x00, 0x00, 0x00, 0x00, // opt_endofopt
            0x28, 0x00, 0x00, 0x00, // total length 40
        ];
        assert_eq!(out, idb);
        out.clear();

        // Enhanced Packet Block, 5 bytes of data (3 bytes of padding), inbound.
        w.packet(
            &mut out,
            0,
            TS,
            Direction::Inbound,
            &[0xAA, 0xBB, 0xCC, 0xDD, 0xEE],
            60,
        );
        #[rustfmt::skip]
        let epb: &[u8] = &[
            0x06, 0x00, 0x00, 0x00, // block type 6
            0x34, 0x00, 0x00, 0x00, // total length 52
            0x00, 0x00, 0x00, 0x00, // interface 0
            0x04, 0x03, 0x02, 0x01, // timestamp high
            0x08, 0x07, 0x06, 0x05, // timestamp low
            0x05, 0x00, 0x00, 0x00, // captured length 5
            0x3C, 0x00, 0x00, 0x00, // original length 60
            0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0x00, 0x00, 0x00, // data, padded
            0x02, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, // epb_flags: inbound
            0x00, 0x00, 0x00, 0x00, // opt_endofopt
            0x34, 0x00, 0x00, 0x00, // total length 52
        ];
        assert_eq!(out, epb);
        out.clear();

        // Outbound sets bits 0-1 to 2.
        w.packet(&mut out, 0, TS, Direction::Outbound, &[0; 4], 4);
        assert_eq!(
            &out[32..40],
            &[0x02, 0x00, 0x04, 0x00, 0x02, 0x00, 0x00, 0x00]
        );
        out.clear();

        // A second interface mid-stream, then an Interface Statistics Block for it.
        assert_eq!(w.interface("p2", &mut out), 1);
        out.clear();
        w.stats(&mut out, 1, TS, 10, 3);
        #[rustfmt::skip]
        let isb: &[u8] = &[
            0x05, 0x00, 0x00, 0x00, // block type 5
            0x34, 0x00, 0x00, 0x00, // total length 52
            0x01, 0x00, 0x00, 0x00, // interface 1
            0x04, 0x03, 0x02, 0x01, // timestamp high
            0x08, 0x07, 0x06, 0x05, // timestamp low
            0x04, 0x00, 0x08, 0x00, 10, 0, 0, 0, 0, 0, 0, 0, // isb_ifrecv 10
            0x05, 0x00, 0x08, 0x00, 3, 0, 0, 0, 0, 0, 0, 0, // isb_ifdrop 3
            0x00, 0x00, 0x00, 0x00, // opt_endofopt
            0x34, 0x00, 0x00, 0x00, // total length 52
        ];
        assert_eq!(out, isb);
    }

    #[test]
    fn pcap_header_and_record_are_byte_exact() {
        let mut w = Writer::new(Format::Pcap, 65535);
        let mut out = Vec::new();
        w.header(&mut out);
        #[rustfmt::skip]
        let header: &[u8] = &[
            0x4D, 0x3C, 0xB2, 0xA1, // magic 0xa1b23c4d (nanoseconds), little-endian
            0x02, 0x00, 0x04, 0x00, // version 2.4
            0x00, 0x00, 0x00, 0x00, // thiszone
            0x00, 0x00, 0x00, 0x00, // sigfigs
            0xFF, 0xFF, 0x00, 0x00, // snaplen 65535
            0x01, 0x00, 0x00, 0x00, // link type 1
        ];
        assert_eq!(out, header);
        out.clear();
        assert_eq!(w.interface("p1", &mut out), 0);
        assert_eq!(w.interface("p2", &mut out), 1);
        assert!(out.is_empty(), "classic pcap has no interface blocks");
        let ts = 1_700_000_000 * NS_PER_SEC + 123_456_789;
        w.packet(&mut out, 1, ts, Direction::Outbound, &[1, 2, 3], 3);
        let mut record = Vec::new();
        record.extend_from_slice(&le32(1_700_000_000));
        record.extend_from_slice(&le32(123_456_789));
        record.extend_from_slice(&le32(3));
        record.extend_from_slice(&le32(3));
        record.extend_from_slice(&[1, 2, 3]);
        assert_eq!(out, record);
        out.clear();
        w.stats(&mut out, 0, ts, 1, 1);
        assert!(out.is_empty(), "classic pcap has no statistics");
    }

    #[test]
    fn snaplen_truncates_and_orig_len_is_at_least_caplen() {
        let mut out = Vec::new();
        let w = Writer::new(Format::Pcapng, 8);
        w.packet(&mut out, 0, 0, Direction::Inbound, &[7; 20], 20);
        assert_eq!(&out[20..28], &[8, 0, 0, 0, 20, 0, 0, 0]);
        out.clear();
        w.packet(&mut out, 0, 0, Direction::Inbound, &[7; 6], 2);
        assert_eq!(&out[20..28], &[6, 0, 0, 0, 6, 0, 0, 0]);
        assert_eq!(Writer::new(Format::Pcap, 0).snaplen(), MAX_SNAPLEN);
        assert_eq!(Writer::new(Format::Pcap, u32::MAX).snaplen(), MAX_SNAPLEN);
    }

    #[test]
    fn long_interface_names_are_cut_at_a_char_boundary() {
        let mut w = Writer::new(Format::Pcapng, 0);
        let mut out = Vec::new();
        w.header(&mut out);
        let name = "é".repeat(200); // 400 bytes
        w.interface(&name, &mut out);
        let events = read_all(&out).unwrap();
        let Event::Interface {
            name: Some(got), ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(got.len(), 254);
        assert!(name.starts_with(got.as_str()));
    }

    /// A stream like a live capture: a port added after packets of others, stats at the end.
    fn sample_stream(format: Format) -> Vec<u8> {
        let mut w = Writer::new(format, 1500);
        let mut out = Vec::new();
        w.header(&mut out);
        let p1 = w.interface("p1", &mut out);
        let p2 = w.interface("p2", &mut out);
        w.packet(&mut out, p1, 1_000, Direction::Inbound, &[1; 60], 60);
        w.packet(&mut out, p2, 2_000, Direction::Outbound, &[2; 61], 61);
        let p3 = w.interface("p3", &mut out);
        w.packet(&mut out, p3, 3_000, Direction::Inbound, &[3; 2000], 2000);
        w.stats(&mut out, p1, 4_000, 1, 0);
        w.stats(&mut out, p3, 4_000, 1, 7);
        out
    }

    #[test]
    fn pcapng_round_trip() {
        let bytes = sample_stream(Format::Pcapng);
        let events = read_all(&bytes).unwrap();
        let iface = |id, name: &str| Event::Interface {
            id,
            name: Some(name.to_owned()),
            linktype: 1,
        };
        let packet = |iface, ts_ns, dir, data: Vec<u8>, orig_len| Event::Packet {
            iface,
            ts_ns,
            dir: Some(dir),
            data,
            orig_len,
        };
        let expected = vec![
            iface(0, "p1"),
            iface(1, "p2"),
            packet(0, 1_000, Direction::Inbound, vec![1; 60], 60),
            packet(1, 2_000, Direction::Outbound, vec![2; 61], 61),
            iface(2, "p3"),
            packet(2, 3_000, Direction::Inbound, vec![3; 1500], 2000),
            Event::Stats {
                iface: 0,
                received: Some(1),
                dropped: Some(0),
            },
            Event::Stats {
                iface: 2,
                received: Some(1),
                dropped: Some(7),
            },
        ];
        assert_eq!(events, expected);
        assert_eq!(read_bytewise(&bytes).unwrap(), expected);
    }

    #[test]
    fn pcap_round_trip() {
        let bytes = sample_stream(Format::Pcap);
        let events = read_all(&bytes).unwrap();
        let packet = |ts_ns, data: Vec<u8>, orig_len| Event::Packet {
            iface: 0,
            ts_ns,
            dir: None,
            data,
            orig_len,
        };
        let expected = vec![
            Event::Interface {
                id: 0,
                name: None,
                linktype: 1,
            },
            packet(1_000, vec![1; 60], 60),
            packet(2_000, vec![2; 61], 61),
            packet(3_000, vec![3; 1500], 2000),
        ];
        assert_eq!(events, expected);
        assert_eq!(read_bytewise(&bytes).unwrap(), expected);
    }

    #[test]
    fn timestamps_survive_both_formats() {
        let ts = 1_733_220_000 * NS_PER_SEC + 987_654_321;
        for format in [Format::Pcapng, Format::Pcap] {
            let mut w = Writer::new(format, 0);
            let mut out = Vec::new();
            w.header(&mut out);
            let id = w.interface("p", &mut out);
            w.packet(&mut out, id, ts, Direction::Inbound, &[0; 14], 14);
            let events = read_all(&out).unwrap();
            let Some(Event::Packet { ts_ns, .. }) = events.last() else {
                panic!("{events:?}")
            };
            assert_eq!(*ts_ns, ts, "{format}");
        }
    }

    /// Big-endian streams, as a big-endian host would write them, built by hand.
    #[test]
    fn reads_big_endian_pcapng() {
        let mut s = Vec::new();
        // SHB, no options: 28 bytes.
        s.extend_from_slice(&[0x0A, 0x0D, 0x0D, 0x0A, 0, 0, 0, 28, 0x1A, 0x2B, 0x3C, 0x4D]);
        s.extend_from_slice(&[0, 1, 0, 0]);
        s.extend_from_slice(&[0xFF; 8]);
        s.extend_from_slice(&[0, 0, 0, 28]);
        // IDB: link type 1, snaplen 0, if_name "eth0", if_tsresol 6 (microseconds).
        s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 40, 0, 1, 0, 0, 0, 0, 0, 0]);
        s.extend_from_slice(&[0, 2, 0, 4, b'e', b't', b'h', b'0']);
        s.extend_from_slice(&[0, 9, 0, 1, 6, 0, 0, 0]);
        s.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 40]);
        // EPB: interface 0, ts 5_000_001 us, 2 bytes, epb_flags outbound (2).
        s.extend_from_slice(&[0, 0, 0, 6, 0, 0, 0, 48, 0, 0, 0, 0]);
        s.extend_from_slice(&[0, 0, 0, 0, 0x00, 0x4C, 0x4B, 0x41]);
        s.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 2, 0xAB, 0xCD, 0, 0]);
        s.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 48]);
        let events = read_all(&s).unwrap();
        assert_eq!(
            events,
            vec![
                Event::Interface {
                    id: 0,
                    name: Some("eth0".into()),
                    linktype: 1
                },
                Event::Packet {
                    iface: 0,
                    ts_ns: 5_000_001_000,
                    dir: Some(Direction::Outbound),
                    data: vec![0xAB, 0xCD],
                    orig_len: 2
                },
            ]
        );
    }

    #[test]
    fn reads_big_endian_microsecond_pcap() {
        let mut s = vec![0xA1, 0xB2, 0xC3, 0xD4, 0, 2, 0, 4];
        s.extend_from_slice(&[0; 8]);
        s.extend_from_slice(&[0, 0, 0xFF, 0xFF, 0, 0, 0, 1]);
        s.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 60, 0x42]);
        let events = read_all(&s).unwrap();
        assert_eq!(
            events[1],
            Event::Packet {
                iface: 0,
                ts_ns: 7_000_009_000,
                dir: None,
                data: vec![0x42],
                orig_len: 60
            }
        );
    }

    #[test]
    fn timestamp_resolutions() {
        let info = |tsresol, tsoffset_s| IfaceInfo {
            tsresol,
            tsoffset_s,
            snaplen: 0,
        };
        assert_eq!(ts_to_ns(5, info(9, 0)), 5);
        assert_eq!(ts_to_ns(5, info(6, 0)), 5_000);
        assert_eq!(ts_to_ns(5, info(0, 0)), 5_000_000_000);
        assert_eq!(ts_to_ns(3, info(12, 0)), 0); // picoseconds round down
        assert_eq!(ts_to_ns(1024, info(0x80 | 10, 0)), 1_000_000_000); // 2^-10 s
        assert_eq!(ts_to_ns(1, info(6, 2)), 2_000_001_000);
        assert_eq!(ts_to_ns(1, info(6, -2)), 0);
        assert_eq!(ts_to_ns(u64::MAX, info(0, 0)), u64::MAX);
        assert_eq!(ts_to_ns(1, info(0x7F, 0)), 0); // 10^127 units per second
    }

    /// Real files: tcpdump wrote the classic pcap (microseconds) while capturing two Linux
    /// VTEPs, and Wireshark 4.0 converted it to pcapng (IDB without if_tsresol).
    #[test]
    fn reads_files_written_by_tcpdump_and_wireshark() {
        let pcap = read_all(include_bytes!("../../tests/data/linux-vxlan-underlay.pcap")).unwrap();
        let pcapng = read_all(include_bytes!(
            "../../tests/data/linux-vxlan-underlay.pcapng"
        ))
        .unwrap();
        assert_eq!(pcap.len(), 35); // one interface + 34 frames
        assert_eq!(pcapng.len(), 35);
        // Same frames and timestamps (microsecond precision) either way.
        assert_eq!(pcap[1..], pcapng[1..]);
        let Event::Packet { ts_ns, data, .. } = &pcap[1] else {
            panic!("{:?}", pcap[1])
        };
        assert_eq!(ts_ns % 1_000, 0);
        assert_eq!(*ts_ns / NS_PER_SEC / 86_400 / 365, 56); // 2026
        assert_eq!(&data[12..14], &[0x08, 0x00]);
    }

    #[test]
    fn unknown_blocks_are_skipped_and_sections_restart_ids() {
        let mut w = Writer::new(Format::Pcapng, 0);
        let mut s = Vec::new();
        w.header(&mut s);
        w.interface("a", &mut s);
        // A custom block (type 0x00000BAD) of 16 bytes.
        s.extend_from_slice(&[0xAD, 0x0B, 0, 0, 16, 0, 0, 0, 1, 2, 3, 4, 16, 0, 0, 0]);
        // A second section: interface ids restart.
        let mut w2 = Writer::new(Format::Pcapng, 0);
        w2.header(&mut s);
        w2.interface("b", &mut s);
        w2.packet(&mut s, 0, 1, Direction::Inbound, &[9], 1);
        let events = read_all(&s).unwrap();
        assert_eq!(events.len(), 3);
        assert!(matches!(&events[1], Event::Interface { id: 0, name: Some(n), .. } if n == "b"));
    }

    #[test]
    fn packet_for_an_undescribed_interface_is_an_error() {
        let w = Writer::new(Format::Pcapng, 0);
        let mut s = Vec::new();
        w.header(&mut s);
        w.packet(&mut s, 3, 1, Direction::Inbound, &[9], 1);
        assert_eq!(read_all(&s), Err(PcapError::UnknownInterface(3)));
    }

    #[test]
    fn malformed_streams_give_typed_sticky_errors() {
        let shb = {
            let mut s = Vec::new();
            Writer::new(Format::Pcapng, 0).header(&mut s);
            s
        };
        let with_block = |block: &[u8]| {
            let mut s = shb.clone();
            s.extend_from_slice(block);
            s
        };
        let cases: Vec<(Vec<u8>, PcapError)> = vec![
            (
                b"GET / HTTP/1.1\r\n".to_vec(),
                PcapError::BadMagic(0x4745_5420),
            ),
            (
                vec![0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 1, 2, 3, 4],
                PcapError::BadByteOrderMagic(0x0102_0304),
            ),
            (
                with_block(&[6, 0, 0, 0, 0, 0, 0, 2]),
                PcapError::TooLarge {
                    len: 32 * 1024 * 1024,
                    max: MAX_BLOCK_LEN,
                },
            ),
            (
                with_block(&[6, 0, 0, 0, 8, 0, 0, 0]),
                PcapError::BadBlockLength {
                    block_type: 6,
                    len: 8,
                },
            ),
            (
                with_block(&[6, 0, 0, 0, 13, 0, 0, 0]),
                PcapError::BadBlockLength {
                    block_type: 6,
                    len: 13,
                },
            ),
            (
                with_block(&[0xAD, 0x0B, 0, 0, 12, 0, 0, 0, 16, 0, 0, 0]),
                PcapError::LengthMismatch {
                    block_type: 0xBAD,
                    leading: 12,
                    trailing: 16,
                },
            ),
            (
                with_block(&[1, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 16, 0, 0, 0]),
                PcapError::Truncated { block_type: 1 },
            ),
            (
                // IDB whose option claims 200 bytes.
                with_block(&[
                    1, 0, 0, 0, 28, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 200, 0, 0, 0, 0, 0, 28,
                    0, 0, 0,
                ]),
                PcapError::BadOption { block_type: 1 },
            ),
            (
                {
                    let mut s = shb.clone();
                    s[12] = 2; // major version 2
                    s
                },
                PcapError::UnsupportedVersion { major: 2, minor: 0 },
            ),
            (
                {
                    let mut s = Vec::new();
                    Writer::new(Format::Pcap, 0).header(&mut s);
                    s.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
                    s.extend_from_slice(&[0; 4]);
                    s
                },
                PcapError::TooLarge {
                    len: u32::MAX,
                    max: MAX_BLOCK_LEN,
                },
            ),
        ];
        for (bytes, expected) in cases {
            let mut reader = Reader::new();
            reader.feed(&bytes);
            let got = loop {
                match reader.next() {
                    Ok(Some(_)) => continue,
                    other => break other,
                }
            };
            assert_eq!(got, Err(expected.clone()), "{bytes:02x?}");
            // Sticky: feeding more does not resynchronise.
            reader.feed(&bytes);
            assert_eq!(reader.next(), Err(expected));
        }
    }

    /// Deterministic fuzzing: mutated and random streams, fed in random chunks, never panic
    /// and always end (more bytes needed, or an error).
    #[test]
    fn garbage_never_panics() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let seeds = [
            sample_stream(Format::Pcapng),
            sample_stream(Format::Pcap),
            include_bytes!("../../tests/data/linux-vxlan-underlay.pcapng").to_vec(),
        ];
        for round in 0..3000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            if round % 10 == 9 {
                bytes = (0..next() % 512).map(|_| next() as u8).collect();
                if round % 20 == 9 {
                    bytes.splice(0..0, [0x0A, 0x0D, 0x0D, 0x0A]);
                }
            } else {
                for _ in 0..1 + next() % 8 {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
                let cut = (next() as usize) % (bytes.len() + 1);
                bytes.truncate(cut.max(bytes.len() / 2));
            }
            let mut reader = Reader::new();
            let mut at = 0;
            let mut steps = 0;
            'feed: while at < bytes.len() {
                let n = (1 + next() as usize % 300).min(bytes.len() - at);
                reader.feed(&bytes[at..at + n]);
                at += n;
                loop {
                    steps += 1;
                    assert!(steps < 100_000, "reader does not make progress");
                    match reader.next() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }

    #[test]
    fn format_names() {
        assert_eq!("pcapng".parse(), Ok(Format::Pcapng));
        assert_eq!("pcap".parse(), Ok(Format::Pcap));
        let err = "pcap-ng".parse::<Format>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown capture format \"pcap-ng\": expected \"pcapng\" or \"pcap\""
        );
        assert_eq!(Format::Pcap.to_string(), "pcap");
        assert_eq!(Format::Pcapng.media_type(), "application/x-pcapng");
    }

    fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
        p.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        p.extend_from_slice(l4);
        p
    }

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    // 01:02:03.456789 on some day.
    const T: u64 = (19_000 * 86_400 + 3723) * NS_PER_SEC + 456_789_123;

    #[test]
    fn summary_lines() {
        let icmp = eth(B, A, 0x0800, &ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1]));
        assert_eq!(
            summary(T, "p1", Direction::Inbound, &icmp),
            "01:02:03.456789 p1 in 02:00:00:00:00:01 > 02:00:00:00:00:02 ipv4 len 42: \
             198.18.0.1 > 198.18.0.2 ICMP echo request"
        );
        let tcp = ipv4(6, &[0x04, 0xD2, 0x00, 0x50, 0, 0, 0, 0]);
        let mut tagged = eth(B, A, 0x8100, &[0x20, 0x0A, 0x08, 0x00]);
        tagged.extend_from_slice(&tcp);
        assert_eq!(
            summary(T, "p2", Direction::Outbound, &tagged),
            "01:02:03.456789 p2 out 02:00:00:00:00:01 > 02:00:00:00:00:02 vlan 10 pcp 1 ipv4 \
             len 46: 198.18.0.1:1234 > 198.18.0.2:80 TCP"
        );
        let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
        arp.extend_from_slice(&A);
        arp.extend_from_slice(&[198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2]);
        assert!(
            summary(0, "p", Direction::Inbound, &eth([0xFF; 6], A, 0x0806, &arp))
                .ends_with("arp len 42: who-has 198.18.0.2 tell 198.18.0.1")
        );
        let mut v6 = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        v6.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v6.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        v6.extend_from_slice(&[0x12, 0xB5, 0x12, 0xB5, 0, 8, 0, 0]);
        assert!(summary(0, "p", Direction::Inbound, &eth(B, A, 0x86DD, &v6))
            .ends_with("ipv6 len 62: [2001:db8::1]:4789 > [2001:db8::2]:4789 UDP"));
        let stp = eth([1, 0x80, 0xC2, 0, 0, 0], A, 39, &[0x42, 0x42, 3, 0, 0]);
        assert!(summary(0, "p", Direction::Inbound, &stp).ends_with(" stp len 19"));
        let lacp = eth([1, 0x80, 0xC2, 0, 0, 2], A, 0x8809, &[1, 1]);
        assert!(summary(0, "p", Direction::Inbound, &lacp).ends_with(" lacp len 16"));
        let lldp = eth([1, 0x80, 0xC2, 0, 0, 0x0E], A, 0x88CC, &[]);
        assert!(summary(0, "p", Direction::Inbound, &lldp).ends_with(" lldp len 14"));
        let other = eth(B, A, 0x88B5, &[0; 4]);
        assert!(summary(0, "p", Direction::Inbound, &other).ends_with(" 0x88b5 len 18"));
    }

    #[test]
    fn summary_never_panics_on_short_frames() {
        let mut frame = eth(B, A, 0x8100, &[0x00, 0x0A, 0x08, 0x00]);
        frame.extend_from_slice(&ipv4(6, &[0x04, 0xD2, 0x00, 0x50]));
        for len in 0..=frame.len() {
            let line = summary(u64::MAX, "p", Direction::Inbound, &frame[..len]);
            assert!(!line.is_empty());
        }
        for ethertype in [0x0800u16, 0x86DD, 0x0806, 0x8809, 0x88A8, 0x0010] {
            let f = eth(B, A, ethertype, &[0x45]);
            summary(0, "p", Direction::Outbound, &f);
        }
        assert!(summary(0, "p", Direction::Inbound, &[1, 2]).ends_with("truncated frame len 2"));
    }
}
