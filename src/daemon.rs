//! `tapswitch run`: opens the configured ports, serves the API, ages the table, and stops
//! cleanly on SIGINT/SIGTERM (TAPs it created go away with their fds; persistent ones stay).

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::{Config, PortSpec};
use crate::dataplane::{self, PortHandle, Switch};
use crate::port::dgram::DgramHub;
use crate::port::tap::TapPort;
use crate::port::{sockfile, stream, sys, Port, PortKind};

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
        let rt = sw
            .frame_runtime()
            .context("datagram ports need a runtime")?;
        rt.spawn(dataplane::dgram_loop(
            sw.clone(),
            spec.name.clone(),
            hub,
            spec.flags,
            spec.max_learned,
            spec.max_conns.unwrap_or(stream::DEFAULT_MAX_CONNS),
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
    let mut refused = 0u64;
    let mut last_warn = None;
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
            refused += 1;
            // one line per burst, not per connection: a connection flood must not flood the log
            if last_warn.is_none_or(|t: std::time::Instant| t.elapsed().as_secs() >= 10) {
                tracing::warn!(listener = %name, max, refused, "connections refused: too many (max-conns)");
                last_warn = Some(std::time::Instant::now());
            }
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
        match sw.add_port_owned(&pname, Box::new(conn), spec.flags, Some(&name)) {
            Ok(h) => sw.fdb.set_port_limit(h.id, spec.max_learned),
            Err(e) => tracing::warn!(listener = %name, error = %e, "cannot attach connection"),
        }
    }
}

/// Builds the switch and attaches every configured port; on any failure, what was opened is
/// closed again (nothing half-created stays behind). Receive loops run on `frame_rt` if given.
pub fn build(cfg: &Config, frame_rt: Option<tokio::runtime::Handle>) -> Result<Arc<Switch>> {
    let sw = Switch::new(&cfg.name, cfg.settings, cfg.fdb_max);
    if let Some(rt) = frame_rt {
        sw.set_runtime(rt);
    }
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

/// Applies a re-read configuration to a running switch (SIGHUP): settings change in place;
/// ports the old configuration declared and the new one does not are detached; new ones are
/// attached; ports in both get the new flags and limits (or are re-opened if their kind,
/// interface, MTU or offload changed); declared TAP and packet ports that are gone or were
/// detached are attached again. Ports attached through the API are left alone.
/// Returns the ports now declared.
pub fn reload(sw: &Arc<Switch>, old: &[PortSpec], new: &Config) -> Vec<PortSpec> {
    let mut s = sw.settings.load();
    if new.settings.mode != s.mode {
        tracing::warn!("reload: the mode cannot change at run time; restart to change it");
    }
    s.ageing_ms = new.settings.ageing_ms;
    s.group_fwd_mask = new.settings.group_fwd_mask;
    s.vepa_flood_unknown = new.settings.vepa_flood_unknown;
    sw.settings.store(s);
    sw.fdb.set_max_learned(new.fdb_max);
    let same_port = |a: &PortSpec, b: &PortSpec| {
        (
            a.kind,
            &a.arg,
            a.mtu,
            a.offload,
            a.sock_mode,
            a.sock_owner,
            a.max_conns,
        ) == (
            b.kind,
            &b.arg,
            b.mtu,
            b.offload,
            b.sock_mode,
            b.sock_owner,
            b.max_conns,
        )
    };
    let mut declared = Vec::new();
    for p in old {
        let keep = new
            .ports
            .iter()
            .any(|n| n.name == p.name && same_port(n, p));
        if !keep && !sw.remove_listener(&p.name) {
            sw.remove_port(&p.name);
        }
    }
    for n in &new.ports {
        // A declared TAP or packet port that is gone (interface deleted) or was detached through
        // the API is attached again: after a reload the configuration file is the truth.
        let listener = matches!(n.kind, PortKind::Stream | PortKind::Dgram);
        let missing = !listener
            && match sw.ports().by_name(&n.name) {
                None => true,
                Some(h) if h.state() == dataplane::LinkState::Gone => {
                    sw.remove_port(&n.name);
                    true
                }
                Some(_) => false,
            };
        if !missing && old.iter().any(|p| p.name == n.name && same_port(n, p)) {
            if let Some(h) = sw.ports().by_name(&n.name) {
                h.flags.set(n.flags);
                sw.fdb.set_port_limit(h.id, n.max_learned);
            }
            for h in sw.listener_ports(&n.name, n.kind) {
                h.flags.set(n.flags);
                sw.fdb.set_port_limit(h.id, n.max_learned);
            }
            declared.push(n.clone());
            continue;
        }
        match attach(sw, n) {
            Ok(_) => declared.push(n.clone()),
            Err(e) => {
                tracing::error!(port = %n.name, error = format!("{e:#}"), "reload: cannot attach")
            }
        }
    }
    tracing::info!(ports = declared.len(), "configuration reloaded");
    declared
}

/// `tapswitch run`.
pub async fn run(cfg: Config, o: crate::config::Overrides) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let dp = dataplane::Dataplane::start(cfg.dataplane_threads, cfg.busy_poll_us)
        .context("cannot start the dataplane thread")?;
    let sw = build(&cfg, Some(dp.handle()))?;
    if cfg.busy_poll_us > 0 {
        dp.handle().spawn(sw.clone().busy_poll(cfg.busy_poll_us));
    }
    let server = match cfg.listen {
        Some(addr) => match crate::api::serve(sw.clone(), addr, cfg.api_token.clone()).await {
            Ok(s) => Some(s),
            Err(e) => {
                sw.remove_all_ports();
                return Err(e);
            }
        },
        None => None,
    };
    let mut hup = signal(SignalKind::hangup())?;
    if let Some(user) = &o.user {
        let (uid, gid) = sys::lookup_user(user)
            .map_err(|e| anyhow::anyhow!("--user {user}: no such user ({e})"))?;
        if let Err(e) = sys::drop_privileges(uid, gid) {
            sw.remove_all_ports();
            return Err(anyhow::anyhow!(
                "--user {user}: cannot switch to uid {uid} gid {gid}: {e}"
            ));
        }
        tracing::info!(uid, gid, "dropped privileges");
    }
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
    let mut declared = cfg.ports.clone();
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            _ = hup.recv() => {
                match Config::resolve(&o) {
                    Ok(new) => {
                        let sw2 = sw.clone();
                        let old = declared.clone();
                        declared = tokio::task::spawn_blocking(move || reload(&sw2, &old, &new))
                            .await
                            .unwrap_or(declared);
                    }
                    Err(e) => tracing::error!(error = %e, "reload failed; the running configuration stays"),
                }
            }
        }
    }
    tracing::info!("stopping");
    ticker.abort();
    if let Some(s) = server {
        s.abort();
    }
    sw.remove_all_ports();
    drop(dp);
    Ok(())
}
