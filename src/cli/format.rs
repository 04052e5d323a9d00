//! Text and JSON output of the `show` commands, over plain view structs.
//!
//! The daemon's state owner copies what it knows into [`PathView`], [`MapView`] and
//! [`PathGroupView`]; everything here is pure formatting and byte-compatible with
//! upstream multipathd, which scripts parse (column padding, trailing spaces, JSON
//! spacing included).

use std::borrow::Borrow;
use std::fmt::Write as _;

/// `show paths` default format.
pub const PATHS_FORMAT: &str = "%i %d %D %p %t %T %o %C";
/// `show maps` default format.
pub const MAPS_FORMAT: &str = "%n %d %w";
/// `show maps status` format.
pub const MAPS_STATUS_FORMAT: &str = "%n %F %Q %N %t %r";
/// `show maps stats` format.
pub const MAPS_STATS_FORMAT: &str = "%n %0 %1 %2 %3 %4";
/// `show path P` prints only the path's device state.
pub const PATH_STATE_FORMAT: &str = "%o";

const TOPOLOGY_PATH_FORMAT: &str = "%i %d %D %t %T %o";
const TOPOLOGY_MAP_PROPS: &str = "size=%S features='%f' hwhandler='%h' wp=%r";
const TOPOLOGY_GROUP_FORMAT: &str = "policy='%s' prio=%p status=%t";
/// Widest a padded column gets, whatever the values.
const MAX_FIELD_WIDTH: usize = 255;
const PROGRESS_LEN: i64 = 10;

/// Map wildcards and their column headers, in `show wildcards` order.
pub const MAP_WILDCARDS: &[(char, &str)] = &[
    ('n', "name"),
    ('w', "uuid"),
    ('d', "sysfs"),
    ('F', "failback"),
    ('Q', "queueing"),
    ('N', "paths"),
    ('r', "write_prot"),
    ('t', "dm-st"),
    ('S', "size"),
    ('f', "features"),
    ('x', "failures"),
    ('h', "hwhandler"),
    ('A', "action"),
    ('0', "path_faults"),
    ('1', "switch_grp"),
    ('2', "map_loads"),
    ('3', "total_q_time"),
    ('4', "q_timeouts"),
    // a map's %s has no revision (the paths may differ in it), nor does upstream's header
    ('s', "vend/prod"),
    ('v', "vend"),
    ('p', "prod"),
    ('e', "rev"),
    ('G', "foreign"),
    ('g', "vpd page data"),
    ('k', "max_sectors_kb"),
];

/// Path wildcards and their column headers, in `show wildcards` order.
pub const PATH_WILDCARDS: &[(char, &str)] = &[
    ('w', "uuid"),
    ('i', "hcil"),
    ('d', "dev"),
    ('D', "dev_t"),
    ('t', "dm_st"),
    ('o', "dev_st"),
    ('T', "chk_st"),
    ('s', "vend/prod/rev"),
    ('c', "checker"),
    ('C', "next_check"),
    ('p', "pri"),
    ('S', "size"),
    ('z', "serial"),
    ('M', "marginal_st"),
    ('m', "multipath"),
    ('N', "host WWNN"),
    ('n', "target WWNN"),
    ('R', "host WWPN"),
    ('r', "target WWPN"),
    ('a', "host adapter"),
    ('G', "foreign"),
    ('g', "vpd page data"),
    ('0', "failures"),
    ('P', "protocol"),
    ('I', "init_st"),
    ('L', "LUN hex"),
    ('A', "TPG"),
    ('k', "max_sectors_kb"),
];

/// Path state in the kernel's multipath table: the checker state machine's own type.
pub use crate::checkers::state::DmState as PathDmState;

/// Result of the last path check: the checker state machine's own type.
pub use crate::checkers::state::PathState as CheckerState;
use crate::checkers::state::chk_state_text;

/// How far path discovery got (`%I`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitState {
    New,
    Failed,
    MissingUdev,
    RequestedUdev,
    Ok,
    Removed,
    Partial,
}

impl InitState {
    fn name(self) -> &'static str {
        match self {
            InitState::New => "new",
            InitState::Failed => "failed",
            InitState::MissingUdev => "udev-missing",
            InitState::RequestedUdev => "udev-requested",
            InitState::Ok => "ok",
            InitState::Removed => "removed",
            InitState::Partial => "partial",
        }
    }
}

/// SCSI address of a path: discovery's type, whose `Display` is the `%i` text.
pub use crate::discovery::Hcil;

