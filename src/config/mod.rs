//! Configuration: the `--port` spec grammar, the TOML file, and their merge with the command
//! line (command-line values win). Every error names its source: the file, line and key, or the
//! command-line flag.
//!
//! Three steps, one file each, each with its own tests:
//!
//! - `grammar.rs`: the port spec grammar ([`parse_spec`]) and the small value grammars the
//!   command line, the file and the API share: flags ([`apply_flag`]), VLAN keys
//!   ([`VlanKeys`]), group masks, listen and control addresses, `--stp`, `p2p=`. Pure string
//!   parsing.
//! - `file.rs`: the TOML file. [`parse_file`] turns the file's text into [`FileSettings`],
//!   every value checked, a wrong one named by file, line and key; [`load_file`] reads the
//!   file and parses it. Pure but for that read: the group and the token file a file names
//!   are looked up by the next step.
//! - `resolve.rs`: defaults, then the file, then the command line ([`Overrides`]) into the
//!   final [`Config`] ([`Config::resolve`]); group names and token files are looked up there
//!   (through [`Lookups`], so tests and the fuzzer need no real files), and the rules that
//!   span several settings are checked ([`Config::validate`]).
//!
//! This file holds the types the steps share and re-exports their functions, so callers use
//! `crate::config::X` whichever file `X` lives in.
//!
//! Port spec grammar (command line, API, and `spec = "..."` in the file):
//! `[NAME=][KIND:]ARG[,FLAG]...` where KIND is `tap` (the default) and ARG the interface name.
//! FLAG is a port flag (`hairpin`, `isolated`, `locked`, `uplink`, `neigh-suppress`, `learning`, `flood`,
//! `mcast-flood`, `bcast-flood`), a flag prefixed with `no-` to turn it off, `mtu=N`, or
//! `offload=on|off` (virtio_net_hdr offloads; on by default where the port kind has them),
//! or a multicast snooping key (`mcast-router=0..3`, `[no-]mcast-fast-leave`,
//! `mcast-max-groups=N`).
//! A `vxlan:VNI` port takes the keys of [`crate::vxlan::spec`] (`local=`, `remote=`, ...);
//! there `learning`/`no-learning` is the VTEP's learning, not the bridge port's.

mod file;
mod grammar;
mod resolve;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::forwarding::{Mode, PortFlags, Settings};
use crate::port::PortKind;
use crate::stp::{BridgeConfig, PortConfig as StpPortConfig};
use crate::vlan::PortVlans;
use crate::vxlan::spec::VxlanSpec;

pub use file::{load_file, parse_file, FileSettings};
pub use grammar::{
    apply_flag, check_default_pvid, parse_control, parse_group_mask, parse_listen, parse_p2p,
    parse_spec, parse_stp, BadAddress, BadMask, BadStp, SpecError, SpecProblem, UnknownFlag,
    VlanKeys, GROUP_PRESETS,
};
pub use resolve::{
    default_control_path, private_control_dir, read_token_file, system_control_path, Lookups,
    System, TokenFileError,
};

/// Default HTTP listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9479";
/// Default switch name (shown as `master NAME`).
pub const DEFAULT_NAME: &str = "tapswitch";
/// Ports of the built-in default.
pub const DEFAULT_PORTS: [&str; 2] = ["tsw0", "tsw1"];
/// Default busy-poll window in microseconds. Measured on a 2-vCPU VM: it lifts one TCP
/// stream from about 0.75x to 0.8-0.95x of the Linux bridge and quarters flood-ping RTT at
/// the same CPU, while a ping every 5 ms costs under 0.2% of a core more and idle costs
/// nothing (the spin starts only once frames come closer together than the window).
pub const DEFAULT_BUSY_POLL_US: u64 = 50;

