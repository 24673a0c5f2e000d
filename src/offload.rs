//! The offload path: virtio_net_hdr, checksum completion and software segmentation.
//!
//! Ports that take offloads (TAPs opened with `IFF_VNET_HDR` + `TUNSETOFFLOAD`, AF_PACKET
//! sockets with `PACKET_VNET_HDR`) carry a 10-byte `struct virtio_net_hdr` before each frame.
//! A frame with a header may be a GSO "super-frame" of up to 64 KiB and may have its L4 checksum
//! left for the receiver (`NEEDS_CSUM`). Between two offload ports the header and frame pass
//! through untouched. Where such a frame must leave through a port that cannot take it (a plain
//! TAP, a stream or dgram socket), [`finish`] completes the checksum and cuts GSO frames into
//! wire-size segments, in a scratch buffer, without allocating. No I/O here.

use crate::wire::checksum::{self, fold, sum16};
pub use crate::wire::checksum::{csum_add, csum_fold};
use crate::wire::{ETH_HLEN, VLAN_TAG_LEN};

/// Length of `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

/// `flags`: the checksum at `csum_start + csum_offset` must be completed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum was already validated.
pub const F_DATA_VALID: u8 = 2;

/// `gso_type` values.
/// Not a GSO frame.
pub const GSO_NONE: u8 = 0;
/// TCP over IPv4 (TSO).
pub const GSO_TCPV4: u8 = 1;
/// UDP fragmentation offload (never enabled on tapswitch ports).
pub const GSO_UDP: u8 = 3;
/// TCP over IPv6 (TSO).
pub const GSO_TCPV6: u8 = 4;
/// UDP segmentation (USO).
pub const GSO_UDP_L4: u8 = 5;
/// Flag: the TCP stream uses ECN (CWR may be set on the first segment).
pub const GSO_ECN: u8 = 0x80;

/// A parsed virtio_net_hdr (little-endian fields, as the kernel uses for tap and packet
/// sockets on little-endian hosts with virtio 1.0 semantics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM`, `F_DATA_VALID`.
    pub flags: u8,
    /// One of the `GSO_*` values, with `GSO_ECN`.
    pub gso_type: u8,
    /// Length of the headers (Ethernet to L4) of a GSO frame.
    pub hdr_len: u16,
    /// Payload bytes per segment.
    pub gso_size: u16,
    /// Where the partial checksum's coverage starts.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

/// Why a virtio_net_hdr or the frame it describes cannot be handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    /// Fewer than 10 bytes.
    #[error("frame shorter than its virtio_net_hdr")]
    Short,
    /// Bad flags, offsets or GSO values.
    #[error("virtio_net_hdr has invalid values")]
    BadHeader,
    /// A GSO type tapswitch cannot segment (UFO).
    #[error("GSO type not supported in software")]
    Unsupported,
    /// The frame's headers contradict the virtio_net_hdr.
    #[error("frame headers do not match the GSO type")]
    BadFrame,
    /// A GSO frame that would make more segments than a sender may ask for: TCP segments
    /// below [`TCP_MIN_MSS`], more than [`UDP_MAX_SEGMENTS`] UDP segments, or more than
    /// [`MAX_GSO_SEGS`] in all.
    #[error("GSO frame below the minimum segment size or over the segment limit")]
    TooManySegments,
}

