//! VXLAN (RFC 7348) header, receive checks as Linux makes them, and the flow hash that picks
//! the outer UDP source port.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The header follows the outer UDP header (destination port [`DEFAULT_PORT`], 4789; Linux's
//! legacy default is 8472, so Linux VTEPs need `dstport 4789`) and precedes the inner Ethernet
//! frame (no FCS).
//!
//! Receiving, this module is as strict as Linux's `vxlan_rcv` for a plain VXLAN device (no GBP,
//! GPE or remote checksum offload): a header without the I flag is dropped, and so is one with
//! any other flag or reserved bit set. RFC 7348 says receivers should ignore reserved bits; Linux
//! drops them on purpose (so extensions cannot be misread), and this module follows Linux.
//! An inner frame shorter than an Ethernet header is dropped too, as Linux does.
//!
//! Sending, the UDP source port spreads flows over ECMP paths and receive queues: [`flow_hash`]
//! hashes the inner headers and [`src_port`] scales the hash into a port range the way Linux's
//! `udp_flow_src_port` does. Linux's default range is the `ip_local_port_range` sysctl,
//! 32768-60999 ([`DEFAULT_SRC_PORT_MIN`], [`DEFAULT_SRC_PORT_MAX`]).
//!
//! UDP checksums: RFC 7348 says the outer UDP checksum over IPv4 SHOULD be sent as zero and a
//! zero checksum MUST be accepted. Linux no longer sends zero by default: a VTEP made with
//! `ip link add ... type vxlan` (no `[no]udpcsum`) on Linux 6.18 sent valid, computed checksums
//! over IPv4 (`ip -d link` shows `udpcsum`; `vxlan_nl2conf` sets `VXLAN_F_UDP_ZERO_CSUM_TX` only
//! for `noudpcsum`, which gave 0x0000), and over IPv6 too (as RFC 8200 requires, unless
//! `udp6zerocsumtx`). A receiver must accept both a zero and a computed checksum over IPv4.
//!
//! Linux's flow hash is symmetric: the same Linux VTEPs sent an ICMP echo request and its reply
//! with the same outer source port. [`flow_hash`] is symmetric too.

use crate::wire::be16;

/// Length of the VXLAN header.
pub const VXLAN_HLEN: usize = 8;
/// IANA-assigned VXLAN UDP port (RFC 7348).
pub const DEFAULT_PORT: u16 = 4789;
/// Bytes VXLAN adds over IPv4: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 (no outer VLAN tag).
pub const OVERHEAD_V4: usize = 50;
/// Bytes VXLAN adds over IPv6: outer Ethernet 14 + IPv6 40 + UDP 8 + VXLAN 8 (no outer VLAN tag).
pub const OVERHEAD_V6: usize = 70;
/// Largest VNI: 24 bits.
pub const VNI_MAX: u32 = 0x00FF_FFFF;
/// Linux's default lower bound for VXLAN source ports (`net.ipv4.ip_local_port_range`).
pub const DEFAULT_SRC_PORT_MIN: u16 = 32768;
/// Linux's default upper bound for VXLAN source ports (`net.ipv4.ip_local_port_range`). As in
/// Linux, [`src_port`] never returns the upper bound itself.
pub const DEFAULT_SRC_PORT_MAX: u16 = 60999;

/// The I flag (VNI present) in the first byte.
const FLAG_I: u8 = 0x08;
const ETH_HLEN: usize = 14;

/// Why a received VXLAN packet is dropped. Each variant is a stable metric label
/// ([`VxlanError::label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum VxlanError {
    /// The UDP payload is shorter than the 8-byte VXLAN header.
    #[error("VXLAN packet shorter than its 8-byte header")]
    Short,
    /// The I flag (VNI present) is clear.
    #[error("VXLAN header without the I flag (no valid VNI)")]
    NoVniFlag,
    /// A flag other than I, or a reserved bit, is set (Linux drops these).
    #[error("VXLAN header with reserved flags or bits set")]
    ReservedFlags,
    /// The inner frame is shorter than an Ethernet header (14 bytes).
    #[error("VXLAN inner frame shorter than an Ethernet header")]
    BadInner,
}

