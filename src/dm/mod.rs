//! Device-mapper: the `multipath` target's table and status text, and (in `ioctl`)
//! the kernel interface behind the `DmBackend` trait.

pub mod status;
pub mod table;
mod tokens;

pub use status::{GroupState, GroupStatus, MultipathStatus, PathStatus};
pub use table::{MultipathTable, PathGroup, TablePath, TargetLine};
pub use tokens::ParseError;