/// Everything the path wildcards print.
#[derive(Debug, Clone, PartialEq)]
pub struct PathView {
    /// Kernel name (`sdb`); empty if unknown.
    pub dev: String,
    /// `major:minor`.
    pub dev_t: String,
    pub wwid: String,
    /// None for non-SCSI paths (prints `#:#:#:#`).
    pub hcil: Option<Hcil>,
    pub dm_state: PathDmState,
    /// The sysfs device state says offline.
    pub offline: bool,
    pub state: CheckerState,
    pub vendor: String,
    pub product: String,
    pub rev: String,
    /// Checker name; None prints `(null)`.
    pub checker: Option<String>,
    /// Seconds until the next check, and the current check interval.
    pub tick: i64,
    pub checkint: i64,
    pub priority: i32,
    /// Size in 512-byte sectors.
    pub size: u64,
    pub serial: String,
    pub marginal: bool,
    /// Alias of the map the path belongs to; None for an orphan path.
    pub map: Option<String>,
    /// Orphan waiting to be added once it comes online (prints `[offline]` for `%m`).
    pub add_when_online: bool,
    /// FC attributes; None prints `[undef]` (not FC, or unknown).
    pub host_wwnn: Option<String>,
    pub target_wwnn: Option<String>,
    pub host_wwpn: Option<String>,
    pub target_wwpn: Option<String>,
    pub host_adapter: Option<String>,
    pub vpd_data: Option<String>,
    /// Times the path failed.
    pub failures: i32,
    /// Transport, e.g. `scsi:fcp`, `nvme:tcp`.
    pub protocol: String,
    pub init: InitState,
    /// ALUA target port group.
    pub tpg_id: Option<u16>,
    pub max_sectors_kb: Option<i32>,
}

/// Path group state in the kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgState {
    Enabled,
    Disabled,
    Active,
    Undef,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PathGroupView {
    pub priority: i32,
    pub state: PgState,
    pub marginal: bool,
    pub paths: Vec<PathView>,
}

/// A map's selected `failback` and `no_path_retry` (`%F`, `%Q`).
pub use crate::config::propsel::{Failback, NoPathRetry};

/// Device-mapper facts about a map that exists in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmInfo {
    pub minor: u32,
    pub read_only: bool,
    pub suspended: bool,
}

/// Everything the map wildcards, topology and JSON print.
#[derive(Debug, Clone, PartialEq)]
pub struct MapView {
    /// Alias (equals the WWID without user-friendly names).
    pub name: String,
    pub wwid: String,
    /// None when the map has no device-mapper info (prints `undef`).
    pub dm: Option<DmInfo>,
    pub failback: Failback,
    /// Seconds of a deferred failback elapsed, 0 = not counting.
    pub failback_tick: u32,
    /// `no_path_retry`; `disablequeueing` shows as `Fail`.
    pub no_path_retry: NoPathRetry,
    /// Seconds of queueing left, 0 = not counting down.
    pub retry_tick: u32,
    /// Size in 512-byte sectors.
    pub size: u64,
    pub features: String,
    pub hwhandler: String,
    /// Pending action (`create`, `reload`, `switchpg`, `rename`, `reject`), if any.
    pub action: Option<String>,
    pub path_faults: u32,
    pub switch_grp: u32,
    pub map_loads: u32,
    pub total_q_time: u32,
    pub q_timeouts: u32,
    pub map_failures: u32,
    /// Path selector of the map's groups, e.g. `service-time 0`.
    pub selector: String,
    pub vpd_data: Option<String>,
    pub max_sectors_kb: Option<i32>,
    pub groups: Vec<PathGroupView>,
}

impl MapView {
    fn paths(&self) -> impl Iterator<Item = &PathView> {
        self.groups.iter().flat_map(|g| g.paths.iter())
    }

    fn active_paths(&self) -> usize {
        self.paths()
            .filter(|p| matches!(p.state, CheckerState::Up | CheckerState::Ghost))
            .count()
    }

    /// First non-empty attribute among the map's paths, else `##`.
    fn first_path_attr(&self, get: impl Fn(&PathView) -> &str) -> String {
        self.paths()
            .map(&get)
            .find(|s| !s.is_empty())
            .unwrap_or("##")
            .to_string()
    }
}

/// Sectors to a human size: K/M/G/T/P, one decimal below 10.
pub fn human_size(sectors: u64) -> String {
    let mut s = (sectors >> 1) as f32;
    let units = ['K', 'M', 'G', 'T', 'P'];
    let mut u = 0;
    while s >= 1024.0 && u < units.len() - 1 {
        s /= 1024.0;
        u += 1;
    }
    if s < 10.0 {
        format!("{s:.1}{}", units[u])
    } else {
        format!("{s:.0}{}", units[u])
    }
}