impl VxlanError {
    /// Short snake_case name for a metric label.
    pub fn label(self) -> &'static str {
        match self {
            VxlanError::Short => "short",
            VxlanError::NoVniFlag => "no_vni_flag",
            VxlanError::ReservedFlags => "reserved_flags",
            VxlanError::BadInner => "bad_inner",
        }
    }
}

/// Writes a VXLAN header for `vni` into `out[..8]`: the I flag, the VNI, reserved bits zero.
///
/// Only the low 24 bits of `vni` are used (a config check should have refused larger values;
/// debug builds assert it).
///
/// # Panics
///
/// If `out` is shorter than [`VXLAN_HLEN`]: a caller bug, independent of any received data.
pub fn write_header(vni: u32, out: &mut [u8]) {
    debug_assert!(vni <= VNI_MAX, "VNI {vni} does not fit in 24 bits");
    let v = (vni & VNI_MAX).to_be_bytes();
    out[..VXLAN_HLEN].copy_from_slice(&[FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]);
}

/// Length of the UDP and VXLAN headers that go before an inner frame.
pub const ENCAP_HLEN: usize = 8 + VXLAN_HLEN;

/// Writes the outer UDP header and the VXLAN header for an inner frame of `frame_len` bytes:
/// source port `sport`, destination port `dport`, UDP length 16 + `frame_len`, checksum 0 (over
/// IPv4 RFC 7348 says it SHOULD be 0; over IPv6 the kernel fills it in), then
/// [`write_header`]. `None` if the datagram would not fit a UDP length (over 65535 bytes).
pub fn write_encap(
    sport: u16,
    dport: u16,
    vni: u32,
    frame_len: usize,
    out: &mut [u8; ENCAP_HLEN],
) -> Option<()> {
    let len = u16::try_from(ENCAP_HLEN.checked_add(frame_len)?).ok()?;
    out[0..2].copy_from_slice(&sport.to_be_bytes());
    out[2..4].copy_from_slice(&dport.to_be_bytes());
    out[4..6].copy_from_slice(&len.to_be_bytes());
    out[6..8].copy_from_slice(&[0, 0]);
    write_header(vni, &mut out[8..]);
    Some(())
}

/// Parses a VXLAN UDP payload into its VNI and inner Ethernet frame, dropping what Linux drops.
pub fn parse(packet: &[u8]) -> Result<(u32, &[u8]), VxlanError> {
    let Some((header, inner)) = packet.split_first_chunk::<VXLAN_HLEN>() else {
        return Err(VxlanError::Short);
    };
    if header[0] & FLAG_I == 0 {
        return Err(VxlanError::NoVniFlag);
    }
    if header[0] & !FLAG_I != 0 || header[1..4] != [0, 0, 0] || header[7] != 0 {
        return Err(VxlanError::ReservedFlags);
    }
    if inner.len() < ETH_HLEN {
        return Err(VxlanError::BadInner);
    }
    let vni = u32::from_be_bytes([0, header[4], header[5], header[6]]);
    Ok((vni, inner))
}

