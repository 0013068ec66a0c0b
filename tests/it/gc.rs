//! Online garbage collection: deletes free space (invariant 4), nothing
//! referenced is lost (5), crashes leave a state the next start accepts and
//! the collector cleans (6), scrub re-verifies content at rest (7).

use crate::common::image::{
    image_from_layers, pull_and_verify, push_blob, push_image, put_manifest, random_image,
    random_layer, try_put_manifest, write_oci_layout, Blob, Image,
};
use crate::common::{
    berth_cli, blob_bytes, client, data_bytes, have_tool, metadata_dump, metric, snapshot,
    wait_for, Berth, Paused, OCI_INDEX, OCI_MANIFEST,
};
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use std::collections::BTreeSet;
use std::path::Path;

/// Fast collection for tests: 2 s grace, reviews every 100 ms.
const FAST_GC: &[&str] = &["--gc-grace", "2s", "--gc-interval", "100ms"];

fn delete(b: &Berth, path: &str) -> u16 {
    client()
        .delete(b.v2(path))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn head(b: &Berth, path: &str) -> u16 {
    client().head(b.v2(path)).send().unwrap().status().as_u16()
}

/// Digests of every file under blobs/ (a stored copy's name starts with
/// its hex digest).
fn stored_digests(data_dir: &Path) -> BTreeSet<String> {
    snapshot(&data_dir.join("blobs"))
        .keys()
        .filter(|k| !k.ends_with('/'))
        .filter_map(|k| {
            let (alg, rest) = k.split_once('/')?;
            let file = rest.rsplit('/').next()?;
            Some(format!("{alg}:{}", file.split('.').next()?))
        })
        .collect()
}

/// Digests and sizes every manifest in the registry names.
fn referenced(db: &Path) -> (BTreeSet<String>, u64) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT r.target, b.size FROM manifest_refs r JOIN blobs b ON b.digest = r.target
             WHERE r.kind <> 'child'",
        )
        .unwrap();
    let rows: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let bytes = rows.iter().map(|r| r.1 as u64).sum();
    (rows.into_iter().map(|r| r.0).collect(), bytes)
}

/// Everything observable about the stored state: every file (size and
/// hash) and every metadata row.
fn state(b: &Berth) -> (std::collections::BTreeMap<String, (u64, String)>, String) {
    (snapshot(&b.data_dir), metadata_dump(&b.metadata_path()))
}

/// Open the metadata read-only beside the running server.
fn db(b: &Berth) -> rusqlite::Connection {
    db_at(&b.metadata_path())
}

fn db_at(path: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn
}

/// Items in the collector's review queue, of `kind` (any when `None`) and
/// for `target` (any when `None`).
fn queued(b: &Berth, kind: Option<&str>, target: Option<&str>) -> i64 {
    db(b)
        .query_row(
            "SELECT COUNT(*) FROM gc_queue WHERE (?1 IS NULL OR kind = ?1)
             AND (?2 IS NULL OR target = ?2)",
            rusqlite::params![kind, target],
            |r| r.get(0),
        )
        .unwrap()
}

/// Wait until the review queue is empty, so the collector changes nothing
/// while a test compares snapshots.
fn wait_for_idle_collector(b: &Berth) {
    wait_for(30, "the review queue to empty", || {
        queued(b, None, None) == 0
    });
}

