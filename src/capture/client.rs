//! `tapswitch capture` and `tapswitch mirror`: the command-line side of captures and mirrors.
//!
//! `capture` streams `GET /api/v1/capture` to a file or stdout (binary pcapng, so `| tcpdump
//! -r -` and `| wireshark -k -i -` work live), or, with no `-w` and a terminal on stdout, prints
//! one line per frame. It reads the stream as it passes (interfaces, frames and the closing
//! statistics) and reports on stderr how many frames it got and how many the switch dropped.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::capture::pcap::{Direction, Event, Reader};
use crate::cli::ClientArgs;

/// `tapswitch capture`.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Token for captures over TCP (or TAPSWITCH_API_TOKEN).
    #[arg(long, env = "TAPSWITCH_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Ports to capture (default: every port).
    ports: Vec<String>,
    /// Write the capture to FILE, or `-` for stdout [default: stdout; one line per frame
    /// when stdout is a terminal].
    #[arg(short = 'w', value_name = "FILE")]
    write: Option<String>,
    /// Stop after COUNT frames.
    #[arg(short = 'c', long, value_name = "COUNT")]
    count: Option<u64>,
    /// Stop after S seconds.
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// rx (read from the ports), tx (written to them) or both [default: both].
    #[arg(long, value_name = "DIR")]
    direction: Option<String>,
    /// Only frames whose outer VLAN tag has this VID.
    #[arg(long, value_name = "N")]
    vlan: Option<u16>,
    /// Only frames from or to this MAC address.
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// Only frames of this EtherType (0xNNNN; outer or after the VLAN tags).
    #[arg(long, value_name = "X")]
    ethertype: Option<String>,
    /// Bytes kept of each frame [default: 262144].
    #[arg(short = 's', long, value_name = "N")]
    snaplen: Option<u32>,
    /// pcapng (port names, directions, drop statistics) or pcap [default: pcapng].
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
}

/// `tapswitch mirror`.
#[derive(Args, Debug)]
pub struct MirrorArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Token for changes over TCP (or TAPSWITCH_API_TOKEN).
    #[arg(
        long,
        env = "TAPSWITCH_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    action: Option<MirrorAction>,
}

