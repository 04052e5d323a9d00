//! The sysfs attributes set on a map's paths when the map is set up: the owner
//! reads what the plan needs (transport devices, the FC port's current
//! `dev_loss_tmo`, a joining path's `max_sectors_kb`), plans with
//! [`crate::daemon::path_attrs`] and carries the plan out.

use crate::config::propsel::{Selector, Timeout};
use crate::daemon::path_attrs::{self as pa, MapTmo, PathTmo, ReadError, Step, Transport};
use crate::discovery::Bus;

use super::{Owner, log_at, read_trimmed};

fn show_timeout(t: Option<Timeout>) -> String {
    match t {
        None => "unset".into(),
        Some(Timeout::Off) => "off".into(),
        Some(Timeout::Secs(n)) => n.to_string(),
    }
}

impl Owner {
    /// The selector of the map `wwid` (its first path's hardware entry).
    fn map_selector(&self, wwid: &str, devs: &[String]) -> Selector<'_> {
        let first = devs.first().and_then(|d| self.paths.get(d));
        let (v, p, r) = first.map_or(("", "", ""), |x| {
            (x.info.vendor.as_str(), x.info.product.as_str(), x.info.rev.as_str())
        });
        Selector::new(&self.cfg, v, p, r, wwid)
    }

    fn carry_out(&mut self, steps: &[Step]) {
        pa::apply(&self.env.sysfs, steps, &mut self.tmo_unsupported, &mut |level, text| {
            log_at(level, text)
        });
    }

    /// `fast_io_fail_tmo`, `dev_loss_tmo`, `eh_deadline` and `max_retries` on the
    /// paths of map `name`, as upstream applies them on every map setup.
    pub(super) fn set_path_timeouts(&mut self, name: &str, wwid: &str, devs: &[String]) {
        let sel = self.map_selector(wwid, devs);
        let kb = sel.max_sectors_kb();
        if let Some(v) = kb.value {
            log::debug!("{name}: max_sectors_kb = {v} {}", kb.origin);
        }
        let map = MapTmo {
            alias: name.to_string(),
            no_path_retry: sel.no_path_retry().value,
            polling_interval: self.cfg.polling_interval(),
            max_retries: sel.max_retries().value,
        };
        let sys = |rel: String| self.env.sysfs.sys(&rel);
        let mut paths = Vec::new();
        for p in devs.iter().filter_map(|d| self.paths.get(d)) {
            let i = &p.info;
            let psel = Selector::new(&self.cfg, &i.vendor, &i.product, &i.rev, wwid);
            let proto = Some(i.protocol.as_str());
            let (fio, dev_loss, eh) = (psel.fast_io_fail(proto), psel.dev_loss(proto), psel.eh_deadline(proto));
            log::debug!(
                "{}: fast_io_fail_tmo = {} {}",
                i.dev,
                show_timeout(fio.value),
                fio.origin
            );
            if dev_loss.value.is_some() {
                log::debug!(
                    "{}: dev_loss_tmo = {} {}",
                    i.dev,
                    show_timeout(dev_loss.value),
                    dev_loss.origin
                );
            }
            if eh.value.is_some() {
                log::debug!("{}: eh_deadline = {} {}", i.dev, show_timeout(eh.value), eh.origin);
            }
            let transport = match (i.protocol.as_str(), &i.transport) {
                ("scsi:fcp", Some(rport)) => {
                    let dir = sys(format!("class/fc_remote_ports/{rport}"));
                    let now = dir
                        .is_dir()
                        .then(|| match std::fs::read_to_string(dir.join("dev_loss_tmo")) {
                            Err(e) => Err(ReadError::Io(e.raw_os_error().unwrap_or(0))),
                            Ok(t) => t.trim().parse().map_err(|_| ReadError::Parse(t.trim().to_string())),
                        });
                    Transport::Fc {
                        rport: rport.clone(),
                        dev_loss_now: now,
                    }
                }
                ("scsi:iscsi", Some(s)) => Transport::Iscsi {
                    session: s.clone(),
                    present: sys(format!("class/iscsi_session/{s}")).is_dir(),
                },
                ("scsi:sas", Some(e)) => Transport::Sas {
                    end_device: e.clone(),
                    present: sys(format!("class/sas_end_device/{e}")).is_dir(),
                },
                _ => Transport::Other,
            };
            paths.push(PathTmo {
                dev: i.dev.clone(),
                scsi: i.bus == Bus::Scsi,
                protocol: i.protocol.clone(),
                hcil: i.hcil,
                transport,
                host_present: sys(format!("class/scsi_host/host{}", i.hcil.host)).is_dir(),
                fast_io_fail: fio.value,
                dev_loss: dev_loss.value,
                eh_deadline: eh.value,
            });
        }
        let steps = pa::plan_timeouts(&map, &paths);
        self.carry_out(&steps);
    }

    /// `max_sectors_kb` on every path of a map about to be created.
    pub(super) fn set_max_sectors_on_create(&mut self, wwid: &str, devs: &[String]) {
        let kb = self.map_selector(wwid, devs).max_sectors_kb().value;
        let steps = pa::plan_max_sectors_on_create(kb, devs);
        self.carry_out(&steps);
    }

    /// `max_sectors_kb` on paths about to join the live map of `wwid`.
    pub(super) fn set_max_sectors_on_join(&mut self, wwid: &str, joining: &[String]) {
        if joining.is_empty() {
            return;
        }
        let kb = self.map_selector(wwid, joining).max_sectors_kb().value;
        let mut steps = Vec::new();
        for d in joining {
            let current = read_trimmed(&self.env.sysfs.sys(&format!("block/{d}/queue/max_sectors_kb")))
                .and_then(|v| v.parse().ok());
            steps.extend(pa::plan_max_sectors_on_join(kb, d, current));
        }
        self.carry_out(&steps);
    }
}
