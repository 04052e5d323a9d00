//! NVMe admin command passthrough: the one `nvme_passthru_cmd` layout and the two
//! ioctls (`NVME_IOCTL_ADMIN_CMD`, `NVME_IOCTL_ID`) the `ana` prioritizer needs,
//! issued on a namespace's block device (the kernel sends admin commands to that
//! namespace's controller, so each path asks its own controller).

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Kernel `struct nvme_passthru_cmd` (`<linux/nvme_ioctl.h>`), 72 bytes.
#[repr(C)]
#[derive(Debug, Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

const _: () = assert!(std::mem::size_of::<PassthruCmd>() == 72);

nix::ioctl_readwrite!(admin_cmd_ioctl, b'N', 0x41, PassthruCmd);
nix::ioctl_none!(ns_id_ioctl, b'N', 0x40);

/// Admin opcodes.
pub const OPC_GET_LOG_PAGE: u8 = 0x02;
pub const OPC_IDENTIFY: u8 = 0x06;
/// Identify CNS values (CDW10 bits 7:0).
pub const CNS_NAMESPACE: u32 = 0x00;
pub const CNS_CONTROLLER: u32 = 0x01;
/// Identify data is always one 4 KiB page.
pub const IDENTIFY_LEN: usize = 4096;
/// "Every namespace" in the NSID field.
pub const NSID_ALL: u32 = 0xffff_ffff;

/// How an admin command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// The controller completed it with this NVMe status (status code type and code,
    /// as the ioctl returns it).
    Error(u16),
}

/// One admin command with a data-in buffer; the kernel enforces `timeout`.
/// `cdw` are CDW10..CDW15. An `Err` is the ioctl's own failure (no such device, not
/// NVMe, no permission, the controller gone).
pub fn admin(fd: RawFd, opcode: u8, nsid: u32, cdw: [u32; 6], buf: &mut [u8], timeout: Duration) -> io::Result<Status> {
    let mut cmd = PassthruCmd {
        opcode,
        nsid,
        addr: buf.as_mut_ptr() as u64,
        data_len: u32::try_from(buf.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        cdw10: cdw[0],
        cdw11: cdw[1],
        cdw12: cdw[2],
        cdw13: cdw[3],
        cdw14: cdw[4],
        cdw15: cdw[5],
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
        ..PassthruCmd::default()
    };
    // SAFETY: cmd.addr/data_len describe `buf`, which outlives the call; the kernel
    // writes at most data_len bytes there.
    let rc = unsafe { admin_cmd_ioctl(fd, &mut cmd) }.map_err(io::Error::from)?;
    Ok(match rc {
        0 => Status::Success,
        s => Status::Error(u16::try_from(s).unwrap_or(u16::MAX)),
    })
}

/// The namespace id of a namespace block device.
pub fn namespace_id(fd: RawFd) -> io::Result<u32> {
    // SAFETY: NVME_IOCTL_ID takes no argument.
    let id = unsafe { ns_id_ioctl(fd) }.map_err(io::Error::from)?;
    u32::try_from(id).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// CDW10/CDW11 of a Get Log Page for `len` bytes (a multiple of 4) of log `lid`,
/// with log specific field `lsp` and Retain Asynchronous Event set, from offset 0.
pub fn get_log_page_cdws(lid: u8, lsp: u8, len: usize) -> [u32; 6] {
    let numd = u32::try_from(len / 4).unwrap_or(u32::MAX).saturating_sub(1);
    [
        u32::from(lid) | (u32::from(lsp & 0x7f) << 8) | (1 << 15) | ((numd & 0xffff) << 16),
        numd >> 16,
        0,
        0,
        0,
        0,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn passthru_cmd_matches_the_kernel_layout() {
        assert_eq!(offset_of!(PassthruCmd, nsid), 4);
        assert_eq!(offset_of!(PassthruCmd, metadata), 16);
        assert_eq!(offset_of!(PassthruCmd, addr), 24);
        assert_eq!(offset_of!(PassthruCmd, data_len), 36);
        assert_eq!(offset_of!(PassthruCmd, cdw10), 40);
        assert_eq!(offset_of!(PassthruCmd, cdw15), 60);
        assert_eq!(offset_of!(PassthruCmd, timeout_ms), 64);
        assert_eq!(offset_of!(PassthruCmd, result), 68);
    }

    #[test]
    fn ioctl_numbers_are_the_kernels() {
        // _IOWR('N', 0x41, 72 bytes) and _IO('N', 0x40)
        assert_eq!(
            nix::request_code_readwrite!(b'N', 0x41, std::mem::size_of::<PassthruCmd>()),
            0xc048_4e41
        );
        assert_eq!(nix::request_code_none!(b'N', 0x40), 0x4e40);
    }

    #[test]
    fn get_log_page_dwords() {
        // 8208 bytes = 2052 dwords: NUMD 2051 (0x803) split over CDW10 31:16 and CDW11 15:0
        let c = get_log_page_cdws(0x0c, 0, 8208);
        assert_eq!(c[0], 0x0c | (1 << 15) | (0x803 << 16));
        assert_eq!(c[1], 0);
        // RGO in the LSP field (CDW10 bits 14:8)
        assert_eq!(
            get_log_page_cdws(0x0c, 1, 4096)[0],
            0x0c | (1 << 8) | (1 << 15) | (1023 << 16)
        );
        // more than 64 Ki dwords: the upper half goes to CDW11
        let c = get_log_page_cdws(0x0c, 0, 4 << 16);
        assert_eq!((c[0] >> 16, c[1]), (0xffff, 0));
        let c = get_log_page_cdws(0x0c, 0, 8 << 16);
        assert_eq!((c[0] >> 16, c[1]), (0xffff, 1));
    }
}
