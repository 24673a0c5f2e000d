//! The API client behind `tapswitch ports`, `fdb`, `port` and `config`: a minimal HTTP/1.1
//! client (one request, `Connection: close`) over the switch's control socket (the default)
//! or its TCP listener (`--api ADDR`), so the CLI needs no HTTP client crate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Where the switch is: an address `HOST:PORT` (TCP) or a path starting with `/` or `.` (its
/// control socket).
pub fn is_socket_path(endpoint: &str) -> bool {
    endpoint.starts_with('/') || endpoint.starts_with('.')
}

fn connect(api: &str) -> Result<Box<dyn ReadWrite>> {
    connect_with(api, Some(Duration::from_secs(10)))
}

/// Connects with this read timeout (`None` for streams, which may be idle for long).
fn connect_with(api: &str, timeout: Option<Duration>) -> Result<Box<dyn ReadWrite>> {
    if is_socket_path(api) {
        let s = UnixStream::connect(api).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "permission denied on the control socket {api}: run as root or as a member of the switch's --control-group"
            ),
            _ => anyhow::anyhow!(
                "no tapswitch answers on the control socket {api} ({e}); is it running, with this --name? (or give --control PATH, or --api ADDR for its TCP listener)"
            ),
        })?;
        s.set_read_timeout(timeout)?;
        return Ok(Box::new(s));
    }
    let addr: SocketAddr = api
        .to_socket_addrs()
        .with_context(|| format!("--api {api}: not an address"))?
        .next()
        .with_context(|| format!("--api {api}: not an address"))?;
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(|| {
        format!("no tapswitch answers at {api} (is it running, and with this --listen?)")
    })?;
    s.set_read_timeout(timeout)?;
    Ok(Box::new(s))
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

/// The `Host` value and the `Authorization` header line (empty without a token) of a request
/// to `api` (a control socket path is served as `localhost`).
fn host_and_auth<'a>(api: &'a str, token: Option<&str>) -> (&'a str, String) {
    let host = if is_socket_path(api) {
        "localhost"
    } else {
        api
    };
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    (host, auth)
}

/// Sends a GET whose answer is a stream (a capture) and returns the status and a reader of
/// the body, de-chunked as it arrives. The connection has no read timeout.
pub fn open_stream(
    api: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Box<dyn Read + Send>)> {
    let mut s = connect_with(api, None)?;
    let (host, auth) = host_and_auth(api, token);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{auth}\r\n"
    )?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, s);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut line = Vec::new();
        let n = std::io::BufRead::read_until(&mut r, b'\n', &mut line)?;
        if n == 0 || head.len() > 64 * 1024 {
            bail!("malformed HTTP response");
        }
        head.extend_from_slice(&line);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("malformed HTTP status line")?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if chunked {
        Ok((
            status,
            Box::new(Chunked {
                inner: r,
                left: 0,
                done: false,
            }),
        ))
    } else {
        Ok((status, Box::new(r)))
    }
}

/// A chunked body read incrementally.
struct Chunked<R> {
    inner: R,
    /// Bytes left in the current chunk.
    left: usize,
    done: bool,
}

impl<R: std::io::BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::{Error, ErrorKind};
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                // the server went away mid-stream: what arrived is all there is
                self.done = true;
                return Ok(0);
            }
            if line.trim().is_empty() {
                // the CRLF after a chunk's data
                line.clear();
                if self.inner.read_line(&mut line)? == 0 {
                    self.done = true;
                    return Ok(0);
                }
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = usize::from_str_radix(size, 16)
                .map_err(|_| Error::new(ErrorKind::InvalidData, "bad chunk size"))?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.left);
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            self.done = true;
        }
        self.left -= got;
        Ok(got)
    }
}

