//! The state files we share with multipath-tools (/etc/multipath/wwids, bindings).
//!
//! Its programs (`multipath`, and multipathd when it runs instead of us) open such a file
//! read-write, create it 0600 if missing, take an fcntl write lock on the whole file (waiting
//! at most 30 s), write the header into an empty file, and then read it and append to it, or
//! change it in place, before they close it. A lock belongs to a file, not a path, so we take
//! the same lock on the same file and never replace it by a rename: a writer waiting on the
//! old file would append to a file nobody reads any more.
//!
//! Our lock is an open file description lock: it conflicts with upstream's classic record
//! locks as they conflict with each other, and also with our own other threads (a record lock
//! would not), and closing some other descriptor of the file does not drop it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};

/// How long a writer waits for the lock before giving up, as upstream does.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

fn annotate(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LockKind {
    Shared,
    Exclusive,
}

/// Waits for the lock on the whole of `file`, polling: a blocking wait could not be given a
/// deadline without a signal, and the daemon's threads do not take signals.
fn lock(file: &File, kind: LockKind, path: &Path, deadline: Instant) -> io::Result<()> {
    // SAFETY: `flock` is a plain C struct of integers; all zeroes is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = match kind {
        LockKind::Shared => libc::F_RDLCK,
        LockKind::Exclusive => libc::F_WRLCK,
    } as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start 0, l_len 0: the whole file, however long it grows.
    let mut pause = Duration::from_millis(1);
    loop {
        match fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&fl)) {
            Ok(_) => return Ok(()),
            Err(Errno::EAGAIN | Errno::EACCES | Errno::EINTR) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{} is locked by another program; gave up waiting", path.display()),
                    ));
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(annotate(path, "locking", io::Error::from(e))),
        }
    }
}

/// True while `file` is still the file at `path` (not renamed over by another program).
fn still_at(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata().map_err(|e| annotate(path, "reading", e))?;
    match fs::metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(annotate(path, "reading", e)),
    }
}

/// A state file held under its lock until dropped.
#[derive(Debug)]
pub struct LockedFile {
    file: File,
    path: PathBuf,
}

impl LockedFile {
    /// Opens `path` for writing under the exclusive lock, creating it (and its directory)
    /// when missing; an empty file gets `header`.
    pub fn open(path: &Path, header: &str) -> io::Result<LockedFile> {
        Self::open_waiting(path, header, LOCK_TIMEOUT)
    }

