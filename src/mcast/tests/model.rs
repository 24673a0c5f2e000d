//! A model check: random sequences of IGMPv3/MLDv2 records, IGMPv2/MLDv1 reports and leaves
//! and clock steps on three ports, against a small reference model written from the RFC 3376
//! §6.4 tables with plain sets and maps. After every step the port groups (mode, sources,
//! timers) must agree, and so must the forwarding view: for every (port, source) pair, the
//! port receives group traffic from that source exactly when the model says it should.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

const GMI: u64 = 20_000;
const LMQT: u64 = 2_000;

/// The reference state of one port: include mode with timed sources, or exclude mode with
/// requested (timed) sources X, blocked sources Y and a group timer.
#[derive(Clone, Debug, PartialEq)]
enum M {
    Inc(BTreeMap<u8, u64>),
    Exc {
        x: BTreeMap<u8, u64>,
        y: BTreeSet<u8>,
        gt: u64,
    },
}

#[derive(Clone, Debug)]
enum Op {
    Rec { port: u32, kind: u8, srcs: Vec<u8> },
    Join { port: u32 },
    Leave { port: u32 },
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..=3u32, 1..=6u8, proptest::collection::vec(1..=5u8, 0..4))
            .prop_map(|(port, kind, srcs)| Op::Rec { port, kind, srcs }),
        1 => (1..=3u32).prop_map(|port| Op::Join { port }),
        1 => (1..=3u32).prop_map(|port| Op::Leave { port }),
        3 => (0..30_000u64).prop_map(Op::Advance),
    ]
}

fn lower(t: u64, at: u64) -> u64 {
    t.min(at)
}

/// One record on one port's model state at `now`.
fn apply(st: Option<M>, kind: RecordType, b: &BTreeSet<u8>, now: u64) -> Option<M> {
    use RecordType::*;
    let (gmi, lq) = (now + GMI, now + LMQT);
    let st = match (st, kind) {
        // Linux: TO_IN({}) / IS_IN({}) for a port not in the group is ignored.
        (None, ChangeToInclude | ModeIsInclude) if b.is_empty() => return None,
        (None, _) => M::Inc(BTreeMap::new()),
        (Some(s), _) => s,
    };
    let next = match (st, kind) {
        (M::Inc(mut a), ModeIsInclude | AllowNewSources) => {
            for s in b {
                a.insert(*s, gmi);
            }
            M::Inc(a)
        }
        (M::Inc(a), ModeIsExclude) => M::Exc {
            x: a.iter()
                .filter(|(s, _)| b.contains(s))
                .map(|(s, t)| (*s, *t))
                .collect(),
            y: b.iter().filter(|s| !a.contains_key(s)).copied().collect(),
            gt: gmi,
        },
        (M::Inc(mut a), ChangeToInclude) => {
            for (s, t) in a.iter_mut() {
                if !b.contains(s) {
                    *t = lower(*t, lq);
                }
            }
            for s in b {
                a.insert(*s, gmi);
            }
            M::Inc(a)
        }
        (M::Inc(a), ChangeToExclude) => M::Exc {
            x: a.iter()
                .filter(|(s, _)| b.contains(s))
                .map(|(s, t)| (*s, lower(*t, lq)))
                .collect(),
            y: b.iter().filter(|s| !a.contains_key(s)).copied().collect(),
            gt: gmi,
        },
        (M::Inc(mut a), BlockOldSources) => {
            for (s, t) in a.iter_mut() {
                if b.contains(s) {
                    *t = lower(*t, lq);
                }
            }
            M::Inc(a)
        }
        (M::Exc { mut x, mut y, gt }, ModeIsInclude | AllowNewSources) => {
            for s in b {
                x.insert(*s, gmi);
                y.remove(s);
            }
            M::Exc { x, y, gt }
        }
        (M::Exc { x, y, .. }, ModeIsExclude) => M::Exc {
            x: b.iter()
                .filter(|s| !y.contains(s))
                .map(|s| (*s, x.get(s).copied().unwrap_or(gmi)))
                .collect(),
            y: y.intersection(b).copied().collect(),
            gt: gmi,
        },
        (M::Exc { x, y, gt }, ChangeToExclude) => M::Exc {
            x: b.iter()
                .filter(|s| !y.contains(s))
                .map(|s| (*s, lower(x.get(s).copied().unwrap_or(gt), lq)))
                .collect(),
            y: y.intersection(b).copied().collect(),
            gt: gmi,
        },
        (M::Exc { mut x, y, gt }, BlockOldSources) => {
            for s in b.iter().filter(|s| !y.contains(s)) {
                let t = x.get(s).copied().unwrap_or(gt);
                x.insert(*s, lower(t, lq));
            }
            M::Exc { x, y, gt }
        }
        (M::Exc { mut x, mut y, gt }, ChangeToInclude) => {
            for (s, t) in x.iter_mut() {
                if !b.contains(s) {
                    *t = lower(*t, lq);
                }
            }
            for s in b {
                x.insert(*s, gmi);
                y.remove(s);
            }
            M::Exc {
                x,
                y,
                gt: lower(gt, lq),
            }
        }
        (s, Unknown(_)) => s,
    };
    match next {
        M::Inc(a) if a.is_empty() => None,
        n => Some(n),
    }
}

