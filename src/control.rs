//! The control plane: attaching ports and listeners, reloading the configuration, and the
//! control thread that does the switch's housekeeping and every change.
//!
//! Both the API ([`crate::api`]) and the daemon ([`crate::daemon`]) call this module; neither
//! calls the other. Changes (API changes, SIGHUP reloads), flushes, detaching a port, per-port
//! ioctls and the spanning tree run on the control thread (`tapswitch-ctl`), one closure at a
//! time, never on the frame path and never on the API's runtime: the API hands work over with
//! [`ControlHandle::run`], the frame path wakes it with [`Switch::wake_control`]. Ageing runs
//! on a thread of its own (`tapswitch-age`), and the API's reads (table pages, counts,
//! metrics) on its own pool: neither can hold up the spanning tree.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, PortSpec};
use crate::dataplane::vxlan::VxlanAttachError;
use crate::dataplane::{self, AddPortError, PortHandle, Switch};
use crate::port::dgram::DgramHub;
use crate::port::packet::{PacketError, PacketPort};
use crate::port::sockfile::{self, SockError};
use crate::port::tap::{TapError, TapPort};
use crate::port::{stream, Port, PortKind};
use crate::vxlan::spec::VxlanSpecError;

/// Why a port or listener could not be attached; [`AttachError::class`] tells the API which
/// status to answer.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The TAP could not be opened.
    #[error("port '{name}'")]
    Tap {
        /// Port name.
        name: String,
        /// What the kernel said.
        #[source]
        source: TapError,
    },
    /// The interface could not be attached with AF_PACKET.
    #[error("port '{name}'")]
    Packet {
        /// Port name.
        name: String,
        /// What the kernel said.
        #[source]
        source: PacketError,
    },
    /// The socket file could not be prepared or given its mode/owner.
    #[error("port '{name}'")]
    SockFile {
        /// Listener name.
        name: String,
        /// The reason.
        #[source]
        source: SockError,
    },
    /// The socket could not be bound or set up.
    #[error("port '{name}': cannot listen on {}", path.display())]
    Listen {
        /// Listener name.
        name: String,
        /// Socket path.
        path: PathBuf,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// The vhost-user socket could not be set up.
    #[error("port '{name}'")]
    Vhost {
        /// Port name.
        name: String,
        /// Why.
        #[source]
        source: crate::port::vhost::VhostError,
    },
    /// The switch refused the port (name taken, second uplink, full).
    #[error(transparent)]
    Add(#[from] AddPortError),
    /// A `vxlan` port could not be opened (sockets, VNI taken).
    #[error("port '{name}'")]
    Vxlan {
        /// Port name.
        name: String,
        /// The reason.
        #[source]
        source: dataplane::vxlan::VxlanAttachError,
    },
    /// The kind cannot be attached this way (in-memory ports exist only in tests).
    #[error("port '{0}': mem ports exist only in tests")]
    NotAttachable(String),
    /// Listeners need a tokio runtime.
    #[error("port '{0}': socket listeners need a running switch")]
    NoRuntime(String),
}

/// How an attach failure is classed for the API's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// The request conflicts with the switch's state (409).
    Conflict,
    /// A limit is reached (507).
    Full,
    /// The port could not be opened (422).
    Unprocessable,
}

impl AttachError {
    /// Which kind of failure this is.
    pub fn class(&self) -> FailureClass {
        match self {
            AttachError::Add(AddPortError::Duplicate(_) | AddPortError::SecondUplink { .. }) => {
                FailureClass::Conflict
            }
            AttachError::Add(AddPortError::Full) => FailureClass::Full,
            AttachError::Vxlan { source, .. } => match source {
                VxlanAttachError::VniTaken { .. }
                | VxlanAttachError::Add(AddPortError::Duplicate(_)) => FailureClass::Conflict,
                VxlanAttachError::Add(AddPortError::Full) => FailureClass::Full,
                _ => FailureClass::Unprocessable,
            },
            AttachError::SockFile {
                source: SockError::InUse(_),
                ..
            } => FailureClass::Conflict,
            _ => FailureClass::Unprocessable,
        }
    }
}

