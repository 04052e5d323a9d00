//! Differential runner: the same multipath.conf (and conf.d files) fed to upstream's
//! `multipath -t` (the oracle, multipath-tools 0.14.3 built by `make upstream` into
//! `target/upstream/`) and to our `multipathd -t`, and the one list of the differences we
//! intend ([`INTENDED`]).
//!
//! Each program runs in a private mount namespace (`unshare -m`) with an overlay on `/etc`
//! whose upper layer is a tmpfs of that namespace: both see exactly the case's files at
//! `/etc/multipath.conf` and `/etc/multipath/conf.d/`, and the host's `/etc` is never written.
//! Upstream runs under a time limit (some of its bugs loop forever).
//!
//! Used by `tests/config_oracle.rs` (the corpus) and by the differential fuzzer; include it with
//! `mod oracle_support;`.

#![allow(dead_code)] // each user takes a different part of this module

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One configuration: the main file (absent when `None`) and the conf.d files (`None`: no
/// conf.d directory at all; `Some(vec![])`: an empty one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Case {
    pub main: Option<String>,
    pub confd: Option<Vec<(String, String)>>,
}

impl Case {
    /// Only a main file.
    pub fn main(text: &str) -> Case {
        Case {
            main: Some(text.to_string()),
            confd: None,
        }
    }

    /// Reads a corpus entry: a file is the main file; a directory holds an optional
    /// `multipath.conf` and an optional `conf.d/` with its `*.conf` (and other) files.
    pub fn read(path: &Path) -> std::io::Result<Case> {
        let text = |p: &Path| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned());
        if path.is_file() {
            return Ok(Case::main(&text(path)?));
        }
        let main_path = path.join("multipath.conf");
        let main = if main_path.exists() {
            Some(text(&main_path)?)
        } else {
            None
        };
        let dir = path.join("conf.d");
        let confd = if dir.is_dir() {
            let mut files = Vec::new();
            for e in std::fs::read_dir(&dir)? {
                let p = e?.path();
                let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
                files.push((name, text(&p)?));
            }
            files.sort();
            Some(files)
        } else {
            None
        };
        Ok(Case { main, confd })
    }

    /// Every text of the case (main file first), for the intended-difference predicates.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.main
            .iter()
            .map(String::as_str)
            .chain(self.confd.iter().flatten().map(|(_, t)| t.as_str()))
    }

    /// The values given to `keyword` anywhere in the case (first word after the keyword,
    /// quotes removed; comments are not looked at closely: this is for predicates only).
    pub fn values_of<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = String> + 'a {
        self.texts().flat_map(move |t| {
            t.lines().filter_map(move |l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(keyword)).then(|| w.next().unwrap_or("").trim_matches('"').to_string())
            })
        })
    }
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signal(i32),
    /// Killed after [`TIME_LIMIT`].
    TimedOut,
}

/// What one program printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub status: Status,
    pub stdout: String,
    /// stderr lines with upstream's timestamp and any program-name prefix removed.
    pub diags: Vec<String>,
}

/// Upstream's longest honest `multipath -t` takes well under a second; its known hangs never end.
pub const TIME_LIMIT: Duration = Duration::from_secs(5);

/// Upstream's `multipath`, or why the oracle cannot run here.
pub fn oracle() -> Result<PathBuf, String> {
    let bin = std::env::var_os("UPSTREAM_MULTIPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/upstream/bin/multipath"));
    if !bin.exists() {
        return Err(format!("{} is absent (build it with `make upstream`)", bin.display()));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("not root: a private mount namespace with an overlay on /etc needs root".into());
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "true"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return Err("unshare -m does not work on this machine".into());
    }
    Ok(bin)
}

/// Prints the loud line a test shows when the oracle cannot run.
pub fn skipped(test: &str, why: &str) {
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!!! SKIPPED {test}: the upstream oracle cannot run: {why}");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
}

/// Our binary.
pub fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_multipathd"))
}

