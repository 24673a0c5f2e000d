//! The views against real bytes: frames the Linux kernel itself sent (captured with
//! scripts/mcast_linux_capture.sh on a 6.x kernel: a host's IGMP/MLD stack joining and leaving
//! groups, a Linux bridge querier's queries), the mausezahn payloads of the kernel selftests
//! bridge_igmp.sh / bridge_mld.sh, and every truncation and corruption of them.

use super::igmp::*;
use super::mld::*;
use super::*;
use proptest::prelude::*;

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

// --- Captured from the kernel (host 02:00:00:00:00:02 / 198.18.0.2 / fe80::ff:fe00:2, bridge
// querier 02:00:00:00:00:01 / 198.18.0.1 / fe80::ff:fe00:1). ---
/// Linux bridge IGMPv3 general query (mcast_query_use_ifaddr 1).
pub(crate) const IGMPV3_GENERAL_QUERY: &str = "01005e000001020000000001080046c000240000400001023dffc6120001e0000001940400001164ec1e00000000027d0000";
/// Host join of 239.10.10.10 (IP_ADD_MEMBERSHIP): TO_EX({}).
pub(crate) const IGMPV3_REPORT_TO_EX: &str = "01005e000016020000000002080046c000280000400001023de5c6120002e0000016940400002200e0e90000000104000000ef0a0a0a";
/// Host leave of 239.10.10.10: TO_IN({}).
pub(crate) const IGMPV3_REPORT_TO_IN: &str = "01005e000016020000000002080046c000280000400001023de5c6120002e0000016940400002200e1e90000000103000000ef0a0a0a";
/// Bridge group-specific query for 239.10.10.10 (sent to the group).
pub(crate) const IGMPV3_GROUP_QUERY: &str = "01005e0a0a0a020000000001080046c0002400004000010224ecc6120001ef0a0a0a94040000110af363ef0a0a0a027d0000";
/// Host source join (IP_ADD_SOURCE_MEMBERSHIP) 232.1.1.1 from 198.18.0.11: ALLOW.
pub(crate) const IGMPV3_REPORT_ALLOW: &str = "01005e000016020000000002080046c0002c0000400001023de1c6120002e000001694040000220029dd0000000105000001e8010101c612000b";
/// Host source leave 232.1.1.1 from 198.18.0.11: BLOCK.
pub(crate) const IGMPV3_REPORT_BLOCK: &str = "01005e000016020000000002080046c0002c0000400001023de1c6120002e000001694040000220028dd0000000106000001e8010101c612000b";
/// Host answer to a general query: IS_IN({198.18.0.12}) for 232.1.1.1.
pub(crate) const IGMPV3_REPORT_IS_IN: &str = "01005e000016020000000002080046c0002c0000400001023de1c6120002e00000169404000022002ddc0000000101000001e8010101c612000c";
/// Bridge group-and-source-specific query for 232.1.1.1, source 198.18.0.11.
pub(crate) const IGMPV3_GROUP_SOURCE_QUERY: &str = "01005e010101020000000001080046c0002800004000010234fac6120001e801010194040000110a3d57e8010101027d0001c612000b";
/// Host IGMPv2 report for 239.10.10.10 (force_igmp_version 2).
pub(crate) const IGMPV2_REPORT: &str =
    "01005e0a0a0a020000000002080046c0002000004000010224efc6120002ef0a0a0a940400001600f0eaef0a0a0a";
/// Host IGMPv2 leave for 239.10.10.10.
pub(crate) const IGMPV2_LEAVE: &str =
    "01005e000002020000000002080046c000200000400001023e01c6120002e0000002940400001700efeaef0a0a0a";
/// The bridge's answer to that leave: a group-specific query sent to 224.0.0.1.
pub(crate) const IGMPV3_GROUP_QUERY_ALL_SYSTEMS: &str = "01005e000001020000000001080046c000240000400001023dffc6120001e000000194040000110af363ef0a0a0a027d0000";
/// Linux bridge IGMPv2 general query.
pub(crate) const IGMPV2_GENERAL_QUERY: &str =
    "01005e000001020000000001080046c000200000400001023e03c6120001e0000001940400001164ee9b00000000";
