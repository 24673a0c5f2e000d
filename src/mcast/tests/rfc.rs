//! RFC 3376 §6.4.1 / §6.4.2 (IGMPv3) and RFC 3810 §7.4.1 / §7.4.2 (MLDv2): every row of the
//! router state tables, for both families, as the switch applies them (Linux semantics: GMI is
//! `mcast_membership_interval`, LMQT = `mcast_last_member_count` x
//! `mcast_last_member_interval`; timers are lowered by Q(G,S)/Q(G) also when the switch is not
//! the querier). Each row: the state before, the record, the state after with exact timer
//! values, and the queries sent, first as the querier and then without any querier.

use super::*;

const GMI: u64 = 260_000;
const LMQT: u64 = 2_000;

fn g(f: Family) -> IpAddr {
    match f {
        Family::V4 => v4("232.1.1.1"),
        Family::V6 => v6("ff3e::1"),
    }
}

fn s(f: Family, n: u8) -> IpAddr {
    match f {
        Family::V4 => v4(&format!("198.18.1.{n}")),
        Family::V6 => v6(&format!("2001:2::{n}")),
    }
}

fn n_of(a: &IpAddr) -> u8 {
    match a {
        IpAddr::V4(a) => a.octets()[3],
        IpAddr::V6(a) => a.octets()[15],
    }
}

fn host(f: Family) -> IpAddr {
    match f {
        Family::V4 => v4("198.18.0.2"),
        Family::V6 => v6("fe80::2"),
    }
}

fn rec(h: &mut H, f: Family, t: RecordType, ns: &[u8]) {
    let srcs = ns.iter().map(|n| s(f, *n)).collect();
    h.feed(1, &report(host(f), &[(t, g(f), srcs)]));
}

/// (mode, group timer, [(source, timer)]) with times relative to `t0`.
type St = (FilterMode, Option<u64>, Vec<(u8, Option<u64>)>);

fn state(h: &H, f: Family, t0: u64) -> Option<St> {
    let (m, gt, srcs) = h.pg(1, g(f))?;
    let rel = |t: Option<Timestamp>| t.map(|t| t.0 - t0);
    let mut v: Vec<(u8, Option<u64>)> = srcs.iter().map(|(a, t)| (n_of(a), rel(*t))).collect();
    v.sort();
    Some((m, rel(gt), v))
}

/// Queries sent, as (sources, S flag); group-specific ones have no sources.
fn sent(h: &mut H, f: Family) -> Vec<(Vec<u8>, bool)> {
    h.queries()
        .into_iter()
        .map(|q| {
            assert_eq!(q.port, Some(p(1)));
            assert_eq!(q.group, Some(g(f)));
            assert_eq!(q.version.family(), f);
            (q.sources.iter().map(n_of).collect(), q.s_flag)
        })
        .collect()
}

/// A switch (querier or not) with port 1 in INCLUDE(A) for the group, built at t0; the clock
/// then moves on 10 s. Returns (harness, t0).
fn include(f: Family, querier: bool, a: &[u8]) -> (H, u64) {
    let mut h = if querier {
        H::v3_querier()
    } else {
        H::v3_silent()
    };
    let t0 = h.now.0;
    rec(&mut h, f, RecordType::ModeIsInclude, a);
    h.advance(10_000);
    h.queries();
    (h, t0)
}

/// EXCLUDE(X, Y) built at t0 from IS_IN(X) and IS_EX(X+Y); the clock moves on 10 s.
fn exclude(f: Family, querier: bool, x: &[u8], y: &[u8]) -> (H, u64) {
    let mut h = if querier {
        H::v3_querier()
    } else {
        H::v3_silent()
    };
    let t0 = h.now.0;
    rec(&mut h, f, RecordType::ModeIsInclude, x);
    let all: Vec<u8> = x.iter().chain(y).copied().collect();
    rec(&mut h, f, RecordType::ModeIsExclude, &all);
    assert_eq!(
        state(&h, f, t0).unwrap(),
        (FilterMode::Exclude, Some(GMI), {
            let mut v: Vec<_> = x.iter().map(|n| (*n, Some(GMI))).collect();
            v.extend(y.iter().map(|n| (*n, None)));
            v.sort();
            v
        })
    );
    h.advance(10_000);
    h.queries();
    (h, t0)
}

