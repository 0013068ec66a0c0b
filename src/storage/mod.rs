//! Blob byte storage: one global content-addressed store, plus staging areas
//! for uploads in progress.
//!
//! The trait is shaped for object stores as well as filesystems: staging is
//! append-only, a commit publishes a whole object, and no operation relies on
//! hard links or on locks held by this process.
//!
//! Each commit publishes its bytes under a new *key* (the digest plus a
//! unique suffix) that the metadata records. Deleting a key therefore never
//! removes bytes that a concurrent writer has just published for the same
//! digest: the collector deletes only the key whose metadata row it removed,
//! and a writer that finds the digest already recorded deletes its own
//! duplicate key. That is what lets garbage collection run online.

pub mod fs;
mod mmap;

use crate::core::digest::Digest;
use async_trait::async_trait;
use std::io;
use std::time::Duration;
use tokio::io::AsyncRead;

pub use crate::core::gc::StoredObject;

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// Where one published copy of a blob lives: `<alg>/<hex>/<suffix>`, with
/// only lowercase hex, alphanumerics and separators, so it is safe as a path
/// and as an object key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// The key for a new copy of `digest`, unique by `suffix` (an upload id).
    pub fn new(digest: &Digest, suffix: &str) -> BlobKey {
        BlobKey(format!(
            "{}/{}/{}",
            digest.algorithm().name(),
            digest.hex(),
            suffix
        ))
    }

    /// A key read back from metadata; refuses anything we would not make.
    pub fn parse(s: &str) -> Option<BlobKey> {
        let mut parts = s.split('/');
        let (alg, hex, suffix) = (parts.next()?, parts.next()?, parts.next()?);
        let ok = parts.next().is_none()
            && (alg == "sha256" || alg == "sha512")
            && hex.len() >= 64
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && !suffix.is_empty()
            && suffix.len() <= 64
            && suffix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        ok.then(|| BlobKey(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The bytes of a stored blob, as a stream of large chunks: an HTTP body
/// sends each chunk as it is, with no copy into another buffer.
pub type ChunkStream = futures_util::stream::BoxStream<'static, io::Result<bytes::Bytes>>;

/// An open read of a stored blob: the bytes of the requested range.
pub struct BlobRead {
    /// Size of the whole blob as stored.
    pub stored_len: u64,
    pub chunks: ChunkStream,
}

/// Appends to an upload's staging object.
#[async_trait]
pub trait StagingWriter: Send {
    /// Append `buf`. Taking the chunk by value lets an implementation hand
    /// it on (to a writer thread, an upload part) without copying it.
    async fn write(&mut self, buf: bytes::Bytes) -> io::Result<()>;
    /// Flush and make the written bytes durable.
    async fn finish(self: Box<Self>) -> io::Result<()>;
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Open an upload's staging object for appending at `offset`. Bytes past
    /// `offset` (left by a write that was never acknowledged) are discarded.
    async fn staging_writer(&self, upload: &str, offset: u64)
        -> io::Result<Box<dyn StagingWriter>>;

    /// Read an upload's staged bytes from the start (to re-hash after a restart).
    async fn staging_reader(&self, upload: &str) -> io::Result<BoxRead>;

    /// Discard an upload's staged bytes; absent staging is not an error.
    async fn remove_staging(&self, upload: &str) -> io::Result<()>;

    /// Publish an upload's (durable) staged bytes as content of `digest`
    /// under a new key, returned once the object is durable. Fails, and
    /// publishes nothing, unless the staged object holds exactly `size`
    /// bytes; a missing staging object is an empty blob only when `size` is
    /// 0. The published object counts as new (its age starts now).
    async fn commit(&self, upload: &str, digest: &Digest, size: u64) -> io::Result<BlobKey>;

    /// Size of the stored object at `key`; `None` when it has no bytes.
    async fn stored_size(&self, key: &BlobKey) -> io::Result<Option<u64>>;

    /// Open a stored object for reading `start..start+len` (the whole object
    /// when `range` is `None`). `None` when no bytes are stored at `key`.
    async fn read(&self, key: &BlobKey, range: Option<(u64, u64)>) -> io::Result<Option<BlobRead>>;

    /// Delete a stored object; absent bytes are not an error.
    async fn delete(&self, key: &BlobKey) -> io::Result<()>;

    /// Every stored object with its size and age. Only the collector's sweep
    /// and `berth scrub` call this, never a request or start-up.
    async fn list_objects(&self) -> io::Result<Vec<StoredObject>>;

    /// Every upload staging object: (upload id, size, age since last write).
    async fn list_staging(&self) -> io::Result<Vec<(String, u64, Duration)>>;
}