/// Opens the port a spec describes (TAP or packet kinds).
pub fn open_port(spec: &PortSpec) -> Result<Box<dyn Port>, AttachError> {
    let name = || spec.name.clone();
    match spec.kind {
        PortKind::Tap => TapPort::open_queues(&spec.arg, spec.mtu, spec.offload, spec.queues)
            .map(|p| Box::new(p) as Box<dyn Port>)
            .map_err(|source| AttachError::Tap {
                name: name(),
                source,
            }),
        PortKind::Packet => PacketPort::open(&spec.arg, spec.mtu, spec.offload)
            .map(|p| Box::new(p) as Box<dyn Port>)
            .map_err(|source| AttachError::Packet {
                name: name(),
                source,
            }),
        PortKind::Stream | PortKind::Dgram | PortKind::Vhost | PortKind::Vxlan | PortKind::Mem => {
            Err(AttachError::NotAttachable(name()))
        }
    }
}

/// Attaches a vhost-user port: binds its socket, adds it, and makes the back-end's thread
/// drain the guest's TX ring through the switch when the guest kicks it.
fn attach_vhost(sw: &Arc<Switch>, spec: &PortSpec) -> Result<Attached, AttachError> {
    use crate::port::vhost::{VhostConfig, VhostEvent, VhostPort};
    let mut cfg = VhostConfig::new(&spec.arg);
    cfg.mode = spec.sock_mode;
    cfg.owner = spec.sock_owner;
    cfg.queue_pairs = spec.queues.clamp(1, 8) as u16;
    cfg.offload = spec.offload;
    if let Some(m) = spec.mtu {
        cfg.mtu = m;
    }
    let port = Arc::new(
        VhostPort::bind(&spec.name, cfg).map_err(|source| AttachError::Vhost {
            name: spec.name.clone(),
            source,
        })?,
    );
    let h = match sw.add_port(&spec.name, Box::new(port.clone()), spec.flags) {
        Ok(h) => h,
        Err(e) => {
            port.stop();
            return Err(e.into());
        }
    };
    sw.fdb.set_port_limit(h.id, spec.max_learned);
    apply_port_settings(sw, &h, spec);
    // no guest yet: down until QEMU connects
    sw.set_state(&h, dataplane::LinkState::Down);
    let (sw_w, h_w) = (Arc::downgrade(sw), Arc::downgrade(&h));
    let bufs = std::sync::Mutex::new(dataplane::RxBuffers::default());
    port.set_handler(Some(Arc::new(move |ev| {
        let (Some(sw), Some(h)) = (sw_w.upgrade(), h_w.upgrade()) else {
            return;
        };
        match ev {
            VhostEvent::TxReady => {
                let mut b = bufs.lock().unwrap_or_else(|p| p.into_inner());
                sw.drain(&h, &mut b, dataplane::RX_BATCH);
            }
            VhostEvent::LinkUp => sw.set_state(&h, dataplane::LinkState::Up),
            VhostEvent::LinkDown => sw.set_state(&h, dataplane::LinkState::Down),
        }
    })));
    if port.is_up() {
        sw.set_state(&h, dataplane::LinkState::Up);
    }
    Ok(Attached::Port(h))
}

/// What attaching a spec made.
#[derive(Debug)]
pub enum Attached {
    /// One port.
    Port(Arc<PortHandle>),
    /// A `stream:` or `dgram:` socket whose peers become ports `NAME-N`.
    Listener(String),
}

