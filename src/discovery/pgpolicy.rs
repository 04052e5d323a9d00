//! Path grouping policies: split a map's paths into path groups, then order the
//! groups the way multipath-tools does (non-marginal first, higher priority first,
//! more usable paths first; ties keep creation order).

/// Priority of a path whose prioritizer failed or has not run.
pub const PRIO_UNDEF: i32 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pgpolicy {
    Failover,
    Multibus,
    GroupBySerial,
    GroupByPrio,
    GroupByNodeName,
    GroupByTpg,
}

impl Pgpolicy {
    pub fn name(self) -> &'static str {
        match self {
            Pgpolicy::Failover => "failover",
            Pgpolicy::Multibus => "multibus",
            Pgpolicy::GroupBySerial => "group_by_serial",
            Pgpolicy::GroupByPrio => "group_by_prio",
            Pgpolicy::GroupByNodeName => "group_by_node_name",
            Pgpolicy::GroupByTpg => "group_by_tpg",
        }
    }

    /// Parse a policy name. Like multipath-tools, a value is accepted when it
    /// starts with a policy name (`failover_xyz` is failover).
    pub fn from_name(s: &str) -> Option<Pgpolicy> {
        [
            Pgpolicy::Failover,
            Pgpolicy::Multibus,
            Pgpolicy::GroupBySerial,
            Pgpolicy::GroupByPrio,
            Pgpolicy::GroupByNodeName,
            Pgpolicy::GroupByTpg,
        ]
        .into_iter()
        .find(|p| s.starts_with(p.name()))
    }
}

/// What grouping needs to know about a path. `id` is the caller's handle and is
/// what the resulting groups contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathDesc<'a> {
    pub id: usize,
    pub prio: i32,
    pub serial: &'a str,
    pub tgt_node_name: &'a str,
    /// ALUA target port group id, `None` if unknown.
    pub tpg: Option<u16>,
    pub marginal: bool,
    /// Path is usable (checker state up or ghost).
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub paths: Vec<usize>,
    /// Every path of the group is marginal.
    pub marginal: bool,
    /// Average priority of the enabled paths (see [`pg_priority`]).
    pub prio: i32,
    pub enabled_paths: usize,
}

/// Priority of a path group from (prio, enabled) of its paths: the integer average
/// over enabled paths with a defined priority; [`PRIO_UNDEF`] if enabled paths
/// exist but none has a priority; 0 without enabled paths. Also returns the
/// number of enabled paths.
pub fn pg_priority(paths: impl IntoIterator<Item = (i32, bool)>) -> (i32, usize) {
    let (mut sum, mut defined, mut enabled) = (0i64, 0i64, 0usize);
    for (prio, en) in paths {
        if en {
            enabled += 1;
            if prio != PRIO_UNDEF {
                sum += prio as i64;
                defined += 1;
            }
        }
    }
    let prio = if defined > 0 {
        (sum / defined) as i32
    } else if enabled > 0 {
        PRIO_UNDEF
    } else {
        0
    };
    (prio, enabled)
}