/// Sends one request to `api` (an address, or a control socket path); returns the status and
/// the body.
pub fn request(
    api: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, String)> {
    let (status, body) = request_bytes(api, method, path, body, token)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// [`request`] with the body as bytes (captures are binary).
pub fn request_bytes(
    api: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, Vec<u8>)> {
    let (status, _, body) = request_full(api, method, path, body, token)?;
    Ok((status, body))
}

/// [`request_bytes`] that also returns the response's header lines.
pub fn request_full(
    api: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, String, Vec<u8>)> {
    let mut s = connect(api)?;
    let body = body.unwrap_or("");
    let (host, auth) = host_and_auth(api, token);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
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
        rest.to_vec()
    };
    Ok((status, head, body))
}

/// The target of a `Link: <TARGET>; rel="next"` header line, if the head has one.
pub fn next_link(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("link") {
            return None;
        }
        value.split(',').find_map(|part| {
            let (target, params) = part.trim().split_once(';')?;
            let next = params
                .split(';')
                .any(|p| p.trim().eq_ignore_ascii_case("rel=\"next\""));
            next.then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
    })
}

/// GETs a paged JSON list: the arrays of every page, following `Link: <...>; rel="next"`
/// (at most `max_pages` pages).
pub fn get_all_pages(api: &str, path: &str, max_pages: usize) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut next = Some(path.to_string());
    let mut pages = 0;
    while let Some(p) = next.take() {
        pages += 1;
        if pages > max_pages {
            bail!("{path}: more than {max_pages} pages");
        }
        let (status, head, body) = request_full(api, "GET", &p, None, None)?;
        let body = String::from_utf8_lossy(&body);
        if status != 200 {
            bail!("{p}: HTTP {status}: {}", body.trim());
        }
        match serde_json::from_str(&body).with_context(|| format!("{p}: not JSON"))? {
            Value::Array(v) => out.extend(v),
            _ => bail!("{p}: not a JSON list"),
        }
        next = next_link(&head);
    }
    Ok(out)
}

/// Decodes a chunked body, on bytes (a chunk may end inside a UTF-8 character).
fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = s.windows(2).position(|w| w == b"\r\n") {
        let n = std::str::from_utf8(&s[..eol])
            .ok()
            .and_then(|l| usize::from_str_radix(l.trim(), 16).ok())
            .unwrap_or(0);
        let rest = &s[eol + 2..];
        if n == 0 || rest.len() < n {
            break;
        }
        out.extend_from_slice(&rest[..n]);
        s = rest[n..].strip_prefix(b"\r\n").unwrap_or(&rest[n..]);
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
    // iproute2's order: dev, vlan, dst, flags (self, extern_learn, sticky), master, state
    let mut s = format!(
        "{} dev {}",
        e["mac"].as_str().unwrap_or("?"),
        e["port"].as_str().unwrap_or("?")
    );
    let kind = e["kind"].as_str();
    if let Some(dst) = e["dst"].as_str() {
        // a vxlan port's own entry, as Linux prints a VXLAN device's
        s.push_str(&format!(" dst {dst} self"));
        match kind {
            Some("extern_learn") => s.push_str(" extern_learn"),
            Some("static") => s.push_str(" permanent"),
            _ => {}
        }
        return s;
    }
    let vlan = e["vlan"].as_u64().unwrap_or(0);
    if vlan != 0 {
        s.push_str(&format!(" vlan {vlan}"));
    }
    match kind {
        Some("sticky") => s.push_str(" sticky"),
        Some("extern_learn") => s.push_str(" extern_learn"),
        _ => {}
    }
    s.push_str(&format!(" master {master}"));
    if matches!(kind, Some("static" | "sticky")) {
        s.push_str(" static");
    }
    s
}

