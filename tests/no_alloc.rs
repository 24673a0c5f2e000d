//! The forwarding path allocates nothing per frame: known unicast, floods and drops are
//! handled with a counting global allocator watching.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::Relaxed;

use tapswitch::dataplane::Switch;
use tapswitch::forwarding::{PortFlags, Settings};
use tapswitch::port::{Port, PortKind};
use tapswitch::wire::{build_frame, MacAddr};

struct Counting;

thread_local! {
    /// Allocations made by this thread: the test reads its own, so the test harness's other
    /// threads do not count.
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: during thread teardown the slot may be gone; nothing to count then.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

#[allow(
    unsafe_code,
    reason = "a counting global allocator needs an unsafe impl"
)]
// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Sink;

impl Port for Sink {
    fn kind(&self) -> PortKind {
        PortKind::Mem
    }
    fn recv(&self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn send(&self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn mtu(&self) -> u32 {
        1500
    }
}

fn mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, i])
}

#[test]
fn forwarding_allocates_nothing_per_frame() {
    let sw = Switch::new("t", Settings::default(), 1024);
    let ports: Vec<_> = (0..8)
        .map(|i| {
            sw.add_port(&format!("p{i}"), Box::new(Sink), PortFlags::default())
                .unwrap()
        })
        .collect();
    let reg = sw.ports();
    let s = Settings::default();
    let mut scratch = tapswitch::dataplane::Scratch::default();
    let with_hdr = |f: Vec<u8>| {
        let mut v = vec![0u8; 10];
        v.extend(f);
        v
    };
    let frames = [
        with_hdr(build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 46])), // learn + flood
        with_hdr(build_frame(mac(1), mac(2), 0x0800, &[0; 46])),             // known unicast
        with_hdr(build_frame(mac(9), mac(2), 0x0800, &[0; 1000])),           // unknown unicast
        with_hdr(build_frame(mac(2), MacAddr::BROADCAST, 0x0800, &[0; 46])), // invalid source
        with_hdr(build_frame(
            [1, 0x80, 0xc2, 0, 0, 0xe].into(),
            mac(2),
            0x88cc,
            &[0; 46],
        )), // LLDP
        with_hdr(vec![1, 2, 3]),                                             // runt garbage
    ];
    // warm up: first sight of each source learns (one insertion each)
    for f in &frames {
        sw.handle_frame(&reg, &s, &ports[0], f, false, sw.now(), &mut scratch);
        sw.handle_frame(&reg, &s, &ports[1], f, false, sw.now(), &mut scratch);
    }
    let before = ALLOCS.with(Cell::get);
    for i in 0..10_000 {
        let f = &frames[i % frames.len()];
        sw.handle_frame(
            &reg,
            &s,
            &ports[i % 2],
            f,
            false,
            tapswitch::fdb::Timestamp(5),
            &mut scratch,
        );
        if i % 64 == 63 {
            // the end of a batch: counts go to the shared counters
            sw.publish(&reg, &mut scratch);
        }
    }
    sw.publish(&reg, &mut scratch);
    let after = ALLOCS.with(Cell::get);
    assert_eq!(after - before, 0, "allocations on the frame path");
    let rx: u64 = ports
        .iter()
        .map(|p| p.counters.rx_frames.load(Relaxed))
        .sum();
    assert_eq!(rx, 10_000 + 2 * frames.len() as u64);
}