/// Bridge MLDv2 report with two records (its own solicited-node group and ff02::6a).
pub(crate) const MLDV2_REPORT_TWO_RECORDS: &str = "33330000001602000000000186dd6000000000380001fe80000000000000000000fffe000001ff0200000000000000000000000000163a000502000001008f006e850000000204000000ff0200000000000000000001ff00000104000000ff02000000000000000000000000006a";
/// Linux bridge MLDv2 general query.
pub(crate) const MLDV2_GENERAL_QUERY: &str = "33330000000102000000000186dd6000000000240001fe80000000000000000000fffe000001ff0200000000000000000000000000013a00050200000000820057962710000000000000000000000000000000000000027d0000";
/// Host IPV6_JOIN_GROUP ff0e::1234: TO_EX({}).
pub(crate) const MLDV2_REPORT_TO_EX: &str = "33330000001602000000000286dd6000000000240001fe80000000000000000000fffe000002ff0200000000000000000000000000163a000502000001008f005ec90000000104000000ff0e0000000000000000000000001234";
/// Host MCAST_JOIN_SOURCE_GROUP ff3e::4321 from 2001:2::11: ALLOW.
pub(crate) const MLDV2_REPORT_ALLOW: &str = "33330000001602000000000286dd6000000000340001fe80000000000000000000fffe000002ff0200000000000000000000000000163a000502000001008f000c870000000105000001ff3e000000000000000000000000432120010002000000000000000000000011";
/// Bridge MLDv2 group-and-source-specific query.
pub(crate) const MLDV2_GROUP_SOURCE_QUERY: &str = "33330000432102000000000186dd6000000000340001fe80000000000000000000fffe000001ff3e00000000000000000000000043213a000502000000008200d4dc03e80000ff3e0000000000000000000000004321027d000120010002000000000000000000000011";
/// Bridge MLDv2 group-specific query.
pub(crate) const MLDV2_GROUP_QUERY: &str = "33330000123402000000000186dd6000000000240001fe80000000000000000000fffe000001ff0e00000000000000000000000012343a000502000000008200573c03e80000ff0e0000000000000000000000001234027d0000";
/// Bridge MLDv2 group-specific query retransmission, S flag set.
pub(crate) const MLDV2_GROUP_QUERY_S_FLAG: &str = "33330000123402000000000186dd6000000000240001fe80000000000000000000fffe000001ff0e00000000000000000000000012343a0005020000000082004f3c03e80000ff0e00000000000000000000000012340a7d0000";
/// Host MLDv1 report for ff0e::1234 (force_mld_version 1).
pub(crate) const MLDV1_REPORT: &str = "33330000123402000000000286dd6000000000200001fe80000000000000000000fffe000002ff0e00000000000000000000000012343a0005020000010083005ca400000000ff0e0000000000000000000000001234";
/// Host MLDv1 done for ff0e::1234.
pub(crate) const MLDV1_DONE: &str = "33330000000202000000000286dd6000000000200001fe80000000000000000000fffe000002ff0200000000000000000000000000023a0005020000010084006de200000000ff0e0000000000000000000000001234";
/// Linux bridge MLDv1 general query.
pub(crate) const MLDV1_GENERAL_QUERY: &str = "33330000000102000000000186dd6000000000200001fe80000000000000000000fffe000001ff0200000000000000000000000000013a0005020000000082005a172710000000000000000000000000000000000000";

// --- tools/testing/selftests/net/forwarding/bridge_igmp.sh: the IGMP payloads it hands to
// mausezahn (group 239.10.10.10). ---
pub(crate) const SELFTEST_IGMP_IS_INC: &str =
    "22:00:9d:de:00:00:00:01:01:00:00:03:ef:0a:0a:0a:c0:00:02:01:c0:00:02:02:c0:00:02:03";
pub(crate) const SELFTEST_IGMP_IS_INC2: &str =
    "22:00:9d:c3:00:00:00:01:01:00:00:03:ef:0a:0a:0a:c0:00:02:0a:c0:00:02:0b:c0:00:02:0c";
pub(crate) const SELFTEST_IGMP_IS_INC3: &str =
    "22:00:5f:b4:00:00:00:01:01:00:00:02:ef:0a:0a:0a:c0:00:02:14:c0:00:02:1e";
pub(crate) const SELFTEST_IGMP_ALLOW: &str =
    "22:00:99:c3:00:00:00:01:05:00:00:03:ef:0a:0a:0a:c0:00:02:0a:c0:00:02:0b:c0:00:02:0c";
pub(crate) const SELFTEST_IGMP_ALLOW2: &str =
    "22:00:5b:b4:00:00:00:01:05:00:00:02:ef:0a:0a:0a:c0:00:02:14:c0:00:02:1e";
