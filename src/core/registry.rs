//! Registry operations. Every read is a constant number of metadata lookups
//! (invariant 8) and never writes (invariant 1); every write stores durable
//! bytes before the metadata that names them (invariant 6).

use super::digest::{Algorithm, Digest};
use super::error::{Code, Error, Result};
use super::manifest::{self, ParsedManifest};
use super::names::{Reference, RepoName, Tag};
use super::range::ByteRange;
use super::upload::{self, ByteStream, Sessions};
use crate::metadata::{
    CommitBlob, ManifestRecord, MetadataStore, Names, PutManifest, Referrer, StoredBlob,
    UploadSession,
};
use crate::storage::{BlobStore, ChunkStream};
use bytes::Bytes;
use std::sync::Arc;

pub use super::upload::ByteStream as Body;

/// Limits on what clients may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// Largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: u64::MAX,
        }
    }
}

/// A blob read: the bytes of the requested range and where they sit.
pub struct BlobBody {
    pub size: u64,
    /// `(start, len)` when a range was requested.
    pub range: Option<(u64, u64)>,
    pub chunks: ChunkStream,
}

/// A stored manifest and the digest it was stored under.
pub type Manifest = ManifestRecord;

/// The outcome of `POST .../blobs/uploads/`.
pub enum UploadStart {
    /// The blob was mounted (or uploaded whole) and is now in the repository.
    Created(Digest),
    /// A session to upload into.
    Session(UploadSession),
}

/// One page of a listing.
pub struct Page {
    names: Names,
    len: usize,
    /// The last item, when there may be more after it.
    pub next: Option<String>,
}

impl Page {
    pub fn items(&self) -> &[String] {
        &self.names[..self.len]
    }
}

pub struct Registry {
    blobs: Arc<dyn BlobStore>,
    meta: Arc<dyn MetadataStore>,
    sessions: Sessions,
    limits: Limits,
}

