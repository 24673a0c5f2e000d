//! The families of the spanning tree: port states and roles, BPDUs, changes and the time BPDUs
//! wait for the control thread.

use prometheus::proto::MetricType;

use super::Family;
use crate::dataplane::Switch;
use prometheus::proto::{Bucket, Histogram, Metric};

/// Spanning tree port states and roles, BPDUs, topology and root changes, BPDU delay.
pub(super) fn stp(sw: &Switch, out: &mut Vec<Family>) {
    use MetricType::{COUNTER, GAUGE};
    let ports = sw.ports();
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
}