impl VnetHdr {
    /// Parses the first 10 bytes of `b`.
    pub fn parse(b: &[u8]) -> Result<VnetHdr, OffloadError> {
        if b.len() < VNET_HDR_LEN {
            return Err(OffloadError::Short);
        }
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Ok(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: le(2),
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Writes the header into the first 10 bytes of `b`.
    pub fn write(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
    }

    /// The GSO type without the ECN bit.
    pub fn gso(&self) -> u8 {
        self.gso_type & !GSO_ECN
    }

    /// Whether the frame can go to a port without offloads as it is.
    pub fn is_plain(&self) -> bool {
        self.gso() == GSO_NONE && self.flags & F_NEEDS_CSUM == 0
    }

    /// Checks the header against the frame length it describes.
    pub fn validate(&self, frame_len: usize) -> Result<(), OffloadError> {
        if self.flags & !(F_NEEDS_CSUM | F_DATA_VALID) != 0 {
            return Err(OffloadError::BadHeader);
        }
        if self.flags & F_NEEDS_CSUM != 0
            && self.csum_start as usize + self.csum_offset as usize + 2 > frame_len
        {
            return Err(OffloadError::BadHeader);
        }
        match self.gso() {
            GSO_NONE => Ok(()),
            GSO_TCPV4 | GSO_TCPV6 | GSO_UDP | GSO_UDP_L4 if self.gso_size > 0 => Ok(()),
            _ => Err(OffloadError::BadHeader),
        }
    }
}

/// Completes a partial checksum (Linux `skb_checksum_help`): sums from `csum_start` to the end,
/// the field holding the pseudo-header sum, and stores the complement; a result of 0 is
/// stored as 0xffff (`CSUM_MANGLED_0`, as Linux does: for UDP, 0 would mean "no checksum",
/// which IPv6 refuses).
pub fn complete_csum(
    frame: &mut [u8],
    csum_start: usize,
    csum_offset: usize,
) -> Result<(), OffloadError> {
    let field = csum_start + csum_offset;
    if field + 2 > frame.len() {
        return Err(OffloadError::BadHeader);
    }
    let c = match !fold(sum16(0, &frame[csum_start..])) {
        0 => 0xffff,
        c => c,
    };
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Where the L3 header starts and which L3 it is.
fn l3(frame: &[u8]) -> Result<(usize, u16), OffloadError> {
    if frame.len() < ETH_HLEN {
        return Err(OffloadError::BadFrame);
    }
    let mut off = 12;
    let mut et = u16::from_be_bytes([frame[off], frame[off + 1]]);
    while et == 0x8100 || et == 0x88a8 {
        off += VLAN_TAG_LEN;
        if frame.len() < off + 2 {
            return Err(OffloadError::BadFrame);
        }
        et = u16::from_be_bytes([frame[off], frame[off + 1]]);
    }
    Ok((off + 2, et))
}

/// Pseudo-header sum of the L4 segment of `l4_len` bytes after the IP header at `l3_off`.
fn pseudo(frame: &[u8], l3_off: usize, v6: bool, proto: u8, l4_len: usize) -> u32 {
    checksum::pseudo(&frame[l3_off..], v6, proto, l4_len)
}

/// Where the headers of a GSO frame are, as [`finish`] segments it.
#[derive(Clone, Copy, Debug)]
struct Layout {
    l3_off: usize,
    l3_len: usize,
    v6: bool,
    tcp: bool,
    proto: u8,
    l4_off: usize,
    l4_hlen: usize,
}

/// Locates the headers of a GSO frame and checks them against its GSO type: TCP over the IP
/// version the type names, UDP (USO) over either; IPv4 options and TCP options are allowed,
/// IPv6 extension headers are not; UFO is refused.
fn gso_layout(hdr: &VnetHdr, frame: &[u8]) -> Result<Layout, OffloadError> {
    let (l3_off, et) = l3(frame)?;
    let v6 = match (hdr.gso(), et) {
        (GSO_TCPV4 | GSO_UDP_L4 | GSO_UDP, 0x0800) => false,
        (GSO_TCPV6 | GSO_UDP_L4, 0x86dd) => true,
        _ => return Err(OffloadError::BadFrame),
    };
    if hdr.gso() == GSO_UDP {
        // UFO (IP fragmentation) is never enabled on our ports.
        return Err(OffloadError::Unsupported);
    }
    let (l3_len, proto) = if v6 {
        if frame.len() < l3_off + 40 {
            return Err(OffloadError::BadFrame);
        }
        (40, frame[l3_off + 6])
    } else {
        if frame.len() < l3_off + 20 {
            return Err(OffloadError::BadFrame);
        }
        ((frame[l3_off] & 0x0f) as usize * 4, frame[l3_off + 9])
    };
    let l4_off = l3_off + l3_len;
    let tcp = hdr.gso() != GSO_UDP_L4;
    if (tcp && proto != 6) || (!tcp && proto != 17) || l3_len < 20 {
        return Err(OffloadError::Unsupported);
    }
    let l4_hlen = if tcp {
        if frame.len() < l4_off + 20 {
            return Err(OffloadError::BadFrame);
        }
        ((frame[l4_off + 12] >> 4) as usize) * 4
    } else {
        8
    };
    // a TCP header is at least 20 bytes (flags at 13, checksum at 16); UDP is 8
    if l4_hlen < if tcp { 20 } else { 8 } || frame.len() < l4_off + l4_hlen {
        return Err(OffloadError::BadFrame);
    }
    Ok(Layout {
        l3_off,
        l3_len,
        v6,
        tcp,
        proto,
        l4_off,
        l4_hlen,
    })
}

/// The smallest TCP segment a GSO frame may ask for: payload plus TCP options, as Linux's TCP
/// never sends less (`net.ipv4.tcp_min_snd_mss`, default and floor `TCP_MIN_SND_MSS` = 48,
/// "room for the full set of TCP options and 8 bytes of data"; `TCP_MIN_GSO_SIZE` = 48 - 40
/// is the smallest `gso_size` it makes).
pub const TCP_MIN_MSS: usize = 48;

/// The most segments one UDP GSO frame may make (Linux's `UDP_MAX_SEGMENTS`, which
/// `virtio_net_hdr_to_skb` enforces on USO frames from a tap).
pub const UDP_MAX_SEGMENTS: usize = 128;

/// The most segments one GSO frame makes for a port without offloads. With [`TCP_MIN_MSS`],
/// the worst case is a 64 KiB TCP frame with 40 bytes of options and 8 bytes per segment:
/// (65,600 - 94) / 8 = 8,189 segments from the largest frame a port reads; with no TCP
/// options it is (65,600 - 54) / 48 = 1,366.
pub const MAX_GSO_SEGS: usize = 8192;

/// Checks a GSO frame at ingress, once, before it is sent anywhere, and returns the number of
/// segments it makes. Linux's rules for a frame from a tap (`virtio_net_hdr_to_skb` and the
/// GSO segmenters): headers that match the GSO type, and with `NEEDS_CSUM`, `csum_start` at
/// the TCP/UDP header and `csum_offset` at its checksum; USO needs `NEEDS_CSUM`, takes no ECN
/// bit and makes at most [`UDP_MAX_SEGMENTS`]. Then the bound Linux has no check for but its
/// own TCP keeps: segments of at least [`TCP_MIN_MSS`] (payload plus options), so a 64 KiB
/// frame with a `gso_size` of 1 cannot make 65,000 segments, checksums and writes per egress
/// port. A frame that makes a single segment (payload up to `gso_size`) is not really a GSO
/// frame (Linux treats it as a plain one) and passes whatever its `gso_size`.
pub fn check_gso(hdr: &VnetHdr, frame: &[u8]) -> Result<usize, OffloadError> {
    if hdr.gso() == GSO_NONE {
        return Ok(1);
    }
    let lay = gso_layout(hdr, frame)?;
    if hdr.flags & F_NEEDS_CSUM != 0 {
        let field = if lay.tcp { 16 } else { 6 };
        if usize::from(hdr.csum_start) != lay.l4_off || usize::from(hdr.csum_offset) != field {
            return Err(OffloadError::BadHeader);
        }
    } else if !lay.tcp {
        return Err(OffloadError::BadHeader);
    }
    if !lay.tcp && hdr.gso_type & GSO_ECN != 0 {
        return Err(OffloadError::BadHeader);
    }
    let mss = usize::from(hdr.gso_size);
    let payload = frame.len() - (lay.l4_off + lay.l4_hlen);
    let segs = payload.div_ceil(mss).max(1);
    if segs == 1 {
        return Ok(1);
    }
    let within = if lay.tcp {
        mss + (lay.l4_hlen - 20) >= TCP_MIN_MSS
    } else {
        segs <= UDP_MAX_SEGMENTS
    };
    if !within || segs > MAX_GSO_SEGS {
        return Err(OffloadError::TooManySegments);
    }
    Ok(segs)
}

/// Where the TCP or UDP checksum of a received frame is, if its sender left it partial: the
/// field holds the folded pseudo-header sum of the packet, which is what Linux writes there
/// under `CHECKSUM_PARTIAL` (`~tcp_v4_check(len, saddr, daddr, 0)`) for a NIC, or
/// `skb_checksum_help`, to complete. Across veths nothing completes it: a Linux or OVS VTEP
/// whose host sits on a veth with TX checksum offload (the default) sends such frames in
/// VXLAN, and a UDP socket reads them as they are. Returns `(csum_start, csum_offset)` for a
/// `NEEDS_CSUM` header. IPv4 (not a fragment, total length = the frame's) or IPv6 without
/// extension headers (payload length = the frame's), behind up to any VLAN tags; a UDP
/// checksum of 0 ("none") is not partial. A frame with a plainly wrong checksum does not
/// match and stays as it is; a valid checksum that happens to equal the pseudo-header sum (1
/// in 65,536) matches, and completing it writes the same value back.
pub fn partial_csum(frame: &[u8]) -> Option<(u16, u16)> {
    use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv6Packet};
    let (l3_off, et) = l3(frame).ok()?;
    let ip = frame.get(l3_off..)?;
    let (v6, l4_off, proto) = match et {
        0x0800 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            if p.version() != 4
                || usize::from(p.total_len()) != ip.len()
                || p.more_frags()
                || p.frag_offset() != 0
            {
                return None;
            }
            (false, l3_off + usize::from(p.header_len()), p.next_header())
        }
        0x86dd => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            if p.version() != 6 || usize::from(p.payload_len()) != ip.len() - 40 {
                return None;
            }
            (true, l3_off + 40, p.next_header())
        }
        _ => return None,
    };
    let (proto, offset, min_len) = match proto {
        IpProtocol::Tcp => (6, 16, 20),
        IpProtocol::Udp => (17, 6, 8),
        _ => return None,
    };
    let l4_len = frame.len().checked_sub(l4_off)?;
    if l4_len < min_len {
        return None;
    }
    let field = crate::wire::be16(frame, l4_off + offset);
    if proto == 17 && field == 0 {
        return None;
    }
    if field != fold(pseudo(frame, l3_off, v6, proto, l4_len)) {
        return None;
    }
    Some((u16::try_from(l4_off).ok()?, offset as u16))
}

