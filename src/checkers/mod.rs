//! Path checkers, the per-path check scheduler and the path state machine.

pub mod directio;
pub mod scheduler;
pub mod sense;
pub mod sg;
pub mod state;