/// Opens a port (or a listener) and attaches it to the switch. Listeners need a tokio runtime
/// (their accept task runs on the caller's runtime: the control thread's, in the daemon).
pub fn attach(sw: &Arc<Switch>, spec: &PortSpec) -> Result<Attached, AttachError> {
    // A taken name is a conflict, whatever opening the port would say (a TAP already held by
    // this very port answers EBUSY).
    if sw.ports().by_name(&spec.name).is_some() || sw.listeners().iter().any(|l| l.0 == spec.name) {
        return Err(AddPortError::Duplicate(spec.name.clone()).into());
    }
    match spec.kind {
        PortKind::Stream | PortKind::Dgram => {
            listen(sw, spec)?;
            Ok(Attached::Listener(spec.name.clone()))
        }
        PortKind::Vhost => attach_vhost(sw, spec),
        PortKind::Vxlan => {
            let vxlan_err = |source| AttachError::Vxlan {
                name: spec.name.clone(),
                source,
            };
            let Some(v) = &spec.vxlan else {
                return Err(vxlan_err(VxlanSpecError::NoLocal.into()));
            };
            let port = dataplane::vxlan::VxlanAttach {
                name: &spec.name,
                spec: v,
                flags: spec.flags,
                mtu: spec.mtu,
                max_learned: spec.max_learned,
            };
            let h = dataplane::vxlan::attach_vxlan(sw, port).map_err(vxlan_err)?;
            sw.fdb.set_port_limit(h.id, spec.max_learned);
            // VLANs, spanning tree and storm control apply to a tunnel port as to any other
            apply_port_settings(sw, &h, spec);
            Ok(Attached::Port(h))
        }
        _ => {
            let port = open_port(spec)?;
            let h = sw.add_port(&spec.name, port, spec.flags)?;
            sw.fdb.set_port_limit(h.id, spec.max_learned);
            apply_port_settings(sw, &h, spec);
            Ok(Attached::Port(h))
        }
    }
}

fn listen(sw: &Arc<Switch>, spec: &PortSpec) -> Result<(), AttachError> {
    let path = PathBuf::from(&spec.arg);
    let datagram = spec.kind == PortKind::Dgram;
    let sock_err = |source| AttachError::SockFile {
        name: spec.name.clone(),
        source,
    };
    let listen_err = |source| AttachError::Listen {
        name: spec.name.clone(),
        path: path.clone(),
        source,
    };
    let bind_err = |e| match e {
        sockfile::BindError::Sock(e) => sock_err(e),
        sockfile::BindError::Bind(e) => listen_err(e),
    };
    let rt = tokio::runtime::Handle::try_current()
        .map_err(|_| AttachError::NoRuntime(spec.name.clone()))?;
    let (mode, owner) = (spec.sock_mode, spec.sock_owner);
    let (task, file) = if datagram {
        let (hub, file) =
            sockfile::bind_at(&path, true, mode, owner, DgramHub::bind).map_err(bind_err)?;
        let frame_rt = sw.frame_runtime().unwrap_or(rt);
        let task = frame_rt.spawn(dataplane::dgram_loop(
            sw.clone(),
            spec.name.clone(),
            hub,
            spec.flags,
            spec.max_learned,
            spec.max_conns.unwrap_or(stream::DEFAULT_MAX_CONNS),
        ));
        (task, file)
    } else {
        let (l, file) = sockfile::bind_at(&path, false, mode, owner, |p| {
            std::os::unix::net::UnixListener::bind(p)
        })
        .map_err(bind_err)?;
        l.set_nonblocking(true).map_err(listen_err)?;
        let l = {
            let _guard = rt.enter();
            tokio::net::UnixListener::from_std(l).map_err(listen_err)?
        };
        let max = spec.max_conns.unwrap_or(stream::DEFAULT_MAX_CONNS);
        (
            rt.spawn(accept_loop(sw.clone(), spec.clone(), l, max)),
            file,
        )
    };
    let l = dataplane::Listener {
        name: spec.name.clone(),
        kind: spec.kind,
        path: path.clone(),
        task: task.abort_handle(),
        file,
    };
    // on error the listener is dropped, and with it its socket file
    sw.add_listener(l)?;
    Ok(())
}

