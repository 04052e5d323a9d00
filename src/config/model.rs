//! The parsed configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::dump::builtin_default;
use super::keywords::{Section, Setting};
use super::regex::ConfigRegex;
use super::value::Value;

/// Settings of one section, keyed by the keyword's table name (`checker` is
/// stored as `path_checker`).
pub type Attrs = BTreeMap<&'static str, Value>;

/// A configuration regex together with its source text. Equality and `Debug`
/// use the text only.
#[derive(Clone)]
pub struct Pattern {
    pub text: String,
    re: Arc<ConfigRegex>,
}

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, super::regex::RegexError> {
        Ok(Pattern {
            text: text.to_string(),
            re: Arc::new(ConfigRegex::new(text)?),
        })
    }
    pub fn is_match(&self, subject: &str) -> bool {
        self.re.is_match(subject)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// One `devices { device { } }` entry (built-in or user).
#[derive(Debug, Clone, Default)]
pub struct DeviceEntry {
    /// All settings including vendor/product/revision/product_blacklist as strings.
    pub attrs: Attrs,
    /// Compiled vendor, product and revision.
    fields: [Field; 3],
}

/// How one identification field of a device entry matches.
#[derive(Debug, Clone, Default)]
enum Field {
    /// Unset: matches anything.
    #[default]
    Any,
    Re(Pattern),
    /// The pattern does not compile: matches nothing.
    Never,
}

impl PartialEq for DeviceEntry {
    fn eq(&self, other: &Self) -> bool {
        self.attrs == other.attrs
    }
}
impl Eq for DeviceEntry {}

impl DeviceEntry {
    /// Builds an entry from its settings, compiling vendor/product/revision.
    pub fn new(attrs: Attrs) -> DeviceEntry {
        let field = |k: &str| match attrs.get(k) {
            Some(Value::Str(s)) => Pattern::new(s).map(Field::Re).unwrap_or(Field::Never),
            _ => Field::Any,
        };
        let fields = [
            field(Setting::Vendor.name()),
            field(Setting::Product.name()),
            field(Setting::Revision.name()),
        ];
        DeviceEntry { attrs, fields }
    }

    pub fn str(&self, kw: Setting) -> Option<&str> {
        match self.attrs.get(kw.name()) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether the entry applies to a device (unanchored regex search per field).
    pub fn matches(&self, vendor: &str, product: &str, revision: &str) -> bool {
        self.fields
            .iter()
            .zip([vendor, product, revision])
            .all(|(f, s)| match f {
                Field::Any => true,
                Field::Re(p) => p.is_match(s),
                Field::Never => false,
            })
    }
}

/// One `multipaths { multipath { } }` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultipathEntry {
    pub attrs: Attrs,
}

impl MultipathEntry {
    pub fn wwid(&self) -> Option<&str> {
        match self.attrs.get(Setting::Wwid.name()) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// One `overrides { protocol { } }` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProtocolEntry {
    pub attrs: Attrs,
}

impl ProtocolEntry {
    pub fn protocol(&self) -> Option<&str> {
        match self.attrs.get(Setting::Type.name()) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// The `overrides` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overrides {
    pub attrs: Attrs,
    pub protocols: Vec<ProtocolEntry>,
}

/// A blacklist `device { vendor …; product … }` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlacklistDevice {
    pub vendor: Option<Pattern>,
    pub product: Option<Pattern>,
}

/// The lists of a `blacklist` or `blacklist_exceptions` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlacklistLists {
    pub devnode: Vec<Pattern>,
    pub wwid: Vec<Pattern>,
    pub property: Vec<Pattern>,
    pub protocol: Vec<Pattern>,
    pub device: Vec<BlacklistDevice>,
}

impl BlacklistLists {
    pub(crate) fn list_mut(&mut self, keyword: &str) -> Option<&mut Vec<Pattern>> {
        match keyword {
            "devnode" => Some(&mut self.devnode),
            "wwid" => Some(&mut self.wwid),
            "property" => Some(&mut self.property),
            "protocol" => Some(&mut self.protocol),
            _ => None,
        }
    }
}

/// A whole configuration: built-in hardware table plus everything the files set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub defaults: Attrs,
    /// User blacklist entries (built-in entries are added by `Blacklist::new` and `show config`).
    pub blacklist: BlacklistLists,
    pub exceptions: BlacklistLists,
    /// Built-in hardware table.
    pub hwtable: Vec<DeviceEntry>,
    /// User `devices` entries, in file order (main file, then conf.d files).
    pub devices: Vec<DeviceEntry>,
    pub overrides: Overrides,
    pub multipaths: Vec<MultipathEntry>,
}

