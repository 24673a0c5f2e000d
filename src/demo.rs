//! `tapswitch demo`: a switch with two or three TAP ports, each moved into a network namespace
//! host with an address from 198.18.0.0/15 (the benchmarking range); the hosts ping each other,
//! the switch's counters and table are printed, and everything is removed on exit, Ctrl-C
//! included.

use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::cli::DemoArgs;
use crate::config::{parse_spec, Config, DEFAULT_LISTEN};
use crate::dataplane::Switch;

/// Namespaces the demo made; deleted on drop, even while unwinding.
struct Hosts {
    namespaces: Vec<String>,
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in self.namespaces.drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn host_addr(i: usize) -> String {
    format!("198.18.0.{}", i + 1)
}

fn setup(namespaces: &[String], taps: &[String]) -> Result<()> {
    for (i, (tap, ns)) in taps.iter().zip(namespaces).enumerate() {
        let ns = ns.as_str();
        ip(&["netns", "add", ns])?;
        ip(&["link", "set", tap, "netns", ns])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", host_addr(i)),
            "dev",
            tap,
        ])?;
        ip(&["-n", ns, "link", "set", tap, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        println!(
            "host {i}: namespace {ns}, interface {tap}, address {}",
            host_addr(i)
        );
    }
    Ok(())
}

fn ping_all(namespaces: &[String]) -> Result<usize> {
    let mut ok = 0;
    for (i, ns) in namespaces.iter().enumerate() {
        for j in 0..namespaces.len() {
            if i == j {
                continue;
            }
            let out = Command::new("ip")
                .args([
                    "netns", "exec", ns, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                ])
                .arg(host_addr(j))
                .output()
                .context("cannot run ping (install iputils-ping)")?;
            let text = String::from_utf8_lossy(&out.stdout);
            let summary = text
                .lines()
                .find(|l| l.contains("packets transmitted"))
                .unwrap_or("no reply");
            println!("host {i} -> host {j} ({}): {summary}", host_addr(j));
            if out.status.success() {
                ok += 1;
            }
        }
    }
    Ok(ok)
}

fn show(sw: &Switch) {
    use std::sync::atomic::Ordering::Relaxed;
    println!("\nswitch ports (switch's view: rx = read from the port):");
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>8}  state",
        "port", "rx", "tx", "rx_drop", "tx_drop"
    );
    for h in sw.ports().iter() {
        let c = &h.counters;
        println!(
            "{:<14} {:>8} {:>8} {:>8} {:>8}  {:?}",
            h.name,
            c.rx_frames.load(Relaxed),
            c.tx_frames.load(Relaxed),
            c.rx_dropped_total(),
            c.tx_dropped_total(),
            h.state()
        );
    }
    println!(
        "forwarded {} frames, flooded {} (broadcast {}, multicast {}, unknown unicast {})",
        sw.stats.forwarded.load(Relaxed),
        sw.stats
            .flooded
            .iter()
            .map(|a| a.load(Relaxed))
            .sum::<u64>(),
        sw.stats.flooded[0].load(Relaxed),
        sw.stats.flooded[1].load(Relaxed),
        sw.stats.flooded[2].load(Relaxed),
    );
    println!("\nforwarding table (bridge fdb show):");
    let ports = sw.ports();
    for r in sw.fdb.snapshot(sw.now()) {
        let name = ports.get(r.port).map(|h| h.name.as_str()).unwrap_or("?");
        println!("{} dev {name} master {}", r.mac, sw.name);
    }
}

/// Runs the demo.
pub async fn demo(a: DemoArgs) -> Result<()> {
    // The demo creates namespaces and TAPs: say so plainly rather than fail half-way.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        bail!("the demo needs root: it creates TAP interfaces and network namespaces (try sudo)");
    }
    let pid = std::process::id();
    let taps: Vec<String> = (0..a.hosts).map(|i| format!("tsd{pid}{i}")).collect();
    let mut cfg = Config::resolve(&crate::config::Overrides {
        listen: Some("none".into()),
        no_default_ports: true,
        ..Default::default()
    })?;
    cfg.ports = taps
        .iter()
        .map(|t| parse_spec(t).map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let sw = crate::daemon::build(&cfg, None)?;
    let server = crate::api::serve(sw.clone(), DEFAULT_LISTEN.parse()?, None).await;
    // Every namespace the demo may create, removed on every way out (deleting one that was
    // never made is harmless).
    let hosts = Hosts {
        namespaces: (0..taps.len())
            .map(|i| format!("tsdemo-{pid}-{i}"))
            .collect(),
    };
    println!("tapswitch demo: switch with TAP ports {}", taps.join(", "));
    let work = {
        let (taps, namespaces) = (taps.clone(), hosts.namespaces.clone());
        tokio::task::spawn_blocking(move || -> Result<usize> {
            setup(&namespaces, &taps)?;
            println!();
            ping_all(&namespaces)
        })
    };
    let result = tokio::select! {
        r = work => match r {
            Err(e) => Err(anyhow::anyhow!("demo task failed: {e}")),
            Ok(Err(e)) => Err(e),
            Ok(Ok(ok)) => {
                show(&sw);
                let pairs = taps.len() * (taps.len() - 1);
                println!("\n{ok} of {pairs} host pairs reached each other through tapswitch");
                if a.hold {
                    hold(&sw, &hosts, server.is_ok()).await;
                }
                if ok == pairs {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("{} host pairs could not ping", pairs - ok))
                }
            }
        },
        _ = crate::daemon::shutdown_signal() => {
            println!("\ninterrupted: cleaning up");
            Ok(())
        }
    };
    drop(hosts);
    if let Ok(s) = server {
        s.abort();
    }
    sw.remove_all_ports();
    println!("removed the demo's namespaces and TAP interfaces");
    result
}

async fn hold(sw: &Arc<Switch>, hosts: &Hosts, api: bool) {
    println!("\nholding until Ctrl-C. Try:");
    if let Some(ns) = hosts.namespaces.first() {
        println!("  ip netns exec {ns} ping 198.18.0.2");
    }
    if api {
        println!("  tapswitch fdb; tapswitch ports; curl -s {DEFAULT_LISTEN}/metrics");
    }
    crate::daemon::shutdown_signal().await;
    show(sw);
}
