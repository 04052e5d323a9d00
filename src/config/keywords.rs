//! The single keyword table of multipath.conf.
//!
//! Every consumer (parser, validation, `show config`, the man-page test, the
//! property selector's built-in defaults) reads this table; there is no other
//! list of keywords. Row order is the order `show config` prints keywords in.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

/// A section (or subsection) a keyword may appear in. Used as bit flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// Top level of the file: only section names live here.
    Root,
    Defaults,
    /// `blacklist` and `blacklist_exceptions` share one keyword set.
    Blacklist,
    /// `device { }` inside a blacklist section.
    BlacklistDevice,
    /// The `devices { }` container.
    Devices,
    /// One `device { }` entry of `devices`.
    Device,
    Overrides,
    /// `protocol { }` inside `overrides`.
    Protocol,
    /// The `multipaths { }` container.
    Multipaths,
    /// One `multipath { }` entry of `multipaths`.
    Multipath,
}

impl Section {
    const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

const ROOT: u16 = Section::Root.bit();
const DEF: u16 = Section::Defaults.bit();
const BL: u16 = Section::Blacklist.bit();
const BLD: u16 = Section::BlacklistDevice.bit();
const DEVS: u16 = Section::Devices.bit();
const DEV: u16 = Section::Device.bit();
const OVR: u16 = Section::Overrides.bit();
const PROTO: u16 = Section::Protocol.bit();
const MPS: u16 = Section::Multipaths.bit();
const MP: u16 = Section::Multipath.bit();

/// How a keyword's value is parsed, stored and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Opens a subsection (`{` follows); the payload is the subsection.
    Section(Section),
    /// Free string.
    Str,
    /// `uid_attrs`: space-separated `prefix:ATTRIBUTE` records; a record without `:` is
    /// dropped with a notice, the rest kept, printed bare.
    UidAttrs,
    /// POSIX extended regex (blacklists, device vendor/product/revision).
    Regex,
    /// `strtol` base 10 (blanks around it and a sign allowed, overflow saturating), capped
    /// to the bounds with a warning.
    Int { min: i64, max: i64 },
    /// Like `Int` from `min` to `i32::MAX`, and 0 leaves the keyword unset (upstream stores
    /// 0 for "not set" in these, and prints the built-in default for it).
    ZeroUnset { min: i64 },
    /// Digits only (no sign), invalid above `max`; under `min` capped with a warning.
    Uint { min: i64, max: i64 },
    /// `Uint` from 1, and a value that does not read is kept as upstream keeps it (see
    /// `value::POLLING_UNREADABLE`), with the same warning.
    PollingInterval,
    /// `yes|1|no|0`.
    YesNo,
    /// Exactly one of the listed words.
    Choice(&'static [&'static str]),
    /// A path grouping policy; any value starting with a policy name is accepted.
    PgPolicy,
    /// `manual|immediate|followover|N`.
    Failback,
    /// `fail|0|queue|N`.
    NoPathRetry,
    /// `no|0|N`: no and 0 both mean off; N is capped to 1.. (so `00` and `-1` become 1).
    NoOrN,
    /// `off|0|N`: off and 0 are distinct; N is capped to 1.. (a negative N becomes 1).
    OffZeroN,
    /// Unsigned seconds or `infinity`.
    DevLoss,
    /// `max|N`.
    MaxFds,
    /// `off|0|N`, N capped to 1..5.
    MaxRetries,
    /// `off|on|strict|greedy|smart`, also `no|0|yes|1`.
    FindMultipaths,
    /// `never|always|unused`; `yes` is a deprecated spelling of always, `no` of never.
    FlushOnLastDel,
    /// `off|on` (`fpin` is refused: no FPIN support in this build).
    MarginalPathgroups,
    /// An argument-counted string whose first word is the count (`features`, `hardware_handler`).
    Counted,
    /// `name nargs args…`: the second word is the count (`path_selector`).
    Selector,
    /// Octal permission bits.
    Mode,
    /// User name or numeric uid.
    Uid,
    /// Group name or numeric gid.
    Gid,
    /// `file` or `0x` + up to 16 hex digits, optionally `:aptpl`.
    ReservationKey,
    /// String without a slash (one with a slash is refused, `/UNSET/` included).
    PartitionDelimiter,
    /// A transport protocol name (`scsi:fcp`, `nvme:tcp`, `ccw`, …).
    ProtocolType,
    /// Accepted and ignored with a notice; `show config` never prints it.
    Deprecated,
}