/// Sets up /etc inside the namespace, then execs the program. $1: the staging directory
/// (`files/` holds the case, `mnt/` gets the tmpfs), the rest: the command.
const SETUP: &str = r#"set -e
s=$1; shift
mount -t tmpfs oracle "$s/mnt"
mkdir "$s/mnt/upper" "$s/mnt/work"
mount -t overlay oracle -o "lowerdir=/etc,upperdir=$s/mnt/upper,workdir=$s/mnt/work" /etc
rm -rf /etc/multipath.conf /etc/multipath
if [ -e "$s/files/multipath.conf" ]; then cp "$s/files/multipath.conf" /etc/multipath.conf; fi
if [ -d "$s/files/conf.d" ]; then mkdir -p /etc/multipath; cp -r "$s/files/conf.d" /etc/multipath/conf.d; fi
exec "$@"
"#;

/// Runs `program -t` on the case (the program sees the case as /etc).
pub fn run(program: &Path, case: &Case) -> Run {
    let stage = tempfile::tempdir().expect("staging directory");
    let files = stage.path().join("files");
    std::fs::create_dir(&files).expect("staging");
    std::fs::create_dir(stage.path().join("mnt")).expect("staging");
    if let Some(m) = &case.main {
        std::fs::write(files.join("multipath.conf"), m).expect("staging");
    }
    if let Some(c) = &case.confd {
        std::fs::create_dir(files.join("conf.d")).expect("staging");
        for (name, text) in c {
            std::fs::write(files.join("conf.d").join(name), text).expect("staging");
        }
    }
    let mut child = Command::new("unshare")
        .args(["-m", "--propagation", "private", "--", "sh", "-c", SETUP, "sh"])
        .arg(stage.path())
        .arg(program)
        .arg("-t")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    let reader = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = r.read_to_end(&mut b);
            String::from_utf8_lossy(&b).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            use std::os::unix::process::ExitStatusExt;
            break match (s.code(), s.signal()) {
                (Some(c), _) => Status::Exited(c),
                (None, Some(sig)) => Status::Signal(sig),
                (None, None) => Status::Exited(-1),
            };
        }
        if start.elapsed() > TIME_LIMIT {
            // `sh` exec'ed the program, so this is the program itself.
            let _ = child.kill();
            let _ = child.wait();
            break Status::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    Run {
        status,
        stdout,
        diags: stderr.lines().map(normalize).filter(|l| !l.is_empty()).collect(),
    }
}

/// Removes upstream's log prefix (`  501.155340 | ` or a wall-clock `Dec 02 16:54:23 | `) and a
/// program-name prefix, so both programs' lines compare as message text.
pub fn normalize(line: &str) -> String {
    let mut l = line.trim_end();
    if let Some((head, rest)) = l.split_once(" | ")
        && head.len() <= 24
        && head.chars().all(|c| c.is_ascii_alphanumeric() || " .:".contains(c))
        && head.chars().any(|c| c.is_ascii_digit())
    {
        l = rest;
    }
    for p in ["multipathd: ", "multipath: "] {
        if let Some(rest) = l.strip_prefix(p) {
            l = rest;
        }
    }
    l.to_string()
}

/// A difference between upstream and us that we mean to keep.
pub struct Intended {
    pub name: &'static str,
    pub reason: &'static str,
    pub kind: Kind,
}

pub enum Kind {
    /// Upstream's result is unusable for this case (a crash, a hang): the case is only
    /// checked on our side, by the predicate, which gets (case, upstream, ours) and must
    /// check that ours did the right thing.
    Excuse(fn(&Case, &Run, &Run) -> bool),
    /// Upstream's output is rewritten to what it means before comparing; returns whether it
    /// changed anything.
    Fixup(fn(&Case, &mut Run) -> bool),
}

/// A numeric value as upstream's `strtol` would read all of it, if it does.
fn number(v: &str) -> Option<i64> {
    let t = v.strip_prefix('+').unwrap_or(v);
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        t.parse::<i64>()
            .unwrap_or(if t.starts_with('-') { i64::MIN } else { i64::MAX }),
    )
}

/// Ours ended well and printed a dump.
fn ours_fine(ours: &Run) -> bool {
    ours.status == Status::Exited(0) && ours.stdout.starts_with("defaults {\n")
}

