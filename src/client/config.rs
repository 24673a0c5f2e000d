//! `tapswitch config [KEY VALUE]...`: show or change the switch's run-time settings.

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;

use super::{change, get_json, print_json, ClientArgs};

#[derive(Args, Debug)]
pub(crate) struct ConfigArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Token for changes (or TAPSWITCH_API_TOKEN).
    #[arg(long, env = "TAPSWITCH_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// `KEY VALUE` pairs to change: ageing_secs, fdb_max_learned, group_fwd_mask (a number or
    /// names), vepa_flood_unknown, vlan_filtering (true/false, on/off, 1/0), vlan_protocol,
    /// default_pvid, stp (off/rstp), stp_priority, stp_hello_time, stp_forward_delay,
    /// stp_max_age, stp_mac, and the multicast snooping settings with Linux's names and
    /// units (mcast_snooping, mcast_querier, mcast_query_interval in centiseconds, ...).
    #[arg(num_args = 0..)]
    pub set: Vec<String>,
}

/// What a switch setting of `PATCH /api/v1/config` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SettingType {
    /// A number.
    Number,
    /// true/false (also on/off, yes/no, 1/0 on the command line).
    Bool,
    /// `group_fwd_mask`: a number or names (`lldp,lacp`), sent as the number.
    Mask,
    /// `stp`: off or rstp.
    Stp,
    /// `vlan_protocol`: 802.1Q or 802.1ad.
    VlanProtocol,
    /// `stp_mac`: a MAC address.
    Mac,
}

/// Every setting `tapswitch config KEY VALUE` changes, with the type the API takes.
const SETTINGS: &[(&str, SettingType)] = &[
    ("ageing_secs", SettingType::Number),
    ("fdb_max_learned", SettingType::Number),
    ("group_fwd_mask", SettingType::Mask),
    ("vepa_flood_unknown", SettingType::Bool),
    ("vlan_filtering", SettingType::Bool),
    ("vlan_protocol", SettingType::VlanProtocol),
    ("default_pvid", SettingType::Number),
    ("stp", SettingType::Stp),
    ("stp_priority", SettingType::Number),
    ("stp_hello_time", SettingType::Number),
    ("stp_forward_delay", SettingType::Number),
    ("stp_max_age", SettingType::Number),
    ("stp_mac", SettingType::Mac),
];

/// Parses `tapswitch config` pairs (`KEY VALUE`) into the body of `PATCH /api/v1/config`,
/// each value in the type the API takes: booleans from true/false, on/off, yes/no, 1/0;
/// `stp` off/rstp; `group_fwd_mask` a number or names; numbers. `-` and `_` in keys are the
/// same, and `fdb_max` is `fdb_max_learned` (as in the configuration file). Ranges are the
/// switch's to check (its 400 names the key).
pub fn parse_config_words(words: &[String]) -> Result<Value> {
    let mut body = serde_json::Map::new();
    for pair in words.chunks(2) {
        let [k, v] = pair else {
            bail!(
                "settings come in pairs: KEY VALUE ('{}' has no value)",
                pair[0]
            )
        };
        let key = match k.replace('-', "_").as_str() {
            "fdb_max" => "fdb_max_learned".to_string(),
            other => other.to_string(),
        };
        if let Some(&k) = crate::mcast::settings::SWITCH_KEYS
            .iter()
            .find(|n| **n == key)
        {
            // checked with the switch's own parser, sent in the type the switch shows it
            let mut c = crate::mcast::McastConfig::default();
            c.set(k, v)?;
            let typed = c
                .settings()
                .into_iter()
                .find(|(n, _)| *n == k)
                .map_or_else(|| Value::from(v.as_str()), |(_, t)| t);
            body.insert(k.to_string(), typed);
            continue;
        }
        let Some(&(key, ty)) = SETTINGS.iter().find(|(n, _)| *n == key) else {
            let known: Vec<&str> = SETTINGS
                .iter()
                .map(|(n, _)| *n)
                .chain(crate::mcast::settings::SWITCH_KEYS.iter().copied())
                .collect();
            bail!(
                "unknown setting '{k}' (settings that change at run time: {})",
                known.join(", ")
            );
        };
        let val = match ty {
            SettingType::Number => Value::from(v.parse::<u64>().with_context(|| {
                format!("'{key}' takes a number (a whole number of 0 or more), not '{v}'")
            })?),
            SettingType::Bool => match v.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" | "1" => Value::from(true),
                "off" | "false" | "no" | "0" => Value::from(false),
                _ => bail!("'{key}' takes true or false (on/off, 1/0), not '{v}'"),
            },
            SettingType::Mask => Value::from(
                crate::config::parse_group_mask(v).with_context(|| format!("'{key}' {v}"))?,
            ),
            SettingType::Stp => {
                crate::config::parse_stp(v).with_context(|| format!("'{key}'"))?;
                Value::from(v.as_str())
            }
            SettingType::VlanProtocol => {
                v.parse::<crate::vlan::Protocol>()
                    .with_context(|| format!("'{key}'"))?;
                Value::from(v.as_str())
            }
            SettingType::Mac => {
                v.parse::<crate::wire::MacAddr>()
                    .with_context(|| format!("'{key}'"))?;
                Value::from(v.as_str())
            }
        };
        body.insert(key.to_string(), val);
    }
    Ok(Value::Object(body))
}