fn apply_stp_storm(sw: &Switch, h: &PortHandle, spec: &PortSpec) {
    if let Err(e) = sw.set_port_stp(h, spec.stp) {
        tracing::warn!(port = %h.name, error = %e, "spanning tree settings not applied");
    }
    for (k, pps) in crate::forwarding::FloodKind::ALL.iter().zip(spec.storm) {
        h.storm.bucket(*k).set_rate(pps);
    }
    if spec.mcast != crate::mcast::PortConfig::default() {
        sw.set_port_mcast(h, spec.mcast);
    }
}

/// The configuration file's static MDB entries: those of `old` that `new` no longer has are
/// removed, those of `new` added (an entry for a port that is missing is logged and skipped).
pub fn apply_file_mdb(sw: &Switch, old: &[crate::config::MdbSpec], new: &[crate::config::MdbSpec]) {
    let entry = |m: &crate::config::MdbSpec| {
        let port = sw.ports().by_name(&m.port).map(|h| h.id)?;
        Some(crate::mcast::StaticEntry {
            port,
            group: m.grp,
            source: m.src,
            permanent: m.permanent,
            vid: m.vid,
        })
    };
    for m in old.iter().filter(|m| !new.contains(m)) {
        if let Some(e) = entry(m) {
            let _ = sw.with_mcast(|s, _| s.mdb_del(e.port, e.vid, e.group, e.source));
        }
    }
    for m in new {
        let Some(e) = entry(m) else {
            tracing::error!(port = %m.port, grp = %m.grp, "mdb entry: no such port");
            continue;
        };
        if let Err(err) = sw.with_mcast(|s, now| s.mdb_add(&e, now)) {
            tracing::error!(port = %m.port, grp = %m.grp, error = %err, "mdb entry not added");
        }
    }
}

/// The settings of a spec beyond flags: VLANs, spanning tree, storm control.
fn apply_port_settings(sw: &Switch, h: &PortHandle, spec: &PortSpec) {
    if let Some(v) = &spec.vlans {
        sw.update_port_vlans(h, |p| *p = v.clone());
    }
    apply_stp_storm(sw, h, spec);
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
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if sw.listener_port_count(&name, PortKind::Stream) >= max {
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
            Ok(h) => {
                sw.fdb.set_port_limit(h.id, spec.max_learned);
                apply_port_settings(&sw, &h, &spec);
            }
            Err(e) => tracing::warn!(listener = %name, error = %e, "cannot attach connection"),
        }
    }
}

/// Builds the switch and attaches every configured port; on any failure, what was opened is
/// closed again (nothing half-created stays behind). Receive loops run on `frame_rt` if given;
/// listeners' accept tasks on the caller's runtime.
pub fn build(
    cfg: &Config,
    frame_rt: Option<tokio::runtime::Handle>,
) -> Result<Arc<Switch>, AttachError> {
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
    sw.apply_file_mirrors(&cfg.mirrors);
    Ok(sw)
}

/// What a configuration file (with the command line) last set: the ports it declared that
/// are attached, and its switch-wide settings. A reload compares the new file with this.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The declared ports attached.
    pub ports: Vec<PortSpec>,
    /// Switch-wide settings.
    pub settings: crate::forwarding::Settings,
    /// The learned-entry limit.
    pub fdb_max: usize,
    /// Spanning tree bridge settings.
    pub stp_bridge: crate::stp::BridgeConfig,
    /// Multicast snooping settings.
    pub mcast: crate::mcast::McastConfig,
    /// Static MDB entries of the file.
    pub mdb: Vec<crate::config::MdbSpec>,
}

impl Applied {
    /// What starting with `cfg` applied.
    pub fn from_config(cfg: &Config) -> Applied {
        Applied {
            ports: cfg.ports.clone(),
            settings: cfg.settings,
            fdb_max: cfg.fdb_max,
            stp_bridge: cfg.stp_bridge,
            mcast: cfg.mcast.clone(),
            mdb: cfg.mdb.clone(),
        }
    }
}