/// With VLAN filtering: classification, per-VLAN counting, and tag push, pop and rewrite toward
/// access and trunk ports allocate nothing either.
#[test]
fn vlan_filtering_allocates_nothing_per_frame() {
    use tapswitch::vlan::{PortVlans, VlanSet};
    let s = Settings {
        vlan_filtering: true,
        ..Settings::default()
    };
    let sw = Switch::new("t", s, 1024);
    let ports: Vec<_> = (0..4)
        .map(|i| {
            sw.add_port(&format!("p{i}"), Box::new(Sink), PortFlags::default())
                .unwrap()
        })
        .collect();
    let trunk = PortVlans::trunk(&"10;20".parse::<VlanSet>().unwrap(), Some(1)).unwrap();
    sw.update_port_vlans(&ports[0], |p| *p = PortVlans::access(10).unwrap());
    sw.update_port_vlans(&ports[1], |p| *p = PortVlans::access(20).unwrap());
    sw.update_port_vlans(&ports[2], |p| *p = trunk.clone());
    sw.update_port_vlans(&ports[3], |p| *p = trunk);
    let reg = sw.ports();
    let mut scratch = tapswitch::dataplane::Scratch::default();
    let hdr = |f: Vec<u8>| {
        let mut v = vec![0u8; 10];
        v.extend(f);
        v
    };
    let tagged = |dst: MacAddr, src: MacAddr, tci: u16| {
        let mut p = tci.to_be_bytes().to_vec();
        p.extend_from_slice(&[0x08, 0x00]);
        p.extend_from_slice(&[0; 46]);
        build_frame(dst, src, 0x8100, &p)
    };
    // (ingress, frame): untagged on access (push on trunks), tagged on a trunk (pop on access),
    // priority-tagged (rewrite/pop), filtered, known unicast
    let frames = [
        (
            0,
            hdr(build_frame(MacAddr::BROADCAST, mac(1), 0x0800, &[0; 46])),
        ),
        (2, hdr(tagged(MacAddr::BROADCAST, mac(2), 20))),
        (1, hdr(tagged(MacAddr::BROADCAST, mac(3), 5 << 13))),
        (2, hdr(tagged(MacAddr::BROADCAST, mac(4), 30))),
        (2, hdr(tagged(mac(1), mac(2), 10))),
        (0, hdr(build_frame(mac(2), mac(1), 0x0800, &[0; 46]))),
    ];
    for (i, f) in &frames {
        sw.handle_frame(
            &reg,
            &sw.settings.load(),
            &ports[*i],
            f,
            false,
            sw.now(),
            &mut scratch,
        );
    }
    sw.publish(&reg, &mut scratch);
    let settings = sw.settings.load();
    let before = ALLOCS.with(Cell::get);
    for n in 0..10_000 {
        let (i, f) = &frames[n % frames.len()];
        sw.handle_frame(
            &reg,
            &settings,
            &ports[*i],
            f,
            false,
            tapswitch::fdb::Timestamp(5),
            &mut scratch,
        );
        if n % 64 == 63 {
            sw.publish(&reg, &mut scratch);
        }
    }
    sw.publish(&reg, &mut scratch);
    let after = ALLOCS.with(Cell::get);
    assert_eq!(after - before, 0, "allocations on the VLAN frame path");
    assert!(sw.stats.vlan_rx_frames[10].load(Relaxed) > 0);
    assert!(sw.stats.vlan_rx_frames[20].load(Relaxed) > 0);
}

/// With a capture running on every port and a mirror copying two ports to a third, the frame
/// path still allocates nothing: captures append to their preallocated ring (or count a drop),
/// mirror copies go through the output port's send path.
#[test]
fn capture_and_mirror_allocate_nothing_per_frame() {
    use tapswitch::capture::session::{self, Request};
    use tapswitch::capture::MirrorSpec;
    let sw = Switch::new("t", Settings::default(), 1024);
    let ports: Vec<_> = (0..5)
        .map(|i| {
            sw.add_port(&format!("p{i}"), Box::new(Sink), PortFlags::default())
                .unwrap()
        })
        .collect();
    sw.add_mirror(
        MirrorSpec {
            name: "m".into(),
            select_src: vec!["p0".into()],
            select_dst: vec!["p1".into()],
            select_all: false,
            output: "p4".into(),
        },
        false,
        true,
    )
    .unwrap();
    let cap = session::start(&sw, Request::default()).unwrap();
    let filtered = session::start(
        &sw,
        Request {
            ports: vec!["p1".into()],
            filter: tapswitch::capture::Filter {
                ethertype: Some(0x0806),
                ..Default::default()
            },
            ..Request::default()
        },
    )
    .unwrap();
    let reg = sw.ports();
    assert!(reg.taps().armed());
    let s = Settings::default();
    let mut scratch = tapswitch::dataplane::Scratch::default();
    let with_hdr = |f: Vec<u8>| {
        let mut v = vec![0u8; 10];
        v.extend(f);
        v
    };
    let frames = [
        with_hdr(build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 46])),
        with_hdr(build_frame(mac(1), mac(2), 0x0800, &[0; 46])),
        with_hdr(build_frame(mac(9), mac(2), 0x0800, &[0; 1000])),
        with_hdr(build_frame(mac(2), MacAddr::BROADCAST, 0x0800, &[0; 46])),
        with_hdr(vec![1, 2, 3]),
    ];
    for f in &frames {
        for p in &ports[..2] {
            sw.handle_frame(&reg, &s, p, f, false, sw.now(), &mut scratch);
        }
    }
    sw.publish(&reg, &mut scratch);
    let before = ALLOCS.with(Cell::get);
    for i in 0..10_000 {
        let f = &frames[i % frames.len()];
        // p4 is the mirror output: its frames are dropped
        let p = &ports[[0, 1, 4][i % 3]];
        sw.handle_frame(
            &reg,
            &s,
            p,
            f,
            false,
            tapswitch::fdb::Timestamp(5),
            &mut scratch,
        );
        if i % 64 == 63 {
            sw.publish(&reg, &mut scratch);
        }
    }
    sw.publish(&reg, &mut scratch);
    let after = ALLOCS.with(Cell::get);
    assert_eq!(
        after - before,
        0,
        "allocations on the frame path with a capture armed"
    );
    let c = cap.capture();
    assert!(c.ring.frames.load(Relaxed) + c.ring.dropped.load(Relaxed) > 10_000);
    assert!(filtered.capture().ring.frames.load(Relaxed) > 0);
    assert!(sw.mirrors()[0].frames.load(Relaxed) > 0);
}