impl Registry {
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        meta: Arc<dyn MetadataStore>,
        limits: Limits,
    ) -> Registry {
        Registry {
            blobs,
            meta,
            sessions: Sessions::default(),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Items in the collector's review queue: (all, due now).
    pub async fn gc_queue_depth(&self) -> Result<(u64, u64)> {
        self.meta.gc_queue_depth(super::gc::now_ms()).await
    }

    // ---- blobs -------------------------------------------------------

    /// Size of a blob in `repo`; BLOB_UNKNOWN unless `repo` links it.
    pub async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        Ok(self.stored_blob(repo, digest).await?.size)
    }

    /// The blob as stored for `repo`. Fails closed on a copy that scrub
    /// found corrupt: no read serves bytes that do not match the digest.
    async fn stored_blob(&self, repo: &RepoName, digest: &Digest) -> Result<StoredBlob> {
        let blob = self
            .meta
            .blob_in_repo(repo, digest)
            .await?
            .ok_or_else(|| Error::blob_unknown(digest))?;
        if blob.corrupt {
            return Err(Error::internal(
                "reading blob",
                format!("{digest} failed an integrity check; push it again to repair"),
            ));
        }
        Ok(blob)
    }

    /// Open a blob in `repo` for reading, whole or a range of it. Fails
    /// closed: bytes that are missing or of the wrong size are an error,
    /// never a short or wrong body.
    pub async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobBody> {
        let StoredBlob { size, key, .. } = self.stored_blob(repo, digest).await?;
        let resolved = match range {
            Some(r) => Some(r.resolve(size).ok_or_else(|| {
                let mut e =
                    Error::new(Code::RangeNotSatisfiable, "requested range not satisfiable");
                e.upload_size = Some(size);
                e
            })?),
            None => None,
        };
        let read = self
            .blobs
            .read(&key, resolved)
            .await
            .map_err(|e| Error::internal("reading blob", e))?
            .ok_or_else(|| {
                Error::internal(
                    "reading blob",
                    format!("{digest} has metadata but no bytes"),
                )
            })?;
        if read.stored_len != size {
            return Err(Error::internal(
                "reading blob",
                format!(
                    "{digest} is {} bytes on disk, {size} in metadata",
                    read.stored_len
                ),
            ));
        }
        Ok(BlobBody {
            size,
            range: resolved,
            chunks: read.chunks,
        })
    }

    /// Remove a blob from `repo` (other repositories keep theirs).
    pub async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        if self.meta.unlink_blob(repo, digest).await? {
            Ok(())
        } else {
            Err(Error::blob_unknown(digest))
        }
    }

    // ---- uploads -----------------------------------------------------

    /// Open an upload session, or mount a blob from another repository.
    /// `mount` with `from = None` mounts from any repository holding it.
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        mount: Option<(&Digest, Option<&RepoName>)>,
    ) -> Result<UploadStart> {
        if let Some((digest, from)) = mount {
            if self.meta.mount_blob(repo, digest, from).await?.is_some() {
                return Ok(UploadStart::Created(digest.clone()));
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.meta.create_upload(&id, repo).await?;
        Ok(UploadStart::Session(UploadSession {
            id,
            repo: repo.clone(),
            size: 0,
        }))
    }

    /// A monolithic upload: the whole blob in one request, checked against
    /// `digest` before anything becomes visible.
    pub async fn upload_whole(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<()> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let state = upload::append(&*self.blobs, &id, 0, None, body, self.limits.max_blob_bytes)
            .await
            .inspect_err(|_| self.discard_staging(&id))?;
        self.publish(repo, &id, state, digest, false).await
    }

    /// The session `id` in `repo`, or BLOB_UPLOAD_UNKNOWN.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadSession> {
        match self.meta.upload(id).await? {
            Some(s) if &s.repo == repo => Ok(s),
            _ => Err(Error::upload_unknown()),
        }
    }

    /// Append a chunk. `start`, from `Content-Range`, must equal the bytes
    /// received so far; otherwise RangeInvalid carries the current size.
    pub async fn upload_append(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<UploadSession> {
        let slot = self.sessions.slot(id);
        let mut guard = slot.lock().await;
        let mut session = self.upload_status(repo, id).await?;
        if let Some(start) = start {
            if start != session.size {
                let mut e = Error::new(
                    Code::RangeInvalid,
                    format!(
                        "chunk starts at {start}, upload holds {} bytes",
                        session.size
                    ),
                );
                e.upload_size = Some(session.size);
                return Err(e);
            }
        }
        let state = guard.take();
        let state = upload::append(
            &*self.blobs,
            id,
            session.size,
            state,
            body,
            self.limits.max_blob_bytes,
        )
        .await?;
        if !self
            .meta
            .advance_upload(id, session.size, state.offset)
            .await?
        {
            return Err(Error::upload_unknown());
        }
        session.size = state.offset;
        *guard = Some(state);
        Ok(session)
    }

    /// Close a session with an optional last chunk and verify `digest`.
    pub async fn upload_finish(
        &self,
        repo: &RepoName,
        id: &str,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<()> {
        let slot = self.sessions.slot(id);
        let mut guard = slot.lock().await;
        let session = self.upload_status(repo, id).await?;
        let state = upload::append(
            &*self.blobs,
            id,
            session.size,
            guard.take(),
            body,
            self.limits.max_blob_bytes,
        )
        .await?;
        drop(guard);
        self.sessions.forget(id);
        self.publish(repo, id, state, digest, true).await
    }

    /// Verify the staged bytes hash to `digest`, then make them durable
    /// content before the metadata that links them commits.
    async fn publish(
        &self,
        repo: &RepoName,
        id: &str,
        state: upload::HashState,
        digest: &Digest,
        session: bool,
    ) -> Result<()> {
        let size = state.offset;
        let actual = upload::final_digest(&*self.blobs, id, state, digest.algorithm()).await?;
        if &actual != digest {
            // Nothing is stored: the session ends and its bytes go.
            if session {
                self.meta.delete_upload(id).await?;
            }
            self.discard_staging(id);
            return Err(Error::new(
                Code::DigestInvalid,
                "provided digest did not match uploaded content",
            )
            .with_detail(
                serde_json::json!({ "expected": digest.to_string(), "actual": actual.to_string() }),
            ));
        }
        let key = self
            .blobs
            .commit(id, digest)
            .await
            .map_err(|e| Error::internal("storing blob", e))?;
        let stored = self
            .meta
            .commit_blob(repo, digest, size, &key, session.then_some(id))
            .await;
        // One copy: drop ours when the digest was stored already (or the
        // metadata did not take it), or the corrupt copy ours replaced.
        let unneeded = match &stored {
            Ok(CommitBlob::Stored) => None,
            Ok(CommitBlob::Replaced(old)) => Some(old.clone()),
            Ok(CommitBlob::Duplicate) | Err(_) => Some(key),
        };
        if let Some(k) = unneeded {
            if let Err(e) = self.blobs.delete(&k).await {
                tracing::warn!(key = k.as_str(), error = %e, "could not remove unneeded blob copy");
            }
        }
        stored.map(|_| ())
    }

    /// Cancel a session and drop its bytes.
    pub async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let slot = self.sessions.slot(id);
        let _guard = slot.lock().await;
        self.upload_status(repo, id).await?;
        self.meta.delete_upload(id).await?;
        self.sessions.forget(id);
        self.discard_staging(id);
        Ok(())
    }

    fn discard_staging(&self, id: &str) {
        let blobs = self.blobs.clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = blobs.remove_staging(&id).await {
                tracing::warn!(upload = %id, error = %e, "could not remove upload staging");
            }
        });
    }

    // ---- manifests ---------------------------------------------------

    pub async fn manifest_get(&self, repo: &RepoName, reference: &Reference) -> Result<Manifest> {
        let found = match reference {
            Reference::Tag(t) => self.meta.manifest_by_tag(repo, t).await?,
            Reference::Digest(d) => self.meta.manifest_by_digest(repo, d).await?,
        };
        found.ok_or_else(|| Error::manifest_unknown(reference))
    }

    /// Validate and store a manifest under `reference` (a tag, or the digest
    /// its bytes must hash to), also pointing `extra_tags` at it. Returns its
    /// digest and subject.
    pub async fn manifest_put(
        &self,
        repo: &RepoName,
        reference: &Reference,
        extra_tags: &[Tag],
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(Digest, Option<Digest>)> {
        if body.len() > self.limits.max_manifest_bytes {
            return Err(Error::new(
                Code::TooLarge,
                format!(
                    "manifest exceeds the {}-byte limit",
                    self.limits.max_manifest_bytes
                ),
            ));
        }
        let parsed: ParsedManifest = manifest::parse(&body, content_type)?;
        let mut tags = extra_tags.to_vec();
        let digest = match reference {
            Reference::Digest(expected) => {
                let actual = Digest::of(expected.algorithm(), &body);
                if &actual != expected {
                    return Err(Error::new(Code::DigestInvalid, "manifest digest does not match its content")
                        .with_detail(serde_json::json!({ "expected": expected.to_string(), "actual": actual.to_string() })));
                }
                actual
            }
            Reference::Tag(t) => {
                tags.push(t.clone());
                Digest::of(Algorithm::Sha256, &body)
            }
        };
        match self
            .meta
            .put_manifest(repo, &digest, &body, &parsed, &tags)
            .await?
        {
            PutManifest::Stored => Ok((digest, parsed.subject)),
            PutManifest::MissingBlob(d) => Err(Error::new(
                Code::ManifestBlobUnknown,
                "manifest references a blob unknown to this repository",
            )
            .with_detail(serde_json::json!({ "digest": d.to_string() }))),
            PutManifest::MissingManifest(d) => Err(Error::new(
                Code::ManifestBlobUnknown,
                "index references a manifest unknown to this repository",
            )
            .with_detail(serde_json::json!({ "digest": d.to_string() }))),
        }
    }

    /// Delete by digest (the manifest and all its tags) or by tag (only it).
    pub async fn manifest_delete(&self, repo: &RepoName, reference: &Reference) -> Result<()> {
        let deleted = match reference {
            Reference::Tag(t) => self.meta.delete_tag(repo, t).await?,
            Reference::Digest(d) => self.meta.delete_manifest(repo, d).await?,
        };
        if deleted {
            Ok(())
        } else {
            Err(Error::manifest_unknown(reference))
        }
    }

    // ---- discovery ---------------------------------------------------

    /// Tags of `repo` after `last`, at most `n`; NAME_UNKNOWN when the
    /// repository does not exist.
    pub async fn tags(&self, repo: &RepoName, last: Option<&str>, n: usize) -> Result<Page> {
        let names = self
            .meta
            .list_tags(repo, last, n.saturating_add(1))
            .await?
            .ok_or_else(|| Error::name_unknown(repo))?;
        Ok(page(names, n))
    }

    pub async fn catalog(&self, last: Option<&str>, n: usize) -> Result<Page> {
        let names = self
            .meta
            .list_repositories(last, n.saturating_add(1))
            .await?;
        Ok(page(names, n))
    }

    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        self.meta.referrers(repo, subject, artifact_type).await
    }
}

/// Cut a listing fetched with one extra item down to `n`, noting whether
/// more follow.
fn page(names: Names, n: usize) -> Page {
    let len = names.len().min(n);
    let next = (names.len() > n)
        .then(|| names[..len].last().cloned())
        .flatten();
    Page { names, len, next }
}
