//! `tapswitch mdb [show|add|del]`, with `bridge mdb`'s words and output: the multicast
//! database (groups per port and VLAN), router ports and queriers.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{change, enc, get_json, print_json, ClientArgs};

/// `tapswitch mdb`.
#[derive(Args, Debug)]
pub(crate) struct MdbArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Token for changes over TCP (or TAPSWITCH_API_TOKEN).
    #[arg(
        long,
        env = "TAPSWITCH_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    #[command(subcommand)]
    pub action: Option<MdbAction>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum MdbAction {
    /// Print the groups, router ports and queriers (the default): `mdb show [port P]`.
    Show {
        /// `port P` (`dev SWITCH` is accepted and ignored).
        #[arg(num_args = 0..)]
        words: Vec<String>,
    },
    /// Add a static entry: `mdb add [dev SWITCH] port P grp G [src S] [permanent|temp]
    /// [vid N]`.
    Add {
        /// The words, as for `bridge mdb add`.
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
    /// Remove an entry, static or learned: `mdb del [dev SWITCH] port P grp G [src S]
    /// [vid N]`.
    Del {
        /// The words, as for `bridge mdb del`.
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
}

/// The words of `bridge mdb add|del|show`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MdbWords {
    /// `port P`.
    pub port: Option<String>,
    /// `grp G`.
    pub grp: Option<String>,
    /// `src S`.
    pub src: Option<String>,
    /// `permanent` (true), `temp` (false), or neither.
    pub permanent: Option<bool>,
    /// `vid N`.
    pub vid: Option<u16>,
}

/// Parses `bridge mdb`-style words; addresses are checked here so a typo is named before
/// anything is sent.
pub fn parse_mdb_words(words: &[String]) -> Result<MdbWords> {
    let mut m = MdbWords::default();
    let mut it = words.iter().map(String::as_str);
    while let Some(w) = it.next() {
        match w {
            "dev" => {
                it.next().context("'dev' needs the switch's name")?;
            }
            "port" => m.port = Some(it.next().context("'port' needs a port name")?.into()),
            "grp" | "group" => {
                let g = it.next().context("'grp' needs a multicast group")?;
                let ok = g
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_multicast());
                if !ok {
                    bail!("'grp {g}': give an IPv4 or IPv6 multicast group");
                }
                m.grp = Some(g.into());
            }
            "src" => {
                let s = it.next().context("'src' needs a source address")?;
                if s.parse::<std::net::IpAddr>().is_err() {
                    bail!("'src {s}': give an IPv4 or IPv6 address");
                }
                m.src = Some(s.into());
            }
            "permanent" => m.permanent = Some(true),
            "temp" => m.permanent = Some(false),
            "vid" => {
                let v = it.next().context("'vid' needs a VLAN ID")?;
                m.vid = Some(
                    v.parse::<u16>()
                        .ok()
                        .filter(|n| (1..=4094).contains(n))
                        .with_context(|| format!("'vid {v}': give a VLAN ID 1-4094"))?,
                );
            }
            other => bail!(
                "unknown word '{other}' (expected port P, grp G, src S, permanent, temp, vid N)"
            ),
        }
    }
    Ok(m)
}

/// The request (method, path, body) of `mdb add` or `mdb del`.
pub(crate) fn mdb_request(action: &MdbAction) -> Result<(&'static str, String, Option<Value>)> {
    let (MdbAction::Add { words } | MdbAction::Del { words }) = action else {
        return Ok(("GET", "/api/v1/mdb".into(), None));
    };
    let w = parse_mdb_words(words)?;
    let port = w.port.context("missing 'port P'")?;
    let grp = w.grp.context("missing 'grp G'")?;
    Ok(match action {
        MdbAction::Add { .. } => {
            let mut b = serde_json::json!({ "port": port, "grp": grp, "vid": w.vid.unwrap_or(0) });
            if let Some(s) = &w.src {
                b["src"] = Value::from(s.as_str());
            }
            if w.permanent == Some(false) {
                b["state"] = Value::from("temp");
            }
            ("POST", "/api/v1/mdb".into(), Some(b))
        }
        _ => {
            let mut q = format!("/api/v1/mdb?port={}&grp={}", enc(&port), enc(&grp));
            if let Some(s) = &w.src {
                q.push_str(&format!("&src={}", enc(s)));
            }
            if let Some(v) = w.vid {
                q.push_str(&format!("&vid={v}"));
            }
            ("DELETE", q, None)
        }
    })
}

/// Seconds with two decimals, as `bridge -s mdb show` prints timers.
fn secs(ms: &Value) -> String {
    let ms = ms.as_u64().unwrap_or(0);
    format!("{}.{:02}", ms / 1000, (ms % 1000) / 10)
}

/// `igmp` or `mld` for the API's `v4` / `v6`.
fn proto(f: &Value) -> &'static str {
    if f == "v6" {
        "mld"
    } else {
        "igmp"
    }
}

