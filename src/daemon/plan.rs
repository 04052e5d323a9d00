//! Map assembly: from the configuration and a WWID's paths to the `multipath` table
//! the kernel should have. Pure: every fact about the paths arrives as a value.

use crate::config::Config;
use crate::config::propsel::{NoPathRetry, Selector};
use crate::discovery::pgpolicy::{self, Group, PathDesc, Pgpolicy};
use crate::dm::table::{MultipathTable, PathGroup, TablePath, add_feature, remove_feature};

/// What the planner needs to know about one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPath {
    pub dev: String,
    /// `major:minor`.
    pub devt: String,
    pub vendor: String,
    pub product: String,
    pub rev: String,
    pub serial: String,
    pub tgt_node_name: String,
    pub tpg: Option<u16>,
    /// Priority from the path's prioritizer.
    pub prio: i32,
    /// The prioritizer's name (`detect_pgpolicy` looks for alua/sysfs on every path).
    pub prio_name: String,
    /// Usable for IO (up or ghost); grouping orders groups by usable paths.
    pub usable: bool,
    pub marginal: bool,
    /// Device handler the kernel attached (`dh_state` in sysfs), e.g. `alua`.
    pub dh_state: Option<String>,
}

/// A map as it should be loaded, with the origin of the main choices for `-v3` logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapPlan {
    pub wwid: String,
    pub table: MultipathTable,
    /// Path groups as indexes into the planner's input, in table order.
    pub groups: Vec<Group>,
    pub pgpolicy: Pgpolicy,
    pub selector: String,
    pub no_path_retry: NoPathRetry,
    /// `retain_attached_hw_handler`: the kernel's attached handler is kept.
    pub retain_hwhandler: bool,
    pub log: Vec<String>,
}

/// Assembles the table for `wwid` over `paths` (at least one).
pub fn plan_map(cfg: &Config, wwid: &str, alias: &str, paths: &[PlanPath]) -> Option<MapPlan> {
    let first = paths.first()?;
    let sel = Selector::new(cfg, &first.vendor, &first.product, &first.rev, wwid);
    let mut log = Vec::new();

    let detected = sel.detect_pgpolicy().value && paths.iter().all(|p| p.prio_name == "alua" || p.prio_name == "sysfs");
    let (pgpolicy, origin) = if detected {
        // As upstream's detect_pgpolicy_use_tpg: the detected policy groups by target port group.
        let p = if sel.detect_pgpolicy_use_tpg().value {
            Pgpolicy::GroupByTpg
        } else {
            Pgpolicy::GroupByPrio
        };
        (p, "(setting: detected)")
    } else {
        let s = sel.pgpolicy();
        (Pgpolicy::from_name(&s.value).unwrap_or(Pgpolicy::Failover), s.origin)
    };
    log.push(format!("{alias}: path_grouping_policy = {} {origin}", pgpolicy.name()));

    let marginal_pg = sel.marginal_pathgroups().value != "off";
    let descs: Vec<PathDesc> = paths
        .iter()
        .enumerate()
        .map(|(id, p)| PathDesc {
            id,
            prio: p.prio,
            serial: &p.serial,
            tgt_node_name: &p.tgt_node_name,
            tpg: p.tpg,
            marginal: p.marginal,
            enabled: p.usable,
        })
        .collect();
    let groups = pgpolicy::group_paths(pgpolicy, &descs, marginal_pg);

    let selector = sel.selector();
    log.push(format!(
        "{alias}: path_selector = \"{}\" {}",
        selector.value, selector.origin
    ));
    let no_path_retry = sel.no_path_retry();
    let features = sel.features();
    // queue_if_no_path in `features` is upstream's old spelling of no_path_retry queue;
    // the table carries it only when no_path_retry asks for queueing.
    let had_queue = features.value.split_whitespace().any(|w| w == "queue_if_no_path");
    let npr = match no_path_retry.value {
        NoPathRetry::Undef if had_queue => NoPathRetry::Queue,
        v => v,
    };
    let mut feat = remove_feature(&features.value, "queue_if_no_path").unwrap_or_else(|_| "0".to_string());
    if matches!(npr, NoPathRetry::Queue | NoPathRetry::Retries(_)) {
        feat = add_feature(Some(&feat), "queue_if_no_path").unwrap_or(feat);
    }
    log.push(format!("{alias}: features = \"{feat}\" {}", features.origin));

    let hwhandler = select_hwhandler(&sel, paths);
    log.push(format!("{alias}: hardware_handler = \"{}\"", hwhandler.join(" ")));

    let minio = sel.rr_min_io_rq().value.max(1);
    let weighted = sel.rr_weight_priorities().value;
    let table = MultipathTable {
        features: feat.split_whitespace().skip(1).map(str::to_string).collect(),
        hwhandler,
        groups: groups
            .iter()
            .map(|g| PathGroup {
                selector: selector.value.clone(),
                paths: g
                    .paths
                    .iter()
                    .map(|&i| {
                        let p = &paths[i];
                        let w = if weighted {
                            minio.saturating_mul(p.prio.max(1) as u32)
                        } else {
                            minio
                        };
                        TablePath {
                            dev: p.devt.clone(),
                            args: vec![w.to_string()],
                        }
                    })
                    .collect(),
            })
            .collect(),
        initial_group: if groups.is_empty() {
            0
        } else {
            pgpolicy::best_group(&groups) as u32
        },
    };
    Some(MapPlan {
        wwid: wwid.to_string(),
        table,
        groups,
        pgpolicy,
        selector: selector.value,
        no_path_retry: npr,
        retain_hwhandler: sel.retain_hwhandler().value,
        log,
    })
}

