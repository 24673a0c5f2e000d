//! The families of ARP/ND suppression ([`crate::neigh`]).

use prometheus::proto::MetricType;

use super::{v, Family};
use crate::dataplane::Switch;

/// The neighbour table and the answers given from it.
pub(super) fn neigh(sw: &Switch, out: &mut Vec<Family>) {
    use MetricType::{COUNTER, GAUGE};
    let mut answered = Family::new(
        "tapswitch_neigh_suppress_answered_total",
        "ARP requests (family ipv4) and neighbour solicitations (family ipv6) the switch answered from its MAC+IP table.",
        COUNTER,
    );
    let mut entries = Family::new(
        "tapswitch_neigh_entries",
        "MAC+IP bindings of the ARP/ND suppression table, by origin (local: snooped, remote: EVPN type-2 routes).",
        GAUGE,
    );
    let mut learned = Family::new(
        "tapswitch_neigh_learned_total",
        "Local MAC+IP bindings learned or moved from ARP and neighbour discovery.",
        COUNTER,
    );
    let mut full = Family::new(
        "tapswitch_neigh_table_full_total",
        "MAC+IP bindings not taken because the table was full.",
        COUNTER,
    );
    let s = &sw.neigh.stats;
    answered.push(&[("family", "ipv4")], v(&s.answered[0]));
    answered.push(&[("family", "ipv6")], v(&s.answered[1]));
    let (local, remote) = sw.neigh.table().counts();
    entries.push(&[("origin", "local")], local as f64);
    entries.push(&[("origin", "remote")], remote as f64);
    learned.push(&[], v(&s.learned));
    full.push(&[], v(&s.table_full));
    out.extend([answered, entries, learned, full]);
}