/// `bridge -d -s mdb show`-style text for `GET /api/v1/mdb`, for one port or all.
pub fn mdb_show_text(v: &Value, port: Option<&str>) -> String {
    let s = |x: &Value| x.as_str().map_or_else(|| x.to_string(), str::to_string);
    let mut out = String::new();
    for r in v["mdb"].as_array().into_iter().flatten() {
        if port.is_some_and(|p| r["port"] != p) {
            continue;
        }
        let mut line = format!("port {} grp {}", s(&r["port"]), s(&r["grp"]));
        if !r["src"].is_null() {
            line.push_str(&format!(" src {}", s(&r["src"])));
        }
        line.push_str(&format!(" {}", s(&r["state"])));
        if r["vid"].as_u64().unwrap_or(0) != 0 {
            line.push_str(&format!(" vid {}", r["vid"]));
        }
        for f in r["flags"].as_array().into_iter().flatten() {
            line.push_str(&format!(" {}", s(f)));
        }
        if !r["filter_mode"].is_null() {
            line.push_str(&format!(" filter_mode {}", s(&r["filter_mode"])));
        }
        let srcs: Vec<String> = r["source_list"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| format!("{}/{}", s(&x["address"]), secs(&x["timer_ms"])))
            .collect();
        if !srcs.is_empty() {
            line.push_str(&format!(" source_list {}", srcs.join(",")));
        }
        line.push_str(&format!(
            " proto {} {:>8}",
            s(&r["protocol"]),
            secs(&r["timer_ms"])
        ));
        out.push_str(&line);
        out.push('\n');
    }
    for r in v["router"].as_array().into_iter().flatten() {
        if port.is_some_and(|p| r["port"] != p) {
            continue;
        }
        let vid = r["vid"]
            .as_u64()
            .map_or_else(|| "all VLANs".to_string(), |n| format!("vid {n}"));
        out.push_str(&format!(
            "router port {} {} {} {:>8}\n",
            s(&r["port"]),
            proto(&r["family"]),
            vid,
            secs(&r["timer_ms"])
        ));
    }
    if port.is_none() {
        for q in v["querier"].as_array().into_iter().flatten() {
            let who = match &q["querier"] {
                Value::Null => "none".to_string(),
                i => {
                    let mut t = s(&i["address"]);
                    if !i["port"].is_null() {
                        t.push_str(&format!(" port {}", s(&i["port"])));
                    }
                    t
                }
            };
            out.push_str(&format!(
                "querier vid {} {} {} (forwarding {})\n",
                q["vid"],
                proto(&q["family"]),
                who,
                if q["exists"] == true {
                    "to members and router ports"
                } else {
                    "floods: no querier yet"
                }
            ));
        }
    }
    out
}

/// `tapswitch mdb [show|add|del]`.
pub(crate) fn mdb_cmd(a: MdbArgs) -> Result<()> {
    let api = &a.client.endpoint();
    let tok = a.token.as_deref();
    match a.action.unwrap_or(MdbAction::Show { words: vec![] }) {
        MdbAction::Show { words } => {
            let w = parse_mdb_words(&words)?;
            let v = get_json(api, "/api/v1/mdb")?;
            if a.client.json {
                print_json(&v)
            } else {
                print!("{}", mdb_show_text(&v, w.port.as_deref()));
                Ok(())
            }
        }
        action => {
            let (method, path, body) = mdb_request(&action)?;
            change(api, method, &path, body.as_ref(), tok).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn words_as_bridge_mdb_takes_them() {
        let m = parse_mdb_words(&w(
            "dev br0 port p1 grp 239.1.1.1 src 198.18.0.9 temp vid 10",
        ))
        .unwrap();
        assert_eq!(m.port.as_deref(), Some("p1"));
        assert_eq!(m.src.as_deref(), Some("198.18.0.9"));
        assert_eq!((m.permanent, m.vid), (Some(false), Some(10)));
        assert!(parse_mdb_words(&w("port p1 grp 198.18.0.1")).is_err());
        assert!(parse_mdb_words(&w("port p1 grp ff0e::1 vid 4095")).is_err());
        assert!(parse_mdb_words(&w("port p1 grp ff0e::1 bogus")).is_err());
        let (m, p, b) = mdb_request(&MdbAction::Add {
            words: w("port p1 grp ff0e::1 temp"),
        })
        .unwrap();
        assert_eq!((m, p.as_str()), ("POST", "/api/v1/mdb"));
        assert_eq!(
            b.unwrap(),
            serde_json::json!({"port": "p1", "grp": "ff0e::1", "vid": 0, "state": "temp"})
        );
        let (m, p, _) = mdb_request(&MdbAction::Del {
            words: w("port p1 grp ff0e::1 vid 5"),
        })
        .unwrap();
        assert_eq!(
            (m, p.as_str()),
            ("DELETE", "/api/v1/mdb?port=p1&grp=ff0e::1&vid=5")
        );
        assert!(mdb_request(&MdbAction::Del {
            words: w("port p1")
        })
        .is_err());
    }

    #[test]
    fn show_text() {
        let v = serde_json::json!({
            "mdb": [{"port": "p1", "grp": "239.1.1.1", "vid": 0, "state": "temp", "flags": [],
                     "filter_mode": "include", "source_list": [{"address": "198.18.0.9", "timer_ms": 1500}],
                     "protocol": "kernel", "timer_ms": 0}],
            "router": [{"port": "up", "vid": null, "family": "v4", "timer_ms": 0}],
            "querier": [{"vid": 0, "family": "v4", "querier": null, "other_timer_ms": 0, "exists": false}]
        });
        assert_eq!(
            mdb_show_text(&v, None),
            "port p1 grp 239.1.1.1 temp filter_mode include source_list 198.18.0.9/1.50 proto kernel     0.00\n\
             router port up igmp all VLANs     0.00\n\
             querier vid 0 igmp none (forwarding floods: no querier yet)\n"
        );
        assert_eq!(
            mdb_show_text(&v, Some("up")),
            "router port up igmp all VLANs     0.00\n"
        );
    }
}
