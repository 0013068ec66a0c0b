//! podman, as root with vfs storage in a temp dir: load an image from an OCI
//! layout (no network), push it to berth, remove it, pull it back.

use super::{get_blobs, get_manifest, run, run_text, ContainersEnv};
use crate::common::have_tool;
use crate::common::image::{random_image, write_oci_layout};
use crate::common::Berth;

#[test]
fn podman_push_pull() {
    if !have_tool("podman") {
        return;
    }
    let b = Berth::start();
    let env = ContainersEnv::new();
    let image = random_image(0x9d3a, 2, 150 << 10);
    let layout = env.path("layout");
    write_oci_layout(&layout, &[("v1", &image)]);
    let config: serde_json::Value = serde_json::from_slice(&image.config.bytes).unwrap();
    let diff_ids = config["rootfs"]["diff_ids"].clone();
    // An image's ID in containers/storage is its config digest.
    let image_id = image
        .config
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    let reference = format!("{}/e2e/podman/app:v1", b.addr);
    let podman = || env.cmd("podman");
    let inspect = |what: &str| {
        run_text(
            podman()
                .args(["image", "inspect", "--format", what])
                .arg(&reference),
        )
    };

    // Into local storage from the layout, then tagged for berth.
    let pulled = run_text(
        podman()
            .arg("pull")
            .arg(format!("oci:{}:v1", layout.display())),
    );
    assert_eq!(pulled.lines().last().unwrap(), image_id);
    run(podman().args(["tag", &image_id, &reference]));

    // Push.
    let digest_file = env.path("pushed.digest");
    run(podman()
        .args(["push", "--tls-verify=false", "--digestfile"])
        .arg(&digest_file)
        .arg(&reference));
    let pushed = std::fs::read_to_string(&digest_file)
        .unwrap()
        .trim()
        .to_string();
    let served = get_manifest(&b, "e2e/podman/app", "v1");
    assert_eq!(served.digest, pushed, "berth serves what podman pushed");
    assert_eq!(served.config_digest(), image.config.digest);
    assert_eq!(served.layer_digests().len(), image.layers.len());
    let blobs = get_blobs(&b, "e2e/podman/app", &served);
    assert_eq!(blobs[&image.config.digest], image.config.bytes);
    // Whatever compression podman chose, the layers hold our tars.
    for (ours, theirs) in image.layers.iter().zip(served.layer_digests()) {
        assert_eq!(
            super::layer_files(&blobs[&theirs]),
            super::layer_files(&ours.bytes),
            "layer {theirs}"
        );
    }

    // The tag is listed (podman 4.3 prints a NAME TAG table and ignores
    // --format with --list-tags).
    let name = format!("{}/e2e/podman/app", b.addr);
    let listing = run_text(
        podman()
            .args(["search", "--list-tags", "--tls-verify=false"])
            .arg(&name),
    );
    let tags: Vec<(&str, &str)> = listing
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(n, t)| (n, t.trim()))
        .collect();
    assert_eq!(tags, [(name.as_str(), "v1")], "{listing}");

    // Remove everything local, pull back from berth.
    run(podman().args(["rmi", "--all", "--force"]));
    assert_eq!(run_text(podman().args(["images", "--quiet"])), "");
    let pulled = run_text(
        podman()
            .args(["pull", "--tls-verify=false"])
            .arg(&reference),
    );
    assert_eq!(pulled.lines().last().unwrap(), image_id);
    assert_eq!(inspect("{{.Id}}"), image_id);
    assert_eq!(inspect("{{.Digest}}"), pushed);
    assert_eq!(
        inspect("{{json .RootFS.Layers}}")
            .parse::<serde_json::Value>()
            .unwrap(),
        diff_ids
    );
    assert!(inspect("{{.RepoDigests}}").contains(&format!("{}/e2e/podman/app@{pushed}", b.addr)));
    assert!(inspect("{{.Config.Env}}").contains("SEED=40250"));
    run(podman().args(["rmi", "--all", "--force"]));
}
