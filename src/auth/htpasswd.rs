//! Users and bcrypt password hashes from an htpasswd file (`htpasswd -B`).
//!
//! bcrypt is slow on purpose (tens of milliseconds), so it runs on the
//! blocking pool, never on the async runtime, and a successful check is
//! remembered for a few minutes: a client that sends Basic credentials on
//! every request pays bcrypt once. Failed checks are never cached.

use crate::shards::Sharded;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a verified password is trusted without bcrypt.
const CACHE_TTL: Duration = Duration::from_secs(300);
/// Remembered logins at most.
const CACHE_MAX: usize = 10_000;
/// Cost of hashes `berth htpasswd` writes.
pub const COST: u32 = 10;

/// Compared against when the user is unknown, so that unknown users take
/// as long as wrong passwords.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| bcrypt::hash("berth: no such user", COST).unwrap_or_default())
}

pub struct Htpasswd {
    path: PathBuf,
    users: RwLock<Arc<HashMap<String, String>>>,
    /// sha256(user, password, hash) -> when it was verified.
    cache: Sharded<[u8; 32], Instant>,
}

/// Parse htpasswd text: `user:hash` lines; blank lines and `#` comments
/// are skipped. Only bcrypt hashes are accepted: the others htpasswd can
/// write (MD5-crypt, SHA-1, crypt) are too weak to rely on.
pub fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!("line {}: expected user:hash", i + 1));
        };
        if !["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| hash.starts_with(p))
        {
            return Err(format!(
                "line {}: user {user:?} does not have a bcrypt hash (create it with htpasswd -B)",
                i + 1
            ));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

fn load(path: &Path) -> Result<HashMap<String, String>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn cache_key(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user, password, hash] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

impl Htpasswd {
    pub fn open(path: &Path) -> Result<Htpasswd, String> {
        let users = load(path)?;
        tracing::info!(path = %path.display(), users = users.len(), "htpasswd loaded");
        Ok(Htpasswd {
            path: path.to_owned(),
            users: RwLock::new(Arc::new(users)),
            cache: Sharded::new(CACHE_MAX),
        })
    }

    /// Re-read the file; on error the old users stay. Returns the user count.
    pub fn reload(&self) -> Result<usize, String> {
        let users = load(&self.path)?;
        let n = users.len();
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(users);
        self.cache.clear();
        Ok(n)
    }

    /// An htpasswd line for `user` with a new bcrypt hash of `password`.
    pub fn entry(user: &str, password: &str) -> Result<String, String> {
        if user.is_empty() || user.contains(':') || user.contains(char::is_whitespace) {
            return Err(format!("{user:?} cannot be an htpasswd user name"));
        }
        let hash = bcrypt::hash(password, COST).map_err(|e| format!("hashing: {e}"))?;
        Ok(format!("{user}:{hash}"))
    }

    fn hash_of(&self, user: &str) -> Option<String> {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner()).clone();
        users.get(user).cloned()
    }

    /// Whether this password was verified for this user recently.
    pub fn cached(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.hash_of(user) else {
            return false;
        };
        let key = cache_key(user, password, &hash);
        self.cache
            .get_cloned(&key)
            .is_some_and(|t| t.elapsed() < CACHE_TTL)
    }

    /// Check a password with bcrypt, off the async runtime.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        let known = self.hash_of(user);
        let pw = password.to_owned();
        let h = known.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let h = h.as_deref().unwrap_or_else(|| dummy_hash());
            bcrypt::verify(pw, h).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let Some(hash) = known.filter(|_| ok) else {
            return false;
        };
        self.cache.insert(
            cache_key(user, password, &hash),
            Instant::now(),
            |t: &Instant| t.elapsed() >= CACHE_TTL,
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bcrypt_and_refuses_weak_hashes() {
        let users = parse("# users\nalice:$2y$05$abc\n\nbob:$2b$05$def\n").unwrap();
        assert_eq!(users.len(), 2);
        assert!(parse("carol:$apr1$xyz$abc").unwrap_err().contains("bcrypt"));
        assert!(parse("no-colon").is_err());
    }

    #[tokio::test]
    async fn verifies_and_caches_only_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        let h = Htpasswd::open(&path).unwrap();
        assert!(!h.cached("alice", "s3cret"));
        assert!(!h.verify("alice", "wrong").await);
        assert!(!h.cached("alice", "wrong"));
        assert!(!h.verify("nobody", "s3cret").await);
        assert!(h.verify("alice", "s3cret").await);
        assert!(h.cached("alice", "s3cret"));
        // A reload that changes the password forgets the old one.
        let hash = bcrypt::hash("new", 4).unwrap();
        std::fs::write(&path, format!("alice:{hash}\n")).unwrap();
        assert_eq!(h.reload().unwrap(), 1);
        assert!(!h.cached("alice", "s3cret"));
        assert!(!h.verify("alice", "s3cret").await);
        assert!(h.verify("alice", "new").await);
    }
}
