//! Receive coalescing ("GRO" in userspace): consecutive TCP segments of one flow that a VXLAN
//! socket read in one batch become one GSO frame (a virtio_net_hdr with `GSO_TCPV4`/`GSO_TCPV6`
//! and a partial checksum, then the frame), as Linux's GRO makes one packet of them before the
//! stack sees it. A TAP port with offloads takes it in one write and its host's TCP stack
//! handles it once (and acknowledges it once); toward a port without offloads the frame path
//! segments it again. No I/O, no allocation after [`Gro::new`].
//!
//! Segments merge under Linux's `tcp_gro_receive` rules, kept strict: IPv4 without options or
//! fragments, IPv6 without extension headers, no VLAN tag, only ACK (and PSH, which ends a
//! merge) among the TCP flags, headers equal but for lengths, IDs, sequence numbers and
//! checksums (options included, so timestamps must match), sequence numbers contiguous, every
//! segment the size of the first but the last, which may be shorter and ends the merge. Each
//! segment's IP and TCP checksums are verified before it is merged: the merged frame carries a
//! partial checksum that the receiver trusts, so nothing corrupt may hide in it. The one
//! exception is a TCP checksum its sender left partial (the field holds the pseudo-header sum,
//! see [`crate::offload::partial_csum`]: a Linux host on a veth behind a Linux or OVS VTEP):
//! there is no checksum to verify, Linux hands such a segment on as `CHECKSUM_PARTIAL` and so
//! does this, merged or alone (then with a `NEEDS_CSUM` header). A merge starts only with a
//! segment of at least [`TCP_MIN_MSS`] (payload and options), so a merged frame always passes
//! the frame path's GSO bound ([`crate::offload::check_gso`]).

use crate::buf::PageBuf;
use crate::offload::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, TCP_MIN_MSS, VNET_HDR_LEN};
use crate::wire::checksum::{self, csum_add, csum_fold};
use crate::wire::{be16, ETH_HLEN};

const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
/// Most bytes of L3 a merged frame holds (the IPv4 total length and IPv6 payload length
/// fields are 16 bits).
const MAX_L3: usize = 65535 - 60;

/// One TCP segment, parsed and checked.
#[derive(Clone, Copy, Debug)]
struct Seg {
    v6: bool,
    l4: usize,
    hlen: usize,
    payload: usize,
    seq: u32,
    flags: u8,
    /// The TCP checksum was left partial by the sender (not verified: there is nothing to).
    partial: bool,
}

/// The pending merged frame.
#[derive(Clone, Copy, Debug)]
struct Flow {
    ctx: u128,
    seg: Seg,
    mss: usize,
    segs: usize,
    next_seq: u32,
    psh: bool,
    closed: bool,
}

/// The coalescing buffer of one receive loop; see the module documentation.
pub struct Gro {
    /// virtio_net_hdr, then the merged frame.
    /// Page-aligned (see [`crate::buf`]): merged frames are written from it.
    buf: PageBuf,
    len: usize,
    flow: Option<Flow>,
}

impl Default for Gro {
    fn default() -> Self {
        Gro::new()
    }
}

impl std::fmt::Debug for Gro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gro").field("flow", &self.flow).finish()
    }
}

/// Pseudo-header sum of a TCP segment of `l4_len` bytes, folded.
fn pseudo(frame: &[u8], v6: bool, l4_len: usize) -> u32 {
    u32::from(csum_fold(checksum::pseudo(
        &frame[ETH_HLEN..],
        v6,
        6,
        l4_len,
    )))
}