const T1: u64 = 10_000;

fn both(test: impl Fn(Family, bool)) {
    for f in Family::ALL {
        for querier in [true, false] {
            test(f, querier);
        }
    }
}

use FilterMode::{Exclude as EX, Include as IN};

#[test]
fn include_is_in() {
    // INCLUDE (A) + IS_IN (B) -> INCLUDE (A+B), (B)=GMI
    both(|f, q| {
        let (mut h, t0) = include(f, q, &[1, 2, 3]);
        rec(&mut h, f, RecordType::ModeIsInclude, &[2, 3, 4]);
        let b = Some(T1 + GMI);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (IN, None, vec![(1, Some(GMI)), (2, b), (3, b), (4, b)])
        );
        assert!(sent(&mut h, f).is_empty());
    });
}

#[test]
fn include_is_ex() {
    // INCLUDE (A) + IS_EX (B) -> EXCLUDE (A*B, B-A), (B-A)=0, Delete (A-B), Group Timer=GMI
    both(|f, q| {
        let (mut h, t0) = include(f, q, &[1, 2, 3]);
        rec(&mut h, f, RecordType::ModeIsExclude, &[2, 3, 4]);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (
                EX,
                Some(T1 + GMI),
                vec![(2, Some(GMI)), (3, Some(GMI)), (4, None)]
            )
        );
        assert!(sent(&mut h, f).is_empty());
    });
}

#[test]
fn exclude_is_in() {
    // EXCLUDE (X,Y) + IS_IN (A) -> EXCLUDE (X+A, Y-A), (A)=GMI
    both(|f, q| {
        let (mut h, t0) = exclude(f, q, &[1, 2], &[3, 4]);
        rec(&mut h, f, RecordType::ModeIsInclude, &[2, 3, 5]);
        let a = Some(T1 + GMI);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (
                EX,
                Some(GMI),
                vec![(1, Some(GMI)), (2, a), (3, a), (4, None), (5, a)]
            )
        );
        assert!(sent(&mut h, f).is_empty());
    });
}

#[test]
fn exclude_is_ex() {
    // EXCLUDE (X,Y) + IS_EX (A) -> EXCLUDE (A-Y, Y*A), (A-X-Y)=GMI, Delete (X-A),
    // Delete (Y-A), Group Timer=GMI
    both(|f, q| {
        let (mut h, t0) = exclude(f, q, &[1, 2], &[3, 4]);
        rec(&mut h, f, RecordType::ModeIsExclude, &[2, 3, 5]);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (
                EX,
                Some(T1 + GMI),
                vec![(2, Some(GMI)), (3, None), (5, Some(T1 + GMI))]
            )
        );
        assert!(sent(&mut h, f).is_empty());
    });
}

#[test]
fn include_allow() {
    // INCLUDE (A) + ALLOW (B) -> INCLUDE (A+B), (B)=GMI
    both(|f, q| {
        let (mut h, t0) = include(f, q, &[1, 2, 3]);
        rec(&mut h, f, RecordType::AllowNewSources, &[2, 3, 4]);
        let b = Some(T1 + GMI);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (IN, None, vec![(1, Some(GMI)), (2, b), (3, b), (4, b)])
        );
        assert!(sent(&mut h, f).is_empty());
    });
}

#[test]
fn include_block() {
    // INCLUDE (A) + BLOCK (B) -> INCLUDE (A), Send Q(G,A*B)
    both(|f, q| {
        let (mut h, t0) = include(f, q, &[1, 2, 3]);
        rec(&mut h, f, RecordType::BlockOldSources, &[2, 3, 4]);
        let l = Some(T1 + LMQT);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (IN, None, vec![(1, Some(GMI)), (2, l), (3, l)])
        );
        if q {
            assert_eq!(sent(&mut h, f), vec![(vec![2, 3], false)]);
            h.advance(1000);
            assert_eq!(sent(&mut h, f), vec![(vec![2, 3], false)], "retransmission");
            h.advance(999);
            assert!(
                sent(&mut h, f).is_empty(),
                "last member count 2: two queries"
            );
        } else {
            assert!(sent(&mut h, f).is_empty());
            h.advance(1999);
        }
        h.advance(1);
        assert_eq!(state(&h, f, t0).unwrap(), (IN, None, vec![(1, Some(GMI))]));
    });
}

