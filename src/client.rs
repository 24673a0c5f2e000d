//! The API client behind `tapswitch ports` and `tapswitch fdb`: a minimal HTTP/1.1 client over
//! a TCP stream (one request, `Connection: close`), so the CLI needs no HTTP client crate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Sends one request; returns the status and the body.
pub fn request(
    api: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, String)> {
    let addr: SocketAddr = api
        .to_socket_addrs()
        .with_context(|| format!("--api {api}: not an address"))?
        .next()
        .with_context(|| format!("--api {api}: not an address"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(|| {
        format!("no tapswitch answers at {api} (is it running, and with this --listen?)")
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// GETs a JSON document, turning API errors into messages.
pub fn get_json(api: &str, path: &str) -> Result<Value> {
    let (status, body) = request(api, "GET", path, None, None)?;
    if status != 200 {
        bail!("{path}: HTTP {status}: {}", body.trim());
    }
    serde_json::from_str(&body).with_context(|| format!("{path}: not JSON"))
}

/// `tapswitch ports`.
pub fn ports(api: &str, json: bool) -> Result<()> {
    let v = get_json(api, "/api/v1/ports")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
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

/// One `bridge fdb show` line for an entry.
pub fn fdb_line(e: &Value, master: &str) -> String {
    let mut s = format!(
        "{} dev {}",
        e["mac"].as_str().unwrap_or("?"),
        e["port"].as_str().unwrap_or("?")
    );
    let vlan = e["vlan"].as_u64().unwrap_or(0);
    if vlan != 0 {
        s.push_str(&format!(" vlan {vlan}"));
    }
    match e["kind"].as_str() {
        Some("static") => s.push_str(" static"),
        Some("sticky") => s.push_str(" sticky"),
        _ => {}
    }
    s.push_str(&format!(" master {master}"));
    s
}

/// `tapswitch fdb`.
pub fn fdb(api: &str, json: bool) -> Result<()> {
    let v = get_json(api, "/api/v1/fdb")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let cfg = get_json(api, "/api/v1/config")?;
    let master = cfg["name"].as_str().unwrap_or("tapswitch");
    for e in v.as_array().into_iter().flatten() {
        println!("{}", fdb_line(e, master));
    }
    Ok(())
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
            "02:00:00:00:00:01 dev tsw0 vlan 5 sticky master br0"
        );
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }

    #[test]
    fn no_switch_is_a_clear_error() {
        let e = get_json("127.0.0.1:1", "/api/v1/ports")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tapswitch answers at 127.0.0.1:1"), "{e}");
    }
}
