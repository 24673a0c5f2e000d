//! Prometheus exposition, built at scrape time from the switch's atomic counters (the frame
//! path only does relaxed increments; no registry lookup or lock per frame).
//!
//! Every metric (counters are from the switch's point of view: rx = frames read from a port):
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `tapswitch_port_rx_frames_total` | counter | port | frames read from the port |
//! | `tapswitch_port_rx_bytes_total` | counter | port | bytes read from the port |
//! | `tapswitch_port_tx_frames_total` | counter | port | frames written to the port |
//! | `tapswitch_port_tx_bytes_total` | counter | port | bytes written to the port |
//! | `tapswitch_port_rx_forwarded_total` | counter | port | frames read from the port and sent to one port |
//! | `tapswitch_port_rx_flooded_total` | counter | port | frames read from the port and flooded |
//! | `tapswitch_port_rx_dropped_total` | counter | port, reason | received frames sent nowhere, by reason |
//! | `tapswitch_port_tx_dropped_total` | counter | port, reason | frames not written to this port, by reason |
//! | `tapswitch_port_up` | gauge | port | 1 while frames pass, 0 when down or gone |
//! | `tapswitch_port_link_changes_total` | counter | port | up/down transitions |
//! | `tapswitch_port_mtu_bytes` | gauge | port | egress MTU used for the size check |
//! | `tapswitch_port_info` | gauge | port, kind | always 1 |
//! | `tapswitch_fdb_entries` | gauge | | entries of every kind |
//! | `tapswitch_fdb_learned_entries` | gauge | | learned entries (Linux `fdb_n_learned`) |
//! | `tapswitch_fdb_max_entries` | gauge | | the learned-entry limit |
//! | `tapswitch_fdb_learned_total` | counter | | new entries learned from traffic |
//! | `tapswitch_fdb_moved_total` | counter | | entries moved to another port |
//! | `tapswitch_fdb_aged_total` | counter | | entries removed by ageing |
//! | `tapswitch_fdb_flushed_total` | counter | | entries removed by flushes |
//! | `tapswitch_fdb_learn_limit_hits_total` | counter | | sources not learned: limit reached |
//! | `tapswitch_frames_forwarded_total` | counter | | frames sent to one port |
//! | `tapswitch_frames_flooded_total` | counter | kind | frames flooded (broadcast, multicast, unknown_unicast) |
//! | `tapswitch_vlan_rx_frames_total` | counter | vlan | frames classified into the VLAN (VLAN filtering on), for VLANs some port is a member of |
//! | `tapswitch_vlan_rx_bytes_total` | counter | vlan | bytes of those frames |
//! | `tapswitch_port_device_dropped_total` | counter | port, reason | frames a port's device dropped before the switch saw them (vhost: bad_descriptor, too_short, oversized, queue_full, bad_header, buffer_too_small, not_ready) |
//! | `tapswitch_stp_port_state` | gauge | port, state | 1 for the port's spanning tree state (discarding, learning, forwarding), while STP runs |
//! | `tapswitch_stp_port_role` | gauge | port, role | 1 for the port's role (root, designated, alternate, backup, disabled) |
//! | `tapswitch_stp_bpdus_total` | counter | port, direction | BPDUs received (`rx`) and sent (`tx`) |
//! | `tapswitch_stp_topology_changes_total` | counter | | topology changes seen by the bridge |
//! | `tapswitch_stp_root_changes_total` | counter | | times the root bridge changed |
//! | `tapswitch_stp_bpdu_delay_seconds` | histogram | | how long received BPDUs waited for the control thread (from the frame path's inbox to the tree) |
//! | `tapswitch_stp_bpdu_delay_max_seconds` | gauge | | the longest of those waits since the switch started |
//! | `tapswitch_captures_active` | gauge | | captures running |
//! | `tapswitch_capture_frames_total` | counter | | frames put into capture buffers |
//! | `tapswitch_capture_dropped_total` | counter | | frames captures lost: buffer full (slow reader) or contended |
//! | `tapswitch_mirror_frames_total` | counter | mirror | copies sent to the mirror's output port |
//! | `tapswitch_mirror_dropped_total` | counter | mirror | copies the output port did not take |
//! | `tapswitch_build_info` | gauge | version | always 1 |
//! | `tapswitch_vxlan_remotes` | gauge | port | remote VTEPs a `vxlan` port knows (flood list and table destinations) |
//! | `tapswitch_vxlan_fdb_entries` | gauge | port | entries of the port's own table (flood list included) |
//! | `tapswitch_vxlan_fdb_learned_total` | counter | port | inner MACs learned behind a remote |
//! | `tapswitch_vxlan_fdb_moved_total` | counter | port | inner MACs that moved to another remote |
//! | `tapswitch_vxlan_remote_tx_frames_total` | counter | port, remote | frames sent to a flood-list remote |
//! | `tapswitch_vxlan_remote_rx_frames_total` | counter | port, remote | frames accepted from a flood-list remote |
//! | `tapswitch_vxlan_remote_tx_errors_total` | counter | port, remote | sends to a flood-list remote that failed |
//! | `tapswitch_vxlan_rx_dropped_total` | counter | port, reason | packets dropped before the switch: `no_vni_flag`, `reserved_flags`, `bad_inner`, `stranger`, `static_mac` |
//! | `tapswitch_vxlan_hub_rx_dropped_total` | counter | hub, reason | packets a VXLAN socket (`ADDRESS:PORT`) dropped: `short`, `unknown_vni` |

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use crate::dataplane::Switch;
use crate::forwarding::{FloodKind, RxDrop, TxDrop};

