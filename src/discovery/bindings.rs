//! `user_friendly_names`: the bindings file (`/etc/multipath/bindings`, lines of
//! `alias wwid` after a `#` header) and alias ids. Alias ids are bijective
//! base-26 numbers written with letters: 1 = a, 26 = z, 27 = aa, ...; the map
//! name is `<alias_prefix><letters>` (`mpatha`, `mpathb`, ...).

use std::io;
use std::path::{Path, PathBuf};

use super::statefile::LockedFile;

pub const DEFAULT_BINDINGS_FILE: &str = "/etc/multipath/bindings";
pub const DEFAULT_ALIAS_PREFIX: &str = "mpath";

const HEADER: &str = "# Multipath bindings, Version : 1.0\n\
# Maintained by multipathd: user friendly names of multipath maps.\n\
# Edit only while multipathd and multipath are not running.\n\
#\n\
# Format:\n\
# alias wwid\n\
#\n";

/// Letters for alias id `id` (1 → "a", 27 → "aa", i32::MAX → "fxshrxw");
/// `None` for ids below 1.
pub fn format_alias_id(id: i32) -> Option<String> {
    if id < 1 {
        return None;
    }
    let mut n = id as u32;
    let mut letters = Vec::new();
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    String::from_utf8(letters).ok()
}

/// Alias id of `alias` if it is `prefix` followed by letters. As in
/// multipath-tools, a space or tab ends the letters (the rest is ignored), but the
/// part after the prefix may be at most 7 characters long, and ids that overflow
/// i32 are rejected.
pub fn scan_alias_id(alias: &str, prefix: &str) -> Option<i32> {
    let rest = alias.strip_prefix(prefix)?;
    if rest.is_empty() || rest.len() > 7 {
        return None;
    }
    let mut n: i64 = 0;
    for c in rest.bytes() {
        if c == b' ' || c == b'\t' {
            break;
        }
        if !c.is_ascii_lowercase() {
            return None;
        }
        n = n * 26 + i64::from(c - b'a') + 1;
        if n > i64::from(i32::MAX) {
            return None;
        }
    }
    (n > 0).then_some(n as i32)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub alias: String,
    pub wwid: String,
}

/// Bindings in file order, plus problems found while reading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    pub entries: Vec<Binding>,
    pub issues: Vec<String>,
}

/// How [`Bindings::resolve`] found the alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasOrigin {
    /// The bindings file already maps this WWID to the alias.
    Existing,
    /// The map's current name was not bound; it is now bound to this WWID.
    AdoptedCurrentName,
    /// A new id was allocated.
    Created,
}

