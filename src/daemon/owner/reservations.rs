//! Persistent reservations: which paths get the map's key registered, and what a
//! registration's result says about the map. The registration itself (SCSI PR
//! commands) runs on a checker worker after the path's next usable check
//! ([`crate::persist::PrJob`]), so it is in place before that check's verdict
//! reinstates the path, as upstream orders it.

use std::sync::Arc;

use crate::checkers::state::PathState;
use crate::config::propsel::Selector;
use crate::discovery::prkeys::PrkeysFile;
use crate::discovery::sysfs::Bus;
use crate::persist::{PrJob, PrOutcome};

use super::{Map, Owner};

/// A map's registration status (`prflag`) and whether its key holds the LUN's
/// reservation (`prhold`): upstream's three values for both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum PrValue {
    /// Not known yet: the next registration reads the keys (the reservation) to find out.
    #[default]
    Unknown,
    /// Not registered (not holding), or unset by `unsetprstatus` (`unsetprhold`).
    Unset,
    Set,
}

impl PrValue {
    /// As `getprstatus` and `getprhold` answer it.
    pub(super) fn reply(self) -> &'static str {
        match self {
            PrValue::Unknown => "unknown\n",
            PrValue::Unset => "unset\n",
            PrValue::Set => "set\n",
        }
    }
}

/// A key as the configuration or `setprkey` gives it (`0x<hex>[:aptpl]`): the value
/// and whether APTPL goes with it. `None` for no key (0 is none, as upstream).
pub(super) fn parse_key(key: &str) -> Option<(u64, bool)> {
    let (hex, aptpl) = match key.strip_suffix(":aptpl") {
        Some(h) => (h, true),
        None => (key, false),
    };
    let digits = hex.strip_prefix("0x").or_else(|| hex.strip_prefix("0X")).unwrap_or(hex);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    u64::from_str_radix(digits, 16)
        .ok()
        .filter(|&k| k != 0)
        .map(|k| (k, aptpl))
}

/// A key as `getprkey` prints it.
pub(super) fn format_key(key: u64, aptpl: bool) -> String {
    format!("0x{key:x}{}", if aptpl { ":aptpl" } else { "" })
}

impl Owner {
    pub(super) fn prkeys_file(&self) -> PrkeysFile {
        PrkeysFile::new(self.env.state_dir.join("prkeys"))
    }

    /// With `reservation_key file`, the key the prkeys file holds for `wwid`, read
    /// when a map is set up, as upstream reads it.
    pub(super) fn file_key(&self, wwid: &str) -> Option<String> {
        let sel = Selector::new(&self.cfg, "", "", "", wwid);
        if sel.reservation_key()?.value != "file" {
            return None;
        }
        match self.prkeys_file().get(wwid) {
            Ok(k) => k.map(|(k, aptpl)| format_key(k, aptpl)),
            Err(e) => {
                log::warn!("{wwid}: cannot read the prkeys file: {e}");
                None
            }
        }
    }

    /// The map's key: the one `setprkey` gave or the prkeys file held (with
    /// `reservation_key file`), else the configured value.
    pub(super) fn map_key(&self, m: &Map) -> Option<(u64, bool)> {
        match &m.prkey {
            Some(k) => parse_key(k),
            None => self
                .reservation_key(m)
                .filter(|k| k != "file")
                .and_then(|k| parse_key(&k)),
        }
    }

    /// The registration a path's next usable check makes, if it is due and its map
    /// takes part: a key, and a status not unset (or unset after it was registered
    /// once: the path's registration is then cleared).
    pub(super) fn pr_job(&self, dev: &str) -> Option<Arc<PrJob>> {
        let p = self
            .paths
            .get(dev)
            .filter(|p| p.pr_pending && p.info.bus == Bus::Scsi)?;
        let m = self.maps.get(p.map.as_deref()?)?;
        let unset = m.prflag == PrValue::Unset;
        if unset && !m.ever_registered_pr {
            return None;
        }
        // After the cheap test above: a map without a key keeps its paths' registration
        // pending, and this runs at every check (the key's selection walks the hardware table).
        let (key, aptpl) = self.map_key(m)?;
        Some(Arc::new(PrJob {
            dev: self.env.dev_dir.join(dev),
            key,
            aptpl,
            unset,
            ever_registered: m.ever_registered_pr,
            read_hold: m.prhold == PrValue::Unknown,
        }))
    }

