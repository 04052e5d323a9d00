//! Fuzz target: the configuration loader (`config::load`) over what can sit at the
//! main file's path and in conf.d: text (mutated seed files from
//! `tests/corpus/config/`, NUL bytes included), FIFOs, sockets, device nodes,
//! directories, dangling symlinks and sparse files around the size limit.
//! Properties: the load returns within seconds (a hang aborts the case), never
//! panics, refuses exactly the entries it must with the reason and the file (and
//! the line, for NUL bytes), and reads everything else. See `tests/fuzz_support`
//! for the knobs (FUZZ_SECONDS under `make fuzz`, bounded cases in `make test`).

mod fuzz_support;

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use multipathd::config::source::MAX_FILE_BYTES;
use multipathd::config::{self, ConfigError, FileKind, Level, LoadOptions, Loaded, Refusal};
use proptest::prelude::*;

/// One thing at a configuration path.
#[derive(Debug, Clone)]
enum Entry {
    Text(Vec<u8>),
    Fifo,
    Socket,
    /// A symlink to a character device.
    Device(&'static str),
    Dir,
    /// A sparse file of this size (all NUL bytes).
    Sparse(u64),
    Dangling,
}

#[derive(Debug, Clone)]
struct Case {
    main: Option<Entry>,
    confd: Vec<Entry>,
}

fn entry() -> impl Strategy<Value = Entry> {
    let seeds: Vec<Vec<u8>> = fuzz_support::corpus("config").into_iter().map(|(_, b)| b).collect();
    let dict: Vec<Vec<u8>> = ["\0", "\n", "{", "}", "devnode \"a{1,300}\"\n", "blacklist {\n"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    prop_oneof![
        6 => fuzz_support::mutated(seeds, dict, 6).prop_map(Entry::Text),
        1 => Just(Entry::Fifo),
        1 => Just(Entry::Socket),
        1 => prop_oneof![Just("/dev/zero"), Just("/dev/null"), Just("/dev/urandom")].prop_map(Entry::Device),
        1 => Just(Entry::Dir),
        1 => prop_oneof![
            Just(0u64),
            Just(1),
            Just(MAX_FILE_BYTES),
            Just(MAX_FILE_BYTES + 1),
            Just(100 << 20)
        ]
        .prop_map(Entry::Sparse),
        1 => Just(Entry::Dangling),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (proptest::option::of(entry()), proptest::collection::vec(entry(), 0..4))
        .prop_map(|(main, confd)| Case { main, confd })
}

/// Creates `e` at `p`; the returned listener keeps a socket bound.
fn create(p: &Path, e: &Entry) -> Option<UnixListener> {
    match e {
        Entry::Text(b) => std::fs::write(p, b).unwrap(),
        Entry::Fifo => nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap(),
        Entry::Socket => return Some(UnixListener::bind(p).unwrap()),
        Entry::Device(d) => std::os::unix::fs::symlink(d, p).unwrap(),
        Entry::Dir => std::fs::create_dir(p).unwrap(),
        Entry::Sparse(n) => std::fs::File::create(p).unwrap().set_len(*n).unwrap(),
        Entry::Dangling => std::os::unix::fs::symlink("/nonexistent/multipath.conf", p).unwrap(),
    }
    None
}

/// What the loader must say about an entry: `None` when it is read (or absent).
fn expected(e: &Entry) -> Option<Refusal> {
    let nul = |b: &[u8]| config::source::nul_line(b).map(|line| Refusal::Nul { line });
    match e {
        Entry::Text(b) if b.len() as u64 > MAX_FILE_BYTES => Some(Refusal::TooLarge { size: b.len() as u64 }),
        Entry::Text(b) => nul(b),
        Entry::Fifo => Some(Refusal::NotRegular(FileKind::Fifo)),
        Entry::Socket => Some(Refusal::NotRegular(FileKind::Socket)),
        Entry::Device(_) => Some(Refusal::NotRegular(FileKind::CharDevice)),
        Entry::Dir => Some(Refusal::NotRegular(FileKind::Directory)),
        Entry::Sparse(n) if *n > MAX_FILE_BYTES => Some(Refusal::TooLarge { size: *n }),
        Entry::Sparse(0) => None,
        Entry::Sparse(_) => Some(Refusal::Nul { line: 1 }),
        Entry::Dangling => None,
    }
}

fn load_within(opts: LoadOptions) -> Result<Loaded, ConfigError> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(config::load(&opts));
    });
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("config::load hung for 5 s"))
}

/// A scratch directory in memory where there is one: a case makes and removes a
/// handful of files, which on a disk-backed /tmp costs more than the load itself.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fn property(c: &Case) {
    let dir = scratch();
    let main = dir.path().join("multipath.conf");
    let confd = dir.path().join("conf.d");
    std::fs::create_dir(&confd).unwrap();
    let mut keep = Vec::new();
    if let Some(e) = &c.main {
        keep.extend(create(&main, e));
    }
    let names: Vec<_> = (0..c.confd.len()).map(|i| confd.join(format!("{i}.conf"))).collect();
    for (p, e) in names.iter().zip(&c.confd) {
        keep.extend(create(p, e));
    }
    let r = load_within(LoadOptions {
        path: main.clone(),
        conf_dir: confd.clone(),
    });
    let want = c.main.as_ref().and_then(expected);
    let l = match (r, want) {
        (Err(ConfigError::Refused { path, reason }), Some(want)) => {
            assert_eq!(path, main);
            assert_eq!(format!("{reason:?}"), format!("{want:?}"));
            return;
        }
        (Err(ConfigError::Parse { diagnostics, .. }), None) => {
            assert!(diagnostics.iter().any(|d| d.level == Level::Error));
            return;
        }
        (Ok(l), None) => l,
        (other, want) => panic!("main file {:?}: expected {want:?}, got {other:?}", c.main),
    };
    for (p, e) in names.iter().zip(&c.confd) {
        let file = p.display().to_string();
        let refusals: Vec<_> = l
            .diagnostics
            .iter()
            .filter(|d| d.file == file && d.message.starts_with("refusing configuration file"))
            .collect();
        match expected(e) {
            Some(want) => {
                assert_eq!(refusals.len(), 1, "{file} ({e:?}): {:?}", l.diagnostics);
                let d = refusals[0];
                assert_eq!(d.level, Level::Error);
                assert_eq!(d.message, format!("refusing configuration file '{file}': {want}"));
                if let Refusal::Nul { line } = want {
                    assert_eq!(d.line, line);
                }
            }
            None => assert!(refusals.is_empty(), "{file} ({e:?}): {refusals:?}"),
        }
    }
    for d in &l.diagnostics {
        assert!(!d.message.contains('\0'), "a NUL reached a message: {d:?}");
    }
    drop(keep);
}

#[test]
fn fuzz_config_loader() {
    fuzz_support::run("fuzz_config_loader", case(), property);
}
