//! Blob byte storage: one global content-addressed store, plus staging areas
//! for uploads in progress.
//!
//! The trait is shaped for object stores as well as filesystems: staging is
//! append-only, a commit publishes a whole object under its digest, and no
//! operation relies on hard links or on locks held by this process.

pub mod fs;

use crate::core::digest::Digest;
use async_trait::async_trait;
use std::io;
use tokio::io::AsyncRead;

pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// An open read of a stored blob, positioned at the start of the requested
/// range and limited to its end.
pub struct BlobRead {
    /// Size of the whole blob as stored.
    pub stored_len: u64,
    pub reader: BoxRead,
}

/// Appends to an upload's staging object.
#[async_trait]
pub trait StagingWriter: Send {
    async fn write(&mut self, buf: &[u8]) -> io::Result<()>;
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

    /// Publish an upload's (durable) staged bytes as the content of `digest`.
    /// When the digest is stored already the staged copy is dropped, so each
    /// digest has exactly one copy. Returns once the blob is durable.
    async fn commit(&self, upload: &str, digest: &Digest) -> io::Result<()>;

    /// Open a stored blob for reading `start..start+len` (the whole blob when
    /// `range` is `None`). `None` when the blob has no bytes stored.
    async fn read(
        &self,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> io::Result<Option<BlobRead>>;

    /// Delete a stored blob's bytes; absent bytes are not an error.
    async fn delete(&self, digest: &Digest) -> io::Result<()>;
}