/// Ours ended well, or refused the configuration for another reason with its error: the
/// polling excuses below are about upstream dying before it reads the rest.
fn ours_fine_or_refused(ours: &Run) -> bool {
    ours_fine(ours)
        || (ours.status == Status::Exited(1)
            && ours.stdout.is_empty()
            && ours.diags.last().is_some_and(|d| d == "error parsing config file"))
}

/// The one list of intended differences. Anything else fails.
pub static INTENDED: &[Intended] = &[
    Intended {
        name: "polling_interval_zero",
        reason: "upstream divides by polling_interval when it is 0 and dies of SIGFPE \
                 (../shared/reference/upstream/README.md); ours warns and keeps a valid interval",
        kind: Kind::Excuse(|case, up, ours| {
            up.status == Status::Signal(libc::SIGFPE)
                && case.values_of("polling_interval").any(|v| number(&v) == Some(0))
                && ours_fine_or_refused(ours)
        }),
    },
    Intended {
        name: "polling_interval_not_positive",
        reason: "upstream loops forever on a negative or non-numeric polling_interval \
                 (../shared/reference/upstream/README.md); ours warns and keeps a valid interval",
        kind: Kind::Excuse(|case, up, ours| {
            up.status == Status::TimedOut
                // Upstream reads it as unsigned digits only: a sign makes it non-numeric.
                && case
                    .values_of("polling_interval")
                    .any(|v| v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()))
                && ours_fine_or_refused(ours)
        }),
    },
    Intended {
        name: "polling_interval_huge",
        reason: "with a polling interval above UINT_MAX / 4, upstream's load_config loops forever \
                 doubling adjust_int (an unsigned product that wraps before it reaches \
                 max_polling_interval); ours keeps the interval and prints the dump",
        kind: Kind::Excuse(|case, up, ours| {
            let huge = |k| {
                case.values_of(k)
                    .any(|v| number(&v).is_some_and(|n| n > i64::from(u32::MAX / 4)))
            };
            up.status == Status::TimedOut
                && (huge("polling_interval") || huge("max_polling_interval"))
                && ours_fine_or_refused(ours)
        }),
    },
    Intended {
        name: "partition_delimiter_unset_crash",
        reason: "upstream's partition_delimiter handler compares the value it just refused (every \
                 value with a slash, its own /UNSET/ included) as a string: with no earlier value \
                 that is a NULL pointer, and multipath -t dies of SIGSEGV; ours refuses the value \
                 with upstream's message and goes on",
        kind: Kind::Excuse(|case, up, ours| {
            // Upstream said what it had to say until it died; ours says the same and goes on
            // (to a dump, or to the failure an earlier line had already made).
            up.status == Status::Signal(libc::SIGSEGV)
                && case.values_of("partition_delimiter").any(|v| v.contains('/'))
                && ours.diags.starts_with(&up.diags)
                && ours
                    .diags
                    .iter()
                    .any(|d| d.ends_with(" cannot contain a slash. Ignoring"))
        }),
    },
    Intended {
        name: "blacklist_device_without_product",
        reason: "upstream prints a blacklist device entry that has no product without its closing \
                 brace, so its dump does not parse (../shared/reference/upstream/README.md); ours \
                 closes it",
        kind: Kind::Fixup(|_, up| {
            // Upstream: "\tdevice {\n\t\tvendor \"V\"\n" directly followed by the next entry or the
            // section's end; a fixed upstream would have closed the entry.
            let lines: Vec<&str> = up.stdout.split_inclusive('\n').collect();
            let mut out = String::with_capacity(up.stdout.len() + 16);
            let mut section = "";
            let mut changed = false;
            for (i, l) in lines.iter().enumerate() {
                if !l.starts_with('\t') {
                    section = l;
                }
                out.push_str(l);
                let in_blacklist = section.starts_with("blacklist");
                if in_blacklist && l.starts_with("\t\tvendor ") {
                    let next = lines.get(i + 1).copied().unwrap_or("");
                    if !next.starts_with("\t\tproduct ") && !next.starts_with("\t}") {
                        out.push_str("\t}\n");
                        changed = true;
                    }
                }
            }
            if changed {
                up.stdout = out;
            }
            changed
        }),
    },
    Intended {
        name: "blacklist_device_without_vendor",
        reason: "upstream prints a blacklist device entry that has no vendor without its opening \
                 `device {` line (the opener is printed with the vendor, and dropped with it), so \
                 its dump does not parse; ours opens it",
        kind: Kind::Fixup(|_, up| {
            // Upstream: "\t\tproduct \"P\"\n\t}\n" right after the previous entry's "\t}" or the
            // section's patterns.
            let mut out = String::with_capacity(up.stdout.len() + 16);
            let mut section = "";
            let mut prev = "";
            let mut changed = false;
            for l in up.stdout.split_inclusive('\n') {
                if !l.starts_with('\t') {
                    section = l;
                }
                if section.starts_with("blacklist") && l.starts_with("\t\tproduct ") && !prev.starts_with("\t\tvendor ")
                {
                    out.push_str("\tdevice {\n");
                    changed = true;
                }
                out.push_str(l);
                prev = l;
            }
            if changed {
                up.stdout = out;
            }
            changed
        }),
    },
    Intended {
        name: "uid_attrs_printed_bare",
        reason: "upstream prints uid_attrs without quotes, so a dump with several records (or a \
                 record holding a tab, a brace, a quote or a comment sign) re-reads as less and \
                 warns about extra data; ours quotes such a value",
        kind: Kind::Fixup(|_, up| {
            let mut changed = false;
            let mut out = String::with_capacity(up.stdout.len() + 2);
            for l in up.stdout.split_inclusive('\n') {
                match l
                    .strip_prefix("\tuid_attrs ")
                    .map(|v| v.strip_suffix('\n').unwrap_or(v))
                {
                    // What ends a bare word: blanks, braces, a quote, a comment, non-ASCII.
                    Some(v)
                        if !v
                            .chars()
                            .all(|c| c.is_ascii_graphic() && !matches!(c, '{' | '}' | '"' | '#' | '!')) =>
                    {
                        out.push_str(&format!("\tuid_attrs \"{}\"\n", v.replace('"', "\"\"")));
                        changed = true;
                    }
                    _ => out.push_str(l),
                }
            }
            if changed {
                up.stdout = out;
            }
            changed
        }),
    },
    Intended {
        name: "product_blacklist_invalid_regex",
        reason: "a device entry whose vendor or product_blacklist does not compile as a regex fails \
                 upstream's load without a word (setup_default_blist returns an error, multipath -t \
                 exits 1 and prints nothing more); ours fails it too and says which entry and why",
        kind: Kind::Excuse(|_, up, ours| {
            let ours_said: Vec<&String> = ours
                .diags
                .iter()
                .filter(|d| {
                    !d.contains(": product_blacklist not usable, invalid regular expression ")
                        && *d != "error parsing config file"
                })
                .collect();
            up.status == Status::Exited(1)
                && ours.status == Status::Exited(1)
                && up.stdout.is_empty()
                && ours.stdout.is_empty()
                && ours_said.len() + 2 == ours.diags.len()
                && ours_said.into_iter().eq(up.diags.iter())
        }),
    },
    Intended {
        name: "multipath_dir_build_path",
        reason: "the deprecated multipath_dir message names the plugin directory the binary was \
                 built with: upstream's build here says /lib64/multipath, ours says Debian's \
                 /lib/multipath (we have no plugins; the value only shows in this message)",
        kind: Kind::Fixup(|_, up| {
            let mut changed = false;
            for d in &mut up.diags {
                let from = "ignoring deprecated option \"multipath_dir\", using built-in value: \"/lib64/multipath\"";
                if d.contains(from) {
                    *d = d.replace(from, &from.replace("/lib64/", "/lib/"));
                    changed = true;
                }
            }
            changed
        }),
    },
    Intended {
        name: "uid_gid_printed_in_octal",
        reason: "upstream's show config prints uid and gid in octal with a leading 0 (uid 1000 as \
                 01750), which reads back as another id; ours prints the number as given",
        kind: Kind::Fixup(|_, up| {
            let mut changed = false;
            let mut out = String::with_capacity(up.stdout.len());
            for l in up.stdout.split_inclusive('\n') {
                let body = l.trim_start_matches('\t');
                let indent = &l[..l.len() - body.len()];
                let fixed = ["uid ", "gid "].iter().find_map(|k| {
                    let v = body.strip_prefix(k)?.trim_end().strip_prefix('0')?;
                    let n = if v.is_empty() {
                        0
                    } else {
                        u64::from_str_radix(v, 8).ok()?
                    };
                    Some(format!("{indent}{k}{n}\n"))
                });
                match fixed {
                    Some(f) => {
                        changed |= f != l;
                        out.push_str(&f);
                    }
                    None => out.push_str(l),
                }
            }
            if changed {
                up.stdout = out;
            }
            changed
        }),
    },
];