/// GSO frames and partial checksums: the ingress bound (`bad_gso`), software segmentation and
/// checksum completion toward ports without offloads allocate nothing either.
#[test]
fn gso_bounds_and_checksum_completion_allocate_nothing_per_frame() {
    use tapswitch::offload::{VnetHdr, F_NEEDS_CSUM, GSO_TCPV4};
    let sw = Switch::new("t", Settings::default(), 1024);
    let ports: Vec<_> = (0..4)
        .map(|i| {
            sw.add_port(&format!("p{i}"), Box::new(Sink), PortFlags::default())
                .unwrap()
        })
        .collect();
    let reg = sw.ports();
    let s = Settings::default();
    let mut scratch = tapswitch::dataplane::Scratch::default();
    // TCP/IPv4, `payload` bytes, a header asking for `gso_type` at `gso_size`
    let tcp = |gso_type: u8, gso_size: u16, payload: usize| {
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&((40 + payload) as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]);
        ip.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x18, 1, 0]);
        ip.extend_from_slice(&[0; 4]);
        ip.extend(std::iter::repeat_n(7u8, payload));
        let mut v = vec![0u8; 10];
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type,
            hdr_len: 54,
            gso_size,
            csum_start: 34,
            csum_offset: 16,
        }
        .write(&mut v);
        v.extend(build_frame(MacAddr::BROADCAST, mac(1), 0x0800, &ip));
        v
    };
    let frames = [
        tcp(GSO_TCPV4, 1448, 5000), // segmented for every port
        tcp(GSO_TCPV4, 1, 5000),    // bad_gso
        tcp(0, 0, 300),             // checksum completed for every port
    ];
    for f in &frames {
        sw.handle_frame(&reg, &s, &ports[0], f, false, sw.now(), &mut scratch);
    }
    sw.publish(&reg, &mut scratch);
    let before = ALLOCS.with(Cell::get);
    for i in 0..3_000 {
        let f = &frames[i % frames.len()];
        sw.handle_frame(
            &reg,
            &s,
            &ports[0],
            f,
            false,
            tapswitch::fdb::Timestamp(5),
            &mut scratch,
        );
        if i % 64 == 63 {
            sw.publish(&reg, &mut scratch);
        }
    }
    sw.publish(&reg, &mut scratch);
    let after = ALLOCS.with(Cell::get);
    assert_eq!(after - before, 0, "allocations on the frame path");
    let c = &ports[0].counters;
    assert_eq!(
        c.rx_dropped[tapswitch::forwarding::RxDrop::BadGso.index()].load(Relaxed),
        1_001
    );
    // 4 segments of the GSO frame and 1 completed frame, to each of 3 ports
    let tx: u64 = ports[1..]
        .iter()
        .map(|p| p.counters.tx_frames.load(Relaxed))
        .sum();
    assert_eq!(tx, 3 * (1_001 * 4 + 1_001));
}