/// The segment, if `frame` is a TCP segment with data that may be merged, with valid checksums
/// (or a checksum the sender left partial). Read through smoltcp's IPv4, IPv6 and TCP views;
/// the checksums with [`checksum`] (smoltcp skips its own under `cfg(fuzzing)`).
fn parse(frame: &[u8]) -> Option<Seg> {
    use smoltcp::wire::{IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket};
    if frame.len() < ETH_HLEN + 40 {
        return None;
    }
    let l3 = ETH_HLEN;
    let ip = &frame[l3..];
    let (v6, l4) = match be16(frame, 12) {
        0x0800 => {
            let p = Ipv4Packet::new_checked(ip).ok()?;
            let plain = p.version() == 4 && p.header_len() == 20;
            if !plain
                || usize::from(p.total_len()) != ip.len()
                || p.more_frags()
                || p.frag_offset() != 0
                || p.next_header() != IpProtocol::Tcp
                || csum_fold(csum_add(0, &ip[..20])) != 0xffff
            {
                return None;
            }
            (false, l3 + 20)
        }
        0x86DD => {
            let p = Ipv6Packet::new_checked(ip).ok()?;
            if frame.len() < l3 + 60
                || p.version() != 6
                || usize::from(p.payload_len()) != ip.len() - 40
                || p.next_header() != IpProtocol::Tcp
            {
                return None;
            }
            (true, l3 + 40)
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(&frame[l4..]).ok()?;
    let hlen = l4 + usize::from(tcp.header_len());
    let flags = frame[l4 + 13];
    if hlen >= frame.len()
        || frame[l4 + 12] & 0x0f != 0
        || flags & !(TCP_ACK | TCP_PSH) != 0
        || !tcp.ack()
    {
        return None;
    }
    let l4_len = frame.len() - l4;
    let ps = pseudo(frame, v6, l4_len);
    let partial = u32::from(tcp.checksum()) == ps;
    if !partial && csum_fold(csum_add(ps, &frame[l4..])) != 0xffff {
        return None;
    }
    Some(Seg {
        v6,
        l4,
        hlen,
        payload: frame.len() - hlen,
        seq: tcp.seq_number().0 as u32,
        flags,
        partial,
    })
}

/// Whether two segments' headers are equal but for what merging changes.
fn same_headers(a: &[u8], b: &[u8], s: &Seg) -> bool {
    let l3 = ETH_HLEN;
    let l4 = s.l4;
    let ip_same = if s.v6 {
        a[l3..l3 + 4] == b[l3..l3 + 4] && a[l3 + 6..l4] == b[l3 + 6..l4]
    } else {
        a[l3..l3 + 2] == b[l3..l3 + 2]
            && a[l3 + 6..l3 + 10] == b[l3 + 6..l3 + 10]
            && a[l3 + 12..l4] == b[l3 + 12..l4]
    };
    a[..l3] == b[..l3]
        && ip_same
        && a[l4..l4 + 4] == b[l4..l4 + 4]
        && a[l4 + 8..l4 + 13] == b[l4 + 8..l4 + 13]
        && a[l4 + 14..l4 + 16] == b[l4 + 14..l4 + 16]
        && a[l4 + 18..s.hlen] == b[l4 + 18..s.hlen]
}

impl Gro {
    /// A coalescing buffer (allocated once: a virtio_net_hdr and 64 KiB).
    pub fn new() -> Gro {
        Gro {
            buf: PageBuf::new(VNET_HDR_LEN + ETH_HLEN + 65535),
            len: 0,
            flow: None,
        }
    }

    /// Panics unless the merge buffer starts at a page (see [`crate::buf`]); for tests.
    pub fn assert_page_aligned(&self) {
        assert_eq!(crate::buf::page_offset(self.buf.as_ptr()), 0);
    }

    /// Whether a merged frame is pending.
    pub fn pending(&self) -> bool {
        self.flow.is_some()
    }

    /// Appends `frame` to the pending frame if it continues it: same context `ctx` (the caller's
    /// key for port and sender), the flow's next segment. `false`: flush the pending frame (see
    /// [`Gro::take`]) before handling `frame`.
    pub fn merge(&mut self, ctx: u128, frame: &[u8]) -> bool {
        let Some(f) = self.flow else { return false };
        if f.ctx != ctx || f.closed || frame.len() < f.seg.hlen {
            return false;
        }
        let Some(s) = parse(frame) else { return false };
        let pending = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + self.len];
        if s.v6 != f.seg.v6
            || s.hlen != f.seg.hlen
            || s.seq != f.next_seq
            || s.payload > f.mss
            || self.len + s.payload - ETH_HLEN > MAX_L3
            || !same_headers(pending, frame, &f.seg)
        {
            return false;
        }
        let at = VNET_HDR_LEN + self.len;
        self.buf[at..at + s.payload].copy_from_slice(&frame[s.hlen..]);
        self.len += s.payload;
        let psh = s.flags & TCP_PSH != 0;
        self.flow = Some(Flow {
            segs: f.segs + 1,
            next_seq: f.next_seq.wrapping_add(s.payload as u32),
            psh: f.psh || psh,
            closed: psh || s.payload < f.mss,
            ..f
        });
        true
    }

    /// Starts a pending frame with `frame` if it is a TCP segment that could be merged;
    /// `false`: handle it alone. Call only with nothing pending.
    pub fn start(&mut self, ctx: u128, frame: &[u8]) -> bool {
        if self.flow.is_some() || frame.len() > self.buf.len() - VNET_HDR_LEN {
            return false;
        }
        let Some(s) = parse(frame) else { return false };
        if s.payload + (s.hlen - s.l4 - 20) < TCP_MIN_MSS {
            // smaller segments than any Linux TCP sends: merged, the frame would make more
            // segments than the frame path lets a GSO frame make
            return false;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + frame.len()].copy_from_slice(frame);
        self.len = frame.len();
        self.flow = Some(Flow {
            ctx,
            seg: s,
            mss: s.payload,
            segs: 1,
            next_seq: s.seq.wrapping_add(s.payload as u32),
            psh: s.flags & TCP_PSH != 0,
            closed: s.flags & TCP_PSH != 0,
        });
        true
    }

    /// Takes the pending frame: a virtio_net_hdr and the frame, as a TAP with offloads reads
    /// them. Several merged segments make a GSO frame with a partial TCP checksum; a single one
    /// comes back unchanged with an all-zero header, or a `NEEDS_CSUM` one if its sender left
    /// its checksum partial. `None` if nothing is pending.
    pub fn take(&mut self) -> Option<&[u8]> {
        let f = self.flow.take()?;
        let len = self.len;
        let out = &mut self.buf[..VNET_HDR_LEN + len];
        if f.segs == 1 {
            let hdr = if f.seg.partial {
                VnetHdr {
                    flags: F_NEEDS_CSUM,
                    csum_start: f.seg.l4 as u16,
                    csum_offset: 16,
                    ..VnetHdr::default()
                }
            } else {
                VnetHdr::default()
            };
            hdr.write(&mut out[..VNET_HDR_LEN]);
            return Some(out);
        }
        let frame = &mut out[VNET_HDR_LEN..];
        let l3 = ETH_HLEN;
        let s = f.seg;
        if s.v6 {
            let plen = (len - l3 - 40) as u16;
            frame[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let tot = (len - l3) as u16;
            frame[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
            frame[l3 + 10..l3 + 12].fill(0);
            let c = !csum_fold(csum_add(0, &frame[l3..l3 + 20]));
            frame[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        if f.psh {
            frame[s.l4 + 13] |= TCP_PSH;
        }
        // the partial checksum: the pseudo-header sum, for the receiver to complete
        let ps = pseudo(frame, s.v6, len - s.l4) as u16;
        frame[s.l4 + 16..s.l4 + 18].copy_from_slice(&ps.to_be_bytes());
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: if s.v6 { GSO_TCPV6 } else { GSO_TCPV4 },
            hdr_len: s.hlen as u16,
            gso_size: f.mss as u16,
            csum_start: s.l4 as u16,
            csum_offset: 16,
        }
        .write(&mut out[..VNET_HDR_LEN]);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::{finish, SEG_BUF};

    /// A TCP segment with valid checksums: IPv4 or IPv6, `payload` bytes from `seq`, with a
    /// timestamp option.
    fn seg(v6: bool, seq: u32, payload: &[u8], flags: u8, sport: u16) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
        let tcp_len = 32 + payload.len();
        if v6 {
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            ip.extend_from_slice(&[6, 64]);
            ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            ip.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            f.extend_from_slice(&ip);
        } else {
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            ip.extend_from_slice(&[(seq >> 8) as u8, seq as u8, 0x40, 0, 64, 6, 0, 0]);
            ip.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
            let c = !csum_fold(csum_add(0, &ip));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        let l4 = f.len();
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&80u16.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&7u32.to_be_bytes());
        f.extend_from_slice(&[0x80, flags, 0x01, 0xf5, 0, 0, 0, 0]);
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3]);
        f.extend_from_slice(payload);
        let ps = pseudo(&f, v6, f.len() - l4);
        let c = !csum_fold(csum_add(ps, &f[l4..]));
        f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// What the frame path would send a plain port: the segments of a merged frame.
    fn resegment(pkt: &[u8]) -> Vec<Vec<u8>> {
        let hdr = VnetHdr::parse(pkt).unwrap();
        hdr.validate(pkt.len() - VNET_HDR_LEN).unwrap();
        let mut scratch = vec![0u8; SEG_BUF];
        let mut out = Vec::new();
        finish(
            &hdr,
            &pkt[VNET_HDR_LEN..],
            &mut scratch,
            |s| -> Result<(), ()> {
                out.push(s.to_vec());
                Ok(())
            },
        )
        .unwrap()
        .unwrap();
        out
    }

    #[test]
    fn consecutive_segments_become_one_gso_frame_and_segment_back_alike() {
        for v6 in [false, true] {
            let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
            let segs: Vec<Vec<u8>> = data
                .chunks(1448)
                .enumerate()
                .map(|(i, c)| seg(v6, 1000 + (i * 1448) as u32, c, TCP_ACK, 4000))
                .collect();
            let mut g = Gro::new();
            assert!(g.start(1, &segs[0]));
            for s in &segs[1..] {
                assert!(g.merge(1, s), "v6 {v6}");
            }
            // the last was shorter: nothing more joins
            assert!(!g.merge(1, &seg(v6, 11_000, &[1; 10], TCP_ACK, 4000)));
            let pkt = g.take().unwrap().to_vec();
            let h = VnetHdr::parse(&pkt).unwrap();
            assert_eq!(h.gso_size, 1448);
            assert_eq!(h.gso(), if v6 { GSO_TCPV6 } else { GSO_TCPV4 });
            assert_eq!(pkt.len() - VNET_HDR_LEN, segs[0].len() - 1448 + 10_000);
            // cut again, the frames are the originals, byte for byte (IPv4 ids aside)
            let back = resegment(&pkt);
            assert_eq!(back.len(), segs.len());
            for (a, b) in back.iter().zip(&segs) {
                if v6 {
                    assert_eq!(a, b);
                } else {
                    // all but the IPv4 id (bytes 18-19) and header checksum (24-25)
                    assert_eq!(a[..18], b[..18]);
                    assert_eq!(a[20..24], b[20..24]);
                    assert_eq!(a[26..], b[26..]);
                }
            }
            assert!(!g.pending());
        }
    }

    #[test]
    fn what_does_not_merge() {
        let p = [5u8; 100];
        let base = seg(false, 0, &p, TCP_ACK, 4000);
        let mut g = Gro::new();
        assert!(g.start(1, &base));
        // another context, another flow, a gap, a reordering, a larger segment, other flags
        assert!(!g.merge(2, &seg(false, 100, &p, TCP_ACK, 4000)));
        assert!(!g.merge(1, &seg(false, 100, &p, TCP_ACK, 4001)));
        assert!(!g.merge(1, &seg(false, 200, &p, TCP_ACK, 4000)));
        assert!(!g.merge(1, &seg(false, 0, &p, TCP_ACK, 4000)));
        assert!(!g.merge(1, &seg(false, 100, &[5; 101], TCP_ACK, 4000)));
        assert!(
            !g.merge(1, &seg(false, 100, &p, TCP_ACK | 0x01, 4000)),
            "FIN"
        );
        assert!(!g.merge(1, &seg(true, 100, &p, TCP_ACK, 4000)), "IPv6");
        // a corrupt segment never merges
        let mut bad = seg(false, 100, &p, TCP_ACK, 4000);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(!g.merge(1, &bad));
        // a PSH segment merges and ends the merge
        assert!(g.merge(1, &seg(false, 100, &p, TCP_ACK | TCP_PSH, 4000)));
        assert!(!g.merge(1, &seg(false, 200, &p, TCP_ACK, 4000)));
        let pkt = g.take().unwrap().to_vec();
        assert_eq!(pkt[VNET_HDR_LEN + 34 + 13] & TCP_PSH, TCP_PSH);
        assert_eq!(resegment(&pkt).len(), 2);
        // not TCP, no data, SYN, IP options, fragments: never start
        let mut g = Gro::new();
        assert!(
            !g.start(1, &seg(false, 0, &[], TCP_ACK, 4000)),
            "no payload"
        );
        assert!(!g.start(1, &seg(false, 0, &p, 0x02, 4000)), "SYN");
        let mut frag = base.clone();
        frag[14 + 6] = 0x20; // MF
        assert!(!g.start(1, &frag));
        let mut udp = base.clone();
        udp[14 + 9] = 17;
        assert!(!g.start(1, &udp));
        assert!(!g.start(1, &base[..60]));
        assert!(!g.pending());
        // one segment alone comes back as it was, with a zero header
        assert!(g.start(1, &base));
        let pkt = g.take().unwrap();
        assert_eq!(&pkt[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
        assert_eq!(&pkt[VNET_HDR_LEN..], &base[..]);
    }

    /// Drives a `Gro` as the hub does: merge, else flush and start, else pass alone.
    fn run(input: &[(u128, Vec<u8>)]) -> Vec<Vec<u8>> {
        let mut g = Gro::new();
        let mut out = Vec::new();
        let flush = |g: &mut Gro, out: &mut Vec<Vec<u8>>| {
            if let Some(p) = g.take() {
                out.extend(resegment(p));
            }
        };
        for (ctx, f) in input {
            if g.merge(*ctx, f) {
                continue;
            }
            flush(&mut g, &mut out);
            if !g.start(*ctx, f) {
                out.push(f.clone());
            }
        }
        flush(&mut g, &mut out);
        out
    }

    #[test]
    fn random_streams_come_out_whole_and_in_order() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _round in 0..200 {
            // two flows (by source port), segments of random sizes, some corrupt, some
            // out of order, some with PSH, interleaved
            let mut input = Vec::new();
            let mut seq = [0u32; 2];
            for _ in 0..rnd(40) {
                let fl = rnd(2) as usize;
                let len = [1448, 1448, 1448, 700, 1][rnd(5) as usize];
                let payload: Vec<u8> = (0..len).map(|_| rnd(256) as u8).collect();
                let flags = if rnd(10) == 0 {
                    TCP_ACK | TCP_PSH
                } else {
                    TCP_ACK
                };
                let s = if rnd(15) == 0 {
                    seq[fl].wrapping_sub(1448)
                } else {
                    seq[fl]
                };
                let mut f = seg(fl == 1 && rnd(3) == 0, s, &payload, flags, 1000 + fl as u16);
                if rnd(20) == 0 {
                    let at = f.len() - 1;
                    f[at] ^= 0x40;
                }
                seq[fl] = s.wrapping_add(len as u32);
                input.push((u128::from(1 + rnd(2)), f));
            }
            let out = run(&input);
            // Every input frame comes out once, in order; merged ones cut back the same (IPv4
            // ids and header checksums aside, and PSH moves to a merge's last segment).
            assert_eq!(out.len(), input.len());
            let norm = |f: &[u8]| {
                let mut v = f.to_vec();
                if v[12..14] == [0x08, 0x00] {
                    v[18..20].fill(0);
                    v[24..26].fill(0);
                    v[34 + 13] &= !TCP_PSH;
                    v[34 + 16..34 + 18].fill(0);
                } else {
                    v[54 + 13] &= !TCP_PSH;
                    v[54 + 16..54 + 18].fill(0);
                }
                v
            };
            for (o, (_, i)) in out.iter().zip(&input) {
                assert_eq!(norm(o), norm(i));
            }
        }
    }

    #[test]
    fn never_beyond_64_kib() {
        let p = vec![1u8; 1448];
        let mut g = Gro::new();
        assert!(g.start(1, &seg(false, 0, &p, TCP_ACK, 1)));
        let mut n = 1;
        while g.merge(1, &seg(false, n * 1448, &p, TCP_ACK, 1)) {
            n += 1;
        }
        assert_eq!(n, 45, "45 x 1448 bytes fit an IPv4 packet, 46 do not");
        let pkt = g.take().unwrap();
        assert!(pkt.len() - VNET_HDR_LEN - 14 <= 65535);
    }

    /// `seg(..)` with its TCP checksum left partial, as a Linux sender with TX checksum
    /// offload leaves it: the pseudo-header sum.
    fn partial_seg(v6: bool, seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let mut f = seg(v6, seq, payload, flags, 4000);
        let l4 = if v6 { 54 } else { 34 };
        let ps = pseudo(&f, v6, f.len() - l4) as u16;
        f[l4 + 16..l4 + 18].copy_from_slice(&ps.to_be_bytes());
        f
    }

    fn tcp_ok(f: &[u8]) -> bool {
        let v6 = f[12..14] == [0x86, 0xdd];
        let l4 = if v6 { 54 } else { 34 };
        csum_fold(csum_add(pseudo(f, v6, f.len() - l4), &f[l4..])) == 0xffff
    }

    #[test]
    fn partial_segments_merge_and_come_out_right_once_finished() {
        for v6 in [false, true] {
            let data: Vec<u8> = (0..7000u32).map(|i| (i * 11) as u8).collect();
            let segs: Vec<Vec<u8>> = data
                .chunks(1448)
                .enumerate()
                .map(|(i, c)| partial_seg(v6, 9000 + (i * 1448) as u32, c, TCP_ACK))
                .collect();
            assert!(segs.iter().all(|s| !tcp_ok(s)), "partial, not valid");
            let mut g = Gro::new();
            assert!(g.start(3, &segs[0]));
            for s in &segs[1..] {
                assert!(g.merge(3, s), "v6 {v6}");
            }
            let pkt = g.take().unwrap().to_vec();
            let h = VnetHdr::parse(&pkt).unwrap();
            assert_eq!(h.flags, F_NEEDS_CSUM);
            assert_eq!(pkt[VNET_HDR_LEN + segs[0].len() - 1448..], data[..]);
            // finished for a plain port: every segment's checksum verifies
            let back = resegment(&pkt);
            assert_eq!(back.len(), segs.len());
            for (i, b) in back.iter().enumerate() {
                assert!(tcp_ok(b), "v6 {v6} segment {i}");
                assert_eq!(b.len(), segs[i].len(), "v6 {v6} segment {i}");
            }
            let payload: Vec<u8> = back
                .iter()
                .flat_map(|b| b[segs[0].len() - 1448..].to_vec())
                .collect();
            assert_eq!(payload, data);
            // mixed: a valid segment joins a partial one
            let mut g = Gro::new();
            assert!(g.start(3, &segs[0]));
            assert!(g.merge(3, &seg(v6, 9000 + 1448, &data[1448..2896], TCP_ACK, 4000)));
            let back = resegment(g.take().unwrap());
            assert!(back.iter().all(|b| tcp_ok(b)));
        }
    }

    #[test]
    fn a_lone_partial_segment_goes_on_with_needs_csum() {
        for v6 in [false, true] {
            let f = partial_seg(v6, 1, &[7; 300], TCP_ACK | TCP_PSH);
            let mut g = Gro::new();
            assert!(g.start(1, &f));
            let pkt = g.take().unwrap().to_vec();
            let h = VnetHdr::parse(&pkt).unwrap();
            let l4 = if v6 { 54 } else { 34 };
            assert_eq!(
                (h.flags, h.gso_type, h.csum_start, h.csum_offset),
                (F_NEEDS_CSUM, 0, l4, 16)
            );
            assert_eq!(&pkt[VNET_HDR_LEN..], &f[..], "the frame as it came");
            let done = resegment(&pkt);
            assert_eq!(done.len(), 1);
            assert!(tcp_ok(&done[0]));
        }
    }

    #[test]
    fn a_wrong_checksum_is_never_merged_nor_repaired() {
        let good = partial_seg(false, 0, &[1; 1000], TCP_ACK);
        let mut wrong = partial_seg(false, 1000, &[1; 1000], TCP_ACK);
        wrong[34 + 16] ^= 0x40; // neither the pseudo-header sum nor a valid checksum
        let mut g = Gro::new();
        assert!(g.start(1, &good));
        assert!(!g.merge(1, &wrong));
        assert!(g.take().is_some());
        assert!(!g.start(1, &wrong), "handled alone, as it is");
        assert!(!tcp_ok(&wrong));
    }

    #[test]
    fn no_merge_below_the_minimum_segment() {
        // 36 bytes of payload + 12 of options (the timestamps of `seg`) = 48: merged
        let mut g = Gro::new();
        assert!(g.start(1, &seg(false, 0, &[1; 36], TCP_ACK, 1)));
        assert!(g.merge(1, &seg(false, 36, &[1; 36], TCP_ACK, 1)));
        let pkt = g.take().unwrap().to_vec();
        let h = VnetHdr::parse(&pkt).unwrap();
        assert_eq!(
            crate::offload::check_gso(&h, &pkt[VNET_HDR_LEN..]),
            Ok(2),
            "a merged frame passes the frame path's bound"
        );
        // 35: not merged, each segment goes on alone
        assert!(!g.start(1, &seg(false, 0, &[1; 35], TCP_ACK, 1)));
        assert!(!g.pending());
    }
}