/// How a case came out.
#[derive(Debug)]
pub enum Verdict {
    /// Same dump, same diagnostics, same exit (after the listed fixups, by name).
    Same(Vec<&'static str>),
    /// Different, explained by the named excuse.
    Excused(&'static str),
    /// Different and not listed: the report says how.
    Differs(String),
}

/// Compares upstream's run with ours under the intended-differences list.
pub fn judge(case: &Case, mut up: Run, ours: &Run) -> Verdict {
    let mut fixed = Vec::new();
    for i in INTENDED {
        if let Kind::Fixup(f) = i.kind
            && f(case, &mut up)
        {
            fixed.push(i.name);
        }
    }
    if up == *ours {
        return Verdict::Same(fixed);
    }
    for i in INTENDED {
        if let Kind::Excuse(f) = i.kind
            && f(case, &up, ours)
        {
            return Verdict::Excused(i.name);
        }
    }
    let mut r = String::new();
    if up.status != ours.status {
        r.push_str(&format!("exit: upstream {:?}, ours {:?}\n", up.status, ours.status));
    }
    if up.diags != ours.diags {
        r.push_str("diagnostics (- upstream, + ours):\n");
        r.push_str(&diff(&up.diags.join("\n"), &ours.diags.join("\n")));
    }
    if up.stdout != ours.stdout {
        r.push_str("dump (- upstream, + ours):\n");
        r.push_str(&diff(&up.stdout, &ours.stdout));
    }
    Verdict::Differs(r)
}

/// Runs both programs on a case (side by side: each waits mostly on its namespace set-up)
/// and judges the outcome.
pub fn compare(upstream: &Path, case: &Case) -> Verdict {
    let (up, mine) = std::thread::scope(|s| {
        let up = s.spawn(|| run(upstream, case));
        let mine = run(&ours(), case);
        (up.join().expect("upstream runner"), mine)
    });
    judge(case, up, &mine)
}

/// A line diff (longest common subsequence) showing only the changed lines, each with its
/// line number in the upstream text; capped so a wholesale difference stays readable.
pub fn diff(a: &str, b: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // Trim the common head and tail first: dumps are long and mostly equal.
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out = String::new();
    if ma.len() * mb.len() > 4_000_000 {
        out.push_str(&format!(
            "  (from line {}: {} upstream lines vs {} ours)\n",
            head + 1,
            ma.len(),
            mb.len()
        ));
        return out;
    }
    let mut lcs = vec![vec![0u32; mb.len() + 1]; ma.len() + 1];
    for i in (0..ma.len()).rev() {
        for j in (0..mb.len()).rev() {
            lcs[i][j] = if ma[i] == mb[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut shown) = (0, 0, 0);
    while (i < ma.len() || j < mb.len()) && shown < 80 {
        if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
            i += 1;
            j += 1;
        } else if j < mb.len() && (i == ma.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("  {:5} + {}\n", head + i + 1, mb[j]));
            j += 1;
            shown += 1;
        } else {
            out.push_str(&format!("  {:5} - {}\n", head + i + 1, ma[i]));
            i += 1;
            shown += 1;
        }
    }
    if shown == 80 {
        out.push_str("  ...\n");
    }
    out
}
