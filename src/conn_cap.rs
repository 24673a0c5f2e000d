//! A cap on the connections of one API listener: up to `max` connections are served; one
//! more is answered `503 Service Unavailable` with a one-line reason and closed, so a client
//! over the cap learns why at once instead of hanging, and a local user cannot pile up
//! connections (each one a task and buffers) without bound.
//!
//! [`Capped`] wraps a listener for `axum::serve`; each served connection holds a slot that
//! its [`CappedIo`] gives back when the connection ends.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Connections per listener when `--api-max-conns` is not given.
pub const DEFAULT_MAX_CONNS: usize = 64;

/// Refused connections being answered at once; beyond, a refused connection is closed
/// without an answer (a flood of connections must not become a flood of tasks).
const MAX_REFUSING: usize = 64;

/// How long a refused connection may take to get its answer.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A listener serving at most `max` connections at once.
pub struct Capped<L> {
    inner: L,
    what: &'static str,
    max: usize,
    live: Arc<AtomicUsize>,
    refusing: Arc<AtomicUsize>,
    refused: u64,
    last_warn: Option<Instant>,
}

impl<L> Capped<L> {
    /// Caps `inner` (named `what` in the log: "TCP listener", "control socket") at `max`
    /// connections (at least 1).
    pub fn new(inner: L, what: &'static str, max: usize) -> Capped<L> {
        Capped {
            inner,
            what,
            max: max.max(1),
            live: Arc::new(AtomicUsize::new(0)),
            refusing: Arc::new(AtomicUsize::new(0)),
            refused: 0,
            last_warn: None,
        }
    }

    /// Connections being served now.
    pub fn live(&self) -> Arc<AtomicUsize> {
        self.live.clone()
    }
}

/// The answer to a connection over the cap.
fn refusal(max: usize) -> Vec<u8> {
    let body = format!(
        "{{\"error\":\"too many connections to this listener (at most {max}, --api-max-conns); try again later\"}}\n"
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// How long a refused connection may take to send its request head before the 503 goes out.
const HEAD_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// Answers a refused connection: reads the request head first (up to [`HEAD_WAIT`] and 16
/// KiB: a client that gets an answer before it has sent its request, hyper's among them, takes
/// the connection for broken and reports no answer at all), then the 503, then reads what else
/// the client sent (so closing does not reset the connection before the client read the
/// answer), all within a second.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, max: usize) {
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, async {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(HEAD_WAIT, async {
            while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = io.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        io.write_all(&refusal(max)).await?;
        io.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut total = 0usize;
        while total < 64 * 1024 {
            let n = io.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

impl<L> Listener for Capped<L>
where
    L: Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Io = CappedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (io, addr) = self.inner.accept().await;
            let taken = self
                .live
                .fetch_update(Relaxed, Relaxed, |n| (n < self.max).then_some(n + 1));
            if taken.is_ok() {
                return (
                    CappedIo {
                        io,
                        _slot: Slot(self.live.clone()),
                    },
                    addr,
                );
            }
            self.refused += 1;
            if self
                .last_warn
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
            {
                // one line per burst, not per connection
                tracing::warn!(
                    listener = self.what,
                    max = self.max,
                    refused = self.refused,
                    "API connections refused: too many (--api-max-conns)"
                );
                self.last_warn = Some(Instant::now());
            }
            let refusing = self.refusing.clone();
            if refusing
                .fetch_update(Relaxed, Relaxed, |n| (n < MAX_REFUSING).then_some(n + 1))
                .is_ok()
            {
                let max = self.max;
                tokio::spawn(async move {
                    refuse(io, max).await;
                    refusing.fetch_sub(1, Relaxed);
                });
            }
            // else: dropped, closed without an answer
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Gives a connection's place back when the connection ends.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A served connection: the stream, and its place under the cap.
#[derive(Debug)]
pub struct CappedIo<S> {
    io: S,
    _slot: Slot,
}

impl<S> CappedIo<S> {
    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CappedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CappedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_one_http_response_with_a_reason() {
        let r = String::from_utf8(refusal(64)).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("connection: close"));
        assert_eq!(body.lines().count(), 1);
        assert!(body.contains("at most 64"), "{body}");
    }
}