/// One keyword of multipath.conf.
#[derive(Debug)]
pub struct Keyword {
    pub name: &'static str,
    sections: u16,
    pub ty: ValueType,
    /// Built-in default as configuration text (what an unset defaults entry means).
    pub default: Option<&'static str>,
    /// Ours, not upstream's (documented as an extension in multipath.conf(5)).
    pub extension: bool,
    /// Whether this multipathd honours the keyword (`doc/keywords-status.md` names the
    /// test that shows it, or says why not; `tests/config_manpage.rs` checks it against
    /// this column).
    pub support: Support,
}

/// Whether a keyword set in a file takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Takes effect as upstream's (or is ignored as upstream ignores it: deprecated
    /// keywords, identification keywords of entries, section names).
    Works,
    /// Parsed but without effect here: setting it logs [`not_supported`] at load, with
    /// `instead` saying what the daemon does. `except` is the value that asks for what
    /// the daemon does anyway (no warning for it).
    Refused {
        instead: &'static str,
        except: Option<&'static str>,
    },
}

/// The one wording of a refusal, for keywords (`what` = the keyword) and for checker and
/// prioritizer names (`what` = `path_checker "emc_clariion"`), at a line of a file.
pub fn not_supported(file: &str, line: usize, what: &str, instead: &str) -> String {
    format!("{file} line {line}, {}", unsupported(what, instead))
}

/// The refusal without its place (a path add puts `<dev>: ` in front).
pub fn unsupported(what: &str, instead: &str) -> String {
    format!("{what} is not supported by this multipathd, {instead}")
}

impl Keyword {
    pub fn in_section(&self, s: Section) -> bool {
        self.sections & s.bit() != 0
    }
    /// Whether the keyword opens a subsection.
    pub fn subsection(&self) -> Option<Section> {
        match self.ty {
            ValueType::Section(s) => Some(s),
            _ => None,
        }
    }
    /// May the keyword appear more than once in one section instance?
    pub fn repeatable(&self) -> bool {
        matches!(self.ty, ValueType::Regex) && self.in_section(Section::Blacklist)
            || matches!(
                self.ty,
                ValueType::Section(Section::Device | Section::Multipath | Section::Protocol | Section::BlacklistDevice)
            )
    }
    /// Sections this keyword is allowed in.
    pub fn sections(&self) -> impl Iterator<Item = Section> + '_ {
        ALL_SECTIONS.iter().copied().filter(|s| self.in_section(*s))
    }
}

pub const ALL_SECTIONS: [Section; 10] = [
    Section::Root,
    Section::Defaults,
    Section::Blacklist,
    Section::BlacklistDevice,
    Section::Devices,
    Section::Device,
    Section::Overrides,
    Section::Protocol,
    Section::Multipaths,
    Section::Multipath,
];

const fn kw(name: &'static str, sections: u16, ty: ValueType, default: Option<&'static str>) -> Keyword {
    Keyword {
        name,
        sections,
        ty,
        default,
        extension: false,
        support: Support::Works,
    }
}

/// A keyword upstream does not have.
const fn ext(name: &'static str, sections: u16, ty: ValueType) -> Keyword {
    Keyword {
        name,
        sections,
        ty,
        default: None,
        extension: true,
        support: Support::Works,
    }
}

impl Keyword {
    /// Marks a row as parsed but without effect; `except` is the value that asks for what
    /// the daemon does anyway.
    const fn refused(self, instead: &'static str, except: Option<&'static str>) -> Keyword {
        Keyword {
            support: Support::Refused { instead, except },
            ..self
        }
    }
}

use ValueType as T;

