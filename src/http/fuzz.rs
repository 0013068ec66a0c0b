//! Property tests of the request-parsing surface: everything a client
//! controls on the way to the core (paths, names, tags, references,
//! digests, `Range` and `Content-Range`, `Authorization`, token scopes,
//! manifests). Each parser must never panic on any input, accept only what
//! the grammar allows, and accept everything the grammar allows.
//!
//! Cases per property: `BERTH_FUZZ_CASES` (2,000 by default, a few seconds
//! in CI; raise it for a longer local run).

use crate::auth::token::Scope;
use crate::core::digest::Digest;
use crate::core::manifest;
use crate::core::names::{Reference, RepoName, Tag};
use crate::core::range::ByteRange;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("BERTH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The spec's repository-name grammar, written independently of the parser.
fn name_strategy() -> impl Strategy<Value = String> {
    let alnum = "[a-z0-9]{1,8}";
    let sep = prop_oneof![
        Just(".".to_string()),
        Just("_".to_string()),
        Just("__".to_string()),
        "-{1,3}"
    ];
    let component = (alnum, prop::collection::vec((sep, alnum), 0..3)).prop_map(|(first, rest)| {
        let mut s = first;
        for (sep, part) in rest {
            s.push_str(&sep);
            s.push_str(&part);
        }
        s
    });
    prop::collection::vec(component, 1..5).prop_map(|c| c.join("/"))
}

/// Strings made of the characters that matter to paths and grammars.
fn nasty() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("/"),
            Just("."),
            Just(".."),
            Just("%2e"),
            Just("%2f"),
            Just("\0"),
            Just("-"),
            Just("_"),
            Just(":"),
            Just("sha256:"),
            Just("blobs"),
            Just("uploads"),
            Just("manifests"),
            Just("tags"),
            Just("list"),
            Just("referrers"),
            Just("a"),
            Just("Z"),
            Just("0"),
            Just("é"),
            Just(" "),
            Just("\\"),
            Just("*"),
            Just(","),
            Just("="),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![nasty(), any::<String>()]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn routes_never_panic_and_keep_the_name(path in any_text()) {
        let full = format!("/v2/{path}");
        if let Some(route) = super::routes::parse(&full) {
            let name = match route {
                super::routes::Route::Tags { name }
                | super::routes::Route::Manifest { name, .. }
                | super::routes::Route::Blob { name, .. }
                | super::routes::Route::UploadStart { name }
                | super::routes::Route::Upload { name, .. }
                | super::routes::Route::Referrers { name, .. } => name,
                _ => "",
            };
            prop_assert!(full.contains(name));
        }
    }

    #[test]
    fn names_accept_exactly_the_grammar(s in any_text()) {
        if let Some(n) = RepoName::parse(&s) {
            prop_assert_eq!(n.as_str(), s.as_str());
            prop_assert!(!s.contains("..") && !s.starts_with('/') && !s.ends_with('/'));
            prop_assert!(!s.contains("//") && s.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit() || b"._-/".contains(&b)));
        }
    }

    #[test]
    fn every_grammatical_name_is_accepted(s in name_strategy()) {
        prop_assume!(s.len() <= crate::core::names::MAX_NAME_LEN);
        prop_assert!(RepoName::parse(&s).is_some(), "{}", s);
    }

    #[test]
    fn tags_accept_exactly_the_grammar(s in prop_oneof![any_text(), "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,140}"]) {
        let grammar = !s.is_empty() && s.len() <= 128
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        prop_assert_eq!(Tag::parse(&s).is_some(), grammar, "{:?}", s);
    }

    #[test]
    fn digests_parse_only_well_formed_hex(s in prop_oneof![
        any_text(),
        "sha256:[0-9a-f]{64}",
        "sha512:[0-9a-f]{128}",
        "sha(256|512):[0-9a-fA-F]{60,130}",
    ]) {
        if let Ok(d) = s.parse::<Digest>() {
            prop_assert_eq!(d.as_str(), s.as_str());
            prop_assert!(d.hex().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert!(d.hex().len() == 64 || d.hex().len() == 128);
            // A valid digest is also a valid reference, never a tag.
            prop_assert!(matches!(Reference::parse(&s), Ok(Reference::Digest(_))));
        }
        let _ = Reference::parse(&s);
    }

    #[test]
    fn byte_ranges_resolve_inside_the_blob(s in prop_oneof![any_text(), "bytes=[0-9]{0,21}-[0-9]{0,21}"], size in 0u64..1 << 40) {
        if let Some((start, len)) = ByteRange::parse(&s).and_then(|r| r.resolve(size)) {
            prop_assert!(len > 0 && start.checked_add(len).is_some_and(|end| end <= size));
        }
    }

    #[test]
    fn content_ranges_never_panic(s in prop_oneof![any_text(), "(bytes )?[0-9]{0,21}-[0-9]{0,21}(/[0-9*]{0,5})?"]) {
        if let Some((start, end)) = super::uploads::content_range(&s) {
            prop_assert!(start <= end);
        }
    }

    #[test]
    fn authorization_headers_never_panic(s in any_text(), scheme in prop_oneof![Just("Basic "), Just("Bearer "), Just("basic "), Just("")]) {
        let mut h = axum::http::HeaderMap::new();
        if let Ok(v) = format!("{scheme}{s}").parse() {
            h.insert(axum::http::header::AUTHORIZATION, v);
            let _ = super::auth::credentials(&h);
        }
    }

    #[test]
    fn token_scopes_never_grant_invalid_names(s in any_text()) {
        if let Some(Scope::Repository(name, _)) = Scope::parse(&s) {
            prop_assert!(RepoName::parse(&name).is_some());
        }
    }

    #[test]
    fn manifests_never_panic(body in prop::collection::vec(any::<u8>(), 0..512), ct in any_text()) {
        let _ = manifest::parse(&body, Some(&ct));
        let _ = manifest::parse(&body, None);
    }

    #[test]
    fn mutated_manifests_never_panic(cut in 0usize..2000, flips in prop::collection::vec((0usize..2000, any::<u8>()), 0..8)) {
        let d = Digest::sha256_of(b"x");
        let mut m = format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":7,"platform":{{"os":"linux","architecture":"amd64"}}}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":7}},"annotations":{{"a":"b"}}}}"#).into_bytes();
        for (at, byte) in flips {
            let at = at % m.len();
            m[at] = byte;
        }
        m.truncate(cut.min(m.len()));
        let _ = manifest::parse(&m, None);
    }
}
