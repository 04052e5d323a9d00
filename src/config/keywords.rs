//! The single keyword table of multipath.conf.
//!
//! Every consumer (parser, validation, `show config`, the man-page test, the
//! property selector's built-in defaults) reads this table; there is no other
//! list of keywords. Row order is the order `show config` prints keywords in.

use std::collections::HashMap;
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
    /// POSIX extended regex (blacklists, device vendor/product/revision).
    Regex,
    /// `strtol` base 10, capped to the bounds with a warning.
    Int { min: i64, max: i64 },
    /// Digits only, capped to the upper bound with a warning.
    Uint { max: i64 },
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
    /// `no|0|N`: no and 0 both mean off.
    NoOrN,
    /// `off|0|N`: off and 0 are distinct.
    OffZeroN,
    /// Unsigned seconds or `infinity`.
    DevLoss,
    /// `max|N`.
    MaxFds,
    /// `off|0|1..5`.
    MaxRetries,
    /// `off|on|strict|greedy|smart`, also `no|0|yes|1`.
    FindMultipaths,
    /// `never|always|unused`; `yes` is a deprecated spelling of always, `no` of never.
    FlushOnLastDel,
    /// `off|on|fpin`.
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
    /// String; `/UNSET/` means unset.
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
    pub doc: &'static str,
    /// Ours, not upstream's (documented as an extension in multipath.conf(5)).
    pub extension: bool,
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
                ValueType::Section(
                    Section::Device
                        | Section::Multipath
                        | Section::Protocol
                        | Section::BlacklistDevice
                )
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

const fn kw(
    name: &'static str,
    sections: u16,
    ty: ValueType,
    default: Option<&'static str>,
    doc: &'static str,
) -> Keyword {
    Keyword {
        name,
        sections,
        ty,
        default,
        doc,
        extension: false,
    }
}

/// A keyword upstream does not have.
const fn ext(name: &'static str, sections: u16, ty: ValueType, doc: &'static str) -> Keyword {
    Keyword {
        name,
        sections,
        ty,
        default: None,
        doc,
        extension: true,
    }
}

use ValueType as T;

const INT_MAX: i64 = i32::MAX as i64;
const UINT: ValueType = T::Uint { max: INT_MAX };
const POS: ValueType = T::Int {
    min: 1,
    max: INT_MAX,
};
/// Keywords that every hardware/override/multipath level can set.
const ALL: u16 = DEF | DEV | OVR | MP;
/// Path-level keywords without a multipaths level.
const PATHS: u16 = DEF | DEV | OVR;

