//! Configuration inputs that must neither hang nor kill the daemon: a FIFO, a socket
//! or a device where a configuration file should be, a 100 MB file, NUL bytes, a
//! blacklist regex whose compilation explodes. Each case runs against the real loader
//! (`config::load`, what the daemon, reconfigure and the client call) under a
//! watchdog, so a regression fails the test instead of hanging it; the `-t` cases run
//! the real binary against a FIFO at /etc/multipath.conf in a private mount namespace.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use multipathd::config::regex_size::MAX_COPIES;
use multipathd::config::source::{MAX_FILE_BYTES, MAX_TOTAL_BYTES};
use multipathd::config::{self, ConfigError, FileKind, Level, LoadOptions, Loaded, Refusal};

/// Generous bound for a refusal (they take well under a millisecond to a few, as the
/// tests print, but the machine may be busy); a hang shows as the watchdog firing.
const LIMIT: Duration = Duration::from_secs(5);

struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        // In memory where there is one: the size cases write 16 MiB.
        let dir = tempfile::Builder::new()
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let d = Dir { dir };
        std::fs::create_dir(d.confd()).unwrap();
        d
    }
    fn main(&self) -> PathBuf {
        self.dir.path().join("multipath.conf")
    }
    fn confd(&self) -> PathBuf {
        self.dir.path().join("conf.d")
    }
    fn opts(&self) -> LoadOptions {
        LoadOptions {
            path: self.main(),
            conf_dir: self.confd(),
        }
    }
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

/// Runs `config::load` on another thread and fails if it takes longer than `LIMIT`
/// (the thread, stuck in open() on a FIFO say, is left behind). Returns the result
/// and how long it took.
fn load_within(opts: LoadOptions) -> (Result<Loaded, ConfigError>, Duration) {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(config::load(&opts));
    });
    match rx.recv_timeout(LIMIT * 10) {
        Ok(r) => {
            let took = start.elapsed();
            assert!(took < LIMIT, "loading took {took:?}");
            eprintln!("load answered in {took:?}");
            (r, took)
        }
        Err(_) => panic!("config::load hung for {:?}", LIMIT * 10),
    }
}

