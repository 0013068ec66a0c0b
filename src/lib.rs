//! berth: an OCI Distribution registry with one deduplicated blob store,
//! metadata as the source of truth, and reads that never write.
//!
//! - [`core`]: the registry domain, independent of HTTP;
//! - [`storage`]: blob bytes (local filesystem);
//! - [`metadata`]: repositories, links, manifests, tags, uploads (SQLite);
//! - [`http`]: the OCI Distribution API over the core;
//! - [`server`]: wiring them together for `berth serve`.

pub mod auth;
pub mod cli;
pub mod config;
pub mod core;
pub mod http;
pub mod logwriter;
pub mod metadata;
pub mod server;
pub mod shards;
pub mod storage;
