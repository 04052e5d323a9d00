//! multipath-tools' pgpolicy test vectors (tests/pgpolicy.c), path groups given as
//! path indexes plus the group's marginal flag.

use Pgpolicy::*;
use multipathd::discovery::pgpolicy::{Group, PRIO_UNDEF, PathDesc, Pgpolicy, group_paths};

#[derive(Default, Clone)]
struct Setup {
    prio: Option<Vec<i32>>,
    marginal: Option<Vec<bool>>,
    tpg: Option<Vec<u16>>,
    serial: Option<Vec<&'static str>>,
    node: Option<Vec<&'static str>>,
}

fn run(n: usize, policy: Pgpolicy, s: &Setup, flag: bool) -> Vec<(Vec<usize>, bool)> {
    let descs: Vec<PathDesc> = (0..n)
        .map(|i| PathDesc {
            id: i,
            prio: s.prio.as_ref().map_or(10, |p| p[i]),
            serial: s.serial.as_ref().map_or("", |v| v[i]),
            tgt_node_name: s.node.as_ref().map_or("", |v| v[i]),
            tpg: s.tpg.as_ref().map(|v| v[i]),
            marginal: s.marginal.as_ref().is_some_and(|m| m[i]),
            enabled: true,
        })
        .collect();
    group_paths(policy, &descs, flag)
        .into_iter()
        .map(|g: Group| (g.paths, g.marginal))
        .collect()
}

fn m(v: &[u8]) -> Option<Vec<bool>> {
    Some(v.iter().map(|&x| x == 1).collect())
}
fn singles(order: &[usize], marginal: bool) -> Vec<(Vec<usize>, bool)> {
    order.iter().map(|&i| (vec![i], marginal)).collect()
}
fn gs(groups: &[(&[usize], bool)]) -> Vec<(Vec<usize>, bool)> {
    groups.iter().map(|(g, mm)| (g.to_vec(), *mm)).collect()
}
const MIXED: [i32; 8] = [7, 1, 3, 3, 5, 2, 8, 2];

#[test]
fn one_group() {
    let s = Setup::default();
    assert_eq!(run(8, Multibus, &s, false), gs(&[(&[0, 1, 2, 3, 4, 5, 6, 7], false)]));
    assert_eq!(run(4, Multibus, &s, false), gs(&[(&[0, 1, 2, 3], false)]));
    assert_eq!(run(1, Multibus, &s, false), gs(&[(&[0], false)]));
    assert_eq!(run(0, Multibus, &s, false), vec![]);
    let all = Setup {
        marginal: m(&[1; 8]),
        ..Setup::default()
    };
    assert_eq!(run(8, Multibus, &all, true), gs(&[(&[0, 1, 2, 3, 4, 5, 6, 7], true)]));
    let half = Setup {
        marginal: m(&[1, 0, 1, 0, 1, 1, 0, 0]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, Multibus, &half, true),
        gs(&[(&[1, 3, 6, 7], false), (&[0, 2, 4, 5], true)])
    );
    assert_eq!(
        run(8, Multibus, &half, false),
        gs(&[(&[0, 1, 2, 3, 4, 5, 6, 7], false)])
    );
    let one = Setup {
        marginal: m(&[0, 0, 0, 0, 0, 1, 0, 0]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, Multibus, &one, true),
        gs(&[(&[0, 1, 2, 3, 4, 6, 7], false), (&[5], true)])
    );
}

