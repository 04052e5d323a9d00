//! How the `show` views are built: from the owner's records only, no sysfs or DM
//! reads (except `show devices`, which lists sysfs).

use std::time::Instant;

use crate::cli::format as fmt;
use crate::discovery;

use super::{Map, Owner, Path};

impl Owner {
    /// Every path, in SCSI address order as upstream's sysfs enumeration lists them.
    pub(super) fn path_views(&self) -> Vec<fmt::PathView> {
        let mut v: Vec<&Path> = self.paths.values().collect();
        v.sort_by_key(|p| p.scsi_order());
        v.into_iter().map(|p| self.path_view(p)).collect()
    }

    pub(super) fn map_views(&self) -> Vec<fmt::MapView> {
        self.maps.values().map(|m| self.map_view(m)).collect()
    }

    /// `show paths` (also with a format): one row per path.
    pub(super) fn paths_table(&self, format: &str, raw: bool) -> String {
        fmt::paths_table(&self.path_views(), format, raw)
    }

    /// `show maps` (also status, stats or a format): one row per map.
    pub(super) fn maps_table(&self, format: &str, raw: bool) -> String {
        fmt::maps_table(&self.map_views(), format, raw)
    }

    /// `show marginal`: nothing at all when no path is under watch.
    pub(super) fn marginal_text(&self) -> String {
        let rows = self.marginal.statuses(Instant::now());
        let mut out = String::new();
        if !rows.is_empty() {
            out.push_str(crate::marginal::status::header().trim_end());
            out.push('\n');
            for r in &rows {
                out.push_str(crate::marginal::status::format_line(r).trim_end());
                out.push('\n');
            }
        }
        out
    }

    /// `show status`: path counts by checker state.
    pub(super) fn status_text(&self) -> String {
        let states: Vec<fmt::CheckerState> = self.paths.values().map(|p| p.rec.state).collect();
        fmt::status(&states, self.paths.len(), false)
    }

    pub(super) fn path_view(&self, p: &Path) -> fmt::PathView {
        let marginal = self
            .marginal
            .status(&p.info.dev, Instant::now())
            .is_some_and(|s| s.marginal)
            || p.rec.marginal;
        fmt::PathView {
            dev: p.info.dev.clone(),
            dev_t: p.rec.dev_t.clone(),
            wwid: p.info.wwid.clone().unwrap_or_default(),
            hcil: Some(p.info.hcil),
            dm_state: p.rec.dm_state,
            offline: p.offline,
            state: p.rec.state,
            vendor: p.info.vendor.clone(),
            product: p.info.product.clone(),
            rev: p.info.rev.clone(),
            checker: Some(p.checker.name().to_string()),
            tick: i64::from(p.rec.tick),
            checkint: i64::from(p.rec.checkint),
            priority: p.prio,
            size: p.info.size,
            serial: p.info.serial.clone(),
            marginal,
            map: p.map.clone(),
            add_when_online: false,
            host_wwnn: None,
            target_wwnn: None,
            host_wwpn: None,
            target_wwpn: None,
            host_adapter: None,
            vpd_data: None,
            failures: p.rec.path_failures as i32,
            protocol: p.info.protocol.clone(),
            init: fmt::InitState::Ok,
            tpg_id: None,
            max_sectors_kb: None,
        }
    }