/// `cur` takes `new` if the file changed the value (`old` != `new`); otherwise it keeps its
/// running value (which a change through the API may have set).
fn take_changed<T: PartialEq + Copy>(cur: &mut T, old: T, new: T) {
    if old != new {
        *cur = new;
    }
}

/// Flags `cur` with the flags the file changed (bits that differ between `old` and `new`)
/// taken from `new`.
fn changed_flags(
    cur: crate::forwarding::PortFlags,
    old: crate::forwarding::PortFlags,
    new: crate::forwarding::PortFlags,
) -> crate::forwarding::PortFlags {
    let changed = old.0 ^ new.0;
    crate::forwarding::PortFlags((cur.0 & !changed) | (new.0 & changed))
}

/// A port's spanning tree settings with the fields the file changed taken from `new`.
fn changed_stp(
    mut cur: crate::stp::PortConfig,
    old: &crate::stp::PortConfig,
    new: &crate::stp::PortConfig,
) -> crate::stp::PortConfig {
    take_changed(&mut cur.path_cost, old.path_cost, new.path_cost);
    take_changed(&mut cur.priority, old.priority, new.priority);
    take_changed(&mut cur.admin_edge, old.admin_edge, new.admin_edge);
    take_changed(&mut cur.auto_edge, old.auto_edge, new.auto_edge);
    take_changed(&mut cur.p2p, old.p2p, new.p2p);
    take_changed(&mut cur.bpdu_guard, old.bpdu_guard, new.bpdu_guard);
    take_changed(&mut cur.root_guard, old.root_guard, new.root_guard);
    cur
}

