//! The README's libvirt recipes with a real libvirt (Debian 12: libvirt 9.0, QEMU 7.2 under
//! TCG): domains are defined from the README's XML blocks (`<!-- test: libvirt-ethernet -->`
//! and `<!-- test: libvirt-vhostuser -->`; the test adds name, memory, the guest kernel and a
//! serial log, and gives the README's `vm1` a unique name), started with `virsh`, and a guest
//! (the busybox initramfs of tests/qemu.rs) must reach a namespace host through tapswitch:
//!
//! - `<interface type='ethernet'>` with `managed='no'`: the tap made first, `tapswitch port add
//!   packet:TAP` (with `--control`, the switch not being the default one);
//! - the same with `managed='yes'`: the port cannot be added before `virsh start` (no tap yet),
//!   and can after;
//! - `<interface type='vhostuser'>` with the README's `vectors=0` override (TCG) and
//!   `<reconnect>`: the guest reaches the host, and again after tapswitch restarts.
//!
//! libvirtd and virtlogd run as children of the test when none is running (no systemd here),
//! and are stopped at the end. Root and TAPSWITCH_QEMU=1 (as tests/qemu.rs); with CI=true a
//! missing libvirt is a failure that says what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ifname, run, run_ok, Netns, Switch, TempDir};

const README: &str = include_str!("../README.md");
const URI: &str = "qemu:///system";

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Skips (or fails in CI) with a reason.
fn skip(why: &str) -> bool {
    assert!(!ci(), "libvirt test: {why}");
    eprintln!("SKIP: libvirt test: {why}");
    false
}

fn enabled() -> bool {
    if std::env::var("TAPSWITCH_QEMU").as_deref() != Ok("1") {
        return skip("QEMU guest tests are off; run with TAPSWITCH_QEMU=1 (.ci/run does)");
    }
    if !common::root_or_skip() {
        return false;
    }
    for (bin, pkg) in [
        ("/usr/sbin/libvirtd", "libvirt-daemon-system"),
        ("/usr/sbin/virtlogd", "libvirt-daemon-system"),
        ("/usr/bin/virsh", "libvirt-clients"),
        ("/usr/bin/qemu-system-x86_64", "qemu-system-x86"),
    ] {
        if !Path::new(bin).exists() {
            return skip(&format!("{bin} is missing (Debian package {pkg})"));
        }
    }
    true
}

fn virsh(args: &[&str]) -> Output {
    let mut all = vec!["30", "virsh", "-c", URI];
    all.extend_from_slice(args);
    run("timeout", &all)
}

fn show(o: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// libvirtd and virtlogd started by the test (none if they were running already).
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn daemons(log: &Path) -> Daemons {
    if virsh(&["version"]).status.success() {
        return Daemons(vec![]);
    }
    let mut d = Daemons(vec![]);
    for bin in ["/usr/sbin/virtlogd", "/usr/sbin/libvirtd"] {
        let err = std::fs::File::create(log.join(format!(
            "{}.log",
            Path::new(bin).file_name().unwrap().to_string_lossy()
        )))
        .unwrap();
        d.0.push(
            Command::new(bin)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("{bin}: {e}")),
        );
    }
    let ok = common::wait_until(Duration::from_secs(30), Duration::from_millis(200), || {
        virsh(&["version"]).status.success()
    });
    assert!(
        ok,
        "libvirtd did not answer on {URI} within 30 s:\n{}\n{}",
        show(&virsh(&["version"])),
        std::fs::read_to_string(log.join("libvirtd.log")).unwrap_or_default()
    );
    d
}

/// Removes this process's domain logs from /var/log/libvirt/qemu on drop (declared before the
/// daemons, so after they stop: virtlogd may append to a log after `virsh destroy` returns).
struct DomainLogs;

