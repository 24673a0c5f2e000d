//! Rootless: races between the frame path and the control thread, on threads.
//!
//! A worker that read a port's state before the port was removed can learn a source on it
//! after the removal's flush: the batch's end ([`Switch::publish`]) sees the port `gone` and
//! has the control thread flush it once more, so no entry of a removed port survives.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapswitch::dataplane::{Scratch, Switch};
use tapswitch::fdb::FdbKey;
use tapswitch::forwarding::{PortFlags, Settings};
use tapswitch::offload::VNET_HDR_LEN;
use tapswitch::port::mem::MemPort;
use tapswitch::wire::MacAddr;

/// A broadcast frame from `src`, behind an all-zero virtio_net_hdr.
fn pkt(src: MacAddr) -> Vec<u8> {
    let mut p = vec![0u8; VNET_HDR_LEN];
    p.extend_from_slice(&[0xff; 6]);
    p.extend_from_slice(&src.0);
    p.extend_from_slice(&[0x88, 0xb5]);
    p.resize(VNET_HDR_LEN + 60, 0);
    p
}

fn mac(thread: u8, i: u32) -> MacAddr {
    let b = i.to_be_bytes();
    MacAddr([0x02, thread, b[0], b[1], b[2], b[3]])
}

/// What a worker does when its state check passed just before the port was removed: the
/// batch began (and a first frame learned), the port was removed and flushed, then the late
/// frame's source was learned. The batch's end must get that entry flushed too.
#[test]
fn a_source_learned_after_the_removal_flush_is_flushed_again() {
    let sw = Switch::new("t", Settings::default(), 1 << 16);
    let h = sw
        .add_port("a", Box::new(MemPort::default()), PortFlags::default())
        .expect("add port");
    let keep = sw
        .add_port("b", Box::new(MemPort::default()), PortFlags::default())
        .expect("add port");
    let (id, keep_id) = (h.id, keep.id);
    let (reg, settings, now) = (sw.ports(), sw.settings.load(), sw.now());
    let mut w = Scratch::default();
    sw.handle_frame(&reg, &settings, &h, &pkt(mac(1, 1)), false, now, &mut w);
    sw.handle_frame(&reg, &settings, &keep, &pkt(mac(2, 1)), false, now, &mut w);
    assert_eq!(sw.fdb.len(), 2, "positive control: both sources learned");
    drop((h, keep));
    // The removal, from another thread (as the control thread does it): it flushes, then
    // waits for this "batch" to let go of the port.
    let remover = {
        let sw = sw.clone();
        std::thread::spawn(move || sw.remove_port("a").is_some())
    };
    let t = Instant::now();
    while sw.fdb.len() != 1 && t.elapsed() < Duration::from_secs(10) {
        std::thread::yield_now();
    }
    assert_eq!(sw.fdb.len(), 1, "the removal flushed a's entry");
    // the late frame: its check passed before the removal; `decide` learns it now
    sw.fdb.learn(FdbKey::new(mac(1, 2), 0), id, now);
    sw.publish(&reg, &mut w);
    drop(reg);
    assert!(remover.join().expect("remover"), "a was removed");
    sw.control_work();
    assert_eq!(
        sw.fdb.entries_of(id),
        0,
        "an entry of the removed port survived: {:?}",
        sw.fdb.snapshot(sw.now())
    );
    assert_eq!(
        sw.fdb.entries_of(keep_id),
        1,
        "the other port's entry stays"
    );
    assert_eq!(sw.fdb.learned_count(), 1, "the learned count follows");
    assert_eq!(
        sw.fdb.port_learned(id),
        (0, 0),
        "the removed port is forgotten"
    );
}

/// Workers learn new sources on a port as fast as they can while it is removed; after the
/// control work that follows, not one entry of it is left. Many rounds, so the removal lands
/// at every point of a batch.
#[test]
fn removal_racing_learning_on_threads_leaves_no_entry() {
    let rounds = 300;
    let started = Instant::now();
    for round in 0..rounds {
        let sw = Switch::new("t", Settings::default(), 1 << 22);
        let h = sw
            .add_port("a", Box::new(MemPort::default()), PortFlags::default())
            .expect("add port");
        let learned = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..3u8)
            .map(|t| {
                let (sw, h, learned, stop) = (sw.clone(), h.clone(), learned.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut w = Scratch::default();
                    let mut i = 0u32;
                    let mut batches_after = 0;
                    while !stop.load(Relaxed) && batches_after < 3 && i < 1_000_000 {
                        let (reg, settings, now) = (sw.ports(), sw.settings.load(), sw.now());
                        if reg.get(h.id).is_none() {
                            // a batch that starts after the removal does not see the port
                            batches_after += 1;
                        }
                        for _ in 0..8 {
                            sw.handle_frame(
                                &reg,
                                &settings,
                                &h,
                                &pkt(mac(t, i)),
                                false,
                                now,
                                &mut w,
                            );
                            i += 1;
                        }
                        sw.publish(&reg, &mut w);
                        learned.fetch_add(8, Relaxed);
                    }
                })
            })
            .collect();
        // remove it while the workers learn: at a point that moves from round to round
        let target = 64 + (round as u32 % 50) * 40;
        let t = Instant::now();
        while learned.load(Relaxed) < target && t.elapsed() < Duration::from_secs(10) {
            std::hint::spin_loop();
        }
        assert!(
            learned.load(Relaxed) >= target,
            "round {round}: positive control: the workers learn"
        );
        let id = h.id;
        drop(h);
        // the workers stop by themselves a few batches after they lose the port, and so let
        // go of it while the removal waits for them
        assert!(sw.remove_port("a").is_some());
        stop.store(true, Relaxed);
        for w in workers {
            w.join().expect("worker");
        }
        // what the control thread does when woken
        sw.control_work();
        let left = sw.fdb.entries_of(id);
        assert_eq!(
            left, 0,
            "round {round}: {left} entries of the removed port survived"
        );
        assert_eq!(sw.fdb.len(), 0, "round {round}: the table is empty");
        assert_eq!(sw.fdb.learned_count(), 0, "round {round}: learned count");
    }
    eprintln!("{rounds} rounds in {:?}", started.elapsed());
}
