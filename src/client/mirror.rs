//! `tapswitch mirror [show|add|del]`: port mirrors (copies of ports' traffic to an output
//! port).

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{change, enc, get_json, print_json, ClientArgs};

/// `tapswitch mirror`.
#[derive(Args, Debug)]
pub struct MirrorArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Token for changes over TCP (or TAPSWITCH_API_TOKEN).
    #[arg(
        long,
        env = "TAPSWITCH_API_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    #[command(subcommand)]
    action: Option<MirrorAction>,
}

#[derive(Subcommand, Debug)]
enum MirrorAction {
    /// List the mirrors (the default).
    Show,
    /// Add a mirror: `mirror add NAME [src PORT]... [dst PORT]... [all] output PORT`.
    Add {
        /// The name, then the words.
        #[arg(num_args = 1..)]
        words: Vec<String>,
    },
    /// Remove a mirror.
    Del {
        /// Its name.
        name: String,
    },
}

/// Parses `NAME [src PORT]... [dst PORT]... [all] output PORT` into the API's JSON body.
pub fn parse_mirror_words(words: &[String]) -> Result<Value> {
    let mut it = words.iter().map(String::as_str);
    let name = it.next().context("missing the mirror's NAME")?;
    let (mut src, mut dst, mut all, mut output) = (Vec::new(), Vec::new(), false, None);
    while let Some(w) = it.next() {
        let mut port = |what: &str| -> Result<String> {
            Ok(it
                .next()
                .with_context(|| format!("'{what}' needs a port name"))?
                .to_string())
        };
        match w {
            "src" | "select-src" | "select_src" => src.push(port(w)?),
            "dst" | "select-dst" | "select_dst" => dst.push(port(w)?),
            "all" | "select-all" | "select_all" => all = true,
            "output" | "out" => output = Some(port(w)?),
            other => {
                bail!("unknown word '{other}' (expected src PORT, dst PORT, all, output PORT)")
            }
        }
    }
    let output = output.context("missing 'output PORT'")?;
    Ok(serde_json::json!({
        "name": name,
        "select_src": src,
        "select_dst": dst,
        "select_all": all,
        "output": output,
    }))
}

/// One line of `tapswitch mirror show`.
pub fn mirror_line(m: &Value) -> String {
    let list = |k: &str| -> Vec<String> {
        m[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let mut s = format!("{}:", m["name"].as_str().unwrap_or("?"));
    if m["select_all"] == true {
        s.push_str(" all");
    }
    for p in list("select_src") {
        s.push_str(&format!(" src {p}"));
    }
    for p in list("select_dst") {
        s.push_str(&format!(" dst {p}"));
    }
    s.push_str(&format!(
        " output {} frames {} dropped {}",
        m["output"].as_str().unwrap_or("?"),
        m["frames"],
        m["dropped"]
    ));
    if m["active"] == false {
        s.push_str(" (inactive: output port not attached)");
    }
    s
}

/// Checks the words of a `mirror` command without sending it (`tapswitch::cli::check_args`).
pub(crate) fn check_mirror(a: &MirrorArgs) -> Result<()> {
    if let Some(MirrorAction::Add { words }) = &a.action {
        parse_mirror_words(words)?;
    }
    Ok(())
}

/// `tapswitch mirror [show|add|del]`.
pub fn mirror_cmd(a: MirrorArgs) -> Result<()> {
    let api = a.client.endpoint();
    let tok = a.token.as_deref();
    match a.action.unwrap_or(MirrorAction::Show) {
        MirrorAction::Show => {
            let v = get_json(&api, "/api/v1/mirrors")?;
            if a.client.json {
                print_json(&v)?;
            } else {
                for m in v.as_array().into_iter().flatten() {
                    println!("{}", mirror_line(m));
                }
            }
        }
        MirrorAction::Add { words } => {
            let body = parse_mirror_words(&words)?;
            let v = change(&api, "POST", "/api/v1/mirrors", Some(&body), tok)?;
            if a.client.json {
                print_json(&v)?;
            }
        }
        MirrorAction::Del { name } => {
            let path = format!("/api/v1/mirrors/{}", enc(&name));
            change(&api, "DELETE", &path, None, tok)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn mirror_words() {
        let v = parse_mirror_words(&w("m1 src a src b dst c output mon0")).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "m1", "select_src": ["a", "b"], "select_dst": ["c"], "select_all": false, "output": "mon0"})
        );
        let v = parse_mirror_words(&w("m2 all output mon0")).unwrap();
        assert_eq!(v["select_all"], true);
        assert!(parse_mirror_words(&w("m3 src a")).is_err());
        assert!(parse_mirror_words(&w("m3 src")).is_err());
        assert!(parse_mirror_words(&w("m3 bogus x output y")).is_err());
        assert!(parse_mirror_words(&[]).is_err());
        let line = mirror_line(
            &serde_json::json!({"name": "m1", "select_src": ["a"], "select_dst": [], "select_all": false, "output": "mon0", "frames": 3, "dropped": 0, "active": true}),
        );
        assert_eq!(line, "m1: src a output mon0 frames 3 dropped 0");
    }
}
