//! The checks behind the fuzz targets, shared with `tests/fuzz_regressions.rs`.
//!
//! This file is a module of both the fuzz targets (`#[path = "../harness.rs"] mod harness;`)
//! and the regression test, so a crash input replays through exactly the same code without
//! libFuzzer. It depends on `tapswitch` and `std` only: inputs are decoded by the small
//! [`Reader`] below rather than by `arbitrary`.
//!
//! Entry points, one per target: [`check_frame_decide`], [`check_stream_decoder`],
//! [`check_offload`]. Each panics when an invariant breaks.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tapswitch::dataplane::{PortHandle, Switch};
use tapswitch::fdb::{EntryKind, FdbKey, Timestamp};
use tapswitch::forwarding::{
    exceeds_mtu, flood_eligible, FloodKind, Mode, PortFlags, RxDrop, Settings,
};
use tapswitch::offload::{
    self, VnetHdr, F_NEEDS_CSUM, GSO_ECN, GSO_NONE, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, SEG_BUF,
    VNET_HDR_LEN,
};
use tapswitch::port::mem::MemPort;
use tapswitch::port::stream::{StreamDecoder, MAX_FRAME};
use tapswitch::wire::EthernetFrame;

/// Reads fuzzer bytes; past the end every read returns zeros, so any input decodes.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    /// The rest of the input.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

// ---------------------------------------------------------------------------------------------
// Checksums and header arithmetic, written independently of src/offload.rs.

fn csum_add(mut acc: u64, data: &[u8]) -> u64 {
    let mut it = data.chunks(2);
    for c in &mut it {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        acc += w as u64;
    }
    acc
}

fn csum_fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether an IPv4 header checksum verifies.
fn ipv4_hdr_ok(hdr: &[u8]) -> bool {
    csum_fold(csum_add(0, hdr)) == 0xffff
}

/// Whether an L4 checksum verifies with the pseudo-header of the segment's L3 header.
fn l4_ok(seg: &[u8], l3_off: usize, v6: bool, proto: u8, l4_off: usize) -> bool {
    let l4 = &seg[l4_off..];
    let mut acc = if v6 {
        csum_add(0, &seg[l3_off + 8..l3_off + 40])
    } else {
        csum_add(0, &seg[l3_off + 12..l3_off + 20])
    };
    acc += proto as u64 + l4.len() as u64;
    csum_fold(csum_add(acc, l4)) == 0xffff
}

/// Header layout of a frame that `offload::finish` may segment: (l3_off, v6, proto, l4_off,
/// hlen). `None` when the frame is not a well-formed TCP/UDP over IPv4/IPv6 frame (then no
/// claim is made about what `finish` returns, only that it does not panic).
fn gso_layout(frame: &[u8], gso: u8) -> Option<(usize, bool, u8, usize, usize)> {
    let mut off = 12;
    let mut et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    while et == 0x8100 || et == 0x88a8 {
        off += 4;
        et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    let l3 = off + 2;
    let (v6, l3_len, proto) = match et {
        0x0800 => {
            let ihl = (*frame.get(l3)? & 0x0f) as usize * 4;
            frame.get(l3 + 20)?;
            (false, ihl, frame[l3 + 9])
        }
        0x86dd => (true, 40, *frame.get(l3 + 6)?),
        _ => return None,
    };
    if l3_len < 20 {
        return None;
    }
    let l4 = l3 + l3_len;
    let want = match gso {
        GSO_TCPV4 if !v6 => 6,
        GSO_TCPV6 if v6 => 6,
        GSO_UDP_L4 => 17,
        _ => return None,
    };
    if proto != want {
        return None;
    }
    let l4_hlen = if proto == 6 {
        (*frame.get(l4 + 12)? >> 4) as usize * 4
    } else {
        8
    };
    // A TCP header is at least 20 bytes (data offset >= 5).
    if l4_hlen < 20 && proto == 6 {
        return None;
    }
    let hlen = l4 + l4_hlen;
    if frame.len() < hlen || frame.len() < l4 + 20 && proto == 6 {
        return None;
    }
    Some((l3, v6, proto, l4, hlen))
}

/// Runs `offload::finish` and collects its segments; checks what holds for any input.
fn finish_segments(hdr: &VnetHdr, frame: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut scratch = vec![0u8; SEG_BUF];
    let mut segs: Vec<Vec<u8>> = Vec::new();
    let r = offload::finish(hdr, frame, &mut scratch, |s| -> Result<(), ()> {
        segs.push(s.to_vec());
        Ok(())
    });
    match r {
        Err(_) => {
            assert!(segs.is_empty(), "finish emitted segments and then failed");
            None
        }
        Ok(Err(())) => unreachable!("emit never fails here"),
        Ok(Ok(n)) => {
            assert_eq!(n, segs.len(), "finish's count vs segments emitted");
            assert!(n >= 1);
            for s in &segs {
                assert!(s.len() <= SEG_BUF, "segment of {} bytes", s.len());
            }
            if hdr.gso() == GSO_NONE {
                assert_eq!(n, 1);
                let s = &segs[0];
                assert_eq!(s.len(), frame.len());
                if hdr.flags & F_NEEDS_CSUM == 0 {
                    assert_eq!(s, frame, "a plain frame must pass unchanged");
                } else {
                    // Only the two checksum bytes may change; they hold the complement of the
                    // sum from csum_start (field included: it carried the pseudo-header sum).
                    let start = hdr.csum_start as usize;
                    let at = start + hdr.csum_offset as usize;
                    assert_eq!(s[..at], frame[..at]);
                    assert_eq!(s[at + 2..], frame[at + 2..]);
                    if (at - start) % 2 == 0 {
                        let sum = csum_add(csum_add(0, &frame[start..]), &s[at..at + 2]);
                        assert_eq!(csum_fold(sum), 0xffff, "completed checksum is wrong");
                    }
                }
            }
            Some(segs)
        }
    }
}

/// Checks the segments of a GSO frame against its layout: sizes, payload, headers, checksums.
fn check_gso_segments(hdr: &VnetHdr, frame: &[u8], segs: &[Vec<u8>]) {
    let (l3, v6, proto, l4, hlen) = gso_layout(frame, hdr.gso())
        .expect("finish segmented a frame that is not well-formed TCP/UDP over IP");
    let mss = hdr.gso_size as usize;
    let payload = &frame[hlen..];
    assert_eq!(
        segs.len(),
        payload.len().div_ceil(mss).max(1),
        "segment count"
    );
    let mut cat = Vec::with_capacity(payload.len());
    for (i, s) in segs.iter().enumerate() {
        assert!(s.len() >= hlen, "segment {i} shorter than the headers");
        assert!(
            s.len() <= hlen + mss,
            "segment {i}: {} > hlen {hlen} + mss {mss}",
            s.len()
        );
        // Headers: everything before L3 is copied unchanged.
        assert_eq!(s[..l3], frame[..l3], "segment {i}: L2 header changed");
        if v6 {
            let plen = u16::from_be_bytes([s[l3 + 4], s[l3 + 5]]) as usize;
            assert_eq!(plen, s.len() - l3 - 40, "segment {i}: IPv6 payload length");
        } else {
            let tot = u16::from_be_bytes([s[l3 + 2], s[l3 + 3]]) as usize;
            assert_eq!(tot, s.len() - l3, "segment {i}: IPv4 total length");
            assert!(ipv4_hdr_ok(&s[l3..l4]), "segment {i}: IPv4 header checksum");
            let id0 = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]);
            let id = u16::from_be_bytes([s[l3 + 4], s[l3 + 5]]);
            assert_eq!(id, id0.wrapping_add(i as u16), "segment {i}: IPv4 id");
        }
        if proto == 6 {
            let seq0 =
                u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]]);
            let seq = u32::from_be_bytes([s[l4 + 4], s[l4 + 5], s[l4 + 6], s[l4 + 7]]);
            assert_eq!(seq, seq0.wrapping_add((i * mss) as u32), "segment {i}: seq");
            // Ports, ack, data offset, window, urgent pointer unchanged.
            assert_eq!(s[l4..l4 + 4], frame[l4..l4 + 4]);
            assert_eq!(s[l4 + 8..l4 + 13], frame[l4 + 8..l4 + 13]);
            assert_eq!(s[l4 + 14..l4 + 16], frame[l4 + 14..l4 + 16]);
            assert_eq!(s[l4 + 18..hlen], frame[l4 + 18..hlen]);
            let f0 = frame[l4 + 13];
            let f = s[l4 + 13];
            let last = i + 1 == segs.len();
            assert_eq!(f & !0x89, f0 & !0x89, "segment {i}: TCP flags");
            assert_eq!(f & 0x09, if last { f0 & 0x09 } else { 0 }, "FIN/PSH");
            assert_eq!(f & 0x80, if i == 0 { f0 & 0x80 } else { 0 }, "CWR");
        } else {
            let ulen = u16::from_be_bytes([s[l4 + 4], s[l4 + 5]]) as usize;
            assert_eq!(ulen, s.len() - l4, "segment {i}: UDP length");
            assert_eq!(s[l4..l4 + 4], frame[l4..l4 + 4]);
        }
        assert!(
            l4_ok(s, l3, v6, proto, l4),
            "segment {i}: L4 checksum does not verify"
        );
        cat.extend_from_slice(&s[hlen..]);
    }
    assert_eq!(cat, payload, "concatenated segment payloads differ");
}

/// Whether the switch must drop a GSO frame at ingress (`bad_gso`), written from the rules
/// (Linux's `virtio_net_hdr_to_skb` and GSO segmenters, plus the TCP segment floor of
/// `tcp_min_snd_mss` counting options): headers that do not fit the GSO type or that the
/// switch cannot segment, `csum_start`/`csum_offset` off the TCP/UDP checksum, USO without
/// NEEDS_CSUM or with ECN, TCP segments under 48 bytes of payload + options, more than 128
/// UDP segments. A frame that makes one segment passes.
fn gso_refused(hdr: &VnetHdr, frame: &[u8]) -> bool {
    let Some((_, _, proto, l4, hlen)) = gso_layout(frame, hdr.gso()) else {
        return true;
    };
    let tcp = proto == 6;
    if hdr.flags & F_NEEDS_CSUM != 0 {
        if hdr.csum_start as usize != l4 || hdr.csum_offset as usize != if tcp { 16 } else { 6 } {
            return true;
        }
    } else if !tcp {
        return true;
    }
    if !tcp && hdr.gso_type & GSO_ECN != 0 {
        return true;
    }
    let mss = hdr.gso_size as usize;
    let segs = (frame.len() - hlen).div_ceil(mss).max(1);
    if segs == 1 {
        return false;
    }
    if tcp {
        mss + (hlen - l4 - 20) < 48
    } else {
        segs > 128
    }
}

