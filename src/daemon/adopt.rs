//! Whether a map the kernel already has can stay as it is (upstream's `select_action`):
//! at start and on `reconfigure`, a map whose live table matches the planned one in the
//! ways upstream compares is adopted without a load, so its counters, its active group
//! and the IO in flight are left alone. Pure: both tables arrive as values.

use crate::dm::table::MultipathTable;

/// What to do with a live map, given the table planned for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The live table is what would be loaded.
    Nothing,
    /// Only the kernel's next group differs from the planned best one: the 1-based
    /// group to switch to, by message.
    SwitchGroup(u32),
    /// A load is needed, for this reason (upstream's log wording).
    Reload(&'static str),
}

/// Compares as upstream does: queueing, the hardware handler (only when the kernel's
/// attached one is not kept, or the map has none), the other features, the selector
/// and the first path's repeat count, and the groups as sets of paths in any order. `next_group` is the kernel's next group (1-based, from the status).
///
/// One deliberate difference: the same groups in another order reload. Upstream then
/// switches to the planned best group's number, which in the kernel's order names
/// another group, and its record of the map disagrees with the kernel's table.
pub fn select_action(
    planned: &MultipathTable,
    live: &MultipathTable,
    next_group: u32,
    retain_hwhandler: bool,
) -> Action {
    let queues = |t: &MultipathTable| t.features.iter().any(|f| f == "queue_if_no_path");
    if queues(planned) != queues(live) {
        return Action::Reload("no_path_retry change");
    }
    if (!retain_hwhandler || live.hwhandler.is_empty()) && planned.hwhandler != live.hwhandler {
        return Action::Reload("hwhandler change");
    }
    if other_features(planned) != other_features(live) {
        return Action::Reload("features change");
    }
    let selector = |t: &MultipathTable| t.groups.first().map(|g| g.selector.clone());
    if selector(planned) != selector(live) {
        return Action::Reload("selector change");
    }
    // The kernel prints more per-path words than it was given (service-time adds the
    // relative throughput): only the first, the repeat count, is compared.
    let minio = |t: &MultipathTable| {
        t.groups
            .first()
            .and_then(|g| g.paths.first())
            .and_then(|p| p.args.first().cloned())
    };
    if minio(planned) != minio(live) {
        return Action::Reload("minio change");
    }
    let sets = |t: &MultipathTable| -> Vec<Vec<String>> {
        t.groups
            .iter()
            .map(|g| {
                let mut devs: Vec<String> = g.paths.iter().map(|p| p.dev.clone()).collect();
                devs.sort();
                devs
            })
            .collect()
    };
    let (p, l) = (sets(planned), sets(live));
    if p.len() != l.len() || p.iter().any(|g| !l.contains(g)) {
        return Action::Reload("path group topology change");
    }
    if p != l {
        return Action::Reload("path group order change");
    }
    if planned.initial_group != 0 && planned.initial_group != next_group {
        return Action::SwitchGroup(planned.initial_group);
    }
    Action::Nothing
}

/// Feature words other than the two upstream compares on their own.
fn other_features(t: &MultipathTable) -> Vec<&str> {
    t.features
        .iter()
        .map(String::as_str)
        .filter(|w| !matches!(*w, "queue_if_no_path" | "retain_attached_hw_handler"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> MultipathTable {
        MultipathTable::parse(text).expect("table parses")
    }

    /// As the kernel prints a service-time table: two words per path.
    const LIVE: &str =
        "1 queue_if_no_path 1 alua 2 1 service-time 0 2 2 8:0 1 1 8:16 1 1 service-time 0 2 2 8:32 1 1 8:48 1 1";

    #[test]
    fn the_planned_table_is_kept_as_the_kernel_prints_it() {
        let planned =
            table("1 queue_if_no_path 1 alua 2 1 service-time 0 2 1 8:0 1 8:16 1 service-time 0 2 1 8:32 1 8:48 1");
        assert_eq!(select_action(&planned, &table(LIVE), 1, true), Action::Nothing);
    }

    #[test]
    fn paths_in_another_order_within_a_group_are_the_same_group() {
        let planned =
            table("1 queue_if_no_path 1 alua 2 1 service-time 0 2 1 8:16 1 8:0 1 service-time 0 2 1 8:48 1 8:32 1");
        assert_eq!(select_action(&planned, &table(LIVE), 1, true), Action::Nothing);
    }

    #[test]
    fn a_path_in_another_group_reloads() {
        let planned = table(
            "1 queue_if_no_path 1 alua 3 1 service-time 0 2 1 8:0 1 8:16 1 service-time 0 1 1 8:32 1 service-time 0 1 1 8:48 1",
        );
        assert_eq!(
            select_action(&planned, &table(LIVE), 1, true),
            Action::Reload("path group topology change")
        );
    }

    #[test]
    fn groups_swapped_reload() {
        let planned =
            table("1 queue_if_no_path 1 alua 2 1 service-time 0 2 1 8:32 1 8:48 1 service-time 0 2 1 8:0 1 8:16 1");
        assert_eq!(
            select_action(&planned, &table(LIVE), 1, true),
            Action::Reload("path group order change")
        );
    }

    #[test]
    fn queueing_other_features_selector_and_minio_reload() {
        let live = table(LIVE);
        let cases = [
            (
                "0 1 alua 2 1 service-time 0 2 1 8:0 1 8:16 1 service-time 0 2 1 8:32 1 8:48 1",
                "no_path_retry change",
            ),
            (
                "3 queue_if_no_path pg_init_retries 50 1 alua 2 1 service-time 0 2 1 8:0 1 8:16 1 service-time 0 2 1 8:32 1 8:48 1",
                "features change",
            ),
            (
                "1 queue_if_no_path 1 alua 2 1 round-robin 0 2 1 8:0 1 8:16 1 round-robin 0 2 1 8:32 1 8:48 1",
                "selector change",
            ),
            (
                "1 queue_if_no_path 1 alua 2 1 service-time 0 2 1 8:0 2 8:16 2 service-time 0 2 1 8:32 2 8:48 2",
                "minio change",
            ),
        ];
        for (planned, why) in cases {
            assert_eq!(
                select_action(&table(planned), &live, 1, true),
                Action::Reload(why),
                "{planned}"
            );
        }
    }

    #[test]
    fn a_kept_handler_is_not_compared_unless_the_map_has_none() {
        let planned = table("1 queue_if_no_path 0 1 1 service-time 0 2 1 8:0 1 8:16 1");
        let live = table("1 queue_if_no_path 1 alua 1 1 service-time 0 2 1 8:0 1 8:16 1");
        assert_eq!(select_action(&planned, &live, 1, true), Action::Nothing);
        assert_eq!(
            select_action(&planned, &live, 1, false),
            Action::Reload("hwhandler change")
        );
        assert_eq!(
            select_action(&live, &planned, 1, true),
            Action::Reload("hwhandler change")
        );
    }

    #[test]
    fn another_next_group_is_switched_not_reloaded() {
        assert_eq!(
            select_action(&table(LIVE), &table(LIVE), 2, true),
            Action::SwitchGroup(1)
        );
    }
}
