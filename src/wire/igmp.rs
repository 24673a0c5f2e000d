//! IGMP messages: IGMPv1/v2 query, report and leave (RFC 1112, RFC 2236) through
//! `smoltcp::wire::IgmpPacket`, and IGMPv3 query and report (RFC 3376 §4) through the views
//! written here, which smoltcp does not have.
//!
//! [`IgmpMessage::parse`] checks what Linux's `ip_mc_check_igmp` checks: at least 8 bytes, the
//! checksum over the whole message, a query of exactly 8 bytes (v1/v2) or at least 12 (v3),
//! a general query sent to 224.0.0.1, an IGMPv3 report whose group records fit in the message.
//! Any other type is [`IgmpMessage::Other`] (Linux: `-ENOMSG`, forwarded as data).

use std::net::Ipv4Addr;

use smoltcp::wire::{checksum, IgmpPacket};

use super::{RecordType, WireError, IPV4_ALL_SYSTEMS};

/// Membership Query (all versions).
pub const IGMP_HOST_MEMBERSHIP_QUERY: u8 = 0x11;
/// IGMPv1 Membership Report.
pub const IGMP_HOST_MEMBERSHIP_REPORT: u8 = 0x12;
/// IGMPv2 Membership Report.
pub const IGMPV2_HOST_MEMBERSHIP_REPORT: u8 = 0x16;
/// IGMPv2 Leave Group.
pub const IGMP_HOST_LEAVE_MESSAGE: u8 = 0x17;
/// IGMPv3 Membership Report.
pub const IGMPV3_HOST_MEMBERSHIP_REPORT: u8 = 0x22;
/// Multicast Router Discovery advertisement (RFC 4286).
pub const IGMP_MRDISC_ADV: u8 = 0x30;

/// Length of an IGMPv1/v2 message.
pub const IGMP_V2_LEN: usize = 8;
/// Length of an IGMPv3 query without sources.
pub const IGMP_V3_QUERY_LEN: usize = 12;
/// Length of an IGMPv3 report header.
pub const IGMP_V3_REPORT_LEN: usize = 8;
/// Length of an IGMPv3 group record header.
pub const IGMP_V3_RECORD_LEN: usize = 8;

mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const GROUP: Range<usize> = 4..8;
    pub const Q3_SQRV: usize = 8;
    pub const Q3_QQIC: usize = 9;
    pub const Q3_NSRCS: Range<usize> = 10..12;
    pub const Q3_SRCS: usize = 12;
    pub const R3_NGREC: Range<usize> = 6..8;
    pub const R3_RECORDS: usize = 8;
    pub const REC_TYPE: usize = 0;
    pub const REC_AUXLEN: usize = 1;
    pub const REC_NSRCS: Range<usize> = 2..4;
    pub const REC_GROUP: Range<usize> = 4..8;
    pub const REC_SRCS: usize = 8;
}

fn ipv4_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

