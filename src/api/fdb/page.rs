//! Paging `GET /api/v1/fdb`: the cursor, one page in one walk of each table it reaches
//! ([`crate::page`]), and the `Link: <...>; rel="next"` header that names the next page.

use std::net::IpAddr;
use std::sync::Arc;

use super::super::error::{bad, ApiError};
use super::super::json::{entry_json, evpn_seq, vtep_entry_json, EntryJson};
use crate::dataplane::Switch;
use crate::fdb::FdbKey;
use crate::types::{PortId, Timestamp};
use crate::vxlan::vtep::Vtep;
use crate::wire::MacAddr;

/// Entries in a page of `GET /api/v1/fdb` without `limit`.
pub const FDB_PAGE_DEFAULT: usize = 1000;
/// Most entries a page of `GET /api/v1/fdb` may ask for.
pub const FDB_PAGE_MAX: usize = 10_000;

/// Where a page of `GET /api/v1/fdb` starts. The listing is the bridge's table in (VLAN,
/// MAC) order, then each `vxlan` port's own table, by port, in (MAC, remote) order; the cursor
/// names the last entry of the page before. Clients treat it as opaque: they pass on the
/// `after=` of the `Link: <...>; rel="next"` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdbCursor {
    /// After this bridge entry: `b{VLAN}-{MAC as 12 hex digits}`.
    Bridge {
        /// VLAN.
        vlan: u16,
        /// MAC.
        mac: MacAddr,
    },
    /// After this entry of a vxlan port's table: `v{PORT ID}-{VNI}-{MAC}-{REMOTE}`.
    Vtep {
        /// The vxlan port.
        port: PortId,
        /// The VNI whose table it is (a port with a `vni-map` has one per VNI).
        vni: u32,
        /// Inner MAC.
        mac: MacAddr,
        /// Remote VTEP.
        dst: IpAddr,
    },
}

fn mac_hex(m: &MacAddr) -> String {
    m.0.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_mac_hex(s: &str) -> Option<MacAddr> {
    if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, b) in m.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(MacAddr(m))
}

impl std::fmt::Display for FdbCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FdbCursor::Bridge { vlan, mac } => write!(f, "b{vlan}-{}", mac_hex(mac)),
            FdbCursor::Vtep {
                port,
                vni,
                mac,
                dst,
            } => write!(f, "v{}-{vni}-{}-{dst}", port.0, mac_hex(mac)),
        }
    }
}

impl std::str::FromStr for FdbCursor {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        let err = || {
            bad(format!(
                "'{s}' is not a cursor of this listing: pass on the after= of the previous page's Link header"
            ))
        };
        let mut parts = s.get(1..).unwrap_or_default().split('-');
        let c = match s.as_bytes().first() {
            Some(b'b') => FdbCursor::Bridge {
                vlan: parts.next().and_then(|v| v.parse().ok()).ok_or_else(err)?,
                mac: parts.next().and_then(parse_mac_hex).ok_or_else(err)?,
            },
            Some(b'v') => FdbCursor::Vtep {
                port: PortId(parts.next().and_then(|v| v.parse().ok()).ok_or_else(err)?),
                vni: parts.next().and_then(|v| v.parse().ok()).ok_or_else(err)?,
                mac: parts.next().and_then(parse_mac_hex).ok_or_else(err)?,
                dst: parts.next().and_then(|v| v.parse().ok()).ok_or_else(err)?,
            },
            _ => return Err(err()),
        };
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(c)
    }
}

/// What a page asks for: the filters, where it starts and how many entries it holds.
pub(super) struct PageQuery {
    /// Only this port's entries.
    pub port: Option<PortId>,
    /// Only this VLAN's entries (a vxlan port's own entries are VLAN 0).
    pub vlan: Option<u16>,
    /// The last entry of the page before.
    pub after: Option<FdbCursor>,
    /// Most entries.
    pub limit: usize,
}

/// A page being filled.
struct Page {
    out: Vec<EntryJson>,
    last: Option<FdbCursor>,
}

/// One page of the listing (see [`FdbCursor`]) and the cursor of the next one, if more may
/// follow. One walk of the bridge's table, and of the vxlan tables the page reaches. Holds no
/// port (nor the registry) while it walks a table: detaching a port waits for whoever holds
/// it, and must not wait for a reader.
pub(super) fn fdb_page(sw: &Switch, q: &PageQuery) -> (Vec<EntryJson>, Option<FdbCursor>) {
    let now = sw.now();
    let mut page = Page {
        out: Vec::new(),
        last: None,
    };
    if !matches!(q.after, Some(FdbCursor::Vtep { .. })) && bridge_part(sw, q, now, &mut page) {
        return (page.out, page.last);
    }
    // a vxlan port's own entries have no VLAN: listed with vlan=0 or no vlan filter
    if q.vlan.is_none_or(|v| v == 0) && vtep_part(sw, q, now, &mut page) {
        return (page.out, page.last);
    }
    (page.out, None)
}

