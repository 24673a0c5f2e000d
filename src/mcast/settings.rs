//! The `mcast_*` settings by name: one vocabulary for the API, the command line and the
//! configuration file, with Linux's names and units (`ip link set BR type bridge
//! mcast_query_interval 12500`: intervals in centiseconds, as iproute2 takes them).

use super::{McastConfig, PortConfig, RouterMode};

/// A value a setting refuses; the text names the setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// Not a snooping setting.
    #[error("unknown multicast setting '{0}'")]
    Unknown(String),
    /// Not a value of the setting's type or range.
    #[error("{key} {value:?}: {want}")]
    Bad {
        /// The setting.
        key: &'static str,
        /// What was given.
        value: String,
        /// What it takes.
        want: &'static str,
    },
    /// Accepted by Linux but not implemented here.
    #[error("{0} is not supported by tapswitch (see the README's multicast section)")]
    Unsupported(&'static str),
}

/// The switch-wide settings, in the order `ip -d link show` prints them.
pub const SWITCH_KEYS: &[&str] = &[
    "mcast_snooping",
    "mcast_querier",
    "mcast_igmp_version",
    "mcast_mld_version",
    "mcast_hash_max",
    "mcast_last_member_count",
    "mcast_startup_query_count",
    "mcast_last_member_interval",
    "mcast_membership_interval",
    "mcast_querier_interval",
    "mcast_query_interval",
    "mcast_query_response_interval",
    "mcast_startup_query_interval",
];

/// The per-port settings, as `bridge link set` takes them.
pub const PORT_KEYS: &[&str] = &[
    "mcast_router",
    "mcast_fast_leave",
    "mcast_max_groups",
    "mcast_to_unicast",
];

fn boolean(key: &'static str, v: &str) -> Result<bool, SettingError> {
    match v {
        "1" | "on" | "true" | "yes" => Ok(true),
        "0" | "off" | "false" | "no" => Ok(false),
        _ => Err(SettingError::Bad {
            key,
            value: v.into(),
            want: "on or off (1/0, true/false)",
        }),
    }
}

fn number(key: &'static str, v: &str, max: u64) -> Result<u64, SettingError> {
    v.parse::<u64>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| SettingError::Bad {
            key,
            value: v.into(),
            want: "a whole number in range",
        })
}

/// Centiseconds as Linux takes them, to milliseconds.
fn centis(key: &'static str, v: &str) -> Result<u64, SettingError> {
    Ok(number(key, v, u64::from(u32::MAX))? * 10)
}

impl McastConfig {
    /// Sets one switch-wide setting from its text (as the command line and the file give it;
    /// the API passes JSON values as text). Checked as a whole later by
    /// [`McastConfig::validated`].
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), SettingError> {
        match key {
            "mcast_snooping" => self.snooping = boolean("mcast_snooping", v)?,
            "mcast_querier" => self.querier = boolean("mcast_querier", v)?,
            "mcast_igmp_version" => {
                self.igmp_version = number("mcast_igmp_version", v, 255)? as u8;
            }
            "mcast_mld_version" => self.mld_version = number("mcast_mld_version", v, 255)? as u8,
            "mcast_hash_max" => {
                self.hash_max = number("mcast_hash_max", v, 1 << 24)? as usize;
            }
            "mcast_last_member_count" => {
                self.last_member_count = number("mcast_last_member_count", v, 1 << 16)? as u32;
            }
            "mcast_startup_query_count" => {
                self.startup_query_count = number("mcast_startup_query_count", v, 1 << 16)? as u32;
            }
            "mcast_last_member_interval" => {
                self.last_member_interval_ms = centis("mcast_last_member_interval", v)?;
            }
            "mcast_membership_interval" => {
                self.membership_interval_ms = centis("mcast_membership_interval", v)?;
            }
            "mcast_querier_interval" => {
                self.querier_interval_ms = centis("mcast_querier_interval", v)?;
            }
            "mcast_query_interval" => self.query_interval_ms = centis("mcast_query_interval", v)?,
            "mcast_query_response_interval" => {
                self.query_response_interval_ms = centis("mcast_query_response_interval", v)?;
            }
            "mcast_startup_query_interval" => {
                self.startup_query_interval_ms = centis("mcast_startup_query_interval", v)?;
            }
            _ => return Err(SettingError::Unknown(key.into())),
        }
        Ok(())
    }

    /// Every switch-wide setting with its value, in Linux's units, in [`SWITCH_KEYS`] order.
    pub fn settings(&self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        let cs = |ms: u64| json!(ms / 10);
        vec![
            ("mcast_snooping", json!(self.snooping)),
            ("mcast_querier", json!(self.querier)),
            ("mcast_igmp_version", json!(self.igmp_version)),
            ("mcast_mld_version", json!(self.mld_version)),
            ("mcast_hash_max", json!(self.hash_max)),
            ("mcast_last_member_count", json!(self.last_member_count)),
            ("mcast_startup_query_count", json!(self.startup_query_count)),
            (
                "mcast_last_member_interval",
                cs(self.last_member_interval_ms),
            ),
            ("mcast_membership_interval", cs(self.membership_interval_ms)),
            ("mcast_querier_interval", cs(self.querier_interval_ms)),
            ("mcast_query_interval", cs(self.query_interval_ms)),
            (
                "mcast_query_response_interval",
                cs(self.query_response_interval_ms),
            ),
            (
                "mcast_startup_query_interval",
                cs(self.startup_query_interval_ms),
            ),
        ]
    }
}

