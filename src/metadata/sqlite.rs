//! The embedded metadata store: SQLite (bundled) in WAL mode.
//!
//! Why SQLite: one file, real transactions, indexes for every lookup, crash
//! safety that is decades old, and a schema that carries over to PostgreSQL.
//! Writes go through one connection (SQLite has one writer at a time anyway;
//! the mutex only queues the few microseconds of a transaction, never blob
//! I/O). Reads use a pool of read-only connections, so a read request cannot
//! write metadata even by mistake (invariant 1), and WAL lets them run while a
//! write commits.

use super::sqlite_gc as gc;
use super::{
    BlobRow, CommitBlob, ManifestRecord, MetadataStore, Names, PutManifest, Referrer, RepoUsage,
    StoredBlob, UploadSession, Usage,
};
use crate::core::digest::Digest;
use crate::core::error::{Error, Result};
use crate::core::gc::{GcBatch, GcPolicy};
use crate::core::manifest::{ParsedManifest, RefKind};
use crate::core::names::{RepoName, Tag};
use crate::storage::BlobKey;
use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::cache::{blob_key, tags_key, Budget, Cached, LookupCache, Touches};

const SCHEMA: &str = include_str!("schema.sql");
const SCHEMA_VERSION: i64 = 2;
/// Idle read connections kept open.
const READ_POOL: usize = 16;

pub struct SqliteMetadata {
    writer: Arc<Mutex<Connection>>,
    readers: Arc<ReadPool>,
    policy: Arc<GcPolicy>,
    cache: Arc<LookupCache>,
}

/// Idle read-only connections, opened on demand.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// Run `f` on a read-only connection, on this thread.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = match self.idle.lock().ok().and_then(|mut p| p.pop()) {
            Some(c) => c,
            None => {
                #[allow(unused_mut)]
                let mut c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(db_err)?;
                c.busy_timeout(std::time::Duration::from_secs(10))
                    .map_err(db_err)?;
                #[cfg(test)]
                super::query_plans::trace(&mut c);
                c
            }
        };
        let out = f(&conn).map_err(db_err);
        if let Ok(mut p) = self.idle.lock() {
            if p.len() < READ_POOL {
                p.push(conn);
            }
        }
        out
    }
}

use crate::core::gc::now_ms as now;

fn db_err(e: rusqlite::Error) -> Error {
    Error::internal("metadata store", e)
}

