//! The families of multicast snooping: groups per port and VLAN, IGMP/MLD messages by type
//! and version (Linux's mcast_stats names), multicast frames delivered to the MDB's ports or
//! flooded, what was dropped and why, and whether each VLAN has a querier.

use std::sync::atomic::Ordering::Relaxed;

use prometheus::proto::MetricType;

use super::{v, Family};
use crate::dataplane::Switch;
use crate::mcast::Family as IpFamily;

/// The snooping families.
pub(super) fn mcast(sw: &Switch, out: &mut Vec<Family>) {
    use MetricType::{COUNTER, GAUGE};
    let ports = sw.ports();
    let name = |id| {
        ports
            .get(id)
            .map_or_else(|| id.to_string(), |h| h.name.clone())
    };
    let mut groups = Family::new(
        "tapswitch_mcast_groups",
        "Multicast groups a port is a member of, per VLAN (learned and static).",
        GAUGE,
    );
    let mut entries = Family::new(
        "tapswitch_mcast_mdb_entries",
        "(group, VLAN) entries of the multicast database (limit mcast_hash_max).",
        GAUGE,
    );
    let mut msgs = Family::new(
        "tapswitch_mcast_messages_total",
        "IGMP and MLD messages received (rx) and queries sent (tx), by type and version.",
        COUNTER,
    );
    let mut drops = Family::new(
        "tapswitch_mcast_dropped_total",
        "Snooping drops and refusals, by reason.",
        COUNTER,
    );
    let mut querier = Family::new(
        "tapswitch_mcast_querier_present",
        "1 while a querier (another one, or the switch's own) exists for the VLAN and family.",
        GAUGE,
    );
    let stats = sw.with_mcast(|st, now| {
        for ((port, vid), n) in st.groups_per_port_vlan() {
            let (p, vl) = (name(port), vid.to_string());
            groups.push(&[("port", &p), ("vlan", &vl)], n as f64);
        }
        entries.push(&[], st.group_count() as f64);
        for vid in st.querier_vlans() {
            for f in [IpFamily::V4, IpFamily::V6] {
                let present = st.querier_state(vid, f, now).querier.is_some();
                let fam = if f == IpFamily::V4 { "igmp" } else { "mld" };
                querier.push(
                    &[("vlan", &vid.to_string()), ("family", fam)],
                    if present { 1.0 } else { 0.0 },
                );
            }
        }
        *st.stats()
    });
    for (dir, c) in [("rx", stats.rx), ("tx", stats.tx)] {
        for (t, n) in [
            ("igmp_v1query", c.igmp_v1queries),
            ("igmp_v2query", c.igmp_v2queries),
            ("igmp_v3query", c.igmp_v3queries),
            ("igmp_leave", c.igmp_leaves),
            ("igmp_v1report", c.igmp_v1reports),
            ("igmp_v2report", c.igmp_v2reports),
            ("igmp_v3report", c.igmp_v3reports),
            ("mld_v1query", c.mld_v1queries),
            ("mld_v2query", c.mld_v2queries),
            ("mld_done", c.mld_leaves),
            ("mld_v1report", c.mld_v1reports),
            ("mld_v2report", c.mld_v2reports),
        ] {
            msgs.push(&[("direction", dir), ("type", t)], n as f64);
        }
    }
    for (r, n) in [
        ("igmp_parse_error", stats.igmp_parse_errors),
        ("mld_parse_error", stats.mld_parse_errors),
        ("mdb_full", stats.mdb_full),
        ("port_max_groups", stats.port_max_groups),
        ("source_limit", stats.source_limit),
        ("output_dropped", stats.output_dropped),
        ("inbox_full", sw.mcast.inbox_dropped.load(Relaxed)),
    ] {
        drops.push(&[("reason", r)], n as f64);
    }
    let mut frames = Family::new(
        "tapswitch_mcast_frames_total",
        "Multicast frames while snooping: delivered to the ports the MDB named, or flooded \
         (no querier, a link-local group, not IP).",
        COUNTER,
    );
    frames.push(&[("result", "delivered")], v(&sw.mcast.delivered));
    frames.push(&[("result", "flooded")], v(&sw.mcast.flooded));
    out.extend([groups, entries, msgs, drops, querier, frames]);
}
