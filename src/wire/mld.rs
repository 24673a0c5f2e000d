//! MLD messages (ICMPv6): MLDv1 query, report and done (RFC 2710) and MLDv2 query and report
//! (RFC 3810 §5). smoltcp's `Icmpv6Packet` checks an MLD query as at least 28 bytes, so it
//! cannot hold a 24-byte MLDv1 query: the views are written here; the ICMPv6 checksum
//! (with its pseudo-header) is smoltcp's `Icmpv6Packet::verify_checksum` and an MLDv2 address
//! record header is smoltcp's `MldAddressRecord`.
//!
//! [`MldMessage::parse`] checks what Linux's `ipv6_mc_check_mld` checks, with the same
//! outcomes: a message under 8 bytes, with a bad checksum or under 24 bytes is
//! `Truncated("icmpv6")` / `BadChecksum` (Linux `-ENODATA`: forwarded as data); a query from a
//! source that is not link-local, a query of 25..27 bytes, a general query not sent to ff02::1
//! or an MLDv2 report whose records run past the message are `Malformed` / `Truncated`
//! (Linux `-EINVAL`: dropped).

use std::net::Ipv6Addr;

use smoltcp::wire::{Icmpv6Packet, MldAddressRecord};

use super::{RecordType, WireError, IPV6_ALL_NODES};

/// Multicast Listener Query (MLDv1 and MLDv2).
pub const ICMPV6_MGM_QUERY: u8 = 130;
/// MLDv1 Multicast Listener Report.
pub const ICMPV6_MGM_REPORT: u8 = 131;
/// MLDv1 Multicast Listener Done.
pub const ICMPV6_MGM_REDUCTION: u8 = 132;
/// MLDv2 Multicast Listener Report.
pub const ICMPV6_MLD2_REPORT: u8 = 143;
/// Multicast Router Discovery advertisement (RFC 4286).
pub const ICMPV6_MRDISC_ADV: u8 = 151;

/// Length of an MLDv1 message.
pub const MLD_V1_LEN: usize = 24;
/// Length of an MLDv2 query without sources.
pub const MLD_V2_QUERY_LEN: usize = 28;
/// Length of an MLDv2 report header.
pub const MLD_V2_REPORT_LEN: usize = 8;
/// Length of an MLDv2 address record header.
pub const MLD_V2_RECORD_LEN: usize = 20;

mod field {
    use std::ops::Range;
    pub const TYPE: usize = 0;
    pub const MAX_DELAY: Range<usize> = 4..6;
    pub const MCA: usize = 8;
    pub const Q2_SQRV: usize = 24;
    pub const Q2_QQIC: usize = 25;
    pub const Q2_NSRCS: Range<usize> = 26..28;
    pub const Q2_SRCS: usize = 28;
    pub const R2_NREC: Range<usize> = 6..8;
    pub const R2_RECORDS: usize = 8;
    pub const REC_AUXLEN: usize = 1;
    pub const REC_NSRCS: Range<usize> = 2..4;
    pub const REC_SRCS: usize = 20;
}

fn ipv6_at(b: &[u8], at: usize) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(a)
}

