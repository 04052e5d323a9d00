//! uevent