/// The `%C` (next check) and deferred `%F` text: a 10-char bar of `X` for the
/// elapsed share `cur/total` and `.`, then ` cur/total`; with `total <= 0` only
/// the numbers. Wide arithmetic and the clamp keep any pair of values in range
/// (`cur` can pass `total` after a reload; see tests/fuzz_regressions.rs).
fn progress(cur: i64, total: i64) -> String {
    let mut out = String::new();
    if total > 0 {
        let x =
            (i128::from(PROGRESS_LEN) * i128::from(cur) / i128::from(total)).clamp(0, i128::from(PROGRESS_LEN)) as i64;
        out.extend(std::iter::repeat_n('X', x as usize));
        out.extend(std::iter::repeat_n('.', (PROGRESS_LEN - x) as usize));
    }
    let _ = write!(out, " {cur}/{total}");
    out
}

/// `%F`: immediate / followover / manual, or for a deferred failback `deferred:N`
/// while none is scheduled and else the countdown bar (`tick` seconds elapsed).
pub fn failback_text(failback: Failback, tick: u32) -> String {
    match failback {
        Failback::Immediate => "immediate".to_string(),
        Failback::Followover => "followover".to_string(),
        Failback::Manual => "manual".to_string(),
        Failback::Deferred(secs) if tick == 0 => format!("deferred:{secs}"),
        Failback::Deferred(secs) => progress(i64::from(tick), i64::from(secs)),
    }
}

/// `%Q`: off / on / `-`, or for `no_path_retry N` `S sec` while counting down,
/// `N chk` while paths are usable, and `off` once the countdown ran out.
/// `active` is the number of usable paths of the map.
pub fn queueing_text(no_path_retry: NoPathRetry, retry_tick: u32, active: usize) -> String {
    match no_path_retry {
        NoPathRetry::Fail => "off".to_string(),
        NoPathRetry::Queue => "on".to_string(),
        NoPathRetry::Undef => "-".to_string(),
        // Selection turns a count of 0 into `Fail`; upstream prints nothing for it.
        NoPathRetry::Retries(0) => String::new(),
        NoPathRetry::Retries(_) if retry_tick > 0 => format!("{retry_tick} sec"),
        NoPathRetry::Retries(n) if active > 0 => format!("{n} chk"),
        NoPathRetry::Retries(_) => "off".to_string(),
    }
}

/// Escapes a JSON string value. Upstream prints values raw; ordinary values (no quote,
/// backslash or control character) come out the same, the others stay parsable.
pub(crate) fn json_escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn undef_or(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "[undef]".to_string())
}

/// Convert a LUN number to the 8-byte SCSI LUN representation, as hex.
fn lun_hex(hcil: Option<Hcil>) -> String {
    let lun = match hcil {
        None => u64::MAX,
        Some(h) => {
            let l = h.lun;
            ((l & 0xffff) << 48)
                | ((l & 0xffff_0000) << 16)
                | ((l & 0xffff_0000_0000) >> 16)
                | ((l & 0xffff_0000_0000_0000) >> 48)
        }
    };
    format!("0x{lun:016x}")
}

