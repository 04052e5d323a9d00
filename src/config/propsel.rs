//! Property selection: which configuration level sets each map and path
//! attribute, with the origin string upstream logs next to the value.
//!
//! Precedence: multipaths > overrides (> overrides protocol for the transport
//! timeouts) > devices (all matching entries, user entries first, first entry
//! setting the attribute wins) > defaults > built-in. Which levels apply to a
//! keyword comes from the keyword table: a keyword not allowed in a section is
//! never looked up there.

use super::dump::builtin_default;
use super::keywords::{Section, Setting};
use super::model::{Attrs, Config, DeviceEntry, MultipathEntry};
use super::value::{Value, enc};

pub const ORIGIN_MULTIPATHS: &str = "(setting: multipath.conf multipaths section)";
pub const ORIGIN_OVERRIDES: &str = "(setting: multipath.conf overrides section)";
pub const ORIGIN_OVERRIDES_PROTOCOL: &str = "(setting: multipath.conf overrides protocol section)";
pub const ORIGIN_HWE: &str = "(setting: storage device configuration)";
pub const ORIGIN_CONF: &str = "(setting: multipath.conf defaults/devices section)";
pub const ORIGIN_DEFAULT: &str = "(setting: multipath internal)";
pub const ORIGIN_MARGINAL_PATH: &str = "(setting: implied by marginal_path check)";
pub const ORIGIN_DELAY_WATCH: &str = "(setting: implied by delay_watch_checks)";
pub const ORIGIN_DELAY_WAIT: &str = "(setting: implied by delay_wait_checks)";
pub const ORIGIN_AUTODETECT: &str = "(setting: storage device autodetected)";
pub const ORIGIN_RETAINED: &str = "(setting: retained by kernel driver)";
pub const ORIGIN_TPGS: &str = "(setting: autodetected from TPGS)";
pub const ORIGIN_TPG_FALLBACK: &str = "(setting: emergency fallback - not all paths use alua prio)";
pub const ORIGIN_ALUA_FALLBACK: &str = "(setting: emergency fallback - alua failed)";
pub const ORIGIN_FEATURE_QUEUE: &str = "(inherited setting from feature 'queue_if_no_path')";
pub const ORIGIN_UID_ATTRS: &str = "(setting: multipath.conf defaults section / uid_attrs)";

const FEATURE_QUEUE_IF_NO_PATH: &str = "queue_if_no_path";
const FEATURE_RETAIN_HWHANDLER: &str = "retain_attached_hw_handler";

/// Removes every occurrence of `feature` (one or more words) from a
/// count-prefixed feature string and fixes the count: `"2 a b"` minus `a`
/// is `"1 b"`. A string without a valid count is returned unchanged.
pub fn remove_feature(features: &str, feature: &str) -> String {
    let words: Vec<&str> = features.split_ascii_whitespace().collect();
    let pat: Vec<&str> = feature.split_ascii_whitespace().collect();
    let Some(count) = words.first().and_then(|c| c.parse::<usize>().ok()) else {
        return features.to_string();
    };
    if pat.is_empty() {
        return features.to_string();
    }
    let mut rest: Vec<&str> = Vec::new();
    let mut i = 1;
    let mut removed = 0;
    while i < words.len() {
        if words[i..].starts_with(&pat) {
            i += pat.len();
            removed += pat.len();
        } else {
            rest.push(words[i]);
            i += 1;
        }
    }
    if removed == 0 {
        return features.to_string();
    }
    let mut out = count.saturating_sub(removed).to_string();
    for w in rest {
        out.push(' ');
        out.push_str(w);
    }
    out
}

/// A selected value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<T> {
    pub value: T,
    pub origin: &'static str,
}

impl<T> Selected<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Selected<U> {
        Selected {
            value: f(self.value),
            origin: self.origin,
        }
    }
}

/// `no_path_retry`, as selected for a map; the checker state machine and the
/// `show maps` output use it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPathRetry {
    /// Not configured anywhere: IO fails unless the kernel table queues.
    Undef,
    Fail,
    Queue,
    /// Queue for this many checker intervals with no usable path, then fail IO.
    Retries(u32),
}

