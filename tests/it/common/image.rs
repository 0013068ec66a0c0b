//! Test content: random images made here (no network), pushed over HTTP or
//! written as OCI image layouts for skopeo and friends.

use super::{sha256, OCI_INDEX, OCI_MANIFEST};
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use std::path::Path;

pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256(&bytes),
            bytes,
        }
    }

    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.bytes.len(),
        })
    }
}

#[derive(Clone, Debug)]
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// The manifest's bytes, exactly as pushed.
    pub manifest: Vec<u8>,
    pub digest: String,
}

impl Image {
    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

/// A gzip (level 0) tar with one file of `size` random bytes: what
/// skopeo and podman push without recompressing.
pub fn random_layer(rng: &mut impl Rng, size: usize) -> Blob {
    let mut data = vec![0u8; size];
    rng.fill(&mut data[..]);
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    let name = format!("file-{:08x}", rng.gen::<u32>());
    tar.append_data(&mut header, name, &data[..]).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let bytes = gz.finish().unwrap();
    Blob::new(LAYER_GZIP, bytes)
}

fn diff_id(layer: &Blob) -> String {
    let mut d = flate2::read::GzDecoder::new(&layer.bytes[..]);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut d, &mut out).unwrap();
    sha256(&out)
}

/// A runnable-shaped image: `layers` random layers of `layer_size` bytes
/// and a config whose rootfs lists them. The same seed gives the same image.
pub fn random_image(seed: u64, layers: usize, layer_size: usize) -> Image {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let layers: Vec<Blob> = (0..layers)
        .map(|_| random_layer(&mut rng, layer_size))
        .collect();
    image_from_layers(layers, seed)
}

pub fn image_from_layers(layers: Vec<Blob>, seed: u64) -> Image {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": [format!("SEED={seed}")] },
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(diff_id).collect::<Vec<_>>() },
    });
    let config = Blob::new(CONFIG, serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    Image {
        digest: sha256(&manifest),
        config,
        layers,
        manifest,
    }
}

/// Push one blob with a monolithic POST; panics unless 201.
pub fn push_blob(client: &Client, url: &str, repo: &str, blob: &Blob) {
    let resp = client
        .post(format!(
            "{url}/v2/{repo}/blobs/uploads/?digest={}",
            blob.digest
        ))
        .header("content-type", "application/octet-stream")
        .body(blob.bytes.clone())
        .send()
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        201,
        "push blob {}: {:?}",
        blob.digest,
        resp.text()
    );
}

/// Push an image's blobs and manifest under `tag`.
pub fn push_image(client: &Client, url: &str, repo: &str, tag: &str, image: &Image) {
    for b in image.blobs() {
        push_blob(client, url, repo, b);
    }
    put_manifest(client, url, repo, tag, OCI_MANIFEST, &image.manifest);
}

pub fn put_manifest(
    client: &Client,
    url: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) {
    let (status, text) = try_put_manifest(client, url, repo, reference, media_type, body);
    assert_eq!(status, 201, "put manifest: {text}");
}

/// PUT a manifest; returns the status and the response body.
pub fn try_put_manifest(
    client: &Client,
    url: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> (u16, String) {
    let resp = client
        .put(format!("{url}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(body.to_vec())
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

/// Pull an image by tag and check every digest; panics on any mismatch.
pub fn pull_and_verify(client: &Client, url: &str, repo: &str, tag: &str) -> Vec<u8> {
    let resp = client
        .get(format!("{url}/v2/{repo}/manifests/{tag}"))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{repo}:{tag}");
    let manifest = resp.bytes().unwrap().to_vec();
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let mut descs = vec![m["config"].clone()];
    descs.extend(m["layers"].as_array().cloned().unwrap_or_default());
    for d in descs {
        let digest = d["digest"].as_str().unwrap();
        let bytes = client
            .get(format!("{url}/v2/{repo}/blobs/{digest}"))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(sha256(&bytes), digest, "blob {digest} of {repo}:{tag}");
    }
    manifest
}

/// Write an OCI image layout at `dir` holding `images` under their tags.
pub fn write_oci_layout(dir: &Path, images: &[(&str, &Image)]) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut manifests = Vec::new();
    for (tag, image) in images {
        for b in image.blobs() {
            std::fs::write(blobs.join(&b.digest[7..]), &b.bytes).unwrap();
        }
        std::fs::write(blobs.join(&image.digest[7..]), &image.manifest).unwrap();
        manifests.push(serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": image.digest,
            "size": image.manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }));
    }
    let index =
        serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}
