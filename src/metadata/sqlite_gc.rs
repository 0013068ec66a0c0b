//! The collector's side of the SQLite store: enqueueing reviews where
//! references go away, and reviewing due items inside one transaction.

use crate::core::gc::{GcBatch, GcPolicy, Reclaimed};
use crate::storage::BlobKey;
use rusqlite::{params, OptionalExtension, Transaction};

pub const LINK: &str = "link";
pub const BLOB: &str = "blob";
pub const MANIFEST: &str = "manifest";
pub const UPLOAD: &str = "upload";
/// A manifest that lost a parent index.
pub const CHILD: &str = "child";

fn ms(d: std::time::Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Queue `target` for review at `at`, or earlier if it is queued already.
pub fn enqueue(
    tx: &Transaction,
    kind: &str,
    repo_id: i64,
    target: &str,
    at: i64,
) -> rusqlite::Result<()> {
    queue(tx, "MIN", kind, repo_id, target, at)
}

/// Queue `target` for review at `at`, or keep the `keep` (MIN: earlier,
/// MAX: later) of that and the time it is queued for already.
fn queue(
    tx: &Transaction,
    keep: &str,
    kind: &str,
    repo_id: i64,
    target: &str,
    at: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO gc_queue (kind, repo_id, target, review_after) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, repo_id, target) DO UPDATE
         SET review_after = {keep}(review_after, excluded.review_after)"
    ))?
    .execute(params![kind, repo_id, target, at])?;
    Ok(())
}

fn requeue(
    tx: &Transaction,
    kind: &str,
    repo_id: i64,
    target: &str,
    at: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE gc_queue SET review_after = ?4 WHERE kind = ?1 AND repo_id = ?2 AND target = ?3",
        params![kind, repo_id, target, at],
    )?;
    Ok(())
}

