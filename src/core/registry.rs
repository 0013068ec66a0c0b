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
use crate::storage::{BlobKey, BlobStore, ChunkStream};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::OwnedMutexGuard;

pub use super::upload::ByteStream as Body;

/// Limits on what clients may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
    /// Largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
    /// Open upload sessions, in all.
    pub max_upload_sessions: u64,
    /// Open upload sessions per client (user name, or address).
    pub max_upload_sessions_per_client: u64,
    /// Names a filtered catalog page reads at most.
    pub catalog_scan: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_blob_bytes: u64::MAX,
            max_upload_sessions: 10_000,
            max_upload_sessions_per_client: 1_000,
            catalog_scan: 10_000,
        }
    }
}

/// Repositories a mount without `from` looks at, at most, for one the
/// caller may read: the cost of a mount stays bounded however many
/// repositories hold a popular base layer.
const MOUNT_CANDIDATES: usize = 100;

/// A cross-repository mount request (`POST ?mount=<digest>[&from=<repo>]`).
#[derive(Clone, Copy)]
pub struct Mount<'a> {
    pub digest: &'a Digest,
    /// The source repository; `None` for automatic content discovery.
    pub from: Option<&'a RepoName>,
    /// Without `from`: which repositories may be the source (the caller's
    /// pull rights, decided by auth in front of the core). `None`: any.
    pub allowed: Option<&'a (dyn Fn(&str) -> bool + Sync)>,
}