/// Groups by equal key, in order of first appearance, paths keeping their order.
fn group_by_key<'a, K: PartialEq>(paths: &[&PathDesc<'a>], key: impl Fn(&PathDesc<'a>) -> K) -> Vec<Vec<usize>> {
    let mut groups: Vec<(K, Vec<usize>)> = Vec::new();
    for p in paths {
        let k = key(p);
        match groups.iter_mut().find(|(gk, _)| *gk == k) {
            Some((_, g)) => g.push(p.id),
            None => groups.push((k, vec![p.id])),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

fn apply(policy: Pgpolicy, paths: &[&PathDesc]) -> Vec<Vec<usize>> {
    if paths.is_empty() {
        return Vec::new();
    }
    match policy {
        Pgpolicy::Failover => paths.iter().map(|p| vec![p.id]).collect(),
        Pgpolicy::Multibus => vec![paths.iter().map(|p| p.id).collect()],
        Pgpolicy::GroupBySerial => group_by_key(paths, |p| p.serial),
        Pgpolicy::GroupByPrio => group_by_key(paths, |p| p.prio),
        Pgpolicy::GroupByNodeName => group_by_key(paths, |p| p.tgt_node_name),
        Pgpolicy::GroupByTpg => group_by_key(paths, |p| p.tpg),
    }
}

/// Build and order the path groups of a map. With `marginal_pathgroups`, marginal
/// paths are grouped separately (when some but not all paths are marginal) and
/// their groups go last.
pub fn group_paths(policy: Pgpolicy, paths: &[PathDesc], marginal_pathgroups: bool) -> Vec<Group> {
    let all: Vec<&PathDesc> = paths.iter().collect();
    let (normal, marginal): (Vec<&PathDesc>, Vec<&PathDesc>) = all.iter().partition(|p| !p.marginal);
    let raw = if marginal_pathgroups && !normal.is_empty() && !marginal.is_empty() {
        let mut g = apply(policy, &normal);
        g.extend(apply(policy, &marginal));
        g
    } else {
        apply(policy, &all)
    };
    let by_id = |id: usize| paths.iter().find(|p| p.id == id);
    let mut groups: Vec<Group> = raw
        .into_iter()
        .map(|ids| {
            let members: Vec<&PathDesc> = ids.iter().filter_map(|&i| by_id(i)).collect();
            let (prio, enabled_paths) = pg_priority(members.iter().map(|p| (p.prio, p.enabled)));
            let marginal = !members.is_empty() && members.iter().all(|p| p.marginal);
            Group {
                paths: ids,
                marginal,
                prio,
                enabled_paths,
            }
        })
        .collect();
    sort_groups(&mut groups);
    groups
}

/// Stable order: non-marginal first, then priority descending, then more enabled
/// paths first.
pub fn sort_groups(groups: &mut [Group]) {
    groups.sort_by(|a, b| {
        a.marginal
            .cmp(&b.marginal)
            .then(b.prio.cmp(&a.prio))
            .then(b.enabled_paths.cmp(&a.enabled_paths))
    });
}

/// The group the kernel should use first, 1-based as in the DM table. Among
/// groups with enabled paths: the first non-marginal group beats every marginal
/// one; otherwise a higher priority wins (starting from priority 0), then more
/// enabled paths; the earlier group wins full ties. 1 when nothing qualifies.
pub fn best_group(groups: &[Group]) -> usize {
    let (mut best, mut max_prio, mut max_enabled, mut seen_normal) = (1, 0, 1, false);
    for (i, g) in groups.iter().enumerate() {
        if (g.marginal && seen_normal) || g.enabled_paths == 0 {
            continue;
        }
        let take = if !g.marginal && !seen_normal {
            seen_normal = true;
            true
        } else {
            g.prio > max_prio || (g.prio == max_prio && g.enabled_paths > max_enabled)
        };
        if take {
            (best, max_prio, max_enabled) = (i + 1, g.prio, g.enabled_paths);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_prefix_match() {
        for p in [
            Pgpolicy::Failover,
            Pgpolicy::Multibus,
            Pgpolicy::GroupBySerial,
            Pgpolicy::GroupByPrio,
            Pgpolicy::GroupByNodeName,
            Pgpolicy::GroupByTpg,
        ] {
            assert_eq!(Pgpolicy::from_name(p.name()), Some(p));
        }
        assert_eq!(Pgpolicy::from_name("multibus_extra"), Some(Pgpolicy::Multibus));
        assert_eq!(Pgpolicy::from_name("group_by"), None);
        assert_eq!(Pgpolicy::from_name(""), None);
    }

    #[test]
    fn pg_priority_rules() {
        assert_eq!(pg_priority([(50, true), (10, true)]), (30, 2));
        assert_eq!(pg_priority([(7, true), (2, true)]), (4, 2));
        assert_eq!(pg_priority([(3, true), (PRIO_UNDEF, true)]), (3, 2));
        assert_eq!(pg_priority([(PRIO_UNDEF, true)]), (PRIO_UNDEF, 1));
        assert_eq!(pg_priority([(50, false)]), (0, 0));
        assert_eq!(pg_priority([(50, false), (10, true)]), (10, 1));
        assert_eq!(pg_priority(std::iter::empty()), (0, 0));
    }

    fn g(paths: &[usize], marginal: bool, prio: i32, enabled: usize) -> Group {
        Group {
            paths: paths.to_vec(),
            marginal,
            prio,
            enabled_paths: enabled,
        }
    }

    #[test]
    fn best_group_choice() {
        assert_eq!(best_group(&[]), 1);
        assert_eq!(best_group(&[g(&[0], false, 50, 0), g(&[1], false, 10, 1)]), 2);
        assert_eq!(best_group(&[g(&[0], false, 10, 1), g(&[1], false, 10, 2)]), 2);
        assert_eq!(best_group(&[g(&[0], false, 10, 2), g(&[1], false, 10, 2)]), 1);
        assert_eq!(best_group(&[g(&[0], true, 50, 1), g(&[1], false, 1, 1)]), 2);
        assert_eq!(best_group(&[g(&[0], false, 1, 1), g(&[1], true, 50, 1)]), 1);
        assert_eq!(best_group(&[g(&[0], true, 1, 1), g(&[1], true, 50, 1)]), 2);
        assert_eq!(best_group(&[g(&[0], false, 0, 0), g(&[1], false, 0, 0)]), 1);
        // A marginal group needs a priority above 0 to be picked over group 1.
        assert_eq!(best_group(&[g(&[0], false, 50, 0), g(&[1], true, PRIO_UNDEF, 1)]), 1);
        assert_eq!(best_group(&[g(&[0], false, 50, 0), g(&[1], true, 5, 1)]), 2);
    }
}
