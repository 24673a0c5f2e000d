//! Who may change the switch, and signals during a reload.
//!
//! Rootless: the TCP listener serves reads to anyone and refuses changes without the token,
//! loopback included; SIGTERM during a slow SIGHUP reload still stops the switch.
//! Root: the control socket (mode 0660, `--control-group`) refuses a user outside its group
//! and serves one inside it, and logs the peer's uid with every change.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_until, Log, TempDir, TAPSWITCH};
use tapswitch::client::request;

/// A `tapswitch run` whose stderr is collected; killed on drop.
struct Proc {
    child: Child,
    log: Log,
}

impl Proc {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut c = Command::new(TAPSWITCH);
        c.arg("run")
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("TAPSWITCH_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn tapswitch");
        let log = Log::default();
        common::collect_stderr(child.stderr.take().expect("stderr"), log.clone());
        let p = Proc { child, log };
        assert!(
            wait_until(Duration::from_secs(10), Duration::from_millis(20), || p
                .log
                .text()
                .contains(" ready")),
            "not ready:\n{}",
            p.log.text()
        );
        p
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tcp_changes_need_the_token_even_on_loopback() {
    let api = common::free_addr();
    let sw = Proc::start(
        &["--no-default-ports", "--control", "none", "--listen", &api],
        &[],
    );
    let r = |m: &str, p: &str, b: Option<&str>, t: Option<&str>| {
        request(&api, m, p, b, t).unwrap_or_else(|e| panic!("{m} {p}: {e:#}"))
    };
    // reads pass
    assert_eq!(r("GET", "/api/v1/ports", None, None).0, 200);
    assert_eq!(r("GET", "/api/v1/config", None, None).0, 200);
    assert_eq!(r("GET", "/metrics", None, None).0, 200);
    // changes are refused on loopback without a configured token, whatever is sent
    for (m, p, b) in [
        ("PATCH", "/api/v1/config", Some(r#"{"ageing_secs": 5}"#)),
        ("POST", "/api/v1/ports", Some(r#"{"spec": "packet:lo"}"#)),
        ("DELETE", "/api/v1/fdb", None),
        (
            "PUT",
            "/api/v1/fdb/02:00:00:00:00:01",
            Some(r#"{"port": "x"}"#),
        ),
    ] {
        let (st, body) = r(m, p, b, Some("guess"));
        assert_eq!(st, 403, "{m} {p}: {body}");
        assert!(body.contains("--api-token"), "{body}");
    }
    assert!(
        r("GET", "/api/v1/config", None, None)
            .1
            .contains("\"ageing_secs\":300"),
        "nothing changed"
    );
    // the CLI says what to do
    let out = common::tapswitch_cmd(&["config", "--api", &api, "ageing_secs", "5"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("HTTP 403"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        sw.log.text().contains("api change refused"),
        "refusals are logged"
    );

    // with a token: missing or wrong is 401, right is 200
    let api2 = common::free_addr();
    let _sw2 = Proc::start(
        &[
            "--no-default-ports",
            "--control",
            "none",
            "--listen",
            &api2,
            "--api-token",
            "s3cret-token",
        ],
        &[],
    );
    let r2 = |t: Option<&str>| {
        request(
            &api2,
            "PATCH",
            "/api/v1/config",
            Some(r#"{"ageing_secs": 7}"#),
            t,
        )
        .expect("request")
    };
    assert_eq!(r2(None).0, 401);
    assert_eq!(r2(Some("s3cret-tokeX")).0, 401);
    assert_eq!(r2(Some("s3cret-token-longer")).0, 401);
    let (st, body) = r2(Some("s3cret-token"));
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"ageing_secs\":7"), "{body}");
    assert_eq!(
        request(&api2, "GET", "/api/v1/ports", None, None)
            .unwrap()
            .0,
        200
    );
}

#[test]
fn sigterm_during_a_reload_stops_the_switch() {
    let dir = TempDir::new("reload");
    let cfg = dir.path.join("sw.toml");
    let sock = dir.path.join("a.sock");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"none\"\ncontrol = \"none\"\n[[port]]\nspec = \"a=stream:{}\"\n",
            sock.display()
        ),
    )
    .unwrap();
    let cfg_s = cfg.display().to_string();
    let mut sw = Proc::start(
        &["--config", &cfg_s],
        &[("TAPSWITCH_TEST_SLOW_RELOAD_MS", "3000")],
    );
    let pid = sw.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(10), || sw
            .log
            .text()
            .contains("reload: slowed down")),
        "{}",
        sw.log.text()
    );
    // the reload is running on the control thread now
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = sw.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "SIGTERM during a reload was lost:\n{}",
            sw.log.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}:\n{}", sw.log.text());
    let log = sw.log.text();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(!sock.exists(), "the listener's socket file is removed");
}

#[test]
fn control_socket_admits_only_its_group() {
    if !common::root_or_skip() {
        return;
    }
    let dir = TempDir::new("ctlgrp");
    // nobody must be able to reach the socket's directory and run the binary
    std::fs::set_permissions(
        &dir.path,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let bin = dir.path.join("tapswitch");
    std::fs::copy(TAPSWITCH, &bin).unwrap();
    let ctl = dir.path.join("ctl.sock").display().to_string();
    let gid = "47911";
    let sw = Proc::start(
        &[
            "--no-default-ports",
            "--listen",
            "none",
            "--control",
            &ctl,
            "--control-group",
            gid,
        ],
        &[],
    );
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&ctl).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "socket mode");
    assert_eq!(meta.gid().to_string(), gid, "socket group");
    let bin_s = bin.display().to_string();
    let as_nobody = |groups: &str, args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534"]);
        if groups.is_empty() {
            c.arg("--clear-groups");
        } else {
            c.args(["--groups", groups]);
        }
        c.arg(&bin_s).args(args).env_remove("TAPSWITCH_CONTROL");
        c.output().expect("setpriv")
    };
    // outside the group: refused, with a message saying why
    let out = as_nobody("", &["config", "--control", &ctl, "ageing_secs", "5"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody changed the switch: {err}");
    assert!(err.contains("permission denied"), "{err}");
    let out = as_nobody("", &["ports", "--control", &ctl]);
    assert!(
        !out.status.success(),
        "reads on the control socket need the group too"
    );
    // inside the group: served, and the change is logged with the peer's uid
    let out = as_nobody(gid, &["config", "--control", &ctl, "ageing_secs", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = tapswitch::client::get_json(&ctl, "/api/v1/config").unwrap();
    assert_eq!(cfg["ageing_secs"], 5);
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            sw.log
                .text()
                .lines()
                .any(|l| l.contains("api change") && l.contains("uid=Some(65534)"))
        }),
        "{}",
        sw.log.text()
    );
}

/// Root: `mode=` and `owner=` of port specs land on the socket files themselves (stream,
/// dgram and vhost ports), and a port whose directory its group may write to is refused with
/// a 422 naming the directory, with nothing created there (issue 24, item 3).
#[test]
fn socket_mode_and_owner_land_on_the_socket_and_shared_dirs_are_refused() {
    if !common::root_or_skip() {
        return;
    }
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let dir = TempDir::new("sockown");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (s, d, v) = (
        dir.path.join("s.sock"),
        dir.path.join("d.sock"),
        dir.path.join("v.sock"),
    );
    let ctl = dir.path.join("ctl.sock").display().to_string();
    let specs = [
        format!("s=stream:{},mode=0640,owner=65534:65534", s.display()),
        format!("g=dgram:{},mode=0600,owner=65534", d.display()),
        format!("v=vhost:{},mode=0660,owner=65534:65534", v.display()),
    ];
    let mut args = vec!["--no-default-ports", "--listen", "none", "--control", &ctl];
    for sp in &specs {
        args.push("--port");
        args.push(sp);
    }
    let sw = Proc::start(&args, &[]);
    for (path, mode, uid, gid) in [
        (&s, 0o640, 65534, 65534),
        (&d, 0o600, 65534, 0),
        (&v, 0o660, 65534, 65534),
    ] {
        let m = std::fs::symlink_metadata(path).unwrap();
        assert!(m.file_type().is_socket(), "{}", path.display());
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (mode, uid, gid),
            "{}",
            path.display()
        );
    }
    let meta = std::fs::metadata(&ctl).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "control socket mode");
    // a group-writable directory: refused, naming it; no file left there
    let shared = dir.path.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o775)).unwrap();
    for kind in ["stream", "dgram", "vhost"] {
        let body = format!(
            r#"{{"spec": "x-{kind}={kind}:{}"}}"#,
            shared.join("x.sock").display()
        );
        let (st, text) = request(&ctl, "POST", "/api/v1/ports", Some(&body), None).unwrap();
        assert_eq!(st, 422, "{kind}: {text}");
        assert!(
            text.contains(&shared.display().to_string()) && text.contains("0775"),
            "{kind}: {text}"
        );
        assert!(!shared.join("x.sock").exists(), "{kind}");
    }
    drop(sw);
}

