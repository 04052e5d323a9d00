//! A Rust multipathd: path management for dm-multipath.
//!
//! Module map (see ARCHITECTURE.md): `config` reads multipath.conf, `dm` talks to the
//! device-mapper, `discovery` finds paths in sysfs, `checkers` probe paths, `marginal`
//! does the IO error accounting, `uevent` reads kernel events, `cli` serves the socket,
//! `persist` registers reservation keys through a path, `daemon` owns the state and the
//! threads.

// The grammar code pest_derive generates without its "std" feature names `::alloc`.
extern crate alloc;

pub mod aio;
pub mod blkdev;
pub mod checkers;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod dm;
pub mod marginal;
pub mod nvme;
pub mod persist;
pub mod polled_thread;
pub mod scsi;
pub mod uevent;

/// Entry point shared by the binary: returns the process exit code.
pub fn run(args: Vec<std::ffi::OsString>) -> i32 {
    daemon::main(args)
}