/// The value of one path wildcard; None for an unknown wildcard.
pub fn path_field(p: &PathView, c: char) -> Option<String> {
    let orphan = p.map.is_none();
    Some(match c {
        'w' => p.wwid.clone(),
        'i' => match p.hcil {
            Some(h) => h.to_string(),
            None => "#:#:#:#".to_string(),
        },
        'd' => {
            if p.dev.is_empty() {
                "-".to_string()
            } else {
                p.dev.clone()
            }
        }
        'D' => {
            if p.dev.is_empty() {
                "#:#".to_string()
            } else {
                p.dev_t.clone()
            }
        }
        't' => match p.dm_state {
            PathDmState::Active => "active",
            PathDmState::Failed => "failed",
            PathDmState::Undef => "undef",
        }
        .to_string(),
        'o' => if orphan {
            "unknown"
        } else if p.offline {
            "offline"
        } else {
            "running"
        }
        .to_string(),
        'T' => if orphan { "undef" } else { chk_state_text(p.state) }.to_string(),
        's' => {
            let or_hash = |s: &str| {
                if s.is_empty() { "##".to_string() } else { s.to_string() }
            };
            format!("{},{},{}", or_hash(&p.vendor), or_hash(&p.product), or_hash(&p.rev))
        }
        'c' => p.checker.clone().unwrap_or_else(|| "(null)".to_string()),
        'C' => {
            if orphan {
                "orphan".to_string()
            } else {
                progress(p.tick, p.checkint)
            }
        }
        'p' => p.priority.to_string(),
        'S' => human_size(p.size),
        'z' => p.serial.clone(),
        'M' => if p.marginal { "marginal" } else { "normal" }.to_string(),
        'm' => match &p.map {
            Some(alias) => alias.clone(),
            None if p.add_when_online => "[offline]".to_string(),
            None => "[orphan]".to_string(),
        },
        'N' => undef_or(&p.host_wwnn),
        'n' => undef_or(&p.target_wwnn),
        'R' => undef_or(&p.host_wwpn),
        'r' => undef_or(&p.target_wwpn),
        'a' => undef_or(&p.host_adapter),
        'G' => "--".to_string(),
        'g' => undef_or(&p.vpd_data),
        '0' => p.failures.to_string(),
        'P' => p.protocol.clone(),
        'I' => p.init.name().to_string(),
        'L' => lun_hex(p.hcil),
        'A' => match p.tpg_id {
            Some(t) => format!("0x{t:04x}"),
            None => "[undef]".to_string(),
        },
        'k' => p.max_sectors_kb.map_or_else(|| "n/a".to_string(), |k| k.to_string()),
        _ => return None,
    })
}

/// The value of one map wildcard; None for an unknown wildcard.
pub fn map_field(m: &MapView, c: char) -> Option<String> {
    Some(match c {
        'n' => m.name.clone(),
        'w' => m.wwid.clone(),
        'd' => m.dm.map_or_else(|| "undef".to_string(), |d| format!("dm-{}", d.minor)),
        'F' => failback_text(m.failback, m.failback_tick),
        'Q' => queueing_text(m.no_path_retry, m.retry_tick, m.active_paths()),
        'N' => m.active_paths().to_string(),
        'r' => match m.dm {
            None => "undef",
            Some(d) if d.read_only => "ro",
            Some(_) => "rw",
        }
        .to_string(),
        't' => match m.dm {
            None => "undef",
            Some(d) if d.suspended => "suspend",
            Some(_) => "active",
        }
        .to_string(),
        'S' => human_size(m.size),
        'f' => m.features.clone(),
        'x' => m.map_failures.to_string(),
        'h' => m.hwhandler.clone(),
        'A' => m.action.clone().unwrap_or_default(),
        '0' => m.path_faults.to_string(),
        '1' => m.switch_grp.to_string(),
        '2' => m.map_loads.to_string(),
        '3' => m.total_q_time.to_string(),
        '4' => m.q_timeouts.to_string(),
        's' => m
            .paths()
            .find(|p| !p.vendor.is_empty() && !p.product.is_empty())
            .map_or_else(|| "##,##".to_string(), |p| format!("{},{}", p.vendor, p.product)),
        'v' => m.first_path_attr(|p| &p.vendor),
        'p' => m.first_path_attr(|p| &p.product),
        'e' => m.first_path_attr(|p| &p.rev),
        'G' => "--".to_string(),
        'g' => m
            .paths()
            .find_map(|p| p.vpd_data.clone())
            .unwrap_or_else(|| "[undef]".to_string()),
        'k' => m.max_sectors_kb.map_or_else(|| "n/a".to_string(), |k| k.to_string()),
        _ => return None,
    })
}

/// The value of one path group wildcard (unknown wildcards print nothing).
fn group_field(g: &PathGroupView, selector: &str, c: char) -> String {
    match c {
        's' => selector.to_string(),
        'p' => g.priority.to_string(),
        't' => match g.state {
            PgState::Enabled => "enabled",
            PgState::Disabled => "disabled",
            PgState::Active => "active",
            PgState::Undef => "undef",
        }
        .to_string(),
        'M' => if g.marginal { "marginal" } else { "normal" }.to_string(),
        _ => String::new(),
    }
}

/// One piece of a user format: literal text, or a wildcard letter.
enum Piece<'a> {
    Text(&'a str),
    Wild(char),
}

