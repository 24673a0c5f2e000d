//! Micro-benchmarks of the frame path without I/O: parse + decide, table lookup and learning
//! at 1k / 100k / 1M entries, and flooding to 2 / 8 / 32 ports.
//! Run: `cargo bench --bench core -- --noplot`.

use std::hint::black_box;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapswitch::dataplane::Switch;
use tapswitch::fdb::{Fdb, FdbKey, Timestamp};
use tapswitch::forwarding::{decide, PortDirectory, PortFlags, PortId, Settings};
use tapswitch::port::{Port, PortKind};
use tapswitch::wire::{build_frame, EthernetFrame, MacAddr};

/// A port that discards what it is sent, so a bench measures the switch, not a sink.
struct NullPort;

impl Port for NullPort {
    fn kind(&self) -> PortKind {
        PortKind::Mem
    }
    fn recv(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
    fn send(&self, frame: &[u8]) -> io::Result<()> {
        black_box(frame);
        Ok(())
    }
    fn poll_fd(&self) -> Option<RawFd> {
        None
    }
    fn mtu(&self) -> u32 {
        1500
    }
}

struct AllPorts;

impl PortDirectory for AllPorts {
    fn flags_of(&self, _id: PortId) -> Option<PortFlags> {
        Some(PortFlags::default())
    }
    fn uplink(&self) -> Option<PortId> {
        None
    }
}

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([2, 0, b[0], b[1], b[2], b[3]])
}

fn filled(n: u32) -> Fdb {
    let fdb = Fdb::new(n as usize + 16);
    for i in 0..n {
        fdb.learn(FdbKey::new(mac(i), 0), PortId(i % 8), Timestamp(0));
    }
    fdb
}

fn parse_decide(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_decide_known_unicast");
    g.throughput(Throughput::Elements(1));
    for n in [1_000u32, 100_000, 1_000_000] {
        let fdb = filled(n);
        let frame = build_frame(mac(n / 2), mac(7), 0x0800, &[0; 46]);
        let s = Settings::default();
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let f = EthernetFrame::new_checked(black_box(&frame[..])).unwrap();
                black_box(decide(
                    &s,
                    &fdb,
                    PortId(7),
                    PortFlags::default(),
                    &f,
                    0,
                    &AllPorts,
                    Timestamp(1),
                ))
            })
        });
    }
    g.finish();
}

fn table(c: &mut Criterion) {
    let mut g = c.benchmark_group("fdb");
    for n in [1_000u32, 100_000, 1_000_000] {
        let fdb = filled(n);
        let mut i = 0u32;
        g.bench_with_input(BenchmarkId::new("lookup", n), &n, |b, &n| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(fdb.lookup(&FdbKey::new(mac(i), 0), Timestamp(1)))
            })
        });
        g.bench_with_input(BenchmarkId::new("refresh", n), &n, |b, &n| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(fdb.learn(FdbKey::new(mac(i), 0), PortId(i % 8), Timestamp(2)))
            })
        });
        g.bench_with_input(BenchmarkId::new("learn_new", n), &n, |b, &n| {
            let fdb = Fdb::new(n as usize);
            let mut j = 0u32;
            b.iter(|| {
                j = j.wrapping_add(1);
                if fdb.learned_count() >= n as usize {
                    fdb.flush(Default::default());
                }
                black_box(fdb.learn(FdbKey::new(mac(j), 0), PortId(1), Timestamp(0)))
            })
        });
    }
    g.finish();
}

fn flood(c: &mut Criterion) {
    let mut g = c.benchmark_group("flood_broadcast_to_ports");
    for n in [2usize, 8, 32] {
        let sw = Switch::new("bench", Settings::default(), 1024);
        let ports: Vec<_> = (0..=n)
            .map(|i| {
                sw.add_port(&format!("p{i}"), Box::new(NullPort), PortFlags::default())
                    .unwrap()
            })
            .collect();
        let reg = sw.ports();
        let s = Settings::default();
        let mut pkt = vec![0u8; 10];
        pkt.extend(build_frame(MacAddr::BROADCAST, mac(1), 0x0806, &[0; 46]));
        let mut scratch = tapswitch::dataplane::Scratch::default();
        let h = Arc::clone(&ports[0]);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                sw.handle_frame(
                    &reg,
                    &s,
                    &h,
                    black_box(&pkt),
                    false,
                    Timestamp(1),
                    &mut scratch,
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse_decide, table, flood);
criterion_main!(benches);
