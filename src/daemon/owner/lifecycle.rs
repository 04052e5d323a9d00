//! The daemon's life: start-up (coldplug), reconfigure, shutdown. SIGHUP and the
//! `reconfigure` command both end in [`Owner::reread_config`] (which starts a load on
//! another thread) and [`Owner::on_reloaded`] (which applies it), SIGTERM/SIGINT and the
//! `shutdown` command in [`Owner::shutdown`]; the run loop ends once the state is
//! `Shutdown` and joins the threads it started.

use std::collections::BTreeMap;

use crate::checkers::Control;
use crate::cli::format::DaemonState;
use crate::config::Config;
use crate::config::keywords::Setting;
use crate::config::propsel::Selector;
use crate::daemon::reload::Reloaded;
use crate::daemon::run::log_diagnostics;

use super::{Owner, Path};
use crate::daemon::notify;

impl Owner {
    /// Discovers paths, adopts existing maps, creates missing ones.
    pub fn coldplug(&mut self) {
        self.state = DaemonState::Configure;
        let existing = match self.dm.list_maps() {
            Ok(m) => m,
            Err(e) => {
                log::error!("cannot list device-mapper maps: {e}");
                Vec::new()
            }
        };
        self.kernel_maps = existing
            .iter()
            .filter_map(|m| m.uuid.strip_prefix("mpath-").map(|w| (m.name.clone(), w.to_string())))
            .collect();
        self.reread_block_devices();
        let scanned = self.scan();
        for info in scanned {
            if !self.waits_for_udev(&info) {
                self.add_path_info(info);
            }
        }
        let mut by_wwid: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (dev, p) in &self.paths {
            if let Some(w) = &p.info.wwid {
                by_wwid.entry(w.clone()).or_default().push(dev.clone());
            }
        }
        // As upstream, the maps are taken in the discovery order of their first path:
        // that order gives user_friendly_names' new aliases and the kernel's dm-N.
        let mut groups: Vec<(String, Vec<String>)> = by_wwid.into_iter().collect();
        groups.sort_by_cached_key(|(_, devs)| {
            devs.iter()
                .filter_map(|d| self.paths.get(d))
                .map(Path::scsi_order)
                .min()
        });
        // The new maps are created together once all are planned: their creates are
        // independent, and the kernel's work for each is mostly waiting.
        let mut creates = Vec::new();
        for (wwid, devs) in groups {
            let adopt = existing.iter().find(|m| m.uuid == format!("mpath-{wwid}"));
            if adopt.is_none() && !self.should_multipath(&wwid, devs.len()) {
                continue;
            }
            match self.plan_setup(&wwid, devs, adopt.cloned()) {
                Some(p) if p.is_new() => creates.push(p),
                Some(p) => self.setup_planned(p),
                None => {}
            }
        }
        self.create_planned(creates);
        self.state = DaemonState::Idle;
    }

    /// Asks for multipath.conf ([`super::Env::config`]) to be read again. The load
    /// runs on its own thread; its result comes back through [`Owner::on_reloaded`].
    pub fn reread_config(&mut self) {
        notify(&[sd_notify::NotifyState::Reloading]);
        self.out.reload.request(&self.env.config);
    }

    /// A configuration load finished: applies it if no newer reconfigure was asked
    /// for meanwhile; one that does not load leaves the old configuration in force.
    pub fn on_reloaded(&mut self, done: Reloaded) {
        let Some(done) = self.out.reload.finished(done, &self.env.config) else {
            log::info!("reconfigure: superseded by a newer request, loading again");
            return;
        };
        let ms = done.took.as_millis();
        match done.result {
            Ok(l) => {
                log_diagnostics(&l.diagnostics);
                log_diagnostics(&l.unsupported);
                log::info!("reconfigure: new configuration loaded in {ms} ms");
                self.reconfigure(l.config.with_verbosity_default(self.env.verbosity));
            }
            Err(e) => {
                log::error!("reconfigure failed, keeping the old configuration: {e}");
                self.reconfigure_all = false;
            }
        }
        notify(&[sd_notify::NotifyState::Ready]);
    }

