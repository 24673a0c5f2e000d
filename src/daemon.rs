//! `tapswitch run`: opens the configured ports, serves the API, ages the table, and stops
//! cleanly on SIGINT/SIGTERM (TAPs it created go away with their fds; persistent ones stay).

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::{Config, PortSpec};
use crate::dataplane::{self, PortHandle, Switch};
use crate::port::dgram::DgramHub;
use crate::port::tap::TapPort;
use crate::port::{sockfile, stream, Port, PortKind};

/// Opens the port a spec describes.
pub fn open_port(spec: &PortSpec) -> Result<Box<dyn Port>> {
    match spec.kind {
        PortKind::Tap => Ok(Box::new(TapPort::open(&spec.arg, spec.mtu, spec.offload)?)),
        PortKind::Packet => Ok(Box::new(crate::port::packet::PacketPort::open(
            &spec.arg,
            spec.mtu,
            spec.offload,
        )?)),
        PortKind::Stream | PortKind::Dgram => {
            anyhow::bail!(
                "{} specs make listeners, not single ports",
                spec.kind.as_str()
            )
        }
        PortKind::Mem => anyhow::bail!("mem ports exist only in tests"),
    }
}

/// What attaching a spec made.
#[derive(Debug)]
pub enum Attached {
    Port(Arc<PortHandle>),
    /// A `stream:` or `dgram:` socket whose peers become ports `NAME-N`.
    Listener(String),
}

/// Opens a port (or a listener) and attaches it to the switch. Listeners need a tokio runtime.
pub fn attach(sw: &Arc<Switch>, spec: &PortSpec) -> Result<Attached> {
    let ctx = || format!("port '{}'", spec.name);
    match spec.kind {
        PortKind::Stream | PortKind::Dgram => {
            listen(sw, spec).with_context(ctx)?;
            Ok(Attached::Listener(spec.name.clone()))
        }
        _ => {
            let port = open_port(spec).with_context(ctx)?;
            let h = sw.add_port(&spec.name, port, spec.flags)?;
            sw.fdb.set_port_limit(h.id, spec.max_learned);
            Ok(Attached::Port(h))
        }
    }
}

fn listen(sw: &Arc<Switch>, spec: &PortSpec) -> Result<()> {
    let path = std::path::PathBuf::from(&spec.arg);
    let datagram = spec.kind == PortKind::Dgram;
    sockfile::prepare(&path, datagram)?;
    let task = if datagram {
        let hub = DgramHub::bind(&path).with_context(|| format!("bind {}", path.display()))?;
        sockfile::apply(&path, spec.sock_mode, spec.sock_owner)?;
        tokio::spawn(dataplane::dgram_loop(
            sw.clone(),
            spec.name.clone(),
            hub,
            spec.flags,
            spec.max_learned,
        ))
    } else {
        let l = std::os::unix::net::UnixListener::bind(&path)
            .with_context(|| format!("bind {}", path.display()))?;
        l.set_nonblocking(true)?;
        sockfile::apply(&path, spec.sock_mode, spec.sock_owner)?;
        let l = tokio::net::UnixListener::from_std(l)?;
        let max = spec.max_conns.unwrap_or(stream::DEFAULT_MAX_CONNS);
        tokio::spawn(accept_loop(sw.clone(), spec.clone(), l, max))
    };
    let l = dataplane::Listener {
        name: spec.name.clone(),
        kind: spec.kind,
        path: path.clone(),
        task: task.abort_handle(),
    };
    if let Err(e) = sw.add_listener(l) {
        let _ = std::fs::remove_file(&path);
        return Err(e.into());
    }
    Ok(())
}

/// Accepts stream connections; each becomes a port `NAME-N` until it closes.
async fn accept_loop(
    sw: Arc<Switch>,
    spec: PortSpec,
    listener: tokio::net::UnixListener,
    max: usize,
) {
    let name = spec.name.clone();
    let mut next = 1u64;
    loop {
        let sock = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if sw.listener_ports(&name, PortKind::Stream).len() >= max {
            tracing::warn!(listener = %name, max, "connection refused: too many connections (max-conns)");
            continue;
        }
        let conn = match sock.into_std().and_then(stream::StreamConn::new) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(listener = %name, error = %e, "cannot set up connection");
                continue;
            }
        };
        let pname = format!("{name}-{next}");
        next += 1;
        match sw.add_port(&pname, Box::new(conn), spec.flags) {
            Ok(h) => sw.fdb.set_port_limit(h.id, spec.max_learned),
            Err(e) => tracing::warn!(listener = %name, error = %e, "cannot attach connection"),
        }
    }
}

/// Builds the switch and attaches every configured port; on any failure, what was opened is
/// closed again (nothing half-created stays behind).
pub fn build(cfg: &Config) -> Result<Arc<Switch>> {
    let sw = Switch::new(&cfg.name, cfg.settings, cfg.fdb_max);
    for spec in &cfg.ports {
        if let Err(e) = attach(&sw, spec) {
            sw.remove_all_ports();
            return Err(e);
        }
    }
    Ok(sw)
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs the periodic table work forever.
pub async fn ticker(sw: Arc<Switch>) {
    loop {
        tokio::time::sleep(sw.tick_interval()).await;
        sw.tick();
    }
}

/// `tapswitch run`.
pub async fn run(cfg: Config) -> Result<()> {
    let sw = build(&cfg)?;
    let server = match cfg.listen {
        Some(addr) => Some(crate::api::serve(sw.clone(), addr, cfg.api_token.clone()).await?),
        None => None,
    };
    let ticker = tokio::spawn(ticker(sw.clone()));
    let names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
    tracing::info!(
        switch = %cfg.name,
        ports = ?names,
        listen = %cfg.listen.map(|a| a.to_string()).unwrap_or_else(|| "none".into()),
        "ready"
    );
    if cfg.default_ports {
        eprintln!(
            "tapswitch: running the built-in default: TAP ports {} and {}.\n\
             Attach a namespace to each, for example:\n  \
             ip netns add h0 && ip link set tsw0 netns h0\n  \
             ip -n h0 addr add 198.18.0.1/24 dev tsw0 && ip -n h0 link set tsw0 up\n\
             (and the same for tsw1 with h1 and 198.18.0.2), then: ip netns exec h0 ping 198.18.0.2",
            crate::config::DEFAULT_PORTS[0],
            crate::config::DEFAULT_PORTS[1]
        );
    }
    shutdown_signal().await;
    tracing::info!("stopping");
    ticker.abort();
    if let Some(s) = server {
        s.abort();
    }
    sw.remove_all_ports();
    Ok(())
}