impl SqliteMetadata {
    /// Open (creating if needed) the database at `path`. `policy` sets when
    /// removed references are reviewed by the collector.
    pub fn open(path: &Path, policy: GcPolicy) -> Result<SqliteMetadata> {
        #[allow(unused_mut)] // mutated only by the query-plan test's tracer
        let mut conn = Connection::open(path).map_err(db_err)?;
        #[cfg(test)]
        super::query_plans::trace(&mut conn);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 10000;",
        )
        .map_err(db_err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db_err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::internal(
                "metadata store",
                format!("database schema {version} is newer than this berth ({SCHEMA_VERSION})"),
            ));
        }
        if version == 1 {
            // Version 2 records who opened each upload session.
            conn.execute_batch("ALTER TABLE uploads ADD COLUMN client TEXT NOT NULL DEFAULT ''")
                .map_err(db_err)?;
        }
        conn.execute_batch(SCHEMA).map_err(db_err)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db_err)?;
        Ok(SqliteMetadata {
            writer: Arc::new(Mutex::new(conn)),
            readers: Arc::new(ReadPool {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
            policy: Arc::new(policy),
            cache: Arc::new(LookupCache::new(Budget::default())),
        })
    }

    /// Run `f` on a read-only connection on the blocking pool: for reads
    /// whose cost grows with the data (scrub, du, the collector's scans).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| Error::internal("metadata read task", e))?
    }

    /// Run `f` on a read-only connection right here, on the request's
    /// thread: for the request path's bounded index lookups (a few
    /// microseconds from SQLite's page cache), where a hand-off to the
    /// blocking pool would cost more than the query.
    fn read_now<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.readers.with(f)
    }

    /// Run `f` in one write transaction, committed when it returns `Ok`.
    /// `touches` says which cached manifest lookups it may change; they are
    /// forgotten before the writer lock is released.
    async fn write<T, F>(&self, touches: Touches, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction) -> rusqlite::Result<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .map_err(|_| Error::internal("metadata store", "writer poisoned"))?;
            let out = (|| {
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(db_err)?;
                let out = f(&tx).map_err(db_err)?;
                tx.commit().map_err(db_err)?;
                Ok(out)
            })();
            cache.invalidate(&touches);
            drop(conn);
            out
        })
        .await
        .map_err(|e| Error::internal("metadata write task", e))?
    }

    /// A cached answer, if one may be served: see `cache` for why this
    /// holds the writer lock and checks `data_version`.
    fn cached(&self, repo: &str, key: &str) -> Option<Cached> {
        let conn = self.writer.try_lock().ok()?;
        let version: i64 = conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .ok()?;
        if !self.cache.observe_data_version(version) {
            return None;
        }
        self.cache.get(repo, key)
    }

    /// Look a manifest up by `reference` (a tag or a digest) through the
    /// cache, running `sql` (parameters: repository, reference) on a miss.
    fn manifest_lookup(
        &self,
        repo: &RepoName,
        reference: &str,
        sql: &'static str,
    ) -> Result<Option<ManifestRecord>> {
        if let Some(Cached::Manifest(hit)) = self.cached(repo.as_str(), reference) {
            return Ok(Some(hit));
        }
        let generation = self.cache.generation();
        let row = self.read_now(|c| {
            c.prepare_cached(sql)?
                .query_row(params![repo.as_str(), reference], manifest_row)
                .optional()
        })?;
        let mut record = to_record(row)?;
        // Only a body that hashes to its digest is remembered, so what the
        // cache serves needs no second look (invariant 7).
        if let Some(r) = record.as_mut().filter(|r| r.body_matches()) {
            r.verified = true;
            let entry = Cached::Manifest(r.clone());
            self.cache
                .insert(generation, repo.as_str(), reference, entry);
        }
        Ok(record)
    }

    /// The manifest cache, for tests.
    #[cfg(test)]
    pub(crate) fn cache(&self) -> &LookupCache {
        &self.cache
    }
}

fn repo_id(conn: &Connection, repo: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM repositories WHERE name = ?1")?
        .query_row([repo], |r| r.get(0))
        .optional()
}