/// A 32-bit hash of the inner frame's flow, for the outer UDP source port.
///
/// Covers the MAC addresses and the EtherType, the VLAN id of one 802.1Q (or 802.1ad) tag, and
/// for IPv4 and IPv6 the addresses, the protocol and, for TCP, UDP, UDP-Lite, SCTP and DCCP,
/// the ports (not for IP fragments, whose later pieces carry no ports: every fragment of a
/// datagram hashes alike, as in Linux's flow dissector). Like Linux's flow hash it is symmetric:
/// both directions of a flow hash alike. Equal flows always hash equal; it never panics, on any
/// input. The hash is unkeyed (an outer source port reveals nothing worth protecting).
pub fn flow_hash(inner_frame: &[u8]) -> u32 {
    let f = inner_frame;
    let mut h = Hasher::new();
    if f.len() < ETH_HLEN {
        for chunk in f.chunks(4) {
            let mut w = [0u8; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            h.word(u32::from_be_bytes(w));
        }
        return h.finish();
    }
    let (a, b) = ordered(&f[0..6], &f[6..12]);
    h.word(u32::from_be_bytes([a[0], a[1], a[2], a[3]]));
    h.word(u32::from_be_bytes([a[4], a[5], b[0], b[1]]));
    h.word(u32::from_be_bytes([b[2], b[3], b[4], b[5]]));
    let mut ethertype = be16(f, 12);
    let mut off = ETH_HLEN;
    if (ethertype == 0x8100 || ethertype == 0x88A8) && f.len() >= off + 4 {
        h.word(u32::from(be16(f, off) & 0x0FFF));
        ethertype = be16(f, off + 2);
        off += 4;
    }
    h.word(u32::from(ethertype));
    let l3 = &f[off..];
    match ethertype {
        0x0800 => hash_ipv4(&mut h, l3),
        0x86DD => hash_ipv6(&mut h, l3),
        _ => {}
    }
    h.finish()
}

/// Scales `hash` into a UDP source port in `[min, max)` as Linux's `udp_flow_src_port` does:
/// fold the low half into the high half (`hash ^ hash << 16`), then
/// `((hash as u64 * (max - min) as u64) >> 32) + min`. As in Linux, `max` itself is never
/// returned, and a range with `min >= max` means the default range
/// ([`DEFAULT_SRC_PORT_MIN`]..[`DEFAULT_SRC_PORT_MAX`]).
pub fn src_port(hash: u32, min: u16, max: u16) -> u16 {
    let (min, max) = if min >= max {
        (DEFAULT_SRC_PORT_MIN, DEFAULT_SRC_PORT_MAX)
    } else {
        (min, max)
    };
    let hash = hash ^ (hash << 16);
    let span = u64::from(max - min);
    // (hash * span) >> 32 < span <= u16::MAX, so the sum stays below max.
    min + ((u64::from(hash) * span) >> 32) as u16
}

/// The two slices, smaller first.
fn ordered<'a>(a: &'a [u8], b: &'a [u8]) -> (&'a [u8], &'a [u8]) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// IP protocols whose first four bytes are source and destination ports.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

/// Hashes addresses and ports with the lower (address, port) endpoint first, so that both
/// directions of a flow hash alike.
fn hash_endpoints(h: &mut Hasher, src: &[u8], dst: &[u8], ports: Option<(u16, u16)>) {
    let (sport, dport) = ports.unwrap_or((0, 0));
    let ((lo, lo_port), (hi, hi_port)) = if (src, sport) <= (dst, dport) {
        ((src, sport), (dst, dport))
    } else {
        ((dst, dport), (src, sport))
    };
    for addr in [lo, hi] {
        for w in addr.chunks_exact(4) {
            h.word(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    h.word((u32::from(lo_port) << 16) | u32::from(hi_port));
}

fn hash_ipv4(h: &mut Hasher, p: &[u8]) {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return;
    }
    let ihl = usize::from(p[0] & 0x0F) * 4;
    let proto = p[9];
    let fragment = be16(p, 6) & 0x3FFF != 0; // MF or a fragment offset
    let ports = if has_ports(proto) && !fragment && ihl >= 20 && p.len() >= ihl + 4 {
        Some((be16(p, ihl), be16(p, ihl + 2)))
    } else {
        None
    };
    h.word(u32::from(proto));
    hash_endpoints(h, &p[12..16], &p[16..20], ports);
}

fn hash_ipv6(h: &mut Hasher, p: &[u8]) {
    if p.len() < 40 || p[0] >> 4 != 6 {
        return;
    }
    // Extension headers are not walked: a fragment header (44) or any other stops at L3.
    let proto = p[6];
    let ports = if has_ports(proto) && p.len() >= 44 {
        Some((be16(p, 40), be16(p, 42)))
    } else {
        None
    };
    h.word(u32::from(proto));
    hash_endpoints(h, &p[8..24], &p[24..40], ports);
}

/// MurmurHash3 (x86, 32-bit) block mixing and finalizer over 32-bit words.
struct Hasher {
    h: u32,
    words: u32,
}

impl Hasher {
    fn new() -> Hasher {
        Hasher {
            h: 0x7A70_5357, // arbitrary fixed seed
            words: 0,
        }
    }

    fn word(&mut self, k: u32) {
        let k = k
            .wrapping_mul(0xCC9E_2D51)
            .rotate_left(15)
            .wrapping_mul(0x1B87_3593);
        self.h = (self.h ^ k)
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xE654_6B64);
        self.words = self.words.wrapping_add(1);
    }

    fn finish(&self) -> u32 {
        let mut h = self.h ^ self.words.wrapping_mul(4);
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^ (h >> 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// UDP payloads captured (tcpdump -w on the underlay veth) between two Linux 6.18 VTEPs
    /// made with `ip link add vx4 type vxlan id 100 local 198.18.200.1 remote 198.18.200.2
    /// dstport 4789` (and the mirror image), inner addresses 198.18.201.1/2: an ICMP echo
    /// request from 198.18.201.1 and its reply. Linux sent both with outer UDP source port
    /// 43867 (its flow hash is symmetric) and a valid, non-zero UDP checksum (0xe4cb, checked
    /// by Wireshark with TX checksum offload off on the veth): current kernels default to
    /// `udpcsum` over IPv4. Reproduce with scripts/vxlan_linux_capture.sh.
    const LINUX_V4_REQUEST: &str = "
        08000000 00006400
        020000006402 020000006401 0800
        45000054bc6040004001601fc612c901c612c902
        0800a9105a6100016341116b00000000bc0d050000000000
        101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";
    const LINUX_V4_REPLY: &str = "
        08000000 00006400
        020000006401 020000006402 0800
        45000054e95400004001732bc612c902c612c901
        0000b1105a6100016341116b00000000bc0d050000000000
        101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";
    /// The same over an IPv6 underlay (local 2001:2::1 remote 2001:2::2, VNI 200): outer UDP
    /// checksum 0xbb2c, computed, as IPv6 requires.
    const LINUX_V6_REQUEST: &str = "
        08000000 0000c800
        02000000c802 02000000c801 0800
        450000543bc240004001debdc612ca01c612ca02
        0800e6e15a6200016341116b000000007b3b080000000000
        101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637";

    #[test]
    fn header_matches_the_rfc_figure() {
        // RFC 7348 section 5: flags 0000_1000 (I), 24 reserved bits, 24-bit VNI, 8 reserved bits.
        let mut out = [0xEEu8; 10];
        write_header(0x12_3456, &mut out);
        assert_eq!(out, [0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0x00, 0xEE, 0xEE]);
        let mut packet = out[..8].to_vec();
        packet.extend_from_slice(&[0xAB; 14]);
        assert_eq!(parse(&packet), Ok((0x12_3456, &[0xAB; 14][..])));
        write_header(VNI_MAX, &mut out);
        assert_eq!(parse(&packet[..8]), Err(VxlanError::BadInner));
        let mut packet = out[..8].to_vec();
        packet.extend_from_slice(&[0; 14]);
        assert_eq!(parse(&packet).map(|(vni, _)| vni), Ok(VNI_MAX));
    }

    #[test]
    fn parses_what_linux_sent() {
        for (vector, vni, src_ip) in [
            (LINUX_V4_REQUEST, 100, [198, 18, 201, 1]),
            (LINUX_V4_REPLY, 100, [198, 18, 201, 2]),
            (LINUX_V6_REQUEST, 200, [198, 18, 202, 1]),
        ] {
            let packet = hex(vector);
            assert_eq!(packet.len(), 106);
            let (got_vni, inner) = parse(&packet).unwrap();
            assert_eq!(got_vni, vni);
            assert_eq!(inner, &packet[8..]);
            assert_eq!(inner.len(), 98); // 14 + 84-byte IPv4 ICMP echo
            assert_eq!(&inner[12..14], &[0x08, 0x00]);
            assert_eq!(&inner[26..30], &src_ip);
        }
    }

    #[test]
    fn what_we_write_is_what_linux_writes() {
        let linux = hex(LINUX_V4_REQUEST);
        let mut ours = [0u8; VXLAN_HLEN];
        write_header(100, &mut ours);
        assert_eq!(ours, linux[..8]);
    }

    #[test]
    fn drops_what_linux_drops() {
        let good = hex(LINUX_V4_REQUEST);
        assert_eq!(parse(&good[..7]), Err(VxlanError::Short));
        assert_eq!(parse(&[]), Err(VxlanError::Short));
        assert_eq!(parse(&good[..8 + 13]), Err(VxlanError::BadInner));
        assert!(parse(&good[..8 + 14]).is_ok());
        let with = |at: usize, value: u8| {
            let mut p = good.clone();
            p[at] = value;
            parse(&p).map(|(vni, _)| vni)
        };
        assert_eq!(with(0, 0x00), Err(VxlanError::NoVniFlag));
        // Another flag without I.
        assert_eq!(with(0, 0x80), Err(VxlanError::NoVniFlag));
        // Every other bit of the flags word and the last byte: reserved.
        for (at, bit) in (0..4).flat_map(|at| (0..8).map(move |bit| (at, bit))) {
            if (at, bit) == (0, 3) {
                continue; // the I flag
            }
            assert_eq!(
                with(at, good[at] | 1 << bit),
                Err(VxlanError::ReservedFlags),
                "byte {at} bit {bit}"
            );
        }
        for bit in 0..8 {
            assert_eq!(with(7, 1 << bit), Err(VxlanError::ReservedFlags));
        }
        assert_eq!(VxlanError::ReservedFlags.label(), "reserved_flags");
    }

    fn frame(vlan: Option<u16>, l3: &[u8], ethertype: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
        if let Some(vid) = vlan {
            f.extend_from_slice(&[0x81, 0x00]);
            f.extend_from_slice(&vid.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn tcp4(sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    fn udp6(sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        p.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&[0, 8, 0, 0]);
        p
    }

    #[test]
    fn flow_hash_separates_flows_and_keeps_a_flow_together() {
        let base = flow_hash(&frame(None, &tcp4(40000, 80), 0x0800));
        // Same flow, different payload: same hash.
        let mut other_payload = frame(None, &tcp4(40000, 80), 0x0800);
        *other_payload.last_mut().unwrap() ^= 0xFF;
        assert_eq!(flow_hash(&other_payload), base);
        // Different TCP ports: different hashes (all distinct over a range of ports).
        let mut seen = std::collections::HashSet::new();
        for sport in 40000..40256 {
            assert!(seen.insert(flow_hash(&frame(None, &tcp4(sport, 80), 0x0800))));
        }
        assert_ne!(flow_hash(&frame(None, &tcp4(40000, 443), 0x0800)), base);
        // Behind an 802.1Q tag the ports still count, and the VLAN id counts.
        let tagged = |vid, sport| flow_hash(&frame(Some(vid), &tcp4(sport, 80), 0x0800));
        assert_ne!(tagged(10, 40000), tagged(10, 40001));
        assert_ne!(tagged(10, 40000), tagged(11, 40000));
        // IPv6 UDP ports count.
        let v6 = |sport| flow_hash(&frame(None, &udp6(sport, 4789), 0x86DD));
        assert_ne!(v6(1000), v6(1001));
        // Fragments hash on addresses only.
        let mut frag = tcp4(40000, 80);
        frag[6] = 0x20; // MF
        let mut frag2 = tcp4(50000, 81);
        frag2[6] = 0x20;
        assert_eq!(
            flow_hash(&frame(None, &frag, 0x0800)),
            flow_hash(&frame(None, &frag2, 0x0800))
        );
    }

    #[test]
    fn flow_hash_is_symmetric_like_linux() {
        // Linux put the echo request and its reply on the same outer source port.
        let request = hex(LINUX_V4_REQUEST);
        let reply = hex(LINUX_V4_REPLY);
        assert_eq!(flow_hash(&request[8..]), flow_hash(&reply[8..]));
    }

    #[test]
    fn flow_hash_never_panics() {
        let full = frame(Some(7), &tcp4(1, 2), 0x0800);
        for len in 0..=full.len() {
            flow_hash(&full[..len]);
        }
        let v6 = frame(None, &udp6(1, 2), 0x86DD);
        for len in 0..=v6.len() {
            flow_hash(&v6[..len]);
        }
        let mut bad_ihl = frame(None, &tcp4(1, 2), 0x0800);
        bad_ihl[14] = 0x4F; // IHL 60 bytes, longer than the frame
        flow_hash(&bad_ihl);
        bad_ihl[14] = 0x41; // IHL 4 bytes, below the minimum
        flow_hash(&bad_ihl);
    }

    #[test]
    fn src_port_stays_in_range() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..100_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let hash = rng as u32;
            let p = src_port(hash, DEFAULT_SRC_PORT_MIN, DEFAULT_SRC_PORT_MAX);
            assert!((DEFAULT_SRC_PORT_MIN..DEFAULT_SRC_PORT_MAX).contains(&p));
            let p = src_port(hash, 49152, 49160);
            assert!((49152..49160).contains(&p));
        }
        for hash in [0, 1, u32::MAX, 0xFFFF_0000, 0x0000_FFFF, 0x8000_0000] {
            for (min, max) in [(0, 1), (0, u16::MAX), (1000, 1001), (32768, 60999)] {
                let p = src_port(hash, min, max);
                assert!(p >= min && p < max, "{hash:#x} {min} {max} -> {p}");
            }
            // An empty or inverted range means Linux's default range.
            let p = src_port(hash, 5000, 5000);
            assert!((DEFAULT_SRC_PORT_MIN..DEFAULT_SRC_PORT_MAX).contains(&p));
            let p = src_port(hash, 6000, 5000);
            assert!((DEFAULT_SRC_PORT_MIN..DEFAULT_SRC_PORT_MAX).contains(&p));
        }
        // Linux's arithmetic, worked by hand: hash 0x0001_0000 folds to 0x0001_0000 and
        // 0x0001_0000 * 28231 >> 32 = 0; hash 0x8000_0000 folds to itself and lands mid-range.
        assert_eq!(src_port(0x0001_0000, 32768, 60999), 32768);
        assert_eq!(src_port(0x8000_0000, 32768, 60999), 32768 + 28231 / 2);
        // The whole range is reachable: the top hash lands on max - 1.
        assert_eq!(src_port(0xFFFF_0000, 0, 2), 1);
    }

    #[test]
    fn encap_header() {
        let mut h = [0xAAu8; ENCAP_HLEN];
        write_encap(43867, DEFAULT_PORT, 100, 98, &mut h).unwrap();
        // UDP: source 43867 (0xab5b), destination 4789 (0x12b5), length 8 + 8 + 98, checksum 0;
        // then the VXLAN header Linux wrote for VNI 100.
        assert_eq!(
            h,
            [0xab, 0x5b, 0x12, 0xb5, 0x00, 0x72, 0x00, 0x00, 0x08, 0, 0, 0, 0, 0, 0x64, 0]
        );
        assert_eq!(h[8..], hex(LINUX_V4_REQUEST)[..8]);
        assert!(write_encap(1, 2, 3, 65535 - 16, &mut h).is_some());
        assert!(write_encap(1, 2, 3, 65535 - 15, &mut h).is_none());
        assert!(write_encap(1, 2, 3, usize::MAX, &mut h).is_none());
    }

    #[test]
    fn overheads() {
        assert_eq!(OVERHEAD_V4, 14 + 20 + 8 + VXLAN_HLEN);
        assert_eq!(OVERHEAD_V6, 14 + 40 + 8 + VXLAN_HLEN);
    }
}