    /// [`LockedFile::open`] that gives up after `timeout`.
    pub fn open_waiting(path: &Path, header: &str, timeout: Duration) -> io::Result<LockedFile> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.exists() {
            // 0700 as upstream creates it; an existing directory keeps its mode.
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| annotate(dir, "creating", e))?;
        }
        let deadline = Instant::now() + timeout;
        let mut locked = loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| annotate(path, "opening", e))?;
            lock(&file, LockKind::Exclusive, path, deadline)?;
            if still_at(&file, path)? {
                break LockedFile {
                    file,
                    path: path.to_path_buf(),
                };
            }
        };
        let len = locked.file.metadata().map_err(|e| annotate(path, "reading", e))?.len();
        if len == 0 {
            locked.append(header)?;
        }
        Ok(locked)
    }

    /// The file's text under a shared lock (writers wait, readers do not), read-only so that
    /// a read-only /etc still answers; a missing file reads as empty and is not created.
    pub fn read_shared(path: &Path) -> io::Result<String> {
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            let file = match File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(String::new()),
                Err(e) => return Err(annotate(path, "opening", e)),
            };
            lock(&file, LockKind::Shared, path, deadline)?;
            if still_at(&file, path)? {
                let mut held = LockedFile {
                    file,
                    path: path.to_path_buf(),
                };
                return held.contents();
            }
        }
    }

    /// The whole text (bytes that are not UTF-8 replaced).
    pub fn contents(&mut self) -> io::Result<String> {
        let mut bytes = Vec::new();
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut bytes))
            .map_err(|e| annotate(&self.path, "reading", e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Appends `text` (on a new line if the file does not end with one); a failed write is cut
    /// off again, so no half line stays behind.
    pub fn append(&mut self, text: &str) -> io::Result<()> {
        let end = self
            .file
            .seek(SeekFrom::End(0))
            .map_err(|e| annotate(&self.path, "seeking", e))?;
        let mut out = Vec::with_capacity(text.len() + 1);
        if end > 0 {
            let mut last = [0u8];
            self.file
                .seek(SeekFrom::Start(end - 1))
                .and_then(|_| self.file.read_exact(&mut last))
                .map_err(|e| annotate(&self.path, "reading", e))?;
            if last[0] != b'\n' {
                out.push(b'\n');
            }
        }
        out.extend_from_slice(text.as_bytes());
        let written = self
            .file
            .seek(SeekFrom::Start(end))
            .and_then(|_| self.file.write_all(&out));
        if let Err(e) = written {
            let _ = self.file.set_len(end);
            return Err(annotate(&self.path, "writing", e));
        }
        self.sync()
    }

    /// Overwrites bytes at `offset` (the length does not change).
    pub fn overwrite(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(bytes))
            .map_err(|e| annotate(&self.path, "writing", e))?;
        self.sync()
    }

    /// Replaces the whole text, in place.
    pub fn rewrite(&mut self, text: &str) -> io::Result<()> {
        self.file
            .set_len(0)
            .and_then(|_| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .map_err(|e| annotate(&self.path, "writing", e))?;
        self.sync()
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data().map_err(|e| annotate(&self.path, "syncing", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn new_file_gets_the_header_mode_and_directory() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("etc/multipath/wwids");
        let mut f = LockedFile::open(&p, "# head\n").unwrap();
        f.append("/a/\n").unwrap();
        drop(f);
        assert_eq!(fs::read_to_string(&p).unwrap(), "# head\n/a/\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let dir = fs::metadata(p.parent().unwrap()).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
        // an existing file keeps its text: no second header
        let mut f = LockedFile::open(&p, "# head\n").unwrap();
        assert_eq!(f.contents().unwrap(), "# head\n/a/\n");
    }

    #[test]
    fn append_starts_a_new_line_overwrite_and_rewrite_stay_in_place() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bindings");
        fs::write(&p, "# x\nmpatha 1").unwrap();
        let ino = fs::metadata(&p).unwrap().ino();
        let mut f = LockedFile::open(&p, "# x\n").unwrap();
        f.append("mpathb 2\n").unwrap();
        f.overwrite(4, b"#").unwrap();
        assert_eq!(f.contents().unwrap(), "# x\n#patha 1\nmpathb 2\n");
        f.rewrite("# y\n").unwrap();
        assert_eq!(f.contents().unwrap(), "# y\n");
        assert_eq!(fs::metadata(&p).unwrap().ino(), ino, "the same file, never renamed");
    }

    #[test]
    fn read_shared_of_a_missing_file_is_empty_and_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("nope");
        assert_eq!(LockedFile::read_shared(&p).unwrap(), "");
        assert!(!p.exists());
    }

    #[test]
    fn a_held_lock_makes_the_next_writer_wait_and_give_up() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("wwids");
        let _held = LockedFile::open(&p, "# h\n").unwrap();
        let t = Instant::now();
        let e = LockedFile::open_waiting(&p, "# h\n", Duration::from_millis(150)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(t.elapsed() >= Duration::from_millis(150));
    }

    #[test]
    fn a_file_renamed_over_while_waiting_is_opened_again() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bindings");
        let held = LockedFile::open(&p, "# old\n").unwrap();
        let p2 = p.clone();
        let waiter = std::thread::spawn(move || {
            let mut f = LockedFile::open(&p2, "# h\n").unwrap();
            f.append("mpatha 1\n").unwrap();
        });
        std::thread::sleep(Duration::from_millis(50));
        // another program replaces the file by a rename, then lets go of the old one
        let tmp = d.path().join("bindings.new");
        fs::write(&tmp, "# new\n").unwrap();
        fs::rename(&tmp, &p).unwrap();
        drop(held);
        waiter.join().unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "# new\nmpatha 1\n");
    }
}