/// One port to attach.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortSpec {
    /// The port's name in the API, metrics and `fdb show`.
    pub name: String,
    /// What kind of port.
    pub kind: PortKind,
    /// For a TAP: the interface name.
    pub arg: String,
    /// Flags at attach time.
    pub flags: PortFlags,
    /// Overrides the interface MTU for the egress size check.
    pub mtu: Option<u32>,
    /// Carry virtio_net_hdr offloads (TSO, checksum) on this port, where the kind allows.
    pub offload: bool,
    /// Socket ports: file mode of the socket file (e.g. 0o660).
    pub sock_mode: Option<u32>,
    /// Socket ports: owner of the socket file, as `UID` or `UID:GID`.
    pub sock_owner: Option<(u32, Option<u32>)>,
    /// Stream ports: most connections at once.
    pub max_conns: Option<usize>,
    /// Most learned entries on this port (port security); 0 = only the switch-wide limit.
    pub max_learned: usize,
    /// VLAN membership from `access=`, `trunk=`/`native=`, `vlans=`/`untagged=`/`pvid=`;
    /// `None`: the switch's `default_pvid` (Linux: a new port gets VID 1 as PVID, untagged).
    pub vlans: Option<PortVlans>,
    /// Spanning tree settings: `stp-cost=`, `stp-priority=`, `edge`, `no-auto-edge`,
    /// `p2p=auto|yes|no`, `bpdu-guard`, `root-guard`.
    pub stp: StpPortConfig,
    /// Storm control, frames/s by kind (broadcast, multicast, unknown unicast); 0 = none.
    pub storm: [u64; 3],
    /// Queues of a multiqueue TAP (`queues=N`), each read by a dataplane worker.
    pub queues: usize,
    /// `vxlan` ports: the tunnel (VNI, addresses, flood list, ...).
    pub vxlan: Option<VxlanSpec>,
    /// Multicast snooping: `mcast-router=`, `mcast-fast-leave`, `mcast-max-groups=`.
    pub mcast: crate::mcast::PortConfig,
}

impl PortSpec {
    /// A port with every setting at its default: default flags, offload on, one queue, no
    /// VLAN keys, no limits.
    pub fn new(name: String, kind: PortKind, arg: String) -> PortSpec {
        PortSpec {
            name,
            kind,
            arg,
            flags: PortFlags::default(),
            mtu: None,
            offload: true,
            sock_mode: None,
            sock_owner: None,
            max_conns: None,
            max_learned: 0,
            vlans: None,
            stp: StpPortConfig::default(),
            storm: [0; 3],
            queues: 1,
            vxlan: None,
            mcast: crate::mcast::PortConfig::default(),
        }
    }
}

impl serde::Serialize for PortFlags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(PortFlags::ALL.len()))?;
        for (n, f) in PortFlags::ALL {
            m.serialize_entry(n, &self.contains(f))?;
        }
        m.end()
    }
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Switch name: `master NAME` in `fdb show`, and the control socket's file name.
    pub name: String,
    /// TCP listener for `/metrics` and the read-only API (changes need the token).
    pub listen: Option<SocketAddr>,
    /// The control socket (the whole API); `None` = off.
    pub control: Option<PathBuf>,
    /// Group that owns the control socket (its members may use it).
    pub control_gid: Option<u32>,
    /// Switch-wide forwarding settings.
    pub settings: Settings,
    /// Most learned entries.
    pub fdb_max: usize,
    /// Ports to attach at start.
    pub ports: Vec<PortSpec>,
    /// Token required for changes over TCP.
    pub api_token: Option<String>,
    /// The built-in default ports are in use (no port given anywhere).
    pub default_ports: bool,
    /// Threads of the frame path (1: one event loop, the default).
    pub dataplane_threads: usize,
    /// Microseconds the frame path keeps polling after a frame instead of sleeping, once
    /// frames come closer together than that (0: off).
    pub busy_poll_us: u64,
    /// Connections each API listener (TCP, control socket) serves at once; one more gets 503.
    pub api_max_conns: usize,
    /// Spanning tree bridge settings (used when `settings.stp` is on); its address is the
    /// one given, or derived from the name.
    pub stp_bridge: BridgeConfig,
    /// Port mirrors (`[[mirror]]` tables).
    pub mirrors: Vec<crate::capture::MirrorSpec>,
    /// Multicast snooping settings (`mcast_*` keys, `--mcast-snooping`, `--mcast-querier`).
    pub mcast: crate::mcast::McastConfig,
    /// Static MDB entries (`[[mdb]]` tables).
    pub mdb: Vec<MdbSpec>,
}