/// `failback`, as selected for a map; the checker state machine and the
/// `show maps` output use it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failback {
    Manual,
    Immediate,
    Followover,
    /// Switch back this many seconds after a better group became usable.
    Deferred(u32),
}

/// `fast_io_fail_tmo`, `dev_loss_tmo`, `eh_deadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    Off,
    /// Seconds; `dev_loss_tmo infinity` is `u32::MAX`.
    Secs(u32),
}

/// `max_retries`, as selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxRetries {
    /// Leave the number of retries to the kernel (it takes -1 for that).
    Off,
    Count(u32),
}

/// The san_path_err / marginal_path settings of a map after upstream's
/// interaction rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShakyPath {
    pub san_path_err_threshold: Selected<Option<u32>>,
    pub san_path_err_forget_rate: Selected<Option<u32>>,
    pub san_path_err_recovery_time: Selected<Option<u32>>,
    pub marginal_path_err_sample_time: Selected<Option<u32>>,
    pub marginal_path_err_rate_threshold: Selected<Option<u32>>,
    pub marginal_path_err_recheck_gap_time: Selected<Option<u32>>,
    pub marginal_path_double_failed_time: Selected<Option<u32>>,
}

impl ShakyPath {
    /// Whether IO-error based marginal path detection is on.
    pub fn marginal_path_enabled(&self) -> bool {
        self.marginal_path_err_sample_time.value.is_some()
            && self.marginal_path_err_rate_threshold.value.is_some()
            && self.marginal_path_err_recheck_gap_time.value.is_some()
            && self.marginal_path_double_failed_time.value.is_some()
    }

    pub fn san_path_err_enabled(&self) -> bool {
        self.san_path_err_threshold.value.is_some()
            && self.san_path_err_forget_rate.value.is_some()
            && self.san_path_err_recovery_time.value.is_some()
    }
}

/// Selects settings for one path / map identity.
#[derive(Debug)]
pub struct Selector<'a> {
    cfg: &'a Config,
    mpe: Option<&'a MultipathEntry>,
    /// Matching hardware entries, user entries first (reverse table order).
    hwes: Vec<&'a DeviceEntry>,
}

fn as_str(v: Value) -> String {
    match v {
        Value::Str(s) => s,
        Value::Int(n) => n.to_string(),
        Value::Bool(b) => if b { "yes" } else { "no" }.to_string(),
    }
}

fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::Bool(b) => i64::from(*b),
        Value::Str(_) => 0,
    }
}

fn as_bool(v: &Value) -> bool {
    matches!(v, Value::Bool(true))
}

fn u32_of(n: i64) -> u32 {
    n.clamp(0, i64::from(u32::MAX)) as u32
}

/// `no|N` values: `None` means off.
fn no_or_n(v: &Value) -> Option<u32> {
    match as_int(v) {
        n if n > 0 => Some(u32_of(n)),
        _ => None,
    }
}