const INT_MAX: i64 = i32::MAX as i64;
/// Upstream's `set_int(…, 0, INT_MAX)` keywords.
const NATURAL: ValueType = T::Int { min: 0, max: INT_MAX };
const UINT_MAX: i64 = u32::MAX as i64;
/// Keywords that every hardware/override/multipath level can set.
const ALL: u16 = DEF | DEV | OVR | MP;
/// Path-level keywords without a multipaths level.
const PATHS: u16 = DEF | DEV | OVR;

pub const SELECTORS: &[&str] = &["round-robin", "queue-length", "service-time", "historical-service-time"];

/// Every protocol name accepted by `overrides { protocol { type … } }` and printed by discovery.
pub const PROTOCOLS: &[&str] = &[
    "scsi:fcp",
    "scsi:spi",
    "scsi:ssa",
    "scsi:sbp",
    "scsi:srp",
    "scsi:iscsi",
    "scsi:sas",
    "scsi:adt",
    "scsi:ata",
    "scsi:usb",
    "scsi:unspec",
    "ccw",
    "cciss",
    "nvme:pcie",
    "nvme:rdma",
    "nvme:fc",
    "nvme:tcp",
    "nvme:loop",
    "nvme:apple-nvme",
    "nvme:unspec",
    "undef",
];

/// Path grouping policy names, in upstream's numbering order.
pub const PGPOLICIES: &[&str] = &[
    "failover",
    "multibus",
    "group_by_serial",
    "group_by_prio",
    "group_by_node_name",
    "group_by_tpg",
];