/// The virtio_net_hdr for a received TCP frame longer than the link it came over (`mtu`, of
/// L3) and than Ethernet's 1500 bytes, whose checksum its sender left partial: a TSO
/// "super-frame" that lost its GSO header on the way. A Linux VTEP whose host sits on a veth
/// with offloads (the default) sends a 64 KiB TCP frame whole through a veth underlay, and a
/// plain UDP socket (as tapswitch's VXLAN hub) reads it as one datagram: the kernel segments a
/// tunnel GSO packet for a UDP socket only if the socket is an in-kernel tunnel's
/// (`udp_unexpected_gso`). (A frame of up to 1500 bytes over a smaller tunnel is one segment
/// whose outer packet was fragmented, and stays as it is.) The segment size is not in the
/// datagram; this takes the largest that fits both `mtu` and 1500 bytes (the MTU of the hosts
/// behind a VTEP, unless they are given the tunnel's smaller one), which is the sender's own
/// MSS in both usual cases. `None` if the frame is not such a frame.
pub fn partial_tso(frame: &[u8], mtu: usize) -> Option<VnetHdr> {
    let (l3_off, _) = l3(frame).ok()?;
    if frame.len() - l3_off <= mtu.max(1500) {
        return None;
    }
    let (start, offset) = partial_csum(frame)?;
    let l4 = usize::from(start);
    if offset != 16 {
        return None; // UDP: a USO frame's segment size cannot be guessed
    }
    let tcp_hlen = usize::from(frame[l4 + 12] >> 4) * 4;
    if tcp_hlen < 20 || frame.len() < l4 + tcp_hlen {
        return None;
    }
    let v6 = l4 - l3_off == 40 && frame[l3_off] >> 4 == 6;
    let mss = mtu.min(1500).checked_sub(l4 - l3_off + tcp_hlen)?;
    if mss + tcp_hlen - 20 < TCP_MIN_MSS {
        return None;
    }
    let cwr = frame[l4 + 13] & 0x80 != 0;
    Some(VnetHdr {
        flags: F_NEEDS_CSUM,
        gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 } | if cwr { GSO_ECN } else { 0 },
        hdr_len: u16::try_from(l4 + tcp_hlen).ok()?,
        gso_size: u16::try_from(mss).ok()?,
        csum_start: start,
        csum_offset: offset,
    })
}

