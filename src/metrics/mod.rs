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
//! | `tapswitch_vxlan_remotes` | gauge | port, vni | remote VTEPs a `vxlan` port knows (flood list and table destinations) |
//! | `tapswitch_vxlan_fdb_entries` | gauge | port, vni | entries of the port's own table (flood list included) |
//! | `tapswitch_vxlan_fdb_learned_total` | counter | port, vni | inner MACs learned behind a remote |
//! | `tapswitch_vxlan_fdb_moved_total` | counter | port, vni | inner MACs that moved to another remote |
//! | `tapswitch_vxlan_remote_tx_frames_total` | counter | port, vni, remote | frames sent to a flood-list remote |
//! | `tapswitch_vxlan_remote_rx_frames_total` | counter | port, vni, remote | frames accepted from a flood-list remote |
//! | `tapswitch_vxlan_remote_tx_errors_total` | counter | port, vni, remote | sends to a flood-list remote that failed |
//! | `tapswitch_vxlan_rx_dropped_total` | counter | port, vni, reason | packets dropped before the switch: `no_vni_flag`, `reserved_flags`, `bad_inner`, `stranger`, `static_mac` |
//! | `tapswitch_vxlan_gso_sends_total` | counter | port, vni | UDP GSO sends: one call carrying several datagrams (a GSO frame's segments) |
//! | `tapswitch_vxlan_gso_datagrams_total` | counter | port, vni | datagrams those UDP GSO sends carried |
//! | `tapswitch_vxlan_hub_rx_dropped_total` | counter | hub, reason | packets a VXLAN socket (`ADDRESS:PORT`) dropped: `short`, `unknown_vni` |
//! | `tapswitch_mcast_groups` | gauge | port, vlan | multicast groups the port is a member of in the VLAN |
//! | `tapswitch_mcast_mdb_entries` | gauge | | (group, VLAN) entries of the MDB |
//! | `tapswitch_mcast_messages_total` | counter | direction, type | IGMP/MLD messages received and queries sent: `igmp_v1query` ... `mld_v2report` |
//! | `tapswitch_mcast_dropped_total` | counter | reason | `igmp_parse_error`, `mld_parse_error`, `mdb_full`, `port_max_groups`, `source_limit`, `output_dropped`, `inbox_full` |
//! | `tapswitch_mcast_querier_present` | gauge | vlan, family | 1 while a querier exists (`igmp` or `mld`) |
//! | `tapswitch_mcast_frames_total` | counter | result | multicast frames `delivered` to the MDB's ports or `flooded` |
//! | `tapswitch_evpn_remote_vteps` | gauge | vni | remote VTEPs of the VNI's flood list (type-3 routes), with `--evpn` |
//! | `tapswitch_evpn_remote_macs` | gauge | vni | remote MACs zebra installed for the VNI (type-2 routes) |
//! | `tapswitch_evpn_routes_installed_total` | counter | | remote MACs installed from zebra's routes |
//! | `tapswitch_evpn_routes_withdrawn_total` | counter | | remote MACs withdrawn |
//! | `tapswitch_evpn_local_macs_advertised_total` | counter | | local MACs written to the shadow bridges for zebra to advertise |
//! | `tapswitch_evpn_sync_errors_total` | counter | | failed netlink requests and failed table changes of the EVPN service |
//! | `tapswitch_evpn_resyncs_total` | counter | | full dumps after a lost netlink event or a lagging table reader |
//! | `tapswitch_evpn_local_neighs_advertised_total` | counter | | local MAC+IP bindings written to the shadow bridges for zebra to advertise |
//! | `tapswitch_neigh_suppress_answered_total` | counter | family | ARP requests (`ipv4`) and neighbour solicitations (`ipv6`) answered from the MAC+IP table |
//! | `tapswitch_neigh_entries` | gauge | origin | MAC+IP bindings: `local` (snooped from ARP/ND) or `remote` (EVPN type-2 routes) |
//! | `tapswitch_neigh_learned_total` | counter | | local MAC+IP bindings learned or moved |
//! | `tapswitch_neigh_table_full_total` | counter | | MAC+IP bindings not taken because the table was full |

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use crate::dataplane::Switch;

mod evpn;
mod fdb;
mod mcast;
mod neigh;
mod ports;
mod stp;
mod taps;
mod vxlan;

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
    "tapswitch_vxlan_gso_sends_total",
    "tapswitch_vxlan_gso_datagrams_total",
    "tapswitch_vxlan_hub_rx_dropped_total",
    "tapswitch_mcast_groups",
    "tapswitch_mcast_mdb_entries",
    "tapswitch_mcast_messages_total",
    "tapswitch_mcast_dropped_total",
    "tapswitch_mcast_querier_present",
    "tapswitch_mcast_frames_total",
    "tapswitch_evpn_remote_vteps",
    "tapswitch_evpn_remote_macs",
    "tapswitch_evpn_routes_installed_total",
    "tapswitch_evpn_routes_withdrawn_total",
    "tapswitch_evpn_local_macs_advertised_total",
    "tapswitch_evpn_sync_errors_total",
    "tapswitch_evpn_resyncs_total",
    "tapswitch_evpn_local_neighs_advertised_total",
    "tapswitch_neigh_suppress_answered_total",
    "tapswitch_neigh_entries",
    "tapswitch_neigh_learned_total",
    "tapswitch_neigh_table_full_total",
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

/// Builds every metric family from the switch's current state, one group of families per
/// file of this module.
pub fn gather(sw: &Switch) -> Vec<MetricFamily> {
    let mut out = Vec::new();
    ports::ports(sw, &mut out);
    fdb::fdb(sw, &mut out);
    fdb::vlans(sw, &mut out);
    stp::stp(sw, &mut out);
    taps::taps(sw, &mut out);
    taps::build(&mut out);
    vxlan::vxlan(sw, &mut out);
    mcast::mcast(sw, &mut out);
    evpn::evpn(sw, &mut out);
    neigh::neigh(sw, &mut out);
    out.into_iter().map(|f| f.0).collect()
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
