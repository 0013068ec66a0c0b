//! Sealed catalog cursors. A filtered catalog page may end on a repository
//! the caller may not see (the scan budget ran out among hidden names); its
//! `Link` must still let the caller continue from there without naming it.
//! Such a cursor is sealed: the name, padded to the longest name, encrypted
//! and authenticated (ChaCha20-Poly1305) with a key made at start-up, so it
//! tells nothing but "continue here" and cannot be forged to probe names.
//! Cursors do not survive a restart (the caller gets a 400 and starts over).

use crate::core::names::MAX_NAME_LEN;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::OnceLock;

/// Starts every sealed cursor; repository names never start with it.
const MARK: char = '~';

fn key() -> Option<&'static LessSafeKey> {
    static KEY: OnceLock<Option<LessSafeKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).ok()?;
        UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .ok()
            .map(LessSafeKey::new)
    })
    .as_ref()
}

/// `name` as an opaque cursor (None only if the system RNG fails).
pub fn seal(name: &str) -> Option<String> {
    let key = key()?;
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).ok()?;
    // Padded with NULs (no name holds one), so the length says nothing.
    let mut buf = name.as_bytes().to_vec();
    buf.resize(buf.len().max(MAX_NAME_LEN), 0);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Some(format!("{MARK}{}", URL_SAFE_NO_PAD.encode(out)))
}

/// Whether `last` is a sealed cursor rather than a repository name.
pub fn is_sealed(last: &str) -> bool {
    last.starts_with(MARK)
}

/// The name inside a cursor made by [`seal`] in this process; None for
/// anything else (tampered, truncated, from before a restart).
pub fn open(cursor: &str) -> Option<String> {
    let raw = URL_SAFE_NO_PAD.decode(cursor.strip_prefix(MARK)?).ok()?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut sealed = sealed.to_vec();
    let plain = key()?
        .open_in_place(nonce, Aad::empty(), &mut sealed)
        .ok()?;
    let end = plain.iter().position(|&b| b == 0).unwrap_or(plain.len());
    String::from_utf8(plain[..end].to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_cursors_open_to_their_name_and_hide_its_length() {
        let short = seal("a").unwrap();
        let long = seal("team-a/some/much/longer-repository-name").unwrap();
        assert!(is_sealed(&short) && is_sealed(&long));
        assert_eq!(short.len(), long.len());
        assert!(!long.contains("team-a"));
        assert_eq!(open(&short).as_deref(), Some("a"));
        assert_eq!(
            open(&long).as_deref(),
            Some("team-a/some/much/longer-repository-name")
        );
        // Two seals of one name differ (fresh nonce), both open.
        let again = seal("a").unwrap();
        assert_ne!(again, short);
        assert_eq!(open(&again).as_deref(), Some("a"));
    }

    #[test]
    fn forged_or_damaged_cursors_do_not_open() {
        let good = seal("secret/app").unwrap();
        let mut bytes = good.into_bytes();
        let i = bytes.len() / 2;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let damaged = String::from_utf8(bytes).unwrap();
        for bad in [
            damaged.as_str(),
            "~",
            "~~~",
            "~AAAA",
            "secret/app",
            &format!("~{}", URL_SAFE_NO_PAD.encode([0u8; 400])),
        ] {
            assert_eq!(open(bad), None, "{bad}");
        }
    }
}