    pub(super) fn map_view(&self, m: &Map) -> fmt::MapView {
        let groups = m
            .table
            .groups
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                let paths: Vec<fmt::PathView> = g
                    .paths
                    .iter()
                    .filter_map(|tp| self.path_by_devt(&tp.dev))
                    .map(|p| self.path_view(p))
                    .collect();
                let state = match m
                    .status
                    .as_ref()
                    .and_then(|s| s.groups.get(gi))
                    .map(|g| g.state.as_char())
                {
                    Some('A') => fmt::PgState::Active,
                    Some('E') => fmt::PgState::Enabled,
                    Some('D') => fmt::PgState::Disabled,
                    _ => fmt::PgState::Undef,
                };
                let (priority, _) = discovery::pgpolicy::pg_priority(paths.iter().map(|p| {
                    (
                        p.priority,
                        matches!(p.state, fmt::CheckerState::Up | fmt::CheckerState::Ghost),
                    )
                }));
                fmt::PathGroupView {
                    priority,
                    state,
                    marginal: paths.iter().all(|p| p.marginal) && !paths.is_empty(),
                    paths,
                }
            })
            .collect();
        fmt::MapView {
            name: m.name.clone(),
            wwid: m.wwid.clone(),
            dm: Some(fmt::DmInfo {
                minor: m.minor,
                read_only: false,
                suspended: false,
            }),
            failback: m.policy.failback,
            failback_tick: m.rec.failback_tick,
            no_path_retry: m.rec.no_path_retry,
            retry_tick: m.rec.retry_tick,
            size: m.sectors,
            features: counted(&m.table.features),
            hwhandler: counted(&m.table.hwhandler),
            action: m.action.clone(),
            path_faults: m.rec.stat_path_failures as u32,
            switch_grp: m.rec.stat_switch_group as u32,
            map_loads: m.loads,
            total_q_time: m.rec.stat_total_queueing_time as u32,
            q_timeouts: m.rec.stat_queueing_timeouts as u32,
            map_failures: m.rec.stat_map_failures as u32,
            selector: m.selector.clone(),
            vpd_data: None,
            max_sectors_kb: None,
            groups,
        }
    }

    /// Every block device in sysfs and what the daemon makes of it (`show devices`).
    pub(super) fn devices(&self) -> Vec<(String, fmt::DeviceStatus)> {
        let bl = self.blacklist();
        let mut names: Vec<String> = std::fs::read_dir(self.env.sysfs.sys("block"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let st = if self.paths.contains_key(&n) {
                    fmt::DeviceStatus::Monitored
                } else if bl.filter_devnode(&n) > 0 {
                    fmt::DeviceStatus::Blacklisted
                } else {
                    fmt::DeviceStatus::Unmonitored
                };
                (n, st)
            })
            .collect()
    }

    /// The blacklist in force, each rule marked as from the configuration or built in.
    pub(super) fn blacklist_view(&self) -> fmt::BlacklistView {
        let (bl, ex) = crate::config::blacklist::effective_lists(&self.cfg, false);
        let user = (&self.cfg.blacklist, &self.cfg.exceptions);
        let pats = |list: &[crate::config::model::Pattern], mine: &[crate::config::model::Pattern]| {
            list.iter()
                .map(|p| fmt::BlacklistRule {
                    text: p.text.clone(),
                    from_config: mine.iter().any(|m| m.text == p.text),
                })
                .collect::<Vec<_>>()
        };
        let dev_text = |d: &crate::config::model::BlacklistDevice| {
            format!(
                "{}:{}",
                d.vendor.as_ref().map_or("", |p| p.text.as_str()),
                d.product.as_ref().map_or("", |p| p.text.as_str())
            )
        };
        let devs = |list: &[crate::config::model::BlacklistDevice], mine: &[crate::config::model::BlacklistDevice]| {
            list.iter()
                .map(|d| fmt::BlacklistRule {
                    text: dev_text(d),
                    from_config: mine.iter().any(|m| dev_text(m) == dev_text(d)),
                })
                .collect::<Vec<_>>()
        };
        fmt::BlacklistView {
            devnode: (pats(&bl.devnode, &user.0.devnode), pats(&ex.devnode, &user.1.devnode)),
            property: (
                pats(&bl.property, &user.0.property),
                pats(&ex.property, &user.1.property),
            ),
            protocol: (
                pats(&bl.protocol, &user.0.protocol),
                pats(&ex.protocol, &user.1.protocol),
            ),
            wwid: (pats(&bl.wwid, &user.0.wwid), pats(&ex.wwid, &user.1.wwid)),
            device: (devs(&bl.device, &user.0.device), devs(&ex.device, &user.1.device)),
        }
    }
}

fn counted(words: &[String]) -> String {
    if words.is_empty() {
        "0".to_string()
    } else {
        format!("{} {}", words.len(), words.join(" "))
    }
}
