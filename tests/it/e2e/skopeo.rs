//! skopeo: OCI layout in and out, list-tags, inspect, delete, and a
//! cross-repository mount when copying between two repositories; a
//! multi-platform index with `--all`.

use super::{
    get_blobs, get_manifest, layout_blob, layout_digest, manifest_status, requests_since, run,
    run_text, ContainersEnv,
};
use crate::common::image::{random_image, write_oci_layout, Image};
use crate::common::{
    blob_bytes, client, data_bytes, have_tool, sha256, wait_for, Berth, OCI_INDEX, OCI_MANIFEST,
};

#[test]
fn skopeo_copy_inspect_tags_delete_and_mount() {
    if !have_tool("skopeo") {
        return;
    }
    let b = Berth::start();
    let env = ContainersEnv::new();
    let image = random_image(0x5c0e0, 3, 200 << 10);
    let src_layout = env.path("src-layout");
    write_oci_layout(&src_layout, &[("v1", &image)]);
    let src = format!("docker://{}/e2e/skopeo/src", b.addr);

    // Push: the OCI layout into berth, unchanged.
    run(env
        .skopeo()
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", src_layout.display()))
        .arg(format!("{src}:v1")));
    let served = get_manifest(&b, "e2e/skopeo/src", "v1");
    assert_eq!(served.media_type, OCI_MANIFEST);
    assert_eq!(served.digest, image.digest, "manifest digest after push");
    assert_eq!(served.bytes, image.manifest, "manifest bytes after push");
    let blobs = get_blobs(&b, "e2e/skopeo/src", &served);
    for blob in image.blobs() {
        assert_eq!(blobs[&blob.digest], blob.bytes, "blob {}", blob.digest);
    }

    // A second tag, copied registry to registry within the repository.
    run(env
        .skopeo()
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("{src}:v1"))
        .arg(format!("{src}:v2")));

    // Pull: back out to a new OCI layout; every digest is the one we built.
    let out_layout = env.path("out-layout");
    run(env
        .skopeo()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("{src}:v1"))
        .arg(format!("oci:{}:v1", out_layout.display())));
    assert_eq!(layout_digest(&out_layout, "v1"), image.digest);
    assert_eq!(layout_blob(&out_layout, &image.digest), image.manifest);
    for blob in image.blobs() {
        assert_eq!(layout_blob(&out_layout, &blob.digest), blob.bytes);
    }

    // list-tags
    let tags: serde_json::Value = serde_json::from_slice(&run(env
        .skopeo()
        .args(["list-tags", "--tls-verify=false"])
        .arg(&src)))
    .unwrap();
    let mut listed: Vec<&str> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    listed.sort();
    assert_eq!(listed, ["v1", "v2"], "{tags}");

    // inspect --raw gives the pushed bytes; inspect reports the digest.
    let raw = run(env
        .skopeo()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("{src}:v2")));
    assert_eq!(raw, image.manifest, "inspect --raw");
    let inspected: serde_json::Value = serde_json::from_str(&run_text(
        env.skopeo()
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("{src}:v1")),
    ))
    .unwrap();
    assert_eq!(inspected["Digest"], image.digest.as_str());
    let layers: Vec<&str> = inspected["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = image.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(layers, ours);

    // Copy to a second repository: skopeo mounts the layers from the first
    // (POST ...?mount=&from= answered 201), and no blob bytes are added.
    let bytes_before = blob_bytes(&b.data_dir);
    let mark = b.log_mark();
    run(env
        .skopeo()
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("{src}:v1"))
        .arg(format!("docker://{}/e2e/skopeo/dst:v1", b.addr)));
    let requests = requests_since(&b, mark);
    let mounts = requests
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path == "/v2/e2e/skopeo/dst/blobs/uploads/" && r.status == 201
        })
        .count();
    let sessions = requests
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path == "/v2/e2e/skopeo/dst/blobs/uploads/" && r.status == 202
        })
        .count();
    assert!(
        mounts >= image.layers.len(),
        "expected the {} layers to be mounted, saw {mounts} mounts: {requests:#?}",
        image.layers.len()
    );
    // skopeo may upload the small config again; never the layers.
    assert!(sessions <= 1, "{requests:#?}");
    assert_eq!(
        blob_bytes(&b.data_dir),
        bytes_before,
        "one copy of each blob"
    );
    let dst = get_manifest(&b, "e2e/skopeo/dst", "v1");
    assert_eq!(dst.bytes, image.manifest);
    get_blobs(&b, "e2e/skopeo/dst", &dst);

    // delete: the manifest (and both its tags) go from the source repository
    // and stay in the other one.
    run(env
        .skopeo()
        .args(["delete", "--tls-verify=false"])
        .arg(format!("{src}:v1")));
    assert_eq!(manifest_status(&b, "e2e/skopeo/src", "v1"), 404);
    assert_eq!(manifest_status(&b, "e2e/skopeo/src", "v2"), 404);
    assert_eq!(manifest_status(&b, "e2e/skopeo/src", &image.digest), 404);
    let o = super::output(
        env.skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("{src}:v1")),
    );
    assert!(!o.status.success(), "inspect after delete must fail");
    let dst = get_manifest(&b, "e2e/skopeo/dst", "v1");
    assert_eq!(dst.digest, image.digest);
    get_blobs(&b, "e2e/skopeo/dst", &dst);
}