#[derive(Subcommand, Debug)]
enum MirrorAction {
    /// List the mirrors (the default).
    Show,
    /// Add a mirror: `mirror add NAME [src PORT]... [dst PORT]... [all] output PORT`.
    Add {
        /// The name, then the words.
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
    /// Remove a mirror.
    Del {
        /// Its name.
        name: String,
    },
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// The API path of a capture request.
fn capture_path(a: &CaptureArgs) -> String {
    let mut q: Vec<String> = a.ports.iter().map(|p| format!("port={}", enc(p))).collect();
    if let Some(v) = &a.direction {
        q.push(format!("direction={}", enc(v)));
    }
    if let Some(v) = a.vlan {
        q.push(format!("vlan={v}"));
    }
    if let Some(v) = &a.mac {
        q.push(format!("mac={}", enc(v)));
    }
    if let Some(v) = &a.ethertype {
        q.push(format!("ethertype={}", enc(v)));
    }
    if let Some(v) = a.count {
        q.push(format!("count={v}"));
    }
    if let Some(v) = a.duration {
        q.push(format!("duration={v}"));
    }
    if let Some(v) = a.snaplen {
        q.push(format!("snaplen={v}"));
    }
    if let Some(v) = &a.format {
        q.push(format!("format={}", enc(v)));
    }
    if q.is_empty() {
        "/api/v1/capture".into()
    } else {
        format!("/api/v1/capture?{}", q.join("&"))
    }
}

/// What the stream said, for the closing report.
#[derive(Default)]
struct Tally {
    names: Vec<Option<String>>,
    frames: u64,
    dropped: u64,
    stats: bool,
}

/// `tapswitch capture`.
pub fn capture_cmd(a: CaptureArgs) -> Result<()> {
    let api = a.client.endpoint();
    let path = capture_path(&a);
    let (status, mut body) = crate::client::open_stream(&api, &path, a.token.as_deref())?;
    if status != 200 {
        let mut text = String::new();
        let _ = body.read_to_string(&mut text);
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        bail!("capture: HTTP {status}: {msg}");
    }
    let lines = a.write.is_none() && std::io::stdout().is_terminal();
    let mut sink: Option<Box<dyn Write>> = match a.write.as_deref() {
        _ if lines => None,
        None | Some("-") => Some(Box::new(std::io::stdout().lock())),
        Some(f) => Some(Box::new(
            std::fs::File::create(f).with_context(|| format!("-w {f}"))?,
        )),
    };
    let mut reader = Reader::new();
    let mut t = Tally::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut broken_pipe = false;
    let mut stdout = std::io::stdout().lock();
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the capture"),
        };
        if let Some(s) = sink.as_mut() {
            // flushed at once, so a reader on a pipe (tcpdump -r -) sees frames live
            if let Err(e) = s.write_all(&buf[..n]).and_then(|()| s.flush()) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    broken_pipe = true;
                    break;
                }
                return Err(e).context("writing the capture");
            }
        }
        reader.feed(&buf[..n]);
        while let Some(ev) = reader
            .next()
            .context("the switch sent a malformed stream")?
        {
            match ev {
                Event::Interface { id, name, .. } => {
                    let i = id as usize;
                    if t.names.len() <= i {
                        t.names.resize(i + 1, None);
                    }
                    t.names[i] = name;
                }
                Event::Packet {
                    iface,
                    ts_ns,
                    dir,
                    data,
                    ..
                } => {
                    t.frames += 1;
                    if lines {
                        let port = t
                            .names
                            .get(iface as usize)
                            .cloned()
                            .flatten()
                            .unwrap_or_else(|| "?".into());
                        let line = crate::capture::pcap::summary(
                            ts_ns,
                            &port,
                            dir.unwrap_or(Direction::Inbound),
                            &data,
                        );
                        if writeln!(stdout, "{line}").is_err() {
                            broken_pipe = true;
                            break;
                        }
                    }
                }
                Event::Stats { dropped, .. } => {
                    t.stats = true;
                    t.dropped += dropped.unwrap_or(0);
                }
            }
        }
        if broken_pipe {
            break;
        }
    }
    let _ = stdout.flush();
    if let Some(mut s) = sink.take() {
        let _ = s.flush();
    }
    if t.stats {
        eprintln!(
            "tapswitch: {} frames captured, {} dropped by the switch (the reader was too slow)",
            t.frames, t.dropped
        );
    } else if !broken_pipe {
        eprintln!(
            "tapswitch: {} frames captured (no drop statistics in this format: see tapswitch_capture_dropped_total)",
            t.frames
        );
    }
    Ok(())
}

/// Parses `NAME [src PORT]... [dst PORT]... [all] output PORT` into the API's JSON body.
pub fn parse_mirror_words(words: &[String]) -> Result<Value> {
    let mut it = words.iter().map(String::as_str);
    let name = it.next().context("missing the mirror's NAME")?;
    let (mut src, mut dst, mut all, mut output) = (Vec::new(), Vec::new(), false, None);
    while let Some(w) = it.next() {
        let mut port = |what: &str| -> Result<String> {
            Ok(it
                .next()
                .with_context(|| format!("'{what}' needs a port name"))?
                .to_string())
        };
        match w {
            "src" | "select-src" | "select_src" => src.push(port(w)?),
            "dst" | "select-dst" | "select_dst" => dst.push(port(w)?),
            "all" | "select-all" | "select_all" => all = true,
            "output" | "out" => output = Some(port(w)?),
            other => {
                bail!("unknown word '{other}' (expected src PORT, dst PORT, all, output PORT)")
            }
        }
    }
    let output = output.context("missing 'output PORT'")?;
    Ok(serde_json::json!({
        "name": name,
        "select_src": src,
        "select_dst": dst,
        "select_all": all,
        "output": output,
    }))
}

