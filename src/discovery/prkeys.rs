//! The prkeys file (`/etc/multipath/prkeys`): the reservation key of each map
//! whose `reservation_key` is `file`, set by mpathpersist through the daemon's
//! `setprkey` and read again at map setup, so a key outlives a daemon restart.
//! multipath-tools' format: one `KEY WWID` line per map, KEY 18 characters
//! (`0x` and 16 hex digits, `0X` when the key goes with APTPL); a forgotten key
//! has its line's first character turned into `#`, and the first line of a WWID
//! is the one that counts, commented out or not.

use std::io;
use std::path::PathBuf;

use super::statefile::LockedFile;

/// Written when the file is created: comment lines, which readers skip.
const HEADER: &str = "# Multipath persistent reservation keys, Version : 1.0\n\
# Maintained by multipathd: the reservation key of each map whose reservation_key is \"file\".\n\
# Edit only while multipathd is not running.\n\
#\n";

/// `0x` + 16 digits.
const KEY_LEN: usize = 18;

/// The line of `wwid`: its index, and whether it is commented out.
fn entry<'a>(lines: &[&'a str], wwid: &str) -> Option<(usize, &'a str)> {
    lines.iter().enumerate().find_map(|(i, l)| {
        let (key, id) = l.split_at_checked(KEY_LEN)?;
        (id.strip_prefix(' ') == Some(wwid)).then_some((i, key))
    })
}

/// The key of `wwid` in the file's text: (value, aptpl), `None` when there is none,
/// it was forgotten, or its line is malformed.
pub fn lookup(text: &str, wwid: &str) -> Option<(u64, bool)> {
    let lines: Vec<&str> = text.lines().collect();
    let (_, key) = entry(&lines, wwid)?;
    let (digits, aptpl) = match key.split_at(2) {
        ("0x", d) => (d, false),
        ("0X", d) => (d, true),
        _ => return None,
    };
    u64::from_str_radix(digits, 16)
        .ok()
        .filter(|&k| k != 0)
        .map(|k| (k, aptpl))
}

/// The file's text with `wwid`'s key set (`Some`) or forgotten (`None`): its line is
/// rewritten where it is, or a new one appended.
pub fn update(text: &str, wwid: &str, key: Option<(u64, bool)>) -> String {
    let mut lines: Vec<String> = if text.is_empty() {
        HEADER.lines().map(str::to_string).collect()
    } else {
        text.lines().map(str::to_string).collect()
    };
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let at = entry(&refs, wwid).map(|(i, _)| i);
    match (key, at) {
        (Some((k, aptpl)), at) => {
            let line = format!("{}{k:016x} {wwid}", if aptpl { "0X" } else { "0x" });
            match at {
                Some(i) => lines[i] = line,
                None => lines.push(line),
            }
        }
        (None, Some(i)) => lines[i].replace_range(0..1, "#"),
        (None, None) => {}
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The prkeys file at a configurable path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrkeysFile {
    pub path: PathBuf,
}

impl PrkeysFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PrkeysFile { path: path.into() }
    }

    /// The key of `wwid`; a missing file holds none.
    pub fn get(&self, wwid: &str) -> io::Result<Option<(u64, bool)>> {
        Ok(lookup(&LockedFile::read_shared(&self.path)?, wwid))
    }

    /// Sets (`Some`) or forgets (`None`) the key of `wwid`.
    pub fn set(&self, wwid: &str, key: Option<(u64, bool)>) -> io::Result<()> {
        if wwid.is_empty() || wwid.contains(['\n', ' ']) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WWID {wwid:?} cannot be stored in the prkeys file"),
            ));
        }
        // Under the lock multipath-tools' programs take, changed in place (see statefile).
        let mut f = LockedFile::open(&self.path, HEADER)?;
        let text = f.contents()?;
        let new = update(&text, wwid, key);
        if new == text {
            return Ok(());
        }
        f.rewrite(&new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "36001405ab000000000000000000000";

    #[test]
    fn keys_are_found_by_wwid_with_their_aptpl_mark() {
        let text = format!("# header\n0x0000000000000abc {W}1\n0X00000000001234ab {W}\n");
        assert_eq!(lookup(&text, W), Some((0x1234ab, true)));
        assert_eq!(lookup(&text, &format!("{W}1")), Some((0xabc, false)));
        assert_eq!(lookup(&text, "3600"), None);
        // A WWID that only ends like another's does not match.
        assert_eq!(lookup(&format!("0x0000000000000abc x{W}\n"), W), None);
        // Forgotten: the first line of the WWID counts, commented or not.
        let text = format!("#x0000000000000abc {W}\n0x0000000000000def {W}\n");
        assert_eq!(lookup(&text, W), None);
        assert_eq!(lookup(&format!("0xzz00000000000abc {W}\n"), W), None);
    }

    #[test]
    fn a_key_is_set_in_place_forgotten_with_a_hash_and_set_again() {
        let t = update("", W, Some((0x123abc, false)));
        assert!(t.starts_with('#'), "a new file starts with its header");
        assert!(t.ends_with(&format!("\n0x0000000000123abc {W}\n")), "{t}");
        assert_eq!(lookup(&t, W), Some((0x123abc, false)));
        let other = update(&t, "3other", Some((0xff, true)));
        assert!(other.ends_with(&format!("0x0000000000123abc {W}\n0X00000000000000ff 3other\n")));
        let gone = update(&other, W, None);
        assert!(gone.contains(&format!("\n#x0000000000123abc {W}\n")), "{gone}");
        assert_eq!(lookup(&gone, W), None);
        assert_eq!(lookup(&gone, "3other"), Some((0xff, true)));
        // Set again: the forgotten line is reused, not a second one added.
        let back = update(&gone, W, Some((0x5, false)));
        assert_eq!(back.matches(W).count(), 1);
        assert_eq!(lookup(&back, W), Some((0x5, false)));
        assert_eq!(update(&back, "3none", None), back);
    }

    #[test]
    fn the_file_keeps_keys_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let f = PrkeysFile::new(dir.path().join("prkeys"));
        assert_eq!(f.get(W).unwrap(), None);
        f.set(W, Some((0xabc, true))).unwrap();
        assert_eq!(f.get(W).unwrap(), Some((0xabc, true)));
        f.set(W, None).unwrap();
        assert_eq!(f.get(W).unwrap(), None);
        assert!(f.set("a b", Some((1, false))).is_err());
    }
}