/// Set a file's modification time `secs` seconds into the past.
fn set_age(path: &Path, secs: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// The stored file of `digest` (its one copy).
fn blob_file(data_dir: &Path, digest: &str) -> std::path::PathBuf {
    let file = snapshot(&data_dir.join("blobs"))
        .into_keys()
        .find(|k| k.contains(&digest[7..]))
        .unwrap_or_else(|| panic!("no file for {digest}"));
    data_dir.join("blobs").join(file)
}

/// Run `berth scrub --json` with `args`; returns the exit code and report.
fn scrub_json(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = berth_cli(&[&["scrub", "--json"], args].concat());
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("scrub: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), report)
}

/// Run `berth scrub` with `args` and assert it finds the store clean.
fn assert_scrub_clean(args: &[&str]) {
    let out = berth_cli(&[&["scrub"], args].concat());
    assert!(
        out.status.success(),
        "scrub: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A file of `size` bytes under blobs/ that no metadata names, as a crash
/// between writing bytes and committing their metadata leaves one; `name`
/// is its key's suffix. Returns its path and key.
fn plant_orphan(data_dir: &Path, name: &str, size: usize) -> (std::path::PathBuf, String) {
    let hex = &crate::common::sha256(name.as_bytes())[7..];
    let dir = data_dir.join("blobs/sha256").join(&hex[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{hex}.{name}"));
    std::fs::write(&path, vec![1u8; size]).unwrap();
    (path, format!("sha256/{hex}/{name}"))
}

/// A config file for `berth serve` or the maintenance commands.
fn config_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().to_string()
}

/// The seed scenario over HTTP: push to my-repo, HEAD a layer in
/// different-repo (404, nothing created), delete the image; after the GC
/// delay the bytes are gone, the data directory is back to its size before
/// the push, different-repo appears nowhere, and HEAD still answers 404.
/// Around the HEADs, before and after the collection, a snapshot of the
/// data directory and a dump of the metadata show that HEAD writes nothing.
#[test]
fn deleting_an_image_frees_its_bytes() {
    let b = Berth::start_with_args(FAST_GC);
    let c = client();
    let before = data_bytes(&b.data_dir);
    let image = random_image(10, 3, 200 << 10);
    push_image(&c, &b.url, "my-repo", "v1", &image);
    let layer = image.layers[0].digest.clone();
    // The HEADs change nothing at all: no file, no directory, no row.
    wait_for_idle_collector(&b);
    let before_heads = state(&b);
    assert_eq!(head(&b, &format!("different-repo/blobs/{layer}")), 404);
    assert_eq!(head(&b, &format!("my-repo/blobs/{layer}")), 200);
    assert_eq!(state(&b), before_heads, "a HEAD changed the stored state");
    assert!(blob_bytes(&b.data_dir) > 600 << 10);

    assert_eq!(
        delete(&b, &format!("my-repo/manifests/{}", image.digest)),
        202
    );
    wait_for(30, "blob bytes to be reclaimed", || {
        blob_bytes(&b.data_dir) == 0
    });
    wait_for(30, "my-repo to leave the catalog", || {
        c.get(b.v2("_catalog")).send().unwrap().text().unwrap() == r#"{"repositories":[]}"#
    });
    assert_eq!(
        data_bytes(&b.data_dir),
        before,
        "files left: {:?}",
        snapshot(&b.data_dir)
    );
    wait_for_idle_collector(&b);
    let before_heads = state(&b);
    assert_eq!(head(&b, &format!("different-repo/blobs/{layer}")), 404);
    assert_eq!(head(&b, &format!("my-repo/blobs/{layer}")), 404);
    assert_eq!(state(&b), before_heads, "a HEAD changed the stored state");
    let dump = metadata_dump(&b.metadata_path());
    assert!(!dump.contains("different-repo"));
    assert!(!dump.contains(&layer), "metadata still names the layer");
    assert!(snapshot(&b.data_dir)
        .keys()
        .all(|k| !k.contains("different-repo")));
    assert!(metric(&b, "berth_gc_bytes_reclaimed_total") >= (600 << 10) as f64);
}

/// The seed scenario with real clients: skopeo pushes and deletes.
#[test]
fn seed_scenario_with_skopeo() {
    if !have_tool("skopeo") {
        return;
    }
    let b = Berth::start_with_args(FAST_GC);
    let before = data_bytes(&b.data_dir);
    let image = random_image(11, 2, 300 << 10);
    let layout = tempfile::tempdir().unwrap();
    write_oci_layout(layout.path(), &[("v1", &image)]);
    let dest = format!("docker://{}/my-repo:v1", b.addr);
    let src = format!("oci:{}:v1", layout.path().display());
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false", &src, &dest])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layer = image.layers[1].digest.clone();
    assert_eq!(head(&b, &format!("my-repo/blobs/{layer}")), 200);
    assert_eq!(head(&b, &format!("different-repo/blobs/{layer}")), 404);
    let pushed = (data_bytes(&b.data_dir), blob_bytes(&b.data_dir));

    let out = std::process::Command::new("skopeo")
        .args(["delete", "--tls-verify=false", &dest])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(30, "the image's bytes to go", || {
        blob_bytes(&b.data_dir) == 0
    });
    wait_for(30, "the data directory to shrink back", || {
        data_bytes(&b.data_dir) == before
    });
    eprintln!(
        "seed scenario: data dir {before} bytes before the push, {} after it ({} of blobs), \
         {} after skopeo delete and GC (metadata.db excluded)",
        pushed.0,
        pushed.1,
        data_bytes(&b.data_dir)
    );
    assert_eq!(head(&b, &format!("different-repo/blobs/{layer}")), 404);
    assert!(!metadata_dump(&b.metadata_path()).contains("different-repo"));
}

/// Shared layers: deleting the image from one repository keeps every byte
/// the other needs; deleting it from the second frees them.
#[test]
fn shared_layers_live_until_the_last_reference() {
    let b = Berth::start_with_args(FAST_GC);
    let c = client();
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let shared: Vec<Blob> = (0..2).map(|_| random_layer(&mut rng, 100 << 10)).collect();
    let mut a_layers = shared.clone();
    a_layers.push(random_layer(&mut rng, 50 << 10));
    let a = image_from_layers(a_layers, 1);
    let mut b_layers = shared.clone();
    b_layers.push(random_layer(&mut rng, 60 << 10));
    let img_b = image_from_layers(b_layers, 2);
    push_image(&c, &b.url, "one", "t", &a);
    push_image(&c, &b.url, "two", "t", &img_b);

    assert_eq!(delete(&b, &format!("one/manifests/{}", a.digest)), 202);
    let b_bytes: u64 = img_b.blobs().map(|x| x.bytes.len() as u64).sum();
    wait_for(30, "image one's own blobs to go", || {
        blob_bytes(&b.data_dir) == b_bytes
    });
    pull_and_verify(&c, &b.url, "two", "t");
    for s in &shared {
        assert_eq!(head(&b, &format!("two/blobs/{}", s.digest)), 200);
        assert_eq!(head(&b, &format!("one/blobs/{}", s.digest)), 404);
    }

    assert_eq!(delete(&b, &format!("two/manifests/{}", img_b.digest)), 202);
    wait_for(30, "every byte to go", || blob_bytes(&b.data_dir) == 0);
}

/// Uploads that no manifest names expire after the grace period, and a
/// blob DELETE is collected too.
#[test]
fn unreferenced_uploads_expire_after_grace() {
    let b = Berth::start_with_args(FAST_GC);
    let c = client();
    let blob = Blob::new("application/octet-stream", vec![7u8; 10_000]);
    push_blob(&c, &b.url, "loose", &blob);
    assert_eq!(head(&b, &format!("loose/blobs/{}", blob.digest)), 200);
    wait_for(30, "the unreferenced upload to expire", || {
        blob_bytes(&b.data_dir) == 0
    });
    assert_eq!(head(&b, &format!("loose/blobs/{}", blob.digest)), 404);

    let blob2 = Blob::new("application/octet-stream", vec![8u8; 10_000]);
    push_blob(&c, &b.url, "loose", &blob2);
    assert_eq!(delete(&b, &format!("loose/blobs/{}", blob2.digest)), 202);
    wait_for(30, "the unlinked blob to go", || {
        blob_bytes(&b.data_dir) == 0
    });
}

/// Referrers go with their subject; untagged manifests stay by default.
#[test]
fn referrers_follow_their_subject() {
    let b = Berth::start_with_args(FAST_GC);
    let c = client();
    let image = random_image(13, 1, 10 << 10);
    push_image(&c, &b.url, "signed", "v1", &image);
    let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
    let sig = Blob::new("application/octet-stream", b"signature".to_vec());
    push_blob(&c, &b.url, "signed", &empty);
    push_blob(&c, &b.url, "signed", &sig);
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": empty.descriptor(),
        "layers": [sig.descriptor()],
        "subject": { "mediaType": OCI_MANIFEST, "digest": image.digest, "size": image.manifest.len() },
    }))
    .unwrap();
    let rdigest = crate::common::sha256(&referrer);
    put_manifest(&c, &b.url, "signed", &rdigest, OCI_MANIFEST, &referrer);
    // Untagged but its subject lives: kept well past the grace period.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(head(&b, &format!("signed/manifests/{rdigest}")), 200);

    assert_eq!(
        delete(&b, &format!("signed/manifests/{}", image.digest)),
        202
    );
    wait_for(30, "the referrer to follow its subject", || {
        head(&b, &format!("signed/manifests/{rdigest}")) == 404
    });
    wait_for(30, "all bytes to go", || blob_bytes(&b.data_dir) == 0);
}

/// Grace period of the race below.
const RACE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a manifest in `repo` names `digest`, read from the metadata
/// beside the running server.
fn named_in(db: &Path, repo: &str, digest: &str) -> bool {
    use rusqlite::OptionalExtension;
    db_at(db)
        .query_row(
            "SELECT 1 FROM manifest_refs r JOIN repositories p ON p.id = r.repo_id
             WHERE p.name = ?1 AND r.target = ?2",
            [repo, digest],
            |_| Ok(()),
        )
        .optional()
        .unwrap()
        .is_some()
}

/// Push `img` as clients do when they check first: a layer whose HEAD
/// answers 200 is not uploaded. Only layers that a manifest in `repo` names
/// right after the HEAD are skipped: the registry promises those stay for
/// the grace period (a layer held only by an upload whose grace period is
/// ending may go any moment). Asserts the manifest push succeeds unless
/// the grace period since the first skipped HEAD is over, in which case it
/// pushes the image whole.
fn push_skipping_known(c: &Client, url: &str, db: &Path, repo: &str, tag: &str, img: &Image) {
    let mut first_skip = None;
    for l in &img.layers {
        let r = c
            .head(format!("{url}/v2/{repo}/blobs/{}", l.digest))
            .send()
            .unwrap();
        let told = std::time::Instant::now();
        if r.status().as_u16() == 200 && named_in(db, repo, &l.digest) {
            first_skip.get_or_insert(told);
        } else {
            push_blob(c, url, repo, l);
        }
    }
    push_blob(c, url, repo, &img.config);
    let (status, body) = try_put_manifest(c, url, repo, tag, OCI_MANIFEST, &img.manifest);
    if status != 201 {
        let late = first_skip.is_some_and(|t| t.elapsed() >= RACE_GRACE);
        assert!(
            late,
            "a push that skipped layers the registry said it had failed within the grace period: {status} {body}"
        );
        push_image(c, url, repo, tag, img);
    }
}

/// Push `img` mounting its layers from `from` (uploading those the mount
/// cannot serve). Asserts the manifest push succeeds within the grace
/// period of the mounts.
fn push_mounting(c: &Client, url: &str, repo: &str, from: &str, tag: &str, img: &Image) {
    let started = std::time::Instant::now();
    for l in &img.layers {
        let r = c
            .post(format!(
                "{url}/v2/{repo}/blobs/uploads/?mount={}&from={from}",
                l.digest
            ))
            .send()
            .unwrap();
        match r.status().as_u16() {
            201 => {}
            202 => {
                let loc = r.headers()["location"].to_str().unwrap();
                let r = c
                    .put(format!("{url}{loc}?digest={}", l.digest))
                    .body(l.bytes.clone())
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
            }
            s => panic!("mount: {s}"),
        }
    }
    push_blob(c, url, repo, &img.config);
    let (status, body) = try_put_manifest(c, url, repo, tag, OCI_MANIFEST, &img.manifest);
    if status != 201 {
        assert!(
            started.elapsed() >= RACE_GRACE,
            "a push of mounted layers failed within the grace period: {status} {body}"
        );
        push_image(c, url, repo, tag, img);
    }
}

/// The race: writers push images sharing layers into several repositories
/// (uploading every layer, skipping layers a HEAD says are there, or
/// mounting them from another repository) while others delete tags and
/// manifests and move tags, with the collector running continuously and a
/// zero review delay. Every push succeeds (those that skipped or mounted
/// layers too, within the grace period); afterwards every tagged image
/// pulls with verified digests, and once the grace period has passed the
/// stored blobs are exactly those still referenced: no leak, no loss.
/// `BERTH_RACE_ROUNDS` runs it longer (default: a short CI run, fixed seed).
#[test]
fn gc_racing_pushes_and_deletes_loses_nothing_and_leaks_nothing() {
    let rounds: usize = std::env::var("BERTH_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    // Untagged manifests are collected at once, so tag deletes and moves
    // free layers too, and the shared layers are freed and re-pushed over
    // and over while other writers push them.
    let cfg = tempfile::tempdir().unwrap();
    let cfg_path = cfg.path().join("race.toml");
    std::fs::write(&cfg_path, "[gc]\nuntagged_after = \"0s\"\n").unwrap();
    let b = Berth::start_with_args(&[
        "--config",
        cfg_path.to_str().unwrap(),
        "--gc-grace",
        &format!("{}s", RACE_GRACE.as_secs()),
        "--gc-interval",
        "5ms",
        "--gc-delay",
        "0s",
    ]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0xBE27);
    let pool: Vec<Blob> = (0..8).map(|_| random_layer(&mut rng, 20 << 10)).collect();
    let repos = ["race/a", "race/b", "race/c"];
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let (url, pool, db) = (b.url.clone(), pool.clone(), b.metadata_path());
            std::thread::spawn(move || {
                let c = client();
                let mut rng = rand::rngs::StdRng::seed_from_u64(w);
                for i in 0..rounds {
                    let repo = repos[rng.gen_range(0..repos.len())];
                    let tag = format!("t{}", rng.gen_range(0..4));
                    match rng.gen_range(0..14) {
                        // Push an image of 1-3 shared layers (moving the
                        // tag): every layer, or skipping those a HEAD says
                        // are there, or mounting them from another
                        // repository.
                        0..=7 => {
                            let n = rng.gen_range(1..=3);
                            let layers = (0..n)
                                .map(|_| pool[rng.gen_range(0..pool.len())].clone())
                                .collect();
                            let img = image_from_layers(layers, w * 1000 + i as u64);
                            match rng.gen_range(0..3) {
                                0 => push_image(&c, &url, repo, &tag, &img),
                                1 => push_skipping_known(&c, &url, &db, repo, &tag, &img),
                                _ => {
                                    let from = repos[rng.gen_range(0..repos.len())];
                                    push_mounting(&c, &url, repo, from, &tag, &img)
                                }
                            }
                        }
                        // Delete a tag.
                        8..=10 => {
                            let _ = c
                                .delete(format!("{url}/v2/{repo}/manifests/{tag}"))
                                .send()
                                .unwrap();
                        }
                        // Delete whatever the tag points at, by digest.
                        _ => {
                            let r = c
                                .head(format!("{url}/v2/{repo}/manifests/{tag}"))
                                .header("accept", OCI_MANIFEST)
                                .send()
                                .unwrap();
                            if let Some(d) = r.headers().get("docker-content-digest") {
                                let d = d.to_str().unwrap().to_string();
                                let s = c
                                    .delete(format!("{url}/v2/{repo}/manifests/{d}"))
                                    .send()
                                    .unwrap()
                                    .status();
                                assert!(s.as_u16() == 202 || s.as_u16() == 404, "{s}");
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let c = client();
    let mut tagged = 0;
    for repo in repos {
        let r = c.get(b.v2(&format!("{repo}/tags/list"))).send().unwrap();
        if r.status().as_u16() != 200 {
            continue;
        }
        let tags: serde_json::Value = r.json().unwrap();
        for t in tags["tags"].as_array().unwrap() {
            pull_and_verify(&c, &b.url, repo, t.as_str().unwrap());
            tagged += 1;
        }
    }
    // Past the grace period, once the collector is idle, storage holds
    // exactly what the remaining manifests name.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    wait_for(60, "storage to equal the referenced blobs", || {
        let (want, bytes) = referenced(&b.metadata_path());
        stored_digests(&b.data_dir) == want && blob_bytes(&b.data_dir) == bytes
    });
    let (want, bytes) = referenced(&b.metadata_path());
    let reclaimed = metric(&b, "berth_gc_blobs_reclaimed_total");
    eprintln!(
        "race: {} rounds x 4 writers; {reclaimed} blobs reclaimed during the run; {tagged} tags pull intact; \
         {} blobs ({bytes} bytes) stored = referenced",
        rounds,
        want.len()
    );
    assert!(reclaimed > 0.0, "the collector never ran into the writers");
    assert_scrub_clean(&["--data-dir", b.data_dir.to_str().unwrap()]);
}

/// A config file for the maintenance commands with an hour's grace
/// period: files planted two hours old are past it, files written during
/// the test are not, however slow the machine.
fn hour_grace_config(dir: &Path) -> String {
    config_file(dir, "hour.toml", "[gc]\ngrace = \"1h\"\n")
}

/// A config file for the maintenance commands with a short grace period.
fn short_grace_config(dir: &Path) -> String {
    config_file(dir, "gc.toml", "[gc]\ngrace = \"1s\"\n")
}

/// kill -9 in the middle of a push and in the middle of collection; the
/// next start accepts the state, scrub finds the store clean, and after the
/// grace period `berth gc` leaves nothing unreferenced. The interrupted
/// monolithic push is an upload session like any other: its staged bytes
/// go when the session expires (here after 1 s).
#[test]
fn kill_9_during_push_and_gc_leaves_a_clean_store() {
    let cfg = tempfile::tempdir().unwrap();
    let cfg = config_file(cfg.path(), "expiry.toml", "[gc]\nupload_expiry = \"1s\"\n");
    let mut b = Berth::start_with_args(&[
        "--config",
        &cfg,
        "--gc-grace",
        "1s",
        "--gc-interval",
        "20ms",
    ]);
    let c = client();
    // Many small images, then delete them all so the collector is busy.
    let mut images = Vec::new();
    for i in 0..30 {
        let img = random_image(100 + i, 2, 4 << 10);
        push_image(&c, &b.url, "crash", &format!("t{i}"), &img);
        images.push(img);
    }
    let keep = random_image(99, 2, 8 << 10);
    push_image(&c, &b.url, "keep", "v1", &keep);
    // A monolithic push streaming when the kill comes.
    let url = b.v2("crash/blobs/uploads/?digest=sha256:0000000000000000000000000000000000000000000000000000000000000000");
    let slow = std::thread::spawn(move || {
        struct Slow(u32);
        impl std::io::Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Ok(0);
                }
                self.0 -= 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
                let n = buf.len().min(64 << 10);
                buf[..n].fill(1);
                Ok(n)
            }
        }
        let body = reqwest::blocking::Body::sized(Slow(200), 200 * (64 << 10));
        let _ = client().post(url).body(body).send();
    });
    for img in &images {
        assert_eq!(delete(&b, &format!("crash/manifests/{}", img.digest)), 202);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    b.kill9();
    let _ = slow.join();
    b.restart();

    let data = b.data_dir.to_str().unwrap().to_string();
    assert_scrub_clean(&["--data-dir", &data]);
    pull_and_verify(&c, &b.url, "keep", "v1");

    std::thread::sleep(std::time::Duration::from_millis(1200));
    let cfg = short_grace_config(&b.data_dir);
    let out = berth_cli(&["gc", "--config", &cfg, "--data-dir", &data]);
    assert!(
        out.status.success(),
        "gc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keep_bytes: u64 = keep.blobs().map(|x| x.bytes.len() as u64).sum();
    wait_for(30, "only the kept image's bytes to remain", || {
        blob_bytes(&b.data_dir) == keep_bytes
    });
    wait_for(30, "the interrupted push's staged bytes to go", || {
        std::fs::read_dir(b.data_dir.join("uploads"))
            .unwrap()
            .count()
            == 0
    });
    pull_and_verify(&c, &b.url, "keep", "v1");
    assert_scrub_clean(&["--data-dir", &data]);
}

/// scrub finds a blob whose bytes were changed at rest; --repair marks it
/// so reads fail closed; pushing the blob again repairs it.
#[test]
fn scrub_detects_corruption_and_reads_fail_closed() {
    let b = Berth::start();
    let c = client();
    let image = random_image(14, 1, 64 << 10);
    push_image(&c, &b.url, "rot", "v1", &image);
    let layer = &image.layers[0];
    let path = blob_file(&b.data_dir, &layer.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let data = b.data_dir.to_str().unwrap().to_string();
    let (code, report) = scrub_json(&["--data-dir", &data]);
    assert_eq!(code, Some(1));
    assert_eq!(report["corrupt_blobs"], serde_json::json!([layer.digest]));

    let out = berth_cli(&["scrub", "--repair", "--data-dir", &data]);
    assert_eq!(out.status.code(), Some(1));
    let r = c
        .get(b.v2(&format!("rot/blobs/{}", layer.digest)))
        .send()
        .unwrap();
    // Not served, and unknown to HEAD, so a client pushes it again (skopeo,
    // docker and containerd HEAD first and give up on anything but 404).
    assert_eq!(
        r.status().as_u16(),
        404,
        "a corrupt blob must not be served"
    );
    assert_eq!(head(&b, &format!("rot/blobs/{}", layer.digest)), 404);

    push_blob(&c, &b.url, "rot", layer);
    pull_and_verify(&c, &b.url, "rot", "v1");
    assert_scrub_clean(&["--data-dir", &data]);
}

/// du reports stored bytes once and what the repositories would take
/// without dedupe; gc --dry-run lists what would go and changes nothing.
#[test]
fn du_and_dry_run() {
    let b = Berth::start_with_args(&["--gc-grace", "1h"]);
    let c = client();
    let image = random_image(15, 2, 32 << 10);
    push_image(&c, &b.url, "d1", "v1", &image);
    push_image(&c, &b.url, "d2", "v1", &image);
    let total: u64 = image.blobs().map(|x| x.bytes.len() as u64).sum();
    let data = b.data_dir.to_str().unwrap().to_string();
    let out = berth_cli(&["du", "--json", "--data-dir", &data]);
    assert!(out.status.success());
    let du: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(du["stored_bytes"], total);
    assert_eq!(du["undeduplicated_bytes"], 2 * total);
    assert_eq!(du["repositories"].as_array().unwrap().len(), 2);
    let text = berth_cli(&["du", "--data-dir", &data]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("saved by dedupe"));

    // Unreferenced but within grace: nothing to reclaim yet.
    assert_eq!(delete(&b, &format!("d1/manifests/{}", image.digest)), 202);
    assert_eq!(delete(&b, &format!("d2/manifests/{}", image.digest)), 202);
    let cfg = short_grace_config(&b.data_dir);
    let before = snapshot(&b.data_dir.join("blobs"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = berth_cli(&[
        "gc",
        "--dry-run",
        "--json",
        "--config",
        &cfg,
        "--data-dir",
        &data,
    ]);
    assert!(out.status.success());
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dry["reclaimable_bytes"], total);
    assert_eq!(
        snapshot(&b.data_dir.join("blobs")),
        before,
        "dry run changed storage"
    );
}

/// An index of `children`.
fn index_of(children: &[&Image]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .map(|i| serde_json::json!({ "mediaType": OCI_MANIFEST, "digest": i.digest, "size": i.manifest.len() }))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }))
    .unwrap()
}

/// Push an image's blobs, and its manifest by digest (untagged), as
/// `skopeo copy --all` and `docker buildx` push the platform images of a
/// multi-platform image.
fn push_untagged(c: &Client, url: &str, repo: &str, image: &Image) {
    for blob in image.blobs() {
        push_blob(c, url, repo, blob);
    }
    put_manifest(c, url, repo, &image.digest, OCI_MANIFEST, &image.manifest);
}

fn head_manifest(b: &Berth, repo: &str, reference: &str) -> u16 {
    let url = b.v2(&format!("{repo}/manifests/{reference}"));
    crate::common::status(&client(), reqwest::Method::HEAD, &url)
}

/// Deleting a multi-platform index frees its platform images with the
/// default policy (untagged manifests kept): the index was their reference.
/// Their blobs go after them and the data directory shrinks back; a
/// platform image that still has a tag stays, with its blobs. (The
/// children used to stay forever, and so did every byte.)
#[test]
fn deleting_an_index_frees_its_platform_images() {
    let b = Berth::start_with_args(FAST_GC);
    let c = client();
    let before = data_bytes(&b.data_dir);
    let amd64 = random_image(20, 2, 50 << 10);
    let arm64 = random_image(21, 1, 60 << 10);
    let tagged = random_image(22, 1, 30 << 10);
    push_untagged(&c, &b.url, "multi", &amd64);
    push_untagged(&c, &b.url, "multi", &arm64);
    push_image(&c, &b.url, "multi", "kept", &tagged);
    let index = index_of(&[&amd64, &arm64, &tagged]);
    put_manifest(&c, &b.url, "multi", "v1", OCI_INDEX, &index);
    let index_digest = crate::common::sha256(&index);
    let tagged_bytes: u64 = tagged.blobs().map(|x| x.bytes.len() as u64).sum();

    assert_eq!(delete(&b, &format!("multi/manifests/{index_digest}")), 202);
    wait_for(60, "the untagged platform images' bytes to go", || {
        blob_bytes(&b.data_dir) == tagged_bytes
    });
    for image in [&amd64, &arm64] {
        assert_eq!(head_manifest(&b, "multi", &image.digest), 404);
    }
    pull_and_verify(&c, &b.url, "multi", "kept");

    assert_eq!(
        delete(&b, &format!("multi/manifests/{}", tagged.digest)),
        202
    );
    wait_for(60, "every byte to go", || blob_bytes(&b.data_dir) == 0);
    wait_for(60, "the repository to leave the catalog", || {
        c.get(b.v2("_catalog")).send().unwrap().text().unwrap() == r#"{"repositories":[]}"#
    });
    wait_for(30, "the data directory to shrink back", || {
        data_bytes(&b.data_dir) == before
    });
}

/// With `gc.untagged_after` set, untagged manifests are collected, but
/// never the children of a tagged index nor a referrer of a live subject;
/// once the index loses its tag it goes, and its children and referrer go
/// with it.
#[test]
fn untagged_policy_spares_children_of_tagged_indexes_and_live_referrers() {
    let cfg = tempfile::tempdir().unwrap();
    let cfg = config_file(
        cfg.path(),
        "untagged.toml",
        "[gc]\nuntagged_after = \"0s\"\ngrace = \"1s\"\ninterval = \"100ms\"\n",
    );
    let b = Berth::start_with_args(&["--config", &cfg]);
    let c = client();
    let a = random_image(40, 1, 20 << 10);
    let bb = random_image(41, 1, 20 << 10);
    push_image(&c, &b.url, "m", "ta", &a);
    push_image(&c, &b.url, "m", "tb", &bb);
    let index = index_of(&[&a, &bb]);
    let index_digest = crate::common::sha256(&index);
    put_manifest(&c, &b.url, "m", "v1", OCI_INDEX, &index);
    for t in ["ta", "tb"] {
        assert_eq!(delete(&b, &format!("m/manifests/{t}")), 202);
    }
    // An untagged referrer of the (tagged) index.
    let empty = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
    push_blob(&c, &b.url, "m", &empty);
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": empty.descriptor(),
        "layers": [],
        "subject": { "mediaType": OCI_INDEX, "digest": index_digest, "size": index.len() },
    }))
    .unwrap();
    let rdigest = crate::common::sha256(&referrer);
    put_manifest(&c, &b.url, "m", &rdigest, OCI_MANIFEST, &referrer);
    // A loose untagged image, pushed last: once it is collected, every
    // review queued before it has run.
    let loose = random_image(42, 1, 10 << 10);
    push_untagged(&c, &b.url, "m", &loose);
    wait_for(60, "the loose untagged image to be collected", || {
        head_manifest(&b, "m", &loose.digest) == 404
    });
    for d in [&a.digest, &bb.digest, &rdigest, &index_digest] {
        assert_eq!(head_manifest(&b, "m", d), 200, "{d} was collected");
    }

    assert_eq!(delete(&b, "m/manifests/v1"), 202);
    wait_for(60, "the index, its children and its referrer to go", || {
        [&a.digest, &bb.digest, &rdigest, &index_digest]
            .iter()
            .all(|d| head_manifest(&b, "m", d) == 404)
    });
    wait_for(60, "every byte to go", || blob_bytes(&b.data_dir) == 0);
}

/// A writer that links a blob under review takes it off the review queue
/// in the same transaction: a blob deleted from a repository (reviewed in
/// 2 s) and mounted into it again, or uploaded into it again, right away
/// is no longer queued, and is there after the review time.
#[test]
fn relinking_a_queued_blob_takes_it_off_the_queue() {
    let b = Berth::start_with_args(&["--gc-delay", "2s", "--gc-interval", "100ms"]);
    let c = client();
    let mounted = Blob::new("application/octet-stream", vec![3u8; 5000]);
    let pushed = Blob::new("application/octet-stream", vec![4u8; 6000]);
    push_blob(&c, &b.url, "a", &mounted);
    push_blob(&c, &b.url, "b", &mounted);
    push_blob(&c, &b.url, "a", &pushed);
    for blob in [&mounted, &pushed] {
        assert_eq!(delete(&b, &format!("a/blobs/{}", blob.digest)), 202);
        assert_eq!(queued(&b, Some("blob"), Some(&blob.digest)), 1);
    }
    let r = c
        .post(b.v2(&format!("a/blobs/uploads/?mount={}&from=b", mounted.digest)))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(queued(&b, Some("blob"), Some(&mounted.digest)), 0);
    push_blob(&c, &b.url, "a", &pushed);
    assert_eq!(queued(&b, Some("blob"), Some(&pushed.digest)), 0);

    std::thread::sleep(std::time::Duration::from_millis(2500));
    for blob in [&mounted, &pushed] {
        let got = c
            .get(b.v2(&format!("a/blobs/{}", blob.digest)))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(got.as_ref(), &blob.bytes[..]);
    }
}

/// Abandoned upload sessions expire `gc.upload_expiry` after their last
/// write, with their staged bytes; the session is then unknown.
#[test]
fn abandoned_upload_sessions_expire_with_their_bytes() {
    let cfg = tempfile::tempdir().unwrap();
    let cfg = config_file(
        cfg.path(),
        "expiry.toml",
        "[gc]\nupload_expiry = \"1s\"\ninterval = \"100ms\"\n",
    );
    let b = Berth::start_with_args(&["--config", &cfg]);
    let c = client();
    let r = c.post(b.v2("abandoned/blobs/uploads/")).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let loc = format!("{}{}", b.url, r.headers()["location"].to_str().unwrap());
    let r = c
        .patch(&loc)
        .header("content-range", "0-9999")
        .body(vec![5u8; 10_000])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let staged = snapshot(&b.data_dir.join("uploads"));
    assert_eq!(staged.values().map(|v| v.0).sum::<u64>(), 10_000);

    wait_for(30, "the session's staged bytes to go", || {
        snapshot(&b.data_dir.join("uploads")).is_empty()
    });
    assert_eq!(c.get(&loc).send().unwrap().status().as_u16(), 404);
    let uploads: i64 = db(&b)
        .query_row("SELECT COUNT(*) FROM uploads", [], |r| r.get(0))
        .unwrap();
    assert_eq!(uploads, 0);
}

/// The sweep (here run by `berth gc`) removes files that no metadata names
/// once they are older than the grace period: an orphan blob copy and the
/// staging file of an upload that has no session, as a crash leaves them.
/// Young unnamed files, the staging of a live session however long ago it
/// was written, and every named blob stay.
#[test]
fn sweep_removes_old_orphans_and_keeps_young_ones() {
    let b = Berth::start();
    let c = client();
    let image = random_image(50, 1, 20 << 10);
    push_image(&c, &b.url, "keep", "v1", &image);
    // A live session, last written two hours ago.
    let r = c.post(b.v2("keep/blobs/uploads/")).send().unwrap();
    let loc = format!("{}{}", b.url, r.headers()["location"].to_str().unwrap());
    let id = r.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_string();
    let session_bytes = vec![6u8; 1000];
    let r = c.patch(&loc).body(session_bytes.clone()).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    set_age(&b.data_dir.join("uploads").join(&id), 7200);
    // Unnamed files, old and young.
    let (old_blob, _) = plant_orphan(&b.data_dir, "oldorphan", 700);
    let (young_blob, _) = plant_orphan(&b.data_dir, "youngorphan", 700);
    let uploads = b.data_dir.join("uploads");
    let (old_staging, young_staging) = (uploads.join("oldcrash"), uploads.join("youngcrash"));
    for p in [&old_staging, &young_staging] {
        std::fs::write(p, vec![8u8; 300]).unwrap();
    }
    set_age(&old_blob, 7200);
    set_age(&old_staging, 7200);

    let data = b.data_dir.to_str().unwrap().to_string();
    let cfg = hour_grace_config(&b.data_dir);
    let out = berth_cli(&["gc", "--json", "--config", &cfg, "--data-dir", &data]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["orphan_files_removed"], 2, "{report}");
    assert_eq!(report["orphan_bytes_removed"], 1000, "{report}");
    assert!(!old_blob.exists() && !old_staging.exists());
    assert!(young_blob.exists() && young_staging.exists());
    assert!(
        uploads.join(&id).exists(),
        "a live session's staging was swept"
    );
    pull_and_verify(&c, &b.url, "keep", "v1");
    let d = crate::common::sha256(&session_bytes);
    let r = c.put(format!("{loc}?digest={d}")).send().unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

/// A monolithic push whose client stalls for longer than the grace period
/// while the sweep runs stores exactly its bytes. The sweep never removes
/// the staging file of an upload in progress, however old (it used to: a
/// monolithic upload had no session row, so its staging looked like a
/// crash's leftover, and the push then published an empty blob).
#[test]
fn a_stalled_monolithic_push_survives_the_sweep() {
    let cfg = tempfile::tempdir().unwrap();
    let cfg = config_file(
        cfg.path(),
        "sweep.toml",
        "[gc]\ngrace = \"1s\"\nsweep_interval = \"1s\"\ninterval = \"100ms\"\n",
    );
    let b = Berth::start_with_args(&["--config", &cfg]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(60);
    let mut data = vec![0u8; 200_000];
    rng.fill(&mut data[..]);
    let digest = crate::common::sha256(&data);
    let uploads = b.data_dir.join("uploads");
    // While the client stalls: once its staging file is older than the
    // grace period, plant an old unnamed file and wait for a sweep to take
    // it. That sweep saw the stalled upload's staging too.
    let pause = {
        let uploads = uploads.clone();
        move || {
            wait_for(30, "the upload's staging file", || {
                std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0) == 1
            });
            std::thread::sleep(std::time::Duration::from_millis(1500));
            let decoy = uploads.join("decoy");
            std::fs::write(&decoy, b"left by a crash").unwrap();
            set_age(&decoy, 7200);
            wait_for(30, "a sweep", || !decoy.exists());
        }
    };
    let body =
        reqwest::blocking::Body::sized(Paused::new(data.clone(), 1000, pause), data.len() as u64);
    let r = client()
        .post(b.v2(&format!("slow/blobs/uploads/?digest={digest}")))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    let got = client()
        .get(b.v2(&format!("slow/blobs/{digest}")))
        .send()
        .unwrap();
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(crate::common::sha256(&got.bytes().unwrap()), digest);
}

/// Each digest is stored once for every repository, so a copy that lost
/// its bytes must not stay broken for all of them: pushing the digest again
/// (here into another repository) replaces a copy that is missing or short,
/// and every repository then serves the right bytes. (A re-push used to be
/// linked to the broken copy as a duplicate.)
#[test]
fn pushing_a_digest_again_replaces_a_broken_copy() {
    let b = Berth::start();
    let c = client();
    for (i, damage) in ["truncate", "remove"].into_iter().enumerate() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(70 + i as u64);
        let mut bytes = vec![0u8; 50_000];
        rng.fill(&mut bytes[..]);
        let blob = Blob::new("application/octet-stream", bytes);
        let (first, second) = (format!("first-{i}"), format!("second-{i}"));
        push_blob(&c, &b.url, &first, &blob);
        let path = blob_file(&b.data_dir, &blob.digest);
        match damage {
            "truncate" => std::fs::write(&path, &blob.bytes[..10]).unwrap(),
            _ => std::fs::remove_file(&path).unwrap(),
        }
        let r = c
            .get(b.v2(&format!("{first}/blobs/{}", blob.digest)))
            .send()
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            500,
            "{damage}: a broken copy was served"
        );

        push_blob(&c, &b.url, &second, &blob);
        for repo in [&first, &second] {
            let r = c
                .get(b.v2(&format!("{repo}/blobs/{}", blob.digest)))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{damage}: {repo}");
            assert_eq!(
                r.bytes().unwrap().as_ref(),
                &blob.bytes[..],
                "{damage}: {repo}"
            );
        }
    }
    assert_scrub_clean(&["--data-dir", b.data_dir.to_str().unwrap()]);
}

/// A client that HEADs a layer (200: an image in the repository names it),
/// skips uploading it, and pushes its manifest after that image was
/// deleted succeeds within the grace period: the link's grace period
/// restarts when the last manifest naming the blob goes. (With no review
/// delay the link used to go at once, and the push failed with
/// MANIFEST_BLOB_UNKNOWN.)
#[test]
fn head_and_skip_survives_the_image_being_deleted() {
    let grace = std::time::Duration::from_secs(5);
    let b = Berth::start_with_args(&[
        "--gc-grace",
        "5s",
        "--gc-interval",
        "50ms",
        "--gc-delay",
        "0s",
    ]);
    let c = client();
    let x = random_image(80, 2, 10 << 10);
    push_image(&c, &b.url, "r", "x", &x);
    // Past the upload's grace period: only the manifest holds the layers.
    wait_for_idle_collector(&b);
    for l in &x.layers {
        assert_eq!(head(&b, &format!("r/blobs/{}", l.digest)), 200);
    }
    let told = std::time::Instant::now();
    let reviewed = metric(&b, "berth_gc_items_reviewed_total");
    assert_eq!(delete(&b, &format!("r/manifests/{}", x.digest)), 202);
    wait_for(
        30,
        "the collector to review what the delete released",
        || metric(&b, "berth_gc_items_reviewed_total") >= reviewed + 3.0,
    );
    // Another image on the same layers: the client pushes only its config.
    let y = image_from_layers(x.layers.clone(), 81);
    push_blob(&c, &b.url, "r", &y.config);
    let (status, body) = try_put_manifest(&c, &b.url, "r", "y", OCI_MANIFEST, &y.manifest);
    if told.elapsed() < grace {
        assert_eq!(status, 201, "{body}");
        pull_and_verify(&c, &b.url, "r", "y");
    } else {
        eprintln!("SKIP: the machine took longer than the grace period");
    }
}

/// scrub finds a blob whose bytes are gone; --repair marks it so reads fail
/// closed; pushing the blob again repairs it. (Missing blobs used to be
/// reported but never marked.)
#[test]
fn scrub_finds_missing_blobs_and_a_re_push_repairs_them() {
    let b = Berth::start();
    let c = client();
    let image = random_image(90, 1, 32 << 10);
    push_image(&c, &b.url, "lost", "v1", &image);
    let layer = &image.layers[0];
    std::fs::remove_file(blob_file(&b.data_dir, &layer.digest)).unwrap();

    let data = b.data_dir.to_str().unwrap().to_string();
    let (code, report) = scrub_json(&["--data-dir", &data]);
    assert_eq!(code, Some(1));
    assert_eq!(report["missing_blobs"], serde_json::json!([layer.digest]));
    assert_eq!(report["corrupt_blobs"], serde_json::json!([]));

    let (code, report) = scrub_json(&["--repair", "--data-dir", &data]);
    assert_eq!(code, Some(1));
    assert_eq!(report["marked_corrupt"], 1, "{report}");
    assert_eq!(head(&b, &format!("lost/blobs/{}", layer.digest)), 404);

    push_blob(&c, &b.url, "lost", layer);
    pull_and_verify(&c, &b.url, "lost", "v1");
    assert_scrub_clean(&["--data-dir", &data]);
}

/// scrub reports unnamed files older than the grace period as orphans and
/// younger ones as in flight; --repair removes only the orphans.
#[test]
fn scrub_reports_orphans_and_repair_removes_only_old_ones() {
    let b = Berth::start();
    let c = client();
    let image = random_image(91, 1, 8 << 10);
    push_image(&c, &b.url, "o", "v1", &image);
    let (old, old_key) = plant_orphan(&b.data_dir, "old", 123);
    let (young, _) = plant_orphan(&b.data_dir, "young", 123);
    set_age(&old, 7200);

    let data = b.data_dir.to_str().unwrap().to_string();
    let cfg = hour_grace_config(&b.data_dir);
    let (code, report) = scrub_json(&["--config", &cfg, "--data-dir", &data]);
    assert_eq!(code, Some(1));
    assert_eq!(report["orphans"], serde_json::json!([[old_key, 123]]));
    assert_eq!(report["in_flight"], 1);
    assert!(old.exists(), "scrub without --repair removed a file");

    let out = berth_cli(&[
        "scrub",
        "--repair",
        "--json",
        "--config",
        &cfg,
        "--data-dir",
        &data,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["orphans_removed"], 1, "{report}");
    assert!(!old.exists() && young.exists());
    assert_scrub_clean(&["--config", &cfg, "--data-dir", &data]);
    pull_and_verify(&c, &b.url, "o", "v1");
}

/// A manifest whose stored body no longer hashes to its digest is never
/// served (reads fail closed), scrub reports it, and pushing the manifest
/// again repairs it.
#[test]
fn a_rotten_manifest_fails_closed_and_a_re_push_repairs_it() {
    let b = Berth::start();
    let c = client();
    let image = random_image(92, 1, 8 << 10);
    push_image(&c, &b.url, "rot", "v1", &image);
    let mut rotten = image.manifest.clone();
    rotten[10] ^= 0x20;
    let conn = rusqlite::Connection::open(b.metadata_path()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let n = conn
        .execute(
            "UPDATE manifest_bodies SET body = ?2 WHERE digest = ?1",
            rusqlite::params![image.digest, rotten],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    // Twice each: a rotten body is never remembered, so the second read
    // (a cache hit if it had been) fails closed as well.
    for reference in ["v1", image.digest.as_str(), "v1", image.digest.as_str()] {
        assert_eq!(head_manifest(&b, "rot", reference), 500, "{reference}");
    }
    let data = b.data_dir.to_str().unwrap().to_string();
    let (code, report) = scrub_json(&["--data-dir", &data]);
    assert_eq!(code, Some(1));
    assert_eq!(
        report["corrupt_manifests"],
        serde_json::json!([image.digest])
    );

    put_manifest(&c, &b.url, "rot", "v1", OCI_MANIFEST, &image.manifest);
    assert_eq!(pull_and_verify(&c, &b.url, "rot", "v1"), image.manifest);
    assert_scrub_clean(&["--data-dir", &data]);
}

/// The maintenance commands refuse a data directory that does not exist (a
/// mistyped path) instead of creating an empty store there and reporting
/// on it.
#[test]
fn maintenance_commands_refuse_a_missing_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    for cmd in ["gc", "scrub", "du"] {
        let out = berth_cli(&[cmd, "--data-dir", missing.to_str().unwrap()]);
        assert!(!out.status.success(), "{cmd}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("does not exist"), "{cmd}: {stderr}");
        assert!(!missing.exists(), "{cmd} created the data directory");
    }
}

/// A repository whose last manifest named nothing (an empty index) leaves
/// the catalog when that manifest is deleted: no blob review would ever
/// come for it.
#[test]
fn deleting_a_repositorys_last_manifest_removes_the_repository() {
    let b = Berth::start_with_args(FAST_GC);
    let c = client();
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    put_manifest(&c, &b.url, "emptyidx", "v1", OCI_INDEX, index);
    let catalog =
        || -> serde_json::Value { c.get(b.v2("_catalog")).send().unwrap().json().unwrap() };
    assert_eq!(catalog()["repositories"], serde_json::json!(["emptyidx"]));
    let digest = crate::common::sha256(index);
    assert_eq!(delete(&b, &format!("emptyidx/manifests/{digest}")), 202);
    assert_eq!(catalog()["repositories"], serde_json::json!([]));
    let tags = c.get(b.v2("emptyidx/tags/list")).send().unwrap();
    assert_eq!(tags.status().as_u16(), 404);
}
