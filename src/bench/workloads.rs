//! The workloads: what each sets up before the clock starts, and what one
//! timed operation does.

use super::client::{Done, Registry, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};
use super::data::{Blob, Corpus, ReqBody, SplitMix};
use super::report::fmt_size;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};

/// Size of the layer in manifest, tag and blob-HEAD setups.
const SMALL_LAYER: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Kind {
    /// Push new blobs: POST, then one PUT ?digest= with the blob.
    PushMonolithic,
    /// Push new blobs: POST, PATCH per --chunk-size, PUT ?digest=.
    PushChunked,
    /// GET blobs (pushed during setup), reading every byte.
    Pull,
    /// HEAD a blob.
    BlobHead,
    /// GET a manifest by tag.
    ManifestGetTag,
    /// GET a manifest by digest.
    ManifestGetDigest,
    /// HEAD a manifest by tag.
    ManifestHeadTag,
    /// HEAD a manifest by digest.
    ManifestHeadDigest,
    /// GET the tags list of a repository with --tags tags (following Link).
    TagsList,
    /// GET one page (n=100) of the catalog.
    Catalog,
    /// Image pulls (manifest by tag + layer) and, --mixed-push-percent of
    /// the time, image pushes (new layer + manifest).
    Mixed,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::PushMonolithic,
        Kind::PushChunked,
        Kind::Pull,
        Kind::BlobHead,
        Kind::ManifestGetTag,
        Kind::ManifestGetDigest,
        Kind::ManifestHeadTag,
        Kind::ManifestHeadDigest,
        Kind::TagsList,
        Kind::Catalog,
        Kind::Mixed,
    ];

    pub fn name(self) -> String {
        use clap::ValueEnum as _;
        self.to_possible_value()
            .expect("no skipped variants")
            .get_name()
            .to_string()
    }

    /// Whether the workload moves blobs of --blob-size (and runs once per size).
    pub fn sized(self) -> bool {
        matches!(
            self,
            Kind::PushMonolithic | Kind::PushChunked | Kind::Pull | Kind::Mixed
        )
    }
}

/// One workload to run: a kind, and a blob size for blob workloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kind: Kind,
    pub size: Option<u64>,
}

impl Plan {
    pub fn label(&self) -> String {
        match self.size {
            Some(s) => format!("{} {}", self.kind.name(), fmt_size(s)),
            None => self.kind.name(),
        }
    }

    /// A repository-name component for this workload.
    fn component(&self) -> String {
        match self.size {
            Some(s) => format!("{}-{}", self.kind.name(), fmt_size(s).to_lowercase()),
            None => self.kind.name(),
        }
    }
}

/// The workloads to run, in order: `kinds` (all when empty), blob ones once
/// per size.
pub fn plans(kinds: &[Kind], sizes: &[u64]) -> Vec<Plan> {
    let mut out = Vec::new();
    for k in Kind::ALL {
        if !kinds.is_empty() && !kinds.contains(&k) {
            continue;
        }
        if k.sized() {
            for &s in sizes {
                let p = Plan {
                    kind: k,
                    size: Some(s),
                };
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        } else {
            out.push(Plan {
                kind: k,
                size: None,
            });
        }
    }
    out
}

/// Everything the workloads share.
pub struct Ctx {
    pub reg: Registry,
    pub corpus: Corpus,
    pub run_id: String,
    /// Repository prefix, e.g. `berth-bench`.
    pub prefix: String,
    pub chunk: u64,
    pub concurrency: u32,
    pub tags: u32,
    pub catalog_repos: u32,
    pub mixed_push_percent: u8,
    next_blob: AtomicU64,
    seed: u64,
}

impl Ctx {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        reg: Registry,
        seed: u64,
        run_id: String,
        prefix: String,
        chunk: u64,
        concurrency: u32,
        tags: u32,
        catalog_repos: u32,
        mixed_push_percent: u8,
    ) -> Ctx {
        Ctx {
            reg,
            corpus: Corpus::new(seed),
            run_id,
            prefix,
            chunk,
            concurrency,
            tags,
            catalog_repos,
            mixed_push_percent,
            next_blob: AtomicU64::new(0),
            seed,
        }
    }

    /// A blob never used before in this run.
    fn new_blob(&self, size: u64) -> Blob {
        let i = self.next_blob.fetch_add(1, Ordering::Relaxed);
        self.corpus.blob(size, i)
    }

    fn repo(&self, plan: &Plan) -> String {
        format!("{}/{}/{}", self.prefix, self.run_id, plan.component())
    }

    /// How many distinct blobs or images read workloads cycle through.
    fn read_set(&self) -> u64 {
        u64::from(self.concurrency).clamp(1, 4)
    }
}

/// A workload's data, ready for timed operations.
pub enum Prepared {
    Push {
        repo: String,
        size: u64,
        chunked: bool,
    },
    Pull {
        repo: String,
        blobs: Vec<Blob>,
    },
    BlobHead {
        repo: String,
        blobs: Vec<Blob>,
    },
    Manifest {
        repo: String,
        reference: String,
        head: bool,
    },
    Tags {
        repo: String,
        count: usize,
    },
    Catalog,
    Mixed {
        repo: String,
        size: u64,
        config: Config,
        /// (tag, layer) of the images pulled.
        images: Vec<(String, Blob)>,
    },
}

