//! Loud skips for tests that need what this machine lacks (root, loop devices, FUSE).
//! The test harness hides what a passing test prints, so the notice goes straight to
//! file descriptor 2, past the capture, framed by lines of `!`.

/// Says that the running test is skipped, and why; the caller then returns.
pub fn skipped(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let bar = "!".repeat(78);
    let msg = format!("\n{bar}\n!!! SKIPPED {test}: {why}\n!!! nothing was checked\n{bar}\n");
    // SAFETY: writes a valid buffer of the given length to the process's stderr.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
    }
}
