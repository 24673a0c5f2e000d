//! One HTTP/1.1 client for every command, on hyper's: one request per connection
//! (`Connection: close`) over the switch's control socket (the default) or its TCP listener
//! (`--api ADDR`). A request's answer is read whole ([`request`], [`get_json`],
//! [`get_all_pages`] following `Link: <...>; rel="next"`), or, for captures, streamed as it
//! arrives ([`open_stream`]). Each call runs on a single-thread tokio runtime of its own, so
//! the commands stay plain blocking functions (not to be called from async code).

use std::future::Future;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;

/// Where the switch is: an address `HOST:PORT` (TCP) or a path starting with `/` or `.` (its
/// control socket).
pub fn is_socket_path(endpoint: &str) -> bool {
    endpoint.starts_with('/') || endpoint.starts_with('.')
}

/// A connection to the switch, either kind.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects to the control socket, or over TCP (3 s at most), with the errors that say what to
/// check.
async fn connect(api: &str) -> Result<Box<dyn Io>> {
    if is_socket_path(api) {
        let s = tokio::net::UnixStream::connect(api).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "permission denied on the control socket {api}: run as root or as a member of the switch's --control-group"
            ),
            _ => anyhow::anyhow!(
                "no tapswitch answers on the control socket {api} ({e}); is it running, with this --name? (or give --control PATH, or --api ADDR for its TCP listener)"
            ),
        })?;
        return Ok(Box::new(s));
    }
    let addr: SocketAddr = api
        .to_socket_addrs()
        .with_context(|| format!("--api {api}: not an address"))?
        .next()
        .with_context(|| format!("--api {api}: not an address"))?;
    let s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        .with_context(|| {
            format!("no tapswitch answers at {api} (is it running, and with this --listen?)")
        })?;
    Ok(Box::new(s))
}