impl Drop for DomainLogs {
    fn drop(&mut self) {
        let prefix = format!("tsw-{}-", std::process::id());
        if let Ok(dir) = std::fs::read_dir("/var/log/libvirt/qemu") {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// A defined domain; destroyed and undefined on drop.
struct Domain(String);

impl Domain {
    fn define(dir: &Path, name: &str, xml: &str) -> Domain {
        let f = dir.join(format!("{name}.xml"));
        std::fs::write(&f, xml).unwrap();
        let out = virsh(&["define", &f.display().to_string()]);
        assert!(out.status.success(), "virsh define:\n{xml}\n{}", show(&out));
        Domain(name.to_string())
    }

    fn start(&self) {
        let out = virsh(&["start", &self.0]);
        assert!(
            out.status.success(),
            "virsh start {}: {}",
            self.0,
            show(&out)
        );
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        let _ = virsh(&["destroy", &self.0]);
        let _ = virsh(&["undefine", &self.0]);
        let _ = std::fs::remove_file(format!("/var/log/libvirt/qemu/{}.log", self.0));
    }
}

/// The README block with this marker.
fn readme_block(marker: &str) -> String {
    let tag = format!("<!-- test: {marker} -->\n```xml\n");
    let start = README
        .find(&tag)
        .unwrap_or_else(|| panic!("README has no block marked {marker}"))
        + tag.len();
    let len = README[start..].find("```").expect("end of block");
    README[start..start + len].to_string()
}

/// The guest kernel and initramfs of tests/qemu.rs, copied into `dir` (libvirt relabels what
/// a domain boots; the shared cache stays untouched).
fn guest_files(dir: &Path) -> (PathBuf, PathBuf) {
    let (k, i) = common::guest::image();
    let (kd, id) = (dir.join("vmlinuz"), dir.join("initrd.gz"));
    std::fs::copy(k, &kd).unwrap();
    std::fs::copy(i, &id).unwrap();
    (kd, id)
}

/// What the test adds to the README's XML: a name, memory, the guest's kernel and command
/// line (`pinger`: pings `peer` from `ip`, one `TS_PONG` line per answer), a serial log.
struct Guest {
    name: String,
    kernel: PathBuf,
    initrd: PathBuf,
    ip: String,
    peer: String,
    log: PathBuf,
}

impl Guest {
    fn head(&self) -> String {
        format!(
            "<name>{}</name><memory unit='MiB'>256</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{}</kernel>\
             <initrd>{}</initrd><cmdline>console=ttyS0 quiet panic=-1 ts_ip={} ts_peer={} \
             ts_role=pinger</cmdline></os><on_poweroff>destroy</on_poweroff>",
            self.name,
            self.kernel.display(),
            self.initrd.display(),
            self.ip,
            self.peer
        )
    }

    fn serial(&self) -> String {
        format!(
            "<serial type='file'><source path='{}'/><target port='0'/></serial>",
            self.log.display()
        )
    }

    /// A whole domain around an `<interface>` block.
    fn around_interface(&self, interface: &str) -> String {
        format!(
            "<domain type='qemu'>{}<devices>{}{}</devices></domain>\n",
            self.head(),
            interface,
            self.serial()
        )
    }

    /// A partial `<domain>` block completed: TCG, and the test's elements added.
    fn complete(&self, domain: &str) -> String {
        let domain = domain.replacen("<domain type='kvm'", "<domain type='qemu'", 1);
        let open = domain.find('>').expect("<domain ...>") + 1;
        let mut xml = format!("{}{}{}", &domain[..open], self.head(), &domain[open..]);
        let dev = xml.find("<devices>").expect("<devices>") + "<devices>".len();
        xml.insert_str(dev, &self.serial());
        xml
    }

    fn pongs(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("TS_PONG"))
            .count()
    }

    /// Waits until the guest has `n` answered pings.
    fn wait_pongs(&self, n: usize, what: &str, sw: &Switch) {
        let ok = common::wait_until(Duration::from_secs(150), Duration::from_millis(250), || {
            self.pongs() >= n
        });
        assert!(
            ok,
            "{what}: the guest did not reach the host ({} answers, {n} wanted)\nserial:\n{}\nswitch:\n{}\nqemu log:\n{}",
            self.pongs(),
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            sw.log.text(),
            std::fs::read_to_string(format!("/var/log/libvirt/qemu/{}.log", self.name))
                .unwrap_or_default()
        );
    }
}

/// A namespace host on a veth whose other end is a `packet:` port (it outlives switch
/// restarts, unlike a TAP the switch made).
struct VethHost {
    _ns: Netns,
    port: String,
    ip: String,
}

impl VethHost {
    fn new(ip: &str) -> VethHost {
        let ns = Netns::new();
        let port = ifname('p');
        let inner = ifname('q');
        run_ok(
            "ip",
            &[
                "link", "add", &port, "type", "veth", "peer", "name", &inner, "netns", &ns.name,
            ],
        );
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", &inner]);
        ns.ip(&["link", "set", &inner, "up"]);
        VethHost {
            _ns: ns,
            port,
            ip: ip.to_string(),
        }
    }
}

impl Drop for VethHost {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.port]);
    }
}

fn port_add(sw: &Switch, spec: &str) -> Output {
    common::tapswitch_cmd(&["port", "add", "--control", &sw.ctl, spec])
}

