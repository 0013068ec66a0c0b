//! The manifest cache can never serve a deleted or overwritten manifest or
//! a stale tags list: through the core, after tag moves, deletes by tag and
//! by digest, the collector, writes by another process on the same
//! database, and under concurrent reads racing the writes.

use super::sqlite::SqliteMetadata;
use super::MetadataStore;
use crate::core::digest::Digest;
use crate::core::error::Code;
use crate::core::gc::{Collector, GcPolicy, PassReport};
use crate::core::metrics::GcMetrics;
use crate::core::names::{Reference, RepoName, Tag};
use crate::core::registry::Limits;
use crate::core::Registry;
use crate::storage::fs::FsBlobStore;
use crate::storage::BlobStore;
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

struct Node {
    registry: Arc<Registry>,
    meta: Arc<SqliteMetadata>,
    collector: Collector,
}

/// A registry on `dir`: a second one on the same directory stands for
/// another process (`berth gc`) sharing the database.
fn node(dir: &std::path::Path, policy: GcPolicy) -> Node {
    let blobs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir).unwrap());
    let meta = Arc::new(SqliteMetadata::open(&dir.join("metadata.db"), policy.clone()).unwrap());
    let dyn_meta: Arc<dyn MetadataStore> = meta.clone();
    Node {
        registry: Arc::new(Registry::new(
            blobs.clone(),
            dyn_meta.clone(),
            Limits::default(),
        )),
        collector: Collector::new(blobs, dyn_meta, policy, Arc::new(GcMetrics::default())),
        meta,
    }
}

fn tag(t: &str) -> Reference {
    Reference::Tag(Tag::parse(t).unwrap())
}

/// Push a config blob and a one-layer image whose layer is `layer`; returns
/// the manifest's digest.
async fn push(r: &Registry, repo: &RepoName, layer: &str, tags: &[&str]) -> Digest {
    let mut descriptors = Vec::new();
    for blob in ["{}", layer] {
        let digest = Digest::sha256_of(blob.as_bytes());
        let body = Box::pin(futures_util::stream::iter([Ok(Bytes::from(
            blob.to_string(),
        ))]));
        r.upload_whole(repo, &digest, body).await.unwrap();
        descriptors.push((digest, blob.len()));
    }
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        descriptors[0].0, descriptors[0].1, descriptors[1].0, descriptors[1].1
    );
    let extra: Vec<Tag> = tags[1..].iter().map(|t| Tag::parse(t).unwrap()).collect();
    let (d, _) = r
        .manifest_put(repo, &tag(tags[0]), &extra, None, Bytes::from(manifest))
        .await
        .unwrap();
    d
}

/// The digest `reference` resolves to, or `None` for MANIFEST_UNKNOWN.
async fn get(r: &Registry, repo: &RepoName, reference: &Reference) -> Option<Digest> {
    match r.manifest_get(repo, reference).await {
        Ok(m) => {
            assert_eq!(Digest::sha256_of(&m.body), m.digest, "body matches digest");
            Some(m.digest)
        }
        Err(e) if e.code == Code::ManifestUnknown => None,
        Err(e) => panic!("{e:?}"),
    }
}

async fn tags(r: &Registry, repo: &RepoName) -> Vec<String> {
    r.tags(repo, None, 100).await.unwrap().items().to_vec()
}