/// Root, running the switch as `nobody` without `$XDG_RUNTIME_DIR`: its default control
/// directory `/tmp/tapswitch-65534` is refused, with an error naming it, when someone else
/// created it first or when it is not mode 0700, and is created with mode 0700 when missing.
#[test]
fn the_default_tmp_control_dir_must_be_the_users_own_and_0700() {
    if !common::root_or_skip() {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    /// Removes the directory on drop, even on panic.
    struct Gone(std::path::PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = TempDir::new("privctl");
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path.join("tapswitch");
    std::fs::copy(TAPSWITCH, &bin).unwrap();
    let private = std::path::PathBuf::from("/tmp/tapswitch-65534");
    let _ = std::fs::remove_dir_all(&private);
    let _gone = Gone(private.clone());
    let as_nobody = |bounded: bool| {
        let mut c = Command::new(if bounded { "timeout" } else { "setpriv" });
        if bounded {
            c.args(["10", "setpriv"]);
        }
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(&bin)
            .args(["run", "--no-default-ports", "--listen", "none"])
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("TAPSWITCH_CONTROL")
            .env_remove("TAPSWITCH_API_TOKEN")
            .stdin(Stdio::null());
        c
    };
    // created first by someone else (root here), then ours but readable by others
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = as_nobody(true).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("/tmp/tapswitch-65534") && err.contains("belongs to uid 0"),
        "{err}"
    );
    std::os::unix::fs::chown(&private, Some(65534), Some(65534)).unwrap();
    let out = as_nobody(true).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("/tmp/tapswitch-65534") && err.contains("mode 0755"),
        "{err}"
    );
    // missing: created with mode 0700, the control socket in it
    std::fs::remove_dir(&private).unwrap();
    let mut child = as_nobody(false)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = private.join("tapswitch.sock");
    let up = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        sock.exists()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(up, "no control socket at {}", sock.display());
    let m = std::fs::metadata(&private).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (65534, 0o700));
}

