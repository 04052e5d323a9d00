//! Marginal-path detection by IO error accounting.
//!
//! A path that dm-multipath fails twice within `marginal_path_double_failed_time` is
//! held back and, once its checker sees it up, sampled with direct reads for
//! `marginal_path_err_sample_time`; if its error rate (per mille) is above
//! `marginal_path_err_rate_threshold` it stays out (`delayed`) and is re-tested after
//! `marginal_path_err_recheck_gap_time`.
//!
//! - [`config`]: the settings value and its enable rule.
//! - [`state`]: the pure state machine the daemon's state thread drives.
//! - [`status`]: the accounting view and its text/JSON formatting.
//! - [`thread`]: the io-err-stat thread and the daemon's lazy handle [`thread::IoErrStat`].
//! - [`engine`]: the IO engine trait and a scripted fake; [`aio_engine`]: the kernel-AIO engine; [`sampler`]: the read accounting.

pub mod aio_engine;
pub mod config;
pub mod engine;
pub mod sampler;
pub mod state;
pub mod status;
pub mod thread;

pub use config::{MarginalConfig, PathGroups};
pub use state::{Action, Event, MarginalState};
pub use status::{MarginalStatus, TestState};
