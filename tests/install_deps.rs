//! The install step of `tests/run.sh` (`tests/install-deps.sh`) from the state of a fresh
//! machine of this kind: none of the test packages installed, and qemu-utils 10.0 from
//! bookworm-backports (tests/data/qemu-utils-bpo12.status, the stanza such an image ships), which
//! Breaks bookworm's qemu-system-x86 7.2.
//!
//! The state is a dpkg status file built from this machine's: the test packages and every
//! package of the `qemu` source removed, the backports qemu-utils put in. The script plans
//! against it with the real package lists (`apt-get -s` with `Dir::State::status`), which is
//! the resolution `apt-get install` would do, without changing the machine. It must install
//! everything and remove nothing; the same plan without its fix (`--no-align`) must not (the
//! positive control that the state is the broken one), and a held qemu-utils must stop it
//! with the command that unholds it. Rootless; needs apt-get and package lists that have
//! qemu-system-x86 (tests/run.sh updates them), else it skips (fails with CI=true).

mod common;

use std::path::Path;
use std::process::{Command, Output};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/install-deps.sh");
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/qemu-utils-bpo12.status"
);

fn apt_or_skip() -> bool {
    let have = Path::new("/var/lib/dpkg/status").exists()
        && Command::new("apt-cache")
            .args(["policy", "qemu-system-x86"])
            .output()
            .is_ok_and(|o| {
                let t = String::from_utf8_lossy(&o.stdout).into_owned();
                t.contains("Candidate:") && !t.contains("Candidate: (none)")
            });
    if have {
        return true;
    }
    let why =
        "needs apt-get and package lists that have qemu-system-x86 (Debian 12; apt-get update)";
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("install-deps test {why}");
    }
    eprintln!("SKIP: install-deps test {why}");
    false
}

fn script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(SCRIPT)
        .args(args)
        .output()
        .expect("run tests/install-deps.sh")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The field `key` of a dpkg status stanza.
fn field<'a>(stanza: &'a str, key: &str) -> Option<&'a str> {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

/// The package names a stanza depends on (Depends and Pre-Depends, every alternative).
fn depends(stanza: &str) -> Vec<&str> {
    ["Depends", "Pre-Depends"]
        .iter()
        .filter_map(|k| field(stanza, k))
        .flat_map(|d| d.split([',', '|']))
        .filter_map(|d| d.split_whitespace().next())
        .map(|d| d.split(':').next().unwrap_or(d))
        .collect()
}

/// A dpkg admin dir holding the fresh-image state; `hold`: qemu-utils is held.
///
/// From this machine's status: every package of the `qemu` source goes (and whatever depends
/// on one, so the state stays consistent), and every test package that nothing left depends
/// on (the base image has those others: iproute2, python3, util-linux...); then the
/// backports qemu-utils goes in.
fn fresh_image_state(dir: &Path, test_packages: &[String], hold: bool) {
    let status = std::fs::read_to_string("/var/lib/dpkg/status").expect("dpkg status");
    let stanzas: Vec<&str> = status
        .split("\n\n")
        .filter(|s| !s.trim().is_empty())
        .collect();
    let pkg = |s: &str| field(s, "Package").unwrap_or_default().to_string();
    let is_qemu = |s: &str| {
        field(s, "Source").and_then(|v| v.split_whitespace().next()) == Some("qemu")
            || (field(s, "Source").is_none() && pkg(s).starts_with("qemu-"))
    };
    let mut gone: std::collections::HashSet<String> = stanzas
        .iter()
        .filter(|s| is_qemu(s) || test_packages.contains(&pkg(s)))
        .map(|s| pkg(s))
        .collect();
    loop {
        let mut changed = false;
        for s in &stanzas {
            if gone.contains(&pkg(s)) {
                continue;
            }
            for d in depends(s) {
                if !gone.contains(d) {
                    continue;
                }
                if stanzas.iter().any(|q| pkg(q) == d && is_qemu(q)) {
                    // depends on qemu: goes too
                    gone.insert(pkg(s));
                } else {
                    // a base package something else needs: the image has it
                    gone.remove(d);
                }
                changed = true;
                break;
            }
        }
        if !changed {
            break;
        }
    }
    assert!(
        gone.contains("qemu-system-x86") || !stanzas.iter().any(|s| pkg(s) == "qemu-system-x86"),
        "qemu-system-x86 stays installed"
    );
    let mut out = String::new();
    for s in stanzas.iter().filter(|s| !gone.contains(&pkg(s))) {
        out.push_str(s.trim_matches('\n'));
        out.push_str("\n\n");
    }
    let fixture: String = std::fs::read_to_string(FIXTURE)
        .expect("fixture")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut fixture = fixture.trim_matches('\n').to_string();
    if hold {
        fixture = fixture.replace("Status: install ok installed", "Status: hold ok installed");
    }
    out.push_str(&fixture);
    out.push('\n');
    std::fs::write(dir.join("status"), out).expect("write status");
}

