//! A bounded in-memory cache of hot lookups for the SQLite store: manifests
//! by tag or digest, tags-list pages, and blobs in a repository.
//!
//! Metadata stays the source of truth (invariant 6): the cache only
//! remembers answers the database gave, and the store forgets them in the
//! same code path that changes what the answer would be:
//!
//! - every write transaction of this process declares what it touches
//!   ([`Touches`]); the store invalidates after the commit, while it still
//!   holds the writer lock;
//! - a hit is served only under the writer lock, after checking SQLite's
//!   `PRAGMA data_version` on the writer connection, which changes exactly
//!   when *another* connection committed, i.e. another process (`berth gc`
//!   or `berth scrub --repair` run beside the server): then everything is
//!   dropped. While the writer is busy the cache is bypassed rather than
//!   waited for;
//! - a miss fills the cache only if no invalidation happened since the
//!   lookup began ([`LookupCache::generation`]), so a slow reader cannot
//!   put back what a writer just removed.
//!
//! Only answers that something exists are cached; "not found" always asks
//! the database.
//!
//! Entries live in two generations ("hot" and "cold"): inserts and hits go
//! to hot; when hot is full it becomes cold and the old cold is dropped. That
//! bounds the cache at twice one generation's budget, keeps recently used
//! entries, and costs O(1) per operation.

use super::{ManifestRecord, Names, StoredBlob};
use std::collections::HashMap;
use std::sync::Mutex;

/// A remembered answer.
#[derive(Debug, Clone)]
pub enum Cached {
    /// A manifest looked up by tag or digest.
    Manifest(ManifestRecord),
    /// A page of a repository's tags list.
    Tags(Names),
    /// A blob the repository links.
    Blob(StoredBlob),
}

impl Cached {
    /// Roughly what the entry holds in memory, for the byte budget.
    fn bytes(&self) -> usize {
        match self {
            Cached::Manifest(m) => m.body.len() + m.media_type.len() + 128,
            Cached::Tags(t) => t.iter().map(|n| n.len() + 24).sum::<usize>() + 64,
            Cached::Blob(b) => b.key.as_str().len() + 128,
        }
    }
}

/// What a write transaction may change, as far as cached lookups are
/// concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touches {
    /// Nothing a cached answer says: no manifest, tag or repository row,
    /// and no blob row or link that exists now.
    Nothing,
    /// Manifests or tags of this repository.
    Repo(String),
    /// The blob row of this digest or a link to it (in any repository).
    Blob(String),
    /// Anything (the collector, which removes manifests, links, blobs and
    /// repositories).
    All,
}

/// Budget of one generation: entries and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub entries: usize,
    pub bytes: usize,
}

impl Default for Budget {
    /// 4,096 entries or 8 MiB per generation: at most 16 MiB in all.
    fn default() -> Budget {
        Budget {
            entries: 4096,
            bytes: 8 << 20,
        }
    }
}

/// The key of a tags-list page: at most `n` tags after `last`. Manifest
/// keys are tags (no `:`) or digests (with one); NUL is in neither.
pub fn tags_key(last: &str, n: usize) -> String {
    format!("\0tags\0{n}\0{last}")
}

/// The key of a blob lookup.
pub fn blob_key(digest: &str) -> String {
    format!("\0blob\0{digest}")
}

/// One generation: answers by repository, then by key, and which
/// repositories hold a cached blob entry for each digest (so a blob's
/// invalidation does not scan every repository).
#[derive(Default)]
struct Generation {
    by_repo: HashMap<String, HashMap<String, Cached>>,
    blob_repos: HashMap<String, Vec<String>>,
    entries: usize,
    bytes: usize,
}

impl Generation {
    fn remove(&mut self, repo: &str, key: &str) -> Option<Cached> {
        let m = self.by_repo.get_mut(repo)?;
        let old = m.remove(key)?;
        self.entries -= 1;
        self.bytes -= old.bytes();
        Some(old)
    }

    fn remove_repo(&mut self, repo: &str) {
        if let Some(m) = self.by_repo.remove(repo) {
            self.entries -= m.len();
            self.bytes -= m.values().map(Cached::bytes).sum::<usize>();
        }
    }