/// Every metric name this module exports (the dashboard test compares against it).
pub const METRIC_NAMES: &[&str] = &[
    "tapswitch_port_rx_frames_total",
    "tapswitch_port_rx_bytes_total",
    "tapswitch_port_tx_frames_total",
    "tapswitch_port_tx_bytes_total",
    "tapswitch_port_rx_forwarded_total",
    "tapswitch_port_rx_flooded_total",
    "tapswitch_port_rx_dropped_total",
    "tapswitch_port_tx_dropped_total",
    "tapswitch_port_up",
    "tapswitch_port_link_changes_total",
    "tapswitch_port_mtu_bytes",
    "tapswitch_port_info",
    "tapswitch_fdb_entries",
    "tapswitch_fdb_learned_entries",
    "tapswitch_fdb_max_entries",
    "tapswitch_fdb_learned_total",
    "tapswitch_fdb_moved_total",
    "tapswitch_fdb_aged_total",
    "tapswitch_fdb_flushed_total",
    "tapswitch_fdb_learn_limit_hits_total",
    "tapswitch_frames_forwarded_total",
    "tapswitch_frames_flooded_total",
    "tapswitch_vlan_rx_frames_total",
    "tapswitch_vlan_rx_bytes_total",
    "tapswitch_port_device_dropped_total",
    "tapswitch_stp_port_state",
    "tapswitch_stp_port_role",
    "tapswitch_stp_bpdus_total",
    "tapswitch_stp_topology_changes_total",
    "tapswitch_stp_root_changes_total",
    "tapswitch_stp_bpdu_delay_seconds",
    "tapswitch_stp_bpdu_delay_max_seconds",
    "tapswitch_captures_active",
    "tapswitch_capture_frames_total",
    "tapswitch_capture_dropped_total",
    "tapswitch_mirror_frames_total",
    "tapswitch_mirror_dropped_total",
    "tapswitch_build_info",
    "tapswitch_vxlan_remotes",
    "tapswitch_vxlan_fdb_entries",
    "tapswitch_vxlan_fdb_learned_total",
    "tapswitch_vxlan_fdb_moved_total",
    "tapswitch_vxlan_remote_tx_frames_total",
    "tapswitch_vxlan_remote_rx_frames_total",
    "tapswitch_vxlan_remote_tx_errors_total",
    "tapswitch_vxlan_rx_dropped_total",
    "tapswitch_vxlan_hub_rx_dropped_total",
];

struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, t: MetricType) -> Family {
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(t);
        Family(f)
    }

    fn push(&mut self, labels: &[(&str, &str)], value: f64) {
        let lp = labels
            .iter()
            .map(|(k, v)| {
                let mut p = LabelPair::default();
                p.set_name(k.to_string());
                p.set_value(v.to_string());
                p
            })
            .collect();
        let mut m = Metric::from_label(lp);
        if self.0.get_field_type() == MetricType::COUNTER {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
        self.0.mut_metric().push(m);
    }
}

fn v(a: &AtomicU64) -> f64 {
    a.load(Relaxed) as f64
}