impl<'a> Mount<'a> {
    pub fn from(digest: &'a Digest, from: &'a RepoName) -> Mount<'a> {
        Mount {
            digest,
            from: Some(from),
            allowed: None,
        }
    }

    pub fn anywhere(digest: &'a Digest) -> Mount<'a> {
        Mount {
            digest,
            from: None,
            allowed: None,
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

/// One page of a subject's referrers.
#[derive(Debug)]
pub struct Referrers {
    pub items: Vec<Referrer>,
    /// The last item's digest, when there may be more after it.
    pub next: Option<String>,
}

/// One page of a listing.
pub struct Page {
    names: Names,
    len: usize,
    /// The last item, when there may be more after it.
    pub next: Option<String>,
}

impl Page {
    /// `next` is a name the listing's filter hid (see
    /// [`Registry::catalog_where`]): the caller must not be shown it.
    pub fn next_hidden(&self) -> bool {
        self.next.is_some() && self.next.as_ref() != self.items().last()
    }

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
    /// found corrupt: no read serves bytes that do not match the digest,
    /// and HEAD answers 404 like for a blob never pushed, so clients (which
    /// HEAD before they upload) push it again, and that repairs it.
    async fn stored_blob(&self, repo: &RepoName, digest: &Digest) -> Result<StoredBlob> {
        let blob = self
            .meta
            .blob_in_repo(repo, digest)
            .await?
            .ok_or_else(|| Error::blob_unknown(digest))?;
        if blob.corrupt {
            tracing::warn!(%repo, %digest, "read of a blob marked corrupt; answering 404 until it is pushed again");
            return Err(Error::blob_unknown(digest));
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
        let blob = self.stored_blob(repo, digest).await?;
        if let Some(body) = self.read_copy(digest, &blob, range).await? {
            return Ok(body);
        }
        // The collector may have removed the blob (metadata first, then
        // bytes) since it was looked up, or an upload may have replaced a
        // broken copy: answer as the metadata says now (404 when gone).
        let again = self.stored_blob(repo, digest).await?;
        if again.key != blob.key {
            if let Some(body) = self.read_copy(digest, &again, range).await? {
                return Ok(body);
            }
        }
        Err(Error::internal(
            "reading blob",
            format!("{digest} has metadata but no bytes"),
        ))
    }

    /// Open `range` of one stored copy of `digest`; `None` when the copy
    /// has no bytes.
    async fn read_copy(
        &self,
        digest: &Digest,
        blob: &StoredBlob,
        range: Option<ByteRange>,
    ) -> Result<Option<BlobBody>> {
        let size = blob.size;
        let resolved = match range {
            Some(r) => Some(r.resolve(size).ok_or_else(|| {
                let mut e =
                    Error::new(Code::RangeNotSatisfiable, "requested range not satisfiable");
                e.upload_size = Some(size);
                e
            })?),
            None => None,
        };
        let Some(read) = self
            .blobs
            .read(&blob.key, resolved)
            .await
            .map_err(|e| Error::internal("reading blob", e))?
        else {
            return Ok(None);
        };
        if read.stored_len != size {
            return Err(Error::internal(
                "reading blob",
                format!(
                    "{digest} is {} bytes on disk, {size} in metadata",
                    read.stored_len
                ),
            ));
        }
        Ok(Some(BlobBody {
            size,
            range: resolved,
            chunks: read.chunks,
        }))
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

    /// Open an upload session for `client` (a user name or address, for
    /// the per-client session cap), or mount a blob from another repository
    /// when `mount` names one that can serve it.
    pub async fn start_upload(
        &self,
        repo: &RepoName,
        mount: Option<Mount<'_>>,
        client: &str,
    ) -> Result<UploadStart> {
        if let Some(m) = mount {
            if self.mount(repo, m).await? {
                return Ok(UploadStart::Created(m.digest.clone()));
            }
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.open_session(&id, repo, Some(client)).await?;
        Ok(UploadStart::Session(UploadSession {
            id,
            repo: repo.clone(),
            size: 0,
        }))
    }

    /// Record a new session, within the caps when a `client` opens it.
    async fn open_session(&self, id: &str, repo: &RepoName, client: Option<&str>) -> Result<()> {
        let (total, per_client) = match client {
            Some(_) => (
                self.limits.max_upload_sessions,
                self.limits.max_upload_sessions_per_client,
            ),
            None => (u64::MAX, u64::MAX),
        };
        let opened = self
            .meta
            .create_upload(id, repo, client.unwrap_or(""), total, per_client)
            .await?;
        if opened {
            Ok(())
        } else {
            Err(Error::new(
                Code::TooManyRequests,
                "too many open upload sessions; finish or cancel some first",
            ))
        }
    }

    /// Link `m.digest` into `repo` from an allowed source; false when no
    /// such source holds it.
    async fn mount(&self, repo: &RepoName, m: Mount<'_>) -> Result<bool> {
        let source = match (m.from, m.allowed) {
            (Some(from), _) => Some(from.clone()),
            (None, None) => None,
            (None, Some(allowed)) => {
                let candidates = self
                    .meta
                    .repos_with_blob(m.digest, MOUNT_CANDIDATES)
                    .await?;
                match candidates
                    .iter()
                    .find(|r| allowed(r))
                    .and_then(|r| RepoName::parse(r))
                {
                    Some(r) => Some(r),
                    None => return Ok(false),
                }
            }
        };
        Ok(self
            .meta
            .mount_blob(repo, m.digest, source.as_ref())
            .await?
            .is_some())
    }

    /// A monolithic upload by the registry's own tools (no session caps).
    pub async fn upload_whole(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<()> {
        self.upload_whole_for(repo, digest, body, None).await
    }

    /// A monolithic upload: the whole blob in one request, checked against
    /// `digest` before anything becomes visible. It is an upload session
    /// like any other while its bytes stream in (with no id given out): the
    /// row is what tells the collector's sweep that the staging file is in
    /// use, however long the client takes, in this process or another. A
    /// `client`'s upload counts against the session caps.
    pub async fn upload_whole_for(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: ByteStream,
        client: Option<&str>,
    ) -> Result<()> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.open_session(&id, repo, client).await?;
        let result = match upload::append(
            &*self.blobs,
            &id,
            0,
            None,
            body,
            self.limits.max_blob_bytes,
        )
        .await
        {
            Ok(state) => self.publish(repo, &id, state, digest).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Nothing of a failed monolithic upload stays.
            if let Err(e) = self.meta.delete_upload(&id).await {
                tracing::warn!(upload = %id, error = %e, "could not remove failed upload");
            }
            self.discard_staging(&id);
        }
        result
    }

    /// The session `id` in `repo`, or BLOB_UPLOAD_UNKNOWN.
    pub async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadSession> {
        match self.meta.upload(id).await? {
            Some(s) if &s.repo == repo => Ok(s),
            _ => Err(Error::upload_unknown()),
        }
    }

    /// Lock session `id` of `repo` and read it under the lock. It is looked
    /// up first, so an unknown id leaves nothing in memory; under the lock
    /// it is read again, since a request that held the lock may have closed
    /// it.
    async fn lock_session(
        &self,
        repo: &RepoName,
        id: &str,
    ) -> Result<(OwnedMutexGuard<Option<upload::HashState>>, UploadSession)> {
        self.upload_status(repo, id).await?;
        let guard = self.sessions.slot(id).lock_owned().await;
        match self.meta.upload(id).await? {
            Some(s) if &s.repo == repo => Ok((guard, s)),
            Some(_) => Err(Error::upload_unknown()),
            None => {
                self.sessions.forget(id);
                Err(Error::upload_unknown())
            }
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
        let (mut guard, mut session) = self.lock_session(repo, id).await?;
        check_start(start, &session)?;
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
            // Expired while the chunk streamed in.
            self.sessions.forget(id);
            return Err(Error::upload_unknown());
        }
        session.size = state.offset;
        *guard = Some(state);
        Ok(session)
    }

    /// Close a session with an optional last chunk (starting at `start`,
    /// from `Content-Range`, which must equal the bytes received so far)
    /// and verify `digest`.
    pub async fn upload_finish(
        &self,
        repo: &RepoName,
        id: &str,
        start: Option<u64>,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<()> {
        let (mut guard, session) = self.lock_session(repo, id).await?;
        check_start(start, &session)?;
        let state = upload::append(
            &*self.blobs,
            id,
            session.size,
            guard.take(),
            body,
            self.limits.max_blob_bytes,
        )
        .await?;
        // The lock is held until the session's metadata is gone: a request
        // waiting for it must find the session closed, not append to (and
        // truncate) the file being published.
        let result = self.publish(repo, id, state, digest).await;
        let closed = match &result {
            Ok(()) => true,
            Err(e) => matches!(e.code, Code::DigestInvalid | Code::BlobUploadUnknown),
        };
        if closed {
            self.sessions.forget(id);
        }
        drop(guard);
        result
    }

    /// Verify the staged bytes of upload `id` hash to `digest`, then make
    /// them durable content before the metadata that links them (and ends
    /// the upload) commits.
    async fn publish(
        &self,
        repo: &RepoName,
        id: &str,
        state: upload::HashState,
        digest: &Digest,
    ) -> Result<()> {
        let size = state.offset;
        let actual = upload::final_digest(&*self.blobs, id, state, digest.algorithm()).await?;
        if &actual != digest {
            // Nothing is stored: the session ends and its bytes go.
            self.meta.delete_upload(id).await?;
            self.discard_staging(id);
            return Err(Error::new(
                Code::DigestInvalid,
                "provided digest did not match uploaded content",
            )
            .with_detail(
                serde_json::json!({ "expected": digest.to_string(), "actual": actual.to_string() }),
            ));
        }
        let key = match self.blobs.commit(id, digest, size).await {
            Ok(key) => key,
            // Its staging went with a session that expired meanwhile.
            Err(_) if self.meta.upload(id).await?.is_none() => return Err(Error::upload_unknown()),
            Err(e) => return Err(Error::internal("storing blob", e)),
        };
        let stored = self
            .meta
            .commit_blob(repo, digest, size, &key, Some(id))
            .await;
        // One copy: drop ours when the digest was stored already (or the
        // metadata did not take it), or the corrupt copy ours replaced.
        let unneeded = match &stored {
            Ok(CommitBlob::Stored) => None,
            Ok(CommitBlob::Replaced(old)) => Some(old.clone()),
            Ok(CommitBlob::Duplicate) => self.keep_sound_copy(repo, digest, size, &key).await,
            Ok(CommitBlob::UploadUnknown) | Err(_) => Some(key),
        };
        if let Some(k) = unneeded {
            if let Err(e) = self.blobs.delete(&k).await {
                tracing::warn!(key = k.as_str(), error = %e, "could not remove unneeded blob copy");
            }
        }
        match stored? {
            CommitBlob::UploadUnknown => Err(Error::upload_unknown()),
            _ => Ok(()),
        }
    }

    /// The digest was recorded already, so the upload was linked to the
    /// stored copy. Each digest is stored once, for every repository: a
    /// copy that lost its bytes (or some of them) would stay broken for all
    /// of them, so the copy just verified, `ours`, replaces it. Returns the
    /// copy to delete.
    async fn keep_sound_copy(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        ours: &BlobKey,
    ) -> Option<BlobKey> {
        let existing = match self.meta.blob_in_repo(repo, digest).await {
            Ok(Some(b)) => b,
            _ => return Some(ours.clone()),
        };
        match self.blobs.stored_size(&existing.key).await {
            Ok(Some(n)) if n == existing.size => return Some(ours.clone()),
            // Cannot tell: keep what is recorded.
            Err(_) => return Some(ours.clone()),
            Ok(found) => tracing::warn!(
                %digest,
                key = existing.key.as_str(),
                stored = ?found,
                size = existing.size,
                "stored copy is missing or of the wrong size; replacing it with the upload"
            ),
        }
        let replaced = async {
            self.meta
                .mark_corrupt(digest.as_str(), existing.key.as_str())
                .await?;
            self.meta.commit_blob(repo, digest, size, ours, None).await
        };
        match replaced.await {
            Ok(CommitBlob::Replaced(old)) => Some(old),
            Ok(CommitBlob::Stored) => None,
            Ok(_) | Err(_) => Some(ours.clone()),
        }
    }

    /// Cancel a session and drop its bytes.
    pub async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let (_guard, _) = self.lock_session(repo, id).await?;
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
        let m = found.ok_or_else(|| Error::manifest_unknown(reference))?;
        // Content addressing holds on the way out too: a body that rotted at
        // rest is never served (the store checks what it caches; anything
        // else is checked here). Pushing the manifest again repairs it.
        if !m.verified && !m.body_matches() {
            return Err(Error::internal(
                "reading manifest",
                format!(
                    "{} failed an integrity check; push it again to repair",
                    m.digest
                ),
            ));
        }
        Ok(m)
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

    /// The catalog as `show` sees it: only names it accepts. One call reads
    /// at most `limits.catalog_scan` names, so a caller who may see few of many
    /// repositories gets a short page with a `next` to continue from,
    /// rather than a request whose cost grows with the registry.
    pub async fn catalog_where(
        &self,
        last: Option<&str>,
        n: usize,
        show: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Page> {
        let mut items = Vec::new();
        let mut cursor = last.map(str::to_owned);
        let mut scanned = 0;
        let batch_size = n
            .saturating_add(1)
            .clamp(100, 1000)
            .min(self.limits.catalog_scan);
        loop {
            let batch = self
                .meta
                .list_repositories(cursor.as_deref(), batch_size)
                .await?;
            let more = batch.len() == batch_size;
            for name in batch.iter() {
                scanned += 1;
                cursor = Some(name.clone());
                if show(name) {
                    items.push(name.clone());
                    if items.len() > n {
                        return Ok(page(items.into(), n));
                    }
                }
            }
            if !more || scanned >= self.limits.catalog_scan {
                let len = items.len();
                return Ok(Page {
                    names: items.into(),
                    len,
                    next: if more { cursor } else { None },
                });
            }
        }
    }

    /// One page of the manifests in `repo` that name `subject`: up to `n`
    /// after digest `last`, in digest order.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&Digest>,
        n: usize,
    ) -> Result<Referrers> {
        let last = last.map(Digest::to_string);
        let mut items = self
            .meta
            .referrers(
                repo,
                subject,
                artifact_type,
                last.as_deref(),
                n.saturating_add(1),
            )
            .await?;
        let next = (items.len() > n).then(|| {
            items.truncate(n);
            items.last().map(|r| r.digest.clone())
        });
        Ok(Referrers {
            items,
            next: next.flatten(),
        })
    }
}

/// A chunk must start where the bytes received so far end; otherwise
/// RangeInvalid carries the current size, and the session is unchanged.
fn check_start(start: Option<u64>, session: &UploadSession) -> Result<()> {
    match start {
        Some(start) if start != session.size => {
            let mut e = Error::new(
                Code::RangeInvalid,
                format!(
                    "chunk starts at {start}, upload holds {} bytes",
                    session.size
                ),
            );
            e.upload_size = Some(session.size);
            Err(e)
        }
        _ => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testing::{body, stores, CollectOnRead};
    use std::sync::Mutex;

    fn session(start: UploadStart) -> UploadSession {
        match start {
            UploadStart::Session(s) => s,
            UploadStart::Created(d) => panic!("expected a session, got {d}"),
        }
    }

    /// Requests for upload ids that name no session (never issued, closed,
    /// or of another repository) leave nothing in memory; a session's
    /// in-memory state goes when it closes.
    #[tokio::test]
    async fn unknown_upload_ids_leave_nothing_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (config, stores) = stores(dir.path());
        let registry = stores.registry(&config);
        let repo = RepoName::parse("r").unwrap();
        let d = Digest::sha256_of(b"x");
        for i in 0..500 {
            let id = format!("{i:032x}");
            let e = registry.upload_append(&repo, &id, None, body(b"x")).await;
            assert_eq!(e.err().map(|e| e.code), Some(Code::BlobUploadUnknown));
            let e = registry
                .upload_finish(&repo, &id, None, &d, body(b"x"))
                .await;
            assert_eq!(e.err().map(|e| e.code), Some(Code::BlobUploadUnknown));
            let e = registry.upload_cancel(&repo, &id).await;
            assert_eq!(e.err().map(|e| e.code), Some(Code::BlobUploadUnknown));
        }
        assert_eq!(registry.sessions.len(), 0);

        let s = session(registry.start_upload(&repo, None, "test").await.unwrap());
        let other = RepoName::parse("other").unwrap();
        let e = registry
            .upload_append(&other, &s.id, None, body(b"x"))
            .await;
        assert_eq!(e.err().map(|e| e.code), Some(Code::BlobUploadUnknown));
        assert_eq!(registry.sessions.len(), 0);
        registry
            .upload_append(&repo, &s.id, None, body(b"x"))
            .await
            .unwrap();
        assert_eq!(registry.sessions.len(), 1);
        registry
            .upload_finish(&repo, &s.id, None, &d, body(b""))
            .await
            .unwrap();
        assert_eq!(registry.sessions.len(), 0);
        for _ in 0..100 {
            let e = registry.upload_append(&repo, &s.id, None, body(b"x")).await;
            assert_eq!(e.err().map(|e| e.code), Some(Code::BlobUploadUnknown));
        }
        assert_eq!(registry.sessions.len(), 0);
    }

    /// A session that expires while its closing PUT runs (the collector
    /// removes its row, then its staging) stores nothing and answers
    /// BLOB_UPLOAD_UNKNOWN, whichever of the two the PUT runs into: no
    /// empty blob made up for missing staging, no copy left behind.
    #[tokio::test]
    async fn closing_an_expired_session_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (config, stores) = stores(dir.path());
        let registry = stores.registry(&config);
        let repo = RepoName::parse("r").unwrap();
        let bytes = b"session bytes";
        let digest = Digest::sha256_of(bytes);
        for staging_gone in [true, false] {
            let s = session(registry.start_upload(&repo, None, "test").await.unwrap());
            registry
                .upload_append(&repo, &s.id, None, body(bytes))
                .await
                .unwrap();
            // The collector expires the session: its row goes, then its
            // staging (perhaps not yet).
            assert!(stores.meta.delete_upload(&s.id).await.unwrap());
            if staging_gone {
                stores.blobs.remove_staging(&s.id).await.unwrap();
            }
            let mut hasher = Algorithm::Sha256.hasher();
            hasher.update(bytes);
            let state = upload::HashState {
                offset: bytes.len() as u64,
                hasher,
            };
            let e = registry.publish(&repo, &s.id, state, &digest).await;
            assert_eq!(
                e.err().map(|e| e.code),
                Some(Code::BlobUploadUnknown),
                "staging gone: {staging_gone}"
            );
            assert!(stores.blobs.list_objects().await.unwrap().is_empty());
            assert!(stores.blobs.list_staging().await.unwrap().is_empty());
            assert!(stores
                .meta
                .blob_in_repo(&repo, &digest)
                .await
                .unwrap()
                .is_none());
        }
    }

    /// A read that looked the blob up just before the collector removed it
    /// (metadata, then bytes) answers BLOB_UNKNOWN, as it would a moment
    /// later, not an internal error.
    #[tokio::test]
    async fn a_read_racing_the_collector_is_404_not_500() {
        let dir = tempfile::tempdir().unwrap();
        let (config, stores) = stores(dir.path());
        let racing = Arc::new(CollectOnRead {
            inner: stores.blobs.clone(),
            meta: stores.meta.clone(),
            next: Mutex::new(None),
        });
        let registry = Registry::new(racing.clone(), stores.meta.clone(), config.core_limits());
        let repo = RepoName::parse("r").unwrap();
        let digest = Digest::sha256_of(b"read me");
        registry
            .upload_whole(&repo, &digest, body(b"read me"))
            .await
            .unwrap();
        assert!(registry.blob_read(&repo, &digest, None).await.is_ok());
        *racing.next.lock().unwrap() = Some((repo.clone(), digest.clone()));
        match registry.blob_read(&repo, &digest, None).await {
            Ok(_) => panic!("read a collected blob"),
            Err(e) => assert_eq!(e.code, Code::BlobUnknown, "{e:?}"),
        }
    }
}
