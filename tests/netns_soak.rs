//! Root: 1,000 attach/detach cycles of ports of every kind through the API (issue 24): TAP,
//! packet, stream and dgram listeners, vhost-user and vxlan. After a warm-up, the switch's
//! open fds and threads must come back to the same numbers and its memory must not grow with
//! the cycles. The figures are printed (run with `--nocapture` to see them).

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Open fds, threads and resident memory (KiB) of a process.
fn usage(pid: u32) -> (usize, usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (fds, field("Threads:") as usize, field("VmRSS:"))
}

/// Deletes links of the host namespace on drop.
struct Links(Vec<String>);

impl Drop for Links {
    fn drop(&mut self) {
        for l in &self.0 {
            if link_exists(l) {
                let _ = run("ip", &["link", "del", "dev", l]);
            }
        }
    }
}

#[test]
fn thousand_attach_detach_cycles_of_every_kind_leak_nothing() {
    if !root_or_skip() {
        return;
    }
    const CYCLES: usize = 1000;
    const WARMUP: usize = 50;
    let dir = TempDir::new("soak");
    let subnet = (unique() % 250 + 1) as u8;
    // a veth for the packet port, another whose root end carries the vxlan port's address
    let (p0, p1, u0, u1) = (ifname('p'), ifname('q'), ifname('u'), ifname('w'));
    let ns = Netns::new();
    let _links = Links(vec![p0.clone(), u0.clone()]);
    for (a, b) in [(&p0, &p1), (&u0, &u1)] {
        run_ok("ip", &["link", "add", a, "type", "veth", "peer", "name", b]);
        run_ok("ip", &["link", "set", "dev", b, "netns", &ns.name]);
        ns.ip(&["link", "set", "dev", b, "up"]);
    }
    let local = format!("198.18.{subnet}.1");
    run_ok("ip", &["addr", "add", &format!("{local}/24"), "dev", &u0]);
    run_ok("ip", &["link", "set", "dev", &u0, "up"]);
    let tap = ifname('t');
    let path = |f: &str| dir.path.join(f).display().to_string();
    let specs = [
        ("tp", format!("tp=tap:{tap}")),
        ("pk", format!("pk=packet:{p0}")),
        ("st", format!("st=stream:{}", path("st.sock"))),
        ("dg", format!("dg=dgram:{}", path("dg.sock"))),
        ("vh", format!("vh=vhost:{}", path("vh.sock"))),
        (
            "vx",
            format!("vx=vxlan:100,local={local},remote=198.18.{subnet}.2"),
        ),
    ];
    let sw = Switch::start(&["--no-default-ports"]);
    let cycle = |i: usize| {
        for (name, spec) in &specs {
            let body = serde_json::json!({ "spec": spec }).to_string();
            let (st, text) = sw.req("POST", "/api/v1/ports", Some(&body));
            assert_eq!(st, 201, "cycle {i}: attach {spec}: {text}");
            let (st, text) = sw.req("DELETE", &format!("/api/v1/ports/{name}"), None);
            assert_eq!(st, 204, "cycle {i}: detach {name}: {text}");
        }
    };
    for i in 0..WARMUP {
        cycle(i);
    }
    // detaching is done when its threads are joined; give the last ones a moment. Wait for
    // no more than before (not exactly as many: the first count can hold a transient fd), and
    // for longer than tokio's blocking pool keeps an idle thread (10 s): a CI run counted 9
    // threads against 8 after waiting 5 s for an exact match that the fds could never give
    let settle = |want: Option<(usize, usize)>| -> (usize, usize, u64) {
        let mut u = usage(sw.pid());
        let t = Instant::now();
        while let Some(w) = want {
            if (u.0 <= w.0 && u.1 <= w.1) || t.elapsed() > Duration::from_secs(15) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
            u = usage(sw.pid());
        }
        u
    };
    let before = settle(None);
    let t0 = Instant::now();
    for i in WARMUP..CYCLES {
        cycle(i);
    }
    let took = t0.elapsed();
    let after = settle(Some((before.0, before.1)));
    eprintln!(
        "{} attach/detach cycles of 6 kinds in {took:.1?} ({:.2} ms per attach+detach): fds \
         {} -> {}, threads {} -> {}, RSS {} -> {} KiB",
        CYCLES - WARMUP,
        took.as_secs_f64() * 1000.0 / ((CYCLES - WARMUP) * specs.len()) as f64,
        before.0,
        after.0,
        before.1,
        after.1,
        before.2,
        after.2
    );
    // no growth: one fewer is a transient fd (a connection being closed) in the first count
    assert!(
        after.0 <= before.0,
        "open fds grew: {} -> {}",
        before.0,
        after.0
    );
    assert!(
        after.1 <= before.1,
        "threads grew: {} -> {}",
        before.1,
        after.1
    );
    assert!(
        after.2 <= before.2 + 4096,
        "RSS grew by {} KiB over {} cycles",
        after.2 - before.2,
        CYCLES - WARMUP
    );
    // nothing left behind: the ports are gone, their files and interfaces too
    let ports = sw.get("/api/v1/ports");
    assert_eq!(ports.as_array().map(Vec::len), Some(0), "{ports}");
    assert!(!link_exists(&tap));
    for f in ["st.sock", "dg.sock", "vh.sock"] {
        assert!(!dir.path.join(f).exists(), "{f} left behind");
    }
}