/// One line of `tapswitch mirror show`.
pub fn mirror_line(m: &Value) -> String {
    let list = |k: &str| -> Vec<String> {
        m[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut s = format!("{}:", m["name"].as_str().unwrap_or("?"));
    if m["select_all"] == true {
        s.push_str(" all");
    }
    for p in list("select_src") {
        s.push_str(&format!(" src {p}"));
    }
    for p in list("select_dst") {
        s.push_str(&format!(" dst {p}"));
    }
    s.push_str(&format!(
        " output {} frames {} dropped {}",
        m["output"].as_str().unwrap_or("?"),
        m["frames"],
        m["dropped"]
    ));
    if m["active"] == false {
        s.push_str(" (inactive: output port not attached)");
    }
    s
}

/// Checks the words of a `mirror` command without sending it (`tapswitch::cli::check_args`).
pub(crate) fn check_mirror(a: &MirrorArgs) -> Result<()> {
    if let Some(MirrorAction::Add { words }) = &a.action {
        parse_mirror_words(words)?;
    }
    Ok(())
}

/// `tapswitch mirror [show|add|del]`.
pub fn mirror_cmd(a: MirrorArgs) -> Result<()> {
    let api = a.client.endpoint();
    let tok = a.token.as_deref();
    let check = |method: &str, path: &str, status: u16, body: &str| -> Result<Value> {
        if !(200..300).contains(&status) {
            let msg = serde_json::from_str::<Value>(body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.trim().to_string());
            bail!("{method} {path}: HTTP {status}: {msg}");
        }
        Ok(serde_json::from_str(body).unwrap_or(Value::Null))
    };
    match a.action.unwrap_or(MirrorAction::Show) {
        MirrorAction::Show => {
            let v = crate::client::get_json(&api, "/api/v1/mirrors")?;
            if a.client.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for m in v.as_array().into_iter().flatten() {
                    println!("{}", mirror_line(m));
                }
            }
        }
        MirrorAction::Add { words } => {
            let body = parse_mirror_words(&words)?.to_string();
            let path = "/api/v1/mirrors";
            let (st, resp) = crate::client::request(&api, "POST", path, Some(&body), tok)?;
            let v = check("POST", path, st, &resp)?;
            if a.client.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
        }
        MirrorAction::Del { name } => {
            let path = format!("/api/v1/mirrors/{}", enc(&name));
            let (st, resp) = crate::client::request(&api, "DELETE", &path, None, tok)?;
            check("DELETE", &path, st, &resp)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn mirror_words() {
        let v = parse_mirror_words(&w("m1 src a src b dst c output mon0")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "m1", "select_src": ["a", "b"], "select_dst": ["c"], "select_all": false, "output": "mon0"})
        );
        let v = parse_mirror_words(&w("m2 all output mon0")).unwrap();
        assert_eq!(v["select_all"], true);
        assert!(parse_mirror_words(&w("m3 src a")).is_err());
        assert!(parse_mirror_words(&w("m3 src")).is_err());
        assert!(parse_mirror_words(&w("m3 bogus x output y")).is_err());
        assert!(parse_mirror_words(&[]).is_err());
        let line = mirror_line(
            &serde_json::json!({"name": "m1", "select_src": ["a"], "select_dst": [], "select_all": false, "output": "mon0", "frames": 3, "dropped": 0, "active": true}),
        );
        assert_eq!(line, "m1: src a output mon0 frames 3 dropped 0");
    }

    #[test]
    fn capture_paths() {
        let mut a = CaptureArgs {
            client: ClientArgs {
                control: None,
                api: None,
                json: false,
            },
            token: None,
            ports: vec!["tsw0".into(), "a b".into()],
            write: None,
            count: Some(3),
            duration: Some(1.5),
            direction: Some("rx".into()),
            vlan: Some(10),
            mac: Some("02:00:00:00:00:01".into()),
            ethertype: Some("0x0800".into()),
            snaplen: Some(96),
            format: None,
        };
        assert_eq!(
            capture_path(&a),
            "/api/v1/capture?port=tsw0&port=a%20b&direction=rx&vlan=10&mac=02:00:00:00:00:01&ethertype=0x0800&count=3&duration=1.5&snaplen=96"
        );
        a.ports.clear();
        a.count = None;
        a.duration = None;
        a.direction = None;
        a.vlan = None;
        a.mac = None;
        a.ethertype = None;
        a.snaplen = None;
        assert_eq!(capture_path(&a), "/api/v1/capture");
    }
}
