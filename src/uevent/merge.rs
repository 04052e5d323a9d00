//! Pure filtering and merging of a batch of queued uevents before the daemon acts.
//!
//! During storms (LUN scans, fabric flaps) hundreds of events queue up; handling
//! them one by one would reload each map once per path. The daemon drains the
//! queue, runs `merge_batch` and acts once per returned entry.

use std::collections::{HashMap, HashSet};

use super::Uevent;

/// One decision for the daemon: `uevent` plus earlier events folded into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedUevent {
    /// The latest event of the merged set; its position in the batch order is kept.
    pub uevent: Uevent,
    /// Earlier events of the same action for paths with the same WWID, oldest first.
    pub merged: Vec<Uevent>,
}

impl MergedUevent {
    /// All events of this entry, oldest first.
    pub fn all(&self) -> impl Iterator<Item = &Uevent> {
        self.merged.iter().chain(std::iter::once(&self.uevent))
    }
}

fn is_path_event(e: &Uevent) -> bool {
    !e.kernel_name().starts_with("dm-") && !e.is_dm_multipath()
}

/// Filters and merges a batch (oldest first):
/// - events for devices `is_blacklisted(kernel name)` rejects are dropped;
/// - a later `remove` of a devpath drops every earlier event of that devpath;
/// - a `change` followed later by an `add` of the same devpath is dropped;
/// - `add` (or `remove`) events of paths (not dm devices) whose `wwid_of` is the same
///   WWID are merged into the last of them, so the daemon reloads that map once.
pub fn merge_batch(
    batch: Vec<Uevent>,
    is_blacklisted: &dyn Fn(&str) -> bool,
    wwid_of: &dyn Fn(&Uevent) -> Option<String>,
) -> Vec<MergedUevent> {
    let mut kept: Vec<Uevent> = Vec::with_capacity(batch.len());
    {
        let mut removed_later: HashSet<String> = HashSet::new();
        let mut added_later: HashSet<String> = HashSet::new();
        for e in batch.into_iter().rev() {
            if is_blacklisted(e.kernel_name()) {
                continue;
            }
            let superseded =
                removed_later.contains(&e.devpath) || (e.action == "change" && added_later.contains(&e.devpath));
            match e.action.as_str() {
                "remove" => {
                    removed_later.insert(e.devpath.clone());
                }
                "add" => {
                    added_later.insert(e.devpath.clone());
                }
                _ => {}
            }
            if !superseded {
                kept.push(e);
            }
        }
        kept.reverse();
    }

    let key_of = |e: &Uevent| -> Option<(String, String)> {
        if (e.action == "add" || e.action == "remove") && is_path_event(e) {
            wwid_of(e).filter(|w| !w.is_empty()).map(|w| (e.action.clone(), w))
        } else {
            None
        }
    };
    let keys: Vec<Option<(String, String)>> = kept.iter().map(key_of).collect();
    let mut last: HashMap<&(String, String), usize> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(k) = k {
            last.insert(k, i);
        }
    }
    let mut pending: HashMap<&(String, String), Vec<Uevent>> = HashMap::new();
    let mut out = Vec::new();
    for (i, e) in kept.into_iter().enumerate() {
        match &keys[i] {
            Some(k) if last.get(k) != Some(&i) => pending.entry(k).or_default().push(e),
            Some(k) => out.push(MergedUevent {
                uevent: e,
                merged: pending.remove(k).unwrap_or_default(),
            }),
            None => out.push(MergedUevent {
                uevent: e,
                merged: Vec::new(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn ev(action: &str, name: &str, wwid: Option<&str>) -> Uevent {
        let mut env = BTreeMap::new();
        env.insert("ACTION".to_owned(), action.to_owned());
        env.insert("DEVPATH".to_owned(), format!("/devices/x/block/{name}"));
        env.insert("DEVNAME".to_owned(), format!("/dev/{name}"));
        env.insert("SUBSYSTEM".to_owned(), "block".to_owned());
        if let Some(w) = wwid {
            env.insert("ID_SERIAL".to_owned(), w.to_owned());
        }
        Uevent::from_env(env).unwrap()
    }

    fn none(_: &str) -> bool {
        false
    }

    fn serial(e: &Uevent) -> Option<String> {
        e.get("ID_SERIAL").map(str::to_owned)
    }

    fn names(out: &[MergedUevent]) -> Vec<String> {
        out.iter()
            .map(|m| {
                let all: Vec<String> = m.all().map(|e| format!("{}:{}", e.action, e.kernel_name())).collect();
                all.join("+")
            })
            .collect()
    }

    #[test]
    fn blacklisted_devnodes_are_dropped() {
        let batch = vec![ev("add", "sda", None), ev("add", "loop0", None), ev("add", "sdb", None)];
        let out = merge_batch(batch, &|n| n.starts_with("loop"), &serial);
        assert_eq!(names(&out), ["add:sda", "add:sdb"]);
    }

    #[test]
    fn later_remove_cancels_earlier_events() {
        let batch = vec![
            ev("add", "sdb", None),
            ev("change", "sdb", None),
            ev("add", "sdc", None),
            ev("remove", "sdb", None),
            ev("add", "sdb", None),
        ];
        let out = merge_batch(batch, &none, &serial);
        assert_eq!(names(&out), ["add:sdc", "remove:sdb", "add:sdb"]);
    }

    #[test]
    fn change_before_add_is_dropped() {
        let batch = vec![
            ev("change", "sdb", None),
            ev("add", "sdb", None),
            ev("change", "sdb", None),
        ];
        let out = merge_batch(batch, &none, &serial);
        assert_eq!(names(&out), ["add:sdb", "change:sdb"]);
    }

    #[test]
    fn dm_change_events_are_never_merged() {
        let mut a = ev("change", "dm-0", None);
        a.env.insert("DM_UUID".into(), "mpath-W".into());
        let batch = vec![
            a.clone(),
            a.clone(),
            ev("add", "sdb", Some("W")),
            ev("add", "sdc", Some("W")),
        ];
        let out = merge_batch(batch, &none, &serial);
        assert_eq!(names(&out), ["change:dm-0", "change:dm-0", "add:sdb+add:sdc"]);
    }

    #[test]
    fn burst_of_300_path_adds_gives_one_entry_per_map() {
        // 100 LUNs x 3 paths, interleaved as a host scan delivers them.
        let mut batch = Vec::new();
        for host in 0..3 {
            for lun in 0..100 {
                batch.push(ev("add", &format!("sd{host}x{lun}"), Some(&format!("wwid{lun}"))));
            }
        }
        assert_eq!(batch.len(), 300);
        let out = merge_batch(batch, &none, &serial);
        assert_eq!(out.len(), 100);
        for (lun, m) in out.iter().enumerate() {
            let devs: Vec<&str> = m.all().map(Uevent::kernel_name).collect();
            assert_eq!(devs, [format!("sd0x{lun}"), format!("sd1x{lun}"), format!("sd2x{lun}")]);
        }

        let same: Vec<Uevent> = (0..300).map(|i| ev("add", &format!("sd{i}"), Some("W"))).collect();
        let out = merge_batch(same, &none, &serial);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].merged.len(), 299);
        assert_eq!(out[0].uevent.kernel_name(), "sd299");
    }

    #[test]
    fn adds_and_removes_of_one_wwid_stay_separate() {
        let batch = vec![
            ev("add", "sdb", Some("W")),
            ev("remove", "sdc", Some("W")),
            ev("add", "sdd", Some("W")),
            ev("remove", "sde", Some("W")),
            ev("add", "sdf", None),
        ];
        let out = merge_batch(batch, &none, &serial);
        assert_eq!(names(&out), ["add:sdb+add:sdd", "remove:sdc+remove:sde", "add:sdf"]);
    }
}
