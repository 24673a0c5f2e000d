//! The frame path's side of captures and mirrors ([`crate::capture`]). Runs only while the
//! registry snapshot's [`crate::capture::Taps::armed`] is set; allocates nothing and never
//! waits: captures append to their ring or count a drop, mirror copies go out through the
//! output port's ordinary send path (segmented for a port without offloads, counted as its tx).

use std::sync::atomic::Ordering::Relaxed;

use std::sync::Arc;

use super::forward::{Outgoing, Scratch};
use super::registry::{PortHandle, Registry};
use super::Switch;
use crate::capture::{Direction, Mirror, MirrorError, MirrorSpec, Taps, Totals, MAX_MIRRORS};
use crate::types::PortId;

/// What captures and mirrors ask of the running switch.
impl crate::capture::Host for Switch {
    fn update_taps<R>(&self, f: impl FnOnce(&mut Taps, &dyn Fn(&str) -> Option<PortId>) -> R) -> R {
        Switch::update_taps(self, |taps, reg| f(taps, &|n| reg.by_name(n).map(|h| h.id)))
    }

    fn port_names(&self) -> Vec<(PortId, String)> {
        self.ports()
            .iter()
            .map(|h| (h.id, h.name.clone()))
            .collect()
    }

    fn capture_totals(&self) -> &Totals {
        &self.capture
    }
}

impl Switch {
    /// A frame was read from `ingress`: offers it to the captures and starts the frame's mirror
    /// bookkeeping. Returns whether the port is a mirror output (the frame is then dropped).
    pub(super) fn tap_ingress(
        &self,
        reg: &Registry,
        ingress: &PortHandle,
        frame: &[u8],
        w: &mut Scratch,
    ) -> bool {
        let taps = reg.taps();
        w.tap_ts = 0;
        w.mirrored = 0;
        for c in taps.captures() {
            c.offer(ingress.id, Direction::Inbound, &mut w.tap_ts, frame);
        }
        taps.is_output(ingress.id)
    }

    /// Copies a received frame, as received, to the mirrors selecting its ingress port.
    pub(super) fn mirror_ingress(
        &self,
        reg: &Registry,
        ingress: &PortHandle,
        out: &Outgoing<'_>,
        w: &mut Scratch,
    ) {
        let mask = reg.taps().src_mask(ingress.id);
        if mask != 0 {
            self.mirror_copies(reg, mask, out, w);
        }
    }

    /// Copies a frame about to be sent to `egress`, as sent, to the mirrors selecting that port
    /// that have not copied this frame yet.
    pub(super) fn mirror_egress(
        &self,
        reg: &Registry,
        egress: &PortHandle,
        out: &Outgoing<'_>,
        w: &mut Scratch,
    ) {
        let mask = reg.taps().dst_mask(egress.id) & !w.mirrored;
        if mask != 0 {
            self.mirror_copies(reg, mask, out, w);
        }
    }

    fn mirror_copies(&self, reg: &Registry, mask: u32, out: &Outgoing<'_>, w: &mut Scratch) {
        w.mirrored |= mask;
        let taps = reg.taps();
        let mut bits = mask;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let (Some(m), Some(o)) = (
                taps.mirrors().get(i),
                taps.output_of(i).and_then(|id| reg.get(id)),
            ) else {
                continue;
            };
            m.frames.fetch_add(1, Relaxed);
            if !self.send_out(reg, o, out, w) {
                m.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// A frame (or segment) was written to `egress`: offers it to the captures.
    pub(super) fn capture_egress(
        &self,
        reg: &Registry,
        egress: &PortHandle,
        ts: &mut u64,
        frame: &[u8],
    ) {
        for c in reg.taps().captures() {
            c.offer(egress.id, Direction::Outbound, ts, frame);
        }
    }
}

/// Mirrors: the switch's side of [`crate::capture::mirror`] (ports by name, the output's
/// table entries).
impl Switch {
    /// Adds a mirror. `from_file` marks one declared in the configuration file; with
    /// `require_ports` every port it names must be attached (the API), else ports may come
    /// later (the file). The output port's learned and dynamic table entries are flushed:
    /// whole-table work, so call it on the control thread.
    pub fn add_mirror(
        &self,
        spec: MirrorSpec,
        from_file: bool,
        require_ports: bool,
    ) -> Result<Arc<Mirror>, MirrorError> {
        spec.check()?;
        let m = std::sync::Arc::new(Mirror::new(spec, from_file));
        let output = self.update_taps(|taps, reg| {
            let spec = &m.spec;
            if require_ports {
                if let Some(p) = spec.ports().find(|p| reg.by_name(p).is_none()) {
                    return Err(MirrorError::UnknownPort {
                        mirror: spec.name.clone(),
                        port: p.clone(),
                    });
                }
            }
            let replacing = taps.mirror(&spec.name).is_some();
            if replacing && !from_file {
                return Err(MirrorError::Exists(spec.name.clone()));
            }
            if !replacing && taps.mirrors().len() >= MAX_MIRRORS {
                return Err(MirrorError::Full);
            }
            spec.check_against(taps.mirrors().iter().map(|m| &m.spec))?;
            taps.put_mirror(m.clone());
            Ok(reg.by_name(&spec.output).map(|h| h.id))
        })?;
        if let Some(id) = output {
            let n = self.fdb.flush_port_dynamic(id);
            tracing::debug!(port = %m.spec.output, flushed = n, "mirror output: entries flushed");
        }
        tracing::info!(
            mirror = %m.spec.name,
            select_src = ?m.spec.select_src,
            select_dst = ?m.spec.select_dst,
            select_all = m.spec.select_all,
            output = %m.spec.output,
            "mirror added"
        );
        Ok(m)
    }

    /// Removes a mirror.
    pub fn remove_mirror(&self, name: &str) -> Result<Arc<Mirror>, MirrorError> {
        let m = self
            .update_taps(|taps, _| taps.remove_mirror(name))
            .ok_or_else(|| MirrorError::NotFound(name.to_string()))?;
        tracing::info!(mirror = %name, "mirror removed");
        Ok(m)
    }

    /// The mirrors, in the order they were added.
    pub fn mirrors(&self) -> Vec<Arc<Mirror>> {
        self.ports().taps().mirrors().to_vec()
    }

    /// Makes the file's mirrors the switch's (start and SIGHUP): mirrors from an earlier file
    /// that this one no longer declares go, declared ones are added or replaced (counters kept
    /// when unchanged); mirrors added through the API stay unless the file declares one of the
    /// same name. Errors are logged, the other mirrors still apply. Control thread.
    pub fn apply_file_mirrors(&self, specs: &[MirrorSpec]) {
        for m in self.mirrors() {
            if m.from_file && !specs.iter().any(|s| s.name == m.spec.name) {
                let _ = self.remove_mirror(&m.spec.name);
            }
        }
        for s in specs {
            let same = self.mirrors().iter().any(|m| m.from_file && m.spec == *s);
            if same {
                continue;
            }
            if let Err(e) = self.add_mirror(s.clone(), true, false) {
                tracing::error!(mirror = %s.name, error = %e, "mirror from the configuration not applied");
            }
        }
    }
}
