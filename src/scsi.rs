//! SG_IO passthrough: the one `sg_io_hdr` layout and ioctl that the path checkers
//! (TEST UNIT READY, READ), the prioritizers (INQUIRY, REPORT TARGET PORT GROUPS) and
//! the persistent-reservation registration (PERSISTENT RESERVE IN/OUT) share.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Kernel `struct sg_io_hdr` (`<scsi/sg.h>`), 88 bytes on LP64.
#[repr(C)]
#[derive(Debug)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: libc::c_uchar,
    mx_sb_len: libc::c_uchar,
    iovec_count: libc::c_ushort,
    dxfer_len: libc::c_uint,
    dxferp: *mut libc::c_void,
    cmdp: *const libc::c_uchar,
    sbp: *mut libc::c_uchar,
    timeout: libc::c_uint,
    flags: libc::c_uint,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: libc::c_uchar,
    masked_status: libc::c_uchar,
    msg_status: libc::c_uchar,
    sb_len_wr: libc::c_uchar,
    host_status: libc::c_ushort,
    driver_status: libc::c_ushort,
    resid: libc::c_int,
    duration: libc::c_uint,
    info: libc::c_uint,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<SgIoHdr>() == 88);

const SG_IO: u32 = 0x2285;
const SG_DXFER_NONE: libc::c_int = -1;
const SG_DXFER_TO_DEV: libc::c_int = -2;
const SG_DXFER_FROM_DEV: libc::c_int = -3;
const SG_INFO_OK_MASK: libc::c_uint = 0x1;
const SENSE_LEN: usize = 32;

nix::ioctl_readwrite_bad!(sg_io_ioctl, SG_IO, SgIoHdr);

/// Direction and buffer of a command.
pub enum Data<'a> {
    None,
    FromDevice(&'a mut [u8]),
    /// A parameter list the device reads (the kernel only reads it).
    ToDevice(&'a [u8]),
}

/// How a command ended, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// No error of any kind (`SG_INFO_OK`).
    pub ok: bool,
    pub status: u8,
    pub host_status: u16,
    pub driver_status: u16,
    /// Bytes of the data buffer not transferred.
    pub resid: usize,
    /// The sense data the device returned (empty when none).
    pub sense: Vec<u8>,
}

/// Issues one SCSI command through SG_IO; the kernel enforces `timeout`.
pub fn command(fd: RawFd, cdb: &[u8], data: Data<'_>, timeout: Duration) -> io::Result<Completion> {
    let mut sense = [0u8; SENSE_LEN];
    let (dir, ptr, len) = match data {
        Data::None => (SG_DXFER_NONE, std::ptr::null_mut(), 0),
        Data::FromDevice(b) => (SG_DXFER_FROM_DEV, b.as_mut_ptr().cast(), b.len()),
        Data::ToDevice(b) => (SG_DXFER_TO_DEV, b.as_ptr().cast_mut().cast(), b.len()),
    };
    let mut hdr = SgIoHdr {
        interface_id: libc::c_int::from(b'S'),
        dxfer_direction: dir,
        cmd_len: cdb.len() as u8,
        mx_sb_len: SENSE_LEN as u8,
        iovec_count: 0,
        dxfer_len: len as libc::c_uint,
        dxferp: ptr,
        cmdp: cdb.as_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: hdr points at cdb, sense and the data buffer, all alive for the call.
    unsafe { sg_io_ioctl(fd, &mut hdr) }.map_err(io::Error::from)?;
    let written = usize::from(hdr.sb_len_wr).min(SENSE_LEN);
    Ok(Completion {
        ok: hdr.info & SG_INFO_OK_MASK == 0,
        status: hdr.status,
        host_status: hdr.host_status,
        driver_status: hdr.driver_status,
        resid: usize::try_from(hdr.resid).unwrap_or(0).min(len),
        sense: sense[..written].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn sg_io_hdr_matches_the_kernel_layout() {
        assert_eq!(size_of::<SgIoHdr>(), 88);
        assert_eq!(offset_of!(SgIoHdr, dxfer_len), 12);
        assert_eq!(offset_of!(SgIoHdr, dxferp), 16);
        assert_eq!(offset_of!(SgIoHdr, cmdp), 24);
        assert_eq!(offset_of!(SgIoHdr, sbp), 32);
        assert_eq!(offset_of!(SgIoHdr, timeout), 40);
        assert_eq!(offset_of!(SgIoHdr, usr_ptr), 56);
        assert_eq!(offset_of!(SgIoHdr, status), 64);
        assert_eq!(offset_of!(SgIoHdr, sb_len_wr), 67);
        assert_eq!(offset_of!(SgIoHdr, host_status), 68);
        assert_eq!(offset_of!(SgIoHdr, resid), 72);
        assert_eq!(offset_of!(SgIoHdr, info), 80);
    }
}
