//! Crash-safe replacement of small state files (/etc/multipath/wwids, bindings):
//! write a temporary file in the same directory, fsync it, rename it over the
//! target and fsync the directory, so readers see either the old or the new
//! content and never a torn file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

fn annotate(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Atomically replace `path` with `contents` (mode 0644, parent created 0755).
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| annotate(dir, "creating", e))?;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(|e| annotate(&tmp, "creating", e))?;
        f.write_all(contents).map_err(|e| annotate(&tmp, "writing", e))?;
        f.sync_all().map_err(|e| annotate(&tmp, "syncing", e))?;
        fs::rename(&tmp, path).map_err(|e| annotate(path, "renaming over", e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| annotate(dir, "syncing", e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Read a state file; a missing file reads as empty.
pub fn read_or_empty(path: &Path) -> io::Result<String> {
    match fs::read(path) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(annotate(path, "reading", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_content_creates_dirs_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("etc/multipath/wwids");
        write_atomic(&p, b"one\n").unwrap();
        write_atomic(&p, b"two\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "two\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
        let names: Vec<_> = fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("wwids")]);
        assert_eq!(read_or_empty(&d.path().join("nope")).unwrap(), "");
    }

    #[test]
    fn failure_names_the_path_and_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bindings");
        write_atomic(&p, b"old\n").unwrap();
        // A directory in the way of the final rename.
        let blocked = d.path().join("dir");
        fs::create_dir_all(blocked.join("x")).unwrap();
        let e = write_atomic(&blocked, b"new").unwrap_err();
        assert!(e.to_string().contains("renaming over"), "{e}");
        assert_eq!(fs::read_to_string(&p).unwrap(), "old\n");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
    }
}
