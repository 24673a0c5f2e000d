//! Range checks in one place: every number the command line, the configuration file and the
//! API accept is checked here, so the three agree and say the same thing when a value is wrong.

use crate::fdb::MAX_MAX_LEARNED;

/// A value outside its range; the text names the option.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {min}..={max}, got '{got}'")]
pub struct OutOfRange {
    /// The option's name as the user wrote it (`mtu`, `--fdb-max`, ...).
    pub what: String,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// What was given.
    pub got: String,
}

/// An inclusive range of accepted values for one option.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
}

impl Range {
    /// Checks `v`; `what` names the option in the error.
    pub fn check(&self, what: &str, v: u64) -> Result<u64, OutOfRange> {
        if (self.min..=self.max).contains(&v) {
            Ok(v)
        } else {
            Err(self.err(what, v.to_string()))
        }
    }

    /// Parses and checks a decimal number.
    pub fn parse(&self, what: &str, s: &str) -> Result<u64, OutOfRange> {
        match s.trim().parse::<u64>() {
            Ok(v) => self.check(what, v),
            Err(_) => Err(self.err(what, s.to_string())),
        }
    }

    fn err(&self, what: &str, got: String) -> OutOfRange {
        OutOfRange {
            what: what.to_string(),
            min: self.min,
            max: self.max,
            got,
        }
    }
}

/// Egress MTU of a port (`mtu=N`).
pub const MTU: Range = Range {
    min: 68,
    max: 65535,
};
/// Learned entries on one port (`max-learned=N`; 0 = only the switch-wide limit).
pub const PORT_MAX_LEARNED: Range = Range {
    min: 0,
    max: MAX_MAX_LEARNED as u64,
};
/// The switch-wide learned-entry limit (`--fdb-max`); always bounded.
pub const FDB_MAX: Range = Range {
    min: 1,
    max: MAX_MAX_LEARNED as u64,
};
/// Connections or senders on one socket listener (`max-conns=N`).
pub const MAX_CONNS: Range = Range {
    min: 1,
    max: crate::types::MAX_PORTS as u64,
};
/// Threads of the frame path.
pub const DATAPLANE_THREADS: Range = Range { min: 1, max: 64 };
/// Busy-poll window in microseconds.
pub const BUSY_POLL_US: Range = Range {
    min: 0,
    max: 1_000_000,
};
/// Ageing time in seconds (0 = no learning, as Linux; 802.1Q's upper bound).
pub const AGEING_SECS: Range = Range {
    min: 0,
    max: 1_000_000,
};

/// A port's spanning tree path cost (`stp-cost=`).
pub const STP_PORT_COST: Range = Range {
    min: 1,
    max: 200_000_000,
};
/// A port's spanning tree priority (`stp-priority=`; the standard wants a multiple of 16).
pub const STP_PORT_PRIORITY: Range = Range { min: 0, max: 240 };
/// Storm control rate in frames per second (0: no limit).
pub const STORM_PPS: Range = Range {
    min: 0,
    max: 100_000_000,
};

/// Connections one API listener serves at once (`--api-max-conns`).
pub const API_MAX_CONNS: Range = Range {
    min: 1,
    max: 65_536,
};

/// Queues of a multiqueue TAP.
pub const QUEUES: Range = Range { min: 1, max: 16 };

/// Why a switch name is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("switch name '{0}': use 1 to 64 letters, digits, '.', '-' or '_' (it names the control socket file)")]
pub struct BadName(pub String);

/// Checks a switch name: it is also the control socket's file name.
pub fn switch_name(name: &str) -> Result<(), BadName> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(MTU.parse("mtu", "9000"), Ok(9000));
        let e = MTU.parse("mtu", "12").unwrap_err();
        assert_eq!(e.to_string(), "mtu must be 68..=65535, got '12'");
        assert!(MTU.parse("mtu", "x").is_err());
        assert!(FDB_MAX.check("--fdb-max", 0).is_err());
        assert!(BUSY_POLL_US.check("--busy-poll-us", 1_000_001).is_err());
        assert!(switch_name("br-0.lab_1").is_ok());
        assert!(switch_name("a/b").is_err());
        assert!(switch_name("").is_err());
        assert!(switch_name("..").is_err());
    }
}
