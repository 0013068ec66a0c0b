//! The design invariants that a single request sequence can show: reads
//! never write (1), repository scope (2), one copy (3), crash-safe upload
//! sessions (6), streaming (flat memory).

use crate::common::image::{pull_and_verify, push_blob, push_image, random_image, Blob};
use crate::common::{blob_bytes, client, metadata_dump, sha256, snapshot, status, Berth, Paused};
use std::io::Read;

/// Everything observable about the stored state.
fn state(b: &Berth) -> (std::collections::BTreeMap<String, (u64, String)>, String) {
    (snapshot(&b.data_dir), metadata_dump(&b.metadata_path()))
}

/// The seed scenario: after a push to `my-repo`, a HEAD of one of its layers
/// in `different-repo` answers 404 and changes nothing at all: no file, no
/// directory, no metadata row; `different-repo` never appears in the
/// catalog. The same for every other read endpoint, in both repositories.
#[test]
fn reads_never_write_and_never_cross_repositories() {
    let b = Berth::start();
    let c = client();
    let image = random_image(1, 2, 64 << 10);
    push_image(&c, &b.url, "my-repo", "v1", &image);
    let layer = &image.layers[0].digest;
    // An upload session in progress, so its status read is covered too.
    let session = c.post(b.v2("my-repo/blobs/uploads/")).send().unwrap();
    let location = session.headers()["location"].to_str().unwrap().to_string();

    let before = state(&b);
    use reqwest::Method as M;
    let other = "different-repo";
    for _ in 0..3 {
        assert_eq!(
            status(&c, M::HEAD, &b.v2(&format!("{other}/blobs/{layer}"))),
            404
        );
        assert_eq!(
            status(&c, M::GET, &b.v2(&format!("{other}/blobs/{layer}"))),
            404
        );
        assert_eq!(
            status(
                &c,
                M::HEAD,
                &b.v2(&format!("{other}/manifests/{}", image.digest))
            ),
            404
        );
        assert_eq!(
            status(
                &c,
                M::GET,
                &b.v2(&format!("{other}/manifests/{}", image.digest))
            ),
            404
        );
        assert_eq!(
            status(&c, M::GET, &b.v2(&format!("{other}/manifests/v1"))),
            404
        );
        assert_eq!(
            status(&c, M::GET, &b.v2(&format!("{other}/tags/list"))),
            404
        );
        assert_eq!(
            status(
                &c,
                M::GET,
                &b.v2(&format!("{other}/referrers/{}", image.digest))
            ),
            200
        );
        assert_eq!(
            status(
                &c,
                M::GET,
                &format!("{}{location}", b.url).replace("my-repo", other)
            ),
            404
        );

        assert_eq!(status(&c, M::GET, &b.v2("")), 200);
        assert_eq!(status(&c, M::GET, &b.v2("_catalog")), 200);
        assert_eq!(status(&c, M::GET, &b.v2("_catalog?n=1")), 200);
        assert_eq!(
            status(&c, M::HEAD, &b.v2(&format!("my-repo/blobs/{layer}"))),
            200
        );
        pull_and_verify(&c, &b.url, "my-repo", "v1");
        let ranged = c
            .get(b.v2(&format!("my-repo/blobs/{layer}")))
            .header("range", "bytes=0-9")
            .send()
            .unwrap();
        assert_eq!(ranged.status().as_u16(), 206);
        assert_eq!(status(&c, M::HEAD, &b.v2("my-repo/manifests/v1")), 200);
        assert_eq!(
            status(
                &c,
                M::GET,
                &b.v2(&format!("my-repo/manifests/{}", image.digest))
            ),
            200
        );
        assert_eq!(status(&c, M::GET, &b.v2("my-repo/tags/list?n=1")), 200);
        assert_eq!(
            status(
                &c,
                M::GET,
                &b.v2(&format!("my-repo/referrers/{}", image.digest))
            ),
            200
        );
        // A referrers page after a cursor, filtered.
        assert_eq!(
            status(
                &c,
                M::GET,
                &b.v2(&format!(
                    "my-repo/referrers/{0}?n=1&last={0}&artifactType=a/b+json",
                    image.digest
                ))
            ),
            200
        );
        assert_eq!(status(&c, M::GET, &format!("{}{location}", b.url)), 204);
        // Unknown things in the right repository.
        let missing = sha256(b"not stored anywhere");
        assert_eq!(
            status(&c, M::HEAD, &b.v2(&format!("my-repo/blobs/{missing}"))),
            404
        );
        assert_eq!(status(&c, M::GET, &b.v2("my-repo/manifests/nope")), 404);
    }
    let after = state(&b);
    assert_eq!(before.0, after.0, "the data directory changed during reads");
    assert_eq!(before.1, after.1, "the metadata changed during reads");

    let catalog: serde_json::Value = c.get(b.v2("_catalog")).send().unwrap().json().unwrap();
    assert_eq!(catalog["repositories"], serde_json::json!(["my-repo"]));
    assert!(!after.1.contains(other), "metadata mentions {other}");
    assert!(after.0.keys().all(|k| !k.contains(other)));
}

