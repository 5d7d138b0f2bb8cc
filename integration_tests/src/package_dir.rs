//! Where this package's folder is: the checkout the tests were started from.
//!
//! Read when the test runs (cargo sets `CARGO_MANIFEST_DIR` for the test process), not baked
//! in at compile time: checkouts that share a target folder share test binaries, and a
//! binary built in another checkout must still build and drive this one's server.

use std::path::PathBuf;

/// `integration_tests/` of the checkout under test.
pub fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