/// Every timer at or before `now` (the result does not depend on their order).
fn expire(st: Option<M>, now: u64) -> Option<M> {
    let mut st = st?;
    loop {
        let next = match st.clone() {
            M::Inc(mut a) => {
                a.retain(|_, t| *t > now);
                M::Inc(a)
            }
            M::Exc { mut x, mut y, gt } => {
                let gone: Vec<u8> = x
                    .iter()
                    .filter(|(_, t)| **t <= now)
                    .map(|(s, _)| *s)
                    .collect();
                for s in gone {
                    x.remove(&s);
                    y.insert(s);
                }
                if gt <= now {
                    M::Inc(x)
                } else {
                    M::Exc { x, y, gt }
                }
            }
        };
        if next == st {
            break;
        }
        st = next;
    }
    match st {
        M::Inc(a) if a.is_empty() => None,
        s => Some(s),
    }
}

fn admits(st: &Option<M>, s: u8) -> bool {
    match st {
        None => false,
        Some(M::Inc(a)) => a.contains_key(&s),
        Some(M::Exc { y, .. }) => !y.contains(&s),
    }
}

fn addr(f: Family, n: u8) -> IpAddr {
    match f {
        Family::V4 => v4(&format!("198.18.1.{n}")),
        Family::V6 => v6(&format!("2001:2::{n}")),
    }
}

