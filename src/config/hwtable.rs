//! The built-in hardware table: conf/hwtable.conf, compiled into the binary and
//! read with the same parser as user files.

use std::sync::OnceLock;

use super::model::DeviceEntry;

/// Name used in diagnostics about the built-in table.
pub const NAME: &str = "built-in hardware table";

/// The table's source text, in multipath.conf syntax.
pub const TEXT: &str = include_str!("../../conf/hwtable.conf");

/// The parsed built-in entries, in table order.
pub fn builtin() -> &'static [DeviceEntry] {
    static TABLE: OnceLock<Vec<DeviceEntry>> = OnceLock::new();
    TABLE.get_or_init(|| match super::parse_str_bare(NAME, TEXT) {
        Ok(l) => l.config.devices,
        // The table is tested to parse cleanly; an empty table is the safe fallback.
        Err(_) => Vec::new(),
    })
}
