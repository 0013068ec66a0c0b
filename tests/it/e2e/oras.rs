//! oras-py: push an artifact whose `subject` is an image already in the
//! repository; the referrers API lists it with its artifactType, through
//! oras-py and over plain HTTP; deleting it with oras-py removes it from the
//! listing. A large file pushed in chunks comes back intact. The Python side
//! is tests/e2e/oras_referrer.py.

use super::{get_blobs, get_manifest, have_python_module, requests_since, run};
use crate::common::image::{push_image, random_image};
use crate::common::{sha256, Berth, OCI_INDEX, OCI_MANIFEST};
use rand::{Rng, SeedableRng};
use serde_json::Value;

const ARTIFACT_TYPE: &str = "application/vnd.berth.e2e.sbom.config+json";
const FILE_TYPE: &str = "application/vnd.berth.e2e.sbom+json";
const REPO: &str = "e2e/oras/app";

fn script() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/oras_referrer.py")
}

/// GET the referrers of `subject`; asserts 200 and the index shape.
fn referrers(b: &Berth, subject: &str, query: &str) -> Vec<Value> {
    let resp = b
        .client()
        .get(format!(
            "{}{query}",
            b.v2(&format!("{REPO}/referrers/{subject}"))
        ))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(ct, OCI_INDEX);
    let index: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(index["mediaType"], OCI_INDEX);
    index["manifests"].as_array().unwrap().clone()
}

#[test]
fn oras_artifact_with_subject_and_referrers() {
    if !have_python_module("oras") {
        return;
    }
    let b = Berth::start();
    let dir = tempfile::tempdir().unwrap();
    let image = random_image(0x02a5, 1, 32 << 10);
    push_image(&b.client(), &b.url, REPO, "v1", &image);

    let content = format!("{{\"sbom\": \"for {}\"}}\n", image.digest);
    std::fs::write(dir.path().join("sbom.json"), &content).unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let out = dir.path().join("push.json");
    let oras = |action: &str, out: &std::path::Path| {
        let mut c = std::process::Command::new("python3");
        c.arg(script())
            .arg(action)
            .args(["--registry", &b.addr, "--repo", REPO, "--tag", "sbom"])
            .args(["--subject-digest", &image.digest])
            .args(["--subject-size", &image.manifest.len().to_string()])
            .args(["--subject-media-type", OCI_MANIFEST])
            .arg("--file")
            .arg(dir.path().join("sbom.json"))
            .args(["--file-media-type", FILE_TYPE])
            .arg("--config")
            .arg(dir.path().join("config.json"))
            .args(["--artifact-type", ARTIFACT_TYPE])
            .args(["--annotation", "org.berth.e2e=referrer"])
            .arg("--out")
            .arg(out)
            .env("HOME", dir.path())
            .env("PYTHONDONTWRITEBYTECODE", "1");
        run(&mut c);
        serde_json::from_slice::<Value>(&std::fs::read(out).unwrap()).unwrap()
    };

    // Push with a subject: berth answers 201 with OCI-Subject.
    let pushed = oras("push", &out);
    eprintln!("oras-py {}", pushed["client_version"]);
    assert_eq!(pushed["push_status"], 201);
    let headers = &pushed["push_headers"];
    assert_eq!(headers["oci-subject"], image.digest.as_str());
    let digest = headers["docker-content-digest"]
        .as_str()
        .unwrap()
        .to_string();

    // The artifact as stored: oras-py's manifest, naming our subject.
    let served = get_manifest(&b, REPO, "sbom");
    assert_eq!(served.digest, digest);
    assert_eq!(
        served.json, pushed["manifest"],
        "oras-py reads what it pushed"
    );
    assert_eq!(served.json["subject"]["digest"], image.digest.as_str());
    assert_eq!(served.json["config"]["mediaType"], ARTIFACT_TYPE);
    assert_eq!(pushed["pulled"]["sbom.json"], hex::encode(&content));
    let mut tags: Vec<String> = serde_json::from_value(pushed["tags"].clone()).unwrap();
    tags.sort();
    assert_eq!(tags, ["sbom", "v1"]);

    // Referrers, as oras-py's session saw them and over HTTP here: one
    // entry, the artifact, with the config's media type as artifactType.
    assert_eq!(pushed["referrers_status"], 200);
    let seen = pushed["referrers"]["manifests"].as_array().unwrap();
    let listed = referrers(&b, &image.digest, "");
    assert_eq!(seen, &listed);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let r = &listed[0];
    assert_eq!(r["digest"], digest.as_str());
    assert_eq!(r["mediaType"], OCI_MANIFEST);
    assert_eq!(r["size"], served.bytes.len());
    assert_eq!(r["artifactType"], ARTIFACT_TYPE);
    assert_eq!(r["annotations"]["org.berth.e2e"], "referrer");
    assert_eq!(sha256(&served.bytes), digest);
    // Filtered by artifactType.
    let filtered = referrers(
        &b,
        &image.digest,
        &format!("?artifactType={}", ARTIFACT_TYPE.replace('+', "%2B")),
    );
    assert_eq!(filtered, listed);
    assert!(referrers(&b, &image.digest, "?artifactType=application/x-other").is_empty());

    // oras-py deletes the artifact by tag; the listing empties, the subject
    // stays.
    let deleted = oras("delete", &dir.path().join("delete.json"));
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["tags"], serde_json::json!(["v1"]));
    assert_eq!(deleted["referrers"]["manifests"], serde_json::json!([]));
    assert!(referrers(&b, &image.digest, "").is_empty());
    assert_eq!(get_manifest(&b, REPO, "v1").digest, image.digest);
}

#[test]
fn oras_chunked_push_pull() {
    if !have_python_module("oras") {
        return;
    }
    let b = Berth::start();
    let dir = tempfile::tempdir().unwrap();
    let mut data = vec![0u8; 700 << 10];
    rand::rngs::StdRng::seed_from_u64(7).fill(&mut data[..]);
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let repo = "e2e/oras/chunked";
    let out = dir.path().join("push.json");
    let mark = b.log_mark();
    run(std::process::Command::new("python3")
        .arg(script())
        .arg("push")
        .args(["--registry", &b.addr, "--repo", repo, "--tag", "v1"])
        .arg("--file")
        .arg(dir.path().join("data.bin"))
        .args(["--file-media-type", "application/octet-stream"])
        .arg("--config")
        .arg(dir.path().join("config.json"))
        .args(["--artifact-type", ARTIFACT_TYPE])
        .args(["--chunk-size", &(64 << 10).to_string()])
        .arg("--out")
        .arg(&out)
        .env("HOME", dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1"));
    let pushed: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(pushed["push_status"], 201);

    // The upload went in 64 KiB PATCHes, each accepted.
    let patches: Vec<u16> = requests_since(&b, mark)
        .into_iter()
        .filter(|r| {
            r.method == "PATCH" && r.path.starts_with(&format!("/v2/{repo}/blobs/uploads/"))
        })
        .map(|r| r.status)
        .collect();
    assert!(patches.len() >= data.len() / (64 << 10), "{patches:?}");
    assert!(patches.iter().all(|s| *s == 202), "{patches:?}");

    // berth holds the bytes; oras-py pulls them back.
    let served = get_manifest(&b, repo, "v1");
    let blobs = get_blobs(&b, repo, &served);
    let layer = &served.layer_digests()[0];
    assert_eq!(layer, &sha256(&data));
    assert_eq!(blobs[layer], data);
    assert_eq!(pushed["pulled"]["data.bin"], hex::encode(&data));
}
