//! POSIX extended regular expressions through glibc's `regcomp`/`regexec`, so
//! patterns behave exactly as in multipath-tools (GNU extensions included,
//! unanchored search, `.` matching newline).

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::fmt;
use std::mem::MaybeUninit;

use super::regex_size;

/// Why a pattern does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexError {
    /// C strings end at NUL: the pattern cannot be handed to regcomp.
    Nul,
    /// Longer than [`regex_size::MAX_PATTERN_BYTES`].
    TooLong(usize),
    /// Its repetitions would make glibc build this many atom copies (more than
    /// [`regex_size::MAX_COPIES`]), a compile that can take minutes and abort.
    TooBig(u64),
    /// The patterns compiled so far in this configuration load used up its budget
    /// ([`LOAD_BUDGET`]).
    OverBudget,
    /// regcomp refused it; the text is regerror's, as upstream prints it.
    Compile(String),
}

impl fmt::Display for RegexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegexError::Nul => f.write_str("pattern contains a NUL byte"),
            RegexError::TooLong(n) => write!(
                f,
                "Regular expression too long: {n} bytes, the limit is {}",
                regex_size::MAX_PATTERN_BYTES
            ),
            RegexError::TooBig(n) => write!(
                f,
                "Regular expression too big: its repetitions expand to {n} copies, the limit is {}",
                regex_size::MAX_COPIES
            ),
            RegexError::OverBudget => write!(
                f,
                "Regular expressions too many: the configuration's patterns together would need more than {} MiB",
                LOAD_BUDGET >> 20
            ),
            RegexError::Compile(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RegexError {}

/// Estimated compile memory ([`regex_size::memory`]) the patterns of one
/// configuration load may use together: every pattern is small on its own, but a
/// 4 MiB file can hold a hundred thousand of them. The built-in table and a real
/// configuration use a few MiB.
pub const LOAD_BUDGET: u64 = 128 << 20;

thread_local! {
    /// What the load running on this thread may still spend; `None` outside a load.
    static BUDGET: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` (a configuration load) with [`LOAD_BUDGET`] for the patterns it
/// compiles on this thread.
pub fn with_load_budget<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.set(self.0);
        }
    }
    let _restore = Restore(BUDGET.replace(Some(LOAD_BUDGET)));
    f()
}

fn spend(cost: u64) -> Result<(), RegexError> {
    BUDGET.with(|b| match b.get() {
        Some(left) if cost > left => Err(RegexError::OverBudget),
        Some(left) => {
            b.set(Some(left - cost));
            Ok(())
        }
        None => Ok(()),
    })
}

/// A compiled pattern; `regfree` runs on drop.
pub struct Regex {
    inner: Inner,
}

enum Inner {
    Compiled(libc::regex_t),
    /// A pattern that only names texts matches where one of them occurs (at the start
    /// when `anchored`): no regcomp or regexec needed. Most vendor and product strings
    /// are such (`NETAPP`, `^DGC`, `(HITACHI|HP)`), every path's properties are looked
    /// up in a table of them, and a file with thousands of device sections compiled each.
    Literals {
        anchored: bool,
        texts: Vec<String>,
    },
}

/// Printable ASCII without ERE metacharacters, so the pattern means its text.
fn is_literal(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.bytes().all(|b| {
            matches!(b, 0x20..0x7f)
                && !matches!(
                    b,
                    b'.' | b'[' | b']' | b'(' | b')' | b'*' | b'+' | b'?' | b'{' | b'}' | b'|' | b'^' | b'$' | b'\\'
                )
        })
}

/// `TEXT`, `^TEXT`, `(A|B)` or `^(A|B)` with literal texts: whether anchored, and the texts.
fn as_literals(pattern: &str) -> Option<(bool, Vec<String>)> {
    let (anchored, rest) = match pattern.strip_prefix('^') {
        Some(r) => (true, r),
        None => (false, pattern),
    };
    let texts: Vec<&str> = match rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        Some(inner) => inner.split('|').collect(),
        None => vec![rest],
    };
    texts
        .iter()
        .all(|t| is_literal(t))
        .then(|| (anchored, texts.into_iter().map(str::to_owned).collect()))
}

// SAFETY: the compiled pattern is plain memory owned by this value; moving it
// to another thread moves that ownership.
unsafe impl Send for Regex {}
// SAFETY: the compiled pattern is only read by regexec after compilation, and
// glibc serialises regexec's internal state with a lock inside the regex_t.
unsafe impl Sync for Regex {}

impl Regex {
    /// Compiles with `REG_EXTENDED | REG_NOSUB`. The error is regerror's text, or
    /// why the pattern was not handed to regcomp at all (see [`regex_size`]).
    pub fn new(pattern: &str) -> Result<Regex, RegexError> {
        if pattern.len() > regex_size::MAX_PATTERN_BYTES {
            return Err(RegexError::TooLong(pattern.len()));
        }
        if let Some((anchored, texts)) = as_literals(pattern) {
            return Ok(Regex {
                inner: Inner::Literals { anchored, texts },
            });
        }
        let c = CString::new(pattern).map_err(|_| RegexError::Nul)?;
        let copies = regex_size::copies(pattern);
        if copies > regex_size::MAX_COPIES {
            return Err(RegexError::TooBig(copies));
        }
        spend(regex_size::memory(copies))?;
        let mut raw = MaybeUninit::<libc::regex_t>::zeroed();
        // SAFETY: raw points to writable storage for a regex_t, c is NUL-terminated.
        let rc = unsafe { libc::regcomp(raw.as_mut_ptr(), c.as_ptr(), libc::REG_EXTENDED | libc::REG_NOSUB) };
        if rc != 0 {
            let mut buf = [0u8; 256];
            // SAFETY: regerror writes at most buf.len() bytes, NUL-terminated; a
            // failed regcomp leaves nothing that needs regfree.
            unsafe { libc::regerror(rc, raw.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            let msg = CStr::from_bytes_until_nul(&buf).map(|s| s.to_string_lossy().into_owned());
            return Err(RegexError::Compile(
                msg.unwrap_or_else(|_| format!("regcomp error {rc}")),
            ));
        }
        // SAFETY: regcomp succeeded, so the regex_t is initialised.
        let raw = unsafe { raw.assume_init() };
        Ok(Regex {
            inner: Inner::Compiled(raw),
        })
    }

    /// Unanchored search. A subject with a NUL byte is matched up to the NUL,
    /// as C strings would be.
    pub fn is_match(&self, subject: &str) -> bool {
        let bytes = subject.as_bytes();
        let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
        let subject = &subject[..end];
        let raw = match &self.inner {
            Inner::Literals { anchored: true, texts } => return texts.iter().any(|t| subject.starts_with(t.as_str())),
            Inner::Literals { anchored: false, texts } => return texts.iter().any(|t| subject.contains(t.as_str())),
            Inner::Compiled(raw) => raw,
        };
        // REG_STARTEND bounds the subject by the offsets in the match array, so it
        // needs no NUL-terminated copy (an allocation per match otherwise).
        let mut bounds = [libc::regmatch_t {
            rm_so: 0,
            rm_eo: end as libc::regoff_t,
        }];
        // SAFETY: raw is a compiled pattern; with REG_STARTEND regexec reads the subject
        // only within bounds[0], which lies inside `subject`; REG_NOSUB writes no match.
        unsafe { libc::regexec(raw, subject.as_ptr().cast(), 1, bounds.as_mut_ptr(), libc::REG_STARTEND) == 0 }
    }
}

impl Drop for Regex {
    fn drop(&mut self) {
        if let Inner::Compiled(raw) = &mut self.inner {
            // SAFETY: raw was initialised by a successful regcomp and is freed once.
            unsafe { libc::regfree(raw) }
        }
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Regex")
    }
}

/// A configuration pattern: a regex whose leading `!` inverts the match and
/// whose leading `\!` stands for a literal `!`.
pub struct ConfigRegex {
    regex: Regex,
    invert: bool,
}

impl ConfigRegex {
    pub fn new(text: &str) -> Result<ConfigRegex, RegexError> {
        let (pattern, invert) = if let Some(rest) = text.strip_prefix('!') {
            (rest, true)
        } else if let Some(rest) = text.strip_prefix('\\').filter(|r| r.starts_with('!')) {
            (rest, false)
        } else {
            (text, false)
        };
        Ok(ConfigRegex {
            regex: Regex::new(pattern)?,
            invert,
        })
    }

    pub fn is_match(&self, subject: &str) -> bool {
        self.regex.is_match(subject) != self.invert
    }
}

impl fmt::Debug for ConfigRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigRegex(invert={})", self.invert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_semantics() {
        let r = Regex::new("(ram|loop|fd|md|dm-|sr|scd|st)[0-9]*").unwrap();
        assert!(r.is_match("loop0") && r.is_match("host3") && r.is_match("mdadm"));
        assert!(!r.is_match("sda"));
        // Backslash is literal inside brackets in POSIX ERE.
        let b = Regex::new("[\\.]").unwrap();
        assert!(b.is_match("a\\b") && b.is_match("a.b") && !b.is_match("ab"));
        assert!(Regex::new("a.c").unwrap().is_match("a\nc"));
        assert!(Regex::new("(").is_err());
        assert!(Regex::new("a\0b").is_err());
    }

    #[test]
    fn errors_name_the_reason() {
        let e = |p: &str| Regex::new(p).unwrap_err().to_string();
        assert_eq!(e("("), "Unmatched ( or \\(");
        assert_eq!(e("a{2,1}"), "Invalid content of \\{\\}");
        assert_eq!(e("[[:foo:]]"), "Invalid character class name");
        assert_eq!(
            e("(((a{1,100}){1,100}){1,100})"),
            "Regular expression too big: its repetitions expand to 1020202 copies, the limit is 256"
        );
        assert_eq!(
            e("a{1,300}"),
            "Regular expression too big: its repetitions expand to 301 copies, the limit is 256"
        );
        assert_eq!(
            e(&"a".repeat(1025)),
            "Regular expression too long: 1025 bytes, the limit is 1024"
        );
        assert!(Regex::new("a{1,255}").is_ok());
    }

    #[test]
    fn a_load_has_a_budget() {
        // 256 copies cost about 1 MiB: the budget runs out after about 128 of them.
        let compiled = with_load_budget(|| (0..1000).take_while(|_| Regex::new("a{1,255}").is_ok()).count());
        assert!((120..130).contains(&compiled), "{compiled}");
        assert_eq!(
            with_load_budget(|| {
                loop {
                    if let Err(e) = Regex::new("a{1,255}") {
                        break e.to_string();
                    }
                }
            }),
            "Regular expressions too many: the configuration's patterns together would need more than 128 MiB"
        );
        // Outside a load, and in the next load, there is room again.
        assert!(Regex::new("a{1,255}").is_ok());
        assert!(with_load_budget(|| Regex::new("a{1,255}").is_ok()));
    }

    #[test]
    fn literal_patterns_match_as_regcomp_would() {
        let compiled = |p: &str| {
            let c = CString::new(p).unwrap();
            let mut raw = MaybeUninit::<libc::regex_t>::zeroed();
            // SAFETY: as in Regex::new.
            assert_eq!(0, unsafe {
                libc::regcomp(raw.as_mut_ptr(), c.as_ptr(), libc::REG_EXTENDED | libc::REG_NOSUB)
            });
            Regex {
                // SAFETY: regcomp succeeded.
                inner: Inner::Compiled(unsafe { raw.assume_init() }),
            }
        };
        for p in [
            "NETAPP",
            "LUN C-Mode",
            "a-b_c:d/e",
            "x",
            "^DGC",
            "(HITACHI|HP)",
            "^(HUAWEI|HS)",
            "(A)",
            "^x",
        ] {
            assert!(as_literals(p).is_some(), "{p:?}");
            let (lit, re) = (Regex::new(p).unwrap(), compiled(p));
            for s in [
                "",
                "NETAPP",
                "xNETAPPy",
                "LUN C-Mode 2",
                "a-b_c:d/e",
                "X",
                "x",
                "ab\0x",
                "x\0NETAPP",
                "netapp",
                "DGC",
                "xDGC",
                "HP",
                "xHPx",
                "HITACH",
                "HS1",
                "aHUAWEI",
                "A",
            ] {
                assert_eq!(lit.is_match(s), re.is_match(s), "{p:?} on {s:?}");
            }
        }
        for p in [
            "",
            "A$",
            "A.B",
            "a\\b",
            "a{2}",
            "a|b",
            "caf\u{e9}",
            "(a|)",
            "()",
            "^",
            "(a)(b)",
            "((a))",
            "^^a",
            "(^a)",
        ] {
            assert!(as_literals(p).is_none(), "{p:?}");
        }
    }

    #[test]
    fn compiled_patterns_see_the_subject_up_to_a_nul() {
        let r = Regex::new("^a.c$").unwrap();
        assert!(r.is_match("abc") && r.is_match("abc\0x") && !r.is_match("abcd") && !r.is_match("a\0c"));
        assert!(Regex::new("b$").unwrap().is_match("ab\0c"));
        assert!(Regex::new("^$").unwrap().is_match("\0abc"));
    }

    #[test]
    fn inversion_and_escape() {
        let r = ConfigRegex::new("!^sd").unwrap();
        assert!(!r.is_match("sda") && r.is_match("hda"));
        let l = ConfigRegex::new("\\!x").unwrap();
        assert!(l.is_match("a!x") && !l.is_match("x"));
    }
}