pub(crate) const SELFTEST_IGMP_IS_EXC: &str = "22:00:da:b6:00:00:00:01:02:00:00:04:ef:0a:0a:0a:c0:00:02:01:c0:00:02:02:c0:00:02:14:c0:00:02:15";
pub(crate) const SELFTEST_IGMP_IS_EXC2: &str =
    "22:00:5e:b4:00:00:00:01:02:00:00:02:ef:0a:0a:0a:c0:00:02:14:c0:00:02:1e";
pub(crate) const SELFTEST_IGMP_TO_EXC: &str =
    "22:00:9a:b1:00:00:00:01:04:00:00:03:ef:0a:0a:0a:c0:00:02:01:c0:00:02:14:c0:00:02:1e";
pub(crate) const SELFTEST_IGMP_BLOCK: &str =
    "22:00:98:b1:00:00:00:01:06:00:00:03:ef:0a:0a:0a:c0:00:02:01:c0:00:02:14:c0:00:02:1e";

// --- tools/testing/selftests/net/forwarding/bridge_mld.sh: whole frames (group ff02::cc). ---
pub(crate) const SELFTEST_MLD_IS_INC: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:54:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:8e:d9:00:00:00:01:01:00:00:03:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:01:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:02:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:03";
pub(crate) const SELFTEST_MLD_IS_INC2: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:54:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:8e:ac:00:00:00:01:01:00:00:03:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:10:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:11:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:12";
pub(crate) const SELFTEST_MLD_IS_INC3: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:44:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:bc:5a:00:00:00:01:01:00:00:02:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:20:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:30";
pub(crate) const SELFTEST_MLD_ALLOW: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:54:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:8a:ac:00:00:00:01:05:00:00:03:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:10:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:11:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:12";
pub(crate) const SELFTEST_MLD_ALLOW2: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:44:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:b8:5a:00:00:00:01:05:00:00:02:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:20:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:30";
pub(crate) const SELFTEST_MLD_IS_EXC: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:64:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:5f:d0:00:00:00:01:02:00:00:04:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:01:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:02:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:20:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:21";
pub(crate) const SELFTEST_MLD_IS_EXC2: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:44:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:bb:5a:00:00:00:01:02:00:00:02:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:20:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:30";
pub(crate) const SELFTEST_MLD_TO_EXC: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:54:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:8b:8e:00:00:00:01:04:00:00:03:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:01:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:20:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:30";
pub(crate) const SELFTEST_MLD_BLOCK: &str = "33:33:00:00:00:01:fe:54:00:04:5e:ba:86:dd:60:0a:2d:ae:00:54:00:01:fe:80:00:00:00:00:00:00:fc:54:00:ff:fe:04:5e:ba:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:01:3a:00:05:02:00:00:00:00:8f:00:89:8e:00:00:00:01:06:00:00:03:ff:02:00:00:00:00:00:00:00:00:00:00:00:00:00:cc:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:01:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:20:20:01:0d:b8:00:01:00:00:00:00:00:00:00:00:00:30";

fn igmp(s: &str) -> (Ipv4Addr, Ipv4Addr, bool, IgmpMessage<'static>) {
    let bytes: &'static [u8] = Box::leak(hex(s).into_boxed_slice());
    match inspect_frame(bytes).unwrap() {
        McastFrame::Igmp {
            src,
            dst,
            router_alert,
            msg,
        } => (src, dst, router_alert, msg),
        other => panic!("not IGMP: {other:?}"),
    }
}

fn mld(s: &str) -> (Ipv6Addr, Ipv6Addr, bool, MldMessage<'static>) {
    let bytes: &'static [u8] = Box::leak(hex(s).into_boxed_slice());
    match inspect_frame(bytes).unwrap() {
        McastFrame::Mld {
            src,
            dst,
            router_alert,
            msg,
        } => (src, dst, router_alert, msg),
        other => panic!("not MLD: {other:?}"),
    }
}

fn v3_records(msg: &IgmpMessage<'_>) -> Vec<(RecordType, Ipv4Addr, Vec<Ipv4Addr>)> {
    let IgmpMessage::ReportV3(r) = msg else {
        panic!("not an IGMPv3 report: {msg:?}")
    };
    r.records()
        .map(|g| (g.record_type(), g.group(), g.sources().collect()))
        .collect()
}

fn mld2_records(msg: &MldMessage<'_>) -> Vec<(RecordType, Ipv6Addr, Vec<Ipv6Addr>)> {
    let MldMessage::ReportV2(r) = msg else {
        panic!("not an MLDv2 report: {msg:?}")
    };
    r.records()
        .map(|g| (g.record_type(), g.group(), g.sources().collect()))
        .collect()
}