/// The keyword table.
pub static KEYWORDS: &[Keyword] = &[
    // Top-level sections.
    kw("defaults", ROOT, T::Section(Section::Defaults), None),
    kw("blacklist", ROOT, T::Section(Section::Blacklist), None),
    kw("blacklist_exceptions", ROOT, T::Section(Section::Blacklist), None),
    kw("devices", ROOT, T::Section(Section::Devices), None),
    kw("overrides", ROOT, T::Section(Section::Overrides), None),
    kw("multipaths", ROOT, T::Section(Section::Multipaths), None),
    // Container entries.
    kw("device", DEVS, T::Section(Section::Device), None),
    kw("multipath", MPS, T::Section(Section::Multipath), None),
    // Blacklist keywords.
    kw("devnode", BL, T::Regex, None),
    kw("wwid", BL, T::Regex, None),
    kw("property", BL, T::Regex, None),
    kw("protocol", BL, T::Regex, None),
    kw("device", BL, T::Section(Section::BlacklistDevice), None),
    kw("vendor", BLD, T::Regex, None),
    kw("product", BLD, T::Regex, None),
    // Identification of multipaths and devices entries.
    kw("wwid", MP, T::Str, None),
    kw("alias", MP, T::Str, None),
    kw("vendor", DEV, T::Regex, None),
    kw("product", DEV, T::Regex, None),
    kw("revision", DEV, T::Regex, None),
    kw("product_blacklist", DEV, T::Regex, None),
    kw("vpd_vendor", DEV, T::Choice(&["hp3par"]), None)
        .refused("the vendor-specific VPD page is not read (%g shows [undef])", None),
    // Settings, in show-config order.
    kw("verbosity", DEF, T::Int { min: 0, max: 4 }, Some("2")),
    kw("polling_interval", DEF, T::PollingInterval, Some("5")),
    kw("max_polling_interval", DEF, T::Uint { min: 0, max: UINT_MAX }, None),
    kw("reassign_maps", DEF, T::YesNo, Some("no")).refused(
        "device-mapper tables found on the paths are left as they are",
        Some("no"),
    ),
    kw("multipath_dir", DEF, T::Deprecated, Some("/lib/multipath")),
    kw("path_selector", ALL, T::Selector, Some("service-time 0")),
    kw("path_grouping_policy", ALL, T::PgPolicy, Some("failover")),
    kw("uid_attrs", DEF, T::UidAttrs, None),
    kw("uid_attribute", PATHS, T::Str, Some("ID_SERIAL")),
    kw("getuid_callout", PATHS, T::Deprecated, None),
    kw("prio", ALL, T::Str, Some("const")),
    kw("prio_args", ALL, T::Str, Some("")),
    kw("features", ALL, T::Counted, Some("0")),
    kw("hardware_handler", DEV, T::Counted, Some("0")),
    kw("path_checker", PATHS, T::Str, Some("tur")),
    kw("checker", PATHS, T::Str, None),
    kw("alias_prefix", PATHS, T::Str, Some("mpath")),
    kw("failback", ALL, T::Failback, Some("manual")),
    kw("rr_min_io", ALL, T::ZeroUnset { min: 0 }, Some("1000")),
    kw("rr_min_io_rq", ALL, T::ZeroUnset { min: 0 }, Some("1")),
    kw("max_fds", DEF, T::MaxFds, Some("max")),
    kw("rr_weight", ALL, T::Choice(&["priorities", "uniform"]), Some("uniform")),
    kw("no_path_retry", ALL, T::NoPathRetry, None),
    kw("queue_without_daemon", DEF, T::YesNo, Some("no")),
    kw("checker_timeout", DEF, T::ZeroUnset { min: 0 }, None),
    kw("allow_usb_devices", DEF, T::YesNo, Some("no")),
    kw("pg_timeout", DEF | DEV | MP, T::Deprecated, None),
    kw("flush_on_last_del", ALL, T::FlushOnLastDel, Some("unused")),
    kw("user_friendly_names", ALL, T::YesNo, Some("no")),
    kw("mode", DEF | MP, T::Mode, None).refused("the map's device node keeps the mode udev gives it", None),
    kw("uid", DEF | MP, T::Uid, None).refused("the map's device node keeps the owner udev gives it", None),
    kw("gid", DEF | MP, T::Gid, None).refused("the map's device node keeps the group udev gives it", None),
    kw("fast_io_fail_tmo", PATHS | PROTO, T::OffZeroN, Some("5")),
    kw("dev_loss_tmo", PATHS | PROTO, T::DevLoss, None),
    kw("eh_deadline", PATHS | PROTO, T::OffZeroN, None),
    kw("max_retries", DEF, T::MaxRetries, None),
    kw("bindings_file", DEF, T::Deprecated, Some("/etc/multipath/bindings")),
    kw("wwids_file", DEF, T::Deprecated, Some("/etc/multipath/wwids")),
    kw("prkeys_file", DEF, T::Deprecated, Some("/etc/multipath/prkeys")),
    kw("log_checker_err", DEF, T::Choice(&["once", "always"]), Some("always")),
    kw("reservation_key", DEF | MP, T::ReservationKey, None),
    kw("all_tg_pt", PATHS, T::YesNo, Some("no")),
    kw("retain_attached_hw_handler", PATHS, T::YesNo, Some("yes")),
    kw("detect_prio", PATHS, T::YesNo, Some("yes")),
    kw("detect_checker", PATHS, T::YesNo, Some("yes")),
    kw("detect_pgpolicy", PATHS, T::YesNo, Some("yes")),
    kw("detect_pgpolicy_use_tpg", PATHS, T::YesNo, Some("no")),
    kw("force_sync", DEF, T::YesNo, Some("no")).refused("path checks stay asynchronous", Some("no")),
    kw("strict_timing", DEF, T::YesNo, Some("no"))
        .refused("checks keep the whole-second schedule of the checker loop", Some("no")),
    kw("deferred_remove", ALL, T::YesNo, Some("no")),
    kw("partition_delimiter", DEF, T::PartitionDelimiter, None)
        .refused("partition maps keep the names kpartx gave them", None),
    kw("config_dir", DEF, T::Deprecated, Some("/etc/multipath/conf.d")),
    kw("delay_watch_checks", ALL, T::NoOrN, Some("no")),
    kw("delay_wait_checks", ALL, T::NoOrN, Some("no")),
    kw("san_path_err_threshold", ALL, T::NoOrN, Some("no")),
    kw("san_path_err_forget_rate", ALL, T::NoOrN, Some("no")),
    kw("san_path_err_recovery_time", ALL, T::NoOrN, Some("no")),
    kw("marginal_path_err_sample_time", ALL, T::NoOrN, Some("no")),
    kw("marginal_path_err_rate_threshold", ALL, T::NoOrN, Some("no")),
    kw("marginal_path_err_recheck_gap_time", ALL, T::NoOrN, Some("no")),
    ext("marginal_path_err_latency_bound", ALL, T::NoOrN),
    kw("marginal_path_double_failed_time", ALL, T::NoOrN, Some("no")),
    kw("find_multipaths", DEF, T::FindMultipaths, Some("strict")),
    kw(
        "uxsock_timeout",
        DEF,
        T::Int {
            min: 4000,
            max: INT_MAX,
        },
        Some("4000"),
    ),
    kw("retrigger_tries", DEF, NATURAL, Some("3")),
    kw("retrigger_delay", DEF, NATURAL, Some("10")),
    kw("missing_uev_wait_timeout", DEF, NATURAL, Some("30"))
        .refused("the daemon does not wait for the udev event of a map it created", None),
    kw("skip_kpartx", ALL, T::YesNo, Some("no")),
    kw("disable_changed_wwids", DEF, T::Deprecated, Some("yes")),
    kw("remove_retries", DEF, NATURAL, Some("0")).refused("the removal of a busy map is tried once", Some("0")),
    kw("max_sectors_kb", ALL, T::ZeroUnset { min: 0 }, None),
    kw("ghost_delay", ALL, T::NoOrN, Some("no")),
    kw(
        "find_multipaths_timeout",
        DEF,
        T::ZeroUnset { min: i32::MIN as i64 },
        Some("-10"),
    )
    .refused(
        "a single path of a find_multipaths smart WWID is never released after a timeout",
        None,
    ),
    kw("enable_foreign", DEF, T::Str, Some("NONE")).refused("no foreign library is loaded", Some("NONE")),
    kw("marginal_pathgroups", DEF, T::MarginalPathgroups, Some("off")),
    kw("recheck_wwid", PATHS, T::YesNo, Some("no"))
        .refused("the WWID of a path that comes back is not read again", Some("no")),
    kw(
        "auto_resize",
        DEF,
        T::Choice(&["never", "grow_only", "grow_shrink"]),
        Some("never"),
    ),
    kw("purge_disconnected", ALL, T::YesNo, Some("no"))
        .refused("a disconnected path stays until its device is removed", Some("no")),
    // Overrides protocol subsection.
    kw("protocol", OVR, T::Section(Section::Protocol), None),
    kw("type", PROTO, T::ProtocolType, None),
];