/// Split a format into literal text and `%x` wildcards. A trailing lone `%` is dropped.
fn pieces(fmt: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = fmt;
    while let Some(pos) = rest.find('%') {
        if pos > 0 {
            out.push(Piece::Text(&rest[..pos]));
        }
        let mut chars = rest[pos + 1..].chars();
        match chars.next() {
            Some(c) => {
                out.push(Piece::Wild(c));
                rest = chars.as_str();
            }
            None => rest = "",
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

/// Column widths per wildcard letter.
type Widths = Vec<(char, usize)>;

fn width_of(widths: &Widths, c: char) -> usize {
    widths.iter().find(|(w, _)| *w == c).map_or(0, |(_, n)| *n)
}

/// Widths of the known wildcards `fmt` uses: the header (if `with_header`) or 0, widened
/// to the longest value (capped). Only those: every other field of every item would be
/// formatted for nothing.
fn layout<T>(
    items: &[T],
    table: &[(char, &str)],
    fmt: &str,
    with_header: bool,
    field: impl Fn(&T, char) -> Option<String>,
) -> Widths {
    let used: Vec<char> = pieces(fmt)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Wild(c) => Some(c),
            Piece::Text(_) => None,
        })
        .collect();
    table
        .iter()
        .filter(|(c, _)| used.contains(c))
        .map(|(c, header)| {
            let base = if with_header { header.len() } else { 0 };
            let widest = items
                .iter()
                .filter_map(|it| field(it, *c))
                .map(|v| v.len().min(MAX_FIELD_WIDTH))
                .max()
                .unwrap_or(0);
            (*c, base.max(widest))
        })
        .collect()
}

fn pad(out: &mut String, len: usize, width: usize) {
    if len < width {
        out.extend(std::iter::repeat_n(' ', width - len));
    }
}

/// Render one line of `fmt`, padding known wildcards to `widths` if given.
fn render(fmt: &str, field: impl Fn(char) -> Option<String>, widths: Option<&Widths>) -> String {
    let mut out = String::new();
    for piece in pieces(fmt) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Wild(c) => {
                if let Some(v) = field(c) {
                    out.push_str(&v);
                    if let Some(w) = widths {
                        pad(&mut out, v.len(), width_of(w, c));
                    }
                }
            }
        }
    }
    out.push('\n');
    out
}

fn table<T>(
    items: &[T],
    fmt: &str,
    raw: bool,
    wildcards: &[(char, &str)],
    field: impl Fn(&T, char) -> Option<String>,
) -> String {
    if items.is_empty() {
        // Upstream drops the header when there are no rows; the server then says `ok`.
        return String::new();
    }
    let pieces = pieces(fmt);
    // Every field of every row formatted once: the widths are measured on the values
    // the rows print (as `layout` would find them, without formatting them twice).
    let rows: Vec<Vec<Option<String>>> = items
        .iter()
        .map(|it| {
            (pieces.iter())
                .map(|p| match p {
                    Piece::Wild(c) => field(it, *c),
                    Piece::Text(_) => None,
                })
                .collect()
        })
        .collect();
    let name = |c: char| wildcards.iter().find(|(w, _)| *w == c).map(|(_, h)| *h);
    // Per piece: the header and its column's width (known wildcards only; none when raw).
    let columns: Vec<Option<(&str, usize)>> = (pieces.iter().enumerate())
        .map(|(i, p)| match p {
            Piece::Wild(c) if !raw => name(*c).map(|h| {
                let widest = (rows.iter())
                    .filter_map(|r| r[i].as_ref())
                    .map(|v| v.len().min(MAX_FIELD_WIDTH))
                    .max()
                    .unwrap_or(0);
                (h, h.len().max(widest))
            }),
            _ => None,
        })
        .collect();
    let mut out = String::new();
    if !raw {
        table_line(&mut out, &pieces, &columns, |i| columns[i].map(|(h, _)| h));
    }
    for r in &rows {
        table_line(&mut out, &pieces, &columns, |i| r[i].as_deref());
    }
    out
}

/// One line of a table: the format's text, and each wildcard's value (`value` of its
/// piece's index) padded to its column.
fn table_line<'a>(
    out: &mut String,
    pieces: &[Piece<'_>],
    columns: &[Option<(&str, usize)>],
    value: impl Fn(usize) -> Option<&'a str>,
) {
    for (i, p) in pieces.iter().enumerate() {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Wild(_) => {
                if let Some(v) = value(i) {
                    out.push_str(v);
                    pad(out, v.len(), columns[i].map_or(0, |(_, w)| w));
                }
            }
        }
    }
    out.push('\n');
}

/// `show paths [raw] [format F]`: a padded table with header, or raw rows.
pub fn paths_table<P: Borrow<PathView>>(paths: &[P], fmt: &str, raw: bool) -> String {
    table(paths, fmt, raw, PATH_WILDCARDS, |p, c| path_field(p.borrow(), c))
}

/// `show maps [status|stats] [raw] [format F]`.
pub fn maps_table(maps: &[MapView], fmt: &str, raw: bool) -> String {
    table(maps, fmt, raw, MAP_WILDCARDS, map_field)
}