#[test]
fn kernel_igmpv3_queries() {
    let (src, dst, ra, msg) = igmp(IGMPV3_GENERAL_QUERY);
    assert_eq!((src, dst, ra), (v4("198.18.0.1"), v4("224.0.0.1"), true));
    let IgmpMessage::QueryV3(q) = msg else {
        panic!("{msg:?}")
    };
    assert!(q.group().is_unspecified());
    assert_eq!(q.max_resp_ms(), 10_000);
    assert_eq!((q.qrv(), q.qqi_secs(), q.s_flag()), (2, 125, false));
    assert_eq!(q.num_sources(), 0);
    assert!(q.verify_checksum());

    let (_, dst, _, msg) = igmp(IGMPV3_GROUP_QUERY);
    assert_eq!(dst, v4("239.10.10.10"));
    let IgmpMessage::QueryV3(q) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!(q.group(), v4("239.10.10.10"));
    assert_eq!(q.max_resp_ms(), 1_000);

    let (_, dst, _, msg) = igmp(IGMPV3_GROUP_QUERY_ALL_SYSTEMS);
    assert_eq!(dst, IPV4_ALL_SYSTEMS);
    let IgmpMessage::QueryV3(q) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!(q.group(), v4("239.10.10.10"));

    let (_, dst, _, msg) = igmp(IGMPV3_GROUP_SOURCE_QUERY);
    assert_eq!(dst, v4("232.1.1.1"));
    let IgmpMessage::QueryV3(q) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!(q.group(), v4("232.1.1.1"));
    assert_eq!(q.sources().collect::<Vec<_>>(), vec![v4("198.18.0.11")]);
}

#[test]
fn kernel_igmpv2_messages() {
    let (src, dst, ra, msg) = igmp(IGMPV2_GENERAL_QUERY);
    assert_eq!((src, dst, ra), (v4("198.18.0.1"), IPV4_ALL_SYSTEMS, true));
    assert!(matches!(
        msg,
        IgmpMessage::QueryV12 { max_resp_code: 100, group } if group.is_unspecified()
    ));
    let (src, dst, _, msg) = igmp(IGMPV2_REPORT);
    assert_eq!((src, dst), (v4("198.18.0.2"), v4("239.10.10.10")));
    assert!(matches!(msg, IgmpMessage::ReportV2 { group } if group == v4("239.10.10.10")));
    let (_, dst, _, msg) = igmp(IGMPV2_LEAVE);
    assert_eq!(dst, v4("224.0.0.2"));
    assert!(matches!(msg, IgmpMessage::Leave { group } if group == v4("239.10.10.10")));
}

#[test]
fn kernel_igmpv3_reports() {
    let rec = |s| v3_records(&igmp(s).3);
    use RecordType::*;
    let g = v4("239.10.10.10");
    let ssm = v4("232.1.1.1");
    assert_eq!(rec(IGMPV3_REPORT_TO_EX), vec![(ChangeToExclude, g, vec![])]);
    assert_eq!(rec(IGMPV3_REPORT_TO_IN), vec![(ChangeToInclude, g, vec![])]);
    assert_eq!(
        rec(IGMPV3_REPORT_ALLOW),
        vec![(AllowNewSources, ssm, vec![v4("198.18.0.11")])]
    );
    assert_eq!(
        rec(IGMPV3_REPORT_BLOCK),
        vec![(BlockOldSources, ssm, vec![v4("198.18.0.11")])]
    );
    assert_eq!(
        rec(IGMPV3_REPORT_IS_IN),
        vec![(ModeIsInclude, ssm, vec![v4("198.18.0.12")])]
    );
    let (src, dst, ra, _) = igmp(IGMPV3_REPORT_ALLOW);
    assert_eq!((src, dst, ra), (v4("198.18.0.2"), v4("224.0.0.22"), true));
}

