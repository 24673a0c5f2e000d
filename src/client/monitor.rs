//! `tapswitch monitor`: follows `GET /api/v1/events` and prints each change as it happens, one
//! line each, like `bridge monitor` (`--json`: the API's JSON lines as they come).

use std::io::{BufRead, BufReader, Read, Write};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;

use super::{error_text, open_stream, ClientArgs};

/// `tapswitch monitor`.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only these kinds of events: `fdb`, `port`, `stp`, `mdb` (default: every kind).
    what: Vec<String>,
}

/// One event as `bridge monitor` would print it: `MAC dev PORT [vlan N] [KIND] master`,
/// `Deleted ...` for a removal; ports as `PORT: up`. `None` for a line it does not know.
pub fn event_text(v: &Value) -> Option<String> {
    let s = |k: &str| v[k].as_str().unwrap_or("?");
    match v["event"].as_str()? {
        "fdb" => {
            let mut t = String::new();
            if s("action") == "del" {
                t.push_str("Deleted ");
            }
            t += &format!("{} dev {}", s("mac"), s("port"));
            if let Some(n) = v["vlan"].as_u64().filter(|n| *n != 0) {
                t += &format!(" vlan {n}");
            }
            match s("kind") {
                "learned" | "?" => {}
                k => t += &format!(" {k}"),
            }
            t.push_str(" master tapswitch");
            if let Some(n) = v["seq"].as_u64() {
                // an EVPN mobility sequence number changed (action "seq")
                t += &format!(" seq {n}");
            }
            if let Some(f) = v["from"].as_str() {
                t += &format!(" (moved from {f})");
            }
            Some(t)
        }
        "port" | "stp" => Some(format!("{}: {} {}", s("port"), s("event"), s("state"))),
        "mdb" => {
            let what = s("change");
            let mut t = String::new();
            if what.ends_with("_removed") {
                t.push_str("Deleted ");
            }
            match what {
                "group_added" | "group_removed" | "group_changed" => {
                    t += &format!("dev tapswitch port {} grp {}", s("port"), s("group"));
                    if let Some(src) = v["source"].as_str() {
                        t += &format!(" src {src}");
                    }
                    if v["static"].as_bool() == Some(true) {
                        t.push_str(" permanent");
                    }
                    if let Some(m) = v["filter_mode"].as_str() {
                        t += &format!(" filter_mode {m}");
                    }
                    if let Some(r) = v["reason"].as_str() {
                        t += &format!(" ({r})");
                    }
                }
                "router_added" | "router_removed" => {
                    t += &format!("router port {} ({})", s("port"), s("family"));
                }
                other => t += &format!("mdb {other} {}", v),
            }
            if let Some(n) = v["vid"].as_u64().filter(|n| *n != 0) {
                t += &format!(" vid {n}");
            }
            Some(t)
        }
        "lagged" => Some(format!(
            "lagged: {} events lost (read the table again)",
            v["lost"].as_u64().unwrap_or(0)
        )),
        _ => None,
    }
}

/// `tapswitch monitor`.
pub fn monitor_cmd(a: MonitorArgs) -> Result<()> {
    for w in &a.what {
        if !matches!(w.as_str(), "fdb" | "port" | "stp" | "mdb") {
            bail!("monitor: unknown event kind '{w}' (known: fdb, port, stp, mdb)");
        }
    }
    let api = a.client.endpoint();
    let (status, mut body) = open_stream(&api, "/api/v1/events", None)?;
    if status != 200 {
        let mut text = String::new();
        let _ = body.read_to_string(&mut text);
        bail!("monitor: HTTP {status}: {}", error_text(&text));
    }
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(body).lines() {
        let line = line.context("reading the events")?;
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let kind = v["event"].as_str().unwrap_or("");
        if !a.what.is_empty() && kind != "lagged" && !a.what.iter().any(|w| w == kind) {
            continue;
        }
        let text = if a.client.json {
            Some(line)
        } else {
            event_text(&v)
        };
        if let Some(t) = text {
            match writeln!(out, "{t}").and_then(|()| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                r => r.context("writing")?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_like_bridge_monitor() {
        let t = |s: &str| event_text(&serde_json::from_str(s).unwrap());
        assert_eq!(
            t(r#"{"event":"fdb","action":"add","mac":"02:00:00:00:00:01","vlan":0,"port":"tap0","kind":"learned"}"#).unwrap(),
            "02:00:00:00:00:01 dev tap0 master tapswitch"
        );
        assert_eq!(
            t(r#"{"event":"fdb","action":"del","mac":"02:00:00:00:00:01","vlan":10,"port":"vx0","kind":"extern_learn"}"#).unwrap(),
            "Deleted 02:00:00:00:00:01 dev vx0 vlan 10 extern_learn master tapswitch"
        );
        assert_eq!(
            t(r#"{"event":"fdb","action":"move","mac":"02:00:00:00:00:01","vlan":0,"port":"b","kind":"learned","from":"a"}"#).unwrap(),
            "02:00:00:00:00:01 dev b master tapswitch (moved from a)"
        );
        assert_eq!(
            t(r#"{"event":"fdb","action":"seq","mac":"02:00:00:00:00:01","vlan":10,"port":"tap0","seq":2}"#).unwrap(),
            "02:00:00:00:00:01 dev tap0 vlan 10 master tapswitch seq 2"
        );
        assert_eq!(
            t(r#"{"event":"port","port":"tap0","state":"down"}"#).unwrap(),
            "tap0: port down"
        );
        assert!(t(r#"{"event":"lagged","lost":5}"#)
            .unwrap()
            .contains("5 events lost"));
        assert_eq!(
            t(r#"{"event":"mdb","change":"group_added","vid":0,"group":"239.1.1.1","port":"h2","static":false}"#).unwrap(),
            "dev tapswitch port h2 grp 239.1.1.1"
        );
        assert_eq!(
            t(r#"{"event":"mdb","change":"group_removed","vid":10,"group":"239.1.1.1","port":"h2","reason":"expired"}"#).unwrap(),
            "Deleted dev tapswitch port h2 grp 239.1.1.1 (expired) vid 10"
        );
        assert_eq!(t(r#"{"event":"new"}"#), None);
    }
}