/// `tapswitch config [KEY VALUE]...`.
pub(crate) fn config_cmd(a: ConfigArgs) -> Result<()> {
    let api = &a.client.endpoint();
    let v = if a.set.is_empty() {
        get_json(api, "/api/v1/config")?
    } else {
        let body = parse_config_words(&a.set)?;
        change(
            api,
            "PATCH",
            "/api/v1/config",
            Some(&body),
            a.token.as_deref(),
        )?
    };
    if a.client.json {
        print_json(&v)?;
    } else if let Some(o) = v.as_object() {
        for (k, val) in o {
            println!("{k} {val}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_words_take_each_setting_in_its_type() {
        let w = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let b = parse_config_words(&w(
            "vlan_filtering true stp rstp ageing_secs 60 vepa_flood_unknown off group_fwd_mask lldp,lacp",
        ))
        .unwrap();
        assert_eq!(
            b,
            serde_json::json!({"vlan_filtering": true, "stp": "rstp", "ageing_secs": 60,
                "vepa_flood_unknown": false, "group_fwd_mask": 0x4004})
        );
        // every boolean spelling, both ways
        for (v, want) in [
            ("true", true),
            ("on", true),
            ("1", true),
            ("yes", true),
            ("ON", true),
            ("false", false),
            ("off", false),
            ("0", false),
            ("no", false),
        ] {
            let b = parse_config_words(&w(&format!("vlan_filtering {v}"))).unwrap();
            assert_eq!(b["vlan_filtering"], want, "{v}");
        }
        let b = parse_config_words(&w(
            "stp off vlan-protocol 802.1ad default_pvid 0 stp_priority 4096 stp_hello_time 2 \
             stp_forward_delay 4 stp_max_age 6 stp_mac 02:00:00:00:00:09 fdb_max 100 group_fwd_mask 0x4000",
        ))
        .unwrap();
        assert_eq!(
            b,
            serde_json::json!({"stp": "off", "vlan_protocol": "802.1ad", "default_pvid": 0,
                "stp_priority": 4096, "stp_hello_time": 2, "stp_forward_delay": 4, "stp_max_age": 6,
                "stp_mac": "02:00:00:00:00:09", "fdb_max_learned": 100, "group_fwd_mask": 0x4000})
        );
        // every key the API takes is known here, and only those
        assert_eq!(SETTINGS.len(), 13);
        let err = |s: &str| format!("{:#}", parse_config_words(&w(s)).unwrap_err());
        assert!(err("vlan_filtering maybe").contains("takes true or false"));
        assert!(err("stp mstp").contains("not a spanning tree mode"));
        assert!(err("ageing_secs soon").contains("'ageing_secs' takes a number"));
        assert!(err("vlan_protocol 802.1x").contains("vlan_protocol"));
        assert!(err("stp_mac nope").contains("stp_mac"));
        assert!(err("group_fwd_mask lldpx").contains("not a group mask"));
        assert!(err("mode vepa").contains("unknown setting 'mode'"));
        assert!(err("ageing_secs").contains("pairs"));
    }
}
