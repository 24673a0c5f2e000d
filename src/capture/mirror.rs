//! Port mirrors (OVS `Mirror` semantics): frames received on the `select_src` ports and frames
//! sent to the `select_dst` ports (every port but mirror outputs with `select_all`) are copied
//! to the `output` port, each frame at most once per mirror. The output port takes no part in
//! forwarding: nothing is learned from it, nothing is flooded to it, frames read from it are
//! dropped (`rx_dropped_total{reason="mirror_output"}`).

use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};

/// Most mirrors one switch holds (their selections are bit masks per port).
pub const MAX_MIRRORS: usize = 32;

/// A mirror as configured: the API's and the config file's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSpec {
    /// Its name (letters, digits, `.`, `-`, `_`; 1 to 64 bytes).
    pub name: String,
    /// Ports whose received frames are copied.
    #[serde(default)]
    pub select_src: Vec<String>,
    /// Ports whose sent frames are copied.
    #[serde(default)]
    pub select_dst: Vec<String>,
    /// Every port (but mirror outputs), both directions.
    #[serde(default)]
    pub select_all: bool,
    /// The port the copies go to.
    pub output: String,
}

/// Why a mirror cannot be added or found; [`MirrorError::class`] gives the API's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// The name has characters other than letters, digits, `.`, `-`, `_`, or is too long.
    #[error("mirror name '{0}': use 1 to 64 letters, digits, '.', '-' or '_'")]
    BadName(String),
    /// Neither `select_src`, `select_dst` nor `select_all`.
    #[error("mirror '{0}' selects nothing: give select_src, select_dst or select_all")]
    SelectsNothing(String),
    /// The output port is also selected.
    #[error("mirror '{mirror}': port '{port}' is its output and cannot also be selected")]
    OutputSelected {
        /// The mirror.
        mirror: String,
        /// The port.
        port: String,
    },
    /// A port named by the mirror is not attached.
    #[error("mirror '{mirror}': no port named '{port}'")]
    UnknownPort {
        /// The mirror.
        mirror: String,
        /// The port.
        port: String,
    },
    /// A mirror of that name exists.
    #[error("a mirror named '{0}' already exists")]
    Exists(String),
    /// No mirror of that name.
    #[error("no mirror named '{0}'")]
    NotFound(String),
    /// A port would be both a mirror output and selected by a mirror.
    #[error("mirror '{mirror}': port '{port}' is {role} mirror '{other}'; a mirror output takes no part in forwarding, so it cannot be selected")]
    OutputConflict {
        /// The mirror being added.
        mirror: String,
        /// The port.
        port: String,
        /// `"the output of"` or `"selected by"`.
        role: &'static str,
        /// The other mirror.
        other: String,
    },
    /// [`MAX_MIRRORS`] reached.
    #[error("the switch already has {MAX_MIRRORS} mirrors")]
    Full,
}

/// How a mirror error maps to an HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorFailure {
    /// 400: the request is wrong in itself.
    Invalid,
    /// 404: a port or mirror does not exist.
    NotFound,
    /// 409: it conflicts with the switch's state.
    Conflict,
    /// 507: the limit is reached.
    Full,
}

impl MirrorError {
    /// Which kind of failure this is.
    pub fn class(&self) -> MirrorFailure {
        match self {
            MirrorError::BadName(_)
            | MirrorError::SelectsNothing(_)
            | MirrorError::OutputSelected { .. } => MirrorFailure::Invalid,
            MirrorError::UnknownPort { .. } | MirrorError::NotFound(_) => MirrorFailure::NotFound,
            MirrorError::Exists(_) | MirrorError::OutputConflict { .. } => MirrorFailure::Conflict,
            MirrorError::Full => MirrorFailure::Full,
        }
    }
}

impl MirrorSpec {
    /// The rules a spec obeys on its own (name, a selection, output not selected).
    pub fn check(&self) -> Result<(), MirrorError> {
        if crate::validate::switch_name(&self.name).is_err() {
            return Err(MirrorError::BadName(self.name.clone()));
        }
        if !self.select_all && self.select_src.is_empty() && self.select_dst.is_empty() {
            return Err(MirrorError::SelectsNothing(self.name.clone()));
        }
        if self.select_src.contains(&self.output) || self.select_dst.contains(&self.output) {
            return Err(MirrorError::OutputSelected {
                mirror: self.name.clone(),
                port: self.output.clone(),
            });
        }
        Ok(())
    }

    /// Every port the spec names.
    pub fn ports(&self) -> impl Iterator<Item = &String> {
        self.select_src
            .iter()
            .chain(&self.select_dst)
            .chain(std::iter::once(&self.output))
    }