/// `--api-token-file` (and the configuration key `api_token_file`): the token from the file
/// opens TCP changes, a wrong one gets 401, and the token is nowhere in the process's command
/// line (where `--api-token` puts it for every local user to read). A missing or empty file
/// is an error naming the file.
#[test]
fn api_token_file_opens_tcp_changes_and_stays_out_of_proc() {
    let dir = TempDir::new("token");
    let tok = dir.path.join("api-token");
    let secret = "f1le-t0ken-7f3a9c";
    std::fs::write(&tok, format!("{secret}\n")).unwrap();
    let tok_s = tok.display().to_string();
    let api = common::free_addr();
    let sw = Proc::start(
        &[
            "--no-default-ports",
            "--control",
            "none",
            "--listen",
            &api,
            "--api-token-file",
            &tok_s,
        ],
        &[],
    );
    let patch = |api: &str, t: Option<&str>, secs: u32| {
        request(
            api,
            "PATCH",
            "/api/v1/config",
            Some(&format!(r#"{{"ageing_secs": {secs}}}"#)),
            t,
        )
        .expect("request")
    };
    assert_eq!(patch(&api, None, 9).0, 401);
    assert_eq!(patch(&api, Some("f1le-t0ken-7f3a9X"), 9).0, 401);
    let (st, body) = patch(&api, Some(secret), 9);
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"ageing_secs\":9"), "{body}");
    // the CLI's --token against it
    let out = common::tapswitch_cmd(&[
        "config",
        "--api",
        &api,
        "--token",
        secret,
        "ageing_secs",
        "11",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", sw.child.id())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains(&tok_s), "{cmdline}");
    assert!(
        !cmdline.contains(secret),
        "the token is in /proc: {cmdline}"
    );
    drop(sw);

    // the configuration key, relative to the file's directory
    let api2 = common::free_addr();
    let cfg = dir.path.join("sw.toml");
    std::fs::write(
        &cfg,
        format!("listen = \"{api2}\"\ncontrol = \"none\"\napi_token_file = \"api-token\"\n"),
    )
    .unwrap();
    let _sw2 = Proc::start(
        &["--no-default-ports", "--config", &cfg.display().to_string()],
        &[],
    );
    assert_eq!(patch(&api2, Some("nope"), 12).0, 401);
    assert_eq!(patch(&api2, Some(secret), 12).0, 200);

    // errors name the file
    let base = [
        "run",
        "--no-default-ports",
        "--control",
        "none",
        "--listen",
        "none",
    ];
    let missing = dir.path.join("no-such-token").display().to_string();
    let (st, err) = common::tapswitch_fails(&[&base[..], &["--api-token-file", &missing]].concat());
    assert!(!st.success());
    assert!(
        err.contains(&format!(
            "--api-token-file: cannot read the token file {missing}"
        )),
        "{err}"
    );
    std::fs::write(&tok, "\n  \n").unwrap();
    let (_, err) = common::tapswitch_fails(&[&base[..], &["--api-token-file", &tok_s]].concat());
    assert!(
        err.contains(&format!("the token file {tok_s} is empty")),
        "{err}"
    );
    let (_, err) = common::tapswitch_fails(
        &[&base[..], &["--api-token-file", &tok_s, "--api-token", "x"]].concat(),
    );
    assert!(err.contains("cannot be used with"), "{err}");
}
