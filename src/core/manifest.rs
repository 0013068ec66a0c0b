//! Manifest parsing and validation: which media type a pushed document is,
//! and which blobs, child manifests and subject it references.
//!
//! The bytes are stored and served exactly as pushed; this module only reads
//! them. Unknown fields are allowed, as the image spec requires.

use super::digest::Digest;
use super::error::{Code, Error, Result};
use base64::Engine as _;
use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest media types berth accepts on push.
pub const KNOWN_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Whether a media type names an index (a list of manifests).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// A content descriptor, as found in manifests and referrers responses.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// How a manifest uses a referenced digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    /// The config blob of an image manifest.
    Config,
    /// A layer blob that must be present in the repository.
    Layer,
    /// A layer that may live elsewhere (non-distributable, with `urls`): kept
    /// if present, not required.
    ForeignLayer,
    /// A child manifest of an index.
    Child,
}

impl RefKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RefKind::Config => "config",
            RefKind::Layer => "layer",
            RefKind::ForeignLayer => "foreign",
            RefKind::Child => "child",
        }
    }
}

/// A pushed manifest, understood.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    /// The media type it is stored and served with.
    pub media_type: String,
    /// `artifactType`, or for image manifests without one the config's media
    /// type, as the referrers API reports it.
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
    pub references: Vec<(Digest, RefKind)>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::ManifestInvalid, msg)
}

fn strip_params(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

fn is_nondistributable(media_type: &str) -> bool {
    media_type.contains(".nondistributable.")
        || media_type == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
}

/// Check a descriptor's digest, size and embedded `data`.
fn check_descriptor(d: &Descriptor, field: &str) -> Result<Digest> {
    let digest: Digest = d
        .digest
        .parse()
        .map_err(|e| invalid(format!("{field}: invalid digest {:?}: {e}", d.digest)))?;
    if d.size < 0 {
        return Err(invalid(format!("{field}: negative size")));
    }
    if d.media_type.is_empty() {
        return Err(invalid(format!("{field}: empty mediaType")));
    }
    if let Some(data) = &d.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| invalid(format!("{field}: data is not base64")))?;
        if bytes.len() as i64 != d.size || Digest::of(digest.algorithm(), &bytes) != digest {
            return Err(invalid(format!(
                "{field}: data does not match its digest and size"
            )));
        }
    }
    Ok(digest)
}

/// Parse a pushed manifest. `content_type` is the request's `Content-Type`.
pub fn parse(body: &[u8], content_type: Option<&str>) -> Result<ParsedManifest> {
    let raw: RawManifest = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "manifest is not valid JSON of the expected shape: {e}"
        ))
    })?;
    if raw.schema_version != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let header_type = content_type
        .map(strip_params)
        .filter(|t| KNOWN_TYPES.contains(t));
    let media_type = match (header_type, raw.media_type.as_deref()) {
        (Some(h), Some(b)) if h != b => {
            return Err(invalid(format!(
                "Content-Type {h} does not match the manifest's mediaType {b}"
            )))
        }
        (Some(h), _) => h.to_owned(),
        (None, Some(b)) if KNOWN_TYPES.contains(&b) => b.to_owned(),
        (None, Some(b)) => return Err(invalid(format!("unsupported manifest media type {b}"))),
        (None, None) => match content_type.map(strip_params) {
            Some(ct) if !ct.is_empty() && ct != "application/json" => {
                return Err(invalid(format!("unsupported manifest media type {ct}")))
            }
            // No type anywhere: infer an OCI type from the shape.
            _ if raw.manifests.is_some() => OCI_INDEX.to_owned(),
            _ if raw.config.is_some() => OCI_MANIFEST.to_owned(),
            _ => return Err(invalid("cannot tell the manifest's media type")),
        },
    };

    let mut references = Vec::new();
    let artifact_type = if is_index(&media_type) {
        if raw.config.is_some() || raw.layers.is_some() {
            return Err(invalid("an index has no config or layers"));
        }
        let children = raw
            .manifests
            .as_ref()
            .ok_or_else(|| invalid("index without manifests"))?;
        for (i, c) in children.iter().enumerate() {
            let d = check_descriptor(c, &format!("manifests[{i}]"))?;
            references.push((d, RefKind::Child));
        }
        raw.artifact_type.clone()
    } else {
        if raw.manifests.is_some() {
            return Err(invalid("an image manifest has no manifests field"));
        }
        let config = raw
            .config
            .as_ref()
            .ok_or_else(|| invalid("image manifest without config"))?;
        references.push((check_descriptor(config, "config")?, RefKind::Config));
        let layers = raw
            .layers
            .as_ref()
            .ok_or_else(|| invalid("image manifest without layers"))?;
        for (i, l) in layers.iter().enumerate() {
            let d = check_descriptor(l, &format!("layers[{i}]"))?;
            let kind = if is_nondistributable(&l.media_type) {
                RefKind::ForeignLayer
            } else {
                RefKind::Layer
            };
            references.push((d, kind));
        }
        raw.artifact_type
            .clone()
            .or_else(|| Some(config.media_type.clone()))
    };
    let subject = match &raw.subject {
        Some(s) => Some(check_descriptor(s, "subject")?),
        None => None,
    };
    Ok(ParsedManifest {
        media_type,
        artifact_type,
        subject,
        annotations: raw.annotations,
        references,
    })
}