impl Config {
    /// The configuration with `verbosity` (the daemon's `-v`) where the files set none:
    /// upstream starts each load from the verbosity in force, so `show config` prints it.
    pub fn with_verbosity_default(mut self, verbosity: Option<u8>) -> Config {
        if let Some(v) = verbosity {
            self.defaults.entry("verbosity").or_insert(Value::Int(v.into()));
        }
        self
    }

    /// Built-in then user device entries: upstream's table order.
    pub fn all_devices(&self) -> impl DoubleEndedIterator<Item = &DeviceEntry> {
        self.hwtable.iter().chain(self.devices.iter())
    }

    /// A `defaults` setting with the built-in default applied: the value the
    /// daemon uses for global settings such as `verbosity`, `find_multipaths`
    /// or `uxsock_timeout`. `None` when unset and without a built-in default.
    pub fn default_value(&self, kw: Setting) -> Option<Value> {
        match kw {
            Setting::PollingInterval => return Some(Value::Int(self.polling_interval().into())),
            Setting::MaxPollingInterval => return Some(Value::Int(self.max_polling_interval().into())),
            _ => {}
        }
        let row = kw.row(Section::Defaults)?;
        self.defaults.get(row.name).cloned().or_else(|| builtin_default(row))
    }

    /// [`Config::default_value`] of an integer setting.
    pub fn setting_int(&self, kw: Setting) -> Option<i64> {
        match self.default_value(kw) {
            Some(Value::Int(n)) => Some(n),
            _ => None,
        }
    }

    /// [`Config::default_value`] of a yes/no setting.
    pub fn setting_bool(&self, kw: Setting) -> Option<bool> {
        match self.default_value(kw) {
            Some(Value::Bool(b)) => Some(b),
            _ => None,
        }
    }

    /// [`Config::default_value`] of a string setting.
    pub fn setting_str(&self, kw: Setting) -> Option<String> {
        match self.default_value(kw) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn default_int(&self, kw: Setting) -> Option<i64> {
        match self.defaults.get(kw.name()) {
            Some(Value::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// Effective polling interval after upstream's interval rules.
    pub fn polling_interval(&self) -> u32 {
        self.intervals().0
    }

    /// Effective maximum polling interval after upstream's interval rules.
    pub fn max_polling_interval(&self) -> u32 {
        self.intervals().1
    }

    fn intervals(&self) -> (u32, u32) {
        // Upstream keeps both as unsigned ints.
        let clamp = |n: i64| n.clamp(1, i64::from(u32::MAX)) as u32;
        match (
            self.default_int(Setting::PollingInterval),
            // max_polling_interval 0 is upstream's "not set".
            self.default_int(Setting::MaxPollingInterval).filter(|m| *m > 0),
        ) {
            (None, None) => (5, 20),
            // Upstream loops forever there (tests/oracle_support: intended); the daemon keeps
            // checking at the default pace instead.
            (Some(super::value::POLLING_UNREADABLE), None) => (5, 20),
            (Some(p), None) => (clamp(p), clamp(p.saturating_mul(4))),
            (None, Some(m)) => (clamp(m / 4), clamp(m)),
            (Some(p), Some(m)) => (clamp(p.min(m)), clamp(m)),
        }
    }
}