/// Sends one request on a new connection; returns the answer, its body unread.
async fn send(
    api: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<hyper::Response<Incoming>> {
    let host = if is_socket_path(api) {
        "localhost"
    } else {
        api
    };
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("Host", host)
        .header("Connection", "close")
        .header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .with_context(|| format!("{method} {path}"))?;
    let io = hyper_util::rt::TokioIo::new(connect(api).await?);
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    Ok(tx.send_request(req).await?)
}

/// A runtime for one call.
fn runtime() -> Result<Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// How long a request waits for its answer's head, then for each piece of its body (as a
/// socket read with this timeout would).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// `f`, or a timeout error once it has waited `limit`.
async fn within<T>(limit: Duration, f: impl Future<Output = Result<T>>) -> Result<T> {
    let timed_out = |_| std::io::Error::from(std::io::ErrorKind::TimedOut);
    tokio::time::timeout(limit, f).await.map_err(timed_out)?
}

/// Sends a GET whose answer is a stream (a capture) and returns the status and a reader of
/// the body as it arrives. There is no timeout: a capture may be idle for long.
pub fn open_stream(
    api: &str,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, Box<dyn Read + Send>)> {
    let rt = runtime()?;
    let resp = rt.block_on(send(api, "GET", path, None, token))?;
    let status = resp.status().as_u16();
    let body = resp.into_body();
    Ok((
        status,
        Box::new(Stream {
            rt,
            body,
            left: Bytes::new(),
        }),
    ))
}

/// A streamed body, read on its own runtime.
struct Stream {
    rt: Runtime,
    body: Incoming,
    /// What is left of the last frame.
    left: Bytes,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.left.is_empty() {
            match self.rt.block_on(self.body.frame()) {
                Some(Ok(f)) => self.left = f.into_data().unwrap_or_default(),
                // the server went away mid-stream: what arrived is all there is
                None | Some(Err(_)) => return Ok(0),
            }
        }
        let n = buf.len().min(self.left.len());
        buf[..n].copy_from_slice(&self.left.split_to(n));
        Ok(n)
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

/// [`request_bytes`] that also returns the response's head: its status line and header lines.
pub fn request_full(
    api: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, String, Vec<u8>)> {
    runtime()?.block_on(async {
        let mut resp = within(READ_TIMEOUT, send(api, method, path, body, token)).await?;
        let mut head = format!("HTTP/1.1 {}\r\n", resp.status());
        for (k, v) in resp.headers() {
            let v = String::from_utf8_lossy(v.as_bytes());
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let mut out = Vec::new();
        while let Some(frame) =
            within(READ_TIMEOUT, async { Ok(resp.body_mut().frame().await) }).await?
        {
            if let Ok(data) = frame?.into_data() {
                out.extend_from_slice(&data);
            }
        }
        Ok((resp.status().as_u16(), head, out))
    })
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
    use std::io::Write;
    use std::sync::mpsc;

    /// A one-connection HTTP server on loopback: it reads the request's head, writes `parts`
    /// (before each one after the first, it waits up to 5 s for a word on `go`), then closes.
    /// Returns its address, and a handle giving the head it read and whether a wait ran out.
    fn serve(
        parts: Vec<&'static [u8]>,
        go: mpsc::Receiver<()>,
    ) -> (String, std::thread::JoinHandle<(String, bool)>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
                head.push(b[0]);
            }
            let mut ran_out = false;
            for (i, p) in parts.into_iter().enumerate() {
                if i > 0 {
                    ran_out |= go.recv_timeout(Duration::from_secs(5)).is_err();
                }
                s.write_all(p).unwrap();
            }
            (String::from_utf8(head).unwrap(), ran_out)
        });
        (addr, t)
    }

    #[test]
    fn a_chunked_answer_is_read_whole_with_its_head() {
        let (_go, rx) = mpsc::channel();
        let (addr, t) = serve(
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nLink: </api/v1/fdb?after=x>; rel=\"next\"\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"],
            rx,
        );
        let (st, head, body) =
            request_full(&addr, "PATCH", "/api/v1/config", Some("{}"), Some("t0k")).unwrap();
        assert_eq!((st, &body[..]), (200, &b"abcde"[..]));
        assert_eq!(next_link(&head).as_deref(), Some("/api/v1/fdb?after=x"));
        let sent = t.join().unwrap().0.to_ascii_lowercase();
        assert!(
            sent.starts_with("patch /api/v1/config http/1.1\r\n"),
            "{sent}"
        );
        for h in [
            format!("host: {addr}"),
            "authorization: bearer t0k".into(),
            "connection: close".into(),
            "content-length: 2".into(),
        ] {
            assert!(sent.contains(&h), "{h} in {sent}");
        }
    }

    #[test]
    fn a_stream_is_read_as_it_arrives_and_a_cut_ends_it() {
        let (go, rx) = mpsc::channel();
        let (addr, t) = serve(
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
                b"5\r\nde",
            ],
            rx,
        );
        let (st, mut r) = open_stream(&addr, "/api/v1/capture", None).unwrap();
        assert_eq!(st, 200);
        // the first chunk arrives while the server still holds the rest back
        let mut b = [0u8; 16];
        let n = r.read(&mut b).unwrap();
        assert_eq!(&b[..n], b"abc");
        go.send(()).unwrap();
        // then the server goes away mid-chunk: what arrived is all there is
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"de");
        assert!(
            !t.join().unwrap().1,
            "the first chunk came only with the rest"
        );
    }

    #[test]
    fn a_silent_server_times_out() {
        let rt = runtime().unwrap();
        let e = rt
            .block_on(within(
                Duration::from_millis(20),
                std::future::pending::<Result<()>>(),
            ))
            .unwrap_err();
        let e = e.downcast::<std::io::Error>().unwrap();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        let ok = rt.block_on(within(Duration::from_millis(20), async { Ok(1) }));
        assert_eq!(ok.unwrap(), 1);
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