    /// Applies a new configuration and brings the maps in line without dropping any;
    /// after `reconfigure all`, udev rescans every map reloaded (upstream's forced reload).
    pub fn reconfigure(&mut self, cfg: Config) {
        self.state = DaemonState::Configure;
        if std::mem::take(&mut self.reconfigure_all) {
            for m in self.maps.values_mut() {
                m.force_udev_reload = true;
            }
        }
        self.cfg = std::sync::Arc::new(cfg);
        self.blacklist.replace(None);
        // As upstream, the new configuration's queue_without_daemon replaces a forced one.
        self.queue_without_daemon_forced = false;
        // Upstream builds its maps anew from the kernel on reconfigure: their counters
        // start again (a map whose table changes counts that one load).
        for m in self.maps.values_mut() {
            super::commands::reset_stats(m);
        }
        let timeouts: Vec<(String, std::time::Duration)> = self
            .paths
            .values()
            .map(|p| {
                let sel = Selector::new(&self.cfg, &p.info.vendor, &p.info.product, &p.info.rev, "");
                (p.info.dev.clone(), self.check_timeout(&sel, &p.info.dev))
            })
            .collect();
        for (dev, t) in timeouts {
            if let Some(p) = self.paths.get_mut(&dev) {
                p.check_timeout = t;
            }
        }
        // Blacklist and find_multipaths may have changed: paths now excluded leave
        // their maps, newly allowed ones join.
        self.take_path_sizes();
        let allowed: Vec<String> = self.scan().into_iter().map(|p| p.dev).collect();
        let gone: Vec<String> = self.paths.keys().filter(|d| !allowed.contains(d)).cloned().collect();
        let reloaded = self.remove_paths(&gone);
        self.forget_offline_prios();
        // As upstream, a map is loaded only when its live table differs from the one
        // the new configuration plans; the others are adopted as they are.
        let live = self.dm.list_maps().unwrap_or_else(|e| {
            log::warn!("reconfigure: cannot read the kernel's maps, reloading every map: {e}");
            Vec::new()
        });
        let names: Vec<String> = self.maps.keys().filter(|n| !reloaded.contains(*n)).cloned().collect();
        for n in names {
            let kernel = live.iter().find(|m| m.name == n).cloned();
            self.reconsider(&n, kernel);
        }
        let new: Vec<String> = allowed.into_iter().filter(|d| !self.paths.contains_key(d)).collect();
        self.add_paths(&new);
        // find_multipaths may now allow WWIDs that had paths but no map.
        let unmapped: std::collections::BTreeSet<String> = self
            .paths
            .values()
            .filter(|p| p.map.is_none())
            .filter_map(|p| p.info.wwid.clone())
            .collect();
        self.assemble(unmapped);
        self.reread_block_devices();
        self.state = DaemonState::Idle;
    }

    /// Stops the threads the owner commands (checker, io-err-stat) and enters the
    /// `Shutdown` state, on which the run loop ends. With `queue_without_daemon no`
    /// (the default) every map stops queueing first: without a daemon nobody would
    /// reinstate a path, and IO queued on a map without paths would hang for ever.
    pub fn shutdown(&mut self) {
        log::info!("multipathd: shut down");
        notify(&[sd_notify::NotifyState::Stopping]);
        if self.state != DaemonState::Shutdown {
            let queue = self.cfg.setting_bool(Setting::QueueWithoutDaemon) == Some(true);
            if !queue && !self.queue_without_daemon_forced {
                let names: Vec<String> = self.maps.keys().cloned().collect();
                for n in names {
                    self.dm_message(&n, "fail_if_no_path");
                }
            }
        }
        self.state = DaemonState::Shutdown;
        let _ = self.out.checker.send(Control::Shutdown);
        self.out.ioerr.shutdown();
    }
}