/// Builds every metric family from the switch's current state.
pub fn gather(sw: &Switch) -> Vec<MetricFamily> {
    use MetricType::{COUNTER, GAUGE};
    let ports = sw.ports();
    let mut out = Vec::new();
    type Getter = fn(&crate::dataplane::PortCounters) -> &AtomicU64;
    let per_port: [(&str, &str, Getter); 7] = [
        (
            "tapswitch_port_rx_frames_total",
            "Frames the switch read from the port.",
            |c| &c.rx_frames,
        ),
        (
            "tapswitch_port_rx_bytes_total",
            "Bytes the switch read from the port.",
            |c| &c.rx_bytes,
        ),
        (
            "tapswitch_port_tx_frames_total",
            "Frames the switch wrote to the port.",
            |c| &c.tx_frames,
        ),
        (
            "tapswitch_port_tx_bytes_total",
            "Bytes the switch wrote to the port.",
            |c| &c.tx_bytes,
        ),
        (
            "tapswitch_port_rx_forwarded_total",
            "Frames read from the port and sent to one port.",
            |c| &c.rx_forwarded,
        ),
        (
            "tapswitch_port_rx_flooded_total",
            "Frames read from the port and flooded.",
            |c| &c.rx_flooded,
        ),
        (
            "tapswitch_port_link_changes_total",
            "Port transitions between up and down.",
            |c| &c.link_changes,
        ),
    ];
    for (name, help, get) in per_port {
        let mut f = Family::new(name, help, COUNTER);
        for h in ports.iter() {
            f.push(&[("port", &h.name)], v(get(&h.counters)));
        }
        out.push(f);
    }
    let mut rx = Family::new(
        "tapswitch_port_rx_dropped_total",
        "Frames read from the port and sent nowhere, by reason.",
        COUNTER,
    );
    let mut tx = Family::new(
        "tapswitch_port_tx_dropped_total",
        "Frames that were to leave through the port but were not written, by reason.",
        COUNTER,
    );
    let mut up = Family::new(
        "tapswitch_port_up",
        "1 while frames pass through the port.",
        GAUGE,
    );
    let mut mtu = Family::new("tapswitch_port_mtu_bytes", "Egress MTU of the port.", GAUGE);
    let mut info = Family::new("tapswitch_port_info", "Port kind; always 1.", GAUGE);
    for h in ports.iter() {
        for r in RxDrop::ALL {
            rx.push(
                &[("port", &h.name), ("reason", r.label())],
                v(&h.counters.rx_dropped[r.index()]),
            );
        }
        for r in TxDrop::ALL {
            tx.push(
                &[("port", &h.name), ("reason", r.label())],
                v(&h.counters.tx_dropped[r.index()]),
            );
        }
        up.push(&[("port", &h.name)], if h.is_up() { 1.0 } else { 0.0 });
        mtu.push(&[("port", &h.name)], h.port.mtu() as f64);
        info.push(&[("port", &h.name), ("kind", h.kind().as_str())], 1.0);
    }
    out.extend([rx, tx, up, mtu, info]);

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
    let mut dd = Family::new(
        "tapswitch_port_device_dropped_total",
        "Frames the port's device dropped before the switch saw them, by reason.",
        COUNTER,
    );
    for h in ports.iter() {
        for (r, n) in h.port.own_drops() {
            dd.push(&[("port", &h.name), ("reason", r)], n as f64);
        }
    }
    out.push(dd);
    let mut ps = Family::new(
        "tapswitch_stp_port_state",
        "Spanning tree state of the port (1 for the current state).",
        GAUGE,
    );
    let mut pr = Family::new(
        "tapswitch_stp_port_role",
        "Spanning tree role of the port (1 for the current role).",
        GAUGE,
    );
    let mut pb = Family::new(
        "tapswitch_stp_bpdus_total",
        "BPDUs received and sent on the port.",
        COUNTER,
    );
    let mut tc = Family::new(
        "tapswitch_stp_topology_changes_total",
        "Topology changes seen by the bridge.",
        COUNTER,
    );
    let mut rc = Family::new(
        "tapswitch_stp_root_changes_total",
        "Times the root bridge changed.",
        COUNTER,
    );
    let (tcn, rcn) = match sw.stp_status() {
        Some((b, statuses)) => {
            for st in &statuses {
                let Some(h) = ports.get(st.port) else {
                    continue;
                };
                for s in [
                    crate::stp::PortState::Discarding,
                    crate::stp::PortState::Learning,
                    crate::stp::PortState::Forwarding,
                ] {
                    let on = if st.state == s { 1.0 } else { 0.0 };
                    ps.push(&[("port", &h.name), ("state", s.as_str())], on);
                }
                for r in [
                    crate::stp::PortRole::Root,
                    crate::stp::PortRole::Designated,
                    crate::stp::PortRole::Alternate,
                    crate::stp::PortRole::Backup,
                    crate::stp::PortRole::Disabled,
                ] {
                    let on = if st.role == r { 1.0 } else { 0.0 };
                    pr.push(&[("port", &h.name), ("role", r.as_str())], on);
                }
                let c = &st.counters;
                let rx = c.rx_config + c.rx_rst + c.rx_tcn + c.rx_invalid + c.rx_ignored;
                let tx = c.tx_config + c.tx_rst + c.tx_tcn;
                pb.push(&[("port", &h.name), ("direction", "rx")], rx as f64);
                pb.push(&[("port", &h.name), ("direction", "tx")], tx as f64);
            }
            (b.topology_change_count, b.root_changes)
        }
        None => (0, 0),
    };
    tc.push(&[], tcn as f64);
    rc.push(&[], rcn as f64);
    out.extend([ps, pr, pb, tc, rc]);
    let (buckets, count, sum, max) = sw.stp.delay.read();
    let mut hist = Histogram::default();
    hist.set_sample_count(count);
    hist.set_sample_sum(sum);
    hist.set_bucket(
        buckets
            .into_iter()
            .map(|(le, n)| {
                let mut b = Bucket::default();
                b.set_upper_bound(le);
                b.set_cumulative_count(n);
                b
            })
            .collect(),
    );
    let mut m = Metric::default();
    m.set_histogram(hist);
    let mut bd = Family::new(
        "tapswitch_stp_bpdu_delay_seconds",
        "How long received BPDUs waited for the control thread.",
        MetricType::HISTOGRAM,
    );
    bd.0.mut_metric().push(m);
    let mut bm = Family::new(
        "tapswitch_stp_bpdu_delay_max_seconds",
        "The longest wait of a received BPDU for the control thread since the start.",
        GAUGE,
    );
    bm.push(&[], max);
    out.extend([bd, bm]);
    let taps = ports.taps();
    let live = taps.captures();
    let mut ca = Family::new("tapswitch_captures_active", "Captures running.", GAUGE);
    ca.push(&[], live.len() as f64);
    let mut cf = Family::new(
        "tapswitch_capture_frames_total",
        "Frames put into capture buffers.",
        COUNTER,
    );
    cf.push(
        &[],
        (sw.capture.frames.load(Relaxed)
            + live
                .iter()
                .map(|c| c.ring.frames.load(Relaxed))
                .sum::<u64>()) as f64,
    );
    let mut cd = Family::new(
        "tapswitch_capture_dropped_total",
        "Frames captures lost because their buffer was full (a slow reader) or contended.",
        COUNTER,
    );
    cd.push(
        &[],
        (sw.capture.dropped.load(Relaxed)
            + live
                .iter()
                .map(|c| c.ring.dropped.load(Relaxed))
                .sum::<u64>()) as f64,
    );
    let mut mf = Family::new(
        "tapswitch_mirror_frames_total",
        "Copies sent to the mirror's output port.",
        COUNTER,
    );
    let mut md = Family::new(
        "tapswitch_mirror_dropped_total",
        "Mirror copies the output port did not take (full queue, MTU, link down).",
        COUNTER,
    );
    for m in taps.mirrors() {
        mf.push(&[("mirror", &m.spec.name)], v(&m.frames));
        md.push(&[("mirror", &m.spec.name)], v(&m.dropped));
    }
    out.extend([ca, cf, cd, mf, md]);
    let mut b = Family::new(
        "tapswitch_build_info",
        "Build information; always 1.",
        GAUGE,
    );
    b.push(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    out.push(b);
    gather_vxlan(sw, &mut out);
    out.into_iter().map(|f| f.0).collect()
}

/// The families of the `vxlan` ports and their sockets.
fn gather_vxlan(sw: &Switch, out: &mut Vec<Family>) {
    use crate::vxlan::vtep::VxlanDrop;
    use MetricType::{COUNTER, GAUGE};
    let members = sw.vxlan_members();
    let mut remotes = Family::new(
        "tapswitch_vxlan_remotes",
        "Remote VTEPs a vxlan port knows (flood list and table destinations).",
        GAUGE,
    );
    let mut entries = Family::new(
        "tapswitch_vxlan_fdb_entries",
        "Entries of a vxlan port's own table, flood list included.",
        GAUGE,
    );
    let mut learned = Family::new(
        "tapswitch_vxlan_fdb_learned_total",
        "Inner MACs a vxlan port learned behind a remote.",
        COUNTER,
    );
    let mut moved = Family::new(
        "tapswitch_vxlan_fdb_moved_total",
        "Inner MACs that moved to another remote.",
        COUNTER,
    );
    let mut tx = Family::new(
        "tapswitch_vxlan_remote_tx_frames_total",
        "Frames a vxlan port sent to a remote of its flood list.",
        COUNTER,
    );
    let mut rx = Family::new(
        "tapswitch_vxlan_remote_rx_frames_total",
        "Frames a vxlan port accepted from a remote of its flood list.",
        COUNTER,
    );
    let mut txe = Family::new(
        "tapswitch_vxlan_remote_tx_errors_total",
        "Sends to a remote of the flood list that failed.",
        COUNTER,
    );
    let mut drops = Family::new(
        "tapswitch_vxlan_rx_dropped_total",
        "VXLAN packets a vxlan port dropped before the switch, by reason.",
        COUNTER,
    );
    for m in &members {
        let port = m.port.name.as_str();
        let vt = &m.vtep;
        let set = vt.remotes();
        remotes.push(&[("port", port)], set.len() as f64);
        entries.push(&[("port", port)], vt.len() as f64);
        learned.push(&[("port", port)], v(&vt.stats.learned_total));
        moved.push(&[("port", port)], v(&vt.stats.moved_total));
        for r in &set.flood {
            let ip = r.ip.to_string();
            let l = [("port", port), ("remote", ip.as_str())];
            tx.push(&l, v(&r.tx_frames));
            rx.push(&l, v(&r.rx_frames));
            txe.push(&l, v(&r.tx_errors));
        }
        for r in VxlanDrop::PER_PORT {
            drops.push(
                &[("port", port), ("reason", r.label())],
                vt.stats.rx_dropped.get(r) as f64,
            );
        }
    }
    let mut hub = Family::new(
        "tapswitch_vxlan_hub_rx_dropped_total",
        "Packets a VXLAN socket dropped before finding a port: too short, or an unknown VNI.",
        COUNTER,
    );
    for h in sw.vxlan_hubs() {
        let label = h.label();
        for r in [VxlanDrop::Short, VxlanDrop::UnknownVni] {
            hub.push(
                &[("hub", label.as_str()), ("reason", r.label())],
                h.dropped.get(r) as f64,
            );
        }
    }
    out.extend([remotes, entries, learned, moved, tx, rx, txe, drops, hub]);
}

/// The Prometheus text format (0.0.4) of [`gather`]. A family with no samples yet (per-port
/// families of a switch with no ports) still gets its `# HELP` and `# TYPE` lines, which the
/// prometheus crate's encoder refuses to write for an empty family.
pub fn render(sw: &Switch) -> String {
    let mut buf = Vec::new();
    let enc = TextEncoder::new();
    for f in gather(sw) {
        if f.get_metric().is_empty() {
            let t = if f.get_field_type() == MetricType::COUNTER {
                "counter"
            } else {
                "gauge"
            };
            buf.extend_from_slice(
                format!(
                    "# HELP {} {}\n# TYPE {} {t}\n",
                    f.name(),
                    f.help(),
                    f.name()
                )
                .as_bytes(),
            );
        } else if let Err(e) = enc.encode(std::slice::from_ref(&f), &mut buf) {
            tracing::error!(error = %e, family = f.name(), "metrics encoding failed");
        }
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarding::{PortFlags, Settings};
    use crate::port::mem::MemPort;

    #[test]
    fn a_switch_without_ports_still_describes_every_family() {
        let sw = Switch::new("t", Settings::default(), 10);
        let text = render(&sw);
        for n in METRIC_NAMES {
            assert!(
                text.contains(&format!("# TYPE {n} ")),
                "{n} missing:\n{text}"
            );
        }
        assert!(text.contains("tapswitch_fdb_entries 0"));
    }

    #[test]
    fn every_name_is_exported_and_documented() {
        let sw = Switch::new("t", Settings::default(), 10);
        sw.add_port("a", Box::new(MemPort::default()), PortFlags::default())
            .unwrap();
        let text = render(&sw);
        for n in METRIC_NAMES {
            assert!(
                text.contains(&format!("# TYPE {n} ")),
                "{n} missing:\n{text}"
            );
        }
        let fams = gather(&sw);
        assert_eq!(fams.len(), METRIC_NAMES.len());
        assert!(text
            .contains("tapswitch_port_rx_dropped_total{port=\"a\",reason=\"invalid_source\"} 0"));
        assert!(text.contains("tapswitch_build_info{version=\""));
    }
}
