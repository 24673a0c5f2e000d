//! Root: the README's first command, `tapswitch demo`, end to end. It must show every host pair
//! reaching each other and remove every namespace and TAP it made, on a normal exit and on
//! Ctrl-C (`--hold`, then SIGINT). Without root it skips (with CI=true it fails).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{link_exists, run, TAPSWITCH};

/// The namespaces and interfaces the demo announced (`host N: namespace NS, interface IF, ...`).
fn announced(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("host ")?;
            let ns = rest.split("namespace ").nth(1)?.split(',').next()?;
            let ifname = rest.split("interface ").nth(1)?.split(',').next()?;
            Some((ns.trim().to_string(), ifname.trim().to_string()))
        })
        .collect()
}

fn netns_exists(name: &str) -> bool {
    let out = run("ip", &["netns", "list"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

fn assert_cleaned(hosts: &[(String, String)]) {
    for (ns, ifname) in hosts {
        assert!(!netns_exists(ns), "namespace {ns} left behind");
        assert!(!link_exists(ifname), "interface {ifname} left behind");
    }
}

#[test]
fn demo_hosts_reach_each_other_and_everything_is_removed() {
    if !common::root_or_skip() {
        return;
    }
    let out = Command::new("timeout")
        .args(["60", TAPSWITCH, "demo", "--hosts", "3"])
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("6 of 6 host pairs reached each other"),
        "{stdout}"
    );
    assert!(
        stdout.contains(" master demo-"),
        "no table shown:\n{stdout}"
    );
    let hosts = announced(&stdout);
    assert_eq!(hosts.len(), 3, "{stdout}");
    assert_cleaned(&hosts);
}

#[test]
fn demo_hold_is_cleaned_up_on_ctrl_c() {
    if !common::root_or_skip() {
        return;
    }
    let mut child = Command::new(TAPSWITCH)
        .args(["demo", "--hosts", "2", "--hold"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the demo");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let mut holding = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        text.push_str(&line);
        text.push('\n');
        if line.contains("holding until Ctrl-C") {
            holding = true;
            break;
        }
    }
    let hosts = announced(&text);
    if !holding {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the demo never said it was holding:\n{text}");
    }
    assert_eq!(hosts.len(), 2, "{text}");
    for (ns, _) in &hosts {
        assert!(netns_exists(ns), "{ns} should exist while holding");
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the demo did not exit within 15 s of Ctrl-C");
    }
    assert_cleaned(&hosts);
}

/// The demo needs nothing but `ip` (iproute2): it pings by itself. Run with a PATH that has
/// `ip` and nothing else (no `ping`), it still reaches every pair, and tells its story without
/// log lines (no INFO on stdout, no WARN on stderr).
#[test]
fn demo_needs_no_ping_and_prints_no_log_lines() {
    if !common::root_or_skip() {
        return;
    }
    let dir = common::TempDir::new("demo-path");
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("iproute2's ip");
    std::os::unix::fs::symlink(ip, dir.path.join("ip")).unwrap();
    let out = Command::new(TAPSWITCH)
        .args(["demo", "--hosts", "2"])
        .env("PATH", &dir.path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(
        stdout.contains("2 of 2 host pairs reached each other"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("INFO") && !stderr.contains("INFO"),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert_cleaned(&announced(&stdout));
    // and without `ip` it names the package instead of blaming the switch
    let empty = common::TempDir::new("demo-nopath");
    let out = Command::new(TAPSWITCH)
        .args(["demo", "--hosts", "2"])
        .env("PATH", &empty.path)
        .stdin(Stdio::null())
        .output()
        .expect("run the demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("iproute2"), "{stderr}");
}