/// Where a frame's TCP/UDP checksum is if it holds only the pseudo-header sum (a sender's
/// CHECKSUM_PARTIAL): untagged or tagged IPv4 (no fragment, total length = the frame's) or
/// IPv6 (next header TCP/UDP, payload length = the frame's); a UDP checksum of 0 is "none".
fn partial_model(frame: &[u8]) -> Option<(usize, usize)> {
    let mut off = 12;
    let mut et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    while et == 0x8100 || et == 0x88a8 {
        off += 4;
        et = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    let l3 = off + 2;
    let ip = frame.get(l3..)?;
    let be = |i: usize| -> Option<usize> {
        Some(u16::from_be_bytes([*ip.get(i)?, *ip.get(i + 1)?]) as usize)
    };
    let (v6, l4, proto) = match et {
        0x0800 if ip.len() >= 20 && ip[0] >> 4 == 4 => {
            let ihl = (ip[0] & 15) as usize * 4;
            if ihl < 20 || be(2)? != ip.len() || be(6)? & 0x3fff != 0 {
                return None;
            }
            (false, l3 + ihl, ip[9])
        }
        0x86dd if ip.len() >= 40 && ip[0] >> 4 == 6 => {
            if be(4)? != ip.len() - 40 {
                return None;
            }
            (true, l3 + 40, ip[6])
        }
        _ => return None,
    };
    let (field, min) = match proto {
        6 => (16, 20),
        17 => (6, 8),
        _ => return None,
    };
    if frame.len() < l4 + min {
        return None;
    }
    let got = u16::from_be_bytes([frame[l4 + field], frame[l4 + field + 1]]);
    if proto == 17 && got == 0 {
        return None;
    }
    let addrs = if v6 {
        &frame[l3 + 8..l3 + 40]
    } else {
        &frame[l3 + 12..l3 + 20]
    };
    let ps = csum_fold(csum_add(proto as u64 + (frame.len() - l4) as u64, addrs));
    (got == ps).then_some((l4, field))
}

/// The frame a port without offloads gets for a decapsulated `inner` frame: completed if its
/// sender left the checksum partial, else as it came.
pub fn decapsulated_for_plain_port(inner: &[u8]) -> Vec<u8> {
    let mut f = inner.to_vec();
    if let Some((l4, field)) = partial_model(inner) {
        let c = !csum_fold(csum_add(0, &f[l4..]));
        let c = if c == 0 { 0xffff } else { c };
        f[l4 + field..l4 + field + 2].copy_from_slice(&c.to_be_bytes());
    }
    f
}

// ---------------------------------------------------------------------------------------------
// Structured GSO frames.

/// A well-formed GSO frame built from fuzzer bytes: TCP or UDP over IPv4 or IPv6, with 0-2
/// VLAN tags, IPv4 options and TCP options. Returns the header, the frame, and whether it is
/// expected to segment (false when hlen + mss does not fit the 64 KiB scratch).
pub fn build_gso(r: &mut Reader<'_>, dst: [u8; 6]) -> (VnetHdr, Vec<u8>) {
    let sel = r.u8();
    let v6 = sel & 1 != 0;
    let udp = sel & 2 != 0;
    let tags = ((sel >> 2) % 3) as usize;
    let ecn = sel & 0x10 != 0;
    let needs_csum = sel & 0x20 == 0;
    let ihl = if v6 { 5 } else { 5 + (r.u8() % 11) as usize };
    let doff = 5 + (r.u8() % 11) as usize;
    let mss = match r.u8() % 4 {
        0 => 1 + (r.u8() % 64) as u16,
        1 => 1448,
        2 => r.u16().max(1),
        _ => 1 + r.u16() % 9000,
    };
    let payload_len = match r.u8() % 4 {
        0 => r.u8() as usize,
        1 => r.u16() as usize % 20_000,
        2 => r.u16() as usize,
        _ => 0,
    };
    // At most ~2000 segments, so one input stays fast.
    let payload_len = payload_len.min(mss as usize * 2000);
    let mut f = Vec::with_capacity(100 + payload_len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0x31]);
    for t in 0..tags {
        f.extend_from_slice(if t == 0 { &[0x88, 0xa8] } else { &[0x81, 0x00] });
        f.extend_from_slice(&r.u16().to_be_bytes());
    }
    f.extend_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
    let proto = if udp { 17 } else { 6 };
    let l4_hlen = if udp { 8 } else { doff * 4 };
    if v6 {
        let mut ip = [0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((l4_hlen + payload_len) as u16).to_be_bytes());
        ip[6] = proto;
        ip[7] = 64;
        ip[8..40].copy_from_slice(&[r.bytes(32), &[0u8; 32][..]].concat()[..32]);
        f.extend_from_slice(&ip);
    } else {
        let mut ip = vec![0u8; ihl * 4];
        ip[0] = 0x40 | ihl as u8;
        ip[2..4].copy_from_slice(&((ihl * 4 + l4_hlen + payload_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&r.u16().to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&r.u32().to_be_bytes());
        ip[16..20].copy_from_slice(&r.u32().to_be_bytes());
        for b in ip[20..].iter_mut() {
            *b = 1; // NOP options
        }
        f.extend_from_slice(&ip);
    }
    let l4 = f.len();
    let mut h = vec![0u8; l4_hlen];
    h[0..4].copy_from_slice(&r.u32().to_be_bytes());
    if udp {
        h[4..6].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    } else {
        h[4..8].copy_from_slice(&r.u32().to_be_bytes());
        h[8..12].copy_from_slice(&r.u32().to_be_bytes());
        h[12] = (doff as u8) << 4;
        h[13] = r.u8();
        h[14..16].copy_from_slice(&r.u16().to_be_bytes());
        for b in h[20..].iter_mut() {
            *b = 1;
        }
    }
    f.extend_from_slice(&h);
    let head = r.bytes(payload_len.min(256));
    f.extend_from_slice(head);
    f.extend((head.len()..payload_len).map(|i| (i * 31 + 7) as u8));
    let gso = match (udp, v6) {
        (true, _) => GSO_UDP_L4,
        (false, false) => GSO_TCPV4,
        (false, true) => GSO_TCPV6,
    };
    let hdr = VnetHdr {
        flags: if needs_csum { F_NEEDS_CSUM } else { 0 },
        gso_type: gso | if ecn { GSO_ECN } else { 0 },
        hdr_len: (l4 + l4_hlen) as u16,
        gso_size: mss,
        csum_start: l4 as u16,
        csum_offset: if udp { 6 } else { 16 },
    };
    (hdr, f)
}

/// Target `offload`: a raw header + frame, or a structured GSO frame; then the same through a
/// switch from an offload port to plain and offload ports.
pub fn check_offload(data: &[u8]) {
    let mut r = Reader::new(data);
    let sel = r.u8();
    let (hdr, frame, structured) = if sel & 1 == 0 {
        let raw = r.rest();
        let hdr = match VnetHdr::parse(raw) {
            Ok(h) => h,
            Err(_) => {
                assert!(raw.len() < VNET_HDR_LEN);
                return;
            }
        };
        (hdr, raw[VNET_HDR_LEN..].to_vec(), false)
    } else {
        let dst = if sel & 2 == 0 {
            [0xff; 6]
        } else {
            [2, 0, 0, 0, 0, 0x32]
        };
        let (h, f) = build_gso(&mut r, dst);
        (h, f, true)
    };
    let valid = hdr.validate(frame.len());
    let segs = finish_segments(&hdr, &frame);
    if valid.is_err() {
        assert!(segs.is_none(), "finish accepted a header validate refuses");
    }
    if structured {
        let (l3, _, _, l4, hlen) = gso_layout(&frame, hdr.gso()).expect("builder layout");
        let fits = hlen + hdr.gso_size as usize <= SEG_BUF;
        assert_eq!(hlen, hdr.hdr_len as usize);
        assert!(l3 < l4);
        match &segs {
            Some(s) => {
                assert!(fits, "segmented although hlen + mss exceeds the scratch");
                check_gso_segments(&hdr, &frame, s);
            }
            None => assert!(!fits, "a well-formed GSO frame was refused: {hdr:?}"),
        }
    } else if let Some(s) = &segs {
        if hdr.gso() != GSO_NONE {
            check_gso_segments(&hdr, &frame, s);
        }
    }

    // Through a switch: offload ingress, a plain port (MTU from the input), an offload port.
    let mtu = [1500, 9000, 65535, 68][(sel >> 2 & 3) as usize];
    let mut rig = Rig::new(
        Settings::default(),
        16,
        &[
            (PortFlags::default(), true, 1500),
            (PortFlags::default(), false, mtu),
            (PortFlags::default(), true, 1500),
        ],
    );
    let mut pkt = vec![0u8; VNET_HDR_LEN];
    hdr.write(&mut pkt);
    pkt.extend_from_slice(&frame);
    let bad_gso =
        |rig: &Rig| rig.ports[0].handle.counters.rx_dropped[RxDrop::BadGso.index()].load(Relaxed);
    let before = bad_gso(&rig);
    rig.frame(0, &pkt);
    // A GSO frame with a valid header and Ethernet header is dropped as bad_gso exactly when
    // the rules say so, once, at ingress. One that does not fit the receive buffer (header
    // included) is cut short by the read and dropped as oversized first (finding 5 of campaign
    // 6: a 65,612-byte USO frame).
    let checked = hdr.gso() != GSO_NONE
        && valid.is_ok()
        && EthernetFrame::new_checked(&frame[..]).is_ok()
        && pkt.len() < tapswitch::buf::RX_BUF;
    let want = u64::from(checked && gso_refused(&hdr, &frame));
    assert_eq!(bad_gso(&rig) - before, want, "bad_gso for {hdr:?}");
    rig.frame(1, &frame);
    rig.finish();
}

// ---------------------------------------------------------------------------------------------
// The switch rig: a Switch with MemPorts, and the per-frame invariants.

struct RigPort {
    handle: Arc<PortHandle>,
    mem: Arc<MemPort>,
    vnet: bool,
    mtu: u32,
    up: bool,
}

/// Counters of the whole switch at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snap {
    rx_frames: Vec<u64>,
    rx_dropped: Vec<u64>,
    tx_frames: Vec<u64>,
    tx_dropped: Vec<u64>,
    forwarded: u64,
    flooded: [u64; 3],
}

pub struct Rig {
    sw: Arc<Switch>,
    ports: Vec<RigPort>,
    limit: usize,
}

impl Rig {
    /// A switch with one port per `(flags, offload, mtu)`. A second uplink is added without
    /// the flag, as the API would refuse it.
    pub fn new(settings: Settings, limit: usize, specs: &[(PortFlags, bool, u32)]) -> Rig {
        let sw = Switch::new("fuzz", settings, limit);
        let mut ports = Vec::new();
        let mut have_uplink = false;
        for (i, &(flags, vnet, mtu)) in specs.iter().enumerate() {
            let mut mp = MemPort::new(mtu);
            if vnet {
                mp = mp.with_vnet_hdr();
            }
            let mem = Arc::new(mp);
            let flags = if have_uplink {
                flags.with(PortFlags::UPLINK, false)
            } else {
                flags
            };
            have_uplink |= flags.contains(PortFlags::UPLINK);
            let handle = sw
                .add_port(&format!("p{i}"), Box::new(mem.clone()), flags)
                .expect("add_port");
            ports.push(RigPort {
                handle,
                mem,
                vnet,
                mtu,
                up: true,
            });
        }
        Rig { sw, ports, limit }
    }

    fn snap(&self) -> Snap {
        let mut s = Snap {
            rx_frames: vec![],
            rx_dropped: vec![],
            tx_frames: vec![],
            tx_dropped: vec![],
            forwarded: self.sw.stats.forwarded.load(Relaxed),
            flooded: [0; 3],
        };
        for (i, k) in FloodKind::ALL.iter().enumerate() {
            s.flooded[i] = self.sw.stats.flooded(*k).load(Relaxed);
        }
        for p in &self.ports {
            let c = &p.handle.counters;
            s.rx_frames.push(c.rx_frames.load(Relaxed));
            s.rx_dropped.push(c.rx_dropped_total());
            s.tx_frames.push(c.tx_frames.load(Relaxed));
            s.tx_dropped.push(c.tx_dropped_total());
        }
        s
    }

    /// Changes a port's flags as the API does (a second uplink is refused).
    pub fn set_flags(&mut self, port: usize, flags: PortFlags) {
        let other_uplink = self
            .ports
            .iter()
            .enumerate()
            .any(|(i, p)| i != port && p.handle.flags.get().contains(PortFlags::UPLINK));
        let flags = if other_uplink {
            flags.with(PortFlags::UPLINK, false)
        } else {
            flags
        };
        self.ports[port].handle.flags.set(flags);
    }

    /// Takes a port's interface down or up (sends fail with EIO while down).
    pub fn set_up(&mut self, port: usize, up: bool) {
        self.ports[port].mem.set_up(up);
        self.ports[port].up = up;
    }

    /// Ages the table `ahead_ms` after the switch clock.
    pub fn age(&mut self, ahead_ms: u64) {
        let s = self.sw.settings.load();
        let now = Timestamp(self.sw.now().millis() + ahead_ms);
        self.sw.fdb.age_out(now, s.ageing_ms);
        self.check_table();
    }

    fn check_table(&self) {
        let fdb = &self.sw.fdb;
        assert!(
            fdb.learned_count() <= self.limit,
            "{} learned entries, limit {}",
            fdb.learned_count(),
            self.limit
        );
        let snap = fdb.snapshot(self.sw.now());
        let learned = snap.iter().filter(|e| e.kind == EntryKind::Learned).count();
        assert_eq!(learned, fdb.learned_count(), "learned counter vs table");
        for e in &snap {
            assert!(
                self.ports.iter().any(|p| p.handle.id == e.port),
                "entry on unknown port {:?}",
                e
            );
            assert!(
                e.mac.is_valid_source(),
                "learned a group or zero MAC {:?}",
                e
            );
        }
    }

    /// What port `p` must send if it is one of the frame's recipients.
    fn expected_out(&self, p: &RigPort, in_vnet: bool, pkt: &[u8]) -> Vec<Vec<u8>> {
        if !p.up {
            return vec![];
        }
        let (hdr, frame) = if in_vnet {
            (VnetHdr::parse(pkt).expect("checked"), &pkt[VNET_HDR_LEN..])
        } else {
            (VnetHdr::default(), pkt)
        };
        let f = EthernetFrame::new_checked(frame).expect("checked");
        if p.vnet {
            if hdr.gso() == GSO_NONE && exceeds_mtu(&f, p.mtu) {
                return vec![];
            }
            let mut out = vec![0u8; VNET_HDR_LEN];
            hdr.write(&mut out);
            out.extend_from_slice(frame);
            return vec![out];
        }
        if hdr.is_plain() {
            if exceeds_mtu(&f, p.mtu) {
                return vec![];
            }
            return vec![frame.to_vec()];
        }
        finish_segments(&hdr, frame)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| match EthernetFrame::new_checked(&s[..]) {
                Ok(f) => !exceeds_mtu(&f, p.mtu),
                Err(_) => false,
            })
            .collect()
    }

    /// Injects one frame (with its virtio_net_hdr on an offload port), pumps, and checks every
    /// invariant of the dataplane for it.
    pub fn frame(&mut self, ingress: usize, pkt: &[u8]) {
        let before = self.snap();
        let in_flags = self.ports[ingress].handle.flags.get();
        let in_vnet = self.ports[ingress].vnet;
        let mode = self.sw.settings.load().mode;
        let flags: Vec<PortFlags> = self.ports.iter().map(|p| p.handle.flags.get()).collect();
        self.ports[ingress].mem.inject(pkt);
        assert_eq!(self.sw.pump(), 1, "one injected frame, one frame handled");
        let after = self.snap();
        let outs: Vec<Vec<Vec<u8>>> = self.ports.iter().map(|p| p.mem.take_sent()).collect();
        let n = self.ports.len();
        let d = |a: &[u64], b: &[u64], i: usize| a[i] - b[i];

        // Counters: one rx, exactly one verdict.
        for i in 0..n {
            let drx = d(&after.rx_frames, &before.rx_frames, i);
            assert_eq!(drx, u64::from(i == ingress), "rx_frames of port {i}");
            if i != ingress {
                assert_eq!(d(&after.rx_dropped, &before.rx_dropped, i), 0);
            }
        }
        let dfwd = after.forwarded - before.forwarded;
        let dflood: Vec<u64> = (0..3)
            .map(|k| after.flooded[k] - before.flooded[k])
            .collect();
        let ddrop = d(&after.rx_dropped, &before.rx_dropped, ingress);
        assert_eq!(
            dfwd + dflood.iter().sum::<u64>() + ddrop,
            1,
            "verdict counters: forwarded {dfwd}, flooded {dflood:?}, dropped {ddrop}"
        );

        // Recipients: every transmit moves a tx counter of its port.
        let recipients: Vec<usize> = (0..n)
            .filter(|&i| {
                d(&after.tx_frames, &before.tx_frames, i)
                    + d(&after.tx_dropped, &before.tx_dropped, i)
                    > 0
            })
            .collect();
        for (i, o) in outs.iter().enumerate() {
            if !recipients.contains(&i) {
                assert!(o.is_empty(), "port {i} sent without counting");
            }
        }
        if ddrop == 1 {
            assert!(
                recipients.is_empty(),
                "a dropped frame reached {recipients:?}"
            );
        }
        if dfwd == 1 {
            assert!(recipients.len() <= 1, "forwarded to {recipients:?}");
        }
        if ingress < n && recipients.contains(&ingress) {
            assert!(
                in_flags.contains(PortFlags::HAIRPIN),
                "left through its ingress port {ingress} without hairpin"
            );
        }
        if let Some(k) = dflood.iter().position(|x| *x == 1) {
            let kind = FloodKind::ALL[k];
            let eligible: Vec<usize> = (0..n)
                .filter(|&i| {
                    flood_eligible(
                        mode,
                        self.ports[ingress].handle.id,
                        in_flags,
                        self.ports[i].handle.id,
                        flags[i],
                        kind,
                        None,
                    )
                })
                .collect();
            for r in &recipients {
                assert!(
                    eligible.contains(r),
                    "{kind:?} flood reached port {r}, not eligible ({eligible:?})"
                );
            }
            let missed = eligible.iter().filter(|e| !recipients.contains(e)).count();
            let allowed = if mode == Mode::Veb { 0 } else { 1 };
            assert!(
                missed <= allowed,
                "{kind:?} flood missed {missed} eligible ports: got {recipients:?} of {eligible:?}"
            );
        }
        if dfwd == 1 && mode == Mode::Veb {
            let f = EthernetFrame::new_checked(if in_vnet { &pkt[VNET_HDR_LEN..] } else { pkt })
                .expect("forwarded frames are valid");
            let at = self.sw.fdb.port_of(&FdbKey::new(f.dst(), 0));
            for r in &recipients {
                // A send that fails with EIO takes the port down, which flushes its entries.
                if self.ports[*r].up {
                    assert_eq!(at, Some(self.ports[*r].handle.id), "forwarded off-table");
                }
                let both = in_flags.contains(PortFlags::ISOLATED)
                    && flags[*r].contains(PortFlags::ISOLATED);
                assert!(!both, "forwarded between isolated ports");
            }
        }
        // Contents: byte for byte what the egress kind calls for; one copy per port.
        for &r in &recipients {
            let want = self.expected_out(&self.ports[r], in_vnet, pkt);
            assert!(
                outs[r] == want,
                "port {r} (offload {}, mtu {}) sent {} frames, expected {}",
                self.ports[r].vnet,
                self.ports[r].mtu,
                outs[r].len(),
                want.len()
            );
            assert_eq!(
                d(&after.tx_frames, &before.tx_frames, r),
                outs[r].len() as u64
            );
        }
        self.check_table();
    }

    /// The switch-wide balance: rx_frames == forwarded + flooded + rx_dropped.
    pub fn finish(&self) {
        let s = self.snap();
        let rx: u64 = s.rx_frames.iter().sum();
        let dropped: u64 = s.rx_dropped.iter().sum();
        assert_eq!(
            rx,
            s.forwarded + s.flooded.iter().sum::<u64>() + dropped,
            "counters do not balance: {s:?}"
        );
        self.check_table();
    }
}