fn ensure_repo(tx: &Transaction, repo: &str) -> rusqlite::Result<i64> {
    if let Some(id) = repo_id(tx, repo)? {
        return Ok(id);
    }
    tx.execute(
        "INSERT INTO repositories (name, created_at) VALUES (?1, ?2)",
        params![repo, now()],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Link a blob into a repository (or renew the link's grace period), and
/// queue the link for review when its grace period ends. A pending review of
/// the blob itself is dropped: it is referenced again.
fn link(tx: &Transaction, repo_id: i64, digest: &str, policy: &GcPolicy) -> rusqlite::Result<()> {
    let t = now();
    tx.execute(
        "INSERT INTO repo_blobs (repo_id, digest, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (repo_id, digest) DO UPDATE SET created_at = excluded.created_at",
        params![repo_id, digest, t],
    )?;
    tx.execute(
        "DELETE FROM gc_queue WHERE kind = ?1 AND repo_id = 0 AND target = ?2",
        params![gc::BLOB, digest],
    )?;
    gc::enqueue(
        tx,
        gc::LINK,
        repo_id,
        digest,
        t + policy.grace.as_millis() as i64,
    )
}

/// End upload session `id`, with its pending expiry review; false when it
/// was not open.
fn end_upload(tx: &Transaction, id: &str) -> rusqlite::Result<bool> {
    if tx.execute("DELETE FROM uploads WHERE id = ?1", [id])? == 0 {
        return Ok(false);
    }
    tx.execute(
        "DELETE FROM gc_queue WHERE kind = ?1 AND repo_id = 0 AND target = ?2",
        params![gc::UPLOAD, id],
    )?;
    Ok(true)
}

fn manifest_row(r: &rusqlite::Row) -> rusqlite::Result<(String, String, Vec<u8>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

fn to_record(row: Option<(String, String, Vec<u8>)>) -> Result<Option<ManifestRecord>> {
    row.map(|(digest, media_type, body)| {
        Ok(ManifestRecord {
            digest: digest
                .parse()
                .map_err(|e| Error::internal("stored manifest digest", e))?,
            media_type,
            body: body.into(),
            verified: false,
        })
    })
    .transpose()
}

#[async_trait]
impl MetadataStore for SqliteMetadata {
    async fn blob_in_repo(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredBlob>> {
        let key = blob_key(digest.as_str());
        if let Some(Cached::Blob(b)) = self.cached(repo.as_str(), &key) {
            return Ok(Some(b));
        }
        let generation = self.cache.generation();
        let row = self.read_now(|c| {
            c.prepare_cached(
                "SELECT b.size, b.key, b.corrupt FROM repositories r
                 JOIN repo_blobs l ON l.repo_id = r.id AND l.digest = ?2
                 JOIN blobs b ON b.digest = l.digest
                 WHERE r.name = ?1",
            )?
            .query_row(params![repo.as_str(), digest.as_str()], |r| {
                <(i64, String, bool)>::try_from(r)
            })
            .optional()
        })?;
        let blob = row
            .map(|(size, key, corrupt)| {
                Ok(StoredBlob {
                    size: size as u64,
                    corrupt,
                    key: BlobKey::parse(&key).ok_or_else(|| {
                        Error::internal("stored blob key", format!("bad key {key:?}"))
                    })?,
                })
            })
            .transpose()?;
        if let Some(b) = &blob {
            let entry = Cached::Blob(b.clone());
            self.cache.insert(generation, repo.as_str(), &key, entry);
        }
        Ok(blob)
    }

    async fn commit_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        key: &BlobKey,
        upload: Option<&str>,
    ) -> Result<CommitBlob> {
        let (repo, digest, key, upload) = (
            repo.to_string(),
            digest.to_string(),
            key.as_str().to_owned(),
            upload.map(str::to_owned),
        );
        let policy = self.policy.clone();
        self.write(Touches::Blob(digest.clone()), move |tx| {
            if let Some(u) = &upload {
                // The session must still be open. One that expired, was
                // cancelled or was closed by another request records
                // nothing: the caller drops its copy.
                if !end_upload(tx, u)? {
                    return Ok(CommitBlob::UploadUnknown);
                }
            }
            let id = ensure_repo(tx, &repo)?;
            let existing: Option<(String, bool)> = tx
                .query_row(
                    "SELECT key, corrupt FROM blobs WHERE digest = ?1",
                    [&digest],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let outcome = match existing {
                None => {
                    tx.execute(
                        "INSERT INTO blobs (digest, size, key, created_at) VALUES (?1, ?2, ?3, ?4)",
                        params![digest, size as i64, key, now()],
                    )?;
                    CommitBlob::Stored
                }
                // A copy found corrupt by scrub is replaced by these bytes,
                // which were just verified against the digest.
                Some((old, true)) => {
                    tx.execute(
                        "UPDATE blobs SET key = ?2, size = ?3, corrupt = 0 WHERE digest = ?1",
                        params![digest, key, size as i64],
                    )?;
                    match BlobKey::parse(&old) {
                        Some(old) => CommitBlob::Replaced(old),
                        None => CommitBlob::Stored,
                    }
                }
                Some((_, false)) => CommitBlob::Duplicate,
            };
            link(tx, id, &digest, &policy)?;
            Ok(outcome)
        })
        .await
    }

    async fn mount_blob(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<u64>> {
        let (repo, digest, from) = (
            repo.to_string(),
            digest.to_string(),
            from.map(|f| f.to_string()),
        );
        let policy = self.policy.clone();
        self.write(Touches::Nothing, move |tx| {
            let size: Option<i64> = match &from {
                Some(from) => tx
                    .query_row(
                        "SELECT b.size FROM repositories r
                         JOIN repo_blobs l ON l.repo_id = r.id AND l.digest = ?2
                         JOIN blobs b ON b.digest = l.digest AND b.corrupt = 0
                         WHERE r.name = ?1",
                        params![from, digest],
                        |r| r.get(0),
                    )
                    .optional()?,
                None => tx
                    .query_row(
                        "SELECT b.size FROM blobs b WHERE b.digest = ?1 AND b.corrupt = 0
                         AND EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = b.digest)",
                        [&digest],
                        |r| r.get(0),
                    )
                    .optional()?,
            };
            if let Some(size) = size {
                let id = ensure_repo(tx, &repo)?;
                link(tx, id, &digest, &policy)?;
                Ok(Some(size as u64))
            } else {
                Ok(None)
            }
        })
        .await
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        let policy = self.policy.clone();
        self.write(Touches::Blob(digest.clone()), move |tx| {
            let n = tx.execute(
                "DELETE FROM repo_blobs WHERE digest = ?2
                 AND repo_id = (SELECT id FROM repositories WHERE name = ?1)",
                params![repo, digest],
            )?;
            if n > 0 {
                let at = now() + policy.delay.as_millis() as i64;
                gc::enqueue(tx, gc::BLOB, 0, &digest, at)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn repos_with_blob(&self, digest: &Digest, limit: usize) -> Result<Vec<String>> {
        let digest = digest.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT r.name FROM repo_blobs l JOIN repositories r ON r.id = l.repo_id
                 WHERE l.digest = ?1 ORDER BY r.name LIMIT ?2",
            )?
            .query_map(params![digest, limit as i64], |r| r.get(0))?
            .collect()
        })
        .await
    }

    async fn create_upload(
        &self,
        id: &str,
        repo: &RepoName,
        client: &str,
        max_total: u64,
        max_per_client: u64,
    ) -> Result<bool> {
        let (id, repo, client) = (id.to_owned(), repo.to_string(), client.to_owned());
        let policy = self.policy.clone();
        self.write(Touches::Nothing, move |tx| {
            // Both counts stop at their cap: bounded by the limits, not by
            // the registry.
            let total: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM (SELECT 1 FROM uploads LIMIT ?1)")?
                .query_row([max_total as i64], |r| r.get(0))?;
            let mine: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE client = ?1 LIMIT ?2)",
                )?
                .query_row(params![client, max_per_client as i64], |r| r.get(0))?;
            if total as u64 >= max_total || mine as u64 >= max_per_client {
                return Ok(false);
            }
            let t = now();
            tx.execute(
                "INSERT INTO uploads (id, repo, size, client, created_at, updated_at)
                 VALUES (?1, ?2, 0, ?3, ?4, ?4)",
                params![id, repo, client, t],
            )?;
            gc::enqueue(
                tx,
                gc::UPLOAD,
                0,
                &id,
                t + policy.upload_expiry.as_millis() as i64,
            )?;
            Ok(true)
        })
        .await
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>> {
        let row = self.read_now(|c| {
            c.prepare_cached("SELECT id, repo, size FROM uploads WHERE id = ?1")?
                .query_row([id], |r| <(String, String, i64)>::try_from(r))
                .optional()
        })?;
        row.map(|(id, repo, size)| {
            Ok(UploadSession {
                id,
                repo: RepoName::parse(&repo)
                    .ok_or_else(|| Error::internal("stored upload", "bad repository name"))?,
                size: size as u64,
            })
        })
        .transpose()
    }

    async fn advance_upload(&self, id: &str, from: u64, to: u64) -> Result<bool> {
        let id = id.to_owned();
        self.write(Touches::Nothing, move |tx| {
            let n = tx.execute(
                "UPDATE uploads SET size = ?3, updated_at = ?4 WHERE id = ?1 AND size = ?2",
                params![id, from as i64, to as i64, now()],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(Touches::Nothing, move |tx| end_upload(tx, &id))
            .await
    }

    async fn put_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        body: &[u8],
        parsed: &ParsedManifest,
        tags: &[Tag],
    ) -> Result<PutManifest> {
        let repo = repo.to_string();
        let digest_s = digest.to_string();
        let body = body.to_vec();
        let parsed = parsed.clone();
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        let policy = self.policy.clone();
        // References are checked before anything is written, inside the
        // same transaction, so a failed push changes nothing.
        self.write(Touches::Repo(repo.clone()), move |tx| {
            let id = repo_id(tx, &repo)?;
            for (target, kind) in &parsed.references {
                let (sql, missing): (&str, fn(Digest) -> PutManifest) = match kind {
                    RefKind::Config | RefKind::Layer => (
                        "SELECT 1 FROM repo_blobs WHERE repo_id = ?1 AND digest = ?2",
                        PutManifest::MissingBlob,
                    ),
                    RefKind::Child => (
                        "SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2",
                        PutManifest::MissingManifest,
                    ),
                    RefKind::ForeignLayer => continue,
                };
                let present = match id {
                    Some(id) => tx
                        .query_row(sql, params![id, target.as_str()], |_| Ok(()))
                        .optional()?
                        .is_some(),
                    None => false,
                };
                if !present {
                    return Ok(missing(target.clone()));
                }
            }
            let id = ensure_repo(tx, &repo)?;
            let t = now();
            // The body was just checked against the digest: it replaces a
            // stored body that no longer matches (rot that scrub reports and
            // reads refuse), so pushing the manifest again repairs it.
            tx.execute(
                "INSERT INTO manifest_bodies (digest, body) VALUES (?1, ?2)
                 ON CONFLICT (digest) DO UPDATE SET body = excluded.body
                 WHERE manifest_bodies.body <> excluded.body",
                params![digest_s, body],
            )?;
            let annotations = parsed
                .annotations
                .as_ref()
                .map(|a| serde_json::Value::Object(a.clone()).to_string());
            tx.execute(
                "INSERT INTO manifests (repo_id, digest, media_type, size, artifact_type, subject, annotations, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (repo_id, digest) DO UPDATE SET media_type = excluded.media_type,
                   created_at = excluded.created_at",
                params![
                    id,
                    digest_s,
                    parsed.media_type,
                    body.len() as i64,
                    parsed.artifact_type,
                    parsed.subject.as_ref().map(|s| s.to_string()),
                    annotations,
                    t
                ],
            )?;
            for (target, kind) in &parsed.references {
                tx.execute(
                    "INSERT OR IGNORE INTO manifest_refs (repo_id, manifest, target, kind) VALUES (?1, ?2, ?3, ?4)",
                    params![id, digest_s, target.as_str(), kind.as_str()],
                )?;
            }
            let at = t + policy.delay.as_millis() as i64;
            for tag in &tags {
                // A tag moved off another manifest may leave it untagged.
                let old: Option<String> = tx
                    .query_row(
                        "SELECT digest FROM tags WHERE repo_id = ?1 AND name = ?2",
                        params![id, tag],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(old) = old.filter(|o| o != &digest_s) {
                    gc::enqueue(tx, gc::MANIFEST, id, &old, at)?;
                }
                tx.execute(
                    "INSERT INTO tags (repo_id, name, digest, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (repo_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
                    params![id, tag, digest_s, t],
                )?;
            }
            if let Some(after) = policy.untagged_after {
                let at = t + after.max(policy.grace).as_millis() as i64;
                gc::enqueue(tx, gc::MANIFEST, id, &digest_s, at)?;
            }
            Ok(PutManifest::Stored)
        })
        .await
    }

    async fn manifest_by_digest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<ManifestRecord>> {
        self.manifest_lookup(
            repo,
            digest.as_str(),
            "SELECT m.digest, m.media_type, b.body FROM repositories r
             JOIN manifests m ON m.repo_id = r.id AND m.digest = ?2
             JOIN manifest_bodies b ON b.digest = m.digest
             WHERE r.name = ?1",
        )
    }

    async fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Option<ManifestRecord>> {
        self.manifest_lookup(
            repo,
            tag.as_str(),
            "SELECT m.digest, m.media_type, b.body FROM repositories r
             JOIN tags t ON t.repo_id = r.id AND t.name = ?2
             JOIN manifests m ON m.repo_id = r.id AND m.digest = t.digest
             JOIN manifest_bodies b ON b.digest = m.digest
             WHERE r.name = ?1",
        )
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repo.to_string(), digest.to_string());
        let policy = self.policy.clone();
        self.write(Touches::Repo(repo.clone()), move |tx| {
            let Some(id) = repo_id(tx, &repo)? else {
                return Ok(false);
            };
            let removed = gc::remove_manifest(tx, id, &digest, now(), &policy)?;
            // A manifest that named nothing (an empty index) queues nothing
            // for the collector: drop the repository now if it was the last.
            if removed {
                gc::remove_repo_if_empty(tx, id)?;
            }
            Ok(removed)
        })
        .await
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let (repo, tag) = (repo.to_string(), tag.to_string());
        let policy = self.policy.clone();
        self.write(Touches::Repo(repo.clone()), move |tx| {
            let Some(id) = repo_id(tx, &repo)? else {
                return Ok(false);
            };
            let old: Option<String> = tx
                .query_row(
                    "DELETE FROM tags WHERE repo_id = ?1 AND name = ?2 RETURNING digest",
                    params![id, tag],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(old) = &old {
                let at = now() + policy.delay.as_millis() as i64;
                gc::enqueue(tx, gc::MANIFEST, id, old, at)?;
            }
            Ok(old.is_some())
        })
        .await
    }

    async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: usize,
    ) -> Result<Option<Names>> {
        let last = last.unwrap_or("");
        let key = tags_key(last, n);
        if let Some(Cached::Tags(t)) = self.cached(repo.as_str(), &key) {
            return Ok(Some(t));
        }
        let generation = self.cache.generation();
        let names = self.read_now(|c| {
            let Some(id) = repo_id(c, repo.as_str())? else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT name FROM tags WHERE repo_id = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![id, last, n as i64], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map(|v| Some(Names::from(v)))
        })?;
        if let Some(t) = &names {
            let entry = Cached::Tags(t.clone());
            self.cache.insert(generation, repo.as_str(), &key, entry);
        }
        Ok(names)
    }

    async fn list_repositories(&self, last: Option<&str>, n: usize) -> Result<Names> {
        let last = last.unwrap_or("");
        self.read_now(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![last, n as i64], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map(Names::from)
        })
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&str>,
        n: usize,
    ) -> Result<Vec<Referrer>> {
        let (repo, subject, filter, last) = (
            repo.to_string(),
            subject.to_string(),
            artifact_type.map(str::to_owned),
            last.unwrap_or("").to_owned(),
        );
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        self.read(move |c| {
            let Some(id) = repo_id(c, &repo)? else {
                return Ok(Vec::new());
            };
            let mut stmt = c.prepare_cached(
                "SELECT digest, media_type, size, artifact_type, annotations FROM manifests
                 WHERE repo_id = ?1 AND subject = ?2 AND (?3 IS NULL OR artifact_type = ?3)
                   AND digest > ?4
                 ORDER BY digest LIMIT ?5",
            )?;
            let rows = stmt.query_map(params![id, subject, filter, last, limit], |r| {
                let annotations: Option<String> = r.get(4)?;
                Ok(Referrer {
                    digest: r.get(0)?,
                    media_type: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    artifact_type: r.get(3)?,
                    annotations: annotations.and_then(|a| serde_json::from_str(&a).ok()),
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn gc_review_batch(&self, now_ms: i64, limit: usize) -> Result<GcBatch> {
        let policy = self.policy.clone();
        self.write(Touches::All, move |tx| {
            gc::review_batch(tx, now_ms, limit, &policy)
        })
        .await
    }

    async fn gc_queue_depth(&self, now_ms: i64) -> Result<(u64, u64)> {
        self.read(move |c| {
            c.query_row(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE review_after <= ?1) FROM gc_queue",
                [now_ms],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
        })
        .await
    }

    async fn blob_key_recorded(&self, key: &BlobKey) -> Result<bool> {
        let key = key.as_str().to_owned();
        self.read(move |c| {
            let mut parts = key.split('/');
            let digest = format!(
                "{}:{}",
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default()
            );
            c.query_row(
                "SELECT 1 FROM blobs WHERE digest = ?1 AND key = ?2",
                params![digest, key],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
        })
        .await
    }

    async fn reclaimable(&self, now_ms: i64) -> Result<Vec<(String, u64)>> {
        let cutoff = now_ms - self.policy.grace.as_millis() as i64;
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT b.digest, b.size FROM blobs b
                 WHERE NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.target = b.digest)
                 AND NOT EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = b.digest AND l.created_at > ?1)
                 ORDER BY b.digest",
            )?;
            let rows = stmt.query_map([cutoff], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
        .await
    }

    async fn usage(&self) -> Result<Usage> {
        self.read(|c| {
            let (stored_blobs, stored_bytes): (i64, i64) = c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let manifest_bytes: i64 = c.query_row(
                "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM manifest_bodies",
                [],
                |r| r.get(0),
            )?;
            // A repository uses a blob it links or one of its manifests names.
            let mut stmt = c.prepare(
                "SELECT r.name,
                   (SELECT COUNT(*) FROM (SELECT digest FROM repo_blobs WHERE repo_id = r.id
                      UNION SELECT target FROM manifest_refs WHERE repo_id = r.id AND kind <> 'child') u
                      JOIN blobs b ON b.digest = u.digest),
                   (SELECT COALESCE(SUM(b.size), 0) FROM (SELECT digest FROM repo_blobs WHERE repo_id = r.id
                      UNION SELECT target FROM manifest_refs WHERE repo_id = r.id AND kind <> 'child') u
                      JOIN blobs b ON b.digest = u.digest),
                   (SELECT COUNT(*) FROM manifests m WHERE m.repo_id = r.id),
                   (SELECT COUNT(*) FROM tags t WHERE t.repo_id = r.id)
                 FROM repositories r ORDER BY r.name",
            )?;
            let repositories = stmt
                .query_map([], |r| {
                    Ok(RepoUsage {
                        name: r.get(0)?,
                        blobs: r.get::<_, i64>(1)? as u64,
                        bytes: r.get::<_, i64>(2)? as u64,
                        manifests: r.get::<_, i64>(3)? as u64,
                        tags: r.get::<_, i64>(4)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Usage {
                stored_bytes: stored_bytes as u64,
                stored_blobs: stored_blobs as u64,
                manifest_bytes: manifest_bytes as u64,
                undeduplicated_bytes: repositories.iter().map(|r| r.bytes).sum(),
                repositories,
            })
        })
        .await
    }

    async fn blobs_after(&self, after: &str, limit: usize) -> Result<Vec<BlobRow>> {
        let after = after.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT digest, size, key, corrupt FROM blobs WHERE digest > ?1 ORDER BY digest LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit as i64], |r| {
                Ok(BlobRow {
                    digest: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    key: r.get(2)?,
                    corrupt: r.get(3)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn manifest_bodies_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, bytes::Bytes)>> {
        let after = after.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT digest, body FROM manifest_bodies WHERE digest > ?1 ORDER BY digest LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit as i64], |r| {
                Ok((r.get(0)?, bytes::Bytes::from(r.get::<_, Vec<u8>>(1)?)))
            })?;
            rows.collect()
        })
        .await
    }

    async fn mark_corrupt(&self, digest: &str, key: &str) -> Result<bool> {
        let (digest, key) = (digest.to_owned(), key.to_owned());
        self.write(Touches::Blob(digest.clone()), move |tx| {
            let n = tx.execute(
                "UPDATE blobs SET corrupt = 1 WHERE digest = ?1 AND key = ?2",
                params![digest, key],
            )?;
            Ok(n > 0)
        })
        .await
    }
}