#[test]
fn one_path_per_group() {
    let s = Setup::default();
    assert_eq!(run(8, Failover, &s, false), singles(&[0, 1, 2, 3, 4, 5, 6, 7], false));
    let inc = Setup {
        prio: Some(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        ..Setup::default()
    };
    assert_eq!(run(8, Failover, &inc, false), singles(&[7, 6, 5, 4, 3, 2, 1, 0], false));
    let dec = Setup {
        prio: Some(vec![8, 7, 6, 5, 4, 3, 2, 1]),
        ..Setup::default()
    };
    assert_eq!(run(8, Failover, &dec, false), singles(&[0, 1, 2, 3, 4, 5, 6, 7], false));
    let mixed = Setup {
        prio: Some(MIXED.to_vec()),
        ..Setup::default()
    };
    assert_eq!(
        run(8, Failover, &mixed, false),
        singles(&[6, 0, 4, 2, 3, 5, 7, 1], false)
    );
    assert_eq!(run(4, Failover, &s, false), singles(&[0, 1, 2, 3], false));
    assert_eq!(run(1, Failover, &s, false), singles(&[0], false));
    assert_eq!(run(0, Failover, &s, false), vec![]);
    let all = Setup {
        marginal: m(&[1; 8]),
        ..mixed.clone()
    };
    assert_eq!(run(8, Failover, &all, true), singles(&[6, 0, 4, 2, 3, 5, 7, 1], true));
    let half = Setup {
        marginal: m(&[0, 1, 1, 0, 0, 0, 1, 1]),
        ..mixed
    };
    let mut want = singles(&[0, 4, 3, 5], false);
    want.extend(singles(&[6, 2, 7, 1], true));
    assert_eq!(run(8, Failover, &half, true), want);
}

#[test]
fn group_by_prio() {
    assert_eq!(
        run(8, GroupByPrio, &Setup::default(), false),
        gs(&[(&[0, 1, 2, 3, 4, 5, 6, 7], false)])
    );
    let inc = Setup {
        prio: Some(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByPrio, &inc, false),
        singles(&[7, 6, 5, 4, 3, 2, 1, 0], false)
    );
    let dec = Setup {
        prio: Some(vec![8, 7, 6, 5, 4, 3, 2, 1]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByPrio, &dec, false),
        singles(&[0, 1, 2, 3, 4, 5, 6, 7], false)
    );
    let mixed = Setup {
        prio: Some(MIXED.to_vec()),
        ..Setup::default()
    };
    let want = gs(&[
        (&[6], false),
        (&[0], false),
        (&[4], false),
        (&[2, 3], false),
        (&[5, 7], false),
        (&[1], false),
    ]);
    assert_eq!(run(8, GroupByPrio, &mixed, false), want);
    assert_eq!(run(8, GroupByPrio, &mixed, true), want);
    let two = Setup {
        prio: Some(vec![1, 2, 2, 1, 2, 1, 1, 2]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByPrio, &two, false),
        gs(&[(&[1, 2, 4, 7], false), (&[0, 3, 5, 6], false)])
    );
    let m4 = Setup {
        prio: Some(vec![2, 3, 1, 3]),
        ..Setup::default()
    };
    assert_eq!(
        run(4, GroupByPrio, &m4, false),
        gs(&[(&[1, 3], false), (&[0], false), (&[2], false)])
    );
    let t4 = Setup {
        prio: Some(vec![2, 1, 1, 2]),
        ..Setup::default()
    };
    assert_eq!(
        run(4, GroupByPrio, &t4, false),
        gs(&[(&[0, 3], false), (&[1, 2], false)])
    );
    assert_eq!(run(1, GroupByPrio, &Setup::default(), false), gs(&[(&[0], false)]));
    assert_eq!(run(0, GroupByPrio, &Setup::default(), false), vec![]);
}

#[test]
fn group_by_prio_marginal_and_undef() {
    let mixed = Setup {
        prio: Some(MIXED.to_vec()),
        ..Setup::default()
    };
    let all = Setup {
        marginal: m(&[1; 8]),
        ..mixed.clone()
    };
    assert_eq!(
        run(8, GroupByPrio, &all, true),
        gs(&[
            (&[6], true),
            (&[0], true),
            (&[4], true),
            (&[2, 3], true),
            (&[5, 7], true),
            (&[1], true)
        ])
    );
    let half = Setup {
        marginal: m(&[0, 0, 0, 1, 0, 1, 1, 1]),
        ..mixed.clone()
    };
    assert_eq!(
        run(8, GroupByPrio, &half, true),
        gs(&[
            (&[0], false),
            (&[4], false),
            (&[2], false),
            (&[1], false),
            (&[6], true),
            (&[3], true),
            (&[5, 7], true)
        ])
    );
    let one = Setup {
        marginal: m(&[0, 0, 0, 0, 0, 1, 0, 0]),
        ..mixed
    };
    assert_eq!(
        run(8, GroupByPrio, &one, true),
        gs(&[
            (&[6], false),
            (&[0], false),
            (&[4], false),
            (&[2, 3], false),
            (&[7], false),
            (&[1], false),
            (&[5], true)
        ])
    );
    let undef = Setup {
        prio: Some(vec![7, 1, 3, PRIO_UNDEF, 5, 2, 8, 2]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByPrio, &undef, false),
        gs(&[
            (&[6], false),
            (&[0], false),
            (&[4], false),
            (&[2], false),
            (&[5, 7], false),
            (&[1], false),
            (&[3], false)
        ])
    );
}

#[test]
fn group_by_tpg() {
    let same = Setup {
        tpg: Some(vec![1; 8]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByTpg, &same, false),
        gs(&[(&[0, 1, 2, 3, 4, 5, 6, 7], false)])
    );
    let diff = Setup {
        prio: Some(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        tpg: Some(vec![3, 5, 4, 1, 8, 6, 7, 2]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByTpg, &diff, false),
        singles(&[7, 6, 5, 4, 3, 2, 1, 0], false)
    );
    let mixed = Setup {
        prio: Some(vec![7, 2, 3, 3, 5, 2, 8, 2]),
        tpg: Some(vec![1, 2, 3, 3, 4, 2, 5, 6]),
        ..Setup::default()
    };
    let want = [
        (&[6][..], false),
        (&[0], false),
        (&[4], false),
        (&[2, 3], false),
        (&[1, 5], false),
        (&[7], false),
    ];
    assert_eq!(run(8, GroupByTpg, &mixed, false), gs(&want));
    let three = Setup {
        prio: Some(vec![1, 2, 2, 1, 2, 1, 1, 2]),
        tpg: Some(vec![1, 2, 2, 1, 3, 1, 1, 3]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByTpg, &three, false),
        gs(&[(&[1, 2], false), (&[4, 7], false), (&[0, 3, 5, 6], false)])
    );
    let two4 = Setup {
        prio: Some(vec![2, 1, 1, 2]),
        tpg: Some(vec![1, 2, 2, 1]),
        ..Setup::default()
    };
    assert_eq!(
        run(4, GroupByTpg, &two4, false),
        gs(&[(&[0, 3], false), (&[1, 2], false)])
    );
    assert_eq!(run(1, GroupByTpg, &Setup::default(), false), gs(&[(&[0], false)]));
    assert_eq!(run(0, GroupByTpg, &Setup::default(), false), vec![]);
    let all = Setup {
        marginal: m(&[1; 8]),
        ..mixed
    };
    let want_m: Vec<_> = want.iter().map(|(g, _)| (*g, true)).collect();
    assert_eq!(run(8, GroupByTpg, &all, true), gs(&want_m));
    let half = Setup {
        prio: Some(vec![7, 1, 3, 3, 3, 2, 8, 2]),
        tpg: Some(vec![1, 2, 3, 4, 5, 6, 7, 6]),
        marginal: m(&[0, 0, 0, 1, 0, 1, 1, 1]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByTpg, &half, true),
        gs(&[
            (&[0], false),
            (&[2], false),
            (&[4], false),
            (&[1], false),
            (&[6], true),
            (&[3], true),
            (&[5, 7], true)
        ])
    );
    let one = Setup {
        prio: Some(MIXED.to_vec()),
        tpg: Some(vec![1, 2, 3, 3, 4, 5, 6, 5]),
        marginal: m(&[0, 0, 0, 0, 0, 1, 0, 0]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByTpg, &one, true),
        gs(&[
            (&[6], false),
            (&[0], false),
            (&[4], false),
            (&[2, 3], false),
            (&[7], false),
            (&[1], false),
            (&[5], true)
        ])
    );
    let undef = Setup {
        prio: Some(vec![-1, 2, 3, -1, 5, 2, 8, 2]),
        tpg: Some(vec![1, 2, 3, 3, 4, 2, 5, 6]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByTpg, &undef, false),
        gs(&[
            (&[6], false),
            (&[4], false),
            (&[2, 3], false),
            (&[1, 5], false),
            (&[7], false),
            (&[0], false)
        ])
    );
}

#[test]
fn group_by_node_name() {
    let same = Setup {
        node: Some(vec!["a"; 8]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByNodeName, &same, false),
        gs(&[(&[0, 1, 2, 3, 4, 5, 6, 7], false)])
    );
    let inc = Setup {
        node: Some(vec!["a", "b", "c", "d", "e", "f", "g", "h"]),
        prio: Some(vec![1, 2, 3, 4, 5, 6, 7, 8]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByNodeName, &inc, false),
        singles(&[7, 6, 5, 4, 3, 2, 1, 0], false)
    );
    let three = Setup {
        node: Some(vec!["a", "b", "a", "c", "b", "c", "c", "a"]),
        prio: Some(vec![4, 1, 4, 1, 1, 1, 1, 4]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByNodeName, &three, false),
        gs(&[(&[0, 2, 7], false), (&[3, 5, 6], false), (&[1, 4], false)])
    );
    let two = Setup {
        node: Some(vec!["a", "a", "b", "a", "b", "b", "b", "a"]),
        prio: Some(vec![4, 1, 2, 1, 2, 2, 2, 1]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupByNodeName, &two, false),
        gs(&[(&[2, 4, 5, 6], false), (&[0, 1, 3, 7], false)])
    );
    let three4 = Setup {
        node: Some(vec!["a", "b", "c", "a"]),
        prio: Some(vec![3, 1, 3, 1]),
        ..Setup::default()
    };
    assert_eq!(
        run(4, GroupByNodeName, &three4, false),
        gs(&[(&[2], false), (&[0, 3], false), (&[1], false)])
    );
    let two4 = Setup {
        node: Some(vec!["a", "b", "b", "a"]),
        prio: Some(vec![2, 1, 1, 2]),
        ..Setup::default()
    };
    assert_eq!(
        run(4, GroupByNodeName, &two4, false),
        gs(&[(&[0, 3], false), (&[1, 2], false)])
    );
    let all = Setup {
        marginal: m(&[1; 8]),
        ..two.clone()
    };
    assert_eq!(
        run(8, GroupByNodeName, &all, true),
        gs(&[(&[2, 4, 5, 6], true), (&[0, 1, 3, 7], true)])
    );
    let half = Setup {
        marginal: m(&[1, 0, 1, 1, 0, 1, 0, 0]),
        ..two
    };
    assert_eq!(
        run(8, GroupByNodeName, &half, true),
        gs(&[(&[4, 6], false), (&[1, 7], false), (&[0, 3], true), (&[2, 5], true)])
    );
}

#[test]
fn group_by_serial() {
    let same = Setup {
        serial: Some(vec!["1"; 8]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupBySerial, &same, false),
        gs(&[(&[0, 1, 2, 3, 4, 5, 6, 7], false)])
    );
    let three = Setup {
        serial: Some(vec!["1", "2", "1", "3", "2", "3", "2", "1"]),
        prio: Some(vec![4, 1, 4, 3, 1, 3, 1, 4]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupBySerial, &three, false),
        gs(&[(&[0, 2, 7], false), (&[3, 5], false), (&[1, 4, 6], false)])
    );
    let two = Setup {
        serial: Some(vec!["1", "2", "1", "1", "2", "2", "1", "2"]),
        prio: Some(vec![3, 2, 2, 1, 2, 2, 1, 2]),
        ..Setup::default()
    };
    assert_eq!(
        run(8, GroupBySerial, &two, false),
        gs(&[(&[1, 4, 5, 7], false), (&[0, 2, 3, 6], false)])
    );
    let three4 = Setup {
        serial: Some(vec!["1", "2", "3", "2"]),
        prio: Some(vec![3, 1, 3, 1]),
        ..Setup::default()
    };
    assert_eq!(
        run(4, GroupBySerial, &three4, false),
        gs(&[(&[0], false), (&[2], false), (&[1, 3], false)])
    );
    let two4 = Setup {
        serial: Some(vec!["1", "2", "1", "2"]),
        prio: Some(vec![3, 1, 3, 1]),
        ..Setup::default()
    };
    assert_eq!(
        run(4, GroupBySerial, &two4, false),
        gs(&[(&[0, 2], false), (&[1, 3], false)])
    );
    let all = Setup {
        marginal: m(&[1; 8]),
        ..two.clone()
    };
    assert_eq!(
        run(8, GroupBySerial, &all, true),
        gs(&[(&[1, 4, 5, 7], true), (&[0, 2, 3, 6], true)])
    );
}

#[test]
fn disabled_paths_do_not_count_towards_group_priority() {
    let descs: Vec<PathDesc> = [(0, 50, false), (1, 10, true), (2, 10, true)]
        .into_iter()
        .map(|(id, prio, enabled)| PathDesc {
            id,
            prio,
            serial: "",
            tgt_node_name: "",
            tpg: None,
            marginal: false,
            enabled,
        })
        .collect();
    let g = group_paths(Failover, &descs, false);
    // The failed prio-50 path sorts after the enabled ones: its group has priority 0.
    assert_eq!(
        g.iter()
            .map(|g| (g.paths.clone(), g.prio, g.enabled_paths))
            .collect::<Vec<_>>(),
        vec![(vec![1], 10, 1), (vec![2], 10, 1), (vec![0], 0, 0)]
    );
}