    /// Whether it selects `port` explicitly (not through `select_all`).
    pub fn names(&self, port: &str) -> bool {
        self.select_src
            .iter()
            .chain(&self.select_dst)
            .any(|p| p == port)
    }

    /// Checks it against the mirrors there are: no port may be an output of one and selected
    /// (explicitly) by another.
    pub fn check_against<'a>(
        &self,
        others: impl Iterator<Item = &'a MirrorSpec>,
    ) -> Result<(), MirrorError> {
        for o in others {
            if o.name == self.name {
                continue;
            }
            if let Some(p) = self
                .select_src
                .iter()
                .chain(&self.select_dst)
                .find(|p| **p == o.output)
            {
                return Err(MirrorError::OutputConflict {
                    mirror: self.name.clone(),
                    port: p.clone(),
                    role: "the output of",
                    other: o.name.clone(),
                });
            }
            if o.names(&self.output) {
                return Err(MirrorError::OutputConflict {
                    mirror: self.name.clone(),
                    port: self.output.clone(),
                    role: "selected by",
                    other: o.name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A mirror at run time: its spec and counters.
#[derive(Debug)]
pub struct Mirror {
    /// What it selects and where copies go.
    pub spec: MirrorSpec,
    /// Declared in the configuration file (a reload replaces or removes it); else added
    /// through the API (a reload leaves it alone).
    pub from_file: bool,
    /// Copies sent to the output port.
    pub frames: AtomicU64,
    /// Copies the output port did not take (full queue, MTU, link down).
    pub dropped: AtomicU64,
}

impl Mirror {
    /// A mirror with zeroed counters.
    pub fn new(spec: MirrorSpec, from_file: bool) -> Mirror {
        Mirror {
            spec,
            from_file,
            frames: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }
}

/// The JSON form of a mirror.
pub fn mirror_json(sw: &impl super::Host, m: &Mirror) -> serde_json::Value {
    use std::sync::atomic::Ordering::Relaxed;
    let active = sw.port_names().iter().any(|(_, n)| *n == m.spec.output);
    serde_json::json!({
        "name": m.spec.name,
        "select_src": m.spec.select_src,
        "select_dst": m.spec.select_dst,
        "select_all": m.spec.select_all,
        "output": m.spec.output,
        "active": active,
        "source": if m.from_file { "config" } else { "api" },
        "frames": m.frames.load(Relaxed),
        "dropped": m.dropped.load(Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, src: &[&str], dst: &[&str], all: bool, out: &str) -> MirrorSpec {
        MirrorSpec {
            name: name.into(),
            select_src: src.iter().map(|s| s.to_string()).collect(),
            select_dst: dst.iter().map(|s| s.to_string()).collect(),
            select_all: all,
            output: out.into(),
        }
    }

    #[test]
    fn specs_are_checked() {
        assert_eq!(spec("m1", &["a"], &["b"], false, "mon").check(), Ok(()));
        assert_eq!(spec("m1", &[], &[], true, "mon").check(), Ok(()));
        assert_eq!(
            spec("m 1", &["a"], &[], false, "mon").check(),
            Err(MirrorError::BadName("m 1".into()))
        );
        assert_eq!(
            spec("m1", &[], &[], false, "mon").check(),
            Err(MirrorError::SelectsNothing("m1".into()))
        );
        assert!(matches!(
            spec("m1", &["a"], &["mon"], false, "mon").check(),
            Err(MirrorError::OutputSelected { .. })
        ));
        let m1 = spec("m1", &["a"], &[], false, "mon");
        let m2 = spec("m2", &["mon"], &[], false, "mon2");
        let e = m2.check_against([m1.clone()].iter()).unwrap_err();
        assert_eq!(e.class(), MirrorFailure::Conflict);
        assert!(
            e.to_string().contains("is the output of mirror 'm1'"),
            "{e}"
        );
        let m3 = spec("m3", &["b"], &[], false, "a");
        let e = m3.check_against([m1.clone()].iter()).unwrap_err();
        assert!(e.to_string().contains("is selected by mirror 'm1'"), "{e}");
        // two mirrors may share an output
        let m4 = spec("m4", &["b"], &[], false, "mon");
        assert_eq!(m4.check_against([m1].iter()), Ok(()));
        let j: MirrorSpec = serde_json::from_str(
            r#"{"name": "m1", "select_src": ["a"], "select_dst": ["b"], "select_all": false, "output": "mon0"}"#,
        )
        .unwrap();
        assert_eq!(j, spec("m1", &["a"], &["b"], false, "mon0"));
        assert!(
            serde_json::from_str::<MirrorSpec>(r#"{"name": "m", "output": "o", "x": 1}"#).is_err()
        );
    }
}