/// One copy: the same image pushed to ten repositories stores its blob
/// bytes once, and each repository serves it.
#[test]
fn same_image_in_ten_repositories_is_stored_once() {
    let b = Berth::start();
    let c = client();
    let image = random_image(2, 3, 100 << 10);
    push_image(&c, &b.url, "repo-0", "latest", &image);
    let first = blob_bytes(&b.data_dir);
    let expected: u64 = image.blobs().map(|b| b.bytes.len() as u64).sum();
    assert_eq!(first, expected);
    for i in 1..10 {
        push_image(&c, &b.url, &format!("repo-{i}"), "latest", &image);
    }
    assert_eq!(
        blob_bytes(&b.data_dir),
        first,
        "pushing the same blobs again added bytes"
    );
    for i in 0..10 {
        pull_and_verify(&c, &b.url, &format!("repo-{i}"), "latest");
    }
    let dump = metadata_dump(&b.metadata_path());
    let bodies = dump.split("== manifest_bodies\n").nth(1).unwrap();
    let bodies = bodies.split("== ").next().unwrap();
    assert_eq!(
        bodies.lines().count(),
        1,
        "manifest bytes stored more than once"
    );
}

/// Two clients uploading the same digest at the same time into different
/// repositories both succeed, and one copy is stored.
#[test]
fn concurrent_uploads_of_one_digest_both_succeed() {
    let b = Berth::start();
    let mut data = vec![0u8; 4 << 20];
    rand::Rng::fill(&mut rand::thread_rng(), &mut data[..]);
    let blob = Blob::new("application/octet-stream", data);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (url, blob) = (b.url.clone(), blob.clone());
            std::thread::spawn(move || {
                let c = client();
                // Chunked: open, two PATCHes, close.
                let r = c
                    .post(format!("{url}/v2/race-{i}/blobs/uploads/"))
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 202);
                let mut loc = format!("{url}{}", r.headers()["location"].to_str().unwrap());
                let half = blob.bytes.len() / 2;
                for (start, chunk) in [(0, &blob.bytes[..half]), (half, &blob.bytes[half..])] {
                    let r = c
                        .patch(&loc)
                        .header(
                            "content-range",
                            format!("{start}-{}", start + chunk.len() - 1),
                        )
                        .header("content-type", "application/octet-stream")
                        .body(chunk.to_vec())
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 202);
                    loc = format!("{url}{}", r.headers()["location"].to_str().unwrap());
                }
                let r = c
                    .put(format!("{loc}?digest={}", blob.digest))
                    .send()
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(blob_bytes(&b.data_dir), blob.bytes.len() as u64);
    let c = client();
    for i in 0..4 {
        let got = c
            .get(b.v2(&format!("race-{i}/blobs/{}", blob.digest)))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(sha256(&got), blob.digest);
    }
    // Nothing is left in staging.
    assert_eq!(
        std::fs::read_dir(b.data_dir.join("uploads"))
            .unwrap()
            .count(),
        0
    );
}

