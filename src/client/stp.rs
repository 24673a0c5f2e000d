//! `tapswitch stp`: the spanning tree's bridge and ports (like `mstpctl showbridge` and
//! `showport`).

use anyhow::Result;
use serde_json::Value;

use super::{get_json, print_json};

/// `tapswitch stp`: the bridge, then one line per port (role, state, cost, edge...).
pub fn stp(api: &str, json: bool) -> Result<()> {
    let v = get_json(api, "/api/v1/stp")?;
    if json {
        print_json(&v)?;
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
