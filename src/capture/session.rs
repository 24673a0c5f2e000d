//! A running capture: the request (`GET /api/v1/capture?...`), its registration with the
//! switch (at most [`MAX_CAPTURES`] at once), and the task that drains its ring into a pcapng
//! or pcap stream until the count, the duration or the client's disconnect.
//!
//! The task runs on the API's runtime, never on the frame path. It wakes when the ring passes
//! half full or every [`TICK`], swaps the ring's buffer out, encodes the records and hands the
//! bytes to the HTTP body through a small channel: a client that does not read blocks the
//! channel, the ring fills, and the frame path drops (and counts) what it cannot append.
//! Ending the capture (any reason, the body dropped included) unregisters it; a pcapng stream
//! then ends with one Interface Statistics Block per port (`isb_ifrecv`, `isb_ifdrop`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::capture::pcap::{Format, Writer, MAX_SNAPLEN};
use crate::capture::ring::records;
use crate::capture::{port_slot, Capture, Filter, Host};
use crate::types::PortId;
use crate::wire::MacAddr;

/// Most captures running at once.
pub const MAX_CAPTURES: usize = 8;
/// Bytes of each of a capture's two ring buffers.
pub const RING_BYTES: usize = 4 << 20;
/// How often the reader looks at the ring when it is less than half full.
pub const TICK: Duration = Duration::from_millis(20);
/// Longest `duration` accepted (a day).
pub const MAX_DURATION_SECS: f64 = 86_400.0;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Port names; empty: every port (also ports attached while it runs).
    pub ports: Vec<String>,
    /// What is kept.
    pub filter: Filter,
    /// Stop after this many frames.
    pub count: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Bytes kept of each frame (1..=262144).
    pub snaplen: u32,
    /// The stream's format.
    pub format: Format,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            ports: Vec::new(),
            filter: Filter::default(),
            count: None,
            duration: None,
            snaplen: MAX_SNAPLEN,
            format: Format::Pcapng,
        }
    }
}

/// A bad query parameter; the text names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capture parameter '{key}': {msg}")]
pub struct RequestError {
    /// The parameter.
    pub key: String,
    /// What is wrong.
    pub msg: String,
}

impl Request {
    /// Parses the query's `key=value` pairs: `port` (repeatable), `direction` (rx, tx, both),
    /// `vlan`, `mac`, `ethertype`, `count`, `duration` (seconds, fractions allowed), `snaplen`,
    /// `format` (pcapng, pcap).
    pub fn from_query(pairs: &[(String, String)]) -> Result<Request, RequestError> {
        let mut r = Request::default();
        for (k, v) in pairs {
            let err = |msg: String| RequestError {
                key: k.clone(),
                msg,
            };
            match k.as_str() {
                "port" => {
                    if v.is_empty() {
                        return Err(err("empty port name".into()));
                    }
                    if !r.ports.contains(v) {
                        r.ports.push(v.clone());
                    }
                }
                "direction" => r.filter.directions = v.parse().map_err(|e| err(format!("{e}")))?,
                "vlan" => {
                    let n: u16 = v
                        .parse()
                        .ok()
                        .filter(|n| *n <= 4095)
                        .ok_or_else(|| err(format!("'{v}' is not a VID 0..4095")))?;
                    r.filter.vlan = Some(n);
                }
                "mac" => {
                    let m: MacAddr = v.parse().map_err(|e| err(format!("{e}")))?;
                    r.filter.mac = Some(m);
                }
                "ethertype" => {
                    r.filter.ethertype =
                        Some(super::filter::parse_ethertype(v).map_err(|e| err(e.to_string()))?)
                }
                "count" => {
                    let n: u64 = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err(format!("'{v}' is not a count of at least 1")))?;
                    r.count = Some(n);
                }
                "duration" => {
                    let s: f64 = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= MAX_DURATION_SECS)
                        .ok_or_else(|| {
                            err(format!(
                                "'{v}' is not a number of seconds above 0 and up to {MAX_DURATION_SECS}"
                            ))
                        })?;
                    r.duration = Some(Duration::from_secs_f64(s));
                }
                "snaplen" => {
                    let n: u32 = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_SNAPLEN).contains(n))
                        .ok_or_else(|| err(format!("'{v}' is not a length 1..{MAX_SNAPLEN}")))?;
                    r.snaplen = n;
                }
                "format" => r.format = v.parse().map_err(|e| err(format!("{e}")))?,
                _ => {
                    return Err(err(
                        "unknown parameter (known: port, direction, vlan, mac, ethertype, count, duration, snaplen, format)"
                            .into(),
                    ))
                }
            }
        }
        Ok(r)
    }
}