fn u16_at(b: &[u8], r: std::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

/// Whether an address is IPv6 link-local unicast (fe80::/10).
pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// One MLD message, checked.
#[derive(Debug, Clone, Copy)]
pub enum MldMessage<'a> {
    /// An MLDv1 query: exactly 24 bytes.
    QueryV1 {
        /// Maximum Response Delay in milliseconds.
        max_delay_ms: u16,
        /// :: for a general query.
        group: Ipv6Addr,
    },
    /// An MLDv2 query (28 bytes or more).
    QueryV2(MldV2Query<&'a [u8]>),
    /// MLDv1 report.
    ReportV1 {
        /// The group joined.
        group: Ipv6Addr,
    },
    /// MLDv1 done.
    Done {
        /// The group left.
        group: Ipv6Addr,
    },
    /// MLDv2 report.
    ReportV2(MldV2Report<&'a [u8]>),
    /// A valid ICMPv6 message of another type (MRD, neighbour discovery, ...).
    Other {
        /// Its type.
        msg_type: u8,
    },
}

impl<'a> MldMessage<'a> {
    /// Parses the ICMPv6 bytes of a packet from `src` to `dst`.
    pub fn parse(bytes: &'a [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Self, WireError> {
        if bytes.len() < 8 {
            return Err(WireError::Truncated("icmpv6"));
        }
        if !Icmpv6Packet::new_unchecked(bytes).verify_checksum(src, dst) {
            return Err(WireError::BadChecksum("icmpv6"));
        }
        let msg_type = bytes[field::TYPE];
        if !matches!(
            msg_type,
            ICMPV6_MGM_QUERY | ICMPV6_MGM_REPORT | ICMPV6_MGM_REDUCTION | ICMPV6_MLD2_REPORT
        ) {
            return Ok(MldMessage::Other { msg_type });
        }
        if bytes.len() < MLD_V1_LEN {
            return Err(WireError::Truncated("icmpv6"));
        }
        let group = ipv6_at(bytes, field::MCA);
        Ok(match msg_type {
            ICMPV6_MGM_REPORT => MldMessage::ReportV1 { group },
            ICMPV6_MGM_REDUCTION => MldMessage::Done { group },
            ICMPV6_MLD2_REPORT => MldMessage::ReportV2(MldV2Report::new_checked(bytes)?),
            _ => {
                if !is_link_local(src) {
                    return Err(WireError::Malformed("mld query source not link-local"));
                }
                if group.is_unspecified() && *dst != IPV6_ALL_NODES {
                    return Err(WireError::Malformed(
                        "mld general query not sent to ff02::1",
                    ));
                }
                if bytes.len() == MLD_V1_LEN {
                    MldMessage::QueryV1 {
                        max_delay_ms: u16_at(bytes, field::MAX_DELAY),
                        group,
                    }
                } else if bytes.len() >= MLD_V2_QUERY_LEN {
                    MldMessage::QueryV2(MldV2Query::new_checked(bytes)?)
                } else {
                    return Err(WireError::Malformed("mld query length"));
                }
            }
        })
    }
}

/// Maximum Response Code of MLDv2 (RFC 3810 §5.1.3) to milliseconds: below 32768 the value
/// itself, above a float with a 3-bit exponent and a 12-bit mantissa.
pub const fn mldv2_mrc_decode(code: u16) -> u32 {
    if code < 0x8000 {
        code as u32
    } else {
        let exp = ((code >> 12) & 0x7) as u32;
        let mant = (code & 0x0fff) as u32;
        (mant | 0x1000) << (exp + 3)
    }
}

/// The inverse of [`mldv2_mrc_decode`], rounding down; values above 8387584 give 0xffff.
pub const fn mldv2_mrc_encode(ms: u32) -> u16 {
    if ms < 0x8000 {
        return ms as u16;
    }
    if ms > (0x1fff << 10) {
        return 0xffff;
    }
    let mut exp = 0u32;
    while (ms >> (exp + 3)) > 0x1fff {
        exp += 1;
    }
    let mant = (ms >> (exp + 3)) & 0x0fff;
    0x8000 | ((exp as u16) << 12) | mant as u16
}

/// An MLDv2 query (RFC 3810 §5.1) over at least 28 bytes. As with IGMPv3, a Number of Sources
/// that runs past the buffer leaves a valid view whose [`MldV2Query::sources`] yields only
/// the addresses present.
#[derive(Debug, Clone, Copy)]
pub struct MldV2Query<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MldV2Query<T> {
    /// Checks the fixed part is present and the type is a query.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MLD_V2_QUERY_LEN {
            return Err(WireError::Truncated("mldv2 query"));
        }
        if b[field::TYPE] != ICMPV6_MGM_QUERY {
            return Err(WireError::Malformed("mldv2 query type"));
        }
        Ok(MldV2Query { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Maximum Response Code as sent.
    pub fn max_resp_code(&self) -> u16 {
        u16_at(self.b(), field::MAX_DELAY)
    }

    /// Maximum Response Delay in milliseconds.
    pub fn max_resp_ms(&self) -> u64 {
        u64::from(mldv2_mrc_decode(self.max_resp_code()))
    }

    /// Multicast Address (:: for a general query).
    pub fn group(&self) -> Ipv6Addr {
        ipv6_at(self.b(), field::MCA)
    }

    /// S flag.
    pub fn s_flag(&self) -> bool {
        self.b()[field::Q2_SQRV] & 0x08 != 0
    }

    /// QRV.
    pub fn qrv(&self) -> u8 {
        self.b()[field::Q2_SQRV] & 0x07
    }

    /// QQIC as sent.
    pub fn qqic(&self) -> u8 {
        self.b()[field::Q2_QQIC]
    }

    /// Querier's Query Interval in seconds (same float format as IGMPv3's QQIC).
    pub fn qqi_secs(&self) -> u32 {
        super::igmp::igmpv3_code_decode(self.qqic())
    }

    /// Number of Sources as announced.
    pub fn num_sources(&self) -> u16 {
        u16_at(self.b(), field::Q2_NSRCS)
    }

    /// The source addresses present in the buffer.
    pub fn sources(&self) -> Ipv6Addrs<'_> {
        let b = self.b();
        let avail = (b.len() - field::Q2_SRCS) / 16;
        let n = avail.min(usize::from(self.num_sources()));
        Ipv6Addrs {
            bytes: &b[field::Q2_SRCS..field::Q2_SRCS + n * 16],
        }
    }
}

/// An iterator over packed IPv6 addresses.
#[derive(Debug, Clone)]
pub struct Ipv6Addrs<'a> {
    bytes: &'a [u8],
}

impl Iterator for Ipv6Addrs<'_> {
    type Item = Ipv6Addr;
    fn next(&mut self) -> Option<Ipv6Addr> {
        if self.bytes.len() < 16 {
            return None;
        }
        let a = ipv6_at(self.bytes, 0);
        self.bytes = &self.bytes[16..];
        Some(a)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.bytes.len() / 16;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Ipv6Addrs<'_> {}

/// An MLDv2 report (RFC 3810 §5.2); `new_checked` walks every address record.
#[derive(Debug, Clone, Copy)]
pub struct MldV2Report<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MldV2Report<T> {
    /// Checks the header and that every address record (with its sources and auxiliary
    /// data) fits in the buffer.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let b = buffer.as_ref();
        if b.len() < MLD_V2_REPORT_LEN {
            return Err(WireError::Truncated("mldv2 report"));
        }
        if b[field::TYPE] != ICMPV6_MLD2_REPORT {
            return Err(WireError::Malformed("mldv2 report type"));
        }
        let mut rest = &b[field::R2_RECORDS..];
        for _ in 0..u16_at(b, field::R2_NREC) {
            let len = record_len(rest).ok_or(WireError::Truncated("mldv2 address record"))?;
            rest = &rest[len..];
        }
        Ok(MldV2Report { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Nr of Mcast Address Records.
    pub fn num_records(&self) -> u16 {
        u16_at(self.b(), field::R2_NREC)
    }

    /// The address records.
    pub fn records(&self) -> AddressRecords<'_> {
        AddressRecords {
            rest: &self.b()[field::R2_RECORDS..],
            left: self.num_records(),
        }
    }
}

fn record_len(b: &[u8]) -> Option<usize> {
    if b.len() < MLD_V2_RECORD_LEN {
        return None;
    }
    let len = MLD_V2_RECORD_LEN
        + usize::from(u16_at(b, field::REC_NSRCS)) * 16
        + usize::from(b[field::REC_AUXLEN]) * 4;
    (len <= b.len()).then_some(len)
}

/// The address records of a checked [`MldV2Report`].
#[derive(Debug, Clone)]
pub struct AddressRecords<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for AddressRecords<'a> {
    type Item = AddressRecord<'a>;
    fn next(&mut self) -> Option<AddressRecord<'a>> {
        if self.left == 0 {
            return None;
        }
        let len = record_len(self.rest)?;
        let rec = MldAddressRecord::new_checked(&self.rest[..len]).ok()?;
        self.rest = &self.rest[len..];
        self.left -= 1;
        Some(AddressRecord { rec })
    }
}

/// One MLDv2 address record (RFC 3810 §5.2.4), exactly its bytes.
#[derive(Debug, Clone)]
pub struct AddressRecord<'a> {
    rec: MldAddressRecord<&'a [u8]>,
}

impl<'a> AddressRecord<'a> {
    /// Record Type.
    pub fn record_type(&self) -> RecordType {
        RecordType::from(u8::from(self.rec.record_type()))
    }

    /// Aux Data Len, in 32-bit words.
    pub fn aux_data_len(&self) -> u8 {
        self.rec.aux_data_len()
    }

    /// Number of Sources.
    pub fn num_sources(&self) -> u16 {
        self.rec.num_srcs()
    }

    /// Multicast Address.
    pub fn group(&self) -> Ipv6Addr {
        self.rec.mcast_addr()
    }

    /// The source addresses.
    pub fn sources(&self) -> Ipv6Addrs<'a> {
        let b: &'a [u8] = self.rec.clone().into_inner();
        let n = usize::from(self.num_sources());
        Ipv6Addrs {
            bytes: &b[field::REC_SRCS..field::REC_SRCS + n * 16],
        }
    }
}