impl<'a> Selector<'a> {
    pub fn new(cfg: &'a Config, vendor: &str, product: &str, revision: &str, wwid: &str) -> Selector<'a> {
        let mpe = cfg.multipaths.iter().find(|m| m.wwid() == Some(wwid));
        let hwes = cfg
            .all_devices()
            .rev()
            .filter(|h| h.matches(vendor, product, revision))
            .collect();
        Selector { cfg, mpe, hwes }
    }

    /// The matching hardware entries, highest precedence first.
    pub fn hwes(&self) -> &[&'a DeviceEntry] {
        &self.hwes
    }

    /// Lookup through the levels the keyword table allows for `kw`; `None` when
    /// no level sets it and the defaults section has no built-in default for it.
    pub fn get(&self, kw: Setting) -> Option<Selected<Value>> {
        let key = kw.name();
        let allowed = |s: Section| kw.row(s).is_some();
        let from = |a: &Attrs, origin| {
            a.get(key).map(|v| Selected {
                value: v.clone(),
                origin,
            })
        };
        if allowed(Section::Multipath)
            && let Some(s) = self.mpe.and_then(|m| from(&m.attrs, ORIGIN_MULTIPATHS))
        {
            return Some(s);
        }
        if allowed(Section::Overrides)
            && let Some(s) = from(&self.cfg.overrides.attrs, ORIGIN_OVERRIDES)
        {
            return Some(s);
        }
        if allowed(Section::Device)
            && let Some(s) = self.hwes.iter().find_map(|h| from(&h.attrs, ORIGIN_HWE))
        {
            return Some(s);
        }
        if allowed(Section::Defaults)
            && let Some(s) = from(&self.cfg.defaults, ORIGIN_CONF)
        {
            return Some(s);
        }
        kw.row(Section::Defaults)
            .and_then(builtin_default)
            .map(|value| Selected {
                value,
                origin: ORIGIN_DEFAULT,
            })
    }

    /// A string setting; unset everywhere, the table's built-in default (every
    /// keyword read this way has one: `string_settings_have_a_table_default`).
    fn string(&self, kw: Setting) -> Selected<String> {
        self.get(kw).map(|s| s.map(as_str)).unwrap_or_else(|| Selected {
            value: kw.default_text().unwrap_or_default().to_string(),
            origin: ORIGIN_DEFAULT,
        })
    }

    fn int(&self, kw: Setting) -> Option<Selected<i64>> {
        self.get(kw).map(|s| s.map(|v| as_int(&v)))
    }

    fn flag(&self, kw: Setting) -> Selected<bool> {
        self.get(kw).map(|s| s.map(|v| as_bool(&v))).unwrap_or(Selected {
            value: false,
            origin: ORIGIN_DEFAULT,
        })
    }

    fn no_or_n(&self, kw: Setting) -> Selected<Option<u32>> {
        self.get(kw).map(|s| s.map(|v| no_or_n(&v))).unwrap_or(Selected {
            value: None,
            origin: ORIGIN_DEFAULT,
        })
    }

    pub fn pgpolicy(&self) -> Selected<String> {
        self.string(Setting::PathGroupingPolicy)
    }
    pub fn selector(&self) -> Selected<String> {
        self.string(Setting::PathSelector)
    }
    /// Features with `queue_if_no_path` and `retain_attached_hw_handler`
    /// taken out: as upstream, those two are expressed through
    /// `no_path_retry` and `retain_attached_hw_handler` instead.
    pub fn features(&self) -> Selected<String> {
        let raw = self.string(Setting::Features);
        let origin = raw.origin;
        let mut f = raw.value;
        for word in [FEATURE_QUEUE_IF_NO_PATH, FEATURE_RETAIN_HWHANDLER] {
            f = remove_feature(&f, word);
        }
        Selected { value: f, origin }
    }
    /// Configured hardware handler (the kernel's attached handler and TPGS
    /// detection are applied by the caller).
    pub fn hwhandler(&self) -> Selected<String> {
        self.string(Setting::HardwareHandler)
    }
    pub fn checker(&self) -> Selected<String> {
        self.string(Setting::PathChecker)
    }
    pub fn uid_attribute_configured(&self) -> Selected<String> {
        self.string(Setting::UidAttribute)
    }

    /// uid_attribute for device `devname`: a matching `uid_attrs` entry beats
    /// every other level.
    pub fn uid_attribute(&self, devname: &str) -> Selected<String> {
        if let Some(Value::Str(attrs)) = self.cfg.defaults.get(Setting::UidAttrs.name()) {
            for item in attrs.split_ascii_whitespace() {
                if let Some((prefix, attr)) = item.split_once(':')
                    && devname.starts_with(prefix)
                {
                    return Selected {
                        value: attr.to_string(),
                        origin: ORIGIN_UID_ATTRS,
                    };
                }
            }
        }
        self.uid_attribute_configured()
    }

    /// Prioritizer name and arguments. Within the hardware entries name and
    /// arguments are found independently; elsewhere they come as a pair.
    pub fn prio(&self) -> Selected<(String, String)> {
        let pair = |a: &Attrs| match a.get(Setting::Prio.name()) {
            Some(Value::Str(p)) => {
                let args = match a.get(Setting::PrioArgs.name()) {
                    Some(Value::Str(s)) => s.clone(),
                    _ => String::new(),
                };
                Some((p.clone(), args))
            }
            _ => None,
        };
        if let Some(v) = self.mpe.and_then(|m| pair(&m.attrs)) {
            return Selected {
                value: v,
                origin: ORIGIN_MULTIPATHS,
            };
        }
        if let Some(v) = pair(&self.cfg.overrides.attrs) {
            return Selected {
                value: v,
                origin: ORIGIN_OVERRIDES,
            };
        }
        let first = |k: Setting| self.hwes.iter().find_map(|h| h.str(k).map(str::to_string));
        if let Some(name) = first(Setting::Prio) {
            return Selected {
                value: (name, first(Setting::PrioArgs).unwrap_or_default()),
                origin: ORIGIN_HWE,
            };
        }
        if let Some(v) = pair(&self.cfg.defaults) {
            return Selected {
                value: v,
                origin: ORIGIN_CONF,
            };
        }
        Selected {
            value: ("const".to_string(), String::new()),
            origin: ORIGIN_DEFAULT,
        }
    }

    pub fn failback(&self) -> Selected<Failback> {
        self.int(Setting::Failback).map_or(
            Selected {
                value: Failback::Manual,
                origin: ORIGIN_DEFAULT,
            },
            |s| {
                s.map(|n| match n {
                    enc::FAILBACK_IMMEDIATE => Failback::Immediate,
                    enc::FAILBACK_FOLLOWOVER => Failback::Followover,
                    n if n > 0 => Failback::Deferred(u32_of(n)),
                    _ => Failback::Manual,
                })
            },
        )
    }

    /// `true` = priorities, `false` = uniform.
    pub fn rr_weight_priorities(&self) -> Selected<bool> {
        self.string(Setting::RrWeight).map(|s| s == "priorities")
    }

    /// `no_path_retry`; when unset, a `queue_if_no_path` feature means queue.
    pub fn no_path_retry(&self) -> Selected<NoPathRetry> {
        let queue_feature = self
            .string(Setting::Features)
            .value
            .split_ascii_whitespace()
            .any(|w| w == FEATURE_QUEUE_IF_NO_PATH);
        let unset = if queue_feature {
            Selected {
                value: NoPathRetry::Queue,
                origin: ORIGIN_FEATURE_QUEUE,
            }
        } else {
            Selected {
                value: NoPathRetry::Undef,
                origin: ORIGIN_DEFAULT,
            }
        };
        self.int(Setting::NoPathRetry).map_or(unset, |s| {
            s.map(|n| match n {
                enc::NPR_QUEUE => NoPathRetry::Queue,
                n if n > 0 => NoPathRetry::Retries(u32_of(n)),
                _ => NoPathRetry::Fail,
            })
        })
    }

    pub fn rr_min_io(&self) -> Selected<u32> {
        self.int(Setting::RrMinIo).map_or(
            Selected {
                value: 1000,
                origin: ORIGIN_DEFAULT,
            },
            |s| s.map(u32_of),
        )
    }
    pub fn rr_min_io_rq(&self) -> Selected<u32> {
        self.int(Setting::RrMinIoRq).map_or(
            Selected {
                value: 1,
                origin: ORIGIN_DEFAULT,
            },
            |s| s.map(u32_of),
        )
    }
    /// `never`, `always` or `unused`.
    pub fn flush_on_last_del(&self) -> Selected<String> {
        self.string(Setting::FlushOnLastDel)
    }

    fn timeout(&self, kw: Setting, protocol: Option<&str>) -> Selected<Option<Timeout>> {
        let conv = |v: &Value| match as_int(v) {
            enc::OFF => Timeout::Off,
            n => Timeout::Secs(u32_of(n)),
        };
        if let Some(proto) = protocol {
            let hit = self
                .cfg
                .overrides
                .protocols
                .iter()
                .find(|p| p.protocol() == Some(proto));
            if let Some(v) = hit.and_then(|p| p.attrs.get(kw.name())) {
                return Selected {
                    value: Some(conv(v)),
                    origin: ORIGIN_OVERRIDES_PROTOCOL,
                };
            }
        }
        self.get(kw).map_or(
            Selected {
                value: None,
                origin: ORIGIN_DEFAULT,
            },
            |s| s.map(|v| Some(conv(&v))),
        )
    }

    /// `fast_io_fail_tmo` for a path of transport `protocol` (e.g. `scsi:fcp`).
    pub fn fast_io_fail(&self, protocol: Option<&str>) -> Selected<Option<Timeout>> {
        self.timeout(Setting::FastIoFailTmo, protocol)
    }
    pub fn dev_loss(&self, protocol: Option<&str>) -> Selected<Option<Timeout>> {
        self.timeout(Setting::DevLossTmo, protocol)
    }
    pub fn eh_deadline(&self, protocol: Option<&str>) -> Selected<Option<Timeout>> {
        self.timeout(Setting::EhDeadline, protocol)
    }
    /// `max_retries` (defaults section only): the SCSI disk's command retries;
    /// `off` is [`MaxRetries::Off`].
    pub fn max_retries(&self) -> Selected<Option<MaxRetries>> {
        self.int(Setting::MaxRetries).map_or(
            Selected {
                value: None,
                origin: ORIGIN_DEFAULT,
            },
            |s| {
                s.map(|n| match n {
                    enc::OFF => Some(MaxRetries::Off),
                    n => Some(MaxRetries::Count(u32_of(n))),
                })
            },
        )
    }

    /// Alias from the multipaths entry, if any (bindings and WWID fallback are the caller's).
    pub fn alias(&self) -> Option<Selected<String>> {
        match self.mpe.and_then(|m| m.attrs.get("alias")) {
            Some(Value::Str(a)) => Some(Selected {
                value: a.clone(),
                origin: ORIGIN_MULTIPATHS,
            }),
            _ => None,
        }
    }
    pub fn user_friendly_names(&self) -> Selected<bool> {
        self.flag(Setting::UserFriendlyNames)
    }
    pub fn alias_prefix(&self) -> Selected<String> {
        self.string(Setting::AliasPrefix)
    }
    pub fn detect_prio(&self) -> Selected<bool> {
        self.flag(Setting::DetectPrio)
    }
    pub fn detect_checker(&self) -> Selected<bool> {
        self.flag(Setting::DetectChecker)
    }
    pub fn detect_pgpolicy(&self) -> Selected<bool> {
        self.flag(Setting::DetectPgpolicy)
    }
    pub fn detect_pgpolicy_use_tpg(&self) -> Selected<bool> {
        self.flag(Setting::DetectPgpolicyUseTpg)
    }
    pub fn retain_hwhandler(&self) -> Selected<bool> {
        self.flag(Setting::RetainAttachedHwHandler)
    }
    pub fn all_tg_pt(&self) -> Selected<bool> {
        self.flag(Setting::AllTgPt)
    }
    pub fn deferred_remove(&self) -> Selected<bool> {
        self.flag(Setting::DeferredRemove)
    }
    pub fn skip_kpartx(&self) -> Selected<bool> {
        self.flag(Setting::SkipKpartx)
    }
    pub fn purge_disconnected(&self) -> Selected<bool> {
        self.flag(Setting::PurgeDisconnected)
    }
    pub fn recheck_wwid(&self) -> Selected<bool> {
        self.flag(Setting::RecheckWwid)
    }
    /// Seconds to wait for an active path; `None` = no delay.
    pub fn ghost_delay(&self) -> Selected<Option<u32>> {
        self.no_or_n(Setting::GhostDelay)
    }
    pub fn max_sectors_kb(&self) -> Selected<Option<u32>> {
        self.int(Setting::MaxSectorsKb).map_or(
            Selected {
                value: None,
                origin: ORIGIN_DEFAULT,
            },
            |s| s.map(|n| Some(u32_of(n))),
        )
    }
    pub fn delay_watch_checks(&self) -> Selected<Option<u32>> {
        self.no_or_n(Setting::DelayWatchChecks)
    }
    pub fn delay_wait_checks(&self) -> Selected<Option<u32>> {
        self.no_or_n(Setting::DelayWaitChecks)
    }
    /// Octal mode, uid and gid of the map node (multipaths or defaults only).
    pub fn mode(&self) -> Option<Selected<u32>> {
        self.int(Setting::Mode).map(|s| s.map(u32_of))
    }
    pub fn uid(&self) -> Option<Selected<u32>> {
        self.int(Setting::Uid).map(|s| s.map(u32_of))
    }
    pub fn gid(&self) -> Option<Selected<u32>> {
        self.int(Setting::Gid).map(|s| s.map(u32_of))
    }
    /// `file`, or `0x<hex>[:aptpl]`.
    pub fn reservation_key(&self) -> Option<Selected<String>> {
        self.get(Setting::ReservationKey).map(|s| s.map(as_str))
    }

    /// `off` or `on` (a defaults-only setting; `fpin` is refused at load time).
    pub fn marginal_pathgroups(&self) -> Selected<String> {
        self.string(Setting::MarginalPathgroups)
    }

    /// The shaky-path settings after upstream's interactions: marginal_path
    /// detection switches san_path_err off, and delay_*_checks stand in for unset
    /// san_path_err settings.
    pub fn shaky_path(&self) -> ShakyPath {
        let off = |origin| Selected { value: None, origin };
        let mp = [
            self.no_or_n(Setting::MarginalPathErrSampleTime),
            self.no_or_n(Setting::MarginalPathErrRateThreshold),
            self.no_or_n(Setting::MarginalPathErrRecheckGapTime),
            self.no_or_n(Setting::MarginalPathDoubleFailedTime),
        ];
        let marginal_on = mp.iter().all(|s| s.value.is_some());
        let mut san = if marginal_on {
            [
                off(ORIGIN_MARGINAL_PATH),
                off(ORIGIN_MARGINAL_PATH),
                off(ORIGIN_MARGINAL_PATH),
            ]
        } else {
            [
                self.no_or_n(Setting::SanPathErrThreshold),
                self.no_or_n(Setting::SanPathErrForgetRate),
                self.no_or_n(Setting::SanPathErrRecoveryTime),
            ]
        };
        if !marginal_on && san.iter().all(|s| s.value.is_none()) {
            if let Some(n) = self.delay_watch_checks().value {
                san[0] = Selected {
                    value: Some(1),
                    origin: ORIGIN_DELAY_WATCH,
                };
                san[1] = Selected {
                    value: Some(n),
                    origin: ORIGIN_DELAY_WATCH,
                };
            }
            if let Some(n) = self.delay_wait_checks().value {
                san[0] = Selected {
                    value: Some(1),
                    origin: ORIGIN_DELAY_WAIT,
                };
                let secs = n.saturating_mul(self.cfg.max_polling_interval());
                san[2] = Selected {
                    value: Some(secs),
                    origin: ORIGIN_DELAY_WAIT,
                };
            }
        }
        let [t, f, r] = san;
        let [s, rt, g, d] = mp;
        ShakyPath {
            san_path_err_threshold: t,
            san_path_err_forget_rate: f,
            san_path_err_recovery_time: r,
            marginal_path_err_sample_time: s,
            marginal_path_err_rate_threshold: rt,
            marginal_path_err_recheck_gap_time: g,
            marginal_path_double_failed_time: d,
        }
    }
}

/// What the daemon found out about the paths, for the autodetection steps of
/// upstream's selection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathFacts<'p> {
    /// The path supports ALUA (TPGS) at all.
    pub tpgs: bool,
    /// VPD page 0xC9 identifies an RDAC array.
    pub rdac: bool,
    /// Prioritizer chosen by detection (`ana`, `sysfs` or `alua`), if any.
    pub detected_prio: Option<&'p str>,
}