#[test]
fn install_step_resolves_a_fresh_image_with_backports_qemu_utils() {
    if !apt_or_skip() {
        return;
    }
    let list = script(&["--list"]);
    assert!(list.status.success(), "{:?}", text(&list));
    let packages: Vec<String> = text(&list).0.lines().map(str::to_string).collect();
    assert!(
        packages.iter().any(|p| p == "qemu-system-x86"),
        "{packages:?}"
    );
    let dir = common::TempDir::new("dpkg");
    fresh_image_state(&dir.path, &packages, false);
    let admin = dir.path.display().to_string();

    // positive control: without the fix the plan removes qemu-utils or fails outright
    let plain = script(&["--simulate", "--no-align", "--admindir", &admin]);
    let (out, err) = text(&plain);
    assert!(
        !plain.status.success()
            && (out.contains("Remv qemu-utils") || err.contains("broken packages")),
        "the fresh-image state is not the conflicted one:\n{out}\n{err}"
    );

    // the install step: everything installed, qemu-utils at qemu-system-x86's version
    let fixed = script(&["--simulate", "--admindir", &admin]);
    let (out, err) = text(&fixed);
    let show = format!("stdout:\n{out}\nstderr:\n{err}");
    assert!(fixed.status.success(), "{show}");
    assert!(
        out.contains("installing qemu-utils=") && out.contains("--allow-downgrades"),
        "it says what it does: {show}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("Inst qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1] (1:7.2")),
        "qemu-utils goes to bookworm's version: {show}"
    );
    let to_install = out
        .lines()
        .find_map(|l| l.strip_prefix("tests/install-deps.sh: to install: "))
        .unwrap_or_else(|| panic!("no 'to install' line: {show}"));
    assert!(to_install.contains("qemu-system-x86"), "{show}");
    for p in to_install.split_whitespace() {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("Inst {p} "))),
            "{p} is not installed by the plan: {show}"
        );
    }
    assert!(
        !out.lines().any(|l| l.starts_with("Remv ")),
        "nothing is removed: {show}"
    );

    // a held qemu-utils: apt would refuse; the script stops and says how to go on
    let held = common::TempDir::new("dpkg-hold");
    fresh_image_state(&held.path, &packages, true);
    let h = script(&["--simulate", "--admindir", &held.path.display().to_string()]);
    let (out, err) = text(&h);
    assert!(
        !h.status.success() && err.contains("apt-mark unhold qemu-utils"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
}

/// Idempotent: on a machine where tests/run.sh installed everything (CI), it does nothing.
#[test]
fn install_step_does_nothing_when_everything_is_installed() {
    if !apt_or_skip() {
        return;
    }
    let o = script(&["--simulate"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    if out.contains("every test package is installed") {
        return;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("tests/run.sh ran the install step, yet packages are missing:\n{out}\n{err}");
    }
    eprintln!("SKIP: not every test package is installed here (tests/run.sh installs them)");
}