/// An image config blob.
#[derive(Clone)]
pub struct Config {
    pub digest: String,
    pub bytes: Bytes,
}

impl Config {
    fn new(ctx: &Ctx, n: u64) -> Config {
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"config":{{"Labels":{{"berth-bench":"{}-{n}"}}}}}}"#,
            ctx.run_id
        );
        let bytes = Bytes::from(json);
        Config {
            digest: sha256(&bytes),
            bytes,
        }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image manifest with `config` and `layers`.
pub fn manifest(config: &Config, layers: &[&Blob]) -> Bytes {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|b| serde_json::json!({"mediaType": OCI_LAYER, "digest": b.digest, "size": b.size}))
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.bytes.len()},
        "layers": layers,
    });
    Bytes::from(serde_json::to_vec(&m).expect("manifest JSON"))
}

/// Push a config, one layer and a manifest tagged `tag`; returns the
/// manifest bytes and digest.
async fn push_image(
    ctx: &Ctx,
    repo: &str,
    config: &Config,
    layer: &Blob,
    tag: &str,
) -> Result<(Bytes, String), String> {
    push_config(ctx, repo, config).await?;
    ctx.reg.push_blob(repo, layer).await?;
    let m = manifest(config, &[layer]);
    ctx.reg
        .put_manifest(repo, tag, OCI_MANIFEST, m.clone())
        .await?;
    let d = sha256(&m);
    Ok((m, d))
}

async fn push_config(ctx: &Ctx, repo: &str, config: &Config) -> Result<Done, String> {
    ctx.reg
        .push_monolithic(repo, &config.digest, ReqBody::Full(config.bytes.clone()))
        .await
}

/// Run `f(0..n)` with up to `ctx.concurrency` in flight.
async fn parallel<F, Fut>(ctx: &Ctx, n: u64, f: F) -> Result<(), String>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    stream::iter((0..n).map(&f))
        .buffer_unordered(ctx.concurrency as usize)
        .try_collect::<Vec<()>>()
        .await
        .map(|_| ())
}

/// Push what `plan`'s operations need, in a repository of its own.
pub async fn setup(ctx: &Ctx, plan: &Plan) -> Result<Prepared, String> {
    let repo = ctx.repo(plan);
    let size = plan.size.unwrap_or(SMALL_LAYER);
    Ok(match plan.kind {
        Kind::PushMonolithic | Kind::PushChunked => {
            // New blobs are made during the timed operations: hash their
            // shared prefix now (about a second per GiB), not in the first.
            ctx.corpus.warm(size);
            Prepared::Push {
                repo,
                size,
                chunked: plan.kind == Kind::PushChunked,
            }
        }
        Kind::Pull | Kind::BlobHead => {
            let blobs: Vec<Blob> = (0..ctx.read_set()).map(|_| ctx.new_blob(size)).collect();
            parallel(ctx, blobs.len() as u64, |i| {
                let (repo, b) = (&repo, &blobs[i as usize]);
                async move { ctx.reg.push_blob(repo, b).await.map(|_| ()) }
            })
            .await?;
            if plan.kind == Kind::Pull {
                Prepared::Pull { repo, blobs }
            } else {
                Prepared::BlobHead { repo, blobs }
            }
        }
        Kind::ManifestGetTag
        | Kind::ManifestGetDigest
        | Kind::ManifestHeadTag
        | Kind::ManifestHeadDigest => {
            let config = Config::new(ctx, 0);
            let layer = ctx.new_blob(SMALL_LAYER);
            let (_, digest) = push_image(ctx, &repo, &config, &layer, "latest").await?;
            let by_tag = matches!(plan.kind, Kind::ManifestGetTag | Kind::ManifestHeadTag);
            Prepared::Manifest {
                repo,
                reference: if by_tag { "latest".into() } else { digest },
                head: matches!(plan.kind, Kind::ManifestHeadTag | Kind::ManifestHeadDigest),
            }
        }
        Kind::TagsList => {
            let config = Config::new(ctx, 0);
            let layer = ctx.new_blob(SMALL_LAYER);
            let (m, _) = push_image(ctx, &repo, &config, &layer, "t00000").await?;
            parallel(ctx, u64::from(ctx.tags).saturating_sub(1), |i| {
                let (repo, m) = (&repo, m.clone());
                async move {
                    let tag = format!("t{:05}", i + 1);
                    ctx.reg
                        .put_manifest(repo, &tag, OCI_MANIFEST, m)
                        .await
                        .map(|_| ())
                }
            })
            .await?;
            Prepared::Tags {
                repo,
                count: ctx.tags.max(1) as usize,
            }
        }
        Kind::Catalog => {
            parallel(ctx, u64::from(ctx.catalog_repos.max(1)), |i| {
                let repo = format!("{repo}/r{i:04}");
                async move {
                    let config = Config::new(ctx, i);
                    let layer = ctx.new_blob(SMALL_LAYER);
                    push_image(ctx, &repo, &config, &layer, "latest")
                        .await
                        .map(|_| ())
                }
            })
            .await?;
            Prepared::Catalog
        }
        Kind::Mixed => {
            let config = Config::new(ctx, 0);
            push_config(ctx, &repo, &config).await?;
            let images: Vec<(String, Blob)> = (0..ctx.read_set())
                .map(|i| (format!("pull{i}"), ctx.new_blob(size)))
                .collect();
            parallel(ctx, images.len() as u64, |i| {
                let (repo, config, (tag, layer)) = (&repo, &config, &images[i as usize]);
                async move {
                    ctx.reg.push_blob(repo, layer).await?;
                    let m = manifest(config, &[layer]);
                    ctx.reg.put_manifest(repo, tag, OCI_MANIFEST, m).await?;
                    Ok(())
                }
            })
            .await?;
            Prepared::Mixed {
                repo,
                size,
                config,
                images,
            }
        }
    })
}

