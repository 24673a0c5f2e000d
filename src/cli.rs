//! The command line: its grammar (clap) and dispatch. `run` is here; `demo` is
//! [`crate::demo`]; the client commands (`ports`, `port`, `fdb`, `vlan`, `config`, `stp`,
//! `capture`, `mirror`, `mdb`) are in [`crate::client`], one file per family, each with its arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::capture::CaptureArgs;
use crate::client::config::ConfigArgs;
use crate::client::fdb::FdbArgs;
use crate::client::mdb::MdbArgs;
use crate::client::mirror::MirrorArgs;
use crate::client::ports::{PortAction, PortArgs};
use crate::client::vlan::VlanArgs;
use crate::config::{Config, Overrides};
use crate::demo::DemoArgs;
use crate::forwarding::Mode;

/// How the client commands reach a running switch (also at its old path, `cli::ClientArgs`).
pub use crate::client::ClientArgs;

#[derive(Parser, Debug)]
#[command(
    name = "tapswitch",
    version,
    about = "A userspace MAC-learning Ethernet switch over TAP interfaces"
)]
struct Cli {
    /// Log lines as text (coloured only when stderr is a terminal) or as JSON, one object per
    /// line, for log shippers.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the switch (with no port and no config: TAP ports tsw0 and tsw1).
    Run(Box<RunArgs>),
    /// Build namespace hosts on a switch, show them ping each other, and clean up.
    Demo(DemoArgs),
    /// Show the ports of a running switch (like `ip -s link`).
    Ports(ClientArgs),
    /// Show or change the forwarding table of a running switch (like `bridge fdb`).
    Fdb(FdbArgs),
    /// Attach, detach or change ports of a running switch (like `ip link set X master` and
    /// `bridge link set`).
    Port(PortArgs),
    /// Show or change switch settings of a running switch.
    Config(ConfigArgs),
    /// Show or change ports' VLANs (like `bridge vlan`).
    Vlan(VlanArgs),
    /// Show the spanning tree: the bridge and each port's role and state (like `mstpctl
    /// showbridge` and `showport`).
    Stp(ClientArgs),
    /// Capture frames as the switch sees them (pcapng to a file or stdout, e.g. `capture tsw0
    /// -w - | tcpdump -n -r -`; one line per frame on a terminal).
    Capture(Box<CaptureArgs>),
    /// Show, add or remove port mirrors (copies of ports' traffic to an output port).
    Mirror(MirrorArgs),
    /// Show the multicast groups, router ports and queriers, or add and remove static
    /// entries (like `bridge mdb`).
    Mdb(MdbArgs),
    /// Follow the switch's table and port changes as they happen (like `bridge monitor`):
    /// `monitor [fdb] [port] [stp] [mdb]`.
    Monitor(crate::client::monitor::MonitorArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// A port: [NAME=][KIND:]ARG[,FLAG...], e.g. `tsw0`, `tsw1,hairpin,no-learning`. Repeatable.
    #[arg(long = "port", short = 'p', value_name = "SPEC")]
    ports: Vec<String>,
    /// TOML configuration file; command-line options override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// HTTP address for /metrics and the read-only API, or `none` [default: 127.0.0.1:9479].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The control socket serving the whole API, or `none` [default:
    /// /run/tapswitch/NAME.sock as root].
    #[arg(long, value_name = "PATH")]
    control: Option<String>,
    /// Group owning the control socket (mode 0660): its members may change the switch.
    #[arg(long, value_name = "GROUP")]
    control_group: Option<String>,
    /// FDB ageing time in seconds; 0 disables learning (everything floods) [default: 300].
    #[arg(long, value_name = "N")]
    ageing_secs: Option<u64>,
    /// Most learned FDB entries (Linux fdb_max_learned) [default: 65536].
    #[arg(long, value_name = "N")]
    fdb_max: Option<u64>,
    /// Forward these 01:80:c2:00:00:0X groups: a number, or names like lldp,lacp,stp,all.
    #[arg(long, value_name = "MASK")]
    group_fwd_mask: Option<String>,
    /// Relay mode.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// VEPA: flood unknown unicast from the uplink to the downlinks instead of dropping it.
    #[arg(long)]
    vepa_flood_unknown: bool,
    /// VLAN filtering (Linux vlan_filtering 1): ports' VLANs, PVIDs and egress tagging apply.
    #[arg(long)]
    vlan_filtering: bool,
    /// The tag VLAN filtering works on: 802.1Q (TPID 0x8100) or 802.1ad (0x88a8)
    /// [default: 802.1Q].
    #[arg(long, value_name = "PROTO")]
    vlan_protocol: Option<String>,
    /// VLAN given to new ports as PVID and egress untagged; 0: none [default: 1].
    #[arg(long, value_name = "N")]
    default_pvid: Option<u16>,
    /// Spanning tree: off or rstp (RSTP, speaking 802.1D to 802.1D peers) [default: off].
    #[arg(long, value_name = "MODE")]
    stp: Option<String>,
    /// Bridge priority, a multiple of 4096 in 0..=61440 [default: 32768].
    #[arg(long, value_name = "N")]
    stp_priority: Option<u16>,
    /// Hello time in seconds, 1..=10 [default: 2].
    #[arg(long, value_name = "S")]
    stp_hello_time: Option<u8>,
    /// Forward delay in seconds, 4..=30 [default: 15].
    #[arg(long, value_name = "S")]
    stp_forward_delay: Option<u8>,
    /// Max age in seconds, 6..=40 [default: 20].
    #[arg(long, value_name = "S")]
    stp_max_age: Option<u8>,
    /// Bridge address [default: derived from --name, see README].
    #[arg(long, value_name = "MAC")]
    stp_mac: Option<String>,
    /// Switch name, shown as `master NAME` [default: tapswitch].
    #[arg(long)]
    name: Option<String>,
    /// Token for changes over the TCP listener (without one, TCP is read-only).
    #[arg(
        long,
        env = "TAPSWITCH_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// Read the token from this file (trimmed) instead: unlike --api-token, it does not show
    /// in the process list.
    #[arg(long, value_name = "FILE", conflicts_with = "api_token")]
    api_token_file: Option<PathBuf>,
    /// Start with no ports even without a config (attach them later through the API).
    #[arg(long)]
    no_default_ports: bool,
    /// After opening the ports and the listener, become this user (name, UID or UID:GID),
    /// dropping every privilege.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Threads that handle frames [default: 1, one event loop].
    #[arg(long, value_name = "N")]
    dataplane_threads: Option<usize>,
    /// Keep polling ports this many microseconds after a frame instead of sleeping, once
    /// frames come closer together than that: lower latency and fewer wake-ups under load,
    /// no cost when idle [default: 50; 0: off].
    #[arg(long, value_name = "US")]
    busy_poll_us: Option<u64>,
    /// Connections each API listener (TCP, control socket) serves at once; one more is
    /// answered 503 and closed [default: 64].
    #[arg(long, value_name = "N")]
    api_max_conns: Option<u64>,
    /// EVPN through FRR: a shadow kernel bridge and vxlan device per VNI for zebra (see the
    /// README's EVPN section).
    #[arg(long)]
    evpn: bool,
    /// IGMP/MLD snooping (Linux mcast_snooping): off floods every multicast frame
    /// [default: on].
    #[arg(long, value_name = "on|off")]
    mcast_snooping: Option<String>,
    /// Be the IGMP/MLD querier while no other querier is heard (Linux mcast_querier 1).
    #[arg(long)]
    mcast_querier: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ModeArg {
    Veb,
    Vepa,
    VepaPrivate,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Veb => Mode::Veb,
            ModeArg::Vepa => Mode::Vepa,
            ModeArg::VepaPrivate => Mode::VepaPrivate,
        }
    }
}