/// The order `show config` prints a section's keywords in: upstream's, which differs between
/// sections (e.g. `path_grouping_policy` before `path_selector` in a device entry, after it in
/// `defaults`). Every printable keyword of the section is listed once (a test checks it); our
/// extensions come after the upstream keyword they belong with.
pub fn print_order(section: Section) -> &'static [&'static str] {
    match section {
        Section::Defaults => &[
            "verbosity",
            "polling_interval",
            "max_polling_interval",
            "reassign_maps",
            "path_selector",
            "path_grouping_policy",
            "uid_attrs",
            "uid_attribute",
            "prio",
            "prio_args",
            "features",
            "path_checker",
            "alias_prefix",
            "failback",
            "rr_min_io",
            "rr_min_io_rq",
            "max_fds",
            "rr_weight",
            "no_path_retry",
            "queue_without_daemon",
            "checker_timeout",
            "allow_usb_devices",
            "flush_on_last_del",
            "user_friendly_names",
            "mode",
            "uid",
            "gid",
            "fast_io_fail_tmo",
            "dev_loss_tmo",
            "eh_deadline",
            "max_retries",
            "log_checker_err",
            "reservation_key",
            "all_tg_pt",
            "retain_attached_hw_handler",
            "detect_prio",
            "detect_checker",
            "detect_pgpolicy",
            "detect_pgpolicy_use_tpg",
            "force_sync",
            "strict_timing",
            "deferred_remove",
            "partition_delimiter",
            "delay_watch_checks",
            "delay_wait_checks",
            "san_path_err_threshold",
            "san_path_err_forget_rate",
            "san_path_err_recovery_time",
            "marginal_path_err_sample_time",
            "marginal_path_err_rate_threshold",
            "marginal_path_err_recheck_gap_time",
            "marginal_path_err_latency_bound",
            "marginal_path_double_failed_time",
            "find_multipaths",
            "uxsock_timeout",
            "retrigger_tries",
            "retrigger_delay",
            "missing_uev_wait_timeout",
            "skip_kpartx",
            "purge_disconnected",
            "remove_retries",
            "max_sectors_kb",
            "ghost_delay",
            "auto_resize",
            "find_multipaths_timeout",
            "enable_foreign",
            "marginal_pathgroups",
            "recheck_wwid",
        ],
        Section::Device => &[
            "vendor",
            "product",
            "revision",
            "product_blacklist",
            "path_grouping_policy",
            "uid_attribute",
            "path_selector",
            "path_checker",
            "alias_prefix",
            "features",
            "hardware_handler",
            "prio",
            "prio_args",
            "failback",
            "rr_weight",
            "no_path_retry",
            "rr_min_io",
            "rr_min_io_rq",
            "flush_on_last_del",
            "fast_io_fail_tmo",
            "dev_loss_tmo",
            "eh_deadline",
            "user_friendly_names",
            "retain_attached_hw_handler",
            "detect_prio",
            "detect_checker",
            "detect_pgpolicy",
            "detect_pgpolicy_use_tpg",
            "deferred_remove",
            "delay_watch_checks",
            "delay_wait_checks",
            "san_path_err_threshold",
            "san_path_err_forget_rate",
            "san_path_err_recovery_time",
            "marginal_path_err_sample_time",
            "marginal_path_err_rate_threshold",
            "marginal_path_err_recheck_gap_time",
            "marginal_path_err_latency_bound",
            "marginal_path_double_failed_time",
            "skip_kpartx",
            "purge_disconnected",
            "max_sectors_kb",
            "ghost_delay",
            "all_tg_pt",
            "vpd_vendor",
            "recheck_wwid",
        ],
        Section::Overrides => &[
            "path_grouping_policy",
            "uid_attribute",
            "path_selector",
            "path_checker",
            "alias_prefix",
            "features",
            "prio",
            "prio_args",
            "failback",
            "rr_weight",
            "no_path_retry",
            "rr_min_io",
            "rr_min_io_rq",
            "flush_on_last_del",
            "fast_io_fail_tmo",
            "dev_loss_tmo",
            "eh_deadline",
            "user_friendly_names",
            "retain_attached_hw_handler",
            "detect_prio",
            "detect_checker",
            "detect_pgpolicy",
            "detect_pgpolicy_use_tpg",
            "deferred_remove",
            "delay_watch_checks",
            "delay_wait_checks",
            "san_path_err_threshold",
            "san_path_err_forget_rate",
            "san_path_err_recovery_time",
            "marginal_path_err_sample_time",
            "marginal_path_err_rate_threshold",
            "marginal_path_err_recheck_gap_time",
            "marginal_path_err_latency_bound",
            "marginal_path_double_failed_time",
            "skip_kpartx",
            "purge_disconnected",
            "max_sectors_kb",
            "ghost_delay",
            "all_tg_pt",
            "recheck_wwid",
        ],
        Section::Protocol => &["type", "fast_io_fail_tmo", "dev_loss_tmo", "eh_deadline"],
        Section::Multipath => &[
            "wwid",
            "alias",
            "path_grouping_policy",
            "path_selector",
            "prio",
            "prio_args",
            "failback",
            "rr_weight",
            "no_path_retry",
            "rr_min_io",
            "rr_min_io_rq",
            "flush_on_last_del",
            "features",
            "mode",
            "uid",
            "gid",
            "reservation_key",
            "user_friendly_names",
            "deferred_remove",
            "delay_watch_checks",
            "delay_wait_checks",
            "san_path_err_threshold",
            "san_path_err_forget_rate",
            "san_path_err_recovery_time",
            "marginal_path_err_sample_time",
            "marginal_path_err_rate_threshold",
            "marginal_path_err_recheck_gap_time",
            "marginal_path_err_latency_bound",
            "marginal_path_double_failed_time",
            "skip_kpartx",
            "purge_disconnected",
            "max_sectors_kb",
            "ghost_delay",
        ],
        Section::Root | Section::Blacklist | Section::BlacklistDevice | Section::Devices | Section::Multipaths => &[],
    }
}