/// Why a capture cannot start; [`CaptureError::status`] gives the API's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// A bad parameter.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A port named is not attached.
    #[error("no port named '{0}'")]
    UnknownPort(String),
    /// [`MAX_CAPTURES`] run already.
    #[error("{0} captures are running already (the limit); stop one first")]
    TooMany(usize),
}

impl CaptureError {
    /// 400, 404 or 429.
    pub fn status(&self) -> u16 {
        match self {
            CaptureError::Request(_) => 400,
            CaptureError::UnknownPort(_) => 404,
            CaptureError::TooMany(_) => 429,
        }
    }
}

/// Why a capture ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// `count` frames were written.
    Count,
    /// `duration` passed.
    Duration,
    /// The client went away.
    Disconnected,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Count => "count",
            EndReason::Duration => "duration",
            EndReason::Disconnected => "client gone",
        }
    }
}

/// A registered capture and its stream state; unregistered when dropped.
pub struct Session<H: Host> {
    sw: Arc<H>,
    cap: Arc<Capture>,
    req: Request,
    /// The ports named, in order, with their names (empty: every port).
    named: Vec<(PortId, String)>,
    registered: bool,
}

/// Registers a capture for `req` on `sw`; frames are captured from now on.
pub fn start<H: Host>(sw: &Arc<H>, req: Request) -> Result<Session<H>, CaptureError> {
    let id = sw.capture_totals().next_id();
    let r = sw.update_taps(|taps, port| {
        let mut named = Vec::new();
        for n in &req.ports {
            let id = port(n).ok_or_else(|| CaptureError::UnknownPort(n.clone()))?;
            named.push((id, n.clone()));
        }
        if taps.captures().len() >= MAX_CAPTURES {
            return Err(CaptureError::TooMany(MAX_CAPTURES));
        }
        let ports = (!req.ports.is_empty()).then(|| named.iter().map(|(id, _)| *id).collect());
        let cap = Arc::new(Capture::new(
            id,
            ports,
            req.filter,
            req.snaplen as usize,
            RING_BYTES,
        ));
        taps.add_capture(cap.clone());
        Ok((cap, named))
    });
    let (cap, named) = r?;
    tracing::info!(
        capture = id,
        ports = ?req.ports,
        direction = req.filter.directions.as_str(),
        vlan = ?req.filter.vlan,
        mac = ?req.filter.mac.map(|m| m.to_string()),
        ethertype = ?req.filter.ethertype,
        count = ?req.count,
        duration = ?req.duration,
        format = %req.format,
        "capture started"
    );
    Ok(Session {
        sw: sw.clone(),
        cap,
        req,
        named,
        registered: true,
    })
}

impl<H: Host> Session<H> {
    /// The capture as the frame path sees it.
    pub fn capture(&self) -> &Arc<Capture> {
        &self.cap
    }

    fn unregister(&mut self) {
        if std::mem::take(&mut self.registered) {
            let id = self.cap.id;
            self.sw.update_taps(|t, _| t.remove_capture(id));
            self.sw.capture_totals().retire(&self.cap);
        }
    }

