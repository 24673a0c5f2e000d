//! Mininet (Debian's package, system python3) with the contrib TapSwitch class: pingall without
//! loss and iperf3 between hosts on single, linear and tree topologies, and on a ring of four
//! switches with the spanning tree on; multicast through three snooping switches (the member gets
//! the group's traffic, a non-member nothing). Root only.

use std::path::Path;
use std::process::Command;

#[test]
fn mininet_topologies_ping_and_iperf() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        assert!(!ci, "root tests must run in CI (as root)");
        eprintln!("SKIP: the Mininet test needs root");
        return;
    }
    let have = Command::new("/usr/bin/python3")
        .args(["-c", "import mininet.net"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        assert!(
            !ci,
            "Mininet is missing: apt-get install mininet (tests/run.sh does)"
        );
        eprintln!(
            "SKIP: Mininet is not installed (apt-get install -y --no-install-recommends mininet)"
        );
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("/usr/bin/python3")
        .arg(dir.join("tests/mininet/topologies.py"))
        .env("TAPSWITCH_BIN", env!("CARGO_BIN_EXE_tapswitch"))
        .output()
        .expect("run tests/mininet/topologies.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "Mininet run failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for topo in ["single", "linear", "tree", "ring"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("RESULT {topo} ")))
            .unwrap_or_else(|| panic!("no result for {topo}:\n{stdout}"));
        assert!(line.contains("loss=0"), "{line}");
    }
    let mcast = stdout
        .lines()
        .find(|l| l.starts_with("RESULT mcast "))
        .unwrap_or_else(|| panic!("no multicast result:\n{stdout}"));
    assert!(mcast.contains("leaked=0"), "{mcast}");
}
