//! dm