/// Applies a re-read configuration to a running switch (SIGHUP). Settings and port settings
/// change in place where the file changed them since it was last read (`old`); what the file
/// did not change keeps its running value, so a change made through the API stays until the
/// file itself changes that setting. Ports the old configuration declared and the new one
/// does not are detached; new ones are attached; ports in both get what the file changed (or
/// are re-opened if their kind, interface, MTU or offload changed); declared TAP and packet
/// ports that are gone or were detached are attached again. Ports attached through the API are
/// left alone. Returns what is now applied. Runs on the control thread, one closure at a time
/// like every API change, so a reload and API changes never interleave.
pub fn reload(sw: &Arc<Switch>, old: &Applied, new: &Config) -> Applied {
    if let Some(ms) = std::env::var("TAPSWITCH_TEST_SLOW_RELOAD_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        // test hook: a reload that takes a while, to check signals during one
        tracing::info!(ms, "reload: slowed down for a test");
        std::thread::sleep(Duration::from_millis(ms.min(30_000)));
    }
    let mut s = sw.settings.load();
    let (o, n) = (&old.settings, &new.settings);
    if n.mode != o.mode {
        tracing::warn!("reload: the mode cannot change at run time; restart to change it");
    }
    take_changed(&mut s.ageing_ms, o.ageing_ms, n.ageing_ms);
    take_changed(&mut s.group_fwd_mask, o.group_fwd_mask, n.group_fwd_mask);
    take_changed(
        &mut s.vepa_flood_unknown,
        o.vepa_flood_unknown,
        n.vepa_flood_unknown,
    );
    take_changed(&mut s.vlan_filtering, o.vlan_filtering, n.vlan_filtering);
    take_changed(&mut s.vlan_protocol, o.vlan_protocol, n.vlan_protocol);
    take_changed(&mut s.default_pvid, o.default_pvid, n.default_pvid);
    take_changed(&mut s.stp, o.stp, n.stp);
    let (ob, nb) = (&old.stp_bridge, &new.stp_bridge);
    let mut b = sw.stp_bridge();
    take_changed(&mut b.priority, ob.priority, nb.priority);
    take_changed(&mut b.hello_time, ob.hello_time, nb.hello_time);
    take_changed(&mut b.forward_delay, ob.forward_delay, nb.forward_delay);
    take_changed(&mut b.max_age, ob.max_age, nb.max_age);
    take_changed(&mut b.mac, ob.mac, nb.mac);
    if b != sw.stp_bridge() {
        if let Err(e) = sw.set_stp_bridge(b) {
            tracing::error!(error = %e, "reload: spanning tree bridge settings not applied");
        }
    }
    set_settings(sw, s);
    if new.mcast != old.mcast {
        // the file changed a snooping setting: the file's settings replace the running ones
        if let Err(e) = sw.set_mcast_config(new.mcast.clone()) {
            tracing::error!(error = %e, "reload: multicast settings not applied");
        }
    }
    if new.fdb_max != old.fdb_max {
        sw.fdb.set_max_learned(new.fdb_max);
    }
    let same_port = |a: &PortSpec, b: &PortSpec| {
        (
            a.kind,
            &a.arg,
            a.mtu,
            a.offload,
            a.sock_mode,
            a.sock_owner,
            a.max_conns,
            a.queues,
            &a.vxlan,
        ) == (
            b.kind,
            &b.arg,
            b.mtu,
            b.offload,
            b.sock_mode,
            b.sock_owner,
            b.max_conns,
            b.queues,
            &b.vxlan,
        )
    };
    let mut declared = Vec::new();
    for p in &old.ports {
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
        // (no handle held while detaching: it waits for every holder to let go)
        let state = sw.ports().by_name(&n.name).map(|h| h.state());
        let missing = !listener
            && match state {
                None => true,
                Some(dataplane::LinkState::Gone) => {
                    sw.remove_port(&n.name);
                    true
                }
                Some(_) => false,
            };
        let prev = old
            .ports
            .iter()
            .find(|p| p.name == n.name && same_port(n, p));
        if let (false, Some(p)) = (missing, prev) {
            if let Some(h) = sw.ports().by_name(&n.name) {
                update_port(sw, h, p, n);
                if n.vlans != p.vlans {
                    let v = n.vlans.clone().unwrap_or_else(|| {
                        crate::vlan::PortVlans::new_default(sw.settings.load().default_pvid)
                    });
                    set_port_vlans(sw, h, v);
                }
            }
            for h in sw.listener_ports(&n.name, n.kind) {
                update_port(sw, &h, p, n);
            }
            declared.push(n.clone());
            continue;
        }
        match attach(sw, n) {
            Ok(_) => declared.push(n.clone()),
            Err(e) => tracing::error!(port = %n.name, error = %e, "reload: cannot attach"),
        }
    }
    sw.apply_file_mirrors(&new.mirrors);
    apply_file_mdb(sw, &old.mdb, &new.mdb);
    tracing::info!(ports = declared.len(), "configuration reloaded");
    Applied {
        ports: declared,
        ..Applied::from_config(new)
    }
}

/// A port both files declare: what the file changed (flags, limit, spanning tree, storm
/// control) is applied; the rest keeps its running value.
fn update_port(sw: &Switch, h: &PortHandle, old: &PortSpec, new: &PortSpec) {
    let flags = changed_flags(h.flags.get(), old.flags, new.flags);
    if flags != h.flags.get() {
        if let Err(e) = sw.set_port_flags(h, flags) {
            tracing::error!(port = %h.name, error = %e, "reload: flags not changed");
        }
    }
    if old.max_learned != new.max_learned {
        sw.fdb.set_port_limit(h.id, new.max_learned);
    }
    if old.stp != new.stp {
        let cfg = changed_stp(sw.port_stp_config(h), &old.stp, &new.stp);
        if let Err(e) = sw.set_port_stp(h, cfg) {
            tracing::warn!(port = %h.name, error = %e, "reload: spanning tree settings not applied");
        }
    }
    for (i, k) in crate::forwarding::FloodKind::ALL.iter().enumerate() {
        if old.storm[i] != new.storm[i] {
            h.storm.bucket(*k).set_rate(new.storm[i]);
        }
    }
    if old.mcast != new.mcast {
        sw.set_port_mcast(h, new.mcast);
    }
}