/// `show map M [raw] format F`: one line, no header, padded as in the full table.
pub fn map_line(map: &MapView, all_maps: &[MapView], fmt: &str) -> String {
    let widths = layout(all_maps, MAP_WILDCARDS, fmt, true, map_field);
    render(fmt, |c| map_field(map, c), Some(&widths))
}

/// `show path P`: the path's device state (`running`, `offline`, `unknown`).
pub fn path_line(path: &PathView, fmt: &str) -> String {
    render(fmt, |c| path_field(path, c), None)
}

/// Topology of `maps` like `multipath -ll`; path columns are aligned across
/// `all_paths` (every path the daemon knows, orphans included), as upstream does.
pub fn topology(maps: &[MapView], all_paths: &[PathView]) -> String {
    let widths = layout(all_paths, PATH_WILDCARDS, TOPOLOGY_PATH_FORMAT, false, path_field);
    let mut out = String::new();
    for m in maps {
        let mut style = String::new();
        if m.action.as_deref().is_some_and(|a| !a.is_empty()) {
            style.push_str("%A: ");
        }
        style.push_str("%n");
        if m.name != m.wwid {
            style.push_str(" (%w)");
        }
        style.push_str(" %d %s");
        out.push_str(&render(&style, |c| map_field(m, c), None));
        out.push_str(&render(TOPOLOGY_MAP_PROPS, |c| map_field(m, c), None));
        for (gi, g) in m.groups.iter().enumerate() {
            let last_group = gi + 1 == m.groups.len();
            out.push_str(if last_group { "`-+- " } else { "|-+- " });
            out.push_str(&render(
                TOPOLOGY_GROUP_FORMAT,
                |c| Some(group_field(g, &m.selector, c)),
                None,
            ));
            for (pi, p) in g.paths.iter().enumerate() {
                out.push(if last_group { ' ' } else { '|' });
                out.push_str(if pi + 1 == g.paths.len() { " `- " } else { " |- " });
                out.push_str(&render(TOPOLOGY_PATH_FORMAT, |c| path_field(p, c), Some(&widths)));
            }
        }
    }
    out
}

const JSON_INDENT: &str = "   ";

fn json_map_fields(out: &mut String, m: &MapView, last: bool) {
    let f = |c| map_field(m, c).unwrap_or_default();
    let i2 = JSON_INDENT.repeat(2);
    let _ = writeln!(out, "{{");
    for (key, c, quoted) in [
        ("name", 'n', true),
        ("uuid", 'w', true),
        ("sysfs", 'd', true),
        ("failback", 'F', true),
        ("queueing", 'Q', true),
        ("paths", 'N', false),
        ("write_prot", 'r', true),
        ("dm_st", 't', true),
        ("features", 'f', true),
        ("hwhandler", 'h', true),
        ("action", 'A', true),
        ("path_faults", '0', false),
        ("vend", 'v', true),
        ("prod", 'p', true),
        ("rev", 'e', true),
        ("switch_grp", '1', false),
        ("map_loads", '2', false),
        ("total_q_time", '3', false),
        ("q_timeouts", '4', false),
    ] {
        if quoted {
            let _ = writeln!(out, "{i2}\"{key}\" : \"{}\",", json_escape(&f(c)));
        } else {
            let _ = writeln!(out, "{i2}\"{key}\" : {},", f(c));
        }
    }
    let _ = write!(out, "{i2}\"path_groups\": [");
    let i3 = JSON_INDENT.repeat(3);
    let i4 = JSON_INDENT.repeat(4);
    for (gi, g) in m.groups.iter().enumerate() {
        let gf = |c| group_field(g, &m.selector, c);
        let _ = writeln!(out, "{{");
        let _ = writeln!(out, "{i3}\"selector\" : \"{}\",", json_escape(&gf('s')));
        let _ = writeln!(out, "{i3}\"pri\" : {},", gf('p'));
        let _ = writeln!(out, "{i3}\"dm_st\" : \"{}\",", gf('t'));
        let _ = writeln!(out, "{i3}\"marginal_st\" : \"{}\",", gf('M'));
        let _ = writeln!(out, "{i3}\"group\" : {},", gi + 1);
        let _ = write!(out, "{i3}\"paths\": [");
        for (pi, p) in g.paths.iter().enumerate() {
            let pf = |c| path_field(p, c).unwrap_or_default();
            let _ = writeln!(out, "{{");
            for (key, c, quoted) in [
                ("dev", 'd', true),
                ("dev_t", 'D', true),
                ("dm_st", 't', true),
                ("dev_st", 'o', true),
                ("chk_st", 'T', true),
                ("checker", 'c', true),
                ("pri", 'p', false),
                ("host_wwnn", 'N', true),
                ("target_wwnn", 'n', true),
                ("host_wwpn", 'R', true),
                ("target_wwpn", 'r', true),
                ("host_adapter", 'a', true),
                ("lun_hex", 'L', true),
            ] {
                if quoted {
                    let _ = writeln!(out, "{i4}\"{key}\" : \"{}\",", json_escape(&pf(c)));
                } else {
                    let _ = writeln!(out, "{i4}\"{key}\" : {},", pf(c));
                }
            }
            let _ = writeln!(out, "{i4}\"marginal_st\" : \"{}\"", pf('M'));
            out.push_str(&i3);
            out.push_str(if pi + 1 == g.paths.len() { "}" } else { "}," });
        }
        out.push_str("]\n");
        out.push_str(&i2);
        out.push_str(if gi + 1 == m.groups.len() { "}" } else { "}," });
    }
    out.push_str("]\n");
    out.push_str(JSON_INDENT);
    out.push_str(if last { "}" } else { "}," });
}