    fn remove_blob(&mut self, digest: &str) {
        let key = blob_key(digest);
        for repo in self.blob_repos.remove(digest).unwrap_or_default() {
            self.remove(&repo, &key);
        }
    }
}

#[derive(Default)]
struct State {
    /// Bumped by every invalidation; see [`LookupCache::insert`].
    generation: u64,
    /// The writer connection's `data_version` when last checked.
    data_version: Option<i64>,
    hot: Generation,
    cold: Generation,
}

pub struct LookupCache {
    budget: Budget,
    state: Mutex<State>,
}

impl LookupCache {
    pub fn new(budget: Budget) -> LookupCache {
        LookupCache {
            budget,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The invalidation count; read it before querying the database and
    /// pass it to [`insert`](Self::insert).
    pub fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Record the writer connection's `data_version`. When it changed,
    /// another process committed: everything is dropped and `false`
    /// returned (the caller must not serve from the cache this time).
    pub fn observe_data_version(&self, version: i64) -> bool {
        let mut s = self.state();
        if s.data_version == Some(version) {
            return true;
        }
        s.data_version = Some(version);
        clear(&mut s);
        false
    }

    /// A cached answer. Call only under the writer lock after
    /// [`observe_data_version`](Self::observe_data_version) returned true.
    pub fn get(&self, repo: &str, key: &str) -> Option<Cached> {
        let mut s = self.state();
        if let Some(r) = s.hot.by_repo.get(repo).and_then(|m| m.get(key)) {
            return Some(r.clone());
        }
        // A hit in cold moves the entry to hot, so it survives the next turn.
        let r = s.cold.remove(repo, key)?;
        self.put(&mut s, repo, key, r.clone());
        Some(r)
    }

    /// Remember an answer read from the database, unless an invalidation
    /// happened since `generation` was read (the answer may be stale).
    pub fn insert(&self, generation: u64, repo: &str, key: &str, value: Cached) {
        if value.bytes() > self.budget.bytes / 16 {
            return;
        }
        let mut s = self.state();
        if s.generation != generation {
            return;
        }
        self.put(&mut s, repo, key, value);
    }

    fn put(&self, s: &mut State, repo: &str, key: &str, value: Cached) {
        let len = value.bytes();
        if s.hot.entries >= self.budget.entries || s.hot.bytes + len > self.budget.bytes {
            s.cold = std::mem::take(&mut s.hot);
        }
        let hot = &mut s.hot;
        if let Cached::Blob(_) = &value {
            let digest = &key[blob_key("").len()..];
            let repos = hot.blob_repos.entry(digest.to_owned()).or_default();
            if !repos.iter().any(|r| r == repo) {
                repos.push(repo.to_owned());
            }
        }
        let old = hot
            .by_repo
            .entry(repo.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
        match old {
            Some(old) => hot.bytes = hot.bytes - old.bytes() + len,
            None => {
                hot.entries += 1;
                hot.bytes += len;
            }
        }
    }

    /// Forget what a committed write may have changed.
    pub fn invalidate(&self, touches: &Touches) {
        let mut s = self.state();
        match touches {
            Touches::Nothing => return,
            Touches::All => clear(&mut s),
            Touches::Repo(repo) => {
                s.hot.remove_repo(repo);
                s.cold.remove_repo(repo);
            }
            Touches::Blob(digest) => {
                s.hot.remove_blob(digest);
                s.cold.remove_blob(digest);
            }
        }
        s.generation += 1;
    }

    /// Entries held, for tests.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let s = self.state();
        s.hot.entries + s.cold.entries
    }
}

fn clear(s: &mut State) {
    s.generation += 1;
    s.hot = Generation::default();
    s.cold = Generation::default();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::digest::Digest;

    fn rec(body: &str) -> Cached {
        Cached::Manifest(ManifestRecord {
            digest: Digest::sha256_of(body.as_bytes()),
            media_type: "m".into(),
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
            verified: true,
        })
    }

    fn body(c: Cached) -> bytes::Bytes {
        match c {
            Cached::Manifest(m) => m.body,
            _ => panic!("not a manifest"),
        }
    }

    fn blob(suffix: &str) -> Cached {
        let d = Digest::sha256_of(b"b");
        Cached::Blob(StoredBlob {
            size: 1,
            key: crate::storage::BlobKey::new(&d, suffix),
            corrupt: false,
        })
    }

    #[test]
    fn blob_entries_go_with_their_digest_in_every_repository() {
        let c = LookupCache::new(Budget::default());
        let (x, y) = (blob_key("sha256:x"), blob_key("sha256:y"));
        for repo in ["a", "b", "c"] {
            c.insert(c.generation(), repo, &x, blob("k1"));
            c.insert(c.generation(), repo, &y, blob("k2"));
            c.insert(c.generation(), repo, "latest", rec(repo));
        }
        c.invalidate(&Touches::Blob("sha256:x".into()));
        for repo in ["a", "b", "c"] {
            assert!(c.get(repo, &x).is_none(), "{repo}");
            assert!(matches!(c.get(repo, &y), Some(Cached::Blob(_))), "{repo}");
            assert!(c.get(repo, "latest").is_some(), "{repo}");
        }
        // A stale fill of the blob is refused like any other.
        let g = c.generation();
        c.invalidate(&Touches::Blob("sha256:x".into()));
        c.insert(g, "a", &x, blob("k1"));
        assert!(c.get("a", &x).is_none());
        assert_eq!(c.len(), 6);
    }

    #[test]
    fn stale_fills_are_refused() {
        let c = LookupCache::new(Budget::default());
        assert!(!c.observe_data_version(1), "first look serves nothing");
        assert!(c.observe_data_version(1));
        let g = c.generation();
        c.invalidate(&Touches::Repo("a".into()));
        c.insert(g, "a", "latest", rec("old"));
        assert!(c.get("a", "latest").is_none());
        let g = c.generation();
        c.insert(g, "a", "latest", rec("new"));
        assert_eq!(body(c.get("a", "latest").unwrap()), "new");
        let tags: Names = vec!["a".to_string(), "b".to_string()].into();
        c.insert(c.generation(), "a", &tags_key("", 10), Cached::Tags(tags));
        assert!(matches!(c.get("a", &tags_key("", 10)), Some(Cached::Tags(t)) if t.len() == 2));
        assert!(c.get("a", &tags_key("a", 10)).is_none());
    }

    #[test]
    fn invalidation_is_per_repository_or_total() {
        let c = LookupCache::new(Budget::default());
        for repo in ["a", "b"] {
            c.insert(c.generation(), repo, "t", rec(repo));
        }
        c.invalidate(&Touches::Nothing);
        assert_eq!(c.len(), 2);
        c.invalidate(&Touches::Repo("a".into()));
        assert!(c.get("a", "t").is_none());
        assert!(c.get("b", "t").is_some());
        c.invalidate(&Touches::All);
        assert_eq!(c.len(), 0);
        // Another process committed: all of it goes.
        c.insert(c.generation(), "b", "t", rec("b"));
        c.observe_data_version(7);
        c.insert(c.generation(), "b", "t", rec("b"));
        assert!(!c.observe_data_version(8));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bounded_and_keeps_what_is_used() {
        let c = LookupCache::new(Budget {
            entries: 4,
            bytes: 1 << 20,
        });
        c.insert(c.generation(), "r", "keep", rec("keep"));
        for i in 0..100 {
            c.insert(c.generation(), "r", &format!("t{i}"), rec("x"));
            assert!(c.get("r", "keep").is_some(), "hot entry evicted at {i}");
            assert!(c.len() <= 8);
        }
        // Byte budget: a generation never holds more than its share
        // (each of these entries counts 133 bytes).
        let c = LookupCache::new(Budget {
            entries: 1000,
            bytes: 3200,
        });
        for i in 0..100 {
            c.insert(c.generation(), "r", &format!("t{i}"), rec("0123"));
        }
        assert!(c.len() <= 2 * 24, "{} entries", c.len());
        // Entries too large for the budget are not cached at all.
        c.insert(c.generation(), "r", "big", rec(&"x".repeat(100)));
        assert!(c.get("r", "big").is_none());
    }
}