#[test]
fn kernel_mld_messages() {
    let (src, dst, ra, msg) = mld(MLDV2_GENERAL_QUERY);
    assert_eq!(
        (src, dst, ra),
        (v6("fe80::ff:fe00:1"), IPV6_ALL_NODES, true)
    );
    let MldMessage::QueryV2(q) = msg else {
        panic!("{msg:?}")
    };
    assert!(q.group().is_unspecified());
    assert_eq!((q.max_resp_ms(), q.qrv(), q.qqi_secs()), (10_000, 2, 125));

    let (_, dst, _, msg) = mld(MLDV2_GROUP_QUERY);
    assert_eq!(dst, v6("ff0e::1234"));
    let MldMessage::QueryV2(q) = msg else {
        panic!("{msg:?}")
    };
    assert_eq!(
        (q.group(), q.max_resp_ms(), q.s_flag()),
        (v6("ff0e::1234"), 1000, false)
    );
    let MldMessage::QueryV2(q) = mld(MLDV2_GROUP_QUERY_S_FLAG).3 else {
        panic!()
    };
    assert!(q.s_flag());
    let MldMessage::QueryV2(q) = mld(MLDV2_GROUP_SOURCE_QUERY).3 else {
        panic!()
    };
    assert_eq!(q.group(), v6("ff3e::4321"));
    assert_eq!(q.sources().collect::<Vec<_>>(), vec![v6("2001:2::11")]);

    let (_, _, _, msg) = mld(MLDV1_GENERAL_QUERY);
    assert!(
        matches!(msg, MldMessage::QueryV1 { max_delay_ms: 10_000, group } if group.is_unspecified())
    );
    let (src, dst, _, msg) = mld(MLDV1_REPORT);
    assert_eq!((src, dst), (v6("fe80::ff:fe00:2"), v6("ff0e::1234")));
    assert!(matches!(msg, MldMessage::ReportV1 { group } if group == v6("ff0e::1234")));
    let (_, dst, _, msg) = mld(MLDV1_DONE);
    assert_eq!(dst, v6("ff02::2"));
    assert!(matches!(msg, MldMessage::Done { group } if group == v6("ff0e::1234")));

    use RecordType::*;
    assert_eq!(
        mld2_records(&mld(MLDV2_REPORT_TWO_RECORDS).3),
        vec![
            (ChangeToExclude, v6("ff02::1:ff00:1"), vec![]),
            (ChangeToExclude, v6("ff02::6a"), vec![])
        ]
    );
    assert_eq!(
        mld2_records(&mld(MLDV2_REPORT_TO_EX).3),
        vec![(ChangeToExclude, v6("ff0e::1234"), vec![])]
    );
    assert_eq!(
        mld2_records(&mld(MLDV2_REPORT_ALLOW).3),
        vec![(AllowNewSources, v6("ff3e::4321"), vec![v6("2001:2::11")])]
    );
}

#[test]
fn selftest_igmp_payloads() {
    let s = |a: &str| -> Vec<Ipv4Addr> { a.split(',').map(v4).collect() };
    let g = v4("239.10.10.10");
    use RecordType::*;
    let cases = [
        (
            SELFTEST_IGMP_IS_INC,
            ModeIsInclude,
            s("192.0.2.1,192.0.2.2,192.0.2.3"),
        ),
        (
            SELFTEST_IGMP_IS_INC2,
            ModeIsInclude,
            s("192.0.2.10,192.0.2.11,192.0.2.12"),
        ),
        (
            SELFTEST_IGMP_IS_INC3,
            ModeIsInclude,
            s("192.0.2.20,192.0.2.30"),
        ),
        (
            SELFTEST_IGMP_ALLOW,
            AllowNewSources,
            s("192.0.2.10,192.0.2.11,192.0.2.12"),
        ),
        (
            SELFTEST_IGMP_ALLOW2,
            AllowNewSources,
            s("192.0.2.20,192.0.2.30"),
        ),
        (
            SELFTEST_IGMP_IS_EXC,
            ModeIsExclude,
            s("192.0.2.1,192.0.2.2,192.0.2.20,192.0.2.21"),
        ),
        (
            SELFTEST_IGMP_IS_EXC2,
            ModeIsExclude,
            s("192.0.2.20,192.0.2.30"),
        ),
        (
            SELFTEST_IGMP_TO_EXC,
            ChangeToExclude,
            s("192.0.2.1,192.0.2.20,192.0.2.30"),
        ),
        (
            SELFTEST_IGMP_BLOCK,
            BlockOldSources,
            s("192.0.2.1,192.0.2.20,192.0.2.30"),
        ),
    ];
    for (bytes, kind, sources) in cases {
        let b = hex(bytes);
        let msg = IgmpMessage::parse(&b, IPV4_ALL_SYSTEMS).unwrap();
        assert_eq!(v3_records(&msg), vec![(kind, g, sources)], "{bytes}");
    }
}