/// Scratch space for one software segment: the largest frame a port without offloads takes.
pub const SEG_BUF: usize = 65536;

/// Makes a frame with a virtio_net_hdr fit a port without offloads: completes the checksum
/// and/or cuts it into segments, calling `emit` for each finished frame (built in `scratch`).
/// Returns the number of frames emitted.
pub fn finish<E>(
    hdr: &VnetHdr,
    frame: &[u8],
    scratch: &mut [u8],
    mut emit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<Result<usize, E>, OffloadError> {
    hdr.validate(frame.len())?;
    if hdr.gso() == GSO_NONE {
        if hdr.flags & F_NEEDS_CSUM == 0 {
            return Ok(emit(frame).map(|_| 1));
        }
        let out = scratch
            .get_mut(..frame.len())
            .ok_or(OffloadError::BadFrame)?;
        out.copy_from_slice(frame);
        complete_csum(out, hdr.csum_start as usize, hdr.csum_offset as usize)?;
        return Ok(emit(out).map(|_| 1));
    }
    let segs = Segmenter::new(hdr, frame)?;
    if segs.header_len() + segs.mss() > scratch.len() {
        return Err(OffloadError::BadFrame);
    }
    let n = segs.count();
    for i in 0..n {
        let len = segs.write(i, scratch);
        if let Err(e) = emit(&scratch[..len]) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(n))
}

/// A GSO frame cut into its wire segments one at a time, each written where the caller wants
/// it (a scratch buffer for a port without offloads, one datagram of a UDP GSO batch for a
/// tunnel): the headers copied, lengths, IPv4 ID, TCP sequence number and flags fixed, and the
/// IP and TCP/UDP checksums computed, once.
#[derive(Clone, Copy, Debug)]
pub struct Segmenter<'a> {
    lay: Layout,
    frame: &'a [u8],
    hlen: usize,
    mss: usize,
    n: usize,
    seq0: u32,
    flags0: u8,
    id0: u16,
}