impl Bindings {
    /// Parse the file text. Comments (`#` to end of line) and blank lines are
    /// skipped; a line with an alias but no WWID, or an alias/WWID already bound
    /// differently, is reported in `issues` and ignored.
    pub fn parse(text: &str) -> Bindings {
        let mut b = Bindings::default();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let content = line.split(['#', '\r']).next().unwrap_or("");
            let mut tokens = content.split([' ', '\t']).filter(|t| !t.is_empty());
            let Some(alias) = tokens.next() else { continue };
            let Some(wwid) = tokens.next() else {
                b.issues
                    .push(format!("invalid line {n} in bindings file, missing WWID"));
                continue;
            };
            let extra: Vec<&str> = tokens.collect();
            if !extra.is_empty() {
                b.issues.push(format!(
                    "invalid line {n} in bindings file, extra args \"{}\"",
                    extra.join(" ")
                ));
            }
            if let Some(w) = b.wwid_for_alias(alias) {
                if w != wwid {
                    b.issues.push(format!(
                        "invalid line {n} in bindings file, alias {alias} already bound to wwid {w}"
                    ));
                }
                continue;
            }
            if let Some(a) = b.alias_for_wwid(wwid) {
                b.issues.push(format!(
                    "invalid line {n} in bindings file, wwid {wwid} already bound to alias {a}"
                ));
                continue;
            }
            b.entries.push(Binding {
                alias: alias.to_string(),
                wwid: wwid.to_string(),
            });
        }
        b
    }

    pub fn alias_for_wwid(&self, wwid: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.wwid == wwid).map(|e| e.alias.as_str())
    }

    pub fn wwid_for_alias(&self, alias: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.alias == alias).map(|e| e.wwid.as_str())
    }

    /// Lowest alias id with `prefix` not bound in this file and not `taken`
    /// (the caller's check whether a device-mapper map of that name exists for
    /// another WWID). `None` when all i32 ids are used.
    pub fn free_id(&self, prefix: &str, taken: &dyn Fn(&str) -> bool) -> Option<i32> {
        let mut used: Vec<i32> = self
            .entries
            .iter()
            .filter_map(|e| scan_alias_id(&e.alias, prefix))
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut id: i32 = 1;
        let mut next_used = used.into_iter().peekable();
        loop {
            while next_used.next_if(|&u| u < id).is_some() {}
            if next_used.peek() == Some(&id) {
                next_used.next();
            } else if !taken(&format!("{prefix}{}", format_alias_id(id)?)) {
                return Some(id);
            }
            id = id.checked_add(1)?;
        }
    }

    /// Choose the alias of a map: the WWID's binding; else the map's current name
    /// (`current`) if it has the prefix and is bound to nobody; else a new id.
    /// New bindings are added to `self` (the caller records them in the file).
    pub fn resolve(
        &mut self,
        wwid: &str,
        prefix: &str,
        current: Option<&str>,
        taken: &dyn Fn(&str) -> bool,
    ) -> Resolved {
        if let Some(a) = self.alias_for_wwid(wwid) {
            return Some((a.to_string(), AliasOrigin::Existing));
        }
        let adoptable = |c: &&str| {
            scan_alias_id(c, prefix).is_some() && !c.contains([' ', '\t']) && self.wwid_for_alias(c).is_none()
        };
        if let Some(cur) = current.filter(adoptable) {
            self.entries.push(Binding {
                alias: cur.to_string(),
                wwid: wwid.to_string(),
            });
            return Some((cur.to_string(), AliasOrigin::AdoptedCurrentName));
        }
        let alias = format!("{prefix}{}", format_alias_id(self.free_id(prefix, taken)?)?);
        self.entries.push(Binding {
            alias: alias.clone(),
            wwid: wwid.to_string(),
        });
        Some((alias, AliasOrigin::Created))
    }
}

/// Result of [`Bindings::resolve`]: the alias and how it was found, `None` when
/// no id is free.
pub type Resolved = Option<(String, AliasOrigin)>;

/// The bindings file at a configurable path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingsFile {
    pub path: PathBuf,
}

impl BindingsFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        BindingsFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current content; a missing file has no bindings.
    pub fn load(&self) -> io::Result<Bindings> {
        Ok(Bindings::parse(&LockedFile::read_shared(&self.path)?))
    }

    /// The alias the file binds to `wwid`, nothing written (`multipathd -B`); no binding
    /// resolves to `None`.
    pub fn bound(&self, wwid: &str) -> io::Result<(Resolved, Vec<String>)> {
        let mut b = self.load()?;
        let res = b.alias_for_wwid(wwid).map(|a| (a.to_string(), AliasOrigin::Existing));
        Ok((res, std::mem::take(&mut b.issues)))
    }

    /// Resolve the alias for `wwid` under the file's lock, appending a binding it adds, so
    /// that `multipath` allocating at the same time never gets the same alias.
    /// Returns the alias and how it was found, plus the file's issues for logging.
    pub fn alias_for(
        &self,
        wwid: &str,
        prefix: &str,
        current: Option<&str>,
        taken: &dyn Fn(&str) -> bool,
    ) -> io::Result<(Resolved, Vec<String>)> {
        if wwid.is_empty() || wwid.contains([' ', '\t', '\n', '\r', '#']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WWID {wwid:?} cannot be stored in the bindings file"),
            ));
        }
        let mut f = match LockedFile::open(&self.path, HEADER) {
            Ok(f) => f,
            // A read-only /etc still names the maps it has bindings for, as upstream's does.
            Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => return self.bound(wwid),
            Err(e) => return Err(e),
        };
        let mut b = Bindings::parse(&f.contents()?);
        let res = b.resolve(wwid, prefix, current, taken);
        if let Some((alias, AliasOrigin::Created | AliasOrigin::AdoptedCurrentName)) = &res {
            f.append(&format!("{alias} {wwid}\n"))?;
        }
        Ok((res, std::mem::take(&mut b.issues)))
    }
}