/// Fills `page` from the bridge's table; whether it is full with more to follow.
fn bridge_part(sw: &Switch, q: &PageQuery, now: Timestamp, page: &mut Page) -> bool {
    let from = match q.after {
        Some(FdbCursor::Bridge { vlan, mac }) => Some(FdbKey::new(mac, vlan)),
        _ => None,
    };
    let (port, vlan) = (q.port, q.vlan);
    let keep = |k: &FdbKey, p| port.is_none_or(|x| p == x) && vlan.is_none_or(|v| k.vlan == v);
    let recs = sw.fdb.page(from, q.limit + 1, keep, now);
    let ports = sw.ports();
    let seq = evpn_seq(sw);
    for r in recs.iter().take(q.limit) {
        let mut j = entry_json(&ports, r);
        j.seq = seq(r.vlan, &r.mac);
        page.out.push(j);
        page.last = Some(FdbCursor::Bridge {
            vlan: r.vlan,
            mac: r.mac,
        });
    }
    recs.len() > q.limit
}

/// Fills the rest of `page` from the vxlan ports' own tables, by port and VNI; whether it
/// is full with more to follow.
fn vtep_part(sw: &Switch, q: &PageQuery, now: Timestamp, page: &mut Page) -> bool {
    let mut tables: Vec<(PortId, u32, String, Arc<Vtep>)> = sw
        .vxlan_members()
        .into_iter()
        .filter(|m| q.port.is_none_or(|p| m.port.id == p))
        .map(|m| (m.port.id, m.vtep.vni(), m.port.name.clone(), m.vtep))
        .collect();
    tables.sort_by_key(|t| (t.0, t.1));
    for (id, vni, name, vtep) in tables {
        let from = match q.after {
            Some(FdbCursor::Vtep { port, vni: n, .. }) if (id, vni) < (port, n) => continue,
            Some(FdbCursor::Vtep {
                port,
                vni: n,
                mac,
                dst,
            }) if (id, vni) == (port, n) => Some((mac, dst)),
            _ => None,
        };
        let room = q.limit - page.out.len();
        let recs = vtep.page(from, room + 1, now);
        for r in recs.iter().take(room) {
            page.out.push(vtep_entry_json(&name, vni, r));
            page.last = Some(FdbCursor::Vtep {
                port: id,
                vni,
                mac: r.mac,
                dst: r.dst,
            });
        }
        if recs.len() > room {
            return true;
        }
    }
    false
}

/// Percent-encodes a query value (a port name).
fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `Link` header naming the page after `next`, with the same limit and filters.
pub(super) fn next_link(
    limit: usize,
    next: FdbCursor,
    port: Option<&str>,
    vlan: Option<u16>,
) -> String {
    let mut link = format!("</api/v1/fdb?limit={limit}&after={next}");
    if let Some(p) = port {
        link += &format!("&port={}", query_value(p));
    }
    if let Some(v) = vlan {
        link += &format!("&vlan={v}");
    }
    link += ">; rel=\"next\"";
    link
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_writes() {
        let mac = MacAddr([0x02, 0, 0, 0, 0xab, 0x01]);
        for c in [
            FdbCursor::Bridge { vlan: 10, mac },
            FdbCursor::Vtep {
                port: PortId(3),
                vni: 1010,
                mac,
                dst: "198.18.0.2".parse().unwrap(),
            },
        ] {
            assert_eq!(c.to_string().parse::<FdbCursor>().unwrap(), c);
        }
        assert_eq!(
            FdbCursor::Bridge { vlan: 10, mac }.to_string(),
            "b10-02000000ab01"
        );
    }

    #[test]
    fn a_cursor_that_is_not_one_is_a_400() {
        for s in [
            "",
            "x10-020000000001",
            "b10",
            "b10-02000000000",
            "b10-020000000001-x",
            "v1-020000000001",
        ] {
            let e = s.parse::<FdbCursor>().expect_err(s);
            assert_eq!(e.0, axum::http::StatusCode::BAD_REQUEST, "{s:?}");
        }
    }

    #[test]
    fn the_next_link_keeps_the_filters_and_encodes_the_port() {
        let c = FdbCursor::Bridge {
            vlan: 1,
            mac: MacAddr([0, 0, 0, 0, 0, 1]),
        };
        assert_eq!(
            next_link(5, c, Some("a b/c"), Some(7)),
            "</api/v1/fdb?limit=5&after=b1-000000000001&port=a%20b%2Fc&vlan=7>; rel=\"next\""
        );
        assert_eq!(
            next_link(5, c, None, None),
            "</api/v1/fdb?limit=5&after=b1-000000000001>; rel=\"next\""
        );
    }
}
