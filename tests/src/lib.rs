//! The workspace's end-to-end tiers live in `tests/tests/`; this library holds what they
//! share: the power-cut file system ([`powercut`]) and the harness that runs the real
//! binaries ([`support`]).

pub mod powercut;
pub mod support;