fn mac(r: &mut Reader<'_>) -> [u8; 6] {
    let sel = r.u8();
    let x = sel >> 3;
    match sel & 7 {
        0..=3 => [2, 0, 0, 0, 0, 1 + x % 20],
        4 => [0xff; 6],
        5 => [0x01, 0x00, 0x5e, 0, 0, x],
        6 => [0x01, 0x80, 0xc2, 0, 0, x],
        _ => {
            let b = r.bytes(6);
            let mut m = [0u8; 6];
            m[..b.len()].copy_from_slice(b);
            m
        }
    }
}

/// Target `frame_decide`: a switch configuration, then a sequence of frames and events.
pub fn check_frame_decide(data: &[u8]) {
    let mut r = Reader::new(data);
    let nports = 2 + (r.u8() % 5) as usize;
    let m = r.u8();
    let settings = Settings {
        mode: [Mode::Veb, Mode::Vepa, Mode::VepaPrivate][(m % 3) as usize],
        ageing_ms: if m & 0x04 != 0 { 0 } else { 300_000 },
        vepa_flood_unknown: m & 0x08 != 0,
        group_fwd_mask: r.u16(),
        // VLAN filtering has its own target (`vlan_frame`) with its own model
        ..Settings::default()
    };
    let limit = 1 + (r.u8() % 16) as usize;
    let specs: Vec<(PortFlags, bool, u32)> = (0..nports)
        .map(|_| {
            let flags = PortFlags(r.u8() as u32);
            let o = r.u8();
            let mtu = [1500, 9000, 68, 65535][(o >> 1 & 3) as usize];
            (flags, o & 1 != 0, mtu)
        })
        .collect();
    let mut rig = Rig::new(settings, limit, &specs);
    let mut steps = 0;
    while !r.is_empty() && steps < 256 {
        steps += 1;
        let op = r.u8();
        match op & 7 {
            0..=4 => {
                let ingress = (r.u8() as usize) % nports;
                let mut pkt = Vec::new();
                if op & 0x08 != 0 {
                    // Raw bytes: runts, truncated tags, anything.
                    let len = r.u8() as usize;
                    pkt.extend_from_slice(r.bytes(len));
                } else {
                    let dst = mac(&mut r);
                    let src = mac(&mut r);
                    if specs[ingress].1 && op & 0x10 != 0 {
                        // An offload port's GSO or partial-checksum frame.
                        let (h, f) = build_gso(&mut r, dst);
                        let mut hb = [0u8; VNET_HDR_LEN];
                        h.write(&mut hb);
                        pkt.extend_from_slice(&hb);
                        pkt.extend_from_slice(&f);
                        pkt[VNET_HDR_LEN + 6..VNET_HDR_LEN + 12].copy_from_slice(&src);
                    } else {
                        if specs[ingress].1 {
                            let h = if op & 0x20 != 0 { r.bytes(10) } else { &[] };
                            pkt.extend_from_slice(h);
                            pkt.resize(VNET_HDR_LEN, 0);
                        }
                        pkt.extend_from_slice(&dst);
                        pkt.extend_from_slice(&src);
                        let et: u16 = match r.u8() % 8 {
                            0 => 0x0800,
                            1 => 0x0806,
                            2 => 0x86dd,
                            3 => 0x8100,
                            4 => 0x88a8,
                            5 => 0x88cc,
                            6 => 0x8809,
                            _ => r.u16(),
                        };
                        pkt.extend_from_slice(&et.to_be_bytes());
                        let len = if op & 0x40 != 0 {
                            r.u16() as usize % 10_000
                        } else {
                            r.u8() as usize % 100
                        };
                        let body = r.bytes(len.min(64));
                        pkt.extend_from_slice(body);
                        pkt.resize(pkt.len() + len - body.len(), 0);
                    }
                }
                rig.frame(ingress, &pkt);
            }
            5 => {
                let p = (r.u8() as usize) % nports;
                let f = PortFlags(r.u8() as u32);
                rig.set_flags(p, f);
            }
            6 => {
                let p = (r.u8() as usize) % nports;
                rig.set_up(p, op & 0x08 == 0);
            }
            _ => rig.age(r.u8() as u64 * 10_000),
        }
    }
    rig.finish();
}