/// Sorts table entries as `tapswitch fdb` always printed them: the bridge's entries by port
/// (in attach order), VLAN and MAC; then each vxlan port's own entries, by MAC, its flood list
/// last in its order. `ports` is `GET /api/v1/ports` (ids and flood lists).
pub fn sort_fdb(entries: &mut [Value], ports: &Value) {
    use std::collections::HashMap;
    let mut id: HashMap<&str, u64> = HashMap::new();
    let mut flood: HashMap<(&str, &str), usize> = HashMap::new();
    for p in ports.as_array().into_iter().flatten() {
        let Some(name) = p["name"].as_str() else {
            continue;
        };
        id.insert(name, p["id"].as_u64().unwrap_or(u64::MAX));
        for (i, r) in p["vxlan"]["flood"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(d) = r["dst"].as_str() {
                flood.insert((name, d), i);
            }
        }
    }
    let key = |e: &Value| {
        let port = e["port"].as_str().unwrap_or("");
        let pid = id.get(port).copied().unwrap_or(u64::MAX);
        let mac = e["mac"].as_str().unwrap_or("").to_string();
        match e["dst"].as_str() {
            None => (0, pid, e["vlan"].as_u64().unwrap_or(0), mac, 0),
            Some(d) if mac == "00:00:00:00:00:00" => {
                let at = flood.get(&(port, d)).copied().unwrap_or(usize::MAX);
                (1, pid & 0xffff, 1, String::new(), at)
            }
            Some(_) => (1, pid & 0xffff, 0, mac, 0),
        }
    };
    entries.sort_by_cached_key(key);
}

/// `tapswitch fdb`: every page of the table, in the order it always had.
pub fn fdb(api: &str, json: bool) -> Result<()> {
    // 16 M learned entries and the user and vxlan ones, at 10000 a page
    let mut entries = get_all_pages(api, "/api/v1/fdb?limit=10000", 4096)?;
    sort_fdb(&mut entries, &get_json(api, "/api/v1/ports")?);
    let v = Value::Array(entries);
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

/// Sends a change; prints the JSON answer unless empty; turns API errors into messages.
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
        let msg = serde_json::from_str::<Value>(&resp)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| resp.trim().to_string());
        bail!("{method} {path}: HTTP {status}: {msg}");
    }
    Ok(serde_json::from_str(&resp).unwrap_or(Value::Null))
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

/// `tapswitch stp`: the bridge, then one line per port (role, state, cost, edge...).
pub fn stp(api: &str, json: bool) -> Result<()> {
    let v = get_json(api, "/api/v1/stp")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", stp_text(&v));
    Ok(())
}

/// The text of `tapswitch stp` for `GET /api/v1/stp`.
pub fn stp_text(v: &Value) -> String {
    let mut out = String::new();
    if v["stp"] != "rstp" {
        out.push_str(
            "spanning tree: off (tapswitch run --stp rstp, or tapswitch config stp rstp)\n",
        );
        return out;
    }
    let b = &v["bridge"];
    let s = |x: &Value| {
        x.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| x.to_string())
    };
    out.push_str(&format!(
        "bridge id         {}\ndesignated root   {}{}\nroot port         {}\nroot path cost    {}\n\
         max age {} s, hello time {} s, forward delay {} s (bridge: {} / {} / {})\n\
         topology change   {} (count {}, {} s ago)\nroot changes      {}\n",
        s(&b["bridge_id"]),
        s(&b["designated_root"]),
        if b["is_root"] == true { " (this bridge)" } else { "" },
        b["root_port_name"].as_str().unwrap_or("none"),
        b["root_path_cost"],
        b["max_age"],
        b["hello_time"],
        b["forward_delay"],
        b["bridge_max_age"],
        b["bridge_hello_time"],
        b["bridge_forward_delay"],
        if b["topology_change"] == true { "yes" } else { "no" },
        b["topology_change_count"],
        s(&b["time_since_topology_change"]),
        b["root_changes"],
    ));
    out.push_str(&format!(
        "\n{:<16} {:<6} {:<11} {:<11} {:>9} {:<5} {:<5} {:<18} {}\n",
        "port", "id", "role", "state", "cost", "edge", "proto", "designated bridge", "bpdus in/out"
    ));
    for p in v["ports"].as_array().into_iter().flatten() {
        let c = &p["counters"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        let rx = n("rx_config") + n("rx_rst") + n("rx_tcn");
        let tx = n("tx_config") + n("tx_rst") + n("tx_tcn");
        let mut role = s(&p["role"]);
        if p["root_inconsistent"] == true {
            role.push('*');
        }
        if p["bpdu_guard_tripped"] == true {
            role = "bpdu-guard".into();
        }
        out.push_str(&format!(
            "{:<16} {:<6} {:<11} {:<11} {:>9} {:<5} {:<5} {:<18} {rx}/{tx}\n",
            s(&p["name"]),
            s(&p["port_id"]),
            role,
            s(&p["state"]),
            p["path_cost"],
            if p["oper_edge"] == true { "yes" } else { "no" },
            s(&p["protocol"]),
            s(&p["designated_bridge"]),
        ));
    }
    out
}

