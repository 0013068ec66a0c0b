//! Mapping `/v2/...` paths to API endpoints. Repository names contain
//! slashes, so the endpoint is recognised from the end of the path and the
//! rest is the name. Nothing here touches storage; names are validated by
//! the handlers before use.

/// An API endpoint, with the raw path parts it carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: &'a str },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: &'a str, reference: &'a str },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: &'a str, digest: &'a str },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: &'a str },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: &'a str, id: &'a str },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: &'a str, digest: &'a str },
}

/// Recognise `path` (without the query string); `None` when it is not an
/// API path.
pub fn parse(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    // Split "<name>/<a>/<b>" into name and the last two segments.
    let (head, last) = rest.rsplit_once('/')?;
    if last.is_empty() {
        // Only the upload-start endpoint ends with a slash.
        let name = head.strip_suffix("/blobs/uploads")?;
        return Some(Route::UploadStart { name });
    }
    let (name, kind) = head.rsplit_once('/')?;
    match (kind, last) {
        ("tags", "list") => Some(Route::Tags { name }),
        ("manifests", reference) => Some(Route::Manifest { name, reference }),
        ("blobs", "uploads") => Some(Route::UploadStart { name }),
        ("blobs", digest) => Some(Route::Blob { name, digest }),
        ("uploads", id) => {
            let name = name.strip_suffix("/blobs")?;
            Some(Route::Upload { name, id })
        }
        ("referrers", digest) => Some(Route::Referrers { name, digest }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_endpoint() {
        assert_eq!(parse("/v2/"), Some(Route::Base));
        assert_eq!(parse("/v2"), Some(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse("/v2/a/b/tags/list"),
            Some(Route::Tags { name: "a/b" })
        );
        assert_eq!(
            parse("/v2/a/manifests/latest"),
            Some(Route::Manifest {
                name: "a",
                reference: "latest"
            })
        );
        assert_eq!(
            parse("/v2/a/b/c/blobs/sha256:ab"),
            Some(Route::Blob {
                name: "a/b/c",
                digest: "sha256:ab"
            })
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/"),
            Some(Route::UploadStart { name: "a" })
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads"),
            Some(Route::UploadStart { name: "a" })
        );
        assert_eq!(
            parse("/v2/a/blobs/uploads/123"),
            Some(Route::Upload {
                name: "a",
                id: "123"
            })
        );
        assert_eq!(
            parse("/v2/a/referrers/sha256:ab"),
            Some(Route::Referrers {
                name: "a",
                digest: "sha256:ab"
            })
        );
    }

    #[test]
    fn names_may_contain_endpoint_words() {
        assert_eq!(
            parse("/v2/x/blobs/blobs/sha256:ab"),
            Some(Route::Blob {
                name: "x/blobs",
                digest: "sha256:ab"
            })
        );
        assert_eq!(
            parse("/v2/manifests/manifests/manifests"),
            Some(Route::Manifest {
                name: "manifests",
                reference: "manifests"
            })
        );
        assert_eq!(
            parse("/v2/tags/list/tags/list"),
            Some(Route::Tags { name: "tags/list" })
        );
    }

    #[test]
    fn rejects_non_api_paths() {
        assert_eq!(parse("/"), None);
        assert_eq!(parse("/v3/"), None);
        assert_eq!(parse("/v2x"), None);
        assert_eq!(parse("/v2/a"), None);
        assert_eq!(parse("/v2/a/unknown/x"), None);
        assert_eq!(parse("/v2/a/blobs/"), None);
    }
}