// ---------------------------------------------------------------------------------------------
// Stream decoder.

/// What a stream decodes to, by a direct reading of the framing: the frames, then either the
/// error at the first bad length or the number of bytes left over.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub frames: Vec<Vec<u8>>,
    pub error: Option<u32>,
    pub left: usize,
}

fn model_decode(stream: &[u8]) -> Decoded {
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        let rest = &stream[at..];
        if rest.len() < 4 {
            return Decoded {
                frames,
                error: None,
                left: rest.len(),
            };
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if len == 0 || len as usize > MAX_FRAME {
            return Decoded {
                frames,
                error: Some(len),
                left: 0,
            };
        }
        let total = 4 + len as usize;
        if rest.len() < total {
            return Decoded {
                frames,
                error: None,
                left: rest.len(),
            };
        }
        frames.push(rest[4..total].to_vec());
        at += total;
    }
}

/// Feeds `chunks` to a decoder the way `StreamConn::recv` reads: no more than `spare()` at a
/// time, taking every complete frame after each read; stops at the first error.
fn decode_chunks<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Decoded {
    let mut d = StreamDecoder::default();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for mut chunk in chunks {
        while !chunk.is_empty() {
            let spare = d.spare();
            assert!(!spare.is_empty(), "no room to read");
            let n = spare.len().min(chunk.len());
            spare[..n].copy_from_slice(&chunk[..n]);
            d.filled(n);
            chunk = &chunk[n..];
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        assert!(
                            (1..=MAX_FRAME).contains(&f.len()),
                            "frame of {} bytes",
                            f.len()
                        );
                        frames.push(f.to_vec());
                    }
                    Ok(None) => {
                        // Room for the rest of any frame that can still come.
                        let buffered = d.buffered();
                        assert!(
                            d.spare().len() + buffered >= 4 + MAX_FRAME,
                            "decoder cannot take a full frame: {buffered} buffered"
                        );
                        break;
                    }
                    Err(e) => {
                        return Decoded {
                            frames,
                            error: Some(e.0),
                            left: 0,
                        };
                    }
                }
            }
        }
    }
    let left = d.buffered();
    Decoded {
        frames,
        error: None,
        left,
    }
}

/// Target `stream_decoder`: records of literal bytes or long fills (so 64 KiB frames are cheap)
/// make one byte stream; record boundaries are the fuzzer's split points.
pub fn check_stream_decoder(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut stream = Vec::new();
    let mut cuts = Vec::new();
    let mut records = 0;
    while !r.is_empty() && records < 64 {
        records += 1;
        let tag = r.u8();
        match tag & 3 {
            0 | 1 => {
                let n = r.u8() as usize;
                stream.extend_from_slice(r.bytes(n));
            }
            2 => {
                // A well-formed length header, for cheap valid frames.
                let len = (r.u16() as u32 % MAX_FRAME as u32) + 1;
                stream.extend_from_slice(&len.to_be_bytes());
            }
            _ => {
                let n = r.u16() as usize + if tag & 4 != 0 { 65536 } else { 0 };
                let v = r.u8();
                stream.resize(stream.len() + n, v);
            }
        }
        if tag & 0x80 == 0 {
            cuts.push(stream.len());
        }
    }
    let want = model_decode(&stream);
    let whole = decode_chunks(std::iter::once(&stream[..]));
    assert_eq!(whole, want, "one chunk vs the framing");
    let mut prev = 0;
    let mut pieces: Vec<&[u8]> = Vec::new();
    for c in cuts.into_iter().chain(std::iter::once(stream.len())) {
        if c > prev {
            pieces.push(&stream[prev..c]);
            prev = c;
        }
    }
    let split = decode_chunks(pieces.iter().copied());
    assert_eq!(split, want, "split chunks vs the framing");
    // Byte by byte, for short streams.
    if stream.len() <= 4096 {
        let bytes = decode_chunks(stream.chunks(1));
        assert_eq!(bytes, want, "one byte at a time vs the framing");
    }
}

/// Target `vlan_frame`: a VLAN-filtering switch (802.1Q or 802.1ad) whose ports get access,
/// trunk, native and PVID-less configurations from the input, then frames with any tags
/// (and GSO headers on offload ports). Checked: nothing panics; counters balance per frame;
/// no frame reaches a port outside its VLAN; every copy carries the tag its egress port calls
/// for (none when the VLAN is egress untagged there, the bridge's TPID and the frame's VID
/// otherwise); virtio_net_hdrs sent to offload ports describe their frames.
pub fn check_vlan_frame(data: &[u8]) {
    use tapswitch::vlan::{self, PortVlans, Protocol, VlanSet};
    let mut r = Reader::new(data);
    let nports = 2 + (r.u8() % 4) as usize;
    let m = r.u8();
    let proto = if m & 1 != 0 {
        Protocol::Dot1ad
    } else {
        Protocol::Dot1Q
    };
    let settings = Settings {
        vlan_filtering: true,
        vlan_protocol: proto,
        ..Settings::default()
    };
    let sw = Switch::new("fuzz-vlan", settings, 64);
    let vids = [1u16, 10, 20, 4094];
    let mut ports = Vec::new();
    for i in 0..nports {
        let c = r.u8();
        let vnet = c & 0x80 != 0;
        let mut mp = MemPort::new(if c & 0x40 != 0 { 9000 } else { 1500 });
        if vnet {
            mp = mp.with_vnet_hdr();
        }
        let mem = Arc::new(mp);
        let h = sw
            .add_port(
                &format!("v{i}"),
                Box::new(mem.clone()),
                PortFlags::default(),
            )
            .expect("add_port");
        let a = vids[(c & 3) as usize];
        let bits = (c >> 2) & 0xf;
        let set = VlanSet::from_vids(
            vids.iter()
                .enumerate()
                .filter(|(k, _)| bits & (1 << k) != 0)
                .map(|(_, v)| *v),
        )
        .unwrap_or_default();
        let cfg = match (c >> 4) & 3 {
            0 => PortVlans::access(a).unwrap_or_default(),
            1 => PortVlans::trunk(&set, None).unwrap_or_default(),
            2 => PortVlans::trunk(&set, Some(a)).unwrap_or_default(),
            _ => PortVlans::none(),
        };
        sw.update_port_vlans(&h, |p| *p = cfg);
        ports.push((h, mem, vnet));
    }
    let tpids = [0x8100u16, 0x88a8, 0x0800, 0x9100];
    let mut steps = 0;
    while !r.is_empty() && steps < 64 {
        steps += 1;
        let op = r.u8();
        let ingress = (op as usize) % nports;
        let mut pkt = Vec::new();
        let in_vnet = ports[ingress].2;
        if op & 0x80 != 0 && in_vnet {
            let dst = mac(&mut r);
            let (hdr, f) = build_gso(&mut r, dst);
            let mut v = vec![0u8; VNET_HDR_LEN];
            hdr.write(&mut v);
            v.extend_from_slice(&f);
            // maybe wrap the GSO frame in a tag
            if op & 0x40 != 0 {
                let tci = vids[(r.u8() & 3) as usize];
                let mut t = v[..VNET_HDR_LEN + 12].to_vec();
                t.extend_from_slice(&proto.tpid().to_be_bytes());
                t.extend_from_slice(&tci.to_be_bytes());
                t.extend_from_slice(&v[VNET_HDR_LEN + 12..]);
                let mut h2 = hdr;
                if h2.flags & F_NEEDS_CSUM != 0 {
                    h2.csum_start += 4;
                }
                if h2.hdr_len != 0 {
                    h2.hdr_len += 4;
                }
                h2.write(&mut t);
                v = t;
            }
            pkt = v;
        } else {
            if in_vnet {
                pkt.extend_from_slice(&[0u8; VNET_HDR_LEN]);
            }
            pkt.extend_from_slice(&mac(&mut r));
            pkt.extend_from_slice(&[2, 0, 0, 0, 0, 1 + (op & 7)]);
            for _ in 0..(op >> 4) & 3 {
                pkt.extend_from_slice(&tpids[(r.u8() & 3) as usize].to_be_bytes());
                pkt.extend_from_slice(&r.u16().to_be_bytes());
            }
            pkt.extend_from_slice(&[0x88, 0xb5]);
            let n = r.u8() as usize;
            pkt.extend_from_slice(r.bytes(n));
        }
        let frame_at = if in_vnet { VNET_HDR_LEN } else { 0 };
        let class = vlan::classify(&pkt[frame_at..], proto, &ports[ingress].0.vlans());
        let c = &ports[ingress].0.counters;
        let rx0 = c.rx_frames.load(Relaxed);
        let v0 = c.rx_forwarded.load(Relaxed) + c.rx_flooded.load(Relaxed) + c.rx_dropped_total();
        ports[ingress].1.inject(&pkt);
        sw.pump();
        assert_eq!(c.rx_frames.load(Relaxed), rx0 + 1);
        let v1 = c.rx_forwarded.load(Relaxed) + c.rx_flooded.load(Relaxed) + c.rx_dropped_total();
        assert_eq!(v1, v0 + 1, "one verdict per frame");
        for (i, (h, mem, vnet)) in ports.iter().enumerate() {
            let sent = mem.take_sent();
            if sent.is_empty() {
                continue;
            }
            let cl = class
                .unwrap_or_else(|e| panic!("a frame dropped at ingress ({e}) reached port {i}"));
            let pv = h.vlans();
            assert!(
                pv.is_member(cl.vid),
                "port {i} is not in VLAN {} but got a frame",
                cl.vid
            );
            for s in &sent {
                let f = if *vnet {
                    let hdr = VnetHdr::parse(s).expect("a header");
                    let f = &s[VNET_HDR_LEN..];
                    assert!(hdr.validate(f.len()).is_ok(), "bad header sent to port {i}");
                    f
                } else {
                    &s[..]
                };
                let et = u16::from_be_bytes([f[12], f[13]]);
                let inf = &pkt[frame_at..];
                if pv.is_untagged(cl.vid) {
                    // untagged egress: the outer tag of the bridge's TPID (if any) is gone;
                    // whatever followed it (an inner tag included) comes next
                    let next = if cl.tag == vlan::TagState::Untagged {
                        12
                    } else {
                        16
                    };
                    assert_eq!(
                        &f[12..14],
                        &inf[next..next + 2],
                        "port {i} wants VLAN {} untagged",
                        cl.vid
                    );
                } else {
                    assert_eq!(et, proto.tpid(), "port {i} wants VLAN {} tagged", cl.vid);
                    assert_eq!(u16::from_be_bytes([f[14], f[15]]) & 0xfff, cl.vid);
                }
            }
        }
    }
    let mut rx = 0;
    let mut verdicts = 0;
    for (h, _, _) in &ports {
        let c = &h.counters;
        rx += c.rx_frames.load(Relaxed);
        verdicts +=
            c.rx_forwarded.load(Relaxed) + c.rx_flooded.load(Relaxed) + c.rx_dropped_total();
    }
    assert_eq!(rx, verdicts);
}

