//! The registry domain: uploads, push, pull, mount, delete, tags and
//! referrers, over a [`BlobStore`](crate::storage::BlobStore) and a
//! [`MetadataStore`](crate::metadata::MetadataStore). Nothing here knows HTTP.

pub mod digest;
pub mod error;
pub mod gc;
pub mod manifest;
pub mod metrics;
pub mod names;
pub mod range;
pub mod registry;
pub mod scrub;
#[cfg(test)]
pub(crate) mod testing;
mod upload;

pub use registry::Registry;
