//! `find_multipaths`: which paths belong to multipath.
//!
//! Two questions with different answers in multipath-tools:
//! - [`is_path_valid`]: may this device be claimed as a multipath member *now*
//!   (what `multipath -u` tells udev); only the wwids file, an existing map or
//!   greedy mode make it valid; smart mode answers "maybe".
//! - [`should_multipath`]: does the daemon build a map for it when coalescing
//!   paths; here `on`/`smart` also accept a second path with the same WWID.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindMultipaths {
    Off,
    On,
    Strict,
    Greedy,
    Smart,
}

impl FindMultipaths {
    /// Parse a multipath.conf value: off/no/0, on/yes/1, strict, greedy, smart.
    pub fn from_value(v: &str) -> Option<FindMultipaths> {
        Some(match v {
            "off" | "no" | "0" => FindMultipaths::Off,
            "on" | "yes" | "1" => FindMultipaths::On,
            "strict" => FindMultipaths::Strict,
            "greedy" => FindMultipaths::Greedy,
            "smart" => FindMultipaths::Smart,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FindMultipaths::Off => "off",
            FindMultipaths::On => "on",
            FindMultipaths::Strict => "strict",
            FindMultipaths::Greedy => "greedy",
            FindMultipaths::Smart => "smart",
        }
    }
}

impl fmt::Display for FindMultipaths {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathValidity {
    /// Could not decide (e.g. a device already under a map has no WWID).
    Error,
    NotValid,
    Valid,
    /// Valid, and known for sure (wwids file, or already in a map).
    ValidNoCheck,
    /// Smart mode: valid only if a second path shows up in time.
    MaybeValid,
}

/// Facts about one device, gathered by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidityFacts<'a> {
    /// The device is already a member of a multipath map (sysfs holders).
    pub in_multipath_map: bool,
    /// udev DEVTYPE is `disk` (not a partition).
    pub is_disk: bool,
    pub blacklisted: bool,
    /// Empty or missing WWIDs count as `None`.
    pub wwid: Option<&'a str>,
    /// Listed as failed (multipath gave up on this WWID).
    pub failed_wwid: bool,
    /// Mounted, used as swap, or held by another device (LVM, md...).
    pub in_use: bool,
    pub in_wwids_file: bool,
    /// A multipath map with this WWID exists.
    pub map_exists: bool,
}

/// multipath-tools' `is_path_valid` decision.
pub fn is_path_valid(mode: FindMultipaths, f: &ValidityFacts) -> PathValidity {
    let wwid = f.wwid.filter(|w| !w.is_empty());
    if f.in_multipath_map {
        return if wwid.is_some() {
            PathValidity::ValidNoCheck
        } else {
            PathValidity::Error
        };
    }
    if !f.is_disk || f.blacklisted || wwid.is_none() || f.failed_wwid {
        return PathValidity::NotValid;
    }
    if matches!(mode, FindMultipaths::Greedy | FindMultipaths::Smart) && f.in_use {
        return PathValidity::NotValid;
    }
    if mode == FindMultipaths::Greedy {
        return PathValidity::Valid;
    }
    if f.in_wwids_file {
        return PathValidity::ValidNoCheck;
    }
    if f.map_exists {
        return PathValidity::Valid;
    }
    if mode == FindMultipaths::Smart {
        PathValidity::MaybeValid
    } else {
        PathValidity::NotValid
    }
}

/// Daemon-side decision when assembling maps: off/greedy take every
/// (non-blacklisted) path; strict only WWIDs in the wwids file; on/smart also a
/// WWID that already has a map or that another path shares.
pub fn should_multipath(
    mode: FindMultipaths,
    in_wwids_file: bool,
    map_exists: bool,
    other_paths_with_same_wwid: usize,
) -> bool {
    match mode {
        FindMultipaths::Off | FindMultipaths::Greedy => true,
        FindMultipaths::Strict => in_wwids_file,
        FindMultipaths::On | FindMultipaths::Smart => map_exists || other_paths_with_same_wwid > 0 || in_wwids_file,
    }
}

/// Group paths by WWID (first-appearance order, paths without WWID left out) and
/// keep the WWIDs that [`should_multipath`] accepts. Returns (wwid, indexes into
/// `paths`).
pub fn candidate_maps(
    paths: &[super::PathInfo],
    mode: FindMultipaths,
    in_wwids_file: &dyn Fn(&str) -> bool,
    map_exists: &dyn Fn(&str) -> bool,
) -> Vec<(String, Vec<usize>)> {
    let mut by_wwid: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let Some(w) = p.wwid.as_deref().filter(|w| !w.is_empty()) else {
            continue;
        };
        match by_wwid.iter_mut().find(|(k, _)| k == w) {
            Some((_, v)) => v.push(i),
            None => by_wwid.push((w.to_string(), vec![i])),
        }
    }
    by_wwid.retain(|(w, idx)| should_multipath(mode, in_wwids_file(w), map_exists(w), idx.len() - 1));
    by_wwid
}