/// Whether a stored manifest of `media_type` may be served to a client that
/// sent `accept` (a list of `Accept` header values). No header, or a wildcard,
/// accepts anything.
pub fn accepts(accept: &[&str], media_type: &str) -> bool {
    let mut any = false;
    for value in accept {
        for item in value.split(',') {
            let t = strip_params(item);
            if t.is_empty() {
                continue;
            }
            any = true;
            if t == media_type || t == "*/*" || t == "application/*" {
                return true;
            }
        }
    }
    !any
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(bytes: &[u8]) -> String {
        Digest::sha256_of(bytes).to_string()
    }

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":1}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":2}}]{extra}}}"#,
            d(b"c"),
            d(b"l")
        )
    }

    #[test]
    fn image_manifest_references() {
        let m = parse(image("").as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.references.len(), 2);
        assert_eq!(m.references[0].1, RefKind::Config);
        assert_eq!(
            m.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
    }

    #[test]
    fn subject_and_artifact_type() {
        let extra = format!(
            r#","artifactType":"application/x-sig","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":3}},"unknown":1"#,
            d(b"s")
        );
        let m = parse(image(&extra).as_bytes(), None).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-sig"));
        assert_eq!(m.subject.unwrap().to_string(), d(b"s"));
    }

    #[test]
    fn index_children() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5}}]}}"#,
            d(b"m")
        );
        let m = parse(body.as_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(
            m.references,
            vec![(d(b"m").parse().unwrap(), RefKind::Child)]
        );
    }

    #[test]
    fn rejects_invalid() {
        assert!(parse(b"{", None).is_err());
        assert!(parse(b"[]", None).is_err());
        assert!(parse(br#"{"schemaVersion":1}"#, None).is_err());
        // Header and body disagree.
        assert!(parse(image("").as_bytes(), Some(OCI_INDEX)).is_err());
        // Bad digest inside.
        let bad = image("").replace(&d(b"l"), "sha256:nothex");
        assert!(parse(bad.as_bytes(), None).is_err());
    }

    #[test]
    fn data_field_must_match() {
        let ok = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2,"data":"e30="}},"layers":[]}}"#,
            d(b"{}")
        );
        assert!(parse(ok.as_bytes(), None).is_ok());
        let bad = ok.replace("e30=", "e31=");
        assert!(parse(bad.as_bytes(), None).is_err());
    }

    #[test]
    fn accept_negotiation() {
        assert!(accepts(&[], OCI_MANIFEST));
        assert!(accepts(&["*/*"], OCI_MANIFEST));
        assert!(accepts(
            &[&format!("{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0.5")],
            OCI_MANIFEST
        ));
        assert!(!accepts(&[DOCKER_MANIFEST], OCI_MANIFEST));
    }
}
