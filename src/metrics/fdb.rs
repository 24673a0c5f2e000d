//! The families of the forwarding table, of the frames forwarded and flooded, and per VLAN.

use std::sync::atomic::AtomicU64;

use prometheus::proto::MetricType;

use super::{v, Family};
use crate::dataplane::Switch;
use crate::forwarding::FloodKind;

/// Table sizes and counts, frames forwarded and flooded.
pub(super) fn fdb(sw: &Switch, out: &mut Vec<Family>) {
    use MetricType::{COUNTER, GAUGE};
    let fdb = &sw.fdb;
    let gauges: [(&str, &str, f64); 3] = [
        (
            "tapswitch_fdb_entries",
            "Forwarding table entries of every kind.",
            fdb.len() as f64,
        ),
        (
            "tapswitch_fdb_learned_entries",
            "Learned forwarding table entries (fdb_n_learned).",
            fdb.learned_count() as f64,
        ),
        (
            "tapswitch_fdb_max_entries",
            "Limit on learned entries (fdb_max_learned).",
            fdb.max_learned() as f64,
        ),
    ];
    for (name, help, val) in gauges {
        let mut f = Family::new(name, help, GAUGE);
        f.push(&[], val);
        out.push(f);
    }
    let s = &fdb.stats;
    let counters: [(&str, &str, &AtomicU64); 6] = [
        (
            "tapswitch_fdb_learned_total",
            "Entries learned from traffic.",
            &s.learned_total,
        ),
        (
            "tapswitch_fdb_moved_total",
            "Entries moved to another port.",
            &s.moved_total,
        ),
        (
            "tapswitch_fdb_aged_total",
            "Entries removed by ageing.",
            &s.aged_total,
        ),
        (
            "tapswitch_fdb_flushed_total",
            "Entries removed by flushes (port down or removed, API).",
            &s.flushed_total,
        ),
        (
            "tapswitch_fdb_learn_limit_hits_total",
            "Sources not learned because the learned limit was reached.",
            &s.learn_limit_hits_total,
        ),
        (
            "tapswitch_frames_forwarded_total",
            "Frames sent to exactly one port.",
            &sw.stats.forwarded,
        ),
    ];
    for (name, help, a) in counters {
        let mut f = Family::new(name, help, COUNTER);
        f.push(&[], v(a));
        out.push(f);
    }
    let mut fl = Family::new(
        "tapswitch_frames_flooded_total",
        "Frames flooded, by kind.",
        COUNTER,
    );
    for k in FloodKind::ALL {
        fl.push(&[("kind", k.label())], v(sw.stats.flooded(k)));
    }
    out.push(fl);
}

/// Frames and bytes per VLAN (for VLANs some port is a member of).
pub(super) fn vlans(sw: &Switch, out: &mut Vec<Family>) {
    use MetricType::COUNTER;
    let ports = sw.ports();
    // per-VLAN series only for VLANs some port is a member of
    let mut configured = crate::vlan::VlanSet::new();
    for h in ports.iter() {
        configured = configured.union(h.vlans().members());
    }
    let mut vf = Family::new(
        "tapswitch_vlan_rx_frames_total",
        "Frames classified into the VLAN by ingress filtering.",
        COUNTER,
    );
    let mut vb = Family::new(
        "tapswitch_vlan_rx_bytes_total",
        "Bytes of the frames classified into the VLAN.",
        COUNTER,
    );
    for vid in configured.iter() {
        let l = vid.to_string();
        vf.push(&[("vlan", &l)], v(&sw.stats.vlan_rx_frames[vid as usize]));
        vb.push(&[("vlan", &l)], v(&sw.stats.vlan_rx_bytes[vid as usize]));
    }
    out.extend([vf, vb]);
}