fn exists(tx: &Transaction, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<bool> {
    Ok(tx.query_row(sql, p, |_| Ok(())).optional()?.is_some())
}

/// Delete a manifest from a repository with everything that hangs off it,
/// queueing what it referenced for review. Returns false when absent.
pub fn remove_manifest(
    tx: &Transaction,
    repo_id: i64,
    digest: &str,
    now: i64,
    policy: &GcPolicy,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "DELETE FROM manifests WHERE repo_id = ?1 AND digest = ?2",
        params![repo_id, digest],
    )?;
    if n == 0 {
        return Ok(false);
    }
    let at = now + ms(policy.delay);
    tx.execute(
        "DELETE FROM tags WHERE repo_id = ?1 AND digest = ?2",
        params![repo_id, digest],
    )?;
    let refs: Vec<(String, String)> = {
        let mut stmt = tx.prepare_cached(
            "DELETE FROM manifest_refs WHERE repo_id = ?1 AND manifest = ?2 RETURNING target, kind",
        )?;
        let rows = stmt.query_map(params![repo_id, digest], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    // What a client was just told is there (a HEAD of a blob or a child
    // manifest) stays for the grace period after its last reference goes,
    // so that a client that skipped pushing it can still push a manifest
    // naming it.
    let grace_ends = now + ms(policy.grace);
    for (target, kind) in refs {
        if kind == "child" {
            // The index was the child's reference: once no tag, other
            // index or live subject holds it, it goes, whatever the
            // untagged policy says.
            queue(tx, "MAX", CHILD, repo_id, &target, grace_ends.max(at))?;
        } else {
            tx.execute(
                "UPDATE repo_blobs SET created_at = ?3 WHERE repo_id = ?1 AND digest = ?2
                 AND NOT EXISTS (SELECT 1 FROM manifest_refs WHERE target = ?2 AND repo_id = ?1)",
                params![repo_id, target, now],
            )?;
            enqueue(tx, LINK, repo_id, &target, at)?;
        }
    }
    // Referrers of this manifest may now have no live subject.
    let referrers: Vec<String> = {
        let mut stmt =
            tx.prepare_cached("SELECT digest FROM manifests WHERE repo_id = ?1 AND subject = ?2")?;
        let rows = stmt.query_map(params![repo_id, digest], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for r in referrers {
        enqueue(tx, MANIFEST, repo_id, &r, at)?;
    }
    // Manifest bytes live in this store: they go with the last repository
    // that has the manifest, in the same transaction.
    tx.execute(
        "DELETE FROM manifest_bodies WHERE digest = ?1
         AND NOT EXISTS (SELECT 1 FROM manifests WHERE digest = ?1)",
        [digest],
    )?;
    Ok(true)
}

/// Review up to `limit` due items; see `core::gc` for the rules.
pub fn review_batch(
    tx: &Transaction,
    now: i64,
    limit: usize,
    policy: &GcPolicy,
) -> rusqlite::Result<GcBatch> {
    let due: Vec<(String, i64, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT kind, repo_id, target FROM gc_queue WHERE review_after <= ?1
             ORDER BY review_after LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut batch = GcBatch::default();
    let mut touched_repos = Vec::new();
    for (kind, repo_id, target) in due {
        batch.reviewed += 1;
        let keep_queued = match kind.as_str() {
            LINK => review_link(tx, repo_id, &target, now, policy, &mut batch)?,
            BLOB => {
                review_blob(tx, &target, &mut batch)?;
                false
            }
            MANIFEST => review_manifest(tx, repo_id, &target, now, policy, false, &mut batch)?,
            CHILD => review_manifest(tx, repo_id, &target, now, policy, true, &mut batch)?,
            UPLOAD => review_upload(tx, &target, now, policy, &mut batch)?,
            _ => false,
        };
        if !keep_queued {
            tx.execute(
                "DELETE FROM gc_queue WHERE kind = ?1 AND repo_id = ?2 AND target = ?3",
                params![kind, repo_id, target],
            )?;
        }
        if repo_id != 0 && !touched_repos.contains(&repo_id) {
            touched_repos.push(repo_id);
        }
    }
    for repo_id in touched_repos {
        if remove_repo_if_empty(tx, repo_id)? {
            batch.repositories_removed += 1;
        }
    }
    Ok(batch)
}

/// A repository with no links, manifests or tags is gone from the catalog.
pub fn remove_repo_if_empty(tx: &Transaction, repo_id: i64) -> rusqlite::Result<bool> {
    let used = exists(tx, "SELECT 1 FROM repo_blobs WHERE repo_id = ?1", [repo_id])?
        || exists(tx, "SELECT 1 FROM manifests WHERE repo_id = ?1", [repo_id])?
        || exists(tx, "SELECT 1 FROM tags WHERE repo_id = ?1", [repo_id])?;
    if used {
        return Ok(false);
    }
    Ok(tx.execute("DELETE FROM repositories WHERE id = ?1", [repo_id])? > 0)
}

/// A repository's link to a blob stays while a manifest in the repository
/// names the blob, or while the grace period since the upload or mount (or
/// since the last manifest naming it went) runs.
/// Returns whether the item stays queued (requeued for later).
fn review_link(
    tx: &Transaction,
    repo_id: i64,
    digest: &str,
    now: i64,
    policy: &GcPolicy,
    batch: &mut GcBatch,
) -> rusqlite::Result<bool> {
    let created: Option<i64> = tx
        .query_row(
            "SELECT created_at FROM repo_blobs WHERE repo_id = ?1 AND digest = ?2",
            params![repo_id, digest],
            |r| r.get(0),
        )
        .optional()?;
    let Some(created) = created else {
        // No link (a foreign layer, or unlinked already): the blob itself
        // may be free now.
        review_blob(tx, digest, batch)?;
        return Ok(false);
    };
    if exists(
        tx,
        "SELECT 1 FROM manifest_refs WHERE target = ?2 AND repo_id = ?1",
        params![repo_id, digest],
    )? {
        // Named by a manifest: removing that manifest queues this again.
        return Ok(false);
    }
    let until = created + ms(policy.grace);
    if until > now {
        requeue(tx, LINK, repo_id, digest, until)?;
        return Ok(true);
    }
    tx.execute(
        "DELETE FROM repo_blobs WHERE repo_id = ?1 AND digest = ?2",
        params![repo_id, digest],
    )?;
    batch.links_removed += 1;
    review_blob(tx, digest, batch)?;
    Ok(false)
}

/// A blob's bytes live while any repository links it or any manifest names
/// it. Otherwise its row goes now and its bytes after the commit.
fn review_blob(tx: &Transaction, digest: &str, batch: &mut GcBatch) -> rusqlite::Result<()> {
    if exists(tx, "SELECT 1 FROM repo_blobs WHERE digest = ?1", [digest])?
        || exists(
            tx,
            "SELECT 1 FROM manifest_refs WHERE target = ?1",
            [digest],
        )?
    {
        return Ok(());
    }
    let row: Option<(String, i64)> = tx
        .query_row(
            "DELETE FROM blobs WHERE digest = ?1 RETURNING key, size",
            [digest],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((key, size)) = row {
        if let Some(key) = BlobKey::parse(&key) {
            batch.blobs.push(Reclaimed {
                digest: digest.to_owned(),
                key,
                size: size as u64,
            });
        }
    }
    Ok(())
}

/// A manifest without tags goes when it is a referrer whose subject is gone
/// (policy `referrers_follow_subject`), when it lost its last parent index
/// (`lost_parent`: the index was its reference) and the grace period since
/// its push is over, or when untagged manifests are collected and its time
/// is up; never while it is a child of an index in the repository, nor
/// while its subject lives.
fn review_manifest(
    tx: &Transaction,
    repo_id: i64,
    digest: &str,
    now: i64,
    policy: &GcPolicy,
    lost_parent: bool,
    batch: &mut GcBatch,
) -> rusqlite::Result<bool> {
    let row: Option<(i64, Option<String>)> = tx
        .query_row(
            "SELECT created_at, subject FROM manifests WHERE repo_id = ?1 AND digest = ?2",
            params![repo_id, digest],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((created, subject)) = row else {
        return Ok(false);
    };
    if exists(
        tx,
        "SELECT 1 FROM tags WHERE repo_id = ?1 AND digest = ?2",
        params![repo_id, digest],
    )? || exists(
        tx,
        "SELECT 1 FROM manifest_refs WHERE target = ?2 AND repo_id = ?1 AND kind = 'child'",
        params![repo_id, digest],
    )? {
        return Ok(false);
    }
    let collect = match &subject {
        Some(s)
            if exists(
                tx,
                "SELECT 1 FROM manifests WHERE repo_id = ?1 AND digest = ?2",
                params![repo_id, s],
            )? =>
        {
            false
        }
        Some(_) if policy.referrers_follow_subject => true,
        _ if lost_parent => {
            let until = created + ms(policy.grace);
            if until > now {
                requeue(tx, CHILD, repo_id, digest, until)?;
                return Ok(true);
            }
            true
        }
        _ => match policy.untagged_after {
            None => false,
            Some(after) => {
                // Like uploads, a manifest is protected for the grace
                // period: a client may push children before their index.
                let until = created + ms(after.max(policy.grace));
                if until > now {
                    requeue(tx, MANIFEST, repo_id, digest, until)?;
                    return Ok(true);
                }
                true
            }
        },
    };
    if collect && remove_manifest(tx, repo_id, digest, now, policy)? {
        batch.manifests_removed += 1;
    }
    Ok(false)
}

/// An upload session expires `upload_expiry` after its last write.
fn review_upload(
    tx: &Transaction,
    id: &str,
    now: i64,
    policy: &GcPolicy,
    batch: &mut GcBatch,
) -> rusqlite::Result<bool> {
    let updated: Option<i64> = tx
        .query_row("SELECT updated_at FROM uploads WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(updated) = updated else {
        return Ok(false);
    };
    let until = updated + ms(policy.upload_expiry);
    if until > now {
        requeue(tx, UPLOAD, 0, id, until)?;
        return Ok(true);
    }
    tx.execute("DELETE FROM uploads WHERE id = ?1", [id])?;
    batch.uploads_expired.push(id.to_owned());
    Ok(false)
}
