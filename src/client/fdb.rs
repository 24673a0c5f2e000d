//! `tapswitch fdb [show|add|append|replace|del|flush]`, with `bridge fdb`'s words and output.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{change, get_all_pages, get_json, print_json, ClientArgs};

#[derive(Args, Debug)]
pub(crate) struct FdbArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Token for changes (or TAPSWITCH_API_TOKEN).
    #[arg(
        long,
        env = "TAPSWITCH_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    #[command(subcommand)]
    pub action: Option<FdbAction>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum FdbAction {
    /// Print every entry (the default).
    Show,
    /// Add an entry; fails if it exists: `fdb add MAC dev PORT [vlan N] [dst IP] [vni N]
    /// [static|sticky|dynamic|extern_learn]` (`dst`: a vxlan port's own entry; `vni`: in
    /// that VNI's table, for a port with a vni-map).
    Add {
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
    /// Add a remote to a vxlan port's flood list:
    /// `fdb append 00:00:00:00:00:00 dev PORT dst IP [vni N]`.
    Append {
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
    /// Add or replace an entry: same words as `add`.
    Replace {
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
    /// Delete an entry: `fdb del MAC [vlan N]`; `fdb del MAC dev PORT [vlan N]` deletes only
    /// PORT's (without `vlan`: in VLAN 0 and every VLAN of PORT, as `bridge fdb del`); a vxlan
    /// port's own entry: `fdb del MAC dev PORT dst IP`.
    Del {
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
    /// Delete every entry, or those of `dev PORT` and/or `vlan N`.
    Flush {
        #[arg(num_args = 0..)]
        words: Vec<String>,
    },
}

/// One `bridge fdb show` line for an entry.
pub fn fdb_line(e: &Value, master: &str) -> String {
    // iproute2's order: dev, vlan, dst, flags (self, extern_learn, sticky), master, state
    let mut s = format!(
        "{} dev {}",
        e["mac"].as_str().unwrap_or("?"),
        e["port"].as_str().unwrap_or("?")
    );
    let kind = e["kind"].as_str();
    if let Some(dst) = e["dst"].as_str() {
        // a vxlan port's own entry, as Linux prints a VXLAN device's (with `vni` when the
        // port has several: a vni-map)
        s.push_str(&format!(" dst {dst}"));
        if let (Some(v), true) = (e["vni"].as_u64(), e["vni_map"] == true) {
            s.push_str(&format!(" vni {v}"));
        }
        s.push_str(" self");
        match kind {
            Some("extern_learn") => s.push_str(" extern_learn"),
            Some("static") => s.push_str(" permanent"),
            _ => {}
        }
        return s;
    }
    let vlan = e["vlan"].as_u64().unwrap_or(0);
    if vlan != 0 {
        s.push_str(&format!(" vlan {vlan}"));
    }
    match kind {
        Some("sticky") => s.push_str(" sticky"),
        Some("extern_learn") => s.push_str(" extern_learn"),
        _ => {}
    }
    s.push_str(&format!(" master {master}"));
    if matches!(kind, Some("static" | "sticky")) {
        s.push_str(" static");
    }
    if let Some(n) = e["seq"].as_u64() {
        // the EVPN mobility sequence number (FRR's `show evpn mac` has it too)
        s.push_str(&format!(" seq {n}"));
    }
    s
}

/// Sorts table entries as `tapswitch fdb` always printed them: the bridge's entries by port
/// (in attach order), VLAN and MAC; then each vxlan port's own entries, by MAC, its flood list
/// last in its order. `ports` is `GET /api/v1/ports` (ids and flood lists).
pub fn sort_fdb(entries: &mut [Value], ports: &Value) {
    use std::collections::HashMap;
    let mut id: HashMap<&str, u64> = HashMap::new();
    let mut flood: HashMap<(&str, u64, String), usize> = HashMap::new();
    for p in ports.as_array().into_iter().flatten() {
        let Some(name) = p["name"].as_str() else {
            continue;
        };
        id.insert(name, p["id"].as_u64().unwrap_or(u64::MAX));
        // a port of one VNI, or each VNI of a vni-map
        let one = [p["vxlan"].clone()];
        let vnis = match p["vxlan"]["vni_map"].as_array() {
            Some(m) => m.as_slice(),
            None => &one[..],
        };
        for v in vnis {
            let vni = v["vni"].as_u64().unwrap_or(0);
            for (i, r) in v["flood"].as_array().into_iter().flatten().enumerate() {
                if let Some(d) = r["dst"].as_str() {
                    flood.insert((name, vni, d.to_string()), i);
                }
            }
        }
    }
    let key = |e: &Value| {
        let port = e["port"].as_str().unwrap_or("");
        let pid = id.get(port).copied().unwrap_or(u64::MAX);
        let mac = e["mac"].as_str().unwrap_or("").to_string();
        let vni = e["vni"].as_u64().unwrap_or(0);
        match e["dst"].as_str() {
            None => (0, pid, e["vlan"].as_u64().unwrap_or(0), 0, mac, 0),
            Some(d) if mac == "00:00:00:00:00:00" => {
                let at = flood
                    .get(&(port, vni, d.to_string()))
                    .copied()
                    .unwrap_or(usize::MAX);
                (1, pid & 0xffff, vni, 1, String::new(), at)
            }
            Some(_) => (1, pid & 0xffff, vni, 0, mac, 0),
        }
    };
    entries.sort_by_cached_key(key);
}

/// `tapswitch fdb`: every page of the table, in the order it always had.
pub fn fdb(api: &str, json: bool) -> Result<()> {
    // 16 M learned entries and the user and vxlan ones, at 10000 a page
    let mut entries = get_all_pages(api, "/api/v1/fdb?limit=10000", 4096)?;
    let ports = get_json(api, "/api/v1/ports")?;
    sort_fdb(&mut entries, &ports);
    let v = Value::Array(entries);
    if json {
        print_json(&v)?;
        return Ok(());
    }
    let cfg = get_json(api, "/api/v1/config")?;
    let master = cfg["name"].as_str().unwrap_or("tapswitch");
    let mapped: Vec<&str> = ports
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["vxlan"]["vni_map"].is_array())
        .filter_map(|p| p["name"].as_str())
        .collect();
    for e in v.as_array().into_iter().flatten() {
        let mut e = e.clone();
        if e["port"].as_str().is_some_and(|p| mapped.contains(&p)) {
            e["vni_map"] = true.into();
        }
        println!("{}", fdb_line(&e, master));
    }
    Ok(())
}

/// Parses `bridge fdb`-style words: `MAC dev PORT [vlan N] [dst IP] [vni N] [self]
/// [static|sticky|dynamic|extern_learn]`.
pub fn parse_fdb_words(words: &[String], need_dev: bool) -> Result<Value> {
    let mut it = words.iter().map(String::as_str);
    let mac = it.next().context("missing MAC address")?;
    let mac: crate::wire::MacAddr = mac.parse()?;
    let mut body = serde_json::json!({ "mac": mac, "vlan": 0, "kind": "static" });
    let mut dev = None;
    while let Some(w) = it.next() {
        match w {
            "dev" | "port" => dev = Some(it.next().context("'dev' needs a port name")?.to_string()),
            "vlan" => {
                let v: u16 = it
                    .next()
                    .context("'vlan' needs a number")?
                    .parse()
                    .context("bad vlan")?;
                body["vlan"] = v.into();
            }
            "dst" => {
                let ip: std::net::IpAddr = it
                    .next()
                    .context("'dst' needs an IP address")?
                    .parse()
                    .context("bad dst address")?;
                body["dst"] = ip.to_string().into();
            }
            "vni" => {
                let v: u32 = it
                    .next()
                    .context("'vni' needs a number")?
                    .parse()
                    .context("bad vni")?;
                body["vni"] = v.into();
            }
            "static" | "sticky" | "dynamic" | "extern_learn" => body["kind"] = w.into(),
            "self" => body["self"] = true.into(),
            "master" | "permanent" => {}
            other => {
                bail!("unknown word '{other}' (expected dev PORT, vlan N, dst IP, vni N, self, static, sticky, dynamic, extern_learn)")
            }
        }
    }
    match dev {
        Some(d) => body["port"] = d.into(),
        None if need_dev => bail!("missing 'dev PORT'"),
        None => {}
    }
    Ok(body)
}

/// `tapswitch fdb [show|add|replace|del|flush]`.
pub(crate) fn fdb_cmd(a: FdbArgs) -> Result<()> {
    let api = &a.client.endpoint();
    let tok = a.token.as_deref();
    let action = a.action.unwrap_or(FdbAction::Show);
    if let FdbAction::Show = action {
        return fdb(api, a.client.json);
    }
    let (method, path, body) = fdb_request(&action)?;
    let v = change(api, method, &path, body.as_ref(), tok)?;
    if let FdbAction::Flush { .. } = action {
        println!("removed {} entries", v["removed"]);
    }
    Ok(())
}

/// The request (method, path, body) of a changing `fdb` command, from its words (`Show` is
/// a read: a GET of /api/v1/fdb).
pub(crate) fn fdb_request(action: &FdbAction) -> Result<(&'static str, String, Option<Value>)> {
    Ok(match action {
        FdbAction::Show => ("GET", "/api/v1/fdb".to_string(), None),
        FdbAction::Add { words } => {
            let b = parse_fdb_words(words, true)?;
            ("POST", "/api/v1/fdb".to_string(), Some(b))
        }
        FdbAction::Append { words } => {
            let b = parse_fdb_words(words, true)?;
            if b["mac"] != "00:00:00:00:00:00" || b["dst"].is_null() {
                bail!("append adds a remote to a vxlan port's flood list: fdb append 00:00:00:00:00:00 dev PORT dst IP");
            }
            ("POST", "/api/v1/fdb".to_string(), Some(b))
        }
        FdbAction::Replace { words } => {
            let b = parse_fdb_words(words, true)?;
            let path = format!("/api/v1/fdb/{}", b["mac"].as_str().unwrap_or_default());
            ("PUT", path, Some(b))
        }
        FdbAction::Del { words } => {
            let b = parse_fdb_words(words, false)?;
            let mut path = format!(
                "/api/v1/fdb/{}?vlan={}",
                b["mac"].as_str().unwrap_or_default(),
                b["vlan"]
            );
            if let Some(d) = b["dst"].as_str() {
                path.push_str(&format!("&dst={d}"));
            }
            if let Some(v) = b["vni"].as_u64() {
                path.push_str(&format!("&vni={v}"));
            }
            if b["self"] == true {
                path.push_str("&self=true");
            }
            match b["port"].as_str() {
                Some(port) => path.push_str(&format!("&port={port}")),
                None if !b["dst"].is_null() || !b["vni"].is_null() || b["self"] == true => {
                    bail!("deleting a vxlan port's entry needs 'dev PORT'")
                }
                None => {}
            }
            ("DELETE", path, None)
        }
        FdbAction::Flush { words } => {
            let mut q = Vec::new();
            let mut it = words.iter();
            while let Some(w) = it.next() {
                match w.as_str() {
                    "dev" | "port" => q.push(format!(
                        "port={}",
                        it.next().context("'dev' needs a port name")?
                    )),
                    "vlan" => q.push(format!(
                        "vlan={}",
                        it.next().context("'vlan' needs a number")?
                    )),
                    other => bail!("unknown word '{other}' (expected dev PORT, vlan N)"),
                }
            }
            let path = if q.is_empty() {
                "/api/v1/fdb".to_string()
            } else {
                format!("/api/v1/fdb?{}", q.join("&"))
            };
            ("DELETE", path, None)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_fdb_show_lines() {
        let e = serde_json::json!({"mac": "02:00:00:00:00:01", "port": "tsw0", "vlan": 0, "kind": "learned"});
        assert_eq!(fdb_line(&e, "br0"), "02:00:00:00:00:01 dev tsw0 master br0");
        let e = serde_json::json!({"mac": "02:00:00:00:00:01", "port": "tsw0", "vlan": 5, "kind": "sticky"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:01 dev tsw0 vlan 5 sticky master br0 static"
        );
        let e = serde_json::json!({"mac": "02:00:00:00:00:01", "port": "tsw0", "vlan": 0, "kind": "static"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:01 dev tsw0 master br0 static"
        );
        // as iproute2 prints a Linux VXLAN device's entries and extern_learn bridge entries
        let e = serde_json::json!({"mac": "02:00:00:00:00:09", "port": "vx0", "vlan": 0, "kind": "extern_learn"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:09 dev vx0 extern_learn master br0"
        );
        // with EVPN, the mobility sequence number last (null: no VNI in that VLAN)
        let e = serde_json::json!({"mac": "02:00:00:00:00:09", "port": "vx0", "vlan": 0, "kind": "extern_learn", "seq": 2});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:09 dev vx0 extern_learn master br0 seq 2"
        );
        let e = serde_json::json!({"mac": "02:00:00:00:00:01", "port": "tsw0", "vlan": 0, "kind": "learned", "seq": null});
        assert_eq!(fdb_line(&e, "br0"), "02:00:00:00:00:01 dev tsw0 master br0");
        let e = serde_json::json!({"mac": "00:00:00:00:00:00", "port": "vx0", "vlan": 0, "kind": "static", "dst": "198.18.250.2"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "00:00:00:00:00:00 dev vx0 dst 198.18.250.2 self permanent"
        );
        let e = serde_json::json!({"mac": "02:00:00:00:00:07", "port": "vx0", "vlan": 0, "kind": "learned", "dst": "2001:2::2"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:07 dev vx0 dst 2001:2::2 self"
        );
        let e = serde_json::json!({"mac": "02:00:00:00:00:08", "port": "vx0", "vlan": 0, "kind": "extern_learn", "dst": "198.18.250.3"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:08 dev vx0 dst 198.18.250.3 self extern_learn"
        );
        // a port with a vni-map: each entry says its VNI
        let e = serde_json::json!({"mac": "00:00:00:00:00:00", "port": "vx0", "vlan": 0, "kind": "static", "dst": "198.18.250.2", "vni": 1010, "vni_map": true});
        assert_eq!(
            fdb_line(&e, "br0"),
            "00:00:00:00:00:00 dev vx0 dst 198.18.250.2 vni 1010 self permanent"
        );
    }

    #[test]
    fn fdb_words_with_a_vni() {
        let w = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let b = parse_fdb_words(
            &w("00:00:00:00:00:00 dev vx0 dst 198.18.0.2 vni 1010"),
            true,
        )
        .unwrap();
        assert_eq!((&b["dst"], &b["vni"]), (&"198.18.0.2".into(), &1010.into()));
        assert!(parse_fdb_words(&w("00:00:00:00:00:00 dev vx0 vni x"), true).is_err());
        assert!(parse_fdb_words(&w("00:00:00:00:00:00 dev vx0 vni"), true).is_err());
        let del = FdbAction::Del {
            words: w("02:00:00:00:00:01 dev vx0 dst 198.18.0.2 vni 1020"),
        };
        let (m, path, _) = fdb_request(&del).unwrap();
        assert_eq!(m, "DELETE");
        assert!(path.contains("&dst=198.18.0.2&vni=1020&port=vx0"), "{path}");
        let del = FdbAction::Del {
            words: w("02:00:00:00:00:01 vni 1020"),
        };
        assert!(fdb_request(&del).is_err(), "a VNI's entry needs its port");
    }

    #[test]
    fn fdb_words() {
        let w = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let b =
            parse_fdb_words(&w("02:00:00:00:00:01 dev tsw0 vlan 5 sticky master"), true).unwrap();
        assert_eq!(b["port"], "tsw0");
        assert_eq!(b["vlan"], 5);
        assert_eq!(b["kind"], "sticky");
        assert!(parse_fdb_words(&w("02:00:00:00:00:01"), true).is_err());
        assert!(parse_fdb_words(&w("02:00:00:00:00:01 dev"), true).is_err());
        assert!(parse_fdb_words(&w("nope dev x"), true).is_err());
        assert!(parse_fdb_words(&w("02:00:00:00:00:01 bogus"), false).is_err());
        let b = parse_fdb_words(
            &w("00:00:00:00:00:00 dev vx0 dst 2001:2::2 self permanent"),
            true,
        )
        .unwrap();
        assert_eq!(
            (&b["port"], &b["dst"], &b["self"]),
            (&"vx0".into(), &"2001:2::2".into(), &true.into())
        );
        let b = parse_fdb_words(
            &w("02:00:00:00:00:01 dev vx0 dst 198.18.0.2 extern_learn"),
            true,
        )
        .unwrap();
        assert_eq!(b["kind"], "extern_learn");
        assert!(parse_fdb_words(&w("02:00:00:00:00:01 dev vx0 dst nowhere"), true).is_err());
    }
}
