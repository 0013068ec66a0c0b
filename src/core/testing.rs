//! Helpers and test doubles for the core's unit tests.

use crate::core::digest::Digest;
use crate::core::names::RepoName;
use crate::metadata::MetadataStore;
use crate::storage::{BlobKey, BlobRead, BlobStore, BoxRead, StagingWriter, StoredObject};
use async_trait::async_trait;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A blob store whose next read first lets the collector remove a blob:
/// the repository's link goes, a review runs, and the bytes it frees are
/// deleted, exactly between a reader's metadata lookup and its read.
pub struct CollectOnRead {
    pub inner: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetadataStore>,
    pub next: Mutex<Option<(RepoName, Digest)>>,
}

#[async_trait]
impl BlobStore for CollectOnRead {
    async fn staging_writer(
        &self,
        upload: &str,
        offset: u64,
    ) -> io::Result<Box<dyn StagingWriter>> {
        self.inner.staging_writer(upload, offset).await
    }

    async fn staging_reader(&self, upload: &str) -> io::Result<BoxRead> {
        self.inner.staging_reader(upload).await
    }

    async fn remove_staging(&self, upload: &str) -> io::Result<()> {
        self.inner.remove_staging(upload).await
    }

    async fn commit(&self, upload: &str, digest: &Digest, size: u64) -> io::Result<BlobKey> {
        self.inner.commit(upload, digest, size).await
    }

    async fn stored_size(&self, key: &BlobKey) -> io::Result<Option<u64>> {
        self.inner.stored_size(key).await
    }

    async fn read(&self, key: &BlobKey, range: Option<(u64, u64)>) -> io::Result<Option<BlobRead>> {
        let next = self.next.lock().unwrap().take();
        if let Some((repo, digest)) = next {
            self.meta.unlink_blob(&repo, &digest).await.unwrap();
            let batch = self
                .meta
                .gc_review_batch(crate::core::gc::now_ms() + 1, 100)
                .await
                .unwrap();
            assert!(!batch.blobs.is_empty(), "the review freed nothing");
            for b in batch.blobs {
                self.inner.delete(&b.key).await?;
            }
        }
        self.inner.read(key, range).await
    }

    async fn delete(&self, key: &BlobKey) -> io::Result<()> {
        self.inner.delete(key).await
    }

    async fn list_objects(&self) -> io::Result<Vec<StoredObject>> {
        self.inner.list_objects().await
    }

    async fn list_staging(&self) -> io::Result<Vec<(String, u64, Duration)>> {
        self.inner.list_staging().await
    }
}

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