#[test]
fn selftest_mld_frames() {
    let s = |a: &str| -> Vec<Ipv6Addr> {
        a.split(',')
            .map(|x| v6(&format!("2001:db8:1::{x}")))
            .collect()
    };
    let g = v6("ff02::cc");
    use RecordType::*;
    let cases = [
        (SELFTEST_MLD_IS_INC, ModeIsInclude, s("1,2,3")),
        (SELFTEST_MLD_IS_INC2, ModeIsInclude, s("10,11,12")),
        (SELFTEST_MLD_IS_INC3, ModeIsInclude, s("20,30")),
        (SELFTEST_MLD_ALLOW, AllowNewSources, s("10,11,12")),
        (SELFTEST_MLD_ALLOW2, AllowNewSources, s("20,30")),
        (SELFTEST_MLD_IS_EXC, ModeIsExclude, s("1,2,20,21")),
        (SELFTEST_MLD_IS_EXC2, ModeIsExclude, s("20,30")),
        (SELFTEST_MLD_TO_EXC, ChangeToExclude, s("1,20,30")),
        (SELFTEST_MLD_BLOCK, BlockOldSources, s("1,20,30")),
    ];
    for (bytes, kind, sources) in cases {
        let (src, dst, ra, msg) = mld(bytes);
        assert_eq!(
            (src, dst, ra),
            (v6("fe80::fc54:ff:fe04:5eba"), IPV6_ALL_NODES, true)
        );
        assert_eq!(mld2_records(&msg), vec![(kind, g, sources)], "{bytes}");
    }
}

/// Inserts an 802.1Q tag after the MAC addresses.
fn tagged(f: &[u8], vid: u16) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&vid.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

#[test]
fn tag_and_padding_change_nothing() {
    for s in [
        IGMPV2_REPORT,
        IGMPV3_REPORT_ALLOW,
        MLDV1_REPORT,
        MLDV2_REPORT_ALLOW,
    ] {
        let f = hex(s);
        let mut padded = f.clone();
        padded.resize(f.len().max(60) + 7, 0);
        for bytes in [tagged(&f, 10), padded.clone(), tagged(&padded, 4094)] {
            // The views' Debug text shows the bytes they hold: equal text, equal views.
            let a = format!("{:?}", inspect_frame(&f).unwrap());
            let b = format!("{:?}", inspect_frame(&bytes).unwrap());
            assert_eq!(a, b, "{s}");
        }
    }
}

#[test]
fn every_truncation_is_an_error_or_data_never_a_panic() {
    for s in [
        IGMPV3_GENERAL_QUERY,
        IGMPV3_REPORT_ALLOW,
        IGMPV3_GROUP_SOURCE_QUERY,
        IGMPV2_REPORT,
        MLDV2_REPORT_TWO_RECORDS,
        MLDV2_GROUP_SOURCE_QUERY,
        MLDV1_DONE,
        SELFTEST_MLD_IS_EXC,
    ] {
        let f = hex(s);
        assert!(matches!(
            inspect_frame(&f).unwrap(),
            McastFrame::Igmp { .. } | McastFrame::Mld { .. }
        ));
        for len in 0..f.len() {
            match inspect_frame(&f[..len]) {
                Err(_) | Ok(McastFrame::Data { .. }) | Ok(McastFrame::NotIp) => {}
                Ok(other) => panic!("{s} cut at {len} still parses as {other:?}"),
            }
        }
    }
}

#[test]
fn corrupted_checksums() {
    // IGMP: Linux drops (ip_mc_check_igmp -EINVAL).
    let mut f = hex(IGMPV3_REPORT_ALLOW);
    let last = f.len() - 1;
    f[last] ^= 0x01;
    assert_eq!(
        inspect_frame(&f).unwrap_err(),
        WireError::BadChecksum("igmp")
    );
    // IPv4 header checksum: dropped too.
    let mut f = hex(IGMPV2_REPORT);
    f[14 + 8] ^= 0x40; // TTL
    assert_eq!(
        inspect_frame(&f).unwrap_err(),
        WireError::BadChecksum("ipv4 header")
    );
    // ICMPv6: Linux forwards as data (ipv6_mc_check_mld -ENODATA).
    let mut f = hex(MLDV1_REPORT);
    let last = f.len() - 1;
    f[last] ^= 0x01;
    assert!(matches!(
        inspect_frame(&f).unwrap(),
        McastFrame::Data {
            router_advert: false,
            ..
        }
    ));
    // The pseudo-header counts: the same MLD bytes from another source fail.
    let mut f = hex(MLDV1_REPORT);
    f[14 + 8 + 15] ^= 0x01;
    assert!(matches!(
        inspect_frame(&f).unwrap(),
        McastFrame::Data { .. }
    ));
}

