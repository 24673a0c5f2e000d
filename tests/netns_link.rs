//! Root: a port's state follows its link, as the Linux bridge follows carrier and admin state
//! (issue 24, item 1): a TAP moved into a namespace and brought up later, with and without the
//! spanning tree; a `packet:` port whose interface loses carrier, is deleted and comes back.
//! Every case fails on a switch that only learns a port's state from its reads and writes.

mod common;

use std::time::Duration;

use common::*;

fn state(sw: &Switch, port: &str) -> String {
    sw.port(port)["state"].as_str().unwrap_or("?").to_string()
}

fn wait_state(sw: &Switch, port: &str, want: &str) {
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || state(
            sw, port
        )
            == want),
        "port {port} is {} (want {want}):\n{}",
        state(sw, port),
        sw.log.text()
    );
}

/// `a` pings `b` until one reply comes back (bounded); true if it did.
fn reaches(a: &Host, ip: &str, limit: Duration) -> bool {
    wait_until(limit, Duration::from_millis(10), || {
        a.ns.exec(&["ping", "-n", "-q", "-c", "1", "-W", "1", ip])
            .status
            .success()
    })
}

/// The reproduction: `--stp rstp --port a,edge --port b,edge`; a's host is up and
/// pings b's address before b's host is up; b comes up and never sends on its own (IPv6 off,
/// no gratuitous ARP): a's pings must get through.
fn host_attached_later(stp: bool) {
    let (na, nb) = (ifname('a'), ifname('b'));
    let (ns_a, ns_b) = (Netns::new(), Netns::new());
    let pa = format!("{na},edge");
    let pb = format!("{nb},edge");
    let mut args = vec!["--port", &pa, "--port", &pb];
    if stp {
        args.extend_from_slice(&["--stp", "rstp"]);
    }
    let sw = Switch::start(&args);
    let subnet = (unique() % 250 + 1) as u8;
    let a = Host::attach(ns_a, &na, &format!("198.18.{subnet}.1/24"), None);
    // b: moved and addressed, but still down
    run_ok("ip", &["link", "set", "dev", &nb, "netns", &ns_b.name]);
    let ip_b = format!("198.18.{subnet}.2");
    ns_b.ip(&["addr", "add", &format!("{ip_b}/24"), "dev", &nb]);
    ns_b.ip(&["link", "set", "dev", "lo", "up"]);
    wait_state(&sw, &na, "up");
    wait_state(&sw, &nb, "down");
    assert!(
        !a.ns
            .exec(&["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", &ip_b])
            .status
            .success(),
        "b's host is down: no reply expected"
    );
    assert_eq!(
        sw.dropped(&nb, "tx", "port_down"),
        0,
        "floods leave a down port out"
    );
    ns_b.ip(&["link", "set", "dev", &nb, "up"]);
    wait_state(&sw, &nb, "up");
    assert!(
        reaches(&a, &ip_b, Duration::from_secs(10)),
        "a cannot reach b after b came up (stp {stp}):\n{}",
        sw.log.text()
    );
    assert!(sw.counter(&nb, "link_changes") >= 1);
    if stp {
        assert_eq!(
            sw.port(&nb)["stp"]["state"],
            "forwarding",
            "{}",
            sw.port(&nb)
        );
    }
    // down again, then up again: same story
    ns_b.ip(&["link", "set", "dev", &nb, "down"]);
    wait_state(&sw, &nb, "down");
    ns_b.ip(&["link", "set", "dev", &nb, "up"]);
    wait_state(&sw, &nb, "up");
    assert!(reaches(&a, &ip_b, Duration::from_secs(10)));
}

#[test]
fn tap_host_brought_up_after_start_is_reached_with_stp() {
    if !root_or_skip() {
        return;
    }
    host_attached_later(true);
}

#[test]
fn tap_host_brought_up_after_start_is_reached_without_stp() {
    if !root_or_skip() {
        return;
    }
    host_attached_later(false);
}

/// A `packet:` port over a veth: the peer going down (NO-CARRIER on our end) shows the port
/// `down`; the veth deleted (as libvirt deletes a guest's tap) shows it `down`, with
/// `link_changes` counted; recreated under the same name, the port is re-attached, `up`, and
/// carries traffic again.
#[test]
fn packet_port_follows_carrier_and_deletion() {
    if !root_or_skip() {
        return;
    }
    let tap = ifname('t');
    let (v0, v1) = (ifname('p'), ifname('q'));
    let (ns_t, ns_v) = (Netns::new(), Netns::new());
    let mk_veth = |ns: &Netns| {
        run_ok(
            "ip",
            &["link", "add", &v0, "type", "veth", "peer", "name", &v1],
        );
        run_ok("ip", &["link", "set", "dev", &v1, "netns", &ns.name]);
    };
    mk_veth(&ns_v);
    let _guard = LinkGuard(v0.clone());
    let pk = format!("vm=packet:{v0}");
    let sw = Switch::start(&["--port", &tap, "--port", &pk]);
    let subnet = (unique() % 250 + 1) as u8;
    let h = Host::attach(ns_t, &tap, &format!("198.18.{subnet}.1/24"), None);
    let ip_v = format!("198.18.{subnet}.2");
    // a fixed MAC, so the recreated interface is the same host to the other's ARP cache
    let mac_v = format!("02:54:4c:{subnet:02x}:00:02");
    let v = Host::attach_here(ns_v, &v1, &format!("{ip_v}/24"), Some(&mac_v));
    wait_state(&sw, "vm", "up");
    assert!(reaches(&h, &ip_v, Duration::from_secs(10)));
    // peer down: no carrier on our end
    v.ns.ip(&["link", "set", "dev", &v1, "down"]);
    wait_state(&sw, "vm", "down");
    let changes = sw.counter("vm", "link_changes");
    assert!(changes >= 1);
    v.ns.ip(&["link", "set", "dev", &v1, "up"]);
    wait_state(&sw, "vm", "up");
    assert!(reaches(&h, &ip_v, Duration::from_secs(10)));
    // deleted: down (waiting for it), not "up" with a log line only
    run_ok("ip", &["link", "del", "dev", &v0]);
    wait_state(&sw, "vm", "down");
    assert!(sw.counter("vm", "link_changes") > changes);
    // back under the same name: re-attached and up
    mk_veth(&v.ns);
    v.ns.ip(&["link", "set", "dev", &v1, "address", &mac_v]);
    v.ns.ip(&["addr", "add", &format!("{ip_v}/24"), "dev", &v1]);
    v.ns.ip(&["link", "set", "dev", &v1, "up"]);
    wait_state(&sw, "vm", "up");
    assert!(
        reaches(&h, &ip_v, Duration::from_secs(10)),
        "{}",
        sw.log.text()
    );
}

/// Deletes a link of the host namespace on drop (a veth whose other end is elsewhere).
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        if link_exists(&self.0) {
            let _ = run("ip", &["link", "del", "dev", &self.0]);
        }
    }
}
