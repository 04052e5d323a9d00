//! Block-device ioctls from `<linux/fs.h>`, declared once for the whole crate.

use std::io;
use std::os::fd::RawFd;

use nix::sys::ioctl::ioctl_num_type;

/// `_IOR(0x12, 112, size_t)`: the header names size_t, but the kernel writes an int.
const BLKBSZGET: ioctl_num_type = nix::request_code_read!(0x12, 112, std::mem::size_of::<libc::size_t>());
/// `_IO(0x12, 104)`; the kernel writes an int.
const BLKSSZGET: ioctl_num_type = nix::request_code_none!(0x12, 104);

nix::ioctl_read_bad!(blkbszget, BLKBSZGET, libc::c_int);
nix::ioctl_read_bad!(blksszget, BLKSSZGET, libc::c_int);

fn positive(v: libc::c_int) -> io::Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// `BLKBSZGET`: the block size the kernel uses for the device's IO ("soft" block size).
pub fn soft_block_size(fd: RawFd) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    // SAFETY: BLKBSZGET writes one int into `v`.
    unsafe { blkbszget(fd, &mut v) }?;
    positive(v)
}

/// `BLKSSZGET`: the logical sector size.
pub fn logical_block_size(fd: RawFd) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int into `v`.
    unsafe { blksszget(fd, &mut v) }?;
    positive(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_env = "gnu", any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn numbers_match_the_kernel_headers() {
        assert_eq!(BLKBSZGET, 0x8008_1270);
        assert_eq!(BLKSSZGET, 0x1268);
    }

    #[test]
    fn a_regular_file_is_not_a_block_device() {
        use std::os::fd::AsRawFd;
        let f = tempfile::tempfile().expect("tempfile");
        assert_eq!(
            soft_block_size(f.as_raw_fd()).unwrap_err().raw_os_error(),
            Some(libc::ENOTTY)
        );
        assert_eq!(
            logical_block_size(f.as_raw_fd()).unwrap_err().raw_os_error(),
            Some(libc::ENOTTY)
        );
    }
}