/// Logs to stderr at `default_level` (or `RUST_LOG`): colour escapes only when stderr is a
/// terminal, so a file or journald gets plain text; or JSON lines.
fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => b.json().with_current_span(false).try_init(),
        LogFormat::Text => b.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(a) => run(*a, cli.log_format),
        Cmd::Demo(a) => {
            // the demo tells its own story on stdout; only problems go to the log
            init_logging(cli.log_format, "warn");
            runtime()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(crate::demo::demo(a)))
        }
        Cmd::Ports(a) => crate::client::ports::ports(&a.endpoint(), a.json),
        Cmd::Fdb(a) => crate::client::fdb::fdb_cmd(a),
        Cmd::Port(a) => crate::client::ports::port_cmd(a),
        Cmd::Config(a) => crate::client::config::config_cmd(a),
        Cmd::Vlan(a) => crate::client::vlan::vlan_cmd(a),
        Cmd::Stp(a) => crate::client::stp::stp(&a.endpoint(), a.json),
        Cmd::Capture(a) => crate::client::capture::capture_cmd(*a),
        Cmd::Mirror(a) => crate::client::mirror::mirror_cmd(a),
        Cmd::Mdb(a) => crate::client::mdb::mdb_cmd(a),
        Cmd::Monitor(a) => crate::client::monitor::monitor_cmd(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapswitch: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: RunArgs, log_format: LogFormat) -> anyhow::Result<()> {
    init_logging(log_format, "info");
    let evpn = a.evpn;
    let o = overrides(a);
    let cfg = Config::resolve(&o)?;
    runtime()?.block_on(crate::daemon::run_with(cfg, o, evpn))
}

