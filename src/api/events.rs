//! `GET /api/v1/events`: the switch's table changes as they happen ([`crate::events`]), one
//! JSON object a line over a chunked response, until the client goes. Like `GET /api/v1/fdb`
//! it is a read. A reader cannot slow the switch: the bus is a bounded ring that drops the
//! oldest events for a reader that falls behind, which is then sent a `lagged` line saying how
//! many it lost (it should read the table again).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::dataplane::Switch;
use crate::events::Event;
use crate::fdb::Change;
use crate::types::PortId;

/// The lines of one follower, as an HTTP body stream.
struct Lines(tokio::sync::mpsc::Receiver<Vec<u8>>);

impl futures_core::Stream for Lines {
    type Item = Result<Vec<u8>, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

/// A port's name, or `#ID` for one already removed.
fn name(sw: &Switch, id: PortId) -> String {
    sw.ports()
        .get(id)
        .map_or_else(|| format!("#{}", id.0), |h| h.name.clone())
}

/// One event as its JSON line.
pub(crate) fn line(sw: &Switch, e: &Event) -> Vec<u8> {
    let v = match e {
        &Event::Fdb {
            mac,
            vlan,
            port,
            kind,
            what,
        } => {
            let mut v = json!({
                "event": "fdb",
                "action": match what {
                    Change::Added => "add",
                    Change::Moved(_) => "move",
                    Change::Removed => "del",
                },
                "mac": mac.to_string(),
                "vlan": vlan,
                "port": name(sw, port),
                "kind": kind,
            });
            if let Change::Moved(from) = what {
                v["from"] = name(sw, from).into();
            }
            v
        }
        &Event::FdbSeq {
            mac,
            vlan,
            port,
            seq,
        } => {
            json!({
                "event": "fdb",
                "action": "seq",
                "mac": mac.to_string(),
                "vlan": vlan,
                "port": name(sw, port),
                "seq": seq,
            })
        }
        Event::Port {
            ref name, state, ..
        } => {
            json!({"event": "port", "port": &**name, "state": state})
        }
        Event::Mdb(m) => {
            // {"event": "mdb", "change": "group_added", ...}, ports by name
            let mut v = serde_json::to_value(m).unwrap_or_default();
            let change = v["event"].take();
            v["event"] = "mdb".into();
            v["change"] = change;
            for at in ["/port", "/querier/port"] {
                if let Some(p) = v.pointer_mut(at) {
                    if let Some(id) = p.as_u64() {
                        *p = name(sw, PortId(id as u32)).into();
                    }
                }
            }
            v
        }
        Event::Stp {
            ref name, state, ..
        } => {
            json!({"event": "stp", "port": &**name, "state": state})
        }
    };
    let mut out = v.to_string().into_bytes();
    out.push(b'\n');
    out
}

/// `GET /api/v1/events`.
pub(super) async fn events(State(st): State<AppState>) -> ApiResult<Response> {
    let mut rx = st.sw.events.subscribe();
    let (tx, body) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let sw = st.sw.clone();
    tokio::spawn(async move {
        loop {
            let e = tokio::select! {
                e = rx.recv() => e,
                () = tx.closed() => return,
            };
            let l = match e {
                Ok(e) => line(&sw, &e),
                Err(RecvError::Lagged(n)) => {
                    let mut l = json!({"event": "lagged", "lost": n})
                        .to_string()
                        .into_bytes();
                    l.push(b'\n');
                    l
                }
                Err(RecvError::Closed) => return,
            };
            if tx.send(l).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(axum::body::Body::from_stream(Lines(body)))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarding::{PortFlags, Settings};
    use crate::port::mem::MemPort;

    #[test]
    fn lines_name_ports_and_say_what_changed() {
        let sw = Switch::new("t", Settings::default(), 10);
        let h = sw
            .add_port("h1", Box::new(MemPort::default()), PortFlags::default())
            .unwrap();
        let j = |e: &Event| -> serde_json::Value { serde_json::from_slice(&line(&sw, e)).unwrap() };
        let v = j(&Event::Fdb {
            mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
            vlan: 0,
            port: h.id,
            kind: crate::fdb::EntryKind::ExternLearn,
            what: Change::Moved(PortId(999)),
        });
        assert_eq!(
            v,
            json!({"event": "fdb", "action": "move", "mac": "02:00:00:00:00:01", "vlan": 0,
                   "port": "h1", "kind": "extern_learn", "from": "#999"})
        );
        let v = j(&Event::FdbSeq {
            mac: crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
            vlan: 10,
            port: h.id,
            seq: 3,
        });
        assert_eq!(
            v,
            json!({"event": "fdb", "action": "seq", "mac": "02:00:00:00:00:01", "vlan": 10,
                   "port": "h1", "seq": 3})
        );
        let v = j(&Event::Mdb(crate::mcast::Event::GroupAdded {
            vid: 0,
            group: "239.1.1.1".parse().unwrap(),
            source: None,
            port: h.id,
            is_static: true,
        }));
        assert_eq!(
            v,
            json!({"event": "mdb", "change": "group_added", "vid": 0, "group": "239.1.1.1",
                   "port": "h1", "static": true})
        );
    }
}