impl<'a> Segmenter<'a> {
    /// The segments of a GSO frame (`hdr` must name a GSO type); checks the header against
    /// the frame as [`finish`] does, and the work bound ([`MAX_GSO_SEGS`]).
    pub fn new(hdr: &VnetHdr, frame: &'a [u8]) -> Result<Segmenter<'a>, OffloadError> {
        hdr.validate(frame.len())?;
        let lay = gso_layout(hdr, frame)?;
        let hlen = lay.l4_off + lay.l4_hlen;
        let mss = usize::from(hdr.gso_size);
        if mss == 0 {
            return Err(OffloadError::BadHeader);
        }
        let id0 = if lay.v6 {
            0
        } else {
            u16::from_be_bytes([frame[lay.l3_off + 4], frame[lay.l3_off + 5]])
        };
        let (seq0, flags0) = if lay.tcp {
            let s = &frame[lay.l4_off..];
            (u32::from_be_bytes([s[4], s[5], s[6], s[7]]), s[13])
        } else {
            (0, 0)
        };
        // A GSO frame with no payload still goes out once, as its headers alone.
        let n = (frame.len() - hlen).div_ceil(mss).max(1);
        if n > MAX_GSO_SEGS {
            // the frame path never gets here ([`check_gso`] at ingress); a last bound on the work
            return Err(OffloadError::TooManySegments);
        }
        Ok(Segmenter {
            lay,
            frame,
            hlen,
            mss,
            n,
            seq0,
            flags0,
            id0,
        })
    }

    /// How many segments.
    pub fn count(&self) -> usize {
        self.n
    }

    /// Length of the headers every segment starts with (Ethernet to TCP/UDP).
    pub fn header_len(&self) -> usize {
        self.hlen
    }

    /// The payload of every segment but the last (`gso_size`).
    pub fn mss(&self) -> usize {
        self.mss
    }

    /// The length of segment `i`.
    pub fn seg_len(&self, i: usize) -> usize {
        let payload = self.frame.len() - self.hlen;
        self.hlen + payload.saturating_sub(i * self.mss).min(self.mss)
    }

    /// Writes segment `i` (< [`Segmenter::count`]) at the start of `out`, which must hold
    /// [`Segmenter::seg_len`] bytes, and returns its length.
    ///
    /// # Panics
    ///
    /// If `out` is too short or `i` out of range: a caller bug, independent of the frame.
    pub fn write(&self, i: usize, out: &mut [u8]) -> usize {
        let Layout {
            l3_off,
            l3_len,
            v6,
            tcp,
            proto,
            l4_off,
            l4_hlen,
        } = self.lay;
        let (hlen, mss, n) = (self.hlen, self.mss, self.n);
        let payload = &self.frame[hlen..];
        let chunk = payload
            .get(i * mss..((i + 1) * mss).min(payload.len()))
            .unwrap_or(&[]);
        let seg_len = hlen + chunk.len();
        let out = &mut out[..seg_len];
        out[..hlen].copy_from_slice(&self.frame[..hlen]);
        out[hlen..].copy_from_slice(chunk);
        let l4_len = l4_hlen + chunk.len();
        if v6 {
            out[l3_off + 4..l3_off + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        } else {
            let tot = (l3_len + l4_len) as u16;
            out[l3_off + 2..l3_off + 4].copy_from_slice(&tot.to_be_bytes());
            out[l3_off + 4..l3_off + 6]
                .copy_from_slice(&self.id0.wrapping_add(i as u16).to_be_bytes());
            out[l3_off + 10..l3_off + 12].copy_from_slice(&[0, 0]);
            let c = !fold(sum16(0, &out[l3_off..l4_off]));
            out[l3_off + 10..l3_off + 12].copy_from_slice(&c.to_be_bytes());
        }
        let csum_at = if tcp {
            let seq = self.seq0.wrapping_add((i * mss) as u32);
            out[l4_off + 4..l4_off + 8].copy_from_slice(&seq.to_be_bytes());
            let mut f = self.flags0;
            if i + 1 < n {
                f &= !(0x01 | 0x08); // FIN, PSH only on the last segment
            }
            if i > 0 {
                f &= !0x80; // CWR only on the first
            }
            out[l4_off + 13] = f;
            l4_off + 16
        } else {
            out[l4_off + 4..l4_off + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4_off + 6
        };
        out[csum_at..csum_at + 2].copy_from_slice(&[0, 0]);
        let ps = pseudo(out, l3_off, v6, proto, l4_len);
        let mut c = !fold(sum16(ps, &out[l4_off..]));
        if !tcp && c == 0 {
            c = 0xffff;
        }
        out[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
        seg_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 frame with `len` payload bytes, checksum left partial as a sender with
    /// offloads would leave it.
    fn tcp4(len: usize, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + len];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((40 + len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&7u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
        ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
        let tcp = &mut f[34..54];
        tcp[0..2].copy_from_slice(&1234u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        for (i, b) in f[54..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        f
    }

    fn ip_ok(seg: &[u8]) -> bool {
        fold(sum16(0, &seg[14..34])) == 0xffff
    }

    fn tcp_ok(seg: &[u8], v6: bool) -> bool {
        let l3 = 14;
        let l4 = if v6 { 54 } else { 34 };
        let ps = pseudo(seg, l3, v6, 6, seg.len() - l4);
        fold(sum16(ps, &seg[l4..])) == 0xffff
    }

    #[test]
    fn header_roundtrip_and_validation() {
        let h = VnetHdr {
            flags: 1,
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut b = [0u8; 10];
        h.write(&mut b);
        assert_eq!(VnetHdr::parse(&b).unwrap(), h);
        assert!(h.validate(100).is_ok());
        assert_eq!(h.validate(40), Err(OffloadError::BadHeader));
        assert_eq!(
            VnetHdr { flags: 0x40, ..h }.validate(100),
            Err(OffloadError::BadHeader)
        );
        assert_eq!(
            VnetHdr { gso_size: 0, ..h }.validate(100),
            Err(OffloadError::BadHeader)
        );
        assert_eq!(
            VnetHdr { gso_type: 9, ..h }.validate(100),
            Err(OffloadError::BadHeader)
        );
        assert!(VnetHdr::default().is_plain());
        assert_eq!(VnetHdr::parse(&[0; 9]), Err(OffloadError::Short));
    }

    #[test]
    fn completes_a_partial_checksum() {
        let mut f = tcp4(100, 0x18);
        // put the pseudo-header sum in the field, as a sender with CHECKSUM_PARTIAL does
        let ps = fold(pseudo(&f, 14, false, 6, 120));
        f[50..52].copy_from_slice(&ps.to_be_bytes());
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..Default::default()
        };
        let mut scratch = vec![0u8; SEG_BUF];
        let mut got = Vec::new();
        let n = finish(&h, &f, &mut scratch, |s| -> Result<(), ()> {
            got.push(s.to_vec());
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(n, 1);
        assert!(tcp_ok(&got[0], false));
    }

    #[test]
    fn segments_tcp4_gso() {
        let total = 5000;
        let f = tcp4(total, 0x19); // FIN|PSH|ACK
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        let mut scratch = vec![0u8; SEG_BUF];
        let mut segs: Vec<Vec<u8>> = Vec::new();
        finish(&h, &f, &mut scratch, |s| -> Result<(), ()> {
            segs.push(s.to_vec());
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(segs.len(), 4);
        let mut payload = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert!(s.len() <= 14 + 40 + 1448);
            assert!(ip_ok(s), "ip checksum of segment {i}");
            assert!(tcp_ok(s, false), "tcp checksum of segment {i}");
            let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
            assert_eq!(seq, 1000 + (i * 1448) as u32);
            assert_eq!(u16::from_be_bytes([s[16], s[17]]) as usize, s.len() - 14);
            assert_eq!(u16::from_be_bytes([s[18], s[19]]), 7 + i as u16);
            let fin_psh = s[47] & 0x09;
            assert_eq!(fin_psh != 0, i == 3, "FIN/PSH only on the last");
            payload.extend_from_slice(&s[54..]);
        }
        assert_eq!(payload, f[54..]);
    }

    #[test]
    fn segments_tcp6_gso() {
        let len = 3000;
        let mut f = vec![0u8; 14 + 40 + 20 + len];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[14] = 0x60;
        f[18..20].copy_from_slice(&((20 + len) as u16).to_be_bytes());
        f[20] = 6;
        f[21] = 64;
        f[22] = 0x20;
        f[38] = 0x20;
        f[54 + 12] = 5 << 4;
        f[54 + 13] = 0x10;
        for (i, b) in f[74..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let h = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 74,
            gso_size: 1000,
            csum_start: 54,
            csum_offset: 16,
        };
        let mut scratch = vec![0u8; SEG_BUF];
        let mut segs: Vec<Vec<u8>> = Vec::new();
        finish(&h, &f, &mut scratch, |s| -> Result<(), ()> {
            segs.push(s.to_vec());
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(segs.len(), 3);
        for s in &segs {
            assert!(tcp_ok(s, true));
            assert_eq!(u16::from_be_bytes([s[18], s[19]]) as usize, s.len() - 54);
        }
    }

    #[test]
    fn short_tcp_header_is_refused_not_a_panic() {
        // data offset 2 (8 bytes): flags and checksum would lie beyond the header
        let mut f = tcp4(12, 0x10);
        f[34 + 12] = 2 << 4;
        let h = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 1,
            ..Default::default()
        };
        let mut scratch = vec![0u8; SEG_BUF];
        assert_eq!(
            finish(&h, &f, &mut scratch, |_| -> Result<(), ()> { Ok(()) }).unwrap_err(),
            OffloadError::BadFrame
        );
    }

    #[test]
    fn rejects_mismatched_and_unsupported() {
        let f = tcp4(3000, 0x10);
        let mut scratch = vec![0u8; SEG_BUF];
        let h6 = VnetHdr {
            gso_type: GSO_TCPV6,
            gso_size: 1000,
            ..Default::default()
        };
        assert_eq!(
            finish(&h6, &f, &mut scratch, |_| -> Result<(), ()> { Ok(()) }).unwrap_err(),
            OffloadError::BadFrame
        );
        let ufo = VnetHdr {
            gso_type: GSO_UDP,
            gso_size: 1000,
            ..Default::default()
        };
        assert_eq!(
            finish(&ufo, &f, &mut scratch, |_| -> Result<(), ()> { Ok(()) }).unwrap_err(),
            OffloadError::Unsupported
        );
        let short = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 1000,
            ..Default::default()
        };
        assert_eq!(
            finish(&short, &f[..40], &mut scratch, |_| -> Result<(), ()> {
                Ok(())
            })
            .unwrap_err(),
            OffloadError::BadFrame
        );
    }

    /// A TCP (`proto` 6) or UDP (17) packet over IPv4 or IPv6 behind `tags` VLAN tags, with
    /// `opts` bytes of TCP options and `len` payload bytes, its L4 checksum left partial as a
    /// Linux sender with TX checksum offload leaves it (the folded pseudo-header sum).
    fn partial(v6: bool, proto: u8, tags: usize, opts: usize, len: usize) -> (Vec<u8>, usize) {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        for _ in 0..tags {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        }
        let l4_hlen = if proto == 6 { 20 + opts } else { 8 };
        let l4_len = l4_hlen + len;
        let l3 = f.len() + 2;
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(l4_len as u16).to_be_bytes());
            f.extend_from_slice(&[proto, 64]);
            f.extend((0..32).map(|i| 0x20 + i as u8));
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 7, 0x40, 0, 64, proto, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
            let c = !fold(sum16(0, &f[l3..l3 + 20]));
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let l4 = f.len();
        let mut h = vec![0u8; l4_hlen];
        h[..4].copy_from_slice(&[0x9c, 0x40, 0x00, 0x50]);
        if proto == 6 {
            h[4..8].copy_from_slice(&1000u32.to_be_bytes());
            h[12] = ((l4_hlen / 4) as u8) << 4;
            h[13] = 0x18;
            h[20..].fill(1); // NOP options
        } else {
            h[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        f.extend_from_slice(&h);
        f.extend((0..len).map(|i| (i * 13 + 5) as u8));
        let ps = fold(pseudo(&f, l3, v6, proto, l4_len));
        let at = l4 + if proto == 6 { 16 } else { 6 };
        f[at..at + 2].copy_from_slice(&ps.to_be_bytes());
        (f, l3)
    }

    fn l4_ok(f: &[u8], l3: usize, v6: bool, proto: u8) -> bool {
        let l4 = l3 + if v6 { 40 } else { 20 };
        let ps = pseudo(f, l3, v6, proto, f.len() - l4);
        fold(sum16(ps, &f[l4..])) == 0xffff
    }

    #[test]
    fn recognises_partial_checksums_and_completes_them() {
        for v6 in [false, true] {
            for proto in [6u8, 17] {
                for tags in [0, 2] {
                    for len in [0, 1, 100, 1447] {
                        let (f, l3) = partial(v6, proto, tags, 0, len);
                        let what = format!("v6 {v6} proto {proto} tags {tags} len {len}");
                        assert!(!l4_ok(&f, l3, v6, proto), "{what}: not complete yet");
                        let l4 = l3 + if v6 { 40 } else { 20 };
                        let field = if proto == 6 { 16 } else { 6 };
                        assert_eq!(partial_csum(&f), Some((l4 as u16, field as u16)), "{what}");
                        let mut done = f.clone();
                        complete_csum(&mut done, l4, field).unwrap();
                        assert!(l4_ok(&done, l3, v6, proto), "{what}: completed");
                        assert_eq!(done[..l4 + field], f[..l4 + field]);
                        assert_eq!(done[l4 + field + 2..], f[l4 + field + 2..]);
                        // complete, it is no longer partial
                        assert_eq!(partial_csum(&done), None, "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_wrong_checksum_is_not_taken_for_a_partial_one() {
        for v6 in [false, true] {
            for proto in [6u8, 17] {
                let (mut f, l3) = partial(v6, proto, 0, 0, 200);
                let at = l3 + if v6 { 40 } else { 20 } + if proto == 6 { 16 } else { 6 };
                f[at] ^= 0x12;
                assert_eq!(partial_csum(&f), None, "v6 {v6} proto {proto}");
                assert!(!l4_ok(&f, l3, v6, proto));
            }
        }
        // UDP "no checksum" over IPv4
        let (mut f, l3) = partial(false, 17, 0, 0, 20);
        f[l3 + 26..l3 + 28].fill(0);
        assert_eq!(partial_csum(&f), None);
    }

    #[test]
    fn partial_checksums_only_where_they_can_be() {
        let (base, l3) = partial(false, 6, 0, 0, 100);
        // a fragment, an IP length that is not the frame's (padding), another protocol,
        // an IPv6 extension header, cut short: none is read as partial, none panics
        let mut frag = base.clone();
        frag[l3 + 6] = 0x20;
        let mut padded = base.clone();
        padded.extend_from_slice(&[0; 6]);
        let mut icmp = base.clone();
        icmp[l3 + 9] = 1;
        let (mut ext, l3v6) = partial(true, 6, 0, 0, 100);
        ext[l3v6 + 6] = 0; // hop-by-hop
        for (what, f) in [
            ("fragment", frag),
            ("padded", padded),
            ("icmp", icmp),
            ("extension header", ext),
        ] {
            assert_eq!(partial_csum(&f), None, "{what}");
        }
        for n in 0..base.len() {
            assert_eq!(partial_csum(&base[..n]), None, "cut at {n}");
        }
        assert!(partial_csum(&base).is_some());
    }

    #[test]
    fn a_completed_zero_is_sent_as_all_ones() {
        // a UDP packet whose checksum comes out 0 carries 0xffff (CSUM_MANGLED_0)
        let (mut f, l3) = partial(false, 17, 0, 0, 2);
        let l4 = l3 + 20;
        let mut done = f.clone();
        complete_csum(&mut done, l4, 6).unwrap();
        let c = u16::from_be_bytes([done[l4 + 6], done[l4 + 7]]);
        // move the sum by the checksum's complement through the payload, so the result is 0
        let sum = u32::from(u16::from_be_bytes([f[l4 + 8], f[l4 + 9]])) + u32::from(c);
        f[l4 + 8..l4 + 10].copy_from_slice(&fold(sum).to_be_bytes());
        complete_csum(&mut f, l4, 6).unwrap();
        assert_eq!(&f[l4 + 6..l4 + 8], &[0xff, 0xff]);
        assert!(l4_ok(&f, l3, false, 17));
    }

    /// A GSO header for `partial(..)`'s frame.
    fn gso_hdr(v6: bool, proto: u8, l3: usize, mss: u16) -> VnetHdr {
        let l4 = (l3 + if v6 { 40 } else { 20 }) as u16;
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: match (proto, v6) {
                (17, _) => GSO_UDP_L4,
                (_, false) => GSO_TCPV4,
                (_, true) => GSO_TCPV6,
            },
            hdr_len: 0,
            gso_size: mss,
            csum_start: l4,
            csum_offset: if proto == 6 { 16 } else { 6 },
        }
    }

    #[test]
    fn gso_segments_are_bounded_as_linux_tcp_and_udp_bound_them() {
        for v6 in [false, true] {
            // TCP: payload + options at least 48 per segment
            for (opts, floor) in [(0usize, 48u16), (12, 36), (40, 8)] {
                let (f, l3) = partial(v6, 6, 0, opts, 60_000);
                let at = gso_hdr(v6, 6, l3, floor);
                assert_eq!(
                    check_gso(&at, &f),
                    Ok(60_000usize.div_ceil(floor.into())),
                    "v6 {v6} options {opts}"
                );
                let below = gso_hdr(v6, 6, l3, floor - 1);
                assert_eq!(
                    check_gso(&below, &f),
                    Err(OffloadError::TooManySegments),
                    "v6 {v6} options {opts}"
                );
            }
            let (f, l3) = partial(v6, 6, 1, 0, 65_000);
            assert_eq!(
                check_gso(&gso_hdr(v6, 6, l3, 1), &f),
                Err(OffloadError::TooManySegments)
            );
            // one segment is not really GSO, whatever the gso_size
            let (f, l3) = partial(v6, 6, 0, 0, 1);
            assert_eq!(check_gso(&gso_hdr(v6, 6, l3, 1), &f), Ok(1));
            // UDP: at most 128 segments
            let (f, l3) = partial(v6, 17, 0, 0, 128 * 100);
            assert_eq!(check_gso(&gso_hdr(v6, 17, l3, 100), &f), Ok(128));
            let (f, l3) = partial(v6, 17, 0, 0, 128 * 100 + 1);
            assert_eq!(
                check_gso(&gso_hdr(v6, 17, l3, 100), &f),
                Err(OffloadError::TooManySegments)
            );
        }
        // the largest frame a port reads, at the floor: within MAX_GSO_SEGS
        let rx_buf = crate::buf::RX_BUF;
        let (f, l3) = partial(false, 6, 0, 40, rx_buf - 14 - 20 - 60);
        assert_eq!(f.len(), rx_buf);
        let n = check_gso(&gso_hdr(false, 6, l3, 8), &f).unwrap();
        assert!(n <= MAX_GSO_SEGS, "{n}");
        let mut scratch = vec![0u8; SEG_BUF];
        let mut count = 0;
        let sent = finish(&gso_hdr(false, 6, l3, 8), &f, &mut scratch, |_| {
            count += 1;
            Ok::<(), ()>(())
        });
        assert_eq!(sent, Ok(Ok(n)));
        assert_eq!(count, n);
    }

    #[test]
    fn gso_headers_must_match_their_frame_as_linux_wants() {
        let (f, l3) = partial(false, 6, 0, 0, 3000);
        let ok = gso_hdr(false, 6, l3, 1448);
        assert_eq!(check_gso(&ok, &f), Ok(3));
        let bad = [
            VnetHdr {
                csum_start: ok.csum_start + 4,
                ..ok
            },
            VnetHdr {
                csum_offset: 6,
                ..ok
            },
        ];
        for h in bad {
            assert_eq!(check_gso(&h, &f), Err(OffloadError::BadHeader), "{h:?}");
        }
        // without NEEDS_CSUM a TCP frame is fine (the segments get computed checksums)
        assert_eq!(check_gso(&VnetHdr { flags: 0, ..ok }, &f), Ok(3));
        assert_eq!(
            check_gso(
                &VnetHdr {
                    gso_type: GSO_TCPV6,
                    ..ok
                },
                &f
            ),
            Err(OffloadError::BadFrame)
        );
        assert_eq!(
            check_gso(
                &VnetHdr {
                    gso_type: GSO_UDP,
                    ..ok
                },
                &f
            ),
            Err(OffloadError::Unsupported)
        );
        // USO: NEEDS_CSUM required, no ECN
        let (u, l3) = partial(true, 17, 0, 0, 3000);
        let uso = gso_hdr(true, 17, l3, 1000);
        assert_eq!(check_gso(&uso, &u), Ok(3));
        assert_eq!(
            check_gso(&VnetHdr { flags: 0, ..uso }, &u),
            Err(OffloadError::BadHeader)
        );
        assert_eq!(
            check_gso(
                &VnetHdr {
                    gso_type: GSO_UDP_L4 | GSO_ECN,
                    ..uso
                },
                &u
            ),
            Err(OffloadError::BadHeader)
        );
        assert_eq!(check_gso(&VnetHdr::default(), &[]), Ok(1));
    }

    #[test]
    fn a_tso_frame_that_lost_its_header_gets_one_back() {
        let mut scratch = vec![0u8; SEG_BUF];
        for (v6, mtu, opts, mss) in [
            (false, 1550, 12, 1448), // a 1600-byte veth underlay, hosts at 1500
            (false, 1450, 12, 1398), // hosts at the tunnel's MTU
            (true, 1550, 12, 1428),
            (false, 9000, 0, 1460), // at most Ethernet's 1500
        ] {
            let what = format!("v6 {v6} mtu {mtu}");
            let (f, l3) = partial(v6, 6, 0, opts, 30_000);
            let h = partial_tso(&f, mtu).unwrap_or_else(|| panic!("{what}"));
            let l4 = l3 + if v6 { 40 } else { 20 };
            assert_eq!(
                h,
                VnetHdr {
                    flags: F_NEEDS_CSUM,
                    gso_type: if v6 { GSO_TCPV6 } else { GSO_TCPV4 },
                    hdr_len: (l4 + 20 + opts) as u16,
                    gso_size: mss,
                    csum_start: l4 as u16,
                    csum_offset: 16,
                },
                "{what}"
            );
            let n = check_gso(&h, &f).unwrap();
            let mut payload = Vec::new();
            let sent = finish(&h, &f, &mut scratch, |s| {
                assert!(s.len() - l3 <= mtu.min(1500), "{what}");
                assert!(l4_ok(s, l3, v6, 6), "{what}");
                payload.extend_from_slice(&s[l4 + 20 + opts..]);
                Ok::<(), ()>(())
            });
            assert_eq!(sent, Ok(Ok(n)));
            assert_eq!(payload, f[l4 + 20 + opts..], "{what}");
        }
        // not such a frame: fits the link, complete checksum, UDP, CWR kept as ECN
        let (f, l3) = partial(false, 6, 0, 0, 1000);
        assert_eq!(partial_tso(&f, 1500), None);
        // one 1500-byte segment over a 1450 tunnel (its outer packet was fragmented)
        assert_eq!(partial_tso(&partial(false, 6, 0, 12, 1448).0, 1450), None);
        assert!(partial_tso(&partial(false, 6, 0, 12, 1449).0, 1450).is_some());
        let mut done = partial(false, 6, 0, 0, 30_000).0;
        complete_csum(&mut done, l3 + 20, 16).unwrap();
        assert_eq!(partial_tso(&done, 1500), None);
        assert_eq!(partial_tso(&partial(false, 17, 0, 0, 30_000).0, 1500), None);
        let (mut cwr, _) = partial(false, 6, 0, 0, 30_000);
        cwr[l3 + 20 + 13] |= 0x80;
        assert_eq!(
            partial_tso(&cwr, 1500).map(|h| h.gso_type),
            Some(GSO_TCPV4 | GSO_ECN)
        );
    }
}
