//! Registry errors, named by the error codes of the OCI distribution spec.
//! The HTTP layer maps each kind to a status code; the core never sees HTTP.

use std::fmt;

/// The spec's error codes, plus `Internal` for faults that are ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unsupported,
    /// No credentials, or credentials that do not verify (401).
    Unauthorized,
    Denied,
    TooManyRequests,
    /// The upload offset does not match: a `Content-Range` that does not start
    /// where the session ends. Reported as 416 with the current range.
    RangeInvalid,
    /// A manifest or request body over the configured limit (413).
    TooLarge,
    /// A byte range outside the blob (416).
    RangeNotSatisfiable,
    Internal,
}

impl Code {
    /// The spec's identifier, as sent in the `code` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid | Code::RangeInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid | Code::TooLarge | Code::RangeNotSatisfiable => "SIZE_INVALID",
            Code::Unsupported => "UNSUPPORTED",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Internal => "UNKNOWN",
        }
    }
}

/// A registry error: a code, a message for people, and optional detail.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: Code,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// For `RangeInvalid`: bytes the session holds, for the `Range` header.
    pub upload_size: Option<u64>,
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            detail: None,
            upload_size: None,
        }
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Error {
        self.detail = Some(detail);
        self
    }

    pub fn internal(context: &str, err: impl fmt::Display) -> Error {
        tracing::error!(%err, "{context}");
        Error::new(Code::Internal, format!("internal error: {context}"))
    }

    pub fn blob_unknown(digest: impl fmt::Display) -> Error {
        Error::new(Code::BlobUnknown, "blob unknown to registry")
            .with_detail(serde_json::json!({ "digest": digest.to_string() }))
    }

    pub fn manifest_unknown(reference: impl fmt::Display) -> Error {
        Error::new(Code::ManifestUnknown, "manifest unknown")
            .with_detail(serde_json::json!({ "reference": reference.to_string() }))
    }

    pub fn upload_unknown() -> Error {
        Error::new(Code::BlobUploadUnknown, "blob upload unknown to registry")
    }

    pub fn name_unknown(name: impl fmt::Display) -> Error {
        Error::new(Code::NameUnknown, "repository name not known to registry")
            .with_detail(serde_json::json!({ "name": name.to_string() }))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
