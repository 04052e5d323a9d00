//! `/run/multipathd.pid`: written once the daemon owns its sockets, locked so a second
//! daemon notices the first, removed on clean shutdown.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const DEFAULT_PIDFILE: &str = "/run/multipathd.pid";

pub struct PidFile {
    path: PathBuf,
    _file: File,
}

#[derive(Debug)]
pub enum PidFileError {
    Io(PathBuf, io::Error),
    AlreadyRunning(PathBuf),
}

impl std::fmt::Display for PidFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PidFileError::Io(p, e) => write!(f, "pidfile {}: {e}", p.display()),
            PidFileError::AlreadyRunning(p) => {
                write!(f, "pidfile {} is locked: another multipathd is running", p.display())
            }
        }
    }
}

impl PidFile {
    /// Creates and locks the pidfile, then writes our pid into it.
    pub fn create(path: &Path) -> Result<PidFile, PidFileError> {
        let io_err = |e| PidFileError::Io(path.to_path_buf(), e);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err)?;
        // SAFETY: flock on an fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(PidFileError::AlreadyRunning(path.to_path_buf()));
        }
        file.set_len(0).map_err(io_err)?;
        writeln!(file, "{}", std::process::id()).map_err(io_err)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_daemon_is_refused_and_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("multipathd.pid");
        let first = PidFile::create(&p).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("{}\n", std::process::id())
        );
        match PidFile::create(&p) {
            Err(PidFileError::AlreadyRunning(_)) => {}
            other => panic!("expected AlreadyRunning, got {:?}", other.map(|_| ())),
        }
        drop(first);
        assert!(!p.exists());
    }
}