/// Applies new switch settings. Turning VLAN filtering on or off, or changing its protocol,
/// flushes the learned entries (they were keyed by another VLAN scheme); a new `default_pvid`
/// moves the ports that still have the old default as PVID, as Linux does.
pub fn set_settings(sw: &Switch, new: crate::forwarding::Settings) {
    let old = sw.settings.load();
    if old.stp != new.stp {
        if let Err(e) = sw.set_stp(new.stp) {
            tracing::error!(error = %e, "spanning tree not started");
        }
    }
    if old.default_pvid != new.default_pvid {
        for h in sw.ports().iter() {
            let r = sw.update_port_vlans(h, |p| {
                p.apply_default_pvid(old.default_pvid, new.default_pvid)
            });
            if let Err(e) = r {
                tracing::warn!(port = %h.name, error = %e, "default_pvid not applied");
            }
        }
    }
    sw.settings.store(new);
    if old.vlan_filtering != new.vlan_filtering || old.vlan_protocol != new.vlan_protocol {
        let n = sw.fdb.flush(crate::fdb::FlushFilter {
            dynamic_only: true,
            ..Default::default()
        });
        tracing::info!(
            vlan_filtering = new.vlan_filtering,
            protocol = %new.vlan_protocol,
            flushed = n,
            "VLAN filtering changed"
        );
    }
}

/// Replaces a port's VLANs; the entries of the port in VLANs it leaves are flushed (Linux
/// `nbp_vlan_delete`). Whole-table work: run on the control thread.
pub fn set_port_vlans(sw: &Switch, h: &PortHandle, v: crate::vlan::PortVlans) {
    let mut gone = crate::vlan::VlanSet::new();
    sw.update_port_vlans(h, |p| {
        for vid in p.members().iter() {
            if !v.is_member(vid) {
                let _ = gone.insert(vid);
            }
        }
        *p = v;
    });
    if !gone.is_empty() {
        sw.fdb.flush_port_vlans(h.id, &gone);
    }
}

/// Deletes VLANs `range` from a port in one step (read and written under the registry's
/// lock, so a concurrent change is not lost) and flushes the port's entries in the VLANs it
/// left (Linux `nbp_vlan_delete`). Returns whether the port had any of them. Whole-table work:
/// run on the control thread.
pub fn del_port_vlans(
    sw: &Switch,
    h: &PortHandle,
    range: crate::vlan::VidRange,
) -> Result<bool, crate::vlan::VlanError> {
    let mut gone = crate::vlan::VlanSet::new();
    let r = sw.update_port_vlans(h, |p| {
        let mut v = p.clone();
        let had = v.del(range)?;
        for vid in p.members().iter() {
            if !v.is_member(vid) {
                let _ = gone.insert(vid);
            }
        }
        *p = v;
        Ok(had)
    });
    if !gone.is_empty() {
        sw.fdb.flush_port_vlans(h.id, &gone);
    }
    r
}

/// Adds a user entry as `bridge fdb add|replace MAC dev PORT [vlan N] master` does: with VLAN
/// filtering on and no VLAN given (`vlan == 0`), in VLAN 0 and in every VLAN of the port, so
/// that it matches the port's frames (Linux `br_fdb_add`); see
/// [`crate::fdb::Fdb::insert_user_vids`]. With filtering off, only the VLAN-0 entry, the one
/// frames are looked up with (a Linux built with VLAN filtering support adds the per-VLAN
/// entries then too; they do nothing until filtering is turned on).
pub fn add_fdb_entry(
    sw: &Switch,
    h: &PortHandle,
    mac: crate::wire::MacAddr,
    vlan: u16,
    kind: crate::fdb::EntryKind,
    replace: bool,
) -> Result<(), crate::fdb::FdbError> {
    let vids = if sw.settings.load().vlan_filtering {
        *h.vlans().members()
    } else {
        crate::vlan::VlanSet::EMPTY
    };
    sw.fdb
        .insert_user_vids(mac, vlan, &vids, h.id, kind, replace, sw.now())
}

