//! `tapswitch run`: the process around the switch. It starts the frame-path and control
//! threads, attaches the configured ports (on the control thread), serves the control socket
//! and the TCP listener, reloads on SIGHUP and stops cleanly on SIGINT/SIGTERM (TAPs it
//! created go away with their fds; persistent ones stay).
//!
//! Signals: the SIGTERM, SIGINT and SIGHUP streams are created once, before anything else, and
//! the main loop keeps watching SIGTERM and SIGINT while a reload runs on the control thread,
//! so a stop request is never lost.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};

use crate::config::{Config, Overrides};
use crate::control::{self, Control};
use crate::dataplane::{self, Switch};
use crate::port::sys;

/// `tapswitch run`.
pub async fn run(cfg: Config, o: Overrides) -> Result<()> {
    run_with(cfg, o, false).await
}

/// `tapswitch run`, with `--evpn` (the EVPN service, [`crate::evpn`]) or without.
pub async fn run_with(cfg: Config, o: Overrides, evpn: bool) -> Result<()> {
    if evpn && o.user.is_some() {
        // the service writes the shadow bridges and removes them at exit: CAP_NET_ADMIN for
        // as long as it runs, which --user gives up
        anyhow::bail!(
            "--evpn cannot be combined with --user: the EVPN service needs CAP_NET_ADMIN for as long as it runs (it writes the shadow bridges)"
        );
    }
    // Signal streams first and once: a signal that arrives at any later point is seen.
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;

    let dp = dataplane::Dataplane::start(cfg.dataplane_threads, cfg.busy_poll_us)
        .context("cannot start the dataplane thread")?;
    let sw = Switch::new(
        &cfg.name,
        crate::forwarding::Settings {
            stp: false,
            ..cfg.settings
        },
        cfg.fdb_max,
    );
    sw.set_dataplane(&dp);
    sw.set_stp_bridge(cfg.stp_bridge)?;
    sw.set_stp(cfg.settings.stp)?;
    sw.set_mcast_config(cfg.mcast.clone())
        .context("multicast snooping settings")?;
    let ctl = Control::start(sw.clone()).context("cannot start the control thread")?;
    let ch = ctl.handle();
    let attached = {
        let (sw, cfg) = (sw.clone(), cfg.clone());
        ch.run(move || {
            for spec in &cfg.ports {
                if let Err(e) = control::attach(&sw, spec) {
                    sw.remove_all_ports();
                    return Err(e);
                }
            }
            sw.apply_file_mirrors(&cfg.mirrors);
            control::apply_file_mdb(&sw, &[], &cfg.mdb);
            Ok(())
        })
        .await
    };
    attached??;
    let stop_all = |sw: Arc<Switch>| {
        let ch = ch.clone();
        async move {
            let _ = ch.run(move || sw.remove_all_ports()).await;
        }
    };
    let evpn = if evpn {
        let sw2 = sw.clone();
        match tokio::task::spawn_blocking(move || crate::evpn::shadow::Evpn::start(sw2)).await? {
            Ok(e) => Some(Arc::new(e)),
            Err(e) => {
                stop_all(sw.clone()).await;
                return Err(anyhow::anyhow!("--evpn: {e}"));
            }
        }
    } else {
        None
    };
    if let Some(e) = &evpn {
        *sw.evpn.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
    }
    let control_sock = match &cfg.control {
        Some(path) => {
            match crate::api::serve_control(
                sw.clone(),
                ch.clone(),
                path,
                cfg.control_gid,
                cfg.api_max_conns,
            ) {
                Ok(s) => Some(s),
                Err(e) => {
                    stop_all(sw.clone()).await;
                    return Err(e.into());
                }
            }
        }
        None => None,
    };
    let server = match cfg.listen {
        Some(addr) => {
            match crate::api::serve(
                sw.clone(),
                ch.clone(),
                addr,
                cfg.api_token.clone(),
                cfg.api_max_conns,
            )
            .await
            {
                Ok(s) => Some(s),
                Err(e) => {
                    stop_all(sw.clone()).await;
                    return Err(e);
                }
            }
        }
        None => None,
    };
    if let Some(user) = &o.user {
        let (uid, gid) = sys::lookup_user(user)
            .map_err(|e| anyhow::anyhow!("--user {user}: no such user ({e})"))?;
        if let Err(e) = sys::drop_privileges(uid, gid) {
            stop_all(sw.clone()).await;
            return Err(anyhow::anyhow!(
                "--user {user}: cannot switch to uid {uid} gid {gid}: {e}"
            ));
        }
        tracing::info!(uid, gid, "dropped privileges");
    }
    let names: Vec<&str> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
    tracing::info!(
        switch = %cfg.name,
        ports = ?names,
        listen = %cfg.listen.map(|a| a.to_string()).unwrap_or_else(|| "none".into()),
        control = %cfg.control.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into()),
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
    let mut applied = control::Applied::from_config(&cfg);
    // At most one reload at a time; a SIGHUP during one asks for another after it.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1);
    let mut reloading = false;
    let mut again = false;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!(signal = "SIGTERM", "stopping"); break }
            _ = int.recv() => { tracing::info!(signal = "SIGINT", "stopping"); break }
            _ = hup.recv() => {
                if reloading {
                    again = true;
                } else {
                    reloading = true;
                    start_reload(&ch, &sw, &o, &applied, done_tx.clone());
                }
            }
            Some(r) = done_rx.recv() => {
                reloading = false;
                if let Some(a) = r {
                    applied = a;
                }
                if std::mem::take(&mut again) {
                    reloading = true;
                    start_reload(&ch, &sw, &o, &applied, done_tx.clone());
                }
            }
        }
    }
    if let Some(s) = server {
        s.abort();
    }
    drop(control_sock);
    if reloading {
        // the reload finishes on the control thread before the ports go
        let _ = done_rx.recv().await;
    }
    sw.evpn.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(e) = evpn {
        let _ = tokio::task::spawn_blocking(move || e.stop()).await;
    }
    stop_all(sw.clone()).await;
    drop(ctl);
    drop(dp);
    Ok(())
}

/// Re-reads the configuration and applies it on the control thread; sends what is now
/// applied on `done`, or `None` if the file has errors (the running configuration stays).
fn start_reload(
    ch: &control::ControlHandle,
    sw: &Arc<Switch>,
    o: &Overrides,
    applied: &control::Applied,
    done: tokio::sync::mpsc::Sender<Option<control::Applied>>,
) {
    tracing::info!("SIGHUP: reloading the configuration");
    let (ch, sw, mut o, old) = (ch.clone(), sw.clone(), o.clone(), applied.clone());
    // the API token is fixed at start; its file is not read again
    o.reload = true;
    tokio::spawn(async move {
        let r = match Config::resolve(&o) {
            Ok(new) => ch.run(move || control::reload(&sw, &old, &new)).await.ok(),
            Err(e) => {
                tracing::error!(error = %e, "reload failed; the running configuration stays");
                None
            }
        };
        let _ = done.send(r).await;
    });
}

/// Waits for SIGINT or SIGTERM (for short-lived commands such as the demo, which create
/// their signal stream here, before the wait).
pub async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