/// Target `bpdu`: the BPDU decoder on arbitrary bytes, then the same bytes (as a frame and as
/// an LLC payload) fed to a two-port RSTP bridge. Nothing may panic; a frame that decodes
/// re-encodes to the same kind.
pub fn check_bpdu(data: &[u8]) {
    use tapswitch::stp::{bpdu, BridgeConfig, PortConfig, Stp};
    use tapswitch::types::PortId;
    use tapswitch::wire::MacAddr;
    let _ = bpdu::bpdu_payload(data);
    let _ = tapswitch::stp::Bpdu::decode(data);
    let mut stp = Stp::new(BridgeConfig::new(MacAddr([2, 0, 0, 0, 0, 9])), Timestamp(0))
        .expect("default config");
    let (a, b) = (PortId(1), PortId(2));
    stp.add_port(a, 1, PortConfig::default(), None, Timestamp(0))
        .expect("port");
    stp.add_port(b, 2, PortConfig::default(), None, Timestamp(0))
        .expect("port");
    let mut now = 0;
    for (i, chunk) in data.chunks(40).enumerate() {
        now += 700;
        let _ = stp.receive(if i % 2 == 0 { a } else { b }, chunk, Timestamp(now));
        stp.tick(Timestamp(now));
        let mut out = Vec::new();
        stp.take_actions(&mut out);
    }
    let _ = stp.status();
}

// ---------------------------------------------------------------------------------------------
// VXLAN decapsulation.

/// What a VTEP sent, for the `vxlan_decap` target (nothing leaves the process).
#[derive(Default)]
struct VxWire(std::sync::Mutex<Vec<(std::net::IpAddr, Vec<u8>)>>);

struct VxEnd(Arc<VxWire>);

impl tapswitch::vxlan::vtep::Underlay for VxEnd {
    fn send(
        &self,
        to: std::net::IpAddr,
        head: &[u8; tapswitch::vxlan::wire::ENCAP_HLEN],
        frame: &[u8],
    ) -> std::io::Result<()> {
        let mut p = head.to_vec();
        p.extend_from_slice(frame);
        self.0 .0.lock().unwrap().push((to, p));
        Ok(())
    }
    fn path_mtu(&self, _to: Option<std::net::IpAddr>) -> Option<u32> {
        Some(1500)
    }
}

/// Target `vxlan_decap`: a switch with two hosts and two `vxlan` ports on one socket (VNIs 100
/// and 200, learning on or off, one with `accept=198.19.0.0/16`), then up to 128 steps: UDP
/// payloads (raw bytes, or a header with fuzzed flags and VNI around a header-built inner frame)
/// from a flood-list remote, an `accept=` sender or a stranger; frames from the hosts; flood
/// list and table changes; ageing. After each packet: nothing panicked; a packet that is not a
/// well-formed VXLAN packet for a served VNI from an admitted sender reaches no port and is
/// counted exactly once, by the hub or the port, and teaches nothing; an admitted one reaches
/// the switch as its port's received frame with its bytes unchanged (a host gets exactly the
/// inner frame); a stranger never becomes a remote; the VTEP tables stay within their limits.
pub fn check_vxlan_decap(data: &[u8]) {
    use std::net::IpAddr;
    use tapswitch::port::vxlan::VxlanPort;
    use tapswitch::vxlan::spec::{VxlanSpec, MAX_REMOTES};
    use tapswitch::vxlan::vtep::Vtep;
    use tapswitch::vxlan::wire;

    let mut r = Reader::new(data);
    let cfg = r.u8();
    let local: IpAddr = "198.18.60.1".parse().unwrap();
    let remotes: [IpAddr; 2] = [
        "198.18.60.2".parse().unwrap(),
        "198.18.60.3".parse().unwrap(),
    ];
    let sw = Switch::new("fuzz", Settings::default(), 64);
    let hosts: Vec<(Arc<MemPort>, Arc<PortHandle>)> = (0..2)
        .map(|i| {
            let m = Arc::new(MemPort::new(9000));
            let h = sw
                .add_port(&format!("h{i}"), Box::new(m.clone()), PortFlags::default())
                .unwrap();
            (m, h)
        })
        .collect();
    let wire_out = Arc::new(VxWire::default());
    let mut vx = Vec::new();
    for (i, vni) in [100u32, 200].into_iter().enumerate() {
        let mut s = VxlanSpec::new(vni);
        s.apply("local=198.18.60.1").unwrap();
        s.apply("remote=198.18.60.2").unwrap();
        if i == 0 || cfg & 1 != 0 {
            s.apply("remote=198.18.60.3").unwrap();
        }
        if cfg & (2 << i) != 0 {
            s.apply("no-learning").unwrap();
        }
        if i == 1 {
            s.apply("accept=198.19.0.0/16").unwrap();
        }
        s.check().unwrap();
        let vtep = Arc::new(Vtep::new(s, 1450));
        vtep.set_max_learned(1 + (cfg >> 4) as usize);
        let port = VxlanPort::new(vtep.clone(), VxEnd(wire_out.clone()), None);
        let h = sw
            .add_vxlan_port(
                &format!("vx{vni}"),
                vtep.clone(),
                Box::new(port),
                PortFlags::default(),
                false,
            )
            .unwrap();
        vx.push((vni, vtep, h));
    }
    let mut now_ms = 0u64;
    let mut steps = 0;
    while !r.is_empty() && steps < 128 {
        steps += 1;
        let op = r.u8();
        match op % 8 {
            0..=4 => {
                // One UDP payload to the hub.
                let src: IpAddr = match r.u8() % 4 {
                    0 | 1 => remotes[(op >> 3) as usize % 2],
                    2 => IpAddr::V4([198, 19, r.u8(), r.u8()].into()),
                    _ => IpAddr::V4([203, 0, 113, r.u8()].into()),
                };
                let payload = if op & 0x80 != 0 {
                    let n = r.u8() as usize;
                    r.bytes(n).to_vec()
                } else {
                    let mut p = vec![0u8; 8];
                    let vni = match r.u8() % 4 {
                        0 => 200,
                        3 => r.u32() & 0x00ff_ffff,
                        _ => 100,
                    };
                    wire::write_header(vni, &mut p);
                    if op & 0x40 != 0 {
                        // fuzzed flags and reserved bytes
                        let at = (r.u8() % 8) as usize;
                        if at != 4 && at != 5 && at != 6 {
                            p[at] = r.u8();
                        }
                    }
                    let dst = mac(&mut r);
                    let src_mac = mac(&mut r);
                    p.extend_from_slice(&dst);
                    p.extend_from_slice(&src_mac);
                    p.extend_from_slice(&r.u16().to_be_bytes());
                    let n = (r.u8() % 80) as usize;
                    let body = r.bytes(n);
                    p.extend_from_slice(body);
                    p
                };
                vx_packet(&sw, &hosts, &vx, &wire_out, local, src, &payload);
            }
            5 => {
                // A host sends a frame: it may go into the tunnel.
                let i = (r.u8() % 2) as usize;
                let dst = mac(&mut r);
                let src_mac = mac(&mut r);
                let mut f = dst.to_vec();
                f.extend_from_slice(&src_mac);
                f.extend_from_slice(&[0x08, 0x00]);
                f.extend_from_slice(&[0u8; 46]);
                hosts[i].0.inject(&f);
                sw.pump();
                for (_, p) in wire_out.0.lock().unwrap().drain(..) {
                    assert_eq!(&p[16..], &f[..], "encapsulated frame changed");
                    assert!(wire::parse(&p[8..]).is_ok(), "we sent a bad VXLAN header");
                }
                for (m, _) in &hosts {
                    m.take_sent();
                }
            }
            6 => {
                // Flood list and table changes, as the API makes them.
                let (_, vtep, _) = &vx[(r.u8() % 2) as usize];
                let ipv4 = IpAddr::V4([198, 18, 60, 2 + r.u8() % 4].into());
                let m = tapswitch::wire::MacAddr(mac(&mut r));
                let t = Timestamp::from_millis(now_ms);
                let _ = match r.u8() % 4 {
                    0 => vtep.append(tapswitch::wire::MacAddr::ZERO, ipv4).map(|_| 1),
                    1 => Ok(vtep.remove(m, if op & 0x10 != 0 { Some(ipv4) } else { None })),
                    2 => vtep
                        .insert_user(m, ipv4, EntryKind::Static, op & 0x20 != 0, t)
                        .map(|_| 1),
                    _ => vtep
                        .insert_user(m, ipv4, EntryKind::ExternLearn, true, t)
                        .map(|_| 1),
                };
            }
            _ => {
                now_ms += r.u8() as u64 * 10_000;
                for (_, vtep, _) in &vx {
                    vtep.age_out(Timestamp::from_millis(now_ms), 300_000);
                }
            }
        }
        for (_, vtep, _) in &vx {
            assert!(
                vtep.learned_count() <= 1 + (cfg >> 4) as usize,
                "learned limit"
            );
            assert!(vtep.remotes().len() <= MAX_REMOTES);
            // every entry points to a remote of the flood list, one the API named, or one
            // `accept=` admits: never to a stranger
            for rec in vtep.snapshot(Timestamp::from_millis(now_ms)) {
                let admitted = rec.dst.to_string().starts_with("198.18.60.")
                    || vtep.spec.accept.iter().any(|c| c.contains(rec.dst));
                assert!(admitted, "an entry points to a stranger: {rec:?}");
            }
        }
    }
}