/// Declares [`Setting`]: the keywords the daemon reads, as names the compiler checks.
macro_rules! keyword_ids {
    ($($id:ident = $name:literal,)*) => {
        /// A keyword the daemon reads a setting of. Reading goes through this enum,
        /// never through a string, so a typo does not compile; a test checks that
        /// every variant names a row of [`KEYWORDS`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Setting {
            $($id,)*
        }

        impl Setting {
            pub const ALL: &'static [Setting] = &[$(Setting::$id,)*];

            pub const fn name(self) -> &'static str {
                match self {
                    $(Setting::$id => $name,)*
                }
            }
        }
    };
}

keyword_ids! {
    Alias = "alias",
    AliasPrefix = "alias_prefix",
    AllTgPt = "all_tg_pt",
    AllowUsbDevices = "allow_usb_devices",
    AutoResize = "auto_resize",
    CheckerTimeout = "checker_timeout",
    DeferredRemove = "deferred_remove",
    DelayWaitChecks = "delay_wait_checks",
    DelayWatchChecks = "delay_watch_checks",
    DetectChecker = "detect_checker",
    DetectPgpolicy = "detect_pgpolicy",
    DetectPgpolicyUseTpg = "detect_pgpolicy_use_tpg",
    DetectPrio = "detect_prio",
    DevLossTmo = "dev_loss_tmo",
    EhDeadline = "eh_deadline",
    Failback = "failback",
    FastIoFailTmo = "fast_io_fail_tmo",
    Features = "features",
    FindMultipaths = "find_multipaths",
    FlushOnLastDel = "flush_on_last_del",
    GhostDelay = "ghost_delay",
    Gid = "gid",
    HardwareHandler = "hardware_handler",
    LogCheckerErr = "log_checker_err",
    MarginalPathDoubleFailedTime = "marginal_path_double_failed_time",
    MarginalPathErrLatencyBound = "marginal_path_err_latency_bound",
    MarginalPathErrRateThreshold = "marginal_path_err_rate_threshold",
    MarginalPathErrRecheckGapTime = "marginal_path_err_recheck_gap_time",
    MarginalPathErrSampleTime = "marginal_path_err_sample_time",
    MarginalPathgroups = "marginal_pathgroups",
    MaxFds = "max_fds",
    MaxPollingInterval = "max_polling_interval",
    MaxRetries = "max_retries",
    MaxSectorsKb = "max_sectors_kb",
    Mode = "mode",
    NoPathRetry = "no_path_retry",
    PathChecker = "path_checker",
    PathGroupingPolicy = "path_grouping_policy",
    PathSelector = "path_selector",
    PollingInterval = "polling_interval",
    Prio = "prio",
    PrioArgs = "prio_args",
    Product = "product",
    ProductBlacklist = "product_blacklist",
    PurgeDisconnected = "purge_disconnected",
    QueueWithoutDaemon = "queue_without_daemon",
    RecheckWwid = "recheck_wwid",
    ReservationKey = "reservation_key",
    RetainAttachedHwHandler = "retain_attached_hw_handler",
    RetriggerDelay = "retrigger_delay",
    RetriggerTries = "retrigger_tries",
    Revision = "revision",
    RrMinIo = "rr_min_io",
    RrMinIoRq = "rr_min_io_rq",
    RrWeight = "rr_weight",
    SanPathErrForgetRate = "san_path_err_forget_rate",
    SanPathErrRecoveryTime = "san_path_err_recovery_time",
    SanPathErrThreshold = "san_path_err_threshold",
    SkipKpartx = "skip_kpartx",
    Type = "type",
    Uid = "uid",
    UidAttribute = "uid_attribute",
    UidAttrs = "uid_attrs",
    UserFriendlyNames = "user_friendly_names",
    UxsockTimeout = "uxsock_timeout",
    Vendor = "vendor",
    Verbosity = "verbosity",
    VpdVendor = "vpd_vendor",
    Wwid = "wwid",
}

