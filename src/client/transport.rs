//! One HTTP/1.1 client for every command: one request per connection (`Connection: close`)
//! over the switch's control socket (the default) or its TCP listener (`--api ADDR`). A
//! request's answer is read whole ([`request`], [`get_json`], [`get_all_pages`] following
//! `Link: <...>; rel="next"`), or, for captures, streamed as it arrives ([`open_stream`]).

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

#[cfg(test)]
mod tests {
    use super::*;

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
