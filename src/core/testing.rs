//! Helpers and test doubles for the core's unit tests.

use std::time::Duration;

/// The stores of a fresh data directory under `dir`, with no grace period
/// and no review delay, and the configuration they were opened with.
pub fn stores(dir: &std::path::Path) -> (crate::config::Config, crate::server::Stores) {
    let mut config = crate::config::Config {
        data_dir: dir.to_owned(),
        ..crate::config::Config::default()
    };
    config.gc.grace = Duration::ZERO;
    config.gc.delay = Duration::ZERO;
    let stores = crate::server::open_stores(&config).unwrap();
    (config, stores)
}

/// A request body of `bytes`, in one chunk.
pub fn body(bytes: &[u8]) -> crate::core::registry::Body {
    let chunk = bytes::Bytes::copy_from_slice(bytes);
    Box::pin(futures_util::stream::iter([Ok(chunk)]))
}