fn json_header() -> String {
    format!("{{\n{JSON_INDENT}\"major_version\": 0,\n{JSON_INDENT}\"minor_version\": 1,\n")
}

/// `show maps json`.
pub fn maps_json(maps: &[MapView]) -> String {
    let mut out = json_header();
    out.push_str(JSON_INDENT);
    out.push_str("\"maps\": [");
    for (i, m) in maps.iter().enumerate() {
        json_map_fields(&mut out, m, i + 1 == maps.len());
    }
    out.push_str("]\n}\n");
    out
}

/// `show map M json`: the same fields under `"map":` instead of an array.
pub fn map_json(map: &MapView) -> String {
    let mut out = json_header();
    out.push_str(JSON_INDENT);
    out.push_str("\"map\":");
    json_map_fields(&mut out, map, true);
    out.push_str("\n}\n");
    out
}

/// `show wildcards`.
pub fn wildcards() -> String {
    let mut out = String::from("multipath format wildcards:\n");
    for (c, h) in MAP_WILDCARDS {
        let _ = writeln!(out, "%{c}  {h}");
    }
    out.push_str("\npath format wildcards:\n");
    for (c, h) in PATH_WILDCARDS {
        let _ = writeln!(out, "%{c}  {h}");
    }
    out
}

/// `show status`: per checker state the number of paths in it (non-zero only), the
/// number of monitored paths, and whether uevents are still being processed.
pub fn status(path_states: &[CheckerState], monitored: usize, busy: bool) -> String {
    let mut out = String::from("path checker states:\n");
    for st in CheckerState::ALL {
        let n = path_states.iter().filter(|s| **s == st).count();
        if n > 0 {
            let _ = writeln!(out, "{:<20}{n}", st.name());
        }
    }
    let _ = write!(
        out,
        "\npaths: {monitored}\nbusy: {}\n",
        if busy { "True" } else { "False" }
    );
    out
}

/// Daemon life-cycle states `show daemon` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonState {
    Init,
    Startup,
    Configure,
    Idle,
    Running,
    Shutdown,
}

/// `show daemon`: `pid N <state>[ (pending reconfigure)]`.
pub fn daemon(pid: u32, state: DaemonState, reconfigure_pending: bool) -> String {
    let name = match state {
        DaemonState::Init => "init",
        DaemonState::Startup => "startup",
        DaemonState::Configure => "configure",
        DaemonState::Idle => "idle",
        DaemonState::Running => "running",
        DaemonState::Shutdown => "shutdown",
    };
    let pending = if reconfigure_pending {
        " (pending reconfigure)"
    } else {
        ""
    };
    format!("pid {pid} {name}{pending}\n")
}

/// What `show devices` says about one block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// A path the daemon monitors.
    Monitored,
    /// The `hidden` sysfs attribute is set.
    Hidden,
    /// Claimed by a foreign library (e.g. native NVMe multipath).
    Foreign,
    /// Excluded by a devnode blacklist rule.
    Blacklisted,
    /// Allowed by the devnode rules but not a monitored path.
    Unmonitored,
}