/// The kernel's attached handler wins while `retain_attached_hw_handler` is on;
/// otherwise the configured one. Returned as table words (`["alua"]`, or none).
fn select_hwhandler(sel: &Selector, paths: &[PlanPath]) -> Vec<String> {
    if sel.retain_hwhandler().value
        && let Some(dh) = paths
            .iter()
            .filter_map(|p| p.dh_state.as_deref())
            .find(|d| !d.is_empty() && *d != "detached")
    {
        return vec![dh.to_string()];
    }
    let configured = sel.hwhandler().value;
    let mut words = configured.split_whitespace();
    match words.next().and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if n > 0 => words.take(n).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;

    fn path(dev: &str, devt: &str, prio: i32, prio_name: &str) -> PlanPath {
        PlanPath {
            dev: dev.into(),
            devt: devt.into(),
            vendor: "Linux".into(),
            product: "scsi_debug".into(),
            rev: "0191".into(),
            serial: "2000".into(),
            tgt_node_name: String::new(),
            tpg: None,
            prio,
            prio_name: prio_name.into(),
            usable: true,
            marginal: false,
            dh_state: Some("alua".into()),
        }
    }

    fn cfg(text: &str) -> Config {
        parse_str("multipath.conf", text).expect("config parses").config
    }

    /// The table Debian's multipathd 0.9.4 loads on the lab's 2-path scsi_debug LUN
    /// (vm-harness.md §4): ALUA detected, sysfs prio 50/10, group_by_prio.
    #[test]
    fn scsi_debug_alua_matches_the_reference_daemon() {
        let c = cfg("defaults {\n user_friendly_names yes\n}\n");
        let paths = [path("sda", "8:0", 10, "sysfs"), path("sdb", "8:16", 50, "sysfs")];
        let plan = plan_map(&c, "333333330000007d0", "mpatha", &paths).unwrap();
        assert_eq!(plan.pgpolicy, Pgpolicy::GroupByPrio);
        assert_eq!(
            plan.table.format().unwrap(),
            "0 1 alua 2 1 service-time 0 1 1 8:16 1 service-time 0 1 1 8:0 1"
        );
    }

    #[test]
    fn configured_policy_queueing_and_weights() {
        let c = cfg(
            "defaults {\n path_grouping_policy multibus\n no_path_retry 3\n rr_weight priorities\n detect_pgpolicy no\n retain_attached_hw_handler no\n}\n",
        );
        let paths = [path("sda", "8:0", 10, "const"), path("sdb", "8:16", 50, "const")];
        let plan = plan_map(&c, "w", "w", &paths).unwrap();
        assert_eq!(plan.no_path_retry, NoPathRetry::Retries(3));
        assert_eq!(
            plan.table.format().unwrap(),
            "1 queue_if_no_path 0 1 1 service-time 0 2 1 8:0 10 8:16 50"
        );
    }

    #[test]
    fn queue_if_no_path_feature_means_queue_unless_no_path_retry_says_otherwise() {
        let c = cfg("defaults {\n features \"1 queue_if_no_path\"\n detect_pgpolicy no\n}\n");
        let plan = plan_map(&c, "w", "w", &[path("sda", "8:0", 1, "const")]).unwrap();
        assert_eq!(plan.no_path_retry, NoPathRetry::Queue);
        assert_eq!(plan.table.features, vec!["queue_if_no_path".to_string()]);
        let c = cfg("defaults {\n features \"1 queue_if_no_path\"\n no_path_retry fail\n detect_pgpolicy no\n}\n");
        let plan = plan_map(&c, "w", "w", &[path("sda", "8:0", 1, "const")]).unwrap();
        assert!(plan.table.features.is_empty());
    }

    #[test]
    fn detected_policy_groups_by_tpg_with_detect_pgpolicy_use_tpg() {
        let mut paths = [path("sda", "8:0", 50, "alua"), path("sdb", "8:16", 50, "alua")];
        paths[0].tpg = Some(1);
        paths[1].tpg = Some(2);
        // Same priority, two target port groups: group_by_prio makes one group, by tpg two.
        let plan = plan_map(&cfg("defaults {\n detect_pgpolicy_use_tpg yes\n}\n"), "w", "w", &paths).unwrap();
        assert_eq!(plan.table.groups.len(), 2);
        assert!(
            plan.log
                .iter()
                .any(|l| l == "w: path_grouping_policy = group_by_tpg (setting: detected)")
        );
        let plan = plan_map(&cfg(""), "w", "w", &paths).unwrap();
        assert_eq!(plan.table.groups.len(), 1);
        assert!(
            plan.log
                .iter()
                .any(|l| l == "w: path_grouping_policy = group_by_prio (setting: detected)")
        );
    }

    #[test]
    fn no_paths_no_plan() {
        assert!(plan_map(&Config::default(), "w", "w", &[]).is_none());
    }
}