impl Selector<'_> {
    /// Path checker after `detect_checker`: RDAC arrays get `rdac`, other
    /// ALUA devices `tur`.
    pub fn checker_for_path(&self, facts: &PathFacts<'_>) -> Selected<String> {
        if self.detect_checker().value {
            if facts.rdac {
                return Selected {
                    value: "rdac".into(),
                    origin: ORIGIN_AUTODETECT,
                };
            }
            if facts.tpgs {
                return Selected {
                    value: "tur".into(),
                    origin: ORIGIN_AUTODETECT,
                };
            }
        }
        self.checker()
    }

    /// Prioritizer and arguments after `detect_prio`; an `alua` choice on a
    /// device without TPGS falls back to `const`.
    pub fn prio_for_path(&self, facts: &PathFacts<'_>) -> Selected<(String, String)> {
        if self.detect_prio().value
            && let Some(p) = facts.detected_prio
        {
            return Selected {
                value: (p.to_string(), String::new()),
                origin: ORIGIN_AUTODETECT,
            };
        }
        let chosen = self.prio();
        if chosen.value.0 == "alua" && !facts.tpgs {
            return Selected {
                value: ("const".into(), String::new()),
                origin: ORIGIN_ALUA_FALLBACK,
            };
        }
        chosen
    }

    /// Path grouping policy of a map. `all_alua_prio`: every path uses the
    /// `alua` or `sysfs` prioritizer.
    pub fn pgpolicy_for_map(&self, all_alua_prio: bool) -> Selected<String> {
        if self.detect_pgpolicy().value && all_alua_prio {
            let p = if self.detect_pgpolicy_use_tpg().value {
                "group_by_tpg"
            } else {
                "group_by_prio"
            };
            return Selected {
                value: p.into(),
                origin: ORIGIN_AUTODETECT,
            };
        }
        let chosen = self.pgpolicy();
        if chosen.value == "group_by_tpg" && !all_alua_prio {
            return Selected {
                value: "failover".into(),
                origin: ORIGIN_TPG_FALLBACK,
            };
        }
        chosen
    }

    /// Hardware handler of a map. `kernel_handlers`: the `dh_state` of each
    /// path's SCSI device (absent for non-SCSI paths); `all_tpgs`: every path
    /// supports ALUA.
    pub fn hwhandler_for_map(&self, kernel_handlers: &[Option<&str>], all_tpgs: bool) -> Selected<String> {
        let mut chosen = None;
        if self.retain_hwhandler().value {
            let attached = kernel_handlers
                .iter()
                .flatten()
                .find(|h| !h.is_empty() && **h != "detached");
            if let Some(h) = attached {
                chosen = Some(Selected {
                    value: format!("1 {h}"),
                    origin: ORIGIN_RETAINED,
                });
            }
        }
        let chosen = chosen.unwrap_or_else(|| self.hwhandler());
        if all_tpgs && chosen.value == "0" && chosen.origin == ORIGIN_DEFAULT {
            return Selected {
                value: "1 alua".into(),
                origin: ORIGIN_TPGS,
            };
        }
        if !all_tpgs && chosen.value == "1 alua" {
            return Selected {
                value: "0".into(),
                origin: ORIGIN_TPGS,
            };
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_settings_have_a_table_default() {
        for kw in [
            Setting::PathGroupingPolicy,
            Setting::PathSelector,
            Setting::Features,
            Setting::HardwareHandler,
            Setting::PathChecker,
            Setting::UidAttribute,
            Setting::RrWeight,
            Setting::FlushOnLastDel,
            Setting::AliasPrefix,
            Setting::MarginalPathgroups,
        ] {
            assert!(kw.default_text().is_some(), "{kw:?}");
        }
        let cfg = Config::default();
        let sel = Selector::new(&cfg, "", "", "", "");
        assert_eq!(
            sel.hwhandler(),
            Selected {
                value: "0".to_string(),
                origin: ORIGIN_DEFAULT
            }
        );
        assert_eq!(
            sel.pgpolicy(),
            Selected {
                value: "failover".to_string(),
                origin: ORIGIN_DEFAULT
            }
        );
    }
}