impl Setting {
    /// The keyword's row in `section`, if it may appear there.
    pub fn row(self, section: Section) -> Option<&'static Keyword> {
        lookup(section, self.name())
    }

    /// The built-in default as configuration text, from the one table.
    pub fn default_text(self) -> Option<&'static str> {
        KEYWORDS
            .iter()
            .filter(|k| k.name == self.name())
            .find_map(|k| k.default)
    }

    /// The built-in default of a numeric keyword (0 for one without a default; a test
    /// checks the keywords read this way have one).
    pub fn default_int(self) -> i64 {
        self.default_text().and_then(|t| t.parse().ok()).unwrap_or(0)
    }
}

/// Looks a keyword up in a section.
pub fn lookup(section: Section, name: &str) -> Option<&'static Keyword> {
    named(name).iter().copied().find(|k| k.in_section(section))
}

/// Every row of the table with this name (a name may have a row per section).
pub fn named(name: &str) -> &'static [&'static Keyword] {
    // Indexed once: the parser looks up every line's keyword, so the index hashes with
    // FNV-1a (short names, no untrusted-key flooding concern: the keys are the table's).
    static INDEX: OnceLock<HashMap<&'static str, Vec<&'static Keyword>, BuildHasherDefault<Fnv>>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut m: HashMap<&'static str, Vec<&'static Keyword>, BuildHasherDefault<Fnv>> = HashMap::default();
        for k in KEYWORDS {
            m.entry(k.name).or_default().push(k);
        }
        m
    });
    index.get(name).map_or(&[], Vec::as_slice)
}