#[test]
fn readme_libvirt_recipes_reach_a_namespace_host() {
    if !enabled() {
        return;
    }
    // the README's claims this test relies on
    let uid = run_ok("id", &["-u", "libvirt-qemu"]).trim().to_string();
    // QEMU runs as group libvirt-qemu (qemu.conf's default), not the user's primary group kvm
    let gid = run_ok("getent", &["group", "libvirt-qemu"])
        .split(':')
        .nth(2)
        .unwrap_or_default()
        .to_string();
    let owner = format!("owner={uid}:{gid}");
    assert!(
        README.contains(&format!("mode=0660,{owner}")),
        "libvirt-qemu is {uid}:{gid} here; the README's owner= differs"
    );
    let dir = TempDir::new("libvirt");
    use std::os::unix::fs::PermissionsExt;
    // QEMU runs as libvirt-qemu: it must reach the socket and read the kernel
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _logs = DomainLogs;
    let _daemons = daemons(&dir.path);
    let (kernel, initrd) = guest_files(&dir.path);
    let subnet = common::unique() % 200 + 40;
    let host = VethHost::new(&format!("198.18.{subnet}.1"));
    let guest = |n: u8, tag: &str| Guest {
        name: format!("tsw-{}-{}-{tag}", std::process::id(), common::unique()),
        kernel: kernel.clone(),
        initrd: initrd.clone(),
        ip: format!("198.18.{subnet}.{n}"),
        peer: host.ip.clone(),
        log: dir.path.join(format!("{tag}.log")),
    };
    let ethernet = readme_block("libvirt-ethernet");
    assert!(
        ethernet.contains("<target dev='vm1' managed='no'/>"),
        "{ethernet}"
    );

    // 1. ethernet, managed='no': the tap exists first, the port is added, then the guest starts
    {
        let sw = Switch::start(&[
            "--no-default-ports",
            "--port",
            &format!("packet:{}", host.port),
        ]);
        let tap = ifname('t');
        let _tap = common::TapGuard::new(&tap);
        let out = port_add(&sw, &format!("packet:{tap}"));
        assert!(out.status.success(), "port add: {}", show(&out));
        let g = guest(2, "eth-unmanaged");
        let xml = g.around_interface(&ethernet.replace("dev='vm1'", &format!("dev='{tap}'")));
        let d = Domain::define(&dir.path, &g.name, &xml);
        d.start();
        g.wait_pongs(3, "ethernet managed='no'", &sw);
    }

    // 2. ethernet, managed='yes': libvirt makes the tap at `virsh start`; before, there is
    // nothing to attach
    {
        let sw = Switch::start(&[
            "--no-default-ports",
            "--port",
            &format!("packet:{}", host.port),
        ]);
        let tap = ifname('m');
        let g = guest(3, "eth-managed");
        let iface = ethernet
            .replace("dev='vm1'", &format!("dev='{tap}'"))
            .replace("managed='no'", "managed='yes'");
        let d = Domain::define(&dir.path, &g.name, &g.around_interface(&iface));
        let early = port_add(&sw, &format!("packet:{tap}"));
        assert!(
            !early.status.success(),
            "a port for a tap libvirt has not made yet: {}",
            show(&early)
        );
        d.start();
        let out = port_add(&sw, &format!("packet:{tap}"));
        assert!(
            out.status.success(),
            "port add after virsh start: {}",
            show(&out)
        );
        g.wait_pongs(3, "ethernet managed='yes'", &sw);
    }

    // 3. vhostuser with the README's override and reconnect: through a tapswitch restart
    {
        let vhost = readme_block("libvirt-vhostuser");
        for must in [
            "<access mode='shared'/>",
            "<reconnect enabled='yes' timeout='1'/>",
            "<qemu:property name='vectors' type='unsigned' value='0'/>",
            "path='/run/tapswitch/vm1.sock'",
        ] {
            assert!(vhost.contains(must), "README vhostuser XML lacks {must}");
        }
        let sock = dir.path.join("vm1.sock");
        let spec = format!("vm1=vhost:{},mode=0660,{owner}", sock.display());
        let args = [
            "--no-default-ports".to_string(),
            "--port".into(),
            format!("packet:{}", host.port),
            "--port".into(),
            spec,
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut sw = Switch::start(&args);
        let g = guest(4, "vhost");
        let xml =
            g.complete(&vhost.replace("/run/tapswitch/vm1.sock", &sock.display().to_string()));
        let d = Domain::define(&dir.path, &g.name, &xml);
        d.start();
        g.wait_pongs(3, "vhostuser", &sw);
        // tapswitch restarts: the guest's QEMU reconnects within a second and pings again
        sw.stop();
        let before = g.pongs();
        let sw = Switch::start(&args);
        g.wait_pongs(before + 3, "vhostuser after a tapswitch restart", &sw);
    }
}
