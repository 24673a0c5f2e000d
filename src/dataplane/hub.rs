//! The datagram hub: one unix datagram socket (QEMU `-netdev dgram`) whose every sender path
//! becomes a port `NAME-N`, created on first sight. Frames are handled on the hub's task.

use std::sync::Arc;

use super::forward::HEADROOM;
use super::registry::{LinkState, PortHandle};
use super::runtime::{DrainEnd, LogLimit, RxBuffers, RX_BATCH};
use super::Switch;
use crate::forwarding::PortFlags;
use crate::port::{sys, PortKind};

/// Datagram senders the hub cannot serve: one debug line a second at most.
static HUB_REFUSED: LogLimit = LogLimit::new(1000);

/// Reads a datagram hub: each frame goes to the port of its sender, created on first sight.
pub async fn dgram_loop(
    sw: Arc<Switch>,
    name: String,
    hub: crate::port::dgram::DgramHub,
    flags: PortFlags,
    max_learned: usize,
    max_peers: usize,
) {
    use std::collections::HashMap;
    use std::path::PathBuf;
    let afd = match sys::register(hub, false) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(listener = %name, error = %e, "cannot poll datagram socket");
            return;
        }
    };
    let mut peers: HashMap<PathBuf, Arc<PortHandle>> = HashMap::new();
    let mut next = 1u64;
    let mut bufs = RxBuffers::default();
    loop {
        let mut guard = match afd.readable().await {
            Ok(g) => g,
            Err(_) => return,
        };
        let mut reg = sw.ports();
        let settings = sw.settings.load();
        let now = sw.now();
        let mut n = 0;
        let end = loop {
            if n == RX_BATCH {
                break DrainEnd::BatchFull;
            }
            bufs.buf[..HEADROOM].fill(0);
            let area = &mut bufs.buf[HEADROOM..];
            let cap = area.len();
            let (len, from) = match afd.get_ref().sock.recv_from(area) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break DrainEnd::Empty,
                Err(e) => {
                    if HUB_REFUSED.allow(sw.now().millis() + 1000).is_some() {
                        tracing::debug!(listener = %name, error = %e, "datagram receive failed");
                    }
                    break DrainEnd::Empty;
                }
            };
            n += 1;
            let Some(path) = from.as_pathname() else {
                if HUB_REFUSED.allow(sw.now().millis() + 1000).is_some() {
                    tracing::debug!(listener = %name, "datagram from an unnamed socket: no way to reply, dropped");
                }
                continue;
            };
            let known = peers
                .get(path)
                .filter(|h| h.state() != LinkState::Gone)
                .cloned();
            let h = match known {
                Some(h) => h,
                None => match crate::port::dgram::DgramPeer::new(afd.get_ref(), path) {
                    Ok(p) => {
                        let pname = format!("{name}-{next}");
                        next += 1;
                        if sw.listener_port_count(&name, PortKind::Dgram) >= max_peers {
                            // a peer whose socket went away (kept down in case its QEMU comes
                            // back on the same path) makes room for a new one: the control
                            // thread detaches it, the sender's next datagram gets a port
                            if let Some(old) = peers.values().find(|h| h.state() == LinkState::Down)
                            {
                                sw.set_state(old, LinkState::Gone);
                            }
                            if HUB_REFUSED.allow(sw.now().millis() + 1000).is_some() {
                                tracing::debug!(listener = %name, max_peers, "datagram peer refused: max-conns");
                            }
                            continue;
                        }
                        match sw.add_port_owned(&pname, Box::new(p), flags, Some(&name)) {
                            Ok(h) => {
                                sw.fdb.set_port_limit(h.id, max_learned);
                                tracing::info!(port = %pname, peer = %path.display(), "datagram peer attached");
                                peers.retain(|_, h| h.state() != LinkState::Gone);
                                peers.insert(path.to_path_buf(), h.clone());
                                // the new peer must get floods from the rest of this batch
                                reg = sw.ports();
                                h
                            }
                            Err(e) => {
                                if HUB_REFUSED.allow(sw.now().millis() + 1000).is_some() {
                                    tracing::debug!(listener = %name, error = %e, "cannot add datagram peer");
                                }
                                continue;
                            }
                        }
                    }
                    Err(e) => {
                        if HUB_REFUSED.allow(sw.now().millis() + 1000).is_some() {
                            tracing::debug!(listener = %name, error = %e, "cannot reach datagram sender");
                        }
                        continue;
                    }
                },
            };
            sw.handle_frame(
                &reg,
                &settings,
                &h,
                &bufs.buf[..HEADROOM + len],
                len == cap,
                now,
                &mut bufs.work,
            );
        };
        sw.publish(&reg, &mut bufs.work);
        match end {
            DrainEnd::BatchFull => {
                drop(guard);
                tokio::task::yield_now().await;
            }
            _ => guard.clear_ready(),
        }
    }
}
