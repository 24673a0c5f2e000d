//! The families of the `vxlan` ports and their sockets.

use prometheus::proto::MetricType;

use super::{v, Family};
use crate::dataplane::Switch;

/// The families of the `vxlan` ports and their sockets.
pub(super) fn vxlan(sw: &Switch, out: &mut Vec<Family>) {
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
    let mut gso = Family::new(
        "tapswitch_vxlan_gso_sends_total",
        "UDP GSO sends of a vxlan port: one call that carried several datagrams (a GSO frame's segments).",
        COUNTER,
    );
    let mut gso_d = Family::new(
        "tapswitch_vxlan_gso_datagrams_total",
        "Datagrams a vxlan port's UDP GSO sends carried.",
        COUNTER,
    );
    for m in &members {
        // one series per VNI: a port with a vni-map has a table and flood list per VNI
        let port = m.port.name.as_str();
        let vni = m.vtep.vni().to_string();
        let pv = [("port", port), ("vni", vni.as_str())];
        gso.push(&pv, v(&m.vtep.stats.gso_sends_total));
        gso_d.push(&pv, v(&m.vtep.stats.gso_datagrams_total));
        let vt = &m.vtep;
        let set = vt.remotes();
        remotes.push(&pv, set.len() as f64);
        entries.push(&pv, vt.len() as f64);
        learned.push(&pv, v(&vt.stats.learned_total));
        moved.push(&pv, v(&vt.stats.moved_total));
        for r in &set.flood {
            let ip = r.ip.to_string();
            let l = [
                ("port", port),
                ("vni", vni.as_str()),
                ("remote", ip.as_str()),
            ];
            tx.push(&l, v(&r.tx_frames));
            rx.push(&l, v(&r.rx_frames));
            txe.push(&l, v(&r.tx_errors));
        }
        for r in VxlanDrop::PER_PORT {
            drops.push(
                &[("port", port), ("vni", vni.as_str()), ("reason", r.label())],
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
    out.extend([
        remotes, entries, learned, moved, tx, rx, txe, drops, gso, gso_d, hub,
    ]);
}