#[tokio::test]
async fn never_serves_deleted_or_overwritten_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let policy = GcPolicy {
        grace: Duration::ZERO,
        untagged_after: Some(Duration::ZERO),
        ..GcPolicy::default()
    };
    let a = node(dir.path(), policy.clone());
    let r = &a.registry;
    let repo = RepoName::parse("team/app").unwrap();
    let other = RepoName::parse("team/other").unwrap();

    let one = push(r, &repo, "one", &["t", "keep"]).await;
    push(r, &other, "one", &["t"]).await;
    assert_eq!(get(r, &repo, &tag("t")).await, Some(one.clone()));
    assert_eq!(get(r, &repo, &tag("t")).await, Some(one.clone()));
    assert_eq!(get(r, &other, &tag("t")).await, Some(one.clone()));
    assert_eq!(tags(r, &repo).await, ["keep", "t"]);
    assert!(a.meta.cache().len() >= 3, "lookups were not cached");

    // A tag moved to another manifest.
    let two = push(r, &repo, "two", &["t"]).await;
    assert_eq!(get(r, &repo, &tag("t")).await, Some(two.clone()));
    assert_eq!(get(r, &repo, &tag("keep")).await, Some(one.clone()));
    // Another repository's cached answers were not touched, and still hold.
    assert_eq!(get(r, &other, &tag("t")).await, Some(one.clone()));

    // Delete by tag: only that tag goes.
    r.manifest_delete(&repo, &tag("keep")).await.unwrap();
    assert_eq!(get(r, &repo, &tag("keep")).await, None);
    assert_eq!(tags(r, &repo).await, ["t"]);

    // Delete by digest: the manifest and its tags go.
    let by_digest = Reference::Digest(two.clone());
    assert_eq!(get(r, &repo, &by_digest).await, Some(two.clone()));
    r.manifest_delete(&repo, &by_digest).await.unwrap();
    assert_eq!(get(r, &repo, &by_digest).await, None);
    assert_eq!(get(r, &repo, &tag("t")).await, None);
    assert!(tags(r, &repo).await.is_empty());

    // The collector removes `one` from `repo` (untagged there now).
    let by_one = Reference::Digest(one.clone());
    assert_eq!(get(r, &repo, &by_one).await, Some(one.clone()));
    let mut report = PassReport::default();
    a.collector.collect_due(&mut report).await.unwrap();
    assert_eq!(get(r, &repo, &by_one).await, None);
    assert_eq!(get(r, &other, &tag("t")).await, Some(one.clone()));

    // Another process deletes and moves tags: never served stale here.
    let b = node(dir.path(), policy);
    assert_eq!(get(r, &other, &tag("t")).await, Some(one.clone()));
    assert_eq!(tags(r, &other).await, ["t"]);
    b.registry.manifest_delete(&other, &tag("t")).await.unwrap();
    assert_eq!(get(r, &other, &tag("t")).await, None);
    assert!(tags(r, &other).await.is_empty());
    let three = push(&b.registry, &other, "three", &["t"]).await;
    assert_eq!(get(r, &other, &tag("t")).await, Some(three.clone()));
    let four = push(&b.registry, &other, "four", &["t"]).await;
    assert_eq!(get(r, &other, &tag("t")).await, Some(four));
    // ... and its collector removes manifests we had cached.
    assert_eq!(
        get(r, &other, &Reference::Digest(three.clone())).await,
        Some(three.clone())
    );
    let mut report = PassReport::default();
    b.collector.collect_due(&mut report).await.unwrap();
    assert_eq!(get(r, &other, &Reference::Digest(three)).await, None);
}

/// Readers race a writer that moves a tag back and forth and then deletes
/// it. Every read sees a manifest the tag pointed at; once the delete has
/// returned, no read sees anything: a slow reader cannot put back into
/// the cache what the writer just invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_racing_writers_never_resurrect_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), GcPolicy::default());
    let repo = RepoName::parse("race/app").unwrap();
    let r = a.registry.clone();
    let x = push(&r, &repo, "x", &["t"]).await;
    let y = push(&r, &repo, "y", &["y"]).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..6 {
        let (r, repo, stop) = (r.clone(), repo.clone(), stop.clone());
        let valid = [x.clone(), y.clone()];
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(d) = get(&r, &repo, &tag("t")).await {
                    assert!(valid.contains(&d), "served a manifest never tagged t");
                }
                n += 1;
                tokio::task::yield_now().await;
            }
            n
        }));
    }
    for round in 0..40 {
        // Point t at y (a put by digest with ?tag=t), then back at x.
        for d in [&y, &x] {
            let m = r
                .manifest_get(&repo, &Reference::Digest(d.clone()))
                .await
                .unwrap();
            r.manifest_put(
                &repo,
                &Reference::Digest(d.clone()),
                &[Tag::parse("t").unwrap()],
                None,
                m.body,
            )
            .await
            .unwrap();
            assert_eq!(
                get(&r, &repo, &tag("t")).await.as_ref(),
                Some(d),
                "round {round}"
            );
        }
    }
    r.manifest_delete(&repo, &tag("t")).await.unwrap();
    for _ in 0..200 {
        assert_eq!(get(&r, &repo, &tag("t")).await, None, "deleted tag served");
        tokio::task::yield_now().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for h in readers {
        reads += h.await.unwrap();
    }
    assert!(reads > 100, "readers barely ran ({reads} reads)");
    assert_eq!(get(&r, &repo, &tag("t")).await, None);
}

