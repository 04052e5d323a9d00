//! The wwids file (`/etc/multipath/wwids`): WWIDs that have been multipathed
//! before, one `/WWID/` per line after a `#` comment header. `find_multipaths`
//! strict/on/smart consult it; multipath-tools reads and writes the same format.
//! Also the failed-WWID marks in /dev/shm (see [`FailedWwids`]).

use std::io;
use std::path::{Path, PathBuf};

use super::statefile::LockedFile;

pub const DEFAULT_WWIDS_FILE: &str = "/etc/multipath/wwids";

/// First header line (the format marker multipath-tools writes) and our notes; a file
/// that exists keeps the header its first writer gave it.
const HEADER: &str = "# Multipath wwids, Version : 1.0\n\
# Maintained by multipathd: WWIDs of devices that were multipathed before.\n\
# Edit only while multipathd and multipath are not running.\n\
#\n\
# Valid WWIDs:\n";

/// Parsed content: the WWIDs in file order plus complaints about unusable lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wwids {
    pub wwids: Vec<String>,
    /// `invalid line N in wwids file: ...` messages.
    pub invalid: Vec<String>,
}

impl Wwids {
    pub fn parse(text: &str) -> Wwids {
        let mut w = Wwids::default();
        // (a set, not a scan of the list per line: the daemon parses the file for every
        // map it makes, and a host with thousands of LUNs has thousands of lines)
        let mut seen = std::collections::HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = line
                .strip_prefix('/')
                .and_then(|rest| rest.split_once('/'))
                .map(|(wwid, _)| wwid)
                .filter(|wwid| !wwid.is_empty());
            match entry {
                Some(wwid) => {
                    if seen.insert(wwid) {
                        w.wwids.push(wwid.to_string());
                    }
                }
                None => w
                    .invalid
                    .push(format!("invalid line {} in wwids file: {line:?}", i + 1)),
            }
        }
        w
    }

    pub fn contains(&self, wwid: &str) -> bool {
        self.wwids.iter().any(|w| w == wwid)
    }

    pub fn to_text(&self) -> String {
        let mut s = String::from(HEADER);
        for w in &self.wwids {
            s.push('/');
            s.push_str(w);
            s.push_str("/\n");
        }
        s
    }
}

fn check_wwid(wwid: &str) -> io::Result<()> {
    if wwid.is_empty() || wwid.contains(['/', '\n', '\r']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("WWID {wwid:?} cannot be stored in the wwids file"),
        ));
    }
    Ok(())
}

/// The wwids file at a configurable path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WwidsFile {
    pub path: PathBuf,
}

impl WwidsFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        WwidsFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Current content; a missing file is empty.
    pub fn load(&self) -> io::Result<Wwids> {
        Ok(Wwids::parse(&LockedFile::read_shared(&self.path)?))
    }

    pub fn contains(&self, wwid: &str) -> io::Result<bool> {
        Ok(self.load()?.contains(wwid))
    }

    /// Record a WWID; `Ok(false)` if it was already there. Appended under the file's
    /// lock, so an entry `multipath -a` adds meanwhile is kept.
    pub fn add(&self, wwid: &str) -> io::Result<bool> {
        check_wwid(wwid)?;
        let mut f = LockedFile::open(&self.path, HEADER)?;
        if Wwids::parse(&f.contents()?).contains(wwid) {
            return Ok(false);
        }
        f.append(&format!("/{wwid}/\n"))?;
        Ok(true)
    }

    /// Forget a WWID; `Ok(false)` if it was not there. Its lines are commented out in
    /// place, as `multipath -w` does, so the file is never shorter than a reader expects.
    pub fn remove(&self, wwid: &str) -> io::Result<bool> {
        let mut f = LockedFile::open(&self.path, HEADER)?;
        let text = f.contents()?;
        let mut offset = 0u64;
        let mut found = false;
        for line in text.split_inclusive('\n') {
            let lead = line.len() - line.trim_start().len();
            if Wwids::parse(line).wwids.iter().any(|w| w == wwid) {
                f.overwrite(offset + lead as u64, b"#")?;
                found = true;
            }
            offset += line.len() as u64;
        }
        Ok(found)
    }

    /// Rewrite the file to hold exactly `wwids` (in order, duplicates dropped).
    pub fn replace<'a>(&self, wwids: impl IntoIterator<Item = &'a str>) -> io::Result<()> {
        let mut w = Wwids::default();
        for id in wwids {
            check_wwid(id)?;
            if !w.contains(id) {
                w.wwids.push(id.to_string());
            }
        }
        LockedFile::open(&self.path, HEADER)?.rewrite(&w.to_text())
    }
}

pub const DEFAULT_FAILED_WWIDS_DIR: &str = "/dev/shm/multipath/failed_wwids";

/// WWIDs multipath failed to set up, one empty file per WWID in a tmpfs
/// directory shared with multipath-tools (`multipath -u` treats them as not
/// valid until the mark is removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedWwids {
    pub dir: PathBuf,
}

impl FailedWwids {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FailedWwids { dir: dir.into() }
    }

    fn file(&self, wwid: &str) -> io::Result<PathBuf> {
        check_wwid(wwid)?;
        if wwid == "." || wwid == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WWID {wwid:?} cannot be a file name"),
            ));
        }
        Ok(self.dir.join(wwid))
    }

    pub fn is_failed(&self, wwid: &str) -> io::Result<bool> {
        match std::fs::symlink_metadata(self.file(wwid)?) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Mark a WWID failed; `Ok(false)` if it already was.
    pub fn mark(&self, wwid: &str) -> io::Result<bool> {
        let f = self.file(wwid)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", self.dir.display())))?;
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&f) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io::Error::new(e.kind(), format!("creating {}: {e}", f.display()))),
        }
    }

    /// Remove the mark; `Ok(false)` if there was none.
    pub fn unmark(&self, wwid: &str) -> io::Result<bool> {
        match std::fs::remove_file(self.file(wwid)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}