/// A multi-platform image: an index of two platform images, in an OCI
/// layout under `env` whose tag `multi` names the index (the children are
/// plain blobs there). Returns the layout, the index bytes and the images.
fn multi_platform_layout(env: &ContainersEnv) -> (std::path::PathBuf, Vec<u8>, [Image; 2]) {
    let amd64 = random_image(0x1dc0, 2, 64 << 10);
    let arm64 = random_image(0x1dc1, 1, 64 << 10);
    let platform = |image: &Image, arch: &str| {
        serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": image.digest,
            "size": image.manifest.len(),
            "platform": { "architecture": arch, "os": "linux" },
        })
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [platform(&amd64, "amd64"), platform(&arm64, "arm64")],
    }))
    .unwrap();
    let index_digest = sha256(&index);
    let layout = env.path("layout");
    write_oci_layout(&layout, &[("amd64", &amd64), ("arm64", &arm64)]);
    std::fs::write(layout.join("blobs/sha256").join(&index_digest[7..]), &index).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_INDEX,
            "digest": index_digest,
            "size": index.len(),
            "annotations": { "org.opencontainers.image.ref.name": "multi" },
        }],
    });
    std::fs::write(layout.join("index.json"), top.to_string()).unwrap();
    (layout, index, [amd64, arm64])
}

#[test]
fn skopeo_copy_all_multi_platform_index() {
    if !have_tool("skopeo") {
        return;
    }
    let b = Berth::start();
    let env = ContainersEnv::new();
    let (layout, index, [amd64, arm64]) = multi_platform_layout(&env);
    let index_digest = sha256(&index);

    let repo = "e2e/skopeo/multi";
    let dest = format!("docker://{}/{repo}:v1", b.addr);
    run(env
        .skopeo()
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(&dest));

    // berth serves the index as pushed, and both children with their blobs.
    let served = get_manifest(&b, repo, "v1");
    assert_eq!(served.media_type, OCI_INDEX);
    assert_eq!(served.bytes, index);
    for image in [&amd64, &arm64] {
        let child = get_manifest(&b, repo, &image.digest);
        assert_eq!(child.bytes, image.manifest);
        let blobs = get_blobs(&b, repo, &child);
        for blob in image.blobs() {
            assert_eq!(blobs[&blob.digest], blob.bytes);
        }
    }
    let raw = run(env
        .skopeo()
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(&dest));
    assert_eq!(raw, index);

    // Out again with --all: same index, same children.
    let out = env.path("out-all");
    run(env
        .skopeo()
        .args(["copy", "--all", "--src-tls-verify=false"])
        .arg(&dest)
        .arg(format!("oci:{}:v1", out.display())));
    assert_eq!(layout_digest(&out, "v1"), index_digest);
    for image in [&amd64, &arm64] {
        assert_eq!(layout_blob(&out, &image.digest), image.manifest);
        for blob in image.blobs() {
            assert_eq!(layout_blob(&out, &blob.digest), blob.bytes);
        }
    }

    // Without --all, skopeo resolves the index to the platform asked for.
    let out = env.path("out-arm64");
    run(env
        .skopeo()
        .args(["--override-arch", "arm64", "--override-os", "linux"])
        .args(["copy", "--src-tls-verify=false"])
        .arg(&dest)
        .arg(format!("oci:{}:arm", out.display())));
    assert_eq!(layout_digest(&out, "arm"), arm64.digest);
    assert_eq!(
        layout_blob(&out, &arm64.layers[0].digest),
        arm64.layers[0].bytes
    );
}

/// `skopeo delete` of a multi-platform image pushed with `skopeo copy
/// --all` frees every byte with the default policy (untagged manifests
/// kept): the index was its platform images' reference, so they go with
/// it, and their blobs after them. The data directory shrinks back to its
/// size before the push.
#[test]
fn skopeo_delete_of_a_multi_platform_index_frees_its_bytes() {
    if !have_tool("skopeo") {
        return;
    }
    let b = Berth::start_with_args(&["--gc-grace", "2s", "--gc-interval", "100ms"]);
    let env = ContainersEnv::new();
    let before = data_bytes(&b.data_dir);
    let (layout, _, images) = multi_platform_layout(&env);
    let repo = "e2e/skopeo/multi-delete";
    let dest = format!("docker://{}/{repo}:v1", b.addr);
    run(env
        .skopeo()
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(&dest));
    let pushed: u64 = images
        .iter()
        .flat_map(|i| i.blobs())
        .map(|x| x.bytes.len() as u64)
        .sum();
    assert_eq!(blob_bytes(&b.data_dir), pushed);

    run(env
        .skopeo()
        .args(["delete", "--tls-verify=false"])
        .arg(&dest));
    wait_for(60, "the platform images' bytes to go", || {
        blob_bytes(&b.data_dir) == 0
    });
    wait_for(60, "the repository to leave the catalog", || {
        client()
            .get(b.v2("_catalog"))
            .send()
            .unwrap()
            .text()
            .unwrap()
            == r#"{"repositories":[]}"#
    });
    wait_for(30, "the data directory to shrink back", || {
        data_bytes(&b.data_dir) == before
    });
    for image in &images {
        assert_eq!(manifest_status(&b, repo, &image.digest), 404);
    }
}