    /// Streams the capture into `tx` until its count, its duration or the receiver's end;
    /// then unregisters it and (pcapng) writes the statistics.
    pub async fn run(mut self, tx: tokio::sync::mpsc::Sender<Vec<u8>>) {
        let mut w = Writer::new(self.req.format, self.req.snaplen);
        let mut out = Vec::new();
        w.header(&mut out);
        // Interfaces: the ports named, or every port now attached; others when first seen.
        let mut ifaces: HashMap<PortId, u32> = HashMap::new();
        let mut written: Vec<u64> = Vec::new();
        let initial: Vec<(PortId, String)> = if self.named.is_empty() {
            self.sw.port_names()
        } else {
            self.named.clone()
        };
        for (id, name) in &initial {
            ifaces.insert(*id, w.interface(name, &mut out));
            written.push(0);
        }
        let deadline = self.req.duration.map(|d| tokio::time::Instant::now() + d);
        let mut total = 0u64;
        let mut spare = self.cap.ring.spare();
        let reason = if tx.send(std::mem::take(&mut out)).await.is_err() {
            EndReason::Disconnected
        } else {
            loop {
                let mut timed_out = false;
                tokio::select! {
                    _ = self.cap.ring.filled() => {}
                    _ = tokio::time::sleep(TICK) => {}
                    _ = tx.closed() => break EndReason::Disconnected,
                    _ = async {
                        match deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    } => timed_out = true,
                }
                if timed_out {
                    // the frames up to the end count: unregister first, then drain
                    self.unregister();
                }
                self.cap.ring.take(&mut spare);
                let done = self.encode(
                    &mut w,
                    &spare,
                    &mut ifaces,
                    &mut written,
                    &mut total,
                    &mut out,
                );
                if !out.is_empty() && tx.send(std::mem::take(&mut out)).await.is_err() {
                    break EndReason::Disconnected;
                }
                if done {
                    break EndReason::Count;
                }
                if timed_out || deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                    break EndReason::Duration;
                }
            }
        };
        self.unregister();
        let dropped = self
            .cap
            .ring
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed);
        if reason != EndReason::Disconnected {
            let now = super::now_ns();
            // drops on ports without an interface yet get one, so every drop is reported
            let slots: Vec<(usize, u64)> = self.cap.slots_with_drops().collect();
            for (slot, _) in &slots {
                if !ifaces.keys().any(|id| port_slot(*id) == *slot) {
                    let name = self
                        .sw
                        .port_names()
                        .into_iter()
                        .find(|(id, _)| port_slot(*id) == *slot)
                        .map_or_else(|| format!("slot{slot}"), |(_, n)| n);
                    let id = PortId(*slot as u32);
                    ifaces.insert(id, w.interface(&name, &mut out));
                    written.push(0);
                }
            }
            let mut by_iface: Vec<(u32, PortId)> = ifaces.iter().map(|(p, i)| (*i, *p)).collect();
            by_iface.sort();
            for (iface, port) in by_iface {
                let d = self.cap.dropped_on(port_slot(port));
                let n = written.get(iface as usize).copied().unwrap_or(0);
                w.stats(&mut out, iface, now, n + d, d);
            }
            let _ = tx.send(out).await;
        }
        tracing::info!(
            capture = self.cap.id,
            frames = total,
            dropped,
            reason = reason.as_str(),
            "capture ended"
        );
    }

    /// Encodes the records of one buffer; returns whether the count is reached.
    fn encode(
        &self,
        w: &mut Writer,
        buf: &[u8],
        ifaces: &mut HashMap<PortId, u32>,
        written: &mut Vec<u64>,
        total: &mut u64,
        out: &mut Vec<u8>,
    ) -> bool {
        for r in records(buf) {
            if self.req.count.is_some_and(|c| *total >= c) {
                return true;
            }
            let iface = match ifaces.get(&r.port) {
                Some(i) => *i,
                None => {
                    let name = self
                        .sw
                        .port_names()
                        .into_iter()
                        .find(|(id, _)| *id == r.port)
                        .map_or_else(|| format!("slot{}", port_slot(r.port)), |(_, n)| n);
                    let i = w.interface(&name, out);
                    ifaces.insert(r.port, i);
                    written.push(0);
                    i
                }
            };
            w.packet(out, iface, r.ts_ns, r.dir, r.data, r.orig_len);
            if let Some(n) = written.get_mut(iface as usize) {
                *n += 1;
            }
            *total += 1;
        }
        self.req.count.is_some_and(|c| *total >= c)
    }
}

impl<H: Host> Drop for Session<H> {
    fn drop(&mut self) {
        self.unregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Directions;

    fn q(s: &str) -> Result<Request, RequestError> {
        let pairs: Vec<(String, String)> = s
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        Request::from_query(&pairs)
    }

    #[test]
    fn queries_parse() {
        assert_eq!(q(""), Ok(Request::default()));
        let r = q("port=a&port=b&port=a&direction=tx&vlan=10&mac=02:00:00:00:00:01&ethertype=0x0806&count=5&duration=1.5&snaplen=96&format=pcap").unwrap();
        assert_eq!(r.ports, ["a", "b"]);
        assert_eq!(r.filter.directions, Directions::Tx);
        assert_eq!(r.filter.vlan, Some(10));
        assert_eq!(r.filter.mac, Some(MacAddr([2, 0, 0, 0, 0, 1])));
        assert_eq!(r.filter.ethertype, Some(0x0806));
        assert_eq!(r.count, Some(5));
        assert_eq!(r.duration, Some(Duration::from_millis(1500)));
        assert_eq!(r.snaplen, 96);
        assert_eq!(r.format, Format::Pcap);
        for bad in [
            "count=0",
            "count=x",
            "duration=0",
            "duration=-1",
            "duration=nan",
            "duration=100000",
            "vlan=4096",
            "mac=nope",
            "ethertype=ip",
            "snaplen=0",
            "snaplen=300000",
            "format=csv",
            "direction=up",
            "port=",
            "bogus=1",
        ] {
            let e = q(bad).unwrap_err();
            assert_eq!(e.key, bad.split('=').next().unwrap(), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(CaptureError::UnknownPort("x".into()).status(), 404);
        assert_eq!(CaptureError::TooMany(8).status(), 429);
        assert_eq!(
            q("count=0")
                .map_err(CaptureError::from)
                .unwrap_err()
                .status(),
            400
        );
    }
}
