//! The view `list`/`show` commands are answered from, without the state owner.
//!
//! The owner builds an immutable [`Snapshot`] of what the show views need after every
//! message that changed its state (before it replies to that message) and hands it to
//! the CLI server through a [`Publisher`]; the newest one wins. The server formats
//! show replies from the newest snapshot itself, so no show waits for a check round,
//! a uevent storm or a reconfigure. Path views are shared (`Arc`) between the path
//! list and the maps' groups, and between successive snapshots when unchanged.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::format::{self as fmt, DaemonState, MapView, PathView};
use super::parse::{Command, HandlerError};
use crate::config::Config;
use crate::marginal::status::MarginalStatus;

/// One map as shown, its groups' paths kept apart so they can be shared.
#[derive(Debug, Clone, PartialEq)]
pub struct MapEntry {
    /// The map with empty path lists in its groups.
    pub view: MapView,
    /// The paths of each group, in group order.
    pub group_paths: Vec<Vec<Arc<PathView>>>,
}

impl MapEntry {
    /// The full view with every group's paths.
    pub fn assemble(&self) -> MapView {
        let mut v = self.view.clone();
        for (g, ps) in v.groups.iter_mut().zip(&self.group_paths) {
            g.paths = ps.iter().map(|p| PathView::clone(p)).collect();
        }
        v
    }
}

/// What the show views need, as the state owner had it at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Counts up with every snapshot the owner publishes (replies are cached by it).
    pub generation: u64,
    /// Counts up with every configuration the owner takes.
    pub config_generation: u64,
    /// Every path, in SCSI address order.
    pub paths: Vec<Arc<PathView>>,
    /// Every map, in name order.
    pub maps: Vec<Arc<MapEntry>>,
    /// `show marginal` rows as of the snapshot.
    pub marginal: Vec<MarginalStatus>,
    pub config: Arc<Config>,
    /// `show devices`: every block device and what the daemon makes of it, as the
    /// owner last read them (a show reads no sysfs).
    pub devices: Arc<Vec<(Arc<str>, fmt::DeviceStatus)>>,
    pub state: DaemonState,
    /// A reconfigure's load is running (`show daemon` says so).
    pub reload_pending: bool,
    pub pid: u32,
    /// When the owner last read the DM status of every map (group states); `None`
    /// if it never did.
    pub status_read: Option<Instant>,
}

/// Commands that print group states (active/enabled), which change with IO without
/// any event: they want a recent status read of every map.
pub fn prints_group_states(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::ShowMapsTopology
            | Command::ShowMapTopology { .. }
            | Command::ShowMapsJson
            | Command::ShowMapJson { .. }
            | Command::ShowMapsStatus
            | Command::ShowMapFormat { .. }
            | Command::ShowMapsFormat { .. }
    )
}

/// Replies that depend only on the configuration (kept across snapshots of paths).
pub fn depends_on_config_only(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::ShowConfig { .. } | Command::ShowBlacklist | Command::ShowWildcards
    )
}

impl Snapshot {
    fn path_views(&self) -> Vec<PathView> {
        self.paths.iter().map(|p| PathView::clone(p)).collect()
    }

    fn map_views(&self) -> Vec<MapView> {
        self.maps.iter().map(|m| m.assemble()).collect()
    }

    /// The path `key` (name, `/dev/` name or major:minor) designates.
    fn find_path(&self, key: &str) -> Option<&PathView> {
        let key = key.strip_prefix("/dev/").unwrap_or(key);
        let by_name = self.paths.iter().find(|p| p.dev == key);
        by_name
            .or_else(|| self.paths.iter().find(|p| p.dev_t == key))
            .map(|p| &**p)
    }

    /// The map `key` (name, WWID, dm-N or /dev/dm-N) designates.
    fn find_map(&self, key: &str) -> Option<&MapEntry> {
        let key = key.strip_prefix("/dev/").unwrap_or(key);
        let minor: Option<u32> = key.strip_prefix("dm-").and_then(|n| n.parse().ok());
        self.maps
            .iter()
            .find(|m| {
                let v = &m.view;
                v.name == key || v.wwid == key || (minor.is_some() && v.dm.as_ref().map(|d| d.minor) == minor)
            })
            .map(|m| &**m)
    }

    /// The reply to a `list`/`show` command, `None` for any other command.
    pub fn answer(&self, cmd: &Command) -> Option<Result<String, HandlerError>> {
        use Command::*;
        let found = HandlerError::DeviceNotFound;
        Some(match cmd {
            ShowPaths => Ok(fmt::paths_table(&self.paths, fmt::PATHS_FORMAT, false)),
            ShowPathsFormat { fmt: f, raw } => Ok(fmt::paths_table(&self.paths, f, *raw)),
            ShowPath { path } => self
                .find_path(path)
                .map(|p| fmt::path_line(p, fmt::PATH_STATE_FORMAT))
                .ok_or(found),
            ShowMaps => Ok(fmt::maps_table(&self.map_views(), fmt::MAPS_FORMAT, false)),
            ShowMapsFormat { fmt: f, raw } => Ok(fmt::maps_table(&self.map_views(), f, *raw)),
            ShowMapsStatus => Ok(fmt::maps_table(&self.map_views(), fmt::MAPS_STATUS_FORMAT, false)),
            ShowMapsStats => Ok(fmt::maps_table(&self.map_views(), fmt::MAPS_STATS_FORMAT, false)),
            ShowMapsTopology => Ok(fmt::topology(&self.map_views(), &self.path_views())),
            ShowMapTopology { map } => self
                .find_map(map)
                .map(|m| fmt::topology(&[m.assemble()], &self.path_views()))
                .ok_or(found),
            ShowMapFormat { map, fmt: f } => self
                .find_map(map)
                .map(|m| fmt::map_line(&m.assemble(), &self.map_views(), f))
                .ok_or(found),
            ShowMapsJson => Ok(fmt::maps_json(&self.map_views())),
            ShowMapJson { map } => self.find_map(map).map(|m| fmt::map_json(&m.assemble())).ok_or(found),
            ShowConfig { local: false } => Ok(crate::config::dump::show_config(&self.config)),
            ShowConfig { local: true } => Ok(self.config_local()),
            ShowWildcards => Ok(fmt::wildcards()),
            ShowMarginal => Ok(self.marginal_text()),
            ShowMarginalJson => Ok(crate::marginal::status::json(&self.marginal)),
            ShowStatus => {
                let states: Vec<fmt::CheckerState> = self.paths.iter().map(|p| p.state).collect();
                Ok(fmt::status(&states, self.paths.len(), false))
            }
            ShowDaemon => Ok(fmt::daemon(self.pid, self.state, self.reload_pending)),
            ShowBlacklist => Ok(fmt::blacklist(&blacklist_view(&self.config))),
            ShowDevices => Ok(fmt::devices(&self.devices)),
            _ => return None,
        })
    }

