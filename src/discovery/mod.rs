//! Path discovery: what block devices exist (sysfs + udev database), their
//! identity (WWID from udev or VPD page 0x83), which of them should be multipathed
//! (`find_multipaths`, the wwids file), map names (bindings file), how paths are
//! grouped (path grouping policies) and prioritized (prioritizers).
//!
//! Nothing here depends on the config module: configuration arrives as plain
//! values, enums and closures defined in these modules.

pub mod ana;
pub mod bindings;
pub mod pgpolicy;
pub mod prio;
pub mod prkeys;
pub mod statefile;
pub mod sysfs;
pub mod udevdb;
pub mod valid;
pub mod vpd;
pub mod wwids;

pub use sysfs::{Bus, Hcil, PathInfo, ScanOptions, ScanResult, SkippedPath, SysfsRoot, WwidSource};

/// Split scanned paths into kept and blacklisted ones with the caller's
/// blacklist predicate (true = blacklisted).
pub fn filter_blacklisted(
    paths: Vec<PathInfo>,
    blacklisted: &dyn Fn(&PathInfo) -> bool,
) -> (Vec<PathInfo>, Vec<PathInfo>) {
    paths.into_iter().partition(|p| !blacklisted(p))
}
