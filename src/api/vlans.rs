//! `/api/v1/vlans` and `/api/v1/ports/{name}/vlans/{vid}`: every port's VLANs, and adding or
//! removing a VID (or a range) on one port, as `bridge vlan add|del` does.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{bad, not_found, ApiError, ApiResult};
use super::json::vlans_json;
use super::ports::find_port;
use super::AppState;
use crate::vlan::{check_vid, VidRange};

/// `GET /api/v1/vlans`: `bridge -j vlan show`.
pub(super) async fn list_vlans(State(st): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        st.sw
            .ports()
            .iter()
            .map(|h| json!({ "ifname": h.name, "vlans": vlans_json(&h.vlans()) }))
            .collect(),
    ))
}

/// `N` or `N-M` in a path.
fn parse_vid_range(s: &str) -> ApiResult<VidRange> {
    let n = |t: &str| {
        t.parse::<u16>()
            .map_err(|_| bad(format!("'{s}' is not a VID or a range like 10-20")))
            .and_then(|v| check_vid(v).map_err(|e| bad(e.to_string())))
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (n(a)?, n(b)?),
        None => {
            let v = n(s)?;
            (v, v)
        }
    };
    if b < a {
        return Err(bad(format!("VID range {s} ends below its start")));
    }
    Ok(VidRange { start: a, end: b })
}

/// The optional body of `PUT /api/v1/ports/{name}/vlans/{vid}`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VlanBody {
    #[serde(default)]
    pvid: bool,
    #[serde(default)]
    untagged: bool,
}

/// `PUT /api/v1/ports/{name}/vlans/{vid}`: `bridge vlan add`.
pub(super) async fn put_port_vlan(
    State(st): State<AppState>,
    Path((name, vid)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let range = parse_vid_range(&vid)?;
    // the body is optional; a bad one is a JSON error like every other route's
    let b: VlanBody = if body.iter().all(u8::is_ascii_whitespace) {
        VlanBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad(format!("bad JSON body: {e}")))?
    };
    let (sw, n) = (st.sw.clone(), name.clone());
    // on the control thread: serialized with other VLAN changes and reloads
    let v = st
        .ctl
        .run(move || {
            let h = find_port(&sw, &n)?;
            not_mapped(&sw, &h)?;
            sw.update_port_vlans(&h, |p| p.add(range, b.pvid, b.untagged))
                .map_err(|e| bad(e.to_string()))?;
            Ok::<_, ApiError>(vlans_json(&h.vlans()))
        })
        .await??;
    tracing::info!(port = %name, vid, pvid = b.pvid, untagged = b.untagged, "port VLAN added");
    Ok(Json(v))
}

/// `DELETE /api/v1/ports/{name}/vlans/{vid}`: `bridge vlan del`.
pub(super) async fn del_port_vlan(
    State(st): State<AppState>,
    Path((name, vid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let range = parse_vid_range(&vid)?;
    let (sw, n, vid2) = (st.sw.clone(), name.clone(), vid.clone());
    // read and changed in one step on the control thread (serialized with other changes and
    // reloads), which also flushes the port's entries in those VLANs
    let v = st
        .ctl
        .run(move || {
            let h = find_port(&sw, &n)?;
            not_mapped(&sw, &h)?;
            match crate::control::del_port_vlans(&sw, &h, range) {
                Ok(true) => Ok(vlans_json(&h.vlans())),
                Ok(false) => Err(not_found(format!("port '{n}' has no VLAN in {vid2}"))),
                Err(e) => Err(bad(e.to_string())),
            }
        })
        .await??;
    tracing::info!(port = %name, vid, "port VLAN deleted");
    Ok(Json(v))
}

/// A `vxlan` port with a `vni-map` has the map's VLANs (tagged, no PVID), changed only with
/// the map: a 400 naming it.
fn not_mapped(sw: &crate::dataplane::Switch, h: &crate::dataplane::PortHandle) -> ApiResult<()> {
    if sw
        .vteps_of(h.id)
        .first()
        .is_some_and(|(vlan, _)| vlan.is_some())
    {
        return Err(bad(format!(
            "port '{}' has a vni-map: its VLANs are the map's (replace the port to change them)",
            h.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vid_or_a_range_in_a_path() {
        let r = parse_vid_range("10").unwrap();
        assert_eq!((r.start, r.end), (10, 10));
        let r = parse_vid_range("10-20").unwrap();
        assert_eq!((r.start, r.end), (10, 20));
        for s in ["20-10", "x", "10-", "0", "4095", "1-4095"] {
            let e = parse_vid_range(s).expect_err(s);
            assert_eq!(e.0, axum::http::StatusCode::BAD_REQUEST, "{s}");
        }
    }
}
