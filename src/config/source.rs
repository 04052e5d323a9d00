//! Reading configuration files without trusting what sits at their paths.
//!
//! A FIFO at `/etc/multipath.conf` would block `open()` forever, a character device
//! could stream without end, and a file of hundreds of megabytes would be read whole
//! on every reconfigure. So a file is looked at before it is opened (only regular
//! files are read), opened non-blocking (a file swapped for a FIFO in between does
//! not hang us), checked again on the open descriptor, and read up to a size limit.
//! Its text must not hold NUL bytes: C strings end there, so upstream would cut the
//! line short, and a value carrying one would end up in CLI replies.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest configuration file read. The full built-in hardware table dumped by
/// `show config` is about 100 KiB; ten thousand `device` sections stay under 2 MiB.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Largest sum over the main file and every conf.d file.
pub const MAX_TOTAL_BYTES: u64 = 16 << 20;

/// What a path that is not a regular file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl FileKind {
    /// `None` for a regular file.
    fn of(meta: &Metadata) -> Option<FileKind> {
        let t = meta.file_type();
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Other
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Other => "not a plain file",
        })
    }
}

/// Why a configuration file was not read.
#[derive(Debug)]
pub enum Refusal {
    /// Not a regular file (checked before opening and again on the descriptor).
    NotRegular(FileKind),
    /// Larger than [`MAX_FILE_BYTES`] (`size` is what was seen: the stat size, or
    /// more than the limit when the file grew while it was read).
    TooLarge { size: u64 },
    /// Reading it would take the configuration past [`MAX_TOTAL_BYTES`].
    TotalTooLarge,
    /// The text holds a NUL byte on this (1-based) line.
    Nul { line: usize },
    /// It exists but cannot be opened or read.
    Io(std::io::Error),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            Refusal::TooLarge { size } => {
                write!(f, "its size ({size} bytes) is over the limit of {MAX_FILE_BYTES} bytes")
            }
            Refusal::TotalTooLarge => write!(
                f,
                "the configuration files together would be over the limit of {MAX_TOTAL_BYTES} bytes"
            ),
            Refusal::Nul { line } => write!(f, "line {line} contains a NUL byte"),
            Refusal::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A file read, or the reason it was not. `Missing` is kept apart: a missing main
/// file means built-in defaults.
#[derive(Debug)]
pub enum FileText {
    Text(String),
    Missing,
    Refused(Refusal),
}

/// Reads one configuration file as text, counting its size against `budget` (the
/// bytes still allowed in total; reduced by what was read). Bytes that are not
/// UTF-8 become U+FFFD, which the tokenizer treats like any other non-ASCII character.
pub fn read_config_file(path: &Path, budget: &mut u64) -> FileText {
    match read_bytes(path, budget) {
        Ok(bytes) => match nul_line(&bytes) {
            Some(line) => FileText::Refused(Refusal::Nul { line }),
            None => FileText::Text(String::from_utf8_lossy(&bytes).into_owned()),
        },
        Err(Refusal::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => FileText::Missing,
        Err(r) => FileText::Refused(r),
    }
}

fn read_bytes(path: &Path, budget: &mut u64) -> Result<Vec<u8>, Refusal> {
    // stat before open: opening a FIFO blocks, opening some devices has side effects.
    let meta = std::fs::metadata(path).map_err(Refusal::Io)?;
    check(&meta, *budget)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(Refusal::Io)?;
    let meta = file.metadata().map_err(Refusal::Io)?;
    check(&meta, *budget)?;
    let bytes = read_bounded(file, meta.len())?;
    if bytes.len() as u64 > *budget {
        return Err(Refusal::TotalTooLarge);
    }
    *budget -= bytes.len() as u64;
    Ok(bytes)
}

fn check(meta: &Metadata, budget: u64) -> Result<(), Refusal> {
    if let Some(kind) = FileKind::of(meta) {
        return Err(Refusal::NotRegular(kind));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Refusal::TooLarge { size: meta.len() });
    }
    if meta.len() > budget {
        return Err(Refusal::TotalTooLarge);
    }
    Ok(())
}

/// Reads at most one byte past the limit, so a file that grows while it is read is
/// still refused instead of read without end.
fn read_bounded(file: File, size_hint: u64) -> Result<Vec<u8>, Refusal> {
    let mut bytes = Vec::with_capacity(size_hint as usize);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(Refusal::Io)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Refusal::TooLarge {
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// The 1-based line of the first NUL byte.
pub fn nul_line(bytes: &[u8]) -> Option<usize> {
    let at = bytes.iter().position(|b| *b == 0)?;
    Some(1 + bytes[..at].iter().filter(|b| **b == b'\n').count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_lines() {
        assert_eq!(nul_line(b"a\nb\n"), None);
        assert_eq!(nul_line(b"\0"), Some(1));
        assert_eq!(nul_line(b"a\nb\0\nc\0"), Some(2));
    }
}