    /// Every usable path of `map` registers at its next check, which runs now
    /// (upstream's registration of a map's active paths).
    pub(super) fn register_active_paths(&mut self, map: &str) {
        let Some(m) = self.maps.get(map) else { return };
        let devs: Vec<String> = m
            .paths
            .iter()
            .filter(|d| {
                self.paths
                    .get(*d)
                    .is_some_and(|p| matches!(p.rec.state, PathState::Up | PathState::Ghost))
            })
            .cloned()
            .collect();
        self.register_paths(&devs);
    }

    /// The paths register at their next check, which runs now.
    pub(super) fn register_paths(&mut self, devs: &[String]) {
        for d in devs {
            if let Some(p) = self.paths.get_mut(d) {
                p.pr_pending = true;
            }
            self.schedule_check(d, 0);
        }
    }

    /// A registration's result: the map's status follows it, and a map found
    /// registered that was not has its other usable paths registered too.
    pub(super) fn on_pr_outcome(&mut self, dev: &str, outcome: PrOutcome) {
        let Some(p) = self.paths.get_mut(dev) else { return };
        p.pr_pending = false;
        let Some(map) = p.map.clone() else { return };
        let Some(m) = self.maps.get_mut(&map) else { return };
        let members = m.paths.clone();
        log::debug!("{dev}: {map}: reservation registration: {outcome:?}");
        match outcome.registered() {
            Some(true) => {
                let was_set = m.prflag == PrValue::Set;
                m.prflag = PrValue::Set;
                m.ever_registered_pr = true;
                // What the path read of the reservation, unless mpathpersist has said
                // since (`setprhold`, `unsetprhold`).
                if let Some(holds) = outcome.hold()
                    && m.prhold == PrValue::Unknown
                {
                    m.prhold = if holds { PrValue::Set } else { PrValue::Unset };
                    log::debug!("{map}: the key holds the reservation: {holds}");
                }
                if !was_set {
                    log::info!("{map}: reservation key registered, prflag set");
                    let usable: Vec<String> = members
                        .into_iter()
                        .filter(|d| d != dev)
                        .filter(|d| {
                            self.paths
                                .get(d)
                                .is_some_and(|q| matches!(q.rec.state, PathState::Up | PathState::Ghost))
                        })
                        .collect();
                    self.register_paths(&usable);
                }
            }
            Some(false) => {
                if m.prflag == PrValue::Set {
                    log::warn!("{map}: reservation key no longer registered, prflag unset");
                }
                m.prflag = PrValue::Unset;
                m.prhold = PrValue::Unset;
            }
            None => {}
        }
    }

    /// `setprstatus`: mpathpersist registered the key through the map; the daemon
    /// registers it on every usable path (again on those the tool did, harmlessly).
    pub(super) fn set_pr_status(&mut self, map: &str) {
        let Some(m) = self.maps.get_mut(map) else { return };
        if m.prflag == PrValue::Set {
            return;
        }
        m.prflag = PrValue::Set;
        m.ever_registered_pr = true;
        log::info!("{map}: prflag set");
        self.register_active_paths(map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_configured_or_set() {
        assert_eq!(parse_key("0x123abc"), Some((0x123abc, false)));
        assert_eq!(parse_key("0X123ABC:aptpl"), Some((0x123abc, true)));
        assert_eq!(parse_key("ffffffffffffffff"), Some((u64::MAX, false)));
        assert_eq!(parse_key("0x0"), None);
        assert_eq!(parse_key("0x1ffffffffffffffff"), None);
        assert_eq!(parse_key("file"), None);
        assert_eq!(parse_key(""), None);
    }
}
