//! The families of captures and mirrors.

use std::sync::atomic::Ordering::Relaxed;

use prometheus::proto::MetricType;

use super::{v, Family};
use crate::dataplane::Switch;

/// Captures running, frames captured and lost, mirror copies.
pub(super) fn taps(sw: &Switch, out: &mut Vec<Family>) {
    use MetricType::{COUNTER, GAUGE};
    let ports = sw.ports();
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
}

/// Build information.
pub(super) fn build(out: &mut Vec<Family>) {
    use MetricType::GAUGE;
    let mut b = Family::new(
        "tapswitch_build_info",
        "Build information; always 1.",
        GAUGE,
    );
    b.push(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    out.push(b);
}
