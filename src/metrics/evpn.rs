//! The families of the EVPN service (`tapswitch run --evpn`); without it they have no samples.

use prometheus::proto::MetricType;

use super::{v, Family};
use crate::dataplane::Switch;
use crate::evpn::shadow::Evpn;

/// The families of the EVPN service.
pub(super) fn evpn(sw: &Switch, out: &mut Vec<Family>) {
    use MetricType::{COUNTER, GAUGE};
    let mut vteps = Family::new(
        "tapswitch_evpn_remote_vteps",
        "Remote VTEPs of a VNI's flood list, from zebra's type-3 routes.",
        GAUGE,
    );
    let mut macs = Family::new(
        "tapswitch_evpn_remote_macs",
        "Remote MACs zebra installed for a VNI, from type-2 routes.",
        GAUGE,
    );
    let mut installed = Family::new(
        "tapswitch_evpn_routes_installed_total",
        "Remote MACs installed from zebra's routes.",
        COUNTER,
    );
    let mut withdrawn = Family::new(
        "tapswitch_evpn_routes_withdrawn_total",
        "Remote MACs withdrawn.",
        COUNTER,
    );
    let mut advertised = Family::new(
        "tapswitch_evpn_local_macs_advertised_total",
        "Local MACs written to the shadow bridges for zebra to advertise.",
        COUNTER,
    );
    let mut errors = Family::new(
        "tapswitch_evpn_sync_errors_total",
        "Failed netlink requests and failed table changes of the EVPN service.",
        COUNTER,
    );
    let mut resyncs = Family::new(
        "tapswitch_evpn_resyncs_total",
        "Full dumps after a lost netlink event or a lagging table reader.",
        COUNTER,
    );
    let mut neighs = Family::new(
        "tapswitch_evpn_local_neighs_advertised_total",
        "Local MAC+IP bindings written to the shadow bridges for zebra to advertise.",
        COUNTER,
    );
    let e = sw.evpn.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(e) = e.as_ref().and_then(|e| e.downcast_ref::<Evpn>()) {
        for (vni, flood, remote) in e.vnis() {
            let vni = vni.to_string();
            vteps.push(&[("vni", vni.as_str())], flood.len() as f64);
            macs.push(&[("vni", vni.as_str())], remote as f64);
        }
        let s = &e.stats;
        installed.push(&[], v(&s.installed));
        withdrawn.push(&[], v(&s.withdrawn));
        advertised.push(&[], v(&s.advertised));
        errors.push(&[], v(&s.sync_errors));
        resyncs.push(&[], v(&s.resyncs));
        neighs.push(&[], v(&s.neigh_advertised));
    }
    out.extend([
        vteps, macs, installed, withdrawn, advertised, errors, resyncs, neighs,
    ]);
}
