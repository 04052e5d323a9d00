//! The multipathd control socket: wire framing, command language, output formats,
//! the listening server and the `multipathd <command>` client.

pub mod client;
pub mod format;
pub mod limits;
pub mod parse;
pub mod protocol;
pub mod server;
pub mod snapshot;