fn refused(r: Result<Loaded, ConfigError>) -> (Refusal, String) {
    match r {
        Err(e @ ConfigError::Refused { .. }) => {
            let text = e.to_string();
            let ConfigError::Refused { reason, .. } = e else {
                unreachable!()
            };
            (reason, text)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The one error diagnostic about `file`.
fn error_about(l: &Loaded, file: &Path) -> String {
    let file = file.display().to_string();
    let errs: Vec<_> = l
        .diagnostics
        .iter()
        .filter(|d| d.level == Level::Error && d.file == file)
        .collect();
    assert_eq!(errs.len(), 1, "{:?}", l.diagnostics);
    errs[0].message.clone()
}

#[test]
fn a_fifo_as_the_main_file_is_refused_at_once() {
    let d = Dir::new();
    mkfifo(&d.main());
    let (reason, text) = refused(load_within(d.opts()).0);
    assert!(matches!(reason, Refusal::NotRegular(FileKind::Fifo)));
    assert_eq!(
        text,
        format!(
            "refusing configuration file '{}': it is a FIFO, not a regular file",
            d.main().display()
        )
    );
}

#[test]
fn a_socket_or_a_device_as_the_main_file_is_refused() {
    let d = Dir::new();
    let _l = UnixListener::bind(d.main()).unwrap();
    let (reason, _) = refused(load_within(d.opts()).0);
    assert!(matches!(reason, Refusal::NotRegular(FileKind::Socket)));

    // /dev/zero would stream without end.
    let d = Dir::new();
    std::os::unix::fs::symlink("/dev/zero", d.main()).unwrap();
    let (reason, text) = refused(load_within(d.opts()).0);
    assert!(matches!(reason, Refusal::NotRegular(FileKind::CharDevice)));
    assert!(text.ends_with("it is a character device, not a regular file"), "{text}");

    let d = Dir::new();
    std::fs::create_dir(d.main()).unwrap();
    let (reason, _) = refused(load_within(d.opts()).0);
    assert!(matches!(reason, Refusal::NotRegular(FileKind::Directory)));
}

/// In conf.d the bad entry is refused with a message naming it, and the other files
/// still count.
#[test]
fn fifo_socket_and_device_in_conf_d_are_refused_and_the_rest_is_read() {
    let d = Dir::new();
    let c = d.confd();
    mkfifo(&c.join("a-fifo.conf"));
    let _l = UnixListener::bind(c.join("b-socket.conf")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", c.join("c-zero.conf")).unwrap();
    std::fs::write(c.join("d.conf"), "defaults {\n\tverbosity 4\n}\n").unwrap();
    let l = load_within(d.opts()).0.expect("loads without the bad entries");
    for (name, kind) in [
        ("a-fifo.conf", "a FIFO"),
        ("b-socket.conf", "a socket"),
        ("c-zero.conf", "a character device"),
    ] {
        let p = c.join(name);
        assert_eq!(
            error_about(&l, &p),
            format!(
                "refusing configuration file '{}': it is {kind}, not a regular file",
                p.display()
            )
        );
    }
    assert_eq!(l.config.setting_int(config::keywords::Setting::Verbosity), Some(4));
}

#[test]
fn a_100_mb_file_is_refused_without_being_read() {
    let d = Dir::new();
    let f = std::fs::File::create(d.main()).unwrap();
    // Sparse: the size is what matters, and it must not be read to be refused.
    f.set_len(100 << 20).unwrap();
    let (r, took) = load_within(d.opts());
    let (reason, text) = refused(r);
    assert!(matches!(reason, Refusal::TooLarge { size } if size == 100 << 20));
    assert_eq!(
        text,
        format!(
            "refusing configuration file '{}': its size (104857600 bytes) is over the limit of {MAX_FILE_BYTES} bytes",
            d.main().display()
        )
    );
    assert!(took < LIMIT, "{took:?}");

    // The same in conf.d: that file is refused, the rest is read.
    let d = Dir::new();
    std::fs::File::create(d.confd().join("big.conf"))
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let l = load_within(d.opts()).0.unwrap();
    assert!(error_about(&l, &d.confd().join("big.conf")).contains("is over the limit"));
}

/// Each file under its own limit, together over the total: the file that crosses it
/// is refused, those before it are read. (The big ones are sparse, so all NUL bytes
/// and refused for that too, once read: what counts against the total is what was
/// read.)
#[test]
fn the_files_together_are_bounded_too() {
    let d = Dir::new();
    std::fs::write(d.confd().join("00.conf"), "defaults {\n\tverbosity 4\n}\n").unwrap();
    let n = (MAX_TOTAL_BYTES / MAX_FILE_BYTES) as usize;
    for i in 1..=n {
        std::fs::File::create(d.confd().join(format!("{i:02}.conf")))
            .unwrap()
            .set_len(MAX_FILE_BYTES)
            .unwrap();
    }
    let l = load_within(d.opts()).0.unwrap();
    assert_eq!(l.config.setting_int(config::keywords::Setting::Verbosity), Some(4));
    for i in 1..n {
        let p = d.confd().join(format!("{i:02}.conf"));
        assert!(error_about(&l, &p).ends_with("line 1 contains a NUL byte"));
    }
    let last = d.confd().join(format!("{n:02}.conf"));
    assert_eq!(
        error_about(&l, &last),
        format!(
            "refusing configuration file '{}': the configuration files together would be over the limit of {MAX_TOTAL_BYTES} bytes",
            last.display()
        )
    );
}

/// A NUL byte would cut the value short in upstream's C and end up in CLI replies
/// here: the file is refused, naming the file and the line.
#[test]
fn nul_bytes_are_refused_with_file_and_line() {
    let d = Dir::new();
    std::fs::write(d.main(), b"defaults {\n\tverbosity 2\n\talias_prefix \"mp\0ath\"\n}\n").unwrap();
    let (reason, text) = refused(load_within(d.opts()).0);
    assert!(matches!(reason, Refusal::Nul { line: 3 }));
    assert_eq!(
        text,
        format!(
            "refusing configuration file '{}': line 3 contains a NUL byte",
            d.main().display()
        )
    );

    let d = Dir::new();
    let bad = d.confd().join("nul.conf");
    std::fs::write(&bad, b"blacklist {\n\twwid \"abc\0\"\n}\n").unwrap();
    let l = load_within(d.opts()).0.unwrap();
    let errs: Vec<_> = l.diagnostics.iter().filter(|x| x.level == Level::Error).collect();
    assert_eq!(errs.len(), 1);
    assert_eq!((errs[0].file.as_str(), errs[0].line), (bad.to_str().unwrap(), 2));
    assert!(l.config.blacklist.wwid.is_empty());
    // Nothing of it reaches `show config`.
    assert!(!config::dump::show_config(&l.config).contains('\0'));

    // Text handed in directly (tests, the fuzzers) gets the same answer.
    assert!(matches!(
        config::parse_str("t.conf", "defaults {\n\tuser_friendly_names y\0es\n}\n"),
        Err(ConfigError::Refused {
            reason: Refusal::Nul { line: 2 },
            ..
        })
    ));
}

/// glibc's regcomp spends a minute or more on this one and can abort the process;
/// it is refused before regcomp sees it, with the reason.
#[test]
fn an_exploding_blacklist_regex_is_refused_quickly_with_the_reason() {
    let pattern = "(((a{1,100}){1,100}){1,100})";
    let d = Dir::new();
    std::fs::write(d.main(), format!("blacklist {{\n\tdevnode \"{pattern}\"\n}}\n")).unwrap();
    let (r, took) = load_within(d.opts());
    assert!(took < LIMIT, "{took:?}");
    let Err(e @ ConfigError::Parse { .. }) = r else {
        panic!("expected a parse error, got {r:?}")
    };
    let main = d.main().display().to_string();
    assert_eq!(
        e.to_string(),
        format!("{main} line 2, parsing failed: \tdevnode \"{pattern}\"\nerror parsing config file")
    );
    // The reason is a level-3 line (upstream prints none), shown from -v3 on.
    let ConfigError::Parse { diagnostics, .. } = &e else {
        unreachable!()
    };
    assert_eq!(diagnostics[1].level, Level::Info);
    assert_eq!(
        diagnostics[1].message,
        format!(
            "{main} line 2, invalid regular expression \"{pattern}\": Regular expression too big: \
             its repetitions expand to 1020202 copies, the limit is {MAX_COPIES}"
        )
    );

    // In a device section the entry is kept, as upstream keeps it, and matches nothing; a
    // level-3 line says why.
    let text = format!("devices {{\n\tdevice {{\n\t\tvendor \"{pattern}\"\n\t\tproduct X\n\t}}\n}}\n");
    let start = Instant::now();
    let l = config::parse_str_bare("t.conf", &text).unwrap();
    assert!(start.elapsed() < LIMIT);
    assert_eq!(l.diagnostics[0].level, Level::Info);
    assert!(
        l.diagnostics[0]
            .message
            .ends_with("Regular expression too big: its repetitions expand to 1020202 copies, the limit is 256"),
        "{:?}",
        l.diagnostics
    );
    assert_eq!(l.config.devices.len(), 1);
    assert!(!l.config.devices[0].matches("a", "X", ""));
}

/// The bound leaves room for every real pattern and stays fast at its edge.
#[test]
fn patterns_at_the_bound_still_compile_fast() {
    for p in ["a{1,255}", "(a?){1,85}", "((a?){1,8}){1,9}", "[[:alnum:]]{1,255}"] {
        let start = Instant::now();
        let l = config::parse_str("t.conf", &format!("blacklist {{\n\tdevnode \"{p}\"\n}}\n"))
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        assert_eq!(l.config.blacklist.devnode.len(), 1);
        assert!(start.elapsed() < LIMIT, "{p}: {:?}", start.elapsed());
    }
}

#[test]
fn regex_errors_name_glibcs_reason() {
    for (p, reason) in [
        ("(", "Unmatched ( or \\("),
        ("a{2,1}", "Invalid content of \\{\\}"),
        ("[[:foo:]]", "Invalid character class name"),
        ("x\\", "Trailing backslash"),
    ] {
        let Err(ConfigError::Parse { diagnostics, .. }) =
            config::parse_str("t.conf", &format!("blacklist {{\n\twwid \"{p}\"\n}}\n"))
        else {
            panic!("{p} compiled")
        };
        assert_eq!(
            diagnostics[1].message,
            format!("t.conf line 2, invalid regular expression \"{p}\": {reason}")
        );
    }
}

// ---- the real binary: `multipathd -t` and the client ----------------------------

/// Runs the binary with `args` in a private mount namespace whose /etc is an empty
/// tmpfs prepared by `setup` (shell), killed after 10 s. `None` (skipped loudly)
/// when namespaces are not available (not root, no unshare).
fn with_private_etc(setup: &str, args: &[&str]) -> Option<(std::process::Output, Duration)> {
    let works = Command::new("unshare")
        .args(["-m", "--propagation", "private", "mount", "-t", "tmpfs", "none", "/mnt"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !works {
        eprintln!("!!!!!!!!!!!!!!!!!!!! skipped: no private mount namespace (needs root and unshare)");
        return None;
    }
    let bin = env!("CARGO_BIN_EXE_multipathd");
    let script = format!(
        "mount -t tmpfs none /etc && mkdir -p /etc/multipath/conf.d && {setup} && exec timeout 10 \"$0\" \"$@\""
    );
    let start = Instant::now();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, bin])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Some((out, start.elapsed()))
}

#[test]
fn multipathd_t_refuses_a_fifo_at_etc_multipath_conf() {
    let Some((out, took)) = with_private_etc("mkfifo /etc/multipath.conf", &["-t"]) else {
        return;
    };
    eprintln!("multipathd -t answered in {took:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "refusing configuration file '/etc/multipath.conf': it is a FIFO, not a regular file\n"
    );
    assert!(took < LIMIT, "{took:?}");
}

#[test]
fn multipathd_t_refuses_a_fifo_in_conf_d_and_prints_the_rest() {
    let Some((out, took)) = with_private_etc(
        "mkfifo /etc/multipath/conf.d/x.conf && printf 'defaults {\\n\\tverbosity 4\\n}\\n' > /etc/multipath.conf",
        &["-t"],
    ) else {
        return;
    };
    eprintln!("multipathd -t answered in {took:?}");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "refusing configuration file '/etc/multipath/conf.d/x.conf': it is a FIFO, not a regular file\n"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\tverbosity 4\n"));
    assert!(took < LIMIT, "{took:?}");
}

#[test]
fn multipathd_t_refuses_a_100_mb_file_and_a_nul() {
    let Some((out, took)) = with_private_etc("truncate -s 100M /etc/multipath.conf", &["-t"]) else {
        return;
    };
    eprintln!("multipathd -t answered in {took:?}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("(104857600 bytes) is over the limit"));
    assert!(took < LIMIT, "{took:?}");

    let (out, _) = with_private_etc(
        "printf 'defaults {\\n\\tverbosity \\0002\\n}\\n' > /etc/multipath.conf",
        &["-t"],
    )
    .expect("namespaces worked a moment ago");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "refusing configuration file '/etc/multipath.conf': line 2 contains a NUL byte\n"
    );
}

/// The client reads multipath.conf for uxsock_timeout: a FIFO there must not hang
/// an admin's `multipathd show daemon`. With no daemon running it fails at once.
#[test]
fn the_client_does_not_hang_on_a_fifo_config() {
    let Some((out, took)) = with_private_etc("mkfifo /etc/multipath.conf", &["show", "daemon"]) else {
        return;
    };
    eprintln!("client answered in {took:?}");
    assert_ne!(out.status.code(), Some(124), "the client hung: {out:?}");
    assert!(took < LIMIT, "{took:?}");
}

/// Each pattern at the bound costs glibc about half a megabyte: many of them in one
/// file are refused once the load's budget is spent, instead of taking gigabytes.
#[test]
fn many_patterns_at_the_bound_exhaust_the_load_budget_not_the_memory() {
    let mut text = String::from("blacklist {\n");
    for i in 0..200 {
        text.push_str(&format!("\tdevnode \"x{i}a{{1,250}}\"\n"));
    }
    text.push_str("}\n");
    let start = Instant::now();
    let Err(ConfigError::Parse { diagnostics, .. }) = config::parse_str("t.conf", &text) else {
        panic!("200 patterns at the bound loaded")
    };
    let took = start.elapsed();
    eprintln!("refused after {took:?}");
    assert!(took < LIMIT, "{took:?}");
    assert!(
        diagnostics[1].message.ends_with(
            "Regular expressions too many: the configuration's patterns together would need more than 128 MiB"
        ),
        "{:?}",
        diagnostics[1]
    );
}
