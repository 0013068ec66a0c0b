//! Registry metadata: repositories, repository-blob links, manifests and
//! their references, tags and upload sessions, in one transactional store.
//!
//! This is the source of truth (design invariant 6): a blob is in a
//! repository exactly when this store links it there. Every multi-row change
//! is one transaction, and each method states what it checks inside it, so a
//! PostgreSQL implementation can give the same guarantees.

mod cache;
#[cfg(test)]
mod cache_coherence;
#[cfg(test)]
mod query_plans;
pub mod sqlite;
mod sqlite_gc;

use crate::core::digest::Digest;
use crate::core::error::Result;
use crate::core::gc::GcBatch;
use crate::core::manifest::ParsedManifest;
use crate::core::names::{RepoName, Tag};
use crate::storage::BlobKey;
use async_trait::async_trait;

/// Names in a listing (tags, repositories), shared: a cached page is
/// handed out without copying.
pub type Names = std::sync::Arc<[String]>;

/// A stored blob: its size and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    pub size: u64,
    pub key: BlobKey,
    /// Marked by `berth scrub --repair`: the bytes do not match the digest.
    pub corrupt: bool,
}

/// What recording a committed copy of a blob did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitBlob {
    /// The copy is now the blob.
    Stored,
    /// The blob was stored already; the new copy is not needed.
    Duplicate,
    /// The new copy replaced a corrupt one, whose key is given.
    Replaced(BlobKey),
    /// The upload session is gone (expired, cancelled or closed by another
    /// request): nothing was recorded, and the new copy is not needed.
    UploadUnknown,
}

/// A blob as scrub and du see it.
#[derive(Debug, Clone)]
pub struct BlobRow {
    pub digest: String,
    pub size: u64,
    pub key: String,
    pub corrupt: bool,
}

/// Space use per repository, for `berth du`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Usage {
    /// Bytes of stored blobs (each once).
    pub stored_bytes: u64,
    pub stored_blobs: u64,
    /// Bytes of stored manifests (each once).
    pub manifest_bytes: u64,
    /// What the repositories would take if each kept its own copies.
    pub undeduplicated_bytes: u64,
    pub repositories: Vec<RepoUsage>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepoUsage {
    pub name: String,
    pub blobs: u64,
    pub bytes: u64,
    pub manifests: u64,
    pub tags: u64,
}

/// An upload session as the metadata knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub id: String,
    pub repo: RepoName,
    /// Bytes received and acknowledged so far.
    pub size: u64,
}

/// A stored manifest, with its body.
#[derive(Debug, Clone)]
pub struct ManifestRecord {
    pub digest: Digest,
    pub media_type: String,
    pub body: bytes::Bytes,
    /// The store has checked that `body` hashes to `digest` since it read
    /// it (so a cache hit needs no second hash); false means the caller
    /// must check.
    pub verified: bool,
}

impl ManifestRecord {
    /// Whether `body` hashes to `digest`.
    pub fn body_matches(&self) -> bool {
        Digest::of(self.digest.algorithm(), &self.body) == self.digest
    }
}

/// One entry of a referrers response.
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    pub artifact_type: Option<String>,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Outcome of putting a manifest whose references are checked in the same
/// transaction as the write.
#[derive(Debug)]
pub enum PutManifest {
    Stored,
    /// A config or layer blob the repository does not hold.
    MissingBlob(Digest),
    /// A child manifest the repository does not hold.
    MissingManifest(Digest),
}

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Size of a blob if `repo` links it (invariant 2: only links count).
    async fn blob_in_repo(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredBlob>>;

    /// Record durable blob bytes stored at `key` and link them into `repo`,
    /// creating the repository if needed, and end the upload session
    /// `upload` if given. When the digest is recorded already, the existing
    /// copy is linked and `Duplicate` returned: the caller deletes `key`.
    /// When `upload` is given but no longer open, nothing changes and
    /// `UploadUnknown` is returned.
    async fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        key: &BlobKey,
        upload: Option<&str>,
    ) -> Result<CommitBlob>;

    /// Link a blob into `repo` from `from`, or, without `from`, from any
    /// repository that links it. Returns its size, or `None` (nothing
    /// changed) when no such source holds it.
    async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<u64>>;

    /// Remove `repo`'s link to a blob; false when there was none.
    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;

    /// Repositories that link a blob, up to `limit`, in name order.
    async fn repos_with_blob(&self, digest: &Digest, limit: usize) -> Result<Vec<String>>;

    /// Open an upload session for `client`, unless `max_total` sessions are
    /// open, or `max_per_client` of this client's (checked in the same
    /// transaction); false when refused.
    async fn create_upload(
        &self,
        id: &str,
        repo: &RepoName,
        client: &str,
        max_total: u64,
        max_per_client: u64,
    ) -> Result<bool>;
    async fn upload(&self, id: &str) -> Result<Option<UploadSession>>;
    /// Move a session's size from `from` to `to`; false when its size was
    /// not `from` (another request advanced it) or the session is gone.
    async fn advance_upload(&self, id: &str, from: u64, to: u64) -> Result<bool>;
    /// End a session without storing anything; false when unknown.
    async fn delete_upload(&self, id: &str) -> Result<bool>;

    /// Store a manifest (and point `tags` at it), after checking inside the same
    /// transaction that `repo` holds every blob and child it names.
    async fn put_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: &[u8],
        parsed: &ParsedManifest,
        tags: &[Tag],
    ) -> Result<PutManifest>;

    async fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>>;
    async fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<ManifestRecord>>;

    /// Delete a manifest and every tag on it; false when unknown.
    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool>;
    /// Delete one tag; false when unknown.
    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool>;

    /// Up to `n` tags after `last`, in lexical order; `None` when the
    /// repository does not exist.
    async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<Option<Names>>;
    /// Up to `n` repository names after `last`, in lexical order.
    async fn list_repositories(&self, last: Option<&str>, n: usize) -> Result<Names>;
    /// Up to `n` manifests in `repo` whose subject is `subject` (optionally
    /// of one artifact type), after digest `last`, in digest order.
    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&str>,
        n: usize,
    ) -> Result<Vec<Referrer>>;

    // ---- garbage collection and maintenance ----

    /// Review up to `limit` items due at `now_ms` in one transaction (the
    /// rules are in `core::gc`); the caller deletes the bytes it returns.
    async fn gc_review_batch(&self, now_ms: i64, limit: usize) -> Result<GcBatch>;
    /// Items in the review queue: (all, due at `now_ms`).
    async fn gc_queue_depth(&self, now_ms: i64) -> Result<(u64, u64)>;
    /// Whether `key` is the recorded copy of its blob.
    async fn blob_key_recorded(&self, key: &BlobKey) -> Result<bool>;
    /// Blobs a full collection at `now_ms` would free: no manifest names
    /// them and no link within its grace period holds them.
    async fn reclaimable(&self, now_ms: i64) -> Result<Vec<(String, u64)>>;
    /// Space use, overall and per repository.
    async fn usage(&self) -> Result<Usage>;
    /// Up to `limit` blobs after digest `after`, in digest order.
    async fn blobs_after(&self, after: &str, limit: usize) -> Result<Vec<BlobRow>>;
    /// Up to `limit` manifest bodies after digest `after`, in digest order.
    async fn manifest_bodies_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, bytes::Bytes)>>;
    /// Mark a blob corrupt so reads fail closed until it is uploaded again,
    /// if `key` is still its recorded copy (a copy that was replaced or
    /// collected meanwhile is left alone). Returns whether it was marked.
    async fn mark_corrupt(&self, digest: &str, key: &str) -> Result<bool>;
}