/// Removes the entries of `mac` on a port as `bridge fdb del MAC dev PORT [vlan N] master`
/// does (with no VLAN: VLAN 0 and every VLAN of the port, whether filtering is on or not, so
/// entries added while it was on can go after it was turned off); returns how many went.
pub fn del_fdb_entry(sw: &Switch, h: &PortHandle, mac: crate::wire::MacAddr, vlan: u16) -> usize {
    let vids = *h.vlans().members();
    sw.fdb.remove_on_port(mac, vlan, &vids, h.id)
}

/// The control thread is gone (the switch is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the switch is stopping")]
pub struct ControlGone;

/// Runs closures on the control thread.
#[derive(Clone, Debug)]
pub struct ControlHandle {
    rt: tokio::runtime::Handle,
}

impl ControlHandle {
    /// Work on the runtime of the caller (tests and tools that run no control thread).
    pub fn current() -> ControlHandle {
        ControlHandle {
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// Runs `f` on the control thread and returns its result. `f` may block that thread (a
    /// table walk, an ioctl); it runs inside the control runtime, so it may spawn tasks there.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, ControlGone> {
        self.rt
            .spawn(async move { f() })
            .await
            .map_err(|_| ControlGone)
    }

    /// The control runtime's handle.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.rt
    }
}

/// The control thread: housekeeping on a timer, the frame path's requests (flushes,
/// detaching gone ports, BPDUs), listeners' accept tasks, and every closure handed over with
/// [`ControlHandle::run`]; and beside it the ageing thread (`tapswitch-age`), whose pass over
/// the whole table may wait for readers holding parts of it, and so must not hold up the
/// spanning tree. Both stopped and joined on drop.
pub struct Control {
    handle: ControlHandle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    ager: Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Control {
    /// Starts the thread (`tapswitch-ctl`) for `sw`.
    pub fn start(sw: Arc<Switch>) -> std::io::Result<Control> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = ControlHandle {
            rt: rt.handle().clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_age, age_stopped) = std::sync::mpsc::channel::<()>();
        let sw_age = sw.clone();
        let ager = std::thread::Builder::new()
            .name("tapswitch-age".into())
            .spawn(move || {
                // until the sender goes (or sends): a pass every ageing interval
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    age_stopped.recv_timeout(sw_age.ageing_interval())
                {
                    sw_age.age();
                }
            })?;
        let thread = std::thread::Builder::new()
            .name("tapswitch-ctl".into())
            .spawn(move || {
                rt.block_on(async move {
                    tokio::select! {
                        _ = stopped => {}
                        _ = housekeeping(sw) => {}
                    }
                });
                rt.shutdown_background();
            })?;
        Ok(Control {
            handle,
            stop: Some(stop),
            thread: Some(thread),
            ager: Some((stop_age, ager)),
        })
    }

    /// A handle to give work to the thread.
    pub fn handle(&self) -> ControlHandle {
        self.handle.clone()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some((stop, t)) = self.ager.take() {
            drop(stop);
            let _ = t.join();
        }
    }
}

/// Housekeeping on a timer (ageing has its own thread), links read every
/// [`Switch::link_poll_interval`], and the frame path's requests as they come.
async fn housekeeping(sw: Arc<Switch>) {
    let mut next = tokio::time::Instant::now() + sw.tick_interval();
    let mut links = tokio::time::Instant::now() + sw.link_poll_interval();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                sw.tick_control();
                next = tokio::time::Instant::now() + sw.tick_interval();
            }
            _ = tokio::time::sleep_until(links) => {
                if sw.poll_links() > 0 {
                    sw.control_work();
                } else {
                    // snooping's timers (last-member queries run at 1 s)
                    sw.mcast_work();
                }
                links = tokio::time::Instant::now() + sw.link_poll_interval();
            }
            _ = sw.control_wanted() => {
                sw.control_work();
            }
        }
    }
}