#[test]
fn include_to_ex() {
    // INCLUDE (A) + TO_EX (B) -> EXCLUDE (A*B, B-A), (B-A)=0, Delete (A-B), Send Q(G,A*B),
    // Group Timer=GMI
    both(|f, q| {
        let (mut h, t0) = include(f, q, &[1, 2, 3]);
        rec(&mut h, f, RecordType::ChangeToExclude, &[2, 3, 4]);
        let l = Some(T1 + LMQT);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (EX, Some(T1 + GMI), vec![(2, l), (3, l), (4, None)])
        );
        let expect: Vec<(Vec<u8>, bool)> = if q { vec![(vec![2, 3], false)] } else { vec![] };
        assert_eq!(sent(&mut h, f), expect);
        // Unanswered, A*B become blocked.
        h.advance(LMQT);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (EX, Some(T1 + GMI), vec![(2, None), (3, None), (4, None)])
        );
    });
}

#[test]
fn include_to_in() {
    // INCLUDE (A) + TO_IN (B) -> INCLUDE (A+B), (B)=GMI, Send Q(G,A-B)
    both(|f, q| {
        let (mut h, t0) = include(f, q, &[1, 2, 3]);
        rec(&mut h, f, RecordType::ChangeToInclude, &[2, 3, 4]);
        let b = Some(T1 + GMI);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (IN, None, vec![(1, Some(T1 + LMQT)), (2, b), (3, b), (4, b)])
        );
        let expect: Vec<(Vec<u8>, bool)> = if q { vec![(vec![1], false)] } else { vec![] };
        assert_eq!(sent(&mut h, f), expect);
        h.advance(LMQT);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (IN, None, vec![(2, b), (3, b), (4, b)])
        );
    });
}

#[test]
fn exclude_allow() {
    // EXCLUDE (X,Y) + ALLOW (A) -> EXCLUDE (X+A, Y-A), (A)=GMI
    both(|f, q| {
        let (mut h, t0) = exclude(f, q, &[1, 2], &[3, 4]);
        rec(&mut h, f, RecordType::AllowNewSources, &[2, 3, 5]);
        let a = Some(T1 + GMI);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (
                EX,
                Some(GMI),
                vec![(1, Some(GMI)), (2, a), (3, a), (4, None), (5, a)]
            )
        );
        assert!(sent(&mut h, f).is_empty());
    });
}

#[test]
fn exclude_block() {
    // EXCLUDE (X,Y) + BLOCK (A) -> EXCLUDE (X+(A-Y), Y), (A-X-Y)=Group Timer, Send Q(G,A-Y)
    both(|f, q| {
        let (mut h, t0) = exclude(f, q, &[1, 2], &[3, 4]);
        rec(&mut h, f, RecordType::BlockOldSources, &[2, 3, 5]);
        let l = Some(T1 + LMQT);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (
                EX,
                Some(GMI),
                vec![(1, Some(GMI)), (2, l), (3, None), (4, None), (5, l)]
            )
        );
        let expect: Vec<(Vec<u8>, bool)> = if q { vec![(vec![2, 5], false)] } else { vec![] };
        assert_eq!(sent(&mut h, f), expect);
        h.advance(LMQT);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (
                EX,
                Some(GMI),
                vec![(1, Some(GMI)), (2, None), (3, None), (4, None), (5, None)]
            )
        );
    });
}

#[test]
fn exclude_to_ex() {
    // EXCLUDE (X,Y) + TO_EX (A) -> EXCLUDE (A-Y, Y*A), (A-X-Y)=Group Timer, Delete (X-A),
    // Delete (Y-A), Send Q(G,A-Y), Group Timer=GMI
    both(|f, q| {
        let (mut h, t0) = exclude(f, q, &[1, 2], &[3, 4]);
        rec(&mut h, f, RecordType::ChangeToExclude, &[2, 3, 5]);
        let l = Some(T1 + LMQT);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (EX, Some(T1 + GMI), vec![(2, l), (3, None), (5, l)])
        );
        let expect: Vec<(Vec<u8>, bool)> = if q { vec![(vec![2, 5], false)] } else { vec![] };
        assert_eq!(sent(&mut h, f), expect);
    });
}