/// `show devices`: every block device with its status.
pub fn devices(devs: &[(std::sync::Arc<str>, DeviceStatus)]) -> String {
    let mut out = String::from("available block devices:\n");
    for (name, st) in devs {
        let text = match st {
            // Upstream's text for monitored devices starts with a blank, giving two.
            DeviceStatus::Monitored => " devnode whitelisted, monitored",
            DeviceStatus::Hidden => "hidden, unmonitored",
            DeviceStatus::Foreign => "foreign, monitored",
            DeviceStatus::Blacklisted => "devnode blacklisted, unmonitored",
            DeviceStatus::Unmonitored => "devnode whitelisted, unmonitored",
        };
        let _ = writeln!(out, "    {name} {text}");
    }
    out
}

/// One blacklist or exception rule: its text (`vendor:product` for device rules) and
/// whether it comes from the configuration files or the built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlacklistRule {
    pub text: String,
    pub from_config: bool,
}

/// Blacklist rules and exceptions per kind, as `show blacklist` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlacklistView {
    pub devnode: (Vec<BlacklistRule>, Vec<BlacklistRule>),
    pub property: (Vec<BlacklistRule>, Vec<BlacklistRule>),
    pub protocol: (Vec<BlacklistRule>, Vec<BlacklistRule>),
    pub wwid: (Vec<BlacklistRule>, Vec<BlacklistRule>),
    pub device: (Vec<BlacklistRule>, Vec<BlacklistRule>),
}

/// `show blacklist`.
pub fn blacklist(view: &BlacklistView) -> String {
    fn rules(out: &mut String, list: &[BlacklistRule]) {
        if list.is_empty() {
            out.push_str("        <empty>\n");
        }
        for r in list {
            let origin = if r.from_config {
                "(config file rule)"
            } else {
                "(default rule)    "
            };
            let _ = writeln!(out, "        {origin} {}", r.text);
        }
    }
    let mut out = String::new();
    for (title, (black, except)) in [
        ("device node", &view.devnode),
        ("udev property", &view.property),
        ("protocol", &view.protocol),
        ("wwid", &view.wwid),
        ("device", &view.device),
    ] {
        let _ = writeln!(out, "{title} rules:\n- blacklist:");
        rules(&mut out, black);
        out.push_str("- exceptions:\n");
        rules(&mut out, except);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_product_header_of_maps_has_no_revision() {
        // measured in the lab (cli_compat_upstream): upstream 0.14.3's `show wildcards`
        let w = wildcards();
        let (maps, paths) = w.split_once("\npath format wildcards:\n").unwrap();
        assert!(maps.lines().any(|l| l == "%s  vend/prod"), "{maps}");
        assert!(paths.lines().any(|l| l == "%s  vend/prod/rev"), "{paths}");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(32768), "16M");
        assert_eq!(human_size(4 * 1024 * 1024), "2.0G");
        assert_eq!(human_size(1048576000), "500G");
        assert_eq!(human_size(2), "1.0K");
    }

    #[test]
    fn progress_bar() {
        assert_eq!(progress(2, 4), "XXXXX..... 2/4");
        assert_eq!(progress(14, 20), "XXXXXXX... 14/20");
        assert_eq!(progress(0, 0), " 0/0");
        assert_eq!(progress(0, 5), ".......... 0/5");
        assert_eq!(progress(1, 5), "XX........ 1/5");
        assert_eq!(progress(2, 20), "X......... 2/20");
        assert_eq!(progress(3, 20), "X......... 3/20");
        assert_eq!(progress(20, 20), "XXXXXXXXXX 20/20");
        assert_eq!(progress(25, 20), "XXXXXXXXXX 25/20");
        assert_eq!(progress(3, 0), " 3/0");
    }

    #[test]
    fn failback_texts() {
        assert_eq!(failback_text(Failback::Immediate, 0), "immediate");
        assert_eq!(failback_text(Failback::Followover, 0), "followover");
        assert_eq!(failback_text(Failback::Manual, 0), "manual");
        assert_eq!(failback_text(Failback::Deferred(30), 0), "deferred:30");
        assert_eq!(failback_text(Failback::Deferred(30), 15), "XXXXX..... 15/30");
    }

    #[test]
    fn format_pieces_drop_unknown_and_trailing_percent() {
        let f = |c| {
            if c == 'a' { Some("A".to_string()) } else { None }
        };
        assert_eq!(render("x%a%q-%%y%", f, None), "xA-y\n");
    }

    #[test]
    fn lun_hex_swaps_words() {
        let h = Hcil {
            host: 0,
            channel: 0,
            target: 0,
            lun: 1,
        };
        assert_eq!(lun_hex(Some(h)), "0x0001000000000000");
        assert_eq!(lun_hex(None), "0xffffffffffffffff");
    }
}