/// Hands one UDP payload to the hub and checks where it went.
fn vx_packet(
    sw: &Arc<Switch>,
    hosts: &[(Arc<MemPort>, Arc<PortHandle>)],
    vx: &[(u32, Arc<tapswitch::vxlan::vtep::Vtep>, Arc<PortHandle>)],
    wire_out: &VxWire,
    local: std::net::IpAddr,
    src: std::net::IpAddr,
    payload: &[u8],
) {
    use tapswitch::vxlan::vtep::VxlanDrop;
    let hub = sw.vxlan_hubs()[0].clone();
    let drops = |v: &tapswitch::vxlan::vtep::Vtep| -> u64 {
        VxlanDrop::ALL
            .iter()
            .map(|r| v.stats.rx_dropped.get(*r))
            .sum()
    };
    let hub_before = hub.dropped.get(VxlanDrop::Short) + hub.dropped.get(VxlanDrop::UnknownVni);
    let before: Vec<(u64, u64, usize)> = vx
        .iter()
        .map(|(_, v, h)| {
            (
                drops(v),
                h.counters.rx_frames.load(Relaxed),
                v.remotes().len(),
            )
        })
        .collect();
    let known_before: Vec<bool> = vx
        .iter()
        .map(|(_, v, _)| v.remotes().get(&src).is_some())
        .collect();
    sw.vxlan_deliver(local, 4789, src, payload);
    sw.pump();
    let hub_after = hub.dropped.get(VxlanDrop::Short) + hub.dropped.get(VxlanDrop::UnknownVni);
    let after: Vec<(u64, u64, usize)> = vx
        .iter()
        .map(|(_, v, h)| {
            (
                drops(v),
                h.counters.rx_frames.load(Relaxed),
                v.remotes().len(),
            )
        })
        .collect();
    // Which port should have it, as RFC 7348 and Linux say.
    let parsed = tapswitch::vxlan::wire::parse(payload);
    let vni =
        (payload.len() >= 8).then(|| u32::from_be_bytes([0, payload[4], payload[5], payload[6]]));
    let port = vni.and_then(|v| vx.iter().position(|(n, _, _)| *n == v));
    let counted_by_hub = hub_after - hub_before;
    let counted_by_ports: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| (a.0 - b.0) + (a.1 - b.1))
        .sum();
    assert_eq!(
        counted_by_hub + counted_by_ports,
        1,
        "a packet must be counted exactly once (hub {counted_by_hub}, ports {counted_by_ports})"
    );
    match port {
        None => assert_eq!(counted_by_hub, 1, "short or unknown VNI: the hub counts it"),
        Some(i) => {
            let (_, v, _) = &vx[i];
            let admitted = known_before[i] || v.spec.accept.iter().any(|c| c.contains(src));
            let reached = after[i].1 - before[i].1;
            if reached == 1 {
                let (_, inner) = parsed.expect("a bad VXLAN header reached the switch");
                assert!(admitted, "a stranger's packet reached the switch");
                // a host that got a frame got exactly the inner frame, and so did the other
                // VNI's remotes if the switch flooded it there (its ports are bridged)
                // (completed if its sender left the TCP/UDP checksum partial: the hosts and
                // the tunnel have no offloads)
                let want = decapsulated_for_plain_port(inner);
                for (m, _) in hosts {
                    for f in m.take_sent() {
                        assert_eq!(f, want, "inner frame changed on its way");
                    }
                }
                for (_, p) in wire_out.0.lock().unwrap().drain(..) {
                    assert_eq!(&p[16..], &want[..], "inner frame changed on its way out");
                }
            } else {
                for (m, _) in hosts {
                    assert!(m.take_sent().is_empty(), "a dropped packet reached a host");
                }
                assert!(
                    wire_out.0.lock().unwrap().is_empty(),
                    "a dropped packet went out"
                );
                if !admitted {
                    assert!(
                        v.remotes().get(&src).is_none(),
                        "a stranger became a remote"
                    );
                    assert!(after[i].2 <= before[i].2, "a stranger added a remote");
                }
            }
            for j in (0..vx.len()).filter(|j| *j != i) {
                assert_eq!(after[j], before[j], "another VNI's port counted it");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// port_spec: the `--port` / API / config spec grammar
// ---------------------------------------------------------------------------------------------

/// Words a structured spec is built from (keys with and without values, flags, kinds), so the
/// fuzzer reaches deep into the grammar instead of failing at the first word.
const SPEC_WORDS: &[&str] = &[
    "access=",
    "trunk=",
    "native=",
    "vlans=",
    "untagged=",
    "pvid=",
    "queues=",
    "stp-cost=",
    "stp-priority=",
    "p2p=",
    "edge",
    "no-edge",
    "auto-edge",
    "no-auto-edge",
    "bpdu-guard",
    "root-guard",
    "storm-broadcast=",
    "storm-multicast=",
    "storm-unknown-unicast=",
    "mtu=",
    "mode=",
    "owner=",
    "max-conns=",
    "max-learned=",
    "offload=",
    "hairpin",
    "isolated",
    "locked",
    "uplink",
    "no-learning",
    "no-flood",
    "local=",
    "remote=",
    "dstport=",
    "ttl=",
    "tos=",
    "srcport=",
    "accept=",
    "no-learning",
    "learning",
];
const SPEC_VALUES: &[&str] = &[
    "0",
    "1",
    "10",
    "4094",
    "4095",
    "65535",
    "65536",
    "-1",
    "1-10",
    "10,20",
    "5;6",
    "on",
    "off",
    "auto",
    "yes",
    "no",
    "0o660",
    "0777",
    "1000:1000",
    "x",
    "",
    "198.18.0.1",
    "::1",
    "fe80::1",
    "18446744073709551616",
    "1-4094",
    "200000000",
    "240",
    "9000",
    "67",
];
const SPEC_HEADS: &[&str] = &[
    "tsw0",
    "a=tap:tsw1",
    "p=packet:eth0",
    "s=stream:/tmp/s.sock",
    "dgram:/run/d.sock",
    "vhost:/x/v.sock",
    "vxlan:100",
    "v=vxlan:16777215",
    "vxlan:16777216",
    "q=tap:",
    "=tsw0",
    "stream:rel.sock",
    "x=unknown:y",
    "a-very-long-interface-name",
];

/// A port spec, raw or built from the words above, through `parse_spec`: no panic; the same
/// text parses the same way twice; an accepted spec is one the switch can act on (a name, an
/// interface name Linux accepts for TAP/packet ports, an absolute path for socket ports,
/// VLANs in 1..=4094 with a PVID that is a member, at least one queue); a refused one says
/// which spec and why.
pub fn check_port_spec(data: &[u8]) {
    use tapswitch::config::parse_spec;
    use tapswitch::port::PortKind;
    let mut r = Reader::new(data);
    let text = if r.u8() & 1 == 0 {
        String::from_utf8_lossy(r.bytes(512)).into_owned()
    } else {
        let mut s = SPEC_HEADS[r.u8() as usize % SPEC_HEADS.len()].to_string();
        for _ in 0..(r.u8() % 8) {
            s.push(',');
            let w = SPEC_WORDS[r.u8() as usize % SPEC_WORDS.len()];
            s.push_str(w);
            if w.ends_with('=') {
                s.push_str(SPEC_VALUES[r.u8() as usize % SPEC_VALUES.len()]);
            }
        }
        s
    };
    let first = parse_spec(&text);
    assert_eq!(first, parse_spec(&text), "not deterministic: {text:?}");
    match first {
        Ok(p) => {
            assert!(!p.name.is_empty(), "{text:?}: empty name");
            assert!(p.queues >= 1, "{text:?}: no queue");
            match p.kind {
                PortKind::Tap | PortKind::Packet => {
                    assert!(
                        tapswitch::port::check_ifname(&p.arg).is_ok(),
                        "{text:?}: interface {:?} accepted",
                        p.arg
                    );
                }
                PortKind::Stream | PortKind::Dgram | PortKind::Vhost => {
                    assert!(p.arg.starts_with('/'), "{text:?}: relative path accepted");
                }
                PortKind::Vxlan => {
                    let v = p.vxlan.as_ref().expect("a vxlan spec");
                    assert!(v.vni < 1 << 24, "{text:?}: VNI {}", v.vni);
                }
                PortKind::Mem => panic!("{text:?}: a mem port from a spec"),
            }
            if let Some(v) = &p.vlans {
                for vid in v.members().iter() {
                    assert!((1..=4094).contains(&vid), "{text:?}: VID {vid}");
                }
                if let Some(pvid) = v.pvid() {
                    assert!(v.is_member(pvid), "{text:?}: PVID {pvid} not a member");
                }
            }
            if let Some(m) = p.sock_mode {
                assert!(m <= 0o777, "{text:?}: mode {m:o}");
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("port spec '"), "{msg}");
            assert!(msg.len() > "port spec ''".len() + text.len(), "{msg}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// api_bodies: every route that changes the switch, fed request bodies from the fuzzer
// ---------------------------------------------------------------------------------------------

/// Routes that change the switch (method, path), each fuzzed with any body.
const API_ROUTES: &[(&str, &str)] = &[
    ("PATCH", "/api/v1/config"),
    ("PATCH", "/api/v1/ports/p0"),
    ("PATCH", "/api/v1/ports/p1"),
    ("PATCH", "/api/v1/ports/nope"),
    ("POST", "/api/v1/fdb"),
    ("PUT", "/api/v1/fdb/02:00:00:00:00:07"),
    ("PUT", "/api/v1/fdb/zz"),
    ("DELETE", "/api/v1/fdb/02:00:00:00:00:01"),
    ("DELETE", "/api/v1/fdb"),
    ("POST", "/api/v1/mirrors"),
    ("DELETE", "/api/v1/mirrors/m"),
    ("PUT", "/api/v1/ports/p1/vlans/10"),
    ("PUT", "/api/v1/ports/p1/vlans/5000"),
    ("DELETE", "/api/v1/ports/p0/vlans/1"),
    ("POST", "/api/v1/ports"),
    ("POST", "/api/v1/mdb"),
    ("DELETE", "/api/v1/mdb?port=p0&grp=239.1.1.1"),
    ("DELETE", "/api/v1/mdb?port=p1&grp=ff0e::1&vid=10"),
];

/// JSON pieces a structured body is built from (keys the routes know, values of every type).
const API_KEYS: &[&str] = &[
    "ageing_secs",
    "vlan_filtering",
    "vlan_protocol",
    "default_pvid",
    "stp",
    "stp_priority",
    "group_fwd_mask",
    "mode",
    "learning",
    "flood",
    "hairpin",
    "isolated",
    "locked",
    "uplink",
    "max_learned",
    "stp_cost",
    "edge",
    "mac",
    "port",
    "vlan",
    "kind",
    "dst",
    "name",
    "select_src",
    "select_dst",
    "select_all",
    "output",
    "pvid",
    "untagged",
    "spec",
    "storm_broadcast",
    "bpdu_guard",
    "enable",
    "grp",
    "src",
    "state",
    "vid",
    "mcast_snooping",
    "mcast_querier",
    "mcast_router",
    "mcast_fast_leave",
    "mcast_max_groups",
    "mcast_hash_max",
];
const API_VALUES: &[&str] = &[
    "true",
    "false",
    "0",
    "1",
    "10",
    "4094",
    "4095",
    "-1",
    "65536",
    "1e3",
    "null",
    "\"\"",
    "\"p0\"",
    "\"239.1.1.1\"",
    "\"ff0e::1\"",
    "\"p1\"",
    "\"rstp\"",
    "\"off\"",
    "\"802.1ad\"",
    "\"02:00:00:00:00:09\"",
    "\"ff:ff:ff:ff:ff:ff\"",
    "\"static\"",
    "\"extern_learn\"",
    "\"198.18.0.9\"",
    "[\"p0\"]",
    "[]",
    "{}",
    "\"tap:x\"",
    "\"m\"",
    "18446744073709551616",
    "\"vepa\"",
];

thread_local! {
    static API_RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
}

/// What a change may alter, read back from the switch: settings, ports (flags, state, VLANs,
/// limits, spanning tree), table entries (key, port, kind) and mirrors.
fn api_state(sw: &Switch) -> String {
    let mut s = format!("{:?}|", sw.settings.load());
    for h in sw.ports().iter() {
        s += &format!(
            "{}:{:?}:{:?}:{:?}:{:?}:{:?}|",
            h.name,
            h.flags.get(),
            h.state(),
            h.vlans(),
            sw.fdb.port_learned(h.id),
            sw.port_stp_config(h)
        );
    }
    let mut entries: Vec<String> = sw
        .fdb
        .snapshot(Timestamp(0))
        .iter()
        .map(|r| format!("{:?}", (r.mac, r.vlan, r.port, r.kind)))
        .collect();
    entries.sort();
    s += &entries.join(",");
    s += &format!("|{:?}", sw.mirrors());
    s
}

/// Up to 8 requests to routes that change the switch, with raw or structured JSON bodies,
/// through the real router (TCP access with the right token): no panic, never a 5xx but 503
/// and 507 where meant; an error answer is JSON with an "error" text and changes nothing.
/// A port spec that would open a real interface or socket is not sent.
pub fn check_api_bodies(data: &[u8]) {
    use tapswitch::api::{router, Access};
    use tapswitch::control::ControlHandle;
    use tower::ServiceExt;
    let mut r = Reader::new(data);
    API_RT.with(|rt| {
        rt.block_on(async {
            let sw = Switch::new("fuzz-api", Settings::default(), 64);
            for i in 0..3 {
                sw.add_port(
                    &format!("p{i}"),
                    Box::new(MemPort::default()),
                    PortFlags::default(),
                )
                .expect("a port");
            }
            let k = FdbKey::new(tapswitch::wire::MacAddr([2, 0, 0, 0, 0, 1]), 0);
            let p0 = sw.ports().by_name("p0").expect("p0").id;
            sw.fdb.learn(k, p0, Timestamp(0));
            let app = router(
                sw.clone(),
                ControlHandle::current(),
                Access::Tcp {
                    token: Some("t".into()),
                },
            );
            for _ in 0..(1 + r.u8() % 8) {
                let (method, path) = API_ROUTES[r.u8() as usize % API_ROUTES.len()];
                let body = if r.u8() & 1 == 0 {
                    String::from_utf8_lossy(r.bytes(256)).into_owned()
                } else {
                    let mut b = String::from("{");
                    for i in 0..(r.u8() % 5) {
                        if i > 0 {
                            b.push(',');
                        }
                        let key = API_KEYS[r.u8() as usize % API_KEYS.len()];
                        let val = API_VALUES[r.u8() as usize % API_VALUES.len()];
                        b += &format!("\"{key}\": {val}");
                    }
                    b.push('}');
                    b
                };
                if path == "/api/v1/ports" {
                    // only specs that fail before anything is opened
                    let spec = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["spec"].as_str().map(str::to_string));
                    if spec.is_some_and(|s| tapswitch::config::parse_spec(&s).is_ok()) {
                        continue;
                    }
                }
                let before = api_state(&sw);
                let req = axum::http::Request::builder()
                    .method(method)
                    .uri(path)
                    .header("authorization", "Bearer t")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(body.clone()))
                    .expect("a request");
                let resp = app.clone().oneshot(req).await.expect("infallible");
                let status = resp.status().as_u16();
                let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .expect("a body");
                let text = String::from_utf8_lossy(&text);
                assert!(
                    status < 500 || status == 503 || status == 507,
                    "{method} {path} {body:?}: {status} {text}"
                );
                if status >= 400 {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
                        panic!("{method} {path}: {status} not JSON ({e}): {text}")
                    });
                    assert!(
                        v["error"].as_str().is_some_and(|e| !e.is_empty()),
                        "{method} {path}: {status} without an error text: {text}"
                    );
                    assert_eq!(
                        before,
                        api_state(&sw),
                        "{method} {path} {body:?} answered {status} but changed the switch"
                    );
                }
            }
        })
    });
}

// ---------------------------------------------------------------------------------------------
// config_file: the TOML configuration file's text, raw or built from its real keys and tables
// ---------------------------------------------------------------------------------------------

/// The path the fuzzed file is parsed as (errors must name it).
const CFG_PATH: &str = "/etc/tapswitch/fuzz.toml";

/// Whole numbers in range and out of it, for the number keys.
const CFG_INTS: &[&str] = &[
    "0",
    "1",
    "2",
    "4",
    "6",
    "10",
    "20",
    "40",
    "100",
    "240",
    "1400",
    "4094",
    "4095",
    "4096",
    "4789",
    "9000",
    "32768",
    "65535",
    "65536",
    "1000001",
    "16777216",
    "-1",
    "4294967296",
];
const CFG_BOOLS: &[&str] = &["true", "false"];
const CFG_NAMES: &[&str] = &["\"br0\"", "\"lab.1\"", "\"tsw0\"", "\"a/b\"", "\"\""];
const CFG_VIDS: &[&str] = &[
    "10",
    "4094",
    "0",
    "4095",
    "\"10-20\"",
    "\"10;20\"",
    "\"x\"",
    "[10, \"20-21\"]",
    "[4095]",
    "[]",
];
const CFG_ADDRS: &[&str] = &[
    "[\"198.18.0.2\"]",
    "[\"198.18.0.2\", \"198.18.0.3\"]",
    "[\"2001:2::2\"]",
    "[\"198.18.0.0/15\"]",
    "[\"nowhere\"]",
    "[]",
];
/// Stands for a port spec string built like the `port_spec` target's.
const CFG_SPEC: &[&str] = &["SPEC"];

/// Every top-level key of the file with values for it (`fdb_max_learned` is an alias of
/// `fdb_max`).
const CFG_KEYS: &[(&str, &[&str])] = &[
    ("name", CFG_NAMES),
    (
        "listen",
        &[
            "\"127.0.0.1:9479\"",
            "\"[::1]:1\"",
            "\"none\"",
            "\"nowhere\"",
        ],
    ),
    ("control", &["\"/run/x.sock\"", "\"none\"", "\"off\""]),
    ("control_group", &["\"wheel\"", "\"1000\"", "\"nogroup\""]),
    ("ageing_secs", CFG_INTS),
    ("fdb_max", CFG_INTS),
    ("fdb_max_learned", CFG_INTS),
    (
        "group_fwd_mask",
        &[
            "16384",
            "70000",
            "\"lldp,stp\"",
            "\"0x4000\"",
            "\"bpdu\"",
            "\"all\"",
        ],
    ),
    (
        "mode",
        &["\"veb\"", "\"vepa\"", "\"vepa-private\"", "\"hub\""],
    ),
    ("vepa_flood_unknown", CFG_BOOLS),
    ("api_token", &["\"t\"", "\"\"", "\"s3cret\""]),
    (
        "api_token_file",
        &["\"/tok/t\"", "\"tok\"", "\"/tok/\"", "\"\""],
    ),
    ("dataplane_threads", CFG_INTS),
    ("busy_poll_us", CFG_INTS),
    ("api_max_conns", CFG_INTS),
    ("vlan_filtering", CFG_BOOLS),
    (
        "vlan_protocol",
        &["\"802.1Q\"", "\"802.1ad\"", "\"802.1x\""],
    ),
    ("default_pvid", CFG_INTS),
    ("stp", &["\"rstp\"", "\"off\"", "\"on\"", "\"mstp\""]),
    ("stp_priority", &["4096", "32768", "61440", "100", "65536"]),
    ("stp_hello_time", &["1", "2", "10", "0", "11"]),
    ("stp_forward_delay", &["4", "15", "30", "3", "31"]),
    ("stp_max_age", &["6", "20", "40", "5", "41"]),
    (
        "stp_mac",
        &[
            "\"02:00:00:00:00:01\"",
            "\"01:00:00:00:00:01\"",
            "\"00:00:00:00:00:00\"",
            "\"x\"",
        ],
    ),
    ("mcast_snooping", CFG_BOOLS),
    (
        "mcast_querier",
        &["true", "false", "\"on\"", "\"maybe\"", "1"],
    ),
    ("mcast_igmp_version", &["2", "3", "4", "\"3\""]),
    ("mcast_mld_version", &["1", "2", "0"]),
    ("mcast_hash_max", CFG_INTS),
    ("mcast_last_member_count", CFG_INTS),
    ("mcast_startup_query_count", CFG_INTS),
    ("mcast_last_member_interval", CFG_INTS),
    ("mcast_membership_interval", CFG_INTS),
    ("mcast_querier_interval", CFG_INTS),
    ("mcast_query_interval", CFG_INTS),
    ("mcast_query_response_interval", CFG_INTS),
    ("mcast_startup_query_interval", CFG_INTS),
];

/// Every key of a `[[port]]` table with values for it (`remotes` is an alias of `remote`).
const CFG_PORT_KEYS: &[(&str, &[&str])] = &[
    ("spec", CFG_SPEC),
    ("name", CFG_NAMES),
    (
        "kind",
        &[
            "\"tap\"",
            "\"packet\"",
            "\"vxlan\"",
            "\"vhost\"",
            "\"stream\"",
            "\"mem\"",
        ],
    ),
    (
        "ifname",
        &["\"tsw9\"", "\"eth0\"", "\"a/b\"", "\"thisnameistoolong0\""],
    ),
    (
        "flags",
        &[
            "[\"hairpin\"]",
            "[\"uplink\"]",
            "[\"no-learning\", \"isolated\"]",
            "[\"nope\"]",
            "[]",
        ],
    ),
    ("mtu", CFG_INTS),
    ("offload", CFG_BOOLS),
    ("max_learned", CFG_INTS),
    ("access", CFG_VIDS),
    ("trunk", CFG_VIDS),
    ("native", CFG_VIDS),
    ("vlans", CFG_VIDS),
    ("untagged", CFG_VIDS),
    ("pvid", CFG_VIDS),
    ("stp_cost", CFG_INTS),
    ("stp_priority", &["0", "16", "128", "240", "17", "256"]),
    ("edge", CFG_BOOLS),
    ("auto_edge", CFG_BOOLS),
    ("p2p", &["\"auto\"", "\"yes\"", "\"no\"", "\"maybe\""]),
    ("bpdu_guard", CFG_BOOLS),
    ("root_guard", CFG_BOOLS),
    ("storm_broadcast", CFG_INTS),
    ("storm_multicast", CFG_INTS),
    ("storm_unknown_unicast", CFG_INTS),
    ("queues", CFG_INTS),
    ("vni", CFG_INTS),
    (
        "local",
        &[
            "\"198.18.0.1\"",
            "\"2001:2::1\"",
            "\"0.0.0.0\"",
            "\"nowhere\"",
        ],
    ),
    ("remote", CFG_ADDRS),
    ("remotes", CFG_ADDRS),
    ("mcast_router", &["0", "1", "2", "3", "4", "\"2\""]),
    ("mcast_fast_leave", CFG_BOOLS),
    ("mcast_max_groups", CFG_INTS),
    ("dstport", CFG_INTS),
    ("ttl", CFG_INTS),
    ("tos", CFG_INTS),
    (
        "srcport",
        &["\"49152-65000\"", "\"10-20\"", "\"20-10\"", "\"x\""],
    ),
    ("accept", CFG_ADDRS),
    ("learning", CFG_BOOLS),
];

/// Every key of a `[[mirror]]` table with values for it.
const CFG_MIRROR_KEYS: &[(&str, &[&str])] = &[
    ("name", &["\"m9\"", "\"a b\"", "\"m0\""]),
    (
        "select_src",
        &["[\"p0\"]", "[\"p1\", \"p2\"]", "[]", "[\"x\"]"],
    ),
    (
        "select_dst",
        &["[\"p0\"]", "[\"p1\", \"p2\"]", "[]", "[\"x\"]"],
    ),
    ("select_all", CFG_BOOLS),
    ("output", &["\"p0\"", "\"p1\"", "\"p2\"", "\"x\""]),
];

/// Fake lookups: group `wheel` (10) and numbers; token files under `/tok/` hold their file
/// name, every other path is empty. Nothing is read, so the target is deterministic.
pub struct FuzzLookups;

impl tapswitch::config::Lookups for FuzzLookups {
    fn group(&self, name: &str) -> Option<u32> {
        match name {
            "wheel" => Some(10),
            n => n.parse().ok(),
        }
    }

    fn token_file(
        &self,
        path: &std::path::Path,
    ) -> Result<String, tapswitch::config::TokenFileError> {
        match path.strip_prefix("/tok") {
            Ok(rest) if !rest.as_os_str().is_empty() => Ok(rest.display().to_string()),
            _ => Err(tapswitch::config::TokenFileError::Empty(
                path.display().to_string(),
            )),
        }
    }
}

/// A quoted port spec built like the `port_spec` target's.
fn cfg_spec(r: &mut Reader<'_>) -> String {
    let mut s = SPEC_HEADS[r.u8() as usize % SPEC_HEADS.len()].to_string();
    for _ in 0..(r.u8() % 4) {
        s.push(',');
        let w = SPEC_WORDS[r.u8() as usize % SPEC_WORDS.len()];
        s.push_str(w);
        if w.ends_with('=') {
            s.push_str(SPEC_VALUES[r.u8() as usize % SPEC_VALUES.len()]);
        }
    }
    format!("{s:?}")
}

/// Up to `n` lines `key = value` with keys of one table; `used` are its keys so far (a key
/// is not repeated: TOML refuses that, and the raw inputs cover it). The value is one the key
/// takes (right or wrong), one time in 32 one of a top-level key's (often of another
/// type).
fn cfg_lines(
    r: &mut Reader<'_>,
    keys: &[(&'static str, &'static [&'static str])],
    n: u8,
    used: &mut Vec<&'static str>,
    out: &mut String,
) {
    for _ in 0..n {
        let (k, own) = keys[r.u8() as usize % keys.len()];
        let sel = r.u8();
        let values = if sel % 32 == 0 {
            CFG_KEYS[sel as usize % CFG_KEYS.len()].1
        } else {
            own
        };
        let v = values[r.u8() as usize % values.len()];
        let v = if v == "SPEC" {
            cfg_spec(r)
        } else {
            v.to_string()
        };
        if used.contains(&k) {
            continue;
        }
        used.push(k);
        out.push_str(&format!("{k} = {v}\n"));
    }
}

/// A file built from the real keys and tables: top-level keys, then `[[port]]` tables (most
/// named `pN`, so mirrors can name them), then `[[mirror]]` tables (most with an output
/// `pN`), then `[[mdb]]` tables.
fn cfg_text(r: &mut Reader<'_>) -> String {
    let mut t = String::new();
    let n = r.u8() % 8;
    cfg_lines(r, CFG_KEYS, n, &mut Vec::new(), &mut t);
    for i in 0..(r.u8() % 5) {
        t.push_str("[[port]]\n");
        let mut used = Vec::new();
        // (past the input's end the reader gives zeros: those make the common case)
        if r.u8() % 8 != 7 {
            t.push_str(&format!("name = \"p{i}\"\n"));
            used.push("name");
        }
        let n = r.u8() % 6;
        cfg_lines(r, CFG_PORT_KEYS, n, &mut used, &mut t);
    }
    for i in 0..(r.u8() % 3) {
        t.push_str(&format!("[[mirror]]\nname = \"m{i}\"\n"));
        let mut used = vec!["name"];
        let out = r.u8();
        if out % 8 != 7 {
            t.push_str(&format!("output = \"p{}\"\n", out % 3));
            used.push("output");
        }
        let n = r.u8() % 4;
        cfg_lines(r, CFG_MIRROR_KEYS, n, &mut used, &mut t);
    }
    for _ in 0..(r.u8() % 3) {
        t.push_str(&format!("[[mdb]]\nport = \"p{}\"\n", r.u8() % 4));
        let n = r.u8() % 4;
        cfg_lines(r, CFG_MDB_KEYS, n, &mut vec!["port"], &mut t);
    }
    t
}

/// The keys of an `[[mdb]]` table (but `port`) with values for them.
const CFG_MDB_KEYS: &[(&str, &[&str])] = &[
    (
        "grp",
        &[
            "\"239.1.1.1\"",
            "\"ff0e::1\"",
            "\"198.18.0.1\"",
            "\"x\"",
            "5",
        ],
    ),
    ("src", &["\"198.18.0.9\"", "\"2001:db8::1\"", "\"x\""]),
    ("permanent", CFG_BOOLS),
    ("vid", &["0", "10", "4094", "4095", "-1"]),
    ("state", &["\"temp\""]),
];

/// Whether `key` names a key of the file: a top-level key, `port[N]`, `port[N].KEY` (KEY a
/// port key, or `stp` for the port's spanning tree settings together), `mirror[N]` or
/// `mdb[N]`.
fn cfg_key_is_real(key: &str) -> bool {
    let has = |keys: &[(&str, &[&str])], k: &str| keys.iter().any(|(x, _)| *x == k);
    if has(CFG_KEYS, key) {
        return true;
    }
    let table = |prefix: &str| -> Option<&str> {
        let rest = key.strip_prefix(prefix)?;
        let (n, tail) = rest.split_once(']')?;
        n.parse::<usize>().ok()?;
        Some(tail)
    };
    if let Some(tail) = table("port[") {
        return tail.is_empty()
            || tail
                .strip_prefix('.')
                .is_some_and(|k| k == "stp" || has(CFG_PORT_KEYS, k));
    }
    table("mirror[").is_some_and(str::is_empty) || table("mdb[").is_some_and(str::is_empty)
}

/// Checks an error about the file: it names the file; about a key, a line of the file and a
/// real key; the file as a whole, a line (toml's own position).
fn check_file_error(e: &tapswitch::config::ConfigError, text: &str, lookup: bool) {
    use tapswitch::config::ConfigError;
    let lines = text.matches('\n').count() + 1;
    let shown = e.to_string();
    assert!(shown.starts_with(CFG_PATH), "{text:?}: {shown}");
    match e {
        ConfigError::File { file, msg } => {
            assert!(
                !lookup,
                "{text:?}: a lookup failed as a file error: {shown}"
            );
            assert_eq!(file, CFG_PATH);
            assert!(msg.contains("line "), "{text:?}: no line: {shown}");
        }
        ConfigError::Key {
            file,
            line,
            key,
            msg,
        } => {
            assert_eq!(file, CFG_PATH);
            assert!((1..=lines).contains(line), "{text:?}: line {line}: {shown}");
            assert!(cfg_key_is_real(key), "{text:?}: key {key:?}: {shown}");
            if lookup {
                assert!(
                    key == "control_group" || key == "api_token_file",
                    "{text:?}: {shown}"
                );
            }
            assert!(!msg.is_empty(), "{text:?}: {shown}");
        }
        ConfigError::Flag { .. } => panic!("{text:?}: a file error names a flag: {shown}"),
    }
}

/// The TOML configuration file through `parse_file` and then `Config::resolve_with` (fake
/// lookups, no command line): no panic; the same text parses and resolves the same way twice;
/// an error names the file, and where it is about a key, a line of the file and the key; a
/// file that parses resolves either to a rule spanning several settings (an error naming
/// it) or to a `Config` that passes its own validation: unique port names, every port what
/// its spec grammar accepts, mirrors naming declared ports, a spanning tree bridge that
/// passes its checks, ranges kept, an API token never empty.
pub fn check_config_file(data: &[u8]) {
    config_file_outcome(data);
}

/// How far a `config_file` input went, for the replay tests to see that inputs reach deep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CfgOutcome {
    /// Not TOML, or a value of the wrong type: toml's own error.
    Toml,
    /// A value refused by its key.
    Key,
    /// Parsed, then refused by a lookup or a rule spanning several settings.
    Resolve,
    /// A `Config`.
    Config,
}

/// The text a `config_file` input stands for: raw bytes (selector bit 0 clear) or a file
/// built from the real keys.
pub fn config_file_text(data: &[u8]) -> String {
    let mut r = Reader::new(data);
    if r.u8() & 1 == 0 {
        String::from_utf8_lossy(r.rest()).into_owned()
    } else {
        cfg_text(&mut r)
    }
}

/// [`check_config_file`], telling how far the input went.
pub fn config_file_outcome(data: &[u8]) -> CfgOutcome {
    use std::path::Path;
    use tapswitch::config::{parse_file, Config, ConfigError, Overrides};
    use tapswitch::port::PortKind;
    let text = config_file_text(data);
    let path = Path::new(CFG_PATH);
    let first = parse_file(path, &text);
    assert_eq!(
        format!("{first:?}"),
        format!("{:?}", parse_file(path, &text)),
        "not deterministic: {text:?}"
    );
    let file = match first {
        Ok(f) => f,
        Err(e) => {
            check_file_error(&e, &text, false);
            return match e {
                ConfigError::File { .. } => CfgOutcome::Toml,
                _ => CfgOutcome::Key,
            };
        }
    };
    let o = Overrides::default();
    let resolved = Config::resolve_with(Some(file.clone()), &o, &FuzzLookups);
    assert_eq!(
        format!("{resolved:?}"),
        format!("{:?}", Config::resolve_with(Some(file), &o, &FuzzLookups)),
        "not deterministic: {text:?}"
    );
    let cfg = match resolved {
        Ok(c) => c,
        Err(e @ ConfigError::Flag { .. }) => {
            let shown = e.to_string();
            let ConfigError::Flag { flag, .. } = e else {
                unreachable!()
            };
            assert!(
                ["--port", "--mode", "[[mirror]]", "[[mdb]]"].contains(&flag)
                    || flag.starts_with("--stp-priority/"),
                "{text:?}: a file's settings refused by {flag}: {shown}"
            );
            return CfgOutcome::Resolve;
        }
        Err(e) => {
            check_file_error(&e, &text, true);
            return CfgOutcome::Resolve;
        }
    };
    cfg.validate()
        .unwrap_or_else(|e| panic!("{text:?}: resolved but fails its validation: {e}"));
    assert!(!cfg.default_ports, "{text:?}: built-in ports with a file");
    cfg.stp_bridge
        .validate()
        .unwrap_or_else(|e| panic!("{text:?}: bridge {e}"));
    assert!(cfg.fdb_max >= 1, "{text:?}: fdb_max 0");
    assert!((1..=64).contains(&cfg.dataplane_threads), "{text:?}");
    assert!(cfg.api_max_conns >= 1, "{text:?}: api_max_conns 0");
    assert!(
        cfg.api_token.as_ref().is_none_or(|t| !t.is_empty()),
        "{text:?}: an empty API token (anyone could change the switch over TCP)"
    );
    let v = cfg.settings.default_pvid;
    assert!(v <= 4094, "{text:?}: default_pvid {v}");
    let mut names = std::collections::HashSet::new();
    for p in &cfg.ports {
        assert!(
            names.insert(p.name.as_str()),
            "{text:?}: port {} twice",
            p.name
        );
        assert!(!p.name.is_empty() && p.queues >= 1, "{text:?}: {p:?}");
        assert!(p.stp.validate().is_ok(), "{text:?}: {p:?}");
        match p.kind {
            PortKind::Tap | PortKind::Packet => assert!(
                tapswitch::port::check_ifname(&p.arg).is_ok(),
                "{text:?}: interface {:?} accepted",
                p.arg
            ),
            PortKind::Stream | PortKind::Dgram | PortKind::Vhost => {
                assert!(p.arg.starts_with('/'), "{text:?}: relative path accepted")
            }
            PortKind::Vxlan => {
                let v = p.vxlan.as_ref().expect("a vxlan port has its tunnel");
                assert!(v.vni < 1 << 24 && v.check().is_ok(), "{text:?}: {v:?}");
            }
            PortKind::Mem => panic!("{text:?}: a mem port from a file"),
        }
        if let Some(v) = &p.vlans {
            for vid in v.members().iter() {
                assert!((1..=4094).contains(&vid), "{text:?}: VID {vid}");
            }
            if let Some(pvid) = v.pvid() {
                assert!(v.is_member(pvid), "{text:?}: PVID {pvid} not a member");
            }
        }
    }
    for m in &cfg.mirrors {
        assert!(m.check().is_ok(), "{text:?}: mirror {m:?}");
        for p in m.ports() {
            assert!(names.contains(p.as_str()), "{text:?}: mirror names {p}");
        }
    }
    CfgOutcome::Config
}
