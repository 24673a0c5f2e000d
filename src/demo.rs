//! `tapswitch demo`: a switch with two or three TAP ports, each moved into a network namespace
//! host with an address from 198.18.0.0/15 (the benchmarking range); the hosts ping each other,
//! the switch's counters and table are printed, and everything is removed on exit, Ctrl-C
//! included.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::config::{parse_spec, Config};
use crate::control::Control;
use crate::dataplane::Switch;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Keep the hosts and the switch running until Ctrl-C.
    #[arg(long)]
    pub hold: bool,
    /// Number of namespace hosts (2 or 3).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub hosts: u8,
}

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

/// One host's ping of another, done by the switch binary itself (no `ping` needed): a thread
/// enters the sender's namespace and sends ICMP echo requests on a raw socket.
fn ping(ns: &str, dst: std::net::Ipv4Addr, count: u16) -> Result<(u16, Vec<Duration>)> {
    use crate::port::sys::icmp::{enter_netns, IcmpSocket};
    let path = std::path::Path::new("/var/run/netns").join(ns);
    let worker = std::thread::spawn(move || -> Result<(u16, Vec<Duration>)> {
        enter_netns(&path).with_context(|| format!("cannot enter namespace {}", path.display()))?;
        let sock = IcmpSocket::open().context("cannot open an ICMP socket")?;
        let id = (std::process::id() & 0xffff) as u16;
        let mut got = 0;
        let mut rtts = Vec::new();
        for seq in 1..=count {
            let t = Instant::now();
            sock.send_echo(dst, id, seq)
                .with_context(|| format!("cannot send to {dst}"))?;
            if sock.wait_reply(dst, id, seq, Duration::from_secs(2))? {
                got += 1;
                rtts.push(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok((got, rtts))
    });
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the ping thread panicked"))?
}

fn ping_all(namespaces: &[String]) -> Result<usize> {
    let mut ok = 0;
    for (i, ns) in namespaces.iter().enumerate() {
        for j in 0..namespaces.len() {
            if i == j {
                continue;
            }
            let dst: std::net::Ipv4Addr = host_addr(j).parse()?;
            let (got, rtts) = ping(ns, dst, 3)?;
            let rtt = if rtts.is_empty() {
                String::new()
            } else {
                let avg = rtts.iter().sum::<Duration>() / rtts.len() as u32;
                format!(", average round trip {} us", avg.as_micros())
            };
            println!("host {i} -> host {j} ({dst}): 3 sent, {got} answered{rtt}");
            if got == 3 {
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

/// Checks that the tools the demo runs exist, and names the package when one does not.
fn check_tools() -> Result<()> {
    match Command::new("ip").arg("-V").output() {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "the demo needs the `ip` command to create namespaces: install iproute2 (apt-get install iproute2)"
        ),
        Err(e) => bail!("cannot run `ip`: {e}"),
    }
}

/// Runs the demo.
pub(crate) async fn demo(a: DemoArgs) -> Result<()> {
    // The demo creates namespaces and TAPs: say so plainly rather than fail half-way.
    if crate::port::sys::euid() != 0 {
        bail!("the demo needs root: it creates TAP interfaces and network namespaces (try sudo)");
    }
    check_tools()?;
    let pid = std::process::id();
    let taps: Vec<String> = (0..a.hosts).map(|i| format!("tsd{pid}{i}")).collect();
    let name = format!("demo-{pid}");
    let mut cfg = Config::resolve(&crate::config::Overrides {
        listen: Some("none".into()),
        name: Some(name.clone()),
        no_default_ports: true,
        ..Default::default()
    })?;
    cfg.ports = taps
        .iter()
        .map(|t| parse_spec(t))
        .collect::<std::result::Result<_, _>>()?;
    let sw = Switch::new(&cfg.name, cfg.settings, cfg.fdb_max);
    let dp = crate::dataplane::Dataplane::start(1, 0)?;
    sw.set_dataplane(&dp);
    let ctl = Control::start(sw.clone())?;
    for spec in &cfg.ports {
        if let Err(e) = crate::control::attach(&sw, spec) {
            sw.remove_all_ports();
            return Err(e.into());
        }
    }
    let control_path = crate::config::default_control_path(&name);
    let control = crate::api::serve_control(
        sw.clone(),
        ctl.handle(),
        &control_path,
        None,
        crate::conn_cap::DEFAULT_MAX_CONNS,
    )
    .ok();
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
                    hold(&sw, &hosts, control.as_ref().map(|c| c.path())).await;
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
    // The switch lets its TAPs go first (closing them deletes them), then the namespaces go:
    // nothing disappears under a running port, so there is nothing to warn about.
    drop(control);
    let sw2 = sw.clone();
    let _ = ctl.handle().run(move || sw2.remove_all_ports()).await;
    drop(ctl);
    drop(dp);
    drop(hosts);
    println!("removed the demo's namespaces and TAP interfaces");
    result
}

async fn hold(sw: &Arc<Switch>, hosts: &Hosts, control: Option<&std::path::Path>) {
    println!("\nholding until Ctrl-C. Try:");
    if let Some(ns) = hosts.namespaces.first() {
        println!("  ip netns exec {ns} ping 198.18.0.2");
    }
    if let Some(c) = control {
        println!(
            "  tapswitch fdb --control {p}; tapswitch ports --control {p}",
            p = c.display()
        );
    }
    crate::daemon::shutdown_signal().await;
    show(sw);
}