/// Parses `bridge fdb`-style words: `MAC dev PORT [vlan N] [static|sticky|dynamic]`.
/// Parses `bridge fdb`-style words: `MAC dev PORT [vlan N] [dst IP] [self]
/// [static|sticky|dynamic|extern_learn]`.
pub fn parse_fdb_words(words: &[String], need_dev: bool) -> Result<Value> {
    let mut it = words.iter().map(String::as_str);
    let mac = it.next().context("missing MAC address")?;
    let mac: crate::wire::MacAddr = mac.parse()?;
    let mut body = serde_json::json!({ "mac": mac, "vlan": 0, "kind": "static" });
    let mut dev = None;
    while let Some(w) = it.next() {
        match w {
            "dev" | "port" => dev = Some(it.next().context("'dev' needs a port name")?.to_string()),
            "vlan" => {
                let v: u16 = it
                    .next()
                    .context("'vlan' needs a number")?
                    .parse()
                    .context("bad vlan")?;
                body["vlan"] = v.into();
            }
            "dst" => {
                let ip: std::net::IpAddr = it
                    .next()
                    .context("'dst' needs an IP address")?
                    .parse()
                    .context("bad dst address")?;
                body["dst"] = ip.to_string().into();
            }
            "static" | "sticky" | "dynamic" | "extern_learn" => body["kind"] = w.into(),
            "self" => body["self"] = true.into(),
            "master" | "permanent" => {}
            other => {
                bail!("unknown word '{other}' (expected dev PORT, vlan N, dst IP, self, static, sticky, dynamic, extern_learn)")
            }
        }
    }
    match dev {
        Some(d) => body["port"] = d.into(),
        None if need_dev => bail!("missing 'dev PORT'"),
        None => {}
    }
    Ok(body)
}

/// `tapswitch fdb [show|add|replace|del|flush]`.
pub(crate) fn fdb_cmd(a: crate::cli::FdbArgs) -> Result<()> {
    use crate::cli::FdbAction;
    let api = &a.client.endpoint();
    let tok = a.token.as_deref();
    let action = a.action.unwrap_or(FdbAction::Show);
    if let FdbAction::Show = action {
        return fdb(api, a.client.json);
    }
    let (method, path, body) = fdb_request(&action)?;
    let v = change(api, method, &path, body.as_ref(), tok)?;
    if let FdbAction::Flush { .. } = action {
        println!("removed {} entries", v["removed"]);
    }
    Ok(())
}

