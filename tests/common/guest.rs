//! The QEMU test guest shared by the guest tests (tests/qemu.rs, tests/libvirt.rs, tests/lab.rs):
//! Debian's cloud kernel and a busybox initramfs built once by tests/qemu/build-guest.sh, booted
//! under TCG. Its /init takes its role from the kernel command line (`ts_ip`, `ts_peer`,
//! `ts_role=server|client|pinger|trunk`, ...) and prints `TS_*` marker lines on the serial
//! console, which the tests read from the log file.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the guest tests run: only with `TAPSWITCH_QEMU=1` (slow: a guest boots in seconds
/// under TCG; `.ci/run` turns them on), and as root when `root` is asked. With `CI=true` a
/// test that cannot run fails instead of skipping.
pub fn enabled(root: bool) -> bool {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if std::env::var("TAPSWITCH_QEMU").as_deref() != Ok("1") {
        assert!(
            !ci,
            "CI must run the QEMU tests: set TAPSWITCH_QEMU=1 (.ci/run does)"
        );
        eprintln!("SKIP: QEMU guest tests are off; run with TAPSWITCH_QEMU=1");
        return false;
    }
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if root && !is_root {
        assert!(!ci, "root tests must run in CI (as root)");
        eprintln!("SKIP: this QEMU test needs root");
        return false;
    }
    true
}

/// The guest's kernel and initramfs paths (built on first use, cached outside the repo).
pub fn image() -> (String, String) {
    static IMAGE: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qemu/build-guest.sh");
            let out = Command::new("bash")
                .arg(&script)
                .output()
                .expect("run build-guest.sh");
            assert!(
                out.status.success(),
                "build-guest.sh failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).expect("paths");
            let mut it = text.split_whitespace();
            (
                it.next().expect("kernel").to_string(),
                it.next().expect("initrd").to_string(),
            )
        })
        .clone()
}

/// Boots the guest under TCG (256 MiB, serial console to `log`) with the kernel command line
/// `append`, the arguments `net` that define netdev `n0`, and `-device` value `device`.
pub fn boot(
    img: &(String, String),
    append: &str,
    net: &[String],
    device: &str,
    log: &Path,
) -> Child {
    Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
        ])
        .arg("-no-reboot")
        .arg("-serial")
        .arg(format!("file:{}", log.display()))
        .args(["-kernel", &img.0, "-initrd", &img.1, "-append", append])
        .args(net)
        .args(["-device", device])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start qemu-system-x86_64")
}

/// The QEMU arguments of a vhost-user NIC on `sock` (shared memfd guest RAM) and its
/// `-device` value with `mac`: `vectors=0`, since QEMU 7.2 under TCG crashes starting a
/// vhost-user NIC with MSI-X (there is no irqfd without KVM).
pub fn vhost_net(sock: &Path, mac: &str) -> (Vec<String>, String) {
    let net = [
        "-object",
        "memory-backend-memfd,id=mem,size=256M,share=on",
        "-machine",
        "memory-backend=mem",
        "-chardev",
        &format!("socket,id=c0,path={}", sock.display()),
        "-netdev",
        "vhost-user,id=n0,chardev=c0",
    ]
    .map(String::from)
    .into();
    (net, format!("virtio-net-pci,netdev=n0,vectors=0,mac={mac}"))
}

/// The value of the first `key` marker line in a guest's serial log.
pub fn marker(log: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
}

/// Waits (`secs` at most) until the log holds `count` lines starting with `key`.
pub fn wait_marker(log: &Path, key: &str, count: usize, secs: u64) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().filter(|l| l.starts_with(key)).count() >= count {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}