/// Timed operation number `i`.
pub async fn op(ctx: &Ctx, p: &Prepared, i: u64) -> Result<Done, String> {
    match p {
        Prepared::Push {
            repo,
            size,
            chunked,
        } => {
            let blob = ctx.new_blob(*size);
            if *chunked {
                ctx.reg.push_chunked(repo, &blob, ctx.chunk).await
            } else {
                ctx.reg.push_blob(repo, &blob).await
            }
        }
        Prepared::Pull { repo, blobs } => {
            let b = &blobs[(i % blobs.len() as u64) as usize];
            ctx.reg.pull_blob(repo, &b.digest, b.size).await
        }
        Prepared::BlobHead { repo, blobs } => {
            let b = &blobs[(i % blobs.len() as u64) as usize];
            ctx.reg.head_blob(repo, &b.digest).await
        }
        Prepared::Manifest {
            repo,
            reference,
            head,
        } => ctx.reg.get_manifest(repo, reference, *head).await,
        Prepared::Tags { repo, count } => {
            let (done, n) = ctx.reg.list_tags(repo).await?;
            if n != *count {
                return Err(format!("tags list of {repo}: {n} tags, want {count}"));
            }
            Ok(done)
        }
        Prepared::Catalog => {
            let (done, n) = ctx.reg.catalog_page(100).await?;
            if n == 0 {
                return Err("catalog: no repositories listed".into());
            }
            Ok(done)
        }
        Prepared::Mixed {
            repo,
            size,
            config,
            images,
        } => {
            let mut rng = SplitMix(ctx.seed ^ i.wrapping_mul(0x2545_F491_4F6C_DD1D));
            let mut done = Done::default();
            if rng.below(100) < u64::from(ctx.mixed_push_percent) {
                let layer = ctx.new_blob(*size);
                done += ctx.reg.push_blob(repo, &layer).await?;
                let m = manifest(config, &[&layer]);
                done += ctx
                    .reg
                    .put_manifest(repo, &format!("push{i}"), OCI_MANIFEST, m)
                    .await?;
            } else {
                let (tag, layer) = &images[rng.below(images.len() as u64) as usize];
                done += ctx.reg.get_manifest(repo, tag, false).await?;
                done += ctx.reg.pull_blob(repo, &layer.digest, layer.size).await?;
            }
            Ok(done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kebab_case() {
        assert_eq!(Kind::PushMonolithic.name(), "push-monolithic");
        assert_eq!(Kind::ManifestHeadDigest.name(), "manifest-head-digest");
        assert_eq!(Kind::TagsList.name(), "tags-list");
    }

    #[test]
    fn plans_expand_sizes_for_blob_workloads_only() {
        let all = plans(&[], &[1 << 20, 100 << 20]);
        assert_eq!(all.len(), 7 + 4 * 2);
        assert_eq!(all[0].label(), "push-monolithic 1MiB");
        assert_eq!(all[1].label(), "push-monolithic 100MiB");
        assert!(all.iter().any(|p| p.label() == "catalog"));
        let some = plans(&[Kind::Catalog, Kind::Pull], &[1 << 20, 1 << 20]);
        assert_eq!(
            some,
            vec![
                Plan {
                    kind: Kind::Pull,
                    size: Some(1 << 20)
                },
                Plan {
                    kind: Kind::Catalog,
                    size: None
                },
            ]
        );
        assert_eq!(some[0].component(), "pull-1mib");
    }

    #[test]
    fn manifest_references_its_blobs() {
        let c = Corpus::new(3);
        let layer = c.blob(10, 0);
        let config = Config {
            digest: sha256(b"{}"),
            bytes: Bytes::from_static(b"{}"),
        };
        let m: serde_json::Value = serde_json::from_slice(&manifest(&config, &[&layer])).unwrap();
        assert_eq!(m["mediaType"], OCI_MANIFEST);
        assert_eq!(m["config"]["size"], 2);
        assert_eq!(m["layers"][0]["digest"], layer.digest.as_str());
        assert_eq!(m["layers"][0]["size"], 10);
    }
}