/// Restart survival: kill -9 in the middle of a chunked upload, start
/// again, read the session's progress, finish it, and get the right bytes.
#[test]
fn chunked_upload_survives_kill_9() {
    let mut b = Berth::start();
    let c = client();
    let mut data = vec![0u8; 3 << 20];
    rand::Rng::fill(&mut rand::thread_rng(), &mut data[..]);
    let digest = sha256(&data);
    let r = c.post(b.v2("survivor/blobs/uploads/")).send().unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let first = 1 << 20;
    let r = c
        .patch(format!("{}{loc}", b.url))
        .header("content-range", format!("0-{}", first - 1))
        .body(data[..first].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);

    b.kill9();
    b.restart();

    let r = c.get(format!("{}{loc}", b.url)).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.headers()["range"], format!("0-{}", first - 1).as_str());
    // Resume where the registry says, stream the rest, and close.
    let r = c
        .patch(format!("{}{loc}", b.url))
        .header("content-range", format!("{first}-{}", data.len() - 1))
        .body(data[first..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let r = c
        .put(format!("{}{loc}?digest={digest}", b.url))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let got = c
        .get(b.v2(&format!("survivor/blobs/{digest}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(sha256(&got), digest);
}

/// Everything committed before a kill -9 is there after restart, and a
/// manifest's blobs are durable with it.
#[test]
fn committed_pushes_survive_kill_9() {
    let mut b = Berth::start();
    let c = client();
    let image = random_image(3, 2, 50 << 10);
    push_image(&c, &b.url, "durable", "v1", &image);
    b.kill9();
    b.restart();
    pull_and_verify(&c, &b.url, "durable", "v1");
}

/// A body read lazily from a generator, so the test itself stays small.
struct Pattern {
    left: u64,
    state: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize & !7;
        let n = if n == 0 {
            self.left.min(buf.len() as u64) as usize
        } else {
            n
        };
        for b in buf[..n].chunks_mut(8) {
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            b.copy_from_slice(&self.state.to_le_bytes()[..b.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Streaming: a 512 MiB push and pull keep the server's peak memory far
/// below the blob's size (no body is buffered whole).
/// `BERTH_BIG_BLOB_MIB=4096` runs it with a 4 GiB layer (too slow for CI).
#[test]
fn large_blobs_stream_with_flat_memory() {
    let b = Berth::start();
    let c = client();
    let mib: u64 = std::env::var("BERTH_BIG_BLOB_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let size: u64 = mib << 20;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut p = Pattern {
        left: size,
        state: 7,
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = p.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut hasher, &buf[..n]);
    }
    let digest = format!("sha256:{}", hex::encode(sha2::Digest::finalize(hasher)));
    let body = reqwest::blocking::Body::sized(
        Pattern {
            left: size,
            state: 7,
        },
        size,
    );
    let r = c
        .post(b.v2(&format!("big/blobs/uploads/?digest={digest}")))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let mut resp = c.get(b.v2(&format!("big/blobs/{digest}"))).send().unwrap();
    let mut total = 0u64;
    loop {
        let n = resp.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    assert_eq!(total, size);
    let peak_mib = b.peak_rss_kib() / 1024;
    eprintln!(
        "peak RSS {peak_mib} MiB after a {} MiB push and pull",
        size >> 20
    );
    assert!(
        peak_mib < 96,
        "peak RSS {peak_mib} MiB for a {} MiB blob",
        size >> 20
    );
}

/// SIGTERM stops the server cleanly (exit status 0).
#[test]
fn sigterm_exits_cleanly() {
    let mut b = Berth::start();
    let c = client();
    push_blob(
        &c,
        &b.url,
        "x",
        &Blob::new("application/octet-stream", b"abc".to_vec()),
    );
    let st = b.stop().unwrap();
    assert!(st.success(), "{st:?}\n{}", b.logs());
    assert!(b.logs().contains("shutting down"));
}

/// Graceful shutdown: SIGTERM and SIGINT (Ctrl-C) each let a request in
/// flight finish (a push whose body is still streaming when the signal
/// comes is stored, and is there after a restart), then the server exits
/// with status 0; an idle keep-alive connection does not hold it up.
#[test]
fn sigterm_and_sigint_let_in_flight_requests_finish() {
    for sig in ["TERM", "INT"] {
        let mut b = Berth::start();
        let data = crate::conformance::random_bytes(31, 3 << 20);
        let digest = sha256(&data);
        let (go, wait) = std::sync::mpsc::channel();
        let pause = move || {
            let _ = wait.recv();
        };
        let body = reqwest::blocking::Body::sized(
            Paused::new(data.clone(), 1 << 20, pause),
            data.len() as u64,
        );
        let url = b.v2(&format!("drain/blobs/uploads/?digest={digest}"));
        let push =
            std::thread::spawn(move || client().post(url).body(body).send().map(|r| r.status()));
        let uploads = b.data_dir.join("uploads");
        crate::common::wait_for(30, "the push to start streaming", || {
            std::fs::read_dir(&uploads).map(|d| d.count()).unwrap_or(0) > 0
        });
        b.signal(sig);
        crate::common::wait_for(30, "the server to start shutting down", || {
            b.logs().contains("shutting down")
        });
        go.send(()).unwrap();
        let status = push
            .join()
            .unwrap()
            .expect("the in-flight push was cut off");
        assert_eq!(status.as_u16(), 201, "SIG{sig}");
        let exit = b.wait().unwrap();
        assert!(exit.success(), "SIG{sig}: {exit:?}\n{}", b.logs());

        b.restart();
        let c = client();
        let got = c
            .get(b.v2(&format!("drain/blobs/{digest}")))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(sha256(&got), digest, "SIG{sig}");
        // An idle keep-alive connection (this client's pool keeps it) does
        // not keep the server from exiting.
        assert_eq!(c.get(b.v2("")).send().unwrap().status().as_u16(), 200);
        b.signal(sig);
        crate::common::wait_for(
            60,
            "the server to exit with an idle connection open",
            || b.try_wait().is_some(),
        );
        drop(c);
    }
}

/// A request body that trickles in: 100 kB pieces, a pause before each.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(std::time::Duration::from_millis(20));
        let n = buf.len().min(self.data.len() - self.pos).min(100_000);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A PATCH racing the closing PUT of its session (a client retrying, two
/// clients sharing an upload URL) never changes what the PUT publishes:
/// every 201 is followed by a GET of exactly the pushed bytes, and the
/// digest is never stored broken. (The PUT used to let go of the session
/// before publishing it; the PATCH then truncated the very file being
/// renamed into the blob store, and the digest's one copy was broken for
/// every repository.)
#[test]
fn patch_racing_the_closing_put_never_corrupts_the_blob() {
    let b = Berth::start();
    let c = client();
    let mut created = 0;
    for round in 0..20u64 {
        let data = crate::conformance::random_bytes(1000 + round, 300_000);
        let digest = sha256(&data);
        let r = c.post(b.v2("race/blobs/uploads/")).send().unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let loc = format!("{}{}", b.url, r.headers()["location"].to_str().unwrap());
        let put = {
            let (url, data) = (format!("{loc}?digest={digest}"), data.clone());
            std::thread::spawn(move || {
                let len = data.len() as u64;
                let body = reqwest::blocking::Body::sized(Trickle { data, pos: 0 }, len);
                client()
                    .put(url)
                    .body(body)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        };
        let patch = {
            let url = loc.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(10));
                client()
                    .patch(url)
                    .body(b"Z".to_vec())
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        };
        let (put, patch) = (put.join().unwrap(), patch.join().unwrap());
        // Either the PATCH came first (its byte is in the upload, so the
        // PUT's digest does not match), or the PUT closed the session.
        assert!(
            (patch == 202 && put == 400) || (patch == 404 && put == 201),
            "round {round}: PATCH {patch}, PUT {put}"
        );
        let got = c.get(b.v2(&format!("race/blobs/{digest}"))).send().unwrap();
        if put == 201 {
            created += 1;
            assert_eq!(got.status().as_u16(), 200, "round {round}");
            assert_eq!(sha256(&got.bytes().unwrap()), digest, "round {round}");
        } else {
            assert_eq!(got.status().as_u16(), 404, "round {round}");
        }
    }
    assert!(created > 0, "no PUT ever won the race");
}

/// The request log's `bytes` is what the response body carries: a HEAD,
/// which sends no body, logs 0 (it used to log the Content-Length it
/// announces), and a GET of the same blob logs its size.
#[test]
fn request_log_counts_the_bytes_of_the_body() {
    let b = Berth::start();
    let c = client();
    let blob = Blob::new("application/octet-stream", vec![9u8; 1000]);
    push_blob(&c, &b.url, "logged", &blob);
    let url = b.v2(&format!("logged/blobs/{}", blob.digest));
    assert_eq!(c.head(&url).send().unwrap().status().as_u16(), 200);
    assert_eq!(c.get(&url).send().unwrap().bytes().unwrap().len(), 1000);
    let line = |method: &str| {
        b.logs()
            .lines()
            .find(|l| {
                l.contains("berth::request")
                    && l.contains(&format!(" method={method} "))
                    && l.contains(&blob.digest)
            })
            .map(str::to_owned)
    };
    crate::common::wait_for(30, "both requests in the log", || {
        line("HEAD").is_some() && line("GET").is_some()
    });
    assert!(
        line("HEAD").unwrap().contains(" bytes=0 "),
        "{:?}",
        line("HEAD")
    );
    assert!(
        line("GET").unwrap().contains(" bytes=1000 "),
        "{:?}",
        line("GET")
    );
}
