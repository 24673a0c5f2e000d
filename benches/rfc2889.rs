//! RFC 2889 §5.7 address caching capacity and §5.8 address learning rate, through the switch's
//! frame path (in memory, no kernel I/O): a learning port sends N frames with N distinct
//! sources, a test port then sends one frame to each of them, and a monitor port counts copies
//! (a copy on the monitor means the address was not cached, i.e. flooding).
//! Run: `cargo bench --bench rfc2889` (prints a table; `--fdb-max` style limit via TS_FDB_MAX).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use tapswitch::dataplane::Switch;
use tapswitch::forwarding::{PortFlags, Settings};
use tapswitch::port::mem::MemPort;
use tapswitch::wire::{build_frame, MacAddr};

fn mac(i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([2, 0x28, b[0], b[1], b[2], b[3]])
}

struct Rig {
    sw: Arc<Switch>,
    learn: Arc<MemPort>,
    test: Arc<MemPort>,
    monitor: Arc<MemPort>,
}

fn rig(limit: usize) -> Rig {
    let sw = Switch::new("rfc2889", Settings::default(), limit);
    let (learn, test, monitor) = (
        Arc::new(MemPort::default()),
        Arc::new(MemPort::default()),
        Arc::new(MemPort::default()),
    );
    sw.add_port("learning", Box::new(learn.clone()), PortFlags::default())
        .unwrap();
    sw.add_port("test", Box::new(test.clone()), PortFlags::default())
        .unwrap();
    sw.add_port("monitor", Box::new(monitor.clone()), PortFlags::default())
        .unwrap();
    Rig {
        sw,
        learn,
        test,
        monitor,
    }
}

/// Sends N learning frames then N test frames; returns (flooded copies seen on the monitor,
/// learning frames per second through the frame path).
fn trial(limit: usize, n: u32) -> (usize, f64) {
    let r = rig(limit);
    let test_src = MacAddr([2, 0x28, 0xff, 0, 0, 1]);
    let mut learned_secs = 0.0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(4096) {
        for &i in chunk {
            r.learn
                .inject(&build_frame(test_src, mac(i), 0x88b5, &[0; 46]));
        }
        let t = Instant::now();
        r.sw.pump();
        learned_secs += t.elapsed().as_secs_f64();
        r.test.take_sent();
        r.monitor.take_sent();
    }
    let mut flooded = 0;
    for chunk in (0..n).collect::<Vec<_>>().chunks(4096) {
        for &i in chunk {
            r.test
                .inject(&build_frame(mac(i), test_src, 0x88b5, &[0; 46]));
        }
        r.sw.pump();
        flooded += r.monitor.take_sent().len();
        r.learn.take_sent();
    }
    (flooded, n as f64 / learned_secs)
}

fn main() {
    let limit: usize = std::env::var("TS_FDB_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(65536);
    // §5.7: binary search the largest N with no flooding.
    let (mut lo, mut hi) = (1u32, (limit as u32) * 2);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if trial(limit, mid).0 == 0 {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let capacity = lo;
    // §5.8: learning rate at N = capacity (frames handled per second, all learned).
    let rates: Vec<f64> = (0..5).map(|_| trial(limit, capacity).1).collect();
    let mut sorted = rates.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at_limit = rig(limit);
    for i in 0..(capacity + 1000) {
        at_limit
            .learn
            .inject(&build_frame(MacAddr::BROADCAST, mac(i), 0x88b5, &[0; 46]));
    }
    at_limit.sw.pump();
    println!("| RFC 2889 (in-memory frame path) | value |");
    println!("|---|---|");
    println!("| table limit (--fdb-max) | {limit} |");
    println!("| §5.7 address caching capacity (no flooding up to) | {capacity} addresses |");
    println!(
        "| §5.8 address learning rate (median of 5, N = capacity) | {:.0} frames/s |",
        sorted[2]
    );
    println!(
        "| at capacity + 1000: learned / limit hits | {} / {} |",
        at_limit.sw.fdb.learned_count(),
        at_limit.sw.fdb.stats.learn_limit_hits_total.load(Relaxed)
    );
    assert_eq!(
        capacity as usize, limit,
        "capacity should equal the configured limit"
    );
}