#[test]
fn exclude_to_in() {
    // EXCLUDE (X,Y) + TO_IN (A) -> EXCLUDE (X+A, Y-A), (A)=GMI, Send Q(G,X-A), Send Q(G)
    both(|f, q| {
        let (mut h, t0) = exclude(f, q, &[1, 2], &[3, 4]);
        rec(&mut h, f, RecordType::ChangeToInclude, &[2, 3, 5]);
        let a = Some(T1 + GMI);
        let l = Some(T1 + LMQT);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (EX, l, vec![(1, l), (2, a), (3, a), (4, None), (5, a)])
        );
        if q {
            assert_eq!(sent(&mut h, f), vec![(vec![1], false), (vec![], false)]);
            h.advance(1000);
            let mut r = sent(&mut h, f);
            r.sort();
            assert_eq!(
                r,
                vec![(vec![], false), (vec![1], false)],
                "both retransmitted"
            );
        } else {
            assert!(sent(&mut h, f).is_empty());
            h.advance(1000);
        }
        // No answer: the group timer ends exclude mode, the blocked sources go.
        h.advance(1000);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (IN, None, vec![(2, a), (3, a), (5, a)])
        );
        assert!(sent(&mut h, f).is_empty());
    });
}

#[test]
fn retransmission_of_a_refreshed_source_carries_the_s_flag() {
    // RFC 3376 §6.6.3.2: a source whose timer went back above LMQT (a report answered) is
    // still retransmitted, in a query with the S flag set.
    for f in Family::ALL {
        let (mut h, t0) = include(f, true, &[1, 2]);
        rec(&mut h, f, RecordType::BlockOldSources, &[1]);
        assert_eq!(sent(&mut h, f), vec![(vec![1], false)]);
        h.advance(500);
        rec(&mut h, f, RecordType::ModeIsInclude, &[1]);
        assert_eq!(state(&h, f, t0).unwrap().2[0], (1, Some(T1 + 500 + GMI)));
        h.advance(500);
        assert_eq!(sent(&mut h, f), vec![(vec![1], true)]);
    }
}

#[test]
fn timers_expire_as_rfc_6_5() {
    for f in Family::ALL {
        // Include mode: a source timer ends, the source goes; the last one takes the entry.
        let (mut h, t0) = include(f, false, &[1]);
        rec(&mut h, f, RecordType::AllowNewSources, &[2]);
        h.advance(GMI - T1 - 1);
        assert_eq!(state(&h, f, t0).unwrap().2.len(), 2);
        h.advance(1);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (IN, None, vec![(2, Some(T1 + GMI))])
        );
        h.advance(T1);
        assert_eq!(state(&h, f, t0), None);
        // Exclude mode: an ended source timer blocks; the group timer brings include mode
        // with the requested sources, or removes the entry.
        let (mut h, t0) = exclude(f, false, &[1], &[2]);
        rec(&mut h, f, RecordType::AllowNewSources, &[3]);
        h.advance(GMI - T1);
        assert_eq!(
            state(&h, f, t0).unwrap(),
            (IN, None, vec![(3, Some(T1 + GMI))]),
            "group timer and source 1 end together: include mode, 1 and 2 gone"
        );
        let (mut h, t0) = exclude(f, false, &[1], &[2]);
        h.advance(GMI - T1);
        assert_eq!(state(&h, f, t0), None);
    }
}

#[test]
fn forwarding_follows_the_filter() {
    // What the tables mean for traffic: include forwards the listed sources, exclude all but
    // the blocked ones; a port in IGMPv2 mode gets every source.
    for f in Family::ALL {
        let (mut h, _) = exclude(f, true, &[1, 2], &[3, 4]);
        rec(&mut h, f, RecordType::ModeIsInclude, &[]);
        h.feed(
            2,
            &report(host(f), &[(RecordType::ModeIsInclude, g(f), vec![s(f, 3)])]),
        );
        let fwd = |h: &mut H, n| h.fwd(g(f), s(f, n)).unwrap();
        assert_eq!(fwd(&mut h, 1), vec![1]);
        assert_eq!(fwd(&mut h, 3), vec![2]);
        assert_eq!(fwd(&mut h, 4), Vec::<u32>::new());
        assert_eq!(fwd(&mut h, 9), vec![1]);
    }
}
