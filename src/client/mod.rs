//! The command-line client of a running switch, shaped like iproute2's: one transport, and one
//! file per command family, each holding its arguments, the words it reads (`bridge fdb`-style)
//! and the text it prints.
//!
//! - [`transport`]: one HTTP/1.1 client over the control socket or TCP (a whole answer, JSON,
//!   `Link` paging, or a streamed body for captures).
//! - [`ports`]: `ports` and `port add|del|set`; [`fdb`]: `fdb`; [`vlan`]: `vlan`;
//!   [`config`]: `config`; [`stp`]: `stp`; [`mdb`]: `mdb`; [`capture`]: `capture`; [`mirror`]: `mirror`;
//!   [`monitor`]: `monitor`.
//! - Here: where the switch is ([`ClientArgs`]: `--control`, `--api`, the default socket),
//!   sending a change and turning the API's errors into messages, printing JSON.
//!
//! `crate::cli` parses the command line and calls these; nothing here uses `cli` or `demo`.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::Value;

use crate::config::DEFAULT_NAME;

pub mod capture;
pub mod config;
pub mod fdb;
pub mod mdb;
pub mod mirror;
pub mod monitor;
pub mod ports;
pub mod stp;
pub mod transport;
pub mod vlan;

pub use config::parse_config_words;
pub use fdb::sort_fdb;
pub use transport::{
    get_all_pages, get_json, is_socket_path, next_link, open_stream, request, request_bytes,
    request_full,
};

/// How the client commands reach a running switch.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The switch's control socket [default: /run/tapswitch/tapswitch.sock as root; see
    /// README for other users]. Every command works on it.
    #[arg(long, env = "TAPSWITCH_CONTROL", value_name = "PATH", global = true)]
    pub control: Option<String>,
    /// Use the switch's TCP listener instead (reads; changes need --token).
    #[arg(long, value_name = "ADDR", global = true)]
    pub api: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ClientArgs {
    /// The endpoint to talk to: `--api` if given, else the control socket: `--control`, or
    /// the default switch's. For a user other than root that is their own switch's socket if
    /// it exists, else the system one (`/run/tapswitch/tapswitch.sock`, where a switch run
    /// by root or by the systemd unit listens and `--control-group` members may connect).
    pub fn endpoint(&self) -> String {
        match (&self.api, &self.control) {
            (Some(a), _) => a.clone(),
            (None, Some(c)) => c.clone(),
            (None, None) => {
                let own = crate::config::default_control_path(DEFAULT_NAME);
                let system = crate::config::system_control_path(DEFAULT_NAME);
                let path = if !own.exists() && system.exists() {
                    system
                } else {
                    own
                };
                path.display().to_string()
            }
        }
    }
}

/// The message of an API error answer: its JSON `error`, else the body as text.
fn error_text(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim().to_string())
}

/// Sends a change; returns the JSON answer (null when there is none); turns API errors into
/// messages (`METHOD PATH: HTTP STATUS: error`).
fn change(
    api: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> Result<Value> {
    let text = body.map(|b| b.to_string());
    let (status, resp) = request(api, method, path, text.as_deref(), token)?;
    if !(200..300).contains(&status) {
        bail!("{method} {path}: HTTP {status}: {}", error_text(&resp));
    }
    Ok(serde_json::from_str(&resp).unwrap_or(Value::Null))
}

/// Prints a JSON document as `--json` does: pretty, one line break at the end.
fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Percent-encodes a path segment or query value (`:` kept, for MAC addresses).
fn enc(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            o.push(b as char);
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}