#[test]
fn linux_validity_rules() {
    // A general query not sent to 224.0.0.1 is malformed.
    let b = hex(IGMPV2_GENERAL_QUERY);
    let igmp = &b[14 + 24..];
    assert_eq!(
        IgmpMessage::parse(igmp, v4("239.1.1.1")).unwrap_err(),
        WireError::Malformed("igmp general query not sent to 224.0.0.1")
    );
    // An MLD query from a global address is malformed.
    let b = hex(MLDV1_GENERAL_QUERY);
    let icmp = &b[14 + 48..];
    let src = v6("2001:db8::1");
    let mut icmp = icmp.to_vec();
    let mut p = smoltcp::wire::Icmpv6Packet::new_unchecked(&mut icmp[..]);
    p.fill_checksum(&src, &IPV6_ALL_NODES);
    assert_eq!(
        MldMessage::parse(&icmp, &src, &IPV6_ALL_NODES).unwrap_err(),
        WireError::Malformed("mld query source not link-local")
    );
    // IPv6 without a hop-by-hop header is never MLD (Linux ipv6_mc_check_exthdrs).
    let mut f = hex(MLDV1_REPORT);
    f.drain(14 + 40..14 + 48);
    f[14 + 6] = IPPROTO_ICMPV6;
    f[14 + 5] = 24;
    assert!(matches!(
        inspect_frame(&f).unwrap(),
        McastFrame::Data { .. }
    ));
}

#[test]
fn unknown_igmp_types_and_router_discovery() {
    // An MRD advertisement (type 0x30) to 224.0.0.106 marks a router; to another group not.
    let mut msg = vec![0x30, 20, 0, 0, 0, 2, 0, 125];
    let c = !smoltcp::wire::checksum::data(&msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let f = ipv4_frame(v4("198.18.0.9"), IPV4_ALL_SNOOPERS, IPPROTO_IGMP, &msg);
    assert!(matches!(
        inspect_frame(&f).unwrap(),
        McastFrame::Data {
            router_advert: true,
            ..
        }
    ));
    let f = ipv4_frame(v4("198.18.0.9"), v4("224.0.0.1"), IPPROTO_IGMP, &msg);
    assert!(matches!(
        inspect_frame(&f).unwrap(),
        McastFrame::Data {
            router_advert: false,
            ..
        }
    ));
    // A PIMv2 hello to 224.0.0.13.
    let hello = [0x20, 0, 0, 0, 0, 1, 0, 2, 0, 105];
    let f = ipv4_frame(v4("198.18.0.9"), IPV4_ALL_PIM_ROUTERS, IPPROTO_PIM, &hello);
    assert!(matches!(
        inspect_frame(&f).unwrap(),
        McastFrame::Data {
            router_advert: true,
            ..
        }
    ));
    let join = [0x23, 0, 0, 0];
    let f = ipv4_frame(v4("198.18.0.9"), IPV4_ALL_PIM_ROUTERS, IPPROTO_PIM, &join);
    assert!(matches!(
        inspect_frame(&f).unwrap(),
        McastFrame::Data {
            router_advert: false,
            ..
        }
    ));
    // UDP data.
    let f = ipv4_frame(v4("198.18.0.9"), v4("239.1.2.3"), 17, &[0; 12]);
    match inspect_frame(&f).unwrap() {
        McastFrame::Data { src, dst, .. } => {
            assert_eq!(
                (src, dst),
                (v4("198.18.0.9").into(), v4("239.1.2.3").into())
            )
        }
        other => panic!("{other:?}"),
    }
    // ARP is not IP.
    let mut arp = hex(IGMPV2_REPORT);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert!(matches!(inspect_frame(&arp).unwrap(), McastFrame::NotIp));
}

/// An IPv4 frame (no options) for tests.
pub(crate) fn ipv4_frame(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x01, 0x00, 0x5e, 0, 0, 1, 2, 0, 0, 0, 0, 9, 0x08, 0x00];
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 1, proto, 0, 0];
    ip[2..4].copy_from_slice(&(20 + payload.len() as u16).to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = !smoltcp::wire::checksum::data(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    f
}

#[test]
fn code_encodings_round_trip() {
    for v in [0u32, 1, 100, 127, 128, 129, 1000, 3175, 31744] {
        let c = igmpv3_code_encode(v);
        let back = igmpv3_code_decode(c);
        assert!(
            back <= v && back * 17 / 16 + 8 >= v,
            "{v} -> {c:#x} -> {back}"
        );
    }
    assert_eq!(igmpv3_code_encode(100), 100);
    assert_eq!(igmpv3_code_decode(0x80), 128);
    assert_eq!(igmpv3_code_decode(0xff), 31744);
    assert_eq!(igmpv3_code_encode(1_000_000), 0xff);
    for v in [0u32, 1, 10_000, 32_767, 32_768, 100_000, 8_387_584] {
        let c = mldv2_mrc_encode(v);
        let back = mldv2_mrc_decode(c);
        assert!(
            back <= v && back + back / 4096 + 8 >= v,
            "{v} -> {c:#x} -> {back}"
        );
    }
    assert_eq!(mldv2_mrc_encode(10_000), 10_000);
    assert_eq!(mldv2_mrc_decode(0x8000), 32768);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = inspect_frame(&bytes);
        let _ = IgmpMessage::parse(&bytes, IPV4_ALL_SYSTEMS);
        let _ = MldMessage::parse(&bytes, &v6("fe80::1"), &IPV6_ALL_NODES);
        if let Ok(r) = IgmpV3Report::new_checked(&bytes[..]) {
            for g in r.records() { let _ = (g.group(), g.sources().count()); }
        }
        if let Ok(r) = MldV2Report::new_checked(&bytes[..]) {
            for g in r.records() { let _ = (g.group(), g.sources().count()); }
        }
        if let Ok(q) = IgmpV3Query::new_checked(&bytes[..]) { let _ = q.sources().count(); }
        if let Ok(q) = MldV2Query::new_checked(&bytes[..]) { let _ = q.sources().count(); }
    }

    /// Random mutations of real frames: no panic, and a frame that still parses as a report
    /// yields records whose sources lie inside the frame.
    #[test]
    fn mutated_real_frames_never_panic(
        which in 0usize..6,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        let src = [IGMPV3_REPORT_ALLOW, MLDV2_REPORT_TWO_RECORDS, SELFTEST_MLD_IS_EXC,
                   IGMPV3_GROUP_SOURCE_QUERY, MLDV2_GROUP_SOURCE_QUERY, MLDV1_DONE][which];
        let mut f = hex(src);
        for (at, x) in flips { let n = f.len(); f[at % n] ^= x; }
        match inspect_frame(&f) {
            Ok(McastFrame::Igmp { msg: IgmpMessage::ReportV3(r), .. }) => {
                for g in r.records() { prop_assert!(g.sources().count() <= f.len() / 4); }
            }
            Ok(McastFrame::Mld { msg: MldMessage::ReportV2(r), .. }) => {
                for g in r.records() { prop_assert!(g.sources().count() <= f.len() / 16); }
            }
            _ => {}
        }
    }
}

