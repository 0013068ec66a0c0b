//! Repository names, tags and manifest references, validated against the
//! grammar of the OCI distribution spec. Validated values can never contain
//! `..`, `/` at the ends, or characters outside the grammar, so they are safe
//! to use as database keys and in `Location` headers.

use super::digest::Digest;
use std::fmt;

/// Longest repository name accepted (many clients cap it at 255 as well).
pub const MAX_NAME_LEN: usize = 255;

/// A repository name such as `library/ubuntu` or `a/b/c`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

impl RepoName {
    /// Validate `s` against
    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
    pub fn parse(s: &str) -> Option<RepoName> {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return None;
        }
        s.split('/')
            .all(component_ok)
            .then(|| RepoName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One path component: alphanumeric runs joined by `.`, `_`, `__` or `-+`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && is_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        let sep_start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > sep_start);
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Option<Tag> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'_');
        let rest_ok = b
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-');
        (first_ok && rest_ok && b.len() <= 128).then(|| Tag(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a manifest URL names: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    /// A reference is a digest when it contains `:` (tags cannot), else a tag.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.contains(':') {
            s.parse()
                .map(Reference::Digest)
                .map_err(|e| ReferenceError::Digest(e.to_string()))
        } else {
            Tag::parse(s).map(Reference::Tag).ok_or(ReferenceError::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid digest: {0}")]
    Digest(String),
    #[error("invalid tag: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    Tag,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_spec_names() {
        for n in [
            "a",
            "library/ubuntu",
            "a/b/c",
            "my-repo",
            "my--repo",
            "a.b",
            "a_b",
            "a__b",
            "0abc/9",
            "blobs/manifests",
        ] {
            assert!(RepoName::parse(n).is_some(), "{n}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for n in [
            "", "A", "a/", "/a", "a//b", "..", "a/../b", "a/./b", "-a", "a-", "a___b", "a..b",
            "a._b", "a b", "a%2fb", "_catalog", "ü",
        ] {
            assert!(RepoName::parse(n).is_none(), "{n}");
        }
        assert!(RepoName::parse(&"a".repeat(256)).is_none());
        assert!(RepoName::parse(&"a".repeat(255)).is_some());
    }

    #[test]
    fn tags() {
        assert!(Tag::parse("latest").is_some());
        assert!(Tag::parse("_x").is_some());
        assert!(Tag::parse("v1.0-rc_1").is_some());
        assert!(Tag::parse(&"a".repeat(128)).is_some());
        assert!(Tag::parse(&"a".repeat(129)).is_none());
        assert!(Tag::parse("").is_none());
        assert!(Tag::parse(".x").is_none());
        assert!(Tag::parse("-x").is_none());
        assert!(Tag::parse("a/b").is_none());
        assert!(Tag::parse("..").is_none());
    }

    #[test]
    fn references() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        let d = Digest::sha256_of(b"x");
        assert_eq!(
            Reference::parse(d.as_str()),
            Ok(Reference::Digest(d.clone()))
        );
        assert!(Reference::parse("sha256:zz").is_err());
        assert!(Reference::parse("a/b").is_err());
    }
}
