//! `tapswitch vlan [show|add|del]`, with `bridge vlan`'s words and output.

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{change, get_json, print_json, ClientArgs};

/// `tapswitch vlan`.
#[derive(Args, Debug)]
pub(crate) struct VlanArgs {
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
    pub action: Option<VlanAction>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum VlanAction {
    /// Print every port's VLANs (the default): `vlan show [dev PORT]`.
    Show {
        /// `dev PORT`.
        #[arg(num_args = 0..)]
        words: Vec<String>,
    },
    /// Add VLANs to a port: `vlan add dev PORT vid N[-M] [pvid] [untagged]`.
    Add {
        /// The words, as for `bridge vlan add`.
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
    /// Remove VLANs from a port: `vlan del dev PORT vid N[-M]`.
    Del {
        /// The words, as for `bridge vlan del`.
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
}

/// The words of `bridge vlan add|del|show`: `dev PORT`, `vid N[-M]`, `pvid`, `untagged`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VlanWords {
    /// `dev PORT`.
    pub dev: Option<String>,
    /// `vid N` or `vid N-M`.
    pub vid: Option<String>,
    /// `pvid`.
    pub pvid: bool,
    /// `untagged`.
    pub untagged: bool,
}

/// Parses `bridge vlan`-style words (`master`/`self` are accepted and ignored).
pub fn parse_vlan_words(words: &[String]) -> Result<VlanWords> {
    let mut v = VlanWords::default();
    let mut it = words.iter().map(String::as_str);
    while let Some(w) = it.next() {
        match w {
            "dev" => v.dev = Some(it.next().context("'dev' needs a port name")?.to_string()),
            "vid" => {
                let r = it.next().context("'vid' needs N or N-M")?;
                let ok = r
                    .split('-')
                    .all(|p| p.parse::<u16>().is_ok_and(|n| (1..=4094).contains(&n)));
                if !ok || r.split('-').count() > 2 {
                    bail!("'vid {r}': give a VLAN ID 1-4094 or a range like 10-20");
                }
                v.vid = Some(r.to_string());
            }
            "pvid" => v.pvid = true,
            "untagged" => v.untagged = true,
            "master" | "self" => {}
            other => bail!("unknown word '{other}' (expected dev PORT, vid N[-M], pvid, untagged)"),
        }
    }
    Ok(v)
}

/// `bridge vlan show` text for `GET /api/v1/vlans`.
pub fn vlan_show_text(v: &Value, dev: Option<&str>) -> String {
    let mut out = String::from("port              vlan-id  \n");
    for p in v.as_array().into_iter().flatten() {
        let name = p["ifname"].as_str().unwrap_or("?");
        if dev.is_some_and(|d| d != name) {
            continue;
        }
        let vlans = p["vlans"].as_array().cloned().unwrap_or_default();
        if vlans.is_empty() {
            continue;
        }
        for (i, e) in vlans.iter().enumerate() {
            let head = if i == 0 { name } else { "" };
            let flags: Vec<&str> = e["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut line = format!("{head:<16}  {}", e["vlan"]);
            if !flags.is_empty() {
                line.push(' ');
                line.push_str(&flags.join(" "));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// The request (method, path, body) of a `vlan` command, from its words.
pub(crate) fn vlan_request(action: &VlanAction) -> Result<(&'static str, String, Option<Value>)> {
    let (VlanAction::Add { words } | VlanAction::Del { words }) = action else {
        if let VlanAction::Show { words } = action {
            parse_vlan_words(words)?;
        }
        return Ok(("GET", "/api/v1/vlans".to_string(), None));
    };
    if words.is_empty() {
        bail!("missing 'dev PORT vid N'")
    }
    let w = parse_vlan_words(words)?;
    let dev = w.dev.context("missing 'dev PORT'")?;
    let vid = w.vid.context("missing 'vid N[-M]'")?;
    let path = format!("/api/v1/ports/{dev}/vlans/{vid}");
    Ok(match action {
        VlanAction::Add { .. } => (
            "PUT",
            path,
            Some(serde_json::json!({ "pvid": w.pvid, "untagged": w.untagged })),
        ),
        _ => ("DELETE", path, None),
    })
}

/// `tapswitch vlan [show|add|del]`.
pub(crate) fn vlan_cmd(a: VlanArgs) -> Result<()> {
    let api = &a.client.endpoint();
    let tok = a.token.as_deref();
    match a.action.unwrap_or(VlanAction::Show { words: vec![] }) {
        VlanAction::Show { words } => {
            let w = parse_vlan_words(&words)?;
            let v = get_json(api, "/api/v1/vlans")?;
            if a.client.json {
                let v = match &w.dev {
                    Some(d) => Value::Array(
                        v.as_array()
                            .into_iter()
                            .flatten()
                            .filter(|p| p["ifname"] == d.as_str())
                            .cloned()
                            .collect(),
                    ),
                    None => v,
                };
                print_json(&v)?;
            } else {
                print!("{}", vlan_show_text(&v, w.dev.as_deref()));
            }
            Ok(())
        }
        action => {
            let (method, path, body) = vlan_request(&action)?;
            change(api, method, &path, body.as_ref(), tok).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_words_and_show() {
        let w = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let v = parse_vlan_words(&w("dev tsw0 vid 10-20 untagged master")).unwrap();
        assert_eq!(v.dev.as_deref(), Some("tsw0"));
        assert_eq!(v.vid.as_deref(), Some("10-20"));
        assert!(v.untagged && !v.pvid);
        assert!(parse_vlan_words(&w("dev tsw0 vid 0")).is_err());
        assert!(parse_vlan_words(&w("dev tsw0 vid 4095")).is_err());
        assert!(parse_vlan_words(&w("dev tsw0 vid 1-2-3")).is_err());
        assert!(parse_vlan_words(&w("dev tsw0 bogus")).is_err());
        let j = serde_json::json!([
            {"ifname": "tsw0", "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]}, {"vlan": 10}]},
            {"ifname": "tsw1", "vlans": []}
        ]);
        assert_eq!(
            vlan_show_text(&j, None),
            "port              vlan-id  \ntsw0              1 PVID Egress Untagged\n                  10\n\n"
        );
        assert_eq!(
            vlan_show_text(&j, Some("tsw1")),
            "port              vlan-id  \n"
        );
    }
}