pub const SELECTORS: &[&str] = &[
    "round-robin",
    "queue-length",
    "service-time",
    "historical-service-time",
];

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
    kw(
        "defaults",
        ROOT,
        T::Section(Section::Defaults),
        None,
        "Global settings, the lowest configured precedence level.",
    ),
    kw(
        "blacklist",
        ROOT,
        T::Section(Section::Blacklist),
        None,
        "Devices that multipathd must not use.",
    ),
    kw(
        "blacklist_exceptions",
        ROOT,
        T::Section(Section::Blacklist),
        None,
        "Exceptions to the blacklist.",
    ),
    kw(
        "devices",
        ROOT,
        T::Section(Section::Devices),
        None,
        "Per storage-array settings.",
    ),
    kw(
        "overrides",
        ROOT,
        T::Section(Section::Overrides),
        None,
        "Settings that beat every devices entry.",
    ),
    kw(
        "multipaths",
        ROOT,
        T::Section(Section::Multipaths),
        None,
        "Per-map settings keyed by WWID.",
    ),
    // Container entries.
    kw(
        "device",
        DEVS,
        T::Section(Section::Device),
        None,
        "One storage array description.",
    ),
    kw(
        "multipath",
        MPS,
        T::Section(Section::Multipath),
        None,
        "One map description.",
    ),
    // Blacklist keywords.
    kw(
        "devnode",
        BL,
        T::Regex,
        None,
        "Regex on the kernel device name (sda, nvme0n1).",
    ),
    kw("wwid", BL, T::Regex, None, "Regex on the path WWID."),
    kw(
        "property",
        BL,
        T::Regex,
        None,
        "Regex on udev property names.",
    ),
    kw(
        "protocol",
        BL,
        T::Regex,
        None,
        "Regex on the path transport protocol (scsi:fcp, nvme:tcp, …).",
    ),
    kw(
        "device",
        BL,
        T::Section(Section::BlacklistDevice),
        None,
        "A vendor/product pair of regexes.",
    ),
    kw(
        "vendor",
        BLD,
        T::Regex,
        None,
        "Regex on the SCSI vendor string.",
    ),
    kw(
        "product",
        BLD,
        T::Regex,
        None,
        "Regex on the SCSI product string.",
    ),
    // Identification of multipaths and devices entries.
    kw(
        "wwid",
        MP,
        T::Str,
        None,
        "WWID the multipaths entry applies to (exact match).",
    ),
    kw(
        "alias",
        MP,
        T::Str,
        None,
        "Map name to use instead of the WWID or a friendly name.",
    ),
    kw(
        "vendor",
        DEV,
        T::Regex,
        None,
        "Regex on the SCSI vendor string.",
    ),
    kw(
        "product",
        DEV,
        T::Regex,
        None,
        "Regex on the SCSI product string.",
    ),
    kw(
        "revision",
        DEV,
        T::Regex,
        None,
        "Regex on the SCSI revision string.",
    ),
    kw(
        "product_blacklist",
        DEV,
        T::Regex,
        None,
        "Products of this vendor to blacklist.",
    ),
    kw(
        "vpd_vendor",
        DEV,
        T::Choice(&["hp3par"]),
        None,
        "Vendor-specific VPD page to read (hp3par).",
    ),
    // Settings, in show-config order.
    kw(
        "verbosity",
        DEF,
        T::Int { min: 0, max: 4 },
        Some("2"),
        "Log level, 0 (errors only) to 4 (debug).",
    ),
    kw(
        "polling_interval",
        DEF,
        POS,
        Some("5"),
        "Seconds between path checks of a healthy path.",
    ),
    kw(
        "max_polling_interval",
        DEF,
        POS,
        None,
        "Upper bound of the check interval; four times polling_interval when unset.",
    ),
    kw(
        "reassign_maps",
        DEF,
        T::YesNo,
        Some("no"),
        "Remap existing device-mapper maps to the multipath device.",
    ),
    kw(
        "multipath_dir",
        DEF,
        T::Deprecated,
        Some("/lib/multipath"),
        "Deprecated, ignored.",
    ),
    kw(
        "path_selector",
        ALL,
        T::Selector,
        Some("service-time 0"),
        "Kernel path selector with its argument count.",
    ),
    kw(
        "path_grouping_policy",
        ALL,
        T::PgPolicy,
        Some("failover"),
        "How paths are grouped into priority groups.",
    ),
    kw(
        "uid_attrs",
        DEF,
        T::Str,
        None,
        "Per-device-type udev attributes for the WWID, \"sd:ATTR nvme:ATTR\".",
    ),
    kw(
        "uid_attribute",
        PATHS,
        T::Str,
        Some("ID_SERIAL"),
        "udev attribute holding the WWID; empty means read sysfs.",
    ),
    kw(
        "getuid_callout",
        PATHS,
        T::Deprecated,
        None,
        "Deprecated, ignored.",
    ),
    kw("prio", ALL, T::Str, Some("const"), "Prioritizer name."),
    kw(
        "prio_args",
        ALL,
        T::Str,
        Some(""),
        "Arguments of the prioritizer.",
    ),
    kw(
        "features",
        ALL,
        T::Counted,
        Some("0"),
        "Device-mapper feature words preceded by their count.",
    ),
    kw(
        "hardware_handler",
        DEV,
        T::Counted,
        None,
        "Kernel hardware handler, e.g. \"1 alua\".",
    ),
    kw(
        "path_checker",
        PATHS,
        T::Str,
        Some("tur"),
        "Path checker name.",
    ),
    kw("checker", PATHS, T::Str, None, "Alias of path_checker."),
    kw(
        "alias_prefix",
        PATHS,
        T::Str,
        Some("mpath"),
        "Prefix of user friendly names.",
    ),
    kw(
        "failback",
        ALL,
        T::Failback,
        Some("manual"),
        "When to return to the highest priority group.",
    ),
    kw(
        "rr_min_io",
        ALL,
        POS,
        Some("1000"),
        "IOs per path before switching (bio-based maps).",
    ),
    kw(
        "rr_min_io_rq",
        ALL,
        POS,
        Some("1"),
        "IOs per path before switching (request-based maps).",
    ),
    kw(
        "max_fds",
        DEF,
        T::MaxFds,
        None,
        "Open file limit; max means the system maximum.",
    ),
    kw(
        "rr_weight",
        ALL,
        T::Choice(&["priorities", "uniform"]),
        Some("uniform"),
        "Weight paths by priority.",
    ),
    kw(
        "no_path_retry",
        ALL,
        T::NoPathRetry,
        None,
        "Checks to queue for after the last path failed.",
    ),
    kw(
        "queue_without_daemon",
        DEF,
        T::YesNo,
        Some("no"),
        "Keep queueing when multipathd stops.",
    ),
    kw(
        "checker_timeout",
        DEF,
        UINT,
        None,
        "Checker command timeout in seconds; sysfs device timeout when unset.",
    ),
    kw(
        "allow_usb_devices",
        DEF,
        T::YesNo,
        Some("no"),
        "Allow USB devices as paths.",
    ),
    kw(
        "pg_timeout",
        ALL,
        T::Deprecated,
        None,
        "Deprecated, ignored.",
    ),
    kw(
        "flush_on_last_del",
        ALL,
        T::FlushOnLastDel,
        Some("unused"),
        "When to stop queueing as the last path is removed.",
    ),
    kw(
        "user_friendly_names",
        ALL,
        T::YesNo,
        Some("no"),
        "Name maps mpathN instead of by WWID.",
    ),
    kw(
        "mode",
        DEF | MP,
        T::Mode,
        None,
        "Permission bits of the map device node.",
    ),
    kw(
        "uid",
        DEF | MP,
        T::Uid,
        None,
        "Owner of the map device node.",
    ),
    kw(
        "gid",
        DEF | MP,
        T::Gid,
        None,
        "Group of the map device node.",
    ),
    kw(
        "fast_io_fail_tmo",
        PATHS | PROTO,
        T::OffZeroN,
        Some("5"),
        "SCSI transport fast_io_fail_tmo in seconds.",
    ),
    kw(
        "dev_loss_tmo",
        PATHS | PROTO,
        T::DevLoss,
        None,
        "SCSI transport dev_loss_tmo in seconds.",
    ),
    kw(
        "eh_deadline",
        PATHS | PROTO,
        T::OffZeroN,
        None,
        "SCSI error handler deadline in seconds.",
    ),
    kw(
        "max_retries",
        DEF,
        T::MaxRetries,
        None,
        "SCSI command retries of the path devices.",
    ),
    kw(
        "bindings_file",
        DEF,
        T::Deprecated,
        Some("/etc/multipath/bindings"),
        "Deprecated, ignored.",
    ),
    kw(
        "wwids_file",
        DEF,
        T::Deprecated,
        Some("/etc/multipath/wwids"),
        "Deprecated, ignored.",
    ),
    kw(
        "prkeys_file",
        DEF,
        T::Deprecated,
        Some("/etc/multipath/prkeys"),
        "Deprecated, ignored.",
    ),
    kw(
        "log_checker_err",
        DEF,
        T::Choice(&["once", "always"]),
        Some("always"),
        "Log checker errors at every check or once.",
    ),
    kw(
        "reservation_key",
        DEF | MP,
        T::ReservationKey,
        None,
        "Persistent reservation key, or file.",
    ),
    kw(
        "all_tg_pt",
        PATHS,
        T::YesNo,
        Some("no"),
        "Register the reservation key on all target ports.",
    ),
    kw(
        "retain_attached_hw_handler",
        PATHS,
        T::YesNo,
        Some("yes"),
        "Keep a hardware handler the kernel attached.",
    ),
    kw(
        "detect_prio",
        PATHS,
        T::YesNo,
        Some("yes"),
        "Pick the prioritizer from ALUA/ANA support.",
    ),
    kw(
        "detect_checker",
        PATHS,
        T::YesNo,
        Some("yes"),
        "Pick the checker from ALUA/RDAC support.",
    ),
    kw(
        "detect_pgpolicy",
        PATHS,
        T::YesNo,
        Some("yes"),
        "Use group_by_prio when all paths have ALUA/sysfs priorities.",
    ),
    kw(
        "detect_pgpolicy_use_tpg",
        PATHS,
        T::YesNo,
        Some("no"),
        "Let detect_pgpolicy choose group_by_tpg instead.",
    ),
    kw(
        "force_sync",
        DEF,
        T::YesNo,
        Some("no"),
        "Run path checkers synchronously.",
    ),
    kw(
        "strict_timing",
        DEF,
        T::YesNo,
        Some("no"),
        "Keep the check interval exact.",
    ),
    kw(
        "deferred_remove",
        ALL,
        T::YesNo,
        Some("no"),
        "Remove the map once its last opener closes it.",
    ),
    kw(
        "partition_delimiter",
        DEF,
        T::PartitionDelimiter,
        None,
        "String between map name and partition number.",
    ),
    kw(
        "config_dir",
        DEF,
        T::Deprecated,
        Some("/etc/multipath/conf.d"),
        "Deprecated, ignored.",
    ),
    kw(
        "delay_watch_checks",
        ALL,
        T::NoOrN,
        None,
        "Deprecated, mapped to san_path_err_forget_rate.",
    ),
    kw(
        "delay_wait_checks",
        ALL,
        T::NoOrN,
        None,
        "Deprecated, mapped to san_path_err_recovery_time.",
    ),
    kw(
        "san_path_err_threshold",
        ALL,
        T::NoOrN,
        None,
        "Failures before a path's reinstatement is delayed.",
    ),
    kw(
        "san_path_err_forget_rate",
        ALL,
        T::NoOrN,
        None,
        "Checks after which one counted failure is forgotten.",
    ),
    kw(
        "san_path_err_recovery_time",
        ALL,
        T::NoOrN,
        None,
        "Seconds a flaky path stays failed.",
    ),
    kw(
        "marginal_path_err_sample_time",
        ALL,
        T::NoOrN,
        None,
        "Seconds of IO error sampling (at least 120).",
    ),
    kw(
        "marginal_path_err_rate_threshold",
        ALL,
        T::NoOrN,
        None,
        "IO error rate in permille above which a path stays failed.",
    ),
    kw(
        "marginal_path_err_recheck_gap_time",
        ALL,
        T::NoOrN,
        None,
        "Seconds before a marginal path is sampled again.",
    ),
    ext(
        "marginal_path_err_latency_bound",
        ALL,
        T::NoOrN,
        "Milliseconds: a sampling read slower than this counts as an error (extension).",
    ),
    kw(
        "marginal_path_double_failed_time",
        ALL,
        T::NoOrN,
        None,
        "Window in seconds for a second failure to start sampling.",
    ),
    kw(
        "find_multipaths",
        DEF,
        T::FindMultipaths,
        Some("strict"),
        "Which devices become multipath paths.",
    ),
    kw(
        "uxsock_timeout",
        DEF,
        T::Int {
            min: 4000,
            max: INT_MAX,
        },
        Some("4000"),
        "CLI reply timeout in milliseconds.",
    ),
    kw(
        "retrigger_tries",
        DEF,
        UINT,
        Some("3"),
        "Uevent retriggers for paths without a WWID.",
    ),
    kw(
        "retrigger_delay",
        DEF,
        UINT,
        Some("10"),
        "Seconds between uevent retriggers.",
    ),
    kw(
        "missing_uev_wait_timeout",
        DEF,
        UINT,
        Some("30"),
        "Seconds to wait for the map's creation uevent.",
    ),
    kw(
        "skip_kpartx",
        ALL,
        T::YesNo,
        Some("no"),
        "Do not create partition mappings.",
    ),
    kw(
        "disable_changed_wwids",
        DEF,
        T::Deprecated,
        Some("yes"),
        "Deprecated, ignored.",
    ),
    kw(
        "remove_retries",
        DEF,
        UINT,
        Some("0"),
        "Retries of a busy map removal.",
    ),
    kw(
        "max_sectors_kb",
        ALL,
        UINT,
        None,
        "max_sectors_kb set on paths before the map is created.",
    ),
    kw(
        "ghost_delay",
        ALL,
        T::NoOrN,
        None,
        "Seconds to wait for an active path when only ghost paths exist.",
    ),
    kw(
        "find_multipaths_timeout",
        DEF,
        T::Int {
            min: -INT_MAX,
            max: INT_MAX,
        },
        Some("-10"),
        "Seconds to wait for a second path (negative: known hardware only).",
    ),
    kw(
        "enable_foreign",
        DEF,
        T::Str,
        Some("NONE"),
        "Regex of foreign libraries to enable.",
    ),
    kw(
        "marginal_pathgroups",
        DEF,
        T::MarginalPathgroups,
        Some("off"),
        "Put marginal paths into their own path groups.",
    ),
    kw(
        "recheck_wwid",
        PATHS,
        T::YesNo,
        Some("no"),
        "Re-read the WWID when a path comes back.",
    ),
    kw(
        "auto_resize",
        DEF,
        T::Choice(&["never", "grow_only", "grow_shrink"]),
        Some("never"),
        "Resize maps when path sizes change.",
    ),
    kw(
        "purge_disconnected",
        ALL,
        T::YesNo,
        Some("no"),
        "Remove paths the checker reports as disconnected.",
    ),
    // Overrides protocol subsection.
    kw(
        "protocol",
        OVR,
        T::Section(Section::Protocol),
        None,
        "Timeouts for one transport protocol.",
    ),
    kw(
        "type",
        PROTO,
        T::ProtocolType,
        None,
        "Transport protocol the subsection applies to.",
    ),
];

/// Looks a keyword up in a section.
pub fn lookup(section: Section, name: &str) -> Option<&'static Keyword> {
    // Indexed once: the parser looks up every line's keyword.
    static INDEX: OnceLock<HashMap<&'static str, Vec<&'static Keyword>>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let mut m: HashMap<&'static str, Vec<&'static Keyword>> = HashMap::new();
        for k in KEYWORDS {
            m.entry(k.name).or_default().push(k);
        }
        m
    });
    index
        .get(name)?
        .iter()
        .copied()
        .find(|k| k.in_section(section))
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
