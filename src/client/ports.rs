//! `tapswitch ports` (like `ip -s link`) and `tapswitch port add|del|set` (like `ip link set X
//! master` and `bridge link set`).

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{change, get_json, print_json, ClientArgs};

#[derive(Args, Debug)]
pub(crate) struct PortArgs {
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
    pub action: PortAction,
}

#[derive(Subcommand, Debug)]
pub(crate) enum PortAction {
    /// Attach a port: `port add SPEC` (e.g. `packet:veth3,hairpin`).
    Add { spec: String },
    /// Detach a port (its table entries are flushed).
    Del { name: String },
    /// Change flags and settings: `port set NAME hairpin on learning off stp_cost 100 ...`
    /// (`enabled on` re-enables a port BPDU guard disabled).
    Set {
        name: String,
        #[arg(num_args = 2..)]
        words: Vec<String>,
    },
}

/// `tapswitch ports`.
pub fn ports(api: &str, json: bool) -> Result<()> {
    let v = get_json(api, "/api/v1/ports")?;
    if json {
        print_json(&v)?;
        return Ok(());
    }
    for (i, p) in v.as_array().into_iter().flatten().enumerate() {
        let flags: Vec<String> = p["flags"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .map(|(k, _)| k.to_uppercase())
            .collect();
        let c = &p["counters"];
        println!(
            "{}: {}: <{}> mtu {} state {} kind {}",
            i + 1,
            p["name"].as_str().unwrap_or("?"),
            flags.join(","),
            p["mtu"],
            p["state"].as_str().unwrap_or("?").to_uppercase(),
            p["kind"].as_str().unwrap_or("?"),
        );
        if let Some(line) = vxlan_line(&p["vxlan"]) {
            println!("    {line}");
        }
        println!("    RX:  bytes  packets  dropped");
        println!(
            "    {:>10} {:>8} {:>8}",
            c["rx_bytes"], c["rx_frames"], c["rx_dropped"]
        );
        println!("    TX:  bytes  packets  dropped");
        println!(
            "    {:>10} {:>8} {:>8}",
            c["tx_bytes"], c["tx_frames"], c["tx_dropped"]
        );
        for dir in ["rx_dropped_by_reason", "tx_dropped_by_reason"] {
            let nz: Vec<String> = c[dir]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            if !nz.is_empty() {
                println!("    {}: {}", &dir[..2].to_uppercase(), nz.join(", "));
            }
        }
    }
    Ok(())
}

/// A `vxlan` port's tunnel in one line, as `ip -d link` shows a VXLAN device: `vxlan id
/// 100 local IP dstport 4789`, or with a vni-map `vxlan vni-map 10:1010;20:1020 local IP
/// dstport 4789`, with each VNI's flood list size.
fn vxlan_line(v: &Value) -> Option<String> {
    if !v.is_object() {
        return None;
    }
    let tail = format!(
        "local {} dstport {}",
        v["local"].as_str().unwrap_or("?"),
        v["dstport"]
    );
    Some(match v["vni_map"].as_array() {
        Some(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|e| format!("{}:{}", e["vlan"], e["vni"]))
                .collect();
            let flood: Vec<String> = m
                .iter()
                .map(|e| {
                    let n = e["flood"].as_array().map_or(0, Vec::len);
                    format!("vni {} flood {n}", e["vni"])
                })
                .collect();
            format!(
                "vxlan vni-map {} {tail} ({})",
                items.join(";"),
                flood.join(", ")
            )
        }
        None => format!("vxlan id {} {tail}", v["vni"]),
    })
}

/// Which `port set` keys are on/off flags (so `1`/`0` mean on/off there).
struct PortFlagsNames;

impl PortFlagsNames {
    fn is_flag(k: &str) -> bool {
        crate::forwarding::PortFlags::by_name(k).is_some()
            || matches!(
                k,
                "edge" | "auto_edge" | "bpdu_guard" | "root_guard" | "enabled"
            )
    }
}

/// Parses `port set` pairs (`FLAG on|off`, `KEY VALUE`) into the body of `PATCH
/// /api/v1/ports/{name}`: flags and switches take on/off (also true/false, 1/0), numbers pass
/// as numbers, other words (`p2p auto`) as they are.
pub fn parse_port_set_words(words: &[String]) -> Result<Value> {
    let mut body = serde_json::Map::new();
    for pair in words.chunks(2) {
        let [k, v] = pair else {
            bail!("flags come in pairs: FLAG on|off")
        };
        let k = k.replace('-', "_");
        let val: Value = match v.as_str() {
            "on" | "true" => true.into(),
            "off" | "false" => false.into(),
            n if n.parse::<u64>().is_ok() && !PortFlagsNames::is_flag(&k) => {
                n.parse::<u64>().unwrap_or(0).into()
            }
            "1" => true.into(),
            "0" => false.into(),
            other => other.into(),
        };
        body.insert(k, val);
    }
    Ok(Value::Object(body))
}

/// `tapswitch port add|del|set`.
pub(crate) fn port_cmd(a: PortArgs) -> Result<()> {
    let api = &a.client.endpoint();
    let tok = a.token.as_deref();
    let v = match a.action {
        PortAction::Add { spec } => change(
            api,
            "POST",
            "/api/v1/ports",
            Some(&serde_json::json!({ "spec": spec })),
            tok,
        )?,
        PortAction::Del { name } => {
            change(api, "DELETE", &format!("/api/v1/ports/{name}"), None, tok)?
        }
        PortAction::Set { name, words } => {
            let body = parse_port_set_words(&words)?;
            change(
                api,
                "PATCH",
                &format!("/api/v1/ports/{name}"),
                Some(&body),
                tok,
            )?
        }
    };
    if a.client.json && !v.is_null() {
        print_json(&v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vxlan_lines() {
        let one = serde_json::json!({"vni": 100, "local": "198.18.0.1", "dstport": 4789});
        assert_eq!(
            vxlan_line(&one).unwrap(),
            "vxlan id 100 local 198.18.0.1 dstport 4789"
        );
        let map = serde_json::json!({"vni": null, "local": "198.18.0.1", "dstport": 4789,
            "vni_map": [{"vlan": 10, "vni": 1010, "flood": [{"dst": "198.18.0.2"}]},
                        {"vlan": 20, "vni": 1020, "flood": []}]});
        assert_eq!(
            vxlan_line(&map).unwrap(),
            "vxlan vni-map 10:1010;20:1020 local 198.18.0.1 dstport 4789 (vni 1010 flood 1, vni 1020 flood 0)"
        );
        assert_eq!(vxlan_line(&Value::Null), None);
    }

    #[test]
    fn port_set_words() {
        let w = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let b = parse_port_set_words(&w("hairpin on learning 0 stp-cost 100 p2p no")).unwrap();
        assert_eq!(
            b,
            serde_json::json!({"hairpin": true, "learning": false, "stp_cost": 100, "p2p": "no"})
        );
        assert!(parse_port_set_words(&w("hairpin")).is_err());
    }
}
