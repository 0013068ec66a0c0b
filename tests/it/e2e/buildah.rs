//! buildah: build an image with no RUN step (from scratch, copy, commit),
//! push it to berth, remove it, pull it back and read the file.

use super::{get_blobs, get_manifest, layer_files, run, run_text, ContainersEnv};
use crate::common::{have_tool, Berth};

#[test]
fn buildah_build_push_pull() {
    if !have_tool("buildah") {
        return;
    }
    let b = Berth::start();
    let env = ContainersEnv::new();
    let content = format!("built by buildah for berth {}\n", b.addr);
    let file = env.path("hello.txt");
    std::fs::write(&file, &content).unwrap();
    let reference = format!("{}/e2e/buildah/hello:v1", b.addr);
    let buildah = || env.cmd("buildah");

    let ctr = run_text(buildah().args(["from", "scratch"]));
    run(buildah().args(["copy", &ctr]).arg(&file).arg("/hello.txt"));
    run(buildah().args([
        "config",
        "--env",
        "MADE_BY=buildah",
        "--label",
        "e2e=berth",
        &ctr,
    ]));
    let id = run_text(buildah().args(["commit", "--quiet", &ctr, &reference]));
    run(buildah().args(["rm", &ctr]));

    let digest_file = env.path("pushed.digest");
    run(buildah()
        .args(["push", "--tls-verify=false", "--digestfile"])
        .arg(&digest_file)
        .arg(&reference));
    let pushed = std::fs::read_to_string(&digest_file)
        .unwrap()
        .trim()
        .to_string();

    // What berth holds: the manifest buildah pushed, our config, one layer
    // with our file in it.
    let served = get_manifest(&b, "e2e/buildah/hello", "v1");
    assert_eq!(served.digest, pushed);
    assert_eq!(served.config_digest(), format!("sha256:{id}"));
    let blobs = get_blobs(&b, "e2e/buildah/hello", &served);
    let config: serde_json::Value =
        serde_json::from_slice(&blobs[&served.config_digest()]).unwrap();
    assert!(config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "MADE_BY=buildah"));
    assert_eq!(config["config"]["Labels"]["e2e"], "berth");
    let layers = served.layer_digests();
    assert_eq!(layers.len(), 1);
    let files = layer_files(&blobs[&layers[0]]);
    assert_eq!(
        files.get("hello.txt").map(Vec::as_slice),
        Some(content.as_bytes())
    );

    // Remove everything local and pull back.
    run(buildah().args(["rmi", "--all", "--force"]));
    assert_eq!(run_text(buildah().args(["images", "--quiet"])), "");
    run(buildah().args(["pull", "--tls-verify=false", &reference]));
    let listed = run_text(buildah().args(["images", "--quiet", "--no-trunc"]));
    assert_eq!(listed, format!("sha256:{id}"));
    let digests = run_text(buildah().args(["images", "--digests", "--format", "{{.Digest}}"]));
    assert_eq!(digests, pushed);

    // The file, from a working container on the pulled image.
    let ctr = run_text(buildah().args(["from", &reference]));
    let mount = run_text(buildah().args(["mount", &ctr]));
    let read = std::fs::read_to_string(std::path::Path::new(&mount).join("hello.txt")).unwrap();
    run(buildah().args(["umount", &ctr]));
    run(buildah().args(["rm", &ctr]));
    run(buildah().args(["rmi", "--all", "--force"]));
    assert_eq!(read, content);
}