fn run(f: Family, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut h = H::new(McastConfig {
        igmp_version: 3,
        mld_version: 2,
        querier: true,
        membership_interval_ms: GMI,
        ..McastConfig::default()
    });
    h.advance(secs(11));
    let t0 = h.now.0;
    let group = match f {
        Family::V4 => v4("239.1.2.3"),
        Family::V6 => v6("ff0e::123"),
    };
    let host = match f {
        Family::V4 => v4("198.18.0.2"),
        Family::V6 => v6("fe80::2"),
    };
    let mut model: [Option<M>; 4] = Default::default();
    for op in ops {
        match &op {
            Op::Advance(ms) => h.advance(*ms),
            Op::Rec { port, kind, srcs } => {
                let now = h.now.0 - t0;
                let i = *port as usize;
                let st = expire(model[i].take(), now);
                let kind = RecordType::from(*kind);
                let b: BTreeSet<u8> = srcs.iter().copied().collect();
                model[i] = apply(st, kind, &b, now);
                let srcs = srcs.iter().map(|n| addr(f, *n)).collect();
                h.feed(*port, &report(host, &[(kind, group, srcs)]));
            }
            Op::Join { port } => {
                let now = h.now.0 - t0;
                let i = *port as usize;
                model[i] = match expire(model[i].take(), now) {
                    None => Some(M::Exc {
                        x: BTreeMap::new(),
                        y: BTreeSet::new(),
                        gt: now + GMI,
                    }),
                    Some(M::Exc { x, y, .. }) => Some(M::Exc {
                        x,
                        y,
                        gt: now + GMI,
                    }),
                    inc => inc,
                };
                let frame = match (f, group) {
                    (Family::V4, IpAddr::V4(g)) => {
                        igmp_frame("198.18.0.2".parse().unwrap(), g, &igmp_v2(0x16, g))
                    }
                    (_, IpAddr::V6(g)) => mld_frame("fe80::2".parse().unwrap(), g, &mld_v1(131, g)),
                    _ => unreachable!(),
                };
                h.feed(*port, &frame);
            }
            Op::Leave { port } => {
                let now = h.now.0 - t0;
                let i = *port as usize;
                model[i] = match expire(model[i].take(), now) {
                    Some(M::Exc { x, y, gt }) => Some(M::Exc {
                        x,
                        y,
                        gt: lower(gt, now + LMQT),
                    }),
                    other => other,
                };
                let frame = match (f, group) {
                    (Family::V4, IpAddr::V4(g)) => igmp_frame(
                        "198.18.0.2".parse().unwrap(),
                        "224.0.0.2".parse().unwrap(),
                        &igmp_v2(0x17, g),
                    ),
                    (_, IpAddr::V6(g)) => mld_frame(
                        "fe80::2".parse().unwrap(),
                        "ff02::2".parse().unwrap(),
                        &mld_v1(132, g),
                    ),
                    _ => unreachable!(),
                };
                h.feed(*port, &frame);
            }
        }
        let now = h.now.0 - t0;
        for (i, m) in model.iter_mut().enumerate().skip(1) {
            *m = expire(m.take(), now);
            // Port group state, timers included.
            let got = h.pg(i as u32, group).map(|(mode, gt, srcs)| {
                let srcs: Vec<(u8, Option<u64>)> = srcs
                    .iter()
                    .map(|(a, t)| {
                        let n = match a {
                            IpAddr::V4(a) => a.octets()[3],
                            IpAddr::V6(a) => a.octets()[15],
                        };
                        (n, t.map(|t| t.0 - t0))
                    })
                    .collect();
                (
                    mode,
                    if mode == FilterMode::Exclude {
                        gt.map(|t| t.0 - t0)
                    } else {
                        None
                    },
                    srcs,
                )
            });
            let want = m.as_ref().map(|m| match m {
                M::Inc(a) => (
                    FilterMode::Include,
                    None,
                    a.iter().map(|(s, t)| (*s, Some(*t))).collect::<Vec<_>>(),
                ),
                M::Exc { x, y, gt } => {
                    let mut v: Vec<(u8, Option<u64>)> =
                        x.iter().map(|(s, t)| (*s, Some(*t))).collect();
                    v.extend(y.iter().map(|s| (*s, None)));
                    v.sort();
                    (FilterMode::Exclude, Some(*gt), v)
                }
            });
            prop_assert_eq!(got, want, "port {} after {:?}", i, op);
        }
        // Forwarding: every (port, source) pair.
        let view = h.s.view();
        for s in 1..=6u8 {
            let ports: Vec<u32> = match view.decide_data(0, group, addr(f, s)) {
                McastDecision::Deliver(l) => l.iter().map(|p| p.0).collect(),
                McastDecision::Flood => return Err(TestCaseError::fail("flood: no querier")),
            };
            for (i, m) in model.iter().enumerate().skip(1) {
                prop_assert_eq!(
                    ports.contains(&(i as u32)),
                    admits(m, s),
                    "port {} source {} after {:?}",
                    i,
                    s,
                    op
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn state_and_forwarding_match_the_rfc_model(
        v6 in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        run(if v6 { Family::V6 } else { Family::V4 }, ops)?;
    }
}