/// The request (method, path, body) of a changing `fdb` command, from its words (`Show` is
/// a read: a GET of /api/v1/fdb).
pub(crate) fn fdb_request(
    action: &crate::cli::FdbAction,
) -> Result<(&'static str, String, Option<Value>)> {
    use crate::cli::FdbAction;
    Ok(match action {
        FdbAction::Show => ("GET", "/api/v1/fdb".to_string(), None),
        FdbAction::Add { words } => {
            let b = parse_fdb_words(words, true)?;
            ("POST", "/api/v1/fdb".to_string(), Some(b))
        }
        FdbAction::Append { words } => {
            let b = parse_fdb_words(words, true)?;
            if b["mac"] != "00:00:00:00:00:00" || b["dst"].is_null() {
                bail!("append adds a remote to a vxlan port's flood list: fdb append 00:00:00:00:00:00 dev PORT dst IP");
            }
            ("POST", "/api/v1/fdb".to_string(), Some(b))
        }
        FdbAction::Replace { words } => {
            let b = parse_fdb_words(words, true)?;
            let path = format!("/api/v1/fdb/{}", b["mac"].as_str().unwrap_or_default());
            ("PUT", path, Some(b))
        }
        FdbAction::Del { words } => {
            let b = parse_fdb_words(words, false)?;
            let mut path = format!(
                "/api/v1/fdb/{}?vlan={}",
                b["mac"].as_str().unwrap_or_default(),
                b["vlan"]
            );
            if let Some(d) = b["dst"].as_str() {
                path.push_str(&format!("&dst={d}"));
            }
            if b["self"] == true {
                path.push_str("&self=true");
            }
            match b["port"].as_str() {
                Some(port) => path.push_str(&format!("&port={port}")),
                None if !b["dst"].is_null() || b["self"] == true => {
                    bail!("deleting a vxlan port's entry needs 'dev PORT'")
                }
                None => {}
            }
            ("DELETE", path, None)
        }
        FdbAction::Flush { words } => {
            let mut q = Vec::new();
            let mut it = words.iter();
            while let Some(w) = it.next() {
                match w.as_str() {
                    "dev" | "port" => q.push(format!(
                        "port={}",
                        it.next().context("'dev' needs a port name")?
                    )),
                    "vlan" => q.push(format!(
                        "vlan={}",
                        it.next().context("'vlan' needs a number")?
                    )),
                    other => bail!("unknown word '{other}' (expected dev PORT, vlan N)"),
                }
            }
            let path = if q.is_empty() {
                "/api/v1/fdb".to_string()
            } else {
                format!("/api/v1/fdb?{}", q.join("&"))
            };
            ("DELETE", path, None)
        }
    })
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
        let Some(&(key, ty)) = SETTINGS.iter().find(|(n, _)| *n == key) else {
            let known: Vec<&str> = SETTINGS.iter().map(|(n, _)| *n).collect();
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

/// `tapswitch port add|del|set`.
pub(crate) fn port_cmd(a: crate::cli::PortArgs) -> Result<()> {
    use crate::cli::PortAction;
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
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

/// `tapswitch config [KEY VALUE]...`.
pub(crate) fn config_cmd(a: crate::cli::ConfigArgs) -> Result<()> {
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
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let Some(o) = v.as_object() {
        for (k, val) in o {
            println!("{k} {val}");
        }
    }
    Ok(())
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
pub(crate) fn vlan_request(
    action: &crate::cli::VlanAction,
) -> Result<(&'static str, String, Option<Value>)> {
    use crate::cli::VlanAction;
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
pub(crate) fn vlan_cmd(a: crate::cli::VlanArgs) -> Result<()> {
    use crate::cli::VlanAction;
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
                println!("{}", serde_json::to_string_pretty(&v)?);
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

    #[test]
    fn bridge_fdb_show_lines() {
        let e = serde_json::json!({"mac": "02:00:00:00:00:01", "port": "tsw0", "vlan": 0, "kind": "learned"});
        assert_eq!(fdb_line(&e, "br0"), "02:00:00:00:00:01 dev tsw0 master br0");
        let e = serde_json::json!({"mac": "02:00:00:00:00:01", "port": "tsw0", "vlan": 5, "kind": "sticky"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:01 dev tsw0 vlan 5 sticky master br0 static"
        );
        let e = serde_json::json!({"mac": "02:00:00:00:00:01", "port": "tsw0", "vlan": 0, "kind": "static"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:01 dev tsw0 master br0 static"
        );
        // as iproute2 prints a Linux VXLAN device's entries and extern_learn bridge entries
        let e = serde_json::json!({"mac": "02:00:00:00:00:09", "port": "vx0", "vlan": 0, "kind": "extern_learn"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:09 dev vx0 extern_learn master br0"
        );
        let e = serde_json::json!({"mac": "00:00:00:00:00:00", "port": "vx0", "vlan": 0, "kind": "static", "dst": "198.18.250.2"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "00:00:00:00:00:00 dev vx0 dst 198.18.250.2 self permanent"
        );
        let e = serde_json::json!({"mac": "02:00:00:00:00:07", "port": "vx0", "vlan": 0, "kind": "learned", "dst": "2001:2::2"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:07 dev vx0 dst 2001:2::2 self"
        );
        let e = serde_json::json!({"mac": "02:00:00:00:00:08", "port": "vx0", "vlan": 0, "kind": "extern_learn", "dst": "198.18.250.3"});
        assert_eq!(
            fdb_line(&e, "br0"),
            "02:00:00:00:00:08 dev vx0 dst 198.18.250.3 self extern_learn"
        );
    }

    #[test]
    fn fdb_words() {
        let w = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let b =
            parse_fdb_words(&w("02:00:00:00:00:01 dev tsw0 vlan 5 sticky master"), true).unwrap();
        assert_eq!(b["port"], "tsw0");
        assert_eq!(b["vlan"], 5);
        assert_eq!(b["kind"], "sticky");
        assert!(parse_fdb_words(&w("02:00:00:00:00:01"), true).is_err());
        assert!(parse_fdb_words(&w("02:00:00:00:00:01 dev"), true).is_err());
        assert!(parse_fdb_words(&w("nope dev x"), true).is_err());
        assert!(parse_fdb_words(&w("02:00:00:00:00:01 bogus"), false).is_err());
        let b = parse_fdb_words(
            &w("00:00:00:00:00:00 dev vx0 dst 2001:2::2 self permanent"),
            true,
        )
        .unwrap();
        assert_eq!(
            (&b["port"], &b["dst"], &b["self"]),
            (&"vx0".into(), &"2001:2::2".into(), &true.into())
        );
        let b = parse_fdb_words(
            &w("02:00:00:00:00:01 dev vx0 dst 198.18.0.2 extern_learn"),
            true,
        )
        .unwrap();
        assert_eq!(b["kind"], "extern_learn");
        assert!(parse_fdb_words(&w("02:00:00:00:00:01 dev vx0 dst nowhere"), true).is_err());
    }

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

    #[test]
    fn chunked_streams_read_incrementally() {
        let body = b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\nignored";
        let mut r = Chunked {
            inner: std::io::BufReader::with_capacity(4, &body[..]),
            left: 0,
            done: false,
        };
        let mut out = Vec::new();
        let mut b = [0u8; 2];
        loop {
            let n = r.read(&mut b).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&b[..n]);
        }
        assert_eq!(out, b"abcde");
        // a stream cut short ends with what arrived
        let mut r = Chunked {
            inner: std::io::BufReader::new(&b"5\r\nab"[..]),
            left: 0,
            done: false,
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ab");
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
        // a chunk boundary inside a UTF-8 character
        let e = "\u{e9}".as_bytes();
        let body = [
            &b"1\r\n"[..],
            &e[..1],
            b"\r\n1\r\n",
            &e[1..],
            b"\r\n0\r\n\r\n",
        ]
        .concat();
        assert_eq!(dechunk(&body), e);
    }

    #[test]
    fn no_switch_is_a_clear_error() {
        let e = get_json("127.0.0.1:1", "/api/v1/ports")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no tapswitch answers at 127.0.0.1:1"), "{e}");
        let e = get_json("/nonexistent/tapswitch.sock", "/api/v1/ports")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no tapswitch answers on the control socket /nonexistent/tapswitch.sock"),
            "{e}"
        );
    }
}