impl PortConfig {
    /// Sets one per-port setting from its text.
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), SettingError> {
        match key {
            "mcast_router" => {
                self.router = v
                    .parse::<u8>()
                    .ok()
                    .and_then(RouterMode::from_u8)
                    .ok_or_else(|| SettingError::Bad {
                        key: "mcast_router",
                        value: v.into(),
                        want: "0 (never), 1 (learn), 2 (always) or 3 (temporary)",
                    })?;
            }
            "mcast_fast_leave" => self.fast_leave = boolean("mcast_fast_leave", v)?,
            "mcast_max_groups" => {
                self.max_groups = number("mcast_max_groups", v, u64::from(u32::MAX))? as u32;
            }
            "mcast_to_unicast" => {
                if boolean("mcast_to_unicast", v)? {
                    return Err(SettingError::Unsupported("mcast_to_unicast"));
                }
            }
            _ => return Err(SettingError::Unknown(key.into())),
        }
        Ok(())
    }

    /// Every per-port setting with its value (`mcast_to_unicast` is always off).
    pub fn settings(&self) -> Vec<(&'static str, serde_json::Value)> {
        use serde_json::json;
        vec![
            ("mcast_router", json!(self.router.as_u8())),
            ("mcast_fast_leave", json!(self.fast_leave)),
            ("mcast_max_groups", json!(self.max_groups)),
            ("mcast_to_unicast", json!(false)),
        ]
    }
}

/// A JSON value as the text [`McastConfig::set`] and [`PortConfig::set`] take.
pub fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_switch_setting_reads_back_in_linux_units() {
        let mut c = McastConfig::default();
        for (k, v) in [
            ("mcast_snooping", "0"),
            ("mcast_querier", "on"),
            ("mcast_igmp_version", "3"),
            ("mcast_mld_version", "2"),
            ("mcast_hash_max", "512"),
            ("mcast_last_member_count", "3"),
            ("mcast_startup_query_count", "4"),
            ("mcast_last_member_interval", "50"),
            ("mcast_membership_interval", "26000"),
            ("mcast_querier_interval", "25500"),
            ("mcast_query_interval", "12500"),
            ("mcast_query_response_interval", "1000"),
            ("mcast_startup_query_interval", "3125"),
        ] {
            c.set(k, v).unwrap();
        }
        assert_eq!(c.last_member_interval_ms, 500);
        assert_eq!(c.query_interval_ms, 125_000);
        let back: Vec<String> = c.settings().iter().map(|(_, v)| value_text(v)).collect();
        assert_eq!(
            back,
            [
                "false", "true", "3", "2", "512", "3", "4", "50", "26000", "25500", "12500",
                "1000", "3125"
            ]
        );
        assert_eq!(
            c.settings().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            SWITCH_KEYS
        );
        // the defaults are Linux's
        let d = McastConfig::default().settings();
        let get = |k: &str| value_text(&d.iter().find(|(n, _)| *n == k).unwrap().1);
        assert_eq!(get("mcast_query_interval"), "12500");
        assert_eq!(get("mcast_membership_interval"), "26000");
        assert_eq!(get("mcast_startup_query_interval"), "3125");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let mut c = McastConfig::default();
        let e = c.set("mcast_querier", "maybe").unwrap_err().to_string();
        assert!(e.starts_with("mcast_querier \"maybe\""), "{e}");
        assert!(matches!(
            c.set("mcast_nope", "1"),
            Err(SettingError::Unknown(_))
        ));
        let mut p = PortConfig::default();
        assert!(p.set("mcast_router", "4").is_err());
        p.set("mcast_router", "2").unwrap();
        assert_eq!(p.router, RouterMode::Permanent);
        assert!(matches!(
            p.set("mcast_to_unicast", "on"),
            Err(SettingError::Unsupported(_))
        ));
        p.set("mcast_to_unicast", "off").unwrap();
        assert_eq!(
            p.settings().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            PORT_KEYS
        );
    }
}