#[test]
fn ipv6_extension_header_chains() {
    // hop-by-hop (Router Alert) -> destination options -> ICMPv6: still MLD.
    let f = hex(MLDV1_REPORT);
    let (eth, rest) = f.split_at(14);
    let (ip, after) = rest.split_at(40);
    let (hbh, icmp) = after.split_at(8);
    let mut hbh = hbh.to_vec();
    hbh[0] = 60; // next: destination options
    let dst_opts = [IPPROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0];
    let mut ip = ip.to_vec();
    let plen = u16::from_be_bytes([ip[4], ip[5]]) + 8;
    ip[4..6].copy_from_slice(&plen.to_be_bytes());
    let frame = [eth, &ip, &hbh, &dst_opts, icmp].concat();
    assert!(matches!(
        inspect_frame(&frame).unwrap(),
        McastFrame::Mld {
            router_alert: true,
            msg: MldMessage::ReportV1 { .. },
            ..
        }
    ));
    // "No next header" after hop-by-hop: Linux drops it.
    let mut hbh2 = hbh.clone();
    hbh2[0] = 59;
    let frame = [eth, &ip, &hbh2, &dst_opts, icmp].concat();
    assert_eq!(
        inspect_frame(&frame).unwrap_err(),
        WireError::Malformed("ipv6 no next header")
    );
    // A later fragment: not MLD, data.
    let mut hbh3 = hbh.clone();
    hbh3[0] = 44;
    let frag = [IPPROTO_ICMPV6, 0, 0, 8, 0, 0, 0, 1];
    let frame = [eth, &ip, &hbh3, &frag, icmp].concat();
    assert!(matches!(
        inspect_frame(&frame).unwrap(),
        McastFrame::Data { .. }
    ));
    // needs_control: what the control thread must see.
    assert!(inspect_frame(&hex(MLDV1_REPORT)).unwrap().needs_control());
    let udp = ipv4_frame(v4("198.18.0.9"), v4("239.1.2.3"), 17, &[0; 12]);
    assert!(!inspect_frame(&udp).unwrap().needs_control());
}
