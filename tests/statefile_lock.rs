//! The wwids and bindings files written at once by our code (threads, as the daemon's owner
//! and a `multipathd -a`-like caller would) and by other processes that lock them as
//! multipath-tools does (a classic fcntl write lock on the whole file, taken with F_SETLKW,
//! then read, append, close): no entry is lost, no alias is handed out twice.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use multipathd::discovery::bindings::{Bindings, BindingsFile, format_alias_id};
use multipathd::discovery::wwids::{Wwids, WwidsFile};

const PER_WRITER: usize = 60;

/// Opens and locks `path` the way multipath-tools' programs do (blocking record lock).
fn upstream_open(path: &Path) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .unwrap();
    // SAFETY: `flock` is a plain C struct of integers; all zeroes is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: a valid descriptor and a valid flock for F_SETLKW.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLKW, &fl) };
    assert_eq!(rc, 0, "F_SETLKW: {}", std::io::Error::last_os_error());
    f
}

fn read_all(f: &mut File) -> String {
    let mut s = String::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_string(&mut s).unwrap();
    s
}

/// The other process: `MPT_CHILD=wwids|bindings`, `MPT_FILE`, `MPT_TAG` (its WWIDs' prefix).
#[test]
#[ignore = "run as a child process by the other tests"]
fn upstream_like_writer() {
    let role = std::env::var("MPT_CHILD").expect("started by the other tests of this file");
    let path = PathBuf::from(std::env::var("MPT_FILE").unwrap());
    let tag = std::env::var("MPT_TAG").unwrap();
    for i in 0..PER_WRITER {
        let wwid = format!("{tag}{i:04}");
        let mut f = upstream_open(&path);
        let text = read_all(&mut f);
        let line = if role == "wwids" {
            assert!(!Wwids::parse(&text).contains(&wwid));
            format!("/{wwid}/\n")
        } else {
            let b = Bindings::parse(&text);
            let id = b.free_id("mpath", &|_| false).unwrap();
            format!("mpath{} {wwid}\n", format_alias_id(id).unwrap())
        };
        f.seek(SeekFrom::End(0)).unwrap();
        f.write_all(line.as_bytes()).unwrap();
        // closing the file lets go of the lock
    }
}

fn spawn_child(role: &str, path: &Path, tag: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "upstream_like_writer",
            "--test-threads=1",
            "--quiet",
        ])
        .env("MPT_CHILD", role)
        .env("MPT_FILE", path)
        .env("MPT_TAG", tag)
        .spawn()
        .unwrap()
}

fn wait_child(mut c: Child) {
    assert!(c.wait().unwrap().success(), "the writer process failed");
}

/// Every WWID the writers wanted, as tags x PER_WRITER.
fn all_wwids(tags: &[&str]) -> BTreeSet<String> {
    tags.iter()
        .flat_map(|t| (0..PER_WRITER).map(move |i| format!("{t}{i:04}")))
        .collect()
}

#[test]
fn wwids_written_by_threads_and_processes_at_once_keep_every_entry() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("etc/multipath/wwids");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let children: Vec<Child> = ["p1-", "p2-"].iter().map(|t| spawn_child("wwids", &path, t)).collect();
    let threads: Vec<_> = ["t1-", "t2-", "t3-"]
        .iter()
        .map(|t| {
            let f = WwidsFile::new(&path);
            let t = t.to_string();
            std::thread::spawn(move || {
                for i in 0..PER_WRITER {
                    assert!(f.add(&format!("{t}{i:04}")).unwrap());
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    children.into_iter().for_each(wait_child);
    let text = std::fs::read_to_string(&path).unwrap();
    let got: BTreeSet<String> = Wwids::parse(&text).wwids.into_iter().collect();
    let want = all_wwids(&["p1-", "p2-", "t1-", "t2-", "t3-"]);
    let lost: Vec<_> = want.difference(&got).collect();
    assert!(
        lost.is_empty(),
        "{} of {} entries lost: {lost:?}",
        lost.len(),
        want.len()
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with('/')).count(),
        want.len(),
        "no duplicate lines"
    );
}

#[test]
fn aliases_allocated_by_threads_and_processes_at_once_are_never_shared() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("etc/multipath/bindings");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let children: Vec<Child> = ["p1-", "p2-"]
        .iter()
        .map(|t| spawn_child("bindings", &path, t))
        .collect();
    let threads: Vec<_> = ["t1-", "t2-"]
        .iter()
        .map(|t| {
            let f = BindingsFile::new(&path);
            let t = t.to_string();
            std::thread::spawn(move || {
                (0..PER_WRITER)
                    .map(|i| {
                        let wwid = format!("{t}{i:04}");
                        let (res, issues) = f.alias_for(&wwid, "mpath", None, &|_| false).unwrap();
                        assert!(issues.is_empty(), "{issues:?}");
                        (res.unwrap().0, wwid)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ours: Vec<(String, String)> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    children.into_iter().for_each(wait_child);

    // every line of the file: one WWID per alias, one alias per WWID, every writer's WWID bound
    let text = std::fs::read_to_string(&path).unwrap();
    let mut by_alias: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (alias, wwid) = line.split_once(' ').unwrap();
        by_alias.entry(alias).or_default().push(wwid);
    }
    let shared: Vec<_> = by_alias.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(shared.is_empty(), "aliases handed out twice: {shared:?}");
    let bound: BTreeSet<String> = by_alias.values().flatten().map(|w| w.to_string()).collect();
    let want = all_wwids(&["p1-", "p2-", "t1-", "t2-"]);
    assert_eq!(bound, want, "every WWID bound once");
    // what our writers were told is what the file says
    let b = Bindings::parse(&text);
    assert!(b.issues.is_empty(), "{:?}", b.issues);
    for (alias, wwid) in &ours {
        assert_eq!(b.wwid_for_alias(alias), Some(wwid.as_str()));
    }
    // ids 1..=N, none skipped: each writer took the lowest free one under the lock
    let n = want.len() as i32;
    let expect: BTreeSet<String> = (1..=n)
        .map(|i| format!("mpath{}", format_alias_id(i).unwrap()))
        .collect();
    assert_eq!(by_alias.keys().map(|a| a.to_string()).collect::<BTreeSet<_>>(), expect);
}
