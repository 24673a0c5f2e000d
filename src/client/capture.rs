//! `tapswitch capture`: streams `GET /api/v1/capture` to a file or stdout (binary pcapng, so
//! `| tcpdump -r -` and `| wireshark -k -i -` work live), or, with no `-w` and a terminal on
//! stdout, prints one line per frame. It reads the stream as it passes (interfaces, frames and
//! the closing statistics) and reports on stderr how many frames it got and how many the
//! switch dropped.

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::{enc, error_text, open_stream, ClientArgs};
use crate::capture::pcap::{Direction, Event, Reader};

/// `tapswitch capture`.
#[derive(Args, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Token for captures over TCP (or TAPSWITCH_API_TOKEN).
    #[arg(long, env = "TAPSWITCH_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Ports to capture (default: every port).
    ports: Vec<String>,
    /// Write the capture to FILE, or `-` for stdout [default: stdout; one line per frame
    /// when stdout is a terminal].
    #[arg(short = 'w', value_name = "FILE")]
    write: Option<String>,
    /// Stop after COUNT frames.
    #[arg(short = 'c', long, value_name = "COUNT")]
    count: Option<u64>,
    /// Stop after S seconds.
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// rx (read from the ports), tx (written to them) or both [default: both].
    #[arg(long, value_name = "DIR")]
    direction: Option<String>,
    /// Only frames whose outer VLAN tag has this VID.
    #[arg(long, value_name = "N")]
    vlan: Option<u16>,
    /// Only frames from or to this MAC address.
    #[arg(long, value_name = "MAC")]
    mac: Option<String>,
    /// Only frames of this EtherType (0xNNNN; outer or after the VLAN tags).
    #[arg(long, value_name = "X")]
    ethertype: Option<String>,
    /// Bytes kept of each frame [default: 262144].
    #[arg(short = 's', long, value_name = "N")]
    snaplen: Option<u32>,
    /// pcapng (port names, directions, drop statistics) or pcap [default: pcapng].
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
}

/// The API path of a capture request.
fn capture_path(a: &CaptureArgs) -> String {
    let mut q: Vec<String> = a.ports.iter().map(|p| format!("port={}", enc(p))).collect();
    if let Some(v) = &a.direction {
        q.push(format!("direction={}", enc(v)));
    }
    if let Some(v) = a.vlan {
        q.push(format!("vlan={v}"));
    }
    if let Some(v) = &a.mac {
        q.push(format!("mac={}", enc(v)));
    }
    if let Some(v) = &a.ethertype {
        q.push(format!("ethertype={}", enc(v)));
    }
    if let Some(v) = a.count {
        q.push(format!("count={v}"));
    }
    if let Some(v) = a.duration {
        q.push(format!("duration={v}"));
    }
    if let Some(v) = a.snaplen {
        q.push(format!("snaplen={v}"));
    }
    if let Some(v) = &a.format {
        q.push(format!("format={}", enc(v)));
    }
    if q.is_empty() {
        "/api/v1/capture".into()
    } else {
        format!("/api/v1/capture?{}", q.join("&"))
    }
}

/// What the stream said, for the closing report.
#[derive(Default)]
struct Tally {
    names: Vec<Option<String>>,
    frames: u64,
    dropped: u64,
    stats: bool,
}

/// `tapswitch capture`.
pub fn capture_cmd(a: CaptureArgs) -> Result<()> {
    let api = a.client.endpoint();
    let path = capture_path(&a);
    let (status, mut body) = open_stream(&api, &path, a.token.as_deref())?;
    if status != 200 {
        let mut text = String::new();
        let _ = body.read_to_string(&mut text);
        bail!("capture: HTTP {status}: {}", error_text(&text));
    }
    let lines = a.write.is_none() && std::io::stdout().is_terminal();
    let mut sink: Option<Box<dyn Write>> = match a.write.as_deref() {
        _ if lines => None,
        None | Some("-") => Some(Box::new(std::io::stdout().lock())),
        Some(f) => Some(Box::new(
            std::fs::File::create(f).with_context(|| format!("-w {f}"))?,
        )),
    };
    let mut reader = Reader::new();
    let mut t = Tally::default();
    let mut buf = vec![0u8; 1 << 16];
    let mut broken_pipe = false;
    let mut stdout = std::io::stdout().lock();
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the capture"),
        };
        if let Some(s) = sink.as_mut() {
            // flushed at once, so a reader on a pipe (tcpdump -r -) sees frames live
            if let Err(e) = s.write_all(&buf[..n]).and_then(|()| s.flush()) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    broken_pipe = true;
                    break;
                }
                return Err(e).context("writing the capture");
            }
        }
        reader.feed(&buf[..n]);
        while let Some(ev) = reader
            .next()
            .context("the switch sent a malformed stream")?
        {
            match ev {
                Event::Interface { id, name, .. } => {
                    let i = id as usize;
                    if t.names.len() <= i {
                        t.names.resize(i + 1, None);
                    }
                    t.names[i] = name;
                }
                Event::Packet {
                    iface,
                    ts_ns,
                    dir,
                    data,
                    ..
                } => {
                    t.frames += 1;
                    if lines {
                        let port = t
                            .names
                            .get(iface as usize)
                            .cloned()
                            .flatten()
                            .unwrap_or_else(|| "?".into());
                        let line = crate::capture::pcap::summary(
                            ts_ns,
                            &port,
                            dir.unwrap_or(Direction::Inbound),
                            &data,
                        );
                        if writeln!(stdout, "{line}").is_err() {
                            broken_pipe = true;
                            break;
                        }
                    }
                }
                Event::Stats { dropped, .. } => {
                    t.stats = true;
                    t.dropped += dropped.unwrap_or(0);
                }
            }
        }
        if broken_pipe {
            break;
        }
    }
    let _ = stdout.flush();
    if let Some(mut s) = sink.take() {
        let _ = s.flush();
    }
    if t.stats {
        eprintln!(
            "tapswitch: {} frames captured, {} dropped by the switch (the reader was too slow)",
            t.frames, t.dropped
        );
    } else if !broken_pipe {
        eprintln!(
            "tapswitch: {} frames captured (no drop statistics in this format: see tapswitch_capture_dropped_total)",
            t.frames
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_paths() {
        let mut a = CaptureArgs {
            client: ClientArgs {
                control: None,
                api: None,
                json: false,
            },
            token: None,
            ports: vec!["tsw0".into(), "a b".into()],
            write: None,
            count: Some(3),
            duration: Some(1.5),
            direction: Some("rx".into()),
            vlan: Some(10),
            mac: Some("02:00:00:00:00:01".into()),
            ethertype: Some("0x0800".into()),
            snaplen: Some(96),
            format: None,
        };
        assert_eq!(
            capture_path(&a),
            "/api/v1/capture?port=tsw0&port=a%20b&direction=rx&vlan=10&mac=02:00:00:00:00:01&ethertype=0x0800&count=3&duration=1.5&snaplen=96"
        );
        a.ports.clear();
        a.count = None;
        a.duration = None;
        a.direction = None;
        a.vlan = None;
        a.mac = None;
        a.ethertype = None;
        a.snaplen = None;
        assert_eq!(capture_path(&a), "/api/v1/capture");
    }
}