fn overrides(a: RunArgs) -> Overrides {
    Overrides {
        config: a.config,
        ports: a.ports,
        listen: a.listen,
        control: a.control,
        control_group: a.control_group,
        ageing_secs: a.ageing_secs,
        fdb_max: a.fdb_max,
        group_fwd_mask: a.group_fwd_mask,
        mode: a.mode.map(Mode::from),
        vepa_flood_unknown: a.vepa_flood_unknown,
        vlan_filtering: a.vlan_filtering,
        vlan_protocol: a.vlan_protocol,
        default_pvid: a.default_pvid,
        stp: a.stp,
        stp_priority: a.stp_priority,
        mcast_snooping: a.mcast_snooping,
        mcast_querier: a.mcast_querier,
        stp_hello_time: a.stp_hello_time,
        stp_forward_delay: a.stp_forward_delay,
        stp_max_age: a.stp_max_age,
        stp_mac: a.stp_mac,
        name: a.name,
        api_token: a.api_token,
        api_token_file: a.api_token_file,
        reload: false,
        no_default_ports: a.no_default_ports,
        user: a.user,
        dataplane_threads: a.dataplane_threads,
        busy_poll_us: a.busy_poll_us,
        api_max_conns: a.api_max_conns,
    }
}

/// Checks a `tapswitch` command line (the arguments after the program name) without running
/// it: clap's parse (the subcommand and its options exist), then what each command reads
/// itself, through the same functions it runs: `run`'s settings and port specs as `run`
/// resolves them (without reading `--config`, `--api-token-file` or looking up
/// `--control-group`, which depend on the machine), `port add` specs, `port set` and `config`
/// pairs, `fdb`, `vlan` and `mirror add` words. The error is the one the command would print.
pub fn check_args<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv = std::iter::once(std::ffi::OsString::from("tapswitch"))
        .chain(args.into_iter().map(Into::into));
    let cli = Cli::try_parse_from(argv)?;
    match cli.cmd {
        Cmd::Run(a) => {
            let mut o = overrides(*a);
            o.config = None;
            o.control_group = None;
            o.api_token_file = None;
            Config::resolve(&o)?;
        }
        Cmd::Demo(_) | Cmd::Ports(_) | Cmd::Stp(_) | Cmd::Capture(_) | Cmd::Monitor(_) => {}
        Cmd::Fdb(a) => {
            if let Some(action) = &a.action {
                crate::client::fdb::fdb_request(action)?;
            }
        }
        Cmd::Port(a) => match &a.action {
            PortAction::Add { spec } => {
                crate::config::parse_spec(spec)?;
            }
            PortAction::Del { .. } => {}
            PortAction::Set { words, .. } => {
                crate::client::ports::parse_port_set_words(words)?;
            }
        },
        Cmd::Config(a) => {
            crate::client::config::parse_config_words(&a.set)?;
        }
        Cmd::Vlan(a) => {
            if let Some(action) = &a.action {
                crate::client::vlan::vlan_request(action)?;
            }
        }
        Cmd::Mirror(a) => crate::client::mirror::check_mirror(&a)?,
        Cmd::Mdb(a) => {
            if let Some(action) = &a.action {
                crate::client::mdb::mdb_request(action)?;
            }
        }
    }
    Ok(())
}

/// The names of the top-level subcommands (`run`, `ports`, ...), for the README test.
pub fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

/// The long options (`--name`) of a subcommand path (`["fdb", "add"]`; empty: the top level),
/// global ones included; `None` if there is no such subcommand. For the README test, which
/// checks the synopsis against the real command line.
pub fn long_options(path: &[&str]) -> Option<Vec<String>> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let mut names: Vec<String> = Vec::new();
    let mut cur = &cmd;
    let add = |c: &clap::Command, names: &mut Vec<String>| {
        names.extend(
            c.get_arguments()
                .filter_map(|a| a.get_long())
                .map(|l| format!("--{l}")),
        );
    };
    add(cur, &mut names);
    for p in path {
        cur = cur.find_subcommand(p)?;
        add(cur, &mut names);
    }
    names.sort();
    names.dedup();
    Some(names)
}
