//! The families of each port: frames and bytes each way, drops by reason, state, MTU, kind and
//! the drops of the port's own device.

use std::sync::atomic::AtomicU64;

use prometheus::proto::MetricType;

use super::{v, Family};
use crate::dataplane::Switch;
use crate::forwarding::{RxDrop, TxDrop};

/// Per-port counters, drops by reason, state, MTU and kind.
pub(super) fn ports(sw: &Switch, out: &mut Vec<Family>) {
    use MetricType::{COUNTER, GAUGE};
    let ports = sw.ports();
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
}