    /// `show config local`: the device entries of the paths shown, the maps' entries.
    fn config_local(&self) -> String {
        let paths: Vec<(&str, &str, &str)> = self
            .paths
            .iter()
            .map(|p| (p.vendor.as_str(), p.product.as_str(), p.rev.as_str()))
            .collect();
        let maps: Vec<(&str, &str)> = self
            .maps
            .iter()
            .map(|m| (m.view.wwid.as_str(), m.view.name.as_str()))
            .collect();
        crate::config::dump::show_config_local(&self.config, &paths, &maps)
    }

    /// `show marginal`: nothing at all when no path is under watch.
    fn marginal_text(&self) -> String {
        let mut out = String::new();
        if !self.marginal.is_empty() {
            out.push_str(crate::marginal::status::header().trim_end());
            out.push('\n');
            for r in &self.marginal {
                out.push_str(crate::marginal::status::format_line(r).trim_end());
                out.push('\n');
            }
        }
        out
    }
}

/// The blacklist in force, each rule marked as from the configuration or built in.
fn blacklist_view(cfg: &Config) -> fmt::BlacklistView {
    use crate::config::model::{BlacklistDevice, Pattern};
    let (bl, ex) = crate::config::blacklist::effective_lists(cfg, false);
    let user = (&cfg.blacklist, &cfg.exceptions);
    let pats = |list: &[Pattern], mine: &[Pattern]| {
        list.iter()
            .map(|p| fmt::BlacklistRule {
                text: p.text.clone(),
                from_config: mine.iter().any(|m| m.text == p.text),
            })
            .collect::<Vec<_>>()
    };
    let dev_text = |d: &BlacklistDevice| {
        format!(
            "{}:{}",
            d.vendor.as_ref().map_or("", |p| p.text.as_str()),
            d.product.as_ref().map_or("", |p| p.text.as_str())
        )
    };
    let devs = |list: &[BlacklistDevice], mine: &[BlacklistDevice]| {
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

/// The owner's end: hands snapshots to the server, newest wins.
pub struct Publisher {
    tx: Sender<Arc<Snapshot>>,
    /// Takes out a snapshot the server has not picked up yet, to make room.
    stale: Receiver<Arc<Snapshot>>,
    wake: Arc<EventFd>,
    status_wanted: Receiver<()>,
}

impl Publisher {
    pub fn publish(&self, snap: Arc<Snapshot>) {
        let mut snap = snap;
        loop {
            match self.tx.try_send(snap) {
                Ok(()) => break,
                Err(TrySendError::Full(s)) => {
                    let _ = self.stale.try_recv();
                    snap = s;
                }
                // The server is gone: nobody to show anything to.
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        // The counter cannot overflow in practice; either way the poll is woken.
        let _ = self.wake.write(1);
    }

    /// Signalled (coalesced) when the server wants every map's status read afresh.
    pub fn status_wanted(&self) -> Receiver<()> {
        self.status_wanted.clone()
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Publisher")
    }
}

/// The server's end: the newest snapshot, and a way to ask for fresh map status.
#[derive(Debug, Clone)]
pub struct Feed {
    rx: Receiver<Arc<Snapshot>>,
    pub(super) wake: Arc<EventFd>,
    status_wanted: Sender<()>,
}

impl Feed {
    /// The newest snapshot published since the last call, if any.
    pub fn newest(&self) -> Option<Arc<Snapshot>> {
        // Only resets the counter; the channel says what arrived.
        let _ = self.wake.read();
        let mut newest = None;
        loop {
            match self.rx.try_recv() {
                Ok(s) => newest = Some(s),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return newest,
            }
        }
    }

    /// Ask the owner to read every map's status; a request already pending covers it.
    pub fn want_status(&self) {
        let _ = self.status_wanted.try_send(());
    }
}

/// A connected publisher and feed.
pub fn channel() -> io::Result<(Publisher, Feed)> {
    let (tx, rx) = bounded(1);
    let (want_tx, want_rx) = bounded(1);
    let wake = Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?);
    Ok((
        Publisher {
            tx,
            stale: rx.clone(),
            wake: Arc::clone(&wake),
            status_wanted: want_rx,
        },
        Feed {
            rx,
            wake,
            status_wanted: want_tx,
        },
    ))
}