/// A static MDB entry of the configuration file, as `bridge mdb add dev BR port P grp G
/// [src S] [permanent|temp] [vid N]` makes it; the port is named.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdbSpec {
    /// `port P`: a port of the configuration.
    pub port: String,
    /// `grp G`: an IPv4 or IPv6 multicast group.
    pub grp: std::net::IpAddr,
    /// `src S`: a source, for an (S,G) entry.
    #[serde(default)]
    pub src: Option<std::net::IpAddr>,
    /// `permanent` (default) or `temp`.
    #[serde(default = "MdbSpec::permanent")]
    pub permanent: bool,
    /// `vid N` (0: no VLAN).
    #[serde(default)]
    pub vid: u16,
}

impl MdbSpec {
    fn permanent() -> bool {
        true
    }
}

/// Command-line values that override the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--port`, repeated.
    pub ports: Vec<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--control`.
    pub control: Option<String>,
    /// `--control-group`.
    pub control_group: Option<String>,
    /// `--ageing-secs`.
    pub ageing_secs: Option<u64>,
    /// `--fdb-max`.
    pub fdb_max: Option<u64>,
    /// `--group-fwd-mask`.
    pub group_fwd_mask: Option<String>,
    /// `--mode`.
    pub mode: Option<Mode>,
    /// `--vepa-flood-unknown`.
    pub vepa_flood_unknown: bool,
    /// `--name`.
    pub name: Option<String>,
    /// `--api-token`.
    pub api_token: Option<String>,
    /// `--api-token-file`: the token is read from this file (trimmed).
    pub api_token_file: Option<PathBuf>,
    /// Set for a SIGHUP reload: token files (`--api-token-file`, `api_token_file`) are not read
    /// again: the token is fixed at start (a change needs a restart), and after `--user` the
    /// file may be out of reach.
    pub reload: bool,
    /// Start with no ports at all, even with no config (ports come later through the API).
    pub no_default_ports: bool,
    /// After the ports are open, become this user (name, UID or UID:GID).
    pub user: Option<String>,
    /// Threads of the frame path.
    pub dataplane_threads: Option<usize>,
    /// Busy polling after each frame, in microseconds.
    pub busy_poll_us: Option<u64>,
    /// `--api-max-conns`.
    pub api_max_conns: Option<u64>,
    /// `--vlan-filtering`.
    pub vlan_filtering: bool,
    /// `--vlan-protocol`.
    pub vlan_protocol: Option<String>,
    /// `--default-pvid`.
    pub default_pvid: Option<u16>,
    /// `--stp off|rstp`.
    pub stp: Option<String>,
    /// `--stp-priority`.
    pub stp_priority: Option<u16>,
    /// `--stp-hello-time`.
    pub stp_hello_time: Option<u8>,
    /// `--stp-forward-delay`.
    pub stp_forward_delay: Option<u8>,
    /// `--stp-max-age`.
    pub stp_max_age: Option<u8>,
    /// `--stp-mac`.
    pub stp_mac: Option<String>,
    /// `--mcast-snooping on|off`.
    pub mcast_snooping: Option<String>,
    /// `--mcast-querier`.
    pub mcast_querier: bool,
}

/// A configuration error; the text names where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file as a whole (unreadable, not TOML).
    #[error("{file}: {msg}")]
    File {
        /// The file.
        file: String,
        /// What is wrong.
        msg: String,
    },
    /// One key of the file.
    #[error("{file}:{line}: key '{key}': {msg}")]
    Key {
        /// The file.
        file: String,
        /// 1-based line of the value.
        line: usize,
        /// The key, with `port[i].` for port tables.
        key: String,
        /// What is wrong.
        msg: String,
    },
    /// A command-line option (or a rule spanning several settings, named by its option).
    #[error("{flag}: {msg}")]
    Flag {
        /// The option, like `--fdb-max`.
        flag: &'static str,
        /// What is wrong.
        msg: String,
    },
}