/// FNV-1a, for the keyword index.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Value keywords (no subsection openers) of a section, in table order.
pub fn value_keywords(section: Section) -> impl Iterator<Item = &'static Keyword> {
    KEYWORDS
        .iter()
        .filter(move |k| k.in_section(section) && k.subsection().is_none())
}

/// The keyword a setting is stored under (`checker` is stored as `path_checker`).
pub fn canonical(name: &str) -> &str {
    match name {
        "checker" => "path_checker",
        n => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_settings_read_with_a_fallback_have_a_table_default() {
        for kw in [
            Setting::UxsockTimeout,
            Setting::Verbosity,
            Setting::RetriggerTries,
            Setting::RetriggerDelay,
        ] {
            assert!(
                kw.default_text().and_then(|t| t.parse::<i64>().ok()).is_some(),
                "{kw:?}"
            );
        }
        assert_eq!(Setting::UxsockTimeout.default_int(), 4000);
    }

    #[test]
    fn print_order_lists_every_printable_keyword_once() {
        for s in [
            Section::Defaults,
            Section::Device,
            Section::Overrides,
            Section::Protocol,
            Section::Multipath,
        ] {
            let mut listed: Vec<&str> = print_order(s).to_vec();
            let mut printable: Vec<&str> = value_keywords(s)
                .filter(|k| k.name != "checker" && k.ty != ValueType::Deprecated)
                .map(|k| k.name)
                .collect();
            listed.sort_unstable();
            let n = listed.len();
            listed.dedup();
            assert_eq!(n, listed.len(), "{s:?}: a keyword listed twice");
            printable.sort_unstable();
            assert_eq!(listed, printable, "{s:?}");
        }
    }

    #[test]
    fn every_kw_is_a_table_row() {
        for &k in Setting::ALL {
            assert!(
                KEYWORDS
                    .iter()
                    .any(|row| row.name == k.name() && row.subsection().is_none()),
                "{k:?}"
            );
        }
    }
}
