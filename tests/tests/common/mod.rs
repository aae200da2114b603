#![allow(dead_code, unused_imports)]
//! The harness of the moved end-to-end tests: `edged demo` as a child (edge_tests::support),
//! and the binaries of this build.

pub use edge_tests::support::{Daemon, Rng};
use std::path::PathBuf;

/// The `edged` binary of this build (beside the test, see `edge_tests::support::bin`).
pub fn edged() -> PathBuf {
    edge_tests::support::bin("edged")
}

/// The `edgectl` binary of this build.
pub fn edgectl() -> PathBuf {
    edge_tests::support::bin("edgectl")
}