fn u16_at(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// One IGMP message, checked.
#[derive(Debug, Clone, Copy)]
pub enum IgmpMessage<'a> {
    /// An IGMPv1 (max response code 0) or IGMPv2 query: exactly 8 bytes.
    QueryV12 {
        /// Max Response Time in tenths of a second (0 marks IGMPv1).
        max_resp_code: u8,
        /// 0.0.0.0 for a general query.
        group: Ipv4Addr,
    },
    /// An IGMPv3 query (12 bytes or more).
    QueryV3(IgmpV3Query<&'a [u8]>),
    /// IGMPv1 Membership Report.
    ReportV1 {
        /// The group joined.
        group: Ipv4Addr,
    },
    /// IGMPv2 Membership Report.
    ReportV2 {
        /// The group joined.
        group: Ipv4Addr,
    },
    /// IGMPv2 Leave Group.
    Leave {
        /// The group left.
        group: Ipv4Addr,
    },
    /// IGMPv3 Membership Report.
    ReportV3(IgmpV3Report<&'a [u8]>),
    /// A valid IGMP message of another type (MRD, DVMRP, mtrace, ...).
    Other {
        /// Its type.
        msg_type: u8,
    },
}

impl<'a> IgmpMessage<'a> {
    /// Parses the IGMP bytes of an IPv4 packet sent to `ip_dst`.
    pub fn parse(bytes: &'a [u8], ip_dst: Ipv4Addr) -> Result<IgmpMessage<'a>, WireError> {
        let pkt = IgmpPacket::new_checked(bytes).map_err(|_| WireError::Truncated("igmp"))?;
        if !pkt.verify_checksum() {
            return Err(WireError::BadChecksum("igmp"));
        }
        let group = pkt.group_addr();
        Ok(match bytes[field::TYPE] {
            IGMP_HOST_MEMBERSHIP_QUERY => {
                if group.is_unspecified() && ip_dst != IPV4_ALL_SYSTEMS {
                    return Err(WireError::Malformed(
                        "igmp general query not sent to 224.0.0.1",
                    ));
                }
                if bytes.len() == IGMP_V2_LEN {
                    IgmpMessage::QueryV12 {
                        max_resp_code: pkt.max_resp_code(),
                        group,
                    }
                } else if bytes.len() >= IGMP_V3_QUERY_LEN {
                    IgmpMessage::QueryV3(IgmpV3Query::new_checked(bytes)?)
                } else {
                    return Err(WireError::Malformed("igmp query length"));
                }
            }
            IGMP_HOST_MEMBERSHIP_REPORT => IgmpMessage::ReportV1 { group },
            IGMPV2_HOST_MEMBERSHIP_REPORT => IgmpMessage::ReportV2 { group },
            IGMP_HOST_LEAVE_MESSAGE => IgmpMessage::Leave { group },
            IGMPV3_HOST_MEMBERSHIP_REPORT => {
                IgmpMessage::ReportV3(IgmpV3Report::new_checked(bytes)?)
            }
            msg_type => IgmpMessage::Other { msg_type },
        })
    }
}

/// Max Resp Code / QQIC of IGMPv3 (RFC 3376 §4.1.1, §4.1.7) to its value: below 128 the
/// value itself, above a float with a 3-bit exponent and a 4-bit mantissa.
pub const fn igmpv3_code_decode(code: u8) -> u32 {
    if code < 0x80 {
        code as u32
    } else {
        let exp = ((code >> 4) & 0x7) as u32;
        let mant = (code & 0x0f) as u32;
        (mant | 0x10) << (exp + 3)
    }
}

/// The inverse of [`igmpv3_code_decode`], rounding down; values above 31744 give 0xff.
pub const fn igmpv3_code_encode(value: u32) -> u8 {
    if value < 0x80 {
        return value as u8;
    }
    if value > (0x1f << 10) {
        return 0xff;
    }
    let mut exp = 0u32;
    while (value >> (exp + 3)) > 0x1f {
        exp += 1;
    }
    let mant = (value >> (exp + 3)) & 0x0f;
    0x80 | ((exp as u8) << 4) | mant as u8
}

/// An IGMPv3 Membership Query (RFC 3376 §4.1) over a buffer of at least 12 bytes.
///
/// A query whose Number of Sources runs past the buffer is still a valid view (Linux accepts
/// it and ignores it as a source-specific query); [`IgmpV3Query::sources`] yields only the
/// addresses present.
#[derive(Debug, Clone, Copy)]
pub struct IgmpV3Query<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IgmpV3Query<T> {
    /// Checks the fixed part is present and the type is a query (the checksum is checked by
    /// [`IgmpMessage::parse`]; [`IgmpV3Query::verify_checksum`] checks it alone).
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < IGMP_V3_QUERY_LEN {
            return Err(WireError::Truncated("igmpv3 query"));
        }
        if b[field::TYPE] != IGMP_HOST_MEMBERSHIP_QUERY {
            return Err(WireError::Malformed("igmpv3 query type"));
        }
        Ok(IgmpV3Query { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Whether the IGMP checksum over the whole buffer is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.b()) == !0
    }

    /// Max Resp Code as sent.
    pub fn max_resp_code(&self) -> u8 {
        self.b()[field::CODE]
    }

    /// Max Resp Time in milliseconds (the code is in tenths of a second).
    pub fn max_resp_ms(&self) -> u64 {
        u64::from(igmpv3_code_decode(self.max_resp_code())) * 100
    }

    /// Group Address (0.0.0.0 for a general query).
    pub fn group(&self) -> Ipv4Addr {
        ipv4_at(self.b(), field::GROUP.start)
    }

    /// S flag (Suppress Router-Side Processing).
    pub fn s_flag(&self) -> bool {
        self.b()[field::Q3_SQRV] & 0x08 != 0
    }

    /// QRV (Querier's Robustness Variable).
    pub fn qrv(&self) -> u8 {
        self.b()[field::Q3_SQRV] & 0x07
    }

    /// QQIC as sent.
    pub fn qqic(&self) -> u8 {
        self.b()[field::Q3_QQIC]
    }

    /// Querier's Query Interval in seconds.
    pub fn qqi_secs(&self) -> u32 {
        igmpv3_code_decode(self.qqic())
    }

    /// Number of Sources as announced.
    pub fn num_sources(&self) -> u16 {
        u16_at(self.b(), field::Q3_NSRCS)
    }

    /// The source addresses present in the buffer (at most [`IgmpV3Query::num_sources`]).
    pub fn sources(&self) -> Ipv4Addrs<'_> {
        let b = self.b();
        let avail = (b.len() - field::Q3_SRCS) / 4;
        let n = avail.min(usize::from(self.num_sources()));
        Ipv4Addrs {
            bytes: &b[field::Q3_SRCS..field::Q3_SRCS + n * 4],
        }
    }
}

/// An iterator over packed IPv4 addresses.
#[derive(Debug, Clone)]
pub struct Ipv4Addrs<'a> {
    bytes: &'a [u8],
}

impl Iterator for Ipv4Addrs<'_> {
    type Item = Ipv4Addr;
    fn next(&mut self) -> Option<Ipv4Addr> {
        if self.bytes.len() < 4 {
            return None;
        }
        let a = ipv4_at(self.bytes, 0);
        self.bytes = &self.bytes[4..];
        Some(a)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.bytes.len() / 4;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Ipv4Addrs<'_> {}

/// An IGMPv3 Membership Report (RFC 3376 §4.2); `new_checked` walks every group record, so
/// the records iterator cannot run past the buffer.
#[derive(Debug, Clone, Copy)]
pub struct IgmpV3Report<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IgmpV3Report<T> {
    /// Checks the header and that every group record (with its sources and auxiliary data)
    /// fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < IGMP_V3_REPORT_LEN {
            return Err(WireError::Truncated("igmpv3 report"));
        }
        if b[field::TYPE] != IGMPV3_HOST_MEMBERSHIP_REPORT {
            return Err(WireError::Malformed("igmpv3 report type"));
        }
        let mut rest = &b[field::R3_RECORDS..];
        for _ in 0..u16_at(b, field::R3_NGREC) {
            let len = record_len(rest).ok_or(WireError::Truncated("igmpv3 group record"))?;
            rest = &rest[len..];
        }
        Ok(IgmpV3Report { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Whether the IGMP checksum over the whole buffer is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.b()) == !0
    }

    /// Number of Group Records.
    pub fn num_records(&self) -> u16 {
        u16_at(self.b(), field::R3_NGREC)
    }

    /// The group records.
    pub fn records(&self) -> GroupRecords<'_> {
        GroupRecords {
            rest: &self.b()[field::R3_RECORDS..],
            left: self.num_records(),
        }
    }
}