async fn upload(r: &Registry, repo: &RepoName, bytes: &str) -> Digest {
    let digest = Digest::sha256_of(bytes.as_bytes());
    let body = Box::pin(futures_util::stream::iter([Ok(Bytes::from(
        bytes.to_string(),
    ))]));
    r.upload_whole(repo, &digest, body).await.unwrap();
    digest
}

/// The blob's size in `repo`, or the error code a read gets.
async fn blob(r: &Registry, repo: &RepoName, digest: &Digest) -> Result<u64, Code> {
    r.blob_size(repo, digest).await.map_err(|e| e.code)
}

#[tokio::test]
async fn never_serves_an_unlinked_collected_or_corrupt_blob() {
    let dir = tempfile::tempdir().unwrap();
    let policy = GcPolicy {
        grace: Duration::ZERO,
        ..GcPolicy::default()
    };
    let a = node(dir.path(), GcPolicy::default());
    let r = &a.registry;
    let (one, two) = (
        RepoName::parse("blobs/one").unwrap(),
        RepoName::parse("blobs/two").unwrap(),
    );
    let d = upload(r, &one, "shared bytes").await;
    upload(r, &two, "shared bytes").await;
    assert_eq!(blob(r, &one, &d).await, Ok(12));
    assert_eq!(blob(r, &two, &d).await, Ok(12));
    assert!(a.meta.cache().len() >= 2, "blob lookups were not cached");

    // Unlinked from one repository: gone there, still in the other.
    r.blob_delete(&one, &d).await.unwrap();
    assert_eq!(blob(r, &one, &d).await, Err(Code::BlobUnknown));
    assert_eq!(blob(r, &two, &d).await, Ok(12));

    // Marked corrupt by this process, then by another (scrub --repair
    // beside the server): reads fail closed at once (404, so clients push
    // it again), in every repository.
    let k = a.meta.blob_in_repo(&two, &d).await.unwrap().unwrap().key;
    a.meta.mark_corrupt(d.as_str(), k.as_str()).await.unwrap();
    assert_eq!(blob(r, &two, &d).await, Err(Code::BlobUnknown));
    upload(r, &two, "shared bytes").await; // a new upload repairs it
    assert_eq!(blob(r, &two, &d).await, Ok(12));
    let b = node(dir.path(), policy.clone());
    let k = b.meta.blob_in_repo(&two, &d).await.unwrap().unwrap().key;
    b.meta.mark_corrupt(d.as_str(), k.as_str()).await.unwrap();
    assert_eq!(blob(r, &two, &d).await, Err(Code::BlobUnknown));
    upload(r, &two, "shared bytes").await;
    assert_eq!(blob(r, &two, &d).await, Ok(12));

    // Another process's collector removes a link whose grace ended (no
    // manifest names the blob): not served from the cache afterwards.
    let lone = upload(&b.registry, &one, "lonely").await;
    assert_eq!(blob(r, &one, &lone).await, Ok(6));
    let mut report = PassReport::default();
    b.collector.collect_due(&mut report).await.unwrap();
    assert_eq!(blob(r, &one, &lone).await, Err(Code::BlobUnknown));
    // ... and this process's own collector likewise.
    let c = node(dir.path(), policy);
    let again = upload(&c.registry, &one, "again").await;
    assert_eq!(blob(&c.registry, &one, &again).await, Ok(5));
    let mut report = PassReport::default();
    c.collector.collect_due(&mut report).await.unwrap();
    assert_eq!(
        blob(&c.registry, &one, &again).await,
        Err(Code::BlobUnknown)
    );
}
