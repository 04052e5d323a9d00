//! SG_IO on block devices: the `tur` and `readsector0` checks.
//!
//! Both are blocking ioctls bounded by the command timeout the kernel enforces
//! (`sg_io_hdr.timeout` = `checker_timeout`); the checker loop runs them on its
//! small worker pool so a slow LUN never stalls the loop.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::sense::{self, ScsiCompletion, TurDecision};
use super::state::{PathState, Verdict};
use crate::scsi::{self, Data};

/// Attempts per check, as upstream (unit attention after a reset clears quickly).
const ATTEMPTS: u32 = 3;

/// Issues one SCSI command and keeps what the sense decoding needs.
fn scsi_command(fd: RawFd, cdb: &[u8], data: Data<'_>, timeout: Duration) -> io::Result<ScsiCompletion> {
    let c = scsi::command(fd, cdb, data, timeout)?;
    Ok(ScsiCompletion {
        ok: c.ok,
        status: c.status,
        host_status: c.host_status,
        sense: c.sense,
    })
}

/// Maps an SG_IO failure: a device without SCSI passthrough cannot be checked this
/// way (wild, as upstream), anything else is a dead path.
fn ioctl_error(e: &io::Error) -> Verdict {
    match e.raw_os_error() {
        Some(libc::ENOTTY) | Some(libc::EINVAL) => Verdict::new(PathState::Wild, sense::MSG_UNSUPPORTED),
        _ => Verdict::new(PathState::Down, sense::MSG_DOWN),
    }
}

/// Runs a command with the retry policy of `interpret`.
fn with_retries(
    fd: RawFd,
    cdb: &[u8],
    mut buf: Option<&mut [u8]>,
    timeout: Duration,
    interpret: fn(&ScsiCompletion, u32) -> TurDecision,
) -> Verdict {
    let mut left = ATTEMPTS;
    loop {
        left -= 1;
        let data = match buf.as_deref_mut() {
            Some(b) => Data::FromDevice(b),
            None => Data::None,
        };
        let c = match scsi_command(fd, cdb, data, timeout) {
            Ok(c) => c,
            Err(e) => return ioctl_error(&e),
        };
        match interpret(&c, left) {
            TurDecision::Done(v) => return v,
            TurDecision::Retry => continue,
        }
    }
}

/// TEST UNIT READY with upstream's verdicts (see [`sense::interpret_tur`]).
pub fn tur(fd: RawFd, timeout: Duration) -> Verdict {
    with_retries(fd, &[0u8; 6], None, timeout, sense::interpret_tur)
}

/// READ(10) of logical block 0, one block long.
pub fn readsector0(fd: RawFd, timeout: Duration) -> Verdict {
    let block = crate::blkdev::logical_block_size(fd).unwrap_or(512);
    let mut buf = vec![0u8; block];
    let cdb = [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    with_retries(fd, &cdb, Some(&mut buf), timeout, sense::interpret_read)
}

/// INQUIRY of vital product data page `page` into `buf`.
fn inquiry_vpd(fd: RawFd, page: u8, buf: &mut [u8], timeout: Duration) -> io::Result<ScsiCompletion> {
    let len = buf.len().min(0xffff) as u16;
    let cdb = [0x12, 0x01, page, (len >> 8) as u8, len as u8, 0];
    scsi_command(fd, &cdb, Data::FromDevice(buf), timeout)
}

/// The `hp_sw` checker (HP Active/Standby arrays): the unit serial number page must
/// answer, else the path is down; then a failing TEST UNIT READY means the port is
/// the standby one (ghost).
pub fn hp_sw(fd: RawFd, timeout: Duration) -> Verdict {
    let mut buf = [0u8; 255];
    match inquiry_vpd(fd, 0x80, &mut buf, timeout) {
        Err(e) => return ioctl_error(&e),
        Ok(c) if !sense::inquiry_ok(&c) => return Verdict::new(PathState::Down, sense::MSG_DOWN),
        Ok(_) => {}
    }
    match scsi_command(fd, &[0u8; 6], Data::None, timeout) {
        Ok(c) if c.ok => Verdict::new(PathState::Up, sense::MSG_UP),
        _ => Verdict::new(PathState::Ghost, sense::MSG_GHOST),
    }
}

/// Attempts of the rdac INQUIRY on transport errors, as upstream.
const RDAC_ATTEMPTS: u32 = 5;

/// The `rdac` checker (LSI/NetApp E-Series): reads the volume access page (VPD
/// 0xC9) and judges it with [`sense::rdac_verdict`]. Upstream also sets the TAS
/// bit of the control mode page at checker init; this build leaves the array's
/// mode pages alone.
pub fn rdac(fd: RawFd, timeout: Duration) -> Verdict {
    let mut buf = [0u8; sense::RDAC_PAGE_LEN];
    for attempt in 1..=RDAC_ATTEMPTS {
        buf.fill(0);
        match inquiry_vpd(fd, 0xc9, &mut buf, timeout) {
            Err(e) => return ioctl_error(&e),
            Ok(c) if sense::inquiry_ok(&c) => return sense::rdac_verdict(&buf),
            Ok(c) if sense::transient_host_status(c.host_status) && attempt < RDAC_ATTEMPTS => continue,
            Ok(_) => break,
        }
    }
    Verdict::new(PathState::Down, &format!("{}: inquiry failed", sense::MSG_DOWN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_scsi_file_is_unsupported() {
        use std::os::fd::AsRawFd;
        let f = tempfile::tempfile().expect("tempfile");
        let v = tur(f.as_raw_fd(), Duration::from_secs(1));
        assert_eq!(v, Verdict::new(PathState::Wild, sense::MSG_UNSUPPORTED));
        let v = readsector0(f.as_raw_fd(), Duration::from_secs(1));
        assert_eq!(v, Verdict::new(PathState::Wild, sense::MSG_UNSUPPORTED));
        let v = hp_sw(f.as_raw_fd(), Duration::from_secs(1));
        assert_eq!(v, Verdict::new(PathState::Wild, sense::MSG_UNSUPPORTED));
        let v = rdac(f.as_raw_fd(), Duration::from_secs(1));
        assert_eq!(v, Verdict::new(PathState::Wild, sense::MSG_UNSUPPORTED));
    }
}