/// The length of the group record at the start of `b`, if it fits.
fn record_len(b: &[u8]) -> Option<usize> {
    if b.len() < IGMP_V3_RECORD_LEN {
        return None;
    }
    let len = IGMP_V3_RECORD_LEN
        + usize::from(u16_at(b, field::REC_NSRCS)) * 4
        + usize::from(b[field::REC_AUXLEN]) * 4;
    (len <= b.len()).then_some(len)
}

/// The group records of a checked [`IgmpV3Report`].
#[derive(Debug, Clone)]
pub struct GroupRecords<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for GroupRecords<'a> {
    type Item = GroupRecord<'a>;
    fn next(&mut self) -> Option<GroupRecord<'a>> {
        if self.left == 0 {
            return None;
        }
        // Checked by IgmpV3Report::new_checked; a None here ends the iteration quietly.
        let len = record_len(self.rest)?;
        let rec = GroupRecord {
            bytes: &self.rest[..len],
        };
        self.rest = &self.rest[len..];
        self.left -= 1;
        Some(rec)
    }
}

/// One IGMPv3 group record (RFC 3376 §4.2.4), exactly its bytes.
#[derive(Debug, Clone, Copy)]
pub struct GroupRecord<'a> {
    bytes: &'a [u8],
}

impl<'a> GroupRecord<'a> {
    /// Record Type.
    pub fn record_type(&self) -> RecordType {
        RecordType::from(self.bytes[field::REC_TYPE])
    }

    /// Aux Data Len, in 32-bit words.
    pub fn aux_data_len(&self) -> u8 {
        self.bytes[field::REC_AUXLEN]
    }

    /// Number of Sources.
    pub fn num_sources(&self) -> u16 {
        u16_at(self.bytes, field::REC_NSRCS)
    }

    /// Multicast Address.
    pub fn group(&self) -> Ipv4Addr {
        ipv4_at(self.bytes, field::REC_GROUP.start)
    }

    /// The source addresses.
    pub fn sources(&self) -> Ipv4Addrs<'a> {
        let n = usize::from(self.num_sources());
        Ipv4Addrs {
            bytes: &self.bytes[field::REC_SRCS..field::REC_SRCS + n * 4],
        }
    }
}
